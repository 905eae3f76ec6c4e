//! Storage audits: challenges bound to the announcing key.
//!
//! When an epoch closes, the oracle picks a few random chunks among everything a live node
//! announced and sends it a [`SignedAuditChallenge`] (`POST {url}/v1/audit`): the node's id,
//! a fresh random nonce, the chunks, signed by the oracle's key. The node answers with its
//! signature over the challenge's digest and a keyed hash of the nonce and the chunk bytes
//! (`dsi_protocol::audit`), followed by the chunks' bytes. The oracle streams the answer,
//! hashing each chunk as it arrives (nothing is buffered, and an answer longer than the
//! chunks asked for is cut off), and checks every chunk's bytes against its id and the
//! signature against the announced key.
//!
//! Outcomes per chunk: `passed`, `wrong_bytes`, `missing` (the node answered with an
//! error), `unreachable` (no answer in time, or an address the oracle will not contact),
//! `bad_signature` (the answer is not the announced key's). Redirects are not followed, a
//! challenge has a deadline (`audit.timeout_ms`), at most `audit.concurrency` nodes are
//! audited at once, and only public addresses are contacted unless
//! `audit.allow_private_addresses` is set (loopback test networks).
//!
//! Storage credit follows the evidence: a node earns its storage share for an epoch only if
//! every audited chunk passed (`close.rs`), and chunks are drawn uniformly from everything
//! it announced, so a node that holds a fraction `f` of what it announces passes with
//! probability about `f^k` (`k` chunks per audit) and expects `f^k` of the credit of its
//! whole announcement, less than the `f` it would earn announcing only what it holds
//! (`docs/ECONOMICS.md`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dsi_api::ErrorBody;
use dsi_api::oracle::{Audit, AuditOutcome, NodeAnnouncement};
use dsi_protocol::audit::{
    AuditChallenge, MAX_AUDIT_CHUNKS, PossessionHasher, SignedAuditChallenge, verify_answer,
};
use dsi_protocol::{
    AuditNonce, ChunkId, ContentId, Epoch, NetworkId, SecretKey, Signature, now_ms,
};
use futures_util::StreamExt;
use rand::RngCore;
use rand::seq::SliceRandom;

use crate::OracleState;

/// Picks up to `count` distinct chunks at random.
pub fn pick(chunks: &[(ChunkId, u32)], count: usize) -> Vec<(ChunkId, u32)> {
    let mut rng = rand::thread_rng();
    chunks.choose_multiple(&mut rng, count).copied().collect()
}

/// The chunks to challenge a node with: one random chunk of each funded content it
/// announces (of up to [`MAX_AUDIT_CHUNKS`] of them, drawn at random when it announces
/// more), then random chunks of everything it announces up to `count` in all. Each funded
/// content pays its replicas the same whatever its size, so every one is checked: a node
/// cannot hold a large funded content and announce a one-chunk funded content it does not
/// hold, and pass most challenges (uniform draws over all its chunks would almost never
/// land on the small one). `contents` are the node's announced contents with their chunks
/// whose lengths are known; `funded` says which are funded.
pub fn plan(
    contents: &[(ContentId, Vec<(ChunkId, u32)>)],
    funded: impl Fn(&ContentId) -> bool,
    count: usize,
) -> Vec<(ChunkId, u32)> {
    let mut rng = rand::thread_rng();
    let funded: Vec<&Vec<(ChunkId, u32)>> = contents
        .iter()
        .filter(|(content, chunks)| funded(content) && !chunks.is_empty())
        .map(|(_, chunks)| chunks)
        .collect();
    let mut picked: Vec<(ChunkId, u32)> = funded
        .choose_multiple(&mut rng, MAX_AUDIT_CHUNKS)
        .filter_map(|chunks| chunks.choose(&mut rng).copied())
        .collect();
    picked.sort_unstable();
    picked.dedup();
    let mut all: Vec<(ChunkId, u32)> = contents
        .iter()
        .flat_map(|(_, chunks)| chunks.iter().copied())
        .filter(|c| picked.binary_search(c).is_err())
        .collect();
    all.sort_unstable();
    all.dedup();
    let room = count.min(MAX_AUDIT_CHUNKS).saturating_sub(picked.len());
    picked.extend(all.choose_multiple(&mut rng, room).copied());
    picked
}

/// Whether `ip` is an address on the public internet: not loopback, private, link-local
/// (cloud metadata services live there), shared, multicast, documentation or reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
                || first == 0x0064 && v6.segments()[1] == 0xff9b)
        }
    }
}

