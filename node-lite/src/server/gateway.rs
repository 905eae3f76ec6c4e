//! The HTTP gateway: `GET`/`HEAD /content/{id}` and `/content/{id}/{name}` stream a
//! content's bytes to any HTTP client (curl, a video player, a browser's `fetch`).
//!
//! - **Ranges.** A `Range: bytes=…` is answered 206 with `Content-Range`; several ranges
//!   are coalesced into the one span that covers them; a range that names no byte is 416
//!   `range_not_satisfiable` with `Content-Range: bytes */SIZE`; a malformed `Range`, or an
//!   `If-Range` that is not the content's ETag, gets the whole content (200), as HTTP allows.
//! - **Caching.** The content id is the `ETag` and the bytes never change: `Cache-Control:
//!   public, max-age=31536000, immutable`, and `If-None-Match` with the id is 304 before
//!   anything is read.
//! - **Type.** `Content-Type` comes from the manifest's name ([`content_type`]); with the
//!   `/{name}` form the name must be the manifest's (a URL that ends in the file name, so
//!   players and browsers name downloads right). Answers carry `X-Content-Type-Options:
//!   nosniff` and `Content-Security-Policy: sandbox`: content is whatever someone uploaded,
//!   and an HTML page among it must not run as the node's own origin.
//! - **Streaming from the swarm.** Chunks the node does not hold are fetched from peers
//!   (the tracker's, or `node-lite gateway --peer`) a window of `gateway.window_chunks` at a
//!   time, only those the range covers, verified, paid with this node's receipts, synced
//!   and kept in its store. The first window is fetched before the answer starts (so a
//!   content that cannot be had is a clean 404/502), the next ones as the client reads: a
//!   player seeking into a large content gets its first bytes after one window. A window
//!   runs as its own task: a client that goes away does not cut it short, so every chunk
//!   fetched is paid, and the receipts still owed are delivered before the node stops.
//! - **Who may use it.** The gateway's reads are not paid with receipts and its fetches
//!   spend the node's credit and disk, so by default (`gateway.clients = "loopback"`) only
//!   programs on this machine may use it: the connection must come from a loopback
//!   address, the `Host` must be a loopback address or `localhost` (a DNS-rebinding page
//!   names its own host), and a browser request must come from the gateway's own pages
//!   (`Sec-Fetch-Site`, `Origin` and `Referer`, when sent, must not name another site):
//!   otherwise any web page the operator visits could make the node buy an attacker's
//!   content with the operator's credit, or probe what the operator watched. `"anyone"`
//!   makes a public gateway. At most `gateway.max_concurrent_fetches` windows are fetched
//!   at once; a new answer that would wait is refused 503 `gateway_busy` with
//!   `Retry-After`. A held chunk is served through the node's upload cap, and its length is
//!   checked against the manifest (a manifest may name one chunk at two places with
//!   different lengths: that content is refused, not served shifted).

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use dsi_api::ErrorCode;
use dsi_protocol::{ChunkId, ContentId, Manifest};
use dsi_service::http::ApiError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{NodeState, blocking, parse_content};
use crate::NodeError;
use crate::config::GatewayConfig;
use crate::download::{ContentSwarm, DownloadOptions, Downloader};
use crate::peers::Peers;
use crate::server::Metrics;
use crate::store::{ChunkStore, StoreError};

/// `Cache-Control` of every content answer: the bytes of a content id never change.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Most chunk ids kept in the cache of manifests fetched from peers (32 bytes each: 64 MiB).
const MANIFEST_CACHE_CHUNKS: usize = 2 * 1024 * 1024;

/// How long a streaming answer waits for a fetch permit before it gives up (the first
/// window does not wait: it is refused 503 at once).
const PERMIT_WAIT: Duration = Duration::from_secs(30);

/// The gateway's own state inside [`NodeState`].
pub struct Gateway {
    downloader: Arc<Downloader>,
    peers: Peers,
    fetches: Arc<Semaphore>,
    manifests: Mutex<ManifestCache>,
    /// Window fetches and receipt deliveries, waited for on shutdown.
    tasks: TaskTracker,
    config: GatewayConfig,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("peers", &self.peers)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway signing receipts with `downloader`'s key, finding peers through `peers`.
    pub fn new(downloader: Downloader, peers: Peers, config: GatewayConfig) -> Self {
        Self {
            downloader: Arc::new(downloader),
            peers,
            fetches: Arc::new(Semaphore::new(config.max_concurrent_fetches.clamp(1, 1024))),
            manifests: Mutex::new(ManifestCache::default()),
            tasks: TaskTracker::new(),
            config,
        }
    }

