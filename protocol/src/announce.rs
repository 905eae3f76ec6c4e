//! Tracker announcements: a node's signed statement of where it is reachable, where its
//! rewards go and which content it holds.
//!
//! The signed bytes are `ANNOUNCE_DOMAIN ‖ SCALE(network id) ‖ SCALE(announcement)`
//! ([`Announcement::signing_bytes`]), the same layout as receipts under another domain tag,
//! so neither can be replayed as the other.

use alloc::string::String;
use alloc::vec::Vec;

use parity_scale_codec::{Decode, Encode};

use crate::{ContentId, NetworkId, NodeId, PayoutAccount, Signature};

/// Domain tag that starts the signing bytes of a tracker announcement.
pub const ANNOUNCE_DOMAIN: &[u8] = b"dsi/announce/v1";

/// Longest accepted node URL, in bytes.
pub const MAX_URL_LEN: usize = 256;

/// Most content ids in one announcement.
pub const MAX_ANNOUNCED_CONTENTS: usize = 4096;

/// Most relay URLs in a [`NodeEndpoint`].
pub const MAX_ENDPOINT_RELAYS: usize = 4;

/// Most direct addresses in a [`NodeEndpoint`].
pub const MAX_ENDPOINT_ADDRESSES: usize = 8;

/// Where a node is reached over iroh (QUIC keyed by its node key, `node-lite`'s
/// `transport`): the relays it is homed on and the UDP socket addresses it may be reached
/// at directly. The node id is the endpoint's id, so it is not repeated here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct NodeEndpoint {
    /// Relay URLs (`http://relay.example:3340/`): at most [`MAX_ENDPOINT_RELAYS`], each at
    /// most [`MAX_URL_LEN`] bytes, `http` or `https`.
    pub relays: Vec<String>,
    /// Socket addresses (`203.0.113.7:41641`, `[2001:db8::7]:41641`): at most
    /// [`MAX_ENDPOINT_ADDRESSES`].
    pub direct: Vec<String>,
}

/// Why a [`NodeEndpoint`] is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// More relays than [`MAX_ENDPOINT_RELAYS`].
    #[error("endpoint: more than {MAX_ENDPOINT_RELAYS} relays")]
    TooManyRelays,
    /// More direct addresses than [`MAX_ENDPOINT_ADDRESSES`].
    #[error("endpoint: more than {MAX_ENDPOINT_ADDRESSES} direct addresses")]
    TooManyAddresses,
    /// A relay URL that is too long or not http(s).
    #[error("endpoint: relay {0:?} is not an http(s) URL of at most {MAX_URL_LEN} bytes")]
    BadRelay(String),
    /// A direct address that is not `IP:PORT`.
    #[error("endpoint: direct address {0:?} is not IP:PORT")]
    BadAddress(String),
}

impl NodeEndpoint {
    /// Checks the limits and forms (what a tracker enforces; the signature does not).
    pub fn check(&self) -> Result<(), EndpointError> {
        if self.relays.len() > MAX_ENDPOINT_RELAYS {
            return Err(EndpointError::TooManyRelays);
        }
        if self.direct.len() > MAX_ENDPOINT_ADDRESSES {
            return Err(EndpointError::TooManyAddresses);
        }
        for relay in &self.relays {
            let http = relay.starts_with("http://") || relay.starts_with("https://");
            if !http || relay.len() > MAX_URL_LEN || relay.chars().any(char::is_whitespace) {
                return Err(EndpointError::BadRelay(relay.clone()));
            }
        }
        for address in &self.direct {
            self::parse_address(address)?;
        }
        Ok(())
    }

    /// The direct addresses, parsed (those that do not parse are left out).
    pub fn direct_addresses(&self) -> Vec<core::net::SocketAddr> {
        self.direct
            .iter()
            .filter_map(|a| parse_address(a).ok())
            .collect()
    }
}

fn parse_address(address: &str) -> Result<core::net::SocketAddr, EndpointError> {
    address
        .parse()
        .map_err(|_| EndpointError::BadAddress(address.into()))
}

/// What a node tells the tracker about itself.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Announcement {
    /// The announcing node (its ed25519 public key; it signs the announcement).
    pub node: NodeId,
    /// Base URL where the node serves chunks (`http://127.0.0.1:7000`).
    pub url: String,
    /// The H160 account that receives this node's rewards.
    pub payout: PayoutAccount,
    /// Content the node holds completely.
    pub contents: Vec<ContentId>,
    /// When the node issued the announcement, in Unix milliseconds. A tracker keeps only
    /// the newest announcement per node, so an old one cannot be replayed over a new one.
    pub issued_at_ms: u64,
    /// Where the node is reached over iroh, if it accepts peers there.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub endpoint: Option<NodeEndpoint>,
}

