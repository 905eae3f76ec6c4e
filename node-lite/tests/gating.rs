//! Receipt-gated serving under attack, against real node-lite servers on loopback: the
//! downloader header is signed, so nobody can run up debts in another key's name or get
//! chunks with made-up ids; fresh keys from one address share one bound; the ledger stays
//! bounded; and a downloader refused for owed receipts backs off and gives up on a peer
//! that keeps refusing instead of spinning.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use dsi_api::downloader::DownloaderHeader;
use dsi_api::node::NodeInfo;
use dsi_api::{DOWNLOADER_HEADER, ErrorBody, ErrorCode};
use dsi_protocol::manifest::MIN_CHUNK_SIZE;
use dsi_protocol::{ChunkId, ContentId, Manifest, NetworkId, SecretKey, Signature};
use node_lite::download::{DownloadOptions, Downloader};
use node_lite::peers::{StaticPeers, parse_peer_url};
use node_lite::server::metrics::sample;
use node_lite::server::{NodeState, serve};
use node_lite::{Config, DataDir, NodeError};
use reqwest::Url;
use tokio_util::sync::CancellationToken;

const CHUNK: u32 = MIN_CHUNK_SIZE;
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

struct Node {
    url: Url,
    state: Arc<NodeState>,
    stop: CancellationToken,
    _tmp: tempfile::TempDir,
    content: ContentId,
    manifest: Manifest,
    bytes: Vec<u8>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A seeder on 127.0.0.1:0 holding `chunks` chunks of random content.
async fn seeder(chunks: usize, configure: impl FnOnce(&mut Config)) -> Node {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path().join("node"));
    dir.init().unwrap();
    let mut config = Config::default();
    configure(&mut config);
    let state = Arc::new(NodeState::open(&dir, config).await.unwrap());
    let bytes: Vec<u8> = (0..chunks * CHUNK as usize)
        .map(|_| rand::random::<u8>())
        .collect();
    let file = tmp.path().join("input.bin");
    std::fs::write(&file, &bytes).unwrap();
    let report = state
        .store
        .add_file(&file, "input.bin", CHUNK, &mut |_| {})
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = parse_peer_url(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(serve(listener, state.clone(), stop.clone()));
    Node {
        url,
        state,
        stop,
        _tmp: tmp,
        content: report.content_id,
        manifest: report.manifest,
        bytes,
    }
}

fn downloader(key: SecretKey, configure: impl FnOnce(&mut DownloadOptions)) -> Downloader {
    let mut options = DownloadOptions::from_config(&Default::default());
    options.stall_timeout = Duration::from_secs(5);
    configure(&mut options);
    Downloader::new(key, NetworkId::default(), Default::default(), options)
}

/// `GET /v1/chunks/{chunk}` with `header` as the downloader header: (status, error code
/// if any, body length).
async fn ask(node: &Node, chunk: &ChunkId, header: &str) -> (u16, Option<ErrorCode>, usize) {
    let response = reqwest::Client::new()
        .get(node.url.join(&format!("v1/chunks/{chunk}")).unwrap())
        .header(DOWNLOADER_HEADER, header)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    let code = (status >= 400).then(|| ErrorBody::from_answer(status, &body).code);
    (status, code, body.len())
}

fn signed(node: &Node, key: &SecretKey, chunk: ChunkId) -> DownloaderHeader {
    DownloaderHeader::sign(
        key,
        &node.state.config.network,
        node.state.node_id,
        chunk,
        dsi_protocol::now_ms(),
    )
}

async fn chunks_served(node: &Node) -> u64 {
    let text = reqwest::get(node.url.join("metrics").unwrap())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    sample(&text, "dsi_node_chunks_served_total").unwrap()
}

/// (a) 100 unpaid requests naming a victim's key, unsigned, with a made-up signature or
/// with the attacker's own signature, are all refused; the victim owes nothing and its
/// real download completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_a_victims_name_are_refused_and_the_victim_still_downloads() {
    let node = seeder(80, |_| {}).await;
    let victim = SecretKey::generate(&mut rand::rngs::OsRng);
    let attacker = SecretKey::generate(&mut rand::rngs::OsRng);
    let v = victim.node_id();
    for i in 0..100 {
        let chunk = node.manifest.chunks[i % node.manifest.chunks.len()];
        let header = match i % 3 {
            0 => v.to_string(),
            1 => format!(
                "{v}.{}.{}",
                dsi_protocol::now_ms(),
                Signature([rand::random::<u8>(); 64])
            ),
            _ => DownloaderHeader {
                downloader: v,
                ..signed(&node, &attacker, chunk)
            }
            .to_string(),
        };
        let (status, code, _) = ask(&node, &chunk, &header).await;
        let expected = match i % 3 {
            0 => ErrorCode::BadDownloader,
            _ => ErrorCode::BadDownloaderSignature,
        };
        assert_eq!(code, Some(expected), "request {i}: {status}");
    }
    assert_eq!(node.state.ledger.owed(&v), 0);
    assert_eq!(chunks_served(&node).await, 0);
    let out = node._tmp.path().join("out");
    let report = downloader(victim, |_| {})
        .download(
            &node.content,
            &StaticPeers(vec![node.url.clone()]),
            &out,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), node.bytes);
    assert_eq!(report.peers[0].receipts_accepted, 80);
}

