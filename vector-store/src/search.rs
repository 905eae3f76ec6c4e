//! Queries: rank centroids, fetch and verify the pages of the nearest lists, search them, and
//! page through results with a cursor.

use std::collections::{HashMap, HashSet};

use dsi_protocol::ChunkId;

use crate::metric::distance;
use crate::page::PageData;
use crate::{Cursor, Encoding, IndexManifest, Page, PageRef, VectorError, VectorId};

/// Where pages come from: a local chunk store, a peer over HTTP, memory.
pub trait PageSource {
    /// The bytes of a page. They are verified by the caller; a source need not check them.
    fn fetch(&mut self, page: PageRef) -> Result<Vec<u8>, VectorError>;
}

/// Pages in memory, keyed by chunk id.
#[derive(Clone, Debug, Default)]
pub struct MemorySource {
    /// The pages.
    pub pages: HashMap<ChunkId, Vec<u8>>,
}

impl MemorySource {
    /// A source holding `pages`.
    pub fn new(pages: impl IntoIterator<Item = (ChunkId, Vec<u8>)>) -> Self {
        Self {
            pages: pages.into_iter().collect(),
        }
    }
}

impl PageSource for MemorySource {
    fn fetch(&mut self, page: PageRef) -> Result<Vec<u8>, VectorError> {
        self.pages
            .get(&page.chunk)
            .cloned()
            .ok_or_else(|| VectorError::Missing {
                id: page.chunk,
                reason: "not in memory".into(),
            })
    }
}

/// Fetches a page and checks it against its chunk id before parsing it.
pub(crate) fn fetch_verified(
    source: &mut dyn PageSource,
    page: PageRef,
) -> Result<Page, VectorError> {
    let bytes = source.fetch(page)?;
    verify(page.chunk, &bytes)?;
    Page::from_bytes(&bytes)
}

fn verify(expected: ChunkId, bytes: &[u8]) -> Result<(), VectorError> {
    let actual = ChunkId::of(bytes);
    if actual != expected {
        return Err(VectorError::Corrupt { expected, actual });
    }
    Ok(())
}

/// Candidates re-ranked per result with exact vectors (sq8 indexes). 8-bit codes rank well
/// enough that 2 loses no recall against 4 in vector-bench, and fetches fewer exact pages.
pub const DEFAULT_RERANK: usize = 2;

/// Query parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchOptions {
    /// Results per page.
    pub k: usize,
    /// Lists searched first, and how many more each widening adds.
    pub nprobe: usize,
    /// With [`Encoding::Sq8`]: how many candidates per result are re-ranked with exact
    /// vectors (`k x rerank`).
    pub rerank: usize,
}

impl SearchOptions {
    /// Defaults for an index: k = 10, nprobe = 1/10 of the lists (at least 1), rerank
    /// [`DEFAULT_RERANK`]. On real embeddings (vector-bench's MiniLM set) a tenth of the
    /// lists gives recall@10 about 0.95 while fetching about 3.5% of the index.
    pub fn for_index(manifest: &IndexManifest) -> Self {
        Self {
            k: 10,
            nprobe: (manifest.list_count() / 10).max(1),
            rerank: DEFAULT_RERANK,
        }
    }
}

/// One result.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Hit {
    /// The vector's id.
    pub id: VectorId,
    /// Its exact distance to the query (cosine distance or squared L2).
    pub distance: f32,
}

/// One page of results.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultPage {
    /// Zero-based result page number.
    pub page: u32,
    /// The hits, nearest first.
    pub hits: Vec<Hit>,
    /// The cursor for the next page; `None` once every vector has been returned.
    pub next: Option<Cursor>,
    /// Lists searched to produce this page (grows as the search widens).
    pub lists_probed: usize,
}

/// What a query needs next.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// These pages must be added ([`Searcher::add_page`]) before the query can go on.
    Need(Vec<PageRef>),
    /// The result page.
    Done(ResultPage),
}

#[derive(Clone, Copy)]
struct Candidate {
    distance: f32,
    id: VectorId,
    list: u32,
    row: u32,
}

/// Queries one index, holding the verified pages fetched so far.
#[derive(Clone, Debug)]
pub struct Searcher {
    manifest: IndexManifest,
    tag: [u8; 8],
    /// chunk id -> (list, is the code page)
    known: HashMap<ChunkId, (usize, bool)>,
    pages: HashMap<ChunkId, Page>,
    added_bytes: u64,
}

