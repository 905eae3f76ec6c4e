//! The oracle's HTTP API (axum, JSON, versioned under `/v1`). [`router`] builds the routes
//! over a shared [`OracleState`]; tests call `router(state).oneshot(request)`. See
//! `oracle/API.md` for every route with examples.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dsi_protocol::announce::{MAX_ANNOUNCED_CONTENTS, MAX_URL_LEN};
use dsi_protocol::reputation::Standing;
use dsi_protocol::{ContentId, Epoch, Manifest, NodeId, SignedAnnouncement, SignedReceipt};
use serde::{Deserialize, Serialize};

use crate::close::{CloseError, close_through};
use crate::ingest::{Verdict, ingest};
use crate::store::{AnnounceOutcome, AuditRecord, EpochRecord, LeafRecord, NodeRecord, StoreError};
use crate::{OracleState, now_ms};

/// Largest manifest accepted (bytes).
pub const MAX_MANIFEST_BYTES: usize = 8 * 1024 * 1024;

/// A JSON error `{"code", "message"}` with an HTTP status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

/// The body of an error.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "database error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code.to_string(),
            message: self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

fn parse<T: std::str::FromStr>(text: &str, what: &'static str) -> ApiResult<T> {
    text.parse()
        .map_err(|_| ApiError::bad_request("bad_id", format!("{text:?} is not a valid {what}")))
}

fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("bad_json", format!("invalid JSON body: {e}")))
}

/// `GET /v1/info`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InfoResponse {
    /// Network.
    pub network: String,
    /// The oracle's audit identity.
    pub oracle: NodeId,
    /// Epoch schedule.
    pub epochs: dsi_protocol::EpochSchedule,
    /// Current epoch.
    pub current_epoch: Epoch,
    /// Database backend (`sqlite` or `postgres`).
    pub database: String,
    /// Oracle version.
    pub version: String,
}

/// `POST /v1/announce` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnnounceResponse {
    /// When the announcement expires unless renewed.
    pub expires_at_ms: u64,
    /// Announced contents whose manifest the oracle lacks: `POST /v1/manifests` them.
    pub unknown_contents: Vec<ContentId>,
    /// False if a newer announcement from this node was already held.
    pub stored: bool,
}

/// `POST /v1/manifests` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestResponse {
    /// Content id of the manifest.
    pub content_id: ContentId,
    /// False if it was already registered.
    pub new: bool,
}

/// One peer in `GET /v1/content/{id}/peers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Peer {
    /// Node id.
    pub node: NodeId,
    /// Base URL.
    pub url: String,
}

/// `GET /v1/content/{id}/peers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeersResponse {
    /// Live nodes holding the content.
    pub peers: Vec<Peer>,
}

/// `POST /v1/receipts` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceiptBatch {
    /// The receipts.
    pub receipts: Vec<SignedReceipt>,
}

/// `POST /v1/receipts` answer: one verdict per receipt, in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceiptBatchResponse {
    /// Verdicts.
    pub results: Vec<Verdict>,
}

/// `GET /v1/epochs/current`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CurrentEpoch {
    /// The open epoch.
    pub epoch: Epoch,
    /// Its start, Unix ms.
    pub start_ms: u64,
    /// Its end (exclusive), Unix ms.
    pub end_ms: u64,
    /// Newest closed epoch.
    pub last_closed: Option<Epoch>,
}

/// `GET /v1/epochs/{n}`: a closed epoch's record, or an open one's receipt count.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EpochInfo {
    /// Closed (or later).
    Closed(EpochRecord),
    /// Not closed yet.
    Open {
        /// The epoch.
        epoch: Epoch,
        /// `open`.
        status: String,
        /// Receipts accepted so far.
        receipts: u64,
    },
}

/// `POST /v1/epochs/close` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CloseRequest {
    /// Close every epoch through this one; default: the current epoch.
    pub through: Option<Epoch>,
}