/// (b) A made-up id on every request, without a valid signature, gets no chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_ids_without_signatures_get_no_chunks() {
    let node = seeder(4, |_| {}).await;
    let chunk = node.manifest.chunks[0];
    for i in 0..100 {
        let id = SecretKey::generate(&mut rand::rngs::OsRng).node_id();
        let header = match i % 2 {
            0 => id.to_string(),
            _ => format!(
                "{id}.{}.{}",
                dsi_protocol::now_ms(),
                Signature([rand::random::<u8>(); 64])
            ),
        };
        let (status, _, _) = ask(&node, &chunk, &header).await;
        assert!((400..500).contains(&status), "{status}");
    }
    assert_eq!(chunks_served(&node).await, 0);
    assert_eq!(node.state.ledger.size().0, 0);
}

/// (c) Fresh, validly signed keys from one address together owe at most the per-address
/// bound; then the address is refused (`address_owes_receipts`) until it pays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_keys_from_one_address_share_its_bound() {
    let node = seeder(4, |c| {
        c.serve.max_owed_receipts = 4;
        c.serve.max_owed_receipts_per_address = 10;
    })
    .await;
    let mut served = 0;
    let mut refused = 0;
    for i in 0..100 {
        let key = SecretKey::generate(&mut rand::rngs::OsRng);
        let chunk = node.manifest.chunks[i % 4];
        match ask(&node, &chunk, &signed(&node, &key, chunk).to_string()).await {
            (200, None, len) => {
                assert_eq!(len, CHUNK as usize);
                served += 1;
            }
            (429, Some(ErrorCode::AddressOwesReceipts), _) => refused += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((served, refused), (10, 90));
    assert_eq!(node.state.ledger.owed_by_address(LOOPBACK), 10);
    assert_eq!(chunks_served(&node).await, 10);
}

/// (d) However many keys ask, the ledger holds at most `max_tracked_debts` debts (and as
/// many downloaders and addresses); the oldest are forgiven first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_stays_bounded_under_many_keys() {
    let node = seeder(4, |c| {
        c.serve.max_owed_receipts_per_address = 0;
        c.serve.max_tracked_debts = 50;
    })
    .await;
    for i in 0..300 {
        let key = SecretKey::generate(&mut rand::rngs::OsRng);
        let chunk = node.manifest.chunks[i % 4];
        let (status, _, _) = ask(&node, &chunk, &signed(&node, &key, chunk).to_string()).await;
        assert_eq!(status, 200);
        let (debts, downloaders, addresses, records) = node.state.ledger.size();
        assert!(
            debts <= 50 && downloaders <= 50 && addresses <= 1,
            "{debts}"
        );
        assert!(records <= 2 * 50 + 1024 + 1);
    }
    assert_eq!(node.state.ledger.size().0, 50);
    assert_eq!(node.state.ledger.forgiven_early(), 250);
}

