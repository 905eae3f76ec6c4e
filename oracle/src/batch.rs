//! Published epoch batches: everything needed to recompute an epoch's root bit for bit.
//!
//! A batch file is the SCALE encoding of [`EpochBatch`]: the network, the ingest rules'
//! parameters, the [`EpochInputs`] the oracle recorded at close (parameters, chunk facts,
//! content facts, credits, seeder facts), the sponsorships the epoch paid from, every
//! accepted receipt with its signature, and the root and total the oracle computed. Its
//! content id is BLAKE3(`dsi/batch/v1` ‖ file bytes); that id goes on chain with the root.
//! [`verify_batch`] judges every receipt with the same rules ingest applies
//! ([`crate::rules`], with the batch's recorded parameters and its epoch as the only open
//! one), recomputes the root with the `protocol` crate, and recomputes the epoch's funding
//! ([`EpochFunding`]: its draws on chain sponsorships, its debits of credit, the parts and
//! part hashes `reward_pool` checks, and the subsidy it takes from the pool), so
//! `oracle verify-epoch --chain` can compare all of it with what the chain agreed on.
//! Version 2 batches (before the sponsorships were recorded) still verify, without the
//! funding.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use dsi_protocol::merkle::{Keccak256, MerkleTree};
use dsi_protocol::reward::{
    ContentFacts, ContentPay, EpochInputs, EpochRewards, Funding, aggregate,
};
use dsi_protocol::{ContentId, Epoch, EpochSchedule, NetworkId, SignedReceipt};
use parity_scale_codec::{Decode, Encode};

use crate::chain::FundingPart;
use crate::rules::{Admitted, OpenEpochs, Rule, RuleParams, Tally, judge};

/// Domain tag of a batch's content id.
pub const BATCH_DOMAIN: &[u8] = b"dsi/batch/v1";

/// Current batch format version (3: with the sponsorships the epoch paid from; 4: with
/// the chain block the close read at).
pub const BATCH_VERSION: u8 = 4;

/// The oldest batch format version this oracle still verifies (without its funding).
pub const OLDEST_BATCH_VERSION: u8 = 2;

/// A sponsorship an epoch paid from, as its batch records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct BatchSponsorship {
    /// Its `reward_pool` id; `None` for one the oracle's ledger holds without a chain
    /// (its share is not drawn on chain: the subsidy covers it).
    pub chain_id: Option<u32>,
    /// The content it pays for.
    pub content: ContentId,
    /// What it pays per epoch.
    pub per_epoch: u128,
}

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
    /// The sponsorships of the epoch's sponsored contents that it paid from, by contract
    /// id (ledger-only ones last): each sponsored content's pay is drawn on them pro rata
    /// ([`chain_draws`]). Empty in a version 2 batch.
    pub sponsorships: Vec<BatchSponsorship>,
    /// The chain block every chain read of the close was made at (sponsorships, credits,
    /// market, multipliers, boosts, limits, balance): `verify-epoch --chain` reads there
    /// too. `None` without a chain, and in batches before version 4.
    pub boundary: Option<dsi_chain::BlockRef>,
    /// Every accepted receipt, ordered by (seeder, chunk, downloader).
    pub receipts: Vec<SignedReceipt>,
    /// The root the oracle computed.
    pub root: [u8; 32],
    /// The total the oracle computed.
    pub total: u128,
}

impl From<&dsi_api::oracle::Sponsorship> for BatchSponsorship {
    fn from(s: &dsi_api::oracle::Sponsorship) -> Self {
        Self {
            chain_id: s.chain_id,
            content: s.content,
            per_epoch: s.per_epoch,
        }
    }
}

/// The version 3 layout (no boundary block), read for old batches.
#[derive(Decode, Encode)]
struct EpochBatchV3 {
    version: u8,
    network: NetworkId,
    schedule: EpochSchedule,
    issued_at_skew_ms: u64,
    downloader_cap_bytes: u64,
    inputs: EpochInputs,
    sponsorships: Vec<BatchSponsorship>,
    receipts: Vec<SignedReceipt>,
    root: [u8; 32],
    total: u128,
}

