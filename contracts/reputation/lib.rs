//! # reputation: seeder reliability scores, written by the oracle committee per epoch
//!
//! Scores are parts per million (0 to 1_000_000) keyed by node key (the seeder's ed25519
//! public key: pseudonymous, no identity needed). The oracle committee submits an epoch's
//! updates in parts of at most [`MAX_BATCH`] (`submit(epoch, part, updates)`, parts
//! numbered from 0); a part is applied when `threshold` members (a strict majority)
//! submitted the same part, and parts are applied strictly in order: part 0 of an epoch
//! newer than the last applied one, or the next part of the same epoch. Anyone can read a
//! score and the epoch it was last updated in. Governance (the governance contract) sets the
//! committee.
//!
//! A part lists `(node key, score)` pairs sorted by node key without duplicates, so equal
//! content always has the same hash and members can agree on it. Votes are per epoch: a
//! member's vote for the next part replaces its vote for the previous one, which is already
//! applied by then (a part out of order is refused before any vote is counted).
#![cfg_attr(not(feature = "std"), no_std, no_main)]

#[ink::contract]
pub mod reputation {
    use dsi_contracts_common::{hash_encoded, Committee, VoteError};
    use ink::prelude::vec::Vec;
    use ink::storage::Mapping;

    /// Most updates in one batch.
    pub const MAX_BATCH: usize = 256;
    /// The highest score (1.0).
    pub const MAX_SCORE: u32 = 1_000_000;

    /// Everything that can go wrong.
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Error {
        /// The caller may not do this (not governance, not a committee member).
        Unauthorized,
        /// Members and threshold do not make a committee.
        InvalidCommittee,
        /// This member already submitted this same part for this epoch.
        AlreadyVoted,
        /// The epoch is older than the last applied one, or this part of it was applied.
        EpochTooOld,
        /// More than `MAX_BATCH` updates.
        BatchTooLarge,
        /// A score above `MAX_SCORE`.
        ScoreOutOfRange,
        /// Updates are not sorted by node key, or a node appears twice.
        UnsortedBatch,
        /// Not the next part: part 0 of a newer epoch, or the part after the last applied
        /// one of the same epoch.
        PartOutOfOrder,
    }

    /// Result of every message.
    pub type Result<T> = core::result::Result<T, Error>;

    /// A node's score and the epoch that set it.
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Score {
        /// Parts per million.
        pub ppm: u32,
        /// Epoch of the last update.
        pub epoch: u64,
    }

    /// A committee member submitted a part.
    #[ink(event, anonymous)]
    pub struct BatchSubmitted {
        epoch: u64,
        part: u32,
        member: Address,
        votes: u32,
    }

    /// A part reached the threshold and was applied.
    #[ink(event, anonymous)]
    pub struct ScoresUpdated {
        epoch: u64,
        part: u32,
        count: u32,
    }

    /// Governance changed the committee or handed over administration.
    #[ink(event, anonymous)]
    pub struct SettingsChanged {
        committee: Vec<Address>,
        threshold: u32,
        governance: Address,
    }

    /// The reputation registry.
    #[ink(storage)]
    pub struct Reputation {
        governance: Address,
        committee: Committee,
        /// The last applied (epoch, part).
        last_part: Option<(u64, u32)>,
        scores: Mapping<[u8; 32], Score>,
    }

    impl Reputation {
        /// A registry administered by `governance`, written by a committee.
        #[ink(constructor)]
        pub fn new(governance: Address, committee: Vec<Address>, threshold: u32) -> Result<Self> {
            let mut members = Committee::default();
            if !members.set(committee, threshold) {
                return Err(Error::InvalidCommittee);
            }
            Ok(Self {
                governance,
                committee: members,
                last_part: None,
                scores: Mapping::default(),
            })
        }

