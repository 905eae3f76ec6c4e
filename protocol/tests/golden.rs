//! Golden vectors: every wire format pinned as hex in `tests/vectors/*.json`.
//!
//! The files are the contract between implementations (the contracts' tests load
//! `merkle.json`). This test recomputes each vector from its inputs and compares. After a
//! deliberate format change, regenerate with `DSI_BLESS=1 cargo test -p dsi-protocol --test
//! golden` and review the diff: a changed vector is a breaking protocol change.
//!
//! `docs/PROTOCOL.md` explains every field of these files. Besides the formats themselves
//! (`manifest.json`, `manifest_long.json`, `receipt.json`, `announce.json`,
//! `availability.json`, `merkle.json`,
//! `epoch.json`, `chunk_request.json`, `audit.json`), `compact.json` pins SCALE's compact length prefix in all its modes and
//! `refused.json` lists byte strings and names that decoders must refuse (and edge cases
//! they must accept), each checked here against the crate's strict decoders.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use dsi_protocol::fixed::{LinearCurve, Ppm};
use dsi_protocol::manifest::MAX_NAME_LEN;
use dsi_protocol::merkle::{self, Keccak256, MerkleTree};
use dsi_protocol::reward::{
    ChunkFacts, ContentFacts, CreditFacts, EpochInputs, Funding, Holder, Location, MarketParams,
    RewardParams, SeederFacts, aggregate,
};
use dsi_protocol::{
    Announcement, ChunkId, ContentId, Epoch, EpochSchedule, Manifest, ManifestError, NetworkId,
    NodeEndpoint, NodeId, PayoutAccount, Receipt, RewardLeaf, SecretKey, SignedAnnouncement,
    SignedReceipt,
};
use parity_scale_codec::{Compact, Decode, Encode};
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

/// The golden receipt: downloader seed 0x42.., seeder seed 0x07.., chunk BLAKE3("dsi").
fn golden_receipt() -> (SignedReceipt, NetworkId) {
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
    (SignedReceipt::sign(receipt, &network, &downloader), network)
}

