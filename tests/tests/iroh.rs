//! Node-to-node transport over iroh, end to end: real `node-lite` processes and a real
//! relay (`dsi_relay`, the server of the `dsi-relay` binary) on loopback. Every node has
//! `iroh.bind = []` (no UDP socket, so no direct path can exist) and is never told another
//! node's HTTP address: the only way between them is QUIC through the relay.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashSet;
use std::path::Path;

use dsi_protocol::{ChunkId, ContentId, NodeId};
use dsi_tests::{
    OracleProcess, Seeder, init_node, node_lite, node_lite_ok, poll, random_file, sha256_of,
    start_relay, start_relay_with,
};
use serde_json::Value;

const CHUNK: usize = 256 * 1024;

fn node_id(dir: &Path) -> NodeId {
    node_lite_ok(dir, &["id"]).trim().parse().expect("node id")
}

/// An oracle (closing only when asked) that audits over iroh through the relay at
/// `relay_url`, dialing from loopback, with the extra configuration `env`.
fn oracle_on(dir: &Path, relay_url: &str, env: &[(&str, &str)]) -> OracleProcess {
    let relays = format!("[\"{relay_url}\"]");
    let mut env = env.to_vec();
    env.extend([
        ("DSI_ORACLE_CLOSE__AUTO", "false"),
        ("DSI_ORACLE_IROH__RELAYS", relays.as_str()),
        ("DSI_ORACLE_IROH__BIND", "[\"127.0.0.1:0\"]"),
    ]);
    OracleProcess::start(dir, &env).expect("oracle starts")
}

/// A file of `len` random bytes added to the node in `seeder_dir`, which then serves it
/// announcing to `oracle`: the serving process, the content, the file's SHA-256 and the
/// seeder's id.
fn seed_through(
    tmp: &Path,
    seeder_dir: &Path,
    len: usize,
    oracle: &OracleProcess,
) -> (Seeder, ContentId, String, NodeId) {
    let file = tmp.join("data.bin");
    let sha = random_file(&file, len);
    let content: ContentId = node_lite_ok(seeder_dir, &["add", file.to_str().unwrap()])
        .trim()
        .parse()
        .unwrap();
    let payout = format!("0x{}", "01".repeat(20));
    let seeder = Seeder::start(seeder_dir, &["--tracker", &oracle.url, "--payout", &payout])
        .expect("seeder starts");
    (seeder, content, sha, node_id(seeder_dir))
}