        /// A committee member's part `part` of `epoch`'s updates. Returns true when this
        /// submission applied it.
        #[ink(message)]
        pub fn submit(
            &mut self,
            epoch: u64,
            part: u32,
            updates: Vec<([u8; 32], u32)>,
        ) -> Result<bool> {
            match self.last_part {
                Some((last, done)) if epoch < last || (epoch == last && part <= done) => {
                    return Err(Error::EpochTooOld);
                }
                Some((last, done)) if epoch == last && Some(part) != done.checked_add(1) => {
                    return Err(Error::PartOutOfOrder);
                }
                Some((last, _)) if epoch > last && part != 0 => {
                    return Err(Error::PartOutOfOrder);
                }
                None if part != 0 => return Err(Error::PartOutOfOrder),
                _ => {}
            }
            if updates.len() > MAX_BATCH {
                return Err(Error::BatchTooLarge);
            }
            if updates.iter().any(|(_, score)| *score > MAX_SCORE) {
                return Err(Error::ScoreOutOfRange);
            }
            if updates.windows(2).any(|pair| pair[0].0 >= pair[1].0) {
                return Err(Error::UnsortedBatch);
            }
            let caller = self.env().caller();
            let votes = self
                .committee
                .vote(epoch, caller, hash_encoded(&(epoch, part, &updates)))
                .map_err(|e| match e {
                    VoteError::NotMember => Error::Unauthorized,
                    VoteError::AlreadyVoted => Error::AlreadyVoted,
                })?;
            self.env().emit_event(BatchSubmitted {
                epoch,
                part,
                member: caller,
                votes,
            });
            if !self.committee.reached(votes) {
                return Ok(false);
            }
            for (node, ppm) in &updates {
                self.scores.insert(node, &Score { ppm: *ppm, epoch });
            }
            self.last_part = Some((epoch, part));
            self.env().emit_event(ScoresUpdated {
                epoch,
                part,
                count: updates.len() as u32,
            });
            Ok(true)
        }

