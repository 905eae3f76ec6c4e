//! # node-lite: a light DSI storage node
//!
//! A node-lite keeps content-addressed chunks on disk, serves them to peers over HTTP,
//! downloads content from many peers at once (verifying every chunk), and deals in seeding
//! receipts: as a downloader it signs one for every verified chunk and sends it to the
//! seeder; as a seeder it keeps the receipts it is given, durably, and stops serving
//! downloaders that do not pay in receipts.
//!
//! What lives where:
//! - [`data_dir`]: the node's directory (key, config, chunk store, receipt database);
//! - [`store`]: chunks and manifests on disk, adding files, verification and quarantine;
//! - [`receipts`]: the seeder's durable receipt database (SQLite) and acceptance rules;
//! - [`server`]: the HTTP API (`router(state)` separate from binding) and `/metrics`;
//! - [`download`]: the swarm downloader (rarest-first, endgame, resume, receipts);
//! - [`peers`]: peer discovery behind the [`peers::PeerSource`] trait (explicit `--peer` URLs
//!   and the oracle's tracker, [`tracker`]);
//! - [`vectors`]: vector indexes (the `vector-store` crate) stored as chunks, queried from
//!   the local store or from peers, updated; text models (the `text-embed` crate) stored as
//!   content, and text turned into query vectors;
//! - [`error::NodeError`]: the failures a user can cause, each with a stable exit code.
//!
//! It does not decide rewards: receipts are evidence that the oracle turns into payouts.
//! Wire formats (ids, manifests, receipts) come from `dsi-protocol`.

pub mod config;
pub mod data_dir;
pub mod download;
pub mod error;
pub mod peers;
pub mod receipts;
pub mod server;
pub mod size;
pub mod store;
pub mod tracker;
pub mod vectors;

pub use config::Config;
pub use data_dir::DataDir;
pub use error::NodeError;

/// Current wall-clock time in Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The HTTP header a downloader names itself with when it asks for a chunk.
pub const DOWNLOADER_HEADER: &str = "x-dsi-downloader";
