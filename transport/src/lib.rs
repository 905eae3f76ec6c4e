//! # dsi-transport: DSI's node protocol over iroh, the dialing side
//!
//! QUIC connections over [iroh](https://docs.rs/iroh) whose TLS identity is a DSI key (so
//! the node id one dials is the key that answers, and everything on the wire is encrypted
//! end to end), hole punching, and the network's own relays (`dsi-relay`) when no direct
//! path works: a node behind a home router or a carrier-grade NAT.
//!
//! The protocol on ALPN [`ALPN`] (`dsi/1`) is HTTP/1.1, one request per bidirectional QUIC
//! stream, one connection per peer. This crate holds what every program that dials nodes
//! shares: [`bind`] (an endpoint with the network's relays and the QUIC limits), the
//! [`Dialer`] (node-lite's downloads, the oracle's audits), the `iroh://NODE_ID/` peer URLs
//! ([`peer_url`], [`peer_node`]), what a node announces ([`announced_endpoint`]) and which
//! path a connection runs on ([`direct_path`]). The serving side (admission, slots, paced
//! streams) is node-lite's `transport` module.
//!
//! Relays are never anyone's public ones: an endpoint knows only the relays it was
//! configured with, and a dialer contacts only those, whatever a peer announces.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dsi_protocol::{NodeId, SecretKey};
use http_body_util::BodyExt;
use iroh::endpoint::{Connection, presets};
use iroh::{EndpointAddr, NetReportConfig, RelayConfig, RelayMap, RelayMode, RelayUrl};
use iroh_relay::tls::CaTlsConfig;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, OnceCell};

pub use iroh::endpoint::{Connection as PeerConnection, PathId};

/// The bytes a connection received on each of its paths, with the remote address of the
/// direct (IP) ones (`None`: a relay path); see [`received_by_path`].
pub type ReceivedByPath = HashMap<PathId, (Option<SocketAddr>, u64)>;

/// Where an endpoint meets the network: its relays and its UDP sockets (`[iroh]` of a
/// node's or the oracle's configuration).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EndpointConfig {
    /// Relay URLs of the network (`dsi-relay`, run by the network's operator); empty: iroh
    /// is off.
    pub relays: Vec<String>,
    /// UDP sockets for direct connections and hole punching (port 0: any free port);
    /// empty: relay only.
    pub bind: Vec<SocketAddr>,
    /// The UDP port of the relays' QUIC address discovery (`dsi-relay --qad`), where an
    /// endpoint behind a home router learns the public address its router gives it, so
    /// that peers behind routers too can punch holes to it; unset: none.
    pub qad_port: Option<u16>,
    /// A PEM file of certificates trusted beside the web's roots for this endpoint's TLS
    /// to relays (QUIC address discovery, HTTPS relay URLs and their latency probes): a
    /// relay's self-signed certificate (`dsi-relay --write-cert`). Whoever holds its key
    /// can pass for any TLS server there, so only the network operator's; node traffic
    /// itself is checked against node keys, never against these roots.
    pub relay_ca_file: Option<std::path::PathBuf>,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            relays: Vec::new(),
            bind: vec![SocketAddr::from(([0, 0, 0, 0], 0))],
            qad_port: None,
            relay_ca_file: None,
        }
    }
}

impl EndpointConfig {
    /// Whether iroh is on (a relay is named).
    pub fn enabled(&self) -> bool {
        !self.relays.is_empty()
    }
}

/// Why an endpoint could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The configuration is unusable (a bad relay URL, no relay and no socket).
    #[error("{0}")]
    Config(String),
    /// The sockets could not be bound.
    #[error("{address}: {reason}")]
    Bind {
        /// The first socket asked for.
        address: SocketAddr,
        /// What went wrong.
        reason: String,
    },
}

/// The ALPN of the DSI node protocol over iroh.
pub const ALPN: &[u8] = b"dsi/1";

/// The URL scheme of peers reached over iroh (`iroh://NODE_ID/`).
pub const SCHEME: &str = "iroh";