/// A resolver that drops every non-public address (so a node cannot name a host that
/// resolves to the oracle's own network, and the connection goes to the address checked).
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| is_public(addr.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// The HTTP client audits use: no redirects, a deadline per challenge, public addresses
/// only unless `allow_private`.
pub fn client(timeout: Duration, allow_private: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        // A proxy from the environment would make the connection somewhere unchecked.
        .no_proxy();
    if !allow_private {
        builder = builder.dns_resolver(Arc::new(PublicOnly));
    }
    builder.build().unwrap_or_default()
}

/// Who audits, on which network, with which client.
pub struct Auditor<'a> {
    /// The HTTP client ([`client`]).
    pub client: &'a reqwest::Client,
    /// The oracle's key: it signs the challenges.
    pub key: &'a SecretKey,
    /// The network.
    pub network: &'a NetworkId,
    /// Whether private and loopback addresses may be contacted.
    pub allow_private: bool,
}

/// Where the node's URL points, if the auditor may contact it.
fn check_url(url: &str, allow_private: bool) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("bad node URL {url:?}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("node URL {url:?} is not http(s)"));
    }
    if !allow_private {
        let ip = parsed
            .host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|h| h.parse::<IpAddr>().ok());
        if let Some(ip) = ip
            && !is_public(ip)
        {
            return Err(format!(
                "{ip} is not a public address (audit.allow_private_addresses is off)"
            ));
        }
    }
    reqwest::Url::parse(&format!(
        "{}/v1/audit",
        parsed.as_str().trim_end_matches('/')
    ))
    .map_err(|e| format!("bad node URL {url:?}: {e}"))
}

/// One audit record per chunk, all with the same outcome.
fn all(
    node: &NodeAnnouncement,
    chunks: &[(ChunkId, u32)],
    epoch: Epoch,
    outcome: AuditOutcome,
    detail: &str,
) -> Vec<Audit> {
    let at_ms = now_ms();
    chunks
        .iter()
        .map(|(chunk, _)| Audit {
            epoch,
            seeder: node.node,
            chunk: *chunk,
            outcome,
            detail: detail.to_string(),
            at_ms,
        })
        .collect()
}

/// Challenges `node` to prove it holds `chunks` (id and length, at most
/// [`MAX_AUDIT_CHUNKS`]) and checks the answer. One record per chunk.
pub async fn challenge_node(
    auditor: &Auditor<'_>,
    node: &NodeAnnouncement,
    chunks: &[(ChunkId, u32)],
    epoch: Epoch,
) -> Vec<Audit> {
    let chunks = &chunks[..chunks.len().min(MAX_AUDIT_CHUNKS)];
    if chunks.is_empty() {
        return Vec::new();
    }
    let url = match check_url(&node.url, auditor.allow_private) {
        Ok(url) => url,
        Err(detail) => return all(node, chunks, epoch, AuditOutcome::Unreachable, &detail),
    };
    let mut nonce = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let signed = SignedAuditChallenge::sign(
        AuditChallenge {
            auditor: auditor.key.node_id(),
            node: node.node,
            epoch,
            nonce: AuditNonce(nonce),
            chunks: chunks.iter().map(|(c, _)| *c).collect(),
            issued_at_ms: now_ms(),
        },
        auditor.network,
        auditor.key,
    );
    let response = match auditor.client.post(url).json(&signed).send().await {
        Ok(response) => response,
        Err(error) => {
            let detail = dsi_service::oracle_client::error_chain(&error);
            return all(node, chunks, epoch, AuditOutcome::Unreachable, &detail);
        }
    };
    let status = response.status();
    if !status.is_success() {
        // Error bodies are small JSON; read at most 16 KiB of one.
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(Ok(piece)) = stream.next().await {
            body.extend_from_slice(&piece);
            if body.len() > 16 * 1024 {
                body.truncate(16 * 1024);
                break;
            }
        }
        let error = ErrorBody::from_answer(status.as_u16(), &body);
        let detail = format!(
            "HTTP {}: {}: {}",
            status.as_u16(),
            error.code,
            error.message
        );
        return all(node, chunks, epoch, AuditOutcome::Missing, &detail);
    }
    check_answer(auditor, node, &signed.challenge, chunks, response).await
}

