//! Seeding receipts: a downloader's signed statement that a seeder served it a chunk that
//! verified.
//!
//! The signed bytes are `RECEIPT_DOMAIN ‖ SCALE(network id) ‖ SCALE(receipt)`
//! ([`Receipt::signing_bytes`]); never a struct's in-memory form. The network id is
//! length-prefixed, so the concatenation is unambiguous.

use alloc::vec::Vec;

use parity_scale_codec::{Decode, Encode, MaxEncodedLen};

use crate::{ChunkId, Epoch, NetworkId, NodeId, Signature};

/// What a downloader attests: in `epoch`, `seeder` served `bytes` bytes of chunk `chunk` to
/// `downloader`, and the bytes hashed to the chunk id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode, MaxEncodedLen)]
#[cfg_attr(feature = "scale-info", derive(scale_info::TypeInfo))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Receipt {
    /// The epoch the service happened in.
    pub epoch: Epoch,
    /// The node that served the chunk (and earns from this receipt).
    pub seeder: NodeId,
    /// The node that received the chunk and signs the receipt.
    pub downloader: NodeId,
    /// The chunk served.
    pub chunk: ChunkId,
    /// Number of bytes served (the chunk's length).
    pub bytes: u32,
    /// When the downloader issued the receipt, in Unix milliseconds.
    pub issued_at_ms: u64,
    /// Random value chosen by the downloader; makes each receipt unique.
    pub nonce: u64,
}

/// A receipt with the downloader's ed25519 signature over its signing bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode, MaxEncodedLen)]
#[cfg_attr(feature = "scale-info", derive(scale_info::TypeInfo))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SignedReceipt {
    /// The receipt.
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub receipt: Receipt,
    /// The downloader's signature over [`Receipt::signing_bytes`].
    pub signature: Signature,
}

/// Why a receipt failed verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// The downloader key is not a valid ed25519 point or is a weak (small-order) key.
    #[error("downloader key {downloader} is not a usable ed25519 public key")]
    BadKey {
        /// The downloader key.
        downloader: NodeId,
    },
    /// The signature does not verify against the downloader key.
    #[error("signature does not verify for downloader {downloader}")]
    BadSignature {
        /// The downloader key.
        downloader: NodeId,
    },
}

impl Receipt {
    /// The exact bytes a downloader signs:
    /// [`crate::RECEIPT_DOMAIN`] ‖ SCALE(network) ‖ SCALE(receipt).
    pub fn signing_bytes(&self, network: &NetworkId) -> Vec<u8> {
        crate::signing_bytes(crate::RECEIPT_DOMAIN, network, self)
    }
}

#[cfg(feature = "ed25519")]
mod signing {
    use super::*;
    use alloc::vec;
    use ed25519_dalek::{Signature as DalekSignature, VerifyingKey};

    fn verifying_key(id: &NodeId) -> Result<VerifyingKey, ReceiptError> {
        let key = VerifyingKey::from_bytes(id.as_bytes())
            .map_err(|_| ReceiptError::BadKey { downloader: *id })?;
        if key.is_weak() {
            return Err(ReceiptError::BadKey { downloader: *id });
        }
        Ok(key)
    }

    impl SignedReceipt {
        /// Signs `receipt` for `network` with the downloader's key. The receipt's
        /// `downloader` field is set to the key's node id.
        pub fn sign(mut receipt: Receipt, network: &NetworkId, key: &crate::SecretKey) -> Self {
            receipt.downloader = key.node_id();
            let signature = key.sign(&receipt.signing_bytes(network));
            Self { receipt, signature }
        }

        /// Verifies the signature (strict ed25519: no weak keys, canonical signatures).
        pub fn verify(&self, network: &NetworkId) -> Result<(), ReceiptError> {
            let downloader = self.receipt.downloader;
            let key = verifying_key(&downloader)?;
            let signature = DalekSignature::from_bytes(&self.signature.0);
            key.verify_strict(&self.receipt.signing_bytes(network), &signature)
                .map_err(|_| ReceiptError::BadSignature { downloader })
        }

        /// Verifies many receipts: one ed25519 batch verification, and only if that fails,
        /// one check per receipt to find the bad ones. The result has one entry per
        /// receipt, in order.
        pub fn verify_many(
            receipts: &[Self],
            network: &NetworkId,
        ) -> Vec<Result<(), ReceiptError>> {
            if receipts.is_empty() {
                return Vec::new();
            }
            let keys: Result<Vec<VerifyingKey>, ReceiptError> = receipts
                .iter()
                .map(|r| verifying_key(&r.receipt.downloader))
                .collect();
            if let Ok(keys) = keys {
                let messages: Vec<Vec<u8>> = receipts
                    .iter()
                    .map(|r| r.receipt.signing_bytes(network))
                    .collect();
                let message_refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
                let signatures: Vec<DalekSignature> = receipts
                    .iter()
                    .map(|r| DalekSignature::from_bytes(&r.signature.0))
                    .collect();
                // The batch check (cofactorless, random linear combination) rejects
                // non-canonical `s` like `verify_strict`; weak keys were refused above. It
                // can differ from the strict check only for signatures a key's owner crafted
                // with torsion components, which gain nothing an honest signature would not.
                if ed25519_dalek::verify_batch(&message_refs, &signatures, &keys).is_ok() {
                    return vec![Ok(()); receipts.len()];
                }
            }
            receipts.iter().map(|r| r.verify(network)).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_bytes_layout() {
        let receipt = Receipt {
            epoch: Epoch(1),
            seeder: NodeId([1; 32]),
            downloader: NodeId([2; 32]),
            chunk: ChunkId([3; 32]),
            bytes: 4,
            issued_at_ms: 5,
            nonce: 6,
        };
        let network = NetworkId::default();
        let bytes = receipt.signing_bytes(&network);
        assert!(bytes.starts_with(b"dsi/receipt/v1"));
        let rest = &bytes[crate::RECEIPT_DOMAIN.len()..];
        assert_eq!(
            rest[0] as usize,
            NetworkId::LOCAL.len() << 2,
            "compact length prefix"
        );
        assert_eq!(
            &rest[1..1 + NetworkId::LOCAL.len()],
            NetworkId::LOCAL.as_bytes()
        );
        assert_eq!(&rest[1 + NetworkId::LOCAL.len()..], &receipt.encode()[..]);
        assert_eq!(receipt.encode().len(), Receipt::max_encoded_len());
    }
}
