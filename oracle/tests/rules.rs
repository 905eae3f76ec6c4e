//! Ingest and `verify-epoch` judge receipts alike. For random receipt sets (valid, forged,
//! self-signed, duplicated exactly or with another nonce, over the downloader cap, for a
//! closed, the open or a future epoch, issued outside their window, with a wrong size or an
//! unknown chunk), the verdicts a live oracle's ingest gives equal those of the rule engine
//! `verify-epoch` runs over a batch; and the epoch closes into a published batch that
//! `verify-epoch` accepts and recomputes bit for bit.

mod support;

use std::collections::HashMap;

use dsi_api::RejectionCode;
use dsi_protocol::{ChunkId, Epoch, EpochSchedule, NodeId, Receipt, SignedReceipt};
use oracle::batch::{decode_batch, verify_batch};
use oracle::rules::{OpenEpochs, RuleParams, Tally, judge};
use proptest::prelude::*;
use support::*;

/// Epochs of 10^12 ms: the open epoch (1) lasts until 2033, so a test never straddles two.
const EPOCH_MS: u64 = 1_000_000_000_000;
const OPEN: Epoch = Epoch(1);

/// One receipt to make.
#[derive(Clone, Debug)]
struct Spec {
    downloader: u8,
    /// 0..3 a seeder, 3: the downloader itself.
    seeder: u8,
    /// 0..4 the registered content's chunks, 4..6 unknown ones.
    chunk: u8,
    /// Relative to the open epoch: -1 (closed), 0, +1 (future).
    epoch: i8,
    /// 0: inside the epoch's window, 1: long before it, 2: long after it.
    issued: u8,
    wrong_size: bool,
    forged: bool,
    nonce: u8,
    /// Repeat an earlier receipt byte for byte instead.
    copy_of: Option<usize>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0..3u8,
        prop_oneof![9 => 0..3u8, 1 => Just(3u8)],
        prop_oneof![9 => 0..4u8, 1 => 4..6u8],
        prop_oneof![8 => Just(0i8), 1 => Just(-1i8), 1 => Just(1i8)],
        prop_oneof![8 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
        prop::bool::weighted(0.08),
        prop::bool::weighted(0.08),
        0..3u8,
        prop::option::weighted(0.15, 0..40usize),
    )
        .prop_map(
            |(downloader, seeder, chunk, epoch, issued, wrong_size, forged, nonce, copy_of)| Spec {
                downloader,
                seeder,
                chunk,
                epoch,
                issued,
                wrong_size,
                forged,
                nonce,
                copy_of,
            },
        )
}

fn make(specs: &[Spec], chunks: &[(ChunkId, u32)], skew: u64) -> Vec<SignedReceipt> {
    let schedule = EpochSchedule {
        genesis_ms: 0,
        length_ms: EPOCH_MS,
    };
    let network = dsi_protocol::NetworkId::default();
    let mut out: Vec<SignedReceipt> = Vec::with_capacity(specs.len());
    for spec in specs {
        if let Some(j) = spec.copy_of.filter(|j| *j < out.len()) {
            out.push(out[j]);
            continue;
        }
        let downloader = key(20 + spec.downloader);
        let seeder = if spec.seeder == 3 {
            downloader.node_id()
        } else {
            key(10 + spec.seeder).node_id()
        };
        let (chunk, length) = match chunks.get(usize::from(spec.chunk)) {
            Some(known) => *known,
            None => (ChunkId([0xe0 + spec.chunk; 32]), 16_384),
        };
        let epoch = Epoch(OPEN.0.saturating_add_signed(i64::from(spec.epoch)));
        let (start, end) = schedule.window(epoch);
        let issued_at_ms = match spec.issued {
            0 if epoch == OPEN => now_ms(),
            0 => start + 5_000,
            1 => start.saturating_sub(10 * skew),
            _ => end + 10 * skew,
        };
        let receipt = Receipt {
            epoch,
            seeder,
            downloader: NodeId([0; 32]),
            chunk,
            bytes: length + u32::from(spec.wrong_size),
            issued_at_ms,
            nonce: u64::from(spec.nonce),
        };
        let mut signed = SignedReceipt::sign(receipt, &network, &downloader);
        if spec.forged {
            signed.signature.0[7] ^= 0x20;
        }
        out.push(signed);
    }
    out
}