    /// Download options for the gateway's fetches (no progress bar, no whole-file hash).
    pub fn options(config: &crate::config::DownloadConfig) -> DownloadOptions {
        DownloadOptions {
            sha256: false,
            ..DownloadOptions::from_config(config)
        }
    }

    /// Where the gateway finds peers (`node-lite gateway --peer` adds fixed ones).
    pub fn set_peers(&mut self, peers: Peers) {
        self.peers = peers;
    }

    /// Waits (at most `limit`) for window fetches to end and receipts to be delivered:
    /// what the node does once its listener has stopped.
    pub async fn drain(&self, limit: Duration) {
        self.tasks.close();
        if tokio::time::timeout(limit, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                tasks = self.tasks.len(),
                "gave up waiting for gateway fetches and receipt deliveries"
            );
        }
    }

    fn window(&self) -> usize {
        self.config.window_chunks.clamp(1, 256)
    }

    /// Whether `client` may use the gateway; `Err` says why not.
    fn admit(&self, client: IpAddr, headers: &HeaderMap) -> Result<(), ApiError> {
        super::local::admit(self.config.clients, "gateway.clients", client, headers)
    }

    /// A fetch permit now, or 503 `gateway_busy`.
    fn permit_now(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.fetches
            .clone()
            .try_acquire_owned()
            .map_err(|_| self.busy())
    }

    /// A fetch permit within [`PERMIT_WAIT`].
    async fn permit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        match tokio::time::timeout(PERMIT_WAIT, self.fetches.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(self.busy()),
        }
    }

    fn busy(&self) -> ApiError {
        ApiError::new(
            ErrorCode::GatewayBusy,
            format!(
                "this gateway is fetching for {} requests already \
                 (gateway.max_concurrent_fetches); retry in a moment",
                self.config.max_concurrent_fetches.clamp(1, 1024)
            ),
        )
    }

    /// Lets the swarm's payers deliver what is owed, in the background (waited for on
    /// shutdown).
    fn leave(&self, swarm: ContentSwarm) {
        let downloader = self.downloader.clone();
        self.tasks.spawn(async move {
            downloader.leave(swarm).await;
        });
    }
}

/// Manifests fetched from peers, bounded by their total number of chunk ids (oldest
/// first out).
#[derive(Default)]
struct ManifestCache {
    map: HashMap<ContentId, Arc<Manifest>>,
    order: VecDeque<ContentId>,
    chunks: usize,
}

impl ManifestCache {
    fn get(&self, content: &ContentId) -> Option<Arc<Manifest>> {
        self.map.get(content).cloned()
    }

    fn insert(&mut self, content: ContentId, manifest: Arc<Manifest>) {
        let size = manifest.chunks.len();
        if size > MANIFEST_CACHE_CHUNKS || self.map.contains_key(&content) {
            return;
        }
        while self.chunks + size > MANIFEST_CACHE_CHUNKS {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(m) = self.map.remove(&old) {
                self.chunks -= m.chunks.len();
            }
        }
        self.chunks += size;
        self.order.push_back(content);
        self.map.insert(content, manifest);
    }
}

/// A `Range` header, resolved against a content of `size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No usable range: the whole content (200).
    Whole,
    /// Bytes `start..=end` (206).
    Part {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// No byte of the content (416).
    Unsatisfiable,
}

/// A position in a range: digits only; too large for u64 is `Err(())`.
fn position(text: &str) -> Option<Result<u64, ()>> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse().map_err(|_| ()))
}

