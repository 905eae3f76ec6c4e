//! # dsi-relay: the network's iroh relay
//!
//! Nodes that cannot reach each other directly (behind home routers or carrier-grade NAT)
//! exchange their QUIC packets through a relay, and use it to start hole punching. The
//! traffic stays end-to-end encrypted between the two node keys: the relay sees which node
//! ids talk and how much, never what. A DSI network runs its own relays (no public relay
//! of anyone else is used); nodes name them in `[iroh] relays` (`node-lite`).
//!
//! [`Relay::start`] serves the relay over plain HTTP (and WebSocket) on one address, with
//! an optional per-client rate limit, until [`Relay::shutdown`]. Put it behind a
//! TLS-terminating reverse proxy that passes WebSocket upgrades to hide relay metadata on
//! the wire (see `docs/ARCHITECTURE.md`, "Relays").

use std::net::SocketAddr;
use std::num::NonZeroU32;

use anyhow::Context;
use iroh_relay::server::{ClientRateLimit, RelayConfig, Server, ServerConfig};

/// What a relay serves.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The HTTP address (port 0: any free port).
    pub listen: SocketAddr,
    /// Bytes per second one client may send through the relay; `None`: no limit.
    pub client_bytes_per_sec: Option<NonZeroU32>,
    /// How many node keys the relay remembers (bounds its memory).
    pub key_cache: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3340)),
            client_bytes_per_sec: None,
            key_cache: 65_536,
        }
    }
}

/// A running relay.
#[derive(Debug)]
pub struct Relay {
    server: Server,
    address: SocketAddr,
}

impl Relay {
    /// Starts a relay with `settings`.
    pub async fn start(settings: &Settings) -> anyhow::Result<Self> {
        let mut relay = RelayConfig::new(settings.listen);
        relay.key_cache_capacity = Some(settings.key_cache);
        relay.limits.client_rx = settings.client_bytes_per_sec.map(ClientRateLimit::new);
        let mut config = ServerConfig::default();
        config.relay = Some(relay);
        let server = Server::spawn(config)
            .await
            .with_context(|| format!("starting the relay on {}", settings.listen))?;
        let address = server
            .http_addr()
            .context("the relay server has no HTTP address")?;
        if !address.ip().is_loopback() {
            tracing::warn!(%address, "relay listening beyond loopback, as configured");
        }
        Ok(Self { server, address })
    }

    /// The address it serves on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The URL nodes name in `[iroh] relays` (when reached directly, without a proxy).
    pub fn url(&self) -> String {
        format!("http://{}/", self.address)
    }

    /// Stops the relay.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.server.shutdown().await.context("stopping the relay")?;
        Ok(())
    }
}