/// A peer that answers every chunk request with 429 `receipts_owed`, counting them.
async fn refusing_peer(
    manifest: &Manifest,
    max_owed_receipts: Option<u32>,
) -> (Url, Arc<AtomicUsize>, CancellationToken) {
    let manifest_bytes = manifest.to_bytes();
    let count = manifest.chunk_count();
    let info = NodeInfo {
        node_id: SecretKey::generate(&mut rand::rngs::OsRng).node_id(),
        network: NetworkId::default(),
        epoch: Default::default(),
        version: "refusing".into(),
        tracker: None,
        max_owed_receipts,
    };
    let mut full = node_lite::store::Bitfield::new(count);
    for i in 0..count {
        full.set(i, true);
    }
    let have = serde_json::json!({ "chunks": count, "held": full.to_hex() });
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
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
            get(move || async move {
                counter.fetch_add(1, Ordering::SeqCst);
                (
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    axum::Json(ErrorBody {
                        code: ErrorCode::ReceiptsOwed,
                        message: "pay first".into(),
                    }),
                )
            }),
        )
        .route(
            "/v1/receipts",
            axum::routing::post(|| async {
                (
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(ErrorBody {
                        code: ErrorCode::Internal,
                        message: "no".into(),
                    }),
                )
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
    (url, requests, stop)
}

/// A peer that always refuses for owed receipts is given up on after
/// `max_peer_refusals` refusals (one request at a time after the first, with growing
/// pauses): the download finishes from another peer, or fails naming the refusals if the
/// refusing peer was the only one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_keeps_refusing_is_dropped_after_bounded_requests() {
    let honest = seeder(24, |_| {}).await;
    let (url, requests, _stop) = refusing_peer(&honest.manifest, None).await;
    let concurrency = 8;
    let refusals = 4;
    // The first wave of requests, then one probe per pause.
    let bound = concurrency + refusals as usize - 1;
    let configure = |o: &mut DownloadOptions| {
        o.per_peer_concurrency = concurrency;
        o.max_peer_refusals = refusals;
    };
    // Alone: the download fails with a clear error, after a bounded number of requests.
    let out = honest._tmp.path().join("alone");
    let started = std::time::Instant::now();
    let error = downloader(SecretKey::generate(&mut rand::rngs::OsRng), configure)
        .download(
            &honest.content,
            &StaticPeers(vec![url.clone()]),
            &out,
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    let asked = requests.swap(0, Ordering::SeqCst);
    assert!(
        matches!(&error, NodeError::Incomplete { detail, .. } if detail.contains("refused 4 times in a row")),
        "{error}"
    );
    assert!(asked <= bound, "{asked} requests");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "pauses grow: {:?}",
        started.elapsed()
    );
    // With an honest peer beside it: the download completes from the honest one.
    let out = honest._tmp.path().join("both");
    let report = downloader(SecretKey::generate(&mut rand::rngs::OsRng), configure)
        .download(
            &honest.content,
            &StaticPeers(vec![url, honest.url.clone()]),
            &out,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), honest.bytes);
    let asked = requests.load(Ordering::SeqCst);
    assert!(asked <= bound, "{asked} requests");
    assert_eq!(report.peers[1].receipts_accepted, 24);
}

/// An honest downloader against a seeder that lets it owe only 2 receipts, asking 8 at a
/// time: it is refused often, pays, and carries on; the seeder is never dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_downloader_pays_its_way_through_a_tight_seeder() {
    let node = seeder(40, |c| c.serve.max_owed_receipts = 2).await;
    let out = node._tmp.path().join("out");
    let report = downloader(SecretKey::generate(&mut rand::rngs::OsRng), |o| {
        o.per_peer_concurrency = 8;
    })
    .download(
        &node.content,
        &StaticPeers(vec![node.url.clone()]),
        &out,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), node.bytes);
    assert_eq!(report.peers[0].dropped, None);
    assert_eq!(report.peers[0].receipts_accepted, 40);
    // The seeder names its limit (`GET /v1/node`) and the downloader keeps its requests
    // in flight plus unanswered receipts within it: never refused, so it never pauses.
    assert_eq!(
        node.state
            .metrics
            .requests_refused
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "refusals"
    );
}

#[tokio::test]
async fn a_peer_naming_a_zero_receipt_limit_is_still_asked_and_cannot_hang_the_download() {
    // Requests in flight plus unanswered receipts stay within a peer's named limit; a peer
    // naming 0 (nothing could ever be asked, no answer could ever come) is asked one chunk
    // at a time, and its refusals end the download as any refusing peer's do.
    let honest = seeder(4, |_| {}).await;
    let (url, requests, _stop) = refusing_peer(&honest.manifest, Some(0)).await;
    let out = honest._tmp.path().join("zero");
    let (peers, token) = (StaticPeers(vec![url]), CancellationToken::new());
    let downloader = downloader(SecretKey::generate(&mut rand::rngs::OsRng), |o| {
        o.max_peer_refusals = 3;
    });
    let download = downloader.download(&honest.content, &peers, &out, &token);
    let error = tokio::time::timeout(Duration::from_secs(30), download)
        .await
        .expect("the download ends")
        .unwrap_err();
    assert!(
        matches!(&error, NodeError::Incomplete { detail, .. } if detail.contains("refused 3 times in a row")),
        "{error}"
    );
    assert!(requests.load(Ordering::SeqCst) >= 3);
}