/// Streams an answer: the signature, then each chunk, hashed as it arrives.
async fn check_answer(
    auditor: &Auditor<'_>,
    node: &NodeAnnouncement,
    challenge: &AuditChallenge,
    chunks: &[(ChunkId, u32)],
    response: reqwest::Response,
) -> Vec<Audit> {
    let epoch = challenge.epoch;
    let expected: u64 = 64 + chunks.iter().map(|(_, len)| u64::from(*len)).sum::<u64>();
    let mut signature = Vec::with_capacity(64);
    let mut proof = PossessionHasher::new(&challenge.nonce);
    let mut current = 0usize;
    let mut left = chunks.first().map_or(0, |(_, len)| *len as usize);
    let mut hasher = blake3::Hasher::new();
    if let Some((_, len)) = chunks.first() {
        proof.start_chunk(*len);
    }
    let mut ids: Vec<ChunkId> = Vec::with_capacity(chunks.len());
    let mut received = 0u64;
    let mut stream = response.bytes_stream();
    while let Some(piece) = stream.next().await {
        let piece = match piece {
            Ok(piece) => piece,
            Err(error) => {
                let detail = dsi_service::oracle_client::error_chain(&error);
                return all(node, chunks, epoch, AuditOutcome::Unreachable, &detail);
            }
        };
        received += piece.len() as u64;
        if received > expected {
            let detail = format!("the answer is longer than the {expected} bytes asked for");
            return all(node, chunks, epoch, AuditOutcome::WrongBytes, &detail);
        }
        let mut rest: &[u8] = &piece;
        if signature.len() < 64 {
            let take = rest.len().min(64 - signature.len());
            signature.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        while !rest.is_empty() && current < chunks.len() {
            let take = rest.len().min(left);
            hasher.update(&rest[..take]);
            proof.update(&rest[..take]);
            rest = &rest[take..];
            left -= take;
            if left == 0 {
                ids.push(ChunkId(*hasher.finalize().as_bytes()));
                hasher = blake3::Hasher::new();
                current += 1;
                left = chunks.get(current).map_or(0, |(_, len)| *len as usize);
                if let Some((_, len)) = chunks.get(current) {
                    proof.start_chunk(*len);
                }
            }
        }
    }
    if received < expected {
        let detail = format!("the answer ended after {received} of {expected} bytes");
        return all(node, chunks, epoch, AuditOutcome::WrongBytes, &detail);
    }
    let signature = Signature::from_slice(&signature).unwrap_or(Signature([0; 64]));
    if let Err(error) = verify_answer(auditor.network, challenge, &proof.finish(), &signature) {
        let detail = format!(
            "the answer is not signed by the announced key {}: {error}",
            node.node
        );
        return all(node, chunks, epoch, AuditOutcome::BadSignature, &detail);
    }
    let at_ms = now_ms();
    chunks
        .iter()
        .zip(ids)
        .map(|((chunk, len), got)| {
            let (outcome, detail) = if got == *chunk {
                (AuditOutcome::Passed, String::new())
            } else {
                (
                    AuditOutcome::WrongBytes,
                    format!("{len} bytes hashing to {got}"),
                )
            };
            Audit {
                epoch,
                seeder: node.node,
                chunk: *chunk,
                outcome,
                detail,
                at_ms,
            }
        })
        .collect()
}

/// Audits every given node for `epoch`, at most `audit.concurrency` at once, with the
/// chunks [`plan`] draws (one of each `funded` content it announces first). Only chunks of
/// registered contents (`content_chunks`, from [`crate::close::content_chunks`]) whose
/// lengths are known are drawn.
pub async fn audit_nodes(
    state: &OracleState,
    nodes: &[NodeAnnouncement],
    content_chunks: &HashMap<ContentId, Vec<ChunkId>>,
    funded: &std::collections::HashSet<ContentId>,
    epoch: Epoch,
) -> Result<Vec<Audit>, crate::store::StoreError> {
    let config = &state.config.audit;
    if !config.enabled {
        return Ok(Vec::new());
    }
    let client = client(
        Duration::from_millis(config.timeout_ms),
        config.allow_private_addresses,
    );
    let count = config.chunks_per_node.min(MAX_AUDIT_CHUNKS);
    let mut plans = Vec::with_capacity(nodes.len());
    {
        let lengths = state.chunk_lengths.read().await;
        for node in nodes {
            let contents: Vec<(ContentId, Vec<(ChunkId, u32)>)> = node
                .contents
                .iter()
                .map(|content| {
                    let chunks = content_chunks
                        .get(content)
                        .into_iter()
                        .flatten()
                        .filter_map(|c| lengths.get(c).map(|len| (*c, *len)))
                        .collect();
                    (*content, chunks)
                })
                .collect();
            plans.push((node, plan(&contents, |c| funded.contains(c), count)));
        }
    }
    let auditor = Auditor {
        client: &client,
        key: &state.key,
        network: &state.config.network,
        allow_private: config.allow_private_addresses,
    };
    let auditor = &auditor;
    let challenges: Vec<_> = plans
        .iter()
        .map(|(node, chunks)| challenge_node(auditor, node, chunks, epoch))
        .collect();
    let results: Vec<Vec<Audit>> = futures_util::stream::iter(challenges)
        .buffer_unordered(config.concurrency.max(1))
        .collect()
        .await;
    let results: Vec<Audit> = results.into_iter().flatten().collect();
    for result in &results {
        state.metrics.audit(result.outcome);
        if !result.passed() {
            tracing::warn!(node = %result.seeder.short(), chunk = %result.chunk.short(), outcome = %result.outcome, detail = %result.detail, "audit failed");
        }
    }
    Ok(results)
}
