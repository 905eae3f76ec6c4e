//! The node's HTTP API (axum). [`router`] builds the routes over a shared [`NodeState`];
//! [`serve`] binds them to a listener until a cancellation token fires, so tests can call
//! `router(state).oneshot(request)` without a socket.
//!
//! | route | what |
//! |---|---|
//! | `GET /v1/node` | node id, network, current epoch, receipts a downloader may owe |
//! | `GET /v1/content` | content held: id, name, size, chunks held |
//! | `GET /v1/content/{id}/manifest` | canonical manifest bytes (`application/octet-stream`) |
//! | `GET /v1/content/{id}/have` | which chunks of it are held (hex bitfield) |
//! | `GET /v1/chunks/{id}` | chunk bytes; a gated node needs `x-dsi-downloader: <id>.<ms>.<signature>` |
//! | `POST /v1/receipts` | a batch of signed receipts; per-receipt accepted/rejected |
//! | `POST /v1/audit` | the oracle's signed storage challenge; signed answer + chunk bytes |
//! | `GET`/`HEAD /content/{id}[/{name}]` | the content's bytes, ranges streamed from the swarm ([`gateway`]) |
//! | `GET /dashboard`, `/dashboard/status.json` | the seeder's dashboard and its data ([`crate::status`]; loopback only by default) |
//! | `GET /metrics` | Prometheus text |
//! | `GET /health` | `ok` |
//!
//! The bodies are `dsi_api::node` and `dsi_api::ReceiptBatch`. Every error, including an
//! unknown route (404), a wrong method (405), an oversized (413) or malformed body, is JSON
//! `dsi_api::ErrorBody` `{"code": "...", "message": "..."}` with a stable `code`.

pub mod audit;
pub mod budget;
pub mod gateway;
pub mod ledger;
pub mod local;
pub mod metrics;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Extension;
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dsi_api::node::{ContentEntry, Have, NodeInfo};
use dsi_api::{
    ErrorCode, MAX_NODE_BODY_BYTES, MAX_RECEIPT_BATCH, ReceiptBatch, ReceiptBatchResponse,
    ReceiptVerdict,
};
use dsi_protocol::{ChunkId, ContentId, Epoch, NodeId, SecretKey, SignedReceipt};
use dsi_service::http::{ApiError, JsonBody, json_errors};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::VerifyMode;
use crate::receipts::{self, CheckContext, ReceiptStore, Rejection, Stored};
use crate::store::{ChunkStore, StoreError};
use crate::{Config, DataDir, NodeError};
use dsi_api::downloader::{DownloaderHeader, DownloaderHeaderError};
use ledger::Refusal;
pub use ledger::{Ledger, LedgerLimits};
pub use metrics::Metrics;

/// Identity of a chunk file on disk: if it changes, the chunk is hashed again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
}

/// Paces uploads to a byte rate shared by all requests. Bodies are sent in pieces of
/// [`THROTTLE_PIECE`] bytes, each waiting for its slot, so a capped seeder keeps bytes
/// flowing to every downloader instead of holding whole responses back (which downloaders
/// would rightly take for a stall).
#[derive(Debug)]
struct Throttle {
    bytes_per_sec: u64,
    next: tokio::sync::Mutex<Instant>,
}

/// Piece size of throttled bodies.
const THROTTLE_PIECE: usize = 16 * 1024;

impl Throttle {
    async fn wait(&self, bytes: u64) {
        let cost = Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64);
        let start = {
            let mut next = self.next.lock().await;
            let start = (*next).max(Instant::now());
            *next = start + cost;
            start
        };
        tokio::time::sleep_until(start + cost).await;
    }
}

