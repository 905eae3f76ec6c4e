//! The replicator (`serve --replicate SIZE`): within SIZE bytes (and the disk quota), the
//! node fetches funded content below its target replication, best paid per byte first,
//! and drops what it fetched once it is no longer needed.
//!
//! Each round asks the oracle's public `GET /v1/replication` (every funded content, its
//! counted replicas, what one replica earns per epoch), then:
//!
//! 1. **Drops** each replica it fetched (listed in `replicas.json` in the data directory;
//!    content the operator added, pinned or downloaded is never touched) that is no longer
//!    funded, or whose content has its target of counted replicas without this node (the
//!    close counts one node per network, longest-proven first, so a surplus replica earns
//!    nothing). Its chunks go unless another held content names them.
//! 2. **Fetches** at most one content: the best paid per byte among those below target
//!    that it does not hold and that fit in what is left of SIZE, through the swarm engine
//!    `get` uses (peers from the tracker, every chunk verified and paid with a receipt),
//!    after the disk quota made room. The manifest is stored last, so an interrupted fetch
//!    is not announced and resumes at the next round. The announcement loop announces it.
//!
//! A content that failed to fetch waits a few rounds before it is tried again.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dsi_api::oracle::{Replication, ReplicationEntry};
use dsi_protocol::{ChunkId, ContentId};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::NodeError;
use crate::download::{DownloadOptions, Downloader};
use crate::server::NodeState;
use crate::tracker::TrackerClient;

/// How long a content that failed to fetch waits before the replicator tries it again, in
/// rounds.
const BACKOFF_ROUNDS: u32 = 5;

/// The replicas this node fetched (`replicas.json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replicas {
    /// Content fetched by the replicator and still held.
    pub contents: Vec<ContentId>,
}

impl Replicas {
    fn path(state: &NodeState) -> PathBuf {
        state.store.root().join("replicas.json")
    }

    /// Reads `replicas.json` (empty when absent).
    pub fn load(state: &NodeState) -> Result<Self, NodeError> {
        let path = Self::path(state);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| NodeError::DataDir {
                path,
                reason: format!("unreadable replica list: {e}"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(NodeError::DataDir {
                path,
                reason: e.to_string(),
            }),
        }
    }

    fn save(&self, state: &NodeState) -> Result<(), NodeError> {
        let path = Self::path(state);
        let tmp = path.with_extension("json.tmp");
        let io = |e: std::io::Error| NodeError::Io {
            action: "cannot write",
            path: path.clone(),
            reason: e.to_string(),
        };
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| NodeError::Usage(e.to_string()))?;
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }
}

/// What one round did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Replicas dropped.
    pub dropped: Vec<ContentId>,
    /// The content fetched, if any.
    pub fetched: Option<ContentId>,
}

/// The replicator's memory between rounds.
pub struct Replicator {
    state: Arc<NodeState>,
    tracker: TrackerClient,
    downloader: Downloader,
    max_bytes: u64,
    failed: HashMap<ContentId, u32>,
}

/// Which replicas to drop: those not funded any more (absent from `answer`), and those
/// whose content has its target of counted replicas without `me`.
pub fn surplus(
    answer: &Replication,
    held: &[ContentId],
    me: &dsi_protocol::NodeId,
) -> Vec<ContentId> {
    let funded: HashMap<ContentId, &ReplicationEntry> =
        answer.contents.iter().map(|e| (e.content, e)).collect();
    held.iter()
        .filter(|content| match funded.get(content) {
            None => true,
            Some(entry) => entry.holder_count >= entry.target && !entry.holders.contains(me),
        })
        .copied()
        .collect()
}

/// The content to fetch next: below target, not held, not waiting after a failure, and
/// fitting in `room` bytes; the best paid per byte first.
pub fn next_to_fetch(
    answer: &Replication,
    holds: impl Fn(&ContentId) -> bool,
    waiting: impl Fn(&ContentId) -> bool,
    room: u64,
) -> Option<&ReplicationEntry> {
    let mut candidates: Vec<&ReplicationEntry> = answer
        .contents
        .iter()
        .filter(|e| {
            e.wanted() > 0
                && e.per_replica_per_epoch > 0
                && e.length <= room
                && !holds(&e.content)
                && !waiting(&e.content)
        })
        .collect();
    candidates.sort_by(|a, b| ReplicationEntry::better_paid(a, b));
    candidates.into_iter().next()
}

