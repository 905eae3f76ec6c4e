use dsi_protocol::ChunkId;

/// Everything that can go wrong building, reading or querying an index.
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    /// A vector (or query) has the wrong number of components.
    #[error("dimension mismatch: the index has {expected} dimensions, {what} has {actual}")]
    Dimension {
        /// The index's dimension.
        expected: usize,
        /// What had the wrong length (`the query`, `vector 17`, ...).
        what: String,
        /// Its length.
        actual: usize,
    },
    /// A component is NaN or infinite, or a cosine vector is all zeros.
    #[error("{what} is not usable: {reason}")]
    BadVector {
        /// Which vector.
        what: String,
        /// Why.
        reason: &'static str,
    },
    /// A page's bytes do not hash to the chunk id they were fetched under.
    #[error("page {expected} failed verification: its bytes hash to {actual}")]
    Corrupt {
        /// The id asked for.
        expected: ChunkId,
        /// The id of the bytes received.
        actual: ChunkId,
    },
    /// A page is not part of this index.
    #[error("chunk {0} is not a page of this index")]
    NotAPage(ChunkId),
    /// No source could provide a page.
    #[error("page {id} is not available: {reason}")]
    Missing {
        /// The page.
        id: ChunkId,
        /// What the source said.
        reason: String,
    },
    /// Bytes that do not parse as a page, manifest or input file.
    #[error("malformed {what}: {reason}")]
    Format {
        /// What was being read (`page`, `index manifest`, `.npy file`, ...).
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Options or arguments that make no sense.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which option.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The cursor was made for another index or another query.
    #[error("this cursor belongs to {0}; start the query again without a cursor")]
    Cursor(&'static str),
    /// Two vectors share an id.
    #[error("vector id {0} is already in the index")]
    DuplicateId(u64),
    /// A delete named an id the index does not hold.
    #[error("vector id {0} is not in the index")]
    UnknownId(u64),
}

impl VectorError {
    pub(crate) fn format(what: &'static str, reason: impl Into<String>) -> Self {
        Self::Format {
            what,
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            what,
            reason: reason.into(),
        }
    }
}
