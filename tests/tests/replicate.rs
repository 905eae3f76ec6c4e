//! The replicator through real processes: an oracle, a seeder holding two funded contents
//! (one paying ten times more per byte) and an unfunded one, and two nodes that hold
//! nothing and run `serve --replicate` with room for one content each.
//!
//! Both replicators fetch the better paid content first (verified, paid with receipts) and
//! announce it. The close then counts its replicas: one more than its target, so the
//! replicator the close does not count drops it (its chunks leave the disk) and fetches the
//! other funded content instead. The unfunded content is never fetched.

use std::time::Duration;

use dsi_api::oracle::SponsorRequest;
use dsi_protocol::{ContentId, Epoch, NodeId};
use dsi_service::OracleClient;
use dsi_tests::{OracleProcess, Seeder, node_lite_ok, poll, random_file};

const EPOCH_MS: u64 = 2_000;
const MIB: usize = 1 << 20;

async fn listed(client: &OracleClient, content: &ContentId) -> Vec<NodeId> {
    let mut nodes: Vec<NodeId> = client
        .peers(content)
        .await
        .map(|p| p.peers.into_iter().map(|p| p.node).collect())
        .unwrap_or_default();
    nodes.sort();
    nodes
}

/// The contents a node holds (`node-lite list --json`).
fn holds(dir: &std::path::Path) -> Vec<ContentId> {
    let json = node_lite_ok(dir, &["list", "--json"]);
    let list: Vec<serde_json::Value> = serde_json::from_str(&json).expect("list --json");
    list.iter()
        .filter(|e| e["held"] == e["chunks"])
        .map(|e| {
            e["content_id"]
                .as_str()
                .expect("content_id")
                .parse()
                .expect("id")
        })
        .collect()
}

