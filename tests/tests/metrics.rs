//! `/metrics` of real processes (a seeder announcing to an oracle, a gateway that fetched
//! from it, the oracle) checked by Prometheus's own linter, `promtool check metrics`
//! (Debian package `prometheus`, `scripts/setup --promtool`): names, `# HELP` and `# TYPE`
//! on every family. Without promtool the test says so and passes, unless
//! DSI_REQUIRE_PROMTOOL=1 (as `scripts/test` sets).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::Write;
use std::process::{Command, Stdio};

use dsi_tests::{OracleProcess, Seeder, node_lite_ok};

fn promtool() -> Option<String> {
    let tool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    if Command::new(&tool).arg("--version").output().is_ok() {
        return Some(tool);
    }
    let message = format!("{tool} not found (scripts/setup --promtool)");
    if std::env::var("DSI_REQUIRE_PROMTOOL").as_deref() == Ok("1") {
        panic!("{message}");
    }
    eprintln!("skipped: {message}");
    None
}

/// Runs `promtool check metrics` on `text`: its complaints (empty when clean).
fn lint(tool: &str, text: &str) -> String {
    let mut child = Command::new(tool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        complaints
    } else {
        format!("exit {}: {complaints}", output.status)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metrics_answer_passes_promtool() {
    let Some(tool) = promtool() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let oracle = OracleProcess::start(&tmp.path().join("oracle"), &[]).unwrap();
    let seeder_dir = tmp.path().join("seeder");
    node_lite_ok(&seeder_dir, &["init"]);
    let file = tmp.path().join("a.bin");
    dsi_tests::random_file(&file, 300_000);
    let content = node_lite_ok(&seeder_dir, &["add", file.to_str().unwrap()])
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let seeder = Seeder::start(
        &seeder_dir,
        &[
            "--tracker",
            &oracle.url,
            "--payout",
            "0x0101010101010101010101010101010101010101",
        ],
    )
    .unwrap();
    let gateway = Seeder::gateway(&tmp.path().join("gateway"), &["--peer", &seeder.url]).unwrap();
    // Some traffic, so counters are not all zero.
    let answer = reqwest::get(format!("{}content/{content}", gateway.url))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.bytes().await.unwrap().len(), 300_000);
    let mut scraped = String::new();
    for (who, url) in [
        ("seeder", seeder.url.clone()),
        ("gateway", gateway.url.clone()),
        ("oracle", format!("{}/", oracle.url)),
    ] {
        let response = reqwest::get(format!("{url}metrics")).await.unwrap();
        assert_eq!(
            response.headers()["content-type"],
            dsi_service::prometheus::CONTENT_TYPE
        );
        let text = response.text().await.unwrap();
        assert!(text.contains("# TYPE"), "{who}: {text}");
        assert_eq!(lint(&tool, &text), "", "{who}'s /metrics:\n{text}");
        assert_eq!(
            dsi_service::prometheus::undocumented(&text),
            Vec::<String>::new(),
            "{who}"
        );
        scraped.push_str(&text);
    }

    // The Grafana dashboards of docs/grafana ask only for metrics that exist.
    let samples: std::collections::HashSet<&str> = scraped
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    for name in ["node-lite.json", "oracle.json"] {
        let path = dsi_tests::repo().join("docs/grafana").join(name);
        let dashboard: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let mut asked = 0;
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                    if word.starts_with("dsi_") {
                        asked += 1;
                        assert!(
                            samples.contains(word),
                            "{name}: panel {:?} asks for {word}, which no /metrics has",
                            panel["title"]
                        );
                    }
                }
            }
        }
        assert!(asked >= 8, "{name} asks for {asked} metrics");
    }
}
