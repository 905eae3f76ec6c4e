//! The index manifest: what a reader needs before fetching any page.
//!
//! ```text
//! magic "DSIVIX1\0" | metric u8 (0 cosine, 1 l2) | encoding u8 (0 f32, 1 sq8)
//! | dim u32 | lists u32 | count u64
//! | sq8 only: min dim x f32 | scale dim x f32
//! | centroids lists x dim x f32
//! | per list: count u32 | f32 page (chunk id 32 bytes, length u32)
//! |           sq8 only: code page (chunk id 32 bytes, length u32)
//! ```
//! Little-endian, canonical. The manifest is stored as ordinary content named
//! [`INDEX_CONTENT_NAME`]; its content id names the index.

use dsi_protocol::manifest::{MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};
use dsi_protocol::{ChunkId, ContentId, Manifest};

use crate::{Encoding, Metric, Sq8Params, VectorError};

const MAGIC: &[u8; 8] = b"DSIVIX1\0";

/// The content name an index manifest is stored under.
pub const INDEX_CONTENT_NAME: &str = "index.dsivec";

/// One page: its chunk id and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRef {
    /// Chunk id (BLAKE3 of the page bytes).
    pub chunk: ChunkId,
    /// Length in bytes.
    pub bytes: u32,
}

/// One list (cluster) of the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListRef {
    /// Vectors in the list.
    pub count: u32,
    /// The page of exact vectors.
    pub raw: PageRef,
    /// The page of 8-bit codes ([`Encoding::Sq8`] only).
    pub codes: Option<PageRef>,
}

impl ListRef {
    /// The page a query searches first: codes if there are, else the exact vectors.
    pub fn primary(&self) -> PageRef {
        self.codes.unwrap_or(self.raw)
    }
}

