//! Epoch reward aggregation: from an epoch's accepted receipts and the facts the oracle
//! recorded at close (funded contents and their proven holders, downloaders' credit,
//! reputation factors, payout accounts, previous cumulative earnings) to per-seeder amounts
//! and reward leaves.
//!
//! The principle: the pool pays only for **service someone paid for** (a downloader's
//! credit) and for **storage of content the network chose to fund** (a sponsor's deposit or
//! governance's subsidy), one replica per network location. Whatever an attacker pays
//! itself, it gets back at most what it paid. The rule (all integer, deterministic,
//! independent of receipt order):
//!
//! - **Counted replicas of a funded content** ([`counted_replicas`]): its proven holders
//!   grouped by [`Location`] (a /24 IPv4 or /48 IPv6 network); in each network the holder
//!   proven longest (smallest `since`, then smallest node id) stands for it; networks are
//!   taken longest-proven first, at most the content's target `replicas`. Holders without a
//!   payout account (not in [`EpochInputs::seeders`]) are skipped.
//! - **Sponsored storage.** A sponsored content's `per_epoch` amount is split equally among
//!   its counted replicas (fewer replicas, more each: rarity that pays for itself). With no
//!   counted replica nothing is drawn.
//! - **Subsidized storage.** The epoch's `budget` (governance's subsidy) is split pro rata
//!   over every (subsidized content, counted replica) pair with weight `length ×
//!   rarity(target − counted) ⊗ boost`. With no pair nothing is paid.
//! - **Paid bandwidth.** A downloader's receipts to known seeders cost `bytes ×
//!   price_per_byte`; the debit is that cost, at most the downloader's available credit
//!   (when credit runs out, its seeders share what is left pro rata by bytes). Each
//!   (seeder, chunk) portion `x` of a debit pays the seeder `x − fee(x)` plus a **bonus**
//!   `min(fee(x), (x − fee(x)) × (rarity(holders) ⊗ boost − 1))` from the pool. The bonus
//!   never exceeds the fee, so a seeder paid by its own downloader gets back at most what
//!   the downloader spent. Receipts of downloaders without credit pay nothing (they remain
//!   evidence and demand statistics).
//! - **Factors.** A seeder's storage and bandwidth amounts are scaled by its reputation
//!   factor, and by `unvetted_share` until it has passed `vetting_audits` audits. What a
//!   factor withholds is not drawn from the sponsor and stays in the pool; a debit is
//!   charged in full (the downloader was served).
//! - A seeder's leaf carries its `amount` for the epoch (leaves are per epoch; the pool pays
//!   each leaf once and never more from an epoch than its total). Seeders that earned
//!   nothing get no leaf. The oracle still tracks `previous cumulative + amount`.
//!
//! **Bound:** `total ≤ sponsorship drawn + subsidy paid + Σ debits`, because every bonus is
//! at most the fee of its own portion ([`EpochRewards::funding_drawn`]). Demand (receipts
//! per chunk) no longer multiplies pay: it pays through the debits themselves, which a
//! downloader cannot inflate without paying for them. `RewardParams::demand` and
//! `bandwidth_share` stay in the encoding the `multipliers` contract shares and are not used
//! by this rule.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use parity_scale_codec::{Decode, Encode};

use crate::fixed::{LinearCurve, Ppm, SplitError, split_pro_rata};
use crate::merkle::RewardLeaf;
use crate::{ChunkId, ContentId, Epoch, NodeId, PayoutAccount, Receipt};

/// The reward parameters governance sets in the `multipliers` contract. Encodes exactly
/// like that contract's `Params`, so the oracle decodes the contract's answer directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RewardParams {
    /// Rarity curve over replicas missing below `target_replication`.
    pub rarity: LinearCurve,
    /// Replicas a chunk should have.
    pub target_replication: u32,
    /// Demand curve over receipts per chunk. Not used by the pay rule (demand pays through
    /// downloaders' debits); kept in the encoding the `multipliers` contract shares.
    pub demand: LinearCurve,
    /// Not used by the pay rule (bandwidth is paid by credit, storage by funding); kept in
    /// the encoding the `multipliers` contract shares.
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

/// Paid bandwidth and vetting: set by governance in the `multipliers` contract, inside the
/// [`MarketBounds`] fixed at its instantiation; the oracle's `[market]` config without a
/// chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct MarketParams {
    /// Native units a downloader's credit pays per byte it is served.
    pub price_per_byte: u64,
    /// Part of each debit the pool keeps (the protocol fee). The rarity bonus never
    /// exceeds it.
    pub fee: Ppm,
    /// Audits a node key must pass before it earns its full share.
    pub vetting_audits: u32,
    /// The share a key earns before it is vetted.
    pub unvetted_share: Ppm,
}

