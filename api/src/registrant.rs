//! The [`REGISTRANT_HEADER`](crate::REGISTRANT_HEADER) of `POST /v1/manifests`: which node
//! registers the manifest, proven.
//!
//! Text form: `<registrant>.<issued_at_ms>.<signature>`, the same layout as the downloader
//! header: 64 lowercase hex digits of the node id, a dot, the issue time in Unix
//! milliseconds as a decimal number, a dot, and 128 hex digits of the node's ed25519
//! signature over [`ManifestRegistration::signing_bytes`] of `{registrant, content,
//! issued_at_ms}` for the network (`dsi_protocol::registration`). The content id is the
//! hash of the posted manifest, so a header is good for that one manifest.
//!
//! The oracle takes a header only if `issued_at_ms` is within its clock skew allowance
//! (`tracker.max_clock_skew_ms`) and the signature verifies for the manifest's content id
//! and its network ([`RegistrantHeader::check`]); it then charges the manifest's bytes to
//! the registrant's quota.

use std::fmt;
use std::str::FromStr;

use dsi_protocol::registration::{ManifestRegistration, RegistrationError};
use dsi_protocol::{ContentId, NetworkId, NodeId, SecretKey, Signature};

use crate::downloader::parse_signed_text;

/// The parsed value of the registrant header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistrantHeader {
    /// The registering node (it signed).
    pub registrant: NodeId,
    /// When it signed, Unix milliseconds.
    pub issued_at_ms: u64,
    /// Its signature over the [`ManifestRegistration`].
    pub signature: Signature,
}

/// Why a registrant header was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrantHeaderError {
    /// The text is not `<node id>.<issued_at_ms>.<signature>`.
    Format(String),
    /// `issued_at_ms` is further than the allowed skew from `now_ms`.
    Stale {
        /// The header's time.
        issued_at_ms: u64,
        /// The checker's clock.
        now_ms: u64,
        /// The allowed distance.
        max_skew_ms: u64,
    },
    /// The signature does not verify for this content and network (or the key is
    /// unusable).
    Signature(RegistrationError),
}

impl fmt::Display for RegistrantHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Format(why) => write!(
                f,
                "the registrant header must be <node id>.<issued_at_ms>.<signature>: {why}"
            ),
            Self::Stale {
                issued_at_ms,
                now_ms,
                max_skew_ms,
            } => write!(
                f,
                "the registration was issued at {issued_at_ms} ms, the oracle's clock says \
                 {now_ms} ms (at most {max_skew_ms} ms apart)"
            ),
            Self::Signature(e) => write!(
                f,
                "{e} (the registration is signed for the manifest's content id and the network)"
            ),
        }
    }
}

impl std::error::Error for RegistrantHeaderError {}

impl RegistrantHeader {
    /// Signs the registration of `content` as `key`, issued at `issued_at_ms`.
    pub fn sign(
        key: &SecretKey,
        network: &NetworkId,
        content: ContentId,
        issued_at_ms: u64,
    ) -> Self {
        let (registration, signature) = ManifestRegistration {
            registrant: key.node_id(),
            content,
            issued_at_ms,
        }
        .sign(network, key);
        Self {
            registrant: registration.registrant,
            issued_at_ms,
            signature,
        }
    }

    /// What the oracle checks, cheap test first: the time is within `max_skew_ms` of
    /// `now_ms`, then the signature verifies for `content` and `network`.
    pub fn check(
        &self,
        network: &NetworkId,
        content: ContentId,
        now_ms: u64,
        max_skew_ms: u64,
    ) -> Result<(), RegistrantHeaderError> {
        if self.issued_at_ms.abs_diff(now_ms) > max_skew_ms {
            return Err(RegistrantHeaderError::Stale {
                issued_at_ms: self.issued_at_ms,
                now_ms,
                max_skew_ms,
            });
        }
        ManifestRegistration {
            registrant: self.registrant,
            content,
            issued_at_ms: self.issued_at_ms,
        }
        .verify(network, &self.signature)
        .map_err(RegistrantHeaderError::Signature)
    }
}

impl fmt::Display for RegistrantHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}",
            self.registrant, self.issued_at_ms, self.signature
        )
    }
}

impl FromStr for RegistrantHeader {
    type Err = RegistrantHeaderError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (registrant, issued_at_ms, signature) =
            parse_signed_text(text).map_err(RegistrantHeaderError::Format)?;
        Ok(Self {
            registrant,
            issued_at_ms,
            signature,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header of `protocol/tests/vectors/manifest_registration.json`, signed and parsed
    /// here, checked against its content, another content, another network and the clock.
    #[test]
    fn the_golden_header() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../protocol/tests/vectors/manifest_registration.json"
        );
        let text = std::fs::read_to_string(path).expect("the vector file");
        let vector: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let field = |name: &str| vector[name].as_str().unwrap_or_default().to_string();
        let network = NetworkId::new(&field("network")).expect("network");
        let content: ContentId = vector["registration"]["content"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .expect("content");
        let key = SecretKey::from_seed(&[0x07; 32]);
        let at = 1_764_000_000_000;
        let header = RegistrantHeader::sign(&key, &network, content, at);
        assert_eq!(header.to_string(), field("header"));
        let parsed: RegistrantHeader = field("header").parse().expect("parses");
        assert_eq!(parsed, header);
        assert_eq!(parsed.check(&network, content, at, 1000), Ok(()));
        assert!(matches!(
            parsed.check(&network, content, at + 1001, 1000),
            Err(RegistrantHeaderError::Stale { .. })
        ));
        assert!(matches!(
            parsed.check(&network, ContentId([9; 32]), at, 1000),
            Err(RegistrantHeaderError::Signature(_))
        ));
        let other = NetworkId::new("dsi-other").expect("network");
        assert!(matches!(
            parsed.check(&other, content, at, 1000),
            Err(RegistrantHeaderError::Signature(_))
        ));
        for bad in [
            "",
            "a.b",
            "x.1.y",
            &format!("{}.+1.{}", key.node_id(), header.signature),
        ] {
            assert!(
                matches!(
                    bad.parse::<RegistrantHeader>(),
                    Err(RegistrantHeaderError::Format(_))
                ),
                "{bad:?}"
            );
        }
    }
}
