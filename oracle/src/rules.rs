//! The oracle's receipt rules, written once. Receipt ingest applies them to every batch a
//! seeder forwards ([`crate::ingest`]); `oracle verify-epoch` applies the same functions to a
//! published batch ([`crate::batch::verify_batch`]), so both judge a receipt alike by
//! construction (a property test checks it on random receipt sets).
//!
//! The rules, in the order they apply (the first that fails names the rejection):
//!
//! | rule (`dsi_api::RejectionCode`) | refused when |
//! |---|---|
//! | `self_receipt` | the seeder and the downloader are the same key |
//! | `epoch_out_of_window` | the epoch does not take receipts (not started, or closed), or `issued_at_ms` lies outside the epoch's window by more than `issued_at_skew_ms` |
//! | `unknown_chunk` | no registered manifest contains the chunk |
//! | `chunk_size_mismatch` | `bytes` is not the chunk's length |
//! | `bad_signature` | the downloader's ed25519 signature does not verify for the network (weak keys refused) |
//! | `seeder_exited` | the seeder exited (`node-lite exit`) in an epoch before the receipt's |
//! | `duplicate` | a different receipt for the same (epoch, downloader, seeder, chunk) is held or came earlier |
//! | `downloader_cap` | the downloader would attest more than `downloader_cap_bytes` in the epoch |
//!
//! The first four are [`check_stateless`]; with signatures they form the [`screen`], which
//! needs no stored state. Duplicates and the cap need what came before: the [`Tally`]; the
//! exit, the tracker's record ([`check_exit`], at ingest only: a published batch holds no
//! receipt it refused, and `verify-epoch` cannot know when a key exited). An
//! identical resubmission of a held receipt is [`Admitted::AlreadyHeld`]: accepted again,
//! stored once.

use std::collections::HashMap;

use dsi_api::{ReceiptVerdict, RejectionCode};
use dsi_protocol::{ChunkId, Epoch, EpochSchedule, NetworkId, NodeId, Receipt, SignedReceipt};

/// A rule, named by its code: the same codes the seeder and the API use.
pub type Rule = RejectionCode;

/// The oracle's rules, in the order they apply.
pub const RULES: [Rule; 8] = [
    Rule::SelfReceipt,
    Rule::EpochOutOfWindow,
    Rule::UnknownChunk,
    Rule::ChunkSizeMismatch,
    Rule::BadSignature,
    Rule::SeederExited,
    Rule::Duplicate,
    Rule::DownloaderCap,
];

/// The exit rule: a key that exited (`exited`, the epoch it exited in) earns nothing for
/// later epochs. Receipts of the exit's own epoch still count: the node served them.
pub fn check_exit(receipt: &Receipt, exited: Option<Epoch>) -> Result<(), Violation> {
    match exited {
        Some(epoch) if receipt.epoch > epoch => Err(Violation::new(
            Rule::SeederExited,
            format!(
                "seeder {} exited the network in epoch {epoch}; receipt of epoch {}",
                receipt.seeder, receipt.epoch
            ),
        )),
        _ => Ok(()),
    }
}

/// A receipt broke a rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{rule}: {detail}")]
pub struct Violation {
    /// The rule.
    pub rule: Rule,
    /// What exactly, for humans.
    pub detail: String,
}

impl Violation {
    fn new(rule: Rule, detail: impl Into<String>) -> Self {
        Self {
            rule,
            detail: detail.into(),
        }
    }

    /// The verdict an API client gets.
    pub fn verdict(&self) -> ReceiptVerdict {
        ReceiptVerdict::Rejected {
            code: self.rule,
            message: self.detail.clone(),
        }
    }
}

/// The parameters the rules read, fixed per epoch (a published batch records them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleParams {
    /// The network receipts must be signed for.
    pub network: NetworkId,
    /// The epoch schedule (each epoch's window).
    pub schedule: EpochSchedule,
    /// How far `issued_at_ms` may lie outside its epoch's window.
    pub issued_at_skew_ms: u64,
    /// Most bytes one downloader may attest per epoch.
    pub downloader_cap_bytes: u64,
}