/// An announcement with the node's signature over its signing bytes.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SignedAnnouncement {
    /// The announcement.
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub announcement: Announcement,
    /// The node's signature over [`Announcement::signing_bytes`].
    pub signature: Signature,
}

/// Why an announcement failed verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    /// The node key is not a usable ed25519 public key.
    #[error("node key is not a usable ed25519 public key")]
    BadKey,
    /// The signature does not verify.
    #[error("signature does not verify for the announcing node")]
    BadSignature,
}

impl Announcement {
    /// The exact bytes a node signs: [`ANNOUNCE_DOMAIN`] ‖ SCALE(network) ‖ SCALE(self).
    pub fn signing_bytes(&self, network: &NetworkId) -> Vec<u8> {
        crate::signing_bytes(ANNOUNCE_DOMAIN, network, self)
    }
}

#[cfg(feature = "ed25519")]
pub(crate) mod signing {
    use super::*;
    use crate::keys::StrictFailure;

    impl SignedAnnouncement {
        /// Signs `announcement` for `network`; its `node` is set to the key's node id.
        pub fn sign(
            mut announcement: Announcement,
            network: &NetworkId,
            key: &crate::SecretKey,
        ) -> Self {
            announcement.node = key.node_id();
            let signature = key.sign(&announcement.signing_bytes(network));
            Self {
                announcement,
                signature,
            }
        }

        /// Verifies the signature (strict ed25519, weak keys refused).
        pub fn verify(&self, network: &NetworkId) -> Result<(), AnnounceError> {
            verify_node(
                &self.announcement.node,
                &self.announcement.signing_bytes(network),
                &self.signature,
            )
        }
    }

    /// Verifies `node`'s strict ed25519 signature over `bytes`, as a tracker message's
    /// [`AnnounceError`].
    pub(crate) fn verify_node(
        node: &NodeId,
        bytes: &[u8],
        signature: &Signature,
    ) -> Result<(), AnnounceError> {
        crate::keys::verify_strict(node, bytes, signature).map_err(|e| match e {
            StrictFailure::BadKey => AnnounceError::BadKey,
            StrictFailure::BadSignature => AnnounceError::BadSignature,
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn endpoints_are_checked_for_limits_and_forms() {
            let ok = NodeEndpoint {
                relays: alloc::vec!["http://relay.example:3340/".into()],
                direct: alloc::vec!["203.0.113.7:41641".into(), "[2001:db8::7]:9".into()],
            };
            assert_eq!(ok.check(), Ok(()));
            assert_eq!(ok.direct_addresses().len(), 2);
            let bad = |relays: &[&str], direct: &[&str]| {
                NodeEndpoint {
                    relays: relays.iter().map(|r| (*r).into()).collect(),
                    direct: direct.iter().map(|d| (*d).into()).collect(),
                }
                .check()
            };
            assert!(matches!(
                bad(&["ftp://x/"], &[]),
                Err(EndpointError::BadRelay(_))
            ));
            assert!(matches!(
                bad(&[], &["example.com:80"]),
                Err(EndpointError::BadAddress(_))
            ));
            assert_eq!(
                bad(&["http://r/"; 5], &[]),
                Err(EndpointError::TooManyRelays)
            );
            assert_eq!(
                bad(&[], &["1.2.3.4:5"; 9]),
                Err(EndpointError::TooManyAddresses)
            );
        }

        #[test]
        fn signed_announcements_verify_only_unchanged_and_on_their_network() {
            let key = crate::SecretKey::from_seed(&[5; 32]);
            let network = NetworkId::default();
            let signed = SignedAnnouncement::sign(
                Announcement {
                    node: NodeId([0; 32]),
                    url: "http://127.0.0.1:7000".into(),
                    payout: PayoutAccount([1; 20]),
                    contents: alloc::vec![ContentId([2; 32])],
                    issued_at_ms: 3,
                    endpoint: None,
                },
                &network,
                &key,
            );
            assert_eq!(signed.announcement.node, key.node_id());
            assert_eq!(signed.verify(&network), Ok(()));
            let other = NetworkId::new("dsi-other").expect("valid name");
            assert_eq!(signed.verify(&other), Err(AnnounceError::BadSignature));
            let mut changed = signed.clone();
            changed.announcement.url.push('x');
            assert_eq!(changed.verify(&network), Err(AnnounceError::BadSignature));
            // The endpoint is signed too: a tracker cannot point downloaders elsewhere.
            let mut moved = signed.clone();
            moved.announcement.endpoint = Some(NodeEndpoint {
                relays: alloc::vec![],
                direct: alloc::vec!["203.0.113.7:1".into()],
            });
            assert_eq!(moved.verify(&network), Err(AnnounceError::BadSignature));
            assert!(
                signed
                    .announcement
                    .signing_bytes(&network)
                    .starts_with(ANNOUNCE_DOMAIN)
            );
        }
    }
}