/// How long a new endpoint waits to reach its home relay before going on without it.
const ONLINE_TIMEOUT: Duration = Duration::from_secs(10);

/// A response body from either transport.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// An error of a response body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The peer URL of `node` over iroh: `iroh://NODE_ID/`.
pub fn peer_url(node: &NodeId) -> Url {
    // A 64-hex-digit host under a scheme with no special rules always parses.
    Url::parse(&format!("{SCHEME}://{node}/")).unwrap_or_else(|_| unreachable_url())
}

#[cold]
fn unreachable_url() -> Url {
    // `peer_url` builds from hex digits only; keep a panic-free fallback all the same.
    Url::parse("iroh://invalid/").unwrap_or_else(|_| std::process::abort())
}

/// The node id of an `iroh://NODE_ID/` peer URL, or `None` for any other URL.
pub fn peer_node(url: &Url) -> Option<NodeId> {
    if url.scheme() != SCHEME {
        return None;
    }
    url.host_str()?.parse().ok()
}

/// The relays of `config` as iroh's relay map (with QUIC address discovery on
/// `config.qad_port`, if set).
fn relay_map(config: &EndpointConfig) -> Result<(RelayMap, Vec<RelayUrl>), TransportError> {
    let mut urls = Vec::new();
    for text in &config.relays {
        let url: RelayUrl = text.parse().map_err(|e| {
            TransportError::Config(format!("iroh.relays: {text:?} is not a relay URL: {e}"))
        })?;
        urls.push(url);
    }
    if config.qad_port == Some(0) {
        return Err(TransportError::Config(
            "iroh.qad_port: 0 is not a port (the relays' QUIC address discovery port, \
             usually 7842; leave it unset for none)"
                .into(),
        ));
    }
    let quic = config.qad_port.map(iroh_relay::RelayQuicConfig::new);
    let map = urls
        .iter()
        .map(|url| RelayConfig::new(url.clone(), quic.clone()))
        .collect();
    Ok((map, urls))
}

/// The certificates of `config.relay_ca_file`, trusted beside the web's roots.
fn relay_roots(config: &EndpointConfig) -> Result<Option<CaTlsConfig>, TransportError> {
    use rustls_pki_types::pem::PemObject;
    let Some(file) = &config.relay_ca_file else {
        return Ok(None);
    };
    let bad = |e: &dyn std::fmt::Display| {
        TransportError::Config(format!(
            "iroh.relay_ca_file: {}: {e} (a PEM file of certificates)",
            file.display()
        ))
    };
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(file)
        .map_err(|e| bad(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    if certs.is_empty() {
        return Err(bad(&"no certificate in it"));
    }
    // iroh drops a root it cannot parse without a word, and discovery then fails with
    // nothing to say why: each one is tried here first.
    for (index, cert) in certs.iter().enumerate() {
        rustls::RootCertStore::empty()
            .add(cert.clone())
            .map_err(|e| {
                bad(&format_args!(
                    "certificate {} is not usable as a root: {e}",
                    index + 1
                ))
            })?;
    }
    Ok(Some(CaTlsConfig::embedded().with_extra_roots(certs)))
}

/// Binds an iroh endpoint keyed by `key` with the relays and sockets of `config`; with
/// `accept` it accepts connections on [`ALPN`]. Waits up to 10 s to reach a relay (a node
/// whose relay is down still works over direct paths). Without relays the endpoint has
/// direct paths only (peers must be given its addresses: benchmarks, a LAN).
pub async fn bind(
    key: &SecretKey,
    config: &EndpointConfig,
    accept: bool,
) -> Result<iroh::Endpoint, TransportError> {
    let (relays, _) = relay_map(config)?;
    if relays.is_empty() && config.bind.is_empty() {
        return Err(TransportError::Config(
            "iroh needs a relay or a socket: name the network's relay (for example \
             iroh.relays = [\"http://relay.example:3340\"])"
                .into(),
        ));
    }
    let has_relay = !relays.is_empty();
    let relay_mode = if has_relay {
        RelayMode::Custom(relays)
    } else {
        RelayMode::Disabled
    };
    let mut net_report = NetReportConfig::minimal();
    // Relay latency over HTTP(S) is how an endpoint picks its home relay when the relay
    // has no QUIC address discovery.
    net_report.https_probes = true;
    let roots = relay_roots(config)?;
    let mut builder = iroh::Endpoint::builder(presets::Minimal)
        .secret_key(iroh::SecretKey::from_bytes(&key.seed()))
        .relay_mode(relay_mode)
        .net_report_config(net_report)
        .transport_config(quic_config(accept))
        .clear_ip_transports();
    if let Some(roots) = roots {
        builder = builder.ca_tls_config(roots);
    }
    for address in &config.bind {
        builder = builder
            .bind_addr(*address)
            .map_err(|e| TransportError::Config(format!("iroh.bind: {address}: {e}")))?;
    }
    if accept {
        builder = builder.alpns(vec![ALPN.to_vec()]);
    }
    let endpoint = builder.bind().await.map_err(|e| TransportError::Bind {
        address: config
            .bind
            .first()
            .copied()
            .unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))),
        reason: format!("binding the iroh endpoint: {e}"),
    })?;
    if has_relay {
        wait_online(&endpoint, &config.relays).await;
    }
    Ok(endpoint)
}

