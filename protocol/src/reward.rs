//! Epoch reward aggregation: from an epoch's accepted receipts and the facts the oracle
//! recorded at close (holders per chunk, audited holdings, reputation factors, payout
//! accounts, previous cumulative earnings) to per-seeder amounts and reward leaves.
//!
//! The rule (all integer, deterministic, independent of receipt order):
//!
//! - **Multiplier of a chunk** `m(c) = rarity(holders(c)) ⊗ demand(requests(c)) ⊗ boost(c)`
//!   (ppm products, saturating), where `requests(c)` is the number of receipts for `c` in
//!   the epoch and `rarity` uses the replicas missing below the target replication.
//! - **Bandwidth points** of a seeder `= Σ over its receipts of bytes × m(chunk)`, then ×
//!   its reputation factor.
//! - **Storage points** of a seeder `= Σ over the chunks it holds that passed the audits of
//!   length × rarity(chunk)`, then × its reputation factor.
//! - The epoch budget splits into `bandwidth_share × budget` (rounded down) and the rest;
//!   each part is split pro rata over the points ([`crate::fixed::split_pro_rata`], every
//!   unit handed out). A part with no points at all is not paid (it stays in the pool).
//! - A seeder's leaf carries its `amount` for the epoch (leaves are per epoch; the pool pays
//!   each leaf once and never more from an epoch than its total). Seeders that earned
//!   nothing get no leaf. The oracle still tracks `previous cumulative + amount` for its
//!   records; the chain never sees it.
//!
//! Receipts for seeders without an entry in [`EpochInputs::seeders`] (the oracle knows no
//! payout account for them) earn nothing but still count as demand.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use parity_scale_codec::{Decode, Encode};

use crate::fixed::{LinearCurve, Ppm, SplitError, mul_div, split_pro_rata};
use crate::merkle::RewardLeaf;
use crate::{ChunkId, Epoch, NodeId, PayoutAccount, Receipt};

/// The reward parameters governance sets in the `multipliers` contract. Encodes exactly
/// like that contract's `Params`, so the oracle decodes the contract's answer directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RewardParams {
    /// Rarity curve over replicas missing below `target_replication`.
    pub rarity: LinearCurve,
    /// Replicas a chunk should have.
    pub target_replication: u32,
    /// Demand curve over receipts per chunk in the epoch.
    pub demand: LinearCurve,
    /// Part of the budget paid for bandwidth; the rest pays storage.
    pub bandwidth_share: Ppm,
}

impl Default for RewardParams {
    /// The one source of the starting parameters: `oracle deploy` (`dsi_chain::deploy`)
    /// instantiates the `multipliers` contract with these, and an oracle without a chain
    /// uses them. Rarity +0.25× per missing
    /// replica below 3 (up to 2×), demand +0.01× per request (up to 1.5×), 70 % of the
    /// budget for bandwidth.
    fn default() -> Self {
        Self {
            rarity: LinearCurve {
                base: Ppm::ONE,
                slope: Ppm(250_000),
                min: Ppm::ONE,
                max: Ppm(2_000_000),
            },
            target_replication: 3,
            demand: LinearCurve {
                base: Ppm::ONE,
                slope: Ppm(10_000),
                min: Ppm::ONE,
                max: Ppm(1_500_000),
            },
            bandwidth_share: Ppm(700_000),
        }
    }
}

impl RewardParams {
    /// Rarity multiplier of a chunk held by `holders` nodes.
    pub fn rarity(&self, holders: u32) -> Ppm {
        self.rarity
            .eval(u64::from(self.target_replication.saturating_sub(holders)))
    }

    /// Demand multiplier of a chunk with `requests` receipts in the epoch.
    pub fn demand(&self, requests: u64) -> Ppm {
        self.demand.eval(requests)
    }
}

/// What the oracle knew about one chunk at epoch close.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ChunkFacts {
    /// The chunk.
    pub chunk: ChunkId,
    /// Its length in bytes.
    pub length: u32,
    /// Nodes announcing content that contains it.
    pub holders: u32,
    /// Governance boost of its content (the largest, if several contents contain it).
    pub boost: Ppm,
}

/// What the oracle knew about one seeder at epoch close.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SeederFacts {
    /// The seeder's node key.
    pub seeder: NodeId,
    /// Where its rewards go.
    pub payout: PayoutAccount,
    /// Its cumulative earnings before this epoch.
    pub previous_cumulative: u128,
    /// Its reputation factor for this epoch.
    pub reputation: Ppm,
    /// Chunks it holds that count for storage (empty unless it passed this epoch's
    /// audits). Sorted, no duplicates.
    pub stored: Vec<ChunkId>,
}

