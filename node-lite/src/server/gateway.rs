//! The HTTP gateway: `GET`/`HEAD /content/{id}` and `/content/{id}/{name}` stream a
//! content's bytes to any HTTP client (curl, a video player, a browser's `fetch`).
//!
//! - **Ranges.** One `Range: bytes=…` range is answered 206 with `Content-Range`; a range
//!   that names no byte is 416 `range_not_satisfiable` with `Content-Range: bytes */SIZE`;
//!   several ranges, or an `If-Range` that is not the content's ETag, get the whole content
//!   (200), as HTTP allows.
//! - **Caching.** The content id is the `ETag` and the bytes never change: `Cache-Control:
//!   public, max-age=31536000, immutable`, and `If-None-Match` with the id is 304.
//! - **Type.** `Content-Type` comes from the manifest's name ([`content_type`]); with the
//!   `/{name}` form the name must be the manifest's (a URL that ends in the file name, so
//!   players and browsers name downloads right). Responses carry `X-Content-Type-Options:
//!   nosniff` and `Content-Security-Policy: sandbox`: content is whatever someone uploaded,
//!   and an HTML page among it must not run as the node's own origin.
//! - **Streaming from the swarm.** Chunks the node does not hold are fetched from peers
//!   (the tracker's, or `node-lite gateway --peer`) a window of
//!   `gateway.window_chunks` at a time, only those the range covers, verified, paid with
//!   this node's receipts and kept in its store. The first window is fetched before the
//!   answer starts (so a content no peer has is a clean 404/502), the rest while the body
//!   streams: a player seeking into a large content gets its first bytes after one window.
//! - **Who may make it fetch.** Fetching spends this node's credit and disk, so only the
//!   clients `gateway.fetch_for` names may trigger it (loopback by default), at most
//!   `gateway.max_concurrent_fetches` requests at once (then 503 `gateway_busy` with
//!   `Retry-After`), and never a browser's cross-site request (`Sec-Fetch-Site`
//!   `cross-site` or `same-site`): otherwise any web page the operator visits could make
//!   the node buy an attacker's content with the operator's credit. Held chunks are served
//!   to anyone who can reach the node, as `/v1/chunks` already serves them.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Extension;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use dsi_api::ErrorCode;
use dsi_protocol::{ContentId, Manifest};
use dsi_service::http::ApiError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::{NodeState, blocking, parse_content};
use crate::NodeError;
use crate::config::{FetchFor, GatewayConfig};
use crate::download::{ContentSwarm, DownloadOptions, Downloader};
use crate::peers::Peers;
use crate::server::Metrics;
use crate::store::StoreError;

/// `Cache-Control` of every content answer: the bytes of a content id never change.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Most chunk ids kept in the cache of manifests fetched from peers (32 bytes each: 64 MiB).
const MANIFEST_CACHE_CHUNKS: usize = 2 * 1024 * 1024;

/// The gateway's own state inside [`NodeState`].
pub struct Gateway {
    downloader: Arc<Downloader>,
    peers: Peers,
    fetches: Arc<Semaphore>,
    manifests: Mutex<ManifestCache>,
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
            fetches: Arc::new(Semaphore::new(config.max_concurrent_fetches.max(1))),
            manifests: Mutex::new(ManifestCache::default()),
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

    /// Whether `client` may make the gateway fetch from the swarm; `Err` says why not.
    fn may_fetch(&self, client: IpAddr, headers: &HeaderMap) -> Result<(), String> {
        if let Some(site) = headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .filter(|site| !matches!(*site, "same-origin" | "none"))
        {
            return Err(format!(
                "a browser request from another site (Sec-Fetch-Site: {site}) never makes \
                 this gateway fetch from the swarm"
            ));
        }
        let loopback = match client {
            IpAddr::V4(v4) => v4.is_loopback(),
            IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        };
        match self.config.fetch_for {
            FetchFor::Anyone => Ok(()),
            FetchFor::Loopback if loopback => Ok(()),
            FetchFor::Loopback => Err(
                "this gateway fetches from the swarm only for clients on its own machine \
                 (gateway.fetch_for = \"loopback\")"
                    .into(),
            ),
            FetchFor::Nobody => Err(
                "this gateway serves only what it holds (gateway.fetch_for = \"nobody\")".into(),
            ),
        }
    }