#[test]
fn receipt_vector() {
    let (signed, network) = golden_receipt();
    let receipt = signed.receipt;
    signed.verify(&network).unwrap();
    // The wire form (POST /v1/receipts) is flat: the receipt's fields and `signature` in
    // one object, in declaration order.
    let wire = serde_json::to_string(&signed).unwrap();
    let batch = format!("{{\"receipts\":[{wire}]}}");
    let parsed: SignedReceipt = serde_json::from_str(&wire).unwrap();
    assert_eq!(parsed, signed);
    parsed.verify(&network).unwrap();
    let batch_value: Value = serde_json::from_str(&batch).unwrap();
    let first: SignedReceipt = serde_json::from_value(batch_value["receipts"][0].clone()).unwrap();
    assert_eq!(first, signed);
    // The nested shape is not the wire form: it does not deserialize (servers: bad_json).
    let nested = json!({
        "receipt": serde_json::to_value(receipt).unwrap(),
        "signature": signed.signature.to_string(),
    });
    assert!(serde_json::from_value::<SignedReceipt>(nested).is_err());
    // SCALE(SignedReceipt), as in a published batch: SCALE(receipt) then the 64 bytes.
    let signed_scale = signed.encode();
    let receipt_scale = receipt.encode();
    assert_eq!(receipt_scale.len(), 124);
    assert_eq!(signed_scale[..124], receipt_scale[..]);
    assert_eq!(signed_scale[124..], signed.signature.0[..]);
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
            "signed_scale": hex::encode(&signed_scale),
            "wire_json": wire,
            "batch_json": batch,
            "wire_note": "wire_json is the exact JSON of the SignedReceipt on the wire: FLAT, the \
                receipt's fields and \"signature\" in one object (the nested \"receipt\" object \
                above is only this file's layout and is refused by the servers); batch_json is \
                a one-receipt body of POST /v1/receipts; signed_scale is SCALE(receipt) \
                followed by the 64 signature bytes, as in a published epoch batch",
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
            amount: u128::from(i) * 1_000_000_000_000,
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

/// `len` bytes of pattern content: byte i is i mod 251.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// The manifest of `data` in chunks of `chunk_size` bytes.
fn manifest_of(name: &str, data: &[u8], chunk_size: u32) -> Manifest {
    let chunks = data.chunks(chunk_size as usize).map(ChunkId::of).collect();
    Manifest::new(name, data.len() as u64, chunk_size, chunks).unwrap()
}

/// The manifest of `manifest.json`.
fn vector_manifest() -> Manifest {
    manifest_of("vector.bin", &content(), 16 * 1024)
}

/// An 87-byte UTF-8 name (86 characters): long enough for a two-byte length prefix.
const LONG_NAME: &str =
    "a name longer than 63 bytes, so its length prefix takes two bytes (ä is two bytes).bin";

/// Size of the content of `manifest_long.json`: 64 full chunks of 16 KiB and 1000 bytes.
const LONG_SIZE: usize = 64 * 16 * 1024 + 1000;

/// The manifest of `manifest_long.json`: 65 chunks and an 87-byte name.
fn long_manifest() -> Manifest {
    manifest_of(LONG_NAME, &pattern(LONG_SIZE), 16 * 1024)
}

#[test]
fn manifest_long_vector() {
    let manifest = long_manifest();
    let bytes = manifest.to_bytes();
    assert_eq!(Manifest::from_bytes(&bytes).unwrap(), manifest);
    let name_len = manifest.name.len();
    assert!((64..=MAX_NAME_LEN).contains(&name_len));
    let name_prefix = Compact(name_len as u32).encode();
    assert_eq!(name_prefix.len(), 2, "two-byte mode");
    assert_eq!(bytes[1..3], name_prefix[..]);
    assert_eq!(&bytes[3..3 + name_len], manifest.name.as_bytes());
    let chunks_at = 3 + name_len + 8 + 4;
    let count = manifest.chunks.len();
    assert_eq!(count, 65);
    let chunks_prefix = Compact(count as u32).encode();
    assert_eq!(chunks_prefix.len(), 2, "two-byte mode");
    assert_eq!(bytes[chunks_at..chunks_at + 2], chunks_prefix[..]);
    assert_eq!(bytes.len(), chunks_at + 2 + 32 * count);
    assert_eq!(manifest.chunk_len(count - 1), 1000);
    check(
        "manifest_long.json",
        json!({
            "description": format!(
                "content: {LONG_SIZE} bytes, byte i = i mod 251; chunk size 16384, so {count} \
                 chunks (the last one 1000 bytes); the name is {name_len} bytes of UTF-8 \
                 ({} characters: 'ä' is 2 bytes). Both length prefixes take the two-byte \
                 compact mode: bytes 1..3 ({}) are the name's ({name_len} << 2 | 0b01 = {}, \
                 little-endian), bytes {chunks_at}..{} ({}) the chunk list's ({count} << 2 | \
                 0b01 = {}, little-endian)",
                manifest.name.chars().count(),
                hex::encode(&name_prefix),
                (name_len << 2) | 1,
                chunks_at + 2,
                hex::encode(&chunks_prefix),
                (count << 2) | 1,
            ),
            "name": manifest.name,
            "name_bytes": name_len,
            "size": manifest.size,
            "chunk_size": manifest.chunk_size,
            "chunks": manifest.chunks.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            "name_length_prefix": {"offset": 1, "hex": hex::encode(&name_prefix)},
            "chunks_length_prefix": {"offset": chunks_at, "hex": hex::encode(&chunks_prefix)},
            "scale": hex::encode(&bytes),
            "content_id": manifest.content_id().to_string(),
        }),
    );
}

#[test]
fn compact_vector() {
    let values: [u32; 12] = [
        0,
        1,
        42,
        63,
        64,
        255,
        16_383,
        16_384,
        (1 << 30) - 1,
        1 << 30,
        0xdead_beef,
        u32::MAX,
    ];
    let canonical: Vec<Value> = values
        .iter()
        .map(|&value| {
            let bytes = Compact(value).encode();
            let mut input = &bytes[..];
            assert_eq!(Compact::<u32>::decode(&mut input).unwrap().0, value);
            assert!(input.is_empty());
            let mode = match bytes[0] & 0b11 {
                0b00 => "single-byte",
                0b01 => "two-byte",
                0b10 => "four-byte",
                _ => "big-integer",
            };
            json!({"value": value, "mode": mode, "hex": hex::encode(&bytes)})
        })
        .collect();
    let refused = [
        ("0100", "0 in two-byte mode (canonical: 00)"),
        ("fd00", "63 in two-byte mode (canonical: fc)"),
        ("02000000", "0 in four-byte mode (canonical: 00)"),
        ("feff0000", "16383 in four-byte mode (canonical: fdff)"),
        ("0300000000", "0 in big-integer mode (canonical: 00)"),
        (
            "03ffffff3f",
            "2^30 - 1 in big-integer mode (canonical: feffffff)",
        ),
        (
            "070000004000",
            "2^30 in big-integer mode with 5 bytes, the last zero (canonical: 0300000040); a \
             length never takes more than 4 bytes",
        ),
        ("01", "truncated: two-byte mode, one byte"),
        ("020000", "truncated: four-byte mode, three bytes"),
    ];
    let refused: Vec<Value> = refused
        .iter()
        .map(|(text, reason)| {
            let bytes = hex::decode(text).unwrap();
            assert!(
                Compact::<u32>::decode(&mut &bytes[..]).is_err(),
                "{text}: {reason}"
            );
            json!({"hex": text, "reason": reason})
        })
        .collect();
    check(
        "compact.json",
        json!({
            "description": "SCALE compact encoding of a u32, as used for every length \
                prefix (strings, vectors). The two low bits of the first byte give the \
                mode: 0b00 single-byte (0..=63: value << 2), 0b01 two-byte (64..=16383: \
                value << 2 | 1 as u16 little-endian), 0b10 four-byte (16384..=2^30-1: \
                value << 2 | 2 as u32 little-endian), 0b11 big-integer (first byte \
                (n - 4) << 2 | 3, then the value in n little-endian bytes, n minimal; for a \
                u32 n = 4). Only the shortest encoding is valid: `refused` must fail to \
                decode",
            "canonical": canonical,
            "refused": refused,
        }),
    );
}

#[test]
fn announce_vector() {
    let key = SecretKey::from_seed(&[0x07; 32]);
    let network = NetworkId::new("dsi-local").unwrap();
    let announcement = Announcement {
        node: key.node_id(),
        url: "http://127.0.0.1:7070".into(),
        payout: PayoutAccount(std::array::from_fn(|i| i as u8)),
        contents: vec![vector_manifest().content_id(), long_manifest().content_id()],
        issued_at_ms: 1_764_000_000_000,
        endpoint: Some(NodeEndpoint {
            relays: vec!["http://127.0.0.1:3340/".into()],
            direct: vec!["127.0.0.1:41641".into()],
        }),
    };
    let signed = SignedAnnouncement::sign(announcement.clone(), &network, &key);
    assert_eq!(signed.announcement, announcement);
    signed.verify(&network).unwrap();
    assert!(
        signed
            .verify(&NetworkId::new("dsi-devnet").unwrap())
            .is_err()
    );
    let wire = serde_json::to_string(&signed).unwrap();
    let parsed: SignedAnnouncement = serde_json::from_str(&wire).unwrap();
    assert_eq!(parsed, signed);
    parsed.verify(&network).unwrap();
    let signing_bytes = announcement.signing_bytes(&network);
    let mut expected = b"dsi/announce/v1".to_vec();
    expected.extend(network.encode());
    expected.extend(announcement.encode());
    assert_eq!(signing_bytes, expected);
    check(
        "announce.json",
        json!({
            "description": "node seed = 32 bytes of 0x07 (the seeder of receipt.json); \
                payout = bytes 0x00..0x13; contents = the content ids of manifest.json and \
                manifest_long.json. wire_json is the exact body of POST /v1/announce (flat: \
                the announcement's fields and \"signature\" in one object)",
            "network": network.as_str(),
            "node_seed": hex::encode([0x07u8; 32]),
            "announcement": serde_json::to_value(&announcement).unwrap(),
            "scale": hex::encode(announcement.encode()),
            "signing_bytes": hex::encode(&signing_bytes),
            "signature": signed.signature.to_string(),
            "wire_json": wire,
        }),
    );
}

#[test]
fn availability_vector() {
    use dsi_protocol::{Availability, SignedAvailability};
    let key = SecretKey::from_seed(&[0x07; 32]);
    let network = NetworkId::new("dsi-local").unwrap();
    let notices: Vec<Value> = [
        Availability::Pause { epochs: 24 },
        Availability::Resume,
        Availability::Exit,
    ]
    .into_iter()
    .map(|change| {
        let signed = SignedAvailability::sign(change, 1_764_000_000_000, &network, &key);
        signed.verify(&network).unwrap();
        assert!(
            signed
                .verify(&NetworkId::new("dsi-devnet").unwrap())
                .is_err()
        );
        let wire = serde_json::to_string(&signed).unwrap();
        let parsed: SignedAvailability = serde_json::from_str(&wire).unwrap();
        assert_eq!(parsed, signed);
        let signing_bytes = signed.notice.signing_bytes(&network);
        let mut expected = b"dsi/availability/v1".to_vec();
        expected.extend(network.encode());
        expected.extend(signed.notice.encode());
        assert_eq!(signing_bytes, expected);
        json!({
            "notice": serde_json::to_value(signed.notice).unwrap(),
            "scale": hex::encode(signed.notice.encode()),
            "signing_bytes": hex::encode(&signing_bytes),
            "signature": signed.signature.to_string(),
            "wire_json": wire,
        })
    })
    .collect();
    check(
        "availability.json",
        json!({
            "description": "node seed = 32 bytes of 0x07 (the seeder of receipt.json); a pause \
                of 24 epochs, a resume and an exit, each issued at 1764000000000. wire_json is \
                the exact body of POST /v1/availability (flat: the notice's fields and \
                \"signature\" in one object)",
            "network": network.as_str(),
            "node_seed": hex::encode([0x07u8; 32]),
            "notices": notices,
        }),
    );
}

/// The name of a [`ManifestError`] in `refused.json`.
fn error_kind(error: &ManifestError) -> &'static str {
    match error {
        ManifestError::Decode { .. } => "decode",
        ManifestError::NotCanonical => "not_canonical",
        ManifestError::Version { .. } => "version",
        ManifestError::ChunkSize { .. } => "chunk_size",
        ManifestError::ChunkCount { .. } => "chunk_count",
        ManifestError::Name { .. } => "name",
    }
}