/// Everything besides the receipts that decides an epoch's rewards.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct EpochInputs {
    /// The epoch.
    pub epoch: Epoch,
    /// Native units to distribute.
    pub budget: u128,
    /// Multiplier parameters in force.
    pub params: RewardParams,
    /// Every chunk a receipt or a holding refers to, sorted by id, no duplicates.
    pub chunks: Vec<ChunkFacts>,
    /// Every seeder that can earn, sorted by node id, no duplicates.
    pub seeders: Vec<SeederFacts>,
}

/// One seeder's result.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SeederReward {
    /// The seeder.
    pub seeder: NodeId,
    /// Its payout account.
    pub payout: PayoutAccount,
    /// Receipts counted.
    pub receipts: u64,
    /// Bytes served (sum of the receipts' bytes).
    pub bytes_served: u64,
    /// Bandwidth points after the reputation factor (bytes × ppm).
    pub bandwidth_points: u128,
    /// Storage points after the reputation factor (bytes × ppm).
    pub storage_points: u128,
    /// Paid for bandwidth.
    pub bandwidth_amount: u128,
    /// Paid for storage.
    pub storage_amount: u128,
    /// This epoch's amount (bandwidth + storage).
    pub amount: u128,
    /// Cumulative earnings including this epoch.
    pub cumulative: u128,
}

/// An epoch's result.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct EpochRewards {
    /// The epoch.
    pub epoch: Epoch,
    /// One entry per seeder in the inputs, in the same order.
    pub seeders: Vec<SeederReward>,
    /// Sum of the amounts (what the epoch reserves on chain).
    pub total: u128,
}

/// Why inputs cannot be aggregated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AggregateError {
    /// The chunk facts are not sorted by id or repeat one.
    #[error("chunk facts are not strictly sorted by chunk id")]
    UnsortedChunks,
    /// The seeder facts are not sorted by node id or repeat one.
    #[error("seeder facts are not strictly sorted by node id")]
    UnsortedSeeders,
    /// A receipt or holding refers to a chunk without facts.
    #[error("chunk {chunk} has no facts")]
    MissingChunk {
        /// The chunk.
        chunk: ChunkId,
    },
    /// A receipt belongs to another epoch.
    #[error("receipt for epoch {found} in epoch {expected}")]
    WrongEpoch {
        /// The epoch aggregated.
        expected: Epoch,
        /// The receipt's epoch.
        found: Epoch,
    },
    /// Points or amounts overflowed.
    #[error("arithmetic overflow")]
    Overflow,
}

impl From<SplitError> for AggregateError {
    fn from(_: SplitError) -> Self {
        Self::Overflow
    }
}

fn strictly_sorted<T, K: Ord>(items: &[T], key: impl Fn(&T) -> K) -> bool {
    items.windows(2).all(|w| key(&w[0]) < key(&w[1]))
}

