//! # reputation: seeder reliability scores, written by the oracle committee per epoch
//!
//! Scores are parts per million (0 to 1_000_000) keyed by node key (the seeder's ed25519
//! public key: pseudonymous, no identity needed). The oracle committee submits one batch of
//! updates per epoch; a batch is applied when `threshold` members submitted the same batch,
//! and epochs must strictly increase. Anyone can read a score and the epoch it was last
//! updated in. Governance (the governance contract) sets the committee.
//!
//! A batch lists `(node key, score)` pairs sorted by node key without duplicates, so equal
//! content always has the same hash and members can agree on it.
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
        /// This member already submitted this same batch for this epoch.
        AlreadyVoted,
        /// The epoch is not newer than the last applied epoch.
        EpochTooOld,
        /// More than `MAX_BATCH` updates.
        BatchTooLarge,
        /// A score above `MAX_SCORE`.
        ScoreOutOfRange,
        /// Updates are not sorted by node key, or a node appears twice.
        UnsortedBatch,
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

    /// A committee member submitted a batch.
    #[ink(event, anonymous)]
    pub struct BatchSubmitted {
        epoch: u64,
        member: Address,
        votes: u32,
    }

    /// A batch reached the threshold and was applied.
    #[ink(event, anonymous)]
    pub struct ScoresUpdated {
        epoch: u64,
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
        last_epoch: Option<u64>,
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
                last_epoch: None,
                scores: Mapping::default(),
            })
        }

        /// A committee member's batch for `epoch`. Returns true when this submission
        /// applied it.
        #[ink(message)]
        pub fn submit(&mut self, epoch: u64, updates: Vec<([u8; 32], u32)>) -> Result<bool> {
            if self.last_epoch.is_some_and(|last| epoch <= last) {
                return Err(Error::EpochTooOld);
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
                .vote(epoch, caller, hash_encoded(&(epoch, &updates)))
                .map_err(|e| match e {
                    VoteError::NotMember => Error::Unauthorized,
                    VoteError::AlreadyVoted => Error::AlreadyVoted,
                })?;
            self.env().emit_event(BatchSubmitted {
                epoch,
                member: caller,
                votes,
            });
            if !self.committee.reached(votes) {
                return Ok(false);
            }
            for (node, ppm) in &updates {
                self.scores.insert(node, &Score { ppm: *ppm, epoch });
            }
            self.last_epoch = Some(epoch);
            self.env().emit_event(ScoresUpdated {
                epoch,
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

        /// The last applied epoch.
        #[ink(message)]
        pub fn last_epoch(&self) -> Option<u64> {
            self.last_epoch
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
        r.submit(epoch, updates)
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
}
