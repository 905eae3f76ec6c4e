//! The serving side of the node-to-node transport over iroh: [`dsi_transport`] dials
//! (QUIC connections whose TLS identity is the node key, hole punching, the network's own
//! relays); this module accepts peers and serves them.
//!
//! The protocol on ALPN [`ALPN`] (`dsi/1`) is HTTP/1.1, one request per bidirectional QUIC
//! stream, over one connection per peer: the same routes, bodies, error codes, receipt
//! gating and upload caps as the HTTP API, served by the same `axum` handlers
//! ([`crate::server::peer_routes`]). Only the routes nodes use with each other are served,
//! plus audits: node info, content list, manifest, have, chunks, receipts and the oracle's
//! audit challenges (no gateway, dashboard or metrics).
//!
//! A peer reached over iroh is named by its node id; inside the downloader it is the URL
//! `iroh://NODE_ID/` ([`peer_url`]), so peer lists mix HTTP seeders and iroh peers.
//!
//! What a seeder counts a downloader's unpaid chunks against: the downloader's IP address
//! while the connection runs on a direct path, and an address made from its key when it is
//! relayed ([`PeerService`]). Relayed peers hold at most half of the slots: through a
//! relay keys are all that tells peers apart, and keys are free. The node's trusted
//! auditor (its tracker's oracle key) is admitted past every cap and never evicted: a
//! seeder kept full by others still answers its audits.

pub use dsi_transport::{
    ALPN, Body, BoxError, DialError, Dialer, SCHEME, announced_endpoint, direct_path, peer_node,
    peer_url,
};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use dsi_protocol::{NodeId, SecretKey};
use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler};

use crate::NodeError;
use crate::config::IrohConfig;

/// Binds an iroh endpoint keyed by `key` with the relays and sockets of `config`
/// ([`dsi_transport::bind`]); with `accept` it accepts connections on [`ALPN`].
pub async fn bind(
    key: &SecretKey,
    config: &IrohConfig,
    accept: bool,
) -> Result<iroh::Endpoint, NodeError> {
    dsi_transport::bind(key, &config.endpoint(), accept)
        .await
        .map_err(NodeError::from)
}

impl From<dsi_transport::TransportError> for NodeError {
    fn from(error: dsi_transport::TransportError) -> Self {
        match error {
            dsi_transport::TransportError::Config(message) => NodeError::Usage(message),
            dsi_transport::TransportError::Bind { address, reason } => NodeError::Server {
                address,
                reason: format!("binding the iroh endpoint: {reason}"),
            },
        }
    }
}

/// The address a seeder counts a connection's unpaid chunks against: the remote IP on a
/// direct path; on a relayed path, an address of the private range `fd00::/8` made from the
/// remote key, so each relayed key is bounded by itself (a relay hides the address, and one
/// shared bucket would let one relayed leecher lock every relayed downloader out).
fn counted_address(connection: &Connection) -> SocketAddr {
    match direct_path(connection) {
        Some(address) => address,
        None => SocketAddr::from((relayed_address(&connection.remote_id()), 0)),
    }
}

/// The address a relayed key is counted under: `fd` followed by the first 7 bytes of the
/// key, so the /64 the ledger groups by holds one key.
fn relayed_address(node: &iroh::EndpointId) -> std::net::IpAddr {
    let mut octets = [0u8; 16];
    octets[0] = 0xfd;
    octets[1..8].copy_from_slice(&node.as_bytes()[..7]);
    std::net::IpAddr::V6(octets.into())
}

/// How long a seeder waits, when a peer arrives through a relay, for hole punching to find
/// a direct path before it serves (and counts) the peer as relayed.
const DIRECT_PATH_WAIT: Duration = Duration::from_secs(2);

/// How long a connection may go without completing an exchange or being written answer
/// bytes, with no exchange in progress, before the seeder closes it (iroh keeps
/// connections alive, so an idle peer would otherwise hold its slot for ever).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection that was written no [`FRESH_BYTES`] of content (chunks, manifests) for
/// this long (or since it was admitted) gives its slot to a newcomer when the seeder is
/// full (the stalest first). Other exchanges (node info, have, receipts) keep a connection
/// from idling out, not from being evicted: anyone can repeat them for next to nothing,
/// while holding a slot this way costs a peer content moved to it, at least
/// `FRESH_BYTES` per `EVICT_AFTER` (6.4 KiB/s).
pub const EVICT_AFTER: Duration = Duration::from_secs(10);

/// Content bytes written to a peer (answer heads included, a few hundred bytes each) that
/// keep its connection fresh for another [`EVICT_AFTER`].
pub const FRESH_BYTES: u64 = 64 * 1024;

/// Connections one key may hold at once; its newest wins (a peer reconnecting after a lost
/// connection is not locked out by the dead one).
pub const MAX_CONNECTIONS_PER_KEY: usize = 2;

/// Connections one address group (an IPv4 address or an IPv6 /64, as the receipt ledger
/// counts) may hold at once over direct paths.
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 16;

