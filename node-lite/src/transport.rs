//! Node-to-node transport over [iroh](https://docs.rs/iroh): QUIC connections whose TLS
//! identity is the node key (so the node id a downloader dials is the key that answers, and
//! everything on the wire is encrypted end to end), hole punching, and the network's own
//! relays when no direct path works (a node behind a home router or a carrier-grade NAT).
//!
//! The protocol on ALPN [`ALPN`] (`dsi/1`) is HTTP/1.1, one request per bidirectional QUIC
//! stream, over one connection per peer: the same routes, bodies, error codes, receipt
//! gating and upload caps as the HTTP API, served by the same `axum` handlers
//! ([`crate::server::peer_routes`]). Only the routes nodes use with each other are served:
//! node info, content list, manifest, have, chunks and receipts (no audits, gateway,
//! dashboard or metrics).
//!
//! A peer reached over iroh is named by its node id; inside the downloader it is the URL
//! `iroh://NODE_ID/` ([`peer_url`]), so peer lists mix HTTP seeders and iroh peers.
//!
//! What a seeder counts a downloader's unpaid chunks against: the downloader's IP address
//! while the connection runs on a direct path, and one shared bucket for all relayed
//! connections (a relay hides the address; see `docs/SECURITY.md`).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use bytes::Bytes;
use dsi_protocol::{NodeId, SecretKey};
use http_body_util::BodyExt;
use iroh::endpoint::{Connection, presets};
use iroh::protocol::{AcceptError, ProtocolHandler};
use iroh::{EndpointAddr, NetReportConfig, RelayConfig, RelayMap, RelayMode, RelayUrl};
use reqwest::Url;
use tokio::sync::{Mutex, OnceCell, Semaphore};

use crate::NodeError;
use crate::config::IrohConfig;

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

/// The relays of `config` as iroh's relay map (no QUIC address discovery: `dsi-relay`
/// serves HTTP(S) only).
fn relay_map(config: &IrohConfig) -> Result<(RelayMap, Vec<RelayUrl>), NodeError> {
    let mut urls = Vec::new();
    for text in &config.relays {
        let url: RelayUrl = text.parse().map_err(|e| {
            NodeError::Usage(format!("iroh.relays: {text:?} is not a relay URL: {e}"))
        })?;
        urls.push(url);
    }
    let map = urls
        .iter()
        .map(|url| RelayConfig::new(url.clone(), None))
        .collect();
    Ok((map, urls))
}

/// Binds an iroh endpoint keyed by `key` with the relays and sockets of `config`; with
/// `accept` it accepts connections on [`ALPN`]. Waits up to 10 s to reach a relay (a node
/// whose relay is down still works over direct paths). Without relays the endpoint has
/// direct paths only (peers must be given its addresses: benchmarks, a LAN).
pub async fn bind(
    key: &SecretKey,
    config: &IrohConfig,
    accept: bool,
) -> Result<iroh::Endpoint, NodeError> {
    let (relays, _) = relay_map(config)?;
    if relays.is_empty() && config.bind.is_empty() {
        return Err(NodeError::Usage(
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
    let mut builder = iroh::Endpoint::builder(presets::Minimal)
        .secret_key(iroh::SecretKey::from_bytes(&key.seed()))
        .relay_mode(relay_mode)
        .net_report_config(net_report)
        .clear_ip_transports();
    for address in &config.bind {
        builder = builder
            .bind_addr(*address)
            .map_err(|e| NodeError::Usage(format!("iroh.bind: {address}: {e}")))?;
    }
    if accept {
        builder = builder.alpns(vec![ALPN.to_vec()]);
    }
    let endpoint = builder.bind().await.map_err(|e| NodeError::Server {
        address: config
            .bind
            .first()
            .copied()
            .unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))),
        reason: format!("binding the iroh endpoint: {e}"),
    })?;
    if has_relay
        && tokio::time::timeout(ONLINE_TIMEOUT, endpoint.online())
            .await
            .is_err()
    {
        tracing::warn!(relays = ?config.relays, "no iroh relay reached in 10 s; going on with direct paths only");
    }
    Ok(endpoint)
}

/// The address a seeder counts a connection's unpaid chunks against: the remote IP on a
/// direct path, `0.0.0.0` for all relayed connections together.
fn counted_address(connection: &Connection) -> SocketAddr {
    let paths = connection.paths();
    let selected = paths.iter().find(|path| path.is_selected());
    match selected.map(|path| path.remote_addr().clone()) {
        Some(iroh::TransportAddr::Ip(address)) => address,
        _ => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
    }
}

