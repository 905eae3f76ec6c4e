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
//! every audited chunk passed (`close.rs`). A challenge holds one chunk of each funded
//! content the node announces (up to [`MAX_AUDIT_CHUNKS`] − 1 of them; each pays its
//! replicas whatever its size, so each is checked) and at least one chunk drawn uniformly
//! from everything it announces (`audit.chunks_per_node` in all when there is room). A node
//! that does not hold a funded content it announces fails every close; one that holds a
//! fraction `f` of the rest passes with probability about `f^k` (`k` uniform draws), less
//! than the `f` it would earn announcing only what it holds (`docs/ECONOMICS.md`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dsi_api::ErrorBody;
use dsi_api::oracle::{Audit, AuditOutcome, NodeAnnouncement};
use dsi_protocol::audit::{
    AuditChallenge, MAX_AUDIT_CHUNKS, PossessionHasher, SignedAuditChallenge, verify_answer,
};
use dsi_protocol::reward::Location;
use dsi_protocol::{
    AuditNonce, ChunkId, ContentId, Epoch, NetworkId, NodeId, SecretKey, Signature, now_ms,
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
/// announces (of up to [`MAX_AUDIT_CHUNKS`] − 1 of them, drawn at random when it announces
/// more), then random chunks of everything it announces up to `count` in all, and always
/// at least one (so a node announcing many funded contents is still checked on everything
/// else it announces, which counts in rarity). Each funded
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
        .choose_multiple(&mut rng, MAX_AUDIT_CHUNKS - 1)
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
    let room = count
        .min(MAX_AUDIT_CHUNKS)
        .saturating_sub(picked.len())
        .max(1)
        .min(MAX_AUDIT_CHUNKS - picked.len());
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

/// The addresses `url`'s host stands for (an address literal, or a name resolved within
/// `timeout`) that lie in `location` (the network a node announced from; an IPv6 address
/// that embeds an IPv4 address counts as that address, [`crate::api::embedded_ipv4`]), or
/// an error that says where it points instead. A node's URL must point into the network
/// its announcements come from (checked at announce time, and again at every audit, which
/// goes only to such an address): otherwise one server could take many networks' replica
/// places by announcing through a proxy in each of them and answering every audit itself.
pub async fn addresses_in(
    url: &reqwest::Url,
    location: Location,
    timeout: Duration,
) -> Result<Vec<IpAddr>, String> {
    let Some(host) = url.host_str() else {
        return Err(format!("{url} has no host"));
    };
    let found: Vec<IpAddr> = match ip_literal(url) {
        Some(ip) => vec![ip],
        None => {
            let port = url.port_or_known_default().unwrap_or(80);
            match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
                Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
                Ok(Err(error)) => return Err(format!("{host} does not resolve: {error}")),
                Err(_) => return Err(format!("{host} did not resolve within {timeout:?}")),
            }
        }
    };
    let inside: Vec<IpAddr> = found
        .iter()
        .copied()
        .filter(|ip| Location::of(crate::api::embedded_ipv4(*ip)) == location)
        .collect();
    if inside.is_empty() {
        let found: Vec<String> = found.iter().map(ToString::to_string).collect();
        return Err(format!(
            "the node's URL {url} points to {}, outside {location}, the network its \
             announcements come from",
            found.join(", ")
        ));
    }
    Ok(inside)
}

