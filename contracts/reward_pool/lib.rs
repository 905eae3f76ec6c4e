//! # reward_pool: epoch roots from the oracle committee, claims with Merkle proofs
//!
//! - Anyone funds the pool (`fund`, payable).
//! - Oracle committee members `submit(epoch, base, root, total, batch, subsidy, parts)`.
//!   An epoch becomes final when `threshold` members (a strict majority, see
//!   [`dsi_contracts_common::valid_committee`]) submitted the same (base, root, total,
//!   batch, subsidy, parts); its `total` is then reserved (at once, or once its funding
//!   parts are applied; see **Funding**; an epoch the pool cannot pay is refused), and a
//!   `total` above the governance-set `max_epoch_total` is refused at every vote, so a
//!   stolen committee key risks one epoch's budget, never the pool.
//! - **Per-epoch leaves.** A seeder's leaf in epoch `e` carries what it earned in `e`
//!   (`dsi_protocol::merkle::RewardLeaf`). The pool pays each (epoch, seeder) leaf once, and
//!   never more from an epoch than that epoch's `total`: a root from a stolen committee key
//!   can spend its own epoch's total (at most `max_epoch_total`, and only if governance does
//!   not veto it in the window), never what other epochs reserved.
//! - **The good chain.** `base` names the epoch this one follows (the oracle's earnings
//!   records build on it), and must be the pool's latest final, not vetoed epoch
//!   ([`RewardPool::last_good_epoch`], `None` before the first) or the submission is refused
//!   (`WrongBase`). So the final, not vetoed epochs form one chain, each built on the one
//!   before; epoch numbers between `base` and `epoch` are skipped explicitly (vetoed, or
//!   never final), and the record keeps `base`. An epoch must be newer than the latest good
//!   one (`EpochTooOld`); since a veto moves that back, a vetoed epoch number, even
//!   `u64::MAX` from a stolen key, never stops later submissions.
//! - A challenge window of `challenge_blocks` follows finality, during which governance can
//!   `veto` the epoch. A veto **cascades**: every final epoch after the vetoed one built on
//!   it (directly or through others), so each is vetoed too and its reservation released;
//!   the latest good epoch becomes the vetoed epoch's base. The later epochs still in their
//!   window were signed by the same committee that signed a root governance refused, so
//!   none of them is trusted; the oracle rolls its records back to the base and those
//!   earnings must be earned again. A later epoch is never claimable before
//!   an earlier one of its chain (`claimable_from` never decreases along the chain, even if
//!   governance shortens the window), so a cascade never reaches an epoch that already paid.
//! - The window must leave governance time to veto: it is refused shorter than the
//!   governance timelock (which the pool is told: `governance_timelock`) plus
//!   [`VETO_MARGIN_BLOCKS`], in the constructor and in both setters. Governance that raises
//!   its own timelock first raises the pool's window, then `set_governance_timelock`.
//! - After the window, anyone may `claim(epoch, seeder, payout, amount, proof)`: the leaf
//!   `(epoch, seeder, payout, amount)` must be in the epoch's root (`dsi_protocol::merkle`,
//!   keccak host function), and the pool pays `payout` the `amount`, once per (epoch,
//!   seeder) (`AlreadyClaimed` after). `claim_many` does the same for up to
//!   [`MAX_CLAIMS_PER_CALL`] leaves in one call, all or nothing.
//! - **Accounting.** Each epoch record counts what its leaves paid (`paid`); a claim that
//!   would take more than the epoch's `total` is refused (`LeafTooLarge`). The pool also
//!   keeps `good_total` (the sum of the totals of final, not vetoed epochs) and `paid_total`
//!   (everything claimed), and refuses a claim that would make `paid_total` exceed
//!   `good_total` (`InsufficientFunds`). Vetoed money therefore never leaves the pool,
//!   everything claimable is reserved, and no honest claim runs out of funds.
//!   `reserved = good_total − paid_total`; `free = balance − reserved − committed`.
//! - **Funding (issue 15).** An epoch pays only from money set aside for it:
//!   - `sponsor(content, first_epoch, epochs, replicas)` (payable, anyone): a deposit for a
//!     content's storage, at most `deposit / epochs` per epoch, epochs
//!     `first_epoch..first_epoch + epochs` (after the latest good epoch); what the epochs
//!     do not draw goes back to the sponsor (`withdraw(id, past)`, naming a final, funded
//!     epoch at or past the last one and out of its window: it can never be vetoed).
//!   - `credit(downloader)` (payable, anyone): a downloader key's credit, which pays the
//!     seeders that serve it (not refundable).
//!   - Deposits are **committed**: not part of the free balance, so no epoch's subsidy or
//!     reservation can spend them. `min_deposit` (governance) keeps each record worth
//!     reading.
//!   - `submit` carries the epoch's `subsidy` (at most the governance cap
//!     `max_epoch_subsidy`, taken from the free balance) and the hashes of its **funding
//!     parts** (at most [`MAX_FUNDING_PARTS`], each of at most [`MAX_PART_ENTRIES`] draws
//!     and debits), all in the voted proposal. Without parts, the total must be at most the
//!     subsidy and is reserved at finality, as before. With parts, anyone applies them in
//!     order after finality (`fund_part`, checked against the agreed hash): each draw is
//!     inside its sponsorship's epochs and at most its amount per epoch, each sponsorship
//!     and credit is drawn on at most once per epoch and never beyond what is left, and
//!     after the last part the total must be at most the subsidy plus everything drawn
//!     (`Underfunded` otherwise). Only then is the total reserved and the epoch claimable
//!     (the challenge window starts again: governance sees the draws for a whole window),
//!     and only then may the next epoch build on it (`BaseNotFunded`). What a part draws
//!     beyond the total (the protocol fee) stays in the pool.
//!   - A ledger (sponsorship or credit) keeps `left` and the draws of epochs still in their
//!     window (`pending`, at most [`MAX_PENDING`]); a draw settles once its epoch is
//!     claimable and no longer counts once its epoch is vetoed (each finalization has its
//!     own sequence number, so a re-finalized epoch number never counts a vetoed draw). A
//!     veto gives the vetoed epochs' draws back to the committed total. An epoch whose
//!     parts never complete can be vetoed at any time.
//! - Governance (one account: the governance contract) sets the committee, the window, the
//!   per-epoch cap, the subsidy cap and minimum deposit, and can pause claims and
//!   submissions.
//!
//! Amounts in messages and storage are native units (12 decimals); transfers are converted
//! to EVM units in one place (`dsi_contracts_common::native_to_evm`).
#![cfg_attr(not(feature = "std"), no_std, no_main)]

#[ink::contract]
pub mod reward_pool {
    use dsi_contracts_common::{
        evm_to_native, hash_encoded, native_to_evm, Committee, HostKeccak, VoteError,
    };
    use dsi_protocol::merkle::{self, MAX_PROOF_LEN};
    use dsi_protocol::{Epoch, NodeId, PayoutAccount, RewardLeaf};
    use ink::prelude::vec::Vec;
    use ink::storage::Mapping;

    /// Blocks a veto needs besides the governance timelock: one to propose, one for a
    /// second approval (a 2-of-3 council), one to execute before the window closes, and one
    /// of slack. The challenge window is at least the timelock plus this; a real deployment
    /// gives far more (people must notice the bad epoch first).
    pub const VETO_MARGIN_BLOCKS: u32 = 4;

    /// Most leaves one `claim_many` call pays (each costs a proof check and a transfer).
    pub const MAX_CLAIMS_PER_CALL: u32 = 64;

    /// A leaf's key in the claimed map: (epoch, seeder).
    pub type LeafKey = (u64, [u8; 32]);

    /// Most parts one epoch's funding list is split into (see [`RewardPool::fund_part`]).
    pub const MAX_FUNDING_PARTS: u32 = 256;

    /// Most entries (draws and debits together) in one funding part.
    pub const MAX_PART_ENTRIES: u32 = 128;

    /// Most epochs that may hold an undecided draw on one sponsorship or credit at once
    /// (epochs still in their challenge window). The window must span fewer epochs.
    pub const MAX_PENDING: u32 = 32;

    /// Most sponsorships or credits one read returns.
    pub const MAX_READ: u32 = 256;

    /// Most epochs one sponsorship may last.
    pub const MAX_SPONSOR_EPOCHS: u32 = 1_000_000;

    /// Most replicas a sponsor may ask for.
    pub const MAX_REPLICAS: u32 = 64;

    /// The smallest deposit (per epoch for a sponsorship, in total for a credit) until
    /// governance sets another: 0.001 of a native unit. Every deposit is a record the oracle
    /// reads at each close, so deposits too small to matter are refused.
    pub const DEFAULT_MIN_DEPOSIT: u128 = 1_000_000_000;

    /// A part's hash in the part map: (finalization sequence number, part index).
    pub type PartKey = (u64, u32);

    /// Everything that can go wrong.
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Error {
        /// The caller may not do this (not governance, not a committee member).
        Unauthorized,
        /// Members and threshold do not make a committee (empty, duplicates, a threshold
        /// that is not a strict majority).
        InvalidCommittee,
        /// This member already submitted this same root for this epoch.
        AlreadyVoted,
        /// The epoch is not newer than the latest final, not vetoed epoch.
        EpochTooOld,
        /// The pool's free balance cannot cover the epoch's total, or a claim would pay out
        /// more than the final, not vetoed epochs added.
        InsufficientFunds,
        /// A non-zero total with the empty (all-zero) root.
        InvalidRoot,
        /// The epoch has no final root.
        EpochNotFinal,
        /// The epoch's challenge window is still open: claims wait.
        InChallengeWindow,
        /// The epoch's challenge window is over: too late to veto.
        ChallengeWindowOver,
        /// The epoch was vetoed.
        EpochVetoed,
        /// The proof is longer than any tree can need.
        ProofTooLong,
        /// The leaf is not in the epoch's root.
        BadProof,
        /// This seeder's leaf of this epoch was already paid (or pays nothing).
        AlreadyClaimed,
        /// Paused by governance.
        Paused,
        /// The transferred value is not a whole number of native units.
        FractionalValue,
        /// The payment to the payout account failed (for example, below the existential
        /// deposit of a new account).
        TransferFailed,
        /// Arithmetic overflow.
        Overflow,
        /// The submission's base is not the latest final, not vetoed epoch.
        WrongBase,
        /// The epoch's total is above the per-epoch cap governance set.
        EpochTotalTooLarge,
        /// The challenge window would be shorter than the governance timelock plus
        /// `VETO_MARGIN_BLOCKS`: governance could not veto in time.
        WindowTooShort,
        /// The leaf's amount is more than what is left of its epoch's total.
        LeafTooLarge,
        /// More claims in one `claim_many` call than [`MAX_CLAIMS_PER_CALL`].
        TooManyClaims,
        /// The epoch's funding parts are not all applied yet: no claims, no later epoch.
        EpochNotFunded,
        /// The latest good epoch's funding parts are not all applied yet.
        BaseNotFunded,
        /// The epoch has no funding part left to apply, or this is not the next one.
        PartOutOfOrder,
        /// The part does not hash to what the committee agreed for it.
        BadPart,
        /// More funding parts than [`MAX_FUNDING_PARTS`] or more entries in one part than
        /// [`MAX_PART_ENTRIES`].
        TooManyEntries,
        /// No sponsorship with this id.
        UnknownSponsorship,
        /// The epoch is outside the sponsorship's epochs.
        OutsideSponsorship,
        /// A draw above the sponsorship's amount per epoch.
        DrawTooLarge,
        /// The sponsorship or credit was already drawn on by this epoch.
        AlreadyDrawn,
        /// A draw or debit above what is left of the sponsorship or credit, or of zero.
        Overdrawn,
        /// The sponsorship or credit already has [`MAX_PENDING`] epochs in their window.
        TooManyPending,
        /// The epoch's subsidy is above the per-epoch subsidy cap governance set.
        SubsidyTooLarge,
        /// The epoch's total is above its subsidy plus what its parts draw.
        Underfunded,
        /// A deposit below the minimum governance set.
        DepositTooSmall,
        /// A sponsorship of no epochs, too many epochs, or a bad replica count.
        InvalidSponsorship,
        /// The sponsorship can still be drawn on (its last epoch is not past its window).
        SponsorshipActive,
    }

    /// Result of every message.
    pub type Result<T> = core::result::Result<T, Error>;

    /// Whether a final epoch stands or was vetoed.
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum EpochStatus {
        /// Final; claimable once the challenge window is over.
        Final,
        /// Vetoed by governance during the challenge window (or built on a vetoed epoch).
        Vetoed,
    }

    /// One leaf to pay in [`RewardPool::claim_many`]: the arguments of
    /// [`RewardPool::claim`].
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Claim {
        /// The epoch whose root holds the leaf.
        pub epoch: u64,
        /// The seeder's node key.
        pub seeder: [u8; 32],
        /// The account paid.
        pub payout: Address,
        /// What the seeder earned in the epoch.
        pub amount: u128,
        /// Sibling hashes from the leaf up.
        pub proof: Vec<[u8; 32]>,
    }

    /// A final epoch.
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct EpochRecord {
        /// Merkle root of the epoch's reward leaves.
        pub root: [u8; 32],
        /// What the epoch adds to all seeders' earnings (native units).
        pub total: u128,
        /// Content id of the published receipt batch (anyone can recompute the root).
        pub batch: [u8; 32],
        /// Final or vetoed.
        pub status: EpochStatus,
        /// Block in which the epoch became final.
        pub final_block: u32,
        /// First block in which claims are accepted.
        pub claimable_from: u32,
        /// The epoch this one follows (the latest good epoch when it became final); `None`
        /// for the first.
        pub base: Option<u64>,
        /// What claims of this epoch's leaves paid so far; never above `total`.
        pub paid: u128,
        /// What the epoch may take from the pool's free balance (governance's subsidy).
        pub subsidy: u128,
        /// What its applied funding parts drew from sponsorships and credits.
        pub drawn: u128,
        /// Funding parts the committee agreed on.
        pub parts: u32,
        /// Funding parts applied so far; the epoch is funded (claimable, a base) when all
        /// are.
        pub applied: u32,
        /// This finalization's sequence number (an epoch number vetoed and finalized again
        /// gets a new one, so draws of the vetoed instance never count).
        pub seq: u64,
    }

    impl EpochRecord {
        /// All its funding parts are applied: its total is reserved.
        pub fn funded(&self) -> bool {
            self.applied >= self.parts
        }
    }

    /// What one epoch took from a sponsorship or credit while it can still be vetoed.
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Pending {
        /// The epoch.
        pub epoch: u64,
        /// Its finalization's sequence number ([`EpochRecord::seq`]).
        pub seq: u64,
        /// What it took.
        pub amount: u128,
    }

    /// Money set aside for epochs to draw on: a sponsorship's or a downloader's credit.
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct Ledger {
        /// Deposited, less what settled epochs (past their window) took and refunds.
        pub left: u128,
        /// What epochs still in their window (or not funded yet) took; a vetoed epoch's
        /// entry no longer counts and is dropped.
        pub pending: Vec<Pending>,
    }

