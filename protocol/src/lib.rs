//! # dsi-protocol: the one definition of every DSI wire format
//!
//! This crate owns everything that more than one DSI component must agree on bit for bit:
//!
//! - **ids** ([`ChunkId`], [`ContentId`], [`NodeId`], [`Epoch`], [`Signature`],
//!   [`PayoutAccount`], [`NetworkId`]): newtypes with hex `Display`/`FromStr` that round-trip;
//! - **manifests** ([`Manifest`]): how a file is split into content-addressed chunks and how
//!   its content id is derived (BLAKE3 over a domain tag and the canonical SCALE encoding);
//! - **seeding receipts** ([`Receipt`], [`SignedReceipt`]): the bytes a downloader signs for a
//!   seeder (domain tag ‖ network id ‖ SCALE(receipt)), signing and (batch) verification;
//! - **the reward Merkle tree** ([`merkle`]): leaves, node hashing with domain prefixes,
//!   proofs, and verification generic over the hash function so that contracts can use their
//!   host keccak and everyone else a software one;
//! - **fixed-point arithmetic** ([`fixed`]): parts-per-million multipliers, pro-rata splits
//!   and multiplier curves, integer only, checked or saturating;
//! - **epochs** ([`EpochSchedule`]): the mapping from wall-clock milliseconds to epochs;
//! - **tracker announcements** ([`announce`]): a node's signed statement of its URL, payout
//!   account and holdings;
//! - **chunk requests** ([`request`]): a downloader's signed request for one chunk at one
//!   seeder, which receipt-gated seeders key unpaid chunks on;
//! - **manifest registrations** ([`registration`]): a node's signed registration of one
//!   manifest at the oracle, which bounds the manifests per key;
//! - **rewards** ([`reward`]): the epoch aggregation rule (rarity, demand, boosts, storage
//!   and bandwidth shares) that the oracle runs and anyone can rerun from a published batch;
//! - **reputation** ([`reputation`]): the Beta-style update rule and its graded reward factor.
//!
//! It does not own storage, networking, or policy (which receipt is fraud, how much an epoch
//! pays): those live in `node-lite`, the `oracle` and the contracts, which all import this
//! crate so a format exists exactly once.
//!
//! The crate is `no_std` + `alloc`. Cargo features:
//! `std` (default), `blake3` (computing chunk and content ids), `keccak` (a software
//! keccak-256 for the Merkle tree), `ed25519` (receipt signatures; not available on
//! pallet-revive), `serde` (hex strings in JSON), `scale-info` (ink! metadata).
//!
//! Golden vectors in `tests/vectors/` pin every format; the contracts' tests load them too.
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod announce;
#[cfg(feature = "blake3")]
pub mod audit;
pub mod availability;
pub mod epoch;
pub mod fixed;
pub mod ids;
#[cfg(feature = "ed25519")]
pub mod keys;
pub mod manifest;
pub mod merkle;
pub mod receipt;
pub mod registration;
pub mod reputation;
pub mod request;
pub mod reward;

pub use announce::{Announcement, NodeEndpoint, SignedAnnouncement};
pub use availability::{Availability, AvailabilityNotice, SignedAvailability};
pub use epoch::EpochSchedule;
#[cfg(feature = "std")]
pub use epoch::now_ms;
pub use ids::{
    AuditNonce, ChunkId, ContentId, Epoch, NetworkId, NodeId, ParseIdError, PayoutAccount,
    Signature,
};
#[cfg(feature = "ed25519")]
pub use keys::SecretKey;
pub use manifest::{Manifest, ManifestError};
pub use merkle::{MerkleHasher, MerkleTree, RewardLeaf};
pub use receipt::{Receipt, ReceiptError, SignedReceipt};

/// Domain tag prepended to a manifest's SCALE encoding before hashing it into a content id.
pub const MANIFEST_DOMAIN: &[u8] = b"dsi/manifest/v1";
/// Domain tag that starts the signing bytes of a seeding receipt.
pub const RECEIPT_DOMAIN: &[u8] = b"dsi/receipt/v1";

/// The bytes every DSI signature covers: `domain ‖ SCALE(network) ‖ SCALE(message)`. Each
/// kind of signed message has its own domain tag, so none can be replayed as another, and
/// the network id keeps signatures from crossing networks.
pub fn signing_bytes<T: parity_scale_codec::Encode>(
    domain: &[u8],
    network: &NetworkId,
    message: &T,
) -> alloc::vec::Vec<u8> {
    use parity_scale_codec::Encode;
    let mut out =
        alloc::vec::Vec::with_capacity(domain.len() + network.encoded_size() + message.size_hint());
    out.extend_from_slice(domain);
    network.encode_to(&mut out);
    message.encode_to(&mut out);
    out
}
