//! `node-lite pause`, `resume` and `exit`: this node's signed availability notices to the
//! tracker ([`dsi_protocol::SignedAvailability`], `POST /v1/availability`).
//!
//! A pause starts after the current epoch, whose close still audits the node: the node
//! keeps serving until that close is done (`pause --wait` returns then). `exit` first forwards every receipt this node holds
//! (the oracle pays them to the payout account the node announced), then tells the tracker,
//! marks the data directory (`exited.json`: `serve` no longer announces), and lists what
//! the oracle owes and how it is claimed.

use dsi_api::oracle::{AvailabilityResponse, Leaf, NodeAvailability};
use dsi_protocol::{Availability, Epoch, NodeId, SignedAvailability};
use serde::{Deserialize, Serialize};

use crate::commands::{Report, tracker_for};
use crate::receipts::ReceiptStore;
use crate::tracker::TrackerClient;
use crate::{DataDir, NodeError};

/// What `exited.json` in the data directory says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitMark {
    /// The epoch the node exited in.
    pub epoch: Epoch,
    /// When (Unix ms).
    pub at_ms: u64,
    /// The network it left (marks written before this field lack it).
    #[serde(default)]
    pub network: Option<dsi_protocol::NetworkId>,
}

impl ExitMark {
    /// Whether the exit was from `network` (a mark without one is taken as from any).
    pub fn applies_to(&self, network: &dsi_protocol::NetworkId) -> bool {
        self.network.as_ref().is_none_or(|n| n == network)
    }
}

/// The exit mark of `dir`, if the node exited.
pub fn exit_mark(dir: &DataDir) -> Result<Option<ExitMark>, NodeError> {
    let path = dir.path().join("exited.json");
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| NodeError::DataDir {
                path,
                reason: format!("unreadable exit mark: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NodeError::DataDir {
            path,
            reason: e.to_string(),
        }),
    }
}

async fn send(
    dir: &DataDir,
    tracker: &TrackerClient,
    change: Availability,
) -> Result<(NodeId, AvailabilityResponse), NodeError> {
    let key = dir.key()?;
    let network = dir.config()?.network;
    let signed = SignedAvailability::sign(change, dsi_protocol::now_ms(), &network, &key);
    let answer = tracker.availability(&signed).await?;
    Ok((key.node_id(), answer))
}

/// `node-lite pause` and `resume`.
#[derive(Debug, Serialize)]
pub struct AvailabilityReport {
    /// This node.
    pub node_id: NodeId,
    /// The tracker's answer.
    #[serde(flatten)]
    pub answer: AvailabilityResponse,
    /// `pause --wait`: the current epoch's close is done, so the node may stop now.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub audited: bool,
}

fn when(ms: u64) -> String {
    let now = dsi_protocol::now_ms();
    if ms <= now {
        "now".to_string()
    } else {
        format!("in {} s", (ms - now).div_ceil(1000))
    }
}

impl Report for AvailabilityReport {
    fn text(&self) -> String {
        match self.answer.availability {
            NodeAvailability::Paused { from, until } if self.audited => format!(
                "paused for epochs {from} to {}: epoch {} is closed and its audits are done; \
                 this node may stop now\n",
                until.0.saturating_sub(1),
                self.answer.current_epoch,
            ),
            NodeAvailability::Paused { from, until } => format!(
                "paused for epochs {from} to {}: the tracker no longer lists this node; \
                 keep serving until epoch {} is closed (its close starts {}; `node-lite \
                 pause --wait` or `GET /v1/epochs/{}` tells when), then stop it\n",
                until.0.saturating_sub(1),
                self.answer.current_epoch,
                when(self.answer.close_starts_ms),
                self.answer.current_epoch,
            ),
            NodeAvailability::Active => format!(
                "resumed: listed again, and epoch {} is audited at its close\n",
                self.answer.current_epoch
            ),
            NodeAvailability::Exited { epoch } => format!("exited in epoch {epoch}\n"),
        }
    }
}

/// `node-lite pause --epochs N [--wait]`. With `wait`, returns once the notice's epoch is
/// closed (its audits done), with a spinner on a terminal.
pub async fn pause(
    dir: &DataDir,
    tracker: Option<String>,
    epochs: u32,
    wait: bool,
) -> Result<AvailabilityReport, NodeError> {
    let tracker = tracker_for(dir, tracker)?;
    let (node_id, answer) = send(dir, &tracker, Availability::Pause { epochs }).await?;
    let audited = wait && {
        wait_closed(&tracker, answer.current_epoch, answer.close_starts_ms).await?;
        true
    };
    Ok(AvailabilityReport {
        node_id,
        answer,
        audited,
    })
}

/// Polls the tracker until `epoch` is closed. Errors on the way (a restarting oracle)
/// are shown and retried; the caller's Ctrl-C ends the wait.
async fn wait_closed(
    tracker: &TrackerClient,
    epoch: Epoch,
    close_starts_ms: u64,
) -> Result<(), NodeError> {
    use dsi_api::oracle::EpochInfo;
    let spinner = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::hidden()
    };
    loop {
        match tracker.epoch(epoch).await {
            Ok(EpochInfo::Closed(_)) => break,
            Ok(EpochInfo::Open(_)) => spinner.set_message(format!(
                "keep serving: waiting for epoch {epoch} to close (its close starts {})",
                when(close_starts_ms)
            )),
            Err(e) => spinner.set_message(format!("waiting for epoch {epoch}: {e}")),
        }
        spinner.tick();
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    spinner.finish_and_clear();
    Ok(())
}