/// `bytes` as a body, paced by `throttle` if there is one, holding `slot` (the downloader's
/// place under `serve.max_concurrent_downloaders`) until it is sent or abandoned.
fn paced_body(bytes: Vec<u8>, throttle: Option<Arc<Throttle>>, slot: budget::Slot) -> Body {
    let bytes = bytes::Bytes::from(bytes);
    let pieces = futures_util::stream::unfold((0usize, slot), move |(offset, slot)| {
        let throttle = throttle.clone();
        let bytes = bytes.clone();
        async move {
            if offset >= bytes.len() {
                return None;
            }
            let end = match &throttle {
                Some(throttle) => {
                    let end = (offset + THROTTLE_PIECE).min(bytes.len());
                    throttle.wait((end - offset) as u64).await;
                    end
                }
                None => bytes.len(),
            };
            Some((Ok::<_, io::Error>(bytes.slice(offset..end)), (end, slot)))
        }
    });
    Body::from_stream(pieces)
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct NodeState {
    pub(crate) key: SecretKey,
    /// This node's id.
    pub node_id: NodeId,
    /// Configuration in effect.
    pub config: Config,
    /// The chunk store.
    pub store: ChunkStore,
    /// The receipt database.
    pub receipts: ReceiptStore,
    /// Unpaid chunks per downloader.
    pub ledger: Ledger,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// The trusted auditor and the audit challenges already answered.
    pub audits: audit::AuditGate,
    /// The HTTP gateway's fetching state.
    pub gateway: gateway::Gateway,
    /// The disk quota.
    pub quota: crate::quota::Quota,
    /// The egress budget (`egress.json`).
    pub egress: budget::Egress,
    /// The downloaders served now.
    pub downloaders: Arc<budget::Downloaders>,
    /// The tracker (oracle) configured, if any.
    pub tracker: Option<crate::tracker::TrackerClient>,
    /// The iroh endpoint peers reach this node on, once `serve` bound it (its address goes
    /// into announcements).
    pub iroh: std::sync::OnceLock<iroh::Endpoint>,
    verified: Mutex<HashMap<ChunkId, FileStamp>>,
    throttle: Option<Arc<Throttle>>,
}

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data directory is unusable.
    #[error(transparent)]
    DataDir(#[from] NodeError),
    /// The chunk store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The receipt database could not be opened.
    #[error("receipt database: {0}")]
    Database(#[from] sqlx::Error),
}

impl NodeState {
    /// Opens the node's store and receipt database.
    pub async fn open(data_dir: &DataDir, config: Config) -> Result<Self, OpenError> {
        let key = data_dir.key()?;
        let auditor = config.tracker.pinned_oracle().map_err(NodeError::Usage)?;
        let store = ChunkStore::open(data_dir.path())?;
        let receipts = ReceiptStore::open(&data_dir.receipts_db()).await?;
        let metrics = Metrics::default();
        Metrics::add(&metrics.receipts_held, receipts.count().await?);
        let throttle = (config.serve.max_upload_bytes_per_sec > 0).then(|| {
            Arc::new(Throttle {
                bytes_per_sec: config.serve.max_upload_bytes_per_sec,
                next: tokio::sync::Mutex::new(Instant::now()),
            })
        });
        // The tracker URL was checked before (`ServeOverrides::apply`); without one the
        // gateway serves held content only, until `Gateway::set_peers` gives it peers.
        let tracker = Some(config.tracker.url.as_str())
            .filter(|url| !url.is_empty())
            .and_then(|url| crate::tracker::TrackerClient::new(url).ok());
        let gateway = gateway::Gateway::new(
            crate::download::Downloader::new(
                key.clone(),
                config.network.clone(),
                config.epochs,
                gateway::Gateway::options(&config.download),
            ),
            crate::peers::Peers {
                fixed: crate::peers::StaticPeers::default(),
                tracker: tracker.clone(),
                iroh: None,
            },
            config.gateway.clone(),
        );
        let quota = crate::quota::Quota::new(config.storage.max_bytes, tracker.clone());
        let egress = budget::Egress::open(
            config.serve.max_egress_per_day,
            config.serve.max_egress_per_month,
            Some(data_dir.path().join("egress.json")),
        );
        let downloaders =
            budget::Downloaders::new(config.serve.max_concurrent_downloaders as usize);
        Ok(Self {
            egress,
            downloaders,
            tracker,
            node_id: key.node_id(),
            key,
            gateway,
            quota,
            ledger: Ledger::new(LedgerLimits {
                max_owed: config.serve.max_owed_receipts as usize,
                max_owed_per_address: config.serve.max_owed_receipts_per_address as usize,
                forgive_after: Duration::from_secs(config.serve.owed_forgive_after_secs),
                max_debts: config.serve.max_tracked_debts,
            }),
            config,
            store,
            receipts,
            metrics,
            audits: audit::AuditGate::pinned(auditor),
            iroh: std::sync::OnceLock::new(),
            verified: Mutex::new(HashMap::new()),
            throttle,
        })
    }

    /// The node's secret key (for signing as a downloader).
    pub fn key(&self) -> &SecretKey {
        &self.key
    }

    fn current_epoch(&self) -> Epoch {
        self.config.epochs.epoch_at(dsi_protocol::now_ms())
    }

    /// Reads a chunk for serving, verifying it as the config says. `Ok(None)`: not held.
    fn read_for_serving(&self, id: &ChunkId) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.store.chunk_path(id);
        let stamp = match std::fs::metadata(&path) {
            Ok(meta) => FileStamp {
                len: meta.len(),
                modified: meta.modified().ok(),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Io {
                    action: "cannot stat",
                    path,
                    source,
                });
            }
        };
        let must_hash = match self.config.serve.verify {
            VerifyMode::Never => false,
            VerifyMode::Always => true,
            VerifyMode::Cached => {
                let cache = self
                    .verified
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                cache.get(id) != Some(&stamp)
            }
        };
        if !must_hash {
            return self.store.read_chunk(id);
        }
        let result = self.store.read_chunk_verified(id);
        let mut cache = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &result {
            Ok(Some(_)) => cache.insert(*id, stamp),
            _ => cache.remove(id),
        };
        result
    }
}