/// `POST /v1/epochs/close` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CloseResponse {
    /// Epochs closed by this call, in order.
    pub closed: Vec<EpochRecord>,
}

/// `GET /v1/seeders/{node}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeederResponse {
    /// The seeder.
    pub seeder: NodeId,
    /// Reputation score (ppm).
    pub score: u32,
    /// Standing.
    pub standing: Standing,
    /// Reward factor (ppm).
    pub factor: u32,
    /// Cumulative earnings (native units, decimal).
    #[serde(with = "crate::store::decimal")]
    pub cumulative: u128,
    /// Its current announcement, if any.
    pub announcement: Option<NodeRecord>,
    /// Newest audits first (at most 50).
    pub audits: Vec<AuditRecord>,
    /// Its leaves, newest first (at most 50).
    pub epochs: Vec<LeafRecord>,
}

/// Builds the router.
pub fn router(state: Arc<OracleState>) -> Router {
    let max_body = state
        .config
        .ingest
        .max_batch
        .saturating_mul(1024)
        .max(MAX_MANIFEST_BYTES);
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/v1/info", get(info))
        .route("/v1/announce", post(announce))
        .route("/v1/manifests", post(register_manifest))
        .route("/v1/content/{id}/manifest", get(manifest))
        .route("/v1/content/{id}/peers", get(peers))
        .route("/v1/receipts", post(receipts))
        .route("/v1/epochs/current", get(current_epoch))
        .route("/v1/epochs/close", post(close))
        .route("/v1/epochs/{epoch}", get(epoch_info))
        .route("/v1/epochs/{epoch}/leaves", get(epoch_leaves))
        .route("/v1/epochs/{epoch}/batch", get(epoch_batch))
        .route("/v1/epochs/{epoch}/seeders/{node}", get(epoch_leaf))
        .route("/v1/seeders/{node}", get(seeder))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<OracleState>>) -> ApiResult<Response> {
    let held = state.store.count_all_receipts().await?;
    let epochs = state.store.epoch_status_counts().await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(held, &epochs),
    )
        .into_response())
}

