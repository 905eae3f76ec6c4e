//! Handler tests: every route and every rejection, through `router(state).oneshot(...)`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use axum::response::Response;
use dsi_api::downloader::DownloaderHeader;
use dsi_api::{ReceiptBatchResponse, ReceiptVerdict};
use dsi_protocol::manifest::{MIN_CHUNK_SIZE, content_id_of_bytes};
use dsi_protocol::{
    ChunkId, ContentId, Epoch, Manifest, NetworkId, Receipt, SecretKey, SignedReceipt,
};
use node_lite::config::VerifyMode;
use node_lite::server::metrics::sample;
use node_lite::server::{NodeState, router};
use node_lite::{Config, DOWNLOADER_HEADER, DataDir};
use serde_json::Value;
use tower::ServiceExt;

struct Fixture {
    _tmp: tempfile::TempDir,
    state: Arc<NodeState>,
    content: ContentId,
    manifest: Manifest,
}

async fn fixture(configure: impl FnOnce(&mut Config)) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path().join("node"));
    dir.init().unwrap();
    let mut config = Config::default();
    configure(&mut config);
    let state = Arc::new(NodeState::open(&dir, config).await.unwrap());
    let file = tmp.path().join("data.bin");
    let bytes: Vec<u8> = (0..3 * MIN_CHUNK_SIZE as usize + 100)
        .map(|i| (i * 7 % 253) as u8)
        .collect();
    std::fs::write(&file, bytes).unwrap();
    let report = state
        .store
        .add_file(&file, "data.bin", MIN_CHUNK_SIZE, &mut |_| {})
        .unwrap();
    Fixture {
        _tmp: tmp,
        state,
        content: report.content_id,
        manifest: report.manifest,
    }
}

async fn call(state: &Arc<NodeState>, request: Request<Body>) -> (StatusCode, Vec<u8>) {
    let response: Response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    (
        status,
        to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec(),
    )
}

async fn get(state: &Arc<NodeState>, path: &str) -> (StatusCode, Vec<u8>) {
    call(state, Request::get(path).body(Body::empty()).unwrap()).await
}

async fn get_chunk(
    state: &Arc<NodeState>,
    chunk: &ChunkId,
    downloader: &SecretKey,
) -> (StatusCode, Vec<u8>) {
    let header = DownloaderHeader::sign(
        downloader,
        &state.config.network,
        state.node_id,
        *chunk,
        dsi_protocol::now_ms(),
    );
    let request = Request::get(format!("/v1/chunks/{chunk}"))
        .header(DOWNLOADER_HEADER, header.to_string())
        .body(Body::empty())
        .unwrap();
    call(state, request).await
}

fn code(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap();
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "errors carry a message: {v}"
    );
    v["code"].as_str().unwrap().to_string()
}

fn receipt_for(
    state: &NodeState,
    downloader: &SecretKey,
    chunk: ChunkId,
    bytes: u32,
) -> SignedReceipt {
    let now = dsi_protocol::now_ms();
    let receipt = Receipt {
        epoch: state.config.epochs.epoch_at(now),
        seeder: state.node_id,
        downloader: downloader.node_id(),
        chunk,
        bytes,
        issued_at_ms: now,
        nonce: rand::random(),
    };
    SignedReceipt::sign(receipt, &NetworkId::default(), downloader)
}

async fn post_receipts(state: &Arc<NodeState>, receipts: &[SignedReceipt]) -> Vec<ReceiptVerdict> {
    let body = serde_json::json!({ "receipts": receipts }).to_string();
    let request = Request::post("/v1/receipts")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let (status, body) = call(state, request).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice::<ReceiptBatchResponse>(&body)
        .unwrap()
        .results
}

fn rejected(verdict: &ReceiptVerdict) -> &str {
    match verdict {
        ReceiptVerdict::Rejected { code, .. } => code.as_str(),
        ReceiptVerdict::Accepted => "accepted",
        ReceiptVerdict::Unknown => "unknown",
    }
}

