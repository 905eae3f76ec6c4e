//! The reward Merkle tree: one root per epoch commits to what each seeder earned in that epoch.
//!
//! # Construction (decided once, here)
//!
//! - A leaf is a [`RewardLeaf`]; its hash is `H(0x00 ‖ SCALE(leaf))`.
//! - An inner node is `H(0x01 ‖ min(a, b) ‖ max(a, b))`: **sorted pairs**, comparing the
//!   32-byte hashes as big-endian numbers. A proof is therefore just the list of sibling
//!   hashes from the leaf up; no index or left/right flags are needed.
//! - Levels are built left to right from the leaves in the order given (the oracle orders
//!   leaves by seeder id). A node without a partner at the end of a level is promoted to the
//!   next level unchanged (it is not hashed with itself), so its proof skips that level.
//! - The root of an empty tree is [`EMPTY_ROOT`] (all zeros), which no proof can reach.
//! - `H` is keccak-256 ([`MerkleHasher`]): contracts pass ink!'s host function, off-chain
//!   code passes [`Keccak256`]; the golden vectors prove both agree.
//!
//! The 0x00/0x01 prefixes keep leaves and inner nodes in different domains, so an inner node
//! can never be presented as a leaf (second-preimage attack on the tree).

use alloc::vec::Vec;

use parity_scale_codec::{Decode, Encode, MaxEncodedLen};

use crate::{Epoch, NodeId, PayoutAccount};

/// A 32-byte hash.
pub type Hash = [u8; 32];

/// Prefix byte of a leaf hash's input.
pub const LEAF_PREFIX: u8 = 0x00;
/// Prefix byte of an inner node hash's input.
pub const NODE_PREFIX: u8 = 0x01;
/// Root of a tree with no leaves.
pub const EMPTY_ROOT: Hash = [0; 32];
/// The longest proof any tree can have (2^64 leaves); verifiers reject longer ones.
pub const MAX_PROOF_LEN: usize = 64;

/// The hash function of the tree (keccak-256 in DSI).
pub trait MerkleHasher {
    /// Hashes `data` to 32 bytes.
    fn hash(data: &[u8]) -> Hash;
}

/// Software keccak-256 (the pre-standard Keccak used by Ethereum, not SHA3-256).
#[cfg(feature = "keccak")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Keccak256;

#[cfg(feature = "keccak")]
impl MerkleHasher for Keccak256 {
    fn hash(data: &[u8]) -> Hash {
        use sha3::Digest;
        sha3::Keccak256::digest(data).into()
    }
}

/// What a seeder can claim from one epoch: what it earned in `epoch`.
///
/// Leaves are per epoch, not cumulative: the pool pays each (epoch, seeder) leaf once and
/// never more from an epoch than that epoch's total, so a root from a stolen committee key
/// can only spend its own epoch's total (at most the per-epoch cap), never money that
/// earlier epochs reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode, MaxEncodedLen)]
#[cfg_attr(feature = "scale-info", derive(scale_info::TypeInfo))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RewardLeaf {
    /// The epoch whose root contains this leaf.
    pub epoch: Epoch,
    /// The seeder's node key.
    pub seeder: NodeId,
    /// The on-chain account paid on claim.
    pub payout: PayoutAccount,
    /// What the seeder earned in `epoch`, in native token units.
    #[cfg_attr(feature = "serde", serde(with = "u128_string"))]
    pub amount: u128,
}

impl RewardLeaf {
    /// `H(0x00 ‖ SCALE(leaf))`.
    pub fn hash<H: MerkleHasher>(&self) -> Hash {
        let mut data = Vec::with_capacity(1 + Self::max_encoded_len());
        data.push(LEAF_PREFIX);
        self.encode_to(&mut data);
        H::hash(&data)
    }
}

/// `H(0x01 ‖ min(a, b) ‖ max(a, b))`.
pub fn hash_pair<H: MerkleHasher>(a: &Hash, b: &Hash) -> Hash {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut data = [0u8; 65];
    data[0] = NODE_PREFIX;
    data[1..33].copy_from_slice(lo);
    data[33..].copy_from_slice(hi);
    H::hash(&data)
}

/// The root reached from `leaf` by folding in `proof` (sibling hashes, leaf level first).
pub fn root_from_proof<H: MerkleHasher>(leaf: &Hash, proof: &[Hash]) -> Hash {
    proof
        .iter()
        .fold(*leaf, |acc, sibling| hash_pair::<H>(&acc, sibling))
}

