//! The oracle's tracker, seen from a node: announcing what this node holds, finding peers
//! for a content id ([`TrackerClient`] implements [`PeerSource`]), and forwarding the
//! receipts a seeder holds in batches, deleting each only after the oracle acknowledged it.
//!
//! The JSON shapes are the oracle's (`oracle/API.md`); only the fields a node needs are
//! read here.

use std::sync::Arc;
use std::time::Duration;

use dsi_protocol::{Announcement, ContentId, PayoutAccount, SignedAnnouncement, SignedReceipt};
use reqwest::Url;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::NodeError;
use crate::peers::{PeerSource, parse_peer_url};
use crate::server::NodeState;

/// A client for one oracle.
#[derive(Clone, Debug)]
pub struct TrackerClient {
    base: Url,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct AnnounceAnswer {
    unknown_contents: Vec<ContentId>,
}

#[derive(Deserialize)]
struct PeersAnswer {
    peers: Vec<PeerEntry>,
}

#[derive(Deserialize)]
struct PeerEntry {
    url: String,
}

#[derive(Deserialize)]
struct ReceiptsAnswer {
    results: Vec<VerdictEntry>,
}

#[derive(Deserialize)]
struct VerdictEntry {
    status: String,
    code: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    code: String,
    message: String,
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
        let base = parse_peer_url(url)
            .map_err(|e| NodeError::Usage(e.to_string().replace("peer URL", "tracker URL")))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| NodeError::Usage(format!("cannot build an HTTP client: {e}")))?;
        Ok(Self { base, client })
    }

    fn url(&self, path: &str) -> Result<Url, NodeError> {
        self.base
            .join(path)
            .map_err(|e| NodeError::Usage(format!("bad tracker path {path}: {e}")))
    }

    async fn check(response: reqwest::Response) -> Result<reqwest::Response, NodeError> {
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let detail = match response.json::<ErrorAnswer>().await {
            Ok(e) => format!("{}: {}", e.code, e.message),
            Err(_) => String::new(),
        };
        Err(NodeError::Tracker(format!(
            "tracker answered {status} {detail}"
        )))
    }

    fn unreachable(&self, error: reqwest::Error) -> NodeError {
        NodeError::Tracker(format!("tracker {} unreachable: {error}", self.base))
    }

    /// Announces; registers any manifest the tracker lacks from `manifest_bytes`.
    pub async fn announce(
        &self,
        signed: &SignedAnnouncement,
        manifest_bytes: impl Fn(&ContentId) -> Option<Vec<u8>>,
    ) -> Result<(), NodeError> {
        let response = self
            .client
            .post(self.url("v1/announce")?)
            .json(signed)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let answer: AnnounceAnswer = Self::check(response)
            .await?
            .json()
            .await
            .map_err(|e| self.unreachable(e))?;
        for content in answer.unknown_contents {
            let Some(bytes) = manifest_bytes(&content) else {
                continue;
            };
            let response = self
                .client
                .post(self.url("v1/manifests")?)
                .body(bytes)
                .send()
                .await
                .map_err(|e| self.unreachable(e))?;
            Self::check(response).await?;
        }
        Ok(())
    }

    /// Sends receipts; returns per receipt `None` (accepted) or the rule that refused it.
    pub async fn forward(
        &self,
        receipts: &[SignedReceipt],
    ) -> Result<Vec<Option<String>>, NodeError> {
        let response = self
            .client
            .post(self.url("v1/receipts")?)
            .json(&serde_json::json!({ "receipts": receipts }))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let answer: ReceiptsAnswer = Self::check(response)
            .await?
            .json()
            .await
            .map_err(|e| self.unreachable(e))?;
        if answer.results.len() != receipts.len() {
            return Err(NodeError::Tracker(format!(
                "tracker answered {} verdicts for {} receipts",
                answer.results.len(),
                receipts.len()
            )));
        }
        Ok(answer
            .results
            .into_iter()
            .map(|v| match v.status.as_str() {
                "accepted" => None,
                _ => Some(v.code.unwrap_or_else(|| "rejected".into())),
            })
            .collect())
    }
}

impl PeerSource for TrackerClient {
    async fn peers(&self, content: &ContentId) -> Result<Vec<Url>, NodeError> {
        let response = self
            .client
            .get(self.url(&format!("v1/content/{content}/peers"))?)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let answer: PeersAnswer = Self::check(response)
            .await?
            .json()
            .await
            .map_err(|e| self.unreachable(e))?;
        answer
            .peers
            .iter()
            .map(|p| parse_peer_url(&p.url))
            .collect()
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

/// One announcement of this node's current holdings.
pub async fn announce_once(
    state: &NodeState,
    tracker: &TrackerClient,
    public_url: &str,
    payout: PayoutAccount,
) -> Result<(), NodeError> {
    let state_contents = complete_contents(state);
    let announcement = Announcement {
        node: state.node_id,
        url: public_url.to_string(),
        payout,
        contents: state_contents,
        issued_at_ms: crate::now_ms(),
    };
    let signed = SignedAnnouncement::sign(announcement, &state.config.network, state.key());
    tracker
        .announce(&signed, |content| {
            state.store.manifest_bytes(content).ok().flatten()
        })
        .await
}

/// Forwards every pending receipt, in batches, until none is left or the tracker fails.
pub async fn forward_pending(
    state: &NodeState,
    tracker: &TrackerClient,
) -> Result<Forwarded, NodeError> {
    let mut total = Forwarded::default();
    let batch = state.config.tracker.forward_batch.max(1);
    loop {
        let pending = state
            .receipts
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
        let settled: Vec<(SignedReceipt, Option<String>)> =
            pending.into_iter().zip(verdicts).collect();
        state
            .receipts
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
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = announce.tick() => {
                match announce_once(&state, &tracker, &public_url, payout).await {
                    Ok(()) => tracing::debug!("announced"),
                    Err(error) => tracing::warn!(%error, "announce failed; will retry"),
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
