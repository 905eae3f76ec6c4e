//! The oracle as a real process: kill -9 during ingest loses no acknowledged receipt and
//! stores none twice; the CLI verifies a published batch bit for bit.

use std::collections::HashSet;
use std::time::Duration;

use dsi_api::oracle::EpochInfo;
use dsi_protocol::reputation::Standing;
use dsi_protocol::{ChunkId, Manifest, NodeId, Receipt, SecretKey, SignedReceipt, now_ms};
use dsi_service::OracleClient;
use dsi_tests::OracleProcess;

const CHUNK: u32 = 16 * 1024;

fn manifest(chunks: usize) -> Manifest {
    let ids: Vec<ChunkId> = (0..chunks)
        .map(|i| ChunkId::of(&(i as u64).to_le_bytes()))
        .collect();
    Manifest::new("crash", CHUNK as u64 * chunks as u64, CHUNK, ids).expect("manifest")
}

/// Batches of distinct receipts: downloader `d` signs one receipt per chunk for seeder 1.
fn batches(manifest: &Manifest, count: usize) -> Vec<Vec<SignedReceipt>> {
    let network = dsi_protocol::NetworkId::default();
    let seeder = SecretKey::from_seed(&[1; 32]).node_id();
    let epoch = dsi_protocol::EpochSchedule::default().epoch_at(now_ms());
    (0..count)
        .map(|d| {
            let mut seed = [9u8; 32];
            seed[..8].copy_from_slice(&(d as u64).to_le_bytes());
            let downloader = SecretKey::from_seed(&seed);
            manifest
                .chunks
                .iter()
                .map(|chunk| {
                    SignedReceipt::sign(
                        Receipt {
                            epoch,
                            seeder,
                            downloader: NodeId([0; 32]),
                            chunk: *chunk,
                            bytes: CHUNK,
                            issued_at_ms: now_ms(),
                            nonce: d as u64,
                        },
                        &network,
                        &downloader,
                    )
                })
                .collect()
        })
        .collect()
}