impl RuleParams {
    /// The parameters of an oracle's configuration.
    pub fn of(config: &crate::Config) -> Self {
        Self {
            network: config.network.clone(),
            schedule: config.epochs,
            issued_at_skew_ms: config.ingest.issued_at_skew_ms,
            downloader_cap_bytes: config.ingest.downloader_cap_bytes,
        }
    }
}

/// The epochs that take receipts: `first..=last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenEpochs {
    /// The oldest epoch not yet closed.
    pub first: Epoch,
    /// The current epoch.
    pub last: Epoch,
}

impl OpenEpochs {
    /// What a live oracle accepts: every epoch after the newest closed one, up to the
    /// current one. An oracle that has closed nothing yet accepts the current epoch and the
    /// one before (whose close may be waiting for its delay), not every epoch since the
    /// schedule's genesis: its first close starts at the oldest epoch it holds receipts
    /// for, so every accepted receipt is published.
    pub fn live(current: Epoch, last_closed: Option<Epoch>) -> Self {
        Self {
            first: last_closed.map_or(Epoch(current.0.saturating_sub(1)), Epoch::next),
            last: current,
        }
    }

    /// Exactly one epoch (a published batch).
    pub fn only(epoch: Epoch) -> Self {
        Self {
            first: epoch,
            last: epoch,
        }
    }
}

/// The epoch rule: the receipt's epoch takes receipts and its issue time lies in the
/// epoch's window (± the skew).
pub fn check_window(r: &Receipt, params: &RuleParams, open: OpenEpochs) -> Result<(), Violation> {
    let out = |detail: String| Err(Violation::new(Rule::EpochOutOfWindow, detail));
    if r.epoch > open.last {
        return out(format!(
            "epoch {} has not started (the newest open epoch is {})",
            r.epoch, open.last
        ));
    }
    if r.epoch < open.first {
        return out(format!(
            "epoch {} is closed (the oldest open epoch is {})",
            r.epoch, open.first
        ));
    }
    let (start, end) = params.schedule.window(r.epoch);
    let skew = params.issued_at_skew_ms;
    if r.issued_at_ms.saturating_add(skew) < start || r.issued_at_ms >= end.saturating_add(skew) {
        return out(format!(
            "issued at {} ms, outside epoch {} ({start}..{end} ms)",
            r.issued_at_ms, r.epoch
        ));
    }
    Ok(())
}

/// The rules that need neither signatures nor stored receipts: self receipts, the epoch
/// window, unknown chunks and chunk sizes. `chunk_len` gives a registered chunk's length.
pub fn check_stateless(
    r: &Receipt,
    params: &RuleParams,
    open: OpenEpochs,
    chunk_len: impl Fn(&ChunkId) -> Option<u32>,
) -> Result<(), Violation> {
    if r.seeder == r.downloader {
        return Err(Violation::new(
            Rule::SelfReceipt,
            "a node cannot sign receipts for itself",
        ));
    }
    check_window(r, params, open)?;
    match chunk_len(&r.chunk) {
        None => Err(Violation::new(
            Rule::UnknownChunk,
            format!("no registered content contains chunk {}", r.chunk),
        )),
        Some(length) if length != r.bytes => Err(Violation::new(
            Rule::ChunkSizeMismatch,
            format!("receipt says {} bytes, chunk is {length}", r.bytes),
        )),
        Some(_) => Ok(()),
    }
}

/// Verifies signatures on up to four cores: parts checked in parallel, each as one ed25519
/// batch (single checks only to find the bad ones).
pub fn verify_signatures(receipts: &[SignedReceipt], network: &NetworkId) -> Vec<bool> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    verify_in_parts(receipts, threads, |slice| {
        SignedReceipt::verify_many(slice, network)
            .into_iter()
            .map(|r| r.is_ok())
            .collect()
    })
}

