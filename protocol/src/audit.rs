//! Storage audits: a challenge the oracle signs, an answer the audited node signs.
//!
//! The oracle picks a few chunks among everything a node announced and sends an
//! [`AuditChallenge`] naming the node, a fresh random [`AuditNonce`] and the chunks, signed
//! under [`AUDIT_CHALLENGE_DOMAIN`]. The node answers with the chunks' bytes and its
//! signature, under [`AUDIT_ANSWER_DOMAIN`], over the challenge's digest and the
//! [`possession_proof`]: BLAKE3 keyed with the nonce over every chunk (its length, then its
//! bytes), in the challenge's order. The oracle checks each chunk's bytes against its id and
//! the signature against the announced node key, so
//!
//! - an answer is bound to the key that announced (another node's URL, or a redirect to
//!   it, answers with the wrong key or for the wrong node);
//! - an answer cannot be replayed (the nonce is fresh, the node remembers nonces until the
//!   challenge expires);
//! - the audit route serves chunks only to the oracle's signed challenges: it is not a way
//!   around receipt-gated serving, and it never creates a debt.
//!
//! Both signing byte strings are `DOMAIN ‖ SCALE(network id) ‖ ...`, like receipts and
//! announcements, under their own tags, so no signed message can be replayed as another.

use alloc::vec::Vec;

use parity_scale_codec::{Decode, Encode};

use crate::{AuditNonce, ChunkId, Epoch, NetworkId, NodeId, Signature};

/// Domain tag that starts the signing bytes of an audit challenge.
pub const AUDIT_CHALLENGE_DOMAIN: &[u8] = b"dsi/audit-challenge/v1";
/// Domain tag that starts the signing bytes of an audit answer.
pub const AUDIT_ANSWER_DOMAIN: &[u8] = b"dsi/audit-answer/v1";
/// Most chunks one challenge may ask for.
pub const MAX_AUDIT_CHUNKS: usize = 8;
/// How long a challenge may be answered after it was issued (and how far in the future its
/// issue time may lie), in milliseconds.
pub const AUDIT_CHALLENGE_TTL_MS: u64 = 5 * 60 * 1000;

/// What the oracle asks a node to prove it holds.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AuditChallenge {
    /// The auditor (the oracle's key): it signs the challenge.
    pub auditor: NodeId,
    /// The audited node: only this key's answer counts.
    pub node: NodeId,
    /// The epoch the audit counts for.
    pub epoch: Epoch,
    /// Fresh randomness: no two challenges share it.
    pub nonce: AuditNonce,
    /// The chunks to prove, at most [`MAX_AUDIT_CHUNKS`].
    pub chunks: Vec<ChunkId>,
    /// When the oracle issued it, Unix milliseconds.
    pub issued_at_ms: u64,
}

/// A challenge with the auditor's signature over [`AuditChallenge::signing_bytes`].
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SignedAuditChallenge {
    /// The challenge.
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub challenge: AuditChallenge,
    /// The auditor's signature.
    pub signature: Signature,
}

/// Why a challenge or an answer failed verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// The key is not a usable ed25519 public key.
    #[error("key is not a usable ed25519 public key")]
    BadKey,
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
}

impl AuditChallenge {
    /// The exact bytes the auditor signs: [`AUDIT_CHALLENGE_DOMAIN`] ‖ SCALE(network) ‖
    /// SCALE(self).
    pub fn signing_bytes(&self, network: &NetworkId) -> Vec<u8> {
        let mut out = Vec::with_capacity(AUDIT_CHALLENGE_DOMAIN.len() + 64 + self.size_hint());
        out.extend_from_slice(AUDIT_CHALLENGE_DOMAIN);
        network.encode_to(&mut out);
        self.encode_to(&mut out);
        out
    }

    /// BLAKE3-256 of the signing bytes: what an answer refers to.
    pub fn digest(&self, network: &NetworkId) -> [u8; 32] {
        *blake3::hash(&self.signing_bytes(network)).as_bytes()
    }

    /// Whether the challenge may be answered at `now_ms`.
    pub fn is_fresh(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.issued_at_ms) <= AUDIT_CHALLENGE_TTL_MS
            && self.issued_at_ms.saturating_sub(now_ms) <= AUDIT_CHALLENGE_TTL_MS
    }
}

/// The keyed hash that proves possession: BLAKE3 keyed with the challenge's nonce over each
/// chunk's length (4 bytes, little-endian) and bytes, in the challenge's order.
#[derive(Clone)]
pub struct PossessionHasher(blake3::Hasher);

impl PossessionHasher {
    /// A hasher for a challenge's nonce.
    pub fn new(nonce: &AuditNonce) -> Self {
        Self(blake3::Hasher::new_keyed(nonce.as_bytes()))
    }

    /// Adds the next chunk (its whole bytes).
    pub fn chunk(&mut self, bytes: &[u8]) {
        self.start_chunk(bytes.len() as u32);
        self.update(bytes);
    }

    /// Starts the next chunk of `len` bytes, to be fed with [`PossessionHasher::update`] as
    /// its bytes stream in (the verifier knows the lengths and buffers nothing).
    pub fn start_chunk(&mut self, len: u32) {
        self.0.update(&len.to_le_bytes());
    }

    /// More bytes of the current chunk.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The proof.
    pub fn finish(&self) -> [u8; 32] {
        *self.0.finalize().as_bytes()
    }
}

/// The possession proof over whole chunks, in order.
pub fn possession_proof<'a>(
    nonce: &AuditNonce,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> [u8; 32] {
    let mut hasher = PossessionHasher::new(nonce);
    for bytes in chunks {
        hasher.chunk(bytes);
    }
    hasher.finish()
}

