//! The iroh transport in this process: real QUIC endpoints on loopback (direct paths, and
//! a real `dsi-relay` for peers without one), the real node routes behind them, and the
//! real downloader dialing by node id. (`tests/tests/iroh.rs` runs processes through a
//! relay.)

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dsi_api::downloader::DownloaderHeader;
use dsi_protocol::manifest::{DEFAULT_CHUNK_SIZE, MIN_CHUNK_SIZE};
use dsi_protocol::{ChunkId, NetworkId, NodeId, SecretKey};
use iroh::endpoint::Connection;
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
    start_with(root, name, endpoint_key, |routes| {
        transport::PeerService::new(routes, max_connections)
    })
    .await
}

/// A node served by the `PeerService` that `service` makes from its routes.
async fn start_with(
    root: &std::path::Path,
    name: &str,
    endpoint_key: Option<SecretKey>,
    service: impl FnOnce(axum::Router) -> transport::PeerService,
) -> IrohNode {
    start_on(root, name, endpoint_key, &loopback(), service).await
}

/// A node whose endpoint has the relays and sockets of `iroh`.
async fn start_on(
    root: &std::path::Path,
    name: &str,
    endpoint_key: Option<SecretKey>,
    iroh: &IrohConfig,
    service: impl FnOnce(axum::Router) -> transport::PeerService,
) -> IrohNode {
    let dir = DataDir::new(root.join(name));
    dir.init().unwrap();
    let key = endpoint_key.unwrap_or_else(|| dir.key().unwrap());
    let state = Arc::new(NodeState::open(&dir, Config::default()).await.unwrap());
    let endpoint = transport::bind(&key, iroh, true).await.unwrap();
    let addresses = endpoint.addr().ip_addrs().copied().collect();
    let service = service(peer_routes(state.clone()));
    let router = iroh::protocol::Router::builder(endpoint)
        .incoming_filter(service.incoming_filter())
        .accept(transport::ALPN, service)
        .spawn();
    IrohNode {
        state,
        endpoint_id: key.node_id(),
        addresses,
        router,
    }
}

/// A raw QUIC connection to `node` on the DSI ALPN from a fresh endpoint keyed `key`.
async fn connect_raw(node: &IrohNode, key: &SecretKey) -> (iroh::Endpoint, Connection) {
    let endpoint = transport::bind(key, &loopback(), false).await.unwrap();
    let connection = endpoint
        .connect(address_of(node), transport::ALPN)
        .await
        .unwrap();
    (endpoint, connection)
}

/// A fresh key dialing `node` on loopback: its endpoint, and whether the node refused it
/// (no connection, or no answer to node info).
async fn newcomer_refused(node: &IrohNode) -> (iroh::Endpoint, bool) {
    let key = SecretKey::generate(&mut rand::rngs::OsRng);
    let endpoint = transport::bind(&key, &loopback(), false).await.unwrap();
    let refused = match endpoint.connect(address_of(node), transport::ALPN).await {
        Err(_) => true,
        Ok(connection) => !node_info(&connection).await,
    };
    (endpoint, refused)
}

/// A relay on loopback and the config of a seeder using it beside its loopback socket.
async fn relay_and_seeder_config() -> (dsi_relay::Relay, IrohConfig) {
    let relay = dsi_relay::Relay::start(&dsi_relay::Settings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..dsi_relay::Settings::default()
    })
    .await
    .unwrap();
    let config = IrohConfig {
        relays: vec![relay.url()],
        ..loopback()
    };
    (relay, config)
}

/// A connection to `node` through `relay` only, from a fresh key with no socket of its
/// own (no direct path can ever be found): what a peer behind a strict NAT looks like.
async fn connect_relayed(
    node: &IrohNode,
    relay: &dsi_relay::Relay,
) -> (iroh::Endpoint, Connection) {
    connect_relayed_as(node, relay, &SecretKey::generate(&mut rand::rngs::OsRng)).await
}

/// [`connect_relayed`] from `key`.
async fn connect_relayed_as(
    node: &IrohNode,
    relay: &dsi_relay::Relay,
    key: &SecretKey,
) -> (iroh::Endpoint, Connection) {
    let relay_only = IrohConfig {
        relays: vec![relay.url()],
        bind: Vec::new(),
        ..IrohConfig::default()
    };
    let endpoint = transport::bind(key, &relay_only, false).await.unwrap();
    let id = iroh::EndpointId::from_bytes(&node.endpoint_id.0).unwrap();
    let address = iroh::EndpointAddr::new(id).with_relay_url(relay.url().parse().unwrap());
    let connection = endpoint.connect(address, transport::ALPN).await.unwrap();
    assert!(transport::direct_path(&connection).is_none());
    (endpoint, connection)
}

