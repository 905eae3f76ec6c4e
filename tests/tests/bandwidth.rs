//! Bandwidth limits with real `node-lite` processes: an egress budget per day that is never
//! passed, survives a restart and is answered 503 with `Retry-After`; a cap on downloaders
//! served at once that refuses a second downloader while the first is served.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use dsi_tests::{Seeder, node_lite, node_lite_bin, node_lite_ok};

const KIB: usize = 1024;

fn add(dir: &Path, len: usize, seed: u64) -> String {
    node_lite_ok(dir, &["init"]);
    let bytes = dsi_tests::seeded_bytes(len, seed);
    let file = dir.with_extension("bin");
    std::fs::write(&file, &bytes).unwrap();
    node_lite_ok(
        dir,
        &["add", file.to_str().unwrap(), "--chunk-size", "16KiB"],
    )
    .trim()
    .to_string()
}

fn curl_status(url: &str) -> (u16, String, String) {
    let output = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "-",
            "-w",
            "\n%{http_code}\n%header{retry-after}",
            url,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let mut lines: Vec<&str> = text.lines().collect();
    let retry = lines.pop().unwrap_or_default().to_string();
    let status = lines.pop().unwrap_or_default().parse().unwrap();
    (status, lines.join("\n"), retry)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daily_egress_budget_is_never_passed_and_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let seeder_dir = tmp.path().join("seeder");
    let content = add(&seeder_dir, 5 * 16 * KIB, 1);
    let mut seeder = Seeder::start(&seeder_dir, &["--max-egress-per-day", "40KiB"]).unwrap();
    let downloader = tmp.path().join("downloader");
    node_lite_ok(&downloader, &["init"]);
    let out = tmp.path().join("out.bin");
    let got = node_lite(
        &downloader,
        &[
            "get",
            &content,
            "--peer",
            &seeder.url,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(!got.status.success(), "the budget stops the download");
    // Two chunks (32 KiB) fit in 40 KiB, a third would not: never a byte past the budget.
    assert_eq!(
        seeder.metric("dsi_node_served_bytes_total").await.unwrap(),
        32 * KIB as u64
    );
    assert!(
        seeder
            .metric("dsi_node_egress_refused_total")
            .await
            .unwrap()
            >= 1
    );
    let url = format!("{}content/{content}", seeder.url);
    let (status, body, retry) = curl_status(&url);
    assert_eq!(status, 503);
    assert!(body.contains("egress_budget_spent"), "{body}");
    let retry: u64 = retry.trim().parse().unwrap();
    assert!((1..=86_400).contains(&retry), "Retry-After {retry}");
    // The counts are saved every 2 s: a crash after that forgets nothing.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    seeder.kill();
    seeder.restart().unwrap();
    let (status, _, _) = curl_status(&url);
    assert_eq!(status, 503, "still spent after a restart");
    assert_eq!(
        seeder.metric("dsi_node_egress_day_bytes").await.unwrap(),
        32 * KIB as u64
    );
    let log = std::fs::read_to_string(seeder_dir.join("serve.log")).unwrap();
    assert!(log.contains("egress budget spent"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_downloader_waits_while_the_cap_is_served() {
    let tmp = tempfile::tempdir().unwrap();
    let seeder_dir = tmp.path().join("seeder");
    let content = add(&seeder_dir, 8 * 16 * KIB, 2);
    // 64 KiB/s: the first download takes 2 s.
    let seeder = Seeder::start(
        &seeder_dir,
        &["--max-downloaders", "1", "--max-upload-rate", "64KiB"],
    )
    .unwrap();
    let get = |name: &str| {
        let dir = tmp.path().join(name);
        node_lite_ok(&dir, &["init"]);
        let out = tmp.path().join(format!("{name}.bin"));
        let mut command = Command::new(node_lite_bin());
        command
            .arg("--data-dir")
            .arg(&dir)
            .args(["get", &content, "--peer", &seeder.url, "--out"])
            .arg(out)
            .env("DSI_LOG", "warn");
        command
    };
    let mut first = get("a")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = get("b").output().unwrap();
    // Refused while the first was served (503 too_many_downloaders), the second waited
    // (as for owed receipts: pausing longer each time) and was served after it.
    assert!(
        seeder
            .metric("dsi_node_downloaders_refused_total")
            .await
            .unwrap()
            >= 1
    );
    assert!(
        second.status.success(),
        "the second downloader waits its turn: {}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(first.wait().unwrap().success(), "the first one finishes");
}
