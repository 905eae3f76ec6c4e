//! `POST /v1/audit`: the node answers only its trusted auditor's fresh, signed challenges
//! for itself, once each, with its own signature over a keyed hash of the chunk bytes.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use dsi_protocol::audit::{
    AUDIT_CHALLENGE_TTL_MS, AuditChallenge, SignedAuditChallenge, possession_proof, verify_answer,
};
use dsi_protocol::manifest::MIN_CHUNK_SIZE;
use dsi_protocol::{AuditNonce, ChunkId, Epoch, NodeId, SecretKey, Signature, now_ms};
use node_lite::server::{NodeState, router};
use node_lite::{Config, DataDir};
use tower::ServiceExt;

struct Fixture {
    _tmp: tempfile::TempDir,
    state: Arc<NodeState>,
    chunks: Vec<(ChunkId, Vec<u8>)>,
}

async fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path().join("node"));
    dir.init().unwrap();
    let state = Arc::new(NodeState::open(&dir, Config::default()).await.unwrap());
    let file = tmp.path().join("data.bin");
    let bytes: Vec<u8> = (0..2 * MIN_CHUNK_SIZE as usize + 100)
        .map(|i| (i * 11 % 251) as u8)
        .collect();
    std::fs::write(&file, &bytes).unwrap();
    let report = state
        .store
        .add_file(&file, "data.bin", MIN_CHUNK_SIZE, &mut |_| {})
        .unwrap();
    let chunks = report
        .manifest
        .chunks
        .iter()
        .zip(bytes.chunks(MIN_CHUNK_SIZE as usize))
        .map(|(id, b)| (*id, b.to_vec()))
        .collect();
    Fixture {
        _tmp: tmp,
        state,
        chunks,
    }
}

fn challenge(node: NodeId, chunks: &[ChunkId], nonce: u8, issued_at_ms: u64) -> AuditChallenge {
    AuditChallenge {
        auditor: NodeId([0; 32]),
        node,
        epoch: Epoch(1),
        nonce: AuditNonce([nonce; 32]),
        chunks: chunks.to_vec(),
        issued_at_ms,
    }
}

async fn post(state: &Arc<NodeState>, signed: &SignedAuditChallenge) -> (StatusCode, Vec<u8>) {
    let request = Request::post("/v1/audit")
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(signed).unwrap()))
        .unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, body.to_vec())
}

fn code(body: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap();
    value["code"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_signed_challenge_is_answered_once_with_the_nodes_signature() {
    let f = fixture().await;
    let network = f.state.config.network.clone();
    let oracle = SecretKey::from_seed(&[42; 32]);
    let ids: Vec<ChunkId> = f.chunks.iter().map(|(id, _)| *id).collect();
    let signed = SignedAuditChallenge::sign(
        challenge(f.state.node_id, &ids, 1, now_ms()),
        &network,
        &oracle,
    );

    // No trusted auditor yet (the node learns it from its tracker): refused.
    let (status, body) = post(&f.state, &signed).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code(&body), "audit_refused");

    f.state.audits.trust(oracle.node_id()).unwrap();
    let (status, body) = post(&f.state, &signed).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let signature = Signature::from_slice(&body[..64]).unwrap();
    let mut expected = Vec::new();
    for (_, bytes) in &f.chunks {
        expected.extend_from_slice(bytes);
    }
    assert_eq!(&body[64..], &expected[..], "the chunks, in order");
    let proof = possession_proof(
        &signed.challenge.nonce,
        f.chunks.iter().map(|(_, b)| b.as_slice()),
    );
    assert_eq!(
        verify_answer(&network, &signed.challenge, &proof, &signature),
        Ok(()),
        "signed by the node key"
    );

    // The same challenge again: a replay.
    let (status, body) = post(&f.state, &signed).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&body).contains("already answered"));
}

#[tokio::test]
async fn foreign_stale_oversized_and_unsigned_challenges_are_refused() {
    let f = fixture().await;
    let network = f.state.config.network.clone();
    let oracle = SecretKey::from_seed(&[42; 32]);
    let stranger = SecretKey::from_seed(&[43; 32]);
    f.state.audits.trust(oracle.node_id()).unwrap();
    let ids: Vec<ChunkId> = f.chunks.iter().map(|(id, _)| *id).collect();
    let now = now_ms();
    let cases = [
        (
            "another node",
            SignedAuditChallenge::sign(challenge(NodeId([9; 32]), &ids, 2, now), &network, &oracle),
        ),
        (
            "expired",
            SignedAuditChallenge::sign(
                challenge(
                    f.state.node_id,
                    &ids,
                    3,
                    now - AUDIT_CHALLENGE_TTL_MS - 1_000,
                ),
                &network,
                &oracle,
            ),
        ),
        (
            "too many chunks",
            SignedAuditChallenge::sign(
                challenge(f.state.node_id, &[ids[0]; 9], 4, now),
                &network,
                &oracle,
            ),
        ),
        (
            "another auditor",
            SignedAuditChallenge::sign(
                challenge(f.state.node_id, &ids, 5, now),
                &network,
                &stranger,
            ),
        ),
        ("a forged signature", {
            let mut forged = SignedAuditChallenge::sign(
                challenge(f.state.node_id, &ids, 6, now),
                &network,
                &stranger,
            );
            forged.challenge.auditor = oracle.node_id();
            forged
        }),
    ];
    for (what, signed) in cases {
        let (status, body) = post(&f.state, &signed).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{what}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(code(&body), "audit_refused", "{what}");
    }
    // A chunk the node does not hold: 404 naming it.
    let missing = ChunkId([7; 32]);
    let signed = SignedAuditChallenge::sign(
        challenge(f.state.node_id, &[ids[0], missing], 7, now),
        &network,
        &oracle,
    );
    let (status, body) = post(&f.state, &signed).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "unknown_chunk");
    assert!(String::from_utf8_lossy(&body).contains(&missing.to_string()));
}

