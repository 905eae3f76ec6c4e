//! `node-lite vectors`: build a vector index into the chunk store, and query one from the
//! store or from peers.
//!
//! An index is ordinary swarm data: every page is a chunk in the store (served at
//! `GET /v1/chunks/{id}` like any other), and the index manifest is content named
//! `index.dsivec`, whose content id names the index. A query fetches only the pages it needs;
//! pages fetched from peers are verified, kept in the local store (so the next query does not
//! fetch them again) and paid for with signed receipts, like any download.

use std::path::Path;
use std::time::Duration;

use dsi_protocol::manifest::content_id_of_bytes;
use dsi_protocol::{ChunkId, ContentId, EpochSchedule, Manifest, NetworkId, NodeId, SecretKey};
use vector_store::{
    BuildOptions, Cursor, IndexData, IndexManifest, PageRef, ResultPage, SearchOptions, Searcher,
    Step, VectorError,
};

use crate::NodeError;
use crate::download::client::{FetchError, PeerClient, error_chain, http_client};
use crate::payer::{Paid, Payer, Signer};
use crate::store::ChunkStore;

/// What `vectors build` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BuildReport {
    /// The index's content id.
    pub content_id: ContentId,
    /// Vectors indexed.
    pub vectors: u64,
    /// Their dimension.
    pub dim: usize,
    /// Lists (pages of codes and of vectors per list).
    pub lists: usize,
    /// Pages written.
    pub pages: usize,
    /// Pages that were not already in the store.
    pub pages_new: usize,
    /// Bytes of all pages.
    pub page_bytes: u64,
}

/// Reads vectors from `input` (`.npy` or JSON), builds the index and stores its pages and
/// manifest. `progress(stage, done, total)` reports the long parts.
pub fn build(
    store: &ChunkStore,
    input: &Path,
    options: &BuildOptions,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<BuildReport, NodeError> {
    let bytes = std::fs::read(input).map_err(|e| NodeError::InputFile {
        path: input.to_path_buf(),
        reason: e.to_string(),
    })?;
    let vectors = vector_store::input::parse(&bytes)
        .map_err(|e| NodeError::Usage(format!("{}: {e}", input.display())))?;
    drop(bytes);
    build_vectors(
        store,
        &vectors,
        &input.display().to_string(),
        options,
        progress,
    )
}

/// Builds the index of `vectors` (from `source`, named in errors) and stores its pages and
/// manifest.
pub fn build_vectors(
    store: &ChunkStore,
    vectors: &vector_store::input::Vectors,
    source: &str,
    options: &BuildOptions,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<BuildReport, NodeError> {
    if vectors.is_empty() {
        return Err(NodeError::Usage(format!("{source}: no vectors")));
    }
    let index = IndexData::build(
        vectors.dim,
        &vectors.data,
        vectors.ids.as_deref(),
        options,
        progress,
    )
    .map_err(|e| NodeError::Usage(format!("{source}: {e}")))?;
    let (manifest, pages) = index.write()?;
    progress("storing pages", 0, pages.len());
    store_index(store, &manifest, &pages)
}

/// Pages from the local store only (for updates, which need every page).
struct LocalPages<'a>(&'a ChunkStore);

impl vector_store::PageSource for LocalPages<'_> {
    fn fetch(&mut self, page: PageRef) -> Result<Vec<u8>, VectorError> {
        match self.0.read_chunk(&page.chunk) {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => Err(VectorError::Missing {
                id: page.chunk,
                reason: "not in the local store; an update needs every page of the index \
                         (query it with --peer, or fetch the pages first)"
                    .into(),
            }),
            Err(e) => Err(VectorError::Missing {
                id: page.chunk,
                reason: e.to_string(),
            }),
        }
    }
}

/// Inserts and deletes vectors in an index held locally: writes the pages of the lists that
/// changed and a new index manifest, and returns the new index (the old one stays valid).
/// Inserted vectors without ids get ids after the largest id in the index.
pub fn update(
    store: &ChunkStore,
    index: &IndexManifest,
    insert: Option<vector_store::input::Vectors>,
    delete: &[u64],
) -> Result<BuildReport, NodeError> {
    let mut data = IndexData::load(index, &mut LocalPages(store))?;
    if !delete.is_empty() {
        data.delete(delete)?;
    }
    if let Some(v) = insert {
        if v.dim != data.dim() {
            return Err(NodeError::Vector(VectorError::Dimension {
                expected: data.dim(),
                what: "the inserted vectors".into(),
                actual: v.dim,
            }));
        }
        let ids = match v.ids {
            Some(ids) => ids,
            None => {
                let first = data.max_id().map_or(0, |m| m + 1);
                (first..first + v.len() as u64).collect()
            }
        };
        data.insert(&ids, &v.data)?;
    }
    let (manifest, pages) = data.write()?;
    store_index(store, &manifest, &pages)
}

