//! What a seeder wants to know at a glance, in one report: `node-lite status` prints it, the
//! dashboard (`/dashboard`, its data at `/dashboard/status.json`) draws it.
//!
//! From the node itself: holdings and the disk quota, egress against its budgets, receipts
//! waiting to be forwarded and those the oracle refused (by rule, each rule explained).
//! From the oracle's public API (`GET /v1/seeders/{node}`, when a tracker is configured):
//! earnings per epoch (what each leaf pays, for bandwidth and for storage, cumulative),
//! reputation (score, standing, factor, and the factor each epoch applied), and the audits
//! that moved it, the pause state, an estimate for the open epoch, and the claims (what
//! the chain paid out, what can be claimed now with `oracle claim`, what waits for its
//! epoch to become claimable).

use dsi_api::RejectionCode;
use dsi_api::oracle::{Audit, SeederResponse};
use dsi_protocol::{Epoch, NodeId};
use serde::Serialize;

use crate::NodeError;
use crate::commands::Report;
use crate::config::Config;
use crate::receipts::ReceiptStore;
use crate::server::budget::EgressCounts;
use crate::size::human_bytes;
use crate::store::ChunkStore;
use crate::tracker::TrackerClient;

/// The whole status.
#[derive(Clone, Debug, Serialize)]
pub struct StatusReport {
    /// This node.
    pub node_id: NodeId,
    /// Its network.
    pub network: String,
    /// This program's version.
    pub version: String,
    /// When it was read, Unix ms.
    pub at_ms: u64,
    /// The epoch now.
    pub epoch: Epoch,
    /// The tracker (oracle) it reports to, if any.
    pub tracker: Option<String>,
    /// Disk.
    pub storage: StorageStatus,
    /// Bandwidth.
    pub bandwidth: BandwidthStatus,
    /// Receipts held as a seeder.
    pub receipts: ReceiptStatus,
    /// The oracle's view, when it could be asked.
    pub oracle: Option<OracleStatus>,
    /// Why the oracle's view is missing (no tracker, unreachable, not known there yet).
    pub oracle_note: Option<String>,
}

/// Disk use.
#[derive(Clone, Debug, Serialize)]
pub struct StorageStatus {
    /// Bytes of chunks stored.
    pub stored_bytes: u64,
    /// The quota (0: none).
    pub max_bytes: u64,
    /// Contents with a manifest here.
    pub contents: usize,
    /// Of those, held completely (what is announced).
    pub complete: usize,
    /// Of those, pinned.
    pub pinned: usize,
}

/// Bandwidth against its limits.
#[derive(Clone, Debug, Serialize)]
pub struct BandwidthStatus {
    /// Sent this UTC day.
    pub day_bytes: u64,
    /// Sent this UTC month.
    pub month_bytes: u64,
    /// Budget per day (0: none).
    pub max_per_day: u64,
    /// Budget per month (0: none).
    pub max_per_month: u64,
    /// Upload rate cap, bytes/s (0: none).
    pub max_upload_bytes_per_sec: u64,
    /// Downloaders served at once (0: no cap).
    pub max_concurrent_downloaders: u32,
    /// Whether a budget is spent now (downloads are refused 503).
    pub spent: bool,
}

/// Receipts held.
#[derive(Clone, Debug, Serialize)]
pub struct ReceiptStatus {
    /// Not yet forwarded to the oracle (accepted ones are deleted once it answers).
    pub pending: u64,
    /// Refused by the oracle, per rule.
    pub refused: Vec<RefusedRule>,
}

/// Receipts the oracle refused under one rule.
#[derive(Clone, Debug, Serialize)]
pub struct RefusedRule {
    /// The rule code.
    pub code: String,
    /// How many.
    pub count: u64,
    /// What the rule means.
    pub meaning: String,
}

/// The oracle's view of this seeder.
#[derive(Clone, Debug, Serialize)]
pub struct OracleStatus {
    /// Reputation score, ppm.
    pub score: u32,
    /// Standing (`good`, `probation`, ...).
    pub standing: String,
    /// Reward factor now, ppm.
    pub factor: u32,
    /// Active, paused (the epochs) or exited, as the tracker holds it.
    pub availability: dsi_api::oracle::NodeAvailability,
    /// The same in words.
    pub availability_text: String,
    /// What the open epoch may pay (an upper bound: see `dsi_api::oracle::OpenEstimate`).
    pub open_epoch: Option<dsi_api::oracle::OpenEstimate>,
    /// Claimed on chain, claimable now, and waiting for their epochs to be claimable.
    pub claims: dsi_api::oracle::Claims,
    /// Earned in all, native units.
    pub cumulative: String,
    /// Earnings per closed epoch, newest first.
    pub epochs: Vec<EpochEarnings>,
    /// Audits, newest first.
    pub audits: Vec<Audit>,
    /// Audits passed and failed among them.
    pub audits_passed: usize,
    /// Audits failed among them.
    pub audits_failed: usize,
}