    fn permit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.fetches.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                ErrorCode::GatewayBusy,
                format!(
                    "this gateway is fetching for {} requests already \
                     (gateway.max_concurrent_fetches); retry in a moment",
                    self.config.max_concurrent_fetches.max(1)
                ),
            )
        })
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
    /// No usable single range: the whole content (200).
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

/// Resolves a `Range` header value for a content of `size` bytes (RFC 9110 §14): one
/// `bytes=FIRST-LAST`, `bytes=FIRST-` or `bytes=-SUFFIX` range; a last byte past the end is
/// cut to the end. Several ranges, another unit or a malformed value: the whole content
/// (a server may ignore `Range`).
pub fn resolve_range(value: &str, size: u64) -> RangeAnswer {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Whole;
    };
    if spec.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Whole;
    };
    let number = |text: &str| -> Option<u64> {
        let text = text.trim();
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok()
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match number(last) {
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(_) if size == 0 => RangeAnswer::Unsatisfiable,
            Some(n) => RangeAnswer::Part {
                start: size.saturating_sub(n),
                end: size - 1,
            },
            None => RangeAnswer::Whole,
        },
        // bytes=A-: from A to the end.
        (false, true) => match number(first) {
            Some(a) if a < size => RangeAnswer::Part {
                start: a,
                end: size - 1,
            },
            Some(_) => RangeAnswer::Unsatisfiable,
            None => RangeAnswer::Whole,
        },
        (false, false) => match (number(first), number(last)) {
            (Some(a), Some(b)) if a > b => RangeAnswer::Whole,
            (Some(a), Some(b)) if a < size => RangeAnswer::Part {
                start: a,
                end: b.min(size - 1),
            },
            (Some(_), Some(_)) => RangeAnswer::Unsatisfiable,
            _ => RangeAnswer::Whole,
        },
        (true, true) => RangeAnswer::Whole,
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

/// `Content-Disposition: inline` with the file name (RFC 6266; `filename*` in UTF-8 for
/// names that are not plain ASCII).
fn disposition(name: &str) -> Option<HeaderValue> {
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\' || b == b' ');
    let value = if plain {
        format!("inline; filename=\"{name}\"")
    } else {
        let mut encoded = String::new();
        for b in name.bytes() {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                encoded.push(b as char);
            } else {
                encoded.push_str(&format!("%{b:02X}"));
            }
        }
        format!("inline; filename*=UTF-8''{encoded}")
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
        .unwrap_or_else(IntoResponse::into_response)
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
        .unwrap_or_else(IntoResponse::into_response)
}

/// Where a request's manifest came from.
enum Source {
    /// The local store or the cache: no peer contacted yet.
    Known(Arc<Manifest>),
    /// Fetched from the swarm now, whose peers the stream keeps using.
    Joined(Arc<Manifest>, Box<Fetcher>),
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
    let client = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |Extension(info)| {
        info.0.ip()
    });
    let may_fetch = state.gateway.may_fetch(client, &headers);
    let source = manifest(&state, &content, &may_fetch)
        .await
        .map_err(reject)?;
    let (manifest, fetcher) = match source {
        Source::Known(m) => (m, None),
        Source::Joined(m, f) => (m, Some(f)),
    };
    if let Some(name) = &name
        && *name != manifest.name
    {
        return Err(ApiError::new(
            ErrorCode::UnknownContent,
            format!(
                "content {content} is named {:?}, not {name:?} (use /content/{content}/{})",
                manifest.name, manifest.name
            ),
        )
        .into_response());
    }
    let size = manifest.size;
    let etag = format!("\"{content}\"");
    let mut common = HeaderMap::new();
    let mut put = |name: header::HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            common.insert(name, value);
        }
    };
    put(header::ETAG, &etag);
    put(header::CACHE_CONTROL, IMMUTABLE);
    put(header::ACCEPT_RANGES, "bytes");
    put(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    put(header::CONTENT_SECURITY_POLICY, "sandbox");
    if let Some(value) = disposition(&manifest.name) {
        common.insert(header::CONTENT_DISPOSITION, value);
    }
    let matches_etag = |value: &HeaderValue| {
        value.to_str().is_ok_and(|text| {
            text.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == etag || t == "*")
        })
    };
    if headers.get(header::IF_NONE_MATCH).is_some_and(matches_etag) {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    let asked = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(_)
            if headers
                .get(header::IF_RANGE)
                .is_some_and(|v| !matches_etag(v)) =>
        {
            RangeAnswer::Whole
        }
        Some(value) => resolve_range(value, size),
        None => RangeAnswer::Whole,
    };
    let (status, start, end) = match range {
        RangeAnswer::Unsatisfiable => {
            let mut headers = common;
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
    if method == Method::HEAD || length == 0 {
        return Ok((status, common, Body::empty()).into_response());
    }
    let chunk_size = u64::from(manifest.chunk_size);
    let mut stream = Streamer {
        state: state.clone(),
        content,
        next: (start / chunk_size) as usize,
        last: (end / chunk_size) as usize,
        ensured_until: 0,
        start,
        end,
        manifest,
        may_fetch,
        fetcher,
        token: CancellationToken::new(),
    };
    stream.ensured_until = stream.next;
    // The first piece before the answer: a content that cannot be had is a clean error.
    let first = stream.next_piece().await.map_err(reject)?;
    let rest = futures_util::stream::unfold(stream, |mut stream| async move {
        match stream.next_piece().await {
            Ok(Some(bytes)) => Some((Ok(bytes), stream)),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(content = %stream.content, error = %e, "gateway stream cut");
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

/// An error answer; `gateway_busy` says when to retry.
fn reject(error: ApiError) -> Response {
    let busy = error.code() == ErrorCode::GatewayBusy;
    let mut response = error.into_response();
    if busy {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

fn put_header(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// The content's manifest: from the store, else the cache, else (when this client may
/// make the gateway fetch) from peers, verified against the id.
async fn manifest(
    state: &Arc<NodeState>,
    content: &ContentId,
    may_fetch: &Result<(), String>,
) -> Result<Source, ApiError> {
    let reader = state.clone();
    let id = *content;
    let stored = blocking(move || reader.store.manifest(&id))
        .await?
        .map_err(ApiError::internal)?;
    if let Some(manifest) = stored {
        return Ok(Source::Known(Arc::new(manifest)));
    }
    let cached = state
        .gateway
        .manifests
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(content);
    if let Some(manifest) = cached {
        return Ok(Source::Known(manifest));
    }
    if let Err(why) = may_fetch {
        return Err(ApiError::new(
            ErrorCode::FetchNotAllowed,
            format!("content {content} is not held here, and {why}"),
        ));
    }
    let mut fetcher = Fetcher::new(state)?;
    let swarm = state
        .gateway
        .downloader
        .join(content, &state.gateway.peers, None)
        .await
        .map_err(|e| unavailable(content, e))?;
    let manifest = Arc::new(swarm.manifest().clone());
    fetcher.swarm = Some(swarm);
    state
        .gateway
        .manifests
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(*content, manifest.clone());
    Ok(Source::Joined(manifest, Box::new(fetcher)))
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

/// A request's right to fetch (a permit of `gateway.max_concurrent_fetches`) and the swarm
/// it fetches from. Dropped (answer finished or client gone), it lets the swarm's payers
/// deliver the receipts owed in the background.
struct Fetcher {
    state: Arc<NodeState>,
    swarm: Option<ContentSwarm>,
    _permit: OwnedSemaphorePermit,
}

impl Fetcher {
    fn new(state: &Arc<NodeState>) -> Result<Self, ApiError> {
        Ok(Self {
            state: state.clone(),
            swarm: None,
            _permit: state.gateway.permit()?,
        })
    }
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        if let Some(swarm) = self.swarm.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let downloader = self.state.gateway.downloader.clone();
            runtime.spawn(async move {
                downloader.leave(swarm).await;
            });
        }
    }
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
    may_fetch: Result<(), String>,
    fetcher: Option<Box<Fetcher>>,
    token: CancellationToken,
}

impl Drop for Streamer {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

impl Streamer {
    /// The next piece of the body, or `None` at the end.
    async fn next_piece(&mut self) -> Result<Option<Bytes>, ApiError> {
        if self.next > self.last {
            // Done: the fetcher's permit goes back and its receipts are delivered.
            self.fetcher = None;
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
                self.fetch(&[index]).await?;
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
        let chunk_size = u64::from(self.manifest.chunk_size);
        let offset = index as u64 * chunk_size;
        let from = self.start.max(offset) - offset;
        let to = (self.end + 1).min(offset + bytes.len() as u64) - offset;
        self.next += 1;
        Metrics::add(&self.state.metrics.gateway_bytes_sent, to - from);
        Ok(Some(Bytes::from(bytes).slice(from as usize..to as usize)))
    }

    /// Makes sure the window of chunks from `index` is in the store.
    async fn ensure(&mut self, index: usize) -> Result<(), ApiError> {
        let until = (index + self.state.gateway.config.window_chunks.max(1)).min(self.last + 1);
        let store = self.state.store.clone();
        let ids: Vec<(usize, dsi_protocol::ChunkId)> = (index..until)
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
            self.fetch(&needed).await?;
        }
        self.ensured_until = until;
        Ok(())
    }

    /// Fetches chunks `needed` from the swarm into the store.
    async fn fetch(&mut self, needed: &[usize]) -> Result<(), ApiError> {
        if let Err(why) = &self.may_fetch {
            return Err(ApiError::new(
                ErrorCode::FetchNotAllowed,
                format!(
                    "chunk {} of content {} is not held here, and {why}",
                    needed[0], self.content
                ),
            ));
        }
        let fetcher = match &mut self.fetcher {
            Some(f) => f,
            None => self.fetcher.insert(Box::new(Fetcher::new(&self.state)?)),
        };
        let gateway = &self.state.gateway;
        if fetcher.swarm.is_none() {
            let swarm = gateway
                .downloader
                .join(
                    &self.content,
                    &gateway.peers,
                    Some((*self.manifest).clone()),
                )
                .await
                .map_err(|e| unavailable(&self.content, e))?;
            fetcher.swarm = Some(swarm);
        }
        let Some(swarm) = fetcher.swarm.as_mut() else {
            return Err(ApiError::internal("the gateway's swarm vanished"));
        };
        let fetched = gateway
            .downloader
            .fetch_chunks(swarm, &self.state.store, needed, &self.token)
            .await
            .map_err(|e| unavailable(&self.content, e))?;
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
            ("bytes=10-", 10, Unsatisfiable),
            ("bytes=10-20", 10, Unsatisfiable),
            ("bytes=-0", 10, Unsatisfiable),
            ("bytes=0-", 0, Unsatisfiable),
            ("bytes=-5", 0, Unsatisfiable),
            ("bytes=5-2", 10, Whole),
            ("bytes=0-1,4-5", 10, Whole),
            ("items=0-1", 10, Whole),
            ("bytes=a-b", 10, Whole),
            ("bytes=+1-2", 10, Whole),
            ("bytes=-", 10, Whole),
            ("bytes= 2 - 4 ", 10, part(2, 4)),
        ];
        for (value, size, expected) in cases {
            assert_eq!(resolve_range(value, *size), *expected, "{value} of {size}");
        }
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
        assert_eq!(odd, "inline; filename*=UTF-8''a%22b%C3%A9.txt");
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