/// Manifest bytes with the length prefixes given verbatim (so they can be non-canonical).
fn raw_manifest(
    version: u8,
    name_prefix: &[u8],
    name: &[u8],
    size: u64,
    chunk_size: u32,
    chunks_prefix: &[u8],
    chunks: &[ChunkId],
) -> Vec<u8> {
    let mut out = vec![version];
    out.extend(name_prefix);
    out.extend(name);
    out.extend(size.to_le_bytes());
    out.extend(chunk_size.to_le_bytes());
    out.extend(chunks_prefix);
    for chunk in chunks {
        out.extend(chunk.0);
    }
    out
}

/// Manifest bytes with canonical length prefixes, valid or not.
fn manifest_bytes(
    version: u8,
    name: &[u8],
    size: u64,
    chunk_size: u32,
    chunks: &[ChunkId],
) -> Vec<u8> {
    let name_prefix = Compact(name.len() as u32).encode();
    let chunks_prefix = Compact(chunks.len() as u32).encode();
    raw_manifest(
        version,
        &name_prefix,
        name,
        size,
        chunk_size,
        &chunks_prefix,
        chunks,
    )
}

#[test]
fn refused_vector() {
    const KIB16: u32 = 16 * 1024;
    let id = ChunkId::of(b"dsi");
    let base = manifest_bytes(1, b"f", 0, KIB16, &[]);
    assert!(Manifest::from_bytes(&base).is_ok());
    let mut trailing = base.clone();
    trailing.push(0);
    let truncated = base[..base.len() - 1].to_vec();
    let long_name = "a".repeat(MAX_NAME_LEN + 1);
    let name = |n: &str| manifest_bytes(1, n.as_bytes(), 0, KIB16, &[]);
    let refused: Vec<(&str, Vec<u8>, &str)> = vec![
        ("a trailing byte after a valid manifest", trailing, "decode"),
        (
            "truncated: the chunk list's length prefix is missing",
            truncated,
            "decode",
        ),
        (
            "version 0",
            manifest_bytes(0, b"f", 0, KIB16, &[]),
            "version",
        ),
        (
            "version 2",
            manifest_bytes(2, b"f", 0, KIB16, &[]),
            "version",
        ),
        (
            "non-canonical compact: name length 1 in two-byte mode (0500; canonical 04)",
            raw_manifest(1, &[0x05, 0x00], b"f", 0, KIB16, &[0x00], &[]),
            "decode",
        ),
        (
            "non-canonical compact: name length 1 in four-byte mode (06000000)",
            raw_manifest(1, &[0x06, 0, 0, 0], b"f", 0, KIB16, &[0x00], &[]),
            "decode",
        ),
        (
            "non-canonical compact: name length 1 in big-integer mode (0301000000)",
            raw_manifest(1, &[0x03, 1, 0, 0, 0], b"f", 0, KIB16, &[0x00], &[]),
            "decode",
        ),
        (
            "non-canonical compact: chunk count 0 in two-byte mode (0100; canonical 00)",
            raw_manifest(1, &[0x04], b"f", 0, KIB16, &[0x01, 0x00], &[]),
            "decode",
        ),
        (
            "non-canonical compact: chunk count 1 in two-byte mode (0500; canonical 04)",
            raw_manifest(1, &[0x04], b"f", 1, KIB16, &[0x05, 0x00], &[id]),
            "decode",
        ),
        (
            "name is not UTF-8 (byte ff)",
            manifest_bytes(1, &[0xff], 0, KIB16, &[]),
            "decode",
        ),
        (
            "name is not UTF-8 (c0af, an overlong '/')",
            manifest_bytes(1, &[0xc0, 0xaf], 0, KIB16, &[]),
            "decode",
        ),
        (
            "name is not UTF-8 (eda080, a UTF-16 surrogate)",
            manifest_bytes(1, &[0xed, 0xa0, 0x80], 0, KIB16, &[]),
            "decode",
        ),
        (
            "chunk size 0",
            manifest_bytes(1, b"f", 0, 0, &[]),
            "chunk_size",
        ),
        (
            "chunk size 1000: not a power of two",
            manifest_bytes(1, b"f", 0, 1000, &[]),
            "chunk_size",
        ),
        (
            "chunk size 16385: not a power of two",
            manifest_bytes(1, b"f", 0, KIB16 + 1, &[]),
            "chunk_size",
        ),
        (
            "chunk size 8192: a power of two below 16 KiB",
            manifest_bytes(1, b"f", 0, 8192, &[]),
            "chunk_size",
        ),
        (
            "chunk size 8 MiB: a power of two above 4 MiB",
            manifest_bytes(1, b"f", 0, 8 << 20, &[]),
            "chunk_size",
        ),
        (
            "chunk count: 1 byte of content, no chunk ids",
            manifest_bytes(1, b"f", 1, KIB16, &[]),
            "chunk_count",
        ),
        (
            "chunk count: empty content, one chunk id",
            manifest_bytes(1, b"f", 0, KIB16, &[id]),
            "chunk_count",
        ),
        (
            "chunk count: 16385 bytes need 2 chunks, one given",
            manifest_bytes(1, b"f", u64::from(KIB16) + 1, KIB16, &[id]),
            "chunk_count",
        ),
        (
            "chunk count: 16384 bytes need 1 chunk, two given",
            manifest_bytes(1, b"f", u64::from(KIB16), KIB16, &[id, id]),
            "chunk_count",
        ),
        ("name with a path separator '/'", name("a/b"), "name"),
        ("name with a path separator '\\'", name("a\\b"), "name"),
        ("name '.'", name("."), "name"),
        ("name '..'", name(".."), "name"),
        ("name with a newline (U+000A)", name("a\nb"), "name"),
        ("name with a tab (U+0009)", name("a\tb"), "name"),
        ("name with NUL (U+0000)", name("a\0b"), "name"),
        ("name with DEL (U+007F)", name("a\u{7f}b"), "name"),
        (
            "name with a C1 control character (U+0085, UTF-8 c285)",
            name("a\u{85}b"),
            "name",
        ),
        ("name of 256 bytes (at most 255)", name(&long_name), "name"),
    ];
    let refused_json: Vec<Value> = refused
        .iter()
        .map(|(reason, bytes, kind)| {
            let error = Manifest::from_bytes(bytes).unwrap_err();
            assert_eq!(error_kind(&error), *kind, "{reason}: {error}");
            json!({"reason": reason, "hex": hex::encode(bytes), "error": kind})
        })
        .collect();

    let accepted: Vec<(&str, Vec<u8>)> = vec![
        ("empty content: no chunks", base.clone()),
        ("empty name", name("")),
        ("name of 255 bytes", name(&"a".repeat(MAX_NAME_LEN))),
        ("name '...' (only '.' and '..' are refused)", name("...")),
        ("name of one space", name(" ")),
        (
            "name with U+202E RIGHT-TO-LEFT OVERRIDE (a format character, not a control)",
            name("a\u{202e}b"),
        ),
        (
            "name with ':', '*', '?', '\"', '<', '>', '|'",
            name("a:*?\"<>|"),
        ),
        (
            "chunk size 4 MiB, 1 byte of content",
            manifest_bytes(1, b"f", 1, 4 << 20, &[id]),
        ),
    ];
    let accepted_json: Vec<Value> = accepted
        .iter()
        .map(|(reason, bytes)| {
            let manifest = Manifest::from_bytes(bytes).unwrap_or_else(|e| panic!("{reason}: {e}"));
            assert_eq!(&manifest.to_bytes(), bytes);
            json!({
                "reason": reason,
                "hex": hex::encode(bytes),
                "content_id": manifest.content_id().to_string(),
            })
        })
        .collect();

    let bad_networks = [
        ("", "empty"),
        ("DSI-local", "upper case"),
        ("dsi_local", "'_'"),
        ("dsi local", "a space"),
        ("dsi.local", "'.'"),
        ("dsi-lócal", "not ASCII"),
        (
            "abcdefghijklmnopqrstuvwxyz0123456",
            "33 characters (at most 32)",
        ),
    ];
    let networks_json: Vec<Value> = bad_networks
        .iter()
        .map(|(name, reason)| {
            assert!(NetworkId::new(name).is_err(), "{reason}");
            let scale = name.to_string().encode();
            assert!(NetworkId::decode(&mut &scale[..]).is_err(), "{reason}");
            json!({"name": name, "reason": reason, "scale": hex::encode(&scale)})
        })
        .collect();
    let good_networks = ["dsi-local", "0", "-", "abcdefghijklmnopqrstuvwxyz012345"];
    for name in good_networks {
        let id = NetworkId::new(name).unwrap();
        let scale = id.encode();
        assert_eq!(NetworkId::decode(&mut &scale[..]).unwrap(), id);
    }
    // The same name with a non-canonical length prefix.
    let mut non_canonical = vec![0x25, 0x00];
    non_canonical.extend(b"dsi-local");
    assert!(NetworkId::decode(&mut &non_canonical[..]).is_err());

    let hex64 = "ab".repeat(32);
    let bad_ids: Vec<(&str, String, &str)> = vec![
        (
            "chunk id",
            format!("0x{hex64}"),
            "0x prefix (ids are bare hex)",
        ),
        ("chunk id", hex64[..63].to_string(), "63 digits"),
        ("chunk id", format!("{hex64}0"), "65 digits"),
        ("chunk id", "zz".repeat(32), "not hex"),
        ("node id", "ab".repeat(31), "62 digits"),
        (
            "signature",
            "ab".repeat(32),
            "64 digits (a signature has 128)",
        ),
        (
            "payout account",
            format!("0x{}", "ab".repeat(19)),
            "0x + 38 digits",
        ),
        (
            "payout account",
            format!("0X{}", "ab".repeat(20)),
            "0X prefix (only 0x)",
        ),
        ("epoch", "-1".to_string(), "negative"),
        ("epoch", "1.0".to_string(), "not an integer"),
        (
            "epoch",
            "18446744073709551616".to_string(),
            "2^64 (does not fit a u64)",
        ),
    ];
    let ids_json: Vec<Value> = bad_ids
        .iter()
        .map(|(kind, text, reason)| {
            let refused = match *kind {
                "chunk id" => text.parse::<ChunkId>().is_err(),
                "node id" => text.parse::<NodeId>().is_err(),
                "signature" => text.parse::<dsi_protocol::Signature>().is_err(),
                "payout account" => text.parse::<PayoutAccount>().is_err(),
                _ => text.parse::<Epoch>().is_err(),
            };
            assert!(refused, "{kind} {text}: {reason}");
            json!({"type": kind, "text": text, "reason": reason})
        })
        .collect();

    check(
        "refused.json",
        json!({
            "description": "Inputs that strict decoders must refuse, each with the reason. \
                            manifests: Manifest::from_bytes (error: decode = not a SCALE manifest \
                            (trailing bytes, truncation, non-canonical compact, invalid UTF-8); \
                            version; chunk_size; chunk_count; name). accepted_manifests: edge \
                            cases that are valid and must be accepted (with their content ids). \
                            network_ids: names NetworkId refuses (as text and as SCALE). ids: \
                            text forms the id parsers refuse",
            "manifests": refused_json,
            "accepted_manifests": accepted_json,
            "network_ids": networks_json,
            "network_id_non_canonical_scale": {
                "hex": hex::encode(&non_canonical),
                "reason": "\"dsi-local\" with its length 9 in two-byte mode (2500; canonical 24)",
            },
            "ids": ids_json,
        }),
    );
}

