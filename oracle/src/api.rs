//! The oracle's HTTP API (axum, JSON, versioned under `/v1`). [`router`] builds the routes
//! over a shared [`OracleState`]; tests call `router(state).oneshot(request)`. See
//! `oracle/API.md` for every route with examples.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dsi_api::oracle::{
    AnnounceResponse, AvailabilityResponse, ChunkLengthsRequest, ChunkLengthsResponse,
    ChunkProofResponse, Claims, CloseRequest, CloseResponse, ClosedEpoch, ContentFunding, Credit,
    CreditRequest, CurrentEpoch, EpochInfo, EpochStatus, FundedHolder, Info, Leaf,
    MAX_CHUNK_LENGTH_QUERY, MAX_REPLICATION_ENTRIES, MAX_SPONSORED_EPOCHS, MAX_SPONSORED_REPLICAS,
    ManifestResponse, OpenEpoch, OpenEstimate, Peer, PeersResponse, RelayAccess, Replication,
    ReplicationEntry, SeederResponse, SponsorRequest, Sponsorship,
};
use dsi_api::registrant::{RegistrantHeader, RegistrantHeaderError};
use dsi_api::{
    ErrorCode, MAX_MANIFEST_BYTES, MAX_RECEIPT_JSON_BYTES, REGISTRANT_HEADER, ReceiptBatch,
    ReceiptBatchResponse,
};
use dsi_protocol::announce::{MAX_ANNOUNCED_CONTENTS, MAX_URL_LEN};
use dsi_protocol::manifest::MAX_CHUNK_SIZE;
use dsi_protocol::{
    Availability, ChunkId, ContentId, Epoch, Manifest, NodeId, SignedAnnouncement,
    SignedAvailability, now_ms,
};
use dsi_service::http::{ApiError, JsonBody, json_errors, parse_json};

use crate::OracleState;
use crate::close::{CloseError, close_through};
use crate::ingest::ingest;
use crate::store::{AnnounceOutcome, LocationBound, NoticeOutcome, Registered, StoreError};

type ApiResult<T> = Result<T, ApiError>;

/// A database failure answers `internal` (and is logged).
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::internal(format!("database: {error}"))
    }
}

fn parse<T: std::str::FromStr>(text: &str, what: &'static str) -> ApiResult<T> {
    text.parse()
        .map_err(|_| ApiError::new(ErrorCode::BadId, format!("{text:?} is not a valid {what}")))
}

/// Builds the router.
pub fn router(state: Arc<OracleState>) -> Router {
    let max_body = state
        .config
        .ingest
        .max_batch
        .saturating_mul(MAX_RECEIPT_JSON_BYTES)
        .max(MAX_MANIFEST_BYTES);
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/v1/info", get(info))
        .route("/v1/announce", post(announce))
        .route("/v1/availability", post(availability))
        .route("/v1/manifests", post(register_manifest))
        .route("/v1/chunk-lengths", post(chunk_lengths))
        .route("/v1/chunks/{id}", post(prove_chunk))
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
        .route("/v1/relay-access/{node}", get(relay_access))
        .route("/v1/replication", get(replication))
        .route("/v1/sponsors", post(sponsor))
        .route("/v1/credits", post(add_credit))
        .merge(
            // Public facts a browser page reads (a downloader's credit, a content's
            // funding): any origin may read them; no route uses cookies or ambient
            // credentials, and these answer GET only.
            Router::new()
                .route("/v1/credits/{node}", get(credit))
                .route("/v1/content/{id}/funding", get(funding))
                .layer(axum::middleware::map_response(readable_anywhere)),
        )
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
        .layer(axum::middleware::from_fn(json_errors))
}

/// Lets any web page read the answer (`Access-Control-Allow-Origin: *`).
async fn readable_anywhere(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    response
}

async fn metrics(State(state): State<Arc<OracleState>>) -> ApiResult<Response> {
    let held = state.store.count_all_receipts().await?;
    let epochs = state.store.epoch_status_counts().await?;
    Ok((
        [(header::CONTENT_TYPE, dsi_service::prometheus::CONTENT_TYPE)],
        state.metrics.render(held, &epochs),
    )
        .into_response())
}

async fn info(State(state): State<Arc<OracleState>>) -> Json<Info> {
    Json(Info {
        network: state.config.network.clone(),
        oracle: state.key.node_id(),
        epochs: state.config.epochs,
        current_epoch: state.config.epochs.epoch_at(now_ms()),
        database: match state.store.backend() {
            crate::store::Backend::Sqlite => "sqlite".into(),
            crate::store::Backend::Postgres => "postgres".into(),
        },
        version: env!("CARGO_PKG_VERSION").into(),
        relays: state.config.iroh.relays.clone(),
    })
}

/// The network location an announcement's connection came from: `None` without a peer
/// address (an in-process call) or for a private or loopback source on a network that does
/// not allow them (`audit.allow_private_addresses`). An IPv6 source that embeds an IPv4
/// address is located as that address ([`embedded_ipv4`]).
pub fn source_location(
    peer: Option<std::net::SocketAddr>,
    allow_private: bool,
) -> Option<dsi_protocol::reward::Location> {
    let ip = embedded_ipv4(peer?.ip());
    (allow_private || crate::audit::is_public(ip)).then(|| dsi_protocol::reward::Location::of(ip))
}

