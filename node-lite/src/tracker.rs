//! The oracle's tracker, seen from a node: announcing what this node holds, finding peers
//! for a content id ([`TrackerClient`] implements [`PeerSource`]), and forwarding the
//! receipts a seeder holds in batches, deleting each only after the oracle acknowledged it.
//!
//! The calls and their JSON are `dsi_service::OracleClient` and `dsi_api::oracle`, the same
//! the oracle serves.

use std::sync::Arc;
use std::time::Duration;

use dsi_api::oracle::Credit;
use dsi_api::{ErrorCode, MAX_RECEIPT_BATCH, RejectionCode};
use dsi_protocol::{
    Announcement, ChunkId, ContentId, Manifest, NodeId, PayoutAccount, SignedAnnouncement,
    SignedReceipt,
};
use dsi_service::{ClientError, OracleClient};
use reqwest::Url;
use tokio_util::sync::CancellationToken;

use crate::NodeError;
use crate::config::TrackerConfig;
use crate::peers::PeerSource;
use crate::server::NodeState;

/// A client for one oracle's tracker.
#[derive(Clone, Debug)]
pub struct TrackerClient {
    oracle: OracleClient,
}

fn tracker_error(error: ClientError) -> NodeError {
    NodeError::Tracker(error.to_string())
}

/// What one forwarding round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Forwarded {
    /// Accepted by the oracle (deleted here).
    pub accepted: usize,
    /// Refused by a rule (kept with the rule's code).
    pub rejected: usize,
}

impl TrackerClient {
    /// A client for the oracle at `url`.
    pub fn new(url: &str) -> Result<Self, NodeError> {
        dsi_service::parse_base_url(url, "tracker URL").map_err(NodeError::Usage)?;
        let oracle = OracleClient::new(url).map_err(tracker_error)?;
        Ok(Self { oracle })
    }

    /// A client whose connections to the oracle leave from `source`.
    pub fn from_source(url: &str, source: std::net::IpAddr) -> Result<Self, NodeError> {
        dsi_service::parse_base_url(url, "tracker URL").map_err(NodeError::Usage)?;
        let oracle = OracleClient::from_source(url, Duration::from_secs(30), Some(source))
            .map_err(tracker_error)?;
        Ok(Self { oracle })
    }

    /// The credit of `downloader` in the oracle's funding ledger.
    pub async fn credit(&self, downloader: &NodeId) -> Result<Credit, NodeError> {
        self.oracle.credit(downloader).await.map_err(tracker_error)
    }

    /// Who funds `content` now, and who holds it (the oracle's public funding answer).
    pub async fn funding(
        &self,
        content: &ContentId,
    ) -> Result<dsi_api::oracle::ContentFunding, NodeError> {
        self.oracle.funding(content).await.map_err(tracker_error)
    }

    /// Funded contents, their counted replicas and pay per replica (`GET /v1/replication`).
    pub async fn replication(&self) -> Result<dsi_api::oracle::Replication, NodeError> {
        self.oracle.replication().await.map_err(tracker_error)
    }

    /// An epoch's state: open (with its receipts so far) or closed.
    pub async fn epoch(
        &self,
        epoch: dsi_protocol::Epoch,
    ) -> Result<dsi_api::oracle::EpochInfo, NodeError> {
        self.oracle.epoch(epoch).await.map_err(tracker_error)
    }

    /// The oracle's record of `seeder`: reputation, audits, leaves.
    pub async fn seeder(
        &self,
        seeder: &NodeId,
    ) -> Result<dsi_api::oracle::SeederResponse, NodeError> {
        self.oracle.seeder(seeder).await.map_err(tracker_error)
    }