/// The layout of a version 2 `EpochBatch` of `oracle/src/batch.rs` (version 3 adds the
/// `sponsorships` after `inputs`; the oracle still reads and verifies version 2), mirrored
/// so that this crate can pin a batch without depending on the oracle. SCALE of a struct is
/// the concatenation of its fields' encodings in declaration order.
#[derive(Encode)]
struct EpochBatch {
    version: u8,
    network: NetworkId,
    schedule: EpochSchedule,
    issued_at_skew_ms: u64,
    downloader_cap_bytes: u64,
    inputs: EpochInputs,
    receipts: Vec<SignedReceipt>,
    root: [u8; 32],
    total: u128,
}

/// `(field, SCALE bytes)` pieces as JSON, checked to concatenate to `whole`.
fn parts_json(parts: &[(&str, Vec<u8>)], whole: &[u8]) -> Vec<Value> {
    let joined: Vec<u8> = parts.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    assert_eq!(joined, whole);
    parts
        .iter()
        .map(|(field, bytes)| json!({"field": field, "hex": hex::encode(bytes)}))
        .collect()
}

#[test]
fn epoch_vector() {
    let network = NetworkId::new("dsi-local").unwrap();
    let epoch = Epoch(17);
    // Epoch 17 of this schedule starts at the golden receipt's issue time.
    let schedule = EpochSchedule {
        genesis_ms: 1_764_000_000_000 - 17 * 3_600_000,
        length_ms: 3_600_000,
    };
    assert_eq!(schedule.window(epoch).0, 1_764_000_000_000);
    let seeder_a = SecretKey::from_seed(&[0x07; 32]).node_id();
    let seeder_b = SecretKey::from_seed(&[0x08; 32]).node_id();
    let seeder_c = SecretKey::from_seed(&[0x09; 32]).node_id();
    let downloader_1 = SecretKey::from_seed(&[0x42; 32]);
    let downloader_2 = SecretKey::from_seed(&[0x43; 32]);
    let manifest = vector_manifest();
    let (c0, c1, c2) = (manifest.chunks[0], manifest.chunks[1], manifest.chunks[2]);
    let dsi = ChunkId::of(b"dsi");
    let sign = |key: &SecretKey, seeder: NodeId, chunk: ChunkId, bytes: u32, at: u64, nonce| {
        let receipt = Receipt {
            epoch,
            seeder,
            downloader: key.node_id(),
            chunk,
            bytes,
            issued_at_ms: at,
            nonce,
        };
        SignedReceipt::sign(receipt, &network, key)
    };
    let mut receipts = vec![
        golden_receipt().0,
        sign(&downloader_1, seeder_a, c1, 16_384, 1_764_000_060_000, 1),
        sign(&downloader_1, seeder_b, c2, 7_232, 1_764_000_120_000, 2),
        sign(&downloader_2, seeder_b, c0, 16_384, 1_764_000_180_000, 3),
    ];
    // A batch holds its receipts ordered by (seeder, chunk, downloader), bytewise.
    receipts.sort_by_key(|r| (r.receipt.seeder, r.receipt.chunk, r.receipt.downloader));
    for r in &receipts {
        r.verify(&network).unwrap();
    }
    let boost = Ppm(1_500_000);
    let mut chunks = vec![
        ChunkFacts {
            chunk: dsi,
            length: 262_144,
            holders: 1,
            boost: Ppm::ONE,
        },
        ChunkFacts {
            chunk: c0,
            length: 16_384,
            holders: 2,
            boost,
        },
        ChunkFacts {
            chunk: c1,
            length: 16_384,
            holders: 2,
            boost,
        },
        ChunkFacts {
            chunk: c2,
            length: 7_232,
            holders: 2,
            boost,
        },
    ];
    chunks.sort_by_key(|f| f.chunk);
    let at = |a: u8, b: u8, c: u8, d: u8| Location::of(std::net::IpAddr::from([a, b, c, d]));
    let mut seeders = vec![
        SeederFacts {
            seeder: seeder_a,
            payout: PayoutAccount([0x07; 20]),
            previous_cumulative: 5_000_000,
            reputation: Ppm::ONE,
            audits_passed: 12,
        },
        SeederFacts {
            seeder: seeder_b,
            payout: PayoutAccount([0x08; 20]),
            previous_cumulative: 0,
            reputation: Ppm(800_000),
            audits_passed: 3,
        },
        SeederFacts {
            seeder: seeder_c,
            payout: PayoutAccount([0x09; 20]),
            previous_cumulative: 123,
            reputation: Ppm::ONE,
            audits_passed: 9,
        },
    ];
    seeders.sort_by_key(|s| s.seeder);
    let mut holders = vec![
        Holder {
            node: seeder_a,
            location: at(10, 0, 1, 7),
            since: Epoch(10),
        },
        Holder {
            node: seeder_b,
            location: at(10, 0, 2, 8),
            since: Epoch(17),
        },
        // Same /24 as A and proven for less long: not counted.
        Holder {
            node: seeder_c,
            location: at(10, 0, 1, 9),
            since: Epoch(12),
        },
    ];
    holders.sort_by_key(|h| h.node);
    let mut contents = vec![
        ContentFacts {
            content: manifest.content_id(),
            length: manifest.size,
            replicas: 3,
            funding: Funding::Sponsored {
                per_epoch: 600_000_000,
            },
            holders,
        },
        ContentFacts {
            content: ContentId(*blake3::hash(b"dsi public good").as_bytes()),
            length: 262_144,
            replicas: 3,
            funding: Funding::Subsidized { boost: Ppm::ONE },
            holders: vec![Holder {
                node: seeder_a,
                location: at(10, 0, 1, 7),
                since: Epoch(3),
            }],
        },
    ];
    contents.sort_by_key(|c| c.content);
    let inputs = EpochInputs {
        epoch,
        budget: 1_000_000_000,
        // Written out, not `RewardParams::default()`: the vector must not move with the
        // deploy defaults.
        params: RewardParams {
            rarity: LinearCurve {
                base: Ppm::ONE,
                slope: Ppm(250_000),
                min: Ppm::ONE,
                max: Ppm(2_000_000),
            },
            target_replication: 3,
            demand: LinearCurve {
                base: Ppm::ONE,
                slope: Ppm(10_000),
                min: Ppm::ONE,
                max: Ppm(1_500_000),
            },
            bandwidth_share: Ppm(700_000),
        },
        market: MarketParams {
            price_per_byte: 1_000,
            fee: Ppm(100_000),
            vetting_audits: 9,
            unvetted_share: Ppm(500_000),
        },
        chunks,
        contents,
        // Downloader 0x42 has less credit than its bytes cost; 0x43 has none.
        credits: vec![CreditFacts {
            downloader: downloader_1.node_id(),
            available: 200_000_000,
        }],
        seeders,
    };
    let rewards = aggregate(&inputs, receipts.iter().map(|r| &r.receipt)).unwrap();
    assert!(rewards.total <= rewards.funding_drawn());
    assert_eq!(rewards.debited(&downloader_1.node_id()), 200_000_000);
    assert_eq!(rewards.debited(&downloader_2.node_id()), 0);
    let leaves = rewards.leaves();
    assert_eq!(
        leaves.len(),
        2,
        "the seeder that earned nothing has no leaf"
    );
    let tree = MerkleTree::from_leaves::<Keccak256>(&leaves);
    let root = tree.root();
    let batch = EpochBatch {
        version: 2,
        network: network.clone(),
        schedule,
        issued_at_skew_ms: 60_000,
        downloader_cap_bytes: 64 << 30,
        inputs: inputs.clone(),
        receipts: receipts.clone(),
        root,
        total: rewards.total,
    };
    let bytes = batch.encode();
    let batch_parts = parts_json(
        &[
            ("version", batch.version.encode()),
            ("network", batch.network.encode()),
            ("schedule", batch.schedule.encode()),
            ("issued_at_skew_ms", batch.issued_at_skew_ms.encode()),
            ("downloader_cap_bytes", batch.downloader_cap_bytes.encode()),
            ("inputs", batch.inputs.encode()),
            ("receipts", batch.receipts.encode()),
            ("root", batch.root.encode()),
            ("total", batch.total.encode()),
        ],
        &bytes,
    );
    let inputs_parts = parts_json(
        &[
            ("epoch", inputs.epoch.encode()),
            ("budget", inputs.budget.encode()),
            ("params", inputs.params.encode()),
            ("market", inputs.market.encode()),
            ("chunks", inputs.chunks.encode()),
            ("contents", inputs.contents.encode()),
            ("credits", inputs.credits.encode()),
            ("seeders", inputs.seeders.encode()),
        ],
        &inputs.encode(),
    );
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"dsi/batch/v1");
    hasher.update(&bytes);
    let batch_id = ContentId(*hasher.finalize().as_bytes());

    let chunks_json: Vec<Value> = inputs
        .chunks
        .iter()
        .map(|f| {
            json!({
                "chunk": f.chunk.to_string(),
                "length": f.length,
                "holders": f.holders,
                "boost": f.boost.0,
            })
        })
        .collect();
    let seeders_json: Vec<Value> = inputs
        .seeders
        .iter()
        .map(|s| {
            json!({
                "seeder": s.seeder.to_string(),
                "payout": s.payout.to_string(),
                "previous_cumulative": s.previous_cumulative.to_string(),
                "reputation": s.reputation.0,
                "audits_passed": s.audits_passed,
            })
        })
        .collect();
    let rewards_json: Vec<Value> = rewards
        .seeders
        .iter()
        .map(|s| {
            json!({
                "seeder": s.seeder.to_string(),
                "payout": s.payout.to_string(),
                "receipts": s.receipts,
                "bytes_served": s.bytes_served,
                "paid_bytes": s.paid_bytes,
                "bonus_amount": s.bonus_amount.to_string(),
                "bandwidth_amount": s.bandwidth_amount.to_string(),
                "storage_amount": s.storage_amount.to_string(),
                "amount": s.amount.to_string(),
                "cumulative": s.cumulative.to_string(),
            })
        })
        .collect();
    let leaves_json: Vec<Value> = leaves
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
                "scale": hex::encode(leaf.encode()),
                "hash": hex::encode(leaf.hash::<Keccak256>()),
                "proof": proof.iter().map(hex::encode).collect::<Vec<_>>(),
            })
        })
        .collect();
    check(
        "epoch.json",
        json!({
            "description": "one epoch end to end: seeders A, B, C = seeds 0x07.., 0x08.., 0x09.. \
                            (payouts 20 bytes of 0x07, 0x08, 0x09); downloaders seeds 0x42.. \
                            (credit 200000000, less than its 285760 bytes cost at 1000 per \
                            byte: its seeders share it pro rata) and 0x43.. (no credit: its \
                            receipt pays nothing); chunks: BLAKE3(\"dsi\") and the 3 chunks of \
                            manifest.json (boost 1.5x). manifest.json's content is sponsored \
                            (600000000 per epoch, 3 replicas) and held by A (10.0.1.0/24 since \
                            epoch 10), B (10.0.2.0/24 since 17) and C (A's /24 since 12, so not \
                            counted); a subsidized content (BLAKE3(\"dsi public good\")) held by \
                            A takes the budget. B is not vetted (3 of 9 audits: half share) and \
                            has reputation 0.8x; C earned nothing, so it has no leaf. batch is \
                            SCALE(EpochBatch) of oracle/src/batch.rs (version 2); batch_parts and \
                            inputs_parts split it field by field; batch_content_id = \
                            BLAKE3(\"dsi/batch/v1\" || batch)",
            "network": network.as_str(),
            "schedule": {"genesis_ms": schedule.genesis_ms, "length_ms": schedule.length_ms},
            "issued_at_skew_ms": batch.issued_at_skew_ms,
            "downloader_cap_bytes": batch.downloader_cap_bytes,
            "inputs": {
                "epoch": inputs.epoch.0,
                "budget": inputs.budget.to_string(),
                "params": serde_json::to_value(inputs.params).unwrap(),
                "market": serde_json::to_value(inputs.market).unwrap(),
                "chunks": chunks_json,
                "contents": serde_json::to_value(&inputs.contents).unwrap(),
                "credits": inputs.credits.iter().map(|c| json!({
                    "downloader": c.downloader.to_string(),
                    "available": c.available.to_string(),
                })).collect::<Vec<_>>(),
                "seeders": seeders_json,
            },
            "debits": rewards.debits.iter().map(|d| json!({
                "downloader": d.downloader.to_string(),
                "bytes": d.bytes,
                "cost": d.cost.to_string(),
                "debited": d.debited.to_string(),
            })).collect::<Vec<_>>(),
            "contents_paid": rewards.contents.iter().map(|c| json!({
                "content": c.content.to_string(),
                "counted": c.counted.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
                "paid": c.paid.to_string(),
            })).collect::<Vec<_>>(),
            "fees": rewards.fees.to_string(),
            "bonuses": rewards.bonuses.to_string(),
            "receipts": receipts
                .iter()
                .map(|r| serde_json::to_value(r).unwrap())
                .collect::<Vec<_>>(),
            "rewards": rewards_json,
            "total": rewards.total.to_string(),
            "leaves": leaves_json,
            "root": hex::encode(root),
            "inputs_parts": inputs_parts,
            "batch_parts": batch_parts,
            "batch": hex::encode(&bytes),
            "batch_content_id": batch_id.to_string(),
        }),
    );
}