/// How long a peer may take to complete its QUIC handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes a full seeder takes at once (see [`PeerService::incoming_filter`]).
pub const MAX_HANDSHAKES_WHEN_FULL: usize = 8;

/// Of those, handshakes from one address group.
pub const HANDSHAKES_PER_GROUP_WHEN_FULL: usize = 2;

/// Of those, handshakes arriving through a relay (each relayed key is a group of its own,
/// and keys are free): the other places stay for peers with a real address.
pub const RELAYED_HANDSHAKES_WHEN_FULL: usize = MAX_HANDSHAKES_WHEN_FULL / 2;

/// The share of a seeder's connections peers without a direct path may hold (see
/// [`PeerService::new`]): `max_connections / RELAYED_SHARE_DIVISOR`, at least one.
pub const RELAYED_SHARE_DIVISOR: usize = 2;

/// How long a stream may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A stream whose reads and writes stay blocked past this is dropped; bytes moved at
/// [`MIN_STREAM_RATE`] or more keep extending it (a slow honest peer keeps its stream, a
/// peer trickling a byte now and then loses it).
const STREAM_STALL: Duration = Duration::from_secs(30);

/// The most a stream's HTTP reader buffers (a request head; bodies stream through).
const MAX_STREAM_BUFFER: usize = 64 * 1024;

/// Bytes per second that keep a stream's deadline moving.
const MIN_STREAM_RATE: u64 = 4 * 1024;

/// The server side: each accepted stream is one HTTP/1.1 exchange with `routes`.
#[derive(Clone, Debug)]
pub struct PeerService {
    routes: axum::Router,
    peers: Arc<std::sync::Mutex<Peers>>,
    /// Connections that arrived through a relay, between their handshake and admission
    /// (waiting for a direct path): bounded like the relayed ones admitted, so a flood of
    /// them holds no unbounded tasks and keeps out no peer arriving on a direct path
    /// (admitted at once, without waiting).
    waiting: Arc<tokio::sync::Semaphore>,
    limits: PeerLimits,
    tasks: tokio_util::task::TaskTracker,
    privileged: Privileged,
    /// Handshakes let in while the seeder was full: where from, since when.
    handshakes: Arc<std::sync::Mutex<Vec<Handshake>>>,
}

/// A handshake let in while the seeder was full: where from, its address group, since when.
type Handshake = (
    iroh::endpoint::IncomingAddr,
    std::net::IpAddr,
    std::time::Instant,
);

/// Which keys are admitted past every cap (the node's trusted auditor).
#[derive(Clone)]
struct Privileged(Arc<dyn Fn(&NodeId) -> bool + Send + Sync>);

impl std::fmt::Debug for Privileged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Privileged")
    }
}

/// What a [`PeerService`] bounds.
#[derive(Clone, Copy, Debug)]
struct PeerLimits {
    max_connections: usize,
    per_key: usize,
    per_address: usize,
    /// Most connections without a direct path.
    relayed: usize,
    idle: Duration,
    evict_after: Duration,
}

impl PeerService {
    /// Serves `routes` (`server::peer_routes`) to at most `max_connections` peers at once
    /// ([`MAX_CONNECTIONS_PER_KEY`] per key, [`MAX_CONNECTIONS_PER_ADDRESS`] per address
    /// group, and at most `max_connections / RELAYED_SHARE_DIVISOR` (at least one) for
    /// peers still without a direct path after [`DIRECT_PATH_WAIT`]: through a relay keys
    /// are the only thing told apart, and keys are free, so once relayed peers hold their
    /// share a relayed newcomer evicts only a relayed peer; below it, the stalest of all),
    /// closing connections idle for [`IDLE_TIMEOUT`] and, when full, giving the slot of the
    /// stalest connection (no chunk served for [`EVICT_AFTER`]) to a newcomer. A relayed
    /// peer that finds a direct path later moves to its address group (if it has room).
    pub fn new(routes: axum::Router, max_connections: usize) -> Self {
        let max_connections = max_connections.max(1);
        let relayed = (max_connections / RELAYED_SHARE_DIVISOR).max(1);
        Self {
            routes,
            peers: Arc::default(),
            waiting: Arc::new(tokio::sync::Semaphore::new(relayed)),
            limits: PeerLimits {
                max_connections,
                per_key: MAX_CONNECTIONS_PER_KEY,
                per_address: MAX_CONNECTIONS_PER_ADDRESS,
                relayed,
                idle: IDLE_TIMEOUT,
                evict_after: EVICT_AFTER,
            },
            tasks: tokio_util::task::TaskTracker::new(),
            privileged: Privileged(Arc::new(|_| false)),
            handshakes: Arc::default(),
        }
    }

    /// Admits the keys `privileged` accepts past every cap, and never evicts them: the
    /// node's trusted auditor (its tracker's oracle key, known once it announced), so that
    /// peers keeping a seeder full cannot make it miss its audits.
    pub fn privileged(
        mut self,
        privileged: impl Fn(&NodeId) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.privileged = Privileged(Arc::new(privileged));
        self
    }