/// The server side: each accepted stream is one HTTP/1.1 exchange with `routes`.
#[derive(Clone, Debug)]
pub struct PeerService {
    routes: axum::Router,
    connections: Arc<Semaphore>,
}

impl PeerService {
    /// Serves `routes` (`server::peer_router`) to at most `max_connections` peers at once.
    pub fn new(routes: axum::Router, max_connections: usize) -> Self {
        Self {
            routes,
            connections: Arc::new(Semaphore::new(max_connections.max(1))),
        }
    }
}

impl ProtocolHandler for PeerService {
    async fn accept(&self, connection: Connection) -> Result<(), AcceptError> {
        let Ok(_permit) = self.connections.clone().try_acquire_owned() else {
            connection.close(1u32.into(), b"too many peers connected");
            return Ok(());
        };
        let remote = connection.remote_id();
        tracing::debug!(peer = %remote.fmt_short(), "iroh peer connected");
        while let Ok((send, recv)) = connection.accept_bi().await {
            let address = counted_address(&connection);
            let routes = self.routes.clone();
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(tokio::io::join(recv, send));
                let service = hyper::service::service_fn(
                    move |mut request: hyper::Request<hyper::body::Incoming>| {
                        request.extensions_mut().insert(ConnectInfo(address));
                        tower::ServiceExt::oneshot(
                            routes.clone(),
                            request.map(axum::body::Body::new),
                        )
                    },
                );
                let served = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
                if let Err(e) = served {
                    tracing::debug!(error = %e, "iroh stream ended with an error");
                }
            });
        }
        Ok(())
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

/// The client side: one endpoint (made on first use) and one connection per peer, each
/// request on its own stream.
#[derive(Clone, Debug)]
pub struct Dialer {
    inner: Arc<DialerInner>,
}

#[derive(Debug)]
struct DialerInner {
    key: SecretKey,
    config: IrohConfig,
    endpoint: OnceCell<iroh::Endpoint>,
    connections: Mutex<HashMap<NodeId, Connection>>,
    /// Direct addresses learnt for peers (tried beside the relays).
    direct: std::sync::Mutex<HashMap<NodeId, Vec<SocketAddr>>>,
}

impl Dialer {
    /// A dialer signing as `key` over the relays and sockets of `config`; fails if
    /// `config` names a bad relay, or neither a relay nor a socket.
    pub fn new(key: SecretKey, config: &IrohConfig) -> Result<Self, NodeError> {
        let (relays, _) = relay_map(config)?;
        if relays.is_empty() && config.bind.is_empty() {
            return Err(NodeError::Usage(
                "iroh.relays is empty: name the network's relay to reach peers by node id".into(),
            ));
        }
        Ok(Self {
            inner: Arc::new(DialerInner {
                key,
                config: config.clone(),
                endpoint: OnceCell::new(),
                connections: Mutex::new(HashMap::new()),
                direct: std::sync::Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Direct addresses where `node` may be reached (tried beside the relays); the last
    /// call for a node wins.
    pub fn add_direct_addresses(&self, node: NodeId, addresses: Vec<SocketAddr>) {
        if let Ok(mut direct) = self.inner.direct.lock() {
            direct.insert(node, addresses);
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
        let (_, relays) =
            relay_map(&self.inner.config).map_err(|e| DialError::Endpoint(e.to_string()))?;
        let direct = self
            .inner
            .direct
            .lock()
            .ok()
            .and_then(|direct| direct.get(node).cloned())
            .unwrap_or_default();
        let address = relays
            .into_iter()
            .fold(EndpointAddr::new(id), EndpointAddr::with_relay_url);
        Ok(direct.into_iter().fold(address, EndpointAddr::with_ip_addr))
    }

    /// The open connection to `node`, made if there is none or the last one closed.
    async fn connection(&self, node: &NodeId) -> Result<Connection, DialError> {
        let mut connections = self.inner.connections.lock().await;
        if let Some(connection) = connections.get(node)
            && connection.close_reason().is_none()
        {
            return Ok(connection.clone());
        }
        let endpoint = self.endpoint().await?;
        let connection = endpoint
            .connect(self.address(node)?, ALPN)
            .await
            .map_err(|e| DialError::Connection(format!("connecting over iroh: {e}")))?;
        connections.insert(*node, connection.clone());
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
        let stream = connection.open_bi().await;
        let (send, recv) = match stream {
            Ok(stream) => stream,
            Err(e) => {
                self.inner.connections.lock().await.remove(node);
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
        self.inner.connections.lock().await.clear();
        if let Some(endpoint) = self.inner.endpoint.get() {
            endpoint.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