fn store_index(
    store: &ChunkStore,
    manifest: &IndexManifest,
    pages: &[vector_store::Chunk],
) -> Result<BuildReport, NodeError> {
    let mut pages_new = 0;
    for (id, bytes) in pages {
        if store.put_chunk(id, bytes, false)? {
            pages_new += 1;
        }
    }
    let (content, chunks) = manifest.to_content();
    for (id, bytes) in content.chunks.iter().zip(&chunks) {
        store.put_chunk(id, bytes, false)?;
    }
    let ids: Vec<ChunkId> = pages
        .iter()
        .map(|(id, _)| *id)
        .chain(content.chunks.iter().copied())
        .collect();
    store.sync_chunks(&ids)?;
    let content_id = store.put_manifest(&content)?;
    Ok(BuildReport {
        content_id,
        vectors: manifest.count,
        dim: manifest.dim,
        lists: manifest.list_count(),
        pages: pages.len(),
        pages_new,
        page_bytes: manifest.page_bytes(),
    })
}

/// One peer of a [`PagePeers`]: its client, its node id once asked, its payer once it
/// served something.
struct PagePeer {
    client: PeerClient,
    node_id: Option<NodeId>,
    payer: Option<Payer>,
}

/// Peers to fetch pages (and models) from one chunk at a time, paying each with signed
/// receipts through its [`Payer`].
pub struct PagePeers {
    peers: Vec<PagePeer>,
    signer: Signer,
    stall: Duration,
    paid: Paid,
    /// Pages fetched from peers (not found locally).
    pub fetched: usize,
    /// Their bytes.
    pub fetched_bytes: u64,
}

impl PagePeers {
    /// Peers at `urls`, receipts signed with `key` for `network`.
    pub fn new(
        urls: Vec<reqwest::Url>,
        key: SecretKey,
        network: NetworkId,
        epochs: EpochSchedule,
    ) -> Self {
        let http = http_client();
        Self {
            peers: urls
                .into_iter()
                .map(|u| PagePeer {
                    client: PeerClient::new(http.clone(), u),
                    node_id: None,
                    payer: None,
                })
                .collect(),
            signer: Signer::new(key, network, epochs),
            stall: Duration::from_secs(10),
            paid: Paid::default(),
            fetched: 0,
            fetched_bytes: 0,
        }
    }

    async fn seeder(&mut self, i: usize) -> Result<NodeId, String> {
        if let Some(id) = self.peers[i].node_id {
            return Ok(id);
        }
        let info = self.peers[i]
            .client
            .node_info(self.stall)
            .await
            .map_err(|e| error_chain(&e))?;
        self.peers[i].node_id = Some(info.node_id);
        Ok(info.node_id)
    }

    /// Asks peer `i` (node `seeder`) for a chunk; a seeder that is owed too many receipts
    /// gets them (the payer settles) and is asked once more.
    async fn fetch(
        &mut self,
        i: usize,
        seeder: NodeId,
        id: &ChunkId,
        max_len: usize,
    ) -> Result<Vec<u8>, FetchError> {
        let header = self.signer.request_header(seeder, *id);
        let peer = &mut self.peers[i];
        match peer.client.chunk(id, &header, max_len, self.stall).await {
            Err(FetchError::Status { status: 429, .. }) => {
                if let Some(payer) = &mut peer.payer {
                    payer.settled(self.stall).await;
                }
                let header = self.signer.request_header(seeder, *id);
                peer.client
                    .chunk(id, &header, max_len, self.stall)
                    .await
                    .map(|pieces| pieces.to_vec())
            }
            other => other.map(|pieces| pieces.to_vec()),
        }
    }

    /// Fetches a chunk from the first peer that has it, checks its id, and pays that peer
    /// a receipt.
    async fn chunk(&mut self, id: &ChunkId, max_len: usize) -> Result<Vec<u8>, String> {
        let mut why = Vec::new();
        for i in 0..self.peers.len() {
            let seeder = match self.seeder(i).await {
                Ok(s) => s,
                Err(e) => {
                    why.push(format!("{}: {e}", self.peers[i].client.url()));
                    continue;
                }
            };
            match self.fetch(i, seeder, id, max_len).await {
                Ok(bytes) if ChunkId::of(&bytes) == *id => {
                    let receipt = self.signer.sign(seeder, *id, bytes.len() as u32);
                    let peer = &mut self.peers[i];
                    peer.payer
                        .get_or_insert_with(|| Payer::start(peer.client.clone(), self.stall))
                        .pay(receipt);
                    self.fetched += 1;
                    self.fetched_bytes += bytes.len() as u64;
                    return Ok(bytes);
                }
                Ok(_) => why.push(format!(
                    "{}: sent bytes that do not hash to {id}",
                    self.peers[i].client.url()
                )),
                Err(e) => why.push(format!(
                    "{}: {}",
                    self.peers[i].client.url(),
                    error_chain(&e)
                )),
            }
        }
        Err(if why.is_empty() {
            "no peers given (use --peer URL)".into()
        } else {
            why.join("; ")
        })
    }

