//! The one receipt payer: receipts reach the seeder in batches, a failed delivery is retried,
//! and what could not be delivered is counted, against real HTTP seeders on loopback.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use dsi_api::{ReceiptBatch, ReceiptBatchResponse, ReceiptVerdict, RejectionCode};
use dsi_protocol::{ChunkId, EpochSchedule, NetworkId, NodeId, SecretKey};
use node_lite::download::client::{PeerClient, http_client};
use node_lite::payer::{Paid, Payer, Signer};

/// A seeder whose first `fail_first` deliveries answer 503, then accepts every receipt but
/// those for chunk 0 (refused as `unknown_chunk`). Counts calls and receipts seen.
#[derive(Default)]
struct Seeder {
    fail_first: usize,
    calls: AtomicUsize,
    receipts: AtomicUsize,
}

async fn receipts(State(seeder): State<Arc<Seeder>>, Json(batch): Json<ReceiptBatch>) -> Response {
    let call = seeder.calls.fetch_add(1, Ordering::SeqCst);
    if call < seeder.fail_first {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    seeder
        .receipts
        .fetch_add(batch.receipts.len(), Ordering::SeqCst);
    let results = batch
        .receipts
        .iter()
        .map(|r| {
            if r.receipt.chunk == ChunkId([0; 32]) {
                ReceiptVerdict::Rejected {
                    code: RejectionCode::UnknownChunk,
                    message: "not held".into(),
                }
            } else {
                ReceiptVerdict::Accepted
            }
        })
        .collect();
    Json(ReceiptBatchResponse { results }).into_response()
}

async fn start(seeder: Arc<Seeder>) -> PeerClient {
    let app = Router::new()
        .route("/v1/receipts", post(receipts))
        .with_state(seeder);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    PeerClient::new(http_client(), url.parse().unwrap())
}

fn signer() -> Signer {
    Signer::new(
        SecretKey::from_seed(&[3; 32]),
        NetworkId::default(),
        EpochSchedule::default(),
    )
}

fn soon() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(20)
}

#[tokio::test]
async fn a_failed_delivery_is_retried_and_every_verdict_counted() {
    let seeder = Arc::new(Seeder {
        fail_first: 2,
        ..Seeder::default()
    });
    let mut payer = Payer::start(start(seeder.clone()).await, Duration::from_secs(5));
    let signer = signer();
    for chunk in 0..5u8 {
        assert!(payer.pay(signer.sign(NodeId([9; 32]), ChunkId([chunk; 32]), 100)));
    }
    assert!(
        payer.settled(Duration::from_secs(20)).await,
        "answered in time"
    );
    let paid = payer.finish(soon()).await;
    assert_eq!(
        paid,
        Paid {
            sent: 5,
            accepted: 4,
            rejected: 1,
            undelivered: 0
        }
    );
    assert_eq!(
        seeder.receipts.load(Ordering::SeqCst),
        5,
        "each receipt delivered once"
    );
    assert!(
        seeder.calls.load(Ordering::SeqCst) >= 3,
        "two failures, then deliveries"
    );
}

#[tokio::test]
async fn receipts_a_seeder_never_takes_count_as_undelivered() {
    let seeder = Arc::new(Seeder {
        fail_first: usize::MAX,
        ..Seeder::default()
    });
    let mut payer = Payer::start(start(seeder.clone()).await, Duration::from_secs(5));
    let signer = signer();
    for chunk in 1..4u8 {
        payer.pay(signer.sign(NodeId([9; 32]), ChunkId([chunk; 32]), 100));
    }
    let paid = payer.finish(soon()).await;
    assert_eq!((paid.sent, paid.accepted, paid.undelivered), (3, 0, 3));
    // One first attempt and four retries per batch.
    let calls = seeder.calls.load(Ordering::SeqCst);
    assert!(calls >= 5 && calls.is_multiple_of(5), "{calls} calls");
}
