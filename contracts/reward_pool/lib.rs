//! # reward_pool: epoch roots from the oracle committee, claims with Merkle proofs
//!
//! - Anyone funds the pool (`fund`, payable).
//! - Oracle committee members `submit(epoch, root, total, batch)`. An epoch becomes final
//!   when `threshold` members submitted the same (root, total, batch); its `total` is then
//!   reserved from the free balance (an epoch the pool cannot pay is refused). Epochs become
//!   final in increasing order.
//! - A challenge window of `challenge_blocks` follows, during which governance can `veto`
//!   the epoch (its reservation is released).
//! - After the window, anyone may `claim(epoch, seeder, payout, cumulative, proof)`: the
//!   leaf `(epoch, seeder, payout, cumulative)` must be in the epoch's root
//!   (`dsi_protocol::merkle`, keccak host function), and the pool pays `payout` the
//!   difference between `cumulative` (everything the seeder earned up to that epoch) and
//!   what the seeder already claimed. One claim covers any number of epochs; a repeated or
//!   stale claim pays nothing.
//! - Governance (one account: the governance contract) sets the committee, the window, and
//!   can pause claims and submissions.
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

    /// Everything that can go wrong.
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Error {
        /// The caller may not do this (not governance, not a committee member).
        Unauthorized,
        /// Members and threshold do not make a committee (empty, duplicates, bad threshold).
        InvalidCommittee,
        /// This member already submitted this same root for this epoch.
        AlreadyVoted,
        /// The epoch is not newer than the last final epoch.
        EpochTooOld,
        /// The pool's free balance cannot cover the epoch's total.
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
        /// The seeder already claimed this much or more.
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
        /// Vetoed by governance during the challenge window.
        Vetoed,
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
        member: Address,
        root: [u8; 32],
        votes: u32,
    }

    /// An epoch reached the threshold and is final.
    #[ink(event, anonymous)]
    pub struct EpochFinalized {
        epoch: u64,
        root: [u8; 32],
        total: u128,
        batch: [u8; 32],
        claimable_from: u32,
    }

    /// Governance vetoed an epoch.
    #[ink(event, anonymous)]
    pub struct EpochVetoed {
        epoch: u64,
    }

    /// A seeder's rewards were paid.
    #[ink(event, anonymous)]
    pub struct Claimed {
        epoch: u64,
        seeder: [u8; 32],
        payout: Address,
        amount: u128,
        cumulative: u128,
    }

    /// Governance changed a setting.
    #[ink(event, anonymous)]
    pub struct SettingsChanged {
        committee: Vec<Address>,
        threshold: u32,
        challenge_blocks: u32,
        paused: bool,
        governance: Address,
    }

    /// The reward pool.
    #[ink(storage)]
    pub struct RewardPool {
        governance: Address,
        committee: Committee,
        challenge_blocks: u32,
        paused: bool,
        epochs: Mapping<u64, EpochRecord>,
        last_final_epoch: Option<u64>,
        /// Seeder -> cumulative amount already paid.
        claimed: Mapping<[u8; 32], u128>,
        /// Reserved for final epochs and not yet paid (native units).
        reserved: u128,
    }

    impl RewardPool {
        /// A pool administered by `governance`, with an oracle committee and a challenge
        /// window in blocks.
        #[ink(constructor)]
        pub fn new(
            governance: Address,
            committee: Vec<Address>,
            threshold: u32,
            challenge_blocks: u32,
        ) -> Result<Self> {
            let mut members = Committee::default();
            if !members.set(committee, threshold) {
                return Err(Error::InvalidCommittee);
            }
            Ok(Self {
                governance,
                committee: members,
                challenge_blocks,
                paused: false,
                epochs: Mapping::default(),
                last_final_epoch: None,
                claimed: Mapping::default(),
                reserved: 0,
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

        /// A committee member's root for `epoch`. Returns true when this submission made
        /// the epoch final.
        #[ink(message)]
        pub fn submit(
            &mut self,
            epoch: u64,
            root: [u8; 32],
            total: u128,
            batch: [u8; 32],
        ) -> Result<bool> {
            self.ensure_running()?;
            if self.last_final_epoch.is_some_and(|last| epoch <= last) {
                return Err(Error::EpochTooOld);
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
            let proposal = hash_encoded(&(root, total, batch));
            let votes = self
                .committee
                .vote(epoch, caller, proposal)
                .map_err(|e| match e {
                    VoteError::NotMember => Error::Unauthorized,
                    VoteError::AlreadyVoted => Error::AlreadyVoted,
                })?;
            self.env().emit_event(RootSubmitted {
                epoch,
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
            let now = self.env().block_number();
            let claimable_from = now
                .checked_add(self.challenge_blocks)
                .ok_or(Error::Overflow)?;
            self.reserved = self.reserved.checked_add(total).ok_or(Error::Overflow)?;
            self.epochs.insert(
                epoch,
                &EpochRecord {
                    root,
                    total,
                    batch,
                    status: EpochStatus::Final,
                    final_block: now,
                    claimable_from,
                },
            );
            self.last_final_epoch = Some(epoch);
            self.env().emit_event(EpochFinalized {
                epoch,
                root,
                total,
                batch,
                claimable_from,
            });
            Ok(true)
        }

        /// Governance vetoes a final epoch during its challenge window.
        #[ink(message)]
        pub fn veto(&mut self, epoch: u64) -> Result<()> {
            self.ensure_governance()?;
            let mut record = self.epochs.get(epoch).ok_or(Error::EpochNotFinal)?;
            if record.status == EpochStatus::Vetoed {
                return Err(Error::EpochVetoed);
            }
            if self.env().block_number() >= record.claimable_from {
                return Err(Error::ChallengeWindowOver);
            }
            record.status = EpochStatus::Vetoed;
            self.epochs.insert(epoch, &record);
            self.reserved = self.reserved.saturating_sub(record.total);
            self.env().emit_event(EpochVetoed { epoch });
            Ok(())
        }

        /// Pays `payout` what `seeder` earned up to `epoch` and has not been paid, if the
        /// leaf is in that epoch's root. Anyone may call it. Returns the amount paid.
        #[ink(message)]
        pub fn claim(
            &mut self,
            epoch: u64,
            seeder: [u8; 32],
            payout: Address,
            cumulative: u128,
            proof: Vec<[u8; 32]>,
        ) -> Result<u128> {
            self.ensure_running()?;
            let record = self.epochs.get(epoch).ok_or(Error::EpochNotFinal)?;
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
                cumulative,
            };
            if !merkle::verify::<HostKeccak>(&record.root, &leaf.hash::<HostKeccak>(), &proof) {
                return Err(Error::BadProof);
            }
            let already = self.claimed.get(seeder).unwrap_or(0);
            if cumulative <= already {
                return Err(Error::AlreadyClaimed);
            }
            let amount = cumulative - already;
            if amount > self.reserved {
                return Err(Error::InsufficientFunds);
            }
            self.claimed.insert(seeder, &cumulative);
            self.reserved -= amount;
            self.env()
                .transfer(payout, native_to_evm(amount))
                .map_err(|_| Error::TransferFailed)?;
            self.env().emit_event(Claimed {
                epoch,
                seeder,
                payout,
                amount,
                cumulative,
            });
            Ok(amount)
        }

        /// Governance replaces the oracle committee (pending votes are discarded).
        #[ink(message)]
        pub fn set_committee(&mut self, members: Vec<Address>, threshold: u32) -> Result<()> {
            self.ensure_governance()?;
            if !self.committee.set(members, threshold) {
                return Err(Error::InvalidCommittee);
            }
            self.settings_changed();
            Ok(())
        }

        /// Governance sets the challenge window for epochs that become final from now on.
        #[ink(message)]
        pub fn set_challenge_blocks(&mut self, blocks: u32) -> Result<()> {
            self.ensure_governance()?;
            self.challenge_blocks = blocks;
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

        /// The newest final epoch.
        #[ink(message)]
        pub fn last_final_epoch(&self) -> Option<u64> {
            self.last_final_epoch
        }

        /// What `seeder` has been paid in total.
        #[ink(message)]
        pub fn claimed(&self, seeder: [u8; 32]) -> u128 {
            self.claimed.get(seeder).unwrap_or(0)
        }

        /// Reserved for final epochs and not yet paid (native units).
        #[ink(message)]
        pub fn reserved(&self) -> u128 {
            self.reserved
        }

        /// Balance not reserved for any epoch (native units).
        #[ink(message)]
        pub fn free_balance(&self) -> u128 {
            let whole_units = self.env().balance() / native_to_evm(1);
            u128::try_from(whole_units)
                .unwrap_or(u128::MAX)
                .saturating_sub(self.reserved)
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
                paused: self.paused,
                governance: self.governance,
            });
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

    fn accounts() -> DefaultAccounts {
        test::default_accounts()
    }

    fn evm(native: u128) -> U256 {
        dsi_contracts_common::native_to_evm(native)
    }

    /// governance = alice; committee = bob, charlie, django (threshold 2); window 3 blocks.
    fn pool() -> RewardPool {
        let a = accounts();
        test::set_caller(a.alice);
        RewardPool::new(a.alice, vec![a.bob, a.charlie, a.django], 2, 3).unwrap()
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

    fn submit_as(
        pool: &mut RewardPool,
        who: Address,
        epoch: u64,
        root: [u8; 32],
        total: u128,
    ) -> Result<bool> {
        test::set_caller(who);
        pool.submit(epoch, root, total, [9; 32])
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
    fn single_leaf_root(
        epoch: u64,
        seeder: [u8; 32],
        payout: Address,
        cumulative: u128,
    ) -> [u8; 32] {
        let leaf = dsi_protocol::RewardLeaf {
            epoch: dsi_protocol::Epoch(epoch),
            seeder: dsi_protocol::NodeId(seeder),
            payout: dsi_protocol::PayoutAccount(payout.0),
            cumulative,
        };
        leaf.hash::<dsi_contracts_common::HostKeccak>()
    }

    #[ink::test]
    fn constructor_rejects_bad_committees() {
        let a = accounts();
        assert_eq!(
            RewardPool::new(a.alice, vec![], 1, 0).err(),
            Some(Error::InvalidCommittee)
        );
        assert_eq!(
            RewardPool::new(a.alice, vec![a.bob], 0, 0).err(),
            Some(Error::InvalidCommittee)
        );
        assert_eq!(
            RewardPool::new(a.alice, vec![a.bob], 2, 0).err(),
            Some(Error::InvalidCommittee)
        );
        assert_eq!(
            RewardPool::new(a.alice, vec![a.bob, a.bob], 1, 0).err(),
            Some(Error::InvalidCommittee)
        );
        let pool = pool();
        assert_eq!(pool.committee(), (vec![a.bob, a.charlie, a.django], 2));
        assert_eq!(pool.settings(), (a.alice, 3, false));
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
        assert_eq!(record.claimable_from, record.final_block + 3);
        assert_eq!(pool.reserved(), ONE_UNIT);
        assert_eq!(pool.free_balance(), start + 9 * ONE_UNIT);
        assert_eq!(pool.last_final_epoch(), Some(1));
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
        finalize(&mut pool, 2, [1; 32], ONE_UNIT);
        advance(3);
        test::set_caller(a.alice);
        assert_eq!(pool.veto(2), Err(Error::ChallengeWindowOver));
    }

    #[ink::test]
    fn claims_pay_the_difference_once() {
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
        advance(3);
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
        assert_eq!(pool.reserved(), 0);

        // Epoch 2: cumulative 5 units; the claim pays only the 2 new ones.
        let root = single_leaf_root(2, seeder, payout, 5 * ONE_UNIT);
        finalize(&mut pool, 2, root, 2 * ONE_UNIT);
        advance(3);
        assert_eq!(
            pool.claim(2, seeder, payout, 5 * ONE_UNIT, vec![]),
            Ok(2 * ONE_UNIT)
        );
        // The stale epoch-1 proof pays nothing.
        assert_eq!(
            pool.claim(1, seeder, payout, 3 * ONE_UNIT, vec![]),
            Err(Error::AlreadyClaimed)
        );
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
        advance(3);
        test::set_caller(a.eve);
        assert_eq!(
            pool.claim(1, seeder, a.frank, 5 * ONE_UNIT, vec![]),
            Err(Error::InsufficientFunds)
        );
        assert_eq!(pool.claimed(seeder), 0, "a refused claim records nothing");
        assert_eq!(pool.reserved(), 2 * ONE_UNIT);
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
        advance(3);
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
        assert_eq!(pool.set_paused(true), Err(Error::Unauthorized));
        assert_eq!(pool.set_governance(a.bob), Err(Error::Unauthorized));
        test::set_caller(a.alice);
        assert_eq!(pool.set_committee(vec![], 1), Err(Error::InvalidCommittee));
        assert_eq!(pool.set_committee(vec![a.eve], 1), Ok(()));
        assert_eq!(pool.set_challenge_blocks(0), Ok(()));
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
        assert_eq!(pool.settings(), (a.bob, 0, false));
        assert!(
            test::recorded_events().count() >= 6,
            "every change emits an event"
        );
    }

    /// The protocol's golden Merkle vectors verify inside the contract (its keccak host
    /// function), and each leaf's claim pays exactly its cumulative amount.
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
                l["leaf"]["cumulative"]
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
        advance(3);
        for entry in leaves {
            let leaf = &entry["leaf"];
            let seeder = hex32(&leaf["seeder"]);
            let payout: [u8; 20] =
                hex::decode(leaf["payout"].as_str().unwrap().trim_start_matches("0x"))
                    .unwrap()
                    .try_into()
                    .unwrap();
            let cumulative: u128 = leaf["cumulative"].as_str().unwrap().parse().unwrap();
            let proof: Vec<[u8; 32]> = entry["proof"]
                .as_array()
                .unwrap()
                .iter()
                .map(hex32)
                .collect();
            test::set_caller(a.eve);
            assert_eq!(
                pool.claim(
                    epoch,
                    seeder,
                    Address::from(payout),
                    cumulative,
                    proof.clone()
                ),
                Ok(cumulative)
            );
            let mut tampered = proof;
            if let Some(first) = tampered.first_mut() {
                first[0] ^= 1;
                assert_eq!(
                    pool.claim(epoch, seeder, Address::from(payout), cumulative, tampered),
                    Err(Error::BadProof)
                );
            }
        }
        assert_eq!(pool.reserved(), 0);
    }
}
