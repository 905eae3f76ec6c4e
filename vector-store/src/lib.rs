//! # vector-store: a vector index whose pages are swarm chunks
//!
//! An inverted-file (IVF) index for f32 vectors of any dimension, with cosine or L2
//! distance, laid out so that a reader (a browser, a `node-lite`, anyone) fetches only the
//! few pages a query needs from the swarm:
//!
//! - **Build** ([`IndexData::build`]): k-means partitions the vectors into lists around
//!   centroids ([`kmeans`]); every list becomes a *page*, an ordinary content-addressed chunk
//!   (its id is the BLAKE3 of its bytes, exactly like any file chunk). With
//!   [`Encoding::Sq8`] each list has a small page of 8-bit scalar-quantized codes, searched
//!   first, and a page of exact f32 vectors used only to re-rank the best candidates.
//! - **Manifest** ([`IndexManifest`]): dimension, metric, centroids and the chunk ids of
//!   every page. Stored as ordinary content ([`IndexManifest::to_content`]), so the whole index
//!   is named by one content id and seeded, fetched and rewarded like any file.
//! - **Query** ([`Searcher`]): rank the centroids, fetch the `nprobe` nearest lists, search
//!   them and return the top `k` with a [`Cursor`]; the next call continues from the cursor
//!   without repeating or skipping a result, probing further lists when the ones searched so
//!   far run out. The searcher is a step machine ([`Step::Need`] names the pages to fetch) so
//!   that the same code serves a synchronous local store ([`Searcher::search`] with a
//!   [`PageSource`]) and asynchronous browser fetches.
//! - **Verify**: every page is checked against its chunk id before use
//!   ([`Searcher::add_page`]); a corrupt page is an error naming it, never a wrong answer.
//! - **Update** ([`IndexData::insert`], [`IndexData::delete`]): changes rewrite only the pages
//!   of the lists they touch; all other pages keep their chunk ids, and the old manifest's
//!   pages stay valid for readers that still use it.
//! - **Input** ([`input`]): `.npy` (f32, 2-D) and a small JSON format.
//!
//! No async runtime and no threads: the crate builds for native targets and for
//! `wasm32-unknown-unknown`.

mod build;
mod cursor;
mod error;
pub mod input;
pub mod kmeans;
mod manifest;
mod metric;
mod page;
mod rng;
mod search;

pub use build::{BuildOptions, Chunk, IndexData, default_lists};
pub use cursor::Cursor;
pub use error::VectorError;
pub use manifest::{INDEX_CONTENT_NAME, IndexManifest, ListRef, PageRef};
pub use metric::{Metric, distance, normalize};
pub use page::{Encoding, Page, Sq8Params};
pub use rng::SplitMix64;
pub use search::{
    DEFAULT_RERANK, Hit, MemorySource, PageSource, ResultPage, SearchOptions, Searcher, Step,
};

/// A vector's caller-chosen id (row number unless given).
pub type VectorId = u64;

/// Largest page: one chunk of the swarm ([`dsi_protocol::manifest::MAX_CHUNK_SIZE`]).
pub const MAX_PAGE_BYTES: usize = dsi_protocol::manifest::MAX_CHUNK_SIZE as usize;