impl Replicator {
    /// A replicator for `state` holding at most `max_bytes` of replicas, asking `tracker`.
    pub fn new(state: Arc<NodeState>, tracker: TrackerClient, max_bytes: u64) -> Self {
        let config = &state.config;
        let downloader = Downloader::new(
            state.key().clone(),
            config.network.clone(),
            config.epochs,
            DownloadOptions {
                progress: false,
                ..DownloadOptions::from_config(&config.download)
            },
        );
        Self {
            state,
            tracker,
            downloader,
            max_bytes,
            failed: HashMap::new(),
        }
    }

    fn holds_completely(&self, content: &ContentId) -> bool {
        match self.state.store.manifest(content) {
            Ok(Some(manifest)) => {
                self.state.store.held(&manifest).count() == manifest.chunk_count()
            }
            _ => false,
        }
    }

    /// One round: drop what is no longer needed, then fetch at most one content.
    pub async fn round(&mut self, token: &CancellationToken) -> Result<Round, NodeError> {
        let answer = self.tracker.replication().await?;
        let mut replicas = Replicas::load(&self.state)?;
        // Forget replicas the quota evicted (or the operator removed).
        replicas.contents.retain(|c| self.holds_completely(c));
        let mut round = Round::default();
        for content in surplus(&answer, &replicas.contents, &self.state.node_id) {
            if self.state.store.is_pinned(&content) {
                continue;
            }
            self.drop_content(&content).await?;
            replicas.contents.retain(|c| *c != content);
            replicas.save(&self.state)?;
            tracing::info!(%content, "replicator: dropped a replica no longer needed");
            round.dropped.push(content);
        }
        let used: u64 = replicas
            .contents
            .iter()
            .filter_map(|c| self.state.store.manifest(c).ok().flatten())
            .map(|m| m.size)
            .sum();
        let room = self.max_bytes.saturating_sub(used);
        for count in self.failed.values_mut() {
            *count = count.saturating_sub(1);
        }
        self.failed.retain(|_, count| *count > 0);
        let dropped: HashSet<ContentId> = round.dropped.iter().copied().collect();
        let Some(entry) = next_to_fetch(
            &answer,
            |c| self.holds_completely(c) || dropped.contains(c),
            |c| self.failed.contains_key(c),
            room,
        )
        .cloned() else {
            return Ok(round);
        };
        match self.fetch(&entry, token).await {
            Ok(()) => {
                replicas.contents.push(entry.content);
                replicas.save(&self.state)?;
                tracing::info!(
                    content = %entry.content,
                    bytes = entry.length,
                    per_replica_per_epoch = %entry.per_replica_per_epoch,
                    "replicator: fetched a funded content below its target"
                );
                round.fetched = Some(entry.content);
            }
            Err(NodeError::Interrupted) => return Err(NodeError::Interrupted),
            Err(error) => {
                tracing::warn!(content = %entry.content, %error, "replicator: fetch failed; trying others first");
                self.failed.insert(entry.content, BACKOFF_ROUNDS);
            }
        }
        Ok(round)
    }

    /// Fetches `entry`'s content into the store: room first, the chunks, then the manifest.
    async fn fetch(
        &self,
        entry: &ReplicationEntry,
        token: &CancellationToken,
    ) -> Result<(), NodeError> {
        let mut swarm = self
            .downloader
            .join(&entry.content, &self.tracker, None)
            .await?;
        let manifest = swarm.manifest().clone();
        let held = self.state.store.held(&manifest);
        let needed: Vec<usize> = (0..manifest.chunk_count())
            .filter(|i| !held.get(*i))
            .collect();
        let need: u64 = needed
            .iter()
            .map(|&i| u64::from(manifest.chunk_len(i)))
            .sum();
        let protect: HashSet<ChunkId> = manifest.chunks.iter().copied().collect();
        self.state
            .quota
            .make_room(&self.state.store, need, protect)
            .await?;
        let fetched = self
            .downloader
            .fetch_chunks(&mut swarm, &self.state.store, &needed, token)
            .await;
        self.downloader.leave(swarm).await;
        fetched?;
        self.state.store.put_manifest(&manifest)?;
        Ok(())
    }

