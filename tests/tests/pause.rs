//! Pause, resume and exit through real processes: an oracle and three `node-lite serve`
//! seeders of one sponsored content, each in its own /24 on loopback.
//!
//! - `node-lite pause` takes the node off the peer lists at once; the current epoch's close
//!   still audits it; then the node is stopped (SIGKILL) and the paused epochs' closes
//!   neither audit it nor move its reputation, while a node stopped the same way without a
//!   pause fails its audits and loses reputation. `node-lite resume` lists it again and
//!   the epoch of the resume is audited.
//! - Refusals name their rule: a pause too long or of 0 epochs, a pause while paused, a
//!   resume while not paused, a replayed, forged, unknown or stale notice.
//! - `node-lite exit` forwards the receipts the node holds, takes it off the lists, and the
//!   tracker never takes its key again; `serve` with a tracker refuses to start.

use std::collections::BTreeMap;
use std::time::Duration;

use dsi_api::oracle::NodeAvailability;
use dsi_protocol::{
    Announcement, Availability, ContentId, Epoch, NodeId, PayoutAccount, SecretKey,
    SignedAnnouncement, SignedAvailability, now_ms,
};
use dsi_service::OracleClient;
use dsi_tests::{OracleProcess, Seeder, node_lite, node_lite_ok, poll, random_file};
use serde_json::Value;

/// Epoch length: long enough for a close's audits, short enough for a test.
const EPOCH_MS: u64 = 2_000;

