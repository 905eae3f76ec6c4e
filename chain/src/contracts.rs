//! DSI's four contracts as typed Rust calls: what the oracle submits and reads at close,
//! governance, funding, claims, and what deploy, devnet and the tests check.
//!
//! Every write is dry-run first with the same input: the contracts refuse a second
//! identical vote (`AlreadyVoted`) or an epoch that is already final (`EpochTooOld`), so
//! the dry-run tells whether the write is still needed, and a restarted oracle never
//! submits twice. Contract errors come back as the name of the contract's `Error` variant
//! ([`ChainError::Refused`]); the runtime's errors as `Pallet::Error`
//! ([`ChainError::Dispatch`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dsi_protocol::fixed::{LinearCurve, Ppm};
use dsi_protocol::reward::{MarketBounds, MarketParams, RewardParams};
use dsi_protocol::{ContentId, NodeId, PayoutAccount};
use scale_decode::DecodeAsType;
use serde::{Deserialize, Serialize};

use crate::accounts::Signer;
use crate::bundle::{Arg, Bundle, Event, arg};
use crate::client::{DryRun, Node};
use crate::{ChainError, Result as ChainResult};

/// Most scores in one `reputation.submit` call (the contract's `MAX_BATCH`): an epoch's
/// scores go in as many parts as they need.
pub const REPUTATION_PART: usize = 256;

/// Most entries in one funding part (`reward_pool::MAX_PART_ENTRIES`).
pub const FUNDING_PART: usize = 128;
/// Most funding parts of one epoch (`reward_pool::MAX_FUNDING_PARTS`).
pub const MAX_FUNDING_PARTS: usize = 256;
/// Most sponsorships or credits in one `reward_pool` read (`reward_pool::MAX_READ`).
pub const READ_PART: usize = 256;
/// Most content ids in one `multipliers.boosts` read (the contract's `MAX_BOOSTS`).
pub const BOOSTS_PART: usize = 256;

/// A contract of the deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Contract {
    /// reward_pool.
    RewardPool,
    /// reputation.
    Reputation,
    /// multipliers.
    Multipliers,
    /// governance.
    Governance,
}

impl Contract {
    /// The four, in deploy order.
    pub const ALL: [Contract; 4] = [
        Self::Governance,
        Self::RewardPool,
        Self::Reputation,
        Self::Multipliers,
    ];

    /// The contract's crate name.
    pub fn name(self) -> &'static str {
        match self {
            Self::RewardPool => "reward_pool",
            Self::Reputation => "reputation",
            Self::Multipliers => "multipliers",
            Self::Governance => "governance",
        }
    }
}

/// What deploy writes (`deployment.json`) and every chain user reads.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Deployment {
    /// Node RPC URL (ws://).
    pub url: String,
    /// `reward_pool` address.
    pub reward_pool: String,
    /// `reputation` address.
    pub reputation: String,
    /// `multipliers` address.
    pub multipliers: String,
    /// `governance` address.
    pub governance: String,
    /// Contract bundles by name (absolute paths).
    #[serde(default)]
    pub artifacts: BTreeMap<String, PathBuf>,
    /// Everything else deploy recorded (council, committee, thresholds, windows...).
    #[serde(flatten)]
    pub settings: BTreeMap<String, serde_json::Value>,
}

impl Deployment {
    /// Reads a deployment file.
    pub fn load(path: &Path) -> ChainResult<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ChainError::Deployment(format!("cannot read {}: {e}", path.display())))?;
        serde_json::from_str(&text)
            .map_err(|e| ChainError::Deployment(format!("{}: {e}", path.display())))
    }

    /// A contract's address.
    pub fn address(&self, contract: Contract) -> ChainResult<[u8; 20]> {
        let text = match contract {
            Contract::RewardPool => &self.reward_pool,
            Contract::Reputation => &self.reputation,
            Contract::Multipliers => &self.multipliers,
            Contract::Governance => &self.governance,
        };
        hex::decode(text.trim_start_matches("0x"))
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                ChainError::Deployment(format!(
                    "{} address {text} is not 20 bytes",
                    contract.name()
                ))
            })
    }
}

/// An H160 as the contracts' `Address` (one field of 20 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, DecodeAsType, scale_encode::EncodeAsType)]
pub struct Address(pub [u8; 20]);

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

/// `reward_pool::EpochStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, DecodeAsType)]
pub enum EpochStatus {
    /// Final.
    Final,
    /// Vetoed.
    Vetoed,
}

/// `reward_pool::EpochRecord`: a final epoch as the pool records it.
#[derive(Clone, Debug, PartialEq, Eq, DecodeAsType)]
pub struct EpochRecord {
    /// Its root.
    pub root: [u8; 32],
    /// Its total.
    pub total: u128,
    /// Content id of its published batch.
    pub batch: [u8; 32],
    /// Final or vetoed.
    pub status: EpochStatus,
    /// Block in which it became final.
    pub final_block: u32,
    /// First block claims are accepted in.
    pub claimable_from: u32,
    /// The epoch it follows on the good chain (`None` for the first).
    pub base: Option<u64>,
    /// What its leaves paid so far.
    pub paid: u128,
    /// What it may take from the pool's free balance.
    pub subsidy: u128,
    /// What its applied funding parts drew from sponsorships and credits.
    pub drawn: u128,
    /// Funding parts agreed.
    pub parts: u32,
    /// Funding parts applied (funded when all are).
    pub applied: u32,
    /// Its finalization's sequence number.
    pub seq: u64,
}

/// An epoch as `reward_pool` records it (the oracle's view).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainEpoch {
    /// Its root.
    pub root: [u8; 32],
    /// Its total.
    pub total: u128,
    /// `Final` or `Vetoed`.
    pub status: String,
    /// First block claims are accepted in.
    pub claimable_from: u32,
    /// The epoch it follows on the good chain (`None` for the first).
    pub base: Option<u64>,
    /// Funding parts applied so far, of how many (claimable and a base once all are).
    pub parts_applied: (u32, u32),
}