    /// Sends a signed pause, resume or exit. A refusal (a pause too long, a resume when
    /// not paused, an exited key) is a usage error naming the rule.
    pub async fn availability(
        &self,
        signed: &dsi_protocol::SignedAvailability,
    ) -> Result<dsi_api::oracle::AvailabilityResponse, NodeError> {
        self.oracle
            .availability(signed)
            .await
            .map_err(|e| match e.code() {
                Some(ErrorCode::NodeExited) => NodeError::Exited(e.to_string()),
                Some(code) if (400..500).contains(&code.status()) => {
                    NodeError::Usage(e.to_string())
                }
                _ => tracker_error(e),
            })
    }

    /// The oracle's base URL.
    pub fn url(&self) -> &Url {
        self.oracle.url()
    }

    /// Announces `signed` (made by `state`'s node) and registers every manifest the tracker
    /// lacks, signed with the node key. A manifest refused `chunk_length_conflict` (another
    /// manifest registered one of its chunks first with a false length) is registered again
    /// after proving the true lengths of the chunks this node holds ([`Self::settle_lengths`]).
    /// A manifest that is still refused is logged and skipped; the others are registered.
    pub async fn announce(
        &self,
        signed: &SignedAnnouncement,
        state: &NodeState,
    ) -> Result<(), NodeError> {
        let answer = self.oracle.announce(signed).await.map_err(|e| {
            if e.code() == Some(ErrorCode::NodeExited) {
                NodeError::Exited(e.to_string())
            } else {
                tracker_error(e)
            }
        })?;
        for content in answer.unknown_contents {
            let Some(bytes) = state.store.manifest_bytes(&content).ok().flatten() else {
                continue;
            };
            // One manifest the tracker refuses (a quota, a conflicting chunk this node does
            // not hold) must not keep the others from being registered.
            if let Err(e) = self.register(state, &bytes).await {
                tracing::warn!(%content, error = %e, "the tracker refused a manifest");
            }
        }
        Ok(())
    }

    /// Registers one manifest; on `chunk_length_conflict` proves the chunks this node holds
    /// whose registered lengths differ, then registers again.
    async fn register(&self, state: &NodeState, bytes: &[u8]) -> Result<(), NodeError> {
        let network = &state.config.network;
        match self
            .oracle
            .register_manifest(bytes.to_vec(), state.key(), network)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(ErrorCode::ChunkLengthConflict) => {
                let proven = self.settle_lengths(state, bytes).await?;
                tracing::warn!(
                    proven,
                    "the tracker held false chunk lengths for a manifest; proved them with \
                     the chunks' bytes"
                );
                self.oracle
                    .register_manifest(bytes.to_vec(), state.key(), network)
                    .await
                    .map(|_| ())
                    .map_err(tracker_error)
            }
            Err(e) => Err(tracker_error(e)),
        }
    }

    /// Compares the lengths the tracker registered for the chunks of a manifest with the
    /// manifest's, and proves each that differs with the chunk's bytes (verified from this
    /// node's store; chunks it lacks are skipped). Returns how many were proven.
    pub async fn settle_lengths(
        &self,
        state: &NodeState,
        manifest_bytes: &[u8],
    ) -> Result<usize, NodeError> {
        let manifest = Manifest::from_bytes(manifest_bytes)
            .map_err(|e| NodeError::Tracker(format!("a stored manifest does not parse: {e}")))?;
        let ours = manifest.distinct_chunk_lengths();
        let ids: Vec<ChunkId> = ours.iter().map(|(c, _)| *c).collect();
        let theirs = self
            .oracle
            .chunk_lengths(&ids)
            .await
            .map_err(tracker_error)?;
        let mut proven = 0;
        for ((chunk, length), known) in ours.iter().zip(theirs) {
            if known.is_none_or(|k| k == *length) {
                continue;
            }
            let Some(bytes) = state.store.read_chunk_verified(chunk).ok().flatten() else {
                continue;
            };
            self.oracle
                .prove_chunk(chunk, bytes)
                .await
                .map_err(tracker_error)?;
            proven += 1;
        }
        Ok(proven)
    }

    /// The oracle's `GET /v1/info`.
    pub async fn info(&self) -> Result<dsi_api::oracle::Info, NodeError> {
        self.oracle.info().await.map_err(tracker_error)
    }

    /// Sends receipts; returns per receipt `None` (accepted) or the rule that refused it.
    pub async fn forward(
        &self,
        receipts: &[SignedReceipt],
    ) -> Result<Vec<Option<RejectionCode>>, NodeError> {
        let answer = self
            .oracle
            .submit_receipts(receipts)
            .await
            .map_err(tracker_error)?;
        Ok(answer.results.iter().map(|v| v.rejection()).collect())
    }
}