/// Runs one case: a fresh oracle with epoch 0 closed and one content registered; the
/// receipts ingested in up to three consecutive batches (so later batches meet receipts and
/// byte counts already stored); their verdicts against the engine's over all of them at
/// once; the open epoch closed and its batch verified.
async fn case(specs: Vec<Spec>, cuts: (usize, usize)) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config();
    config.epochs = EpochSchedule {
        genesis_ms: 0,
        length_ms: EPOCH_MS,
    };
    config.audit.enabled = false;
    config.ingest.downloader_cap_bytes = 3 * 16_384;
    let url = format!("sqlite://{}", dir.path().join("oracle.db").display());
    let state = oracle_at(&url, dir.path(), config).await;
    let (manifest, _) = content(1, 4);
    register(&state, &manifest).await;
    oracle::close::close_through(&state, Epoch(0))
        .await
        .expect("epoch 0 closes");
    let chunks: Vec<(ChunkId, u32)> = (0..manifest.chunk_count())
        .map(|i| (manifest.chunks[i], manifest.chunk_len(i)))
        .collect();
    let receipts = make(&specs, &chunks, state.config.ingest.issued_at_skew_ms);

    let first = cuts.0.min(receipts.len());
    let second = cuts.1.clamp(first, receipts.len());
    let mut ingested: Vec<Option<RejectionCode>> = Vec::with_capacity(receipts.len());
    for batch in [
        &receipts[..first],
        &receipts[first..second],
        &receipts[second..],
    ] {
        if batch.is_empty() {
            continue;
        }
        let verdicts = oracle::ingest::ingest(&state, batch.to_vec())
            .await
            .expect("ingest");
        ingested.extend(verdicts.iter().map(|v| v.rejection()));
    }
    let lengths: HashMap<ChunkId, u32> = chunks.iter().copied().collect();
    let params = RuleParams::of(&state.config);
    let judged: Vec<Option<RejectionCode>> = judge(
        &receipts,
        &params,
        OpenEpochs::only(OPEN),
        |c| lengths.get(c).copied(),
        &mut Tally::new(params.downloader_cap_bytes),
    )
    .into_iter()
    .map(|v| v.err().map(|violation| violation.rule))
    .collect();
    prop_assert_eq!(&ingested, &judged);

    let closed = oracle::close::close_through(&state, OPEN)
        .await
        .expect("the open epoch closes");
    let record = &closed[0];
    let bytes = std::fs::read(state.batches_dir.join(&record.batch_file)).expect("batch file");
    let batch = decode_batch(&bytes).expect("a batch");
    let verified = verify_batch(&batch).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(verified.root, record.root);
    let mut accepted: Vec<SignedReceipt> = receipts
        .iter()
        .zip(&ingested)
        .filter(|(_, v)| v.is_none())
        .map(|(r, _)| *r)
        .collect();
    accepted.sort_by_key(|r| (r.receipt.seeder, r.receipt.chunk, r.receipt.downloader));
    accepted.dedup();
    prop_assert_eq!(batch.receipts, accepted);
    state.store.close().await;
    Ok(())
}

/// The golden epoch of `protocol/tests/vectors/epoch.json` (built there from the protocol
/// types alone) is a batch this oracle decodes, judges and recomputes bit for bit, with the
/// same content id: the vector and `EpochBatch` cannot drift apart.
#[test]
fn the_golden_epoch_batch_verifies() {
    let text = include_str!("../../protocol/tests/vectors/epoch.json");
    let vector: serde_json::Value = serde_json::from_str(text).expect("JSON");
    let hex_of = |key: &str| hex::decode(vector[key].as_str().expect(key)).expect("hex");
    let bytes = hex_of("batch");
    let batch = decode_batch(&bytes).expect("the golden batch decodes");
    let verified = verify_batch(&batch).expect("the golden batch verifies");
    assert_eq!(verified.root.to_vec(), hex_of("root"));
    assert_eq!(
        oracle::batch::batch_content_id(&bytes).to_string(),
        vector["batch_content_id"].as_str().expect("id")
    );
    assert_eq!(
        verified.rewards.total.to_string(),
        vector["total"].as_str().expect("total")
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn ingest_and_verify_epoch_give_the_same_verdicts(
        specs in prop::collection::vec(spec(), 1..40),
        cuts in (0..40usize, 0..40usize),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(case(specs, cuts))?;
    }
}

/// Hole 10: a panicking verification thread used to shift verdicts onto other receipts.
/// A slice whose check panics (or answers for the wrong number of receipts) counts as all
/// invalid; every other receipt keeps its own verdict.
#[test]
fn a_panicking_signature_check_fails_closed() {
    let network = dsi_protocol::NetworkId::default();
    let receipts: Vec<SignedReceipt> = (0..200u64)
        .map(|i| {
            SignedReceipt::sign(
                Receipt {
                    epoch: Epoch(1),
                    seeder: key(1).node_id(),
                    downloader: NodeId([0; 32]),
                    chunk: ChunkId([i as u8; 32]),
                    bytes: 1,
                    issued_at_ms: i,
                    nonce: i,
                },
                &network,
                &key(2),
            )
        })
        .collect();
    let real = |slice: &[SignedReceipt]| -> Vec<bool> {
        slice.iter().map(|r| r.verify(&network).is_ok()).collect()
    };
    assert!(
        oracle::rules::verify_in_parts(&receipts, 4, real)
            .iter()
            .all(|v| *v)
    );
    // The slice holding receipt 60 panics; the one holding 120 answers one short.
    let faulty = |slice: &[SignedReceipt]| -> Vec<bool> {
        if slice.iter().any(|r| r.receipt.nonce == 60) {
            panic!("injected");
        }
        let mut answers = real(slice);
        if slice.iter().any(|r| r.receipt.nonce == 120) {
            answers.pop();
        }
        answers
    };
    let verdicts = oracle::rules::verify_in_parts(&receipts, 4, faulty);
    assert_eq!(verdicts.len(), receipts.len());
    for (i, ok) in verdicts.iter().enumerate() {
        let faulty_slice = (50..100).contains(&i) || (100..150).contains(&i);
        assert_eq!(*ok, !faulty_slice, "receipt {i}");
    }
}
