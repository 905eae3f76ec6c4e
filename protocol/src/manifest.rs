//! Manifests: how content is split into chunks, and how its [`ContentId`] is derived.
//!
//! A manifest lists, in order, the ids of the chunks of one piece of content. Every chunk
//! has `chunk_size` bytes except the last, which has the remainder; empty content has no
//! chunks. The canonical encoding is SCALE of the struct below (fields in declaration
//! order); the content id is BLAKE3-256 of [`crate::MANIFEST_DOMAIN`] followed by that
//! encoding. [`Manifest::from_bytes`] accepts only canonical, valid encodings, so a content
//! id names exactly one byte string.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::ops::Range;

use parity_scale_codec::{Decode, DecodeAll, Encode};

use crate::ChunkId;
#[cfg(feature = "blake3")]
use crate::ContentId;

/// The only manifest version this crate writes and accepts.
pub const MANIFEST_VERSION: u8 = 1;
/// Smallest allowed chunk size (16 KiB).
pub const MIN_CHUNK_SIZE: u32 = 16 * 1024;
/// Largest allowed chunk size (4 MiB).
pub const MAX_CHUNK_SIZE: u32 = 4 * 1024 * 1024;
/// Chunk size used when none is given (256 KiB).
pub const DEFAULT_CHUNK_SIZE: u32 = 256 * 1024;
/// Longest allowed content name, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// Why a manifest is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The bytes are not a SCALE-encoded manifest.
    #[error("manifest bytes do not decode: {reason}")]
    Decode {
        /// What the decoder said.
        reason: String,
    },
    /// The bytes decode but are not the canonical encoding of what they decode to.
    #[error("manifest encoding is not canonical")]
    NotCanonical,
    /// Unknown manifest version.
    #[error("manifest version {found} is not supported (expected {MANIFEST_VERSION})")]
    Version {
        /// The version found.
        found: u8,
    },
    /// The chunk size is not a power of two between 16 KiB and 4 MiB.
    #[error("chunk size {chunk_size} is not a power of two between 16 KiB and 4 MiB")]
    ChunkSize {
        /// The chunk size found.
        chunk_size: u32,
    },
    /// The number of chunk ids does not match the size and chunk size.
    #[error(
        "manifest of {size} bytes in chunks of {chunk_size} needs {expected} chunk ids, has {actual}"
    )]
    ChunkCount {
        /// Content size.
        size: u64,
        /// Chunk size.
        chunk_size: u32,
        /// Chunks needed.
        expected: u64,
        /// Chunk ids present.
        actual: u64,
    },
    /// The name is too long or has control characters or path separators.
    #[error("content name is invalid: {reason}")]
    Name {
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// The description of one piece of content: its name, size and the ids of its chunks.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Manifest {
    /// Format version ([`MANIFEST_VERSION`]).
    pub version: u8,
    /// A human-readable name (usually the file name), never a path.
    pub name: String,
    /// Size of the content in bytes.
    pub size: u64,
    /// Size of every chunk but the last.
    pub chunk_size: u32,
    /// Chunk ids in content order.
    pub chunks: Vec<ChunkId>,
}

/// Checks a chunk size: a power of two between [`MIN_CHUNK_SIZE`] and [`MAX_CHUNK_SIZE`].
pub fn validate_chunk_size(chunk_size: u32) -> Result<(), ManifestError> {
    if chunk_size.is_power_of_two() && (MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        Ok(())
    } else {
        Err(ManifestError::ChunkSize { chunk_size })
    }
}

/// Number of chunks content of `size` bytes has with chunks of `chunk_size` bytes.
pub fn chunk_count(size: u64, chunk_size: u32) -> u64 {
    if chunk_size == 0 {
        0
    } else {
        size.div_ceil(u64::from(chunk_size))
    }
}

/// Checks a content name: at most [`MAX_NAME_LEN`] bytes, no control characters, no `/` or
/// `\`, not `.` or `..`.
pub fn validate_name(name: &str) -> Result<(), ManifestError> {
    let reason = if name.len() > MAX_NAME_LEN {
        "longer than 255 bytes"
    } else if name.chars().any(char::is_control) {
        "has control characters"
    } else if name.contains(['/', '\\']) {
        "has a path separator"
    } else if name == "." || name == ".." {
        "is a relative path"
    } else {
        return Ok(());
    };
    Err(ManifestError::Name { reason })
}

impl Manifest {
    /// Builds and validates a manifest.
    pub fn new(
        name: &str,
        size: u64,
        chunk_size: u32,
        chunks: Vec<ChunkId>,
    ) -> Result<Self, ManifestError> {
        let manifest = Self {
            version: MANIFEST_VERSION,
            name: name.to_string(),
            size,
            chunk_size,
            chunks,
        };
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks version, chunk size, name and that the chunk count matches the size.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.version != MANIFEST_VERSION {
            return Err(ManifestError::Version {
                found: self.version,
            });
        }
        validate_chunk_size(self.chunk_size)?;
        validate_name(&self.name)?;
        let expected = chunk_count(self.size, self.chunk_size);
        let actual = self.chunks.len() as u64;
        if expected != actual {
            return Err(ManifestError::ChunkCount {
                size: self.size,
                chunk_size: self.chunk_size,
                expected,
                actual,
            });
        }
        Ok(())
    }