    /// Delivers the receipts still owed for everything fetched (bounded wait). Returns
    /// what paying came to in all, including receipts delivered along the way.
    pub async fn pay(&mut self) -> Paid {
        let deadline = tokio::time::Instant::now() + self.stall * 3;
        for peer in &mut self.peers {
            if let Some(payer) = peer.payer.take() {
                self.paid += payer.finish(deadline).await;
            }
        }
        self.paid
    }
}

/// Loads a content named `name` whole: its manifest and chunks from the local store, else
/// from peers (verified against the content id and the chunk ids, then kept locally).
/// `progress(done, total)` counts chunks.
pub async fn open_content(
    store: &ChunkStore,
    content: &ContentId,
    peers: &mut PagePeers,
    name: &str,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Manifest, Vec<Vec<u8>>), NodeError> {
    let manifest = match store.manifest(content)? {
        Some(m) => m,
        None => {
            let mut why = Vec::new();
            let mut found = None;
            for PagePeer { client, .. } in &peers.peers {
                match client.manifest(content, peers.stall).await {
                    Ok(bytes) if content_id_of_bytes(&bytes) == *content => {
                        let m = Manifest::from_bytes(&bytes).map_err(|e| {
                            NodeError::ManifestMismatch {
                                content: *content,
                                detail: e.to_string(),
                            }
                        })?;
                        found = Some(m);
                        break;
                    }
                    Ok(_) => why.push(format!("{}: manifest does not match the id", client.url())),
                    Err(e) => why.push(format!("{}: {}", client.url(), error_chain(&e))),
                }
            }
            let m = found.ok_or_else(|| NodeError::UnknownContent {
                content: *content,
                detail: if why.is_empty() {
                    "not in the local store (give --peer URL to fetch it)".into()
                } else {
                    why.join("; ")
                },
            })?;
            store.put_manifest(&m)?;
            m
        }
    };
    if manifest.name != name {
        return Err(NodeError::Usage(format!(
            "content {content} is {:?}, not {}",
            manifest.name,
            match name {
                vector_store::INDEX_CONTENT_NAME => "a vector index (index.dsivec)",
                text_embed::MODEL_CONTENT_NAME => "a text model (model.dsiemb)",
                other => other,
            }
        )));
    }
    let mut chunks = Vec::with_capacity(manifest.chunks.len());
    for (i, id) in manifest.chunks.iter().enumerate() {
        progress(i, manifest.chunks.len());
        let bytes = match store.read_chunk_verified(id)? {
            Some(b) => b,
            None => {
                let b = peers
                    .chunk(id, manifest.chunk_len(i) as usize)
                    .await
                    .map_err(|why| NodeError::Incomplete {
                        content: *content,
                        missing: manifest.chunks.len() - i,
                        total: manifest.chunks.len(),
                        detail: why,
                    })?;
                store.put_chunk(id, &b, true)?;
                b
            }
        };
        chunks.push(bytes);
    }
    progress(manifest.chunks.len(), manifest.chunks.len());
    Ok((manifest, chunks))
}

/// Loads an index manifest: from the local store, else from peers (verified against the
/// content id, then kept locally).
pub async fn open_index(
    store: &ChunkStore,
    content: &ContentId,
    peers: &mut PagePeers,
) -> Result<IndexManifest, NodeError> {
    let (manifest, chunks) = open_content(
        store,
        content,
        peers,
        vector_store::INDEX_CONTENT_NAME,
        &mut |_, _| {},
    )
    .await?;
    Ok(IndexManifest::from_content(&manifest, &chunks)?)
}