impl Default for MarketParams {
    /// 1,000 units per byte (about 1.07 tokens per GiB at 12 decimals), a 10 % fee, full
    /// share after 9 passed audits (three epochs of three-chunk challenges), half before.
    fn default() -> Self {
        Self {
            price_per_byte: 1_000,
            fee: Ppm(100_000),
            vetting_audits: 9,
            unvetted_share: Ppm(500_000),
        }
    }
}

/// The hard limits of [`MarketParams`] that the `multipliers` contract is instantiated with
/// and never changes: governance moves the market only inside them. One rule for the
/// contract (which refuses a market outside them), `oracle governance propose-market`
/// (which refuses before proposing) and `oracle verify-epoch --chain` (which refuses a
/// batch priced outside them).
///
/// Paying yourself never profits whatever the market: a paid byte's bonus is at most its
/// fee ([`bonus`]), so at best a seeder paid by its own downloader gets back what it paid.
/// The bounds keep the rest of the market sane: the fee (the pool's part of each debit)
/// never 0 nor all of it, a byte never free, vetting never off and never endless.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MarketBounds {
    /// Lowest fee.
    pub fee_min: Ppm,
    /// Highest fee.
    pub fee_max: Ppm,
    /// Lowest price per byte.
    pub price_min: u64,
    /// Highest price per byte.
    pub price_max: u64,
    /// Fewest audits before a key's full share.
    pub vetting_audits_min: u32,
    /// Most audits before a key's full share.
    pub vetting_audits_max: u32,
    /// Highest share before vetting.
    pub unvetted_share_max: Ppm,
}

impl Default for MarketBounds {
    /// What `oracle deploy` instantiates `multipliers` with: a fee of 1 % to 50 %, 1 to 10^9
    /// units per byte, 3 to 1,000 audits to vet a key, at most half its share before.
    fn default() -> Self {
        Self {
            fee_min: Ppm(10_000),
            fee_max: Ppm(500_000),
            price_min: 1,
            price_max: 1_000_000_000,
            vetting_audits_min: 3,
            vetting_audits_max: 1_000,
            unvetted_share_max: Ppm(500_000),
        }
    }
}

impl MarketBounds {
    /// Whether the bounds themselves hold together: `0 < fee_min ≤ fee_max < 1×`,
    /// `1 ≤ price_min ≤ price_max`, `1 ≤ vetting_audits_min ≤ vetting_audits_max`,
    /// `unvetted_share_max < 1×` (a new key always earns less until it is vetted).
    pub fn consistent(&self) -> bool {
        0 < self.fee_min.0
            && self.fee_min <= self.fee_max
            && self.fee_max < Ppm::ONE
            && 1 <= self.price_min
            && self.price_min <= self.price_max
            && 1 <= self.vetting_audits_min
            && self.vetting_audits_min <= self.vetting_audits_max
            && self.unvetted_share_max < Ppm::ONE
    }

    /// Why `market` is outside the bounds (`None`: inside), naming the first field out.
    pub fn refuses(&self, market: &MarketParams) -> Option<&'static str> {
        if !(self.fee_min..=self.fee_max).contains(&market.fee) {
            Some("fee")
        } else if !(self.price_min..=self.price_max).contains(&market.price_per_byte) {
            Some("price_per_byte")
        } else if !(self.vetting_audits_min..=self.vetting_audits_max)
            .contains(&market.vetting_audits)
        {
            Some("vetting_audits")
        } else if market.unvetted_share > self.unvetted_share_max {
            Some("unvetted_share")
        } else {
            None
        }
    }

    /// Whether `market` is inside the bounds.
    pub fn allows(&self, market: &MarketParams) -> bool {
        self.refuses(market).is_none()
    }
}

/// A network location: the /24 of an IPv4 address or the /48 of an IPv6 address. Replicas
/// of a funded content count once per location.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Location(pub [u8; 8]);

impl Location {
    /// The location of an address: `[4, a, b, c, 0…]` for IPv4 `a.b.c.d`, `[6, first six
    /// bytes, 0]` for IPv6 (an IPv4-mapped IPv6 address is its IPv4 address).
    pub fn of(ip: core::net::IpAddr) -> Self {
        let mut key = [0u8; 8];
        let v4 = match ip {
            core::net::IpAddr::V4(v4) => Some(v4),
            core::net::IpAddr::V6(v6) => v6.to_ipv4_mapped(),
        };
        match (v4, ip) {
            (Some(v4), _) => {
                key[0] = 4;
                key[1..4].copy_from_slice(&v4.octets()[..3]);
            }
            (None, core::net::IpAddr::V6(v6)) => {
                key[0] = 6;
                key[1..7].copy_from_slice(&v6.octets()[..6]);
            }
            (None, core::net::IpAddr::V4(_)) => {}
        }
        Self(key)
    }
}