impl TrackerClient {
    /// The live peers holding `content`, as the tracker lists them (node id, HTTP URL and,
    /// if announced, the iroh endpoint).
    pub async fn peer_list(
        &self,
        content: &ContentId,
    ) -> Result<Vec<dsi_api::oracle::Peer>, NodeError> {
        let answer = self.oracle.peers(content).await.map_err(tracker_error)?;
        Ok(answer.peers)
    }
}

impl PeerSource for TrackerClient {
    /// The tracker's peers reachable over HTTP (those reached over iroh only are left out:
    /// [`crate::peers::Peers`] with a dialer reaches them).
    async fn peers(&self, content: &ContentId) -> Result<Vec<Url>, NodeError> {
        crate::peers::Peers {
            tracker: Some(self.clone()),
            ..crate::peers::Peers::default()
        }
        .peers(content)
        .await
    }
}

/// Where and as whom a serving node reports to the tracker, from `[tracker]`.
#[derive(Clone, Debug)]
pub struct TrackerSettings {
    /// The oracle.
    pub client: TrackerClient,
    /// Where this node's rewards go.
    pub payout: PayoutAccount,
    /// The URL other nodes reach this node at (empty: see [`TrackerSettings::public_url`]).
    pub public_url: String,
}

impl TrackerSettings {
    /// `None` when no tracker is configured; an error for a bad tracker URL or a missing
    /// or malformed payout account.
    pub fn from_config(config: &TrackerConfig) -> Result<Option<Self>, NodeError> {
        config.pinned_oracle().map_err(NodeError::Usage)?;
        if config.url.is_empty() {
            return Ok(None);
        }
        if config.payout.is_empty() {
            return Err(NodeError::Usage(
                "a tracker needs a payout account: --payout 0x<40 hex digits> (or [tracker] payout)"
                    .into(),
            ));
        }
        let payout = config.payout.parse::<PayoutAccount>().map_err(|e| {
            NodeError::Usage(format!("bad payout account {:?}: {e}", config.payout))
        })?;
        Ok(Some(Self {
            client: TrackerClient::new(&config.url)?,
            payout,
            public_url: config.public_url.clone(),
        }))
    }

    /// The same settings, talking to the tracker from [`announce_source`]'s address.
    pub fn announcing_from(self, listen: std::net::SocketAddr) -> Result<Self, NodeError> {
        match announce_source(listen, &self.public_url, self.client.url()) {
            Some(ip) => Ok(Self {
                client: TrackerClient::from_source(self.client.url().as_str(), ip)?,
                ..self
            }),
            None => Ok(self),
        }
    }

    /// The URL announced: the configured one, else `http://<bound address>` (which
    /// [`announced_url`] may replace by the node's iroh URL).
    pub fn public_url(&self, bound: std::net::SocketAddr) -> String {
        if self.public_url.is_empty() {
            format!("http://{bound}")
        } else {
            self.public_url.clone()
        }
    }
}

/// Content this node holds completely.
fn complete_contents(state: &NodeState) -> Vec<ContentId> {
    let Ok(list) = state.store.list() else {
        return Vec::new();
    };
    list.into_iter()
        .filter(|(_, manifest)| state.store.held(manifest).count() == manifest.chunk_count())
        .map(|(id, _)| id)
        .collect()
}

