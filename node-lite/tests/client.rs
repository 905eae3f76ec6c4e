//! A peer's error answer is read only up to a few KiB: a peer cannot make a downloader
//! buffer an endless error body.

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