    /// The canonical encoding (SCALE).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode()
    }

    /// Decodes a canonical encoding and validates it. Trailing bytes, non-canonical
    /// encodings and invalid manifests are rejected.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ManifestError> {
        let manifest = Self::decode_all(&mut &bytes[..]).map_err(|e| ManifestError::Decode {
            reason: e.to_string(),
        })?;
        manifest.validate()?;
        if manifest.encoded_size() != bytes.len() || manifest.encode() != bytes {
            return Err(ManifestError::NotCanonical);
        }
        Ok(manifest)
    }

    /// Number of chunks.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Byte range of chunk `index` within the content (empty range past the end).
    pub fn chunk_range(&self, index: usize) -> Range<u64> {
        let start = (index as u64)
            .saturating_mul(u64::from(self.chunk_size))
            .min(self.size);
        let end = start
            .saturating_add(u64::from(self.chunk_size))
            .min(self.size);
        start..end
    }

    /// Length in bytes of chunk `index` (0 past the end).
    pub fn chunk_len(&self, index: usize) -> u32 {
        let range = self.chunk_range(index);
        // A chunk is at most chunk_size (a u32) long.
        u32::try_from(range.end - range.start).unwrap_or(u32::MAX)
    }

    /// The manifest's distinct chunks and their lengths, by chunk id. A manifest that names
    /// one chunk with two lengths keeps the first (such a manifest cannot match real bytes).
    pub fn distinct_chunk_lengths(&self) -> Vec<(ChunkId, u32)> {
        let mut distinct: Vec<(ChunkId, u32)> = (0..self.chunk_count())
            .map(|i| (self.chunks[i], self.chunk_len(i)))
            .collect();
        distinct.sort_by_key(|(chunk, _)| *chunk);
        distinct.dedup_by_key(|(chunk, _)| *chunk);
        distinct
    }

    /// The content id of this manifest.
    #[cfg(feature = "blake3")]
    pub fn content_id(&self) -> ContentId {
        content_id_of_bytes(&self.encode())
    }
}

/// The content id of an encoded manifest (BLAKE3 of the domain tag and the bytes).
#[cfg(feature = "blake3")]
pub fn content_id_of_bytes(manifest_bytes: &[u8]) -> ContentId {
    let mut hasher = blake3::Hasher::new();
    hasher.update(crate::MANIFEST_DOMAIN);
    hasher.update(manifest_bytes);
    ContentId(*hasher.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn ids(n: usize) -> Vec<ChunkId> {
        (0..n).map(|i| ChunkId([i as u8; 32])).collect()
    }

    #[test]
    fn chunk_geometry_over_interesting_sizes() {
        let c = MIN_CHUNK_SIZE as u64;
        for (size, count, last) in [
            (0, 0, 0),
            (1, 1, 1),
            (c - 1, 1, c - 1),
            (c, 1, c),
            (c + 1, 2, 1),
            (10 * c + 5, 11, 5),
        ] {
            let m = Manifest::new("f", size, MIN_CHUNK_SIZE, ids(count)).unwrap();
            assert_eq!(m.chunk_count(), count);
            if count > 0 {
                assert_eq!(u64::from(m.chunk_len(count - 1)), last);
                assert_eq!(m.chunk_range(count - 1).end, size);
            }
            assert_eq!(m.chunk_len(count), 0);
        }
    }

    #[test]
    fn invalid_manifests_are_named() {
        assert_eq!(
            Manifest::new("f", 1, 1000, ids(1)),
            Err(ManifestError::ChunkSize { chunk_size: 1000 })
        );
        assert_eq!(
            Manifest::new("f", 1, 8 * 1024 * 1024, ids(1)),
            Err(ManifestError::ChunkSize {
                chunk_size: 8 * 1024 * 1024
            })
        );
        assert!(matches!(
            Manifest::new("f", 1, MIN_CHUNK_SIZE, ids(2)),
            Err(ManifestError::ChunkCount {
                expected: 1,
                actual: 2,
                ..
            })
        ));
        assert!(matches!(
            Manifest::new("a/b", 0, MIN_CHUNK_SIZE, vec![]),
            Err(ManifestError::Name { .. })
        ));
        assert!(matches!(
            Manifest::new("..", 0, MIN_CHUNK_SIZE, vec![]),
            Err(ManifestError::Name { .. })
        ));
        assert!(matches!(
            Manifest::new("a\nb", 0, MIN_CHUNK_SIZE, vec![]),
            Err(ManifestError::Name { .. })
        ));
        let mut m = Manifest::new("f", 0, MIN_CHUNK_SIZE, vec![]).unwrap();
        m.version = 2;
        assert_eq!(
            Manifest::from_bytes(&m.encode()),
            Err(ManifestError::Version { found: 2 })
        );
    }

    #[test]
    fn from_bytes_rejects_trailing_and_truncated() {
        let m = Manifest::new("f", 20_000, MIN_CHUNK_SIZE, ids(2)).unwrap();
        let mut bytes = m.to_bytes();
        assert_eq!(Manifest::from_bytes(&bytes).unwrap(), m);
        bytes.push(0);
        assert!(matches!(
            Manifest::from_bytes(&bytes),
            Err(ManifestError::Decode { .. })
        ));
        bytes.truncate(bytes.len() - 2);
        assert!(matches!(
            Manifest::from_bytes(&bytes),
            Err(ManifestError::Decode { .. })
        ));
    }
}