    /// Closes connections idle for `idle` and evicts those not kept fresh by content for
    /// `evict_after` instead (tests).
    pub fn timeouts(mut self, idle: Duration, evict_after: Duration) -> Self {
        self.limits.idle = idle;
        self.limits.evict_after = evict_after;
        self
    }

    /// Admits at most `per_address` connections per address group instead (tests: every
    /// loopback peer is one address).
    pub fn per_address(mut self, per_address: usize) -> Self {
        self.limits.per_address = per_address.max(1);
        self
    }

    /// The tasks serving streams: a stopping node closes and waits for them (after the
    /// router shut down) before it saves its counts.
    pub fn tasks(&self) -> tokio_util::task::TaskTracker {
        self.tasks.clone()
    }

    /// A filter for `iroh::protocol::RouterBuilder::incoming_filter`: refuses, before any
    /// handshake work, a peer whose address group is at its cap with no connection there
    /// to evict, so a flood of attempts from one address costs the seeder little. A full
    /// seeder (nothing evictable) asks a direct peer to prove its address first (a QUIC
    /// Retry: spoofed sources never come back), then holds [`MAX_HANDSHAKES_WHEN_FULL`]
    /// places for handshakes, [`HANDSHAKES_PER_GROUP_WHEN_FULL`] per address group (a
    /// relayed key is its own group) and [`RELAYED_HANDSHAKES_WHEN_FULL`] for arrivals
    /// through a relay, each place for at most [`HANDSHAKE_TIMEOUT`], and
    /// refuses the rest: a key is known only after its handshake. The auditor dials
    /// through the relay, which names its key before the handshake: it is always let in.
    pub fn incoming_filter(&self) -> iroh::protocol::IncomingFilter {
        let peers = self.peers.clone();
        let handshakes = self.handshakes.clone();
        let privileged = self.privileged.clone();
        let limits = self.limits;
        Arc::new(move |incoming: &iroh::endpoint::Incoming| {
            use iroh::endpoint::IncomingAddr;
            use iroh::protocol::IncomingFilterOutcome;
            let remote = incoming.remote_addr();
            if let IncomingAddr::Relay { endpoint_id, .. } = &remote
                && (privileged.0)(&NodeId(*endpoint_id.as_bytes()))
            {
                return IncomingFilterOutcome::Accept;
            }
            let Ok(peers) = peers.lock() else {
                return IncomingFilterOutcome::Reject;
            };
            let now = std::time::Instant::now();
            let group = match &remote {
                IncomingAddr::Ip(address) => {
                    let group = crate::server::ledger::address_group(address.ip());
                    if peers.group_full(Some(group), &limits, now) {
                        return IncomingFilterOutcome::Reject;
                    }
                    group
                }
                IncomingAddr::Relay { endpoint_id, .. } => {
                    crate::server::ledger::address_group(relayed_address(endpoint_id))
                }
                _ => return IncomingFilterOutcome::Reject,
            };
            // Through a relay, the relayed share is what fills (it may find a direct path
            // yet, so it is not refused outright: it takes a handshake place).
            let full = peers.all_full(&limits, now)
                || (matches!(remote, IncomingAddr::Relay { .. })
                    && peers.relayed_full(&limits, now));
            if !full {
                return IncomingFilterOutcome::Accept;
            }
            if matches!(remote, IncomingAddr::Ip(_)) && !incoming.remote_addr_validated() {
                return IncomingFilterOutcome::Retry;
            }
            let Ok(mut handshakes) = handshakes.lock() else {
                return IncomingFilterOutcome::Reject;
            };
            handshakes.retain(|(_, _, started)| {
                now.saturating_duration_since(*started) < HANDSHAKE_TIMEOUT
            });
            if !has_handshake_place(&handshakes, &remote, group) {
                return IncomingFilterOutcome::Reject;
            }
            handshakes.push((remote, group, now));
            IncomingFilterOutcome::Accept
        })
    }
}

/// Whether a full seeder holding `handshakes` takes one more from `remote` (in address
/// group `group`): [`MAX_HANDSHAKES_WHEN_FULL`] in all, [`HANDSHAKES_PER_GROUP_WHEN_FULL`]
/// per group, [`RELAYED_HANDSHAKES_WHEN_FULL`] through relays (fresh keys through a relay
/// are fresh groups; this keeps places for peers with real addresses).
fn has_handshake_place(
    handshakes: &[Handshake],
    remote: &iroh::endpoint::IncomingAddr,
    group: std::net::IpAddr,
) -> bool {
    let relayed = |from: &iroh::endpoint::IncomingAddr| {
        matches!(from, iroh::endpoint::IncomingAddr::Relay { .. })
    };
    let from_group = handshakes.iter().filter(|(_, g, _)| *g == group).count();
    let from_relays = handshakes
        .iter()
        .filter(|(from, _, _)| relayed(from))
        .count();
    handshakes.len() < MAX_HANDSHAKES_WHEN_FULL
        && from_group < HANDSHAKES_PER_GROUP_WHEN_FULL
        && (!relayed(remote) || from_relays < RELAYED_HANDSHAKES_WHEN_FULL)
}