/// The address a URL names as its host, if it names one rather than a host name (a name
/// needs a lookup).
pub fn ip_literal(url: &reqwest::Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
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
    /// The iroh dialer (the oracle's key, the network's relays), when `[iroh]` names a
    /// relay: nodes announced at `iroh://NODE_ID/` are audited over it.
    pub dialer: Option<&'a dsi_transport::Dialer>,
    /// The oracle's key: it signs the challenges.
    pub key: &'a SecretKey,
    /// The network.
    pub network: &'a NetworkId,
    /// Whether private and loopback addresses may be contacted.
    pub allow_private: bool,
    /// How long a node's host name may take to resolve.
    pub timeout: Duration,
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
///
/// A node announced at `iroh://NODE_ID/` is audited over iroh ([`over_iroh`]), any other
/// at its http URL ([`over_http`]). A node located at `location` (the network its
/// announcement came from) is audited only inside that network: over HTTP at an address
/// of its URL there ([`addresses_in`]; the request goes to that address, so a name that
/// resolved into the network when the node announced cannot send the audit elsewhere
/// now), over iroh on direct paths from addresses there. A node that cannot be reached so
/// is `unreachable`. Everything, from resolving or dialing to the answer's last byte,
/// has `audit.timeout_ms`.
pub async fn challenge_node(
    auditor: &Auditor<'_>,
    node: &NodeAnnouncement,
    location: Option<Location>,
    chunks: &[(ChunkId, u32)],
    epoch: Epoch,
) -> Vec<Audit> {
    let chunks = &chunks[..chunks.len().min(MAX_AUDIT_CHUNKS)];
    if chunks.is_empty() {
        return Vec::new();
    }
    let deadline = tokio::time::Instant::now() + auditor.timeout;
    let audited = audit_once(auditor, node, location, chunks, epoch, deadline);
    // A moment's grace, so that a phase's own deadline (with its own reason) wins.
    match tokio::time::timeout_at(deadline + Duration::from_millis(250), audited).await {
        Ok(records) => records,
        Err(_) => {
            let detail = format!(
                "no complete answer within {:?} (audit.timeout_ms)",
                auditor.timeout
            );
            all(node, chunks, epoch, AuditOutcome::Unreachable, &detail)
        }
    }
}

/// [`challenge_node`] without its overall deadline.
async fn audit_once(
    auditor: &Auditor<'_>,
    node: &NodeAnnouncement,
    location: Option<Location>,
    chunks: &[(ChunkId, u32)],
    epoch: Epoch,
    deadline: tokio::time::Instant,
) -> Vec<Audit> {
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
    let sent = if reached_over_iroh(node) {
        match (&node.endpoint, auditor.dialer) {
            (Some(endpoint), Some(dialer)) => {
                over_iroh(auditor, dialer, node, endpoint, location, &signed, deadline).await
            }
            _ => Err(format!(
                "node URL {:?} is reached over iroh only, and this oracle has no [iroh] relays \
                 configured (or the node announced no endpoint)",
                node.url
            )),
        }
    } else {
        over_http(auditor, node, location, &signed)
            .await
            .map(|answer| (answer, None))
    };
    let (answer, paths) = match sent {
        Ok(sent) => sent,
        Err(detail) => return all(node, chunks, epoch, AuditOutcome::Unreachable, &detail),
    };
    if !(200..300).contains(&answer.status) {
        // Error bodies are small JSON; read at most 16 KiB of one.
        let mut body = Vec::new();
        let mut stream = answer.body;
        while let Some(Ok(piece)) = stream.next().await {
            body.extend_from_slice(&piece);
            if body.len() > 16 * 1024 {
                body.truncate(16 * 1024);
                break;
            }
        }
        let error = ErrorBody::from_answer(answer.status, &body);
        let detail = format!("HTTP {}: {}: {}", answer.status, error.code, error.message);
        return all(node, chunks, epoch, AuditOutcome::Missing, &detail);
    }
    let records = check_answer(auditor, node, &signed.challenge, chunks, answer.body).await;
    if let Some(mut paths) = paths
        && records.iter().all(Audit::passed)
        && let Err(detail) = paths.carried_the_answer(chunks)
    {
        return all(node, chunks, epoch, AuditOutcome::Unreachable, &detail);
    }
    records
}

/// Whether `node` is announced at `iroh://NODE_ID/` (audited over iroh only).
fn reached_over_iroh(node: &NodeAnnouncement) -> bool {
    reqwest::Url::parse(&node.url)
        .ok()
        .and_then(|url| dsi_transport::peer_node(&url))
        .is_some()
}

/// How an audit's error names a path: its remote address, or the relay.
fn path_name(direct: Option<SocketAddr>) -> String {
    direct.map_or_else(|| "the relay".to_string(), |a| a.to_string())
}

/// An audit answer's status and body, from either transport.
struct Answer {
    status: u16,
    body: futures_util::stream::BoxStream<'static, Result<bytes::Bytes, String>>,
}

/// Sends `signed` to the node's URL over HTTP: to an address of that URL inside
/// `location` when the node has one.
async fn over_http(
    auditor: &Auditor<'_>,
    node: &NodeAnnouncement,
    location: Option<Location>,
    signed: &SignedAuditChallenge,
) -> Result<Answer, String> {
    let mut url = check_url(&node.url, auditor.allow_private)?;
    // The URL's own authority, sent as `Host` when the request goes to a pinned address
    // (a name-based virtual host in front of the node still routes it).
    let host = url.host_str().unwrap_or_default();
    let authority = url
        .port()
        .map_or_else(|| host.to_string(), |p| format!("{host}:{p}"));
    let mut pinned_to = None;
    if let Some(location) = location {
        addresses_in(&url, location, auditor.timeout)
            .await
            .and_then(|inside| {
                inside
                    .into_iter()
                    .map(|ip| ip.to_canonical())
                    .find(|ip| auditor.allow_private || is_public(*ip))
                    .ok_or_else(|| format!("{} has no public address in {location}", node.url))
            })
            .and_then(|ip| {
                url.set_ip_host(ip)
                    .map_err(|()| format!("cannot address {ip} in {}", node.url))
            })?;
        pinned_to = Some(authority);
    }
    let mut request = auditor.client.post(url).json(signed);
    if let Some(authority) = pinned_to {
        request = request.header(reqwest::header::HOST, authority);
    }
    let response = request
        .send()
        .await
        .map_err(|error| dsi_service::oracle_client::error_chain(&error))?;
    Ok(Answer {
        status: response.status().as_u16(),
        body: response
            .bytes_stream()
            .map(|piece| piece.map_err(|e| dsi_service::oracle_client::error_chain(&e)))
            .boxed(),
    })
}

/// How long an audit over iroh waits for hole punching to give the connection a direct
/// path inside the node's network (less if the challenge's deadline comes first).
const DIRECT_PATH_WAIT: Duration = Duration::from_secs(3);

/// Which paths of an iroh audit may carry the answer, and what each received since the
/// challenge went out.
struct AnswerPaths {
    ledger: dsi_transport::PathLedger,
    location: Location,
    allow_private: bool,
}

impl AnswerPaths {
    /// Whether `address` is a direct path the answer may come over: inside the node's
    /// network, and public unless private addresses are allowed.
    fn inside(&self, address: SocketAddr) -> bool {
        inside(address, self.location, self.allow_private)
    }

    /// Whether direct paths inside the node's network carried the answer
    /// ([`came_inside`]). Lost path events (a closed path's bytes unknown) count as
    /// carried: an honest node is not failed for what iroh could not tell.
    fn carried_the_answer(&mut self, chunks: &[(ChunkId, u32)]) -> Result<(), String> {
        let answer: u64 = 64 + chunks.iter().map(|(_, len)| u64::from(*len)).sum::<u64>();
        let Some(moved) = self.ledger.since_start() else {
            tracing::warn!("iroh path events were lost during an audit; its paths are not checked");
            return Ok(());
        };
        came_inside(&moved, |a| self.inside(a), answer).map_err(|detail| {
            format!(
                "{detail}, not inside {}, the network the node announces from",
                self.location
            )
        })
    }
}

/// Whether `address` lies in `location` (public unless `allow_private`).
fn inside(address: SocketAddr, location: Location, allow_private: bool) -> bool {
    let ip = address.ip().to_canonical();
    Location::of(crate::api::embedded_ipv4(ip)) == location && (allow_private || is_public(ip))
}

/// Whether direct paths that `inside` accepts received (`moved`: bytes per path since the
/// challenge went out) at least half the `answer`'s bytes (the rest may have come through
/// the relay before the node's side switched paths). The error says where the bytes came
/// instead. Paths are told apart as iroh counts them: by connection id, not by the source
/// address of each packet, so this holds against stock iroh stacks, not against one
/// modified to send a path's packets from elsewhere (`docs/SECURITY.md`).
fn came_inside(
    moved: &dsi_transport::ReceivedByPath,
    inside: impl Fn(SocketAddr) -> bool,
    answer: u64,
) -> Result<(), String> {
    let mut carried = 0u64;
    let mut elsewhere: Vec<String> = Vec::new();
    for (direct, received) in moved.values() {
        match direct {
            Some(address) if inside(*address) => carried += received,
            _ if *received > 0 => {
                elsewhere.push(format!("{received} bytes over {}", path_name(*direct)))
            }
            _ => {}
        }
    }
    if carried >= answer.div_ceil(2) {
        return Ok(());
    }
    elsewhere.sort();
    Err(format!(
        "over iroh the {answer}-byte answer came {carried} bytes on direct paths inside and {}",
        if elsewhere.is_empty() {
            "nothing elsewhere".to_string()
        } else {
            elsewhere.join(", ")
        }
    ))
}

/// Sends `signed` to the node over iroh: dialed by its key through the oracle's own
/// relays only, when the node announced relays (so a full seeder knows its auditor before
/// the handshake; hole punching then finds a direct path, probing the candidates the node
/// names through the relay). A
/// node with a `location` is audited only over direct paths from addresses inside that
/// network: one must be open before the challenge is sent, and the answer's bytes must
/// arrive on such paths ([`AnswerPaths`]). A relay hides where a node is, and one server
/// answering for keys "located" in many networks is what the location rule keeps out
/// ([`addresses_in`]). A node behind a home router gets such a path by hole punching (its
/// public address is its router's, the one it announced from).
async fn over_iroh(
    auditor: &Auditor<'_>,
    dialer: &dsi_transport::Dialer,
    node: &NodeAnnouncement,
    endpoint: &dsi_protocol::NodeEndpoint,
    location: Option<Location>,
    signed: &SignedAuditChallenge,
    deadline: tokio::time::Instant,
) -> Result<(Answer, Option<AnswerPaths>), String> {
    // Through the relays a node announced (a network without relays: its direct
    // addresses, public ones unless private ones are allowed).
    let mut dialed = endpoint.clone();
    if dialed.relays.is_empty() {
        dialed.direct.retain(|text| {
            text.parse::<SocketAddr>()
                .is_ok_and(|address| auditor.allow_private || is_public(address.ip()))
        });
    } else {
        dialed.direct.clear();
    }
    dialer.add_endpoint(node.node, &dialed);
    let connection = dialer
        .connection(&node.node)
        .await
        .map_err(|e| format!("over iroh: {e}"))?;
    let paths = match location {
        None => None,
        Some(location) => {
            let until = deadline.min(tokio::time::Instant::now() + DIRECT_PATH_WAIT);
            let open = dsi_transport::wait_for(until, || {
                dsi_transport::received_by_path(&connection)
                    .values()
                    .any(|(direct, _)| {
                        direct.is_some_and(|a| inside(a, location, auditor.allow_private))
                    })
                    .then_some(())
            })
            .await;
            if open.is_none() {
                let seen: Vec<String> = dsi_transport::received_by_path(&connection)
                    .values()
                    .map(|(direct, _)| path_name(*direct))
                    .collect();
                return Err(format!(
                    "over iroh the node is reached only through {}, with no direct path \
                     inside {location}, the network it announces from (hole punching to the \
                     oracle failed)",
                    if seen.is_empty() {
                        "nothing".to_string()
                    } else {
                        seen.join(", ")
                    }
                ));
            }
            Some(AnswerPaths {
                ledger: dsi_transport::PathLedger::start(&connection),
                location,
                allow_private: auditor.allow_private,
            })
        }
    };
    let body = serde_json::to_vec(signed).map_err(|e| format!("encoding the challenge: {e}"))?;
    let request = http::Request::post("/v1/audit")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(bytes::Bytes::from(body))
        .map_err(|e| format!("building the request: {e}"))?;
    let response = dialer
        .send(&node.node, &connection, request)
        .await
        .map_err(|e| format!("over iroh: {e}"))?;
    let status = response.status().as_u16();
    let answer = Answer {
        status,
        body: http_body_util::BodyExt::into_data_stream(response.into_body())
            .map(|piece| piece.map_err(|e| format!("over iroh: {e}")))
            .boxed(),
    };
    Ok((answer, paths))
}

/// Streams an answer: the signature, then each chunk, hashed as it arrives.
async fn check_answer(
    auditor: &Auditor<'_>,
    node: &NodeAnnouncement,
    challenge: &AuditChallenge,
    chunks: &[(ChunkId, u32)],
    mut stream: futures_util::stream::BoxStream<'static, Result<bytes::Bytes, String>>,
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
    while let Some(piece) = stream.next().await {
        let piece = match piece {
            Ok(piece) => piece,
            Err(detail) => {
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

/// Audits every given node for `epoch` (each at an address in its `locations` entry, when
/// it has one), at most `audit.concurrency` at once, with the chunks [`plan`] draws (one of each `funded` content it announces first). Only chunks of
/// registered contents (`content_chunks`, from [`crate::close::content_chunks`]) whose
/// lengths are known are drawn.
pub async fn audit_nodes(
    state: &OracleState,
    nodes: &[NodeAnnouncement],
    locations: &HashMap<NodeId, Location>,
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
    // One endpoint for the round, closed after it: the oracle holds no iroh socket
    // between audits, nor during a round with no node to reach over iroh.
    let over_iroh = nodes.iter().any(reached_over_iroh);
    let dialer = if state.config.iroh.enabled() && over_iroh {
        match dsi_transport::Dialer::new(state.key.clone(), &state.config.iroh) {
            Ok(dialer) => {
                if let Err(e) = dialer.bind().await {
                    tracing::warn!(error = %e, "no iroh endpoint for audits; nodes reached over iroh only are unreachable this round");
                }
                Some(dialer)
            }
            Err(e) => {
                tracing::warn!(error = %e, "[iroh] is unusable; auditing over HTTP only");
                None
            }
        }
    } else {
        None
    };
    let auditor = Auditor {
        client: &client,
        dialer: dialer.as_ref(),
        key: &state.key,
        network: &state.config.network,
        allow_private: config.allow_private_addresses,
        timeout: Duration::from_millis(config.timeout_ms),
    };
    let auditor = &auditor;
    let challenges: Vec<_> = plans
        .iter()
        .map(|(node, chunks)| {
            let location = locations.get(&node.node).copied();
            challenge_node(auditor, node, location, chunks, epoch)
        })
        .collect();
    let results: Vec<Vec<Audit>> = futures_util::stream::iter(challenges)
        .buffer_unordered(config.concurrency.max(1))
        .collect()
        .await;
    let results: Vec<Audit> = results.into_iter().flatten().collect();
    if let Some(dialer) = &dialer {
        // Closing waits for peers to acknowledge; a node slow to do so holds no close.
        if tokio::time::timeout(Duration::from_secs(5), dialer.close())
            .await
            .is_err()
        {
            tracing::debug!("the audit round's iroh endpoint did not close within 5 s");
        }
    }
    for result in &results {
        state.metrics.audit(result.outcome);
        if !result.passed() {
            tracing::warn!(node = %result.seeder.short(), chunk = %result.chunk.short(), outcome = %result.outcome, detail = %result.detail, "audit failed");
        }
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_iroh_answer_counts_only_if_it_came_on_a_path_inside_the_network() {
        // A node keeps a direct path open in its network (a forwarder there) but sends the
        // answer's bytes through the relay: refused. Sent on the direct path (some of it
        // through the relay before switching): accepted.
        use dsi_transport::{PathId, ReceivedByPath};
        let direct: SocketAddr = "203.0.113.7:4000".parse().unwrap();
        let inside = |a: SocketAddr| a == direct;
        let through_relay: ReceivedByPath = [
            (PathId::ZERO, (None, 299_000)),
            (PathId::MAX, (Some(direct), 400)),
        ]
        .into();
        let error = came_inside(&through_relay, inside, 262_208).unwrap_err();
        assert!(error.contains("299000 bytes over the relay"), "{error}");
        assert!(error.contains("came 400 bytes on direct paths"), "{error}");
        let direct_answer: ReceivedByPath = [
            (PathId::ZERO, (None, 100_000)),
            (PathId::MAX, (Some(direct), 170_000)),
        ]
        .into();
        assert!(came_inside(&direct_answer, inside, 262_208).is_ok());
        // A path from another network counts as elsewhere.
        let other: SocketAddr = "198.51.100.1:9".parse().unwrap();
        let from_elsewhere: ReceivedByPath = [(PathId::MAX, (Some(other), 270_000))].into();
        let error = came_inside(&from_elsewhere, inside, 262_208).unwrap_err();
        assert!(error.contains("198.51.100.1:9"), "{error}");
    }

    fn content(n: u8, chunks: u16) -> (ContentId, Vec<(ChunkId, u32)>) {
        let chunks = (0..chunks)
            .map(|i| {
                let mut id = [n; 32];
                id[..2].copy_from_slice(&i.to_be_bytes());
                (ChunkId(id), 1)
            })
            .collect();
        (ContentId([n; 32]), chunks)
    }

    #[test]
    fn a_challenge_checks_every_funded_content_and_still_draws_from_the_rest() {
        // Ten one-chunk funded contents and a large unfunded one: seven funded chunks
        // (the cap less one) and at least one uniform draw, which lands on the unfunded
        // content almost every time. Before, the funded chunks filled the challenge and the
        // unfunded content was never checked.
        let mut contents: Vec<_> = (1..=10).map(|n| content(n, 1)).collect();
        contents.push(content(99, 1000));
        let funded = |c: &ContentId| c.0[0] != 99;
        let mut unfunded_drawn = 0;
        for _ in 0..50 {
            let picked = plan(&contents, funded, 3);
            assert_eq!(picked.len(), MAX_AUDIT_CHUNKS);
            let unique: std::collections::HashSet<_> = picked.iter().collect();
            assert_eq!(unique.len(), picked.len(), "no chunk twice");
            let funded_picked = picked.iter().filter(|(c, _)| c.0[31] != 99).count();
            assert!(funded_picked >= MAX_AUDIT_CHUNKS - 1);
            unfunded_drawn += picked.len() - funded_picked;
        }
        assert!(
            unfunded_drawn > 40,
            "{unfunded_drawn} unfunded chunks in 50 challenges"
        );

        // Two funded contents and room for three: both funded, one uniform draw.
        let contents = vec![content(1, 5), content(2, 5), content(99, 100)];
        let picked = plan(&contents, funded, 3);
        assert_eq!(picked.len(), 3);
        for n in [1u8, 2] {
            assert!(
                picked.iter().any(|(c, _)| c.0[31] == n),
                "content {n} checked"
            );
        }
        // Nothing funded: `count` uniform draws.
        assert_eq!(plan(&contents, |_| false, 3).len(), 3);
    }
}