/// The URL a node announces: `iroh://NODE_ID/` when the URL it would announce was derived
/// (none configured) and points to loopback, where nobody else reaches it, while it
/// accepts peers over iroh on `relays` and the tracker audits over one of them
/// (`tracker_relays`, from its `GET /v1/info`): downloaders and audits then come over
/// iroh. Else `public_url` (a tracker without iroh would refuse the iroh URL, and one on
/// loopback accepts the loopback URL on a test network).
pub fn announced_url(
    public_url: &str,
    derived: bool,
    node: NodeId,
    relays: Option<&[String]>,
    tracker_relays: &[String],
) -> String {
    let normalized = |text: &String| Url::parse(text).map(|url| url.to_string()).ok();
    let shared_relay = relays.is_some_and(|ours| {
        let ours: Vec<Option<String>> = ours.iter().map(normalized).collect();
        tracker_relays
            .iter()
            .map(normalized)
            .any(|theirs| theirs.is_some() && ours.contains(&theirs))
    });
    let loopback = Url::parse(public_url)
        .ok()
        .as_ref()
        .and_then(ip_literal)
        .is_some_and(|ip| ip.is_loopback());
    if derived && loopback && shared_relay {
        return crate::transport::peer_url(&node).to_string();
    }
    if derived && loopback && relays.is_some() && !tracker_relays.is_empty() {
        tracing::warn!(
            ?tracker_relays,
            ours = ?relays,
            "the tracker audits over iroh through relays this node does not use: announcing \
             the loopback URL, which a public tracker refuses; add one of its relays to \
             [iroh] relays"
        );
    }
    public_url.to_string()
}

/// The address a URL names as its host, if it names one rather than a host name.
fn ip_literal(url: &Url) -> Option<std::net::IpAddr> {
    let host = url
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']');
    host.parse().ok()
}

/// One announcement of this node's current holdings.
pub async fn announce_once(
    state: &NodeState,
    tracker: &TrackerClient,
    public_url: &str,
    payout: PayoutAccount,
) -> Result<(), NodeError> {
    // The tracker's oracle audits this node: learn its key (and check the network) before
    // every announcement, so the first challenge is answered and a new oracle key is
    // followed.
    let info = tracker.info().await?;
    if info.network != state.config.network {
        return Err(NodeError::Tracker(format!(
            "the tracker runs network {}, this node {}",
            info.network, state.config.network
        )));
    }
    state
        .audits
        .trust(info.oracle)
        .map_err(|pinned| other_oracle(info.oracle, pinned, "not announcing to it"))?;
    let state_contents = complete_contents(state);
    let url = announced_url(
        public_url,
        state.config.tracker.public_url.is_empty(),
        state.node_id,
        state
            .iroh
            .get()
            .map(|_| state.config.iroh.relays.as_slice()),
        &info.relays,
    );
    let announcement = Announcement {
        node: state.node_id,
        url,
        payout,
        contents: state_contents,
        issued_at_ms: dsi_protocol::now_ms(),
        endpoint: state.iroh.get().map(|endpoint| {
            crate::transport::announced_endpoint(endpoint, &state.config.iroh.endpoint())
        }),
    };
    let signed = SignedAnnouncement::sign(announcement, &state.config.network, state.key());
    tracker.announce(&signed, state).await
}

/// A tracker naming another oracle key than the pinned one (`[tracker] oracle_key`): what
/// this node does not do with it.
fn other_oracle(named: NodeId, pinned: NodeId, refused: &str) -> NodeError {
    NodeError::Tracker(format!(
        "the tracker names oracle key {named}, this node answers {pinned} only ([tracker] \
         oracle_key): {refused} (a wrong tracker URL, or someone between this node and the \
         tracker)"
    ))
}

/// Forwards every pending receipt, in batches, until none is left or the tracker fails.
pub async fn forward_pending(
    state: &NodeState,
    tracker: &TrackerClient,
) -> Result<Forwarded, NodeError> {
    forward_all(
        &state.receipts,
        tracker,
        state.config.tracker.forward_batch,
        state.audits.pinned_key(),
    )
    .await
}