impl From<EpochBatchV3> for EpochBatch {
    fn from(old: EpochBatchV3) -> Self {
        Self {
            version: old.version,
            network: old.network,
            schedule: old.schedule,
            issued_at_skew_ms: old.issued_at_skew_ms,
            downloader_cap_bytes: old.downloader_cap_bytes,
            inputs: old.inputs,
            sponsorships: old.sponsorships,
            boundary: None,
            receipts: old.receipts,
            root: old.root,
            total: old.total,
        }
    }
}

/// The version 2 layout (no sponsorships), read for old batches.
#[derive(Decode, Encode)]
struct EpochBatchV2 {
    version: u8,
    network: NetworkId,
    schedule: EpochSchedule,
    issued_at_skew_ms: u64,
    downloader_cap_bytes: u64,
    inputs: EpochInputs,
    receipts: Vec<SignedReceipt>,
    root: [u8; 32],
    total: u128,
}

/// What the epoch draws on each chain sponsorship: each sponsored content's pay split
/// over its sponsorships, pro rata by their amount per epoch (so no draw exceeds its
/// sponsorship's amount per epoch: the pay never exceeds their sum), in the order given.
/// The share of a sponsorship the chain does not hold (recorded in the ledger before the
/// oracle had a chain) is not drawn: the epoch's subsidy covers it. By id.
pub fn chain_draws(
    pays: &[ContentPay],
    contents: &[ContentFacts],
    sponsorships: &[BatchSponsorship],
) -> Vec<(u32, u128)> {
    // Grouped by content once, in the order given: one pass, however many contents.
    let mut by_content: HashMap<ContentId, Vec<&BatchSponsorship>> = HashMap::new();
    for s in sponsorships {
        by_content.entry(s.content).or_default().push(s);
    }
    let mut draws = Vec::new();
    for (pay, facts) in pays.iter().zip(contents) {
        if pay.paid == 0 || !matches!(facts.funding, Funding::Sponsored { .. }) {
            continue;
        }
        let Some(of_content) = by_content.get(&pay.content) else {
            continue;
        };
        let weights: Vec<u128> = of_content.iter().map(|s| s.per_epoch).collect();
        let Ok(shares) = dsi_protocol::fixed::split_pro_rata(pay.paid, &weights) else {
            continue;
        };
        for (s, share) in of_content.iter().zip(shares) {
            if let (Some(id), true) = (s.chain_id, share > 0) {
                draws.push((id, share));
            }
        }
    }
    draws.sort_unstable();
    draws
}

/// What each downloader's credit paid in the epoch (those that paid anything), by key.
pub fn credit_debits(rewards: &EpochRewards) -> Vec<([u8; 32], u128)> {
    let mut debits: Vec<([u8; 32], u128)> = rewards
        .debits
        .iter()
        .filter(|d| d.debited > 0)
        .map(|d| (d.downloader.0, d.debited))
        .collect();
    debits.sort_unstable();
    debits
}

/// How an epoch is funded on chain: its draws on sponsorships and debits of credit, split
/// into the parts `reward_pool::fund_part` applies (with the hashes the committee votes
/// on), and the subsidy it needs from the pool's free balance on top of them (what its
/// total exceeds them by). One function for the oracle that submits and the verifier
/// that checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochFunding {
    /// Draws on chain sponsorships (id, amount), by id.
    pub draws: Vec<(u32, u128)>,
    /// Debits of credit (downloader, amount), by key.
    pub debits: Vec<([u8; 32], u128)>,
    /// The parts, in order.
    pub parts: Vec<FundingPart>,
    /// Each part's hash, in order.
    pub hashes: Vec<[u8; 32]>,
    /// What the epoch takes from the pool's free balance.
    pub subsidy: u128,
}

impl EpochFunding {
    /// The funding of `epoch` with this total, draws and debits.
    pub fn new(
        epoch: Epoch,
        total: u128,
        draws: Vec<(u32, u128)>,
        debits: Vec<([u8; 32], u128)>,
    ) -> Self {
        let parts = FundingPart::split(&draws, &debits);
        let hashes = parts
            .iter()
            .enumerate()
            .map(|(i, p)| p.hash(epoch.0, u32::try_from(i).unwrap_or(u32::MAX)))
            .collect();
        let mut funding = Self {
            draws,
            debits,
            parts,
            hashes,
            subsidy: 0,
        };
        funding.subsidy = total.saturating_sub(funding.drawn().saturating_add(funding.debited()));
        funding
    }