/// One epoch's leaf.
#[derive(Clone, Debug, Serialize)]
pub struct EpochEarnings {
    /// The epoch.
    pub epoch: Epoch,
    /// Paid by the leaf, native units.
    pub amount: String,
    /// Of it, for bandwidth (paid from downloaders' credit).
    pub bandwidth: String,
    /// Of it, for storage (funded content held and proven).
    pub storage: String,
    /// Earned up to and including it.
    pub cumulative: String,
    /// Bytes served.
    pub bytes_served: u64,
    /// Receipts counted.
    pub receipts: u64,
    /// Reputation factor applied, ppm.
    pub reputation: u32,
}

/// Where the status comes from.
pub struct Sources<'a> {
    /// This node.
    pub node_id: NodeId,
    /// Its configuration.
    pub config: &'a Config,
    /// Its store.
    pub store: &'a ChunkStore,
    /// Its receipt database.
    pub receipts: &'a ReceiptStore,
    /// Egress counted so far.
    pub egress: EgressCounts,
    /// The tracker to ask, if any.
    pub tracker: Option<&'a TrackerClient>,
}

/// Gathers the status.
pub async fn collect(sources: Sources<'_>) -> Result<StatusReport, NodeError> {
    let Sources {
        node_id,
        config,
        store,
        receipts,
        egress,
        tracker,
    } = sources;
    let reader = store.clone();
    let storage = tokio::task::spawn_blocking(move || -> Result<_, NodeError> {
        let list = reader.list()?;
        let complete = list
            .iter()
            .filter(|(_, m)| reader.held(m).count() == m.chunk_count())
            .count();
        let pinned = list.iter().filter(|(c, _)| reader.is_pinned(c)).count();
        Ok((reader.usage()?, list.len(), complete, pinned))
    })
    .await
    .map_err(|e| NodeError::Usage(format!("a store task failed: {e}")))??;
    let (pending, refused) = receipts
        .summary()
        .await
        .map_err(|e| NodeError::Usage(format!("reading receipts: {e}")))?;
    let refused = refused
        .into_iter()
        .map(|(code, count)| RefusedRule {
            meaning: code.parse::<RejectionCode>().map_or_else(
                |_| "a rule this version does not know".into(),
                |c| c.describe(),
            ),
            code,
            count,
        })
        .collect();
    let serve = &config.serve;
    let spent = (serve.max_egress_per_day > 0 && egress.day_bytes >= serve.max_egress_per_day)
        || (serve.max_egress_per_month > 0 && egress.month_bytes >= serve.max_egress_per_month);
    let (oracle, oracle_note) = match tracker {
        None => (
            None,
            Some("no tracker configured ([tracker] url)".to_string()),
        ),
        Some(tracker) => match tracker.seeder(&node_id).await {
            Ok(seeder) => (Some(oracle_status(seeder)), None),
            Err(e) => (None, Some(format!("the oracle did not answer: {e}"))),
        },
    };
    let now = dsi_protocol::now_ms();
    Ok(StatusReport {
        node_id,
        network: config.network.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        at_ms: now,
        epoch: config.epochs.epoch_at(now),
        tracker: tracker.map(|t| t.url().as_str().trim_end_matches('/').to_string()),
        storage: StorageStatus {
            stored_bytes: storage.0,
            max_bytes: config.storage.max_bytes,
            contents: storage.1,
            complete: storage.2,
            pinned: storage.3,
        },
        bandwidth: BandwidthStatus {
            day_bytes: egress.day_bytes,
            month_bytes: egress.month_bytes,
            max_per_day: serve.max_egress_per_day,
            max_per_month: serve.max_egress_per_month,
            max_upload_bytes_per_sec: serve.max_upload_bytes_per_sec,
            max_concurrent_downloaders: serve.max_concurrent_downloaders,
            spent,
        },
        receipts: ReceiptStatus { pending, refused },
        oracle,
        oracle_note,
    })
}

/// A node's availability in words (`node-lite status`, the dashboard).
pub fn availability_text(availability: dsi_api::oracle::NodeAvailability) -> String {
    use dsi_api::oracle::NodeAvailability;
    match availability {
        NodeAvailability::Active => "active".to_string(),
        NodeAvailability::Paused { from, until } => format!(
            "paused for epochs {from} to {} (not listed; not audited then)",
            until.0.saturating_sub(1)
        ),
        NodeAvailability::Exited { epoch } => format!("exited in epoch {epoch}"),
    }
}