/// Forwards every pending receipt of `receipts` in batches of `batch`, until none is left
/// or the tracker fails; each is deleted only once acknowledged. With a `pinned` oracle key
/// (`[tracker] oracle_key`) nothing goes to a tracker that names another: its
/// acknowledgements would delete receipts the real oracle never saw.
pub async fn forward_all(
    receipts: &crate::receipts::ReceiptStore,
    tracker: &TrackerClient,
    batch: usize,
    pinned: Option<NodeId>,
) -> Result<Forwarded, NodeError> {
    if let Some(pinned) = pinned {
        let named = tracker.info().await?.oracle;
        if named != pinned {
            return Err(other_oracle(
                named,
                pinned,
                "receipts are not forwarded to it",
            ));
        }
    }
    let mut total = Forwarded::default();
    let batch = batch.clamp(1, MAX_RECEIPT_BATCH);
    loop {
        let pending = receipts
            .pending(batch)
            .await
            .map_err(|e| NodeError::Tracker(format!("reading receipts: {e}")))?;
        if pending.is_empty() {
            return Ok(total);
        }
        let verdicts = tracker.forward(&pending).await?;
        for verdict in &verdicts {
            match verdict {
                None => total.accepted += 1,
                Some(code) => {
                    total.rejected += 1;
                    tracing::warn!(%code, "oracle refused a forwarded receipt");
                }
            }
        }
        let settled: Vec<(SignedReceipt, Option<RejectionCode>)> =
            pending.into_iter().zip(verdicts).collect();
        receipts
            .settle(&settled)
            .await
            .map_err(|e| NodeError::Tracker(format!("recording verdicts: {e}")))?;
        if settled.len() < batch {
            return Ok(total);
        }
    }
}

/// Announces and forwards on timers until `token` fires; failures are logged and retried.
pub async fn run(
    state: Arc<NodeState>,
    tracker: TrackerClient,
    public_url: String,
    payout: PayoutAccount,
    token: CancellationToken,
) {
    let announce_every = Duration::from_secs(state.config.tracker.announce_interval_secs.max(1));
    let forward_every = Duration::from_secs(state.config.tracker.forward_interval_secs.max(1));
    let mut announce = tokio::time::interval(announce_every);
    let mut forward = tokio::time::interval(forward_every);
    let mut exited = false;
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = announce.tick(), if !exited => {
                match announce_once(&state, &tracker, &public_url, payout).await {
                    Ok(()) => tracing::debug!("announced"),
                    Err(NodeError::Exited(error)) => {
                        // Receipts still go out (the oracle pays an exited key's receipts).
                        tracing::error!(%error, "this node exited the network: announcements stopped");
                        exited = true;
                    }
                    Err(error) => {
                        // Retried soon, not a whole interval later: a node the tracker
                        // does not list is neither found nor paid.
                        let soon = announce_every.min(Duration::from_secs(5));
                        tracing::warn!(%error, retry_in_secs = soon.as_secs(), "announce failed; will retry");
                        announce.reset_after(soon);
                    }
                }
            }
            _ = forward.tick() => {
                match forward_pending(&state, &tracker).await {
                    Ok(done) if done.accepted + done.rejected > 0 => {
                        tracing::info!(accepted = done.accepted, rejected = done.rejected, "receipts forwarded");
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "forwarding receipts failed; will retry"),
                }
            }
        }
    }
    // A last round so receipts do not wait for the next start.
    if let Err(error) = forward_pending(&state, &tracker).await {
        tracing::warn!(%error, "final forwarding failed; receipts stay for the next start");
    }
}

