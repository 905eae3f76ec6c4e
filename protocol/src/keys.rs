//! Node secret keys (ed25519). The secret never prints: `Debug` shows `SecretKey(..)` and
//! there is no `Display`. The key material is zeroized on drop.

use core::fmt;

use ed25519_dalek::{Signer, SigningKey};

use crate::{NodeId, Signature};

/// A node's ed25519 secret key.
#[derive(Clone)]
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// Generates a fresh key from a cryptographic RNG.
    pub fn generate<R: rand_core::CryptoRngCore + ?Sized>(rng: &mut R) -> Self {
        Self(SigningKey::generate(rng))
    }

    /// Builds a key from its 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// The 32-byte seed. Handle with care: whoever has it can sign as this node.
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The node id (public key) of this key.
    pub fn node_id(&self) -> NodeId {
        NodeId(self.0.verifying_key().to_bytes())
    }

    /// Signs a message.
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// Why a strict signature check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrictFailure {
    /// The node id is not a usable ed25519 public key (not a point, or of small order).
    BadKey,
    /// The signature does not verify for this key and message.
    BadSignature,
}

/// Strict ed25519 verification, as every DSI signature is checked: the key must decode to a
/// curve point that is not of small order ("weak"), and the signature must pass
/// `verify_strict` (canonical `S`, `R` not of small order, cofactorless equation).
pub fn verify_strict(
    node: &NodeId,
    message: &[u8],
    signature: &Signature,
) -> Result<(), StrictFailure> {
    let key = ed25519_dalek::VerifyingKey::from_bytes(node.as_bytes())
        .map_err(|_| StrictFailure::BadKey)?;
    if key.is_weak() {
        return Err(StrictFailure::BadKey);
    }
    key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&signature.0))
        .map_err(|_| StrictFailure::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_secret() {
        let key = SecretKey::from_seed(&[9; 32]);
        assert_eq!(alloc::format!("{key:?}"), "SecretKey(..)");
        assert_eq!(SecretKey::from_seed(&key.seed()).node_id(), key.node_id());
    }
}