/// Everything a reader needs to plan a query: dimension, metric, centroids, pages.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexManifest {
    /// Distance.
    pub metric: Metric,
    /// Page encoding.
    pub encoding: Encoding,
    /// Vector dimension.
    pub dim: usize,
    /// Vectors in the index.
    pub count: u64,
    /// Quantization ranges ([`Encoding::Sq8`] only).
    pub sq8: Option<Sq8Params>,
    /// Centroids, `lists.len() x dim`, row-major.
    pub centroids: Vec<f32>,
    /// The lists, in centroid order.
    pub lists: Vec<ListRef>,
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], VectorError> {
        if self.bytes.len() < n {
            return Err(VectorError::format("index manifest", "truncated"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, VectorError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, VectorError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, VectorError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }
    fn f32s(&mut self, n: usize) -> Result<Vec<f32>, VectorError> {
        let len = n
            .checked_mul(4)
            .ok_or_else(|| VectorError::format("index manifest", "too large"))?;
        Ok(self
            .take(len)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
    fn page(&mut self) -> Result<PageRef, VectorError> {
        let chunk = ChunkId::from_slice(self.take(32)?)
            .ok_or_else(|| VectorError::format("index manifest", "bad chunk id"))?;
        Ok(PageRef {
            chunk,
            bytes: self.u32()?,
        })
    }
}

impl IndexManifest {
    /// Number of lists.
    pub fn list_count(&self) -> usize {
        self.lists.len()
    }

    /// Centroid of list `i`.
    pub fn centroid(&self, i: usize) -> &[f32] {
        &self.centroids[i * self.dim..(i + 1) * self.dim]
    }

    /// Every page of the index.
    pub fn pages(&self) -> impl Iterator<Item = PageRef> + '_ {
        self.lists
            .iter()
            .flat_map(|l| core::iter::once(l.raw).chain(l.codes))
    }

    /// Total bytes of all pages (the denominator of "fraction fetched").
    pub fn page_bytes(&self) -> u64 {
        self.pages().map(|p| u64::from(p.bytes)).sum()
    }

    /// The canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.push(self.metric.code());
        out.push(self.encoding.code());
        out.extend_from_slice(&(self.dim as u32).to_le_bytes());
        out.extend_from_slice(&(self.lists.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        let mut floats = |v: &[f32]| {
            v.iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes()))
        };
        if let Some(sq) = &self.sq8 {
            floats(&sq.min);
            floats(&sq.scale);
        }
        floats(&self.centroids);
        for list in &self.lists {
            out.extend_from_slice(&list.count.to_le_bytes());
            for page in core::iter::once(list.raw).chain(list.codes) {
                out.extend_from_slice(page.chunk.as_bytes());
                out.extend_from_slice(&page.bytes.to_le_bytes());
            }
        }
        out
    }

    /// Parses and checks manifest bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VectorError> {
        let bad = |reason: String| VectorError::format("index manifest", reason);
        let mut r = Reader { bytes };
        if r.take(8).ok() != Some(&MAGIC[..]) {
            return Err(bad("not a DSI vector index (bad magic)".into()));
        }
        let metric = Metric::from_code(r.u8()?).ok_or_else(|| bad("unknown metric".into()))?;
        let encoding =
            Encoding::from_code(r.u8()?).ok_or_else(|| bad("unknown encoding".into()))?;
        let dim = r.u32()? as usize;
        let lists = r.u32()? as usize;
        let count = r.u64()?;
        if dim == 0 || lists == 0 {
            return Err(bad(format!("dimension {dim} with {lists} lists")));
        }
        let sq8 = match encoding {
            Encoding::Sq8 => Some(Sq8Params {
                min: r.f32s(dim)?,
                scale: r.f32s(dim)?,
            }),
            Encoding::F32 => None,
        };
        let centroids = r.f32s(
            lists
                .checked_mul(dim)
                .ok_or_else(|| bad("too many lists".into()))?,
        )?;
        // Each list takes at least 40 bytes: refuse absurd counts before allocating.
        if r.bytes.len() < lists.saturating_mul(40) {
            return Err(bad("truncated".into()));
        }
        let mut refs = Vec::with_capacity(lists);
        for _ in 0..lists {
            let n = r.u32()?;
            let raw = r.page()?;
            let codes = match encoding {
                Encoding::Sq8 => Some(r.page()?),
                Encoding::F32 => None,
            };
            refs.push(ListRef {
                count: n,
                raw,
                codes,
            });
        }
        if !r.bytes.is_empty() {
            return Err(bad(format!("{} trailing bytes", r.bytes.len())));
        }
        let total: u64 = refs.iter().map(|l| u64::from(l.count)).sum();
        if total != count {
            return Err(bad(format!(
                "lists hold {total} vectors, header says {count}"
            )));
        }
        Ok(Self {
            metric,
            encoding,
            dim,
            count,
            sq8,
            centroids,
            lists: refs,
        })
    }

    /// The manifest as ordinary swarm content: a DSI [`Manifest`] and its chunks. The
    /// content id of that manifest names the index.
    pub fn to_content(&self) -> (Manifest, Vec<Vec<u8>>) {
        let bytes = self.to_bytes();
        let chunk_size =
            (bytes.len().max(1).next_power_of_two() as u32).clamp(MIN_CHUNK_SIZE, MAX_CHUNK_SIZE);
        let chunks: Vec<Vec<u8>> = bytes
            .chunks(chunk_size as usize)
            .map(<[u8]>::to_vec)
            .collect();
        let ids = chunks.iter().map(|c| ChunkId::of(c)).collect();
        let manifest = Manifest {
            version: dsi_protocol::manifest::MANIFEST_VERSION,
            name: INDEX_CONTENT_NAME.to_string(),
            size: bytes.len() as u64,
            chunk_size,
            chunks: ids,
        };
        (manifest, chunks)
    }

    /// The content id naming this index.
    pub fn content_id(&self) -> ContentId {
        self.to_content().0.content_id()
    }

    /// Reassembles an index from its content manifest and chunks, checking every chunk id.
    pub fn from_content(manifest: &Manifest, chunks: &[Vec<u8>]) -> Result<Self, VectorError> {
        if chunks.len() != manifest.chunks.len() {
            return Err(VectorError::format(
                "index content",
                format!(
                    "{} chunks given, the manifest lists {}",
                    chunks.len(),
                    manifest.chunks.len()
                ),
            ));
        }
        let mut bytes = Vec::with_capacity(manifest.size as usize);
        for (chunk, id) in chunks.iter().zip(&manifest.chunks) {
            let actual = ChunkId::of(chunk);
            if actual != *id {
                return Err(VectorError::Corrupt {
                    expected: *id,
                    actual,
                });
            }
            bytes.extend_from_slice(chunk);
        }
        Self::from_bytes(&bytes)
    }
}