async fn close_current(oracle: &OracleProcess) -> Epoch {
    let client = &oracle.client;
    let epoch = client.current_epoch().await.expect("epoch").epoch;
    while client.current_epoch().await.expect("epoch").epoch <= epoch {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client
        .close(&oracle.admin_token(), Some(epoch))
        .await
        .expect("close");
    epoch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicators_fetch_the_best_paid_under_replicated_content_and_drop_a_surplus_replica() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let oracle = OracleProcess::start(
        &tmp.path().join("oracle"),
        &[
            ("DSI_ORACLE_CLOSE__AUTO", "false"),
            ("DSI_ORACLE_EPOCHS__LENGTH_MS", &EPOCH_MS.to_string()),
        ],
    )
    .expect("oracle starts");
    let client = oracle.client.clone();
    let init = |name: &str| {
        let dir = tmp.path().join(name);
        dsi_tests::init_node(&dir, |config| {
            config.epochs.length_ms = EPOCH_MS;
            config.tracker.announce_interval_secs = 1;
            config.serve.replicate_interval_secs = 1;
        });
        dir
    };
    let serve = |dir: &std::path::Path, n: u8, extra: &[&str]| {
        let payout = format!("0x{}", format!("{n:02x}").repeat(20));
        let listen = format!("127.0.{n}.1:0");
        let mut args = vec![
            "--tracker",
            oracle.url.as_str(),
            "--payout",
            &payout,
            "--listen",
            &listen,
        ];
        args.extend(extra);
        let seeder = Seeder::start(dir, &args).expect("node starts");
        let id = node_lite::DataDir::new(dir).key().expect("key").node_id();
        (seeder, id)
    };

    // The seeder: `rich` and `poor` are funded (1 MiB each, target 2 replicas; rich pays 10×
    // more), `free` is not.
    let seeder_dir = init("seeder");
    let add = |name: &str, len: usize| -> ContentId {
        let path = tmp.path().join(name);
        random_file(&path, len);
        node_lite_ok(&seeder_dir, &["add", path.to_str().expect("utf8")])
            .trim()
            .parse()
            .expect("content id")
    };
    let rich = add("rich.bin", MIB);
    let poor = add("poor.bin", MIB);
    let free = add("free.bin", MIB / 4);
    let (_seeder, seeder_id) = serve(&seeder_dir, 1, &[]);
    for (content, per_epoch) in [(rich, 1_000_000_000_000u128), (poor, 100_000_000_000)] {
        let request = SponsorRequest {
            content,
            per_epoch,
            epochs: 1_000,
            replicas: 2,
            first_epoch: None,
        };
        client
            .sponsor(&oracle.admin_token(), &request)
            .await
            .expect("sponsor");
    }
    poll("the seeder is listed for all three", async || {
        let all = [rich, poor, free];
        let mut ok = true;
        for content in &all {
            ok &= listed(&client, content).await == vec![seeder_id];
        }
        ok.then_some(())
    })
    .await;
    // A close proves the seeder: one counted replica each, one more wanted.
    close_current(&oracle).await;
    let answer = client.replication().await.expect("replication");
    let ids: Vec<ContentId> = answer.contents.iter().map(|e| e.content).collect();
    assert_eq!(
        ids,
        vec![rich, poor],
        "funded only, best paid per byte first"
    );
    for entry in &answer.contents {
        assert_eq!(
            (entry.holders.clone(), entry.holder_count, entry.wanted()),
            (vec![seeder_id], 1, 1),
            "{entry:?}"
        );
    }

    // Two replicators with room for one content each (1.5 MiB).
    let r1_dir = init("r1");
    let r2_dir = init("r2");
    let (_r1, r1) = serve(&r1_dir, 2, &["--replicate", "1536KiB"]);
    let (_r2, r2) = serve(&r2_dir, 3, &["--replicate", "1536KiB"]);
    let mut three = vec![seeder_id, r1, r2];
    three.sort();
    poll(
        "both replicators hold and announce the best paid content",
        async || (listed(&client, &rich).await == three).then_some(()),
    )
    .await;
    for dir in [&r1_dir, &r2_dir] {
        assert_eq!(
            holds(dir),
            vec![rich],
            "no room for more; never the unfunded"
        );
    }

    // The close counts the seeder (proven longest) and one replicator; the other's replica
    // is surplus: it drops it and takes the other funded content instead.
    close_current(&oracle).await;
    let answer = client.replication().await.expect("replication");
    let entry = answer
        .contents
        .iter()
        .find(|e| e.content == rich)
        .expect("rich listed");
    assert_eq!(entry.holder_count, 3, "{entry:?}");
    assert_eq!(entry.holders[0], seeder_id, "the longest proven first");
    let kept = entry.holders[1];
    let (dropper, dropper_dir) = if kept == r1 {
        (r2, &r2_dir)
    } else {
        (r1, &r1_dir)
    };
    let mut rich_holders = vec![seeder_id, kept];
    rich_holders.sort();
    let mut poor_holders = vec![seeder_id, dropper];
    poor_holders.sort();
    poll(
        "the surplus replica moves to the other funded content",
        async || {
            (listed(&client, &rich).await == rich_holders
                && listed(&client, &poor).await == poor_holders)
                .then_some(())
        },
    )
    .await;
    assert_eq!(holds(dropper_dir), vec![poor]);
    let kept_dir = if kept == r1 { &r1_dir } else { &r2_dir };
    assert_eq!(holds(kept_dir), vec![rich]);
    // The dropped replica left the disk: what the dropper stores is about one content.
    let on_disk: u64 = std::fs::read_dir(dropper_dir.join("chunks"))
        .expect("chunks dir")
        .flatten()
        .flat_map(|shard| {
            std::fs::read_dir(shard.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .filter_map(|f| f.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    println!(
        "summary: rich held by {} nodes, poor by {}; the dropper stores {on_disk} bytes",
        rich_holders.len(),
        poor_holders.len()
    );
    assert_eq!(on_disk, MIB as u64, "only the poor content's chunks");
    assert_eq!(listed(&client, &free).await, vec![seeder_id]);
}
