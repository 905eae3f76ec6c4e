//! Building an index, and changing one: the writer's full view of every list.

use std::collections::{HashMap, HashSet};

use dsi_protocol::ChunkId;

use crate::kmeans::{self, KMeansOptions};
use crate::page::PageData;
use crate::search::fetch_verified;
use crate::{
    Encoding, IndexManifest, ListRef, MAX_PAGE_BYTES, Metric, Page, PageRef, PageSource, Sq8Params,
    VectorError, VectorId,
};

/// A page as stored: its chunk id and bytes.
pub type Chunk = (ChunkId, Vec<u8>);

/// How to build an index.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// Distance.
    pub metric: Metric,
    /// Page encoding.
    pub encoding: Encoding,
    /// Number of lists (default: about 4 x sqrt(n), so a list holds about sqrt(n) / 4).
    pub lists: Option<usize>,
    /// k-means iterations.
    pub iterations: usize,
    /// k-means seed: the same input, options and seed always give the same index id.
    pub seed: u64,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            metric: Metric::Cosine,
            encoding: Encoding::F32,
            lists: None,
            iterations: 10,
            seed: 0x00d5_1000,
        }
    }
}

/// The default number of lists for `n` vectors.
pub fn default_lists(n: usize) -> usize {
    ((4.0 * (n as f64).sqrt()).round() as usize).clamp(1, n.max(1))
}

#[derive(Clone, Debug, Default)]
struct ListData {
    ids: Vec<VectorId>,
    vectors: Vec<f32>,
}

/// Every vector of an index, by list: what a writer holds to build or change an index.
#[derive(Clone, Debug)]
pub struct IndexData {
    metric: Metric,
    encoding: Encoding,
    dim: usize,
    sq8: Option<Sq8Params>,
    centroids: Vec<f32>,
    lists: Vec<ListData>,
}

impl IndexData {
    /// Builds an index from `vectors` (`n x dim`, row-major) with ids `ids` (default: row
    /// numbers). `progress(stage, done, total)` reports long work.
    pub fn build(
        dim: usize,
        vectors: &[f32],
        ids: Option<&[VectorId]>,
        options: &BuildOptions,
        progress: &mut dyn FnMut(&str, usize, usize),
    ) -> Result<Self, VectorError> {
        if dim == 0 {
            return Err(VectorError::invalid("dimension", "must be at least 1"));
        }
        if vectors.is_empty() || !vectors.len().is_multiple_of(dim) {
            return Err(VectorError::invalid(
                "vectors",
                format!(
                    "{} values are not a whole number of {dim}-dimensional vectors (or none)",
                    vectors.len()
                ),
            ));
        }
        let n = vectors.len() / dim;
        let row_ids: Vec<VectorId> = match ids {
            Some(ids) if ids.len() != n => {
                return Err(VectorError::invalid(
                    "ids",
                    format!("{} ids for {n} vectors", ids.len()),
                ));
            }
            Some(ids) => ids.to_vec(),
            None => (0..n as u64).collect(),
        };
        let mut seen = HashSet::with_capacity(n);
        for &id in &row_ids {
            if !seen.insert(id) {
                return Err(VectorError::DuplicateId(id));
            }
        }
        let mut prepared = Vec::with_capacity(vectors.len());
        for (i, v) in vectors.chunks_exact(dim).enumerate() {
            prepared.extend(options.metric.prepare(dim, v, || format!("vector {i}"))?);
        }
        let lists = options.lists.unwrap_or_else(|| default_lists(n));
        if lists == 0 || lists > n {
            return Err(VectorError::invalid(
                "lists",
                format!("{lists} lists for {n} vectors (use 1 to {n})"),
            ));
        }
        let kmeans_options = KMeansOptions {
            clusters: lists,
            iterations: options.iterations,
            sample_per_cluster: 64,
            seed: options.seed,
        };
        let centroids = kmeans::train(
            options.metric,
            dim,
            &prepared,
            &kmeans_options,
            &mut |i, total| progress("k-means", i, total),
        );
        let sq8 = (options.encoding == Encoding::Sq8).then(|| Sq8Params::fit(dim, &prepared));
        let mut data = Self {
            metric: options.metric,
            encoding: options.encoding,
            dim,
            sq8,
            centroids,
            lists: vec![ListData::default(); lists],
        };
        let step = (n / 100).max(1);
        for (i, (v, id)) in prepared.chunks_exact(dim).zip(row_ids).enumerate() {
            if i % step == 0 {
                progress("assigning", i, n);
            }
            data.place(id, v);
        }
        progress("assigning", n, n);
        Ok(data)
    }

    /// Loads every list of an index from `source` (verifying each page): the starting
    /// point for [`insert`](Self::insert) and [`delete`](Self::delete).
    pub fn load(
        manifest: &IndexManifest,
        source: &mut dyn PageSource,
    ) -> Result<Self, VectorError> {
        let mut lists = Vec::with_capacity(manifest.lists.len());
        for list in &manifest.lists {
            let page = fetch_verified(source, list.raw)?;
            let PageData::F32(vectors) = page.data else {
                return Err(VectorError::format(
                    "page",
                    "an exact-vector page holds codes",
                ));
            };
            if page.dim != manifest.dim || page.ids.len() != list.count as usize {
                return Err(VectorError::format(
                    "page",
                    format!("page {} does not match its manifest entry", list.raw.chunk),
                ));
            }
            lists.push(ListData {
                ids: page.ids,
                vectors,
            });
        }
        Ok(Self {
            metric: manifest.metric,
            encoding: manifest.encoding,
            dim: manifest.dim,
            sq8: manifest.sq8.clone(),
            centroids: manifest.centroids.clone(),
            lists,
        })
    }