/// The golden chunk request: downloader seed 0x42.. asks seeder seed 0x07.. for
/// BLAKE3("dsi"), the parties and chunk of `receipt.json`. `header` is the text of the
/// `x-dsi-downloader` header that carries it (`dsi_api::downloader`, whose tests read this
/// file too).
#[test]
fn chunk_request_vector() {
    use dsi_protocol::request::{CHUNK_REQUEST_DOMAIN, ChunkRequest};
    let downloader = SecretKey::from_seed(&[0x42; 32]);
    let network = NetworkId::new("dsi-local").unwrap();
    let (request, signature) = ChunkRequest {
        downloader: downloader.node_id(),
        seeder: SecretKey::from_seed(&[0x07; 32]).node_id(),
        chunk: ChunkId::of(b"dsi"),
        issued_at_ms: 1_764_000_000_000,
    }
    .sign(&network, &downloader);
    request.verify(&network, &signature).unwrap();
    let signing_bytes = request.signing_bytes(&network);
    assert!(signing_bytes.starts_with(CHUNK_REQUEST_DOMAIN));
    check(
        "chunk_request.json",
        json!({
            "description": "downloader seed = 32 bytes of 0x42, seeder seed = 32 bytes of 0x07, chunk = BLAKE3(\"dsi\"); header is the value of the x-dsi-downloader header of GET /v1/chunks/{chunk} at that seeder: <downloader>.<issued_at_ms>.<signature>",
            "network": network.as_str(),
            "downloader_seed": hex::encode([0x42u8; 32]),
            "request": serde_json::to_value(request).unwrap(),
            "scale": hex::encode(request.encode()),
            "signing_bytes": hex::encode(&signing_bytes),
            "signature": signature.to_string(),
            "header": format!("{}.{}.{}", request.downloader, request.issued_at_ms, signature),
        }),
    );
}

