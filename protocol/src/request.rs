//! Chunk requests: a downloader's signed statement "I, `downloader`, ask `seeder` for
//! `chunk`, now". A seeder that serves only against receipts keys each unpaid chunk on the
//! downloader that asked; the signature makes sure nobody can run up debts in another
//! downloader's name.
//!
//! The signed bytes are `CHUNK_REQUEST_DOMAIN ‖ SCALE(network id) ‖ SCALE(request)`
//! ([`ChunkRequest::signing_bytes`]), the layout of receipts and announcements under its
//! own domain tag, so none of the three can be replayed as another. The request names the
//! seeder and the chunk, so a signature is good for one chunk at one seeder; the issue time
//! lets the seeder refuse old requests. The text form that travels in the `x-dsi-downloader`
//! header is `dsi-api`'s business (`dsi_api::downloader`).

use alloc::vec::Vec;

use parity_scale_codec::{Decode, Encode, MaxEncodedLen};

use crate::{ChunkId, NetworkId, NodeId};

/// Domain tag that starts the signing bytes of a chunk request.
pub const CHUNK_REQUEST_DOMAIN: &[u8] = b"dsi/chunk-request/v1";

/// What a downloader signs to ask a seeder for a chunk (SCALE: 104 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode, MaxEncodedLen)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ChunkRequest {
    /// The node asking (its ed25519 public key; it signs).
    pub downloader: NodeId,
    /// The node asked.
    pub seeder: NodeId,
    /// The chunk asked for.
    pub chunk: ChunkId,
    /// When the downloader signed, in Unix milliseconds.
    pub issued_at_ms: u64,
}

/// Why a chunk request's signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkRequestError {
    /// The downloader key is not a valid ed25519 point or is a weak (small-order) key.
    #[error("downloader key {downloader} is not a usable ed25519 public key")]
    BadKey {
        /// The downloader key.
        downloader: NodeId,
    },
    /// The signature does not verify for this downloader, seeder, chunk, time and network.
    #[error("signature does not verify for downloader {downloader}")]
    BadSignature {
        /// The downloader key.
        downloader: NodeId,
    },
}

impl ChunkRequest {
    /// The exact bytes a downloader signs:
    /// [`CHUNK_REQUEST_DOMAIN`] ‖ SCALE(network) ‖ SCALE(request).
    pub fn signing_bytes(&self, network: &NetworkId) -> Vec<u8> {
        crate::signing_bytes(CHUNK_REQUEST_DOMAIN, network, self)
    }
}

#[cfg(feature = "ed25519")]
mod signing {
    use super::*;
    use crate::Signature;
    use crate::keys::{StrictFailure, verify_strict};

    impl ChunkRequest {
        /// Signs the request for `network` with the downloader's key; the request's
        /// `downloader` is set to the key's node id.
        pub fn sign(mut self, network: &NetworkId, key: &crate::SecretKey) -> (Self, Signature) {
            self.downloader = key.node_id();
            let signature = key.sign(&self.signing_bytes(network));
            (self, signature)
        }

        /// Verifies `signature` by `downloader` over the request (strict ed25519: no weak
        /// keys, canonical signatures).
        pub fn verify(
            &self,
            network: &NetworkId,
            signature: &Signature,
        ) -> Result<(), ChunkRequestError> {
            let downloader = self.downloader;
            verify_strict(&downloader, &self.signing_bytes(network), signature).map_err(|e| match e
            {
                StrictFailure::BadKey => ChunkRequestError::BadKey { downloader },
                StrictFailure::BadSignature => ChunkRequestError::BadSignature { downloader },
            })
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_request_verifies_only_unchanged_and_on_its_network() {
            let key = crate::SecretKey::from_seed(&[5; 32]);
            let network = NetworkId::default();
            let (request, signature) = ChunkRequest {
                downloader: NodeId([0; 32]),
                seeder: NodeId([1; 32]),
                chunk: ChunkId([2; 32]),
                issued_at_ms: 3,
            }
            .sign(&network, &key);
            assert_eq!(request.downloader, key.node_id());
            assert_eq!(request.verify(&network, &signature), Ok(()));
            let other = NetworkId::new("dsi-other").expect("valid name");
            assert!(request.verify(&other, &signature).is_err());
            for changed in [
                ChunkRequest {
                    seeder: NodeId([9; 32]),
                    ..request
                },
                ChunkRequest {
                    chunk: ChunkId([9; 32]),
                    ..request
                },
                ChunkRequest {
                    issued_at_ms: 4,
                    ..request
                },
                ChunkRequest {
                    downloader: crate::SecretKey::from_seed(&[6; 32]).node_id(),
                    ..request
                },
            ] {
                assert_eq!(
                    changed.verify(&network, &signature),
                    Err(ChunkRequestError::BadSignature {
                        downloader: changed.downloader
                    })
                );
            }
            let weak = ChunkRequest {
                downloader: NodeId([0; 32]),
                ..request
            };
            assert!(weak.verify(&network, &signature).is_err());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_bytes_layout() {
        let request = ChunkRequest {
            downloader: NodeId([1; 32]),
            seeder: NodeId([2; 32]),
            chunk: ChunkId([3; 32]),
            issued_at_ms: 4,
        };
        let bytes = request.signing_bytes(&NetworkId::default());
        assert!(bytes.starts_with(CHUNK_REQUEST_DOMAIN));
        let rest = &bytes[CHUNK_REQUEST_DOMAIN.len()..];
        assert_eq!(rest[0] as usize, NetworkId::LOCAL.len() << 2);
        let body = &rest[1 + NetworkId::LOCAL.len()..];
        assert_eq!(body, &request.encode()[..]);
        assert_eq!(body.len(), 104);
        assert_eq!(ChunkRequest::max_encoded_len(), 104);
    }
}