/// Runs `check` over up to `threads` slices of `receipts` in parallel and returns one
/// answer per receipt, in order. Fails closed: a slice whose check panics, or answers for
/// fewer or more receipts than it was given, counts as all invalid, so no verdict can
/// shift onto another receipt.
pub fn verify_in_parts<F>(receipts: &[SignedReceipt], threads: usize, check: F) -> Vec<bool>
where
    F: Fn(&[SignedReceipt]) -> Vec<bool> + Sync,
{
    let checked = |slice: &[SignedReceipt]| -> Vec<bool> {
        let answers = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(slice)));
        match answers {
            Ok(answers) if answers.len() == slice.len() => answers,
            _ => vec![false; slice.len()],
        }
    };
    if receipts.len() < 64 || threads <= 1 {
        return checked(receipts);
    }
    let part = receipts.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = receipts
            .chunks(part)
            .map(|slice| scope.spawn(|| checked(slice)))
            .collect();
        handles
            .into_iter()
            .zip(receipts.chunks(part))
            .flat_map(|(h, slice)| h.join().unwrap_or_else(|_| vec![false; slice.len()]))
            .collect()
    })
}

/// The signature rule over the receipts that passed so far (`verdicts[i]` is `Ok`).
pub fn check_signatures(
    batch: &[SignedReceipt],
    verdicts: &mut [Result<(), Violation>],
    network: &NetworkId,
) {
    let candidates: Vec<usize> = (0..batch.len()).filter(|&i| verdicts[i].is_ok()).collect();
    let to_check: Vec<SignedReceipt> = candidates.iter().map(|&i| batch[i]).collect();
    let valid = verify_signatures(&to_check, network);
    for (k, &i) in candidates.iter().enumerate() {
        if !valid.get(k).copied().unwrap_or(false) {
            verdicts[i] = Err(Violation::new(
                Rule::BadSignature,
                format!(
                    "signature does not verify for downloader {} on network {network}",
                    batch[i].receipt.downloader
                ),
            ));
        }
    }
}

/// The stateless rules and the signatures, for a whole batch, in order.
pub fn screen(
    batch: &[SignedReceipt],
    params: &RuleParams,
    open: OpenEpochs,
    chunk_len: impl Fn(&ChunkId) -> Option<u32>,
) -> Vec<Result<(), Violation>> {
    let mut verdicts: Vec<Result<(), Violation>> = batch
        .iter()
        .map(|r| check_stateless(&r.receipt, params, open, &chunk_len))
        .collect();
    check_signatures(batch, &mut verdicts, &params.network);
    verdicts
}

/// Key of a receipt: (epoch, downloader, seeder, chunk). At most one receipt per key is
/// held.
pub type ReceiptKey = (Epoch, NodeId, NodeId, ChunkId);

/// The key of a receipt.
pub fn receipt_key(receipt: &Receipt) -> ReceiptKey {
    (
        receipt.epoch,
        receipt.downloader,
        receipt.seeder,
        receipt.chunk,
    )
}

/// How the tally admitted a receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admitted {
    /// New: store it, count its bytes.
    New,
    /// The identical receipt is already held: accepted again, not stored twice.
    AlreadyHeld,
}

/// The stateful rules: duplicates and the per-downloader cap, over the receipts held before
/// (loaded with [`Tally::hold`] and [`Tally::add_usage`]) and those admitted since.
#[derive(Clone, Debug)]
pub struct Tally {
    held: HashMap<ReceiptKey, SignedReceipt>,
    usage: HashMap<(Epoch, NodeId), u64>,
    cap: u64,
}

impl Tally {
    /// An empty tally with the downloader cap `cap` (bytes per epoch).
    pub fn new(cap: u64) -> Self {
        Self {
            held: HashMap::new(),
            usage: HashMap::new(),
            cap,
        }
    }

    /// A receipt held before.
    pub fn hold(&mut self, receipt: SignedReceipt) {
        self.held.insert(receipt_key(&receipt.receipt), receipt);
    }

    /// Bytes a downloader attested in an epoch before.
    pub fn add_usage(&mut self, epoch: Epoch, downloader: NodeId, bytes: u64) {
        let used = self.usage.entry((epoch, downloader)).or_insert(0);
        *used = used.saturating_add(bytes);
    }