/// `manifest_registration.json`: the registration of `manifest.json`'s content by the node
/// of seed 32 × 0x07, and the `x-dsi-registrant` header that carries it.
#[test]
fn manifest_registration_vector() {
    use dsi_protocol::registration::{MANIFEST_REGISTRATION_DOMAIN, ManifestRegistration};
    let node = SecretKey::from_seed(&[0x07; 32]);
    let network = NetworkId::new("dsi-local").unwrap();
    let (registration, signature) = ManifestRegistration {
        registrant: node.node_id(),
        content: vector_manifest().content_id(),
        issued_at_ms: 1_764_000_000_000,
    }
    .sign(&network, &node);
    registration.verify(&network, &signature).unwrap();
    let signing_bytes = registration.signing_bytes(&network);
    assert!(signing_bytes.starts_with(MANIFEST_REGISTRATION_DOMAIN));
    check(
        "manifest_registration.json",
        json!({
            "description": "registrant seed = 32 bytes of 0x07, content = manifest.json's content id; header is the value of the x-dsi-registrant header of POST /v1/manifests: <registrant>.<issued_at_ms>.<signature>",
            "network": network.as_str(),
            "registrant_seed": hex::encode([0x07u8; 32]),
            "registration": serde_json::to_value(registration).unwrap(),
            "scale": hex::encode(registration.encode()),
            "signing_bytes": hex::encode(&signing_bytes),
            "signature": signature.to_string(),
            "header": format!("{}.{}.{}", registration.registrant, registration.issued_at_ms, signature),
        }),
    );
}