/// CORS for the swarm routes: any web page may fetch chunks and manifests and post
/// receipts (browsers are peers too); the data is public and content-addressed, and no
/// route uses cookies or other ambient credentials.
fn swarm_cors() -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, Method, header};
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            HeaderName::from_static(crate::DOWNLOADER_HEADER),
        ])
        .max_age(std::time::Duration::from_secs(3600))
}

/// CORS for the gateway: with `gateway.clients = "anyone"` any page may read content
/// (public, content-addressed bytes) with ranges and see the headers a player needs; a
/// loopback-only gateway refuses other sites' requests itself.
fn gateway_cors() -> tower_http::cors::CorsLayer {
    use axum::http::{Method, header};
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([Method::GET, Method::HEAD])
        .allow_headers([header::RANGE, header::IF_NONE_MATCH, header::IF_RANGE])
        .expose_headers([
            header::CONTENT_RANGE,
            header::ACCEPT_RANGES,
            header::ETAG,
            header::CONTENT_DISPOSITION,
            header::RETRY_AFTER,
        ])
        .max_age(std::time::Duration::from_secs(3600))
}

/// The gateway's routes (`/content/...`).
fn content_routes() -> Router<Arc<NodeState>> {
    Router::new()
        .route("/content/{content}", get(gateway::get_content))
        .route("/content/{content}/{name}", get(gateway::get_named))
        .layer(gateway_cors())
}

/// The routes of `node-lite gateway`: content, `/metrics` and `/health` only (no swarm
/// routes: a gateway is not a seeder).
pub fn gateway_router(state: Arc<NodeState>) -> Router {
    Router::new()
        .merge(content_routes())
        .route("/metrics", get(get_metrics))
        .route("/health", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_NODE_BODY_BYTES))
        .with_state(state)
        .layer(axum::middleware::from_fn(json_errors))
}

/// The routes nodes use with each other: node info, content list, manifest, have, chunks
/// and receipts.
fn swarm_routes() -> Router<Arc<NodeState>> {
    Router::new()
        .route("/v1/node", get(node_info))
        .route("/v1/content", get(list_content))
        .route("/v1/content/{content}/manifest", get(get_manifest))
        .route("/v1/content/{content}/have", get(get_have))
        .route("/v1/chunks/{chunk}", get(get_chunk))
        .route("/v1/receipts", post(post_receipts))
}

/// The routes served to peers over iroh (`transport`): the swarm routes and the oracle's
/// audits, with the same handlers, limits and JSON errors as over HTTP. No CORS (no
/// browser speaks it).
pub fn peer_routes(state: Arc<NodeState>) -> Router {
    swarm_routes()
        .route("/v1/audit", post(audit::post_audit))
        .layer(DefaultBodyLimit::max(MAX_NODE_BODY_BYTES))
        .with_state(state)
        .layer(axum::middleware::from_fn(json_errors))
}

