//! A peer's error answer is read only up to a few KiB: a peer cannot make a downloader
//! buffer an endless error body, nor hold a receipt delivery open by trickling its answer.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use node_lite::download::client::{FetchError, PeerClient, http_client};

#[tokio::test]
async fn an_endless_error_body_is_not_buffered() {
    let served = Arc::new(AtomicU64::new(0));
    let counter = served.clone();
    let app = axum::Router::new().route(
        "/v1/node",
        get(move || {
            let served = counter.clone();
            async move {
                let piece = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
                let pieces = futures_util::stream::repeat_with(move || {
                    served.fetch_add(piece.len() as u64, Ordering::Relaxed);
                    Ok::<_, std::io::Error>(piece.clone())
                });
                (StatusCode::INTERNAL_SERVER_ERROR, Body::from_stream(pieces)).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let client = PeerClient::new(http_client(), url.parse().unwrap());
    match client.node_info(Duration::from_secs(5)).await {
        Err(FetchError::Status { status: 500, .. }) => {}
        other => panic!("expected the peer's 500, got {other:?}"),
    }
    let served = served.load(Ordering::Relaxed);
    assert!(
        served < 64 << 20,
        "the downloader pulled {served} bytes of an error body"
    );
}

#[tokio::test]
async fn a_receipt_answer_trickled_a_byte_at_a_time_is_cut_off_at_one_deadline() {
    // A seeder that answers a receipt batch with a valid JSON body sent one space every
    // 200 ms (never stalled by the per-read timeout) held the payer, and a downloader
    // waiting for its receipts to be answered, for ever; one deadline covers the exchange.
    let app = axum::Router::new().route(
        "/v1/receipts",
        axum::routing::post(|| async {
            let spaces = futures_util::stream::unfold((), |()| async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from_static(b" ")), ()))
            });
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                Body::from_stream(spaces),
            )
                .into_response()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let key = dsi_protocol::SecretKey::from_seed(&[5; 32]);
    let receipt = dsi_protocol::SignedReceipt::sign(
        dsi_protocol::Receipt {
            epoch: dsi_protocol::Epoch(1),
            seeder: dsi_protocol::NodeId([1; 32]),
            downloader: key.node_id(),
            chunk: dsi_protocol::ChunkId([2; 32]),
            bytes: 1024,
            issued_at_ms: dsi_protocol::now_ms(),
            nonce: 1,
        },
        &dsi_protocol::NetworkId::default(),
        &key,
    );
    let client = PeerClient::new(http_client(), url.parse().unwrap());
    // Without the deadline the trickle never stalls a read: only this guard would end it.
    let outcome = tokio::time::timeout(
        Duration::from_secs(20),
        client.send_receipts(&[receipt], Duration::from_secs(1)),
    )
    .await
    .expect("the delivery ends");
    assert!(
        matches!(outcome, Err(FetchError::Stalled(_))),
        "{outcome:?}"
    );
}