/// The IPv4 address an IPv6 address stands for when it embeds one: IPv4-mapped
/// (`::ffff:a.b.c.d`), 6to4 (`2002:aabb:ccdd::/48`, the address in bits 16–47) and Teredo
/// (`2001:0::/32`, the client's address inverted in the last 32 bits). Otherwise one IPv4
/// address would be a /48 of its own: whoever holds an IPv4 /24 (one location) would hold
/// 256 locations through 6to4. Any other address is returned as it is.
pub fn embedded_ipv4(ip: std::net::IpAddr) -> std::net::IpAddr {
    use std::net::{IpAddr, Ipv4Addr};
    let IpAddr::V6(v6) = ip.to_canonical() else {
        return ip.to_canonical();
    };
    let s = v6.segments();
    let v4 = |high: u16, low: u16| {
        let [a, b] = high.to_be_bytes();
        let [c, d] = low.to_be_bytes();
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    };
    match (s[0], s[1]) {
        (0x2002, _) => v4(s[1], s[2]),
        (0x2001, 0x0000) => v4(!s[6], !s[7]),
        _ => IpAddr::V6(v6),
    }
}

/// Checks an announcement whose URL is `iroh://NODE_ID/`: the id is the announcing node's,
/// it carries an endpoint, and this oracle can reach it (`[iroh]` names a relay).
fn iroh_url(state: &OracleState, a: &dsi_protocol::Announcement) -> ApiResult<()> {
    let bad = |message: String| Err(ApiError::new(ErrorCode::BadUrl, message));
    if !state.config.iroh.enabled() {
        return bad(format!(
            "{:?}: this tracker does not reach nodes over iroh (no [iroh] relays configured); \
             announce an http:// URL",
            a.url
        ));
    }
    if a.url != dsi_transport::peer_url(&a.node).as_str() {
        return bad(format!(
            "{:?}: an iroh URL names the announcing node itself: {}",
            a.url,
            dsi_transport::peer_url(&a.node)
        ));
    }
    if a.endpoint.is_none() {
        return bad(format!(
            "{:?}: a node reached over iroh announces its endpoint (relays, addresses)",
            a.url
        ));
    }
    Ok(())
}

/// How long an announced URL's host name may take to resolve.
const URL_RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

async fn announce(
    State(state): State<Arc<OracleState>>,
    peer: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
    JsonBody(signed): JsonBody<SignedAnnouncement>,
) -> ApiResult<Json<AnnounceResponse>> {
    let a = &signed.announcement;
    if a.url.len() > MAX_URL_LEN {
        return Err(ApiError::new(
            ErrorCode::BadUrl,
            format!("url longer than {MAX_URL_LEN} bytes"),
        ));
    }
    // Plain http: audits and node-lite's downloads do not speak TLS, so an https URL
    // would be listed for downloads nobody can make and fail every audit. Or the node's
    // own `iroh://NODE_ID/` with an endpoint, when this oracle audits over iroh: a node
    // behind a home router has no URL anyone can reach.
    let url = match reqwest::Url::parse(&a.url) {
        Ok(url) if dsi_transport::peer_node(&url).is_some() => {
            iroh_url(&state, a)?;
            None
        }
        Ok(url) if url.scheme() == "http" && url.host().is_some() => Some(url),
        Ok(url) if url.scheme() == "https" => {
            return Err(ApiError::new(
                ErrorCode::BadUrl,
                format!(
                    "{:?}: seeders are reached over plain http (audits and downloads do not \
                     speak TLS); announce the http:// URL",
                    a.url
                ),
            ));
        }
        _ => {
            return Err(ApiError::new(
                ErrorCode::BadUrl,
                format!("{:?} is not an http URL with a host", a.url),
            ));
        }
    };
    if let Some(endpoint) = &a.endpoint {
        endpoint
            .check()
            .map_err(|e| ApiError::new(ErrorCode::BadUrl, e.to_string()))?;
    }
    if a.contents.len() > MAX_ANNOUNCED_CONTENTS {
        return Err(ApiError::new(
            ErrorCode::TooManyContents,
            format!("at most {MAX_ANNOUNCED_CONTENTS} contents per announcement"),
        ));
    }
    let now = signed_now(
        &state,
        signed.verify(&state.config.network),
        "announcement",
        a.issued_at_ms,
    )?;
    let expires_at_ms = now.saturating_add(state.config.tracker.announce_ttl_secs * 1000);
    let location = source_location(
        peer.map(|Extension(ConnectInfo(addr))| addr),
        state.config.audit.allow_private_addresses,
    );
    // The URL must point into the network the announcement comes from (audits go only
    // there): a node cannot take a network's replica place by announcing through it. (An
    // iroh node is audited on a direct path from that network instead, `audit::over_iroh`.)
    if let (Some(location), Some(url)) = (location, url) {
        // A name holds one of a bounded number of slots while it resolves (a lookup takes
        // a blocking thread); an address needs no lookup.
        let _slot = if crate::audit::ip_literal(&url).is_none() {
            Some(state.resolve_slots.try_acquire().map_err(|_| {
                ApiError::new(
                    ErrorCode::ResolverBusy,
                    format!(
                        "the oracle resolves at most {} announced host names at once \
                         (tracker.max_concurrent_resolutions); retry later or announce a URL \
                         with an IP address",
                        state.config.tracker.max_concurrent_resolutions
                    ),
                )
            })?)
        } else {
            None
        };
        crate::audit::addresses_in(&url, location, URL_RESOLVE_TIMEOUT)
            .await
            .map_err(|detail| {
                ApiError::new(
                    ErrorCode::UrlOutsideSource,
                    format!(
                        "{detail}; announce from an address of the network your URL names \
                         (node-lite does when it listens on that address)"
                    ),
                )
            })?;
    }
    // Direct addresses outside the network the announcement came from are left out: a
    // node cannot point downloaders' QUIC handshakes at someone else's address.
    let mut announcement = a.clone();
    if let (Some(endpoint), Some(location)) = (&mut announcement.endpoint, location) {
        endpoint.direct.retain(|text| {
            text.parse::<std::net::SocketAddr>().is_ok_and(|address| {
                dsi_protocol::reward::Location::of(embedded_ipv4(address.ip())) == location
            })
        });
    }
    let a = &announcement;
    let outcome = {
        let _serial = state.announce_lock.lock().await;
        state
            .store
            .put_announcement(
                a,
                location,
                LocationBound {
                    max: state.config.tracker.max_nodes_per_location,
                    vetting_per_epoch: state.config.audit.chunks_per_node as u64,
                    vetted_at: u64::from(state.market().vetting_audits),
                },
                now,
                expires_at_ms,
            )
            .await?
    };
    if let AnnounceOutcome::LocationFull { location, live } = outcome {
        let location = location.map_or_else(
            || "(no usable source address: private or loopback)".to_string(),
            |l| l.to_string(),
        );
        return Err(ApiError::new(
            ErrorCode::LocationFull,
            format!(
                "network {location} already has {live} live nodes (tracker.max_nodes_per_location \
                 = {}), each awaiting its first audit, proven by the last close, or with more \
                 vetting credit than this key; a new key is taken once one of them expires or \
                 fails an audit",
                state.config.tracker.max_nodes_per_location
            ),
        ));
    }
    if let AnnounceOutcome::Exited(epoch) = outcome {
        return Err(exited(&a.node, epoch));
    }
    if let AnnounceOutcome::Displaced { weaker } = outcome {
        tracing::info!(node = %a.node.short(), weaker = %weaker.short(), "a key took a full network's place from one the last close did not prove");
    }
    let stored = matches!(
        outcome,
        AnnounceOutcome::Stored | AnnounceOutcome::Displaced { .. }
    );
    if stored {
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
        stored,
    }))
}