    /// A sponsor's deposit for a content.
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Sponsorship {
        /// Who deposited (gets the remainder back).
        pub funder: Address,
        /// The content.
        pub content: [u8; 32],
        /// Most an epoch draws (the deposit divided by the epochs, rounded down).
        pub per_epoch: u128,
        /// First epoch that may draw.
        pub first_epoch: u64,
        /// Last epoch that may draw.
        pub last_epoch: u64,
        /// Target replication the sponsor pays for.
        pub replicas: u32,
        /// Its money.
        pub ledger: Ledger,
    }

    /// A sponsorship as reads return it.
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SponsorshipView {
        /// Its id.
        pub id: u32,
        /// Who deposited.
        pub funder: Address,
        /// The content.
        pub content: [u8; 32],
        /// Most an epoch draws.
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

    /// A downloader's credit as reads return it.
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct CreditView {
        /// Everything deposited for the downloader.
        pub deposited: u128,
        /// Not debited by any final, not vetoed epoch.
        pub unspent: u128,
    }

    /// A downloader's credit as stored: (everything deposited, its ledger).
    pub type CreditEntry = (u128, Ledger);

    /// One draw on a sponsorship in a funding part: (sponsorship id, amount).
    pub type Draw = (u32, u128);

    /// One debit of a downloader's credit in a funding part: (downloader key, amount).
    pub type Debit = ([u8; 32], u128);

    /// The pool was funded.
    #[ink(event, anonymous)]
    pub struct Funded {
        from: Address,
        amount: u128,
    }

    /// A committee member submitted a root.
    #[ink(event, anonymous)]
    pub struct RootSubmitted {
        epoch: u64,
        base: Option<u64>,
        member: Address,
        root: [u8; 32],
        votes: u32,
    }

    /// An epoch reached the threshold and is final. Epoch numbers between `base` and
    /// `epoch` are skipped: they never pay.
    #[ink(event, anonymous)]
    pub struct EpochFinalized {
        epoch: u64,
        base: Option<u64>,
        root: [u8; 32],
        total: u128,
        batch: [u8; 32],
        claimable_from: u32,
        /// Funding parts still to apply before it is claimable.
        parts: u32,
    }

    /// An epoch was vetoed: by governance (`cause == epoch`) or because it built on the
    /// vetoed epoch `cause`.
    #[ink(event, anonymous)]
    pub struct EpochVetoed {
        epoch: u64,
        cause: u64,
    }

    /// A seeder's rewards were paid.
    #[ink(event, anonymous)]
    pub struct Claimed {
        epoch: u64,
        seeder: [u8; 32],
        payout: Address,
        amount: u128,
        /// Everything the seeder has been paid, this claim included.
        paid_to_seeder: u128,
    }

    /// A sponsor deposited for a content.
    #[ink(event, anonymous)]
    pub struct Sponsored {
        id: u32,
        funder: Address,
        content: [u8; 32],
        deposit: u128,
        per_epoch: u128,
        first_epoch: u64,
        last_epoch: u64,
        replicas: u32,
    }

    /// Someone added to a downloader's credit.
    #[ink(event, anonymous)]
    pub struct Credited {
        downloader: [u8; 32],
        from: Address,
        amount: u128,
        unspent: u128,
    }

    /// A funding part of an epoch was applied (`funded` once it was the last).
    #[ink(event, anonymous)]
    pub struct FundingApplied {
        epoch: u64,
        part: u32,
        drawn: u128,
        funded: bool,
    }

    /// A sponsor took back what its sponsorship's epochs did not draw.
    #[ink(event, anonymous)]
    pub struct Withdrawn {
        id: u32,
        funder: Address,
        amount: u128,
    }

    /// Governance changed the subsidy cap or the minimum deposit.
    #[ink(event, anonymous)]
    pub struct FundingLimitsChanged {
        max_epoch_subsidy: u128,
        min_deposit: u128,
    }

    /// Governance changed a setting.
    #[ink(event, anonymous)]
    pub struct SettingsChanged {
        committee: Vec<Address>,
        threshold: u32,
        challenge_blocks: u32,
        governance_timelock: u32,
        max_epoch_total: u128,
        paused: bool,
        governance: Address,
    }

    /// The reward pool.
    #[ink(storage)]
    pub struct RewardPool {
        governance: Address,
        committee: Committee,
        challenge_blocks: u32,
        /// The governance timelock (blocks), as governance told the pool.
        governance_timelock: u32,
        /// Most one epoch may add (native units).
        max_epoch_total: u128,
        paused: bool,
        epochs: Mapping<u64, EpochRecord>,
        /// The newest final, not vetoed epoch: the base of the next one, which must be
        /// newer. A veto moves it back, so a vetoed epoch number (even `u64::MAX`, from a
        /// stolen key) never stops later submissions.
        last_good_epoch: Option<u64>,
        /// (epoch, seeder) -> what that leaf paid (present once claimed).
        claimed: Mapping<LeafKey, u128>,
        /// Seeder -> everything paid to it (for display; claims check `claimed`).
        paid_to: Mapping<[u8; 32], u128>,
        /// Sum of the totals of final, not vetoed epochs (native units).
        good_total: u128,
        /// Everything claims paid (native units); never above `good_total`.
        paid_total: u128,
        /// Most an epoch may take from the free balance (its subsidy), native units.
        max_epoch_subsidy: u128,
        /// Smallest sponsorship per epoch and smallest credit deposit.
        min_deposit: u128,
        /// Finalizations so far (the next one's [`EpochRecord::seq`]).
        finalizations: u64,
        /// (finalization seq, part) -> the hash the committee agreed for that part.
        part_hashes: Mapping<PartKey, [u8; 32]>,
        /// Sponsorships by id (0, 1, ...).
        sponsorships: Mapping<u32, Sponsorship>,
        /// Sponsorships so far (the next id).
        sponsorship_count: u32,
        /// Downloader key -> (everything deposited, its ledger).
        credits: Mapping<[u8; 32], CreditEntry>,
        /// What sponsorships and credits hold that no final, not vetoed epoch took:
        /// excluded from the free balance.
        committed: u128,
    }

    impl RewardPool {
        /// A pool administered by `governance`, with an oracle committee, a challenge window
        /// in blocks, the governance timelock in blocks (the window must exceed it by
        /// [`VETO_MARGIN_BLOCKS`]) and the most one epoch may add (native units).
        #[ink(constructor)]
        pub fn new(
            governance: Address,
            committee: Vec<Address>,
            threshold: u32,
            challenge_blocks: u32,
            governance_timelock: u32,
            max_epoch_total: u128,
        ) -> Result<Self> {
            let mut members = Committee::default();
            if !members.set(committee, threshold) {
                return Err(Error::InvalidCommittee);
            }
            ensure_window(challenge_blocks, governance_timelock)?;
            Ok(Self {
                governance,
                committee: members,
                challenge_blocks,
                governance_timelock,
                max_epoch_total,
                paused: false,
                epochs: Mapping::default(),
                last_good_epoch: None,
                claimed: Mapping::default(),
                paid_to: Mapping::default(),
                good_total: 0,
                paid_total: 0,
                max_epoch_subsidy: max_epoch_total,
                min_deposit: DEFAULT_MIN_DEPOSIT,
                finalizations: 0,
                part_hashes: Mapping::default(),
                sponsorships: Mapping::default(),
                sponsorship_count: 0,
                credits: Mapping::default(),
                committed: 0,
            })
        }

        /// Adds the transferred value to the pool. Returns the amount in native units.
        #[ink(message, payable)]
        pub fn fund(&mut self) -> Result<u128> {
            let amount =
                evm_to_native(self.env().transferred_value()).ok_or(Error::FractionalValue)?;
            self.env().emit_event(Funded {
                from: self.env().caller(),
                amount,
            });
            Ok(amount)
        }

        /// A committee member's root for `epoch`, following `base` (which must be
        /// [`Self::last_good_epoch`], and funded). `subsidy` is the most the epoch takes
        /// from the free balance (at most the governance cap); `parts` are the hashes of
        /// its funding parts ([`Self::fund_part`]: draws on sponsorships, debits of
        /// credits), empty when the subsidy alone covers `total`. Returns true when this
        /// submission made the epoch final.
        #[ink(message)]
        #[allow(clippy::too_many_arguments)]
        pub fn submit(
            &mut self,
            epoch: u64,
            base: Option<u64>,
            root: [u8; 32],
            total: u128,
            batch: [u8; 32],
            subsidy: u128,
            parts: Vec<[u8; 32]>,
        ) -> Result<bool> {
            self.ensure_running()?;
            if self.last_good_epoch.is_some_and(|last| epoch <= last) {
                return Err(Error::EpochTooOld);
            }
            if base != self.last_good_epoch {
                return Err(Error::WrongBase);
            }
            if let Some(b) = base {
                if !self.epochs.get(b).ok_or(Error::EpochNotFinal)?.funded() {
                    return Err(Error::BaseNotFunded);
                }
            }
            if total > self.max_epoch_total {
                return Err(Error::EpochTotalTooLarge);
            }
            if subsidy > self.max_epoch_subsidy {
                return Err(Error::SubsidyTooLarge);
            }
            if parts.len() > MAX_FUNDING_PARTS as usize {
                return Err(Error::TooManyEntries);
            }
            if parts.is_empty() && total > subsidy {
                return Err(Error::Underfunded);
            }
            if root == merkle::EMPTY_ROOT && total != 0 {
                return Err(Error::InvalidRoot);
            }
            let caller = self.env().caller();
            if !self.committee.is_member(&caller) {
                return Err(Error::Unauthorized);
            }
            // Returning an error reverts the whole message, this vote included: a refused
            // epoch records nothing.
            let proposal = hash_encoded(&(base, root, total, batch, subsidy, &parts));
            let votes = self
                .committee
                .vote(epoch, caller, proposal)
                .map_err(|e| match e {
                    VoteError::NotMember => Error::Unauthorized,
                    VoteError::AlreadyVoted => Error::AlreadyVoted,
                })?;
            self.env().emit_event(RootSubmitted {
                epoch,
                base,
                member: caller,
                root,
                votes,
            });
            if !self.committee.reached(votes) {
                return Ok(false);
            }
            if parts.is_empty() {
                if total > self.free_balance() {
                    return Err(Error::InsufficientFunds);
                }
                self.good_total = self.good_total.checked_add(total).ok_or(Error::Overflow)?;
            }
            let base_claimable = match base {
                Some(b) => {
                    self.epochs
                        .get(b)
                        .ok_or(Error::EpochNotFinal)?
                        .claimable_from
                }
                None => 0,
            };
            let now = self.env().block_number();
            // Never claimable before its base: a veto of the base can still cascade here.
            let claimable_from = now
                .checked_add(self.challenge_blocks)
                .ok_or(Error::Overflow)?
                .max(base_claimable);
            let seq = self.finalizations;
            self.finalizations = seq.checked_add(1).ok_or(Error::Overflow)?;
            for (index, hash) in parts.iter().enumerate() {
                let index = u32::try_from(index).map_err(|_| Error::Overflow)?;
                self.part_hashes.insert((seq, index), hash);
            }
            let part_count = u32::try_from(parts.len()).map_err(|_| Error::Overflow)?;
            self.epochs.insert(
                epoch,
                &EpochRecord {
                    root,
                    total,
                    batch,
                    status: EpochStatus::Final,
                    final_block: now,
                    claimable_from,
                    base,
                    paid: 0,
                    subsidy,
                    drawn: 0,
                    parts: part_count,
                    applied: 0,
                    seq,
                },
            );
            self.last_good_epoch = Some(epoch);
            self.env().emit_event(EpochFinalized {
                epoch,
                base,
                root,
                total,
                batch,
                claimable_from,
                parts: part_count,
            });
            Ok(true)
        }

        /// Applies funding part `part` of the final epoch `epoch`: draws on sponsorships
        /// (`(id, amount)`) and debits of downloaders' credit (`(key, amount)`), checked
        /// against the hash the committee agreed for the part. Anyone may call it; parts go
        /// in order. Each draw must be inside the sponsorship's epochs, at most its amount
        /// per epoch, and each sponsorship or credit is drawn on at most once per epoch and
        /// never beyond what is left of it. After the last part, the epoch's total must be
        /// at most its subsidy plus everything drawn, and is reserved. Returns true when
        /// the epoch is funded.
        #[ink(message)]
        pub fn fund_part(
            &mut self,
            epoch: u64,
            part: u32,
            draws: Vec<Draw>,
            debits: Vec<Debit>,
        ) -> Result<bool> {
            self.ensure_running()?;
            let mut record = self.epochs.get(epoch).ok_or(Error::EpochNotFinal)?;
            if record.status == EpochStatus::Vetoed {
                return Err(Error::EpochVetoed);
            }
            if record.funded() || part != record.applied {
                return Err(Error::PartOutOfOrder);
            }
            if draws.len().saturating_add(debits.len()) > MAX_PART_ENTRIES as usize {
                return Err(Error::TooManyEntries);
            }
            let agreed = self
                .part_hashes
                .get((record.seq, part))
                .ok_or(Error::PartOutOfOrder)?;
            if hash_encoded(&(epoch, part, &draws, &debits)) != agreed {
                return Err(Error::BadPart);
            }
            let taken = Pending {
                epoch,
                seq: record.seq,
                amount: 0,
            };
            // The part's sums are checked first; each entry's own bounds in the loop (a
            // refused entry reverts the whole message, the entries before it included).
            let drawn = draws
                .iter()
                .map(|d| d.1)
                .chain(debits.iter().map(|d| d.1))
                .try_fold(0u128, |acc, amount| acc.checked_add(amount))
                .ok_or(Error::Overflow)?;
            record.drawn = record.drawn.checked_add(drawn).ok_or(Error::Overflow)?;
            record.applied = record.applied.saturating_add(1);
            let funded = record.funded();
            if funded {
                let covered = record
                    .subsidy
                    .checked_add(record.drawn)
                    .ok_or(Error::Overflow)?;
                if record.total > covered {
                    return Err(Error::Underfunded);
                }
                // What the draws bring becomes free (the committed total falls by it); the
                // subsidy's share comes from the free balance.
                let free = self.free_balance().saturating_add(drawn);
                if record.total > free {
                    return Err(Error::InsufficientFunds);
                }
            }
            for &(id, amount) in &draws {
                let mut sponsorship = self.sponsorships.get(id).ok_or(Error::UnknownSponsorship)?;
                if epoch < sponsorship.first_epoch || epoch > sponsorship.last_epoch {
                    return Err(Error::OutsideSponsorship);
                }
                if amount > sponsorship.per_epoch {
                    return Err(Error::DrawTooLarge);
                }
                self.take(&mut sponsorship.ledger, Pending { amount, ..taken })?;
                self.sponsorships.insert(id, &sponsorship);
            }
            for &(downloader, amount) in &debits {
                let (deposited, mut ledger) =
                    self.credits.get(downloader).ok_or(Error::Overdrawn)?;
                self.take(&mut ledger, Pending { amount, ..taken })?;
                self.credits.insert(downloader, &(deposited, ledger));
            }
            self.committed = self.committed.checked_sub(drawn).ok_or(Error::Overflow)?;
            if funded {
                // The challenge window runs from the funding: the draws are on chain only
                // now, and governance gets its whole window to veto them. (The next epoch
                // can only be finalized after this, so claimable_from still never
                // decreases along the chain.)
                let window_end = self
                    .env()
                    .block_number()
                    .checked_add(self.challenge_blocks)
                    .ok_or(Error::Overflow)?;
                record.claimable_from = record.claimable_from.max(window_end);
                self.good_total = self
                    .good_total
                    .checked_add(record.total)
                    .ok_or(Error::Overflow)?;
            }
            self.epochs.insert(epoch, &record);
            self.env().emit_event(FundingApplied {
                epoch,
                part,
                drawn,
                funded,
            });
            Ok(funded)
        }

        /// Takes `entry` from `ledger`: once per epoch, never more than is left.
        fn take(&self, ledger: &mut Ledger, entry: Pending) -> Result<()> {
            self.settle(ledger);
            if ledger.pending.iter().any(|p| p.epoch == entry.epoch) {
                return Err(Error::AlreadyDrawn);
            }
            if entry.amount == 0 || entry.amount > unspent(ledger) {
                return Err(Error::Overdrawn);
            }
            if ledger.pending.len() >= MAX_PENDING as usize {
                return Err(Error::TooManyPending);
            }
            ledger.pending.push(entry);
            Ok(())
        }

        /// Drops the entries of vetoed epochs (they never took anything) and settles those
        /// of funded epochs past their window (they can no longer be vetoed).
        fn settle(&self, ledger: &mut Ledger) {
            let now = self.env().block_number();
            let mut left = ledger.left;
            ledger.pending.retain(|p| match self.epochs.get(p.epoch) {
                Some(r) if r.seq == p.seq && r.status == EpochStatus::Final => {
                    if r.funded() && now >= r.claimable_from {
                        left = left.saturating_sub(p.amount);
                        false
                    } else {
                        true
                    }
                }
                _ => false,
            });
            ledger.left = left;
        }

        /// What no final, not vetoed epoch took from `ledger` (without settling it).
        fn unspent_of(&self, ledger: &Ledger) -> u128 {
            let taken = ledger
                .pending
                .iter()
                .filter(|p| {
                    self.epochs
                        .get(p.epoch)
                        .is_some_and(|r| r.seq == p.seq && r.status == EpochStatus::Final)
                })
                .fold(0u128, |acc, p| acc.saturating_add(p.amount));
            ledger.left.saturating_sub(taken)
        }

        /// A sponsor deposits the transferred value for `content`: `epochs` epochs from
        /// `first_epoch` (after the latest good epoch), at most `deposit / epochs` each,
        /// for a target of `replicas` replicas. The deposit is committed (not part of the free balance); what the
        /// epochs do not draw goes back to the sponsor ([`Self::withdraw`]). Returns the
        /// sponsorship's id.
        #[ink(message, payable)]
        pub fn sponsor(
            &mut self,
            content: [u8; 32],
            first_epoch: u64,
            epochs: u32,
            replicas: u32,
        ) -> Result<u32> {
            let deposit =
                evm_to_native(self.env().transferred_value()).ok_or(Error::FractionalValue)?;
            if epochs == 0
                || epochs > MAX_SPONSOR_EPOCHS
                || replicas == 0
                || replicas > MAX_REPLICAS
            {
                return Err(Error::InvalidSponsorship);
            }
            // Only epochs still to come: a sponsorship of past epochs could never be drawn
            // and would only be a free record for every close to read.
            if self.last_good_epoch.is_some_and(|last| first_epoch <= last) {
                return Err(Error::InvalidSponsorship);
            }
            let last_epoch = first_epoch
                .checked_add(u64::from(epochs) - 1)
                .ok_or(Error::InvalidSponsorship)?;
            let per_epoch = deposit / u128::from(epochs);
            if per_epoch < self.min_deposit.max(1) {
                return Err(Error::DepositTooSmall);
            }
            let id = self.sponsorship_count;
            self.sponsorship_count = id.checked_add(1).ok_or(Error::Overflow)?;
            self.committed = self.committed.checked_add(deposit).ok_or(Error::Overflow)?;
            let funder = self.env().caller();
            self.sponsorships.insert(
                id,
                &Sponsorship {
                    funder,
                    content,
                    per_epoch,
                    first_epoch,
                    last_epoch,
                    replicas,
                    ledger: Ledger {
                        left: deposit,
                        pending: Vec::new(),
                    },
                },
            );
            self.env().emit_event(Sponsored {
                id,
                funder,
                content,
                deposit,
                per_epoch,
                first_epoch,
                last_epoch,
                replicas,
            });
            Ok(id)
        }

        /// Adds the transferred value to `downloader`'s credit (anyone may fund anyone's
        /// key). Committed: not part of the free balance, and not refundable (the credit
        /// pays the seeders that serve the key). Returns the credit's unspent amount.
        #[ink(message, payable)]
        pub fn credit(&mut self, downloader: [u8; 32]) -> Result<u128> {
            let amount =
                evm_to_native(self.env().transferred_value()).ok_or(Error::FractionalValue)?;
            if amount < self.min_deposit.max(1) {
                return Err(Error::DepositTooSmall);
            }
            let (deposited, mut ledger) = self.credits.get(downloader).unwrap_or_default();
            self.settle(&mut ledger);
            ledger.left = ledger.left.checked_add(amount).ok_or(Error::Overflow)?;
            let deposited = deposited.checked_add(amount).ok_or(Error::Overflow)?;
            self.committed = self.committed.checked_add(amount).ok_or(Error::Overflow)?;
            let left = unspent(&ledger);
            self.credits.insert(downloader, &(deposited, ledger));
            self.env().emit_event(Credited {
                downloader,
                from: self.env().caller(),
                amount,
                unspent: left,
            });
            Ok(left)
        }

        /// The sponsor takes back what sponsorship `id` has left, once it can no longer be
        /// drawn on: `past` is a final epoch at or after the sponsorship's last one and out
        /// of its challenge window (funded, claimable: it can never be vetoed, so no epoch
        /// up to it is finalized again). Returns the amount paid back.
        #[ink(message)]
        pub fn withdraw(&mut self, id: u32, past: u64) -> Result<u128> {
            let mut sponsorship = self.sponsorships.get(id).ok_or(Error::UnknownSponsorship)?;
            if self.env().caller() != sponsorship.funder {
                return Err(Error::Unauthorized);
            }
            let now = self.env().block_number();
            let ended = past >= sponsorship.last_epoch
                && self.epochs.get(past).is_some_and(|r| {
                    r.status == EpochStatus::Final && r.funded() && now >= r.claimable_from
                });
            self.settle(&mut sponsorship.ledger);
            if !ended || !sponsorship.ledger.pending.is_empty() {
                return Err(Error::SponsorshipActive);
            }
            let amount = sponsorship.ledger.left;
            sponsorship.ledger.left = 0;
            self.committed = self.committed.checked_sub(amount).ok_or(Error::Overflow)?;
            self.sponsorships.insert(id, &sponsorship);
            if amount > 0 {
                self.env()
                    .transfer(sponsorship.funder, native_to_evm(amount))
                    .map_err(|_| Error::TransferFailed)?;
            }
            self.env().emit_event(Withdrawn {
                id,
                funder: sponsorship.funder,
                amount,
            });
            Ok(amount)
        }

        /// Sponsorship `id`.
        #[ink(message)]
        pub fn sponsorship(&self, id: u32) -> Option<SponsorshipView> {
            self.sponsorships.get(id).map(|s| self.view(id, &s))
        }

        /// Up to `count` (at most [`MAX_READ`]) sponsorships from id `from` on, and the
        /// number of sponsorships there are.
        #[ink(message)]
        pub fn sponsorships(&self, from: u32, count: u32) -> (Vec<SponsorshipView>, u32) {
            let end = from
                .saturating_add(count.min(MAX_READ))
                .min(self.sponsorship_count);
            let list = (from..end)
                .filter_map(|id| self.sponsorships.get(id).map(|s| self.view(id, &s)))
                .collect();
            (list, self.sponsorship_count)
        }

        fn view(&self, id: u32, s: &Sponsorship) -> SponsorshipView {
            SponsorshipView {
                id,
                funder: s.funder,
                content: s.content,
                per_epoch: s.per_epoch,
                first_epoch: s.first_epoch,
                last_epoch: s.last_epoch,
                replicas: s.replicas,
                unspent: self.unspent_of(&s.ledger),
            }
        }

        /// `downloader`'s credit.
        #[ink(message)]
        pub fn credit_of(&self, downloader: [u8; 32]) -> CreditView {
            self.credits
                .get(downloader)
                .map(|(deposited, ledger)| CreditView {
                    deposited,
                    unspent: self.unspent_of(&ledger),
                })
                .unwrap_or_default()
        }

        /// The credits of up to [`MAX_READ`] downloaders, in the order asked (longer lists
        /// are cut).
        #[ink(message)]
        pub fn credits_of(&self, downloaders: Vec<[u8; 32]>) -> Vec<CreditView> {
            downloaders
                .into_iter()
                .take(MAX_READ as usize)
                .map(|d| self.credit_of(d))
                .collect()
        }

        /// What sponsorships and credits hold that no final, not vetoed epoch took.
        #[ink(message)]
        pub fn committed(&self) -> u128 {
            self.committed
        }

        /// Governance sets the most an epoch may take from the free balance and the
        /// smallest deposit.
        #[ink(message)]
        pub fn set_funding_limits(
            &mut self,
            max_epoch_subsidy: u128,
            min_deposit: u128,
        ) -> Result<()> {
            self.ensure_governance()?;
            self.max_epoch_subsidy = max_epoch_subsidy;
            self.min_deposit = min_deposit;
            self.env().emit_event(FundingLimitsChanged {
                max_epoch_subsidy,
                min_deposit,
            });
            Ok(())
        }

        /// (most an epoch may take from the free balance, smallest deposit), native units.
        #[ink(message)]
        pub fn funding_limits(&self) -> (u128, u128) {
            (self.max_epoch_subsidy, self.min_deposit)
        }

        /// Governance vetoes a final epoch during its challenge window, and with it every
        /// later final epoch (they all built on it); the latest good epoch becomes the
        /// vetoed epoch's base. (It returns `Result<()>`: governance calls it.)
        #[ink(message)]
        pub fn veto(&mut self, epoch: u64) -> Result<()> {
            self.ensure_governance()?;
            let record = self.epochs.get(epoch).ok_or(Error::EpochNotFinal)?;
            if record.status == EpochStatus::Vetoed {
                return Err(Error::EpochVetoed);
            }
            let now = self.env().block_number();
            // An epoch whose funding never completed can be vetoed at any time: it paid
            // nothing, and the next epoch waits for it.
            if now >= record.claimable_from && record.funded() {
                return Err(Error::ChallengeWindowOver);
            }
            // The good epochs form one chain, newest first through `base`; `epoch` is on
            // it, and everything above it on the chain descends from it.
            let mut cursor = self.last_good_epoch;
            while let Some(current) = cursor {
                if current < epoch {
                    break;
                }
                let mut vetoed = self.epochs.get(current).ok_or(Error::EpochNotFinal)?;
                // Claimable no earlier than `epoch` (`claimable_from` grows along the
                // chain): nothing was paid from it.
                debug_assert!(now < vetoed.claimable_from || !vetoed.funded());
                vetoed.status = EpochStatus::Vetoed;
                self.epochs.insert(current, &vetoed);
                // Only a funded epoch reserved its total; what its parts drew is committed
                // again (those ledger entries no longer count).
                if vetoed.funded() {
                    self.good_total = self.good_total.saturating_sub(vetoed.total);
                }
                self.committed = self.committed.saturating_add(vetoed.drawn);
                self.env().emit_event(EpochVetoed {
                    epoch: current,
                    cause: epoch,
                });
                cursor = vetoed.base;
            }
            self.last_good_epoch = record.base;
            Ok(())
        }

        /// Pays `payout` what `seeder` earned in `epoch`, if the leaf is in that epoch's
        /// root and was not paid before. Anyone may call it. Returns the amount paid.
        #[ink(message)]
        pub fn claim(
            &mut self,
            epoch: u64,
            seeder: [u8; 32],
            payout: Address,
            amount: u128,
            proof: Vec<[u8; 32]>,
        ) -> Result<u128> {
            self.ensure_running()?;
            self.pay_leaf(epoch, seeder, payout, amount, &proof)
        }

        /// [`Self::claim`] for several leaves (any epochs, any seeders) in one call: all are
        /// paid or none (the first refusal reverts the call). Returns the total paid.
        #[ink(message)]
        pub fn claim_many(&mut self, claims: Vec<Claim>) -> Result<u128> {
            self.ensure_running()?;
            if claims.len() > MAX_CLAIMS_PER_CALL as usize {
                return Err(Error::TooManyClaims);
            }
            let mut total = 0u128;
            for c in &claims {
                let paid = self.pay_leaf(c.epoch, c.seeder, c.payout, c.amount, &c.proof)?;
                total = total.checked_add(paid).ok_or(Error::Overflow)?;
            }
            Ok(total)
        }

        fn pay_leaf(
            &mut self,
            epoch: u64,
            seeder: [u8; 32],
            payout: Address,
            amount: u128,
            proof: &[[u8; 32]],
        ) -> Result<u128> {
            let mut record = self.epochs.get(epoch).ok_or(Error::EpochNotFinal)?;
            if record.status == EpochStatus::Vetoed {
                return Err(Error::EpochVetoed);
            }
            if !record.funded() {
                return Err(Error::EpochNotFunded);
            }
            if self.env().block_number() < record.claimable_from {
                return Err(Error::InChallengeWindow);
            }
            if proof.len() > MAX_PROOF_LEN {
                return Err(Error::ProofTooLong);
            }
            let leaf = RewardLeaf {
                epoch: Epoch(epoch),
                seeder: NodeId(seeder),
                payout: PayoutAccount(payout.0),
                amount,
            };
            if !merkle::verify::<HostKeccak>(&record.root, &leaf.hash::<HostKeccak>(), proof) {
                return Err(Error::BadProof);
            }
            if amount == 0 || self.claimed.get((epoch, seeder)).is_some() {
                return Err(Error::AlreadyClaimed);
            }
            let epoch_paid = record.paid.checked_add(amount).ok_or(Error::Overflow)?;
            if epoch_paid > record.total {
                return Err(Error::LeafTooLarge);
            }
            let paid_total = self.paid_total.checked_add(amount).ok_or(Error::Overflow)?;
            if paid_total > self.good_total {
                return Err(Error::InsufficientFunds);
            }
            let paid_to_seeder = self
                .paid_to
                .get(seeder)
                .unwrap_or(0)
                .checked_add(amount)
                .ok_or(Error::Overflow)?;
            record.paid = epoch_paid;
            self.epochs.insert(epoch, &record);
            self.claimed.insert((epoch, seeder), &amount);
            self.paid_to.insert(seeder, &paid_to_seeder);
            self.paid_total = paid_total;
            self.env()
                .transfer(payout, native_to_evm(amount))
                .map_err(|_| Error::TransferFailed)?;
            self.env().emit_event(Claimed {
                epoch,
                seeder,
                payout,
                amount,
                paid_to_seeder,
            });
            Ok(amount)
        }

        /// Governance replaces the oracle committee (pending votes are discarded). The
        /// threshold must be a strict majority of the members.
        #[ink(message)]
        pub fn set_committee(&mut self, members: Vec<Address>, threshold: u32) -> Result<()> {
            self.ensure_governance()?;
            if !self.committee.set(members, threshold) {
                return Err(Error::InvalidCommittee);
            }
            self.settings_changed();
            Ok(())
        }

        /// Governance sets the challenge window for epochs that become final from now on
        /// (at least the governance timelock plus [`VETO_MARGIN_BLOCKS`]).
        #[ink(message)]
        pub fn set_challenge_blocks(&mut self, blocks: u32) -> Result<()> {
            self.ensure_governance()?;
            ensure_window(blocks, self.governance_timelock)?;
            self.challenge_blocks = blocks;
            self.settings_changed();
            Ok(())
        }

        /// Governance tells the pool its timelock (blocks); refused if the current window
        /// would then be too short to veto in.
        #[ink(message)]
        pub fn set_governance_timelock(&mut self, blocks: u32) -> Result<()> {
            self.ensure_governance()?;
            ensure_window(self.challenge_blocks, blocks)?;
            self.governance_timelock = blocks;
            self.settings_changed();
            Ok(())
        }

        /// Governance sets the most one epoch may add (native units).
        #[ink(message)]
        pub fn set_max_epoch_total(&mut self, total: u128) -> Result<()> {
            self.ensure_governance()?;
            self.max_epoch_total = total;
            self.settings_changed();
            Ok(())
        }

        /// Governance pauses or resumes submissions and claims.
        #[ink(message)]
        pub fn set_paused(&mut self, paused: bool) -> Result<()> {
            self.ensure_governance()?;
            self.paused = paused;
            self.settings_changed();
            Ok(())
        }

        /// Governance hands administration to another account.
        #[ink(message)]
        pub fn set_governance(&mut self, governance: Address) -> Result<()> {
            self.ensure_governance()?;
            self.governance = governance;
            self.settings_changed();
            Ok(())
        }

        /// A final (or vetoed) epoch.
        #[ink(message)]
        pub fn epoch(&self, epoch: u64) -> Option<EpochRecord> {
            self.epochs.get(epoch)
        }

        /// The hashes of the funding parts the committee agreed on for `epoch`'s current
        /// finalization, in order (empty for an epoch never final or without parts): what
        /// `oracle verify-epoch --chain` compares with the parts it recomputes from the
        /// published batch. At most [`MAX_FUNDING_PARTS`].
        #[ink(message)]
        pub fn funding_parts(&self, epoch: u64) -> Vec<[u8; 32]> {
            let Some(record) = self.epochs.get(epoch) else {
                return Vec::new();
            };
            (0..record.parts.min(MAX_FUNDING_PARTS))
                .filter_map(|index| self.part_hashes.get((record.seq, index)))
                .collect()
        }

        /// The newest final, not vetoed epoch: the `base` the next submission must name.
        #[ink(message)]
        pub fn last_good_epoch(&self) -> Option<u64> {
            self.last_good_epoch
        }

        /// What `seeder` has been paid in total.
        #[ink(message)]
        pub fn claimed(&self, seeder: [u8; 32]) -> u128 {
            self.paid_to.get(seeder).unwrap_or(0)
        }

        /// What `seeder`'s leaf of `epoch` paid (`None` while unclaimed).
        #[ink(message)]
        pub fn claimed_in(&self, epoch: u64, seeder: [u8; 32]) -> Option<u128> {
            self.claimed.get((epoch, seeder))
        }

        /// Reserved for final, not vetoed epochs and not yet paid (native units).
        #[ink(message)]
        pub fn reserved(&self) -> u128 {
            self.good_total.saturating_sub(self.paid_total)
        }

        /// (sum of the totals of final, not vetoed epochs, everything claims paid), native
        /// units. The second never exceeds the first.
        #[ink(message)]
        pub fn totals(&self) -> (u128, u128) {
            (self.good_total, self.paid_total)
        }

        /// Balance neither reserved for an epoch nor committed to a sponsorship or credit
        /// (native units).
        #[ink(message)]
        pub fn free_balance(&self) -> u128 {
            let whole_units = self.env().balance() / native_to_evm(1);
            u128::try_from(whole_units)
                .unwrap_or(u128::MAX)
                .saturating_sub(self.reserved())
                .saturating_sub(self.committed)
        }

        /// Committee members and threshold.
        #[ink(message)]
        pub fn committee(&self) -> (Vec<Address>, u32) {
            (
                self.committee.members().to_vec(),
                self.committee.threshold(),
            )
        }

        /// The current block number (epochs become claimable at `claimable_from`).
        #[ink(message)]
        pub fn current_block(&self) -> u32 {
            self.env().block_number()
        }

        /// Governance account, challenge window (blocks) and pause flag.
        #[ink(message)]
        pub fn settings(&self) -> (Address, u32, bool) {
            (self.governance, self.challenge_blocks, self.paused)
        }

        /// The governance timelock the window is checked against (blocks), and the most one
        /// epoch may add (native units).
        #[ink(message)]
        pub fn limits(&self) -> (u32, u128) {
            (self.governance_timelock, self.max_epoch_total)
        }

        fn ensure_governance(&self) -> Result<()> {
            if self.env().caller() == self.governance {
                Ok(())
            } else {
                Err(Error::Unauthorized)
            }
        }

        fn ensure_running(&self) -> Result<()> {
            if self.paused {
                Err(Error::Paused)
            } else {
                Ok(())
            }
        }

        fn settings_changed(&self) {
            self.env().emit_event(SettingsChanged {
                committee: self.committee.members().to_vec(),
                threshold: self.committee.threshold(),
                challenge_blocks: self.challenge_blocks,
                governance_timelock: self.governance_timelock,
                max_epoch_total: self.max_epoch_total,
                paused: self.paused,
                governance: self.governance,
            });
        }
    }

    /// What a settled ledger (only live entries pending) has not given.
    fn unspent(ledger: &Ledger) -> u128 {
        ledger
            .pending
            .iter()
            .fold(ledger.left, |acc, p| acc.saturating_sub(p.amount))
    }

    /// A window of `challenge_blocks` leaves a governance with `timelock` time to veto.
    fn ensure_window(challenge_blocks: u32, timelock: u32) -> Result<()> {
        if u64::from(challenge_blocks) < u64::from(timelock) + u64::from(VETO_MARGIN_BLOCKS) {
            Err(Error::WindowTooShort)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::reward_pool::*;
    use ink::env::test::{self, DefaultAccounts};
    use ink::env::DefaultEnvironment;
    use ink::{Address, U256};

    const ONE_UNIT: u128 = 1_000_000_000_000; // one native token (12 decimals)
    /// The challenge window of [`pool`] (governance timelock 0).
    const WINDOW: u32 = VETO_MARGIN_BLOCKS;
    /// The per-epoch cap of [`pool`].
    const CAP: u128 = 1_000 * ONE_UNIT;

    fn accounts() -> DefaultAccounts {
        test::default_accounts()
    }

    fn evm(native: u128) -> U256 {
        dsi_contracts_common::native_to_evm(native)
    }

    /// governance = alice (timelock 0); committee = bob, charlie, django (threshold 2);
    /// window of `WINDOW` blocks; at most `CAP` per epoch.
    fn pool() -> RewardPool {
        let a = accounts();
        test::set_caller(a.alice);
        RewardPool::new(a.alice, vec![a.bob, a.charlie, a.django], 2, WINDOW, 0, CAP).unwrap()
    }

    fn contract() -> Address {
        test::callee()
    }

    fn fund(pool: &mut RewardPool, native: u128) {
        let balance =
            test::get_account_balance::<DefaultEnvironment>(contract()).unwrap_or_default();
        test::set_account_balance(contract(), balance + evm(native));
        test::set_value_transferred(evm(native));
        assert_eq!(pool.fund(), Ok(native));
        test::set_value_transferred(U256::zero());
    }

    /// Submits on the pool's latest good epoch (what an honest oracle does).
    fn submit_as(
        pool: &mut RewardPool,
        who: Address,
        epoch: u64,
        root: [u8; 32],
        total: u128,
    ) -> Result<bool> {
        let base = pool.last_good_epoch();
        submit_on(pool, who, epoch, base, root, total)
    }

    fn submit_on(
        pool: &mut RewardPool,
        who: Address,
        epoch: u64,
        base: Option<u64>,
        root: [u8; 32],
        total: u128,
    ) -> Result<bool> {
        test::set_caller(who);
        pool.submit(epoch, base, root, total, [9; 32], total, Vec::new())
    }

    fn finalize(pool: &mut RewardPool, epoch: u64, root: [u8; 32], total: u128) {
        let a = accounts();
        assert_eq!(submit_as(pool, a.bob, epoch, root, total), Ok(false));
        assert_eq!(submit_as(pool, a.charlie, epoch, root, total), Ok(true));
    }

    fn advance(blocks: u32) {
        for _ in 0..blocks {
            test::advance_block::<DefaultEnvironment>();
        }
    }

    /// A one-leaf tree: its root is the leaf hash and the proof is empty.
    fn single_leaf_root(epoch: u64, seeder: [u8; 32], payout: Address, amount: u128) -> [u8; 32] {
        let leaf = dsi_protocol::RewardLeaf {
            epoch: dsi_protocol::Epoch(epoch),
            seeder: dsi_protocol::NodeId(seeder),
            payout: dsi_protocol::PayoutAccount(payout.0),
            amount,
        };
        leaf.hash::<dsi_contracts_common::HostKeccak>()
    }

    #[ink::test]
    fn constructor_rejects_bad_committees() {
        let a = accounts();
        let new = |members: Vec<Address>, threshold| {
            RewardPool::new(a.alice, members, threshold, WINDOW, 0, CAP).err()
        };
        assert_eq!(new(vec![], 1), Some(Error::InvalidCommittee));
        assert_eq!(new(vec![a.bob], 0), Some(Error::InvalidCommittee));
        assert_eq!(new(vec![a.bob], 2), Some(Error::InvalidCommittee));
        assert_eq!(new(vec![a.bob, a.bob], 1), Some(Error::InvalidCommittee));
        // Half the committee or less never decides: one stolen key of two cannot.
        assert_eq!(
            new(vec![a.bob, a.charlie], 1),
            Some(Error::InvalidCommittee)
        );
        assert_eq!(
            new(vec![a.bob, a.charlie, a.django, a.eve], 2),
            Some(Error::InvalidCommittee)
        );
        assert_eq!(new(vec![a.bob], 1), None, "1 of 1 stays allowed");
        assert_eq!(new(vec![a.bob, a.charlie], 2), None);
        let pool = pool();
        assert_eq!(pool.committee(), (vec![a.bob, a.charlie, a.django], 2));
        assert_eq!(pool.settings(), (a.alice, WINDOW, false));
        assert_eq!(pool.limits(), (0, CAP));
    }

    #[ink::test]
    fn funding_counts_whole_native_units() {
        let mut pool = pool();
        let start = pool.free_balance();
        fund(&mut pool, 5 * ONE_UNIT);
        assert_eq!(pool.free_balance(), start + 5 * ONE_UNIT);
        test::set_value_transferred(U256::from(1u8));
        assert_eq!(pool.fund(), Err(Error::FractionalValue));
    }

    #[ink::test]
    fn threshold_of_identical_submissions_finalizes_and_reserves() {
        let a = accounts();
        let mut pool = pool();
        let start = pool.free_balance();
        fund(&mut pool, 10 * ONE_UNIT);
        assert_eq!(
            submit_as(&mut pool, a.eve, 1, [1; 32], ONE_UNIT),
            Err(Error::Unauthorized)
        );
        assert_eq!(submit_as(&mut pool, a.bob, 1, [1; 32], ONE_UNIT), Ok(false));
        assert_eq!(
            submit_as(&mut pool, a.bob, 1, [1; 32], ONE_UNIT),
            Err(Error::AlreadyVoted)
        );
        // A different root does not add to the first one's votes.
        assert_eq!(
            submit_as(&mut pool, a.charlie, 1, [2; 32], ONE_UNIT),
            Ok(false)
        );
        assert_eq!(pool.epoch(1), None);
        assert_eq!(
            submit_as(&mut pool, a.django, 1, [1; 32], ONE_UNIT),
            Ok(true)
        );
        let record = pool.epoch(1).unwrap();
        assert_eq!(record.final_block, pool.current_block());
        assert_eq!(
            (record.root, record.total, record.status),
            ([1; 32], ONE_UNIT, EpochStatus::Final)
        );
        assert_eq!(record.claimable_from, record.final_block + WINDOW);
        assert_eq!((record.base, record.paid), (None, 0));
        assert_eq!(pool.reserved(), ONE_UNIT);
        assert_eq!(pool.free_balance(), start + 9 * ONE_UNIT);
        assert_eq!(pool.last_good_epoch(), Some(1));
        assert_eq!(
            submit_as(&mut pool, a.bob, 1, [1; 32], ONE_UNIT),
            Err(Error::EpochTooOld)
        );
        assert_eq!(
            submit_as(&mut pool, a.bob, 0, [1; 32], ONE_UNIT),
            Err(Error::EpochTooOld)
        );
    }

    #[ink::test]
    fn a_member_can_change_its_vote() {
        let a = accounts();
        let mut pool = pool();
        fund(&mut pool, 10 * ONE_UNIT);
        assert_eq!(submit_as(&mut pool, a.bob, 1, [1; 32], ONE_UNIT), Ok(false));
        // Bob recomputes and votes for [2; 32]: his vote for [1; 32] is withdrawn, so
        // Charlie's vote for [1; 32] alone does not reach the threshold.
        assert_eq!(submit_as(&mut pool, a.bob, 1, [2; 32], ONE_UNIT), Ok(false));
        assert_eq!(
            submit_as(&mut pool, a.charlie, 1, [1; 32], ONE_UNIT),
            Ok(false)
        );
        assert_eq!(pool.epoch(1), None);
        assert_eq!(
            submit_as(&mut pool, a.django, 1, [2; 32], ONE_UNIT),
            Ok(true)
        );
        assert_eq!(pool.epoch(1).unwrap().root, [2; 32]);
    }

    #[ink::test]
    fn unfunded_epochs_and_empty_roots_are_refused() {
        let a = accounts();
        let mut pool = pool();
        fund(&mut pool, ONE_UNIT);
        assert_eq!(
            submit_as(&mut pool, a.bob, 1, [0; 32], 1),
            Err(Error::InvalidRoot)
        );
        assert_eq!(
            submit_as(&mut pool, a.bob, 1, [1; 32], 2 * ONE_UNIT),
            Ok(false)
        );
        assert_eq!(
            submit_as(&mut pool, a.charlie, 1, [1; 32], 2 * ONE_UNIT),
            Err(Error::InsufficientFunds)
        );
        // An empty epoch (nothing earned) is fine.
        finalize(&mut pool, 2, [0; 32], 0);
    }

    #[ink::test]
    fn veto_only_by_governance_and_only_in_the_window() {
        let a = accounts();
        let mut pool = pool();
        fund(&mut pool, 10 * ONE_UNIT);
        test::set_caller(a.alice);
        assert_eq!(pool.veto(1), Err(Error::EpochNotFinal));
        finalize(&mut pool, 1, [1; 32], ONE_UNIT);
        test::set_caller(a.bob);
        assert_eq!(pool.veto(1), Err(Error::Unauthorized));
        test::set_caller(a.alice);
        assert_eq!(pool.veto(1), Ok(()));
        assert_eq!(pool.veto(1), Err(Error::EpochVetoed));
        assert_eq!(pool.reserved(), 0);
        assert_eq!(pool.epoch(1).unwrap().status, EpochStatus::Vetoed);
        assert_eq!(pool.last_good_epoch(), None);
        finalize(&mut pool, 2, [1; 32], ONE_UNIT);
        advance(WINDOW);
        test::set_caller(a.alice);
        assert_eq!(pool.veto(2), Err(Error::ChallengeWindowOver));
    }

    #[ink::test]
    fn claims_pay_each_leaf_once() {
        let a = accounts();
        let mut pool = pool();
        fund(&mut pool, 10 * ONE_UNIT);
        let seeder = [7u8; 32];
        let payout = a.frank;
        let root = single_leaf_root(1, seeder, payout, 3 * ONE_UNIT);
        finalize(&mut pool, 1, root, 3 * ONE_UNIT);
        test::set_caller(a.eve);
        assert_eq!(
            pool.claim(2, seeder, payout, 3 * ONE_UNIT, vec![]),
            Err(Error::EpochNotFinal)
        );
        assert_eq!(
            pool.claim(1, seeder, payout, 3 * ONE_UNIT, vec![]),
            Err(Error::InChallengeWindow)
        );
        advance(WINDOW);
        let before = test::get_account_balance::<DefaultEnvironment>(payout).unwrap_or_default();
        assert_eq!(
            pool.claim(1, seeder, payout, 4 * ONE_UNIT, vec![]),
            Err(Error::BadProof)
        );
        assert_eq!(
            pool.claim(1, seeder, a.eve, 3 * ONE_UNIT, vec![]),
            Err(Error::BadProof),
            "payout is part of the leaf"
        );
        assert_eq!(
            pool.claim(1, seeder, payout, 3 * ONE_UNIT, vec![[0; 32]; 65]),
            Err(Error::ProofTooLong)
        );
        assert_eq!(
            pool.claim(1, seeder, payout, 3 * ONE_UNIT, vec![]),
            Ok(3 * ONE_UNIT)
        );
        let after = test::get_account_balance::<DefaultEnvironment>(payout).unwrap();
        assert_eq!(after - before, evm(3 * ONE_UNIT));
        assert_eq!(
            pool.claim(1, seeder, payout, 3 * ONE_UNIT, vec![]),
            Err(Error::AlreadyClaimed)
        );
        assert_eq!(pool.claimed(seeder), 3 * ONE_UNIT);
        assert_eq!(pool.claimed_in(1, seeder), Some(3 * ONE_UNIT));
        assert_eq!(pool.epoch(1).unwrap().paid, 3 * ONE_UNIT);
        assert_eq!(pool.reserved(), 0);

        // Epochs 2 and 3: 2 and 1 units, claimed together; the epoch-1 leaf pays nothing
        // again, and a refused claim in the batch refuses the call.
        finalize(
            &mut pool,
            2,
            single_leaf_root(2, seeder, payout, 2 * ONE_UNIT),
            2 * ONE_UNIT,
        );
        finalize(
            &mut pool,
            3,
            single_leaf_root(3, seeder, payout, ONE_UNIT),
            ONE_UNIT,
        );
        advance(WINDOW);
        let claim = |epoch, amount| Claim {
            epoch,
            seeder,
            payout,
            amount,
            proof: vec![],
        };
        assert_eq!(
            pool.claim_many(vec![claim(1, 3 * ONE_UNIT), claim(2, 2 * ONE_UNIT)]),
            Err(Error::AlreadyClaimed)
        );
        assert_eq!(
            pool.claim_many(vec![
                claim(2, 2 * ONE_UNIT);
                MAX_CLAIMS_PER_CALL as usize + 1
            ]),
            Err(Error::TooManyClaims)
        );
        assert_eq!(pool.claimed_in(2, seeder), None);
        assert_eq!(
            pool.claim_many(vec![claim(2, 2 * ONE_UNIT), claim(3, ONE_UNIT)]),
            Ok(3 * ONE_UNIT)
        );
        assert_eq!(pool.claimed(seeder), 6 * ONE_UNIT);
        assert_eq!(pool.totals(), (6 * ONE_UNIT, 6 * ONE_UNIT));
        assert_eq!(
            pool.claim(3, seeder, payout, ONE_UNIT, vec![]),
            Err(Error::AlreadyClaimed)
        );
    }

    /// A stolen key of a 1-of-1 committee finalizes epoch `u64::MAX`, after which every
    /// honest epoch is older: vetoed in its window, it stops nothing.
    #[ink::test]
    fn a_vetoed_far_future_epoch_does_not_stop_the_pool() {
        let a = accounts();
        test::set_caller(a.alice);
        let mut pool = RewardPool::new(a.alice, vec![a.bob], 1, WINDOW, 0, CAP).unwrap();
        fund(&mut pool, 10 * ONE_UNIT);
        assert_eq!(submit_as(&mut pool, a.bob, 1, [1; 32], ONE_UNIT), Ok(true));
        assert_eq!(submit_as(&mut pool, a.bob, u64::MAX, [0; 32], 0), Ok(true));
        assert_eq!(
            submit_as(&mut pool, a.bob, 2, [2; 32], ONE_UNIT),
            Err(Error::EpochTooOld)
        );
        test::set_caller(a.alice);
        assert_eq!(pool.veto(u64::MAX), Ok(()));
        assert_eq!(pool.last_good_epoch(), Some(1));
        assert_eq!(submit_as(&mut pool, a.bob, 2, [2; 32], ONE_UNIT), Ok(true));
        assert_eq!(pool.epoch(2).unwrap().base, Some(1));
        assert_eq!(pool.reserved(), 2 * ONE_UNIT);
    }

    /// The attack left open by cumulative leaves: a stolen key of a 1-of-1 committee
    /// finalizes roots whose leaves give a fresh seeder everything other epochs reserved.
    /// Per-epoch accounting limits it to its own epoch's total, and the honest seeder of an
    /// earlier epoch is still paid in full.
    #[ink::test]
    fn a_stolen_committee_key_spends_at_most_its_own_epochs_total() {
        let a = accounts();
        test::set_caller(a.alice);
        let mut pool = RewardPool::new(a.alice, vec![a.bob], 1, WINDOW, 0, 3 * ONE_UNIT).unwrap();
        // Exactly what the two epochs below reserve.
        fund(&mut pool, 6 * ONE_UNIT);
        let honest = ([1u8; 32], a.frank);
        let thief = ([0xEE; 32], a.eve);
        let one = tree(1, &[(honest.0, honest.1, 3 * ONE_UNIT)]);
        assert_eq!(
            submit_as(&mut pool, a.bob, 1, one.root(), 3 * ONE_UNIT),
            Ok(true)
        );
        // A zero-total epoch whose only leaf is worth everything reserved.
        let two = tree(2, &[(thief.0, thief.1, 3 * ONE_UNIT)]);
        assert_eq!(submit_as(&mut pool, a.bob, 2, two.root(), 0), Ok(true));
        // An epoch at the cap whose leaf asks for more than the cap.
        let three = tree(3, &[(thief.0, thief.1, 6 * ONE_UNIT)]);
        assert_eq!(
            submit_as(&mut pool, a.bob, 3, three.root(), 3 * ONE_UNIT),
            Ok(true)
        );
        let four = tree(4, &[(thief.0, thief.1, 3 * ONE_UNIT)]);
        assert_eq!(
            submit_as(&mut pool, a.bob, 4, four.root(), 3 * ONE_UNIT),
            Err(Error::InsufficientFunds),
            "nothing left to reserve"
        );
        advance(WINDOW);
        test::set_caller(a.eve);
        assert_eq!(
            pool.claim(2, thief.0, thief.1, 3 * ONE_UNIT, two.proof(0).unwrap()),
            Err(Error::LeafTooLarge)
        );
        assert_eq!(
            pool.claim(3, thief.0, thief.1, 6 * ONE_UNIT, three.proof(0).unwrap()),
            Err(Error::LeafTooLarge)
        );
        assert_eq!(pool.claimed(thief.0), 0);
        // The honest leaf is paid in full.
        assert_eq!(
            pool.claim(1, honest.0, honest.1, 3 * ONE_UNIT, one.proof(0).unwrap()),
            Ok(3 * ONE_UNIT)
        );
        assert_eq!(pool.totals(), (6 * ONE_UNIT, 3 * ONE_UNIT));
    }

    #[ink::test]
    fn a_leaf_above_the_reserved_total_is_refused() {
        // A faulty oracle publishes a leaf worth more than the epoch total it
        // reserved: the claim must not dip into other epochs' money.
        let a = accounts();
        let mut pool = pool();
        fund(&mut pool, 10 * ONE_UNIT);
        let seeder = [8u8; 32];
        let root = single_leaf_root(1, seeder, a.frank, 5 * ONE_UNIT);
        finalize(&mut pool, 1, root, 2 * ONE_UNIT);
        advance(WINDOW);
        test::set_caller(a.eve);
        assert_eq!(
            pool.claim(1, seeder, a.frank, 5 * ONE_UNIT, vec![]),
            Err(Error::LeafTooLarge)
        );
        assert_eq!(pool.claimed(seeder), 0, "a refused claim records nothing");
        assert_eq!(pool.reserved(), 2 * ONE_UNIT);

        // Two leaves of 2 units each under a total of 2: each alone fits the epoch's
        // total, together they do not; the second is refused.
        let leaf = |seeder: [u8; 32]| dsi_protocol::RewardLeaf {
            epoch: dsi_protocol::Epoch(2),
            seeder: dsi_protocol::NodeId(seeder),
            payout: dsi_protocol::PayoutAccount(a.frank.0),
            amount: 2 * ONE_UNIT,
        };
        let tree =
            dsi_protocol::merkle::MerkleTree::from_leaves::<dsi_contracts_common::HostKeccak>(&[
                leaf([1; 32]),
                leaf([2; 32]),
            ]);
        finalize(&mut pool, 2, tree.root(), 2 * ONE_UNIT);
        advance(WINDOW);
        test::set_caller(a.eve);
        let proof = |i| tree.proof(i).unwrap();
        assert_eq!(
            pool.claim(2, [1; 32], a.frank, 2 * ONE_UNIT, proof(0)),
            Ok(2 * ONE_UNIT)
        );
        assert_eq!(
            pool.claim(2, [2; 32], a.frank, 2 * ONE_UNIT, proof(1)),
            Err(Error::LeafTooLarge)
        );
        assert_eq!(pool.totals(), (4 * ONE_UNIT, 2 * ONE_UNIT));
        assert_eq!(pool.epoch(2).unwrap().paid, 2 * ONE_UNIT);
    }

    #[ink::test]
    fn vetoed_epochs_pay_nothing() {
        let a = accounts();
        let mut pool = pool();
        fund(&mut pool, 10 * ONE_UNIT);
        let root = single_leaf_root(1, [7; 32], a.frank, ONE_UNIT);
        finalize(&mut pool, 1, root, ONE_UNIT);
        test::set_caller(a.alice);
        pool.veto(1).unwrap();
        advance(WINDOW);
        assert_eq!(
            pool.claim(1, [7; 32], a.frank, ONE_UNIT, vec![]),
            Err(Error::EpochVetoed)
        );
    }

    #[ink::test]
    fn governance_settings_and_pause() {
        let a = accounts();
        let mut pool = pool();
        test::set_caller(a.bob);
        assert_eq!(pool.set_committee(vec![a.bob], 1), Err(Error::Unauthorized));
        assert_eq!(pool.set_challenge_blocks(0), Err(Error::Unauthorized));
        assert_eq!(pool.set_governance_timelock(0), Err(Error::Unauthorized));
        assert_eq!(pool.set_max_epoch_total(0), Err(Error::Unauthorized));
        assert_eq!(pool.set_paused(true), Err(Error::Unauthorized));
        assert_eq!(pool.set_governance(a.bob), Err(Error::Unauthorized));
        test::set_caller(a.alice);
        assert_eq!(pool.set_committee(vec![], 1), Err(Error::InvalidCommittee));
        assert_eq!(
            pool.set_committee(vec![a.eve, a.frank], 1),
            Err(Error::InvalidCommittee),
            "1 of 2 is not a majority"
        );
        assert_eq!(pool.set_committee(vec![a.eve], 1), Ok(()));
        assert_eq!(
            pool.set_challenge_blocks(VETO_MARGIN_BLOCKS - 1),
            Err(Error::WindowTooShort)
        );
        assert_eq!(pool.set_challenge_blocks(VETO_MARGIN_BLOCKS), Ok(()));
        assert_eq!(pool.set_max_epoch_total(7), Ok(()));
        assert_eq!(pool.limits(), (0, 7));
        assert_eq!(pool.set_paused(true), Ok(()));
        assert_eq!(
            submit_as(&mut pool, a.eve, 1, [0; 32], 0),
            Err(Error::Paused)
        );
        assert_eq!(pool.claim(1, [0; 32], a.eve, 1, vec![]), Err(Error::Paused));
        test::set_caller(a.alice);
        assert_eq!(pool.set_paused(false), Ok(()));
        // The old committee no longer counts; the new one (threshold 1) decides alone.
        assert_eq!(
            submit_as(&mut pool, a.bob, 1, [0; 32], 0),
            Err(Error::Unauthorized)
        );
        assert_eq!(submit_as(&mut pool, a.eve, 1, [0; 32], 0), Ok(true));
        test::set_caller(a.alice);
        assert_eq!(pool.set_governance(a.bob), Ok(()));
        assert_eq!(pool.set_paused(true), Err(Error::Unauthorized));
        assert_eq!(pool.settings(), (a.bob, VETO_MARGIN_BLOCKS, false));
        assert!(
            test::recorded_events().count() >= 6,
            "every change emits an event"
        );
    }

    /// The protocol's golden Merkle vectors verify inside the contract (its keccak host
    /// function), and each leaf's claim pays exactly its amount.
    #[ink::test]
    fn golden_vectors_verify_in_the_contract() {
        let text = include_str!("../../protocol/tests/vectors/merkle.json");
        let vectors: serde_json::Value = serde_json::from_str(text).unwrap();
        let hex32 = |v: &serde_json::Value| -> [u8; 32] {
            hex::decode(v.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        };
        let root = hex32(&vectors["root"]);
        let leaves = vectors["leaves"].as_array().unwrap();
        let total: u128 = leaves
            .iter()
            .map(|l| {
                l["leaf"]["amount"]
                    .as_str()
                    .unwrap()
                    .parse::<u128>()
                    .unwrap()
            })
            .sum();
        let a = accounts();
        let mut pool = pool();
        fund(&mut pool, total);
        let epoch = leaves[0]["leaf"]["epoch"].as_u64().unwrap();
        finalize(&mut pool, epoch, root, total);
        advance(WINDOW);
        for entry in leaves {
            let leaf = &entry["leaf"];
            let seeder = hex32(&leaf["seeder"]);
            let payout: [u8; 20] =
                hex::decode(leaf["payout"].as_str().unwrap().trim_start_matches("0x"))
                    .unwrap()
                    .try_into()
                    .unwrap();
            let amount: u128 = leaf["amount"].as_str().unwrap().parse().unwrap();
            let proof: Vec<[u8; 32]> = entry["proof"]
                .as_array()
                .unwrap()
                .iter()
                .map(hex32)
                .collect();
            test::set_caller(a.eve);
            assert_eq!(
                pool.claim(epoch, seeder, Address::from(payout), amount, proof.clone()),
                Ok(amount)
            );
            let mut tampered = proof;
            if let Some(first) = tampered.first_mut() {
                first[0] ^= 1;
                assert_eq!(
                    pool.claim(epoch, seeder, Address::from(payout), amount, tampered),
                    Err(Error::BadProof)
                );
            }
        }
        assert_eq!(pool.reserved(), 0);
    }

    /// A tree over `(seeder, payout, amount)` leaves of `epoch`.
    fn tree(epoch: u64, leaves: &[([u8; 32], Address, u128)]) -> dsi_protocol::merkle::MerkleTree {
        let leaves: Vec<dsi_protocol::RewardLeaf> = leaves
            .iter()
            .map(|(seeder, payout, amount)| dsi_protocol::RewardLeaf {
                epoch: dsi_protocol::Epoch(epoch),
                seeder: dsi_protocol::NodeId(*seeder),
                payout: dsi_protocol::PayoutAccount(payout.0),
                amount: *amount,
            })
            .collect();
        dsi_protocol::merkle::MerkleTree::from_leaves::<dsi_contracts_common::HostKeccak>(&leaves)
    }

    #[ink::test]
    fn the_window_leaves_governance_time_to_veto() {
        let a = accounts();
        let new = |window, timelock| {
            RewardPool::new(a.alice, vec![a.bob], 1, window, timelock, CAP).err()
        };
        assert_eq!(new(10, 7), Some(Error::WindowTooShort));
        assert_eq!(
            new(10 + VETO_MARGIN_BLOCKS - 1, 10),
            Some(Error::WindowTooShort)
        );
        assert_eq!(new(10 + VETO_MARGIN_BLOCKS, 10), None);
        test::set_caller(a.alice);
        let mut pool = RewardPool::new(a.alice, vec![a.bob], 1, 20, 10, CAP).unwrap();
        assert_eq!(pool.set_challenge_blocks(13), Err(Error::WindowTooShort));
        assert_eq!(pool.set_governance_timelock(17), Err(Error::WindowTooShort));
        // Governance lengthening its timelock: first the window, then the timelock.
        assert_eq!(pool.set_challenge_blocks(30), Ok(()));
        assert_eq!(pool.set_governance_timelock(26), Ok(()));
        assert_eq!(pool.limits(), (26, CAP));
        assert_eq!(pool.settings().1, 30);
        assert_eq!(pool.set_challenge_blocks(29), Err(Error::WindowTooShort));
    }

    #[ink::test]
    fn epoch_totals_above_the_cap_are_refused() {
        // A stolen committee key (here the whole 1-of-1 committee) risks one epoch's cap,
        // not the pool.
        let a = accounts();
        test::set_caller(a.alice);
        let mut pool = RewardPool::new(a.alice, vec![a.bob], 1, WINDOW, 0, 3 * ONE_UNIT).unwrap();
        fund(&mut pool, 100 * ONE_UNIT);
        assert_eq!(
            submit_as(&mut pool, a.bob, 1, [1; 32], 3 * ONE_UNIT + 1),
            Err(Error::EpochTotalTooLarge)
        );
        assert_eq!(pool.epoch(1), None);
        assert_eq!(
            submit_as(&mut pool, a.bob, 1, [1; 32], 3 * ONE_UNIT),
            Ok(true)
        );
        test::set_caller(a.alice);
        assert_eq!(pool.set_max_epoch_total(ONE_UNIT), Ok(()));
        assert_eq!(
            submit_as(&mut pool, a.bob, 2, [1; 32], 2 * ONE_UNIT),
            Err(Error::EpochTotalTooLarge)
        );
        assert_eq!(pool.reserved(), 3 * ONE_UNIT);
    }

    /// The attack of issue 13 item 4: epochs 1, 2, 3 final, governance vetoes 2; the
    /// veto takes 3 with it (signed by the same committee), the oracle's next epoch follows
    /// 1, and every honest claim is paid from a pool funded with exactly what the epochs
    /// reserved.
    #[ink::test]
    fn a_veto_cascades_and_vetoed_money_never_comes_back() {
        let a = accounts();
        let mut pool = pool();
        let (s1, s2) = (([1; 32], a.frank), ([2; 32], a.eve));
        let leaves = |epoch, c1: u128, c2: u128| tree(epoch, &[(s1.0, s1.1, c1), (s2.0, s2.1, c2)]);
        // Epoch 1: 1 + 1. Epoch 2 (bad): s1 gets 10. Epoch 3 (honest, after 2): s2 gets 2.
        fund(&mut pool, 14 * ONE_UNIT);
        let free_at_start = pool.free_balance();
        let one = leaves(1, ONE_UNIT, ONE_UNIT);
        let two = tree(2, &[(s1.0, s1.1, 10 * ONE_UNIT)]);
        let three = tree(3, &[(s2.0, s2.1, 2 * ONE_UNIT)]);
        finalize(&mut pool, 1, one.root(), 2 * ONE_UNIT);
        finalize(&mut pool, 2, two.root(), 10 * ONE_UNIT);
        finalize(&mut pool, 3, three.root(), 2 * ONE_UNIT);
        assert_eq!(pool.epoch(3).unwrap().base, Some(2));
        assert_eq!(pool.reserved(), 14 * ONE_UNIT);

        // When: governance vetoes epoch 2.
        test::set_caller(a.alice);
        let events = test::recorded_events().count();
        assert_eq!(pool.veto(2), Ok(()));

        // Then: 3 is vetoed with it, the reservations of both are released, and the
        // latest good epoch is 1.
        assert_eq!(pool.epoch(1).unwrap().status, EpochStatus::Final);
        assert_eq!(pool.epoch(2).unwrap().status, EpochStatus::Vetoed);
        assert_eq!(pool.epoch(3).unwrap().status, EpochStatus::Vetoed);
        assert_eq!(
            test::recorded_events().count(),
            events + 2,
            "two EpochVetoed"
        );
        assert_eq!(pool.veto(3), Err(Error::EpochVetoed));
        assert_eq!(pool.last_good_epoch(), Some(1));
        assert_eq!(pool.reserved(), 2 * ONE_UNIT);
        assert_eq!(pool.free_balance(), free_at_start - 2 * ONE_UNIT);

        // The oracle's epoch 4 may not follow the vetoed epochs (or skip epoch 1).
        let four = leaves(4, ONE_UNIT, 2 * ONE_UNIT);
        for wrong in [Some(3), Some(2), None] {
            assert_eq!(
                submit_on(&mut pool, a.bob, 4, wrong, four.root(), 3 * ONE_UNIT),
                Err(Error::WrongBase),
                "base {wrong:?}"
            );
        }
        // Epoch 4 after 1: s1 earns 1, s2 earns 2.
        assert_eq!(
            submit_on(&mut pool, a.bob, 4, Some(1), four.root(), 3 * ONE_UNIT),
            Ok(false)
        );
        assert_eq!(
            submit_on(&mut pool, a.charlie, 4, Some(1), four.root(), 3 * ONE_UNIT),
            Ok(true)
        );
        assert_eq!(pool.epoch(4).unwrap().base, Some(1));
        // A faulty epoch 5 on the right base whose leaf still carries the vetoed 10.
        let faulty = tree(5, &[(s1.0, s1.1, 10 * ONE_UNIT)]);
        finalize(&mut pool, 5, faulty.root(), ONE_UNIT);
        advance(WINDOW);

        // Every honest claim is paid; the vetoed epochs pay nothing; the faulty leaf is
        // refused.
        test::set_caller(a.django);
        assert_eq!(
            pool.claim(2, s1.0, s1.1, 10 * ONE_UNIT, two.proof(0).unwrap()),
            Err(Error::EpochVetoed)
        );
        assert_eq!(
            pool.claim(3, s2.0, s2.1, 2 * ONE_UNIT, three.proof(0).unwrap()),
            Err(Error::EpochVetoed)
        );
        assert_eq!(
            pool.claim(5, s1.0, s1.1, 10 * ONE_UNIT, faulty.proof(0).unwrap()),
            Err(Error::LeafTooLarge)
        );
        for (epoch, tree, i, (seeder, payout), amount) in [
            (1, &one, 0, s1, ONE_UNIT),
            (1, &one, 1, s2, ONE_UNIT),
            (4, &four, 0, s1, ONE_UNIT),
            (4, &four, 1, s2, 2 * ONE_UNIT),
        ] {
            assert_eq!(
                pool.claim(epoch, seeder, payout, amount, tree.proof(i).unwrap()),
                Ok(amount),
                "epoch {epoch} leaf {i}"
            );
        }
        let (good, paid) = pool.totals();
        assert_eq!((good, paid), (6 * ONE_UNIT, 5 * ONE_UNIT));
        // The vetoed 12 units are still in the pool, free for later epochs.
        assert_eq!(pool.free_balance(), free_at_start - 6 * ONE_UNIT);
    }

    #[ink::test]
    fn claimable_from_never_decreases_along_the_chain() {
        // Governance shortens the window between two epochs: the later one still cannot be
        // claimed before the earlier one, so a veto of the earlier one (which cascades)
        // never reaches an epoch that already paid.
        let a = accounts();
        test::set_caller(a.alice);
        let mut pool = RewardPool::new(a.alice, vec![a.bob], 1, 10, 0, CAP).unwrap();
        fund(&mut pool, 10 * ONE_UNIT);
        let seeder = ([7; 32], a.frank);
        let one = tree(1, &[(seeder.0, seeder.1, ONE_UNIT)]);
        let two = tree(2, &[(seeder.0, seeder.1, ONE_UNIT)]);
        assert_eq!(
            submit_as(&mut pool, a.bob, 1, one.root(), ONE_UNIT),
            Ok(true)
        );
        test::set_caller(a.alice);
        pool.set_challenge_blocks(WINDOW).unwrap();
        advance(1);
        assert_eq!(
            submit_as(&mut pool, a.bob, 2, two.root(), ONE_UNIT),
            Ok(true)
        );
        let first = pool.epoch(1).unwrap().claimable_from;
        assert_eq!(pool.epoch(2).unwrap().claimable_from, first);
        advance(WINDOW + 1);
        test::set_caller(a.eve);
        assert_eq!(
            pool.claim(2, seeder.0, seeder.1, ONE_UNIT, two.proof(0).unwrap()),
            Err(Error::InChallengeWindow)
        );
        test::set_caller(a.alice);
        assert_eq!(pool.veto(1), Ok(()));
        assert_eq!(pool.epoch(2).unwrap().status, EpochStatus::Vetoed);
        assert_eq!(pool.totals(), (0, 0));
    }

    /// A deterministic xorshift generator (no proptest in this workspace).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// What the model oracle knows of an epoch it got final.
    struct ModelEpoch {
        epoch: u64,
        amounts: Vec<u128>,
        claimed: Vec<bool>,
        total: u128,
        tree: dsi_protocol::merkle::MerkleTree,
        claimable_from: u32,
        vetoed: bool,
    }

    /// How often a random run did each interesting thing.
    #[derive(Default)]
    struct Coverage {
        paid_claims: u32,
        vetoes: u32,
        cascades: u32,
        wrong_bases: u32,
        unfunded: u32,
    }

    /// One random run: submissions by a model oracle (per-epoch leaves, on the right base),
    /// vetoes, claims, fundings, blocks passing, and attempts to submit on a wrong base.
    fn random_run(seed: u64, coverage: &mut Coverage) {
        let a = accounts();
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        test::set_caller(a.alice);
        let mut pool = RewardPool::new(a.alice, vec![a.bob], 1, WINDOW, 0, CAP).unwrap();
        let seeders: Vec<([u8; 32], Address)> = [a.charlie, a.django, a.eve, a.frank]
            .into_iter()
            .enumerate()
            .map(|(i, payout)| ([i as u8 + 1; 32], payout))
            .collect();
        let mut epochs: Vec<ModelEpoch> = Vec::new();
        let mut paid = 0u128;
        let mut next_epoch = 1u64;
        fund(&mut pool, u128::from(rng.below(30)) * ONE_UNIT);
        for step in 0..60 {
            let now = pool.current_block();
            let good = || epochs.iter().filter(|e| !e.vetoed);
            let base = good().next_back().map(|e| e.epoch);
            assert_eq!(pool.last_good_epoch(), base, "seed {seed} step {step}");
            match rng.below(100) {
                0..=29 => {
                    let epoch = next_epoch + rng.below(2);
                    next_epoch = epoch + 1;
                    let amounts: Vec<u128> = seeders
                        .iter()
                        .map(|_| u128::from(rng.below(4)) * ONE_UNIT)
                        .collect();
                    let total: u128 = amounts.iter().sum();
                    let entries: Vec<([u8; 32], Address, u128)> = seeders
                        .iter()
                        .zip(&amounts)
                        .map(|((seeder, payout), c)| (*seeder, *payout, *c))
                        .collect();
                    let tree = tree(epoch, &entries);
                    // An attacker (or a stale oracle) names another base: refused.
                    let wrong = match rng.below(3) {
                        0 => epochs.iter().find(|e| e.vetoed).map(|e| Some(e.epoch)),
                        1 => good().next().map(|e| Some(e.epoch)),
                        _ => Some(None),
                    };
                    if let Some(wrong) = wrong.filter(|w| *w != base) {
                        assert_eq!(
                            submit_on(&mut pool, a.bob, epoch, wrong, tree.root(), total),
                            Err(Error::WrongBase),
                            "seed {seed} step {step}"
                        );
                        coverage.wrong_bases += 1;
                    }
                    let free = pool.free_balance();
                    let result = submit_on(&mut pool, a.bob, epoch, base, tree.root(), total);
                    if total > free {
                        // Not fundable: the oracle abandons it (the next one builds on the
                        // same base).
                        assert_eq!(result, Err(Error::InsufficientFunds));
                        coverage.unfunded += 1;
                        continue;
                    }
                    assert_eq!(result, Ok(true), "seed {seed} step {step}");
                    let record = pool.epoch(epoch).unwrap();
                    assert_eq!(record.base, base);
                    epochs.push(ModelEpoch {
                        epoch,
                        claimed: vec![false; amounts.len()],
                        amounts,
                        total,
                        tree,
                        claimable_from: record.claimable_from,
                        vetoed: false,
                    });
                }
                30..=44 => advance(rng.below(4) as u32),
                45..=51 if !epochs.is_empty() => {
                    let i = rng.below(epochs.len() as u64) as usize;
                    test::set_caller(a.alice);
                    let result = pool.veto(epochs[i].epoch);
                    if epochs[i].vetoed {
                        assert_eq!(result, Err(Error::EpochVetoed));
                    } else if now >= epochs[i].claimable_from {
                        assert_eq!(result, Err(Error::ChallengeWindowOver));
                    } else {
                        assert_eq!(result, Ok(()), "seed {seed} step {step}");
                        coverage.vetoes += 1;
                        // Everything after it built on it.
                        let mut count = 0;
                        for later in epochs[i..].iter_mut().filter(|e| !e.vetoed) {
                            assert!(now < later.claimable_from, "still in its window");
                            later.vetoed = true;
                            count += 1;
                        }
                        if count > 1 {
                            coverage.cascades += 1;
                        }
                    }
                }
                52..=61 => fund(&mut pool, u128::from(rng.below(25)) * ONE_UNIT),
                _ if !epochs.is_empty() => {
                    let i = rng.below(epochs.len() as u64) as usize;
                    let s = rng.below(seeders.len() as u64) as usize;
                    let e = &mut epochs[i];
                    let (seeder, payout) = seeders[s];
                    test::set_caller(a.alice);
                    let amount = e.amounts[s];
                    let result =
                        pool.claim(e.epoch, seeder, payout, amount, e.tree.proof(s).unwrap());
                    if e.vetoed {
                        assert_eq!(result, Err(Error::EpochVetoed));
                    } else if now < e.claimable_from {
                        assert_eq!(result, Err(Error::InChallengeWindow));
                    } else if amount == 0 || e.claimed[s] {
                        assert_eq!(result, Err(Error::AlreadyClaimed));
                    } else {
                        // No honest claim is refused for lack of funds.
                        assert_eq!(result, Ok(amount), "seed {seed} step {step}");
                        e.claimed[s] = true;
                        paid += amount;
                        coverage.paid_claims += 1;
                    }
                }
                _ => {}
            }
            // Invariants: the pool agrees with the model on every epoch's fate, and what
            // was paid never exceeds what final, not vetoed epochs added.
            for e in &epochs {
                let record = pool.epoch(e.epoch).unwrap();
                let status = record.status;
                let epoch_paid: u128 = e
                    .amounts
                    .iter()
                    .zip(&e.claimed)
                    .filter(|(_, c)| **c)
                    .map(|(a, _)| a)
                    .sum();
                assert_eq!(record.paid, epoch_paid, "seed {seed} step {step}");
                assert!(record.paid <= record.total);
                let expected = if e.vetoed {
                    EpochStatus::Vetoed
                } else {
                    EpochStatus::Final
                };
                assert_eq!(
                    status, expected,
                    "seed {seed} step {step} epoch {}",
                    e.epoch
                );
            }
            let good_total: u128 = epochs.iter().filter(|e| !e.vetoed).map(|e| e.total).sum();
            assert_eq!(pool.totals(), (good_total, paid), "seed {seed} step {step}");
            assert!(paid <= good_total);
        }
    }

    /// Property: over random runs of submit / veto / claim / fund with an oracle that
    /// submits on the right base, the total claimed never exceeds the totals of the
    /// final, not vetoed epochs, and no honest claim is refused for lack of funds.
    #[test]
    fn property_vetoed_money_never_pays_and_honest_claims_are_always_funded() {
        let mut coverage = Coverage::default();
        for seed in 1..=128u64 {
            // A fresh off-chain environment (storage, balances, blocks) per run.
            test::run_test::<DefaultEnvironment, _>(|_| {
                random_run(seed, &mut coverage);
                Ok(())
            })
            .unwrap();
        }
        // The runs did what they are meant to try.
        eprintln!(
            "paid {} vetoes {} cascades {} wrong bases {} unfunded {}",
            coverage.paid_claims,
            coverage.vetoes,
            coverage.cascades,
            coverage.wrong_bases,
            coverage.unfunded
        );
        assert!(coverage.paid_claims > 200, "{}", coverage.paid_claims);
        assert!(coverage.vetoes > 50, "{}", coverage.vetoes);
        assert!(coverage.cascades > 20, "{}", coverage.cascades);
        assert!(coverage.wrong_bases > 100, "{}", coverage.wrong_bases);
        assert!(coverage.unfunded > 20, "{}", coverage.unfunded);
    }

    // ---- Funding: sponsorships, credits, funding parts ----

    const CONTENT: [u8; 32] = [5; 32];
    const DOWNLOADER: [u8; 32] = [6; 32];

    /// Sends `native` with the next call, as `who`.
    fn pay_with(who: Address, native: u128) {
        let balance =
            test::get_account_balance::<DefaultEnvironment>(contract()).unwrap_or_default();
        test::set_account_balance(contract(), balance + evm(native));
        test::set_caller(who);
        test::set_value_transferred(evm(native));
    }

    fn sponsor(pool: &mut RewardPool, first_epoch: u64, epochs: u32, deposit: u128) -> Result<u32> {
        pay_with(accounts().eve, deposit);
        let id = pool.sponsor(CONTENT, first_epoch, epochs, 2);
        test::set_value_transferred(U256::zero());
        id
    }

    fn credit(pool: &mut RewardPool, downloader: [u8; 32], amount: u128) -> Result<u128> {
        pay_with(accounts().frank, amount);
        let unspent = pool.credit(downloader);
        test::set_value_transferred(U256::zero());
        unspent
    }

    /// One funding part: (draws, debits).
    type Part = (Vec<Draw>, Vec<Debit>);

    fn part_hash(epoch: u64, index: u32, part: &Part) -> [u8; 32] {
        dsi_contracts_common::hash_encoded(&(epoch, index, &part.0, &part.1))
    }

    /// Bob and Charlie finalize `epoch` (on the latest good epoch) with these parts.
    fn finalize_funded(
        pool: &mut RewardPool,
        epoch: u64,
        root: [u8; 32],
        total: u128,
        subsidy: u128,
        parts: &[Part],
    ) -> Result<bool> {
        let a = accounts();
        let hashes: Vec<[u8; 32]> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| part_hash(epoch, i as u32, p))
            .collect();
        let base = pool.last_good_epoch();
        for member in [a.bob, a.charlie] {
            test::set_caller(member);
            let made_final =
                pool.submit(epoch, base, root, total, [9; 32], subsidy, hashes.clone())?;
            if made_final {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Applies every part in order (as anyone: here Eve, not a member).
    fn apply(pool: &mut RewardPool, epoch: u64, parts: &[Part]) -> Result<bool> {
        test::set_caller(accounts().eve);
        let mut funded = false;
        for (i, (draws, debits)) in parts.iter().enumerate() {
            funded = pool.fund_part(epoch, i as u32, draws.clone(), debits.clone())?;
        }
        Ok(funded)
    }

    fn unspent(pool: &RewardPool, id: u32) -> u128 {
        pool.sponsorship(id).unwrap().unspent
    }

    #[ink::test]
    fn deposits_are_committed_and_only_agreed_parts_draw_on_them() {
        let a = accounts();
        let mut pool = pool();
        fund(&mut pool, 10 * ONE_UNIT);
        // 8 units over epochs 1..=4: at most 2 per epoch.
        assert_eq!(sponsor(&mut pool, 1, 4, 8 * ONE_UNIT), Ok(0));
        assert_eq!(
            credit(&mut pool, DOWNLOADER, 3 * ONE_UNIT),
            Ok(3 * ONE_UNIT)
        );
        assert_eq!(pool.committed(), 11 * ONE_UNIT);
        assert_eq!(
            pool.free_balance(),
            10 * ONE_UNIT + 1,
            "deposits are not the pool's to spend"
        );
        let view = pool.sponsorship(0).unwrap();
        assert_eq!(
            (
                view.funder,
                view.content,
                view.per_epoch,
                view.first_epoch,
                view.last_epoch
            ),
            (a.eve, CONTENT, 2 * ONE_UNIT, 1, 4)
        );
        // Deposits too small to matter, sponsorships of nothing, fractions of a unit.
        assert_eq!(
            credit(&mut pool, DOWNLOADER, 1),
            Err(Error::DepositTooSmall)
        );
        assert_eq!(
            sponsor(&mut pool, 1, 0, ONE_UNIT),
            Err(Error::InvalidSponsorship)
        );
        assert_eq!(
            sponsor(&mut pool, 1, 1_000, ONE_UNIT / 1_000_000),
            Err(Error::DepositTooSmall)
        );
        test::set_value_transferred(U256::from(1u8));
        assert_eq!(pool.credit(DOWNLOADER), Err(Error::FractionalValue));
        test::set_value_transferred(U256::zero());
        // (The off-chain test environment keeps a refused call's value: on chain it goes
        // back with the revert.)
        let free = pool.free_balance();

        // Epoch 1 pays 4: 2 drawn on the sponsorship, 2 debited from the credit.
        let seeder = [7u8; 32];
        let root = single_leaf_root(1, seeder, a.frank, 4 * ONE_UNIT);
        let part: Part = (vec![(0, 2 * ONE_UNIT)], vec![(DOWNLOADER, 2 * ONE_UNIT)]);
        assert_eq!(
            finalize_funded(&mut pool, 1, root, 4 * ONE_UNIT, 0, &[part.clone()]),
            Ok(true)
        );
        let record = pool.epoch(1).unwrap();
        assert_eq!(
            (record.parts, record.applied, record.funded()),
            (1, 0, false)
        );
        assert_eq!(
            pool.funding_parts(1),
            vec![part_hash(1, 0, &part)],
            "the agreed hashes can be read back"
        );
        assert!(pool.funding_parts(2).is_empty());
        assert_eq!(pool.reserved(), 0, "nothing is reserved before the parts");
        // Not claimable, and no epoch builds on it, until funded.
        advance(WINDOW);
        assert_eq!(
            pool.claim(1, seeder, a.frank, 4 * ONE_UNIT, vec![]),
            Err(Error::EpochNotFunded)
        );
        assert_eq!(
            finalize_funded(&mut pool, 2, [2; 32], 0, 0, &[]),
            Err(Error::BaseNotFunded)
        );
        // Only the part the committee agreed on, in order.
        test::set_caller(a.eve);
        let greedy: Part = (vec![(0, 2 * ONE_UNIT)], vec![(DOWNLOADER, 3 * ONE_UNIT)]);
        assert_eq!(
            pool.fund_part(1, 0, greedy.0, greedy.1),
            Err(Error::BadPart)
        );
        assert_eq!(
            pool.fund_part(1, 1, part.0.clone(), part.1.clone()),
            Err(Error::PartOutOfOrder)
        );
        assert_eq!(apply(&mut pool, 1, &[part.clone()]), Ok(true));
        assert_eq!(
            pool.fund_part(1, 0, part.0.clone(), part.1.clone()),
            Err(Error::PartOutOfOrder),
            "a part applies once"
        );
        assert_eq!(pool.reserved(), 4 * ONE_UNIT);
        assert_eq!(pool.committed(), 7 * ONE_UNIT);
        assert_eq!(pool.free_balance(), free, "the draws paid the whole total");
        assert_eq!(unspent(&pool, 0), 6 * ONE_UNIT);
        assert_eq!(pool.credit_of(DOWNLOADER).unspent, ONE_UNIT);
        assert_eq!(pool.credit_of(DOWNLOADER).deposited, 3 * ONE_UNIT);
        // Funded after its first window: the window starts again from the funding (the
        // draws became visible only now), and governance may still veto meanwhile.
        assert_eq!(
            pool.claim(1, seeder, a.frank, 4 * ONE_UNIT, vec![]),
            Err(Error::InChallengeWindow)
        );
        advance(WINDOW);
        assert_eq!(
            pool.claim(1, seeder, a.frank, 4 * ONE_UNIT, vec![]),
            Ok(4 * ONE_UNIT)
        );
    }

    #[ink::test]
    fn an_epoch_funded_late_can_still_be_vetoed_for_a_whole_window() {
        let a = accounts();
        let mut pool = pool();
        fund(&mut pool, 10 * ONE_UNIT);
        assert_eq!(
            credit(&mut pool, DOWNLOADER, 3 * ONE_UNIT),
            Ok(3 * ONE_UNIT)
        );
        let committed = pool.committed();
        // A root that debits the whole credit for a total of 1: agreed, then funded only
        // once its first window is over, and claimed at once (the attack).
        let greedy: Part = (vec![], vec![(DOWNLOADER, 3 * ONE_UNIT)]);
        assert_eq!(
            finalize_funded(&mut pool, 1, [1; 32], 1, 0, &[greedy.clone()]),
            Ok(true)
        );
        advance(WINDOW + 3);
        assert_eq!(apply(&mut pool, 1, &[greedy]), Ok(true));
        advance(WINDOW - 1);
        test::set_caller(a.alice);
        assert_eq!(pool.veto(1), Ok(()), "governance had no window to veto in");
        assert_eq!(
            pool.committed(),
            committed,
            "the debit is the downloader's again"
        );
        assert_eq!(pool.credit_of(DOWNLOADER).unspent, 3 * ONE_UNIT);
    }

    #[ink::test]
    fn parts_that_break_a_bound_are_refused_and_the_epoch_can_be_vetoed() {
        let a = accounts();
        let mut pool = pool();
        fund(&mut pool, 10 * ONE_UNIT);
        assert_eq!(sponsor(&mut pool, 1, 4, 8 * ONE_UNIT), Ok(0));
        assert_eq!(credit(&mut pool, DOWNLOADER, ONE_UNIT), Ok(ONE_UNIT));
        let committed = pool.committed();
        let free = pool.free_balance();
        let two = 2 * ONE_UNIT;
        // (epoch, total, subsidy, parts, the refusal)
        let cases: Vec<(u64, u128, u128, Vec<Part>, Error)> = vec![
            (
                1,
                3 * ONE_UNIT,
                0,
                vec![(vec![(0, 3 * ONE_UNIT)], vec![])],
                Error::DrawTooLarge,
            ),
            (
                1,
                two,
                0,
                vec![(vec![], vec![(DOWNLOADER, two)])],
                Error::Overdrawn,
            ),
            (
                1,
                1,
                0,
                vec![(vec![], vec![([8; 32], 1)])],
                Error::Overdrawn,
            ),
            (1, 0, 0, vec![(vec![(0, 0)], vec![])], Error::Overdrawn),
            (
                1,
                two,
                0,
                vec![(vec![(0, ONE_UNIT)], vec![]), (vec![(0, ONE_UNIT)], vec![])],
                Error::AlreadyDrawn,
            ),
            (
                1,
                3 * ONE_UNIT,
                0,
                vec![(vec![(0, two)], vec![])],
                Error::Underfunded,
            ),
            (
                9,
                two,
                0,
                vec![(vec![(0, two)], vec![])],
                Error::OutsideSponsorship,
            ),
            (
                1,
                two,
                0,
                vec![(vec![(7, two)], vec![])],
                Error::UnknownSponsorship,
            ),
        ];
        for (epoch, total, subsidy, parts, refusal) in cases {
            assert_eq!(
                finalize_funded(&mut pool, epoch, [1; 32], total, subsidy, &parts),
                Ok(true)
            );
            assert_eq!(apply(&mut pool, epoch, &parts), Err(refusal), "{refusal:?}");
            // Past its window, an epoch that never got funded can still be vetoed.
            advance(WINDOW);
            test::set_caller(a.alice);
            assert_eq!(pool.veto(epoch), Ok(()));
            assert_eq!(pool.last_good_epoch(), None);
            assert_eq!(pool.committed(), committed, "{refusal:?}");
            assert_eq!(pool.free_balance(), free);
        }
        // Too many parts, too many entries in one part.
        let hashes = vec![[1; 32]; MAX_FUNDING_PARTS as usize + 1];
        test::set_caller(a.bob);
        assert_eq!(
            pool.submit(1, None, [1; 32], 0, [9; 32], 0, hashes),
            Err(Error::TooManyEntries)
        );
        let big: Part = (
            (0..MAX_PART_ENTRIES).map(|i| (i, 1)).collect(),
            vec![(DOWNLOADER, 1)],
        );
        assert_eq!(
            finalize_funded(&mut pool, 1, [1; 32], 0, 0, &[big.clone()]),
            Ok(true)
        );
        assert_eq!(apply(&mut pool, 1, &[big]), Err(Error::TooManyEntries));
        // A subsidy above the cap, a total the subsidy alone does not cover.
        test::set_caller(a.bob);
        assert_eq!(
            pool.set_funding_limits(ONE_UNIT, 0),
            Err(Error::Unauthorized)
        );
        test::set_caller(a.alice);
        assert_eq!(pool.set_funding_limits(ONE_UNIT, 0), Ok(()));
        assert_eq!(pool.funding_limits(), (ONE_UNIT, 0));
        test::set_caller(a.bob);
        assert_eq!(
            pool.submit(2, Some(1), [1; 32], two, [9; 32], two, Vec::new()),
            Err(Error::BaseNotFunded)
        );
        test::set_caller(a.alice);
        assert_eq!(pool.veto(1), Ok(()));
        test::set_caller(a.bob);
        assert_eq!(
            pool.submit(2, None, [1; 32], two, [9; 32], two, Vec::new()),
            Err(Error::SubsidyTooLarge)
        );
        assert_eq!(
            pool.submit(2, None, [1; 32], two, [9; 32], ONE_UNIT, Vec::new()),
            Err(Error::Underfunded)
        );
    }

    #[ink::test]
    fn a_veto_gives_back_what_the_vetoed_epochs_drew() {
        let a = accounts();
        let mut pool = pool();
        fund(&mut pool, 10 * ONE_UNIT);
        assert_eq!(sponsor(&mut pool, 1, 4, 8 * ONE_UNIT), Ok(0));
        assert_eq!(
            credit(&mut pool, DOWNLOADER, 3 * ONE_UNIT),
            Ok(3 * ONE_UNIT)
        );
        let (committed, free) = (pool.committed(), pool.free_balance());
        let first: Part = (vec![(0, 2 * ONE_UNIT)], vec![(DOWNLOADER, ONE_UNIT)]);
        let second: Part = (vec![(0, 2 * ONE_UNIT)], vec![]);
        assert_eq!(
            finalize_funded(&mut pool, 1, [1; 32], 3 * ONE_UNIT, 0, &[first.clone()]),
            Ok(true)
        );
        assert_eq!(apply(&mut pool, 1, &[first.clone()]), Ok(true));
        // Epoch 2 pays 3: 2 drawn, 1 from the subsidy.
        assert_eq!(
            finalize_funded(
                &mut pool,
                2,
                [2; 32],
                3 * ONE_UNIT,
                ONE_UNIT,
                &[second.clone()]
            ),
            Ok(true)
        );
        assert_eq!(apply(&mut pool, 2, &[second]), Ok(true));
        assert_eq!(unspent(&pool, 0), 4 * ONE_UNIT);
        assert_eq!(pool.free_balance(), free - ONE_UNIT);
        // The veto of epoch 1 cascades to 2: both draws and the debit come back.
        test::set_caller(a.alice);
        assert_eq!(pool.veto(1), Ok(()));
        assert_eq!(pool.reserved(), 0);
        assert_eq!((pool.committed(), pool.free_balance()), (committed, free));
        assert_eq!(unspent(&pool, 0), 8 * ONE_UNIT);
        assert_eq!(pool.credit_of(DOWNLOADER).unspent, 3 * ONE_UNIT);
        // Epoch 1 finalized again draws again, once: the vetoed draw never counts.
        assert_eq!(
            finalize_funded(&mut pool, 1, [3; 32], 3 * ONE_UNIT, 0, &[first.clone()]),
            Ok(true)
        );
        assert_eq!(apply(&mut pool, 1, &[first]), Ok(true));
        assert_eq!(unspent(&pool, 0), 6 * ONE_UNIT);
        assert_eq!(pool.credit_of(DOWNLOADER).unspent, 2 * ONE_UNIT);
        assert_eq!(pool.committed(), committed - 3 * ONE_UNIT);
        assert_eq!(pool.free_balance(), free);
    }

    #[ink::test]
    fn a_sponsor_gets_back_what_its_epochs_did_not_draw() {
        let a = accounts();
        let mut pool = pool();
        fund(&mut pool, 10 * ONE_UNIT);
        assert_eq!(sponsor(&mut pool, 1, 4, 8 * ONE_UNIT), Ok(0));
        let draw: Part = (vec![(0, 2 * ONE_UNIT)], vec![]);
        let withdraw = |pool: &mut RewardPool, who, past| {
            test::set_caller(who);
            pool.withdraw(0, past)
        };
        assert_eq!(withdraw(&mut pool, a.eve, 4), Err(Error::SponsorshipActive));
        // Epochs 1 and 3 draw; 2 and 4 pay nothing.
        for epoch in 1..=4u64 {
            let parts = if epoch % 2 == 1 {
                vec![draw.clone()]
            } else {
                vec![]
            };
            let total = if parts.is_empty() { 0 } else { 2 * ONE_UNIT };
            let root = if total == 0 {
                [0; 32]
            } else {
                [epoch as u8; 32]
            };
            assert_eq!(
                finalize_funded(&mut pool, epoch, root, total, 0, &parts),
                Ok(true)
            );
            assert_eq!(apply(&mut pool, epoch, &parts), Ok(!parts.is_empty()));
        }
        // Epoch 4 can still be vetoed (and with it the draws' chain): not yet; epoch 3 is
        // before the sponsorship's end.
        assert_eq!(withdraw(&mut pool, a.eve, 4), Err(Error::SponsorshipActive));
        advance(WINDOW);
        assert_eq!(withdraw(&mut pool, a.eve, 3), Err(Error::SponsorshipActive));
        assert_eq!(withdraw(&mut pool, a.eve, 9), Err(Error::SponsorshipActive));
        // The network goes on: its newest epoch is always in its window, which does not
        // keep the sponsor waiting.
        assert_eq!(finalize_funded(&mut pool, 5, [0; 32], 0, 0, &[]), Ok(true));
        assert_eq!(withdraw(&mut pool, a.eve, 5), Err(Error::SponsorshipActive));
        assert_eq!(withdraw(&mut pool, a.bob, 4), Err(Error::Unauthorized));
        let before = test::get_account_balance::<DefaultEnvironment>(a.eve).unwrap_or_default();
        assert_eq!(withdraw(&mut pool, a.eve, 4), Ok(4 * ONE_UNIT));
        let after = test::get_account_balance::<DefaultEnvironment>(a.eve).unwrap_or_default();
        assert_eq!(after - before, evm(4 * ONE_UNIT));
        assert_eq!((pool.committed(), unspent(&pool, 0)), (0, 0));
        assert_eq!(withdraw(&mut pool, a.eve, 4), Ok(0), "nothing twice");
        // Epochs already final cannot be sponsored.
        assert_eq!(
            sponsor(&mut pool, 5, 2, 2 * ONE_UNIT),
            Err(Error::InvalidSponsorship)
        );
        assert_eq!(sponsor(&mut pool, 6, 2, 2 * ONE_UNIT), Ok(1));
        assert_eq!(
            pool.reserved(),
            4 * ONE_UNIT,
            "the draws stay reserved for claims"
        );
    }

    #[ink::test]
    fn sponsorships_are_read_in_bounded_pages() {
        let mut pool = pool();
        for _ in 0..3 {
            sponsor(&mut pool, 1, 1, ONE_UNIT).unwrap();
        }
        let (page, count) = pool.sponsorships(1, 10);
        assert_eq!(count, 3);
        assert_eq!(page.iter().map(|s| s.id).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(pool.sponsorships(0, u32::MAX).0.len(), 3);
        assert_eq!(pool.sponsorships(5, 1).0.len(), 0);
        let credits = pool.credits_of(vec![DOWNLOADER; MAX_READ as usize + 5]);
        assert_eq!(credits.len(), MAX_READ as usize);
        assert_eq!(credits[0], CreditView::default());
    }

    /// What the committed total should be: everything the sponsorships and credits have
    /// not given.
    fn ledgers_unspent(pool: &RewardPool, credits: &[[u8; 32]]) -> u128 {
        let (sponsorships, _) = pool.sponsorships(0, MAX_READ);
        let sponsored: u128 = sponsorships.iter().map(|s| s.unspent).sum();
        sponsored
            + credits
                .iter()
                .map(|c| pool.credit_of(*c).unspent)
                .sum::<u128>()
    }

    fn balance_native() -> u128 {
        let wei = test::get_account_balance::<DefaultEnvironment>(contract()).unwrap_or_default();
        (wei / evm(1)).as_u128()
    }

    /// One random run of deposits, funded epochs (parts that keep every entry's bound, with
    /// totals sometimes above what they cover), vetoes, blocks passing and withdrawals.
    fn random_funding_run(seed: u64, coverage: &mut [u32; 4]) {
        let a = accounts();
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut pool = pool();
        fund(&mut pool, 50 * ONE_UNIT);
        let credits: Vec<[u8; 32]> = (0..3u8).map(|i| [0x40 + i; 32]).collect();
        for _ in 0..3 {
            let epochs = 1 + rng.below(6) as u32;
            let deposit = u128::from(epochs) * (1 + u128::from(rng.below(5))) * ONE_UNIT;
            sponsor(&mut pool, 1 + rng.below(4), epochs, deposit).unwrap();
        }
        for c in &credits {
            credit(&mut pool, *c, (1 + u128::from(rng.below(4))) * ONE_UNIT).unwrap();
        }
        let mut epoch = 0u64;
        for _ in 0..40 {
            match rng.below(5) {
                0 | 1 => {
                    epoch = pool.last_good_epoch().unwrap_or(0).max(epoch) + 1;
                    let (views, _) = pool.sponsorships(0, MAX_READ);
                    let mut draws = Vec::new();
                    for v in views {
                        let (lo, hi) = (v.first_epoch, v.last_epoch);
                        if (lo..=hi).contains(&epoch) && v.unspent > 0 && rng.below(2) == 0 {
                            let most = v.per_epoch.min(v.unspent);
                            draws.push((v.id, 1 + u128::from(rng.below(4)) * most / 4));
                        }
                    }
                    let mut debits = Vec::new();
                    for c in &credits {
                        let left = pool.credit_of(*c).unspent;
                        if left > 0 && rng.below(2) == 0 {
                            debits.push((*c, 1 + u128::from(rng.below(4)) * (left - 1) / 4));
                        }
                    }
                    let drawn: u128 = draws.iter().map(|d| d.1).sum::<u128>()
                        + debits.iter().map(|d| d.1).sum::<u128>();
                    let subsidy = u128::from(rng.below(3)) * ONE_UNIT;
                    // Sometimes more than the parts and subsidy cover.
                    let total = (drawn + subsidy) * u128::from(3 + rng.below(2)) / 4;
                    let parts: Vec<Part> = if draws.is_empty() && debits.is_empty() {
                        vec![]
                    } else {
                        vec![(draws, debits)]
                    };
                    let root = if total == 0 {
                        [0; 32]
                    } else {
                        [epoch as u8 | 1; 32]
                    };
                    let subsidy = if parts.is_empty() {
                        subsidy.max(total)
                    } else {
                        subsidy
                    };
                    if finalize_funded(&mut pool, epoch, root, total, subsidy, &parts) == Ok(true) {
                        let before = pool.committed();
                        match apply(&mut pool, epoch, &parts) {
                            Ok(_) => coverage[0] += 1,
                            Err(e) => {
                                assert!(
                                    matches!(e, Error::Underfunded | Error::InsufficientFunds),
                                    "{e:?}"
                                );
                                assert_eq!(pool.committed(), before, "a refused part drew");
                                // Never funded: governance vetoes it, whenever.
                                test::set_caller(a.alice);
                                assert_eq!(pool.veto(epoch), Ok(()));
                            }
                        }
                    }
                }
                2 => {
                    if let Some(last) = pool.last_good_epoch() {
                        let target = last.saturating_sub(rng.below(3)).max(1);
                        test::set_caller(a.alice);
                        let drew = pool.epoch(target).is_some_and(|r| r.drawn > 0);
                        if pool.veto(target).is_ok() && drew {
                            coverage[1] += 1;
                        }
                    }
                }
                3 => advance(1 + rng.below(WINDOW as u64 + 2) as u32),
                _ => {
                    test::set_caller(a.eve);
                    let past = pool
                        .last_good_epoch()
                        .unwrap_or(0)
                        .saturating_sub(rng.below(4));
                    if let Ok(paid) = pool.withdraw(rng.below(3) as u32, past) {
                        if paid > 0 {
                            coverage[2] += 1;
                        }
                    }
                }
            }
            assert_eq!(
                pool.committed(),
                ledgers_unspent(&pool, &credits),
                "seed {seed}"
            );
            assert!(
                balance_native() >= pool.reserved() + pool.committed(),
                "seed {seed}: the pool owes more than it holds"
            );
            assert_eq!(
                pool.free_balance(),
                balance_native() - pool.reserved() - pool.committed()
            );
            coverage[3] += 1;
        }
    }

    /// Property: whatever funded epochs, vetoes and withdrawals happen, the committed total
    /// is exactly what the sponsorships and credits have left, and the pool always holds
    /// the reserved and committed money.
    #[test]
    fn property_committed_money_is_what_the_ledgers_hold() {
        let mut coverage = [0u32; 4];
        for seed in 1..=64u64 {
            test::run_test::<DefaultEnvironment, _>(|_| {
                random_funding_run(seed, &mut coverage);
                Ok(())
            })
            .unwrap();
        }
        eprintln!(
            "funded {} vetoes with draws {} withdrawals {} steps {}",
            coverage[0], coverage[1], coverage[2], coverage[3]
        );
        assert!(coverage[0] > 100, "{coverage:?}");
        assert!(coverage[1] > 20, "{coverage:?}");
        assert!(coverage[2] > 5, "{coverage:?}");
    }
}