impl ChainEpoch {
    /// All its funding parts are applied: its total is reserved.
    pub fn funded(&self) -> bool {
        self.parts_applied.0 >= self.parts_applied.1
    }
}

/// The `id` field of the first `name` event `contract` emitted in an extrinsic: the id the
/// chain gave what this extrinsic created (a dry-run's is another caller's when two race).
fn event_id(events: &[Event], contract: &str, name: &str) -> Option<u32> {
    events
        .iter()
        .filter(|e| e.contract == contract && e.name == name)
        .find_map(|e| {
            let (_, id) = e.fields.iter().find(|(field, _)| field == "id")?;
            u32::try_from(id.as_u128()?).ok()
        })
}

/// `reward_pool::SponsorshipView`: a sponsor's deposit for a content.
#[derive(Clone, Debug, PartialEq, Eq, DecodeAsType)]
pub struct ChainSponsorship {
    /// Its id (0, 1, ...).
    pub id: u32,
    /// Who deposited (gets the remainder back).
    pub funder: Address,
    /// The content.
    pub content: [u8; 32],
    /// Most an epoch draws (native units).
    pub per_epoch: u128,
    /// First epoch that may draw.
    pub first_epoch: u64,
    /// Last epoch that may draw.
    pub last_epoch: u64,
    /// Target replication.
    pub replicas: u32,
    /// Not drawn by any final, not vetoed epoch.
    pub unspent: u128,
}

/// `reward_pool::CreditView`: a downloader's credit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, DecodeAsType)]
pub struct ChainCredit {
    /// Everything deposited for it.
    pub deposited: u128,
    /// Not debited by any final, not vetoed epoch.
    pub unspent: u128,
}

/// One funding part of an epoch ([`Chain::fund_part`]): draws on sponsorships `(id,
/// amount)` and debits of downloaders' credit `(key, amount)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FundingPart {
    /// `(sponsorship id, amount)`, by id.
    pub draws: Vec<(u32, u128)>,
    /// `(downloader key, amount)`, by key.
    pub debits: Vec<([u8; 32], u128)>,
}

impl FundingPart {
    /// The hash the committee agrees on for part `index` of `epoch`: what
    /// `reward_pool::fund_part` checks (keccak-256 of the SCALE encoding of
    /// `(epoch, index, draws, debits)`).
    pub fn hash(&self, epoch: u64, index: u32) -> [u8; 32] {
        use parity_scale_codec::Encode;
        <dsi_protocol::merkle::Keccak256 as dsi_protocol::MerkleHasher>::hash(
            &(epoch, index, &self.draws, &self.debits).encode(),
        )
    }

    /// Splits an epoch's draws and debits into parts of at most [`FUNDING_PART`] entries
    /// (draws first); none when there is nothing to draw.
    pub fn split(draws: &[(u32, u128)], debits: &[([u8; 32], u128)]) -> Vec<FundingPart> {
        let mut parts: Vec<FundingPart> = Vec::new();
        let mut current = FundingPart::default();
        let full = |p: &FundingPart| p.draws.len() + p.debits.len() >= FUNDING_PART;
        for draw in draws {
            if full(&current) {
                parts.push(std::mem::take(&mut current));
            }
            current.draws.push(*draw);
        }
        for debit in debits {
            if full(&current) {
                parts.push(std::mem::take(&mut current));
            }
            current.debits.push(*debit);
        }
        if !current.draws.is_empty() || !current.debits.is_empty() {
            parts.push(current);
        }
        parts
    }
}

/// `reputation::Score`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, DecodeAsType)]
struct Score {
    ppm: u32,
    epoch: u64,
}

/// `multipliers::Curve`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, DecodeAsType, scale_encode::EncodeAsType)]
pub struct Curve {
    /// Value at x = 0.
    pub base: u32,
    /// Increase per unit of x.
    pub slope: u32,
    /// Lower clamp.
    pub min: u32,
    /// Upper clamp.
    pub max: u32,
}

impl From<LinearCurve> for Curve {
    fn from(c: LinearCurve) -> Self {
        Self {
            base: c.base.0,
            slope: c.slope.0,
            min: c.min.0,
            max: c.max.0,
        }
    }
}

impl From<Curve> for LinearCurve {
    fn from(c: Curve) -> Self {
        Self {
            base: Ppm(c.base),
            slope: Ppm(c.slope),
            min: Ppm(c.min),
            max: Ppm(c.max),
        }
    }
}

/// `multipliers::Params`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, DecodeAsType, scale_encode::EncodeAsType)]
pub struct Params {
    /// Rarity curve.
    pub rarity: Curve,
    /// Target replication.
    pub target_replication: u32,
    /// Demand curve.
    pub demand: Curve,
    /// Bandwidth share (ppm).
    pub bandwidth_share: u32,
}

impl From<RewardParams> for Params {
    fn from(p: RewardParams) -> Self {
        Self {
            rarity: p.rarity.into(),
            target_replication: p.target_replication,
            demand: p.demand.into(),
            bandwidth_share: p.bandwidth_share.0,
        }
    }
}

impl From<Params> for RewardParams {
    fn from(p: Params) -> Self {
        Self {
            rarity: p.rarity.into(),
            target_replication: p.target_replication,
            demand: p.demand.into(),
            bandwidth_share: Ppm(p.bandwidth_share),
        }
    }
}

/// `multipliers::Market`: price per byte, fee and vetting (encodes like
/// [`MarketParams`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, DecodeAsType, scale_encode::EncodeAsType)]
pub struct Market {
    /// Native units per byte.
    pub price_per_byte: u64,
    /// Protocol fee (ppm).
    pub fee: u32,
    /// Audits before a key's full share.
    pub vetting_audits: u32,
    /// Share before vetting (ppm).
    pub unvetted_share: u32,
}