#[tokio::test]
async fn node_content_manifest_and_have() {
    let f = fixture(|_| {}).await;
    let (status, body) = get(&f.state, "/v1/node").await;
    assert_eq!(status, StatusCode::OK);
    let info: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(info["node_id"], f.state.node_id.to_string());
    assert_eq!(info["network"], "dsi-local");

    let (status, body) = get(&f.state, "/v1/content").await;
    assert_eq!(status, StatusCode::OK);
    let list: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list[0]["content_id"], f.content.to_string());
    assert_eq!(list[0]["chunks"], 4);
    assert_eq!(list[0]["held"], 4);

    let (status, body) = get(&f.state, &format!("/v1/content/{}/manifest", f.content)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_id_of_bytes(&body), f.content);
    assert_eq!(Manifest::from_bytes(&body).unwrap(), f.manifest);

    let (status, body) = get(&f.state, &format!("/v1/content/{}/have", f.content)).await;
    assert_eq!(status, StatusCode::OK);
    let have: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(have["chunks"], 4);
    assert_eq!(have["held"], "0f");

    let unknown = ContentId([9; 32]);
    let (status, body) = get(&f.state, &format!("/v1/content/{unknown}/manifest")).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::NOT_FOUND, "unknown_content")
    );
    let (status, body) = get(&f.state, &format!("/v1/content/{unknown}/have")).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::NOT_FOUND, "unknown_content")
    );
    let (status, body) = get(&f.state, "/v1/content/nothex/manifest").await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "bad_content_id")
    );
    let (status, body) = get(&f.state, "/health").await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"ok"[..]));
}

