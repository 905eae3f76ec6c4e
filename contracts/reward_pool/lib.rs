//! # reward_pool: epoch roots from the oracle committee, claims with Merkle proofs
//!
//! - Anyone funds the pool (`fund`, payable).
//! - Oracle committee members `submit(epoch, base, root, total, batch)`. An epoch becomes
//!   final when `threshold` members (a strict majority, see
//!   [`dsi_contracts_common::valid_committee`]) submitted the same (base, root, total,
//!   batch); its `total` is then reserved from the free balance (an epoch the pool cannot
//!   pay is refused), and a `total` above the governance-set `max_epoch_total` is refused at
//!   every vote, so a stolen committee key risks one epoch's budget, never the pool.
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
//!   `reserved = good_total − paid_total`.
//! - Governance (one account: the governance contract) sets the committee, the window, the
//!   per-epoch cap, and can pause claims and submissions.
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
    }

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
        /// [`Self::last_good_epoch`]). Returns true when this
        /// submission made the epoch final.
        #[ink(message)]
        pub fn submit(
            &mut self,
            epoch: u64,
            base: Option<u64>,
            root: [u8; 32],
            total: u128,
            batch: [u8; 32],
        ) -> Result<bool> {
            self.ensure_running()?;
            if self.last_good_epoch.is_some_and(|last| epoch <= last) {
                return Err(Error::EpochTooOld);
            }
            if base != self.last_good_epoch {
                return Err(Error::WrongBase);
            }
            if total > self.max_epoch_total {
                return Err(Error::EpochTotalTooLarge);
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
            let proposal = hash_encoded(&(base, root, total, batch));
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
            if total > self.free_balance() {
                return Err(Error::InsufficientFunds);
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
            self.good_total = self.good_total.checked_add(total).ok_or(Error::Overflow)?;
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
            });
            Ok(true)
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
            if now >= record.claimable_from {
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
                debug_assert!(now < vetoed.claimable_from);
                vetoed.status = EpochStatus::Vetoed;
                self.epochs.insert(current, &vetoed);
                self.good_total = self.good_total.saturating_sub(vetoed.total);
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

        /// Balance not reserved for any epoch (native units).
        #[ink(message)]
        pub fn free_balance(&self) -> u128 {
            let whole_units = self.env().balance() / native_to_evm(1);
            u128::try_from(whole_units)
                .unwrap_or(u128::MAX)
                .saturating_sub(self.reserved())
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
        pool.submit(epoch, base, root, total, [9; 32])
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
}