/// The connections a [`PeerService`] holds.
#[derive(Debug, Default)]
struct Peers {
    next: u64,
    live: HashMap<u64, Peer>,
}

#[derive(Debug)]
struct Peer {
    node: iroh::EndpointId,
    /// The address group it connected from over a direct path (none when relayed).
    group: Option<std::net::IpAddr>,
    since: std::time::Instant,
    activity: Arc<Activity>,
    connection: Connection,
    /// Admitted past the caps ([`PeerService::privileged`]): not counted, not evicted.
    privileged: bool,
}

/// A connection's exchanges: when it last completed one or was written answer bytes (how
/// long it has been idle); when it was last written [`FRESH_BYTES`] of content (how stale
/// it is, for eviction: node info and the like cost nothing to ask for again and again);
/// how many are in progress.
#[derive(Debug)]
struct Activity {
    times: std::sync::Mutex<Times>,
    busy: std::sync::atomic::AtomicUsize,
}

#[derive(Debug)]
struct Times {
    last: std::time::Instant,
    fresh: std::time::Instant,
    /// Content bytes written since `fresh` was last moved.
    content: u64,
}

impl Activity {
    /// A connection admitted at `now`: neither idle nor stale yet.
    fn new(now: std::time::Instant) -> Self {
        Self {
            times: std::sync::Mutex::new(Times {
                last: now,
                fresh: now,
                content: 0,
            }),
            busy: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn times(&self) -> std::sync::MutexGuard<'_, Times> {
        // A poisoned lock only means a panic mid-update of plain numbers.
        self.times
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// When it last completed an exchange or was written answer bytes.
    fn last(&self) -> std::time::Instant {
        self.times().last
    }

    /// When it was last written [`FRESH_BYTES`] of content (or admitted).
    fn fresh(&self) -> std::time::Instant {
        self.times().fresh
    }

    /// Records activity now: `content` bytes of content written (0 for anything else).
    fn touch(&self, content: u64) {
        let now = std::time::Instant::now();
        let mut times = self.times();
        times.last = now;
        times.content = times.content.saturating_add(content);
        if times.content >= FRESH_BYTES {
            times.fresh = now;
            times.content = 0;
        }
    }

    fn busy(&self) -> usize {
        self.busy.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Why a connection was not admitted.
const REFUSED_FULL: &[u8] = b"too many peers connected";

impl Peers {
    /// The stalest connection among those `matching`, if it was not kept fresh by content
    /// for `evict_after`.
    fn evictable(
        &self,
        limits: &PeerLimits,
        now: std::time::Instant,
        matching: impl Fn(u64, &Peer) -> bool,
    ) -> Option<u64> {
        self.live
            .iter()
            .filter(|(id, peer)| !peer.privileged && matching(**id, peer))
            .map(|(id, peer)| (*id, peer.activity.fresh()))
            .filter(|(_, last)| now.saturating_duration_since(*last) >= limits.evict_after)
            .min_by_key(|(_, last)| *last)
            .map(|(id, _)| id)
    }

    /// How many connections are `matching` (privileged ones are not counted).
    fn count(&self, matching: impl Fn(u64, &Peer) -> bool) -> usize {
        self.live
            .iter()
            .filter(|(id, peer)| !peer.privileged && matching(**id, peer))
            .count()
    }

    /// Whether a newcomer from address group `group` would be refused.
    fn group_full(
        &self,
        group: Option<std::net::IpAddr>,
        limits: &PeerLimits,
        now: std::time::Instant,
    ) -> bool {
        let Some(group) = group else { return false };
        let in_group = |_: u64, peer: &Peer| peer.group == Some(group);
        self.count(in_group) >= limits.per_address
            && self.evictable(limits, now, in_group).is_none()
    }

    /// Whether a newcomer would be refused for want of room.
    fn all_full(&self, limits: &PeerLimits, now: std::time::Instant) -> bool {
        self.count(|_, _| true) >= limits.max_connections
            && self.evictable(limits, now, |_, _| true).is_none()
    }

    /// Whether a relayed newcomer would be refused for want of room in the relayed share.
    fn relayed_full(&self, limits: &PeerLimits, now: std::time::Instant) -> bool {
        let relayed = |_: u64, peer: &Peer| peer.group.is_none();
        self.count(relayed) >= limits.relayed && self.evictable(limits, now, relayed).is_none()
    }

    /// Admits `connection` from `node` (from address group `group` over a direct path),
    /// closing the connections it displaces; `None` if there is no room. A `privileged`
    /// key passes the address and total caps (its own per-key cap still holds).
    fn admit(
        &mut self,
        limits: &PeerLimits,
        node: iroh::EndpointId,
        group: Option<std::net::IpAddr>,
        connection: &Connection,
        privileged: bool,
    ) -> Option<(u64, Arc<Activity>)> {
        let now = std::time::Instant::now();
        // The key's oldest connections make way for its newest.
        let mut own: Vec<(u64, std::time::Instant)> = self
            .live
            .iter()
            .filter(|(_, peer)| peer.node == node)
            .map(|(id, peer)| (*id, peer.since))
            .collect();
        own.sort_by_key(|(_, since)| *since);
        let surplus = (own.len() + 1).saturating_sub(limits.per_key);
        let mut evict: Vec<u64> = own.iter().take(surplus).map(|(id, _)| *id).collect();
        if !privileged {
            // Peers from the newcomer's address group, or all relayed peers for a relayed
            // newcomer: at their cap, the stalest of them makes way (or the newcomer is
            // refused), never a peer from elsewhere.
            let (cap, same_source) = match group {
                Some(_) => (limits.per_address, group),
                None => (limits.relayed, None),
            };
            let alike = |id: u64, peer: &Peer| peer.group == same_source && !evict.contains(&id);
            if self.count(alike) >= cap {
                // The key's own older connection there first (a peer reconnecting after a
                // lost connection), else the stalest.
                let own_there = own.iter().map(|(id, _)| *id).find(|id| {
                    self.live
                        .get(id)
                        .is_some_and(|peer| !peer.privileged && alike(*id, peer))
                });
                let id = match own_there {
                    Some(id) => id,
                    None => self.evictable(limits, now, alike)?,
                };
                evict.push(id);
            }
        }
        let staying = |id: u64, _: &Peer| !evict.contains(&id);
        if !privileged && self.count(staying) >= limits.max_connections {
            let id = self.evictable(limits, now, staying)?;
            evict.push(id);
        }
        for id in evict {
            if let Some(peer) = self.live.remove(&id) {
                tracing::debug!(peer = %peer.node.fmt_short(), "iroh peer evicted for a newcomer");
                peer.connection
                    .close(2u32.into(), b"evicted for a newcomer");
            }
        }
        let id = self.next;
        self.next += 1;
        let activity = Arc::new(Activity::new(now));
        self.live.insert(
            id,
            Peer {
                node,
                group,
                since: now,
                activity: activity.clone(),
                connection: connection.clone(),
                privileged,
            },
        );
        Some((id, activity))
    }

    /// Moves connection `id`, admitted as relayed, to address group `group` once it found a
    /// direct path there (freeing its relayed slot), if the group has room; whether it did.
    fn found_direct_path(&mut self, id: u64, group: std::net::IpAddr, limits: &PeerLimits) -> bool {
        let in_group = |_: u64, peer: &Peer| peer.group == Some(group);
        if self.count(in_group) >= limits.per_address {
            return false;
        }
        match self.live.get_mut(&id) {
            Some(peer) if peer.group.is_none() => {
                peer.group = Some(group);
                true
            }
            _ => false,
        }
    }
}

/// Removes a connection from the registry when its handler ends.
struct Admitted {
    peers: Arc<std::sync::Mutex<Peers>>,
    id: u64,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Ok(mut peers) = self.peers.lock() {
            peers.live.remove(&self.id);
        }
    }
}

/// Marks an exchange in progress on a connection from its request until dropped.
struct Exchange {
    activity: Arc<Activity>,
    started: std::sync::atomic::AtomicBool,
    /// Its answer carries content ([`crate::server::ContentAnswer`]).
    content: std::sync::atomic::AtomicBool,
}

impl Exchange {
    fn new(activity: Arc<Activity>) -> Self {
        Self {
            activity,
            started: std::sync::atomic::AtomicBool::new(false),
            content: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn start(&self) {
        if !self.started.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.activity
                .busy
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Records activity on its connection now: `written` answer bytes (0: the exchange
    /// completed), counted as content if the answer is content.
    fn touch(&self, written: usize) {
        let content = self.content.load(std::sync::atomic::Ordering::SeqCst);
        self.activity
            .touch(if content { written as u64 } else { 0 });
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if self.started.load(std::sync::atomic::Ordering::SeqCst) {
            self.activity
                .busy
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

impl ProtocolHandler for PeerService {
    /// Completes the handshake within [`HANDSHAKE_TIMEOUT`] (a peer that stalls it holds
    /// state no longer), then frees its place among the handshakes of a full seeder.
    async fn on_accepting(
        &self,
        accepting: iroh::endpoint::Accepting,
    ) -> Result<Connection, AcceptError> {
        let remote = accepting.remote_addr();
        let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, accepting).await;
        if let Ok(mut handshakes) = self.handshakes.lock()
            && let Some(at) = handshakes.iter().position(|(from, _, _)| *from == remote)
        {
            handshakes.swap_remove(at);
        }
        Ok(handshake.map_err(AcceptError::from_err)??)
    }

    async fn accept(&self, connection: Connection) -> Result<(), AcceptError> {
        let node = connection.remote_id();
        let privileged = (self.privileged.0)(&NodeId(*node.as_bytes()));
        let address = match direct_path(&connection) {
            Some(address) => Some(address),
            None => {
                // A peer arriving through a relay usually finds a direct path within a
                // moment; serve it (and count its debts) by address once it has. Only so
                // many wait at once (the relayed share): the rest are admitted at once as
                // relayed (moved to their address group if a direct path turns up later).
                match self.waiting.clone().try_acquire_owned() {
                    Ok(waiting) => {
                        let deadline = tokio::time::Instant::now() + DIRECT_PATH_WAIT;
                        let address =
                            dsi_transport::wait_for(deadline, || direct_path(&connection)).await;
                        drop(waiting);
                        address
                    }
                    Err(_) => None,
                }
            }
        };
        let group = address.map(|address| crate::server::ledger::address_group(address.ip()));
        // A peer whose address group is full may still take a relayed slot.
        let admitted = self.peers.lock().ok().and_then(|mut peers| {
            peers
                .admit(&self.limits, node, group, &connection, privileged)
                .map(|admitted| (admitted, group))
                .or_else(|| {
                    group?;
                    peers
                        .admit(&self.limits, node, None, &connection, privileged)
                        .map(|admitted| (admitted, None))
                })
        });
        let Some(((id, activity), group)) = admitted else {
            connection.close(1u32.into(), REFUSED_FULL);
            return Ok(());
        };
        let _admitted = Admitted {
            peers: self.peers.clone(),
            id,
        };
        tracing::debug!(peer = %node.fmt_short(), "iroh peer connected");
        let mut relayed = group.is_none() && !privileged;
        loop {
            // A relayed peer that found a direct path leaves the relayed share (looked at
            // every second or stream while it is relayed).
            if relayed && let Some(direct) = direct_path(&connection) {
                let group = crate::server::ledger::address_group(direct.ip());
                relayed = !self
                    .peers
                    .lock()
                    .is_ok_and(|mut peers| peers.found_direct_path(id, group, &self.limits));
            }
            // When to look at idleness again: its deadline, or shortly while busy (or
            // relayed).
            let check = if activity.busy() > 0 {
                std::time::Instant::now() + self.limits.idle.min(Duration::from_secs(1))
            } else if relayed {
                (activity.last() + self.limits.idle)
                    .min(std::time::Instant::now() + Duration::from_secs(1))
            } else {
                activity.last() + self.limits.idle
            };
            let (send, recv) = tokio::select! {
                biased;
                stream = connection.accept_bi() => match stream {
                    Ok(stream) => stream,
                    Err(_) => break,
                },
                () = tokio::time::sleep_until(check.into()) => {
                    if activity.busy() == 0
                        && activity.last() + self.limits.idle <= std::time::Instant::now()
                    {
                        tracing::debug!(peer = %node.fmt_short(), "closing an idle iroh peer");
                        connection.close(0u32.into(), b"idle");
                        break;
                    }
                    continue;
                }
            };
            let address = counted_address(&connection);
            let routes = self.routes.clone();
            let exchange = Arc::new(Exchange::new(activity.clone()));
            self.tasks
                .spawn(serve_stream(routes, address, send, recv, exchange));
        }
        Ok(())
    }
}

/// Serves one exchange on a stream: the request head within [`HEADER_READ_TIMEOUT`], then
/// bytes moving at [`MIN_STREAM_RATE`] (see [`Paced`]).
async fn serve_stream(
    routes: axum::Router,
    address: SocketAddr,
    send: iroh::endpoint::SendStream,
    recv: iroh::endpoint::RecvStream,
    exchange: Arc<Exchange>,
) {
    let io = hyper_util::rt::TokioIo::new(Box::pin(
        Paced::new(
            ResetUnlessFinished {
                streams: tokio::io::join(recv, send),
                finished: false,
            },
            STREAM_STALL,
        )
        .reporting_to(exchange.clone()),
    ));
    let started = exchange.clone();
    let service =
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            started.start();
            request.extensions_mut().insert(ConnectInfo(address));
            let answer =
                tower::ServiceExt::oneshot(routes.clone(), request.map(axum::body::Body::new));
            let exchange = started.clone();
            async move {
                let response = answer.await?;
                if response
                    .extensions()
                    .get::<crate::server::ContentAnswer>()
                    .is_some()
                {
                    exchange
                        .content
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                }
                Ok::<_, std::convert::Infallible>(response)
            }
        });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(false)
        .half_close(true)
        .max_buf_size(MAX_STREAM_BUFFER)
        .serve_connection(io, service)
        .await;
    match served {
        Ok(()) if exchange.started.load(std::sync::atomic::Ordering::SeqCst) => {
            exchange.touch(0);
        }
        Ok(()) => {}
        Err(e) => tracing::debug!(error = %e, "iroh stream ended with an error"),
    }
}

/// The two halves of an exchange's QUIC stream; dropped before its answer was finished (a
/// stalled or failed exchange), it resets the stream (and stops reading), so that QUIC
/// drops what is queued for the peer instead of retransmitting it until the connection
/// ends (QUIC finishes a dropped stream, delivering everything written).
struct ResetUnlessFinished {
    streams: tokio::io::Join<iroh::endpoint::RecvStream, iroh::endpoint::SendStream>,
    finished: bool,
}

/// The code a stream is reset and stopped with when its exchange failed.
const EXCHANGE_FAILED: u32 = 1;

impl Drop for ResetUnlessFinished {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.streams.writer_mut().reset(EXCHANGE_FAILED.into());
            let _ = self.streams.reader_mut().stop(EXCHANGE_FAILED.into());
        }
    }
}

impl tokio::io::AsyncRead for ResetUnlessFinished {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().streams).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for ResetUnlessFinished {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().streams).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().streams).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let done = std::pin::Pin::new(&mut this.streams).poll_shutdown(cx);
        if matches!(done, std::task::Poll::Ready(Ok(()))) {
            this.finished = true;
        }
        done
    }
}

pin_project_lite::pin_project! {
    /// A stream that fails once its reads or writes stay blocked past a deadline: the
    /// deadline starts `stall` ([`STREAM_STALL`]) ahead, each byte moved pushes it on by
    /// 1/[`MIN_STREAM_RATE`] s, and it never lies more than `stall` ahead.
    struct Paced<T> {
        #[pin]
        inner: T,
        #[pin]
        sleep: tokio::time::Sleep,
        deadline: tokio::time::Instant,
        stall: Duration,
        // The exchange whose connection's activity bytes written to the peer refresh.
        exchange: Option<Arc<Exchange>>,
    }
}

impl<T> Paced<T> {
    /// `inner`, failing once blocked `stall` past the credit of the bytes it moved.
    fn new(inner: T, stall: Duration) -> Self {
        let deadline = tokio::time::Instant::now() + stall;
        Self {
            inner,
            sleep: tokio::time::sleep_until(deadline),
            deadline,
            stall,
            exchange: None,
        }
    }

    /// Counts bytes written to the peer as activity of the exchange's connection (a content
    /// transfer in progress is not stale, whatever its length).
    fn reporting_to(mut self, exchange: Arc<Exchange>) -> Self {
        self.exchange = Some(exchange);
        self
    }
}

impl<T> Paced<T> {
    /// Pushes the deadline on for `bytes` moved.
    fn moved(self: std::pin::Pin<&mut Self>, bytes: usize) {
        let this = self.project();
        let now = tokio::time::Instant::now();
        let credit =
            Duration::from_micros((bytes as u64).saturating_mul(1_000_000) / MIN_STREAM_RATE);
        let deadline = (*this.deadline).max(now) + credit;
        *this.deadline = deadline.min(now + *this.stall);
        let deadline = *this.deadline;
        this.sleep.reset(deadline);
    }

    /// `poll` as it is, unless it is blocked past the deadline: then the stall error
    /// (registering the deadline's waker otherwise).
    fn checked<R>(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        poll: std::task::Poll<std::io::Result<R>>,
    ) -> std::task::Poll<std::io::Result<R>> {
        match poll {
            std::task::Poll::Pending if self.project().sleep.poll(cx).is_ready() => {
                std::task::Poll::Ready(Err(stalled()))
            }
            other => other,
        }
    }
}

fn stalled() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "the peer moved too few bytes on this stream",
    )
}

