//! Receipt ingest: the named anti-fraud rules and the durable, idempotent batch insert.
//!
//! Rules, in the order they are applied (the first that fails names the rejection):
//!
//! | code | rule |
//! |---|---|
//! | `self_receipt` | the seeder and the downloader are the same key |
//! | `epoch_out_of_window` | the epoch is in the future, already closed, or `issued_at_ms` lies outside the epoch's window (± `issued_at_skew_ms`) |
//! | `unknown_chunk` | no registered manifest contains the chunk |
//! | `chunk_size_mismatch` | `bytes` is not the chunk's length |
//! | `bad_signature` | the downloader's ed25519 signature does not verify for this network (batch verification, single checks to find the bad ones) |
//! | `duplicate` | a different receipt for the same (epoch, downloader, seeder, chunk) is held or earlier in the batch |
//! | `downloader_cap` | the downloader would attest more than `downloader_cap_bytes` in the epoch |
//!
//! Resubmitting a receipt that is already held, byte for byte, is accepted again and
//! stored once: a batch can be retried safely. The stored-state rules and the insert run
//! under one lock with epoch close (the closed-epoch check is repeated there), so a receipt
//! either lands before its epoch closes or is refused; signature checks run outside it.

use std::collections::HashMap;

use dsi_protocol::{Epoch, NetworkId, NodeId, SignedReceipt};
use serde::{Deserialize, Serialize};

use crate::store::{ReceiptKey, StoreError, receipt_key};
use crate::{OracleState, now_ms};

/// Every rule, for metrics and docs.
pub const RULES: [&str; 7] = [
    "self_receipt",
    "epoch_out_of_window",
    "unknown_chunk",
    "chunk_size_mismatch",
    "bad_signature",
    "duplicate",
    "downloader_cap",
];

/// The verdict on one receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Verdict {
    /// Stored durably (or already held, identical).
    Accepted,
    /// Refused by a named rule.
    Rejected {
        /// The rule's code (see [`RULES`]).
        code: String,
        /// Human-readable detail.
        message: String,
    },
}

impl Verdict {
    fn reject(code: &'static str, message: impl Into<String>) -> Self {
        Self::Rejected {
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// The rule code of a rejection.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Accepted => None,
            Self::Rejected { code, .. } => Some(code),
        }
    }
}