    /// Removes `content`'s manifest and the chunks no other held content names.
    async fn drop_content(&self, content: &ContentId) -> Result<(), NodeError> {
        let store = self.state.store.clone();
        let content = *content;
        tokio::task::spawn_blocking(move || -> Result<(), NodeError> {
            let Some(manifest) = store.manifest(&content)? else {
                return Ok(());
            };
            store.remove_manifest(&content)?;
            let kept: HashSet<ChunkId> = store
                .list()?
                .into_iter()
                .flat_map(|(_, m)| m.chunks)
                .collect();
            for chunk in manifest.chunks.iter().filter(|c| !kept.contains(c)) {
                store.remove_chunk(chunk)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| NodeError::Usage(format!("replicator task failed: {e}")))?
    }
}

/// Runs rounds every `serve.replicate_interval_secs` until `token` fires.
pub async fn run(
    state: Arc<NodeState>,
    tracker: TrackerClient,
    max_bytes: u64,
    token: CancellationToken,
) {
    let every = Duration::from_secs(state.config.serve.replicate_interval_secs.max(1));
    tracing::info!(max_bytes, every_secs = every.as_secs(), "replicator on");
    let mut replicator = Replicator::new(state, tracker, max_bytes);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = ticks.tick() => {
                let started = Instant::now();
                match replicator.round(&token).await {
                    Ok(round) => tracing::debug!(?round, elapsed = ?started.elapsed(), "replicator round"),
                    Err(NodeError::Interrupted) => break,
                    Err(error) => tracing::warn!(%error, "replicator round failed; will retry"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsi_protocol::{Epoch, NodeId};

    fn entry(n: u8, length: u64, pay: u128, target: u32, holders: &[u8]) -> ReplicationEntry {
        ReplicationEntry {
            content: ContentId([n; 32]),
            length,
            target,
            holders: holders
                .iter()
                .take(target as usize)
                .map(|h| NodeId([*h; 32]))
                .collect(),
            holder_count: holders.len() as u32,
            per_epoch: pay * u128::from(target),
            per_replica_per_epoch: pay,
        }
    }

    #[test]
    fn the_best_paid_per_byte_that_fits_and_is_wanted_comes_first() {
        let answer = Replication {
            closed_epoch: Some(Epoch(1)),
            contents: vec![
                entry(1, 1000, 10, 3, &[9]),     // 0.01 per byte
                entry(2, 100, 5, 3, &[9]),       // 0.05 per byte
                entry(3, 10, 100, 2, &[8, 9]),   // at its target: not wanted
                entry(4, 10_000, 9_000, 3, &[]), // 0.9 per byte, too large
                entry(5, 100, 0, 3, &[]),        // pays nothing
            ],
        };
        let pick = |holds: &[u8], room| {
            next_to_fetch(&answer, |c| holds.contains(&c.0[0]), |_| false, room)
                .map(|e| e.content.0[0])
        };
        assert_eq!(pick(&[], 5000), Some(2));
        assert_eq!(pick(&[2], 5000), Some(1));
        assert_eq!(pick(&[], 20_000), Some(4));
        assert_eq!(pick(&[1, 2], 5000), None);
        assert_eq!(pick(&[], 50), None, "nothing fits");
    }

    #[test]
    fn replicas_go_when_unfunded_or_counted_without_this_node() {
        let me = NodeId([7; 32]);
        let answer = Replication {
            closed_epoch: Some(Epoch(1)),
            contents: vec![
                entry(1, 10, 1, 2, &[7, 8]),    // counted: keep
                entry(2, 10, 1, 2, &[8, 9]),    // at target without me: drop
                entry(3, 10, 1, 2, &[8]),       // below target: keep (not counted yet)
                entry(4, 10, 1, 2, &[8, 9, 7]), // over target, I am third: drop
            ],
        };
        let held: Vec<ContentId> = [1, 2, 3, 4, 5].map(|n| ContentId([n; 32])).to_vec();
        let gone: Vec<u8> = surplus(&answer, &held, &me)
            .iter()
            .map(|c| c.0[0])
            .collect();
        assert_eq!(gone, vec![2, 4, 5], "5 is funded no more");
    }
}
