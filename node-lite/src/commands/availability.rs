//! `node-lite pause`, `resume` and `exit`: this node's signed availability notices to the
//! tracker ([`dsi_protocol::SignedAvailability`], `POST /v1/availability`).
//!
//! A pause starts after the current epoch, whose close still audits the node: the report
//! says until when to keep serving. `exit` first forwards every receipt this node holds
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitMark {
    /// The epoch the node exited in.
    pub epoch: Epoch,
    /// When (Unix ms).
    pub at_ms: u64,
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
            NodeAvailability::Paused { from, until } => format!(
                "paused for epochs {from} to {}: the tracker no longer lists this node; \
                 keep serving until epoch {}'s close has audited it ({}), then stop it\n",
                until.0.saturating_sub(1),
                self.answer.current_epoch,
                when(self.answer.audited_until_ms),
            ),
            NodeAvailability::Active => format!(
                "resumed: listed again, and epoch {} is audited at its close\n",
                self.answer.current_epoch
            ),
            NodeAvailability::Exited { epoch } => format!("exited in epoch {epoch}\n"),
        }
    }
}

/// `node-lite pause --epochs N`.
pub async fn pause(
    dir: &DataDir,
    tracker: Option<String>,
    epochs: u32,
) -> Result<AvailabilityReport, NodeError> {
    let tracker = tracker_for(dir, tracker)?;
    let (node_id, answer) = send(dir, &tracker, Availability::Pause { epochs }).await?;
    Ok(AvailabilityReport { node_id, answer })
}

/// `node-lite resume`.
pub async fn resume(
    dir: &DataDir,
    tracker: Option<String>,
) -> Result<AvailabilityReport, NodeError> {
    let tracker = tracker_for(dir, tracker)?;
    let (node_id, answer) = send(dir, &tracker, Availability::Resume).await?;
    Ok(AvailabilityReport { node_id, answer })
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
    /// Its leaves, newest first: each epoch's pay, claimed on chain with
    /// `oracle claim --seeder NODE` (anyone may; the money goes to the payout account).
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
                 their close. Claim with: oracle claim --seeder {}\n",
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
    if let Some(mark) = exit_mark(dir)? {
        return Err(NodeError::Usage(format!(
            "this node exited in epoch {} already; rejoin with a new data directory",
            mark.epoch
        )));
    }
    let config = dir.config()?;
    let tracker = tracker_for(dir, tracker)?;
    let receipts =
        ReceiptStore::open(&dir.receipts_db())
            .await
            .map_err(|e| NodeError::DataDir {
                path: dir.receipts_db(),
                reason: e.to_string(),
            })?;
    let forwarded =
        crate::tracker::forward_all(&receipts, &tracker, config.tracker.forward_batch).await;
    receipts.close().await;
    let forwarded = forwarded?;
    let (node_id, answer) = send(dir, &tracker, Availability::Exit).await?;
    let epoch = match answer.availability {
        NodeAvailability::Exited { epoch } => epoch,
        _ => answer.current_epoch,
    };
    let mark = ExitMark {
        epoch,
        at_ms: dsi_protocol::now_ms(),
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