/// Whether `proof` shows `leaf` is in the tree with `root`. Proofs longer than
/// [`MAX_PROOF_LEN`] and the [`EMPTY_ROOT`] never verify.
pub fn verify<H: MerkleHasher>(root: &Hash, leaf: &Hash, proof: &[Hash]) -> bool {
    proof.len() <= MAX_PROOF_LEN
        && *root != EMPTY_ROOT
        && root_from_proof::<H>(leaf, proof) == *root
}

/// A complete tree over leaf hashes, keeping every level so proofs are cheap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerkleTree {
    /// `levels[0]` are the leaf hashes, the last level holds the root.
    levels: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// Builds the tree over `leaves` (already hashed with [`RewardLeaf::hash`]).
    pub fn from_leaf_hashes<H: MerkleHasher>(leaves: Vec<Hash>) -> Self {
        let mut levels = Vec::new();
        let mut current = leaves;
        while current.len() > 1 {
            let next = current
                .chunks(2)
                .map(|pair| match pair {
                    [a, b] => hash_pair::<H>(a, b),
                    [single] => *single,
                    _ => unreachable!("chunks(2) yields one or two items"),
                })
                .collect();
            levels.push(current);
            current = next;
        }
        levels.push(current);
        Self { levels }
    }

    /// Builds the tree over reward leaves, in the order given.
    pub fn from_leaves<H: MerkleHasher>(leaves: &[RewardLeaf]) -> Self {
        Self::from_leaf_hashes::<H>(leaves.iter().map(RewardLeaf::hash::<H>).collect())
    }

    /// Number of leaves.
    pub fn len(&self) -> usize {
        self.levels.first().map_or(0, Vec::len)
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The root ([`EMPTY_ROOT`] for no leaves).
    pub fn root(&self) -> Hash {
        match self.levels.last().and_then(|level| level.first()) {
            Some(root) if !self.is_empty() => *root,
            _ => EMPTY_ROOT,
        }
    }

    /// The hash of leaf `index`.
    pub fn leaf(&self, index: usize) -> Option<Hash> {
        self.levels
            .first()
            .and_then(|leaves| leaves.get(index))
            .copied()
    }

    /// The proof for leaf `index`: sibling hashes from the leaf level up.
    pub fn proof(&self, index: usize) -> Option<Vec<Hash>> {
        if index >= self.len() {
            return None;
        }
        let mut proof = Vec::new();
        let mut position = index;
        for level in &self.levels[..self.levels.len() - 1] {
            let sibling = position ^ 1;
            if let Some(hash) = level.get(sibling) {
                proof.push(*hash);
            }
            position /= 2;
        }
        Some(proof)
    }
}

#[cfg(feature = "serde")]
mod u128_string {
    //! u128 as a decimal string in JSON (JavaScript numbers lose precision past 2^53).
    use alloc::string::String;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(value: &u128, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u128, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(D::Error::custom)
    }
}

#[cfg(all(test, feature = "keccak"))]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| Keccak256::hash(&(i as u64).to_le_bytes()))
            .collect()
    }

    #[test]
    fn keccak_is_keccak_not_sha3() {
        // keccak-256("") from the Ethereum yellow paper.
        assert_eq!(
            hex::encode(Keccak256::hash(b"")),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }

    #[test]
    fn every_leaf_verifies_for_many_sizes() {
        for n in 0..40 {
            let tree = MerkleTree::from_leaf_hashes::<Keccak256>(leaves(n));
            assert_eq!(tree.len(), n);
            for i in 0..n {
                let proof = tree.proof(i).unwrap();
                assert!(proof.len() <= 6);
                assert!(verify::<Keccak256>(
                    &tree.root(),
                    &tree.leaf(i).unwrap(),
                    &proof
                ));
            }
            assert!(tree.proof(n).is_none());
        }
    }

    #[test]
    fn empty_and_single_trees() {
        let empty = MerkleTree::from_leaf_hashes::<Keccak256>(Vec::new());
        assert_eq!(empty.root(), EMPTY_ROOT);
        assert!(!verify::<Keccak256>(&EMPTY_ROOT, &EMPTY_ROOT, &[]));
        let one = MerkleTree::from_leaf_hashes::<Keccak256>(leaves(1));
        assert_eq!(one.root(), leaves(1)[0]);
        assert_eq!(one.proof(0).unwrap(), Vec::<Hash>::new());
    }

    #[test]
    fn overlong_proofs_are_rejected() {
        let leaf = [1u8; 32];
        let proof = alloc::vec![[2u8; 32]; MAX_PROOF_LEN + 1];
        let root = root_from_proof::<Keccak256>(&leaf, &proof);
        assert!(!verify::<Keccak256>(&root, &leaf, &proof));
    }
}