impl<T: tokio::io::AsyncRead> tokio::io::AsyncRead for Paced<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match self.as_mut().project().inner.poll_read(cx, buf) {
            std::task::Poll::Ready(result) => {
                let read = buf.filled().len().saturating_sub(before);
                self.as_mut().moved(read);
                std::task::Poll::Ready(result)
            }
            pending => self.checked(cx, pending),
        }
    }
}

impl<T: tokio::io::AsyncWrite> tokio::io::AsyncWrite for Paced<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.as_mut().project().inner.poll_write(cx, buf) {
            std::task::Poll::Ready(Ok(written)) => {
                if written > 0
                    && let Some(exchange) = &self.exchange
                {
                    exchange.touch(written);
                }
                self.as_mut().moved(written);
                std::task::Poll::Ready(Ok(written))
            }
            other => self.checked(cx, other),
        }
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let poll = self.as_mut().project().inner.poll_flush(cx);
        self.checked(cx, poll)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let poll = self.as_mut().project().inner.poll_shutdown(cx);
        self.checked(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_seeder_keeps_handshake_places_for_peers_with_real_addresses() {
        use iroh::endpoint::IncomingAddr;
        let relay: iroh::RelayUrl = "http://127.0.0.1:3340/".parse().unwrap();
        let relayed = || {
            let key = SecretKey::generate(&mut rand::rngs::OsRng);
            let endpoint_id = iroh::EndpointId::from_bytes(&key.node_id().0).unwrap();
            let group = crate::server::ledger::address_group(relayed_address(&endpoint_id));
            (
                IncomingAddr::Relay {
                    url: relay.clone(),
                    endpoint_id,
                },
                group,
            )
        };
        let direct = |host: u8, port: u16| {
            let address = SocketAddr::from(([203, 0, 113, host], port));
            (
                IncomingAddr::Ip(address),
                crate::server::ledger::address_group(address.ip()),
            )
        };
        let now = std::time::Instant::now();
        let mut handshakes: Vec<Handshake> = Vec::new();
        let take = |handshakes: &mut Vec<Handshake>, (from, group)| {
            let place = has_handshake_place(handshakes, &from, group);
            if place {
                handshakes.push((from, group, now));
            }
            place
        };
        // Fresh keys through a relay (each a group of its own) take half the places...
        for _ in 0..RELAYED_HANDSHAKES_WHEN_FULL {
            assert!(take(&mut handshakes, relayed()));
        }
        assert!(
            !take(&mut handshakes, relayed()),
            "a relayed key past its share"
        );
        // ... the rest stay for real addresses, two per address group.
        assert!(take(&mut handshakes, direct(1, 1000)));
        assert!(take(&mut handshakes, direct(1, 1001)));
        assert!(
            !take(&mut handshakes, direct(1, 1002)),
            "a third from one address"
        );
        assert!(take(&mut handshakes, direct(2, 1000)));
        assert!(take(&mut handshakes, direct(3, 1000)));
        assert_eq!(handshakes.len(), MAX_HANDSHAKES_WHEN_FULL);
        assert!(!take(&mut handshakes, direct(4, 1000)), "past every place");
    }

    #[test]
    fn each_relayed_key_is_counted_in_its_own_address_group() {
        let a = iroh::SecretKey::from_bytes(&[1; 32]).public();
        let b = iroh::SecretKey::from_bytes(&[2; 32]).public();
        let group = |node| crate::server::ledger::address_group(relayed_address(&node));
        assert_ne!(group(a), group(b));
        assert_eq!(group(a), group(a));
        assert!(matches!(relayed_address(&a), std::net::IpAddr::V6(v6) if v6.octets()[0] == 0xfd));
    }

    #[tokio::test]
    async fn content_written_to_a_peer_keeps_its_connection_from_looking_stale() {
        // Eviction picks the connection kept fresh by content longest ago: a long transfer
        // in progress must count, or free keys could evict honest downloads; other answers
        // (node info, which anyone can ask for again and again) only keep it from idling,
        // and an answer's head alone (a peer that stops reading there) is not enough.
        use tokio::io::AsyncWriteExt;
        let Some(start) = std::time::Instant::now().checked_sub(Duration::from_secs(60)) else {
            return; // a machine up for less than a minute: nothing to go back to
        };
        let activity = Arc::new(Activity::new(start));
        let write_answer = |content: bool, len: usize| {
            let exchange = Arc::new(Exchange::new(activity.clone()));
            exchange.start();
            exchange
                .content
                .store(content, std::sync::atomic::Ordering::SeqCst);
            async move {
                let (near, mut far) = tokio::io::duplex(64 * 1024);
                let drain =
                    tokio::spawn(
                        async move { tokio::io::copy(&mut far, &mut tokio::io::sink()).await },
                    );
                let mut stream =
                    Box::pin(Paced::new(near, Duration::from_secs(5)).reporting_to(exchange));
                stream.write_all(&vec![7u8; len]).await.unwrap();
                drop(stream);
                drain.await.unwrap().unwrap();
            }
        };
        let fresh_bytes = usize::try_from(FRESH_BYTES).unwrap();
        write_answer(false, fresh_bytes * 2).await;
        assert!(activity.last() > start + Duration::from_secs(59));
        assert_eq!(activity.fresh(), start, "node info kept a peer fresh");
        write_answer(true, 300).await;
        assert_eq!(
            activity.fresh(),
            start,
            "an answer's head kept a peer fresh"
        );
        write_answer(true, fresh_bytes).await;
        assert!(activity.fresh() > start + Duration::from_secs(59));
        assert_eq!(
            activity.busy(),
            0,
            "a finished exchange still counted as busy"
        );
    }

    #[tokio::test]
    async fn a_stream_blocked_past_its_stall_time_fails_and_a_flowing_one_does_not() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let stall = Duration::from_millis(300);
        // Nobody reads the other end: the writer blocks once the 64-byte pipe is full.
        let (near, _far) = tokio::io::duplex(64);
        let mut stuck = Box::pin(Paced::new(near, stall));
        let started = std::time::Instant::now();
        let error = stuck.write_all(&[0u8; 4096]).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= stall);
        // A reader taking 1 KiB every 100 ms (10 KiB/s, above the minimum rate) keeps the
        // writer going for longer than the stall time.
        let (near, mut far) = tokio::io::duplex(1024);
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 1024];
            let mut total = 0;
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                match far.read(&mut buf).await {
                    Ok(0) | Err(_) => return total,
                    Ok(n) => total += n,
                }
            }
        });
        let mut flowing = Box::pin(Paced::new(near, stall));
        flowing.write_all(&[1u8; 8 * 1024]).await.unwrap();
        flowing.shutdown().await.unwrap();
        drop(flowing);
        assert_eq!(reader.await.unwrap(), 8 * 1024);
    }
}