impl From<MarketParams> for Market {
    fn from(m: MarketParams) -> Self {
        Self {
            price_per_byte: m.price_per_byte,
            fee: m.fee.0,
            vetting_audits: m.vetting_audits,
            unvetted_share: m.unvetted_share.0,
        }
    }
}

impl From<Market> for MarketParams {
    fn from(m: Market) -> Self {
        Self {
            price_per_byte: m.price_per_byte,
            fee: Ppm(m.fee),
            vetting_audits: m.vetting_audits,
            unvetted_share: Ppm(m.unvetted_share),
        }
    }
}

/// `multipliers::Bounds`: limits fixed at instantiation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, DecodeAsType, scale_encode::EncodeAsType)]
pub struct Bounds {
    /// Lowest multiplier (ppm).
    pub multiplier_min: u32,
    /// Highest multiplier (ppm).
    pub multiplier_max: u32,
    /// Steepest slope (ppm).
    pub max_slope: u32,
    /// Highest target replication.
    pub max_target_replication: u32,
    /// Lowest bandwidth share (ppm).
    pub bandwidth_share_min: u32,
    /// Highest bandwidth share (ppm).
    pub bandwidth_share_max: u32,
    /// Highest boost (ppm).
    pub max_boost: u32,
    /// Lowest fee (ppm).
    pub fee_min: u32,
    /// Highest fee (ppm).
    pub fee_max: u32,
    /// Lowest price per byte.
    pub price_min: u64,
    /// Highest price per byte.
    pub price_max: u64,
    /// Fewest audits before a key's full share.
    pub vetting_audits_min: u32,
    /// Most audits before a key's full share.
    pub vetting_audits_max: u32,
    /// Highest share before vetting (ppm).
    pub unvetted_share_max: u32,
}

impl Bounds {
    /// The market's part, as the protocol states it.
    pub fn market(&self) -> MarketBounds {
        MarketBounds {
            fee_min: Ppm(self.fee_min),
            fee_max: Ppm(self.fee_max),
            price_min: self.price_min,
            price_max: self.price_max,
            vetting_audits_min: self.vetting_audits_min,
            vetting_audits_max: self.vetting_audits_max,
            unvetted_share_max: Ppm(self.unvetted_share_max),
        }
    }
}

impl Default for Bounds {
    /// The bounds deploy instantiates `multipliers` with (the market's:
    /// `MarketBounds::default()`).
    fn default() -> Self {
        let market = MarketBounds::default();
        Self {
            multiplier_min: 500_000,
            multiplier_max: 5_000_000,
            max_slope: 1_000_000,
            max_target_replication: 20,
            bandwidth_share_min: 100_000,
            bandwidth_share_max: 900_000,
            max_boost: 3_000_000,
            fee_min: market.fee_min.0,
            fee_max: market.fee_max.0,
            price_min: market.price_min,
            price_max: market.price_max,
            vetting_audits_min: market.vetting_audits_min,
            vetting_audits_max: market.vetting_audits_max,
            unvetted_share_max: market.unvetted_share_max.0,
        }
    }
}

/// `reward_pool::Claim`.
#[derive(Clone, Debug, scale_encode::EncodeAsType)]
struct ClaimArg {
    epoch: u64,
    seeder: [u8; 32],
    payout: Address,
    amount: u128,
    proof: Vec<[u8; 32]>,
}

/// `governance::Action`.
#[derive(Clone, Debug, scale_encode::EncodeAsType)]
enum Action {
    Call {
        callee: Address,
        selector: [u8; 4],
        input: Vec<u8>,
    },
}

/// `governance::Action` as read back (any variant).
#[derive(Clone, Debug, DecodeAsType)]
#[allow(dead_code)]
enum ActionRead {
    Call {
        callee: Address,
        selector: [u8; 4],
        input: Vec<u8>,
    },
    SetCouncil {
        members: Vec<Address>,
        threshold: u32,
    },
    SetTimelock {
        blocks: u32,
    },
}

/// `governance::Proposal`.
#[derive(Clone, Debug, DecodeAsType)]
struct ProposalRecord {
    #[allow(dead_code)]
    action: ActionRead,
    proposer: Address,
    approvals: Vec<Address>,
    approved_at: Option<u32>,
    executed: bool,
}

/// One leaf to pay with [`Chain::claim_many`]: epoch, seeder, payout, amount, proof.
pub type LeafClaim = (u64, NodeId, PayoutAccount, u128, Vec<[u8; 32]>);

/// Outcome of a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// Sent now.
    Sent,
    /// Nothing to send: the chain already has it.
    AlreadyThere,
}

/// A governance proposal as the contract records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// Its id.
    pub id: u32,
    /// Who proposed it (0x H160).
    pub proposer: String,
    /// How many members approved it.
    pub approvals: usize,
    /// Block in which it reached the threshold (the timelock starts there).
    pub approved_at: Option<u32>,
    /// Whether it was executed.
    pub executed: bool,
}

/// The client of a deployment, signing as one account, or only reading
/// ([`Chain::reader`]).
#[derive(Clone, Debug)]
pub struct Chain {
    /// The deployment.
    pub deployment: Deployment,
    node: Node,
    signer: Option<Signer>,
    /// The block reads are made at ([`Chain::at`]); the best block when `None`.
    at: Option<crate::client::BlockRef>,
    bundles: std::sync::Arc<BTreeMap<Contract, Bundle>>,
}

impl Chain {
    /// A client for `deployment` (at `url` if given, else the deployment's), signing as
    /// `signer`. Reads the four bundles.
    pub fn new(deployment: Deployment, url: Option<String>, signer: Signer) -> ChainResult<Self> {
        Self::with(deployment, url, Some(signer))
    }

    /// A client that only reads (no key: anyone can check what the chain holds). Its reads
    /// are dry-runs from [`crate::READER_ORIGIN`]; every write is refused with
    /// [`ChainError::Key`] before anything is sent.
    pub fn reader(deployment: Deployment, url: Option<String>) -> ChainResult<Self> {
        Self::with(deployment, url, None)
    }

