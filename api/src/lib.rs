//! # dsi-api: the HTTP wire types of DSI
//!
//! Every JSON body that crosses HTTP between DSI programs is defined here, once: the
//! servers (`node-lite serve`, `oracle serve`) serialize these types and every client (the
//! downloader, the tracker client, the oracle CLI, devnet, the tests) deserializes the same
//! ones. The crate has no I/O and depends on serde and `dsi-protocol` only.
//!
//! - [`ErrorBody`] and [`ErrorCode`]: the one error answer `{"code", "message"}` of both
//!   servers, with the HTTP status that belongs to each code;
//! - [`RejectionCode`] and [`ReceiptVerdict`]: why a seeder or the oracle refused a receipt
//!   (one code per rule, the same at both);
//! - [`node`]: the bodies of node-lite's API; [`oracle`]: the bodies of the oracle's API,
//!   with [`EpochStatus`](oracle::EpochStatus) and [`AuditOutcome`](oracle::AuditOutcome);
//! - the limits ([`MAX_RECEIPT_BATCH`], body sizes) and the [`DOWNLOADER_HEADER`] with
//!   its signed value ([`downloader::DownloaderHeader`]);
//! - [`exit`]: the process exit codes both binaries use;
//! - [`serde_as`]: the JSON forms of 128-bit amounts and 32-byte hashes.
//!
//! The byte-level formats (ids, manifests, receipts, announcements, the Merkle tree) live
//! in `dsi-protocol`; `docs/PROTOCOL.md` describes both layers field by field.

/// An enum whose variants travel as snake_case names: `ALL`, `as_str`, `Display`,
/// `FromStr` (which refuses unknown names) and serde, from one list.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[doc = $doc:literal])* $variant:ident = $text:literal, )* }
        $(unknown: $(#[$udoc:meta])* $unknown:ident,)?
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $( $(#[doc = $doc])* $variant, )*
            $( $(#[$udoc])* #[serde(other)] $unknown, )?
        }

        impl $name {
            /// Every known value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The name on the wire, in databases and in metrics labels.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                    $($name::$unknown => "unknown",)?
                }
            }

            /// What the value means, for people: its documentation as one line.
            pub fn describe(self) -> String {
                let text: &str = match self {
                    $($name::$variant => concat!($($doc, "\n",)* ""),)*
                    $($name::$unknown => "a value this version does not know",)?
                };
                text.lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == text)
                    .ok_or_else(|| format!("unknown {} {text:?}", stringify!($name)))
            }
        }
    };
}

pub mod downloader;
pub mod error;
pub mod exit;
pub mod node;
pub mod oracle;
pub mod receipts;
pub mod registrant;
pub mod serde_as;

pub use error::{ErrorBody, ErrorCode};
pub use receipts::{ReceiptBatch, ReceiptBatchResponse, ReceiptVerdict, RejectionCode};

/// The HTTP header a downloader proves itself with when it asks a seeder for a chunk:
/// `<node id>.<issued_at_ms>.<signature>` over the chunk request
/// ([`downloader::DownloaderHeader`]). It decides whose receipt debt the chunk counts
/// toward; payment is the signed receipt.
pub const DOWNLOADER_HEADER: &str = "x-dsi-downloader";

/// The reason `dsi-relay --admit-from` gives a key its tracker does not vouch for (iroh
/// shows it to the refused endpoint): a node seeing it stops waiting for the relay. Other
/// refusals (the tracker busy or silent) are passing and say something else.
pub const RELAY_NOT_ADMITTED: &str =
    "not admitted by the network's tracker: announce to it, or get credit";

/// The HTTP header a node registers a manifest with (`POST /v1/manifests`):
/// `<node id>.<issued_at_ms>.<signature>` over the manifest registration
/// ([`registrant::RegistrantHeader`]). The oracle charges the manifest to that node's quota.
pub const REGISTRANT_HEADER: &str = "x-dsi-registrant";

/// Most receipts in one `POST /v1/receipts`. node-lite refuses larger batches
/// (`batch_too_large`, 413); DSI clients never send more (seeders forward at most this many
/// at a time). The oracle's own limit is its `ingest.max_batch` setting (default 10 000).
pub const MAX_RECEIPT_BATCH: usize = 4096;

/// Largest request body node-lite accepts (a full receipt batch is about 2.3 MiB).
pub const MAX_NODE_BODY_BYTES: usize = 8 << 20;

/// Largest manifest the oracle registers (`POST /v1/manifests`, else `body_too_large`), in
/// bytes.
pub const MAX_MANIFEST_BYTES: usize = 8 << 20;

/// Upper bound of one signed receipt's JSON form (about 560 bytes), used to size the
/// oracle's body limit from its batch limit.
pub const MAX_RECEIPT_JSON_BYTES: usize = 1024;