/// Waits up to [`ONLINE_TIMEOUT`] for `endpoint` to reach a relay, less when its relay
/// refused its key for good ([`dsi_api::RELAY_NOT_ADMITTED`]: a network's relay may carry
/// only the network's nodes, `dsi-relay --admit-from`), and says why it goes on without one.
async fn wait_online(endpoint: &iroh::Endpoint, relays: &[String]) {
    use iroh::Watcher;
    // Every relay the endpoint tried refused the key for good (iroh 1.4 keeps one home
    // relay: one status at most).
    let not_admitted = |statuses: &[iroh::endpoint::RelayStatus]| {
        !statuses.is_empty()
            && statuses.iter().all(|status| {
                status
                    .auth_denied_reason()
                    .is_some_and(|reason| reason.contains(dsi_api::RELAY_NOT_ADMITTED))
            })
    };
    let mut status = endpoint.home_relay_status();
    let online = endpoint.online();
    tokio::pin!(online);
    let deadline = tokio::time::sleep(ONLINE_TIMEOUT);
    tokio::pin!(deadline);
    let mut seen = status.get();
    while !not_admitted(&seen) {
        tokio::select! {
            () = &mut online => return,
            () = &mut deadline => break,
            next = status.updated() => match next {
                Ok(next) => seen = next,
                Err(_) => break,
            },
        }
    }
    let refused: Vec<String> = seen
        .iter()
        .filter_map(|status| {
            let reason = status.auth_denied_reason()?;
            Some(format!("{}: {reason}", status.url()))
        })
        .collect();
    if refused.is_empty() {
        tracing::warn!(relays = ?relays, "no iroh relay reached in 10 s; going on with direct paths only");
    } else {
        tracing::warn!(
            refused = ?refused,
            "the network's relay refused this node's key; going on with direct paths only, \
             and asking the relay again now and then"
        );
    }
}