/// The exact bytes an audited node signs: [`AUDIT_ANSWER_DOMAIN`] ‖ SCALE(network) ‖
/// the challenge's digest ‖ the node id ‖ the possession proof.
pub fn answer_signing_bytes(
    network: &NetworkId,
    challenge: &AuditChallenge,
    proof: &[u8; 32],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(AUDIT_ANSWER_DOMAIN.len() + 64 + 96);
    out.extend_from_slice(AUDIT_ANSWER_DOMAIN);
    network.encode_to(&mut out);
    out.extend_from_slice(&challenge.digest(network));
    out.extend_from_slice(challenge.node.as_bytes());
    out.extend_from_slice(proof);
    out
}

#[cfg(feature = "ed25519")]
mod signing {
    use super::*;

    fn verify(key: &NodeId, message: &[u8], signature: &Signature) -> Result<(), AuditError> {
        crate::keys::verify_strict(key, message, signature).map_err(|e| match e {
            crate::keys::StrictFailure::BadKey => AuditError::BadKey,
            crate::keys::StrictFailure::BadSignature => AuditError::BadSignature,
        })
    }

    impl SignedAuditChallenge {
        /// Signs `challenge` as the auditor; its `auditor` is set to the key's node id.
        pub fn sign(
            mut challenge: AuditChallenge,
            network: &NetworkId,
            key: &crate::SecretKey,
        ) -> Self {
            challenge.auditor = key.node_id();
            let signature = key.sign(&challenge.signing_bytes(network));
            Self {
                challenge,
                signature,
            }
        }

        /// Verifies the auditor's signature (strict ed25519, weak keys refused).
        pub fn verify(&self, network: &NetworkId) -> Result<(), AuditError> {
            verify(
                &self.challenge.auditor,
                &self.challenge.signing_bytes(network),
                &self.signature,
            )
        }
    }

    /// The audited node's signature over its answer.
    pub fn sign_answer(
        key: &crate::SecretKey,
        network: &NetworkId,
        challenge: &AuditChallenge,
        proof: &[u8; 32],
    ) -> Signature {
        key.sign(&answer_signing_bytes(network, challenge, proof))
    }

    /// Checks that the challenged node (`challenge.node`) signed `proof` for this challenge.
    pub fn verify_answer(
        network: &NetworkId,
        challenge: &AuditChallenge,
        proof: &[u8; 32],
        signature: &Signature,
    ) -> Result<(), AuditError> {
        verify(
            &challenge.node,
            &answer_signing_bytes(network, challenge, proof),
            signature,
        )
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn challenge(node: NodeId) -> AuditChallenge {
            AuditChallenge {
                auditor: NodeId([0; 32]),
                node,
                epoch: Epoch(7),
                nonce: AuditNonce([3; 32]),
                chunks: alloc::vec![ChunkId([4; 32]), ChunkId([5; 32])],
                issued_at_ms: 1_000,
            }
        }

        #[test]
        fn challenges_and_answers_verify_only_for_their_signer_network_and_bytes() {
            let oracle = crate::SecretKey::from_seed(&[1; 32]);
            let node = crate::SecretKey::from_seed(&[2; 32]);
            let other = crate::SecretKey::from_seed(&[9; 32]);
            let network = NetworkId::default();
            let signed = SignedAuditChallenge::sign(challenge(node.node_id()), &network, &oracle);
            assert_eq!(signed.challenge.auditor, oracle.node_id());
            assert_eq!(signed.verify(&network), Ok(()));
            let elsewhere = NetworkId::new("dsi-other").expect("valid name");
            assert_eq!(signed.verify(&elsewhere), Err(AuditError::BadSignature));
            let mut changed = signed.clone();
            changed.challenge.chunks.pop();
            assert_eq!(changed.verify(&network), Err(AuditError::BadSignature));

            let bytes: [&[u8]; 2] = [b"first chunk", b"second"];
            let proof = possession_proof(&signed.challenge.nonce, bytes);
            let answer = sign_answer(&node, &network, &signed.challenge, &proof);
            assert_eq!(
                verify_answer(&network, &signed.challenge, &proof, &answer),
                Ok(())
            );
            // Another key (a node answering for someone else's URL) does not verify.
            let foreign = sign_answer(&other, &network, &signed.challenge, &proof);
            assert_eq!(
                verify_answer(&network, &signed.challenge, &proof, &foreign),
                Err(AuditError::BadSignature)
            );
            // Another nonce gives another proof: old answers do not replay.
            let mut fresh = signed.challenge.clone();
            fresh.nonce = AuditNonce([8; 32]);
            assert_ne!(possession_proof(&fresh.nonce, bytes), proof);
            assert_eq!(
                verify_answer(&network, &fresh, &proof, &answer),
                Err(AuditError::BadSignature)
            );
            // Chunk boundaries are part of the proof.
            let joined: [&[u8]; 1] = [b"first chunksecond"];
            assert_ne!(possession_proof(&signed.challenge.nonce, joined), proof);
        }

        #[test]
        fn freshness_is_a_window_both_ways() {
            let c = challenge(NodeId([1; 32]));
            assert!(c.is_fresh(1_000));
            assert!(c.is_fresh(1_000 + AUDIT_CHALLENGE_TTL_MS));
            assert!(!c.is_fresh(1_001 + AUDIT_CHALLENGE_TTL_MS));
            let mut future = c.clone();
            future.issued_at_ms = 1_000 + AUDIT_CHALLENGE_TTL_MS + 1;
            assert!(!future.is_fresh(0));
        }
    }
}

#[cfg(feature = "ed25519")]
pub use signing::{sign_answer, verify_answer};