fn oracle_status(seeder: SeederResponse) -> OracleStatus {
    let passed = seeder.audits.iter().filter(|a| a.passed()).count();
    OracleStatus {
        score: seeder.score,
        standing: serde_json::to_value(seeder.standing)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| format!("{:?}", seeder.standing).to_lowercase()),
        factor: seeder.factor,
        availability: seeder.availability,
        availability_text: availability_text(seeder.availability),
        open_epoch: seeder.open_epoch,
        claims: seeder.claims,
        cumulative: seeder.cumulative.to_string(),
        audits_passed: passed,
        audits_failed: seeder.audits.len() - passed,
        audits: seeder.audits,
        epochs: seeder
            .epochs
            .into_iter()
            .map(|leaf| EpochEarnings {
                epoch: leaf.epoch,
                amount: leaf.amount.to_string(),
                bandwidth: leaf.bandwidth_amount.to_string(),
                storage: leaf.storage_amount.to_string(),
                cumulative: leaf.cumulative.to_string(),
                bytes_served: leaf.bytes_served,
                receipts: leaf.receipts,
                reputation: leaf.reputation,
            })
            .collect(),
    }
}

fn of(used: u64, max: u64) -> String {
    if max == 0 {
        format!("{} (no limit)", human_bytes(used))
    } else {
        format!("{} of {}", human_bytes(used), human_bytes(max))
    }
}

impl Report for StatusReport {
    fn text(&self) -> String {
        let mut lines = vec![
            format!(
                "node      {} on {} (epoch {})",
                self.node_id, self.network, self.epoch.0
            ),
            format!(
                "storage   {}; {} contents ({} complete, {} pinned)",
                of(self.storage.stored_bytes, self.storage.max_bytes),
                self.storage.contents,
                self.storage.complete,
                self.storage.pinned
            ),
            format!(
                "egress    today {}, this month {}{}",
                of(self.bandwidth.day_bytes, self.bandwidth.max_per_day),
                of(self.bandwidth.month_bytes, self.bandwidth.max_per_month),
                if self.bandwidth.spent {
                    "; budget spent: downloads refused"
                } else {
                    ""
                }
            ),
            format!(
                "receipts  {} waiting to be forwarded",
                self.receipts.pending
            ),
        ];
        for rule in &self.receipts.refused {
            lines.push(format!(
                "          {} refused by the oracle: {} ({})",
                rule.count, rule.code, rule.meaning
            ));
        }
        match &self.oracle {
            Some(oracle) => {
                lines.push(format!(
                    "oracle    {}; reputation {} ppm ({}), factor {} ppm; earned {} in all",
                    self.tracker.as_deref().unwrap_or(""),
                    oracle.score,
                    oracle.standing,
                    oracle.factor,
                    oracle.cumulative
                ));
                lines.push(format!("state     {}", oracle.availability_text));
                lines.push(format!(
                    "claims    claimed {}; claimable now {} (oracle claim --seeder {}); waiting {}",
                    oracle
                        .claims
                        .claimed
                        .map_or_else(|| "unknown (no chain)".to_string(), |c| c.to_string()),
                    oracle.claims.claimable,
                    self.node_id,
                    oracle.claims.waiting
                ));
                if let Some(open) = &oracle.open_epoch {
                    lines.push(format!(
                        "open      epoch {}: {} receipts, {} so far; up to {} for bandwidth and {} for storage",
                        open.epoch,
                        open.receipts,
                        human_bytes(open.bytes),
                        open.bandwidth,
                        open.storage
                    ));
                }
                lines.push(format!(
                    "audits    {} passed, {} failed (latest {})",
                    oracle.audits_passed,
                    oracle.audits_failed,
                    oracle.audits.len()
                ));
                for epoch in oracle.epochs.iter().take(10) {
                    lines.push(format!(
                        "epoch {:<4} {} (bandwidth {}, storage {}), {} receipts, {} served, factor {} ppm",
                        epoch.epoch.0,
                        epoch.amount,
                        epoch.bandwidth,
                        epoch.storage,
                        epoch.receipts,
                        human_bytes(epoch.bytes_served),
                        epoch.reputation
                    ));
                }
            }
            None => lines.push(format!(
                "oracle    {}",
                self.oracle_note.as_deref().unwrap_or("not asked")
            )),
        }
        lines.join("\n")
    }
}
