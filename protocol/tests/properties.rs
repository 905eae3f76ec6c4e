//! Property tests: encodings round-trip, every Merkle proof verifies and any flipped bit
//! fails, signatures bind every byte, and the fixed-point helpers keep their invariants.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use dsi_protocol::fixed::{mul_div, split_pro_rata};
use dsi_protocol::merkle::{self, Keccak256, MerkleTree};
use dsi_protocol::{
    ChunkId, Epoch, Manifest, NetworkId, NodeId, PayoutAccount, Receipt, RewardLeaf, SecretKey,
    SignedReceipt,
};
use parity_scale_codec::{Decode, Encode};
use proptest::prelude::*;

fn arb_receipt() -> impl Strategy<Value = Receipt> {
    (
        any::<u64>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(epoch, seeder, downloader, chunk, bytes, issued_at_ms, nonce)| Receipt {
                epoch: Epoch(epoch),
                seeder: NodeId(seeder),
                downloader: NodeId(downloader),
                chunk: ChunkId(chunk),
                bytes,
                issued_at_ms,
                nonce,
            },
        )
}

fn arb_leaf() -> impl Strategy<Value = RewardLeaf> {
    (
        any::<u64>(),
        any::<[u8; 32]>(),
        any::<[u8; 20]>(),
        any::<u128>(),
    )
        .prop_map(|(epoch, seeder, payout, amount)| RewardLeaf {
            epoch: Epoch(epoch),
            seeder: NodeId(seeder),
            payout: PayoutAccount(payout),
            amount,
        })
}

fn flip(bytes: &mut [u8], bit: usize) {
    let bit = bit % (bytes.len() * 8);
    bytes[bit / 8] ^= 1 << (bit % 8);
}