impl core::fmt::Display for Location {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let k = &self.0;
        match k[0] {
            4 => write!(f, "{}.{}.{}.0/24", k[1], k[2], k[3]),
            6 => write!(
                f,
                "{:x}:{:x}:{:x}::/48",
                u16::from_be_bytes([k[1], k[2]]),
                u16::from_be_bytes([k[3], k[4]]),
                u16::from_be_bytes([k[5], k[6]])
            ),
            _ => write!(f, "unknown"),
        }
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
    /// Network locations with a proven holder of content that contains it.
    pub holders: u32,
    /// Governance boost of its content (the largest, if several contents contain it).
    pub boost: Ppm,
}

/// How a content is funded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Funding {
    /// A sponsor's deposit pays this much per epoch, split among the counted replicas.
    Sponsored {
        /// Native units per epoch.
        per_epoch: u128,
    },
    /// On governance's public-goods list: shares the epoch's subsidy by rarity and boost.
    Subsidized {
        /// Governance's weight for it (1× = `Ppm::ONE`).
        boost: Ppm,
    },
}

/// One proven holder of a funded content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Holder {
    /// The node.
    pub node: NodeId,
    /// The network its announcement came from (the connection's source address).
    pub location: Location,
    /// The first epoch of its current run of proven epochs holding the content.
    pub since: Epoch,
}

/// A funded content at epoch close.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ContentFacts {
    /// The content.
    pub content: ContentId,
    /// Its length in bytes (the sum of its chunks).
    pub length: u64,
    /// Target replication: at most this many replicas count.
    pub replicas: u32,
    /// Who pays for it.
    pub funding: Funding,
    /// Its holders that passed this epoch's audits, sorted by node id, no duplicates.
    pub holders: Vec<Holder>,
}

/// A downloader's credit at epoch close.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CreditFacts {
    /// The downloader's node key.
    pub downloader: NodeId,
    /// Credit not yet spent (funded minus debited by earlier epochs).
    pub available: u128,
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
    /// Audits it has passed, this epoch's included (vetting).
    pub audits_passed: u64,
}

/// Everything besides the receipts that decides an epoch's rewards.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct EpochInputs {
    /// The epoch.
    pub epoch: Epoch,
    /// Governance's subsidy for the epoch: split over the subsidized contents' replicas.
    pub budget: u128,
    /// Multiplier parameters in force (the rarity curve and target replication).
    pub params: RewardParams,
    /// Price, fee and vetting in force.
    pub market: MarketParams,
    /// Every chunk a receipt refers to, sorted by id, no duplicates.
    pub chunks: Vec<ChunkFacts>,
    /// Every funded content, sorted by id, no duplicates.
    pub contents: Vec<ContentFacts>,
    /// Every downloader with credit, sorted by node id, no duplicates.
    pub credits: Vec<CreditFacts>,
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
    /// Bytes served to downloaders with credit.
    pub paid_bytes: u64,
    /// Paid for bandwidth (downloaders' debits less the fee, plus the bonus), after factors.
    pub bandwidth_amount: u128,
    /// The part of `bandwidth_amount` that is rarity bonus from the pool (before factors).
    pub bonus_amount: u128,
    /// Paid for storage (sponsorships and subsidy), after factors.
    pub storage_amount: u128,
    /// This epoch's amount (bandwidth + storage).
    pub amount: u128,
    /// Cumulative earnings including this epoch.
    pub cumulative: u128,
}

/// What one downloader's credit paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Debit {
    /// The downloader.
    pub downloader: NodeId,
    /// Bytes it was served by known seeders.
    pub bytes: u64,
    /// What those bytes cost at the price.
    pub cost: u128,
    /// What its credit paid (the cost, at most the credit available).
    pub debited: u128,
}

/// What one funded content paid.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ContentPay {
    /// The content.
    pub content: ContentId,
    /// Its counted replicas, in the order chosen.
    pub counted: Vec<NodeId>,
    /// Paid to them (after factors): drawn from the sponsorship, or from the subsidy.
    pub paid: u128,
}

/// An epoch's result.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct EpochRewards {
    /// The epoch.
    pub epoch: Epoch,
    /// One entry per seeder in the inputs, in the same order.
    pub seeders: Vec<SeederReward>,
    /// One entry per downloader with receipts to known seeders, by node id.
    pub debits: Vec<Debit>,
    /// One entry per funded content, in input order.
    pub contents: Vec<ContentPay>,
    /// Fees kept by the pool (before bonuses).
    pub fees: u128,
    /// Bonuses paid by the pool (before factors).
    pub bonuses: u128,
    /// Sum of the amounts (what the epoch reserves on chain).
    pub total: u128,
}