/// Checks `probe` every 50 ms until it finds something or `deadline` passes (waiting for
/// hole punching to give a connection a direct path).
pub async fn wait_for<T>(
    deadline: tokio::time::Instant,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    loop {
        if let Some(found) = probe() {
            return Some(found);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The bytes `connection` received so far on each of its paths, with the remote address of
/// the direct (IP) ones (`None`: a relay path).
pub fn received_by_path(connection: &Connection) -> ReceivedByPath {
    connection
        .paths()
        .iter()
        .map(|path| {
            let direct = match path.remote_addr() {
                iroh::TransportAddr::Ip(address) => Some(*address),
                _ => None,
            };
            (path.id(), (direct, path.stats().udp_rx.bytes))
        })
        .collect()
}

/// Counts what a connection receives on each path from the moment it is made, paths that
/// close meanwhile included (iroh drops a closed path from [`Connection::paths`]; its
/// last counts come with its close event).
#[derive(Debug)]
pub struct PathLedger {
    connection: Connection,
    before: ReceivedByPath,
    events: iroh::endpoint::PathEventStream,
    closed: ReceivedByPath,
}

impl PathLedger {
    /// Starts counting on `connection` now.
    pub fn start(connection: &Connection) -> Self {
        let events = connection.path_events();
        Self {
            before: received_by_path(connection),
            connection: connection.clone(),
            events,
            closed: ReceivedByPath::new(),
        }
    }

    /// The bytes received on each path since [`PathLedger::start`] (keyed like
    /// [`received_by_path`], a path's counts starting from 0 if it opened since), or `None`
    /// when path events were lost and a closed path's bytes may be missing.
    pub fn since_start(&mut self) -> Option<ReceivedByPath> {
        use futures_util::{FutureExt, StreamExt};
        while let Some(Some(event)) = self.events.next().now_or_never() {
            match event {
                iroh::endpoint::PathEvent::Closed {
                    id,
                    remote_addr,
                    last_stats,
                    ..
                } => {
                    let direct = match remote_addr {
                        iroh::TransportAddr::Ip(address) => Some(address),
                        _ => None,
                    };
                    self.closed.insert(id, (direct, last_stats.udp_rx.bytes));
                }
                iroh::endpoint::PathEvent::Lagged { .. } => return None,
                _ => {}
            }
        }
        let mut now = received_by_path(&self.connection);
        for (id, counts) in &self.closed {
            now.entry(*id).or_insert(*counts);
        }
        Some(
            now.into_iter()
                .map(|(id, (direct, received))| {
                    let before = self.before.get(&id).map_or(0, |(_, bytes)| *bytes);
                    (id, (direct, received.saturating_sub(before)))
                })
                .collect(),
        )
    }
}

/// The remote address of `connection`'s selected path, if it is a direct (IP) path.
pub fn direct_path(connection: &Connection) -> Option<SocketAddr> {
    let paths = connection.paths();
    let selected = paths.iter().find(|path| path.is_selected());
    match selected.map(|path| path.remote_addr().clone()) {
        Some(iroh::TransportAddr::Ip(address)) => Some(address),
        _ => None,
    }
}

/// Streams a peer may have open on one connection at once.
pub const MAX_STREAMS_PER_PEER: u32 = 16;

/// The QUIC settings of an endpoint: no datagrams, no unidirectional streams; a serving
/// endpoint accepts [`MAX_STREAMS_PER_PEER`] bidirectional streams with small receive
/// windows (peers send requests and receipts), a dialing endpoint accepts no streams at
/// all (it only opens them).
fn quic_config(accept: bool) -> iroh::endpoint::QuicTransportConfig {
    use iroh::endpoint::VarInt;
    let builder = iroh::endpoint::QuicTransportConfig::builder()
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .datagram_receive_buffer_size(None);
    if accept {
        builder
            .max_concurrent_bidi_streams(VarInt::from_u32(MAX_STREAMS_PER_PEER))
            .stream_receive_window(VarInt::from_u32(1 << 20))
            .receive_window(VarInt::from_u32(2 << 20))
            .send_window(2 << 20)
            .build()
    } else {
        builder
            .max_concurrent_bidi_streams(VarInt::from_u32(0))
            .build()
    }
}

/// How a connection runs (see [`Dialer::path`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PathReport {
    /// The remote address of its direct path (a public address, or a hole punched
    /// through routers); `None`: through a relay.
    pub direct: Option<SocketAddr>,
    /// Bytes received on its direct paths still open (UDP payloads, QUIC included).
    pub received_direct: u64,
    /// Bytes received through relays, on relay paths still open.
    pub received_relayed: u64,
}

impl std::fmt::Display for PathReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.direct {
            Some(address) => write!(f, "direct {address}")?,
            None => write!(f, "relay")?,
        }
        write!(
            f,
            " ({} bytes received direct, {} relayed)",
            self.received_direct, self.received_relayed
        )
    }
}