/// Packs a sentence-transformers model directory into a bundle and stores it as content
/// (`model.dsiemb`, 1 MiB chunks). The model is loaded once first, so a bundle that cannot
/// embed is never stored.
pub fn add_model(
    store: &ChunkStore,
    data_dir: &Path,
    model_dir: &Path,
) -> Result<(ContentId, text_embed::EmbedderSettings, usize, u64), NodeError> {
    let bundle = text_embed::Bundle::from_dir(model_dir)?;
    let settings = bundle.settings.clone();
    let bytes = bundle.to_bytes()?;
    let embedder = text_embed::Embedder::from_bundle_bytes(&bytes)?;
    let dim = embedder.dim();
    drop(embedder);
    let mut file = tempfile::NamedTempFile::new_in(data_dir).map_err(|e| NodeError::Io {
        action: "cannot create a temporary file in",
        path: data_dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    std::io::Write::write_all(&mut file, &bytes).map_err(|e| NodeError::Io {
        action: "cannot write",
        path: file.path().to_path_buf(),
        reason: e.to_string(),
    })?;
    let report = store.add_file(
        file.path(),
        text_embed::MODEL_CONTENT_NAME,
        MODEL_CHUNK_SIZE,
        &mut |_| {},
    )?;
    Ok((report.content_id, settings, dim, bytes.len() as u64))
}

/// Chunk size of model bundles: ~90 chunks for MiniLM.
pub const MODEL_CHUNK_SIZE: u32 = 1024 * 1024;

/// Loads a text model from the store or peers (verified chunk by chunk).
pub async fn open_model(
    store: &ChunkStore,
    content: &ContentId,
    peers: &mut PagePeers,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<text_embed::Embedder, NodeError> {
    let (_, chunks) = open_content(
        store,
        content,
        peers,
        text_embed::MODEL_CONTENT_NAME,
        progress,
    )
    .await?;
    let bytes = chunks.concat();
    drop(chunks);
    Ok(text_embed::Embedder::from_bundle_bytes(&bytes)?)
}

/// The non-empty lines of a text file with their ids (0-based line numbers), as
/// `vectors build --text-file` indexes them.
pub fn text_lines(path: &Path) -> Result<Vec<(u64, String)>, NodeError> {
    let text = std::fs::read_to_string(path).map_err(|e| NodeError::InputFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i as u64, l.to_string()))
        .collect())
}

/// Embeds texts with `embedder`; `progress(done, total)`.
pub fn embed_texts(
    embedder: &text_embed::Embedder,
    lines: &[(u64, String)],
    progress: &mut dyn FnMut(usize, usize),
) -> Result<vector_store::input::Vectors, NodeError> {
    let mut data = Vec::with_capacity(lines.len() * embedder.dim());
    for (i, (_, text)) in lines.iter().enumerate() {
        progress(i, lines.len());
        data.extend(embedder.embed(text)?);
    }
    progress(lines.len(), lines.len());
    Ok(vector_store::input::Vectors {
        dim: embedder.dim(),
        data,
        ids: Some(lines.iter().map(|(id, _)| *id).collect()),
    })
}

/// What a query did besides its results.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct QueryStats {
    /// Pages read from the local store.
    pub pages_local: usize,
    /// Pages fetched from peers (and now stored locally).
    pub pages_fetched: usize,
    /// Bytes of pages used by this query.
    pub page_bytes: u64,
    /// Bytes of the whole index's pages.
    pub index_page_bytes: u64,
}

/// Runs one result page of a query: pages from the local store first, then from peers.
pub async fn query(
    store: &ChunkStore,
    index: IndexManifest,
    peers: &mut PagePeers,
    vector: &[f32],
    options: &SearchOptions,
    cursor: Option<&Cursor>,
) -> Result<(ResultPage, QueryStats), NodeError> {
    let mut stats = QueryStats {
        index_page_bytes: index.page_bytes(),
        ..QueryStats::default()
    };
    let mut searcher = Searcher::new(index);
    loop {
        match searcher.step(vector, options, cursor)? {
            Step::Done(page) => {
                stats.page_bytes = searcher.added_bytes();
                return Ok((page, stats));
            }
            Step::Need(pages) => {
                for PageRef { chunk, bytes: len } in pages {
                    let local = match store.read_chunk(&chunk)? {
                        Some(b) if ChunkId::of(&b) == chunk => Some(b),
                        Some(_) => {
                            tracing::warn!(%chunk, "stored page is corrupt; quarantined, fetching it again");
                            store.quarantine(&chunk)?;
                            None
                        }
                        None => None,
                    };
                    let bytes = match local {
                        Some(b) => {
                            stats.pages_local += 1;
                            b
                        }
                        None => {
                            let b = peers.chunk(&chunk, len as usize).await.map_err(|why| {
                                NodeError::Vector(VectorError::Missing {
                                    id: chunk,
                                    reason: why,
                                })
                            })?;
                            store.put_chunk(&chunk, &b, false)?;
                            stats.pages_fetched += 1;
                            b
                        }
                    };
                    searcher.add_page(chunk, &bytes)?;
                }
            }
        }
    }
}