impl EpochRewards {
    /// What the epoch draws on: sponsorship drawn + subsidy paid + credit debited. The
    /// total never exceeds it.
    pub fn funding_drawn(&self) -> u128 {
        let contents = self
            .contents
            .iter()
            .fold(0u128, |acc, c| acc.saturating_add(c.paid));
        self.debits
            .iter()
            .fold(contents, |acc, d| acc.saturating_add(d.debited))
    }

    /// What `downloader`'s credit paid this epoch.
    pub fn debited(&self, downloader: &NodeId) -> u128 {
        self.debits
            .binary_search_by(|d| d.downloader.cmp(downloader))
            .map_or(0, |i| self.debits[i].debited)
    }

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

/// Why inputs cannot be aggregated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AggregateError {
    /// The chunk facts are not sorted by id or repeat one.
    #[error("chunk facts are not strictly sorted by chunk id")]
    UnsortedChunks,
    /// The content facts (or one content's holders) are not sorted or repeat one.
    #[error("content facts or their holders are not strictly sorted")]
    UnsortedContents,
    /// The credit facts are not sorted by node id or repeat one.
    #[error("credit facts are not strictly sorted by downloader")]
    UnsortedCredits,
    /// The seeder facts are not sorted by node id or repeat one.
    #[error("seeder facts are not strictly sorted by node id")]
    UnsortedSeeders,
    /// A receipt refers to a chunk without facts.
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

fn add(a: u128, b: u128) -> Result<u128, AggregateError> {
    a.checked_add(b).ok_or(AggregateError::Overflow)
}

/// The replicas of `content` that count, in the order chosen: one holder per location (the
/// one proven longest, then the smallest node id), locations longest-proven first, at most
/// `content.replicas`, only holders `can_earn` accepts.
pub fn counted_replicas(content: &ContentFacts, can_earn: impl Fn(&NodeId) -> bool) -> Vec<NodeId> {
    let mut best: BTreeMap<Location, (Epoch, NodeId)> = BTreeMap::new();
    for holder in content.holders.iter().filter(|h| can_earn(&h.node)) {
        let candidate = (holder.since, holder.node);
        best.entry(holder.location)
            .and_modify(|current| {
                if candidate < *current {
                    *current = candidate;
                }
            })
            .or_insert(candidate);
    }
    let mut chosen: Vec<(Epoch, NodeId)> = best.into_values().collect();
    chosen.sort_unstable();
    chosen
        .into_iter()
        .take(usize::try_from(content.replicas).unwrap_or(usize::MAX))
        .map(|(_, node)| node)
        .collect()
}

/// The bonus on a seeder's part `base` of a paid portion whose fee was `fee`:
/// `min(fee, base × (weight − 1))`.
pub fn bonus(base: u128, fee: u128, weight: Ppm) -> u128 {
    let extra = weight.saturating_sub(Ppm::ONE).apply(base);
    extra.min(fee)
}

/// Computes an epoch's rewards. See the module docs for the rule.
pub fn aggregate<'a>(
    inputs: &EpochInputs,
    receipts: impl IntoIterator<Item = &'a Receipt>,
) -> Result<EpochRewards, AggregateError> {
    if !strictly_sorted(&inputs.chunks, |c| c.chunk) {
        return Err(AggregateError::UnsortedChunks);
    }
    if !strictly_sorted(&inputs.contents, |c| c.content)
        || inputs
            .contents
            .iter()
            .any(|c| !strictly_sorted(&c.holders, |h| h.node))
    {
        return Err(AggregateError::UnsortedContents);
    }
    if !strictly_sorted(&inputs.credits, |c| c.downloader) {
        return Err(AggregateError::UnsortedCredits);
    }
    if !strictly_sorted(&inputs.seeders, |s| s.seeder) {
        return Err(AggregateError::UnsortedSeeders);
    }
    let seeder_index = |node: &NodeId| inputs.seeders.binary_search_by(|s| s.seeder.cmp(node)).ok();
    let chunk_index = |chunk: &ChunkId| {
        inputs
            .chunks
            .binary_search_by(|c| c.chunk.cmp(chunk))
            .map_err(|_| AggregateError::MissingChunk { chunk: *chunk })
    };
    let n = inputs.seeders.len();
    let mut bandwidth = alloc::vec![0u128; n];
    let mut bonuses_of = alloc::vec![0u128; n];
    let mut storage = alloc::vec![0u128; n];
    let mut receipts_of = alloc::vec![0u64; n];
    let mut bytes_of = alloc::vec![0u64; n];
    let mut paid_bytes_of = alloc::vec![0u64; n];

    // Receipts: bytes per (downloader, seeder, chunk), counts per seeder.
    let mut served: BTreeMap<(NodeId, usize, usize), u64> = BTreeMap::new();
    for receipt in receipts {
        if receipt.epoch != inputs.epoch {
            return Err(AggregateError::WrongEpoch {
                expected: inputs.epoch,
                found: receipt.epoch,
            });
        }
        let chunk = chunk_index(&receipt.chunk)?;
        let Some(seeder) = seeder_index(&receipt.seeder) else {
            continue;
        };
        receipts_of[seeder] = receipts_of[seeder].saturating_add(1);
        bytes_of[seeder] = bytes_of[seeder].saturating_add(u64::from(receipt.bytes));
        let entry = served
            .entry((receipt.downloader, seeder, chunk))
            .or_insert(0);
        *entry = entry.saturating_add(u64::from(receipt.bytes));
    }

    // Paid bandwidth, downloader by downloader.
    let fee_rate = inputs.market.fee.clamp_to(Ppm::ZERO, Ppm::ONE);
    let price = u128::from(inputs.market.price_per_byte);
    let mut debits = Vec::new();
    let (mut fees, mut bonuses) = (0u128, 0u128);
    let served: Vec<((NodeId, usize, usize), u64)> = served.into_iter().collect();
    for group in served.chunk_by(|a, b| a.0.0 == b.0.0) {
        let downloader = group[0].0.0;
        let portions: Vec<(usize, usize, u64)> = group
            .iter()
            .map(|&((_, seeder, chunk), bytes)| (seeder, chunk, bytes))
            .collect();
        let bytes: u64 = portions.iter().fold(0u64, |acc, p| acc.saturating_add(p.2));
        let cost = u128::from(bytes)
            .checked_mul(price)
            .ok_or(AggregateError::Overflow)?;
        let available = inputs
            .credits
            .binary_search_by(|c| c.downloader.cmp(&downloader))
            .map_or(0, |i| inputs.credits[i].available);
        let debited = cost.min(available);
        debits.push(Debit {
            downloader,
            bytes,
            cost,
            debited,
        });
        if debited == 0 {
            continue;
        }
        let weights: Vec<u128> = portions.iter().map(|p| u128::from(p.2)).collect();
        let shares = split_pro_rata(debited, &weights)?;
        for (&(seeder, chunk, bytes), share) in portions.iter().zip(shares) {
            let fee = fee_rate.apply(share);
            let base = share.saturating_sub(fee);
            let facts = &inputs.chunks[chunk];
            let weight = inputs
                .params
                .rarity(facts.holders)
                .saturating_mul(facts.boost);
            let extra = bonus(base, fee, weight);
            fees = add(fees, fee)?;
            bonuses = add(bonuses, extra)?;
            bandwidth[seeder] = add(bandwidth[seeder], add(base, extra)?)?;
            bonuses_of[seeder] = add(bonuses_of[seeder], extra)?;
            paid_bytes_of[seeder] = paid_bytes_of[seeder].saturating_add(bytes);
        }
    }

    // Storage: counted replicas of each funded content.
    let factor_of = |index: usize| {
        let facts = &inputs.seeders[index];
        let vetting = if facts.audits_passed < u64::from(inputs.market.vetting_audits) {
            inputs.market.unvetted_share.clamp_to(Ppm::ZERO, Ppm::ONE)
        } else {
            Ppm::ONE
        };
        facts
            .reputation
            .clamp_to(Ppm::ZERO, Ppm::ONE)
            .saturating_mul(vetting)
    };
    let mut contents = Vec::with_capacity(inputs.contents.len());
    let mut subsidized: Vec<(usize, usize, u128)> = Vec::new();
    for (content_index, content) in inputs.contents.iter().enumerate() {
        let counted = counted_replicas(content, |node| seeder_index(node).is_some());
        let indices: Vec<usize> = counted.iter().filter_map(seeder_index).collect();
        let mut paid = 0u128;
        match content.funding {
            Funding::Sponsored { per_epoch } => {
                let shares = split_pro_rata(per_epoch, &alloc::vec![1u128; indices.len()])?;
                for (&seeder, share) in indices.iter().zip(shares) {
                    let share = factor_of(seeder).apply(share);
                    storage[seeder] = add(storage[seeder], share)?;
                    paid = add(paid, share)?;
                }
            }
            Funding::Subsidized { boost } => {
                let missing = content.replicas.saturating_sub(counted.len() as u32);
                let weight = inputs
                    .params
                    .rarity
                    .eval(u64::from(missing))
                    .saturating_mul(boost);
                let points = u128::from(content.length)
                    .checked_mul(u128::from(weight.0))
                    .ok_or(AggregateError::Overflow)?;
                for &seeder in &indices {
                    subsidized.push((content_index, seeder, points));
                }
            }
        }
        contents.push(ContentPay {
            content: content.content,
            counted,
            paid,
        });
    }
    let weights: Vec<u128> = subsidized.iter().map(|s| s.2).collect();
    let shares = split_pro_rata(inputs.budget, &weights)?;
    for (&(content_index, seeder, _), share) in subsidized.iter().zip(shares) {
        let share = factor_of(seeder).apply(share);
        storage[seeder] = add(storage[seeder], share)?;
        contents[content_index].paid = add(contents[content_index].paid, share)?;
    }

    // Per seeder.
    let mut results = Vec::with_capacity(n);
    let mut total = 0u128;
    for (index, facts) in inputs.seeders.iter().enumerate() {
        let bandwidth_amount = factor_of(index).apply(bandwidth[index]);
        let storage_amount = storage[index];
        let amount = add(bandwidth_amount, storage_amount)?;
        total = add(total, amount)?;
        results.push(SeederReward {
            seeder: facts.seeder,
            payout: facts.payout,
            receipts: receipts_of[index],
            bytes_served: bytes_of[index],
            paid_bytes: paid_bytes_of[index],
            bandwidth_amount,
            bonus_amount: bonuses_of[index],
            storage_amount,
            amount,
            cumulative: add(facts.previous_cumulative, amount)?,
        });
    }
    Ok(EpochRewards {
        epoch: inputs.epoch,
        seeders: results,
        debits,
        contents,
        fees,
        bonuses,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn market_bounds_hold_the_default_market_and_name_what_is_out() {
        let bounds = MarketBounds::default();
        assert!(bounds.consistent());
        let market = MarketParams::default();
        assert!(bounds.allows(&market));
        let cases = [
            (
                MarketParams {
                    fee: Ppm(0),
                    ..market
                },
                "fee",
            ),
            (
                MarketParams {
                    fee: Ppm(500_001),
                    ..market
                },
                "fee",
            ),
            (
                MarketParams {
                    price_per_byte: 0,
                    ..market
                },
                "price_per_byte",
            ),
            (
                MarketParams {
                    vetting_audits: 2,
                    ..market
                },
                "vetting_audits",
            ),
            (
                MarketParams {
                    vetting_audits: u32::MAX,
                    ..market
                },
                "vetting_audits",
            ),
            (
                MarketParams {
                    unvetted_share: Ppm::ONE,
                    ..market
                },
                "unvetted_share",
            ),
        ];
        for (bad, field) in cases {
            assert_eq!(bounds.refuses(&bad), Some(field), "{bad:?}");
        }
        // Bounds that would allow a zero fee, all of each debit as fee, free bytes, no
        // vetting or a full share before it never hold together.
        for bad in [
            MarketBounds {
                fee_min: Ppm(0),
                ..bounds
            },
            MarketBounds {
                fee_max: Ppm::ONE,
                ..bounds
            },
            MarketBounds {
                fee_min: Ppm(600_000),
                ..bounds
            },
            MarketBounds {
                price_min: 0,
                ..bounds
            },
            MarketBounds {
                vetting_audits_min: 0,
                ..bounds
            },
            MarketBounds {
                vetting_audits_max: 2,
                ..bounds
            },
            MarketBounds {
                unvetted_share_max: Ppm::ONE,
                ..bounds
            },
        ] {
            assert!(!bad.consistent(), "{bad:?}");
        }
    }
    use alloc::string::ToString;
    use alloc::vec;

    const PRICE: u64 = 10;

    fn node(n: u8) -> NodeId {
        NodeId([n; 32])
    }

    fn receipt(seeder: u8, downloader: u8, chunk: u8, bytes: u32, nonce: u64) -> Receipt {
        Receipt {
            epoch: Epoch(1),
            seeder: node(seeder),
            downloader: node(downloader),
            chunk: ChunkId([chunk; 32]),
            bytes,
            issued_at_ms: 0,
            nonce,
        }
    }

    /// Rarity +0.5× per missing replica below 3 (up to 3×); fixed here, not the deploy
    /// defaults, so the expectations below stay put.
    fn params() -> RewardParams {
        RewardParams {
            rarity: LinearCurve {
                base: Ppm::ONE,
                slope: Ppm(500_000),
                min: Ppm::ONE,
                max: Ppm(3_000_000),
            },
            target_replication: 3,
            demand: LinearCurve::FLAT,
            bandwidth_share: Ppm(700_000),
        }
    }

    fn seeder(n: u8, audits_passed: u64) -> SeederFacts {
        SeederFacts {
            seeder: node(n),
            payout: PayoutAccount([n; 20]),
            previous_cumulative: 5,
            reputation: Ppm::ONE,
            audits_passed,
        }
    }

    fn holder(n: u8, network: u8, since: u64) -> Holder {
        Holder {
            node: node(n),
            location: Location::of(core::net::IpAddr::V4(core::net::Ipv4Addr::new(
                127, network, 0, n,
            ))),
            since: Epoch(since),
        }
    }

    fn inputs() -> EpochInputs {
        EpochInputs {
            epoch: Epoch(1),
            budget: 0,
            params: params(),
            market: MarketParams {
                price_per_byte: PRICE,
                fee: Ppm(100_000),
                vetting_audits: 0,
                unvetted_share: Ppm(500_000),
            },
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
            contents: vec![],
            credits: vec![CreditFacts {
                downloader: node(200),
                available: 1_000_000,
            }],
            seeders: vec![seeder(10, 0), seeder(11, 0), seeder(12, 0)],
        }
    }

    #[test]
    fn paid_bytes_pay_the_debit_less_the_fee_plus_a_bonus_never_above_the_fee() {
        let inputs = inputs();
        // 100 bytes of a common chunk (no bonus) and 100 of a rare one (2× rarity).
        let receipts = [receipt(10, 200, 1, 100, 0), receipt(11, 200, 2, 100, 1)];
        let out = aggregate(&inputs, &receipts).expect("aggregates");
        assert_eq!(out.debited(&node(200)), 2_000);
        assert_eq!(out.fees, 200);
        let (a, b) = (&out.seeders[0], &out.seeders[1]);
        assert_eq!(a.bandwidth_amount, 900, "1 000 less the 10 % fee");
        assert_eq!(a.bonus_amount, 0);
        // Rarity 2× would be a 900 bonus; it is capped at the 100 fee.
        assert_eq!(b.bonus_amount, 100);
        assert_eq!(b.bandwidth_amount, 1_000);
        assert_eq!(out.total, 1_900);
        assert!(out.total <= out.funding_drawn());
        assert_eq!(a.cumulative, 5 + 900);
        assert_eq!(
            out.leaves().len(),
            2,
            "the seeder that earned nothing has no leaf"
        );
    }

    #[test]
    fn receipts_without_credit_pay_nothing_and_short_credit_is_shared_pro_rata() {
        let mut inputs = inputs();
        let out = aggregate(&inputs, &[receipt(10, 99, 1, 100, 0)]).expect("aggregates");
        assert_eq!(out.total, 0, "no credit, no pay");
        assert_eq!(out.seeders[0].receipts, 1, "still evidence");
        assert_eq!(out.debits[0].cost, 1_000);
        assert_eq!(out.debits[0].debited, 0);
        inputs.credits[0].available = 1_001;
        let receipts = [receipt(10, 200, 1, 100, 0), receipt(12, 200, 1, 100, 1)];
        let out = aggregate(&inputs, &receipts).expect("aggregates");
        assert_eq!(out.debited(&node(200)), 1_001, "what is left, not more");
        // 501 and 500 (remainder to the lower index), less 10 % each.
        assert_eq!(out.seeders[0].bandwidth_amount, 501 - 50);
        assert_eq!(out.seeders[2].bandwidth_amount, 500 - 50);
    }

    #[test]
    fn sponsored_content_pays_one_replica_per_network_longest_proven_first() {
        let mut inputs = inputs();
        inputs.credits.clear();
        inputs.seeders = (10..16).map(|n| seeder(n, 100)).collect();
        inputs.contents = vec![ContentFacts {
            content: ContentId([7; 32]),
            length: 200,
            replicas: 2,
            funding: Funding::Sponsored { per_epoch: 1_000 },
            holders: vec![
                // 10, 11 and 12 share network 1: only 12 (proven since epoch 0) counts.
                holder(10, 1, 1),
                holder(11, 1, 1),
                holder(12, 1, 0),
                // 13 on network 2 since epoch 1, 14 on network 3 since epoch 1: the tie
                // goes to the smaller node id; the target is 2.
                holder(13, 2, 1),
                holder(14, 3, 1),
            ],
        }];
        let out = aggregate(&inputs, &[]).expect("aggregates");
        assert_eq!(out.contents[0].counted, vec![node(12), node(13)]);
        let amounts: Vec<u128> = out.seeders.iter().map(|s| s.storage_amount).collect();
        assert_eq!(amounts, vec![0, 0, 500, 500, 0, 0]);
        assert_eq!(out.contents[0].paid, 1_000);
        // One replica left: it takes the whole amount (rarity that pays for itself).
        inputs.contents[0].holders = vec![holder(15, 9, 1)];
        let out = aggregate(&inputs, &[]).expect("aggregates");
        assert_eq!(out.seeders[5].storage_amount, 1_000);
        // Nobody proven: nothing is drawn.
        inputs.contents[0].holders.clear();
        let out = aggregate(&inputs, &[]).expect("aggregates");
        assert_eq!((out.total, out.funding_drawn()), (0, 0));
    }

    #[test]
    fn the_subsidy_weights_rare_contents_and_factors_withhold() {
        let mut inputs = inputs();
        inputs.budget = 1_200;
        inputs.credits.clear();
        inputs.contents = vec![
            ContentFacts {
                content: ContentId([1; 32]),
                length: 100,
                replicas: 3,
                funding: Funding::Subsidized { boost: Ppm::ONE },
                holders: vec![holder(10, 1, 0), holder(11, 2, 0), holder(12, 3, 0)],
            },
            ContentFacts {
                content: ContentId([2; 32]),
                length: 100,
                replicas: 3,
                funding: Funding::Subsidized { boost: Ppm::ONE },
                holders: vec![holder(12, 3, 0)],
            },
        ];
        let out = aggregate(&inputs, &[]).expect("aggregates");
        // Weights: 100 × 1× for each of the three replicas of content 1, 100 × 2× for
        // content 2's one replica (two missing): 1 200 in fifths.
        let amounts: Vec<u128> = out.seeders.iter().map(|s| s.storage_amount).collect();
        assert_eq!(amounts, vec![240, 240, 720]);
        assert_eq!(out.total, 1_200);
        // Unvetted seeders earn half; reputation scales; the rest stays in the pool.
        inputs.market.vetting_audits = 1;
        inputs.seeders[2].audits_passed = 1;
        inputs.seeders[1].reputation = Ppm(500_000);
        let out = aggregate(&inputs, &[]).expect("aggregates");
        let amounts: Vec<u128> = out.seeders.iter().map(|s| s.storage_amount).collect();
        assert_eq!(amounts, vec![120, 60, 720]);
        assert_eq!(out.funding_drawn(), 900);
    }

    #[test]
    fn order_does_not_matter_and_a_self_paid_ring_gets_back_at_most_its_spend() {
        let mut inputs = inputs();
        inputs.credits = (200..=210)
            .map(|d| CreditFacts {
                downloader: node(d),
                available: 700 + u128::from(d),
            })
            .collect();
        let receipts: Vec<Receipt> = (0..60u64)
            .map(|i| {
                receipt(
                    10 + (i % 3) as u8,
                    200 + (i % 11) as u8,
                    1 + (i % 2) as u8,
                    100,
                    i,
                )
            })
            .collect();
        let forward = aggregate(&inputs, &receipts).expect("aggregates");
        let backward = aggregate(&inputs, receipts.iter().rev()).expect("aggregates");
        assert_eq!(forward, backward);
        let spent: u128 = forward.debits.iter().map(|d| d.debited).sum();
        assert!(forward.total <= spent, "{} > {spent}", forward.total);
        assert!(forward.bonuses <= forward.fees);
    }

    #[test]
    fn bad_inputs_are_named() {
        let inputs = inputs();
        assert_eq!(
            aggregate(&inputs, &[receipt(10, 200, 7, 100, 0)]),
            Err(AggregateError::MissingChunk {
                chunk: ChunkId([7; 32])
            })
        );
        let mut wrong = receipt(10, 200, 1, 100, 0);
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
        let mut unsorted = inputs;
        unsorted.contents = vec![ContentFacts {
            content: ContentId([1; 32]),
            length: 1,
            replicas: 1,
            funding: Funding::Sponsored { per_epoch: 1 },
            holders: vec![holder(11, 1, 0), holder(10, 1, 0)],
        }];
        assert_eq!(
            aggregate(&unsorted, &[]),
            Err(AggregateError::UnsortedContents)
        );
    }

    #[test]
    fn locations_are_the_network_prefix() {
        use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        let a = Location::of(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)));
        let b = Location::of(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 250)));
        let c = Location::of(IpAddr::V4(Ipv4Addr::new(10, 1, 3, 3)));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "10.1.2.0/24");
        let mapped = Location::of(IpAddr::V6(Ipv4Addr::new(10, 1, 2, 9).to_ipv6_mapped()));
        assert_eq!(mapped, a);
        let v6: Ipv6Addr = "2001:db8:7:1::1".parse().expect("address");
        let v6b: Ipv6Addr = "2001:db8:7:ffff::2".parse().expect("address");
        assert_eq!(Location::of(IpAddr::V6(v6)), Location::of(IpAddr::V6(v6b)));
        assert_eq!(Location::of(IpAddr::V6(v6)).to_string(), "2001:db8:7::/48");
    }
}