/// Verifies signatures on both cores: halves checked in parallel, each as one batch.
pub fn verify_parallel(receipts: &[SignedReceipt], network: &NetworkId) -> Vec<bool> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    if receipts.len() < 64 || threads == 1 {
        return SignedReceipt::verify_many(receipts, network)
            .into_iter()
            .map(|r| r.is_ok())
            .collect();
    }
    let part = receipts.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = receipts
            .chunks(part)
            .map(|slice| {
                scope.spawn(move || {
                    SignedReceipt::verify_many(slice, network)
                        .into_iter()
                        .map(|r| r.is_ok())
                        .collect::<Vec<bool>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// Applies the rules to a batch and stores what passes. One verdict per receipt, in order.
pub async fn ingest(
    state: &OracleState,
    batch: Vec<SignedReceipt>,
) -> Result<Vec<Verdict>, StoreError> {
    // Stateless rules and signatures first, outside the lock, so that one batch's
    // verification overlaps another's database work; what depends on stored state
    // (closed epochs, duplicates, the cap) is decided under the lock.
    let config = &state.config;
    let now = now_ms();
    let current = config.epochs.epoch_at(now);
    let last_closed = state.store.last_closed_epoch().await?;
    let skew = config.ingest.issued_at_skew_ms;

    let mut verdicts: Vec<Option<Verdict>> = vec![None; batch.len()];
    {
        let lengths = state.chunk_lengths.read().await;
        for (i, signed) in batch.iter().enumerate() {
            let r = &signed.receipt;
            let (start, end) = config.epochs.window(r.epoch);
            let verdict = if r.seeder == r.downloader {
                Some(Verdict::reject(
                    "self_receipt",
                    "a node cannot sign receipts for itself",
                ))
            } else if r.epoch > current {
                Some(Verdict::reject(
                    "epoch_out_of_window",
                    format!("epoch {} has not started (current {current})", r.epoch),
                ))
            } else if last_closed.is_some_and(|closed| r.epoch <= closed) {
                Some(Verdict::reject(
                    "epoch_out_of_window",
                    format!("epoch {} is closed", r.epoch),
                ))
            } else if r.issued_at_ms.saturating_add(skew) < start
                || r.issued_at_ms >= end.saturating_add(skew)
            {
                Some(Verdict::reject(
                    "epoch_out_of_window",
                    format!(
                        "issued at {} ms, outside epoch {} ({start}..{end} ms)",
                        r.issued_at_ms, r.epoch
                    ),
                ))
            } else {
                match lengths.get(&r.chunk) {
                    None => Some(Verdict::reject(
                        "unknown_chunk",
                        format!("no registered content contains chunk {}", r.chunk),
                    )),
                    Some(&length) if length != r.bytes => Some(Verdict::reject(
                        "chunk_size_mismatch",
                        format!("receipt says {} bytes, chunk is {length}", r.bytes),
                    )),
                    Some(_) => None,
                }
            };
            verdicts[i] = verdict;
        }
    }

    // Signatures of the receipts that passed so far, off the async runtime.
    let candidates: Vec<usize> = (0..batch.len())
        .filter(|&i| verdicts[i].is_none())
        .collect();
    let to_check: Vec<SignedReceipt> = candidates.iter().map(|&i| batch[i]).collect();
    let network = config.network.clone();
    let valid = tokio::task::spawn_blocking(move || verify_parallel(&to_check, &network))
        .await
        .unwrap_or_default();
    for (k, &i) in candidates.iter().enumerate() {
        if !valid.get(k).copied().unwrap_or(false) {
            verdicts[i] = Some(Verdict::reject(
                "bad_signature",
                format!(
                    "signature does not verify for downloader {} on network {}",
                    batch[i].receipt.downloader, config.network
                ),
            ));
        }
    }

    let _guard = state.ingest_lock.lock().await;
    // An epoch may have closed while the signatures were checked.
    if let Some(closed) = state.store.last_closed_epoch().await? {
        for (i, signed) in batch.iter().enumerate() {
            if verdicts[i].is_none() && signed.receipt.epoch <= closed {
                verdicts[i] = Some(Verdict::reject(
                    "epoch_out_of_window",
                    format!("epoch {} is closed", signed.receipt.epoch),
                ));
            }
        }
    }

    // Duplicates against the store and within the batch.
    let keys: Vec<ReceiptKey> = (0..batch.len())
        .filter(|&i| verdicts[i].is_none())
        .map(|i| receipt_key(&batch[i].receipt))
        .collect();
    let existing = state.store.existing_receipts(&keys).await?;
    let mut seen: HashMap<ReceiptKey, usize> = HashMap::new();
    let mut fresh: Vec<usize> = Vec::new();
    for i in 0..batch.len() {
        if verdicts[i].is_some() {
            continue;
        }
        let key = receipt_key(&batch[i].receipt);
        let earlier = existing
            .get(&key)
            .copied()
            .or_else(|| seen.get(&key).map(|&j| batch[j]));
        match earlier {
            Some(held) if held == batch[i] => verdicts[i] = Some(Verdict::Accepted),
            Some(_) => {
                verdicts[i] = Some(Verdict::reject(
                    "duplicate",
                    "a different receipt for this epoch, downloader, seeder and chunk is held",
                ))
            }
            None => {
                seen.insert(key, i);
                fresh.push(i);
            }
        }
    }

    // Per-downloader byte cap per epoch.
    let mut pairs: Vec<(Epoch, NodeId)> = fresh
        .iter()
        .map(|&i| (batch[i].receipt.epoch, batch[i].receipt.downloader))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut usage = state.store.downloader_usage(&pairs).await?;
    let cap = config.ingest.downloader_cap_bytes;
    let mut to_store = Vec::with_capacity(fresh.len());
    for &i in &fresh {
        let r = &batch[i].receipt;
        let used = usage.entry((r.epoch, r.downloader)).or_insert(0);
        let after = used.saturating_add(u64::from(r.bytes));
        if after > cap {
            verdicts[i] = Some(Verdict::reject(
                "downloader_cap",
                format!(
                    "downloader {} would attest {after} bytes in epoch {}, cap {cap}",
                    r.downloader, r.epoch
                ),
            ));
        } else {
            *used = after;
            to_store.push(batch[i]);
            verdicts[i] = Some(Verdict::Accepted);
        }
    }
    state.store.insert_receipts(&to_store).await?;
    Ok(verdicts
        .into_iter()
        .map(|v| v.unwrap_or(Verdict::Accepted))
        .collect())
}