        /// Governance replaces the committee (pending votes are discarded).
        #[ink(message)]
        pub fn set_committee(&mut self, members: Vec<Address>, threshold: u32) -> Result<()> {
            self.ensure_governance()?;
            if !self.committee.set(members, threshold) {
                return Err(Error::InvalidCommittee);
            }
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

        /// A node's score, if it has one.
        #[ink(message)]
        pub fn score(&self, node: [u8; 32]) -> Option<Score> {
            self.scores.get(node)
        }

        /// The epoch of the last applied part.
        #[ink(message)]
        pub fn last_epoch(&self) -> Option<u64> {
            self.last_part.map(|(epoch, _)| epoch)
        }

        /// The last applied (epoch, part): the next submission is its next part, or part 0
        /// of a newer epoch.
        #[ink(message)]
        pub fn last_part(&self) -> Option<(u64, u32)> {
            self.last_part
        }

        /// Committee members and threshold.
        #[ink(message)]
        pub fn committee(&self) -> (Vec<Address>, u32) {
            (
                self.committee.members().to_vec(),
                self.committee.threshold(),
            )
        }

        /// The governance account.
        #[ink(message)]
        pub fn governance(&self) -> Address {
            self.governance
        }

        fn ensure_governance(&self) -> Result<()> {
            if self.env().caller() == self.governance {
                Ok(())
            } else {
                Err(Error::Unauthorized)
            }
        }

        fn settings_changed(&self) {
            self.env().emit_event(SettingsChanged {
                committee: self.committee.members().to_vec(),
                threshold: self.committee.threshold(),
                governance: self.governance,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::reputation::*;
    use ink::env::test;

    fn registry() -> Reputation {
        let a = test::default_accounts();
        Reputation::new(a.alice, vec![a.bob, a.charlie], 2).unwrap()
    }

    fn submit_as(
        r: &mut Reputation,
        who: ink::Address,
        epoch: u64,
        updates: Vec<([u8; 32], u32)>,
    ) -> Result<bool> {
        test::set_caller(who);
        r.submit(epoch, 0, updates)
    }

    fn submit_part(
        r: &mut Reputation,
        who: ink::Address,
        epoch: u64,
        part: u32,
        updates: Vec<([u8; 32], u32)>,
    ) -> Result<bool> {
        test::set_caller(who);
        r.submit(epoch, part, updates)
    }

    /// `n` updates with node keys starting at `from` (sorted).
    fn updates(from: u32, n: u32, ppm: u32) -> Vec<([u8; 32], u32)> {
        (from..from + n)
            .map(|i| {
                let mut k = [0u8; 32];
                k[..4].copy_from_slice(&i.to_be_bytes());
                (k, ppm)
            })
            .collect()
    }

    #[ink::test]
    fn constructor_rejects_bad_committees() {
        let a = test::default_accounts();
        assert_eq!(
            Reputation::new(a.alice, vec![], 1).err(),
            Some(Error::InvalidCommittee)
        );
        assert_eq!(
            Reputation::new(a.alice, vec![a.bob], 3).err(),
            Some(Error::InvalidCommittee)
        );
        assert_eq!(
            Reputation::new(a.alice, vec![a.bob, a.charlie], 1).err(),
            Some(Error::InvalidCommittee),
            "one of two is not a majority"
        );
        assert_eq!(registry().committee(), (vec![a.bob, a.charlie], 2));
        assert_eq!(registry().governance(), a.alice);
    }

    #[ink::test]
    fn batches_apply_at_threshold_in_increasing_epochs() {
        let a = test::default_accounts();
        let mut r = registry();
        let batch = vec![([1; 32], 900_000), ([2; 32], 100_000)];
        assert_eq!(
            submit_as(&mut r, a.eve, 1, batch.clone()),
            Err(Error::Unauthorized)
        );
        assert_eq!(submit_as(&mut r, a.bob, 1, batch.clone()), Ok(false));
        assert_eq!(
            submit_as(&mut r, a.bob, 1, batch.clone()),
            Err(Error::AlreadyVoted)
        );
        assert_eq!(r.score([1; 32]), None, "not applied before the threshold");
        // A different batch for the same epoch does not count toward the first.
        assert_eq!(
            submit_as(&mut r, a.charlie, 1, vec![([1; 32], 0)]),
            Ok(false)
        );
        assert_eq!(r.last_epoch(), None);
        test::set_caller(a.alice);
        r.set_committee(vec![a.bob, a.charlie, a.django], 2)
            .unwrap();
        assert_eq!(
            submit_as(&mut r, a.bob, 1, batch.clone()),
            Ok(false),
            "a new committee votes afresh"
        );
        assert_eq!(submit_as(&mut r, a.django, 1, batch.clone()), Ok(true));
        assert_eq!(
            r.score([1; 32]),
            Some(Score {
                ppm: 900_000,
                epoch: 1
            })
        );
        assert_eq!(
            r.score([2; 32]),
            Some(Score {
                ppm: 100_000,
                epoch: 1
            })
        );
        assert_eq!(r.last_epoch(), Some(1));
        assert_eq!(
            submit_as(&mut r, a.bob, 1, batch.clone()),
            Err(Error::EpochTooOld)
        );
        assert_eq!(submit_as(&mut r, a.bob, 0, batch), Err(Error::EpochTooOld));
    }

    #[ink::test]
    fn malformed_batches_are_named() {
        let a = test::default_accounts();
        let mut r = registry();
        assert_eq!(
            submit_as(&mut r, a.bob, 1, vec![([1; 32], 1_000_001)]),
            Err(Error::ScoreOutOfRange)
        );
        assert_eq!(
            submit_as(&mut r, a.bob, 1, vec![([2; 32], 1), ([1; 32], 1)]),
            Err(Error::UnsortedBatch)
        );
        assert_eq!(
            submit_as(&mut r, a.bob, 1, vec![([1; 32], 1), ([1; 32], 2)]),
            Err(Error::UnsortedBatch)
        );
        let big: Vec<([u8; 32], u32)> = (0..=MAX_BATCH as u32)
            .map(|i| {
                let mut k = [0u8; 32];
                k[..4].copy_from_slice(&i.to_be_bytes());
                (k, 1)
            })
            .collect();
        assert_eq!(submit_as(&mut r, a.bob, 1, big), Err(Error::BatchTooLarge));
    }

    #[ink::test]
    fn only_governance_administers() {
        let a = test::default_accounts();
        let mut r = registry();
        test::set_caller(a.bob);
        assert_eq!(r.set_committee(vec![a.bob], 1), Err(Error::Unauthorized));
        assert_eq!(r.set_governance(a.bob), Err(Error::Unauthorized));
        test::set_caller(a.alice);
        assert_eq!(
            r.set_committee(vec![a.bob, a.bob], 1),
            Err(Error::InvalidCommittee)
        );
        assert_eq!(r.set_governance(a.bob), Ok(()));
        assert_eq!(r.governance(), a.bob);
    }

    /// More nodes than one part holds: an epoch's scores go in several parts, applied in
    /// order, each at the threshold.
    #[ink::test]
    fn an_epoch_takes_several_parts_in_order() {
        let a = test::default_accounts();
        let mut r = registry();
        let first = updates(0, MAX_BATCH as u32, 500_000);
        let second = updates(MAX_BATCH as u32, 44, 600_000);
        assert_eq!(
            submit_part(&mut r, a.bob, 1, 1, second.clone()),
            Err(Error::PartOutOfOrder),
            "part 1 before part 0"
        );
        assert_eq!(submit_part(&mut r, a.bob, 1, 0, first.clone()), Ok(false));
        assert_eq!(
            submit_part(&mut r, a.bob, 1, 1, second.clone()),
            Err(Error::PartOutOfOrder),
            "part 0 is not applied yet"
        );
        assert_eq!(
            submit_part(&mut r, a.charlie, 1, 0, first.clone()),
            Ok(true)
        );
        assert_eq!(r.last_part(), Some((1, 0)));
        assert_eq!(
            submit_part(&mut r, a.bob, 1, 0, first.clone()),
            Err(Error::EpochTooOld)
        );
        assert_eq!(
            submit_part(&mut r, a.bob, 1, 2, second.clone()),
            Err(Error::PartOutOfOrder)
        );
        assert_eq!(
            submit_part(&mut r, a.bob, 2, 1, second.clone()),
            Err(Error::PartOutOfOrder),
            "a newer epoch starts at part 0"
        );
        // The second part: a member's vote for it replaces its (applied) part-0 vote.
        assert_eq!(submit_part(&mut r, a.bob, 1, 1, second.clone()), Ok(false));
        assert_eq!(
            submit_part(&mut r, a.bob, 1, 1, second.clone()),
            Err(Error::AlreadyVoted)
        );
        assert_eq!(
            submit_part(&mut r, a.charlie, 1, 1, second.clone()),
            Ok(true)
        );
        assert_eq!(r.last_part(), Some((1, 1)));
        assert_eq!(r.last_epoch(), Some(1));
        for (node, ppm) in first.iter().chain(&second) {
            assert_eq!(
                r.score(*node),
                Some(Score {
                    ppm: *ppm,
                    epoch: 1
                })
            );
        }
        // The next epoch starts at part 0.
        assert_eq!(submit_part(&mut r, a.bob, 2, 0, first.clone()), Ok(false));
        assert_eq!(submit_part(&mut r, a.charlie, 2, 0, first), Ok(true));
        assert_eq!(r.last_part(), Some((2, 0)));
        assert_eq!(
            submit_part(&mut r, a.bob, 1, 2, second),
            Err(Error::EpochTooOld)
        );
    }
}
