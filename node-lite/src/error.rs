//! The failures a user can cause or meet, each with its process exit code from the one
//! table both binaries share (`dsi_api::exit::Exit`).

use std::path::PathBuf;

use dsi_api::exit::Exit;
use dsi_protocol::ContentId;

/// A failure with a user-facing message and an exit code.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The data directory cannot be used.
    #[error("data directory {path}: {reason}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The data directory has no node key yet.
    #[error("data directory {path} is not initialized: run `node-lite --data-dir {path} init`")]
    NotInitialized {
        /// The directory.
        path: PathBuf,
    },
    /// The node key file is readable by other users.
    #[error("node key {path} is readable by other users (mode {mode:o}): run `chmod 600 {path}`")]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// An input file does not exist or cannot be read.
    #[error("cannot read {path}: {reason}")]
    InputFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Bad command-line or config value.
    #[error("{0}")]
    Usage(String),
    /// The disk quota leaves no room (`storage.max_bytes`); nothing was stored or evicted.
    #[error(
        "no room for {} under the disk quota storage.max_bytes = {}: {detail}",
        crate::size::human_bytes(*need),
        crate::size::human_bytes(*max)
    )]
    StoreFull {
        /// Bytes asked for.
        need: u64,
        /// The quota.
        max: u64,
        /// Why it cannot be made.
        detail: String,
    },
    /// The oracle's tracker could not be reached or refused a request.
    #[error("{0}")]
    Tracker(String),
    /// This node key exited the network (`node-lite exit`): the tracker takes nothing
    /// from it again.
    #[error("{0}")]
    Exited(String),
    /// No manifest for this content id here or on any peer.
    #[error("unknown content id {content}: {detail}")]
    UnknownContent {
        /// The content id.
        content: ContentId,
        /// Where it was looked for.
        detail: String,
    },
    /// Every peer that answered sent a manifest whose id does not match.
    #[error("manifest for {content} failed verification: {detail}")]
    ManifestMismatch {
        /// The content id asked for.
        content: ContentId,
        /// Which peers sent what.
        detail: String,
    },
    /// Chunks in the local store failed verification.
    #[error(
        "{count} corrupt chunk(s) found and quarantined; re-fetch them with `node-lite verify --repair --peer URL`"
    )]
    CorruptChunks {
        /// How many.
        count: usize,
    },
    /// The download could not complete.
    #[error(
        "download of {content} incomplete: {missing} of {total} chunks could not be fetched ({detail})"
    )]
    Incomplete {
        /// The content id.
        content: ContentId,
        /// Chunks still missing.
        missing: usize,
        /// Chunks in total.
        total: usize,
        /// Why (peers dropped and their reasons).
        detail: String,
    },
    /// A file system operation failed.
    #[error("{action} {path}: {reason}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        reason: String,
    },
    /// The HTTP server failed while serving.
    #[error("serving on {address} failed: {reason}")]
    Server {
        /// The address served.
        address: std::net::SocketAddr,
        /// The cause.
        reason: String,
    },
    /// The chunk store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A vector index could not be built, read or queried.
    #[error(transparent)]
    Vector(#[from] vector_store::VectorError),
    /// A text model could not be read or used.
    #[error(transparent)]
    Model(#[from] text_embed::EmbedError),
    /// Stopped by the user (Ctrl-C); the partial download is kept for resuming.
    #[error("interrupted; run the same command again to resume")]
    Interrupted,
    /// None of the peers could be used.
    #[error("no usable peer for {content}: {detail}")]
    NoPeers {
        /// The content id.
        content: ContentId,
        /// Why each peer was left out.
        detail: String,
    },
    /// The output file exists and is not this content.
    #[error("{path} exists and is not content {content}: use --force to overwrite it")]
    OutputExists {
        /// The output path.
        path: PathBuf,
        /// The content id being fetched.
        content: ContentId,
    },
}

impl NodeError {
    /// How a command that failed with this error exits.
    pub fn exit(&self) -> Exit {
        use crate::store::StoreError;
        match self {
            Self::Usage(_)
            | Self::OutputExists { .. }
            | Self::StoreFull { .. }
            | Self::Exited(_) => Exit::Usage,
            Self::InputFile { .. } | Self::UnknownContent { .. } => Exit::NotFound,
            Self::ManifestMismatch { .. } | Self::CorruptChunks { .. } => Exit::Integrity,
            Self::Incomplete { .. } | Self::NoPeers { .. } | Self::Tracker(_) => Exit::Unavailable,
            Self::Io { .. } | Self::Server { .. } => Exit::Failure,
            Self::Store(StoreError::Corrupt { .. } | StoreError::BadManifest { .. }) => {
                Exit::Integrity
            }
            Self::Store(StoreError::Manifest(_)) => Exit::Usage,
            Self::Store(_) => Exit::Failure,
            Self::Vector(vector_store::VectorError::Corrupt { .. }) => Exit::Integrity,
            Self::Vector(vector_store::VectorError::Missing { .. }) => Exit::Unavailable,
            Self::Vector(_) => Exit::Usage,
            Self::Model(text_embed::EmbedError::Bundle(_) | text_embed::EmbedError::Weights(_)) => {
                Exit::Integrity
            }
            Self::Model(_) => Exit::Usage,
            Self::Interrupted => Exit::Interrupted,
            Self::DataDir { .. } | Self::NotInitialized { .. } | Self::KeyPermissions { .. } => {
                Exit::DataDir
            }
        }
    }
}

/// The exit code for an error chain: the first [`NodeError`] in it decides, otherwise
/// [`Exit::Failure`].
pub fn exit_of(error: &anyhow::Error) -> Exit {
    error
        .chain()
        .find_map(|e| e.downcast_ref::<NodeError>())
        .map_or(Exit::Failure, NodeError::exit)
}
