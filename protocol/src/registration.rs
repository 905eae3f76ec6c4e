//! Manifest registrations: a node's signed statement "I, `registrant`, register the
//! manifest of `content`, now". The oracle stores a manifest only with such a signature and
//! counts the manifests each key registered, so the manifests (and chunk lengths) one key
//! can make the oracle store are bounded.
//!
//! The signed bytes are `MANIFEST_REGISTRATION_DOMAIN ‖ SCALE(network id) ‖
//! SCALE(registration)` ([`ManifestRegistration::signing_bytes`]), the layout of receipts,
//! announcements and chunk requests under its own domain tag, so none of them can be
//! replayed as another. The registration names the content id, which is the hash of the
//! manifest's bytes, so a signature is good for exactly one manifest. The text form that
//! travels in the `x-dsi-registrant` header is `dsi-api`'s business
//! (`dsi_api::registrant`).

use alloc::vec::Vec;

use parity_scale_codec::{Decode, Encode, MaxEncodedLen};

use crate::{ContentId, NetworkId, NodeId};

/// Domain tag that starts the signing bytes of a manifest registration.
pub const MANIFEST_REGISTRATION_DOMAIN: &[u8] = b"dsi/manifest-registration/v1";

/// What a node signs to register a manifest (SCALE: 72 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode, MaxEncodedLen)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ManifestRegistration {
    /// The registering node (its ed25519 public key; it signs).
    pub registrant: NodeId,
    /// The manifest's content id.
    pub content: ContentId,
    /// When the node signed, in Unix milliseconds.
    pub issued_at_ms: u64,
}

/// Why a manifest registration's signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// The registrant key is not a valid ed25519 point or is a weak (small-order) key.
    #[error("registrant key {registrant} is not a usable ed25519 public key")]
    BadKey {
        /// The registrant key.
        registrant: NodeId,
    },
    /// The signature does not verify for this registrant, content, time and network.
    #[error("signature does not verify for registrant {registrant}")]
    BadSignature {
        /// The registrant key.
        registrant: NodeId,
    },
}

impl ManifestRegistration {
    /// The exact bytes a registrant signs:
    /// [`MANIFEST_REGISTRATION_DOMAIN`] ‖ SCALE(network) ‖ SCALE(registration).
    pub fn signing_bytes(&self, network: &NetworkId) -> Vec<u8> {
        crate::signing_bytes(MANIFEST_REGISTRATION_DOMAIN, network, self)
    }
}

#[cfg(feature = "ed25519")]
mod signing {
    use super::*;
    use crate::Signature;
    use crate::keys::{StrictFailure, verify_strict};

    impl ManifestRegistration {
        /// Signs the registration for `network` with the node's key; `registrant` is set to
        /// the key's node id.
        pub fn sign(mut self, network: &NetworkId, key: &crate::SecretKey) -> (Self, Signature) {
            self.registrant = key.node_id();
            let signature = key.sign(&self.signing_bytes(network));
            (self, signature)
        }

        /// Verifies `signature` by `registrant` over the registration (strict ed25519: no
        /// weak keys, canonical signatures).
        pub fn verify(
            &self,
            network: &NetworkId,
            signature: &Signature,
        ) -> Result<(), RegistrationError> {
            let registrant = self.registrant;
            verify_strict(&registrant, &self.signing_bytes(network), signature).map_err(|e| match e
            {
                StrictFailure::BadKey => RegistrationError::BadKey { registrant },
                StrictFailure::BadSignature => RegistrationError::BadSignature { registrant },
            })
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_registration_verifies_only_unchanged_and_on_its_network() {
            let key = crate::SecretKey::from_seed(&[5; 32]);
            let network = NetworkId::default();
            let (registration, signature) = ManifestRegistration {
                registrant: NodeId([0; 32]),
                content: ContentId([2; 32]),
                issued_at_ms: 3,
            }
            .sign(&network, &key);
            assert_eq!(registration.registrant, key.node_id());
            assert_eq!(registration.verify(&network, &signature), Ok(()));
            let other = NetworkId::new("dsi-other").expect("valid name");
            assert!(registration.verify(&other, &signature).is_err());
            let moved = ManifestRegistration {
                content: ContentId([3; 32]),
                ..registration
            };
            assert!(moved.verify(&network, &signature).is_err());
            let later = ManifestRegistration {
                issued_at_ms: 4,
                ..registration
            };
            assert!(later.verify(&network, &signature).is_err());
        }
    }
}