/// Where `node` is dialed: its id and loopback addresses.
fn address_of(node: &IrohNode) -> iroh::EndpointAddr {
    let id = iroh::EndpointId::from_bytes(&node.endpoint_id.0).unwrap();
    node.addresses
        .iter()
        .fold(iroh::EndpointAddr::new(id), |address, ip| {
            address.with_ip_addr(*ip)
        })
}

/// Whether `connection` is closed by the seeder within a few seconds.
async fn closed_soon(connection: &Connection) -> bool {
    tokio::time::timeout(Duration::from_secs(5), connection.closed())
        .await
        .is_ok()
}

/// `GET /v1/node` on a new stream of `connection`: whether the seeder answered it.
async fn node_info(connection: &Connection) -> bool {
    ask(connection, "node info", "/v1/node", "").await
}

/// `GET /v1/chunks/{chunk}` of `node`, signed by `key`, on a new stream of `connection`:
/// whether the seeder served it.
async fn fetch_chunk(
    connection: &Connection,
    key: &SecretKey,
    node: &NodeState,
    chunk: ChunkId,
) -> bool {
    let header = DownloaderHeader::sign(
        key,
        &node.config.network,
        node.node_id,
        chunk,
        dsi_protocol::now_ms(),
    );
    let header = format!("{}: {header}\r\n", node_lite::DOWNLOADER_HEADER);
    ask(connection, "chunk", &format!("/v1/chunks/{chunk}"), &header).await
}

/// A GET of `path` with the extra `headers` on a new stream of `connection`: whether the
/// seeder answered `200` (`what` names it in what is printed otherwise).
async fn ask(connection: &Connection, what: &str, path: &str, headers: &str) -> bool {
    let (mut send, mut recv) = match connection.open_bi().await {
        Ok(stream) => stream,
        Err(e) => {
            eprintln!("{what}: opening a stream: {e}");
            return false;
        }
    };
    let request =
        format!("GET {path} HTTP/1.1\r\nhost: peer\r\n{headers}connection: close\r\n\r\n");
    if let Err(e) = send.write_all(request.as_bytes()).await {
        eprintln!("{what}: writing: {e}");
        return false;
    }
    if let Err(e) = send.finish() {
        eprintln!("{what}: finishing: {e}");
        return false;
    }
    match tokio::time::timeout(Duration::from_secs(5), recv.read_to_end(1 << 20)).await {
        Ok(Ok(answer)) => {
            let ok = answer.starts_with(b"HTTP/1.1 200");
            if !ok {
                eprintln!("{what}: {}", String::from_utf8_lossy(&answer));
            }
            ok
        }
        other => {
            eprintln!("{what}: {other:?}");
            false
        }
    }
}

/// A chunk of 256 KiB added to `node` (more than [`transport::FRESH_BYTES`]).
fn held_chunk(node: &IrohNode, root: &std::path::Path) -> ChunkId {
    let content = add_chunked(node, root, DEFAULT_CHUNK_SIZE as usize, DEFAULT_CHUNK_SIZE);
    node.state.store.manifest(&content).unwrap().unwrap().chunks[0]
}

fn add(node: &IrohNode, root: &std::path::Path, len: usize) -> dsi_protocol::ContentId {
    add_chunked(node, root, len, MIN_CHUNK_SIZE)
}

/// `len` random bytes added to `node` in chunks of `chunk_size`.
fn add_chunked(
    node: &IrohNode,
    root: &std::path::Path,
    len: usize,
    chunk_size: u32,
) -> dsi_protocol::ContentId {
    let file = root.join(format!("input-{}", rand::random::<u32>()));
    let mut bytes = vec![0u8; len];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    std::fs::write(&file, bytes).unwrap();
    node.state
        .store
        .add_file(&file, "input.bin", chunk_size, &mut |_| {})
        .unwrap()
        .content_id
}

