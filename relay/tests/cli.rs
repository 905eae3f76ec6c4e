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