/// The checks every signed tracker message passes: its signature (`verified`), then its
/// time within `tracker.max_clock_skew_ms` of the oracle's clock. Returns the time now.
fn signed_now(
    state: &OracleState,
    verified: Result<(), dsi_protocol::announce::AnnounceError>,
    what: &str,
    issued_at_ms: u64,
) -> ApiResult<u64> {
    verified.map_err(|e| {
        ApiError::new(
            ErrorCode::BadSignature,
            format!("{e} (network {})", state.config.network),
        )
    })?;
    let now = now_ms();
    if issued_at_ms.abs_diff(now) > state.config.tracker.max_clock_skew_ms {
        return Err(ApiError::new(
            ErrorCode::ClockSkew,
            format!("{what} issued at {issued_at_ms} ms, oracle time is {now} ms"),
        ));
    }
    Ok(now)
}

fn exited(node: &NodeId, epoch: Epoch) -> ApiError {
    ApiError::new(
        ErrorCode::NodeExited,
        format!(
            "{node} exited the network in epoch {epoch}; an exited key is not taken again (a \
             node that rejoins does so with a new key)"
        ),
    )
}

/// `POST /v1/availability`: a node pauses, resumes or exits ([`SignedAvailability`]).
async fn availability(
    State(state): State<Arc<OracleState>>,
    JsonBody(signed): JsonBody<SignedAvailability>,
) -> ApiResult<Json<AvailabilityResponse>> {
    let notice = &signed.notice;
    let max = state.config.tracker.max_paused_epochs;
    if let Availability::Pause { epochs } = notice.change
        && (epochs == 0 || epochs > max)
    {
        return Err(ApiError::new(
            ErrorCode::PauseTooLong,
            format!(
                "a pause of {epochs} epochs: a pause lasts 1 to {max} epochs \
                 (tracker.max_paused_epochs); resume, then pause again for longer"
            ),
        ));
    }
    let now = signed_now(
        &state,
        signed.verify(&state.config.network),
        "notice",
        notice.issued_at_ms,
    )?;
    let epochs = &state.config.epochs;
    let current = epochs.epoch_at(now);
    let outcome = {
        let _serial = state.announce_lock.lock().await;
        state.store.apply_notice(notice, current, now).await?
    };
    let node = notice.node;
    let availability = match outcome {
        NoticeOutcome::Applied(availability) => availability,
        NoticeOutcome::UnknownNode => {
            return Err(ApiError::new(
                ErrorCode::UnknownNode,
                format!("the tracker holds no announcement of {node}: announce first"),
            ));
        }
        NoticeOutcome::Exited(epoch) => return Err(exited(&node, epoch)),
        NoticeOutcome::Stale => {
            return Err(ApiError::new(
                ErrorCode::StaleNotice,
                format!(
                    "a notice issued at {} ms is not newer than the last one taken from {node}",
                    notice.issued_at_ms
                ),
            ));
        }
        NoticeOutcome::AlreadyPaused { from, until } => {
            return Err(ApiError::new(
                ErrorCode::AlreadyPaused,
                format!(
                    "{node} is paused for epochs {from} to {} already; resume first",
                    until.0.saturating_sub(1)
                ),
            ));
        }
        NoticeOutcome::NotPaused => {
            return Err(ApiError::new(
                ErrorCode::NotPaused,
                format!("{node} is not paused"),
            ));
        }
    };
    tracing::info!(node = %node.short(), ?availability, "availability notice");
    let (_, end) = epochs.window(current);
    Ok(Json(AvailabilityResponse {
        availability,
        current_epoch: current,
        close_starts_ms: end.saturating_add(state.config.close.delay_ms),
    }))
}