/// `audit.json`: a storage audit challenge (oracle seed 32 × 0x42) for the node of seed
/// 32 × 0x07, the possession proof over two chunks and the node's answer signature.
#[test]
fn audit_vector() {
    use dsi_protocol::AuditNonce;
    use dsi_protocol::audit::{
        AuditChallenge, SignedAuditChallenge, answer_signing_bytes, possession_proof, sign_answer,
        verify_answer,
    };
    let oracle = SecretKey::from_seed(&[0x42; 32]);
    let node = SecretKey::from_seed(&[0x07; 32]);
    let network = NetworkId::new("dsi-local").unwrap();
    let bytes = content();
    let chunks: [&[u8]; 2] = [&bytes[..16_384], &bytes[16_384..32_768]];
    let signed = SignedAuditChallenge::sign(
        AuditChallenge {
            auditor: NodeId([0; 32]),
            node: node.node_id(),
            epoch: Epoch(17),
            nonce: AuditNonce([0x5a; 32]),
            chunks: chunks.iter().map(|c| ChunkId::of(c)).collect(),
            issued_at_ms: 1_764_000_000_000,
        },
        &network,
        &oracle,
    );
    signed.verify(&network).unwrap();
    let proof = possession_proof(&signed.challenge.nonce, chunks);
    let answer = sign_answer(&node, &network, &signed.challenge, &proof);
    verify_answer(&network, &signed.challenge, &proof, &answer).unwrap();
    let wire = serde_json::to_string(&signed).unwrap();
    assert_eq!(
        serde_json::from_str::<SignedAuditChallenge>(&wire).unwrap(),
        signed
    );
    check(
        "audit.json",
        json!({
            "description": "oracle seed = 32 bytes of 0x42, node seed = 32 bytes of 0x07, nonce = 32 bytes of 0x5a, chunks = bytes 0..16384 and 16384..32768 of the vector content (byte i = i mod 251)",
            "network": network.as_str(),
            "challenge_signing_bytes": hex::encode(signed.challenge.signing_bytes(&network)),
            "challenge_signature": signed.signature.to_string(),
            "challenge_digest": hex::encode(signed.challenge.digest(&network)),
            "wire_json": wire,
            "possession_proof": hex::encode(proof),
            "answer_signing_bytes": hex::encode(answer_signing_bytes(&network, &signed.challenge, &proof)),
            "answer_signature": answer.to_string(),
        }),
    );
}