async fn wait_past(client: &OracleClient, epoch: Epoch) {
    while client.current_epoch().await.expect("epoch").epoch <= epoch {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn listed(client: &OracleClient, content: &ContentId) -> Vec<NodeId> {
    let mut nodes: Vec<NodeId> = client
        .peers(content)
        .await
        .expect("peers")
        .peers
        .into_iter()
        .map(|p| p.node)
        .collect();
    nodes.sort();
    nodes
}

/// (passed, failed) audits of `node` per epoch.
async fn audits(client: &OracleClient, node: &NodeId) -> BTreeMap<u64, (u32, u32)> {
    let mut by_epoch = BTreeMap::new();
    for audit in client.seeder(node).await.expect("seeder").audits {
        let entry: &mut (u32, u32) = by_epoch.entry(audit.epoch.0).or_default();
        if audit.passed() {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }
    by_epoch
}

async fn score(client: &OracleClient, node: &NodeId) -> u32 {
    client.seeder(node).await.expect("seeder").score
}

/// Runs `node-lite ARGS` expecting exit code 2 and `needle` in its error.
fn refused(dir: &std::path::Path, args: &[&str], needle: &str) {
    let out = node_lite(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(needle), "{args:?}: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_is_neither_listed_nor_audited_and_keeps_its_reputation_and_an_exit_is_final()
{
    let tmp = tempfile::tempdir().expect("tempdir");
    let oracle = OracleProcess::start(
        &tmp.path().join("oracle"),
        &[
            ("DSI_ORACLE_CLOSE__AUTO", "false"),
            ("DSI_ORACLE_EPOCHS__LENGTH_MS", &EPOCH_MS.to_string()),
            ("DSI_ORACLE_TRACKER__MAX_PAUSED_EPOCHS", "20"),
        ],
    )
    .expect("oracle starts");
    let client = oracle.client.clone();
    let network = client.info().await.expect("info").network;
    let file = tmp.path().join("content.bin");
    random_file(&file, 1 << 20);
    let start = |name: &str, n: u8| {
        let dir = tmp.path().join(name);
        dsi_tests::init_node(&dir, |config| {
            // Receipts stay here until `exit` forwards them.
            config.tracker.forward_interval_secs = 3600;
            config.epochs.length_ms = EPOCH_MS;
        });
        let content: ContentId = node_lite_ok(&dir, &["add", file.to_str().expect("utf8")])
            .trim()
            .parse()
            .expect("content id");
        let payout = format!("0x{}", format!("{n:02x}").repeat(20));
        let listen = format!("127.0.{n}.1:0");
        let seeder = Seeder::start(
            &dir,
            &[
                "--tracker",
                &oracle.url,
                "--payout",
                &payout,
                "--listen",
                &listen,
            ],
        )
        .expect("seeder");
        let id = node_lite::DataDir::new(&dir).key().expect("key").node_id();
        (dir, seeder, id, content)
    };
    // A pauses, B stays (and exits at the end), C is stopped without a word.
    let (a_dir, mut a, a_id, content) = start("a", 1);
    let (b_dir, b, b_id, _) = start("b", 2);
    let (c_dir, mut c, c_id, _) = start("c", 3);
    oracle.sponsor(&content).await;
    let mut all = vec![a_id, b_id, c_id];
    all.sort();
    poll("the three seeders are listed", async || {
        (listed(&client, &content).await == all).then_some(())
    })
    .await;

    // Refused pauses name the rule and the limit; nothing changes.
    let tracker = ["--tracker", oracle.url.as_str()];
    refused(
        &a_dir,
        &["pause", "--epochs", "0", tracker[0], tracker[1]],
        "pause_too_long",
    );
    refused(
        &a_dir,
        &["pause", "--epochs", "21", tracker[0], tracker[1]],
        "max_paused_epochs",
    );
    refused(&a_dir, &["resume", tracker[0], tracker[1]], "not_paused");
    assert_eq!(listed(&client, &content).await, all);

    // A pauses for 20 epochs (the most the oracle allows): off the lists at once, paused
    // from the next epoch. `--wait` returns only once the notice's epoch is closed.
    let mut pausing = std::process::Command::new(dsi_tests::node_lite_bin())
        .arg("--data-dir")
        .arg(&a_dir)
        .args([
            "pause", "--epochs", "20", "--wait", "--json", tracker[0], tracker[1],
        ])
        .env("DSI_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node-lite pause --wait");
    let from = poll("A's pause is taken", async || {
        match client.seeder(&a_id).await.ok()?.availability {
            NodeAvailability::Paused { from, until } => Some((from, until)),
            _ => None,
        }
    })
    .await;
    assert_eq!(from.1.0, from.0.0 + 20);
    let from = from.0;
    let current = Epoch(from.0 - 1);
    let mut others = vec![b_id, c_id];
    others.sort();
    assert_eq!(listed(&client, &content).await, others, "A is not listed");
    refused(
        &a_dir,
        &["pause", "--epochs", "2", tracker[0], tracker[1]],
        "already_paused",
    );
    let page = client.seeder(&a_id).await.expect("A's page");
    assert_eq!(
        page.availability,
        NodeAvailability::Paused {
            from,
            until: Epoch(from.0 + 20)
        }
    );
    let status: Value = serde_json::from_str(&node_lite_ok(
        &a_dir,
        &["status", "--json", tracker[0], tracker[1]],
    ))
    .expect("status");
    assert_eq!(
        status["oracle"]["availability"]["state"], "paused",
        "{status}"
    );

    // The epoch of the notice is still audited at its close: A passes it. Until that close
    // is done, `pause --wait` keeps waiting.
    wait_past(&client, current).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        pausing.try_wait().expect("pause --wait").is_none(),
        "pause --wait returned before epoch {current} closed"
    );
    client
        .close(&oracle.admin_token(), Some(current))
        .await
        .expect("close the notice's epoch");
    let waited = tokio::task::spawn_blocking(move || pausing.wait_with_output())
        .await
        .expect("join")
        .expect("pause --wait output");
    assert!(waited.status.success(), "pause --wait: {}", waited.status);
    let paused: Value = serde_json::from_slice(&waited.stdout).expect("pause report");
    assert_eq!(paused["current_epoch"], current.0, "{paused}");
    assert_eq!(paused["audited"], true, "{paused}");
    assert_eq!(paused["availability"]["from"], from.0, "{paused}");
    let a_before = score(&client, &a_id).await;
    let c_before = score(&client, &c_id).await;
    assert!(
        audits(&client, &a_id)
            .await
            .get(&current.0)
            .is_some_and(|&(passed, failed)| passed > 0 && failed == 0),
        "{:?}",
        audits(&client, &a_id).await
    );

    // A (paused) and C (not) stop; two more epochs close.
    a.kill();
    c.kill();
    let last = Epoch(current.0 + 2);
    wait_past(&client, last).await;
    client
        .close(&oracle.admin_token(), Some(last))
        .await
        .expect("close the paused epochs");
    let a_audits = audits(&client, &a_id).await;
    let c_audits = audits(&client, &c_id).await;
    let b_audits = audits(&client, &b_id).await;
    println!("audits (passed, failed) by epoch: A {a_audits:?}, B {b_audits:?}, C {c_audits:?}");
    assert!(
        a_audits.keys().all(|&e| e <= current.0),
        "no audit of A in its paused epochs: {a_audits:?}"
    );
    assert_eq!(
        score(&client, &a_id).await,
        a_before,
        "A's reputation waited for it"
    );
    for epoch in current.0 + 1..=last.0 {
        assert!(
            c_audits.get(&epoch).is_some_and(|&(_, failed)| failed > 0),
            "C, stopped without a pause, fails epoch {epoch}: {c_audits:?}"
        );
        assert!(
            b_audits
                .get(&epoch)
                .is_some_and(|&(passed, failed)| passed > 0 && failed == 0),
            "B passes epoch {epoch}: {b_audits:?}"
        );
    }
    let c_after = score(&client, &c_id).await;
    println!(
        "summary: reputation over a 2-epoch absence: paused {a_before} -> {} ppm, unannounced {c_before} -> {c_after} ppm",
        score(&client, &a_id).await
    );
    assert!(c_after < c_before, "C lost reputation");

    // A comes back and resumes: listed at once, and the resume's epoch is audited.
    a.restart().expect("A restarts");
    let resumed: Value = serde_json::from_str(&node_lite_ok(
        &a_dir,
        &["resume", "--json", tracker[0], tracker[1]],
    ))
    .expect("resume report");
    assert_eq!(resumed["availability"]["state"], "active", "{resumed}");
    let back = Epoch(resumed["current_epoch"].as_u64().expect("epoch"));
    assert!(back.0 < from.0 + 20, "resumed within the pause");
    poll("A is listed again", async || {
        listed(&client, &content)
            .await
            .contains(&a_id)
            .then_some(())
    })
    .await;
    refused(&a_dir, &["resume", tracker[0], tracker[1]], "not_paused");
    wait_past(&client, back).await;
    client
        .close(&oracle.admin_token(), Some(back))
        .await
        .expect("close the resume's epoch");
    let a_audits = audits(&client, &a_id).await;
    assert!(
        a_audits
            .get(&back.0)
            .is_some_and(|&(passed, failed)| passed > 0 && failed == 0),
        "A is audited again from the resume's epoch: {a_audits:?}"
    );
    assert!(score(&client, &a_id).await > a_before);

    // Notices the tracker refuses: a replay, a forgery, an unknown key, a stale clock.
    let c_key = node_lite::DataDir::new(&c_dir).key().expect("C's key");
    let notice = SignedAvailability::sign(
        Availability::Pause { epochs: 1 },
        now_ms(),
        &network,
        &c_key,
    );
    client.availability(&notice).await.expect("C pauses");
    let code = |e: dsi_service::ClientError| e.code().map(|c| c.as_str().to_string());
    assert_eq!(
        code(client.availability(&notice).await.expect_err("a replay")),
        Some("stale_notice".into())
    );
    let mut forged = notice;
    forged.notice.change = Availability::Exit;
    assert_eq!(
        code(client.availability(&forged).await.expect_err("a forgery")),
        Some("bad_signature".into())
    );
    let stranger = SecretKey::from_seed(&[0x77; 32]);
    let unknown = SignedAvailability::sign(Availability::Exit, now_ms(), &network, &stranger);
    assert_eq!(
        code(client.availability(&unknown).await.expect_err("unknown")),
        Some("unknown_node".into())
    );
    let old =
        SignedAvailability::sign(Availability::Resume, now_ms() - 3_600_000, &network, &c_key);
    assert_eq!(
        code(client.availability(&old).await.expect_err("stale clock")),
        Some("clock_skew".into())
    );

    // B serves a downloader, holds the receipts, and exits.
    let downloader = tmp.path().join("downloader");
    dsi_tests::init_node(&downloader, |config| config.epochs.length_ms = EPOCH_MS);
    let out = tmp.path().join("out.bin");
    node_lite_ok(
        &downloader,
        &[
            "get",
            &content.to_string(),
            "--peer",
            &b.url,
            "--out",
            out.to_str().expect("utf8"),
        ],
    );
    let held = b.receipts().len();
    assert!(held > 0, "B holds receipts");
    refused(&b_dir, &["exit", tracker[0], tracker[1]], "--yes");
    let exit: Value = serde_json::from_str(&node_lite_ok(
        &b_dir,
        &["exit", "--yes", "--json", tracker[0], tracker[1]],
    ))
    .expect("exit report");
    assert_eq!(exit["receipts_accepted"], held, "{exit}");
    assert!(b.receipts().is_empty(), "every receipt forwarded");
    assert!(!listed(&client, &content).await.contains(&b_id));
    assert!(matches!(
        client.seeder(&b_id).await.expect("B's page").availability,
        NodeAvailability::Exited { .. }
    ));
    // Its key is never taken again, not even with a newer announcement from its network.
    let b_key = node_lite::DataDir::new(&b_dir).key().expect("B's key");
    let again = SignedAnnouncement::sign(
        Announcement {
            node: b_id,
            url: b.url.trim_end_matches('/').to_string(),
            payout: PayoutAccount([2; 20]),
            contents: vec![content],
            issued_at_ms: now_ms(),
            endpoint: None,
        },
        &network,
        &b_key,
    );
    let from_b = OracleClient::from_source(
        &oracle.url,
        Duration::from_secs(30),
        Some([127, 0, 2, 1].into()),
    )
    .expect("client");
    assert_eq!(
        code(from_b.announce(&again).await.expect_err("an exited key")),
        Some("node_exited".into())
    );
    // An exit whose answer was lost (no mark written) is taken as done when tried again.
    let mark = b_dir.join("exited.json");
    std::fs::remove_file(&mark).expect("remove the mark");
    let again: Value = serde_json::from_str(&node_lite_ok(
        &b_dir,
        &["exit", "--yes", "--json", tracker[0], tracker[1]],
    ))
    .expect("exit report");
    assert_eq!(again["epoch"], exit["epoch"], "{again}");
    let mark: Value =
        serde_json::from_slice(&std::fs::read(&mark).expect("mark again")).expect("mark");
    assert_eq!(mark["network"], network.to_string(), "{mark}");
    refused(
        &b_dir,
        &["exit", "--yes", tracker[0], tracker[1]],
        "already",
    );
    refused(
        &b_dir,
        &[
            "serve",
            "--tracker",
            &oracle.url,
            "--payout",
            "0x0202020202020202020202020202020202020202",
            "--listen",
            "127.0.2.1:0",
        ],
        "exited the network",
    );
    drop(b);
}
