//! The iroh transport in this process: real QUIC endpoints on loopback (direct paths, no
//! relay), the real node routes behind them, and the real downloader dialing by node id.
//! (`tests/tests/iroh.rs` runs processes through a real relay.)

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dsi_protocol::manifest::MIN_CHUNK_SIZE;
use dsi_protocol::{NetworkId, NodeId, SecretKey};
use node_lite::config::IrohConfig;
use node_lite::download::{DownloadOptions, Downloader};
use node_lite::peers::StaticPeers;
use node_lite::server::{NodeState, peer_routes};
use node_lite::{Config, DataDir, NodeError, transport};
use tokio_util::sync::CancellationToken;

fn loopback() -> IrohConfig {
    IrohConfig {
        relays: Vec::new(),
        bind: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        ..IrohConfig::default()
    }
}

/// A node whose routes are served over iroh by an endpoint keyed `endpoint_key` (its own
/// key for an honest node).
struct IrohNode {
    state: Arc<NodeState>,
    endpoint_id: NodeId,
    addresses: Vec<SocketAddr>,
    router: iroh::protocol::Router,
}

async fn start(
    root: &std::path::Path,
    name: &str,
    endpoint_key: Option<SecretKey>,
    max_connections: usize,
) -> IrohNode {
    let dir = DataDir::new(root.join(name));
    dir.init().unwrap();
    let key = endpoint_key.unwrap_or_else(|| dir.key().unwrap());
    let state = Arc::new(NodeState::open(&dir, Config::default()).await.unwrap());
    let endpoint = transport::bind(&key, &loopback(), true).await.unwrap();
    let addresses = endpoint.addr().ip_addrs().copied().collect();
    let router = iroh::protocol::Router::builder(endpoint)
        .accept(
            transport::ALPN,
            transport::PeerService::new(peer_routes(state.clone()), max_connections),
        )
        .spawn();
    IrohNode {
        state,
        endpoint_id: key.node_id(),
        addresses,
        router,
    }
}

fn add(node: &IrohNode, root: &std::path::Path, len: usize) -> dsi_protocol::ContentId {
    let file = root.join(format!("input-{}", rand::random::<u32>()));
    let mut bytes = vec![0u8; len];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    std::fs::write(&file, bytes).unwrap();
    node.state
        .store
        .add_file(&file, "input.bin", MIN_CHUNK_SIZE, &mut |_| {})
        .unwrap()
        .content_id
}

fn downloader_for(nodes: &[&IrohNode]) -> (Downloader, transport::Dialer) {
    let key = SecretKey::generate(&mut rand::rngs::OsRng);
    let dialer = transport::Dialer::new(key.clone(), &loopback()).unwrap();
    for node in nodes {
        dialer.add_direct_addresses(node.endpoint_id, node.addresses.clone());
    }
    let mut options = DownloadOptions::from_config(&Default::default());
    options.stall_timeout = Duration::from_secs(5);
    let downloader = Downloader::new(key, NetworkId::default(), Default::default(), options)
        .with_iroh(dialer.clone());
    (downloader, dialer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_over_iroh_pays_the_key_that_answered() {
    let tmp = tempfile::tempdir().unwrap();
    let seeder = start(tmp.path(), "seeder", None, 16).await;
    let content = add(&seeder, tmp.path(), 5 * MIN_CHUNK_SIZE as usize + 77);
    let (downloader, dialer) = downloader_for(&[&seeder]);
    let out = tmp.path().join("out.bin");
    let report = downloader
        .download(
            &content,
            &StaticPeers(vec![transport::peer_url(&seeder.endpoint_id)]),
            &out,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    dialer.close().await;
    assert_eq!(report.chunks_fetched, 6);
    assert_eq!(report.peers[0].node_id, Some(seeder.endpoint_id));
    assert_eq!(report.peers[0].receipts_accepted, 6);
    assert_eq!(seeder.state.receipts.count().await.unwrap(), 6);
    seeder.router.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_answering_as_another_node_is_dropped_before_any_receipt() {
    // The endpoint proves key A; the node behind it answers as node B, so receipts signed
    // for "this peer" would pay B. The downloader must refuse it.
    let tmp = tempfile::tempdir().unwrap();
    let impostor_key = SecretKey::generate(&mut rand::rngs::OsRng);
    let liar = start(tmp.path(), "liar", Some(impostor_key), 16).await;
    assert_ne!(liar.endpoint_id, liar.state.node_id);
    let content = add(&liar, tmp.path(), 3 * MIN_CHUNK_SIZE as usize);
    let (downloader, dialer) = downloader_for(&[&liar]);
    let result = downloader
        .download(
            &content,
            &StaticPeers(vec![transport::peer_url(&liar.endpoint_id)]),
            &tmp.path().join("out.bin"),
            &CancellationToken::new(),
        )
        .await;
    dialer.close().await;
    match result {
        Err(NodeError::NoPeers { detail, .. }) => {
            assert!(detail.contains("answers as another node"), "{detail}");
        }
        other => panic!("expected no usable peer, got {other:?}"),
    }
    assert_eq!(liar.state.receipts.count().await.unwrap(), 0);
    liar.router.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_past_max_connections_are_turned_away_and_the_first_is_served() {
    let tmp = tempfile::tempdir().unwrap();
    let seeder = start(tmp.path(), "seeder", None, 1).await;
    let content = add(&seeder, tmp.path(), 2 * MIN_CHUNK_SIZE as usize);
    let peers = StaticPeers(vec![transport::peer_url(&seeder.endpoint_id)]);

    // The first peer holds its connection open (its dialer is not closed).
    let (first, first_dialer) = downloader_for(&[&seeder]);
    first
        .download(
            &content,
            &peers,
            &tmp.path().join("first.bin"),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    let (second, second_dialer) = downloader_for(&[&seeder]);
    let refused = second
        .download(
            &content,
            &peers,
            &tmp.path().join("second.bin"),
            &CancellationToken::new(),
        )
        .await;
    assert!(
        matches!(refused, Err(NodeError::NoPeers { .. })),
        "{refused:?}"
    );
    // Once the first leaves, the next is served.
    first_dialer.close().await;
    second_dialer.close().await;
    let (third, third_dialer) = downloader_for(&[&seeder]);
    let mut served = None;
    for _ in 0..50 {
        let out = tmp.path().join("third.bin");
        match third
            .download(&content, &peers, &out, &CancellationToken::new())
            .await
        {
            Ok(report) => {
                served = Some(report);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    third_dialer.close().await;
    assert_eq!(
        served.expect("served once the slot is free").chunks_fetched,
        2
    );
    seeder.router.shutdown().await.unwrap();
}