fn downloader_for(nodes: &[&IrohNode]) -> (Downloader, transport::Dialer) {
    let key = SecretKey::generate(&mut rand::rngs::OsRng);
    let dialer = transport::Dialer::new(key.clone(), &loopback().endpoint()).unwrap();
    for node in nodes {
        dialer.add_direct_addresses(node.endpoint_id, node.addresses.clone());
    }
    let mut options = DownloadOptions::from_config(&Default::default());
    options.stall_timeout = Duration::from_secs(5);
    let downloader = Downloader::new(key, NetworkId::default(), Default::default(), options)
        .with_iroh(dialer.clone());
    (downloader, dialer)
}

/// Downloads `content` from `peers` into `out` with `downloader`.
async fn fetch(
    downloader: &Downloader,
    content: &dsi_protocol::ContentId,
    peers: &StaticPeers,
    out: &std::path::Path,
) -> Result<node_lite::download::DownloadReport, NodeError> {
    downloader
        .download(content, peers, out, &CancellationToken::new())
        .await
}

/// A downloader new to `seeder` fetches `content` from it alone into DIR/out.bin; its
/// dialer comes back to be closed.
async fn newcomer_fetches(
    seeder: &IrohNode,
    content: &dsi_protocol::ContentId,
    dir: &std::path::Path,
) -> (
    Result<node_lite::download::DownloadReport, NodeError>,
    transport::Dialer,
) {
    let (newcomer, dialer) = downloader_for(&[seeder]);
    let peers = StaticPeers(vec![transport::peer_url(&seeder.endpoint_id)]);
    let report = fetch(&newcomer, content, &peers, &dir.join("out.bin")).await;
    (report, dialer)
}