async fn send(client: &OracleClient, batch: &[SignedReceipt]) -> anyhow::Result<()> {
    let answer = client.submit_receipts(batch).await?;
    anyhow::ensure!(
        answer.results.iter().all(|r| r.is_accepted()),
        "rejections: {answer:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_ingest_loses_no_acknowledged_receipt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut oracle = OracleProcess::start(dir.path(), &[("DSI_ORACLE_CLOSE__AUTO", "false")])
        .expect("oracle starts");
    let manifest = manifest(500);
    let client = oracle.client.clone();
    client
        .register_manifest(
            manifest.to_bytes(),
            &SecretKey::from_seed(&[1; 32]),
            &dsi_protocol::NetworkId::default(),
        )
        .await
        .expect("register");
    let batches = batches(&manifest, 60);

    // Stream batches from a task; kill -9 the oracle while batches are in flight.
    let stream = batches.clone();
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel();
    let sender_client = client.clone();
    let sender = tokio::spawn(async move {
        for (i, batch) in stream.iter().enumerate() {
            if send(&sender_client, batch).await.is_err() {
                return i;
            }
            let _ = acked_tx.send(i);
        }
        stream.len()
    });
    let mut acked = Vec::new();
    while acked.len() < 8 {
        acked.push(
            acked_rx
                .recv()
                .await
                .expect("first batches are acknowledged"),
        );
    }
    oracle.kill();
    let failed_at = sender.await.expect("sender");
    while let Ok(i) = acked_rx.try_recv() {
        acked.push(i);
    }
    assert!(failed_at < batches.len(), "the kill interrupted the stream");
    assert_eq!(
        acked.len(),
        failed_at,
        "batches before the failure were acknowledged"
    );

    // After restart: every acknowledged receipt is there, once; the batch in flight is
    // there completely or not at all.
    oracle.restart().expect("restart");
    let store = oracle::Store::connect(&oracle.database_url())
        .await
        .expect("db");
    let epoch = batches[0][0].receipt.epoch;
    let held = store.count_receipts(epoch).await.expect("count") as usize;
    let per_batch = manifest.chunks.len();
    let acked_receipts = acked.len() * per_batch;
    assert!(
        held == acked_receipts || held == acked_receipts + per_batch,
        "held {held}, acknowledged {acked_receipts} (batches of {per_batch})"
    );
    let keys: Vec<_> = acked
        .iter()
        .flat_map(|&i| {
            batches[i]
                .iter()
                .map(|r| oracle::rules::receipt_key(&r.receipt))
        })
        .collect();
    let found = store.existing_receipts(&keys).await.expect("lookup");
    assert_eq!(
        found.len(),
        keys.len(),
        "every acknowledged receipt survived"
    );
    let unique: HashSet<_> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len());

    // Retrying everything is harmless: all accepted, each stored once.
    for batch in &batches {
        send(&client, batch).await.expect("retry accepted");
    }
    let held = store.count_receipts(epoch).await.expect("count") as usize;
    assert_eq!(held, batches.len() * per_batch);

    // Close, then verify the published batch with the CLI, bit for bit.
    let closed = client
        .close(&oracle.admin_token(), None)
        .await
        .expect("closed")
        .closed;
    let file = dir.path().join("batches").join(&closed[0].batch_file);
    let output = std::process::Command::new(dsi_tests::oracle_bin())
        .arg("verify-epoch")
        .arg(&file)
        .output()
        .expect("verify-epoch runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("recomputed bit for bit"), "{stdout}");
    assert!(stdout.contains(&hex::encode(closed[0].root)), "{stdout}");

    // A tampered file fails with exit code 4; a missing one with 3.
    let mut bytes = std::fs::read(&file).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let tampered = dir.path().join("tampered.batch");
    std::fs::write(&tampered, bytes).expect("write");
    let output = std::process::Command::new(dsi_tests::oracle_bin())
        .arg("verify-epoch")
        .arg(&tampered)
        .output()
        .expect("runs");
    assert_eq!(
        output.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = std::process::Command::new(dsi_tests::oracle_bin())
        .args(["verify-epoch", "/nonexistent.batch"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(3));
    store.close().await;
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeders_announce_forward_receipts_and_earn_through_the_tracker() {
    use dsi_tests::{Seeder, node_lite_ok, poll, random_file, sha256_of};
    let tmp = tempfile::tempdir().expect("tempdir");
    let oracle = OracleProcess::start(
        &tmp.path().join("oracle"),
        &[("DSI_ORACLE_CLOSE__AUTO", "false")],
    )
    .expect("oracle starts");
    let file = tmp.path().join("data.bin");
    let sha = random_file(&file, 1 << 20);
    let mut seeders = Vec::new();
    let mut content = String::new();
    // Each seeder on its own loopback /24: two networks, two counted replicas.
    for (name, payout, listen) in [
        (
            "a",
            "0x1111111111111111111111111111111111111111",
            "127.0.1.1:0",
        ),
        (
            "b",
            "0x2222222222222222222222222222222222222222",
            "127.0.2.1:0",
        ),
    ] {
        let dir = tmp.path().join(name);
        dsi_tests::init_node(&dir, |config| {
            config.tracker.announce_interval_secs = 1;
            config.tracker.forward_interval_secs = 1;
        });
        content = node_lite_ok(&dir, &["add", file.to_str().expect("utf8")])
            .trim()
            .to_string();
        seeders.push(
            Seeder::start(
                &dir,
                &[
                    "--tracker",
                    &oracle.url,
                    "--payout",
                    payout,
                    "--listen",
                    listen,
                ],
            )
            .expect("seeder"),
        );
    }
    let client = oracle.client.clone();
    let content_id = content.parse().expect("a content id");
    poll("both seeders announced", async || {
        let answer = client.peers(&content_id).await.ok()?;
        (answer.peers.len() == 2).then_some(())
    })
    .await;

    // The downloader finds the seeders through the tracker alone. The content's storage
    // is sponsored and the downloader's key has credit.
    let downloader = tmp.path().join("downloader");
    node_lite_ok(&downloader, &["init"]);
    oracle.sponsor(&content_id).await;
    let key = node_lite::DataDir::new(&downloader).key().expect("key");
    let request = dsi_api::oracle::CreditRequest {
        downloader: key.node_id(),
        amount: 1_000_000_000_000,
    };
    client
        .add_credit(&oracle.admin_token(), &request)
        .await
        .expect("credit");
    let shown = node_lite_ok(&downloader, &["credit", "--tracker", &oracle.url]);
    assert!(
        shown.contains("funded 1000000000000, spent 0, available 1000000000000"),
        "{shown}"
    );
    let out = tmp.path().join("out.bin");
    node_lite_ok(
        &downloader,
        &[
            "get",
            &content,
            "--tracker",
            &oracle.url,
            "--out",
            out.to_str().expect("utf8"),
        ],
    );
    assert_eq!(sha256_of(&out), sha);

    // Seeders forward their receipts; the oracle holds one per chunk.
    let epoch = client.current_epoch().await.expect("current").epoch;
    let chunks = (1u64 << 20).div_ceil(256 * 1024);
    poll("receipts forwarded", async || {
        let info = client.epoch(epoch).await.ok()?;
        (matches!(info, EpochInfo::Open(_)) && info.receipts() == chunks).then_some(())
    })
    .await;
    // Acknowledged receipts are deleted at the seeders.
    poll("seeders emptied", async || {
        seeders
            .iter()
            .all(|s| s.receipts().is_empty())
            .then_some(())
    })
    .await;

    // Before the close, each seeder's page estimates the open epoch from its receipts: the
    // bytes at the price, less the 10 % fee (unrated: factor 1).
    let (mut receipts, mut bytes) = (0, 0);
    for seeder in &seeders {
        let id = node_lite::DataDir::new(&seeder.data_dir)
            .key()
            .expect("key")
            .node_id();
        let open = client
            .seeder(&id)
            .await
            .expect("seeder page")
            .open_epoch
            .expect("an open-epoch estimate");
        assert_eq!(open.epoch, epoch);
        assert_eq!(
            open.bandwidth,
            u128::from(open.bytes) * 1_000 * 9 / 10,
            "{open:?}"
        );
        receipts += open.receipts;
        bytes += open.bytes;
    }
    assert_eq!((receipts, bytes), (chunks, 1 << 20));

    // Close: both seeders are audited (they serve real chunks) and earn storage; the
    // bytes they served add up to the file.
    let closed = client
        .close(&oracle.admin_token(), Some(epoch))
        .await
        .expect("closed")
        .closed;
    assert_eq!(closed[0].receipts, chunks);
    let leaves = client.leaves(epoch).await.expect("leaves");
    assert_eq!(leaves.len(), 2, "{leaves:?}");
    // The download was paid from the downloader's credit: 1 MiB at the price.
    let shown: serde_json::Value = serde_json::from_str(&node_lite_ok(
        &downloader,
        &["credit", "--tracker", &oracle.url, "--json"],
    ))
    .expect("credit as JSON");
    assert_eq!(
        shown["spent"],
        ((1u64 << 20) * 1_000).to_string(),
        "{shown}"
    );
    let served: u64 = leaves.iter().map(|l| l.bytes_served).sum();
    assert_eq!(served, 1 << 20);
    for leaf in &leaves {
        assert_ne!(leaf.storage_amount, 0, "audits passed: {leaf:?}");
        let page = client.seeder(&leaf.seeder).await.expect("seeder");
        assert_eq!(page.standing, Standing::Good, "{page:?}");
    }
}

/// Issue 13, hole 2, on real processes: audits are challenges bound to the announcing key.
/// A node that holds 2 of the 3 contents it announces passes only when the 3 audited chunks
/// all fall in what it holds, so it earns less storage than an honest node announcing the 2
/// it holds; a key that announces an honest node's URL never passes (the honest node will
/// not answer a challenge for another key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audits_pay_storage_only_for_what_the_announcing_key_holds() {
    use dsi_protocol::{Announcement, ContentId, PayoutAccount, SignedAnnouncement};
    use dsi_tests::{Seeder, node_lite_ok, poll, random_file};
    let tmp = tempfile::tempdir().expect("tempdir");
    let oracle = OracleProcess::start(
        &tmp.path().join("oracle"),
        &[
            ("DSI_ORACLE_CLOSE__AUTO", "false"),
            ("DSI_ORACLE_EPOCHS__LENGTH_MS", "400"),
        ],
    )
    .expect("oracle starts");
    let client = oracle.client.clone();
    let network = client.info().await.expect("info").network;
    // Three contents of 4 chunks each (1 MiB, 256 KiB chunks).
    let files: Vec<_> = (0..3)
        .map(|i| {
            let path = tmp.path().join(format!("content-{i}.bin"));
            random_file(&path, 1 << 20);
            path
        })
        .collect();
    let start = |name: &str, contents: &[usize], payout: &str, listen: &str| {
        let dir = tmp.path().join(name);
        dsi_tests::init_node(&dir, |config| {
            // Announce once at start: the test's own announcements stay the newest.
            config.tracker.announce_interval_secs = 3600;
        });
        let ids: Vec<ContentId> = contents
            .iter()
            .map(|&i| {
                node_lite_ok(&dir, &["add", files[i].to_str().expect("utf8")])
                    .trim()
                    .parse()
                    .expect("content id")
            })
            .collect();
        let seeder = Seeder::start(
            &dir,
            &[
                "--tracker",
                &oracle.url,
                "--payout",
                payout,
                "--listen",
                listen,
            ],
        )
        .expect("seeder");
        let key = node_lite::DataDir::new(dir).key().expect("node key");
        (seeder, key, ids)
    };
    let (honest, honest_key, held) = start(
        "honest",
        &[0, 1],
        "0x1111111111111111111111111111111111111111",
        "127.0.1.1:0",
    );
    let (_third, _, third) = start(
        "third",
        &[2],
        "0x3333333333333333333333333333333333333333",
        "127.0.3.1:0",
    );
    let (cheat, cheat_key, _) = start(
        "cheat",
        &[0, 1],
        "0x2222222222222222222222222222222222222222",
        "127.0.2.1:0",
    );
    // All three contents are sponsored: storage pays only for funded content.
    for content in held.iter().chain(&third) {
        oracle.sponsor(content).await;
    }
    poll("the three nodes announced", async || {
        let peers = client.peers(&third[0]).await.ok()?;
        let a = client.peers(&held[0]).await.ok()?;
        (peers.peers.len() == 1 && a.peers.len() == 2).then_some(())
    })
    .await;
    let announce = |key: &SecretKey, url: &str, contents: Vec<ContentId>, payout: u8| {
        SignedAnnouncement::sign(
            Announcement {
                node: key.node_id(),
                url: url.trim_end_matches('/').to_string(),
                payout: PayoutAccount([payout; 20]),
                contents,
                issued_at_ms: now_ms(),
                endpoint: None,
            },
            &network,
            key,
        )
    };
    // The cheat announces all three contents (from its own network, as the oracle
    // requires of a URL there); mallory, another host in the honest node's /24, announces
    // the honest node's URL (from anywhere else it would be refused `url_outside_source`).
    let from = |ip: [u8; 4]| {
        OracleClient::from_source(&oracle.url, Duration::from_secs(30), Some(ip.into()))
            .expect("client")
    };
    let all = vec![held[0], held[1], third[0]];
    from([127, 0, 2, 1])
        .announce(&announce(&cheat_key, &cheat.url, all, 0x22))
        .await
        .expect("cheat announces");
    let mallory = SecretKey::from_seed(&[0x66; 32]);
    let refused = client
        .announce(&announce(&mallory, &honest.url, held.clone(), 0x66))
        .await
        .expect_err("a URL outside the sender's network");
    assert!(
        refused.to_string().contains("url_outside_source")
            || format!("{refused:?}").contains("UrlOutsideSource"),
        "{refused:?}"
    );
    from([127, 0, 1, 77])
        .announce(&announce(&mallory, &honest.url, held.clone(), 0x66))
        .await
        .expect("mallory announces");

    // 24 epochs, each audited at its close.
    let first = client.current_epoch().await.expect("epoch").epoch;
    let rounds = 24;
    let last = dsi_protocol::Epoch(first.0 + rounds);
    while client.current_epoch().await.expect("epoch").epoch <= last {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The first close (no receipts held) closes the epoch asked for; the second every
    // epoch after it through `last`.
    for through in [first, last] {
        client
            .close(&oracle.admin_token(), Some(through))
            .await
            .expect("closed");
    }
    let mut storage = std::collections::HashMap::<NodeId, u128>::new();
    for epoch in first.0..=last.0 {
        for leaf in client
            .leaves(dsi_protocol::Epoch(epoch))
            .await
            .expect("leaves")
        {
            *storage.entry(leaf.seeder).or_default() += leaf.storage_amount;
        }
    }
    let of = |key: &SecretKey| storage.get(&key.node_id()).copied().unwrap_or(0);
    let (honest_pay, cheat_pay, mallory_pay) = (of(&honest_key), of(&cheat_key), of(&mallory));
    println!(
        "summary: storage paid over {} epochs: honest {honest_pay}, cheat (holds 2 of 3) {cheat_pay}, mallory (borrowed URL) {mallory_pay}",
        rounds + 1
    );
    assert!(honest_pay > 0);
    assert!(
        cheat_pay < honest_pay,
        "cheat {cheat_pay} vs honest {honest_pay}"
    );
    assert_eq!(mallory_pay, 0, "a borrowed URL earns nothing");
    let page = client
        .seeder(&mallory.node_id())
        .await
        .expect("mallory's page");
    assert!(!page.audits.is_empty());
    assert!(page.audits.iter().all(|a| !a.passed()), "{:?}", page.audits);
    let page = client
        .seeder(&cheat_key.node_id())
        .await
        .expect("cheat's page");
    let mut by_epoch = std::collections::BTreeMap::<u64, (u32, u32)>::new();
    for audit in &page.audits {
        let entry = by_epoch.entry(audit.epoch.0).or_default();
        if audit.passed() {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }
    println!(
        "cheat audits (passed, failed) by epoch: {by_epoch:?}, standing {:?}",
        page.standing
    );
    assert!(
        page.audits
            .iter()
            .any(|a| a.outcome == dsi_api::oracle::AuditOutcome::Missing),
        "the cheat was caught at least once: {:?}",
        page.audits
    );
}

/// Issue 13, on real processes: an attacker registers the all-zero 256 KiB chunk (common
/// to many files) first, with a false length. An honest node-lite that holds a file
/// starting with zeros is refused `chunk_length_conflict`, proves the chunk's length with
/// its bytes, and registers its manifest; the false manifest is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_false_length_for_a_common_chunk_does_not_block_honest_content() {
    use dsi_tests::{Seeder, node_lite_ok, poll};
    let tmp = tempfile::tempdir().expect("tempdir");
    let oracle = OracleProcess::start(
        &tmp.path().join("oracle"),
        &[("DSI_ORACLE_CLOSE__AUTO", "false")],
    )
    .expect("oracle starts");
    let client = oracle.client.clone();
    let network = client.info().await.expect("info").network;
    let chunk_size = 256 * 1024;
    let zeros = ChunkId::of(&vec![0u8; chunk_size]);
    // The attack: the zero chunk as a 16 KiB chunk.
    let evil = Manifest::new("zeros", 16 * 1024, 16 * 1024, vec![zeros]).expect("manifest");
    client
        .register_manifest(
            evil.to_bytes(),
            &SecretKey::from_seed(&[0x66; 32]),
            &network,
        )
        .await
        .expect("the attacker registers first");
    assert_eq!(
        client.chunk_lengths(&[zeros]).await.expect("lengths"),
        [Some(16 * 1024)]
    );

    // An honest file: a block of zeros, then other bytes.
    let path = tmp.path().join("honest.bin");
    let mut bytes = vec![0u8; chunk_size];
    bytes.extend((0..chunk_size).map(|i| (i % 251) as u8));
    std::fs::write(&path, &bytes).expect("write");
    let dir = tmp.path().join("honest");
    dsi_tests::init_node(&dir, |_| {});
    let content: dsi_protocol::ContentId = node_lite_ok(
        &dir,
        &[
            "add",
            path.to_str().expect("utf8"),
            "--chunk-size",
            "256KiB",
        ],
    )
    .trim()
    .parse()
    .expect("content id");
    let _seeder = Seeder::start(
        &dir,
        &[
            "--tracker",
            &oracle.url,
            "--payout",
            "0x1111111111111111111111111111111111111111",
        ],
    )
    .expect("seeder");
    poll("the honest content registered and listed", async || {
        let peers = client.peers(&content).await.ok()?;
        (peers.peers.len() == 1).then_some(())
    })
    .await;
    assert_eq!(
        client.chunk_lengths(&[zeros]).await.expect("lengths"),
        [Some(chunk_size as u32)],
        "the proven length"
    );
    let gone = client.manifest(&evil.content_id()).await;
    assert_eq!(
        gone.err().and_then(|e| e.code()),
        Some(dsi_api::ErrorCode::UnknownContent),
        "the false manifest was dropped"
    );
    let registered = client.manifest(&content).await.expect("honest manifest");
    assert_eq!(
        dsi_protocol::manifest::content_id_of_bytes(&registered),
        content
    );
}