proptest! {
    #[test]
    fn receipt_and_leaf_round_trip(receipt in arb_receipt(), leaf in arb_leaf()) {
        prop_assert_eq!(Receipt::decode(&mut &receipt.encode()[..]).unwrap(), receipt);
        prop_assert_eq!(RewardLeaf::decode(&mut &leaf.encode()[..]).unwrap(), leaf);
        let json = serde_json::to_string(&leaf).unwrap();
        prop_assert_eq!(serde_json::from_str::<RewardLeaf>(&json).unwrap(), leaf);
    }

    #[test]
    fn manifest_round_trip(name in "[a-zA-Z][a-zA-Z0-9 ._-]{0,40}", size in 0u64..2_000_000, shift in 14u32..=22) {
        let chunk_size = 1u32 << shift;
        let count = size.div_ceil(u64::from(chunk_size)) as usize;
        let chunks = (0..count).map(|i| ChunkId::of(&i.to_le_bytes())).collect();
        let manifest = Manifest::new(&name, size, chunk_size, chunks).unwrap();
        let bytes = manifest.to_bytes();
        prop_assert_eq!(Manifest::from_bytes(&bytes).unwrap(), manifest.clone());
        prop_assert_eq!(dsi_protocol::manifest::content_id_of_bytes(&bytes), manifest.content_id());
    }

    #[test]
    fn every_proof_verifies_and_any_flip_fails(
        leaves in prop::collection::vec(arb_leaf(), 1..70),
        pick in any::<prop::sample::Index>(),
        bit in any::<usize>(),
    ) {
        let tree = MerkleTree::from_leaves::<Keccak256>(&leaves);
        let root = tree.root();
        for (i, leaf) in leaves.iter().enumerate() {
            let proof = tree.proof(i).unwrap();
            prop_assert!(merkle::verify::<Keccak256>(&root, &leaf.hash::<Keccak256>(), &proof));
        }
        let i = pick.index(leaves.len());
        let leaf = leaves[i];
        let proof = tree.proof(i).unwrap();
        // A flipped bit in the leaf's encoding.
        let mut encoded = leaf.encode();
        flip(&mut encoded, bit);
        let tampered = RewardLeaf::decode(&mut &encoded[..]).unwrap();
        prop_assert!(!merkle::verify::<Keccak256>(&root, &tampered.hash::<Keccak256>(), &proof));
        // A flipped bit in the root.
        let mut bad_root = root;
        flip(&mut bad_root, bit);
        prop_assert!(!merkle::verify::<Keccak256>(&bad_root, &leaf.hash::<Keccak256>(), &proof));
        // A flipped bit in the proof.
        if !proof.is_empty() {
            let mut bad_proof = proof.clone();
            let len = bad_proof.len();
            flip(&mut bad_proof[bit % len], bit / len);
            prop_assert!(!merkle::verify::<Keccak256>(&root, &leaf.hash::<Keccak256>(), &bad_proof));
        }
    }

    #[test]
    fn signatures_bind_every_byte(receipt in arb_receipt(), seed in any::<[u8; 32]>(), bit in any::<usize>()) {
        let key = SecretKey::from_seed(&seed);
        let network = NetworkId::default();
        let signed = SignedReceipt::sign(receipt, &network, &key);
        prop_assert!(signed.verify(&network).is_ok());
        let mut encoded = signed.encode();
        flip(&mut encoded, bit);
        let tampered = SignedReceipt::decode(&mut &encoded[..]).unwrap();
        prop_assert!(tampered.verify(&network).is_err());
        prop_assert!(signed.verify(&NetworkId::new("other").unwrap()).is_err());
    }

    #[test]
    fn batch_verification_finds_exactly_the_bad_ones(
        receipts in prop::collection::vec(arb_receipt(), 1..20),
        bad in prop::collection::vec(any::<bool>(), 20),
    ) {
        let key = SecretKey::from_seed(&[5; 32]);
        let network = NetworkId::default();
        let signed: Vec<SignedReceipt> = receipts
            .iter()
            .zip(&bad)
            .map(|(r, bad)| {
                let mut s = SignedReceipt::sign(*r, &network, &key);
                if *bad {
                    s.receipt.bytes ^= 1;
                }
                s
            })
            .collect();
        let results = SignedReceipt::verify_many(&signed, &network);
        for (result, bad) in results.iter().zip(&bad) {
            prop_assert_eq!(result.is_err(), *bad);
        }
    }

    #[test]
    fn mul_div_matches_naive(a in any::<u64>(), b in any::<u64>(), d in 1u64..) {
        let naive = u128::from(a) * u128::from(b) / u128::from(d);
        prop_assert_eq!(mul_div(a.into(), b.into(), d.into()), Some(naive));
    }

    #[test]
    fn split_is_exact_and_fair(total in any::<u64>(), weights in prop::collection::vec(0u128..1u128 << 100, 0..30)) {
        let shares = split_pro_rata(total.into(), &weights).unwrap();
        prop_assert_eq!(shares.len(), weights.len());
        let whole: u128 = weights.iter().sum();
        if whole > 0 {
            prop_assert_eq!(shares.iter().sum::<u128>(), u128::from(total));
            for (share, weight) in shares.iter().zip(&weights) {
                let floor = mul_div(total.into(), *weight, whole).unwrap();
                prop_assert!(*share == floor || *share == floor + 1);
            }
        }
    }
}

#[test]
fn weak_keys_are_rejected() {
    // The identity point is a small-order key: it must never verify, batch or single.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let receipt = Receipt {
        epoch: Epoch(0),
        seeder: NodeId([1; 32]),
        downloader: NodeId(identity),
        chunk: ChunkId([0; 32]),
        bytes: 1,
        issued_at_ms: 0,
        nonce: 0,
    };
    let mut sig = [0u8; 64];
    sig[0] = 1;
    let signed = SignedReceipt {
        receipt,
        signature: dsi_protocol::Signature(sig),
    };
    let network = NetworkId::default();
    assert!(signed.verify(&network).is_err());
    assert!(SignedReceipt::verify_many(&[signed], &network)[0].is_err());
}