/// `node-lite resume`.
pub async fn resume(
    dir: &DataDir,
    tracker: Option<String>,
) -> Result<AvailabilityReport, NodeError> {
    let tracker = tracker_for(dir, tracker)?;
    let (node_id, answer) = send(dir, &tracker, Availability::Resume).await?;
    Ok(AvailabilityReport {
        node_id,
        answer,
        audited: false,
    })
}

/// `node-lite exit`.
#[derive(Debug, Serialize)]
pub struct ExitReport {
    /// This node.
    pub node_id: NodeId,
    /// The epoch it exited in.
    pub epoch: Epoch,
    /// Receipts forwarded before leaving, accepted by the oracle.
    pub receipts_accepted: usize,
    /// Receipts the oracle refused (kept here with the rule's code).
    pub receipts_refused: usize,
    /// Its cumulative earnings (native units, 12 decimals).
    #[serde(with = "dsi_api::serde_as::decimal")]
    pub cumulative: u128,
    /// Its leaves, newest first: each epoch's pay. The oracle claims them on chain for an
    /// exited key (`chain.claim_for_exited`); anyone may with `oracle claim --seeder NODE`
    /// (the money goes to the payout account).
    pub leaves: Vec<Leaf>,
}

impl Report for ExitReport {
    fn text(&self) -> String {
        let mut out = format!(
            "exited in epoch {}: the tracker no longer lists or audits this node, and its key \
             is not taken again\nreceipts forwarded: {} accepted, {} refused\n",
            self.epoch, self.receipts_accepted, self.receipts_refused
        );
        if self.leaves.is_empty() {
            out.push_str("nothing earned in closed epochs\n");
        } else {
            out.push_str(&format!(
                "earned {} in all over {} epochs; receipts of epochs not closed yet are paid at \
                 their close. The oracle claims each leaf for the payout account once its \
                 epoch is claimable (if it runs with `chain.claim_for_exited`, the default); \
                 anyone may also claim with: oracle claim --seeder {}\n",
                self.cumulative,
                self.leaves.len(),
                self.node_id
            ));
            for leaf in &self.leaves {
                out.push_str(&format!("  epoch {}: {}\n", leaf.epoch, leaf.amount));
            }
        }
        out
    }

    fn summary(&self) -> Option<String> {
        (self.receipts_refused > 0).then(|| {
            format!(
                "{} receipts were refused (node-lite status explains each rule)",
                self.receipts_refused
            )
        })
    }
}

/// `node-lite exit`: forwards the receipts held, tells the tracker, marks the data
/// directory. A node that exited already (here or at the tracker) gets a clear error.
pub async fn exit(dir: &DataDir, tracker: Option<String>) -> Result<ExitReport, NodeError> {
    let config = dir.config()?;
    if let Some(mark) = exit_mark(dir)?
        && mark.applies_to(&config.network)
    {
        return Err(NodeError::Usage(format!(
            "this node exited in epoch {} already; rejoin with a new data directory",
            mark.epoch
        )));
    }
    let tracker = tracker_for(dir, tracker)?;
    let pinned = config.tracker.pinned_oracle().map_err(NodeError::Usage)?;
    let receipts =
        ReceiptStore::open(&dir.receipts_db())
            .await
            .map_err(|e| NodeError::DataDir {
                path: dir.receipts_db(),
                reason: e.to_string(),
            })?;
    let forwarded =
        crate::tracker::forward_all(&receipts, &tracker, config.tracker.forward_batch, pinned)
            .await;
    receipts.close().await;
    let forwarded = forwarded?;
    // An exit the tracker took before (its answer lost on the way) is taken as done.
    let key = dir.key()?;
    let node_id = key.node_id();
    let epoch = match send(dir, &tracker, Availability::Exit).await {
        Ok((_, answer)) => match answer.availability {
            NodeAvailability::Exited { epoch } => epoch,
            _ => answer.current_epoch,
        },
        Err(NodeError::Exited(_)) => match tracker.seeder(&node_id).await?.availability {
            NodeAvailability::Exited { epoch } => epoch,
            other => {
                return Err(NodeError::Tracker(format!(
                    "the tracker refused the exit as node_exited but reports {other:?}"
                )));
            }
        },
        Err(e) => return Err(e),
    };
    let mark = ExitMark {
        epoch,
        at_ms: dsi_protocol::now_ms(),
        network: Some(config.network.clone()),
    };
    let path = dir.path().join("exited.json");
    let bytes = serde_json::to_vec_pretty(&mark).map_err(|e| NodeError::Usage(e.to_string()))?;
    std::fs::write(&path, bytes).map_err(|e| NodeError::DataDir {
        path,
        reason: e.to_string(),
    })?;
    let seeder = tracker.seeder(&node_id).await?;
    Ok(ExitReport {
        node_id,
        epoch,
        receipts_accepted: forwarded.accepted,
        receipts_refused: forwarded.rejected,
        cumulative: seeder.cumulative,
        leaves: seeder.epochs,
    })
}
