//! # dsi-contracts-common: pieces the DSI contracts share
//!
//! - [`HostKeccak`]: the reward Merkle tree's hash, as pallet-revive's native keccak-256
//!   host function, so `dsi_protocol::merkle::verify` runs cheaply on chain;
//! - native/EVM unit conversion: amounts are designed in native units (12 decimals), but
//!   values inside contracts are 18-decimal EVM units; [`native_to_evm`] and
//!   [`evm_to_native`] are the one place that converts;
//! - [`Committee`]: a member list with a threshold, and per-round votes on a proposal hash.
//!   A round (an epoch) is decided when `threshold` members voted for the same hash. A
//!   member may change its vote (an oracle that recomputed an epoch corrects itself); its
//!   earlier vote is withdrawn. Changing the members starts a new voting generation, so
//!   stale votes never count. The threshold must be a strict majority of the members
//!   (`2 × threshold > members`; 1 of 1 is allowed): two disjoint minorities can never both
//!   decide, and a committee of several members is never decided by one stolen key.
//!
//! It owns no contract and no messages.
#![cfg_attr(not(feature = "std"), no_std)]

use ink::prelude::vec::Vec;
use ink::storage::Mapping;
use ink::{Address, U256};

/// The keccak-256 host function of pallet-revive as a Merkle hasher.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostKeccak;

impl dsi_protocol::MerkleHasher for HostKeccak {
    fn hash(data: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        ink::env::hash_bytes::<ink::env::hash::Keccak256>(data, &mut out);
        out
    }
}

/// keccak-256 of a value's SCALE encoding.
pub fn hash_encoded<T: ink::scale::Encode>(value: &T) -> [u8; 32] {
    <HostKeccak as dsi_protocol::MerkleHasher>::hash(&value.encode())
}

/// EVM units (18 decimals) per native unit (12 decimals): the runtime's `NativeToEthRatio`.
pub const EVM_PER_NATIVE: u128 = 1_000_000;

/// A native amount as an EVM-unit value (cannot overflow: u128 × 10^6 < 2^256).
pub fn native_to_evm(amount: u128) -> U256 {
    U256::from(amount).saturating_mul(U256::from(EVM_PER_NATIVE))
}

/// An EVM-unit value as native units; `None` if it is not a whole number of native units or
/// does not fit in a u128.
pub fn evm_to_native(value: U256) -> Option<u128> {
    let ratio = U256::from(EVM_PER_NATIVE);
    if value % ratio != U256::zero() {
        return None;
    }
    u128::try_from(value / ratio).ok()
}

/// Most members a committee may have (bounds the cost of membership checks).
pub const MAX_MEMBERS: usize = 32;

/// Whether `members` and `threshold` make a usable committee: 1 to [`MAX_MEMBERS`]
/// distinct members and a threshold that is a strict majority of them (more than half, at
/// most all): `members < 2 × threshold`, `threshold <= members`. One of one is allowed; one
/// of two, two of four... are not (half the members, or one stolen key, must not decide).
pub fn valid_committee(members: &[Address], threshold: u32) -> bool {
    let distinct = members
        .iter()
        .enumerate()
        .all(|(i, a)| !members[..i].contains(a));
    let threshold = threshold as usize;
    !members.is_empty()
        && members.len() <= MAX_MEMBERS
        && distinct
        && threshold <= members.len()
        && threshold.saturating_mul(2) > members.len()
}

/// Why a committee vote was not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteError {
    /// The voter is not a member.
    NotMember,
    /// The voter already voted for this proposal in this round (in this generation).
    AlreadyVoted,
}

/// (round, member).
type VoteKey = (u64, Address);
/// (proposal hash, generation).
type Vote = ([u8; 32], u32);
/// (round, proposal hash, generation).
type TallyKey = (u64, [u8; 32], u32);

/// Committee members, threshold, and votes per round.
#[ink::storage_item]
#[derive(Default)]
#[cfg_attr(feature = "std", derive(Debug))]
pub struct Committee {
    members: Vec<Address>,
    threshold: u32,
    /// Bumped whenever the members change; votes of older generations do not count.
    generation: u32,
    /// (round, member) -> (proposal hash, generation) of that member's vote.
    votes: Mapping<VoteKey, Vote>,
    /// (round, proposal hash, generation) -> votes for it.
    tallies: Mapping<TallyKey, u32>,
}

impl Committee {
    /// Replaces the members and threshold (starting a new voting generation). Returns
    /// false, changing nothing, if they are not [`valid_committee`].
    pub fn set(&mut self, members: Vec<Address>, threshold: u32) -> bool {
        if !valid_committee(&members, threshold) {
            return false;
        }
        self.members = members;
        self.threshold = threshold;
        self.generation = self.generation.wrapping_add(1);
        true
    }

    /// The members.
    pub fn members(&self) -> &[Address] {
        &self.members
    }

    /// Votes needed to decide a round.
    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    /// Whether `who` is a member.
    pub fn is_member(&self, who: &Address) -> bool {
        self.members.contains(who)
    }

    /// Records `who`'s vote for `proposal` in `round` (withdrawing an earlier vote of theirs
    /// for another proposal); returns the votes that proposal now has in this generation.
    pub fn vote(&mut self, round: u64, who: Address, proposal: [u8; 32]) -> Result<u32, VoteError> {
        if !self.is_member(&who) {
            return Err(VoteError::NotMember);
        }
        if let Some((previous, generation)) = self.votes.get((round, who)) {
            if generation == self.generation {
                if previous == proposal {
                    return Err(VoteError::AlreadyVoted);
                }
                let key = (round, previous, generation);
                let count = self.tallies.get(key).unwrap_or(0).saturating_sub(1);
                self.tallies.insert(key, &count);
            }
        }
        self.votes
            .insert((round, who), &(proposal, self.generation));
        let key = (round, proposal, self.generation);
        let count = self.tallies.get(key).unwrap_or(0).saturating_add(1);
        self.tallies.insert(key, &count);
        Ok(count)
    }

    /// Whether `count` votes reach the threshold.
    pub fn reached(&self, count: u32) -> bool {
        count >= self.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: u8) -> Vec<Address> {
        (1..=n).map(|i| Address::from([i; 20])).collect()
    }

    #[test]
    fn a_committee_needs_a_strict_majority() {
        // (members, threshold, valid)
        let table = [
            (1, 1, true),
            (1, 0, false),
            (1, 2, false),
            (2, 1, false),
            (2, 2, true),
            (3, 1, false),
            (3, 2, true),
            (3, 3, true),
            (4, 2, false),
            (4, 3, true),
            (5, 2, false),
            (5, 3, true),
            (32, 16, false),
            (32, 17, true),
        ];
        for (n, threshold, valid) in table {
            assert_eq!(
                valid_committee(&members(n), threshold),
                valid,
                "{threshold} of {n}"
            );
        }
        assert!(!valid_committee(&[], 0));
        assert!(!valid_committee(&members(33), 33), "too many members");
        let twice = [Address::from([1; 20]), Address::from([1; 20])];
        assert!(!valid_committee(&twice, 2), "duplicates");
    }

    #[test]
    fn set_refuses_a_minority_threshold_and_keeps_the_old_committee() {
        let mut committee = Committee::default();
        assert!(committee.set(members(3), 2));
        assert!(!committee.set(members(3), 1));
        assert_eq!((committee.members().len(), committee.threshold()), (3, 2));
    }
}