async fn register_manifest(
    State(state): State<Arc<OracleState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<ManifestResponse>> {
    if body.len() > MAX_MANIFEST_BYTES {
        return Err(ApiError::new(
            ErrorCode::BodyTooLarge,
            format!(
                "a manifest is at most {MAX_MANIFEST_BYTES} bytes, got {}",
                body.len()
            ),
        ));
    }
    // Cheap checks first: the header's form, the manifest, then the header's time and
    // signature (one check, which needs the manifest's content id).
    let registrant: RegistrantHeader = headers
        .get(REGISTRANT_HEADER)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::BadRegistrant,
                format!("a manifest registration needs the {REGISTRANT_HEADER} header"),
            )
        })?
        .to_str()
        .map_err(|_| ApiError::new(ErrorCode::BadRegistrant, "the header is not ASCII"))?
        .parse()
        .map_err(|e: RegistrantHeaderError| {
            ApiError::new(ErrorCode::BadRegistrant, e.to_string())
        })?;
    let manifest = Manifest::from_bytes(&body)
        .map_err(|e| ApiError::new(ErrorCode::BadManifest, format!("invalid manifest: {e}")))?;
    let now = now_ms();
    registrant
        .check(
            &state.config.network,
            manifest.content_id(),
            now,
            state.config.tracker.max_clock_skew_ms,
        )
        .map_err(|e| {
            let code = match e {
                RegistrantHeaderError::Stale { .. } => ErrorCode::ClockSkew,
                _ => ErrorCode::BadSignature,
            };
            ApiError::new(code, e.to_string())
        })?;
    // The write lock orders registrations: the lengths in memory are the stored ones.
    let mut lengths = state.chunk_lengths.write().await;
    let conflict = |chunk: ChunkId, known: u32, claimed: u32| {
        ApiError::new(
            ErrorCode::ChunkLengthConflict,
            format!(
                "chunk {chunk} is registered with {known} bytes; this manifest says {claimed}: \
                 nothing was registered"
            ),
        )
    };
    let distinct = manifest.distinct_chunk_lengths();
    for (chunk, claimed) in &distinct {
        if let Some(&known) = lengths.get(chunk)
            && known != *claimed
        {
            return Err(conflict(*chunk, known, *claimed));
        }
    }
    let quota = state.config.tracker.max_manifest_bytes_per_node;
    let new = match state
        .store
        .put_manifest(&manifest, &registrant.registrant, quota, now)
        .await?
    {
        Registered::New => true,
        Registered::Known => false,
        Registered::OverQuota { used, quota } => {
            return Err(ApiError::new(
                ErrorCode::ManifestQuota,
                format!(
                    "node {} registered {used} manifest bytes; this manifest's {} would pass \
                     its quota of {quota}: nothing was registered",
                    registrant.registrant,
                    body.len()
                ),
            ));
        }
        Registered::Conflict {
            chunk,
            known,
            claimed,
        } => return Err(conflict(chunk, known, claimed)),
    };
    if new {
        lengths.extend(distinct);
    }
    Ok(Json(ManifestResponse {
        content_id: manifest.content_id(),
        new,
    }))
}

/// The registered lengths of up to [`MAX_CHUNK_LENGTH_QUERY`] chunks (a node whose
/// manifest met `chunk_length_conflict` finds the chunk to prove with it).
async fn chunk_lengths(
    State(state): State<Arc<OracleState>>,
    JsonBody(request): JsonBody<ChunkLengthsRequest>,
) -> ApiResult<Json<ChunkLengthsResponse>> {
    if request.chunks.len() > MAX_CHUNK_LENGTH_QUERY {
        return Err(ApiError::new(
            ErrorCode::BatchTooLarge,
            format!(
                "at most {MAX_CHUNK_LENGTH_QUERY} chunk ids per request, got {}",
                request.chunks.len()
            ),
        ));
    }
    let lengths = state.chunk_lengths.read().await;
    Ok(Json(ChunkLengthsResponse {
        lengths: request
            .chunks
            .iter()
            .map(|c| lengths.get(c).copied())
            .collect(),
    }))
}

/// A chunk's bytes prove its length: if the registered length was false (a manifest
/// registered it first with a wrong length, which blocks every honest manifest naming the
/// chunk), the proven length replaces it and the manifests that gave the false one are
/// dropped ([`crate::store::Store::settle_chunk_length`]); the close leaves receipts
/// judged against the false length out of their epoch's batch. A proof that changes
/// nothing (or names a chunk no manifest named) is answered from memory without a lock or
/// a database write.
async fn prove_chunk(
    State(state): State<Arc<OracleState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<ChunkProofResponse>> {
    let chunk: ChunkId = parse(&id, "chunk id")?;
    if body.len() > MAX_CHUNK_SIZE as usize {
        return Err(ApiError::new(
            ErrorCode::BodyTooLarge,
            format!(
                "a chunk is at most {MAX_CHUNK_SIZE} bytes, got {}",
                body.len()
            ),
        ));
    }
    if ChunkId::of(&body) != chunk {
        return Err(ApiError::new(
            ErrorCode::ChunkBytesMismatch,
            format!("the {} bytes sent do not hash to chunk {chunk}", body.len()),
        ));
    }
    let length = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let unknown = || {
        ApiError::new(
            ErrorCode::UnknownChunk,
            format!("no registered manifest names chunk {chunk}"),
        )
    };
    let unchanged = |previous| ChunkProofResponse {
        chunk,
        length,
        previous,
        dropped_manifests: Vec::new(),
    };
    match state.chunk_lengths.read().await.get(&chunk) {
        None => return Err(unknown()),
        Some(&known) if known == length => return Ok(Json(unchanged(known))),
        Some(_) => {}
    }
    // The write lock orders this with manifest registrations (the lengths in memory are
    // the stored ones) and with the close, which reads the lengths once for its batch.
    let mut lengths = state.chunk_lengths.write().await;
    let settled = state
        .store
        .settle_chunk_length(&chunk, length)
        .await?
        .ok_or_else(unknown)?;
    lengths.insert(chunk, length);
    drop(lengths);
    if settled.previous != length {
        tracing::warn!(
            %chunk,
            false_length = settled.previous,
            length,
            dropped_manifests = settled.dropped_manifests.len(),
            "a false chunk length was corrected with the chunk's bytes"
        );
    }
    Ok(Json(ChunkProofResponse {
        dropped_manifests: settled.dropped_manifests,
        ..unchanged(settled.previous)
    }))
}

async fn manifest(
    State(state): State<Arc<OracleState>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let content: ContentId = parse(&id, "content id")?;
    let bytes = state.store.manifest_bytes(&content).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownContent,
            format!("no manifest for {content}"),
        )
    })?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

