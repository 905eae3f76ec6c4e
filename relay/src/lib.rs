//! # dsi-relay: the network's iroh relay
//!
//! Nodes that cannot reach each other directly (behind home routers or carrier-grade NAT)
//! exchange their QUIC packets through a relay, and use it to start hole punching. The
//! traffic stays end-to-end encrypted between the two node keys: the relay sees which node
//! ids talk and how much, never what. A DSI network runs its own relays (no public relay
//! of anyone else is used); nodes name them in `[iroh] relays` (`node-lite`).
//!
//! [`Relay::start`] serves the relay over plain HTTP (and WebSocket) on one address, with
//! an optional per-client rate limit, until [`Relay::shutdown`]. Keys are free, so a relay
//! that carries every key carries anyone's traffic at its operator's cost: with
//! [`Settings::admit_from`] it carries only the keys the network's tracker vouches for
//! (`GET /v1/relay-access/{node}`: the oracle, announced nodes, downloaders with credit),
//! asking once per key and remembering the answer for a while ([`TrackerAccess`]). Put it behind a
//! TLS-terminating reverse proxy that passes WebSocket upgrades to hide relay metadata on
//! the wire (see `docs/ARCHITECTURE.md`, "Relays").

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use dsi_protocol::NodeId;
use dsi_service::OracleClient;
use iroh_relay::server::{
    Access, AccessControl, ClientRateLimit, ClientRequest, RelayConfig, Server, ServerConfig,
};

/// What a relay serves.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The HTTP address (port 0: any free port).
    pub listen: SocketAddr,
    /// Bytes per second one client may send through the relay; `None`: no limit.
    pub client_bytes_per_sec: Option<NonZeroU32>,
    /// How many node keys the relay remembers (bounds its memory).
    pub key_cache: usize,
    /// The tracker (oracle) whose `GET /v1/relay-access/{node}` decides which keys the
    /// relay carries; `None`: every key.
    pub admit_from: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3340)),
            client_bytes_per_sec: None,
            key_cache: 65_536,
            admit_from: None,
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
        if let Some(tracker) = &settings.admit_from {
            relay.access = Arc::new(TrackerAccess::new(tracker, settings.key_cache)?);
        }
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

/// How long an admission is remembered (a key that loses its standing keeps relaying at
/// most this long; its open connection is not cut).
pub const ADMITTED_FOR: Duration = Duration::from_secs(300);

/// How long a refusal is remembered (a node that has just announced waits at most this
/// long for the relay to carry it).
pub const REFUSED_FOR: Duration = Duration::from_secs(5);

/// How long the relay waits for the tracker's answer before refusing.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Lookups at the tracker in flight at once: keys arriving past that are refused until
/// one ends (a flood of fresh keys costs the tracker at most this many requests at once).
pub const MAX_LOOKUPS: usize = 16;

/// Carries only the keys a tracker vouches for (`GET /v1/relay-access/{node}`), each
/// answer remembered ([`ADMITTED_FOR`], [`REFUSED_FOR`]) for at most `capacity` keys; an
/// unreachable tracker or an unreadable answer refuses (no answer is remembered then).
#[derive(Debug)]
pub struct TrackerAccess {
    tracker: OracleClient,
    capacity: usize,
    answers: Mutex<HashMap<NodeId, (bool, Instant)>>,
    lookups: Arc<tokio::sync::Semaphore>,
}

impl TrackerAccess {
    /// Asks `tracker` (an `http://` or `https://` URL) about each key, remembering at most
    /// `capacity` answers.
    pub fn new(tracker: &str, capacity: usize) -> anyhow::Result<Self> {
        let tracker = OracleClient::with_timeout(tracker, LOOKUP_TIMEOUT)
            .map_err(|e| anyhow::anyhow!("--admit-from: {e}"))?;
        Ok(Self {
            tracker,
            capacity: capacity.max(1),
            answers: Mutex::default(),
            lookups: Arc::new(tokio::sync::Semaphore::new(MAX_LOOKUPS)),
        })
    }