/// Computes an epoch's rewards. See the module docs for the rule.
pub fn aggregate<'a>(
    inputs: &EpochInputs,
    receipts: impl IntoIterator<Item = &'a Receipt>,
) -> Result<EpochRewards, AggregateError> {
    if !strictly_sorted(&inputs.chunks, |c| c.chunk) {
        return Err(AggregateError::UnsortedChunks);
    }
    if !strictly_sorted(&inputs.seeders, |s| s.seeder) {
        return Err(AggregateError::UnsortedSeeders);
    }
    let chunk_index = |chunk: &ChunkId| {
        inputs
            .chunks
            .binary_search_by(|c| c.chunk.cmp(chunk))
            .map_err(|_| AggregateError::MissingChunk { chunk: *chunk })
    };

    // Pass 1: requests per chunk, bytes per (seeder, chunk).
    let mut requests = alloc::vec![0u64; inputs.chunks.len()];
    let mut served: BTreeMap<(NodeId, usize), (u64, u64)> = BTreeMap::new();
    for receipt in receipts {
        if receipt.epoch != inputs.epoch {
            return Err(AggregateError::WrongEpoch {
                expected: inputs.epoch,
                found: receipt.epoch,
            });
        }
        let index = chunk_index(&receipt.chunk)?;
        requests[index] = requests[index].saturating_add(1);
        let entry = served.entry((receipt.seeder, index)).or_insert((0, 0));
        entry.0 = entry.0.saturating_add(u64::from(receipt.bytes));
        entry.1 = entry.1.saturating_add(1);
    }
    let rarity: Vec<Ppm> = inputs
        .chunks
        .iter()
        .map(|c| inputs.params.rarity(c.holders))
        .collect();
    let multiplier: Vec<Ppm> = inputs
        .chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rarity[i]
                .saturating_mul(inputs.params.demand(requests[i]))
                .saturating_mul(c.boost)
        })
        .collect();

    // Pass 2: points per seeder.
    let mut results = Vec::with_capacity(inputs.seeders.len());
    let mut bandwidth_weights = Vec::with_capacity(inputs.seeders.len());
    let mut storage_weights = Vec::with_capacity(inputs.seeders.len());
    for facts in &inputs.seeders {
        let mut bandwidth = 0u128;
        let mut bytes_served = 0u64;
        let mut receipts = 0u64;
        for (&(_, index), &(bytes, count)) in
            served.range((facts.seeder, 0)..=(facts.seeder, usize::MAX))
        {
            bytes_served = bytes_served.saturating_add(bytes);
            receipts = receipts.saturating_add(count);
            let points = u128::from(bytes)
                .checked_mul(u128::from(multiplier[index].0))
                .ok_or(AggregateError::Overflow)?;
            bandwidth = bandwidth
                .checked_add(points)
                .ok_or(AggregateError::Overflow)?;
        }
        if !strictly_sorted(&facts.stored, |c| *c) {
            return Err(AggregateError::UnsortedChunks);
        }
        let mut storage = 0u128;
        for chunk in &facts.stored {
            let index = chunk_index(chunk)?;
            let points = u128::from(inputs.chunks[index].length) * u128::from(rarity[index].0);
            storage = storage
                .checked_add(points)
                .ok_or(AggregateError::Overflow)?;
        }
        let factor = u128::from(facts.reputation.0);
        let scale = u128::from(crate::fixed::PPM_SCALE);
        let bandwidth = mul_div(bandwidth, factor, scale).ok_or(AggregateError::Overflow)?;
        let storage = mul_div(storage, factor, scale).ok_or(AggregateError::Overflow)?;
        bandwidth_weights.push(bandwidth);
        storage_weights.push(storage);
        results.push(SeederReward {
            seeder: facts.seeder,
            payout: facts.payout,
            receipts,
            bytes_served,
            bandwidth_points: bandwidth,
            storage_points: storage,
            bandwidth_amount: 0,
            storage_amount: 0,
            amount: 0,
            cumulative: facts.previous_cumulative,
        });
    }

    // Pass 3: split the budget.
    let bandwidth_budget = inputs
        .params
        .bandwidth_share
        .clamp_to(Ppm::ZERO, Ppm::ONE)
        .apply(inputs.budget);
    let storage_budget = inputs.budget.saturating_sub(bandwidth_budget);
    let bandwidth_shares = split_pro_rata(bandwidth_budget, &bandwidth_weights)?;
    let storage_shares = split_pro_rata(storage_budget, &storage_weights)?;
    let mut total = 0u128;
    for (i, result) in results.iter_mut().enumerate() {
        result.bandwidth_amount = bandwidth_shares[i];
        result.storage_amount = storage_shares[i];
        result.amount = bandwidth_shares[i]
            .checked_add(storage_shares[i])
            .ok_or(AggregateError::Overflow)?;
        result.cumulative = result
            .cumulative
            .checked_add(result.amount)
            .ok_or(AggregateError::Overflow)?;
        total = total
            .checked_add(result.amount)
            .ok_or(AggregateError::Overflow)?;
    }
    Ok(EpochRewards {
        epoch: inputs.epoch,
        seeders: results,
        total,
    })
}

