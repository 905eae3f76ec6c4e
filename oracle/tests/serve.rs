//! The served oracle closes due epochs on its timer, and stops cleanly on cancel.

mod support;

use std::time::{Duration, Instant};

use support::*;

#[tokio::test]
async fn due_epochs_close_on_the_timer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config();
    config.epochs.length_ms = 1_000;
    config.close.auto = true;
    config.close.delay_ms = 100;
    config.audit.enabled = false;
    let state = oracle_at(
        &format!("sqlite://{}/o.db", dir.path().display()),
        dir.path(),
        config,
    )
    .await;
    let (listener, addr) = oracle::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let cancel = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(oracle::serve(state.clone(), listener, cancel.clone()));
    let started = state.config.epochs.epoch_at(now_ms());
    let deadline = Instant::now() + Duration::from_secs(20);
    let closed = loop {
        let current: serde_json::Value = reqwest::get(format!("http://{addr}/v1/epochs/current"))
            .await
            .expect("reachable")
            .json()
            .await
            .expect("json");
        if let Some(last) = current["last_closed"].as_u64()
            && last > started.0
        {
            break last;
        }
        assert!(
            Instant::now() < deadline,
            "no epoch closed on the timer: {current}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // From the first close on, epochs close in order, none skipped, each with its (empty)
    // batch file.
    let records = state
        .store
        .epochs_with_status(&[dsi_api::oracle::EpochStatus::Closed])
        .await
        .expect("db");
    assert!(records.len() >= 2, "{records:?}");
    assert_eq!(records.last().map(|r| r.epoch.0), Some(closed));
    for pair in records.windows(2) {
        assert_eq!(pair[1].epoch, pair[0].epoch.next(), "no epoch skipped");
    }
    for record in &records {
        assert!(dir.path().join("batches").join(&record.batch_file).exists());
    }
    cancel.cancel();
    server.await.expect("joins").expect("served");
}