/// Why a request over iroh failed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The local endpoint could not be made.
    #[error("{0}")]
    Endpoint(String),
    /// The peer could not be reached, or the connection or stream failed.
    #[error("{0}")]
    Connection(String),
}

/// Where a dialer reaches one peer, beside its node id.
#[derive(Clone, Debug, Default)]
struct KnownAddress {
    direct: Vec<SocketAddr>,
    relays: Vec<RelayUrl>,
}

/// The endpoint address a serving node announces: the relays it is homed on (those
/// configured until it reached one) and its direct addresses, within the protocol's limits.
pub fn announced_endpoint(
    endpoint: &iroh::Endpoint,
    config: &EndpointConfig,
) -> dsi_protocol::NodeEndpoint {
    use dsi_protocol::announce::{MAX_ENDPOINT_ADDRESSES, MAX_ENDPOINT_RELAYS, MAX_URL_LEN};
    let address = endpoint.addr();
    let mut relays: Vec<String> = address.relay_urls().map(ToString::to_string).collect();
    if relays.is_empty() {
        relays.clone_from(&config.relays);
    }
    relays.retain(|relay| relay.len() <= MAX_URL_LEN);
    relays.truncate(MAX_ENDPOINT_RELAYS);
    let direct = address
        .ip_addrs()
        .filter(|a| !a.ip().is_unspecified() && a.port() != 0)
        .take(MAX_ENDPOINT_ADDRESSES)
        .map(ToString::to_string)
        .collect();
    dsi_protocol::NodeEndpoint { relays, direct }
}

/// The client side: one endpoint (made on first use) and one connection per peer, each
/// request on its own stream.
#[derive(Clone, Debug)]
pub struct Dialer {
    inner: Arc<DialerInner>,
}

#[derive(Debug)]
struct DialerInner {
    key: SecretKey,
    config: EndpointConfig,
    endpoint: OnceCell<iroh::Endpoint>,
    /// One slot per peer, each with its own lock: dialing one peer (slow, or unreachable)
    /// never holds up requests to another.
    connections: std::sync::Mutex<HashMap<NodeId, Arc<Mutex<Option<Connection>>>>>,
    /// Addresses learnt for peers (given, or announced to the tracker).
    known: std::sync::Mutex<HashMap<NodeId, KnownAddress>>,
}