/// The routes over `state`.
pub fn router(state: Arc<NodeState>) -> Router {
    let swarm = swarm_routes().layer(swarm_cors());
    // Audits are for the oracle only: no CORS.
    let swarm = swarm.route("/v1/audit", post(audit::post_audit));
    let web = state.config.serve.web.clone();
    let router = Router::new()
        .merge(swarm)
        .merge(content_routes())
        .route("/dashboard", get(dashboard_page))
        .route("/dashboard/status.json", get(dashboard_status))
        .route("/metrics", get(get_metrics))
        .route("/health", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_NODE_BODY_BYTES))
        .with_state(state);
    let router = if web.is_empty() {
        router
    } else {
        // Static files (the vector search page and its wasm) at every other path.
        router.fallback_service(tower_http::services::ServeDir::new(web))
    };
    router.layer(axum::middleware::from_fn(json_errors))
}

/// Serves `state` on `listener` until `token` is cancelled, then finishes open requests.
/// Handlers see each connection's peer address (unpaid chunks are bounded per address).
pub async fn serve(
    listener: TcpListener,
    state: Arc<NodeState>,
    token: CancellationToken,
) -> io::Result<()> {
    serve_routes(listener, router(state), token).await
}

/// Serves `routes` on `listener` until `token` is cancelled (see [`serve`]).
pub async fn serve_routes(
    listener: TcpListener,
    routes: Router,
    token: CancellationToken,
) -> io::Result<()> {
    axum::serve(
        listener,
        routes.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(token.cancelled_owned())
    .await
}

fn parse_content(text: &str) -> Result<ContentId, ApiError> {
    text.parse().map_err(|e| {
        ApiError::new(
            ErrorCode::BadContentId,
            format!("{text:?} is not a content id: {e}"),
        )
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)
}

async fn node_info(State(state): State<Arc<NodeState>>) -> Json<NodeInfo> {
    Json(NodeInfo {
        node_id: state.node_id,
        network: state.config.network.clone(),
        epoch: state.current_epoch(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        tracker: public_tracker(&state.config.tracker.url),
        max_owed_receipts: Some(state.config.serve.max_owed_receipts).filter(|max| *max > 0),
    })
}

/// The tracker URL as the node tells downloaders: without a user name or password (a
/// configured URL may carry them), without a trailing slash; None without a tracker.
fn public_tracker(configured: &str) -> Option<String> {
    let mut url = reqwest::Url::parse(configured).ok()?;
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Some(url.as_str().trim_end_matches('/').to_string())
}

async fn list_content(
    State(state): State<Arc<NodeState>>,
) -> Result<Json<Vec<ContentEntry>>, ApiError> {
    let entries = blocking(move || state.store.entries())
        .await?
        .map_err(ApiError::internal)?;
    Ok(Json(entries))
}

fn unknown_content(content: &ContentId) -> ApiError {
    ApiError::new(
        ErrorCode::UnknownContent,
        format!("this node has no content {content}"),
    )
}

async fn get_manifest(
    State(state): State<Arc<NodeState>>,
    Path(content): Path<String>,
) -> Result<Response, ApiError> {
    let content = parse_content(&content)?;
    let bytes = blocking(move || state.store.manifest_bytes(&content))
        .await?
        .map_err(ApiError::internal)?
        .ok_or_else(|| unknown_content(&content))?;
    let mut response =
        ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response();
    response.extensions_mut().insert(ContentAnswer);
    Ok(response)
}

async fn get_have(
    State(state): State<Arc<NodeState>>,
    Path(content): Path<String>,
) -> Result<Json<Have>, ApiError> {
    let content = parse_content(&content)?;
    let field = blocking(move || -> Result<_, StoreError> {
        Ok(state
            .store
            .manifest(&content)?
            .map(|m| state.store.held(&m)))
    })
    .await?
    .map_err(ApiError::internal)?
    .ok_or_else(|| unknown_content(&content))?;
    Ok(Json(Have {
        chunks: field.len() as u64,
        held: field.to_hex(),
    }))
}

/// Who asks for a chunk, checked: the downloader header parses, is fresh and is signed for
/// this node and `chunk`. `None` on a node that does not gate serving (it keeps no ledger,
/// so the header does not matter).
fn authenticated_downloader(
    state: &NodeState,
    headers: &HeaderMap,
    chunk: ChunkId,
) -> Result<Option<DownloaderHeader>, ApiError> {
    if !state.ledger.is_gating() {
        return Ok(None);
    }
    let value = headers.get(crate::DOWNLOADER_HEADER).ok_or_else(|| {
        ApiError::new(
            ErrorCode::MissingDownloader,
            format!(
                "this seeder serves against receipts: sign the request in the {} header \
                 (<node id>.<issued_at_ms>.<signature>)",
                crate::DOWNLOADER_HEADER
            ),
        )
    })?;
    let header: DownloaderHeader = value
        .to_str()
        .map_err(|_| DownloaderHeaderError::Format("not ASCII".into()))
        .and_then(str::parse)
        .map_err(|e| ApiError::new(ErrorCode::BadDownloader, e.to_string()))?;
    header
        .check(
            &state.config.network,
            state.node_id,
            chunk,
            dsi_protocol::now_ms(),
        )
        .map_err(|e| {
            let code = match e {
                DownloaderHeaderError::Stale { .. } => ErrorCode::StaleDownloader,
                DownloaderHeaderError::Format(_) => ErrorCode::BadDownloader,
                DownloaderHeaderError::Signature(_) => ErrorCode::BadDownloaderSignature,
            };
            ApiError::new(code, e.to_string())
        })?;
    Ok(Some(header))
}

/// An error answer with `Retry-After: seconds`.
pub(crate) fn retry_after(error: ApiError, seconds: u64) -> Response {
    let mut response = error.into_response();
    if let Ok(value) = axum::http::HeaderValue::from_str(&seconds.max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

async fn get_chunk(
    State(state): State<Arc<NodeState>>,
    Path(chunk): Path<String>,
    method: axum::http::Method,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // A HEAD would count as served (a debt, egress) while sending nothing.
    if method == axum::http::Method::HEAD {
        return Err(ApiError::new(
            ErrorCode::MethodNotAllowed,
            "chunks are fetched with GET, against receipts",
        ));
    }
    let chunk: ChunkId = chunk.parse().map_err(|e| {
        ApiError::new(
            ErrorCode::BadChunkId,
            format!("{chunk:?} is not a chunk id: {e}"),
        )
    })?;
    // Without a socket (`router(state).oneshot(..)` in tests) every request counts under
    // one unspecified address.
    let address = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |Extension(info)| {
        info.0.ip()
    });
    let downloader = authenticated_downloader(&state, &headers, chunk)?;
    let key = match &downloader {
        Some(header) => budget::DownloaderKey::Node(header.downloader),
        None => budget::DownloaderKey::Address(address),
    };
    let slot = match state.downloaders.admit(key) {
        Ok(slot) => slot,
        Err(e) => {
            Metrics::add(&state.metrics.downloaders_refused, 1);
            return Ok(retry_after(e, 1));
        }
    };
    if let Some(header) = &downloader {
        let refused =
            state
                .ledger
                .try_serve(header.downloader, chunk, address, header.issued_at_ms);
        if let Err(refusal) = refused {
            Metrics::add(&state.metrics.requests_refused, 1);
            let who = header.downloader.short();
            return Err(match refusal {
                Refusal::Downloader { owed } => {
                    tracing::debug!(downloader = %who, owed, "refusing downloader that owes receipts");
                    ApiError::new(
                        ErrorCode::ReceiptsOwed,
                        format!(
                            "downloader owes {owed} receipts; send them to POST /v1/receipts first"
                        ),
                    )
                }
                Refusal::Address { owed } => {
                    tracing::debug!(downloader = %who, %address, owed, "refusing address that owes receipts");
                    ApiError::new(
                        ErrorCode::AddressOwesReceipts,
                        format!(
                            "downloaders at this address owe {owed} receipts together; \
                             send them to POST /v1/receipts first"
                        ),
                    )
                }
                Refusal::Replayed { last_issued_at_ms } => ApiError::new(
                    ErrorCode::StaleDownloader,
                    format!(
                        "this chunk was already served on a request issued at \
                         {last_issued_at_ms} ms; sign a newer one"
                    ),
                ),
            });
        }
    }
    let unserve = |state: &NodeState| {
        if let Some(header) = &downloader {
            state.ledger.unserve(&header.downloader, &chunk);
        }
    };
    let reader = state.clone();
    let read = blocking(move || reader.read_for_serving(&chunk)).await?;
    let bytes = match read {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            unserve(&state);
            return Err(ApiError::new(
                ErrorCode::UnknownChunk,
                format!("this node has no chunk {chunk}"),
            ));
        }
        Err(StoreError::Corrupt { id, actual }) => {
            unserve(&state);
            Metrics::add(&state.metrics.chunks_corrupt, 1);
            tracing::warn!(chunk = %id, %actual, "chunk corrupt on disk; quarantined");
            return Err(ApiError::new(
                ErrorCode::ChunkCorrupt,
                format!("chunk {id} failed verification on this node and was quarantined"),
            ));
        }
        Err(e) => {
            unserve(&state);
            return Err(ApiError::internal(e));
        }
    };
    if let Err(spent) = state
        .egress
        .reserve(bytes.len() as u64, dsi_protocol::now_ms())
    {
        unserve(&state);
        Metrics::add(&state.metrics.egress_refused, 1);
        return Ok(retry_after(
            spent.error(state.egress.limits()),
            spent.retry_after(),
        ));
    }
    Metrics::add(&state.metrics.bytes_served, bytes.len() as u64);
    Metrics::add(&state.metrics.chunks_served, 1);
    let body = paced_body(bytes, state.throttle.clone(), slot);
    let mut response = ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response();
    response.extensions_mut().insert(ContentAnswer);
    Ok(response)
}

/// Marks an answer that carries content: a chunk (past every check) or a manifest. The
/// bytes of such answers, and only those, keep an iroh peer's slot from looking stale
/// (`transport`): node info and the like cost nothing to ask for again and again.
#[derive(Clone, Copy, Debug)]
pub struct ContentAnswer;

async fn post_receipts(
    State(state): State<Arc<NodeState>>,
    JsonBody(batch): JsonBody<ReceiptBatch>,
) -> Result<Json<ReceiptBatchResponse>, ApiError> {
    if batch.receipts.len() > MAX_RECEIPT_BATCH {
        return Err(ApiError::new(
            ErrorCode::BatchTooLarge,
            format!(
                "at most {MAX_RECEIPT_BATCH} receipts per batch, got {}",
                batch.receipts.len()
            ),
        ));
    }
    let checker = state.clone();
    let receipts = batch.receipts;
    // The cheap stateless rules first, then signatures only for the receipts that passed
    // them (batch-verified, an identical copy once), off the async threads.
    let (receipts, mut verdicts) = blocking(move || {
        let chunk_len = |chunk: &ChunkId| {
            std::fs::metadata(checker.store.chunk_path(chunk))
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len())
        };
        let context = CheckContext {
            me: checker.node_id,
            current: checker.current_epoch(),
            grace: checker.config.serve.receipt_epoch_grace,
            epochs: checker.config.epochs,
            issued_at_skew_ms: checker.config.serve.receipt_issued_at_skew_ms,
            chunk_len: &chunk_len,
        };
        let mut verdicts: Vec<Result<(), Rejection>> = receipts
            .iter()
            .map(|receipt| receipts::check(receipt, &context))
            .collect();
        let mut first_copy: HashMap<&SignedReceipt, usize> = HashMap::new();
        let mut to_verify = Vec::new();
        let mut copies = Vec::new();
        for (i, receipt) in receipts.iter().enumerate() {
            if verdicts[i].is_ok() {
                match first_copy.entry(receipt) {
                    std::collections::hash_map::Entry::Occupied(first) => {
                        copies.push((i, *first.get()));
                    }
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(i);
                        to_verify.push(i);
                    }
                }
            }
        }
        let unverified: Vec<SignedReceipt> = to_verify.iter().map(|i| receipts[*i]).collect();
        let signatures = SignedReceipt::verify_many(&unverified, &checker.config.network);
        for (i, signature) in to_verify.iter().zip(signatures) {
            if let Err(e) = signature {
                verdicts[*i] = Err(Rejection::BadSignature(e.to_string()));
            }
        }
        for (i, first) in copies {
            verdicts[i] = verdicts[first].clone();
        }
        (receipts, verdicts)
    })
    .await?;
    let accepted: Vec<SignedReceipt> = receipts
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| v.is_ok())
        .map(|(r, _)| *r)
        .collect();
    let stored = state
        .receipts
        .insert(&accepted)
        .await
        .map_err(ApiError::internal)?;
    // A debt is settled once its receipt is durably held, and only by a receipt that is
    // new: a resubmission or a duplicate pays nothing more.
    let mut stored = stored.into_iter();
    let mut new = 0u64;
    for (verdict, receipt) in verdicts.iter_mut().zip(&receipts) {
        if verdict.is_err() {
            continue;
        }
        match stored.next() {
            Some(Stored::New) => {
                new += 1;
                state
                    .ledger
                    .settle(&receipt.receipt.downloader, &receipt.receipt.chunk);
            }
            Some(Stored::AlreadyHeld) => {}
            Some(Stored::Conflict) | None => *verdict = Err(Rejection::Duplicate),
        }
    }
    let rejected = verdicts.iter().filter(|v| v.is_err()).count() as u64;
    Metrics::add(&state.metrics.receipts_held, new);
    Metrics::add(
        &state.metrics.receipts_accepted,
        verdicts.len() as u64 - rejected,
    );
    Metrics::add(&state.metrics.receipts_rejected, rejected);
    let results = verdicts
        .into_iter()
        .map(|v| match v {
            Ok(()) => ReceiptVerdict::Accepted,
            Err(rejection) => ReceiptVerdict::Rejected {
                code: rejection.code(),
                message: rejection.to_string(),
            },
        })
        .collect();
    Ok(Json(ReceiptBatchResponse { results }))
}