impl Searcher {
    /// A searcher for an index, with no pages yet.
    pub fn new(manifest: IndexManifest) -> Self {
        let tag_hash = blake3::hash(&manifest.to_bytes());
        let mut tag = [0u8; 8];
        tag.copy_from_slice(&tag_hash.as_bytes()[..8]);
        let mut known = HashMap::new();
        for (i, l) in manifest.lists.iter().enumerate() {
            known.insert(l.raw.chunk, (i, false));
            if let Some(c) = l.codes {
                known.insert(c.chunk, (i, true));
            }
        }
        Self {
            manifest,
            tag,
            known,
            pages: HashMap::new(),
            added_bytes: 0,
        }
    }

    /// The index.
    pub fn manifest(&self) -> &IndexManifest {
        &self.manifest
    }

    /// Whether a page is already held.
    pub fn has_page(&self, id: &ChunkId) -> bool {
        self.pages.contains_key(id)
    }

    /// Bytes of all pages added so far.
    pub fn added_bytes(&self) -> u64 {
        self.added_bytes
    }

    /// Drops every held page (and the byte count).
    pub fn clear_pages(&mut self) {
        self.pages.clear();
        self.added_bytes = 0;
    }

    /// Verifies a page against its chunk id and keeps it. Bytes that do not hash to `id`, a
    /// chunk that is not a page of this index, or a page that does not match its manifest
    /// entry are refused with an error naming it.
    pub fn add_page(&mut self, id: ChunkId, bytes: &[u8]) -> Result<(), VectorError> {
        let Some(&(list, codes)) = self.known.get(&id) else {
            return Err(VectorError::NotAPage(id));
        };
        if self.pages.contains_key(&id) {
            return Ok(());
        }
        verify(id, bytes)?;
        let page = Page::from_bytes(bytes)?;
        let entry = self.manifest.lists[list];
        let kind_ok = matches!(
            (&page.data, codes),
            (PageData::Sq8(_), true) | (PageData::F32(_), false)
        );
        if page.dim != self.manifest.dim || page.len() != entry.count as usize || !kind_ok {
            return Err(VectorError::format(
                "page",
                format!("page {id} does not match its entry in the index manifest"),
            ));
        }
        self.added_bytes += bytes.len() as u64;
        self.pages.insert(id, page);
        Ok(())
    }

    fn cursor_for(&self, query: &[f32], options: &SearchOptions, page: u32) -> Cursor {
        let mut h = blake3::Hasher::new();
        for x in query {
            h.update(&x.to_le_bytes());
        }
        for n in [options.k, options.nprobe, options.rerank] {
            h.update(&(n as u64).to_le_bytes());
        }
        let mut q = [0u8; 8];
        q.copy_from_slice(&h.finalize().as_bytes()[..8]);
        Cursor {
            index: self.tag,
            query: q,
            page,
        }
    }