async fn peers(
    State(state): State<Arc<OracleState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<PeersResponse>> {
    let content: ContentId = parse(&id, "content id")?;
    if state.store.manifest_bytes(&content).await?.is_none() {
        return Err(ApiError::new(
            ErrorCode::UnknownContent,
            format!("no manifest for {content}"),
        ));
    }
    let now = now_ms();
    let peers = state
        .store
        .peers_for(&content, now, state.config.epochs.epoch_at(now))
        .await?
        .into_iter()
        .map(|n| Peer {
            node: n.node,
            url: n.url,
            endpoint: n.endpoint,
        })
        .collect();
    Ok(Json(PeersResponse { peers }))
}

async fn receipts(
    State(state): State<Arc<OracleState>>,
    JsonBody(batch): JsonBody<ReceiptBatch>,
) -> ApiResult<Json<ReceiptBatchResponse>> {
    let started = Instant::now();
    let max = state.config.ingest.max_batch;
    if batch.receipts.len() > max {
        return Err(ApiError::new(
            ErrorCode::BatchTooLarge,
            format!("{} receipts; at most {max} per batch", batch.receipts.len()),
        ));
    }
    let results = ingest(&state, batch.receipts).await?;
    let accepted = results.iter().filter(|v| v.is_accepted()).count() as u64;
    let rejected: Vec<_> = results.iter().filter_map(|v| v.rejection()).collect();
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
        return Err(ApiError::new(
            ErrorCode::UnknownEpoch,
            format!("epoch {epoch} is neither closed nor open (current {current})"),
        ));
    }
    Ok(Json(EpochInfo::Open(OpenEpoch {
        epoch,
        status: EpochStatus::Open,
        receipts: state.store.count_receipts(epoch).await?,
    })))
}

async fn closed_epoch(state: &OracleState, epoch: &str) -> ApiResult<ClosedEpoch> {
    let epoch: Epoch = parse(epoch, "epoch")?;
    state.store.epoch(epoch).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::EpochNotClosed,
            format!("epoch {epoch} is not closed"),
        )
    })
}

async fn epoch_leaves(
    State(state): State<Arc<OracleState>>,
    Path(epoch): Path<String>,
) -> ApiResult<Json<Vec<Leaf>>> {
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
            ErrorCode::BatchUnavailable,
            format!("the batch of epoch {} cannot be read", record.epoch),
        )
    })?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

async fn epoch_leaf(
    State(state): State<Arc<OracleState>>,
    Path((epoch, node)): Path<(String, String)>,
) -> ApiResult<Json<Leaf>> {
    let record = closed_epoch(&state, &epoch).await?;
    let node: NodeId = parse(&node, "node id")?;
    state
        .store
        .leaf(record.epoch, &node)
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NoLeaf,
                format!("seeder {node} earned nothing in epoch {}", record.epoch),
            )
        })
}

/// Refuses a request without the admin token; `what` names the action in the error.
fn require_admin(state: &OracleState, headers: &HeaderMap, what: &str) -> ApiResult<()> {
    let expected = format!("Bearer {}", state.admin_token);
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // blake3::Hash compares in constant time: the answer's timing says nothing about how
    // much of a guessed token was right.
    if state.admin_token.is_empty()
        || blake3::hash(given.as_bytes()) != blake3::hash(expected.as_bytes())
    {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            format!("{what} needs the admin token (Authorization: Bearer <admin.token>)"),
        ));
    }
    Ok(())
}