impl Dialer {
    /// A dialer signing as `key` over the relays and sockets of `config`; fails if
    /// `config` names a bad relay, or neither a relay nor a socket.
    pub fn new(key: SecretKey, config: &EndpointConfig) -> Result<Self, TransportError> {
        let (relays, _) = relay_map(config)?;
        relay_roots(config)?;
        if relays.is_empty() && config.bind.is_empty() {
            return Err(TransportError::Config(
                "iroh.relays is empty: name the network's relay to reach peers by node id".into(),
            ));
        }
        Ok(Self {
            inner: Arc::new(DialerInner {
                key,
                config: config.clone(),
                endpoint: OnceCell::new(),
                connections: std::sync::Mutex::new(HashMap::new()),
                known: std::sync::Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Direct addresses where `node` may be reached (tried beside the relays); the last
    /// call for a node wins.
    pub fn add_direct_addresses(&self, node: NodeId, addresses: Vec<SocketAddr>) {
        self.learn(
            node,
            KnownAddress {
                direct: addresses,
                relays: Vec::new(),
            },
        );
    }

    /// What `node` announced to the tracker: its direct addresses, and which of our relays
    /// it is homed on (a relay we were not configured with is never contacted: a peer
    /// cannot send us to a host of its choosing). The last call for a node wins.
    pub fn add_endpoint(&self, node: NodeId, endpoint: &dsi_protocol::NodeEndpoint) {
        let ours = relay_map(&self.inner.config)
            .map(|(_, urls)| urls)
            .unwrap_or_default();
        let relays = endpoint
            .relays
            .iter()
            .filter_map(|text| text.parse::<RelayUrl>().ok())
            .filter(|url| ours.contains(url))
            .collect();
        self.learn(
            node,
            KnownAddress {
                direct: endpoint.direct_addresses(),
                relays,
            },
        );
    }

    fn learn(&self, node: NodeId, address: KnownAddress) {
        if let Ok(mut known) = self.inner.known.lock() {
            known.insert(node, address);
        }
    }

    async fn endpoint(&self) -> Result<&iroh::Endpoint, DialError> {
        self.inner
            .endpoint
            .get_or_try_init(|| async {
                bind(&self.inner.key, &self.inner.config, false)
                    .await
                    .map_err(|e| DialError::Endpoint(e.to_string()))
            })
            .await
    }

    /// The address `node` is dialed at: its id, homed on our relays (peers of one network
    /// share its relays), with hole punching to a direct path once connected.
    fn address(&self, node: &NodeId) -> Result<EndpointAddr, DialError> {
        let id = iroh::EndpointId::from_bytes(&node.0)
            .map_err(|e| DialError::Connection(format!("{node} is not a usable node id: {e}")))?;
        let (_, ours) =
            relay_map(&self.inner.config).map_err(|e| DialError::Endpoint(e.to_string()))?;
        let known = self
            .inner
            .known
            .lock()
            .ok()
            .and_then(|known| known.get(node).cloned())
            .unwrap_or_default();
        // Its home relay if it announced one of ours, else all of ours.
        let relays = if known.relays.is_empty() {
            ours
        } else {
            known.relays
        };
        let direct = known.direct;
        let address = relays
            .into_iter()
            .fold(EndpointAddr::new(id), EndpointAddr::with_relay_url);
        Ok(direct.into_iter().fold(address, EndpointAddr::with_ip_addr))
    }

    /// Makes the local endpoint now (waiting up to 10 s for a relay), so that the first
    /// requests to peers do not spend their stall timeouts on it.
    pub async fn bind(&self) -> Result<(), DialError> {
        self.endpoint().await.map(|_| ())
    }

    /// How the open connection to `node` runs now, and what it received on which kind of
    /// path; `None` when there is no open connection.
    pub async fn path(&self, node: &NodeId) -> Option<PathReport> {
        let slot = self.slot(node);
        let slot = slot.lock().await;
        let connection = slot.as_ref().filter(|c| c.close_reason().is_none())?;
        let (mut received_direct, mut received_relayed) = (0, 0);
        for (direct, bytes) in received_by_path(connection).into_values() {
            match direct {
                Some(_) => received_direct += bytes,
                None => received_relayed += bytes,
            }
        }
        Some(PathReport {
            direct: direct_path(connection),
            received_direct,
            received_relayed,
        })
    }

    /// The slot of `node`'s connection.
    fn slot(&self, node: &NodeId) -> Arc<Mutex<Option<Connection>>> {
        match self.inner.connections.lock() {
            Ok(mut connections) => connections.entry(*node).or_default().clone(),
            // A poisoned map: go on without sharing the connection.
            Err(_) => Arc::default(),
        }
    }

    /// The open connection to `node`, made if there is none or the last one closed (the
    /// one [`Dialer::request`] uses; [`direct_path`] tells over which path it runs).
    pub async fn connection(&self, node: &NodeId) -> Result<Connection, DialError> {
        let slot = self.slot(node);
        let mut slot = slot.lock().await;
        if let Some(connection) = slot.as_ref()
            && connection.close_reason().is_none()
        {
            return Ok(connection.clone());
        }
        let endpoint = self.endpoint().await?;
        let connection = endpoint
            .connect(self.address(node)?, ALPN)
            .await
            .map_err(|e| DialError::Connection(format!("connecting over iroh: {e}")))?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Sends `request` (origin-form: path and query only) to `node` on a new stream of its
    /// connection.
    pub async fn request(
        &self,
        node: &NodeId,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Body>, DialError> {
        let connection = self.connection(node).await?;
        self.send(node, &connection, request).await
    }

    /// Sends `request` to `node` on a new stream of `connection` (from
    /// [`Dialer::connection`]); a connection that can no longer open streams is forgotten.
    pub async fn send(
        &self,
        node: &NodeId,
        connection: &Connection,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Body>, DialError> {
        let stream = connection.open_bi().await;
        let (send, recv) = match stream {
            Ok(stream) => stream,
            Err(e) => {
                // Forget this connection, not one a concurrent request made since.
                let slot = self.slot(node);
                let mut slot = slot.lock().await;
                if slot
                    .as_ref()
                    .is_some_and(|held| held.stable_id() == connection.stable_id())
                {
                    *slot = None;
                }
                return Err(DialError::Connection(format!("opening a stream: {e}")));
            }
        };
        let io = hyper_util::rt::TokioIo::new(tokio::io::join(recv, send));
        let (mut sender, exchange) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| DialError::Connection(format!("HTTP over iroh: {e}")))?;
        tokio::spawn(async move {
            if let Err(e) = exchange.await {
                tracing::debug!(error = %e, "iroh stream ended with an error");
            }
        });
        let response = sender
            .send_request(request.map(http_body_util::Full::new))
            .await
            .map_err(|e| DialError::Connection(format!("HTTP over iroh: {e}")))?;
        Ok(response.map(|body| body.map_err(BoxError::from).boxed_unsync()))
    }

    /// Closes every connection and the endpoint (peers see a clean close).
    pub async fn close(&self) {
        let slots: Vec<_> = match self.inner.connections.lock() {
            Ok(mut connections) => connections.drain().map(|(_, slot)| slot).collect(),
            Err(_) => Vec::new(),
        };
        for slot in slots {
            if let Some(connection) = slot.lock().await.take() {
                connection.close(0u32.into(), b"done");
            }
        }
        if let Some(endpoint) = self.inner.endpoint.get() {
            endpoint.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_ca_file_without_a_usable_certificate_is_refused_naming_the_setting() {
        let dir = std::env::temp_dir().join(format!("dsi-transport-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ca.pem");
        std::fs::write(&file, "not a certificate\n").unwrap();
        let mut config = EndpointConfig {
            relays: vec!["http://127.0.0.1:3340".into()],
            relay_ca_file: Some(file.clone()),
            ..EndpointConfig::default()
        };
        let refused =
            |config: &EndpointConfig| match Dialer::new(SecretKey::from_seed(&[4; 32]), config) {
                Err(TransportError::Config(message)) => message,
                other => panic!("not refused: {other:?}"),
            };
        let message = refused(&config);
        assert!(
            message.contains("iroh.relay_ca_file") && message.contains("no certificate"),
            "{message}"
        );
        config.relay_ca_file = Some(dir.join("missing.pem"));
        assert!(refused(&config).contains("missing.pem"));
        // PEM around bytes that are no X.509 certificate: named, not silently dropped.
        let junk = dir.join("junk.pem");
        std::fs::write(
            &junk,
            "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        config.relay_ca_file = Some(junk);
        let message = refused(&config);
        assert!(
            message.contains("junk.pem") && message.contains("certificate 1 is not usable"),
            "{message}"
        );
        // (A real certificate is trusted: tests/tests/nat.rs.)
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn peer_urls_round_trip_node_ids() {
        let node = SecretKey::from_seed(&[3; 32]).node_id();
        let url = peer_url(&node);
        assert_eq!(url.as_str(), format!("iroh://{node}/"));
        assert_eq!(peer_node(&url), Some(node));
        assert_eq!(
            url.join("v1/chunks/ab").map(|u| u.path().to_string()).ok(),
            Some("/v1/chunks/ab".to_string())
        );
        assert_eq!(peer_node(&"http://127.0.0.1:7070/".parse().unwrap()), None);
        assert_eq!(peer_node(&"iroh://zz/".parse().unwrap()), None);
    }
}