    /// Whether `node` may use the relay.
    pub async fn admits(&self, node: NodeId) -> bool {
        let now = Instant::now();
        if let Some(allowed) = self.remembered(&node, now) {
            return allowed;
        }
        let Ok(_lookup) = self.lookups.clone().try_acquire_owned() else {
            tracing::debug!(node = %node.short(), "relay refused: too many tracker lookups at once");
            return false;
        };
        match self.tracker.relay_access(&node).await {
            Ok(answer) if answer.node != node => {
                tracing::warn!(node = %node.short(), "relay refused: the tracker answered for another key");
                false
            }
            Ok(answer) => {
                tracing::debug!(node = %node.short(), allowed = answer.allowed, reason = %answer.reason, "relay access");
                self.remember(node, answer.allowed, Instant::now());
                answer.allowed
            }
            Err(e) => {
                tracing::warn!(node = %node.short(), "relay refused: no answer from the tracker: {e}");
                false
            }
        }
    }

    fn remembered(&self, node: &NodeId, now: Instant) -> Option<bool> {
        let answers = self.answers.lock().ok()?;
        let (allowed, at) = answers.get(node)?;
        let keep = if *allowed { ADMITTED_FOR } else { REFUSED_FOR };
        (now.saturating_duration_since(*at) < keep).then_some(*allowed)
    }

    fn remember(&self, node: NodeId, allowed: bool, now: Instant) {
        let Ok(mut answers) = self.answers.lock() else {
            return;
        };
        if answers.len() >= self.capacity && !answers.contains_key(&node) {
            answers.retain(|_, (allowed, at)| {
                let keep = if *allowed { ADMITTED_FOR } else { REFUSED_FOR };
                now.saturating_duration_since(*at) < keep
            });
            if answers.len() >= self.capacity {
                // Still full of live answers: forget the oldest.
                if let Some(oldest) = answers
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(n, _)| *n)
                {
                    answers.remove(&oldest);
                }
            }
        }
        answers.insert(node, (allowed, now));
    }
}

impl AccessControl for TrackerAccess {
    async fn on_connect(&self, request: &ClientRequest) -> Access {
        if self.admits(NodeId(*request.endpoint_id().as_bytes())).await {
            Access::Allow
        } else {
            Access::Deny {
                reason: Some("not admitted by the network's tracker".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn remembered_answers_expire_and_stay_within_the_cache() {
        let access = TrackerAccess::new("http://127.0.0.1:9/", 2).unwrap();
        let (a, b, c) = (NodeId([1; 32]), NodeId([2; 32]), NodeId([3; 32]));
        let start = Instant::now();
        access.remember(a, true, start);
        access.remember(b, false, start);
        assert_eq!(access.remembered(&a, start), Some(true));
        assert_eq!(access.remembered(&b, start), Some(false));
        // A refusal is asked again sooner than an admission.
        let later = start + REFUSED_FOR;
        assert_eq!(access.remembered(&b, later), None);
        assert_eq!(access.remembered(&a, later), Some(true));
        assert_eq!(access.remembered(&a, start + ADMITTED_FOR), None);
        // Full: the expired refusal makes room; full of live answers, the oldest goes.
        access.remember(c, true, later);
        assert_eq!(access.answers.lock().unwrap().len(), 2);
        assert_eq!(access.remembered(&b, later), None);
        access.remember(b, true, later + Duration::from_secs(1));
        assert_eq!(access.answers.lock().unwrap().len(), 2);
        assert_eq!(access.remembered(&a, later), None, "the oldest was kept");
    }

    #[tokio::test]
    async fn an_unreachable_tracker_refuses_and_is_asked_again() {
        // Port 9 (discard) on loopback: nothing listens.
        let access = TrackerAccess::new("http://127.0.0.1:9/", 16).unwrap();
        assert!(!access.admits(NodeId([7; 32])).await);
        assert!(access.answers.lock().unwrap().is_empty());
    }

    #[test]
    fn a_tracker_that_is_not_an_http_url_is_refused_naming_the_flag() {
        let error = TrackerAccess::new("ftp://tracker", 16).unwrap_err();
        assert!(format!("{error:#}").contains("--admit-from"), "{error:#}");
    }
}