    fn with(
        deployment: Deployment,
        url: Option<String>,
        signer: Option<Signer>,
    ) -> ChainResult<Self> {
        let url = url
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| deployment.url.clone());
        let mut bundles = BTreeMap::new();
        for contract in Contract::ALL {
            let path = deployment.artifacts.get(contract.name()).ok_or_else(|| {
                ChainError::Deployment(format!(
                    "no bundle for {} in the deployment (redeploy with scripts/deploy)",
                    contract.name()
                ))
            })?;
            bundles.insert(contract, Bundle::load(path)?);
        }
        Ok(Self {
            deployment,
            node: Node::new(&url),
            signer,
            at: None,
            bundles: std::sync::Arc::new(bundles),
        })
    }

    /// The node's RPC URL.
    pub fn url(&self) -> &str {
        self.node.url()
    }

    /// The node connection.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The signing account (none for a [`Chain::reader`]).
    pub fn signer(&self) -> Option<&Signer> {
        self.signer.as_ref()
    }

    /// The signing account, or why this client cannot send `what`.
    fn writer(&self, what: &str) -> ChainResult<&Signer> {
        self.signer.as_ref().ok_or_else(|| {
            ChainError::Key(format!(
                "{what} needs a signing key; this client only reads (configure a key file)"
            ))
        })
    }

    /// The block this client reads at ([`Chain::at`]); `None`: the newest state.
    pub fn read_block(&self) -> Option<crate::client::BlockRef> {
        self.at
    }

    /// The same client reading the state of `block` (writes still go to the newest
    /// state). Reads at a block pinned by [`Node::block_at`] give every reader the same
    /// answers, whatever happened on chain since.
    pub fn at(&self, block: crate::client::BlockRef) -> Self {
        Self {
            at: Some(block),
            ..self.clone()
        }
    }

    /// The same client signing as another account (a council member, say).
    pub fn signing_as(&self, signer: Signer) -> Self {
        Self {
            signer: Some(signer),
            ..self.clone()
        }
    }

    /// A contract's bundle.
    pub fn bundle(&self, contract: Contract) -> ChainResult<&Bundle> {
        self.bundles
            .get(&contract)
            .ok_or_else(|| ChainError::Deployment(format!("no bundle for {}", contract.name())))
    }

    /// The selector of `message` in `contract`'s ABI.
    pub fn selector(&self, contract: Contract, message: &str) -> ChainResult<[u8; 4]> {
        self.bundle(contract)?.selector(message)
    }

    /// Decodes the events of an extrinsic that the deployment's contracts emitted.
    pub fn decode_events(&self, emitted: &[crate::client::Emitted]) -> Vec<Event> {
        emitted
            .iter()
            .filter_map(|e| {
                let contract = Contract::ALL
                    .into_iter()
                    .find(|c| self.deployment.address(*c).ok() == Some(e.contract))?;
                self.bundle(contract).ok()?.decode_event(&e.data, &e.topics)
            })
            .collect()
    }

    async fn dry_run(
        &self,
        contract: Contract,
        message: &str,
        value: u128,
        input: Vec<u8>,
        write: bool,
    ) -> ChainResult<DryRun> {
        let named = |e: ChainError| match e {
            ChainError::Rpc(detail) => {
                ChainError::Rpc(format!("{}.{message}: {detail}", contract.name()))
            }
            other => other,
        };
        let dest = self.deployment.address(contract)?;
        // Reads need no account of ours: the reader origin needs no mapping, also at a
        // pinned block older than the signer's mapping.
        let (origin, at) = match (&self.signer, write) {
            (Some(signer), true) => (signer.account().0, None),
            _ => (crate::READER_ORIGIN, self.at.map(|b| b.hash)),
        };
        let mut mapped = false;
        loop {
            match self
                .node
                .dry_run_call(origin, dest, value, input.clone(), at)
                .await
                .map_err(named)?
            {
                Ok(dry) => return Ok(dry),
                // pallet-revive runs nothing for an account not mapped to its H160: a
                // writer's is mapped (one extrinsic, once per account) and tried again.
                Err(error) if error == "Revive::AccountUnmapped" && write && !mapped => {
                    let signer = self.writer(&format!("{}.{message}", contract.name()))?;
                    tracing::info!(account = %signer.account(), "mapping the account to its H160 (Revive::map_account)");
                    self.node.map_account(signer).await.map_err(named)?;
                    mapped = true;
                }
                Err(error) => {
                    return Err(ChainError::Dispatch {
                        contract: contract.name().into(),
                        message: message.into(),
                        error,
                    });
                }
            }
        }
    }

    /// Reads `message` (a dry-run) and decodes its answer as `T`.
    pub async fn query<T: DecodeAsType>(
        &self,
        contract: Contract,
        message: &str,
        args: &[Arg<'_>],
    ) -> ChainResult<T> {
        match self.try_query(contract, message, args, 0).await? {
            Ok(value) => Ok(value),
            Err(error) => Err(ChainError::Refused {
                contract: contract.name(),
                message: message.into(),
                error,
            }),
        }
    }

    /// Dry-runs `message`; `Ok(Err(name))` is the contract's error.
    async fn try_query<T: DecodeAsType>(
        &self,
        contract: Contract,
        message: &str,
        args: &[Arg<'_>],
        value: u128,
    ) -> ChainResult<std::result::Result<T, String>> {
        let bundle = self.bundle(contract)?;
        let input = bundle.call_data(message, args)?;
        let dry = self.dry_run(contract, message, value, input, false).await?;
        bundle.decode_answer(message, &dry.data)
    }

    /// Dry-runs a write, then sends it unless the contract answers with one of the
    /// `already` errors ([`Written::AlreadyThere`]); any other error is `Refused` with
    /// `label`. Returns the decoded `Ok` value of the dry-run with the outcome.
    async fn write<T: DecodeAsType>(
        &self,
        contract: Contract,
        message: &str,
        args: &[Arg<'_>],
        value: u128,
        already: &[&str],
        label: String,
    ) -> ChainResult<(Written, Option<T>, Vec<Event>)> {
        let signer = self.writer(&format!("{}.{label}", contract.name()))?;
        let bundle = self.bundle(contract)?;
        let input = bundle.call_data(message, args)?;
        let dry = self
            .dry_run(contract, message, value, input.clone(), true)
            .await?;
        let answer = bundle.decode_answer::<T>(message, &dry.data)?;
        let ok = match answer {
            Ok(ok) if !dry.reverted => ok,
            Ok(_) => {
                return Err(ChainError::Refused {
                    contract: contract.name(),
                    message: label,
                    error: "reverted".into(),
                });
            }
            Err(error) if already.contains(&error.as_str()) => {
                return Ok((Written::AlreadyThere, None, Vec::new()));
            }
            Err(error) => {
                return Err(ChainError::Refused {
                    contract: contract.name(),
                    message: label,
                    error,
                });
            }
        };
        let dest = self.deployment.address(contract)?;
        let started = std::time::Instant::now();
        match self
            .node
            .call(signer, dest, value, input, &dry)
            .await
            .map_err(|e| match e {
                ChainError::Rpc(detail) => {
                    ChainError::Rpc(format!("{}.{label}: {detail}", contract.name()))
                }
                other => other,
            })? {
            Ok(included) => {
                let events = self.decode_events(&included.emitted);
                for event in &events {
                    tracing::debug!(%event, "contract event");
                }
                tracing::debug!(
                    call = %format!("{}.{label}", contract.name()),
                    ms = started.elapsed().as_millis() as u64,
                    "included"
                );
                Ok((Written::Sent, Some(ok), events))
            }
            Err(error) => Err(ChainError::Dispatch {
                contract: contract.name().into(),
                message: label,
                error,
            }),
        }
    }

    /// `reward_pool.epoch(n)`.
    pub async fn epoch(&self, epoch: u64) -> ChainResult<Option<ChainEpoch>> {
        let record: Option<EpochRecord> = self
            .query(Contract::RewardPool, "epoch", &[arg(&epoch)])
            .await?;
        Ok(record.map(|r| ChainEpoch {
            root: r.root,
            total: r.total,
            status: match r.status {
                EpochStatus::Final => "Final".into(),
                EpochStatus::Vetoed => "Vetoed".into(),
            },
            claimable_from: r.claimable_from,
            base: r.base,
            parts_applied: (r.applied, r.parts),
        }))
    }

    /// `reward_pool.epoch(n)` as the pool stores it.
    pub async fn epoch_record(&self, epoch: u64) -> ChainResult<Option<EpochRecord>> {
        self.query(Contract::RewardPool, "epoch", &[arg(&epoch)])
            .await
    }

    /// `reward_pool.funding_parts(n)`: the hashes of the funding parts the committee agreed
    /// on for epoch `n`, in order (empty when it is not final or has none).
    pub async fn funding_part_hashes(&self, epoch: u64) -> ChainResult<Vec<[u8; 32]>> {
        self.query(Contract::RewardPool, "funding_parts", &[arg(&epoch)])
            .await
    }

    /// `reward_pool.current_block()`.
    pub async fn current_block(&self) -> ChainResult<u32> {
        self.query(Contract::RewardPool, "current_block", &[]).await
    }

    /// `reward_pool.claimed(seeder)`.
    pub async fn claimed(&self, seeder: &NodeId) -> ChainResult<u128> {
        self.query(Contract::RewardPool, "claimed", &[arg(&seeder.0)])
            .await
    }

    /// `reward_pool.free_balance()`.
    pub async fn free_balance(&self) -> ChainResult<u128> {
        self.query(Contract::RewardPool, "free_balance", &[]).await
    }

    /// `reward_pool.limits()`: (the governance timelock the challenge window is checked
    /// against, in blocks; `max_epoch_total`, the most one epoch may add, native units).
    pub async fn limits(&self) -> ChainResult<(u32, u128)> {
        self.query(Contract::RewardPool, "limits", &[]).await
    }

    /// `reward_pool.funding_limits()`: (the most an epoch may take from the free balance,
    /// the smallest deposit), native units.
    pub async fn funding_limits(&self) -> ChainResult<(u128, u128)> {
        self.query(Contract::RewardPool, "funding_limits", &[])
            .await
    }

    /// Funds the pool with `amount` native units (12 decimals).
    pub async fn fund(&self, amount: u128) -> ChainResult<()> {
        self.write::<u128>(
            Contract::RewardPool,
            "fund",
            &[],
            amount,
            &[],
            format!("fund({amount})"),
        )
        .await?;
        Ok(())
    }

    /// `reward_pool.last_good_epoch()`: the newest final, not vetoed epoch (the base the
    /// next submission must name).
    pub async fn last_good_epoch(&self) -> ChainResult<Option<u64>> {
        self.query(Contract::RewardPool, "last_good_epoch", &[])
            .await
    }

    /// Submits an epoch's root, following `base` on the good chain, unless the chain
    /// already has this member's vote or a final record for it. `subsidy` is the most it
    /// takes from the pool's free balance; `parts` the hashes of its funding parts
    /// ([`Self::fund_part`]). `Refused` with `WrongBase` when `base` is not the chain's
    /// latest good epoch (not final yet, or vetoed), `BaseNotFunded` while its funding
    /// parts are not all applied.
    #[allow(clippy::too_many_arguments)]
    pub async fn submit_root(
        &self,
        epoch: u64,
        base: Option<u64>,
        root: &[u8; 32],
        total: u128,
        batch: &ContentId,
        subsidy: u128,
        parts: &[[u8; 32]],
    ) -> ChainResult<Written> {
        let parts = parts.to_vec();
        let (written, _, _) = self
            .write::<bool>(
                Contract::RewardPool,
                "submit",
                &[
                    arg(&epoch),
                    arg(&base),
                    arg(root),
                    arg(&total),
                    arg(&batch.0),
                    arg(&subsidy),
                    arg(&parts),
                ],
                0,
                &["AlreadyVoted", "EpochTooOld"],
                format!("submit({epoch})"),
            )
            .await?;
        Ok(written)
    }

    /// `reward_pool.veto(epoch)`: only governance may (the test of a council's veto goes
    /// through a proposal); refused otherwise.
    pub async fn veto(&self, epoch: u64) -> ChainResult<Written> {
        let (written, _, _) = self
            .write::<()>(
                Contract::RewardPool,
                "veto",
                &[arg(&epoch)],
                0,
                &[],
                format!("veto({epoch})"),
            )
            .await?;
        Ok(written)
    }

    /// Applies funding part `index` of `epoch` unless the chain has it already. `Refused`
    /// with the contract's reason otherwise (a bound the part breaks). Returns whether the
    /// epoch is funded after it (`None` when it was already applied).
    pub async fn fund_part(
        &self,
        epoch: u64,
        index: u32,
        part: &FundingPart,
    ) -> ChainResult<Option<bool>> {
        let (_, funded, _) = self
            .write::<bool>(
                Contract::RewardPool,
                "fund_part",
                &[
                    arg(&epoch),
                    arg(&index),
                    arg(&part.draws),
                    arg(&part.debits),
                ],
                0,
                &["PartOutOfOrder"],
                format!("fund_part({epoch}, {index})"),
            )
            .await?;
        Ok(funded)
    }

    /// Deposits `deposit` native units for `content`: `epochs` epochs from `first_epoch`,
    /// for `replicas` replicas. Returns the sponsorship's id.
    pub async fn sponsor(
        &self,
        content: &ContentId,
        first_epoch: u64,
        epochs: u32,
        replicas: u32,
        deposit: u128,
    ) -> ChainResult<u32> {
        let (_, _, events) = self
            .write::<u32>(
                Contract::RewardPool,
                "sponsor",
                &[
                    arg(&content.0),
                    arg(&first_epoch),
                    arg(&epochs),
                    arg(&replicas),
                ],
                deposit,
                &[],
                format!("sponsor({content}, {deposit})"),
            )
            .await?;
        // The id the chain gave this deposit, from the `Sponsored` event of this extrinsic
        // (the dry-run's id is another sponsor's if two deposits race).
        event_id(&events, "reward_pool", "Sponsored").ok_or_else(|| ChainError::Decode {
            contract: "reward_pool".into(),
            message: "sponsor".into(),
            detail: "no Sponsored event in the extrinsic".into(),
        })
    }

    /// Adds `amount` native units to `downloader`'s credit. Returns its unspent credit.
    pub async fn credit(&self, downloader: &NodeId, amount: u128) -> ChainResult<u128> {
        let (_, unspent, _) = self
            .write::<u128>(
                Contract::RewardPool,
                "credit",
                &[arg(&downloader.0)],
                amount,
                &[],
                format!("credit({downloader}, {amount})"),
            )
            .await?;
        Ok(unspent.unwrap_or_default())
    }

    /// The sponsor takes back what sponsorship `id` has left, naming `past`: a final,
    /// claimable epoch at or after its last one. Returns the amount.
    pub async fn withdraw(&self, id: u32, past: u64) -> ChainResult<u128> {
        let (_, amount, _) = self
            .write::<u128>(
                Contract::RewardPool,
                "withdraw",
                &[arg(&id), arg(&past)],
                0,
                &[],
                format!("withdraw({id})"),
            )
            .await?;
        Ok(amount.unwrap_or_default())
    }

    /// Every sponsorship, [`READ_PART`] per read.
    pub async fn sponsorships(&self) -> ChainResult<Vec<ChainSponsorship>> {
        self.sponsorships_from(0).await
    }

    /// The sponsorships with ids from `first` on, [`READ_PART`] per read.
    pub async fn sponsorships_from(&self, first: u32) -> ChainResult<Vec<ChainSponsorship>> {
        self.sponsorships_between(first, u32::MAX).await
    }

    /// The sponsorships with ids `first..=last` (withdrawn ones included: the contract
    /// keeps every sponsorship), [`READ_PART`] per read, stopping at the chain's newest.
    pub async fn sponsorships_between(
        &self,
        first: u32,
        last: u32,
    ) -> ChainResult<Vec<ChainSponsorship>> {
        let mut out: Vec<ChainSponsorship> = Vec::new();
        let mut from = first;
        while from <= last {
            let (page, count): (Vec<ChainSponsorship>, u32) = self
                .query(
                    Contract::RewardPool,
                    "sponsorships",
                    &[arg(&from), arg(&(READ_PART as u32))],
                )
                .await?;
            let done = page.is_empty();
            out.extend(page.into_iter().filter(|s| s.id <= last));
            from = from.saturating_add(READ_PART as u32);
            if done || from >= count {
                break;
            }
        }
        Ok(out)
    }

    /// The credits of `downloaders`, in order, [`READ_PART`] per read.
    pub async fn credits(&self, downloaders: &[NodeId]) -> ChainResult<Vec<ChainCredit>> {
        let mut out = Vec::with_capacity(downloaders.len());
        for part in downloaders.chunks(READ_PART) {
            let ids: Vec<[u8; 32]> = part.iter().map(|d| d.0).collect();
            let credits: Vec<ChainCredit> = self
                .query(Contract::RewardPool, "credits_of", &[arg(&ids)])
                .await?;
            if credits.len() != ids.len() {
                return Err(ChainError::Decode {
                    contract: "reward_pool".into(),
                    message: "credits_of".into(),
                    detail: format!("{} credits for {} keys", credits.len(), ids.len()),
                });
            }
            out.extend(credits);
        }
        Ok(out)
    }

    /// `reputation.last_epoch()`.
    pub async fn reputation_last_epoch(&self) -> ChainResult<Option<u64>> {
        self.query(Contract::Reputation, "last_epoch", &[]).await
    }

    /// `reputation.last_part()`: the last applied (epoch, part).
    pub async fn reputation_last_part(&self) -> ChainResult<Option<(u64, u32)>> {
        self.query(Contract::Reputation, "last_part", &[]).await
    }

    /// `reputation.score(node)`: (ppm, epoch).
    pub async fn reputation_score(&self, node: &NodeId) -> ChainResult<Option<(u32, u64)>> {
        let score: Option<Score> = self
            .query(Contract::Reputation, "score", &[arg(&node.0)])
            .await?;
        Ok(score.map(|s| (s.ppm, s.epoch)))
    }

    /// Submits part `part` of an epoch's scores (sorted by node, at most
    /// [`REPUTATION_PART`]) unless already there.
    pub async fn submit_scores(
        &self,
        epoch: u64,
        part: u32,
        scores: &[(NodeId, u32)],
    ) -> ChainResult<Written> {
        let list: Vec<([u8; 32], u32)> = scores.iter().map(|(n, p)| (n.0, *p)).collect();
        let (written, _, _) = self
            .write::<bool>(
                Contract::Reputation,
                "submit",
                &[arg(&epoch), arg(&part), arg(&list)],
                0,
                &["AlreadyVoted", "EpochTooOld"],
                format!("submit({epoch}, part {part})"),
            )
            .await?;
        Ok(written)
    }

    /// `multipliers.params()` as the protocol's reward parameters.
    pub async fn params(&self) -> ChainResult<RewardParams> {
        let params: Params = self.query(Contract::Multipliers, "params", &[]).await?;
        Ok(params.into())
    }

    /// `multipliers.bounds()`: the hard bounds it was instantiated with.
    pub async fn bounds(&self) -> ChainResult<Bounds> {
        self.query(Contract::Multipliers, "bounds", &[]).await
    }

    /// `multipliers.market()`: price per byte, fee and vetting in force.
    pub async fn market(&self) -> ChainResult<MarketParams> {
        let market: Market = self.query(Contract::Multipliers, "market", &[]).await?;
        Ok(market.into())
    }

    /// `multipliers.boost(content)`.
    pub async fn boost(&self, content: &ContentId) -> ChainResult<Ppm> {
        let boost: u32 = self
            .query(Contract::Multipliers, "boost", &[arg(&content.0)])
            .await?;
        Ok(Ppm(boost))
    }

    /// `multipliers.boosts(contents)`, [`BOOSTS_PART`] ids per read: the boosts of `n`
    /// contents in `⌈n / BOOSTS_PART⌉` round trips.
    pub async fn boosts(&self, contents: &[ContentId]) -> ChainResult<Vec<Ppm>> {
        let mut out = Vec::with_capacity(contents.len());
        for part in contents.chunks(BOOSTS_PART) {
            let ids: Vec<[u8; 32]> = part.iter().map(|c| c.0).collect();
            let boosts: Vec<u32> = self
                .query(Contract::Multipliers, "boosts", &[arg(&ids)])
                .await?;
            if boosts.len() != ids.len() {
                return Err(ChainError::Decode {
                    contract: "multipliers".into(),
                    message: "boosts".into(),
                    detail: format!("{} boosts for {} ids", boosts.len(), ids.len()),
                });
            }
            out.extend(boosts.into_iter().map(Ppm));
        }
        Ok(out)
    }

    /// Claims a leaf: pays `payout` what the seeder earned in `epoch` (`amount`). Returns
    /// what was paid (0 when the leaf was already paid).
    pub async fn claim(
        &self,
        epoch: u64,
        seeder: &NodeId,
        payout: &PayoutAccount,
        amount: u128,
        proof: &[[u8; 32]],
    ) -> ChainResult<u128> {
        let proof = proof.to_vec();
        let (written, _, _) = self
            .write::<u128>(
                Contract::RewardPool,
                "claim",
                &[
                    arg(&epoch),
                    arg(&seeder.0),
                    arg(&Address(payout.0)),
                    arg(&amount),
                    arg(&proof),
                ],
                0,
                &["AlreadyClaimed"],
                format!("claim({epoch})"),
            )
            .await?;
        if written == Written::AlreadyThere {
            return Ok(0);
        }
        let paid = self.claimed_in(epoch, seeder).await?;
        if paid != Some(amount) {
            return Err(ChainError::Refused {
                contract: "reward_pool",
                message: format!("claim({epoch})"),
                error: format!("the leaf paid {paid:?} after the claim, expected {amount}"),
            });
        }
        Ok(amount)
    }

    /// `reward_pool.claim_many`: pays several leaves in one extrinsic, all or none.
    /// Returns what was paid.
    pub async fn claim_many(&self, claims: &[LeafClaim]) -> ChainResult<u128> {
        let list: Vec<ClaimArg> = claims
            .iter()
            .map(|(epoch, seeder, payout, amount, proof)| ClaimArg {
                epoch: *epoch,
                seeder: seeder.0,
                payout: Address(payout.0),
                amount: *amount,
                proof: proof.clone(),
            })
            .collect();
        let total = list
            .iter()
            .try_fold(0u128, |sum, c| sum.checked_add(c.amount))
            .ok_or_else(|| ChainError::Refused {
                contract: "reward_pool",
                message: "claim_many".into(),
                error: "the amounts overflow".into(),
            })?;
        self.write::<u128>(
            Contract::RewardPool,
            "claim_many",
            &[arg(&list)],
            0,
            &[],
            format!("claim_many({} leaves)", list.len()),
        )
        .await?;
        // All or none: included without an error, it paid every leaf.
        Ok(total)
    }

    /// `reward_pool.claimed_in(epoch, seeder)`: what that leaf paid, `None` while unclaimed.
    pub async fn claimed_in(&self, epoch: u64, seeder: &NodeId) -> ChainResult<Option<u128>> {
        self.query(
            Contract::RewardPool,
            "claimed_in",
            &[arg(&epoch), arg(&seeder.0)],
        )
        .await
    }

    /// `governance.next_id()`: the id the next proposal gets.
    pub async fn next_proposal_id(&self) -> ChainResult<u32> {
        self.query(Contract::Governance, "next_id", &[]).await
    }

    /// `governance.proposal(id)`.
    pub async fn proposal(&self, id: u32) -> ChainResult<Option<Proposal>> {
        let record: Option<ProposalRecord> = self
            .query(Contract::Governance, "proposal", &[arg(&id)])
            .await?;
        Ok(record.map(|r| Proposal {
            id,
            proposer: r.proposer.to_string(),
            approvals: r.approvals.len(),
            approved_at: r.approved_at,
            executed: r.executed,
        }))
    }

    /// Proposes (and approves, as the proposer) a governance call of `message` on
    /// `contract` with SCALE-encoded `input`. Returns the proposal id.
    pub async fn propose_call(
        &self,
        contract: Contract,
        message: &str,
        input: &[u8],
    ) -> ChainResult<u32> {
        let action = Action::Call {
            callee: Address(self.deployment.address(contract)?),
            selector: self.selector(contract, message)?,
            input: input.to_vec(),
        };
        let (_, _, events) = self
            .write::<u32>(
                Contract::Governance,
                "propose",
                &[arg(&action)],
                0,
                &[],
                format!("propose({}.{message})", contract.name()),
            )
            .await?;
        // The id the chain gave this proposal, from the `Proposed { id, proposer }` event of
        // this extrinsic (the dry-run's id is another member's if two proposals race).
        let id =
            event_id(&events, "governance", "Proposed").ok_or_else(|| ChainError::Refused {
                contract: "governance",
                message: "propose".into(),
                error: "no Proposed event in the extrinsic".into(),
            })?;
        match self.proposal(id).await? {
            Some(p) if p.proposer == Address(self.writer("propose")?.address()).to_string() => {
                Ok(id)
            }
            other => Err(ChainError::Refused {
                contract: "governance",
                message: "propose".into(),
                error: format!("proposal {id} on chain is not this account's: {other:?}"),
            }),
        }
    }

    /// Proposes `multipliers.set_rarity(curve, target_replication)`.
    pub async fn propose_rarity(
        &self,
        curve: LinearCurve,
        target_replication: u32,
    ) -> ChainResult<u32> {
        let input = self.bundle(Contract::Multipliers)?.call_data(
            "set_rarity",
            &[arg(&Curve::from(curve)), arg(&target_replication)],
        )?;
        // The action carries the arguments only: the selector is its own field.
        self.propose_call(Contract::Multipliers, "set_rarity", &input[4..])
            .await
    }

    /// Proposes `multipliers.set_market(market)`.
    pub async fn propose_market(&self, market: MarketParams) -> ChainResult<u32> {
        let input = self
            .bundle(Contract::Multipliers)?
            .call_data("set_market", &[arg(&Market::from(market))])?;
        self.propose_call(Contract::Multipliers, "set_market", &input[4..])
            .await
    }

    /// Proposes `multipliers.set_boost(content, boost)` (ppm).
    pub async fn propose_boost(&self, content: &ContentId, boost: Ppm) -> ChainResult<u32> {
        let input = self
            .bundle(Contract::Multipliers)?
            .call_data("set_boost", &[arg(&content.0), arg(&boost.0)])?;
        self.propose_call(Contract::Multipliers, "set_boost", &input[4..])
            .await
    }

    /// Proposes `reward_pool.veto(epoch)`.
    pub async fn propose_veto(&self, epoch: u64) -> ChainResult<u32> {
        let input = self
            .bundle(Contract::RewardPool)?
            .call_data("veto", &[arg(&epoch)])?;
        self.propose_call(Contract::RewardPool, "veto", &input[4..])
            .await
    }

    /// Approves proposal `id` as this client's account (a council member).
    pub async fn approve(&self, id: u32) -> ChainResult<Written> {
        let (written, _, _) = self
            .write::<()>(
                Contract::Governance,
                "approve",
                &[arg(&id)],
                0,
                &["AlreadyApproved"],
                format!("approve({id})"),
            )
            .await?;
        Ok(written)
    }

    /// Executes proposal `id` (approved, timelock passed). `Refused` with `Timelocked`,
    /// `NotApproved`, `ExecutionFailed`... when the contract would refuse.
    pub async fn execute(&self, id: u32) -> ChainResult<Written> {
        let (written, _, _) = self
            .write::<()>(
                Contract::Governance,
                "execute",
                &[arg(&id)],
                0,
                &["AlreadyExecuted"],
                format!("execute({id})"),
            )
            .await?;
        if written == Written::AlreadyThere {
            return Ok(written);
        }
        match self.proposal(id).await? {
            Some(proposal) if proposal.executed => Ok(Written::Sent),
            _ => Err(ChainError::Refused {
                contract: "governance",
                message: format!("execute({id})"),
                error: "not executed after the call".into(),
            }),
        }
    }

    /// Makes the node seal `blocks` blocks. ink-node's instant seal makes a block only for
    /// a transaction, so each block carries a transfer of one plank (10^-12 of a token) into
    /// the reward pool. Returns the new block number.
    pub async fn advance_blocks(&self, blocks: u32) -> ChainResult<u32> {
        let target = self.current_block().await?.saturating_add(blocks);
        loop {
            self.fund(1).await?;
            let now = self.current_block().await?;
            if now >= target {
                return Ok(now);
            }
        }
    }

    /// An account's balance in native units.
    pub async fn balance(&self, account: &PayoutAccount) -> ChainResult<u128> {
        self.node.balance(account.0).await
    }
}