async fn info(State(state): State<Arc<OracleState>>) -> Json<InfoResponse> {
    Json(InfoResponse {
        network: state.config.network.to_string(),
        oracle: state.key.node_id(),
        epochs: state.config.epochs,
        current_epoch: state.config.epochs.epoch_at(now_ms()),
        database: match state.store.backend() {
            crate::store::Backend::Sqlite => "sqlite".into(),
            crate::store::Backend::Postgres => "postgres".into(),
        },
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

async fn announce(
    State(state): State<Arc<OracleState>>,
    body: Bytes,
) -> ApiResult<Json<AnnounceResponse>> {
    let signed: SignedAnnouncement = json_body(&body)?;
    let a = &signed.announcement;
    if a.url.len() > MAX_URL_LEN {
        return Err(ApiError::bad_request(
            "bad_url",
            format!("url longer than {MAX_URL_LEN} bytes"),
        ));
    }
    match reqwest::Url::parse(&a.url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
        _ => {
            return Err(ApiError::bad_request(
                "bad_url",
                format!("{:?} is not an http(s) URL with a host", a.url),
            ));
        }
    }
    if a.contents.len() > MAX_ANNOUNCED_CONTENTS {
        return Err(ApiError::bad_request(
            "too_many_contents",
            format!("at most {MAX_ANNOUNCED_CONTENTS} contents per announcement"),
        ));
    }
    signed.verify(&state.config.network).map_err(|e| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            format!("{e} (network {})", state.config.network),
        )
    })?;
    let now = now_ms();
    if a.issued_at_ms.abs_diff(now) > state.config.tracker.max_clock_skew_ms {
        return Err(ApiError::bad_request(
            "clock_skew",
            format!(
                "announcement issued at {} ms, oracle time is {now} ms",
                a.issued_at_ms
            ),
        ));
    }
    let expires_at_ms = now.saturating_add(state.config.tracker.announce_ttl_secs * 1000);
    let outcome = state.store.put_announcement(a, now, expires_at_ms).await?;
    if outcome == AnnounceOutcome::Stored {
        state.metrics.announced();
    }
    let known = state.store.known_contents(&a.contents).await?;
    let unknown_contents = a
        .contents
        .iter()
        .filter(|c| !known.contains(c))
        .copied()
        .collect();
    Ok(Json(AnnounceResponse {
        expires_at_ms,
        unknown_contents,
        stored: outcome == AnnounceOutcome::Stored,
    }))
}

async fn register_manifest(
    State(state): State<Arc<OracleState>>,
    body: Bytes,
) -> ApiResult<Json<ManifestResponse>> {
    let manifest = Manifest::from_bytes(&body)
        .map_err(|e| ApiError::bad_request("bad_manifest", format!("invalid manifest: {e}")))?;
    let new = state.store.put_manifest(&manifest, now_ms()).await?;
    if new {
        let mut lengths = state.chunk_lengths.write().await;
        for i in 0..manifest.chunk_count() {
            lengths.insert(manifest.chunks[i], manifest.chunk_len(i));
        }
    }
    Ok(Json(ManifestResponse {
        content_id: manifest.content_id(),
        new,
    }))
}

async fn manifest(
    State(state): State<Arc<OracleState>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let content: ContentId = parse(&id, "content id")?;
    let bytes = state.store.manifest_bytes(&content).await?.ok_or_else(|| {
        ApiError::not_found("unknown_content", format!("no manifest for {content}"))
    })?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

async fn peers(
    State(state): State<Arc<OracleState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<PeersResponse>> {
    let content: ContentId = parse(&id, "content id")?;
    if state.store.manifest_bytes(&content).await?.is_none() {
        return Err(ApiError::not_found(
            "unknown_content",
            format!("no manifest for {content}"),
        ));
    }
    let peers = state
        .store
        .peers_for(&content, now_ms())
        .await?
        .into_iter()
        .map(|n| Peer {
            node: n.node,
            url: n.url,
        })
        .collect();
    Ok(Json(PeersResponse { peers }))
}

async fn receipts(
    State(state): State<Arc<OracleState>>,
    body: Bytes,
) -> ApiResult<Json<ReceiptBatchResponse>> {
    let started = Instant::now();
    let batch: ReceiptBatch = json_body(&body)?;
    let max = state.config.ingest.max_batch;
    if batch.receipts.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!("{} receipts; at most {max} per batch", batch.receipts.len()),
        ));
    }
    let results = ingest(&state, batch.receipts).await?;
    let accepted = results
        .iter()
        .filter(|v| matches!(v, Verdict::Accepted))
        .count() as u64;
    let rejected: Vec<&str> = results.iter().filter_map(Verdict::code).collect();
    state.metrics.batch(accepted, &rejected, started.elapsed());
    Ok(Json(ReceiptBatchResponse { results }))
}

async fn current_epoch(State(state): State<Arc<OracleState>>) -> ApiResult<Json<CurrentEpoch>> {
    let epoch = state.config.epochs.epoch_at(now_ms());
    let (start_ms, end_ms) = state.config.epochs.window(epoch);
    Ok(Json(CurrentEpoch {
        epoch,
        start_ms,
        end_ms,
        last_closed: state.store.last_closed_epoch().await?,
    }))
}

async fn epoch_info(
    State(state): State<Arc<OracleState>>,
    Path(epoch): Path<String>,
) -> ApiResult<Json<EpochInfo>> {
    let epoch: Epoch = parse(&epoch, "epoch")?;
    if let Some(record) = state.store.epoch(epoch).await? {
        return Ok(Json(EpochInfo::Closed(record)));
    }
    let current = state.config.epochs.epoch_at(now_ms());
    let last_closed = state.store.last_closed_epoch().await?;
    if epoch > current || last_closed.is_some_and(|c| epoch <= c) {
        return Err(ApiError::not_found(
            "unknown_epoch",
            format!("epoch {epoch} is neither closed nor open (current {current})"),
        ));
    }
    Ok(Json(EpochInfo::Open {
        epoch,
        status: "open".into(),
        receipts: state.store.count_receipts(epoch).await?,
    }))
}