    /// Judges one receipt that passed the screen, and counts it if admitted.
    pub fn admit(&mut self, signed: &SignedReceipt) -> Result<Admitted, Violation> {
        let r = &signed.receipt;
        let key = receipt_key(r);
        if let Some(held) = self.held.get(&key) {
            return if held == signed {
                Ok(Admitted::AlreadyHeld)
            } else {
                Err(Violation::new(
                    Rule::Duplicate,
                    "a different receipt for this epoch, downloader, seeder and chunk is held",
                ))
            };
        }
        let used = self
            .usage
            .get(&(r.epoch, r.downloader))
            .copied()
            .unwrap_or(0);
        let after = used.saturating_add(u64::from(r.bytes));
        if after > self.cap {
            return Err(Violation::new(
                Rule::DownloaderCap,
                format!(
                    "downloader {} would attest {after} bytes in epoch {}, cap {}",
                    r.downloader, r.epoch, self.cap
                ),
            ));
        }
        self.usage.insert((r.epoch, r.downloader), after);
        self.held.insert(key, *signed);
        Ok(Admitted::New)
    }
}

/// Every rule over a batch, in order: the screen, then the tally for what passed it.
pub fn judge(
    batch: &[SignedReceipt],
    params: &RuleParams,
    open: OpenEpochs,
    chunk_len: impl Fn(&ChunkId) -> Option<u32>,
    tally: &mut Tally,
) -> Vec<Result<Admitted, Violation>> {
    screen(batch, params, open, chunk_len)
        .into_iter()
        .zip(batch)
        .map(|(screened, signed)| screened.and_then(|()| tally.admit(signed)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsi_protocol::SecretKey;

    fn params() -> RuleParams {
        RuleParams {
            network: NetworkId::default(),
            schedule: EpochSchedule {
                genesis_ms: 0,
                length_ms: 1000,
            },
            issued_at_skew_ms: 100,
            downloader_cap_bytes: 250,
        }
    }

    fn receipt(
        key: &SecretKey,
        chunk: u8,
        bytes: u32,
        epoch: u64,
        at: u64,
        nonce: u64,
    ) -> SignedReceipt {
        let r = Receipt {
            epoch: Epoch(epoch),
            seeder: NodeId([2; 32]),
            downloader: key.node_id(),
            chunk: ChunkId([chunk; 32]),
            bytes,
            issued_at_ms: at,
            nonce,
        };
        SignedReceipt::sign(r, &NetworkId::default(), key)
    }

    #[test]
    fn every_rule_in_order() {
        let key = SecretKey::from_seed(&[1; 32]);
        let lengths = |c: &ChunkId| (c.0[0] < 10).then_some(100u32);
        let ok = receipt(&key, 1, 100, 5, 5_500, 1);
        let mut forged = receipt(&key, 2, 100, 5, 5_500, 2);
        forged.signature.0[0] ^= 1;
        let mut selfish = receipt(&key, 3, 100, 5, 5_500, 3);
        selfish.receipt.seeder = key.node_id();
        let batch = [
            ok,
            ok,
            receipt(&key, 1, 100, 5, 5_501, 9),
            forged,
            selfish,
            receipt(&key, 4, 100, 4, 4_500, 4),
            receipt(&key, 4, 100, 5, 6_200, 5),
            receipt(&key, 4, 100, 5, 4_950, 6),
            receipt(&key, 11, 100, 5, 5_500, 7),
            receipt(&key, 5, 99, 5, 5_500, 8),
            receipt(&key, 6, 100, 5, 5_500, 10),
            receipt(&key, 7, 100, 5, 5_500, 11),
        ];
        let verdicts = judge(
            &batch,
            &params(),
            OpenEpochs::only(Epoch(5)),
            lengths,
            &mut Tally::new(250),
        );
        let codes: Vec<Option<Rule>> = verdicts
            .iter()
            .map(|v| v.as_ref().err().map(|e| e.rule))
            .collect();
        assert_eq!(
            codes,
            [
                None,
                None,
                Some(Rule::Duplicate),
                Some(Rule::BadSignature),
                Some(Rule::SelfReceipt),
                Some(Rule::EpochOutOfWindow),
                Some(Rule::EpochOutOfWindow),
                None,
                Some(Rule::UnknownChunk),
                Some(Rule::ChunkSizeMismatch),
                Some(Rule::DownloaderCap),
                Some(Rule::DownloaderCap),
            ]
        );
        assert_eq!(verdicts[1], Ok(Admitted::AlreadyHeld));
        // Issued 50 ms before its epoch's window: inside the skew.
        assert_eq!(verdicts[7], Ok(Admitted::New));
    }
}
