//! The bodies of node-lite's HTTP API (see `node-lite/src/server.rs` for the routes).
//! `POST /v1/receipts` takes [`crate::ReceiptBatch`] and answers
//! [`crate::ReceiptBatchResponse`]; manifests and chunks travel as raw bytes.

use dsi_protocol::{ContentId, Epoch, NetworkId, NodeId};
use serde::{Deserialize, Serialize};

/// `GET /v1/node`: who this node is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's id (its ed25519 public key).
    pub node_id: NodeId,
    /// The network its receipts are signed for.
    pub network: NetworkId,
    /// Its current epoch.
    pub epoch: Epoch,
    /// node-lite version.
    pub version: String,
    /// The oracle this node announces to (its tracker), if it has one: where a downloader,
    /// a browser page for one, looks up its key's credit (`GET /v1/credits/{node}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracker: Option<String>,
    /// The most receipts one downloader may owe this node before it is refused
    /// (`429 receipts_owed`); absent: serving is not gated (or an older node). A downloader
    /// keeps its requests in flight plus its unanswered receipts within it, so that it
    /// never has to be refused and pause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_owed_receipts: Option<u32>,
}

/// One entry of `GET /v1/content` (and of `node-lite list --json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentEntry {
    /// The content id.
    pub content_id: ContentId,
    /// Its name (from the manifest).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Chunk size in bytes.
    pub chunk_size: u32,
    /// Number of chunks.
    pub chunks: u64,
    /// How many of them this node holds.
    pub held: u64,
}

/// `GET /v1/content/{id}/have`: which chunks of a content the node holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Have {
    /// Number of chunks the bitfield covers (the manifest's chunk count).
    pub chunks: u64,
    /// The bits as lowercase hex: chunk `i` is bit `i % 8` (least significant first) of
    /// byte `i / 8`; `ceil(chunks / 8)` bytes, bits past `chunks` zero.
    pub held: String,
}