/// The dashboard page (one file, no external scripts or fonts).
const DASHBOARD_HTML: &str = include_str!("server/dashboard.html");

fn admit_dashboard(
    state: &NodeState,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let client = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |Extension(info)| {
        info.0.ip()
    });
    local::admit(
        state.config.dashboard.clients,
        "dashboard.clients",
        client,
        headers,
    )
}

async fn dashboard_page(
    State(state): State<Arc<NodeState>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    admit_dashboard(&state, peer, &headers)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'; img-src data:; frame-ancestors 'none'",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        DASHBOARD_HTML,
    )
        .into_response())
}

async fn dashboard_status(
    State(state): State<Arc<NodeState>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Result<Json<crate::status::StatusReport>, ApiError> {
    admit_dashboard(&state, peer, &headers)?;
    let report = crate::status::collect(crate::status::Sources {
        node_id: state.node_id,
        config: &state.config,
        store: &state.store,
        receipts: &state.receipts,
        egress: state.egress.counts(dsi_protocol::now_ms()),
        tracker: state.tracker.as_ref(),
    })
    .await
    .map_err(ApiError::internal)?;
    Ok(Json(report))
}

async fn get_metrics(State(state): State<Arc<NodeState>>) -> Response {
    let egress = state.egress.counts(dsi_protocol::now_ms());
    let (day_limit, month_limit) = state.egress.limits();
    let text = state.metrics.render(&metrics::Gauges {
        peers_banned: state.ledger.refused_count(),
        egress_day_bytes: egress.day_bytes,
        egress_month_bytes: egress.month_bytes,
        egress_day_limit_bytes: day_limit,
        egress_month_limit_bytes: month_limit,
        downloaders_serving: state.downloaders.serving(),
        storage_limit_bytes: state.quota.max(),
        stored_bytes: state.quota.last_usage().unwrap_or(0),
    });
    (
        [(header::CONTENT_TYPE, dsi_service::prometheus::CONTENT_TYPE)],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::public_tracker;

    #[test]
    fn the_published_tracker_carries_no_credentials() {
        assert_eq!(
            public_tracker("http://user:secret@tracker.example:7400/").as_deref(),
            Some("http://tracker.example:7400")
        );
        assert_eq!(
            public_tracker("http://127.0.0.1:7400").as_deref(),
            Some("http://127.0.0.1:7400")
        );
        assert_eq!(public_tracker(""), None);
        assert_eq!(public_tracker("not a url"), None);
    }
}