    /// Runs a query as far as the held pages allow: either the result page the cursor asks
    /// for (the first without a cursor) or the pages still needed.
    ///
    /// Results come in pages of `k`, nearest first within a page; across pages every vector
    /// of the index is returned exactly once. The first page searches the `nprobe` lists
    /// nearest to the query; when the lists searched so far have fewer than `k` results
    /// left, `nprobe` more lists are added.
    pub fn step(
        &self,
        query: &[f32],
        options: &SearchOptions,
        cursor: Option<&Cursor>,
    ) -> Result<Step, VectorError> {
        let m = &self.manifest;
        if options.k == 0 || options.nprobe == 0 || options.rerank == 0 {
            return Err(VectorError::invalid(
                "search options",
                format!(
                    "k, nprobe and rerank must be at least 1 (got {}, {}, {})",
                    options.k, options.nprobe, options.rerank
                ),
            ));
        }
        let q = m.metric.prepare(m.dim, query, || "the query".into())?;
        let target = match cursor {
            None => 0,
            Some(c) => {
                let mine = self.cursor_for(&q, options, c.page);
                if c.index != mine.index {
                    return Err(VectorError::Cursor("another index"));
                }
                if c.query != mine.query {
                    return Err(VectorError::Cursor("another query (vector, k or nprobe)"));
                }
                c.page
            }
        };
        let lists = m.list_count();
        let mut order: Vec<(f32, usize)> = (0..lists)
            .map(|i| (distance(m.metric, &q, m.centroid(i)), i))
            .collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let order: Vec<usize> = order.into_iter().map(|(_, i)| i).collect();

        let total = m.count as usize;
        let mut probe = options.nprobe.min(lists);
        let mut probed = 0;
        let mut pool: Vec<Candidate> = Vec::new();
        let mut emitted: HashSet<VectorId> = HashSet::new();
        let mut decoded = vec![0.0f32; m.dim];
        for page_no in 0..=target {
            if emitted.len() >= total {
                return Err(VectorError::invalid(
                    "cursor",
                    format!("result page {target} is past the end of the results"),
                ));
            }
            // Search more lists until k results are left or every list is searched.
            loop {
                if probed < probe {
                    let need: Vec<PageRef> = order[probed..probe]
                        .iter()
                        .map(|&li| m.lists[li].primary())
                        .filter(|p| !self.pages.contains_key(&p.chunk))
                        .collect();
                    if !need.is_empty() {
                        return Ok(Step::Need(need));
                    }
                    for &li in &order[probed..probe] {
                        let page = &self.pages[&m.lists[li].primary().chunk];
                        for (row, &id) in page.ids.iter().enumerate() {
                            let d = match &page.data {
                                PageData::F32(v) => {
                                    distance(m.metric, &q, &v[row * m.dim..(row + 1) * m.dim])
                                }
                                PageData::Sq8(codes) => {
                                    let sq = m.sq8.as_ref().ok_or_else(|| {
                                        VectorError::format(
                                            "index manifest",
                                            "codes without ranges",
                                        )
                                    })?;
                                    sq.decode(&codes[row * m.dim..(row + 1) * m.dim], &mut decoded);
                                    distance(m.metric, &q, &decoded)
                                }
                            };
                            pool.push(Candidate {
                                distance: d,
                                id,
                                list: li as u32,
                                row: row as u32,
                            });
                        }
                    }
                    probed = probe;
                }
                if pool.len() - emitted.len() >= options.k || probe == lists {
                    break;
                }
                probe = (probe + options.nprobe).min(lists);
            }
            let mut remaining: Vec<Candidate> = pool
                .iter()
                .filter(|c| !emitted.contains(&c.id))
                .copied()
                .collect();
            remaining.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
            let mut chosen: Vec<Hit> = if m.encoding == Encoding::Sq8 {
                let depth = (options.k.saturating_mul(options.rerank)).min(remaining.len());
                let candidates = &remaining[..depth];
                let mut need: Vec<PageRef> = Vec::new();
                for c in candidates {
                    let raw = m.lists[c.list as usize].raw;
                    if !self.pages.contains_key(&raw.chunk) && !need.contains(&raw) {
                        need.push(raw);
                    }
                }
                if !need.is_empty() {
                    return Ok(Step::Need(need));
                }
                let mut exact: Vec<Hit> = candidates
                    .iter()
                    .map(|c| {
                        let page = &self.pages[&m.lists[c.list as usize].raw.chunk];
                        let v = page.vector(c.row as usize).unwrap_or(&[]);
                        Hit {
                            id: c.id,
                            distance: distance(m.metric, &q, v),
                        }
                    })
                    .collect();
                exact.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
                exact
            } else {
                remaining
                    .iter()
                    .map(|c| Hit {
                        id: c.id,
                        distance: c.distance,
                    })
                    .collect()
            };
            chosen.truncate(options.k);
            emitted.extend(chosen.iter().map(|h| h.id));
            if page_no == target {
                let next =
                    (emitted.len() < total).then(|| self.cursor_for(&q, options, target + 1));
                return Ok(Step::Done(ResultPage {
                    page: target,
                    hits: chosen,
                    next,
                    lists_probed: probed,
                }));
            }
        }
        Err(VectorError::invalid("cursor", "unreachable result page"))
    }

    /// Runs a query to completion, fetching (and verifying) missing pages from `source`.
    pub fn search(
        &mut self,
        source: &mut dyn PageSource,
        query: &[f32],
        options: &SearchOptions,
        cursor: Option<&Cursor>,
    ) -> Result<ResultPage, VectorError> {
        loop {
            match self.step(query, options, cursor)? {
                Step::Done(page) => return Ok(page),
                Step::Need(pages) => {
                    for page in pages {
                        let bytes = source.fetch(page)?;
                        self.add_page(page.chunk, &bytes)?;
                    }
                }
            }
        }
    }
}