    fn place(&mut self, id: VectorId, v: &[f32]) {
        let list = kmeans::nearest(self.metric, self.dim, &self.centroids, v);
        let l = &mut self.lists[list];
        l.ids.push(id);
        l.vectors.extend_from_slice(v);
    }

    /// The largest vector id held (`None` when empty).
    pub fn max_id(&self) -> Option<VectorId> {
        self.lists.iter().flat_map(|l| l.ids.iter().copied()).max()
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.lists.iter().map(|l| l.ids.len()).sum()
    }

    /// True without vectors.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Adds vectors (each goes to the list of its nearest centroid; centroids and
    /// quantization ranges stay as built, so untouched lists keep their pages).
    pub fn insert(&mut self, ids: &[VectorId], vectors: &[f32]) -> Result<(), VectorError> {
        if vectors.len() != ids.len() * self.dim {
            return Err(VectorError::invalid(
                "vectors",
                format!(
                    "{} values for {} ids of dimension {}",
                    vectors.len(),
                    ids.len(),
                    self.dim
                ),
            ));
        }
        let mut existing: HashSet<VectorId> = self
            .lists
            .iter()
            .flat_map(|l| l.ids.iter().copied())
            .collect();
        let mut prepared = Vec::with_capacity(vectors.len());
        for (v, &id) in vectors.chunks_exact(self.dim).zip(ids) {
            if !existing.insert(id) {
                return Err(VectorError::DuplicateId(id));
            }
            prepared.extend(
                self.metric
                    .prepare(self.dim, v, || format!("vector {id}"))?,
            );
        }
        for (v, &id) in prepared.chunks_exact(self.dim).zip(ids) {
            self.place(id, v);
        }
        Ok(())
    }

    /// Removes vectors by id; an unknown id is an error and changes nothing.
    pub fn delete(&mut self, ids: &[VectorId]) -> Result<(), VectorError> {
        let mut where_: HashMap<VectorId, usize> = HashMap::new();
        for (li, l) in self.lists.iter().enumerate() {
            for &id in &l.ids {
                where_.insert(id, li);
            }
        }
        let mut doomed: HashSet<VectorId> = HashSet::new();
        for &id in ids {
            if !where_.contains_key(&id) {
                return Err(VectorError::UnknownId(id));
            }
            doomed.insert(id);
        }
        let touched: HashSet<usize> = doomed.iter().map(|id| where_[id]).collect();
        for li in touched {
            let l = &mut self.lists[li];
            let dim = self.dim;
            let mut kept = ListData::default();
            for (row, &id) in l.ids.iter().enumerate() {
                if !doomed.contains(&id) {
                    kept.ids.push(id);
                    kept.vectors
                        .extend_from_slice(&l.vectors[row * dim..(row + 1) * dim]);
                }
            }
            *l = kept;
        }
        Ok(())
    }

    /// Encodes every list as pages and the manifest that names them. Pages are canonical
    /// (rows sorted by id), so a list that did not change keeps its chunk id.
    pub fn write(&self) -> Result<(IndexManifest, Vec<Chunk>), VectorError> {
        let mut pages = Vec::new();
        let mut refs = Vec::with_capacity(self.lists.len());
        let dim = self.dim;
        for (li, l) in self.lists.iter().enumerate() {
            let mut order: Vec<usize> = (0..l.ids.len()).collect();
            order.sort_unstable_by_key(|&r| l.ids[r]);
            let ids: Vec<VectorId> = order.iter().map(|&r| l.ids[r]).collect();
            let vectors: Vec<f32> = order
                .iter()
                .flat_map(|&r| l.vectors[r * dim..(r + 1) * dim].iter().copied())
                .collect();
            let mut push = |page: Page| -> Result<PageRef, VectorError> {
                let bytes = page.to_bytes();
                if bytes.len() > MAX_PAGE_BYTES {
                    return Err(VectorError::invalid(
                        "lists",
                        format!(
                            "list {li} would be a {} byte page, above the {MAX_PAGE_BYTES} byte \
                             chunk limit; build with more lists",
                            bytes.len()
                        ),
                    ));
                }
                let chunk = ChunkId::of(&bytes);
                let r = PageRef {
                    chunk,
                    bytes: bytes.len() as u32,
                };
                pages.push((chunk, bytes));
                Ok(r)
            };
            let codes = match &self.sq8 {
                Some(sq) => {
                    let mut codes = Vec::with_capacity(vectors.len());
                    for v in vectors.chunks_exact(dim) {
                        sq.encode(v, &mut codes);
                    }
                    Some(push(Page {
                        dim,
                        ids: ids.clone(),
                        data: PageData::Sq8(codes),
                    })?)
                }
                None => None,
            };
            let raw = push(Page {
                dim,
                ids,
                data: PageData::F32(vectors),
            })?;
            refs.push(ListRef {
                count: l.ids.len() as u32,
                raw,
                codes,
            });
        }
        let manifest = IndexManifest {
            metric: self.metric,
            encoding: self.encoding,
            dim,
            count: self.len() as u64,
            sq8: self.sq8.clone(),
            centroids: self.centroids.clone(),
            lists: refs,
        };
        Ok((manifest, pages))
    }
}
