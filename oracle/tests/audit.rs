//! Audits cannot be turned against the oracle: a node that answers an audit with an endless
//! body is cut off past the largest chunk size (and fails the audit) instead of making the
//! oracle buffer it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use dsi_api::oracle::{AuditOutcome, NodeAnnouncement};
use dsi_protocol::{ChunkId, ContentId, Epoch, NodeId, PayoutAccount};

/// Serves an endless stream of 64 KiB pieces at every chunk route; counts what it handed
/// out.
async fn endless_server(served: Arc<AtomicU64>) -> String {
    let app = axum::Router::new().route(
        "/v1/chunks/{id}",
        get(move || {
            let served = served.clone();
            async move {
                let piece = bytes::Bytes::from(vec![0u8; 64 * 1024]);
                let pieces = futures_util::stream::repeat_with(move || {
                    served.fetch_add(piece.len() as u64, Ordering::Relaxed);
                    Ok::<_, std::io::Error>(piece.clone())
                });
                Body::from_stream(pieces)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn an_endless_audit_answer_is_cut_off_and_fails() {
    let served = Arc::new(AtomicU64::new(0));
    let url = endless_server(served.clone()).await;
    let node = NodeAnnouncement {
        node: NodeId([1; 32]),
        url,
        payout: PayoutAccount([2; 20]),
        issued_at_ms: 0,
        expires_at_ms: u64::MAX,
        first_seen_ms: 0,
        contents: vec![ContentId([3; 32])],
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let audit = oracle::audit::audit_chunk(
        &client,
        &NodeId([9; 32]),
        &node,
        &ChunkId([4; 32]),
        Epoch(1),
    )
    .await;
    assert_eq!(audit.outcome, AuditOutcome::WrongBytes, "{audit:?}");
    assert!(
        audit.detail.contains("more than 4194304 bytes"),
        "{}",
        audit.detail
    );
    // Reading stopped at 4 MiB; what the server produced beyond is socket buffers.
    let served = served.load(Ordering::Relaxed);
    assert!(served < 64 << 20, "the oracle pulled {served} bytes");
}
