//! The `dsi-relay` binary: prints the URL it relays at, answers HTTP there, and stops
//! cleanly on SIGTERM.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

#[test]
fn the_binary_announces_its_url_serves_it_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dsi-relay"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .trim()
        .strip_prefix("dsi-relay: relaying at http://")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    let address = url.trim_end_matches('/');
    assert!(address.starts_with("127.0.0.1:"), "{address}");

    // The relay's own health probe (what nodes use to pick their home relay).
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .write_all(b"GET /generate_204 HTTP/1.1\r\nhost: relay\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_bad_listen_address_is_named_in_the_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_dsi-relay"))
        .args(["--listen", "not-an-address"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--listen"), "{stderr}");
}

#[test]
fn a_written_certificate_serves_address_discovery_and_is_never_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tls");
    let dir_arg = dir.to_str().unwrap();
    let write = || {
        Command::new(env!("CARGO_BIN_EXE_dsi-relay"))
            .args(["--write-cert", dir_arg, "--names", "127.0.0.1,localhost"])
            .output()
            .unwrap()
    };
    let written = write();
    assert!(written.status.success(), "{written:?}");
    let (cert, key) = (dir.join("relay-cert.pem"), dir.join("relay-key.pem"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key is readable by others");
    let before = std::fs::read(&key).unwrap();
    let again = write();
    assert!(
        !again.status.success(),
        "a second --write-cert overwrote the key"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
    assert_eq!(std::fs::read(&key).unwrap(), before);
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(files, 2, "temporary files left behind");

    // The relay answers address discovery with it ...
    let with_qad = |cert: &std::path::Path, key: &std::path::Path| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dsi-relay"));
        command
            .args([
                "--listen",
                "127.0.0.1:0",
                "--qad",
                "127.0.0.1:0",
                "--tls-cert",
            ])
            .arg(cert)
            .arg("--tls-key")
            .arg(key);
        command
    };
    let mut child = with_qad(&cert, &key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let said = lines
        .by_ref()
        .map(Result::unwrap)
        .find(|line| line.contains("address discovery"))
        .unwrap();
    assert!(
        said.contains("QUIC address discovery on udp 127.0.0.1:"),
        "{said}"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    // ... and refuses a key that is not the certificate's, naming the problem.
    let other = tmp.path().join("other");
    let written = Command::new(env!("CARGO_BIN_EXE_dsi-relay"))
        .args([
            "--write-cert",
            other.to_str().unwrap(),
            "--names",
            "127.0.0.1",
        ])
        .output()
        .unwrap();
    assert!(written.status.success());
    let mismatched = with_qad(&cert, &other.join("relay-key.pem"))
        .output()
        .unwrap();
    assert!(!mismatched.status.success());
    let stderr = String::from_utf8_lossy(&mismatched.stderr);
    assert!(stderr.contains("do not go together"), "{stderr}");
    // --qad without a certificate is refused before anything starts.
    let bare = Command::new(env!("CARGO_BIN_EXE_dsi-relay"))
        .args(["--qad", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!bare.status.success());
    assert!(String::from_utf8_lossy(&bare.stderr).contains("--tls-cert"));
}
