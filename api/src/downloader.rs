//! The [`DOWNLOADER_HEADER`](crate::DOWNLOADER_HEADER) of a chunk request: who asks, proven.
//!
//! Text form: `<downloader>.<issued_at_ms>.<signature>`, that is 64 lowercase hex digits
//! of the downloader's node id, a dot, the issue time in Unix milliseconds as a decimal
//! number, a dot, and 128 hex digits of the downloader's ed25519 signature over
//! [`ChunkRequest::signing_bytes`] of `{downloader, seeder, chunk, issued_at_ms}` for the
//! network (`dsi_protocol::request`). The seeder and the chunk are not in the header: the
//! seeder is the server asked and the chunk is in the path, so a header is good for that
//! one chunk at that one seeder.
//!
//! A seeder that gates serving on receipts takes a header only if the signature verifies
//! for its own id, the chunk and its network, and `issued_at_ms` is within
//! [`DOWNLOADER_HEADER_MAX_SKEW_MS`] of its clock ([`DownloaderHeader::check`]).

use std::fmt;
use std::str::FromStr;

use dsi_protocol::request::{ChunkRequest, ChunkRequestError};
use dsi_protocol::{ChunkId, NetworkId, NodeId, SecretKey, Signature};

/// How far (either way) a chunk request's `issued_at_ms` may be from the seeder's clock:
/// two minutes.
pub const DOWNLOADER_HEADER_MAX_SKEW_MS: u64 = 120_000;

/// The parsed value of the downloader header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DownloaderHeader {
    /// The downloader (it signed).
    pub downloader: NodeId,
    /// When it signed, Unix milliseconds.
    pub issued_at_ms: u64,
    /// Its signature over the [`ChunkRequest`].
    pub signature: Signature,
}

/// Why a downloader header was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloaderHeaderError {
    /// The text is not `<node id>.<issued_at_ms>.<signature>`.
    Format(String),
    /// `issued_at_ms` is further than [`DOWNLOADER_HEADER_MAX_SKEW_MS`] from `now_ms`.
    Stale {
        /// The header's time.
        issued_at_ms: u64,
        /// The checker's clock.
        now_ms: u64,
    },
    /// The signature does not verify for this seeder, chunk and network (or the key is
    /// unusable).
    Signature(ChunkRequestError),
}

impl fmt::Display for DownloaderHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Format(why) => write!(
                f,
                "the downloader header must be <node id>.<issued_at_ms>.<signature>: {why}"
            ),
            Self::Stale {
                issued_at_ms,
                now_ms,
            } => write!(
                f,
                "the chunk request was issued at {issued_at_ms} ms, the seeder's clock says \
                 {now_ms} ms (at most {DOWNLOADER_HEADER_MAX_SKEW_MS} ms apart)"
            ),
            Self::Signature(e) => write!(
                f,
                "{e} (the request is signed for the seeder's id, the chunk and the network)"
            ),
        }
    }
}

impl std::error::Error for DownloaderHeaderError {}

impl DownloaderHeader {
    /// Signs a request for `chunk` from `seeder` as `key`, issued at `issued_at_ms`.
    pub fn sign(
        key: &SecretKey,
        network: &NetworkId,
        seeder: NodeId,
        chunk: ChunkId,
        issued_at_ms: u64,
    ) -> Self {
        let (request, signature) = ChunkRequest {
            downloader: key.node_id(),
            seeder,
            chunk,
            issued_at_ms,
        }
        .sign(network, key);
        Self {
            downloader: request.downloader,
            issued_at_ms,
            signature,
        }
    }

    /// The request this header claims to sign, at `seeder` for `chunk`.
    pub fn request(&self, seeder: NodeId, chunk: ChunkId) -> ChunkRequest {
        ChunkRequest {
            downloader: self.downloader,
            seeder,
            chunk,
            issued_at_ms: self.issued_at_ms,
        }
    }

    /// What a seeder checks, cheap test first: the time is within
    /// [`DOWNLOADER_HEADER_MAX_SKEW_MS`] of `now_ms`, then the signature verifies for
    /// `seeder` (the checking node itself), `chunk` and `network`.
    pub fn check(
        &self,
        network: &NetworkId,
        seeder: NodeId,
        chunk: ChunkId,
        now_ms: u64,
    ) -> Result<(), DownloaderHeaderError> {
        if self.issued_at_ms.abs_diff(now_ms) > DOWNLOADER_HEADER_MAX_SKEW_MS {
            return Err(DownloaderHeaderError::Stale {
                issued_at_ms: self.issued_at_ms,
                now_ms,
            });
        }
        self.request(seeder, chunk)
            .verify(network, &self.signature)
            .map_err(DownloaderHeaderError::Signature)
    }
}

impl fmt::Display for DownloaderHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}",
            self.downloader, self.issued_at_ms, self.signature
        )
    }
}