async fn close(
    State(state): State<Arc<OracleState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<CloseResponse>> {
    require_admin(&state, &headers, "closing an epoch")?;
    let request: CloseRequest = if body.is_empty() {
        CloseRequest::default()
    } else {
        parse_json(&body)?
    };
    let through = request
        .through
        .unwrap_or_else(|| state.config.epochs.epoch_at(now_ms()));
    let closed = close_through(&state, through).await.map_err(|e| match e {
        CloseError::OutOfOrder { .. } | CloseError::Future { .. } => {
            ApiError::new(ErrorCode::CannotClose, e.to_string())
        }
        CloseError::Store(e) => ApiError::from(e),
        other => {
            tracing::error!(error = %other, "epoch close failed");
            ApiError::new(ErrorCode::CloseFailed, other.to_string())
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
        return Err(ApiError::new(
            ErrorCode::UnknownSeeder,
            format!("the oracle has never seen {node}"),
        ));
    }
    let params = &state.config.reputation;
    let open_epoch = Some(open_estimate(&state, &node, seeder.reputation.factor(params)).await?);
    let leaves = state.store.seeder_leaves(&node, 50).await?;
    Ok(Json(SeederResponse {
        seeder: node,
        score: seeder.reputation.score().0,
        standing: seeder.reputation.standing(params),
        factor: seeder.reputation.factor(params).0,
        cumulative: seeder.cumulative,
        announcement,
        availability: state
            .store
            .availability(&node, state.config.epochs.epoch_at(now_ms()))
            .await?,
        open_epoch,
        audits: state.store.audits(&node, 50).await?,
        claims: claims(&state, &node, &leaves).await?,
        epochs: leaves,
    }))
}

/// How long a `GET /v1/replication` answer is reused.
const REPLICATION_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// `GET /v1/replication`: funded contents, their counted replicas and what one more would
/// earn (answered from a copy at most [`REPLICATION_TTL`] old and made after the newest
/// close: anyone may ask).
async fn replication(State(state): State<Arc<OracleState>>) -> ApiResult<Json<Replication>> {
    Ok(Json(Replication::clone(
        &*cached_replication(&state).await?,
    )))
}

/// The replication answer, reused while at most [`REPLICATION_TTL`] old and newer than the
/// newest close.
async fn cached_replication(state: &OracleState) -> ApiResult<Arc<Replication>> {
    let closed = state.store.last_closed_epoch().await?;
    let mut cached = state.replication.lock().await;
    if let Some((at, answer)) = cached.as_ref()
        && at.elapsed() < REPLICATION_TTL
        && answer.closed_epoch == closed
    {
        return Ok(answer.clone());
    }
    let answer = Arc::new(replication_now(state, closed).await?);
    *cached = Some((Instant::now(), answer.clone()));
    Ok(answer)
}

/// How long a seeder's claimed amount read from the chain is reused.
const CLAIMED_TTL: std::time::Duration = std::time::Duration::from_secs(10);
/// Most seeders whose claimed amount is remembered.
const CLAIMED_CACHE: usize = 4096;

/// What `node` claimed on chain in all, and how much of `claimable` (leaves of claimable
/// epochs) is not claimed yet: remembered for [`CLAIMED_TTL`], read with one of
/// `chain_reads`' slots (`None` without a chain, with no slot free, or on a failed read).
async fn claimed_on_chain(
    state: &OracleState,
    node: &NodeId,
    claimable: &[&Leaf],
) -> Option<(u128, u128)> {
    let chain = state.chain.as_ref()?;
    let cached = || {
        let held = state.claimed.lock().ok()?;
        held.get(node)
            .filter(|(at, _)| at.elapsed() < CLAIMED_TTL)
            .map(|(_, amounts)| *amounts)
    };
    if let Some(amounts) = cached() {
        return Some(amounts);
    }
    let _slot = state.chain_reads.try_acquire().ok()?;
    let read = async {
        let claimed = chain.claimed(node).await?;
        let mut unclaimed = 0u128;
        for leaf in claimable {
            if chain.claimed_in(leaf.epoch.0, node).await?.is_none() {
                unclaimed = unclaimed.saturating_add(leaf.amount);
            }
        }
        Ok::<_, crate::chain::ChainError>((claimed, unclaimed))
    };
    let amounts = match tokio::time::timeout(std::time::Duration::from_secs(10), read).await {
        Ok(Ok(amounts)) => amounts,
        Ok(Err(error)) => {
            tracing::warn!(%error, "reading a seeder's claims from the chain failed");
            return None;
        }
        Err(_) => return None,
    };
    if let Ok(mut held) = state.claimed.lock() {
        if held.len() >= CLAIMED_CACHE {
            held.retain(|_, (at, _)| at.elapsed() < CLAIMED_TTL);
            if held.len() >= CLAIMED_CACHE {
                held.clear();
            }
        }
        held.insert(*node, (Instant::now(), amounts));
    }
    Some(amounts)
}

/// A seeder's claims over `leaves` (its newest).
async fn claims(state: &OracleState, node: &NodeId, leaves: &[Leaf]) -> ApiResult<Claims> {
    let epochs_in = async |statuses: &[EpochStatus]| -> ApiResult<HashSet<Epoch>> {
        Ok(state
            .store
            .epochs_with_status(statuses)
            .await?
            .into_iter()
            .map(|e| e.epoch)
            .collect())
    };
    let claimable = epochs_in(&[EpochStatus::Claimable]).await?;
    let waiting = epochs_in(&[
        EpochStatus::Closed,
        EpochStatus::Submitted,
        EpochStatus::Final,
    ])
    .await?;
    let in_set = |set: &HashSet<Epoch>| -> Vec<&Leaf> {
        leaves.iter().filter(|l| set.contains(&l.epoch)).collect()
    };
    let sum = |leaves: &[&Leaf]| leaves.iter().fold(0u128, |t, l| t.saturating_add(l.amount));
    let claimable = in_set(&claimable);
    Ok(match claimed_on_chain(state, node, &claimable).await {
        Some((claimed, unclaimed)) => Claims {
            claimed: Some(claimed),
            claimable: unclaimed,
            waiting: sum(&in_set(&waiting)),
        },
        None => Claims {
            claimed: None,
            claimable: sum(&claimable),
            waiting: sum(&in_set(&waiting)),
        },
    })
}

/// The open epoch's estimate for `node` ([`OpenEstimate`]).
async fn open_estimate(
    state: &OracleState,
    node: &NodeId,
    factor: dsi_protocol::fixed::Ppm,
) -> ApiResult<OpenEstimate> {
    use dsi_protocol::fixed::{PPM_SCALE, mul_div};
    let epoch = state.config.epochs.epoch_at(now_ms());
    let (receipts, bytes) = state.store.seeder_epoch_total(node, epoch).await?;
    let market = state.market();
    let scale = u128::from(PPM_SCALE);
    let gross = u128::from(bytes).saturating_mul(u128::from(market.price_per_byte));
    let keep = scale.saturating_sub(u128::from(market.fee.0.min(PPM_SCALE)));
    let factored = |amount: u128| {
        mul_div(amount, u128::from(factor.0.min(PPM_SCALE)), scale).unwrap_or(amount)
    };
    let bandwidth = factored(mul_div(gross, keep, scale).unwrap_or(gross));
    let storage = cached_replication(state)
        .await?
        .contents
        .iter()
        .filter(|e| e.holders.contains(node))
        .fold(0u128, |sum, e| sum.saturating_add(e.per_replica_per_epoch));
    Ok(OpenEstimate {
        epoch,
        receipts,
        bytes,
        bandwidth,
        storage: factored(storage),
    })
}

async fn replication_now(
    state: &OracleState,
    closed_epoch: Option<Epoch>,
) -> ApiResult<Replication> {
    let config = &state.config;
    let current = config.epochs.epoch_at(now_ms());
    let sponsorships = state.store.sponsorships(None, Some(current)).await?;
    let funded = crate::close::funded_contents(
        &config.subsidized,
        &sponsorships,
        config.rewards.target_replication,
    );
    let subsidized = config.subsidized.len().max(1) as u128;
    // The replicas the newest close counted: holders proven by it, one per network, the
    // longest-proven first (as the close orders them).
    let locations = state.store.live_locations(0).await?;
    let mut runs: HashMap<ContentId, Vec<(Epoch, NodeId)>> = HashMap::new();
    for held in state.store.held_since().await? {
        if Some(held.proven) == closed_epoch && funded.contains_key(&held.content) {
            runs.entry(held.content)
                .or_default()
                .push((held.since, held.node));
        }
    }
    let mut contents = Vec::new();
    for (content, (funding, target)) in &funded {
        let Some(bytes) = state.store.manifest_bytes(content).await? else {
            continue;
        };
        let Ok(manifest) = Manifest::from_bytes(&bytes) else {
            continue;
        };
        let per_epoch = match funding {
            dsi_protocol::reward::Funding::Sponsored { per_epoch } => *per_epoch,
            dsi_protocol::reward::Funding::Subsidized { .. } => {
                u128::from(config.close.budget) / subsidized
            }
        };
        let mut held = runs.remove(content).unwrap_or_default();
        held.sort();
        let mut seen = std::collections::HashSet::new();
        let counted: Vec<NodeId> = held
            .into_iter()
            .filter(|(_, node)| locations.get(node).is_some_and(|l| seen.insert(*l)))
            .map(|(_, node)| node)
            .collect();
        let target = (*target).max(1);
        contents.push(ReplicationEntry {
            content: *content,
            length: manifest.size,
            target,
            holder_count: counted.len() as u32,
            holders: counted.into_iter().take(target as usize).collect(),
            per_epoch,
            per_replica_per_epoch: per_epoch / u128::from(target),
        });
    }
    contents.sort_by(ReplicationEntry::better_paid);
    contents.truncate(MAX_REPLICATION_ENTRIES);
    Ok(Replication {
        closed_epoch,
        contents,
    })
}

fn bad_funding(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::BadFunding, message.into())
}

/// The first epoch the ledger may still fund (the next one to close) and the default
/// first epoch of a sponsorship (the current one, or that if later).
async fn fundable_epochs(state: &OracleState) -> ApiResult<(Epoch, Epoch)> {
    let current = state.config.epochs.epoch_at(now_ms());
    let open = match state.store.last_closed_epoch().await? {
        Some(last) => last.next(),
        None => Epoch(0),
    };
    Ok((open, current.max(open)))
}

async fn sponsor(
    State(state): State<Arc<OracleState>>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<SponsorRequest>,
) -> ApiResult<Json<Sponsorship>> {
    require_admin(&state, &headers, "recording a sponsorship")?;
    refuse_with_chain(&state)?;
    if request.per_epoch == 0 {
        return Err(bad_funding("per_epoch must be above zero"));
    }
    if !(1..=MAX_SPONSORED_EPOCHS).contains(&request.epochs) {
        return Err(bad_funding(format!(
            "epochs must be 1 to {MAX_SPONSORED_EPOCHS}, got {}",
            request.epochs
        )));
    }
    if !(1..=MAX_SPONSORED_REPLICAS).contains(&request.replicas) {
        return Err(bad_funding(format!(
            "replicas must be 1 to {MAX_SPONSORED_REPLICAS}, got {}",
            request.replicas
        )));
    }
    // Under the ingest lock, which a close holds from reading the sponsorships to
    // recording the epoch: a sponsorship lands before its first epoch closes or is refused.
    let _guard = state.ingest_lock.lock().await;
    let (open, default) = fundable_epochs(&state).await?;
    let first = request.first_epoch.unwrap_or(default);
    if first < open {
        return Err(bad_funding(format!(
            "epoch {first} is closed already; the first epoch that can be funded is {open}"
        )));
    }
    let last = Epoch(
        first
            .0
            .checked_add(request.epochs - 1)
            .ok_or_else(|| bad_funding("the last epoch overflows"))?,
    );
    if request
        .per_epoch
        .checked_mul(u128::from(request.epochs))
        .is_none()
    {
        return Err(bad_funding("per_epoch × epochs overflows"));
    }
    let sponsorship = Sponsorship {
        content: request.content,
        per_epoch: request.per_epoch,
        replicas: request.replicas,
        first_epoch: first,
        last_epoch: last,
        funded_at_ms: now_ms(),
        chain_id: None,
    };
    state.store.add_sponsorship(&sponsorship).await?;
    tracing::info!(content = %request.content.short(), per_epoch = %request.per_epoch, first = first.0, last = last.0, replicas = request.replicas, "sponsorship recorded");
    Ok(Json(sponsorship))
}

/// With a chain, sponsorships and credits are deposits in `reward_pool`: the oracle's
/// ledger only mirrors them.
fn refuse_with_chain(state: &OracleState) -> ApiResult<()> {
    if state.chain.is_some() {
        return Err(ApiError::new(
            ErrorCode::FundingOnChain,
            "this oracle's sponsorships and credits are deposits in the reward_pool contract: \
             send them there (oracle sponsor / oracle credit --amount)",
        ));
    }
    Ok(())
}

/// A downloader's credit as the ledger has it (with a chain: the deposits mirrored by the
/// last close; the public route never reads the chain, which anyone could make it do
/// without end).
async fn credit_of(state: &OracleState, downloader: NodeId) -> ApiResult<Credit> {
    let (funded, spent) = state.store.credit(&downloader).await?;
    Ok(Credit {
        downloader,
        funded,
        spent,
        available: funded.saturating_sub(spent),
        price_per_byte: state.market().price_per_byte,
    })
}

async fn add_credit(
    State(state): State<Arc<OracleState>>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<CreditRequest>,
) -> ApiResult<Json<Credit>> {
    require_admin(&state, &headers, "adding credit")?;
    refuse_with_chain(&state)?;
    if request.amount == 0 {
        return Err(bad_funding("amount must be above zero"));
    }
    let (funded, _) = state.store.credit(&request.downloader).await?;
    if funded.checked_add(request.amount).is_none() {
        return Err(bad_funding("the downloader's total credit would overflow"));
    }
    state
        .store
        .add_credit(&request.downloader, request.amount, now_ms())
        .await?;
    tracing::info!(downloader = %request.downloader.short(), amount = %request.amount, "credit added");
    Ok(Json(credit_of(&state, request.downloader).await?))
}

/// Whether the network's relays carry `node`'s traffic (`dsi-relay --admit-from`): the
/// oracle itself (it audits through them), a node whose announcement is live and that has
/// not exited (unless excluded for good: a suspended node still needs the relay to be
/// audited back into standing), or a downloader with credit left. Announcing is free, so
/// this keeps out strangers, not fresh keys willing to announce (within the tracker's
/// per-network key limit); credit is what costs.
async fn relay_access(
    State(state): State<Arc<OracleState>>,
    Path(node): Path<String>,
) -> ApiResult<Json<RelayAccess>> {
    let node: NodeId = parse(&node, "node id")?;
    let answer = |allowed: bool, reason: &str| {
        Ok(Json(RelayAccess {
            node,
            allowed,
            reason: reason.into(),
        }))
    };
    if node == state.key.node_id() {
        return answer(true, "the network's oracle");
    }
    if credit_of(&state, node).await?.available > 0 {
        return answer(true, "a downloader with credit");
    }
    if state.store.is_live_node(&node, now_ms()).await? {
        let standing = state
            .store
            .seeder_state(&node)
            .await?
            .reputation
            .standing(&state.config.reputation);
        if standing == dsi_protocol::reputation::Standing::Excluded {
            return answer(false, "an announced node excluded for good");
        }
        return answer(true, "a node with a live announcement");
    }
    answer(
        false,
        "neither a node with a live announcement nor a downloader with credit",
    )
}

async fn credit(
    State(state): State<Arc<OracleState>>,
    Path(node): Path<String>,
) -> ApiResult<Json<Credit>> {
    let node: NodeId = parse(&node, "node id")?;
    Ok(Json(credit_of(&state, node).await?))
}

async fn funding(
    State(state): State<Arc<OracleState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<ContentFunding>> {
    let content: ContentId = parse(&id, "content id")?;
    let sponsorships = state.store.sponsorships(Some(&content), None).await?;
    let current = state.config.epochs.epoch_at(now_ms());
    let per_epoch_now = sponsorships
        .iter()
        .filter(|s| s.first_epoch <= current && current <= s.last_epoch)
        .fold(0u128, |acc, s| acc.saturating_add(s.per_epoch));
    let mut holders: Vec<FundedHolder> = state
        .store
        .held_since()
        .await?
        .into_iter()
        .filter(|h| h.content == content)
        .map(|h| FundedHolder {
            node: h.node,
            since: h.since,
            proven: h.proven,
        })
        .collect();
    holders.sort_by_key(|h| (h.since, h.node));
    Ok(Json(ContentFunding {
        content,
        sponsorships,
        subsidy_boost: state
            .config
            .subsidized
            .iter()
            .find(|s| s.content == content)
            .map(|s| s.boost.0),
        per_epoch_now,
        holders,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, SocketAddr};

    fn at(address: &str) -> Option<dsi_protocol::reward::Location> {
        let ip: IpAddr = address.parse().expect("address");
        source_location(Some(SocketAddr::new(ip, 1)), false)
    }

    #[test]
    fn addresses_that_embed_ipv4_are_located_by_it() {
        let v4 = at("203.0.113.7");
        assert_eq!(v4, None, "documentation range: not public");
        let public = at("81.2.69.142");
        assert!(public.is_some());
        // Every 6to4 /48 of one IPv4 /24 is the /24.
        for address in [
            "2002:5102:458e::1",
            "2002:5102:45ff:ff::9",
            "::ffff:81.2.69.1",
        ] {
            assert_eq!(at(address), public, "{address}");
        }
        // Teredo: the client's address, inverted, in the last 32 bits.
        assert_eq!(at("2001:0:4136:e378:8000:63bf:aefd:bab9"), at("81.2.69.70"));
        // Native IPv6 stays a /48.
        let native = at("2a01:4f8:1:2::5").expect("public");
        assert_eq!(at("2a01:4f8:1:ffff::9"), Some(native));
        assert_ne!(at("2a01:4f8:2::5"), Some(native));
        // A private IPv4 behind 6to4 is as private as itself.
        assert_eq!(at("2002:c0a8:0101::1"), None);
    }
}
