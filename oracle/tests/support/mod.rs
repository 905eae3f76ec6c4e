//! Shared helpers for the oracle's tests: oracles over SQLite and PostgreSQL, signed
//! receipts and announcements, manifests, a loopback chunk server for audits.
#![allow(dead_code, missing_docs)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::routing;
use dsi_protocol::audit::{SignedAuditChallenge, possession_proof, sign_answer};
use dsi_protocol::{
    Announcement, ChunkId, ContentId, Epoch, Manifest, NetworkId, NodeId, PayoutAccount, Receipt,
    SecretKey, SignedAnnouncement, SignedReceipt,
};
use oracle::{Config, OracleState, Store, api};
use tower::ServiceExt;

pub const TOKEN: &str = "test-admin-token";

/// Database URLs to run a suite on: a fresh SQLite file, and a fresh PostgreSQL database
/// when `DSI_TEST_POSTGRES_URL` names a server (scripts/test starts one). With
/// `DSI_REQUIRE_POSTGRES=1` (set by scripts/test) a missing server fails the test.
pub async fn backends(dir: &std::path::Path) -> Vec<String> {
    let mut urls = vec![format!("sqlite://{}", dir.join("oracle.db").display())];
    match std::env::var("DSI_TEST_POSTGRES_URL") {
        Ok(base) if !base.is_empty() => urls.push(fresh_postgres(&base).await),
        _ if std::env::var("DSI_REQUIRE_POSTGRES").as_deref() == Ok("1") => {
            panic!("DSI_REQUIRE_POSTGRES=1 but DSI_TEST_POSTGRES_URL is not set")
        }
        _ => eprintln!(
            "note: PostgreSQL not configured (DSI_TEST_POSTGRES_URL); running on SQLite only"
        ),
    }
    urls
}

/// Creates a new database on the server named by `base` and returns its URL.
pub async fn fresh_postgres(base: &str) -> String {
    sqlx::any::install_default_drivers();
    let name = format!("dsi_test_{}", rand::random::<u64>());
    let pool = sqlx::AnyPool::connect(base)
        .await
        .expect("postgres reachable");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .expect("create database");
    pool.close().await;
    let (prefix, _) = base.rsplit_once('/').expect("url has a database");
    format!("{prefix}/{name}")
}

pub fn test_config() -> Config {
    let mut config = Config::default();
    config.audit.timeout_ms = 2_000;
    config.audit.allow_private_addresses = true;
    config.close.auto = false;
    config
}

pub async fn oracle_at(url: &str, dir: &std::path::Path, config: Config) -> Arc<OracleState> {
    let store = Store::connect(url).await.expect("store opens");
    OracleState::new(
        config,
        store,
        SecretKey::from_seed(&[42; 32]),
        TOKEN.into(),
        dir.join("batches"),
    )
    .await
    .expect("state")
}

pub fn key(n: u8) -> SecretKey {
    SecretKey::from_seed(&[n; 32])
}

/// Content of `chunks` chunks of the minimum chunk size (the last one shorter), derived
/// from `seed`.
pub fn content(seed: u8, chunks: usize) -> (Manifest, HashMap<ChunkId, Vec<u8>>) {
    let chunk_size = dsi_protocol::manifest::MIN_CHUNK_SIZE;
    let size = chunk_size as u64 * chunks as u64 - 100;
    let mut data = HashMap::new();
    let mut ids = Vec::new();
    for i in 0..chunks {
        let len = if i + 1 == chunks {
            chunk_size as usize - 100
        } else {
            chunk_size as usize
        };
        let bytes: Vec<u8> = (0..len).map(|j| (j as u8) ^ seed ^ (i as u8)).collect();
        let id = ChunkId::of(&bytes);
        ids.push(id);
        data.insert(id, bytes);
    }
    let manifest =
        Manifest::new(&format!("content-{seed}"), size, chunk_size, ids).expect("valid manifest");
    (manifest, data)
}

pub fn now_ms() -> u64 {
    dsi_protocol::now_ms()
}

pub fn receipt(
    state: &OracleState,
    seeder: &SecretKey,
    downloader: &SecretKey,
    chunk: ChunkId,
    bytes: u32,
    nonce: u64,
) -> SignedReceipt {
    let now = now_ms();
    SignedReceipt::sign(
        Receipt {
            epoch: state.config.epochs.epoch_at(now),
            seeder: seeder.node_id(),
            downloader: NodeId([0; 32]),
            chunk,
            bytes,
            issued_at_ms: now,
            nonce,
        },
        &state.config.network,
        downloader,
    )
}