    /// What the draws take from sponsorships.
    pub fn drawn(&self) -> u128 {
        self.draws.iter().map(|d| d.1).fold(0, u128::saturating_add)
    }

    /// What the debits take from credit.
    pub fn debited(&self) -> u128 {
        self.debits
            .iter()
            .map(|d| d.1)
            .fold(0, u128::saturating_add)
    }
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
    /// The recorded sponsorships do not match the contents they fund, or the funding does
    /// not fit on chain.
    #[error("funding: {0}")]
    Funding(String),
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
    /// The recomputed funding; `None` for a version 2 batch, which does not record the
    /// sponsorships.
    pub funding: Option<EpochFunding>,
}

/// Decodes a batch file's bytes.
pub fn decode_batch(bytes: &[u8]) -> Result<EpochBatch, VerifyError> {
    let malformed = |e: parity_scale_codec::Error| VerifyError::Malformed(e.to_string());
    let (batch, size) = match bytes.first() {
        Some(&BATCH_VERSION) => {
            let batch = EpochBatch::decode(&mut &bytes[..]).map_err(malformed)?;
            let size = batch.encoded_size();
            (batch, size)
        }
        Some(3) => {
            let old = EpochBatchV3::decode(&mut &bytes[..]).map_err(malformed)?;
            let size = old.encoded_size();
            (old.into(), size)
        }
        Some(2) => {
            let old = EpochBatchV2::decode(&mut &bytes[..]).map_err(malformed)?;
            let size = old.encoded_size();
            let v3 = EpochBatchV3 {
                version: old.version,
                network: old.network,
                schedule: old.schedule,
                issued_at_skew_ms: old.issued_at_skew_ms,
                downloader_cap_bytes: old.downloader_cap_bytes,
                inputs: old.inputs,
                sponsorships: Vec::new(),
                receipts: old.receipts,
                root: old.root,
                total: old.total,
            };
            (v3.into(), size)
        }
        Some(version) => {
            return Err(VerifyError::Malformed(format!(
                "version {version} (this oracle reads {OLDEST_BATCH_VERSION} to {BATCH_VERSION})"
            )));
        }
        None => return Err(VerifyError::Malformed("empty file".into())),
    };
    if size != bytes.len() {
        return Err(VerifyError::Malformed("trailing bytes".into()));
    }
    Ok(batch)
}

