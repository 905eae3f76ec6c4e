//! Golden vectors: every wire format pinned as hex in `tests/vectors/*.json`.
//!
//! The files are the contract between implementations (the contracts' tests load
//! `merkle.json`). This test recomputes each vector from its inputs and compares. After a
//! deliberate format change, regenerate with `DSI_BLESS=1 cargo test -p dsi-protocol --test
//! golden` and review the diff: a changed vector is a breaking protocol change.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use dsi_protocol::merkle::{self, Keccak256, MerkleTree};
use dsi_protocol::{
    ChunkId, Epoch, Manifest, NetworkId, NodeId, PayoutAccount, Receipt, RewardLeaf, SecretKey,
    SignedReceipt,
};
use serde_json::{Value, json};
use std::path::PathBuf;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// Compares `computed` with the stored vector file (or rewrites it with `DSI_BLESS=1`).
fn check(name: &str, computed: Value) {
    let path = vectors_dir().join(name);
    if std::env::var_os("DSI_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&computed).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
        return;
    }
    let stored: Value = serde_json::from_str(
        &std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display())),
    )
    .unwrap();
    assert_eq!(
        stored, computed,
        "golden vector {name} changed: this is a breaking protocol change"
    );
}

/// The vector content: byte i is i mod 251 (a prime, so chunks differ), 40_000 bytes.
fn content() -> Vec<u8> {
    (0..40_000u32).map(|i| (i % 251) as u8).collect()
}

#[test]
fn manifest_vector() {
    let data = content();
    let chunk_size = 16 * 1024;
    let chunks: Vec<ChunkId> = data.chunks(chunk_size as usize).map(ChunkId::of).collect();
    let manifest = Manifest::new("vector.bin", data.len() as u64, chunk_size, chunks).unwrap();
    let bytes = manifest.to_bytes();
    assert_eq!(Manifest::from_bytes(&bytes).unwrap(), manifest);
    check(
        "manifest.json",
        json!({
            "description": "content: 40000 bytes, byte i = i mod 251; chunk size 16384; name vector.bin",
            "name": manifest.name,
            "size": manifest.size,
            "chunk_size": manifest.chunk_size,
            "chunks": manifest.chunks.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            "scale": hex::encode(&bytes),
            "content_id": manifest.content_id().to_string(),
        }),
    );
}

#[test]
fn receipt_vector() {
    let downloader = SecretKey::from_seed(&[0x42; 32]);
    let seeder = SecretKey::from_seed(&[0x07; 32]).node_id();
    let receipt = Receipt {
        epoch: Epoch(17),
        seeder,
        downloader: downloader.node_id(),
        chunk: ChunkId::of(b"dsi"),
        bytes: 262_144,
        issued_at_ms: 1_764_000_000_000,
        nonce: 0x0102_0304_0506_0708,
    };
    let network = NetworkId::new("dsi-local").unwrap();
    let signed = SignedReceipt::sign(receipt, &network, &downloader);
    signed.verify(&network).unwrap();
    check(
        "receipt.json",
        json!({
            "description": "downloader seed = 32 bytes of 0x42, seeder seed = 32 bytes of 0x07, chunk = BLAKE3(\"dsi\")",
            "network": network.as_str(),
            "downloader_seed": hex::encode([0x42u8; 32]),
            "receipt": serde_json::to_value(receipt).unwrap(),
            "scale": hex::encode(parity_scale_codec::Encode::encode(&receipt)),
            "signing_bytes": hex::encode(receipt.signing_bytes(&network)),
            "signature": signed.signature.to_string(),
        }),
    );
}

/// Five leaves (odd, so the promotion rule is exercised), in seeder order.
pub fn merkle_leaves() -> Vec<RewardLeaf> {
    (1..=5u8)
        .map(|i| RewardLeaf {
            epoch: Epoch(3),
            seeder: NodeId([i; 32]),
            payout: PayoutAccount([0x10 + i; 20]),
            cumulative: u128::from(i) * 1_000_000_000_000,
        })
        .collect()
}

#[test]
fn merkle_vector() {
    let leaves = merkle_leaves();
    let tree = MerkleTree::from_leaves::<Keccak256>(&leaves);
    let root = tree.root();
    let entries: Vec<Value> = leaves
        .iter()
        .enumerate()
        .map(|(i, leaf)| {
            let proof = tree.proof(i).unwrap();
            assert!(merkle::verify::<Keccak256>(
                &root,
                &leaf.hash::<Keccak256>(),
                &proof
            ));
            json!({
                "leaf": serde_json::to_value(leaf).unwrap(),
                "scale": hex::encode(parity_scale_codec::Encode::encode(leaf)),
                "hash": hex::encode(leaf.hash::<Keccak256>()),
                "proof": proof.iter().map(hex::encode).collect::<Vec<_>>(),
            })
        })
        .collect();
    check(
        "merkle.json",
        json!({
            "description": "keccak-256; leaf = H(0x00 || SCALE(leaf)); node = H(0x01 || min || max); odd node promoted",
            "root": hex::encode(root),
            "leaves": entries,
        }),
    );
}