pub fn announcement(
    node: &SecretKey,
    url: &str,
    payout: u8,
    contents: Vec<ContentId>,
    network: &NetworkId,
) -> SignedAnnouncement {
    SignedAnnouncement::sign(
        Announcement {
            node: NodeId([0; 32]),
            url: url.into(),
            payout: PayoutAccount([payout; 20]),
            contents,
            issued_at_ms: now_ms(),
            endpoint: None,
        },
        network,
        node,
    )
}

pub struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_string()
    }
}

pub async fn call(
    state: &Arc<OracleState>,
    method: &str,
    uri: &str,
    body: Vec<u8>,
    token: Option<&str>,
) -> Reply {
    let headers: Vec<(&str, String)> = token
        .map(|t| ("authorization", format!("Bearer {t}")))
        .into_iter()
        .collect();
    call_with_headers(state, method, uri, body, &headers).await
}

/// Where in-process requests come from unless a test says otherwise ([`call_from`]):
/// 127.0.0.1, as a real client on loopback.
pub const LOOPBACK_PEER: ([u8; 4], u16) = ([127, 0, 0, 1], 40000);

pub async fn call_with_headers(
    state: &Arc<OracleState>,
    method: &str,
    uri: &str,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> Reply {
    call_from(state, LOOPBACK_PEER.into(), method, uri, body, headers).await
}

/// A request as if sent from `peer` (the connection's source address, which the oracle
/// reads as `axum::extract::ConnectInfo`, as `oracle::serve` provides it).
pub async fn call_from(
    state: &Arc<OracleState>,
    peer: std::net::SocketAddr,
    method: &str,
    uri: &str,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    let mut request = request.body(Body::from(body)).expect("request");
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    let response = api::router(state.clone())
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body")
        .to_vec();
    Reply { status, body }
}

pub async fn get(state: &Arc<OracleState>, uri: &str) -> Reply {
    call(state, "GET", uri, Vec::new(), None).await
}

pub async fn post_json(state: &Arc<OracleState>, uri: &str, value: impl serde::Serialize) -> Reply {
    call(
        state,
        "POST",
        uri,
        serde_json::to_vec(&value).expect("json"),
        None,
    )
    .await
}

/// The key the tests register manifests with.
pub fn registrant() -> SecretKey {
    key(250)
}

/// `POST /v1/manifests` of `bytes`, registered by `key` (signed header, issued now).
pub async fn post_manifest(state: &Arc<OracleState>, bytes: Vec<u8>, key: &SecretKey) -> Reply {
    let header = dsi_api::registrant::RegistrantHeader::sign(
        key,
        &state.config.network,
        dsi_protocol::manifest::content_id_of_bytes(&bytes),
        now_ms(),
    );
    call_with_headers(
        state,
        "POST",
        "/v1/manifests",
        bytes,
        &[(dsi_api::REGISTRANT_HEADER, header.to_string())],
    )
    .await
}

pub async fn register(state: &Arc<OracleState>, manifest: &Manifest) {
    let reply = post_manifest(state, manifest.to_bytes(), &registrant()).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
}

/// Funds the ledger through its admin API: `content` sponsored with one token per epoch
/// for 1000 epochs at 3 replicas, and 1000 tokens of credit for each downloader key.
#[allow(dead_code)] // not every test binary funds
pub async fn fund(
    state: &Arc<OracleState>,
    content: &dsi_protocol::ContentId,
    downloaders: impl IntoIterator<Item = SecretKey>,
) {
    let admin = |path: &str, body: serde_json::Value| {
        Request::post(path)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", state.admin_token))
            .body(Body::from(body.to_string()))
            .expect("request")
    };
    let epoch = state.config.epochs.epoch_at(dsi_protocol::now_ms());
    let answer = api::router(state.clone())
        .oneshot(admin(
            "/v1/sponsors",
            serde_json::json!({
                "content": content.to_string(),
                "per_epoch": "1000000000000",
                "epochs": 1000,
                "replicas": 3,
                "first_epoch": epoch.0.saturating_sub(5),
            }),
        ))
        .await
        .expect("answer");
    assert_eq!(answer.status(), StatusCode::OK, "sponsor");
    for downloader in downloaders {
        let answer = api::router(state.clone())
            .oneshot(admin(
                "/v1/credits",
                serde_json::json!({
                    "downloader": downloader.node_id().to_string(),
                    "amount": "1000000000000000",
                }),
            ))
            .await
            .expect("answer");
        assert_eq!(answer.status(), StatusCode::OK, "credit");
    }
}

pub async fn send_receipts(state: &Arc<OracleState>, receipts: &[SignedReceipt]) -> Vec<String> {
    let reply = post_json(
        state,
        "/v1/receipts",
        serde_json::json!({ "receipts": receipts }),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|v| match v["status"].as_str() {
            Some("accepted") => "accepted".to_string(),
            _ => v["code"].as_str().unwrap_or("?").to_string(),
        })
        .collect()
}

pub async fn close_current(state: &Arc<OracleState>) -> serde_json::Value {
    let reply = call(state, "POST", "/v1/epochs/close", Vec::new(), Some(TOKEN)).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()
}

/// A loopback HTTP server that answers storage audit challenges like node-lite
/// (`POST /v1/audit`), signing as `key`; `corrupt` makes it flip a byte of every chunk.
/// Each challenge notifies `audited`, then waits for a read lock of `hold` (a test that
/// holds the write lock pauses a close in its audits).
pub struct ChunkServer {
    pub url: String,
    pub corrupt: Arc<AtomicBool>,
    #[allow(dead_code)] // not every test binary pauses audits
    pub audited: Arc<tokio::sync::Notify>,
    #[allow(dead_code)]
    pub hold: Arc<tokio::sync::RwLock<()>>,
    /// The `Host` header of every audit received, in order.
    #[allow(dead_code)]
    pub hosts: Arc<std::sync::Mutex<Vec<String>>>,
    _cancel: tokio_util::sync::DropGuard,
}

pub async fn chunk_server(key: SecretKey, chunks: HashMap<ChunkId, Vec<u8>>) -> ChunkServer {
    #[derive(Clone)]
    struct Shared {
        key: Arc<SecretKey>,
        chunks: Arc<HashMap<ChunkId, Vec<u8>>>,
        corrupt: Arc<AtomicBool>,
        audited: Arc<tokio::sync::Notify>,
        hold: Arc<tokio::sync::RwLock<()>>,
        hosts: Arc<std::sync::Mutex<Vec<String>>>,
    }
    let hosts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let corrupt = Arc::new(AtomicBool::new(false));
    let audited = Arc::new(tokio::sync::Notify::new());
    let hold = Arc::new(tokio::sync::RwLock::new(()));
    let shared = Shared {
        key: Arc::new(key),
        chunks: Arc::new(chunks),
        corrupt: corrupt.clone(),
        audited: audited.clone(),
        hold: hold.clone(),
        hosts: hosts.clone(),
    };
    let app = axum::Router::new()
        .route(
            "/v1/audit",
            routing::post(
                |State(s): State<Shared>,
                 headers: axum::http::HeaderMap,
                 axum::Json(signed): axum::Json<SignedAuditChallenge>| async move {
                    let host = headers
                        .get(axum::http::header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    s.hosts.lock().expect("hosts").push(host);
                    s.audited.notify_one();
                    let _held = s.hold.read().await;
                    let mut out = Vec::new();
                    for id in &signed.challenge.chunks {
                        let Some(bytes) = s.chunks.get(id) else {
                            return (StatusCode::NOT_FOUND, Vec::new());
                        };
                        let mut bytes = bytes.clone();
                        if s.corrupt.load(Ordering::SeqCst) {
                            bytes[0] ^= 0xff;
                        }
                        out.push(bytes);
                    }
                    let proof =
                        possession_proof(&signed.challenge.nonce, out.iter().map(Vec::as_slice));
                    let signature =
                        sign_answer(&s.key, &NetworkId::default(), &signed.challenge, &proof);
                    let mut body = signature.0.to_vec();
                    for bytes in out {
                        body.extend_from_slice(&bytes);
                    }
                    (StatusCode::OK, body)
                },
            ),
        )
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cancel = tokio_util::sync::CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    });
    ChunkServer {
        url: format!("http://{addr}"),
        corrupt,
        audited,
        hold,
        hosts,
        _cancel: cancel.drop_guard(),
    }
}

pub fn epoch_of(state: &OracleState) -> Epoch {
    state.config.epochs.epoch_at(now_ms())
}
