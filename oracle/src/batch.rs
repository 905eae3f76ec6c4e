//! Published epoch batches: everything needed to recompute an epoch's root bit for bit.
//!
//! A batch file is the SCALE encoding of [`EpochBatch`]: the network, the ingest rules'
//! parameters, the [`EpochInputs`] the oracle recorded at close (parameters, chunk facts,
//! seeder facts), every accepted receipt with its signature, and the root and total the
//! oracle computed. Its content id is BLAKE3(`dsi/batch/v1` ‖ file bytes); that id goes on
//! chain with the root. [`verify_batch`] judges every receipt with the same rules ingest
//! applies ([`crate::rules`], with the batch's recorded parameters and its epoch as the only
//! open one) and recomputes the root with the `protocol` crate.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use dsi_protocol::merkle::{Keccak256, MerkleTree};
use dsi_protocol::reward::{EpochInputs, EpochRewards, aggregate};
use dsi_protocol::{ContentId, EpochSchedule, NetworkId, SignedReceipt};
use parity_scale_codec::{Decode, Encode};

use crate::rules::{Admitted, OpenEpochs, Rule, RuleParams, Tally, judge};

/// Domain tag of a batch's content id.
pub const BATCH_DOMAIN: &[u8] = b"dsi/batch/v1";

/// Current batch format version.
pub const BATCH_VERSION: u8 = 2;

/// One published epoch.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct EpochBatch {
    /// [`BATCH_VERSION`].
    pub version: u8,
    /// The network receipts were signed for.
    pub network: NetworkId,
    /// The epoch schedule (receipt windows).
    pub schedule: EpochSchedule,
    /// Allowed distance of `issued_at_ms` outside the epoch window.
    pub issued_at_skew_ms: u64,
    /// Per-downloader byte cap per epoch.
    pub downloader_cap_bytes: u64,
    /// Facts recorded at close.
    pub inputs: EpochInputs,
    /// Every accepted receipt, ordered by (seeder, chunk, downloader).
    pub receipts: Vec<SignedReceipt>,
    /// The root the oracle computed.
    pub root: [u8; 32],
    /// The total the oracle computed.
    pub total: u128,
}

/// The content id of a batch file's bytes.
pub fn batch_content_id(bytes: &[u8]) -> ContentId {
    let mut hasher = blake3::Hasher::new();
    hasher.update(BATCH_DOMAIN);
    hasher.update(bytes);
    ContentId(*hasher.finalize().as_bytes())
}

/// Writes `bytes` to `path` durably: temporary file, fsync, rename, fsync of the directory.
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Why a batch does not check out.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The file is not a batch.
    #[error("not a DSI epoch batch: {0}")]
    Malformed(String),
    /// A receipt breaks a rule.
    #[error("receipt {index} breaks rule {rule}: {detail}")]
    Rule {
        /// Its position in the batch.
        index: usize,
        /// The rule.
        rule: Rule,
        /// Detail.
        detail: String,
    },
    /// The inputs are inconsistent.
    #[error("cannot aggregate: {0}")]
    Aggregate(#[from] dsi_protocol::reward::AggregateError),
    /// The recomputed root or total differs from the recorded one.
    #[error(
        "recomputed root {computed} and total {computed_total} differ from recorded root {recorded} and total {recorded_total}"
    )]
    Mismatch {
        /// Recomputed root, hex.
        computed: String,
        /// Recorded root, hex.
        recorded: String,
        /// Recomputed total.
        computed_total: u128,
        /// Recorded total.
        recorded_total: u128,
    },
}

/// The outcome of a successful verification.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The recomputed rewards.
    pub rewards: EpochRewards,
    /// The recomputed root (equal to the recorded one).
    pub root: [u8; 32],
}

/// Decodes a batch file's bytes.
pub fn decode_batch(bytes: &[u8]) -> Result<EpochBatch, VerifyError> {
    let batch =
        EpochBatch::decode(&mut &bytes[..]).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    if batch.version != BATCH_VERSION {
        return Err(VerifyError::Malformed(format!(
            "version {} (this oracle reads {BATCH_VERSION})",
            batch.version
        )));
    }
    if batch.encoded_size() != bytes.len() {
        return Err(VerifyError::Malformed("trailing bytes".into()));
    }
    Ok(batch)
}

/// The rewards and Merkle tree of a batch's inputs and receipts.
pub fn compute(
    inputs: &EpochInputs,
    receipts: &[SignedReceipt],
) -> Result<(EpochRewards, MerkleTree), dsi_protocol::reward::AggregateError> {
    let rewards = aggregate(inputs, receipts.iter().map(|r| &r.receipt))?;
    let tree = MerkleTree::from_leaves::<Keccak256>(&rewards.leaves());
    Ok((rewards, tree))
}

impl EpochBatch {
    /// The rule parameters the batch records.
    pub fn rule_params(&self) -> RuleParams {
        RuleParams {
            network: self.network.clone(),
            schedule: self.schedule,
            issued_at_skew_ms: self.issued_at_skew_ms,
            downloader_cap_bytes: self.downloader_cap_bytes,
        }
    }
}

/// Judges every receipt with the ingest rules and recomputes the root. Succeeds only if
/// every receipt passes (each at most once) and the recomputed root and total equal the
/// recorded ones.
pub fn verify_batch(batch: &EpochBatch) -> Result<Verified, VerifyError> {
    let lengths: HashMap<_, _> = batch
        .inputs
        .chunks
        .iter()
        .map(|c| (c.chunk, c.length))
        .collect();
    let params = batch.rule_params();
    let mut tally = Tally::new(params.downloader_cap_bytes);
    let verdicts = judge(
        &batch.receipts,
        &params,
        OpenEpochs::only(batch.inputs.epoch),
        |c| lengths.get(c).copied(),
        &mut tally,
    );
    for (index, verdict) in verdicts.into_iter().enumerate() {
        match verdict {
            Ok(Admitted::New) => {}
            Ok(Admitted::AlreadyHeld) => {
                return Err(VerifyError::Rule {
                    index,
                    rule: Rule::Duplicate,
                    detail: "the same receipt twice in one batch".into(),
                });
            }
            Err(violation) => {
                return Err(VerifyError::Rule {
                    index,
                    rule: violation.rule,
                    detail: violation.detail,
                });
            }
        }
    }
    let (rewards, tree) = compute(&batch.inputs, &batch.receipts)?;
    let root = tree.root();
    if root != batch.root || rewards.total != batch.total {
        return Err(VerifyError::Mismatch {
            computed: hex::encode(root),
            recorded: hex::encode(batch.root),
            computed_total: rewards.total,
            recorded_total: batch.total,
        });
    }
    Ok(Verified { rewards, root })
}