/// The address a node listening on `listen` announces from (`None`: any). The oracle
/// locates a node (one replica place per /24 or /48 network) by the address its
/// announcement comes from, and the announced URL must point into that network, so a node
/// listening on one address announces from it. A node listening on every address of one
/// family announces over that family (`0.0.0.0`: IPv4, so a dual-stack host does not
/// announce from its IPv6 network a URL that names an IPv4 address); on `[::]`, over the
/// family of the public URL's address when it is one. Not across loopback (a loopback
/// source cannot reach another host, nor another host's address a loopback oracle).
pub fn announce_source(
    listen: std::net::SocketAddr,
    public_url: &str,
    tracker: &Url,
) -> Option<std::net::IpAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let literal = ip_literal;
    let ip = match listen.ip() {
        IpAddr::V6(v6) if v6.is_unspecified() => {
            match Url::parse(public_url).ok().as_ref().and_then(literal)? {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            }
        }
        ip => ip,
    };
    let tracker_loopback = literal(tracker).map_or_else(
        || {
            tracker
                .host_str()
                .is_some_and(|h| h.eq_ignore_ascii_case("localhost"))
        },
        |h| h.is_loopback(),
    );
    (ip.is_unspecified() || ip.is_loopback() == tracker_loopback).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_node_with_iroh_announces_its_iroh_url_only_to_a_tracker_that_audits_over_iroh() {
        let node = dsi_protocol::SecretKey::from_seed(&[4; 32]).node_id();
        let iroh = format!("iroh://{node}/");
        let ours = vec!["http://relay.example:3340".to_string()];
        let theirs = vec!["http://relay.example:3340/".to_string()];
        let local = "http://127.0.0.1:7070";
        assert_eq!(announced_url(local, true, node, Some(&ours), &theirs), iroh);
        // A tracker without iroh (or on other relays) gets the URL it can check.
        assert_eq!(announced_url(local, true, node, Some(&ours), &[]), local);
        let elsewhere = vec!["http://other.example:3340".to_string()];
        assert_eq!(
            announced_url(local, true, node, Some(&ours), &elsewhere),
            local
        );
        // iroh off, a configured URL, or a URL others reach: unchanged.
        assert_eq!(announced_url(local, true, node, None, &theirs), local);
        assert_eq!(
            announced_url(local, false, node, Some(&ours), &theirs),
            local
        );
        let public = "http://203.0.113.5:7070";
        assert_eq!(
            announced_url(public, true, node, Some(&ours), &theirs),
            public
        );
    }

    #[test]
    fn a_node_announces_over_the_address_or_family_it_listens_on() {
        let remote = "http://oracle.example:7400/";
        let local = "http://127.0.0.1:7400/";
        // (listen, public URL, tracker, source)
        let cases = [
            // One address: from it.
            ("203.0.113.5:7401", "", remote, Some("203.0.113.5")),
            // Every IPv4 address: over IPv4 (a dual-stack host must not announce over IPv6).
            (
                "0.0.0.0:7401",
                "http://203.0.113.5:7401",
                remote,
                Some("0.0.0.0"),
            ),
            ("0.0.0.0:7401", "", local, Some("0.0.0.0")),
            // Every address of both families: the public URL's family, else any.
            (
                "[::]:7401",
                "http://203.0.113.5:7401",
                remote,
                Some("0.0.0.0"),
            ),
            ("[::]:7401", "http://[2001:db8::5]:7401", remote, Some("::")),
            ("[::]:7401", "http://seeder.example:7401", remote, None),
            // Not across loopback.
            ("127.0.1.1:7401", "", remote, None),
            ("127.0.1.1:7401", "", local, Some("127.0.1.1")),
            ("203.0.113.5:7401", "", local, None),
        ];
        for (listen, public, tracker, source) in cases {
            let listen = listen.parse::<std::net::SocketAddr>().expect("addr");
            let tracker = Url::parse(tracker).expect("url");
            let source = source.map(|s| s.parse::<std::net::IpAddr>().expect("ip"));
            assert_eq!(
                announce_source(listen, public, &tracker),
                source,
                "{listen} {public:?} {tracker}"
            );
        }
    }
}