/// Resolves a `Range` header value for a content of `size` bytes (RFC 9110 §14): ranges
/// `FIRST-LAST`, `FIRST-` and `-SUFFIX` after `bytes=` (any case); a last byte past the end
/// is cut to the end; the satisfiable ones are coalesced into the span that covers them.
/// A malformed value, another unit or an empty content: the whole content (a server may
/// ignore `Range`).
pub fn resolve_range(value: &str, size: u64) -> RangeAnswer {
    let value = value.trim();
    let Some(spec) = value
        .get(..6)
        .filter(|unit| unit.eq_ignore_ascii_case("bytes="))
        .map(|_| &value[6..])
    else {
        return RangeAnswer::Whole;
    };
    if size == 0 {
        return RangeAnswer::Whole;
    }
    let mut span: Option<(u64, u64)> = None;
    let mut any = false;
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((first, last)) = part.split_once('-') else {
            return RangeAnswer::Whole;
        };
        let range = match (first.trim().is_empty(), last.trim().is_empty()) {
            // -N: the last N bytes.
            (true, false) => match position(last) {
                Some(Ok(0)) => None,
                Some(Ok(n)) => Some((size.saturating_sub(n), size - 1)),
                Some(Err(())) => Some((0, size - 1)),
                None => return RangeAnswer::Whole,
            },
            // A-: from A to the end.
            (false, true) => match position(first) {
                Some(Ok(a)) if a < size => Some((a, size - 1)),
                Some(_) => None,
                None => return RangeAnswer::Whole,
            },
            (false, false) => match (position(first), position(last)) {
                (Some(Ok(a)), Some(Ok(b))) if a > b => return RangeAnswer::Whole,
                (Some(Ok(a)), Some(b)) if a < size => {
                    Some((a, b.unwrap_or(u64::MAX).min(size - 1)))
                }
                (Some(_), Some(_)) => None,
                _ => return RangeAnswer::Whole,
            },
            (true, true) => return RangeAnswer::Whole,
        };
        any = true;
        if let Some((a, b)) = range {
            span = Some(span.map_or((a, b), |(s, e)| (s.min(a), e.max(b))));
        }
    }
    match span {
        Some((start, end)) => RangeAnswer::Part { start, end },
        None if any => RangeAnswer::Unsatisfiable,
        None => RangeAnswer::Whole,
    }
}

/// The media type for a file name, by its extension (the common ones; anything else is
/// `application/octet-stream`).
pub fn content_type(name: &str) -> &'static str {
    let extension = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "txt" | "text" | "log" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        "wasm" => "application/wasm",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "zst" => "application/zstd",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "mp4" | "m4v" => "video/mp4",
        "webm" => "video/webm",
        "mkv" => "video/x-matroska",
        "mov" => "video/quicktime",
        "ts" => "video/mp2t",
        "m3u8" => "application/vnd.apple.mpegurl",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "ogg" | "oga" => "audio/ogg",
        "opus" => "audio/opus",
        "flac" => "audio/flac",
        "wav" => "audio/wav",
        _ => "application/octet-stream",
    }
}