impl FromStr for DownloaderHeader {
    type Err = DownloaderHeaderError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (downloader, issued_at_ms, signature) =
            parse_signed_text(text).map_err(DownloaderHeaderError::Format)?;
        Ok(Self {
            downloader,
            issued_at_ms,
            signature,
        })
    }
}

/// Parses the text form shared by the signed headers (`x-dsi-downloader`,
/// `x-dsi-registrant`): `<node id>.<issued_at_ms>.<signature>`.
pub(crate) fn parse_signed_text(text: &str) -> Result<(NodeId, u64, Signature), String> {
    let mut parts = text.split('.');
    let (Some(node), Some(issued), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!(
            "{} dot-separated part(s), not 3",
            text.split('.').count()
        ));
    };
    let node: NodeId = node.parse().map_err(|e| format!("node id: {e}"))?;
    // Digits only: no sign, no spaces (`u64::from_str` would take a leading `+`).
    if issued.is_empty() || issued.len() > 20 || !issued.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{issued:?} is not a decimal issue time"));
    }
    let issued_at_ms: u64 = issued
        .parse()
        .map_err(|e| format!("issue time {issued:?}: {e}"))?;
    let signature: Signature = signature.parse().map_err(|e| format!("signature: {e}"))?;
    Ok((node, issued_at_ms, signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretKey {
        SecretKey::from_seed(&[0x42; 32])
    }

    #[test]
    fn the_text_form_round_trips_and_checks() {
        let network = NetworkId::default();
        let seeder = SecretKey::from_seed(&[7; 32]).node_id();
        let chunk = ChunkId([3; 32]);
        let header = DownloaderHeader::sign(&key(), &network, seeder, chunk, 1_000_000);
        let text = header.to_string();
        assert_eq!(text.len(), 64 + 1 + 7 + 1 + 128);
        let parsed: DownloaderHeader = text.parse().expect("round trip");
        assert_eq!(parsed, header);
        assert_eq!(parsed.check(&network, seeder, chunk, 1_000_000), Ok(()));
        assert_eq!(
            parsed.check(
                &network,
                seeder,
                chunk,
                1_000_000 + DOWNLOADER_HEADER_MAX_SKEW_MS
            ),
            Ok(())
        );
        assert!(matches!(
            parsed.check(
                &network,
                seeder,
                chunk,
                1_000_001 + DOWNLOADER_HEADER_MAX_SKEW_MS
            ),
            Err(DownloaderHeaderError::Stale { .. })
        ));
        assert!(matches!(
            parsed.check(&network, NodeId([8; 32]), chunk, 1_000_000),
            Err(DownloaderHeaderError::Signature(_))
        ));
        assert!(matches!(
            parsed.check(&network, seeder, ChunkId([4; 32]), 1_000_000),
            Err(DownloaderHeaderError::Signature(_))
        ));
    }

    /// The header of `protocol/tests/vectors/chunk_request.json`, signed and parsed here.
    #[test]
    fn the_golden_header() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../protocol/tests/vectors/chunk_request.json"
        );
        let text = std::fs::read_to_string(path).expect("the vector file");
        let vector: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let field = |name: &str| vector[name].as_str().unwrap_or_default().to_string();
        let network = NetworkId::new(&field("network")).expect("network");
        let seeder: NodeId = vector["request"]["seeder"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .expect("seeder");
        let chunk = ChunkId::of(b"dsi");
        let header = DownloaderHeader::sign(&key(), &network, seeder, chunk, 1_764_000_000_000);
        assert_eq!(header.to_string(), field("header"));
        let parsed: DownloaderHeader = field("header").parse().expect("parses");
        assert_eq!(parsed, header);
        assert_eq!(
            parsed.check(&network, seeder, chunk, 1_764_000_000_000),
            Ok(())
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        let header = DownloaderHeader::sign(
            &key(),
            &NetworkId::default(),
            NodeId([1; 32]),
            ChunkId([2; 32]),
            5,
        );
        let id = header.downloader.to_string();
        let signature = header.signature.to_string();
        for bad in [
            String::new(),
            id.clone(),
            format!("{id}.5"),
            format!("{id}.5.{signature}.x"),
            format!("{id}.+5.{signature}"),
            format!("{id}. 5.{signature}"),
            format!("{id}..{signature}"),
            format!("{id}.-5.{signature}"),
            format!("{id}.99999999999999999999.{signature}"),
            format!("0x{id}.5.{signature}"),
            format!("{id}.5.{}", &signature[2..]),
        ] {
            assert!(
                matches!(
                    bad.parse::<DownloaderHeader>(),
                    Err(DownloaderHeaderError::Format(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            format!("{id}.5.{signature}").parse::<DownloaderHeader>(),
            Ok(header)
        );
    }
}