#[tokio::test]
async fn chunks_need_a_downloader_and_exist() {
    let f = fixture(|_| {}).await;
    let chunk = f.manifest.chunks[0];
    let (status, body) = get(&f.state, &format!("/v1/chunks/{chunk}")).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "missing_downloader")
    );
    let request = Request::get(format!("/v1/chunks/{chunk}"))
        .header(DOWNLOADER_HEADER, "xyz")
        .body(Body::empty())
        .unwrap();
    let (status, body) = call(&f.state, request).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "bad_downloader")
    );
    let (status, body) = get(&f.state, "/v1/chunks/zz").await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "bad_chunk_id")
    );
    // A bare node id (the old header) is not a signed request; neither is a header signed
    // for another chunk, another seeder, another network, or too long ago.
    let downloader = SecretKey::from_seed(&[4; 32]);
    let now = dsi_protocol::now_ms();
    let network = &f.state.config.network;
    let me = f.state.node_id;
    let other_network = NetworkId::new("elsewhere").unwrap();
    let cases = [
        (downloader.node_id().to_string(), "bad_downloader"),
        (
            DownloaderHeader::sign(&downloader, network, me, f.manifest.chunks[1], now).to_string(),
            "bad_downloader_signature",
        ),
        (
            DownloaderHeader::sign(&downloader, network, downloader.node_id(), chunk, now)
                .to_string(),
            "bad_downloader_signature",
        ),
        (
            DownloaderHeader::sign(&downloader, &other_network, me, chunk, now).to_string(),
            "bad_downloader_signature",
        ),
        (
            DownloaderHeader::sign(&downloader, network, me, chunk, now - 200_000).to_string(),
            "stale_downloader",
        ),
        (
            DownloaderHeader::sign(&downloader, network, me, chunk, now + 200_000).to_string(),
            "stale_downloader",
        ),
    ];
    for (value, expected) in cases {
        let request = Request::get(format!("/v1/chunks/{chunk}"))
            .header(DOWNLOADER_HEADER, value.as_str())
            .body(Body::empty())
            .unwrap();
        let (status, body) = call(&f.state, request).await;
        assert_eq!(code(&body), expected, "{value}");
        assert!(status.is_client_error());
    }
    // The same signed request twice: the second is a replay.
    let header = DownloaderHeader::sign(&downloader, network, me, chunk, now).to_string();
    for expected in [StatusCode::OK, StatusCode::UNAUTHORIZED] {
        let request = Request::get(format!("/v1/chunks/{chunk}"))
            .header(DOWNLOADER_HEADER, header.as_str())
            .body(Body::empty())
            .unwrap();
        assert_eq!(call(&f.state, request).await.0, expected);
    }
    assert_eq!(f.state.ledger.owed(&downloader.node_id()), 1);
    assert!(f.state.ledger.settle(&downloader.node_id(), &chunk));

    let (status, body) = get_chunk(&f.state, &chunk, &downloader).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ChunkId::of(&body), chunk);
    let (status, body) = get_chunk(&f.state, &ChunkId([1; 32]), &downloader).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::NOT_FOUND, "unknown_chunk")
    );

    let (_, metrics) = get(&f.state, "/metrics").await;
    let text = String::from_utf8(metrics).unwrap();
    assert_eq!(sample(&text, "dsi_node_chunks_served_total"), Some(2));
    assert_eq!(
        sample(&text, "dsi_node_served_bytes_total"),
        Some(2 * u64::from(MIN_CHUNK_SIZE))
    );

    // A node that does not gate serving keeps no ledger and needs no header.
    let open = fixture(|c| c.serve.max_owed_receipts = 0).await;
    let (status, body) = get(&open.state, &format!("/v1/chunks/{chunk}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ChunkId::of(&body), chunk);
}

#[tokio::test]
async fn serving_is_gated_on_receipts() {
    let f = fixture(|c| c.serve.max_owed_receipts = 2).await;
    let downloader = SecretKey::from_seed(&[5; 32]);
    let [a, b, c, ..] = f.manifest.chunks[..] else {
        panic!()
    };
    assert_eq!(get_chunk(&f.state, &a, &downloader).await.0, StatusCode::OK);
    assert_eq!(get_chunk(&f.state, &b, &downloader).await.0, StatusCode::OK);
    let (status, body) = get_chunk(&f.state, &c, &downloader).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "receipts_owed")
    );
    let (_, metrics) = get(&f.state, "/metrics").await;
    let text = String::from_utf8(metrics).unwrap();
    assert_eq!(sample(&text, "dsi_node_peers_banned"), Some(1));
    assert_eq!(sample(&text, "dsi_node_requests_refused_total"), Some(1));
    // Another downloader is not affected.
    assert_eq!(
        get_chunk(&f.state, &c, &SecretKey::from_seed(&[6; 32]))
            .await
            .0,
        StatusCode::OK
    );
    // Paying for one chunk opens one slot.
    let verdicts = post_receipts(
        &f.state,
        &[receipt_for(&f.state, &downloader, a, MIN_CHUNK_SIZE)],
    )
    .await;
    assert_eq!(verdicts, vec![ReceiptVerdict::Accepted]);
    assert_eq!(get_chunk(&f.state, &c, &downloader).await.0, StatusCode::OK);
    assert_eq!(
        get_chunk(&f.state, &a, &downloader).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn every_receipt_rule_is_named() {
    let f = fixture(|_| {}).await;
    let downloader = SecretKey::from_seed(&[7; 32]);
    let chunk = f.manifest.chunks[0];
    let last = f.manifest.chunks[3];
    let good = receipt_for(&f.state, &downloader, chunk, MIN_CHUNK_SIZE);
    let mut bad_signature =
        receipt_for(&f.state, &downloader, f.manifest.chunks[1], MIN_CHUNK_SIZE);
    bad_signature.receipt.nonce ^= 1;
    let mut wrong_seeder_receipt = good.receipt;
    wrong_seeder_receipt.seeder = SecretKey::from_seed(&[8; 32]).node_id();
    wrong_seeder_receipt.chunk = f.manifest.chunks[2];
    let wrong_seeder =
        SignedReceipt::sign(wrong_seeder_receipt, &NetworkId::default(), &downloader);
    let unknown_chunk = receipt_for(&f.state, &downloader, ChunkId([3; 32]), MIN_CHUNK_SIZE);
    let bytes_mismatch = receipt_for(&f.state, &downloader, last, MIN_CHUNK_SIZE);
    let mut old = good.receipt;
    old.epoch = Epoch(0);
    let out_of_window = SignedReceipt::sign(old, &NetworkId::default(), &downloader);
    let other_network = SignedReceipt::sign(
        good.receipt,
        &NetworkId::new("elsewhere").unwrap(),
        &downloader,
    );
    let verdicts = post_receipts(
        &f.state,
        &[
            good,
            bad_signature,
            wrong_seeder,
            unknown_chunk,
            bytes_mismatch,
            out_of_window,
            other_network,
        ],
    )
    .await;
    let codes: Vec<&str> = verdicts.iter().map(rejected).collect();
    assert_eq!(
        codes,
        vec![
            "accepted",
            "bad_signature",
            "wrong_seeder",
            "unknown_chunk",
            "chunk_size_mismatch",
            "epoch_out_of_window",
            "bad_signature"
        ]
    );
    // Resubmitting is harmless; a different receipt for the same chunk and epoch is not.
    let again = receipt_for(&f.state, &downloader, chunk, MIN_CHUNK_SIZE);
    let verdicts = post_receipts(&f.state, &[good, again]).await;
    assert_eq!(
        verdicts.iter().map(rejected).collect::<Vec<_>>(),
        vec!["accepted", "duplicate"]
    );
    // The last chunk's true length is accepted.
    let tail = (f.manifest.size % u64::from(MIN_CHUNK_SIZE)) as u32;
    assert_eq!(
        post_receipts(&f.state, &[receipt_for(&f.state, &downloader, last, tail)]).await,
        vec![ReceiptVerdict::Accepted]
    );

    assert_eq!(f.state.receipts.count().await.unwrap(), 2);
    let (_, metrics) = get(&f.state, "/metrics").await;
    let text = String::from_utf8(metrics).unwrap();
    assert_eq!(sample(&text, "dsi_node_receipts_held"), Some(2));
    assert_eq!(sample(&text, "dsi_node_receipts_rejected_total"), Some(7));

    // A malformed body is a JSON error too.
    let request = Request::post("/v1/receipts")
        .header("content-type", "application/json")
        .body(Body::from("{"))
        .unwrap();
    let (status, _) = call(&f.state, request).await;
    assert!(status.is_client_error());
}

/// The cheap rules run before signatures (a forged receipt for a chunk the seeder lacks is
/// `unknown_chunk`, its signature never checked), identical copies in a batch are judged
/// once, verdicts keep the batch order, and a debt is settled only by a receipt that is
/// new: a duplicate or a resubmission pays nothing more.
#[tokio::test]
async fn debts_are_settled_only_by_new_receipts() {
    let f = fixture(|c| c.serve.max_owed_receipts = 2).await;
    let downloader = SecretKey::from_seed(&[11; 32]);
    let d = downloader.node_id();
    let [a, b, ..] = f.manifest.chunks[..] else {
        panic!()
    };
    assert_eq!(get_chunk(&f.state, &a, &downloader).await.0, StatusCode::OK);
    assert_eq!(f.state.ledger.owed(&d), 1);
    let mut forged_unknown = receipt_for(&f.state, &downloader, ChunkId([5; 32]), MIN_CHUNK_SIZE);
    forged_unknown.signature.0[0] ^= 1;
    let mut forged = receipt_for(&f.state, &downloader, b, MIN_CHUNK_SIZE);
    forged.signature.0[0] ^= 1;
    let mut late = receipt_for(&f.state, &downloader, b, MIN_CHUNK_SIZE);
    late.receipt.issued_at_ms += 3 * 3_600_000;
    let late = SignedReceipt::sign(late.receipt, &NetworkId::default(), &downloader);
    let paid = receipt_for(&f.state, &downloader, a, MIN_CHUNK_SIZE);
    let verdicts = post_receipts(&f.state, &[forged_unknown, forged, late, paid, paid]).await;
    assert_eq!(
        verdicts.iter().map(rejected).collect::<Vec<_>>(),
        vec![
            "unknown_chunk",
            "bad_signature",
            "epoch_out_of_window",
            "accepted",
            "accepted"
        ]
    );
    assert_eq!(f.state.ledger.owed(&d), 0, "the new receipt paid");
    // Served again in the same epoch: the held receipt cannot pay twice, nor can another
    // one for the same chunk and epoch (a duplicate).
    assert_eq!(get_chunk(&f.state, &a, &downloader).await.0, StatusCode::OK);
    let again = receipt_for(&f.state, &downloader, a, MIN_CHUNK_SIZE);
    let verdicts = post_receipts(&f.state, &[paid, again]).await;
    assert_eq!(
        verdicts.iter().map(rejected).collect::<Vec<_>>(),
        vec!["accepted", "duplicate"]
    );
    assert_eq!(f.state.ledger.owed(&d), 1, "nothing new was paid");
}

#[tokio::test]
async fn self_receipts_are_rejected() {
    let f = fixture(|_| {}).await;
    let own = f.state.key().clone();
    let receipt = receipt_for(&f.state, &own, f.manifest.chunks[0], MIN_CHUNK_SIZE);
    assert_eq!(
        rejected(&post_receipts(&f.state, &[receipt]).await[0]),
        "self_receipt"
    );
}

#[tokio::test]
async fn corrupt_chunks_are_caught_before_serving() {
    let f = fixture(|_| {}).await;
    let chunk = f.manifest.chunks[1];
    let path = f.state.store.chunk_path(&chunk);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let downloader = SecretKey::from_seed(&[9; 32]);
    let (status, body) = get_chunk(&f.state, &chunk, &downloader).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::NOT_FOUND, "chunk_corrupt")
    );
    assert!(!f.state.store.has_chunk(&chunk), "quarantined");
    let (_, have) = get(&f.state, &format!("/v1/content/{}/have", f.content)).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&have).unwrap()["held"],
        "0d"
    );
    let (_, metrics) = get(&f.state, "/metrics").await;
    assert_eq!(
        sample(
            &String::from_utf8(metrics).unwrap(),
            "dsi_node_chunks_corrupt_total"
        ),
        Some(1)
    );
}