fn chunk_path(data_dir: &Path, id: &ChunkId) -> std::path::PathBuf {
    let hex = id.to_string();
    data_dir.join("chunks").join(&hex[..2]).join(hex)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_without_a_direct_path_swap_chunks_through_the_relay_and_drop_a_corrupt_one() {
    let tmp = tempfile::tempdir().unwrap();
    let relay = start_relay();
    let relay_url = relay.url.clone();
    let relay_only = |config: &mut node_lite::Config| {
        config.iroh.relays = vec![relay_url.clone()];
        config.iroh.bind = Vec::new();
    };
    let (honest_dir, corrupt_dir, downloader_dir) = (
        tmp.path().join("honest"),
        tmp.path().join("corrupt"),
        tmp.path().join("downloader"),
    );
    for dir in [&honest_dir, &corrupt_dir, &downloader_dir] {
        init_node(dir, relay_only);
    }

    // An odd size: the last chunk is short.
    let file = tmp.path().join("data.bin");
    let sha = random_file(&file, 12 * CHUNK + 12_345);
    let content = node_lite_ok(&honest_dir, &["add", file.to_str().unwrap()])
        .trim()
        .to_string();
    node_lite_ok(&corrupt_dir, &["add", file.to_str().unwrap()]);
    // The corrupt seeder's disk rots under three chunks, and it serves without checking.
    let ids: Vec<ChunkId> = std::fs::read(&file)
        .unwrap()
        .chunks(CHUNK)
        .map(ChunkId::of)
        .collect();
    let corrupted: HashSet<ChunkId> = [1, 6, 12].iter().map(|i| ids[*i]).collect();
    for id in &corrupted {
        let path = chunk_path(&corrupt_dir, id);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[100] ^= 0x5a;
        std::fs::write(&path, bytes).unwrap();
    }
    let honest = Seeder::start(&honest_dir, &[]).unwrap();
    let corrupt = Seeder::start(&corrupt_dir, &["--verify", "never"]).unwrap();
    let (honest_id, corrupt_id) = (node_id(&honest_dir), node_id(&corrupt_dir));
    let downloader_id = node_id(&downloader_dir);

    // Peers named by node id only: dialed over iroh, through the relay.
    let out = tmp.path().join("out.bin");
    let stdout = node_lite_ok(
        &downloader_dir,
        &[
            "get",
            &content,
            "--peer",
            &corrupt_id.to_string(),
            "--peer",
            &honest_id.to_string(),
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(sha256_of(&out), sha, "the bytes arrived intact");
    assert_eq!(report["chunks_fetched"], ids.len());
    let peer = |id: &NodeId| -> Value {
        let url = format!("iroh://{id}/");
        report["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["url"] == url)
            .unwrap_or_else(|| panic!("no report for {url}: {report}"))
            .clone()
    };
    let (bad, good) = (peer(&corrupt_id), peer(&honest_id));
    assert!(
        bad["dropped"].as_str().unwrap_or("").contains("bad bytes"),
        "the corrupt peer is dropped for its bytes: {bad}"
    );
    assert_eq!(good["node_id"], honest_id.to_string());
    assert!(good["dropped"].is_null(), "{good}");

    // Receipts went back over the same connections: one per chunk each seeder served
    // correctly, none for bad bytes, and every chunk paid for by someone.
    let mut paid = HashSet::new();
    for (seeder, id) in [(&honest, honest_id), (&corrupt, corrupt_id)] {
        let receipts = seeder.receipts();
        let chunks: HashSet<ChunkId> = receipts.iter().map(|r| r.receipt.chunk).collect();
        assert_eq!(chunks.len(), receipts.len(), "one receipt per chunk");
        for receipt in &receipts {
            assert_eq!(receipt.receipt.seeder, id);
            assert_eq!(receipt.receipt.downloader, downloader_id);
            assert!(
                !corrupted.contains(&receipt.receipt.chunk) || id == honest_id,
                "no receipt for a corrupt chunk"
            );
        }
        let reported = peer(&id)["receipts_accepted"].as_u64().unwrap();
        assert_eq!(reported, receipts.len() as u64, "{id}");
        paid.extend(chunks);
    }
    assert_eq!(paid.len(), ids.len(), "every chunk was paid for, over iroh");
    assert_eq!(
        honest.metric("dsi_node_chunks_served_total").await.unwrap(),
        honest.receipts().len() as u64,
        "the honest seeder is paid for every chunk it served"
    );
    // The honest seeder served what the other could not.
    assert!(good["chunks"].as_u64().unwrap() >= corrupted.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_id_without_iroh_configured_is_refused_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("downloader");
    init_node(&dir, |_| {});
    let peer = node_id(&dir).to_string();
    let content = "00".repeat(32);
    let output = dsi_tests::node_lite(
        &dir,
        &[
            "get",
            &content,
            "--peer",
            &peer,
            "--out",
            tmp.path().join("x").to_str().unwrap(),
        ],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("iroh.relays"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_through_the_tracker_dials_a_seeder_at_its_announced_endpoint() {
    // The seeder has no UDP socket and the downloader is never told its address: the
    // tracker lists it with the iroh endpoint from its signed announcement, and `get
    // --tracker` dials it by node id through the relay.
    let tmp = tempfile::tempdir().unwrap();
    let relay = start_relay();
    // The seeder serves HTTP on loopback only, so it announces `iroh://SEEDER/`: a tracker
    // takes that only when it can audit over iroh.
    let oracle = oracle_on(&tmp.path().join("oracle"), &relay.url, &[]);
    let relay_only = |config: &mut node_lite::Config| {
        config.iroh.relays = vec![relay.url.clone()];
        config.iroh.bind = Vec::new();
        config.tracker.announce_interval_secs = 1;
    };
    let (seeder_dir, downloader_dir) = (tmp.path().join("seeder"), tmp.path().join("downloader"));
    init_node(&seeder_dir, relay_only);
    init_node(&downloader_dir, relay_only);
    let (seeder, content, sha, seeder_id) =
        seed_through(tmp.path(), &seeder_dir, 3 * CHUNK + 999, &oracle);

    let endpoint = poll(
        "the tracker lists the seeder with its iroh endpoint",
        async || {
            let answer = oracle.client.peers(&content).await.ok()?;
            let peer = answer.peers.into_iter().find(|p| p.node == seeder_id)?;
            peer.endpoint.filter(|e| !e.relays.is_empty())
        },
    )
    .await;
    assert_eq!(endpoint.relays, vec![relay.url.clone()]);
    assert!(
        endpoint.direct.is_empty(),
        "a relay-only seeder has no direct address"
    );

    let out = tmp.path().join("out.bin");
    let stdout = node_lite_ok(
        &downloader_dir,
        &[
            "get",
            &content.to_string(),
            "--tracker",
            &oracle.url,
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(sha256_of(&out), sha, "the bytes arrived intact");
    let peers = report["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 1, "{report}");
    assert_eq!(peers[0]["url"], format!("iroh://{seeder_id}/"), "{report}");
    assert_eq!(peers[0]["receipts_accepted"], 4, "{report}");
    assert_eq!(
        seeder.receipts().len(),
        4,
        "paid for every chunk, over iroh"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oracle_audits_an_iroh_node_on_a_direct_path_in_its_network_and_not_through_a_relay() {
    // Two seeders serve HTTP on loopback only, so they announce `iroh://NODE_ID/` (no URL
    // the oracle could reach). The oracle audits both over iroh: `direct` has a UDP socket
    // in the network it announces from, and passes; `relayed` has none and answers only
    // through the relay, which hides where it is: unreachable (one server could otherwise
    // answer for keys announced from many networks).
    let tmp = tempfile::tempdir().unwrap();
    let relay = start_relay();
    let oracle = oracle_on(
        &tmp.path().join("oracle"),
        &relay.url,
        &[("DSI_ORACLE_EPOCHS__LENGTH_MS", "400")],
    );
    let file = tmp.path().join("data.bin");
    random_file(&file, 2 * CHUNK + 17);
    let start = |name: &str, listen: &str, bind: Vec<std::net::SocketAddr>| {
        let dir = tmp.path().join(name);
        init_node(&dir, |config| {
            config.iroh.relays = vec![relay.url.clone()];
            config.iroh.bind = bind;
            config.tracker.announce_interval_secs = 1;
        });
        let content: ContentId = node_lite_ok(&dir, &["add", file.to_str().unwrap()])
            .trim()
            .parse()
            .unwrap();
        let payout = format!("0x{}", "02".repeat(20));
        let seeder = Seeder::start(
            &dir,
            &[
                "--tracker",
                &oracle.url,
                "--payout",
                &payout,
                "--listen",
                listen,
            ],
        )
        .expect("seeder starts");
        (seeder, node_id(&dir), content)
    };
    let (_direct, direct_id, content) = start(
        "direct",
        "127.0.4.1:0",
        vec!["127.0.4.1:0".parse().unwrap()],
    );
    let (_relayed, relayed_id, _) = start("relayed", "127.0.5.1:0", Vec::new());
    poll("both seeders listed at their iroh URLs", async || {
        let peers = oracle.client.peers(&content).await.ok()?.peers;
        let urls: HashSet<String> = peers.iter().map(|p| p.url.clone()).collect();
        let want: HashSet<String> = [direct_id, relayed_id]
            .iter()
            .map(|id| format!("iroh://{id}/"))
            .collect();
        (urls == want).then_some(())
    })
    .await;

    let client = &oracle.client;
    let first = client.current_epoch().await.unwrap().epoch;
    while client.current_epoch().await.unwrap().epoch <= first {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    client
        .close(&oracle.admin_token(), Some(first))
        .await
        .expect("closed");
    let direct = client.seeder(&direct_id).await.unwrap().audits;
    assert!(!direct.is_empty(), "the direct seeder was audited");
    assert!(direct.iter().all(|a| a.passed()), "{direct:?}");
    let relayed = client.seeder(&relayed_id).await.unwrap().audits;
    assert!(!relayed.is_empty(), "the relayed seeder was audited");
    assert!(
        relayed
            .iter()
            .all(|a| a.outcome == dsi_api::oracle::AuditOutcome::Unreachable
                && a.detail.contains("relay")),
        "{relayed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_over_iroh_survive_a_killed_seeder_and_a_killed_downloader() {
    // `swarm.rs`'s scenario with every seeder named by node id: a seeder killed (SIGKILL)
    // mid-download sends no reset over QUIC, so the downloader finishes from the other
    // (dropping the dead one only at its stall timeout); a killed downloader resumes from
    // its part file.
    // Direct loopback paths (found through the relay's exchange): 64 MiB twice through
    // the test's in-process relay would measure the relay, not the downloader.
    let tmp = tempfile::tempdir().unwrap();
    let relay = start_relay();
    let configure = |config: &mut node_lite::Config| {
        config.iroh.relays = vec![relay.url.clone()];
        config.iroh.bind = vec!["127.0.0.1:0".parse().unwrap()];
    };
    dsi_tests::downloads_survive_killed_peers(
        tmp.path(),
        configure,
        |seeder| node_id(&seeder.data_dir).to_string(),
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_admitting_from_the_tracker_carries_its_network_and_not_strangers() {
    // Keys are free: a relay that carries every key carries anyone's traffic at its
    // operator's cost. With `--admit-from` it carries only the keys the tracker vouches
    // for: the seeder once it announced, a downloader once it has credit, not a stranger.
    let tmp = tempfile::tempdir().unwrap();
    // The oracle names the relay and the relay asks the oracle: pick the relay's port first.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let relay_url = format!("http://127.0.0.1:{port}/");
    let oracle = oracle_on(&tmp.path().join("oracle"), &relay_url, &[]);
    let relay = start_relay_with(dsi_relay::Settings {
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        admit_from: Some(oracle.url.clone()),
        ..dsi_relay::Settings::default()
    });
    assert_eq!(relay.url, relay_url);

    let relay_only = |config: &mut node_lite::Config| {
        config.iroh.relays = vec![relay_url.clone()];
        config.iroh.bind = Vec::new();
        config.tracker.announce_interval_secs = 1;
    };
    let (seeder_dir, stranger_dir, funded_dir) = (
        tmp.path().join("seeder"),
        tmp.path().join("stranger"),
        tmp.path().join("funded"),
    );
    for dir in [&seeder_dir, &stranger_dir, &funded_dir] {
        init_node(dir, relay_only);
    }
    // Its first contact with the relay is refused (it has not announced yet); announced,
    // it is carried at its next attempt.
    let (_seeder, content, sha, seeder_id) =
        seed_through(tmp.path(), &seeder_dir, 2 * CHUNK + 77, &oracle);
    poll("the tracker lists the seeder", async || {
        let answer = oracle.client.peers(&content).await.ok()?;
        answer.peers.into_iter().find(|p| p.node == seeder_id)
    })
    .await;
    assert!(
        oracle
            .client
            .relay_access(&seeder_id)
            .await
            .unwrap()
            .allowed
    );

    let get = |dir: &Path, out: &str| {
        node_lite(
            dir,
            &[
                "get",
                &content.to_string(),
                "--tracker",
                &oracle.url,
                "--out",
                tmp.path().join(out).to_str().unwrap(),
            ],
        )
    };
    // A stranger (no announcement, no credit) is not carried: it cannot reach the seeder.
    let stranger_id = node_id(&stranger_dir);
    let access = oracle.client.relay_access(&stranger_id).await.unwrap();
    assert!(!access.allowed, "{access:?}");
    let refused = get(&stranger_dir, "stranger.bin");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "a stranger downloaded through the relay: {stderr}"
    );
    assert!(
        stderr.contains("relay refused this node's key"),
        "the refusal is not named: {stderr}"
    );

    // Credit makes a downloader the network's: it is carried and downloads.
    let funded_id = node_id(&funded_dir);
    oracle
        .client
        .add_credit(
            &oracle.admin_token(),
            &dsi_api::oracle::CreditRequest {
                downloader: funded_id,
                amount: 1_000_000_000_000,
            },
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let served = poll(
        "the funded downloader downloads through the relay",
        async || {
            let output = get(&funded_dir, "funded.bin");
            if !output.status.success() {
                eprintln!("funded get: {}", String::from_utf8_lossy(&output.stderr));
            }
            output.status.success().then_some(())
        },
    )
    .await;
    eprintln!("funded downloader served after {:?}", started.elapsed());
    let () = served;
    assert_eq!(sha256_of(&tmp.path().join("funded.bin")), sha);
}