/// A tracker (or whoever answers at its URL) that names `oracle` as the network's oracle
/// and accepts every announcement, counting them.
async fn tracker_naming(
    oracle: NodeId,
    network: dsi_protocol::NetworkId,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use axum::routing::{get, post};
    let info = dsi_api::oracle::Info {
        network,
        oracle,
        epochs: Default::default(),
        current_epoch: Epoch(1),
        database: "sqlite".into(),
        version: "impostor".into(),
        relays: Vec::new(),
    };
    let announced = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = announced.clone();
    let app = axum::Router::new()
        .route("/v1/info", get(move || async move { axum::Json(info) }))
        .route(
            "/v1/receipts",
            post(|| async {
                axum::Json(dsi_api::ReceiptBatchResponse {
                    results: vec![dsi_api::ReceiptVerdict::Accepted],
                })
            }),
        )
        .route(
            "/v1/announce",
            post(move || async move {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                axum::Json(dsi_api::oracle::AnnounceResponse {
                    expires_at_ms: now_ms() + 300_000,
                    unknown_contents: Vec::new(),
                    stored: true,
                })
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, announced)
}

#[tokio::test]
async fn a_node_with_a_pinned_oracle_key_answers_only_that_oracle_whatever_its_tracker_names() {
    let oracle = SecretKey::from_seed(&[42; 32]);
    let impostor = SecretKey::from_seed(&[66; 32]);
    let payout: dsi_protocol::PayoutAccount = "0x1111111111111111111111111111111111111111"
        .parse()
        .unwrap();

    // Unpinned, the node trusts whatever key its tracker's URL answers with: an impostor
    // there (a wrong URL, or anyone on a plain-HTTP path) takes over its audits.
    let f = fixture().await;
    let network = f.state.config.network.clone();
    let (url, announced) = tracker_naming(impostor.node_id(), network.clone()).await;
    let client = node_lite::tracker::TrackerClient::new(&url).unwrap();
    node_lite::tracker::announce_once(&f.state, &client, "http://127.0.0.1:1", payout)
        .await
        .unwrap();
    assert_eq!(f.state.audits.auditor(), Some(impostor.node_id()));
    assert_eq!(announced.load(std::sync::atomic::Ordering::SeqCst), 1);

    // Pinned ([tracker] oracle_key): the same tracker is refused, nothing is announced to
    // it, and only the pinned oracle's challenges are answered, from the start.
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path().join("node"));
    dir.init().unwrap();
    let mut config = Config::default();
    config.tracker.oracle_key = oracle.node_id().to_string();
    let state = Arc::new(NodeState::open(&dir, config).await.unwrap());
    assert_eq!(state.audits.auditor(), Some(oracle.node_id()));
    let (url, announced) = tracker_naming(impostor.node_id(), network.clone()).await;
    let client = node_lite::tracker::TrackerClient::new(&url).unwrap();
    let refused = node_lite::tracker::announce_once(&state, &client, "http://127.0.0.1:1", payout)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains(&impostor.node_id().to_string()) && refused.contains("oracle_key"),
        "{refused}"
    );
    assert_eq!(announced.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(state.audits.auditor(), Some(oracle.node_id()));
    // Nor are its receipts forwarded there: the impostor's acknowledgement would delete
    // them before the real oracle saw them.
    let downloader = SecretKey::from_seed(&[7; 32]);
    let receipt = dsi_protocol::SignedReceipt::sign(
        dsi_protocol::Receipt {
            epoch: Epoch(1),
            seeder: state.node_id,
            downloader: downloader.node_id(),
            chunk: ChunkId([3; 32]),
            bytes: 1024,
            issued_at_ms: now_ms(),
            nonce: 1,
        },
        &network,
        &downloader,
    );
    state.receipts.insert(&[receipt]).await.unwrap();
    let refused = node_lite::tracker::forward_pending(&state, &client)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("not forwarded"), "{refused}");
    assert_eq!(state.receipts.pending(10).await.unwrap().len(), 1);

    let file = tmp.path().join("data.bin");
    std::fs::write(&file, vec![7u8; MIN_CHUNK_SIZE as usize]).unwrap();
    let report = state
        .store
        .add_file(&file, "data.bin", MIN_CHUNK_SIZE, &mut |_| {})
        .unwrap();
    let ids = report.manifest.chunks.clone();
    let mut by_impostor = challenge(state.node_id, &ids, 7, now_ms());
    by_impostor.auditor = impostor.node_id();
    let (status, body) = post(
        &state,
        &SignedAuditChallenge::sign(by_impostor, &network, &impostor),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code(&body), "audit_refused");
    let mut by_oracle = challenge(state.node_id, &ids, 8, now_ms());
    by_oracle.auditor = oracle.node_id();
    let (status, body) = post(
        &state,
        &SignedAuditChallenge::sign(by_oracle, &network, &oracle),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));

    // A tracker naming the pinned key is announced to as before.
    let (url, announced) = tracker_naming(oracle.node_id(), network).await;
    let client = node_lite::tracker::TrackerClient::new(&url).unwrap();
    node_lite::tracker::announce_once(&state, &client, "http://127.0.0.1:1", payout)
        .await
        .unwrap();
    assert_eq!(announced.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn a_malformed_oracle_key_is_refused_naming_the_field() {
    let mut config = Config::default();
    config.tracker.oracle_key = "not-a-key".into();
    let error = config.tracker.pinned_oracle().unwrap_err();
    assert!(error.contains("[tracker] oracle_key"), "{error}");
}