/// Checks that the recorded sponsorships are the ones the rule could pay from: in the
/// close's order (by contract id, ledger-only ones last; each id once), each of a content
/// the inputs fund by sponsorship, and per content summing to the amount per epoch the
/// inputs record. So the draws recomputed from them are the content facts' draws: a batch
/// cannot name a sponsorship of another content, or split a content's pay other than pro
/// rata.
fn check_sponsorships(batch: &EpochBatch) -> Result<(), VerifyError> {
    if batch.sponsorships.len() > crate::close::MAX_PAID_SPONSORSHIPS {
        return Err(VerifyError::Funding(format!(
            "{} sponsorships: an epoch pays from at most {}",
            batch.sponsorships.len(),
            crate::close::MAX_PAID_SPONSORSHIPS
        )));
    }
    let mut sums: HashMap<ContentId, u128> = HashMap::new();
    let mut previous: Option<u64> = None;
    for (index, s) in batch.sponsorships.iter().enumerate() {
        let key = s.chain_id.map_or(u64::MAX, u64::from);
        if let Some(before) = previous
            && (key < before || (key == before && s.chain_id.is_some()))
        {
            return Err(VerifyError::Funding(format!(
                "sponsorship {index} is out of order (by contract id, each once)"
            )));
        }
        previous = Some(key);
        if s.per_epoch == 0 {
            return Err(VerifyError::Funding(format!(
                "sponsorship {index} pays nothing per epoch"
            )));
        }
        let sum = sums.entry(s.content).or_default();
        *sum = sum.checked_add(s.per_epoch).ok_or_else(|| {
            VerifyError::Funding(format!(
                "the sponsorships of content {} overflow a u128",
                s.content
            ))
        })?;
    }
    for facts in &batch.inputs.contents {
        let recorded = sums.remove(&facts.content).unwrap_or(0);
        if let Funding::Sponsored { per_epoch } = facts.funding
            && recorded != per_epoch
        {
            return Err(VerifyError::Funding(format!(
                "content {} is sponsored with {per_epoch} per epoch, its recorded sponsorships sum to {recorded}",
                facts.content
            )));
        }
    }
    // What is left names contents the inputs do not fund by sponsorship.
    if let Some(content) = sums.keys().min() {
        return Err(VerifyError::Funding(format!(
            "a sponsorship of content {content}, which the epoch does not fund by sponsorship"
        )));
    }
    Ok(())
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
    let funding = if batch.version >= 3 {
        check_sponsorships(batch)?;
        let funding = EpochFunding::new(
            batch.inputs.epoch,
            rewards.total,
            chain_draws(
                &rewards.contents,
                &batch.inputs.contents,
                &batch.sponsorships,
            ),
            credit_debits(&rewards),
        );
        if funding.parts.len() > dsi_chain::MAX_FUNDING_PARTS {
            return Err(VerifyError::Funding(format!(
                "{} funding parts: reward_pool takes at most {}, so the epoch could never be funded",
                funding.parts.len(),
                dsi_chain::MAX_FUNDING_PARTS
            )));
        }
        Some(funding)
    } else {
        None
    };
    Ok(Verified {
        rewards,
        root,
        funding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(version: u8) -> EpochBatch {
        EpochBatch {
            version,
            network: NetworkId::new("dsi-local").expect("network"),
            schedule: EpochSchedule {
                genesis_ms: 0,
                length_ms: 60_000,
            },
            issued_at_skew_ms: 1_000,
            downloader_cap_bytes: 1 << 30,
            inputs: EpochInputs {
                epoch: Epoch(7),
                budget: 5,
                params: Default::default(),
                market: Default::default(),
                chunks: Vec::new(),
                contents: Vec::new(),
                credits: Vec::new(),
                seeders: Vec::new(),
            },
            sponsorships: Vec::new(),
            boundary: None,
            receipts: Vec::new(),
            root: [3; 32],
            total: 0,
        }
    }

    #[test]
    fn every_version_since_2_decodes_and_nothing_else_does() {
        // Version 4 names the block the close read at.
        let mut current = batch(BATCH_VERSION);
        current.sponsorships.push(BatchSponsorship {
            chain_id: Some(2),
            content: ContentId([1; 32]),
            per_epoch: 9,
        });
        current.boundary = Some(dsi_chain::BlockRef {
            number: 41,
            hash: [4; 32],
        });
        assert_eq!(decode_batch(&current.encode()).expect("version 4"), current);
        // Version 3: the same without the block.
        let v3 = EpochBatchV3 {
            version: 3,
            network: current.network.clone(),
            schedule: current.schedule,
            issued_at_skew_ms: current.issued_at_skew_ms,
            downloader_cap_bytes: current.downloader_cap_bytes,
            inputs: current.inputs.clone(),
            sponsorships: current.sponsorships.clone(),
            receipts: Vec::new(),
            root: current.root,
            total: current.total,
        };
        let decoded = decode_batch(&v3.encode()).expect("version 3");
        assert_eq!(decoded.version, 3);
        assert_eq!(decoded.boundary, None);
        assert_eq!(decoded.sponsorships, current.sponsorships);
        // Version 2: without the sponsorships.
        let v2 = EpochBatchV2 {
            version: 2,
            network: current.network.clone(),
            schedule: current.schedule,
            issued_at_skew_ms: current.issued_at_skew_ms,
            downloader_cap_bytes: current.downloader_cap_bytes,
            inputs: current.inputs.clone(),
            receipts: Vec::new(),
            root: current.root,
            total: current.total,
        };
        let decoded = decode_batch(&v2.encode()).expect("version 2");
        assert_eq!((decoded.version, decoded.boundary), (2, None));
        assert!(decoded.sponsorships.is_empty());
        // A version 4 layout labelled 3 has trailing bytes; an unknown version is named.
        let mut relabelled = current.encode();
        relabelled[0] = 3;
        assert!(decode_batch(&relabelled).is_err());
        let mut unknown = current.encode();
        unknown[0] = 9;
        let why = decode_batch(&unknown).expect_err("version 9").to_string();
        assert!(why.contains("version 9"), "{why}");
    }
}