impl EpochRewards {
    /// The reward leaves: one per seeder that earned something this epoch, in seeder order.
    pub fn leaves(&self) -> Vec<RewardLeaf> {
        self.seeders
            .iter()
            .filter(|s| s.amount > 0)
            .map(|s| RewardLeaf {
                epoch: self.epoch,
                seeder: s.seeder,
                payout: s.payout,
                amount: s.amount,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn receipt(seeder: u8, chunk: u8, bytes: u32, nonce: u64) -> Receipt {
        Receipt {
            epoch: Epoch(1),
            seeder: NodeId([seeder; 32]),
            downloader: NodeId([200; 32]),
            chunk: ChunkId([chunk; 32]),
            bytes,
            issued_at_ms: 0,
            nonce,
        }
    }

    /// Rarity +0.5× per missing replica below 3 (up to 3×), demand +0.01× per request (up
    /// to 2×), 70 % bandwidth: fixed here, not the deploy defaults, so the expectations
    /// below stay put.
    fn params() -> RewardParams {
        RewardParams {
            rarity: LinearCurve {
                base: Ppm::ONE,
                slope: Ppm(500_000),
                min: Ppm::ONE,
                max: Ppm(3_000_000),
            },
            target_replication: 3,
            demand: LinearCurve {
                base: Ppm::ONE,
                slope: Ppm(10_000),
                min: Ppm::ONE,
                max: Ppm(2_000_000),
            },
            bandwidth_share: Ppm(700_000),
        }
    }

    fn inputs(budget: u128) -> EpochInputs {
        EpochInputs {
            epoch: Epoch(1),
            budget,
            params: params(),
            chunks: vec![
                ChunkFacts {
                    chunk: ChunkId([1; 32]),
                    length: 100,
                    holders: 3,
                    boost: Ppm::ONE,
                },
                ChunkFacts {
                    chunk: ChunkId([2; 32]),
                    length: 100,
                    holders: 1,
                    boost: Ppm::ONE,
                },
            ],
            seeders: vec![
                SeederFacts {
                    seeder: NodeId([10; 32]),
                    payout: PayoutAccount([10; 20]),
                    previous_cumulative: 5,
                    reputation: Ppm::ONE,
                    stored: vec![ChunkId([1; 32])],
                },
                SeederFacts {
                    seeder: NodeId([11; 32]),
                    payout: PayoutAccount([11; 20]),
                    previous_cumulative: 0,
                    reputation: Ppm::ONE,
                    stored: vec![ChunkId([1; 32]), ChunkId([2; 32])],
                },
            ],
        }
    }

    #[test]
    fn rare_chunks_pay_more_and_everything_is_handed_out() {
        let inputs = inputs(1_000_000);
        // Both serve 100 bytes once: seeder 10 a common chunk, 11 a rare one (2 missing).
        let receipts = [receipt(10, 1, 100, 0), receipt(11, 2, 100, 0)];
        let out = aggregate(&inputs, &receipts).expect("aggregates");
        let (a, b) = (&out.seeders[0], &out.seeders[1]);
        // rarity 1× vs 2×, demand 1.01× each.
        assert_eq!(a.bandwidth_points, 100 * 1_010_000);
        assert_eq!(b.bandwidth_points, 100 * 2_020_000);
        assert_eq!(a.bandwidth_amount + b.bandwidth_amount, 700_000);
        assert_eq!(b.bandwidth_amount, 2 * a.bandwidth_amount + 1, "1/3 vs 2/3");
        // Storage: 100×1 vs 100×1 + 100×2.
        assert_eq!(a.storage_amount + b.storage_amount, 300_000);
        assert_eq!(a.storage_amount, 75_000);
        assert_eq!(out.total, 1_000_000);
        assert_eq!(a.cumulative, 5 + a.amount);
        assert_eq!(out.leaves().len(), 2);
    }

    #[test]
    fn order_does_not_matter_and_reputation_scales() {
        let mut inputs = inputs(999_999);
        let receipts: Vec<Receipt> = (0..50)
            .map(|i| receipt(10 + (i % 2) as u8, 1 + (i % 3 == 0) as u8, 100, i))
            .collect();
        let forward = aggregate(&inputs, &receipts).expect("aggregates");
        let backward = aggregate(&inputs, receipts.iter().rev()).expect("aggregates");
        assert_eq!(forward, backward);
        inputs.seeders[1].reputation = Ppm::ZERO;
        let out = aggregate(&inputs, &receipts).expect("aggregates");
        assert_eq!(out.seeders[1].amount, 0);
        assert_eq!(out.seeders[0].amount, 999_999);
        assert_eq!(out.leaves().len(), 1, "no leaf without earnings");
    }

    #[test]
    fn unknown_seeders_earn_nothing_and_bad_inputs_are_named() {
        let inputs = inputs(1_000);
        let out = aggregate(&inputs, &[receipt(99, 1, 100, 0)]).expect("aggregates");
        assert_eq!(out.seeders[0].bandwidth_amount, 0);
        assert_eq!(out.total, 300, "only storage is paid");
        assert_eq!(
            aggregate(&inputs, &[receipt(10, 7, 100, 0)]),
            Err(AggregateError::MissingChunk {
                chunk: ChunkId([7; 32])
            })
        );
        let mut wrong = receipt(10, 1, 100, 0);
        wrong.epoch = Epoch(2);
        assert!(matches!(
            aggregate(&inputs, &[wrong]),
            Err(AggregateError::WrongEpoch { .. })
        ));
        let mut unsorted = inputs.clone();
        unsorted.seeders.reverse();
        assert_eq!(
            aggregate(&unsorted, &[]),
            Err(AggregateError::UnsortedSeeders)
        );
    }
}
