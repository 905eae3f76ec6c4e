//! Scenarios run over both transports, and the relay the iroh ones use.

#![allow(clippy::unwrap_used)] // a test harness: a failed unwrap is a failed test

use std::path::Path;

use crate::{Seeder, init_node, node_lite_bin, node_lite_ok, random_file, sha256_of};

/// A `dsi-relay` on a free loopback port, run in this process on a runtime of its own (the
/// relay server code of the `dsi-relay` binary, without a separate build of it); stops when
/// dropped.
pub struct TestRelay {
    /// Its URL (`http://127.0.0.1:PORT/`).
    pub url: String,
    /// Its QUIC address discovery's UDP address, if on.
    pub qad: Option<std::net::SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts a [`TestRelay`] on a free loopback port, carrying every key.
pub fn start_relay() -> TestRelay {
    start_relay_with(dsi_relay::Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..dsi_relay::Settings::default()
    })
}

/// Starts a [`TestRelay`] with `settings`.
pub fn start_relay_with(settings: dsi_relay::Settings) -> TestRelay {
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let relay = dsi_relay::Relay::start(&settings).await.unwrap();
            url_tx.send((relay.url(), relay.qad_address())).unwrap();
            let _ = stopped.await;
            relay.shutdown().await.unwrap();
        });
    });
    let (url, qad) = url_rx.recv().expect("dsi-relay starts");
    TestRelay {
        url,
        qad,
        stop: Some(stop),
    }
}

/// A 64 MiB download from two seeders (uploads capped at 12 MiB/s) survives seeder `a`
/// killed (SIGKILL) after serving 8 MiB: it finishes from `b`, and every receipt `a`
/// acknowledged is still there after a restart. Then a downloader killed mid-way resumes
/// from its part file. Nodes are set up by `configure`; `--peer` names a seeder as
/// `name` says (its URL, or its node id over iroh). With `dropped_at_once` the killed
/// seeder must be reported dropped: over HTTP its refused connections say so at once;
/// over QUIC a killed process sends nothing, so its requests fail only at the stall
/// timeout (10 s), usually after the download finished from the other seeder.
pub async fn downloads_survive_killed_peers(
    tmp: &Path,
    configure: impl Fn(&mut node_lite::Config),
    name: impl Fn(&Seeder) -> String,
    dropped_at_once: bool,
) {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    const MIB: usize = 1 << 20;
    let file = tmp.join("data.bin");
    let sha = random_file(&file, 64 * MIB);
    let (a_dir, b_dir) = (tmp.join("a"), tmp.join("b"));
    let content = {
        init_node(&a_dir, &configure);
        init_node(&b_dir, &configure);
        node_lite_ok(&b_dir, &["add", file.to_str().unwrap()]);
        node_lite_ok(&a_dir, &["add", file.to_str().unwrap()])
            .trim()
            .to_string()
    };
    // Capped uploads make the download last a few seconds: time to kill things.
    let mut a = Seeder::start(&a_dir, &["--max-upload-rate", "12MiB"]).unwrap();
    let b = Seeder::start(&b_dir, &["--max-upload-rate", "12MiB"]).unwrap();
    let (a_name, b_name) = (name(&a), name(&b));
    // How the download's report names each seeder.
    let report_url = |name: &str| node_lite::peers::parse_peer_url(name).unwrap().to_string();

    // 1. Kill seeder a (SIGKILL) once it has served 8 MiB; the download finishes from b.
    let first_dir = tmp.join("first");
    init_node(&first_dir, &configure);
    let out = tmp.join("out1.bin");
    let download = std::process::Command::new(node_lite_bin())
        .arg("--data-dir")
        .arg(&first_dir)
        .args([
            "get",
            &content,
            "--peer",
            &a_name,
            "--peer",
            &b_name,
            "--out",
            out.to_str().unwrap(),
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while a.metric("dsi_node_served_bytes_total").await.unwrap_or(0) < 8 * MIB as u64 {
        assert!(Instant::now() < deadline, "seeder a never served 8 MiB");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.kill();
    let output = download.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(sha256_of(&out), sha);
    let a_report = peer(&report, &report_url(&a_name));
    assert!(a_report["chunks"].as_u64().unwrap() > 0);
    assert!(
        a_report["dropped"].is_string() || !dropped_at_once,
        "the dead seeder was dropped: {a_report}"
    );

    // Every receipt a acknowledged before it was killed is still there after a restart.
    a.restart().unwrap();
    let acknowledged = a_report["receipts_accepted"].as_u64().unwrap();
    assert!(acknowledged > 0);
    assert!(
        a.receipts().len() as u64 >= acknowledged,
        "acknowledged receipts survive kill -9"
    );

    // 2. Kill a downloader (SIGKILL) mid-way; running it again resumes from the part file.
    let second_dir = tmp.join("second");
    init_node(&second_dir, &configure);
    let out = tmp.join("out2.bin");
    let args = [
        "get",
        &content,
        "--peer",
        &b_name,
        "--out",
        out.to_str().unwrap(),
        "--json",
    ];
    let served_before = b.metric("dsi_node_served_bytes_total").await.unwrap();
    let mut download = std::process::Command::new(node_lite_bin())
        .arg("--data-dir")
        .arg(&second_dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while b.metric("dsi_node_served_bytes_total").await.unwrap() < served_before + 16 * MIB as u64 {
        assert!(Instant::now() < deadline, "seeder b never served 16 MiB");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    download.kill().unwrap();
    download.wait().unwrap();
    assert!(!out.exists());
    assert!(tmp.join("out2.bin.dsi-part").exists());
    let report: serde_json::Value =
        serde_json::from_str(&node_lite_ok(&second_dir, &args)).unwrap();
    let resumed = report["chunks_resumed"].as_u64().unwrap();
    assert!(resumed >= 32, "at least 8 MiB were kept: resumed {resumed}");
    assert_eq!(resumed + report["chunks_fetched"].as_u64().unwrap(), 256);
    assert_eq!(sha256_of(&out), sha);
    assert!(!tmp.join("out2.bin.dsi-part").exists());
}

/// The report of the peer at `url` in a `get --json` report.
pub fn peer<'a>(report: &'a serde_json::Value, url: &str) -> &'a serde_json::Value {
    report["peers"]
        .as_array()
        .and_then(|peers| peers.iter().find(|p| p["url"] == url))
        .unwrap_or_else(|| panic!("no report for {url}: {report}"))
}
