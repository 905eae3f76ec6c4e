//! The downloader against real node-lite servers on loopback (in this process) and against
//! misbehaving fake peers: bad bytes, stalls, wrong manifests, partial holders, resume,
//! repair, and the interesting sizes.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use dsi_api::node::NodeInfo;
use dsi_protocol::manifest::MIN_CHUNK_SIZE;
use dsi_protocol::{ChunkId, ContentId, Manifest, NetworkId, SecretKey};
use node_lite::config::VerifyMode;
use node_lite::download::{DownloadOptions, Downloader, PART_SUFFIX, sha256_file};
use node_lite::peers::{StaticPeers, parse_peer_url};
use node_lite::server::{NodeState, serve};
use node_lite::store::ChunkStore;
use node_lite::{Config, DataDir, NodeError};
use reqwest::Url;
use tokio_util::sync::CancellationToken;

const CHUNK: u32 = MIN_CHUNK_SIZE;

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut out = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut out);
    out
}

struct Node {
    url: Url,
    state: Arc<NodeState>,
    stop: CancellationToken,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start_node(
    root: &std::path::Path,
    name: &str,
    configure: impl FnOnce(&mut Config),
) -> Node {
    let dir = DataDir::new(root.join(name));
    dir.init().unwrap();
    let mut config = Config::default();
    configure(&mut config);
    let state = Arc::new(NodeState::open(&dir, config).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = parse_peer_url(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(serve(listener, state.clone(), stop.clone()));
    Node { url, state, stop }
}

fn add(node: &Node, root: &std::path::Path, bytes: &[u8]) -> (ContentId, Manifest) {
    let file = root.join(format!("input-{}", rand::random::<u32>()));
    std::fs::write(&file, bytes).unwrap();
    let report = node
        .state
        .store
        .add_file(&file, "input.bin", CHUNK, &mut |_| {})
        .unwrap();
    (report.content_id, report.manifest)
}

fn downloader(stall: Duration) -> Downloader {
    downloader_with(
        stall,
        DownloadOptions::from_config(&Default::default()).per_peer_concurrency,
    )
}

fn downloader_with(stall: Duration, per_peer_concurrency: usize) -> Downloader {
    let mut options = DownloadOptions::from_config(&Default::default());
    options.stall_timeout = stall;
    options.per_peer_concurrency = per_peer_concurrency;
    Downloader::new(
        SecretKey::generate(&mut rand::rngs::OsRng),
        NetworkId::default(),
        Default::default(),
        options,
    )
}

/// A peer that answers node/manifest/have from a real manifest, then misbehaves on chunks.
async fn fake_peer(
    manifest_bytes: Vec<u8>,
    chunk_behaviour: &'static str,
) -> (Url, CancellationToken) {
    let count = Manifest::from_bytes(&manifest_bytes)
        .map(|m| m.chunk_count())
        .unwrap_or(1);
    let info = NodeInfo {
        node_id: SecretKey::generate(&mut rand::rngs::OsRng).node_id(),
        network: NetworkId::default(),
        epoch: Default::default(),
        version: "fake".into(),
        tracker: None,
        max_owed_receipts: None,
    };
    let mut full = node_lite::store::Bitfield::new(count);
    for i in 0..count {
        full.set(i, true);
    }
    let have = serde_json::json!({ "chunks": count, "held": full.to_hex() });
    let app = Router::new()
        .route("/v1/node", get(move || async move { axum::Json(info) }))
        .route(
            "/v1/content/{id}/manifest",
            get(move || async move { manifest_bytes }),
        )
        .route(
            "/v1/content/{id}/have",
            get(move || async move { axum::Json(have) }),
        )
        .route(
            "/v1/chunks/{id}",
            get(move |Path(_id): Path<String>| async move {
                match chunk_behaviour {
                    "stall" => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        Vec::new()
                    }
                    _ => vec![0u8; CHUNK as usize],
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = parse_peer_url(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(token.cancelled_owned())
            .await
            .unwrap();
    });
    (url, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interesting_sizes_arrive_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let a = start_node(tmp.path(), "a", |_| {}).await;
    let b = start_node(tmp.path(), "b", |_| {}).await;
    let c = CHUNK as usize;
    for (i, size) in [0, 1, c - 1, c, c + 1, 37 * c + 11].into_iter().enumerate() {
        let bytes = random_bytes(size, i as u64);
        let (content, _) = add(&a, tmp.path(), &bytes);
        add(&b, tmp.path(), &bytes);
        let out = tmp.path().join(format!("out-{size}"));
        let report = downloader(Duration::from_secs(5))
            .download(
                &content,
                &StaticPeers(vec![a.url.clone(), b.url.clone()]),
                &out,
                &CancellationToken::new(),
            )
            .await
            .unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), bytes, "size {size}");
        assert_eq!(report.chunks_fetched, size.div_ceil(c));
        assert_eq!(report.sha256, Some(sha256_file(&out).await.unwrap()));
        let receipts: u64 = report.peers.iter().map(|p| p.receipts_accepted).sum();
        assert_eq!(
            receipts,
            report.peers.iter().map(|p| p.chunks as u64).sum::<u64>()
        );
        assert!(!tmp.path().join(format!("out-{size}{PART_SUFFIX}")).exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_bad_bytes_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let honest = start_node(tmp.path(), "honest", |_| {}).await;
    let liar = start_node(tmp.path(), "liar", |c| c.serve.verify = VerifyMode::Never).await;
    let bytes = random_bytes(40 * CHUNK as usize, 1);
    let (content, manifest) = add(&honest, tmp.path(), &bytes);
    add(&liar, tmp.path(), &bytes);
    for id in &manifest.chunks {
        std::fs::write(liar.state.store.chunk_path(id), vec![0xAA; CHUNK as usize]).unwrap();
    }
    let out = tmp.path().join("out");
    let report = downloader(Duration::from_secs(5))
        .download(
            &content,
            &StaticPeers(vec![liar.url.clone(), honest.url.clone()]),
            &out,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    let liar_report = report
        .peers
        .iter()
        .find(|p| p.url == liar.url.as_str())
        .unwrap();
    assert!(
        liar_report
            .dropped
            .as_deref()
            .unwrap_or("")
            .contains("bad bytes"),
        "{liar_report:?}"
    );
    assert_eq!(liar_report.receipts_sent, 0, "no receipt for bad bytes");
    assert_eq!(liar.state.receipts.count().await.unwrap(), 0);
    assert_eq!(honest.state.receipts.count().await.unwrap(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalling_peer_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    // A capped honest peer (40 chunks at 256 KiB/s: about 2.5 s) keeps bytes flowing, so it
    // is not taken for stalled, while the staller's requests time out long before the
    // honest peer could take over its chunks in endgame.
    let honest = start_node(tmp.path(), "honest", |c| {
        c.serve.max_upload_bytes_per_sec = 256 * 1024
    })
    .await;
    let bytes = random_bytes(40 * CHUNK as usize, 2);
    let (content, _) = add(&honest, tmp.path(), &bytes);
    let manifest_bytes = honest
        .state
        .store
        .manifest_bytes(&content)
        .unwrap()
        .unwrap();
    let (staller, _stop) = fake_peer(manifest_bytes, "stall").await;
    let out = tmp.path().join("out");
    // 4 streams share the cap: each gets a 16 KiB piece about every 250 ms, well inside
    // the 1 s stall timeout, while the staller sends nothing at all.
    let report = downloader_with(Duration::from_secs(1), 4)
        .download(
            &content,
            &StaticPeers(vec![staller.clone(), honest.url.clone()]),
            &out,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    let stalled = report
        .peers
        .iter()
        .find(|p| p.url == staller.as_str())
        .unwrap();
    assert!(
        stalled.dropped.as_deref().unwrap_or("").contains("stalled"),
        "{stalled:?}"
    );
    let capped = report
        .peers
        .iter()
        .find(|p| p.url == honest.url.as_str())
        .unwrap();
    assert_eq!(
        capped.dropped, None,
        "a capped but flowing peer is not a staller"
    );
    assert!(
        report.elapsed_ms >= 1500,
        "the cap was applied: {} ms",
        report.elapsed_ms
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_manifest_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let honest = start_node(tmp.path(), "honest", |_| {}).await;
    let bytes = random_bytes(3 * CHUNK as usize, 3);
    let (content, _) = add(&honest, tmp.path(), &bytes);
    let other = Manifest::new("other", 1, CHUNK, vec![ChunkId([1; 32])]).unwrap();
    let (forger, _stop) = fake_peer(other.to_bytes(), "zeros").await;
    // Only the forger: a clear integrity error.
    let err = downloader(Duration::from_secs(2))
        .download(
            &content,
            &StaticPeers(vec![forger.clone()]),
            &tmp.path().join("x"),
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, NodeError::ManifestMismatch { .. }), "{err}");
    assert_eq!(err.exit(), dsi_api::exit::Exit::Integrity);
    // With an honest peer too: the forger is dropped and the download completes.
    let out = tmp.path().join("out");
    let report = downloader(Duration::from_secs(2))
        .download(
            &content,
            &StaticPeers(vec![forger.clone(), honest.url.clone()]),
            &out,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    assert!(
        report
            .peers
            .iter()
            .any(|p| p.url == forger.as_str() && p.dropped.is_some())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_holders_combine_and_missing_chunks_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let a = start_node(tmp.path(), "a", |_| {}).await;
    let b = start_node(tmp.path(), "b", |_| {}).await;
    let bytes = random_bytes(10 * CHUNK as usize, 4);
    let (content, manifest) = add(&a, tmp.path(), &bytes);
    add(&b, tmp.path(), &bytes);
    // a lacks the even chunks, b the odd ones except chunk 1.
    for (i, id) in manifest.chunks.iter().enumerate() {
        let holder = if i % 2 == 0 { &a } else { &b };
        if i != 1 {
            std::fs::remove_file(holder.state.store.chunk_path(id)).unwrap();
        }
    }
    let out = tmp.path().join("out");
    let report = downloader(Duration::from_secs(2))
        .download(
            &content,
            &StaticPeers(vec![a.url.clone(), b.url.clone()]),
            &out,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    assert_eq!(report.chunks_fetched, 10);
    assert!(
        report.peers.iter().map(|p| p.chunks).sum::<usize>() >= 10,
        "endgame copies are counted per peer"
    );
    // With a alone, half the chunks cannot be had.
    let err = downloader(Duration::from_secs(2))
        .download(
            &content,
            &StaticPeers(vec![a.url.clone()]),
            &tmp.path().join("y"),
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    match err {
        NodeError::Incomplete { missing, total, .. } => assert_eq!((missing, total), (5, 10)),
        other => panic!("{other}"),
    }
    assert!(
        tmp.path().join(format!("y{PART_SUFFIX}")).exists(),
        "partial kept for resuming"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_download_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    // 16 KiB per 50 ms: 60 chunks take about 3 s.
    let slow = start_node(tmp.path(), "slow", |c| {
        c.serve.max_upload_bytes_per_sec = 320 * 1024
    })
    .await;
    let bytes = random_bytes(60 * CHUNK as usize, 5);
    let (content, _) = add(&slow, tmp.path(), &bytes);
    let out = tmp.path().join("out");
    let token = CancellationToken::new();
    let stopper = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        stopper.cancel();
    });
    let peers = StaticPeers(vec![slow.url.clone()]);
    let err = downloader(Duration::from_secs(5))
        .download(&content, &peers, &out, &token)
        .await
        .unwrap_err();
    assert!(matches!(err, NodeError::Interrupted), "{err}");
    assert!(!out.exists());
    let report = downloader(Duration::from_secs(5))
        .download(&content, &peers, &out, &CancellationToken::new())
        .await
        .unwrap();
    assert!(report.chunks_resumed > 0, "{report:?}");
    assert_eq!(report.chunks_resumed + report.chunks_fetched, 60);
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    // Running it again finds the finished file; a different file in the way is refused.
    let again = downloader(Duration::from_secs(5))
        .download(&content, &peers, &out, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(again.chunks_fetched, 0);
    std::fs::write(&out, b"something else").unwrap();
    let err = downloader(Duration::from_secs(5))
        .download(&content, &peers, &out, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, NodeError::OutputExists { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantined_chunks_are_repaired_from_peers() {
    let tmp = tempfile::tempdir().unwrap();
    let good = start_node(tmp.path(), "good", |_| {}).await;
    let bytes = random_bytes(6 * CHUNK as usize, 6);
    let (content, manifest) = add(&good, tmp.path(), &bytes);
    let local_dir = tmp.path().join("local");
    DataDir::new(&local_dir).init().unwrap();
    let store = ChunkStore::open(&local_dir).unwrap();
    let file = tmp.path().join("copy");
    std::fs::write(&file, &bytes).unwrap();
    store
        .add_file(&file, "input.bin", CHUNK, &mut |_| {})
        .unwrap();
    std::fs::write(store.chunk_path(&manifest.chunks[2]), b"rot").unwrap();
    let report = store.verify_all(&mut |_| {}).unwrap();
    assert_eq!(report.corrupt, vec![manifest.chunks[2]]);
    let (fetched, _) = downloader(Duration::from_secs(2))
        .repair(
            &store,
            &content,
            &StaticPeers(vec![good.url.clone()]),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(fetched, 1);
    let after = store.verify_all(&mut |_| {}).unwrap();
    assert!(after.corrupt.is_empty() && after.missing.is_empty());
}