async fn closed_epoch(state: &OracleState, epoch: &str) -> ApiResult<EpochRecord> {
    let epoch: Epoch = parse(epoch, "epoch")?;
    state.store.epoch(epoch).await?.ok_or_else(|| {
        ApiError::not_found("epoch_not_closed", format!("epoch {epoch} is not closed"))
    })
}

async fn epoch_leaves(
    State(state): State<Arc<OracleState>>,
    Path(epoch): Path<String>,
) -> ApiResult<Json<Vec<LeafRecord>>> {
    let record = closed_epoch(&state, &epoch).await?;
    Ok(Json(state.store.leaves(record.epoch).await?))
}

async fn epoch_batch(
    State(state): State<Arc<OracleState>>,
    Path(epoch): Path<String>,
) -> ApiResult<Response> {
    let record = closed_epoch(&state, &epoch).await?;
    let path = state.batches_dir.join(&record.batch_file);
    let bytes = tokio::fs::read(&path).await.map_err(|error| {
        tracing::error!(path = %path.display(), %error, "batch file unreadable");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "batch_unavailable",
            format!("the batch of epoch {} cannot be read", record.epoch),
        )
    })?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

async fn epoch_leaf(
    State(state): State<Arc<OracleState>>,
    Path((epoch, node)): Path<(String, String)>,
) -> ApiResult<Json<LeafRecord>> {
    let record = closed_epoch(&state, &epoch).await?;
    let node: NodeId = parse(&node, "node id")?;
    state
        .store
        .leaf(record.epoch, &node)
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::not_found(
                "no_leaf",
                format!("seeder {node} earned nothing in epoch {}", record.epoch),
            )
        })
}

async fn close(
    State(state): State<Arc<OracleState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<CloseResponse>> {
    let expected = format!("Bearer {}", state.admin_token);
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if state.admin_token.is_empty() || given != expected {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "closing an epoch needs the admin token (Authorization: Bearer <admin.token>)",
        ));
    }
    let request: CloseRequest = if body.is_empty() {
        CloseRequest::default()
    } else {
        json_body(&body)?
    };
    let through = request
        .through
        .unwrap_or_else(|| state.config.epochs.epoch_at(now_ms()));
    let closed = close_through(&state, through).await.map_err(|e| match e {
        CloseError::OutOfOrder { .. } | CloseError::Future { .. } => {
            ApiError::new(StatusCode::CONFLICT, "cannot_close", e.to_string())
        }
        CloseError::Store(e) => ApiError::from(e),
        other => {
            tracing::error!(error = %other, "epoch close failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "close_failed",
                other.to_string(),
            )
        }
    })?;
    Ok(Json(CloseResponse { closed }))
}

async fn seeder(
    State(state): State<Arc<OracleState>>,
    Path(node): Path<String>,
) -> ApiResult<Json<SeederResponse>> {
    let node: NodeId = parse(&node, "node id")?;
    let seeder = state.store.seeder_state(&node).await?;
    let announcement = state.store.node(&node).await?;
    if seeder.updated_epoch.is_none() && announcement.is_none() {
        return Err(ApiError::not_found(
            "unknown_seeder",
            format!("the oracle has never seen {node}"),
        ));
    }
    let params = &state.config.reputation;
    Ok(Json(SeederResponse {
        seeder: node,
        score: seeder.reputation.score().0,
        standing: seeder.reputation.standing(params),
        factor: seeder.reputation.factor(params).0,
        cumulative: seeder.cumulative,
        announcement,
        audits: state.store.audits(&node, 50).await?,
        epochs: state.store.seeder_leaves(&node, 50).await?,
    }))
}