/// A seeder with one iroh slot, closing idle peers after `idle` and evicting for a
/// newcomer after `evict_after`, holding a two-chunk content.
async fn one_slot_seeder(
    root: &std::path::Path,
    idle: Duration,
    evict_after: Duration,
) -> (IrohNode, dsi_protocol::ContentId) {
    let seeder = start_with(root, "seeder", None, |routes| {
        transport::PeerService::new(routes, 1).timeouts(idle, evict_after)
    })
    .await;
    let content = add(&seeder, root, 2 * MIN_CHUNK_SIZE as usize);
    (seeder, content)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_over_iroh_pays_the_key_that_answered() {
    let tmp = tempfile::tempdir().unwrap();
    let seeder = start(tmp.path(), "seeder", None, 16).await;
    let content = add(&seeder, tmp.path(), 5 * MIN_CHUNK_SIZE as usize + 77);
    let (downloader, dialer) = downloader_for(&[&seeder]);
    let out = tmp.path().join("out.bin");
    let report = fetch(
        &downloader,
        &content,
        &StaticPeers(vec![transport::peer_url(&seeder.endpoint_id)]),
        &out,
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
    let result = fetch(
        &downloader,
        &content,
        &StaticPeers(vec![transport::peer_url(&liar.endpoint_id)]),
        &tmp.path().join("out.bin"),
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
    fetch(&first, &content, &peers, &tmp.path().join("first.bin"))
        .await
        .unwrap();
    let (second, second_dialer) = downloader_for(&[&seeder]);
    let refused = fetch(&second, &content, &peers, &tmp.path().join("second.bin")).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_peer_loses_its_slot_to_the_next() {
    // One slot; the first peer keeps its connection open but sends nothing more. iroh
    // keeps connections alive, so without the idle close it would hold the slot for ever.
    let tmp = tempfile::tempdir().unwrap();
    let (seeder, content) = one_slot_seeder(
        tmp.path(),
        Duration::from_millis(300),
        Duration::from_secs(600),
    )
    .await;
    let peers = StaticPeers(vec![transport::peer_url(&seeder.endpoint_id)]);
    let (first, first_dialer) = downloader_for(&[&seeder]);
    fetch(&first, &content, &peers, &tmp.path().join("first.bin"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (second, second_dialer) = downloader_for(&[&seeder]);
    let report = fetch(&second, &content, &peers, &tmp.path().join("second.bin"))
        .await
        .unwrap();
    assert_eq!(report.chunks_fetched, 2);
    first_dialer.close().await;
    second_dialer.close().await;
    seeder.router.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_opening_empty_streams_loses_its_slot_to_a_newcomer() {
    // One slot. The attacker keeps its connection busy-looking: a new stream with a few
    // bytes of a request head every 100 ms, never a whole request. It completes no
    // exchange, so past the eviction time a real downloader takes its slot.
    let tmp = tempfile::tempdir().unwrap();
    let (seeder, content) = one_slot_seeder(
        tmp.path(),
        Duration::from_secs(600),
        Duration::from_millis(500),
    )
    .await;
    let attacker_key = SecretKey::generate(&mut rand::rngs::OsRng);
    let (attacker, connection) = connect_raw(&seeder, &attacker_key).await;
    let keep_busy = {
        let connection = connection.clone();
        tokio::spawn(async move {
            let mut streams = Vec::new();
            while let Ok((mut send, recv)) = connection.open_bi().await {
                let _ = send.write_all(b"GET /v1/no").await;
                streams.push((send, recv));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (report, dialer) = newcomer_fetches(&seeder, &content, tmp.path()).await;
    let report = report.unwrap();
    assert_eq!(report.chunks_fetched, 2);
    assert!(
        closed_soon(&connection).await,
        "the attacker keeps its slot"
    );
    keep_busy.abort();
    dialer.close().await;
    attacker.close().await;
    seeder.router.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_content_moved_keeps_a_slot_and_free_exchanges_do_not() {
    // One slot. The attacker completes an exchange every 100 ms, but only node info,
    // which anyone can ask for again and again at no cost: past the eviction time a real
    // downloader takes its slot. A peer fetching a chunk every second keeps its slot.
    let tmp = tempfile::tempdir().unwrap();
    let evict_after = Duration::from_secs(4);
    let (seeder, content) =
        one_slot_seeder(tmp.path(), Duration::from_secs(600), evict_after).await;
    let attacker_key = SecretKey::generate(&mut rand::rngs::OsRng);
    let (attacker, connection) = connect_raw(&seeder, &attacker_key).await;
    assert!(node_info(&connection).await, "the attacker was refused");
    let asking = {
        let connection = connection.clone();
        tokio::spawn(async move {
            while node_info(&connection).await {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    tokio::time::sleep(evict_after + Duration::from_millis(500)).await;
    let (report, dialer) = newcomer_fetches(&seeder, &content, tmp.path()).await;
    let report = report.expect("a peer asking only for node info kept the slot from a downloader");
    assert_eq!(report.chunks_fetched, 2);
    assert!(
        closed_soon(&connection).await,
        "the attacker keeps its slot"
    );
    asking.abort();
    attacker.close().await;

    // The downloader's connection goes stale; a peer fetching a chunk a second takes the
    // slot and keeps it past the eviction time.
    tokio::time::sleep(evict_after + Duration::from_millis(500)).await;
    let chunk = held_chunk(&seeder, tmp.path());
    let key = SecretKey::generate(&mut rand::rngs::OsRng);
    let (endpoint, fetcher) = connect_raw(&seeder, &key).await;
    let busy = KeptBusy::start(&fetcher, &key, &seeder, chunk);
    tokio::time::sleep(evict_after + Duration::from_secs(1)).await;
    let (late, refused) = newcomer_refused(&seeder).await;
    assert!(refused, "a newcomer evicted a peer being served chunks");
    busy.stop().await;
    assert!(fetcher.close_reason().is_none());
    for endpoint in [late, endpoint] {
        endpoint.close().await;
    }
    dialer.close().await;
    seeder.router.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_holds_two_connections_and_its_newest_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let seeder = start(tmp.path(), "seeder", None, 16).await;
    let key = SecretKey::generate(&mut rand::rngs::OsRng);
    let (first_endpoint, first) = connect_raw(&seeder, &key).await;
    assert!(node_info(&first).await);
    let (second_endpoint, second) = connect_raw(&seeder, &key).await;
    assert!(node_info(&second).await);
    let (third_endpoint, third) = connect_raw(&seeder, &key).await;
    assert!(node_info(&third).await, "the newest connection is served");
    assert!(closed_soon(&first).await, "a third connection of one key");
    assert!(second.close_reason().is_none() && third.close_reason().is_none());
    for endpoint in [first_endpoint, second_endpoint, third_endpoint] {
        endpoint.close().await;
    }
    seeder.router.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_share_of_connections() {
    // Fresh keys are free, addresses are not: past two connections from one address
    // (loopback here) with recent activity, a third key from it is refused, and the
    // seeder still has room for others.
    let tmp = tempfile::tempdir().unwrap();
    let seeder = start_with(tmp.path(), "seeder", None, |routes| {
        transport::PeerService::new(routes, 16).per_address(2)
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let key = SecretKey::generate(&mut rand::rngs::OsRng);
        let (endpoint, connection) = connect_raw(&seeder, &key).await;
        assert!(node_info(&connection).await);
        held.push((endpoint, connection));
    }
    let key = SecretKey::generate(&mut rand::rngs::OsRng);
    let endpoint = transport::bind(&key, &loopback(), false).await.unwrap();
    let refused = match endpoint.connect(address_of(&seeder), transport::ALPN).await {
        Err(_) => true,
        Ok(connection) => !node_info(&connection).await,
    };
    assert!(refused, "a third connection from one address was served");
    for (_, connection) in &held {
        assert!(
            connection.close_reason().is_none(),
            "an admitted peer was dropped"
        );
    }
    endpoint.close().await;
    for (endpoint, _) in held {
        endpoint.close().await;
    }
    seeder.router.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_seeder_still_admits_its_auditor() {
    // Peers that keep every slot busy must not make a seeder miss its audits (and lose its
    // storage pay): its trusted auditor's key is admitted past the caps, and evicts nobody.
    let tmp = tempfile::tempdir().unwrap();
    let auditor = SecretKey::generate(&mut rand::rngs::OsRng);
    let auditor_id = auditor.node_id();
    let seeder = start_with(tmp.path(), "seeder", None, move |routes| {
        transport::PeerService::new(routes, 1).privileged(move |node| *node == auditor_id)
    })
    .await;
    let busy = SecretKey::generate(&mut rand::rngs::OsRng);
    let (busy_endpoint, busy_connection) = connect_raw(&seeder, &busy).await;
    assert!(node_info(&busy_connection).await);

    // Full, with nothing stale to evict: newcomers are refused, more of them than a full
    // seeder takes handshakes at once (each finished handshake frees its place)...
    let mut newcomers = Vec::new();
    for _ in 0..transport::MAX_HANDSHAKES_WHEN_FULL + 2 {
        let (endpoint, refused) = newcomer_refused(&seeder).await;
        assert!(refused, "a newcomer was served by a full seeder");
        newcomers.push(endpoint);
    }
    // ... the auditor is served, and the busy peer keeps its slot.
    let (auditor_endpoint, auditor_connection) = connect_raw(&seeder, &auditor).await;
    assert!(
        node_info(&auditor_connection).await,
        "the auditor was refused"
    );
    assert!(
        node_info(&busy_connection).await,
        "the busy peer lost its slot"
    );
    assert!(busy_connection.close_reason().is_none());
    for endpoint in newcomers
        .into_iter()
        .chain([busy_endpoint, auditor_endpoint])
    {
        endpoint.close().await;
    }
    seeder.router.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_peers_hold_only_their_share_and_never_push_out_direct_peers() {
    // Through a relay a seeder tells peers apart by key only, and keys are free: relayed
    // newcomers must take (and evict from) only the relayed share of the slots, half of
    // them, so that fresh keys through a relay cannot fill a seeder or churn its peers
    // on direct paths out.
    let tmp = tempfile::tempdir().unwrap();
    let (relay, config) = relay_and_seeder_config().await;
    let evict_after = Duration::from_secs(6);
    let seeder = start_on(tmp.path(), "seeder", None, &config, |routes| {
        transport::PeerService::new(routes, 2).timeouts(Duration::from_secs(600), evict_after)
    })
    .await;

    let chunk = held_chunk(&seeder, tmp.path());

    // One relayed peer fills the relayed share (one of two slots), and keeps busy...
    let a_key = SecretKey::generate(&mut rand::rngs::OsRng);
    let (a_endpoint, a) = connect_relayed_as(&seeder, &relay, &a_key).await;
    assert!(node_info(&a).await, "the first relayed peer was refused");
    let busy = KeptBusy::start(&a, &a_key, &seeder, chunk);
    // ... so a second relayed key is refused, though a slot is free ...
    let (b_endpoint, b) = connect_relayed(&seeder, &relay).await;
    assert!(
        !node_info(&b).await,
        "a relayed key took more than the relayed share"
    );
    assert!(
        a.close_reason().is_none(),
        "the active relayed peer was evicted"
    );
    // ... which a peer on a direct path takes.
    let d_key = SecretKey::generate(&mut rand::rngs::OsRng);
    let (d_endpoint, d) = connect_raw(&seeder, &d_key).await;
    assert!(
        node_info(&d).await,
        "a direct peer was kept out by relayed keys"
    );

    // Both go quiet, the direct peer first (the stalest): once relayed peers hold their
    // share, a relayed newcomer evicts a relayed peer, not the direct one.
    busy.stop().await;
    tokio::time::sleep(evict_after + Duration::from_secs(1)).await;
    let c_key = SecretKey::generate(&mut rand::rngs::OsRng);
    let (c_endpoint, c) = connect_relayed_as(&seeder, &relay, &c_key).await;
    assert!(
        node_info(&c).await,
        "a relayed newcomer found no stale relayed slot"
    );
    assert!(
        closed_soon(&a).await,
        "the stale relayed peer kept its slot"
    );
    assert!(
        d.close_reason().is_none(),
        "a relayed newcomer evicted a direct peer"
    );
    assert!(node_info(&d).await, "the direct peer lost its slot");

    // A relayed peer reconnecting (its old connection lost to it, still active to the
    // seeder) is not locked out by the share it holds: its own old connection makes way.
    // (The relay now routes the key to its new endpoint, so the old one never hears of
    // its close; that the new one is served with the share full is the proof.)
    let (c2_endpoint, c2) = connect_relayed_as(&seeder, &relay, &c_key).await;
    assert!(
        node_info(&c2).await,
        "a reconnecting relayed key was refused"
    );
    assert!(d.close_reason().is_none());
    assert!(node_info(&d).await, "the direct peer lost its slot");

    for endpoint in [a_endpoint, b_endpoint, c_endpoint, c2_endpoint, d_endpoint] {
        endpoint.close().await;
    }
    seeder.router.shutdown().await.unwrap();
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_arrivals_waiting_for_a_direct_path_keep_no_direct_peer_out() {
    // A seeder gives a peer arriving through a relay a moment to find a direct path
    // before admitting it. Fresh keys through the relay arriving together must not hold
    // every place in that wait: a peer on a direct path needs none and is admitted.
    let tmp = tempfile::tempdir().unwrap();
    let (relay, config) = relay_and_seeder_config().await;
    let seeder = start_on(tmp.path(), "seeder", None, &config, |routes| {
        transport::PeerService::new(routes, 2)
    })
    .await;
    let mut relayed = Vec::new();
    for _ in 0..2 {
        relayed.push(connect_relayed(&seeder, &relay).await);
    }
    // Both relayed connections are now in (or refused from) their wait for a direct path.
    let d_key = SecretKey::generate(&mut rand::rngs::OsRng);
    let (d_endpoint, d) = connect_raw(&seeder, &d_key).await;
    assert!(
        node_info(&d).await,
        "a direct peer was refused while relayed keys waited"
    );
    let served = served_count(&relayed).await;
    assert_eq!(
        served, 1,
        "relayed peers served beside a direct one, of two slots"
    );

    for (endpoint, _) in relayed {
        endpoint.close().await;
    }
    d_endpoint.close().await;
    seeder.router.shutdown().await.unwrap();
    relay.shutdown().await.unwrap();
}

/// A connection fetching a chunk of `node` every second, so it never looks stale, until
/// stopped; it fails if the seeder stops serving it. It sends no receipts, so it lasts at
/// most `serve.max_owed_receipts` (64) fetches: about a minute.
struct KeptBusy {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl KeptBusy {
    fn start(connection: &Connection, key: &SecretKey, node: &IrohNode, chunk: ChunkId) -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let (connection, key, node, stop) = (
                connection.clone(),
                key.clone(),
                node.state.clone(),
                stop.clone(),
            );
            async move {
                while !stop.is_cancelled() {
                    assert!(
                        fetch_chunk(&connection, &key, &node, chunk).await,
                        "a busy peer lost its slot"
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        });
        Self { stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }
}

/// How many of the `relayed` connections the seeder serves.
async fn served_count(relayed: &[(iroh::Endpoint, Connection)]) -> usize {
    let mut served = 0;
    for (_, connection) in relayed {
        if node_info(connection).await {
            served += 1;
        }
    }
    served
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_exchange_resets_its_stream_instead_of_finishing_it() {
    // An exchange that fails (here a request head never completed, cut at the header
    // timeout; a stalled download is cut the same way) must reset its stream: a stream
    // left to QUIC is finished, and what was queued on it is retransmitted to the peer
    // until the connection ends.
    let tmp = tempfile::tempdir().unwrap();
    let seeder = start(tmp.path(), "seeder", None, 4).await;
    let key = SecretKey::generate(&mut rand::rngs::OsRng);
    let (endpoint, connection) = connect_raw(&seeder, &key).await;
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    send.write_all(b"GET /v1/no").await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(30), recv.read_to_end(1 << 20))
        .await
        .expect("the seeder gave up on the request head");
    let error = format!("{read:?}");
    assert!(error.contains("Reset"), "finished, not reset: {error}");
    endpoint.close().await;
    seeder.router.shutdown().await.unwrap();
}

/// A UDP forwarder on `ip` in front of `seeder` that passes everything a client sends but
/// only the seeder's first answer back (its QUIC Retry): the client proves its address and
/// starts a real handshake, which then never completes. Returns the address to dial.
async fn stalling_forwarder(ip: std::net::Ipv4Addr, seeder: SocketAddr) -> SocketAddr {
    let front = tokio::net::UdpSocket::bind((ip, 0)).await.unwrap();
    let back = tokio::net::UdpSocket::bind((ip, 0)).await.unwrap();
    let address = front.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut up, mut down) = (vec![0u8; 65_536], vec![0u8; 65_536]);
        let mut client = None;
        let mut answers = 0;
        loop {
            tokio::select! {
                got = front.recv_from(&mut up) => {
                    let Ok((n, from)) = got else { return };
                    client = Some(from);
                    let _ = back.send_to(&up[..n], seeder).await;
                }
                got = back.recv(&mut down) => {
                    let Ok(n) = got else { return };
                    if answers == 0 && let Some(client) = client {
                        let _ = front.send_to(&down[..n], client).await;
                    }
                    answers += 1;
                }
            }
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshakes_hold_a_full_seeder_bounded_places_for_a_bounded_time() {
    // A full seeder (its one slot busy) must not do handshake work for everyone who
    // knocks: direct newcomers prove their address (a QUIC Retry), then at most 8
    // handshakes (2 per address) run at once, each for at most 10 s. Peers at 4 addresses
    // start handshakes and stall them; the next newcomer is refused before any handshake
    // work, and once the stalled ones time out a newcomer's handshake runs again.
    let tmp = tempfile::tempdir().unwrap();
    let seeder = start(tmp.path(), "seeder", None, 1).await;
    let seeder_address = seeder.addresses[0];
    let busy_key = SecretKey::generate(&mut rand::rngs::OsRng);
    let (busy_endpoint, busy) = connect_raw(&seeder, &busy_key).await;
    assert!(node_info(&busy).await);
    let chunk = held_chunk(&seeder, tmp.path());
    let kept_busy = KeptBusy::start(&busy, &busy_key, &seeder, chunk);
    let id = iroh::EndpointId::from_bytes(&seeder.endpoint_id.0).unwrap();
    let dial = |at: SocketAddr| async move {
        let key = SecretKey::generate(&mut rand::rngs::OsRng);
        let endpoint = transport::bind(&key, &loopback(), false).await.unwrap();
        let connecting = tokio::time::timeout(
            Duration::from_secs(5),
            endpoint.connect(
                iroh::EndpointAddr::new(id).with_ip_addr(at),
                transport::ALPN,
            ),
        )
        .await;
        (endpoint, connecting.map(|c| c.is_ok()).unwrap_or(false))
    };

    let mut stalled = Vec::new();
    for n in 0..transport::MAX_HANDSHAKES_WHEN_FULL {
        let ip = std::net::Ipv4Addr::new(127, 0, 0, 10 + (n / 2) as u8);
        let at = stalling_forwarder(ip, seeder_address).await;
        stalled.push(tokio::spawn(dial(at)));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (refused_endpoint, handshaken) = dial(seeder_address).await;
    assert!(
        !handshaken,
        "a full seeder ran a handshake past its places for stalled ones"
    );

    // The stalled handshakes time out (10 s) and free their places.
    tokio::time::sleep(transport::HANDSHAKE_TIMEOUT).await;
    let (later_endpoint, handshaken) = dial(seeder_address).await;
    assert!(
        handshaken,
        "stalled handshakes kept their places past their timeout"
    );
    assert!(busy.close_reason().is_none(), "the busy peer was dropped");

    kept_busy.stop().await;
    for task in stalled {
        task.abort();
    }
    for endpoint in [busy_endpoint, refused_endpoint, later_endpoint] {
        endpoint.close().await;
    }
    seeder.router.shutdown().await.unwrap();
}