/// `Content-Disposition: inline` with the file name (RFC 6266): a plain ASCII
/// `filename`, and for other names an ASCII stand-in plus `filename*` in UTF-8.
fn disposition(name: &str) -> Option<HeaderValue> {
    let safe = |b: u8| b.is_ascii_graphic() && b != b'"' && b != b'\\' || b == b' ';
    let value = if name.bytes().all(safe) {
        format!("inline; filename=\"{name}\"")
    } else {
        let fallback: String = name
            .chars()
            .map(|c| {
                if c.is_ascii() && safe(c as u8) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut encoded = String::new();
        for b in name.bytes() {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                encoded.push(b as char);
            } else {
                encoded.push_str(&format!("%{b:02X}"));
            }
        }
        format!("inline; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
    };
    HeaderValue::from_str(&value).ok()
}

/// `GET`/`HEAD /content/{id}`.
pub async fn get_content(
    State(state): State<Arc<NodeState>>,
    Path(content): Path<String>,
    method: Method,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    answer(state, &content, None, method, peer, headers)
        .await
        .unwrap_or_else(|response| response)
}

/// `GET`/`HEAD /content/{id}/{name}`.
pub async fn get_named(
    State(state): State<Arc<NodeState>>,
    Path((content, name)): Path<(String, String)>,
    method: Method,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    answer(state, &content, Some(name), method, peer, headers)
        .await
        .unwrap_or_else(|response| response)
}

/// An error answer; `gateway_busy` says to retry in a second.
fn reject(error: ApiError) -> Response {
    match error.code() {
        ErrorCode::GatewayBusy => super::retry_after(error, 1),
        _ => error.into_response(),
    }
}

fn put_header(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

async fn answer(
    state: Arc<NodeState>,
    content: &str,
    name: Option<String>,
    method: Method,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let content = parse_content(content).map_err(reject)?;
    Metrics::add(&state.metrics.gateway_requests, 1);
    // Without a socket (`router(state).oneshot(..)` in tests) the client is unspecified,
    // which is not loopback: such requests are refused unless anyone is served.
    let client = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |Extension(info)| {
        info.0.ip()
    });
    state.gateway.admit(client, &headers).map_err(reject)?;
    let etag = format!("\"{content}\"");
    let mut common = HeaderMap::new();
    put_header(&mut common, header::ETAG, &etag);
    put_header(&mut common, header::CACHE_CONTROL, IMMUTABLE);
    put_header(&mut common, header::ACCEPT_RANGES, "bytes");
    put_header(&mut common, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    put_header(&mut common, header::CONTENT_SECURITY_POLICY, "sandbox");
    let weakly_matches = |value: &HeaderValue| {
        value.to_str().is_ok_and(|text| {
            text.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == etag || t == "*")
        })
    };
    // The id is the ETag: a cached copy is current whatever the store holds.
    if name.is_none()
        && headers
            .get(header::IF_NONE_MATCH)
            .is_some_and(weakly_matches)
    {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    let (manifest, swarm) = manifest(&state, &content).await.map_err(reject)?;
    if let Some(name) = &name
        && *name != manifest.name
    {
        return Err(reject(ApiError::new(
            ErrorCode::UnknownContent,
            format!(
                "content {content} is named {:?}, not {name:?} (use /content/{content}/{})",
                manifest.name, manifest.name
            ),
        )));
    }
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(weakly_matches)
    {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    let size = manifest.size;
    let asked = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // If-Range compares strongly: only the exact ETag keeps the Range.
    let range = if asked.is_empty()
        || headers
            .get(header::IF_RANGE)
            .is_some_and(|v| v.to_str().ok() != Some(etag.as_str()))
    {
        RangeAnswer::Whole
    } else {
        resolve_range(asked, size)
    };
    let (status, start, end) = match range {
        RangeAnswer::Unsatisfiable => {
            let mut headers = HeaderMap::new();
            put_header(
                &mut headers,
                header::CONTENT_RANGE,
                &format!("bytes */{size}"),
            );
            return Err((
                headers,
                ApiError::new(
                    ErrorCode::RangeNotSatisfiable,
                    format!(
                        "the range {asked:?} names no byte of content {content}, which is \
                         {size} bytes"
                    ),
                ),
            )
                .into_response());
        }
        RangeAnswer::Whole => (StatusCode::OK, 0, size.saturating_sub(1)),
        RangeAnswer::Part { start, end } => {
            put_header(
                &mut common,
                header::CONTENT_RANGE,
                &format!("bytes {start}-{end}/{size}"),
            );
            (StatusCode::PARTIAL_CONTENT, start, end)
        }
    };
    let length = if size == 0 { 0 } else { end - start + 1 };
    put_header(&mut common, header::CONTENT_LENGTH, &length.to_string());
    put_header(
        &mut common,
        header::CONTENT_TYPE,
        content_type(&manifest.name),
    );
    if let Some(value) = disposition(&manifest.name) {
        common.insert(header::CONTENT_DISPOSITION, value);
    }
    if method == Method::HEAD || length == 0 {
        if let Some(swarm) = swarm {
            state.gateway.leave(swarm);
        }
        return Ok((status, common, Body::empty()).into_response());
    }
    let chunk_size = u64::from(manifest.chunk_size);
    let (next, last) = ((start / chunk_size) as usize, (end / chunk_size) as usize);
    if !state.config.gateway.fetch {
        // Nothing will be fetched: the whole range must be held, or the answer would break
        // off after its status line.
        let store = state.store.clone();
        let ids: Vec<ChunkId> = manifest.chunks[next..=last].to_vec();
        let missing = blocking(move || ids.iter().filter(|id| !store.has_chunk(id)).count())
            .await
            .map_err(reject)?;
        if missing > 0 {
            return Err(reject(ApiError::new(
                ErrorCode::UnknownContent,
                format!(
                    "this node holds only part of that range of content {content} ({missing} \
                     chunks missing) and does not fetch (gateway.fetch = false)"
                ),
            )));
        }
    }
    let mut stream = Streamer {
        state: state.clone(),
        content,
        next,
        last,
        ensured_until: next,
        start,
        end,
        manifest,
        swarm,
        started: false,
        retry_after: 0,
    };
    // The first piece before the answer: a content that cannot be had is a clean error.
    let first = match stream.next_piece().await {
        Ok(first) => first,
        Err(e) if e.code() == ErrorCode::EgressBudgetSpent => {
            return Err(super::retry_after(e, stream.retry_after));
        }
        Err(e) => return Err(reject(e)),
    };
    stream.started = true;
    let rest = futures_util::stream::unfold(stream, |mut stream| async move {
        match stream.next_piece().await {
            Ok(Some(bytes)) => Some((Ok(bytes), stream)),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(content = %stream.content, error = %e, "gateway answer cut");
                stream.next = stream.last + 1;
                Some((Err(io::Error::other(e.to_string())), stream))
            }
        }
    });
    let body = futures_util::StreamExt::chain(
        futures_util::stream::iter(first.map(Ok::<_, io::Error>)),
        rest,
    );
    Ok((status, common, Body::from_stream(body)).into_response())
}

/// The content's manifest: from the store, else the cache, else (when the gateway fetches)
/// from peers, verified against the id; with the swarm it was fetched from, if any.
async fn manifest(
    state: &Arc<NodeState>,
    content: &ContentId,
) -> Result<(Arc<Manifest>, Option<ContentSwarm>), ApiError> {
    let reader = state.clone();
    let id = *content;
    let stored = blocking(move || reader.store.manifest(&id))
        .await?
        .map_err(ApiError::internal)?;
    if let Some(manifest) = stored {
        // Read through the gateway: recently used, for the disk quota's eviction order.
        let toucher = state.clone();
        blocking(move || toucher.store.touch(&id)).await?;
        return Ok((Arc::new(manifest), None));
    }
    let cached = state
        .gateway
        .manifests
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(content);
    if let Some(manifest) = cached {
        return Ok((manifest, None));
    }
    if !state.config.gateway.fetch {
        return Err(ApiError::new(
            ErrorCode::UnknownContent,
            format!(
                "this node has no content {content} and does not fetch (gateway.fetch = false)"
            ),
        ));
    }
    // Contacting peers is a fetch too: it takes a permit while it runs.
    let permit = state.gateway.permit_now()?;
    let swarm = state
        .gateway
        .downloader
        .join(content, &state.gateway.peers, None)
        .await
        .map_err(|e| unavailable(content, e))?;
    drop(permit);
    let manifest = swarm.manifest().clone();
    state
        .gateway
        .manifests
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(*content, manifest.clone());
    Ok((manifest, Some(swarm)))
}

fn unavailable(content: &ContentId, error: NodeError) -> ApiError {
    match error {
        NodeError::UnknownContent { detail, .. } => ApiError::new(
            ErrorCode::UnknownContent,
            format!("no peer has content {content}: {detail}"),
        ),
        other => ApiError::new(
            ErrorCode::ContentUnavailable,
            format!("content {content} could not be fetched from the swarm: {other}"),
        ),
    }
}

/// One window fetched by its own task: it runs to its end even if the answer is dropped
/// (every chunk it fetches is paid), then hands the swarm back, or, with nobody left to
/// take it, lets the swarm's payers deliver what is owed.
fn spawn_window(
    gateway: &Gateway,
    mut swarm: ContentSwarm,
    store: ChunkStore,
    needed: Vec<usize>,
    permit: OwnedSemaphorePermit,
) -> oneshot::Receiver<(ContentSwarm, Result<usize, NodeError>)> {
    let (tx, rx) = oneshot::channel();
    let downloader = gateway.downloader.clone();
    gateway.tasks.spawn(async move {
        let token = CancellationToken::new();
        let result = downloader
            .fetch_chunks(&mut swarm, &store, &needed, &token)
            .await;
        drop(permit);
        if let Err((swarm, _)) = tx.send((swarm, result)) {
            downloader.leave(swarm).await;
        }
    });
    rx
}

/// One answer's body, chunk by chunk.
struct Streamer {
    state: Arc<NodeState>,
    content: ContentId,
    manifest: Arc<Manifest>,
    /// Next chunk index to send, and the last one.
    next: usize,
    last: usize,
    /// Chunks below this index (from `next`) are known to be in the store.
    ensured_until: usize,
    /// First and last byte of the answer.
    start: u64,
    end: u64,
    /// The peers fetched from, kept between windows (their payers with them).
    swarm: Option<ContentSwarm>,
    /// Whether the status line went out (later windows wait for a permit; the first does
    /// not).
    started: bool,
    /// Seconds until the egress budget renews, once it was found spent.
    retry_after: u64,
}

impl Drop for Streamer {
    fn drop(&mut self) {
        if let Some(swarm) = self.swarm.take() {
            self.state.gateway.leave(swarm);
        }
    }
}

impl Streamer {
    /// The next piece of the body, or `None` at the end.
    async fn next_piece(&mut self) -> Result<Option<Bytes>, ApiError> {
        if self.next > self.last {
            if let Some(swarm) = self.swarm.take() {
                self.state.gateway.leave(swarm);
            }
            return Ok(None);
        }
        let index = self.next;
        if index >= self.ensured_until {
            self.ensure(index).await?;
        }
        let bytes = match self.read(index).await? {
            Some(bytes) => bytes,
            None => {
                // Gone or quarantined since the window was checked: fetch it alone.
                self.fetch(vec![index], index..index + 1).await?;
                self.read(index).await?.ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::ContentUnavailable,
                        format!(
                            "chunk {index} of content {} could not be kept",
                            self.content
                        ),
                    )
                })?
            }
        };
        let expected = self.manifest.chunk_len(index) as usize;
        if bytes.len() != expected {
            return Err(ApiError::new(
                ErrorCode::ContentUnavailable,
                format!(
                    "the manifest of content {} gives chunk {index} ({}) {expected} bytes, but \
                     that chunk has {}: the manifest is inconsistent",
                    self.content,
                    self.manifest.chunks[index],
                    bytes.len()
                ),
            ));
        }
        let chunk_size = u64::from(self.manifest.chunk_size);
        let offset = index as u64 * chunk_size;
        let from = (self.start.max(offset) - offset) as usize;
        let to = ((self.end + 1).min(offset + bytes.len() as u64) - offset) as usize;
        let piece = Bytes::from(bytes).slice(from..to.max(from));
        self.next += 1;
        if let Err(spent) = self
            .state
            .egress
            .reserve(piece.len() as u64, dsi_protocol::now_ms())
        {
            Metrics::add(&self.state.metrics.egress_refused, 1);
            self.retry_after = spent.retry_after();
            return Err(spent.error(self.state.egress.limits()));
        }
        if let Some(throttle) = &self.state.throttle {
            throttle.wait(piece.len() as u64).await;
        }
        Metrics::add(&self.state.metrics.gateway_bytes_sent, piece.len() as u64);
        Ok(Some(piece))
    }

    /// Makes sure the window of chunks from `index` is in the store.
    async fn ensure(&mut self, index: usize) -> Result<(), ApiError> {
        let until = index
            .saturating_add(self.state.gateway.window())
            .min(self.last + 1);
        let store = self.state.store.clone();
        let ids: Vec<(usize, ChunkId)> = (index..until)
            .map(|i| (i, self.manifest.chunks[i]))
            .collect();
        let needed: Vec<usize> = blocking(move || {
            ids.into_iter()
                .filter(|(_, id)| !store.has_chunk(id))
                .map(|(i, _)| i)
                .collect()
        })
        .await?;
        if !needed.is_empty() {
            self.fetch(needed, index..until).await?;
        }
        self.ensured_until = until;
        Ok(())
    }

    /// Fetches chunks `needed` of the chunks `window` (indexes) from the swarm into the
    /// store; the whole window is kept from eviction while room is made.
    async fn fetch(
        &mut self,
        needed: Vec<usize>,
        window: std::ops::Range<usize>,
    ) -> Result<(), ApiError> {
        let gateway = &self.state.gateway;
        if !self.state.config.gateway.fetch {
            return Err(ApiError::new(
                ErrorCode::ContentUnavailable,
                format!(
                    "chunk {} of content {} is no longer held here",
                    needed[0], self.content
                ),
            ));
        }
        // Nothing is bought for an answer the egress budget would stop.
        if let Some(spent) = self.state.egress.check(1, dsi_protocol::now_ms()) {
            self.retry_after = spent.retry_after();
            return Err(spent.error(self.state.egress.limits()));
        }
        let permit = if self.started {
            gateway.permit().await?
        } else {
            gateway.permit_now()?
        };
        // Room under the disk quota; what this answer is about to read stays.
        let need: u64 = needed
            .iter()
            .map(|i| u64::from(self.manifest.chunk_len(*i)))
            .sum();
        let protect: HashSet<ChunkId> = window
            .chain(needed.iter().copied())
            .map(|i| self.manifest.chunks[i])
            .collect();
        self.state
            .quota
            .make_room(&self.state.store, need, protect)
            .await
            .map_err(|e| match e {
                NodeError::StoreFull { .. } => ApiError::new(ErrorCode::StoreFull, e.to_string()),
                other => ApiError::internal(other),
            })?;
        let swarm = match self.swarm.take() {
            Some(swarm) => swarm,
            None => gateway
                .downloader
                .join(&self.content, &gateway.peers, Some(self.manifest.clone()))
                .await
                .map_err(|e| unavailable(&self.content, e))?,
        };
        let window = spawn_window(gateway, swarm, self.state.store.clone(), needed, permit);
        let (swarm, result) = window
            .await
            .map_err(|_| ApiError::internal("a gateway window task vanished"))?;
        self.swarm = Some(swarm);
        let fetched = result.map_err(|e| unavailable(&self.content, e))?;
        Metrics::add(&self.state.metrics.gateway_chunks_fetched, fetched as u64);
        Ok(())
    }

    /// Chunk `index` from the store, verified as serving verifies; `None` if not held (or
    /// found corrupt and quarantined).
    async fn read(&self, index: usize) -> Result<Option<Vec<u8>>, ApiError> {
        let reader = self.state.clone();
        let id = self.manifest.chunks[index];
        match blocking(move || reader.read_for_serving(&id)).await? {
            Ok(found) => Ok(found),
            Err(StoreError::Corrupt { id, actual }) => {
                Metrics::add(&self.state.metrics.chunks_corrupt, 1);
                tracing::warn!(chunk = %id, %actual, "chunk corrupt on disk; quarantined");
                Ok(None)
            }
            Err(e) => Err(ApiError::internal(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_as_http_says() {
        use RangeAnswer::*;
        let part = |start, end| Part { start, end };
        let cases: &[(&str, u64, RangeAnswer)] = &[
            ("bytes=0-0", 10, part(0, 0)),
            ("bytes=0-", 10, part(0, 9)),
            ("bytes=9-9", 10, part(9, 9)),
            ("bytes=3-100", 10, part(3, 9)),
            ("bytes=-1", 10, part(9, 9)),
            ("bytes=-100", 10, part(0, 9)),
            ("Bytes=2-3", 10, part(2, 3)),
            ("bytes= 2 - 4 ", 10, part(2, 4)),
            ("bytes=0-5,", 10, part(0, 5)),
            // Several ranges: one span that covers the satisfiable ones.
            ("bytes=0-1,4-5", 10, part(0, 5)),
            ("bytes=7-8,1-2,40-50", 10, part(1, 8)),
            ("bytes=3-99999999999999999999999", 10, part(3, 9)),
            ("bytes=-99999999999999999999999", 10, part(0, 9)),
            ("bytes=10-", 10, Unsatisfiable),
            ("bytes=10-20", 10, Unsatisfiable),
            ("bytes=-0", 10, Unsatisfiable),
            ("bytes=99999999999999999999999-", 10, Unsatisfiable),
            ("bytes=20-30,40-", 10, Unsatisfiable),
            // Ignored: malformed, another unit, an empty content.
            ("bytes=5-2", 10, Whole),
            ("bytes=0-1,x", 10, Whole),
            ("items=0-1", 10, Whole),
            ("bytes=a-b", 10, Whole),
            ("bytes=+1-2", 10, Whole),
            ("bytes=-", 10, Whole),
            ("bytes=", 10, Whole),
            ("bytes=0-", 0, Whole),
            ("bytes=-5", 0, Whole),
        ];
        for (value, size, expected) in cases {
            assert_eq!(resolve_range(value, *size), *expected, "{value} of {size}");
        }
    }

    #[test]
    fn a_loopback_gateway_refuses_other_sites_and_rebound_names() {
        let gateway = Gateway::new(
            Downloader::new(
                dsi_protocol::SecretKey::from_seed(&[7; 32]),
                dsi_protocol::NetworkId::default(),
                dsi_protocol::EpochSchedule::default(),
                Gateway::options(&crate::config::DownloadConfig::default()),
            ),
            Peers::default(),
            GatewayConfig::default(),
        );
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (k, v) in pairs {
                map.insert(*k, HeaderValue::from_static(v));
            }
            map
        };
        let admitted = |ip, pairs: &[(&'static str, &'static str)]| {
            gateway.admit(ip, &headers(pairs)).map_err(|e| e.code())
        };
        let host = ("host", "127.0.0.1:7080");
        assert_eq!(admitted(loopback, &[host]), Ok(()));
        assert_eq!(
            admitted(loopback, &[host, ("sec-fetch-site", "same-origin")]),
            Ok(())
        );
        assert_eq!(
            admitted(loopback, &[host, ("referer", "http://localhost:7080/page")]),
            Ok(())
        );
        let refused = Err(ErrorCode::ClientRefused);
        assert_eq!(
            admitted(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), &[host]),
            refused
        );
        assert_eq!(admitted(loopback, &[]), refused, "no Host");
        assert_eq!(
            admitted(loopback, &[("host", "evil.example:7080")]),
            refused
        );
        for site in ["cross-site", "same-site"] {
            let pairs = [host, ("sec-fetch-site", site)];
            assert_eq!(admitted(loopback, &pairs), refused, "{site}");
        }
        assert_eq!(
            admitted(loopback, &[host, ("origin", "https://evil.example")]),
            refused
        );
        assert_eq!(
            admitted(loopback, &[host, ("referer", "https://evil.example/x")]),
            refused
        );
    }

    #[test]
    fn types_come_from_the_name() {
        assert_eq!(content_type("movie.MP4"), "video/mp4");
        assert_eq!(content_type("notes.txt"), "text/plain; charset=utf-8");
        assert_eq!(content_type("archive.tar.gz"), "application/gzip");
        assert_eq!(content_type("README"), "application/octet-stream");
        assert_eq!(content_type("index.dsivec"), "application/octet-stream");
    }

    #[test]
    fn file_names_are_quoted_or_encoded() {
        let plain = disposition("my movie.mp4").unwrap();
        assert_eq!(plain, "inline; filename=\"my movie.mp4\"");
        let odd = disposition("a\"b\u{e9}.txt").unwrap();
        assert_eq!(
            odd,
            "inline; filename=\"a_b_.txt\"; filename*=UTF-8''a%22b%C3%A9.txt"
        );
    }

    #[test]
    fn the_manifest_cache_is_bounded() {
        let manifest = |chunks: usize| {
            Arc::new(Manifest {
                version: dsi_protocol::manifest::MANIFEST_VERSION,
                name: "x".into(),
                size: 0,
                chunk_size: 16 * 1024,
                chunks: vec![dsi_protocol::ChunkId::of(b"x"); chunks],
            })
        };
        let mut cache = ManifestCache::default();
        let big = MANIFEST_CACHE_CHUNKS / 2 + 1;
        let ids: Vec<ContentId> = (0u8..3)
            .map(|i| dsi_protocol::manifest::content_id_of_bytes(&[i]))
            .collect();
        cache.insert(ids[0], manifest(big));
        cache.insert(ids[1], manifest(big));
        assert!(cache.get(&ids[0]).is_none(), "the oldest made room");
        assert!(cache.get(&ids[1]).is_some());
        cache.insert(ids[2], manifest(MANIFEST_CACHE_CHUNKS + 1));
        assert!(cache.get(&ids[2]).is_none(), "too large to cache at all");
        assert!(cache.chunks <= MANIFEST_CACHE_CHUNKS);
    }
}