#[tokio::test]
async fn cached_verification_rehashes_changed_files_and_never_mode_does_not() {
    let f = fixture(|_| {}).await;
    let downloader = SecretKey::from_seed(&[10; 32]);
    let chunk = f.manifest.chunks[0];
    assert_eq!(
        get_chunk(&f.state, &chunk, &downloader).await.0,
        StatusCode::OK
    );
    // Rewrite the file with other bytes of the same length: the stamp changes, so it is
    // hashed again and caught.
    let path = f.state.store.chunk_path(&chunk);
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&path, vec![0u8; MIN_CHUNK_SIZE as usize]).unwrap();
    assert_eq!(
        get_chunk(&f.state, &chunk, &downloader).await.0,
        StatusCode::NOT_FOUND
    );

    let never = fixture(|c| c.serve.verify = VerifyMode::Never).await;
    let chunk = never.manifest.chunks[0];
    std::fs::write(
        never.state.store.chunk_path(&chunk),
        vec![0u8; MIN_CHUNK_SIZE as usize],
    )
    .unwrap();
    let (status, body) = get_chunk(&never.state, &chunk, &downloader).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(
        ChunkId::of(&body),
        chunk,
        "verify=never serves what is on disk"
    );
}

#[tokio::test]
async fn swarm_routes_allow_browsers_and_metrics_do_not() {
    let f = fixture(|_| {}).await;
    let chunk = f.manifest.chunks[0];
    let preflight = Request::builder()
        .method("OPTIONS")
        .uri(format!("/v1/chunks/{chunk}"))
        .header("origin", "http://example.test")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", DOWNLOADER_HEADER)
        .body(Body::empty())
        .unwrap();
    let response: Response = router(f.state.clone()).oneshot(preflight).await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], "*");
    let allowed = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(allowed.contains(DOWNLOADER_HEADER), "{allowed}");

    let request = Request::get(format!("/v1/content/{}/manifest", f.content))
        .header("origin", "http://example.test")
        .body(Body::empty())
        .unwrap();
    let response: Response = router(f.state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");

    let request = Request::get("/metrics")
        .header("origin", "http://example.test")
        .body(Body::empty())
        .unwrap();
    let response: Response = router(f.state.clone()).oneshot(request).await.unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

/// Every error answer is JSON `{code, message}` with the code of `dsi_api::ErrorCode`,
/// including the ones axum makes itself: an unknown route, a wrong method, a body over the
/// limit, a body that is not JSON, and a static file that is not there (`--web`).
#[tokio::test]
async fn every_error_is_json_with_a_code() {
    let web = tempfile::tempdir().unwrap();
    std::fs::write(web.path().join("index.html"), "<html></html>").unwrap();
    let web_dir = web.path().to_string_lossy().into_owned();
    let f = fixture(|c| c.serve.web = web_dir).await;
    let json = |body: &str| {
        Request::post("/v1/receipts")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let oversized = format!(
        "{{\"receipts\": [\"{}\"]}}",
        "x".repeat(dsi_api::MAX_NODE_BODY_BYTES)
    );
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            Request::get("/v1/nothing-here")
                .body(Body::empty())
                .unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Request::get("/no-such-page.html")
                .body(Body::empty())
                .unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Request::delete("/v1/node").body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Request::get("/v1/receipts").body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            json("{\"receipts\": [1, 2"),
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            json("{\"receipt\": []}"),
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            json(&oversized),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            Request::get("/v1/content/nothex/have")
                .body(Body::empty())
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "bad_content_id",
        ),
    ];
    for (request, status, expected) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let (got, body) = call(&f.state, request).await;
        assert_eq!(got, status, "{what}: {}", String::from_utf8_lossy(&body));
        assert_eq!(code(&body), expected, "{what}");
    }
    // The page itself is still served, and errors keep their CORS headers.
    let (status, body) = get(&f.state, "/index.html").await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, &b"<html></html>"[..])
    );
    let request = Request::get("/v1/chunks/zz")
        .header("origin", "https://page.example")
        .body(Body::empty())
        .unwrap();
    let response = router(f.state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        response
            .headers()
            .contains_key("access-control-allow-origin")
    );
}
