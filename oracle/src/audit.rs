//! Storage audits: the oracle fetches a few random announced chunks from every live node
//! and checks that their bytes hash to their ids. Outcomes: `passed`, `wrong_bytes`,
//! `missing` (the node answered but did not serve the chunk) and `unreachable`. Every
//! outcome but `passed` counts as a failure for reputation; a node earns its storage share
//! for an epoch only if all its audits passed.

use std::time::Duration;

use dsi_protocol::manifest::MAX_CHUNK_SIZE;
use dsi_protocol::{ChunkId, Epoch, NodeId};
use rand::seq::SliceRandom;

use crate::OracleState;
use dsi_api::oracle::{Audit, AuditOutcome, NodeAnnouncement};
use dsi_protocol::now_ms;

/// Picks up to `count` distinct chunks at random.
pub fn pick(chunks: &[ChunkId], count: usize) -> Vec<ChunkId> {
    let mut rng = rand::thread_rng();
    chunks.choose_multiple(&mut rng, count).copied().collect()
}

/// Hashes a response body as it streams in, keeping no more than one piece in memory;
/// `None` once it passes `limit` bytes (a node cannot make the oracle buffer a huge body).
async fn hash_body(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Option<(ChunkId, usize)>, reqwest::Error> {
    let mut hasher = blake3::Hasher::new();
    let mut len = 0usize;
    while let Some(piece) = response.chunk().await? {
        len += piece.len();
        if len > limit {
            return Ok(None);
        }
        hasher.update(&piece);
    }
    Ok(Some((ChunkId(*hasher.finalize().as_bytes()), len)))
}

/// Fetches one chunk from a node and classifies the result. The body is hashed as it
/// arrives and cut off past the largest chunk size.
pub async fn audit_chunk(
    client: &reqwest::Client,
    auditor: &NodeId,
    node: &NodeAnnouncement,
    chunk: &ChunkId,
    epoch: Epoch,
) -> Audit {
    let url = format!("{}/v1/chunks/{chunk}", node.url.trim_end_matches('/'));
    let (outcome, detail) = match client
        .get(&url)
        .header(dsi_api::DOWNLOADER_HEADER, auditor.to_string())
        .send()
        .await
    {
        Err(error) => (AuditOutcome::Unreachable, error.to_string()),
        Ok(response) if !response.status().is_success() => {
            (AuditOutcome::Missing, format!("HTTP {}", response.status()))
        }
        Ok(response) => match hash_body(response, MAX_CHUNK_SIZE as usize).await {
            Err(error) => (AuditOutcome::Unreachable, error.to_string()),
            Ok(None) => (
                AuditOutcome::WrongBytes,
                format!("more than {MAX_CHUNK_SIZE} bytes, longer than any chunk"),
            ),
            Ok(Some((id, _))) if id == *chunk => (AuditOutcome::Passed, String::new()),
            Ok(Some((id, len))) => (
                AuditOutcome::WrongBytes,
                format!("{len} bytes hashing to {id}"),
            ),
        },
    };
    Audit {
        epoch,
        seeder: node.node,
        chunk: *chunk,
        outcome,
        detail,
        at_ms: now_ms(),
    }
}

/// Audits every given node for `epoch`, all nodes concurrently.
pub async fn audit_nodes(
    state: &OracleState,
    nodes: &[NodeAnnouncement],
    epoch: Epoch,
) -> Result<Vec<Audit>, crate::store::StoreError> {
    if !state.config.audit.enabled {
        return Ok(Vec::new());
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(state.config.audit.timeout_ms))
        .build()
        .unwrap_or_default();
    let mut plans = Vec::new();
    for node in nodes {
        let mut chunks = Vec::new();
        for content in &node.contents {
            chunks.extend(state.store.chunks_of(content).await?);
        }
        chunks.sort_unstable();
        chunks.dedup();
        plans.push((node, pick(&chunks, state.config.audit.chunks_per_node)));
    }
    let auditor = state.key.node_id();
    let fetches = plans.iter().flat_map(|(node, chunks)| {
        chunks
            .iter()
            .map(|chunk| audit_chunk(&client, &auditor, node, chunk, epoch))
    });
    let results = futures_util::future::join_all(fetches).await;
    for result in &results {
        state.metrics.audit(result.outcome);
        if !result.passed() {
            tracing::warn!(node = %result.seeder.short(), chunk = %result.chunk.short(), outcome = %result.outcome, detail = %result.detail, "audit failed");
        }
    }
    Ok(results)
}
