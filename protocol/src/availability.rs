//! A node's signed notice that it pauses, resumes or leaves the network for good.
//!
//! The tracker acts on it from the next epoch: a paused node is not listed for downloads
//! (from the notice on), not audited at the closes of its paused epochs, and its
//! reputation and seniority are kept as they were (up to the oracle's
//! `tracker.max_paused_epochs`); the epoch the notice arrives in is still audited, so a
//! notice cannot dodge an audit that is due. An exit is final for the key: its
//! announcement ends and no later one is taken.
//!
//! The signed bytes are `AVAILABILITY_DOMAIN ‖ SCALE(network id) ‖ SCALE(notice)`
//! ([`AvailabilityNotice::signing_bytes`]), another domain tag than announcements' and
//! receipts', so none can be replayed as another.

use alloc::vec::Vec;

use parity_scale_codec::{Decode, Encode};

use crate::{NetworkId, NodeId, Signature};

/// Domain tag that starts the signing bytes of an availability notice.
pub const AVAILABILITY_DOMAIN: &[u8] = b"dsi/availability/v1";

/// What a node tells the tracker about its availability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Availability {
    /// Away for this many epochs after the current one.
    Pause {
        /// Epochs paused (at least 1, at most the oracle's `tracker.max_paused_epochs`).
        epochs: u32,
    },
    /// Back now: listed again, and the current epoch is audited at its close.
    Resume,
    /// Gone for good: the announcement ends and the key is not taken again.
    Exit,
}

/// A node's availability notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AvailabilityNotice {
    /// The node (its ed25519 public key; it signs the notice).
    pub node: NodeId,
    /// The change.
    pub change: Availability,
    /// When the node issued the notice, in Unix milliseconds. The tracker takes a notice
    /// only if it is newer than the last one it took from the node (no replays).
    pub issued_at_ms: u64,
}

/// A notice with the node's signature over its signing bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SignedAvailability {
    /// The notice.
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub notice: AvailabilityNotice,
    /// The node's signature over [`AvailabilityNotice::signing_bytes`].
    pub signature: Signature,
}

impl AvailabilityNotice {
    /// The exact bytes a node signs: [`AVAILABILITY_DOMAIN`] ‖ SCALE(network) ‖ SCALE(self).
    pub fn signing_bytes(&self, network: &NetworkId) -> Vec<u8> {
        crate::signing_bytes(AVAILABILITY_DOMAIN, network, self)
    }
}

#[cfg(feature = "ed25519")]
mod signing {
    use super::*;
    use crate::announce::AnnounceError;

    impl SignedAvailability {
        /// Signs `change` issued at `issued_at_ms` for `network` with `key`.
        pub fn sign(
            change: Availability,
            issued_at_ms: u64,
            network: &NetworkId,
            key: &crate::SecretKey,
        ) -> Self {
            let notice = AvailabilityNotice {
                node: key.node_id(),
                change,
                issued_at_ms,
            };
            let signature = key.sign(&notice.signing_bytes(network));
            Self { notice, signature }
        }

        /// Verifies the signature (strict ed25519, weak keys refused).
        pub fn verify(&self, network: &NetworkId) -> Result<(), AnnounceError> {
            crate::announce::signing::verify_node(
                &self.notice.node,
                &self.notice.signing_bytes(network),
                &self.signature,
            )
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn notices_verify_only_unchanged_and_on_their_network() {
            let key = crate::SecretKey::from_seed(&[6; 32]);
            let network = NetworkId::default();
            let signed =
                SignedAvailability::sign(Availability::Pause { epochs: 3 }, 7, &network, &key);
            assert_eq!(signed.notice.node, key.node_id());
            assert_eq!(signed.verify(&network), Ok(()));
            let other = NetworkId::new("dsi-other").expect("valid name");
            assert_eq!(signed.verify(&other), Err(AnnounceError::BadSignature));
            for changed in [
                AvailabilityNotice {
                    change: Availability::Pause { epochs: 4 },
                    ..signed.notice
                },
                AvailabilityNotice {
                    change: Availability::Exit,
                    ..signed.notice
                },
                AvailabilityNotice {
                    issued_at_ms: 8,
                    ..signed.notice
                },
            ] {
                let forged = SignedAvailability {
                    notice: changed,
                    signature: signed.signature,
                };
                assert_eq!(forged.verify(&network), Err(AnnounceError::BadSignature));
            }
            assert!(
                signed
                    .notice
                    .signing_bytes(&network)
                    .starts_with(AVAILABILITY_DOMAIN)
            );
        }
    }
}
