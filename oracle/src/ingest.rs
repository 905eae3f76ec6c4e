//! Receipt ingest: the rules of [`crate::rules`] over every forwarded batch, and the
//! durable, idempotent insert of what passes.
//!
//! The screen (stateless rules and batch-verified signatures) runs outside the ingest
//! lock, so one batch's verification overlaps another's database work. The stateful part
//! runs under the lock that epoch close also takes: the epoch window is checked again
//! against the newest closed epoch, the [`Tally`] is loaded with the receipts already held
//! for the batch's keys and each downloader's bytes so far, and what it admits as new is
//! committed in one transaction before the answer goes out. A receipt therefore lands
//! before its epoch closes or is refused as `epoch_out_of_window`; resubmitting a held
//! receipt byte for byte is accepted again and stored once.

use dsi_api::ReceiptVerdict;
use dsi_protocol::{Epoch, NodeId, SignedReceipt, now_ms};

use crate::OracleState;
use crate::rules::{
    Admitted, OpenEpochs, RuleParams, Tally, Violation, check_exit, check_signatures,
    check_stateless, check_window, receipt_key,
};
use crate::store::StoreError;

/// Applies the rules to a batch and stores what passes. One verdict per receipt, in order.
pub async fn ingest(
    state: &OracleState,
    batch: Vec<SignedReceipt>,
) -> Result<Vec<ReceiptVerdict>, StoreError> {
    let params = RuleParams::of(&state.config);
    let current = params.schedule.epoch_at(now_ms());
    let open = OpenEpochs::live(current, state.store.last_closed_epoch().await?);

    // The screen: stateless rules here, signatures off the async runtime.
    let mut verdicts: Vec<Result<(), Violation>> = {
        let lengths = state.chunk_lengths.read().await;
        batch
            .iter()
            .map(|r| check_stateless(&r.receipt, &params, open, |c| lengths.get(c).copied()))
            .collect()
    };
    let network = params.network.clone();
    let (batch, mut verdicts) = tokio::task::spawn_blocking(move || {
        check_signatures(&batch, &mut verdicts, &network);
        (batch, verdicts)
    })
    .await
    .map_err(|e| StoreError::Open(format!("signature check failed: {e}")))?;

    let _guard = state.ingest_lock.lock().await;
    // An epoch may have closed while the signatures were checked.
    let open = OpenEpochs::live(current, state.store.last_closed_epoch().await?);
    for (verdict, signed) in verdicts.iter_mut().zip(&batch) {
        if verdict.is_ok() {
            *verdict = check_window(&signed.receipt, &params, open);
        }
    }
    // Seeders that exited earn nothing for later epochs.
    let mut seeders: Vec<NodeId> = verdicts
        .iter()
        .zip(&batch)
        .filter(|(v, _)| v.is_ok())
        .map(|(_, r)| r.receipt.seeder)
        .collect();
    seeders.sort_unstable();
    seeders.dedup();
    let exited = state.store.exited(&seeders).await?;
    for (verdict, signed) in verdicts.iter_mut().zip(&batch) {
        if verdict.is_ok() {
            *verdict = check_exit(&signed.receipt, exited.get(&signed.receipt.seeder).copied());
        }
    }

    // The tally, loaded with what is held for these keys and downloaders.
    let passed: Vec<&SignedReceipt> = verdicts
        .iter()
        .zip(&batch)
        .filter(|(v, _)| v.is_ok())
        .map(|(_, r)| r)
        .collect();
    let keys: Vec<_> = passed.iter().map(|r| receipt_key(&r.receipt)).collect();
    let mut pairs: Vec<(Epoch, NodeId)> = passed
        .iter()
        .map(|r| (r.receipt.epoch, r.receipt.downloader))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut tally = Tally::new(params.downloader_cap_bytes);
    for (_, held) in state.store.existing_receipts(&keys).await? {
        tally.hold(held);
    }
    for ((epoch, downloader), bytes) in state.store.downloader_usage(&pairs).await? {
        tally.add_usage(epoch, downloader, bytes);
    }
    let mut to_store = Vec::with_capacity(passed.len());
    let verdicts: Vec<ReceiptVerdict> = verdicts
        .into_iter()
        .zip(&batch)
        .map(
            |(screened, signed)| match screened.and_then(|()| tally.admit(signed)) {
                Ok(admitted) => {
                    if admitted == Admitted::New {
                        to_store.push(*signed);
                    }
                    ReceiptVerdict::Accepted
                }
                Err(violation) => violation.verdict(),
            },
        )
        .collect();
    state.store.insert_receipts(&to_store).await?;
    Ok(verdicts)
}
