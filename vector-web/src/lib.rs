//! # vector-web: the DSI vector store in the browser
//!
//! wasm-bindgen bindings for the page (`www/`):
//!
//! - [`Index`]: open an index from its content (the DSI manifest, checked against the content
//!   id, and its chunks, each checked against its chunk id), then run queries as a step
//!   machine: [`Index::step`] answers either the pages to fetch or a page of results; fetched
//!   pages go in through [`Index::add_page`], which verifies them before use.
//! - [`TextEmbedder`]: a text model (`model.dsiemb` content from the swarm, every chunk
//!   checked) that turns the query text into a vector in wasm, with the `text-embed` code
//!   `node-lite vectors` uses; [`content_text`] reads a verified text content (the lines).
//! - [`Downloader`]: the browser's ed25519 key; signs each chunk request (the
//!   `x-dsi-downloader` header) and a seeding receipt for every chunk a seeder served it,
//!   exactly as `node-lite get` does.
//!
//! Fetching, the IndexedDB cache and the UI live in `www/app.js`. Everything here also builds
//! natively, so it is unit-tested by `cargo test`.

use dsi_protocol::manifest::content_id_of_bytes;
use dsi_protocol::{
    ChunkId, ContentId, Epoch, Manifest, NetworkId, NodeId, Receipt, SecretKey, SignedReceipt,
};
use vector_store::{Cursor, IndexManifest, SearchOptions, Searcher, Step};
use wasm_bindgen::prelude::*;

fn err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

fn parse_chunk(text: &str) -> Result<ChunkId, JsError> {
    text.parse()
        .map_err(|e| err(format!("bad chunk id {text:?}: {e}")))
}

/// Checks a DSI manifest against the content id it was fetched for and returns the chunk
/// ids (hex) of the content, in order.
#[wasm_bindgen(js_name = contentChunks)]
pub fn content_chunks(content_id: &str, manifest_bytes: &[u8]) -> Result<Vec<String>, JsError> {
    Ok(checked_manifest(content_id, manifest_bytes)?
        .chunks
        .iter()
        .map(ToString::to_string)
        .collect())
}

fn checked_manifest(content_id: &str, manifest_bytes: &[u8]) -> Result<Manifest, JsError> {
    let content: ContentId = content_id
        .trim()
        .parse()
        .map_err(|e| err(format!("bad content id {content_id:?}: {e}")))?;
    if content_id_of_bytes(manifest_bytes) != content {
        return Err(err(format!(
            "the manifest received for {content} does not match that content id"
        )));
    }
    Manifest::from_bytes(manifest_bytes).map_err(err)
}

/// Parses a query vector typed by a user: a JSON array or comma/space-separated numbers.
#[wasm_bindgen(js_name = parseQuery)]
pub fn parse_query(text: &str) -> Result<Vec<f32>, JsError> {
    vector_store::input::parse_query(text).map_err(err)
}

/// Checks a whole content: the manifest against the content id, the name (if one is
/// expected), the size, and every chunk against its id. Returns the manifest and the chunks.
fn checked_content(
    content_id: &str,
    manifest_bytes: &[u8],
    content: &[u8],
    name: Option<&str>,
) -> Result<(Manifest, Vec<Vec<u8>>), JsError> {
    let manifest = checked_manifest(content_id, manifest_bytes)?;
    if let Some(name) = name.filter(|n| manifest.name != *n) {
        return Err(err(format!(
            "content {content_id} is {:?}, not {name}",
            manifest.name
        )));
    }
    if content.len() as u64 != manifest.size {
        return Err(err(format!(
            "{} bytes of content, the manifest says {}",
            content.len(),
            manifest.size
        )));
    }
    let mut chunks = Vec::with_capacity(manifest.chunk_count());
    for (i, id) in manifest.chunks.iter().enumerate() {
        let r = manifest.chunk_range(i);
        let bytes = &content[r.start as usize..r.end as usize];
        if ChunkId::of(bytes) != *id {
            return Err(err(format!(
                "chunk {i} of {content_id} does not hash to its id {id}"
            )));
        }
        chunks.push(bytes.to_vec());
    }
    Ok((manifest, chunks))
}

/// The text of a content (verified like any other), e.g. the lines a text index was built
/// from, so results can show them.
#[wasm_bindgen(js_name = contentText)]
pub fn content_text(
    content_id: &str,
    manifest_bytes: &[u8],
    content: &[u8],
) -> Result<String, JsError> {
    checked_content(content_id, manifest_bytes, content, None)?;
    String::from_utf8(content.to_vec())
        .map_err(|_| err(format!("content {content_id} is not UTF-8 text")))
}

/// A text model (a `model.dsiemb` bundle from the swarm): text in, query vector out, with
/// the same code `node-lite vectors` embeds with.
#[wasm_bindgen]
pub struct TextEmbedder {
    embedder: text_embed::Embedder,
}

#[wasm_bindgen]
impl TextEmbedder {
    /// Opens a model from its content (manifest and chunks concatenated, every chunk checked
    /// against its id).
    #[wasm_bindgen(constructor)]
    pub fn new(
        content_id: &str,
        manifest_bytes: &[u8],
        content: &[u8],
    ) -> Result<TextEmbedder, JsError> {
        checked_content(
            content_id,
            manifest_bytes,
            content,
            Some(text_embed::MODEL_CONTENT_NAME),
        )?;
        Ok(TextEmbedder {
            embedder: text_embed::Embedder::from_bundle_bytes(content).map_err(err)?,
        })
    }

    /// Dimension of the vectors.
    pub fn dim(&self) -> usize {
        self.embedder.dim()
    }

    /// The model's name.
    pub fn name(&self) -> String {
        self.embedder.settings().name.clone()
    }

    /// The vector of `text`.
    pub fn embed(&self, text: &str) -> Result<Vec<f32>, JsError> {
        self.embedder.embed(text).map_err(err)
    }
}

/// An open index and the verified pages held in memory.
#[wasm_bindgen]
pub struct Index {
    searcher: Searcher,
}

#[wasm_bindgen]
impl Index {
    /// Opens an index from its content: the DSI manifest bytes and all its chunks
    /// concatenated in order. Every chunk is checked against its id.
    #[wasm_bindgen(constructor)]
    pub fn new(content_id: &str, manifest_bytes: &[u8], content: &[u8]) -> Result<Index, JsError> {
        let (manifest, chunks) = checked_content(
            content_id,
            manifest_bytes,
            content,
            Some(vector_store::INDEX_CONTENT_NAME),
        )?;
        let index = IndexManifest::from_content(&manifest, &chunks).map_err(err)?;
        Ok(Index {
            searcher: Searcher::new(index),
        })
    }

    /// JSON: dimension, metric, encoding, vectors, lists, page bytes, default nprobe.
    pub fn info(&self) -> String {
        let m = self.searcher.manifest();
        serde_json::json!({
            "dim": m.dim,
            "metric": m.metric,
            "encoding": m.encoding,
            "vectors": m.count,
            "lists": m.list_count(),
            "page_bytes": m.page_bytes(),
            "nprobe": SearchOptions::for_index(m).nprobe,
        })
        .to_string()
    }

    /// One step of a query. JSON: `{"need": [{"chunk": hex, "bytes": n}, ...]}` (add those
    /// pages, then call again) or `{"done": {"page", "hits": [{"id", "distance"}],
    /// "next": cursor or null, "lists_probed"}}`.
    pub fn step(
        &self,
        query: &[f32],
        k: usize,
        nprobe: usize,
        cursor: Option<String>,
    ) -> Result<String, JsError> {
        let options = SearchOptions {
            k,
            nprobe,
            rerank: vector_store::DEFAULT_RERANK,
        };
        let cursor = cursor
            .filter(|c| !c.is_empty())
            .map(|c| c.parse::<Cursor>())
            .transpose()
            .map_err(err)?;
        let out = match self
            .searcher
            .step(query, &options, cursor.as_ref())
            .map_err(err)?
        {
            Step::Need(pages) => serde_json::json!({
                "need": pages.iter().map(|p| serde_json::json!({
                    "chunk": p.chunk.to_string(), "bytes": p.bytes,
                })).collect::<Vec<_>>()
            }),
            Step::Done(page) => serde_json::json!({
                "done": {
                    "page": page.page,
                    "hits": page.hits,
                    "next": page.next.map(|c| c.to_string()),
                    "lists_probed": page.lists_probed,
                }
            }),
        };
        Ok(out.to_string())
    }

    /// Verifies a page against its chunk id and keeps it for queries.
    #[wasm_bindgen(js_name = addPage)]
    pub fn add_page(&mut self, chunk: &str, bytes: &[u8]) -> Result<(), JsError> {
        self.searcher
            .add_page(parse_chunk(chunk)?, bytes)
            .map_err(err)
    }

    /// Whether a page is held.
    #[wasm_bindgen(js_name = hasPage)]
    pub fn has_page(&self, chunk: &str) -> bool {
        chunk
            .parse::<ChunkId>()
            .is_ok_and(|c| self.searcher.has_page(&c))
    }
}

fn seed_of(bytes: &[u8]) -> Result<[u8; 32], String> {
    bytes
        .try_into()
        .map_err(|_| format!("a key seed is 32 bytes, got {}", bytes.len()))
}

/// The browser's downloader identity: signs a receipt for every chunk a seeder served.
#[wasm_bindgen]
pub struct Downloader {
    key: SecretKey,
}

#[wasm_bindgen]
impl Downloader {
    /// A downloader from a 32-byte seed (the page keeps it in local storage).
    #[wasm_bindgen(constructor)]
    pub fn new(seed: &[u8]) -> Result<Downloader, JsError> {
        let seed = seed_of(seed).map_err(err)?;
        Ok(Downloader {
            key: SecretKey::from_seed(&seed),
        })
    }

    /// The node id (hex public key): the downloader of its receipts and chunk requests.
    #[wasm_bindgen(js_name = nodeId)]
    pub fn node_id(&self) -> String {
        self.key.node_id().to_string()
    }

    /// The `x-dsi-downloader` header of a request for `chunk` to `seeder` on `network`,
    /// signed now (`<node id>.<issued_at_ms>.<signature>`, `dsi_api::downloader`).
    /// Seeders that serve against receipts refuse chunk requests without it.
    #[wasm_bindgen(js_name = chunkHeader)]
    pub fn chunk_header(
        &self,
        network: &str,
        seeder: &str,
        chunk: &str,
        now_ms: f64,
    ) -> Result<String, JsError> {
        let network = NetworkId::new(network).map_err(err)?;
        let seeder: NodeId = seeder
            .parse()
            .map_err(|e| err(format!("bad seeder id {seeder:?}: {e}")))?;
        let header = dsi_api::downloader::DownloaderHeader::sign(
            &self.key,
            &network,
            seeder,
            parse_chunk(chunk)?,
            now_ms as u64,
        );
        Ok(header.to_string())
    }

    /// A signed receipt (JSON, as `POST /v1/receipts` takes it) for `bytes` of `chunk`
    /// served by `seeder` in `epoch` on `network`.
    #[allow(clippy::too_many_arguments)]
    pub fn receipt(
        &self,
        network: &str,
        epoch: f64,
        seeder: &str,
        chunk: &str,
        bytes: u32,
        now_ms: f64,
        nonce_hi: u32,
        nonce_lo: u32,
    ) -> Result<String, JsError> {
        let network = NetworkId::new(network).map_err(err)?;
        let seeder: NodeId = seeder
            .parse()
            .map_err(|e| err(format!("bad seeder id {seeder:?}: {e}")))?;
        let receipt = Receipt {
            epoch: Epoch(epoch as u64),
            seeder,
            downloader: self.key.node_id(),
            chunk: parse_chunk(chunk)?,
            bytes,
            issued_at_ms: now_ms as u64,
            nonce: (u64::from(nonce_hi) << 32) | u64::from(nonce_lo),
        };
        serde_json::to_string(&SignedReceipt::sign(receipt, &network, &self.key)).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vector_store::{BuildOptions, Encoding, IndexData, Metric};

    #[test]
    fn opens_an_index_and_answers_a_query_step_by_step() {
        let dim = 4;
        let data: Vec<f32> = (0..400).map(|i| ((i * 37) % 101) as f32 / 10.0).collect();
        let options = BuildOptions {
            metric: Metric::L2,
            encoding: Encoding::Sq8,
            lists: Some(8),
            ..BuildOptions::default()
        };
        let built = IndexData::build(dim, &data, None, &options, &mut |_, _, _| {}).unwrap();
        let (manifest, pages) = built.write().unwrap();
        let (content, chunks) = manifest.to_content();
        let cid = content.content_id().to_string();
        let mbytes = content.to_bytes();
        assert_eq!(content_chunks(&cid, &mbytes).unwrap().len(), chunks.len());
        let mut index = Index::new(&cid, &mbytes, &chunks.concat()).unwrap();
        assert!(index.info().contains("\"lists\":8"));
        let q = &data[..dim];
        let mut rounds = 0;
        let done = loop {
            let v: serde_json::Value =
                serde_json::from_str(&index.step(q, 5, 2, None).unwrap()).unwrap();
            if let Some(done) = v.get("done") {
                break done.clone();
            }
            for need in v["need"].as_array().unwrap() {
                let id = need["chunk"].as_str().unwrap();
                let bytes = &pages.iter().find(|(c, _)| c.to_string() == id).unwrap().1;
                index.add_page(id, bytes).unwrap();
                assert!(index.has_page(id));
            }
            rounds += 1;
        };
        assert!(rounds >= 1);
        assert_eq!(done["hits"][0]["distance"].as_f64().unwrap(), 0.0);
        assert!(done["next"].is_string());
    }

    #[test]
    fn receipts_verify_and_bad_inputs_are_named() {
        let d = Downloader::new(&[7u8; 32]).unwrap();
        let seeder = SecretKey::from_seed(&[1u8; 32]).node_id().to_string();
        let chunk = ChunkId::of(b"x").to_string();
        let json = d
            .receipt(
                "dsi-local",
                3.0,
                &seeder,
                &chunk,
                1,
                1_700_000_000_000.0,
                1,
                2,
            )
            .unwrap();
        let signed: SignedReceipt = serde_json::from_str(&json).unwrap();
        signed
            .verify(&NetworkId::new("dsi-local").unwrap())
            .unwrap();
        assert_eq!(signed.receipt.downloader.to_string(), d.node_id());
        assert_eq!(signed.receipt.nonce, (1 << 32) | 2);
        // The chunk request header a gated seeder checks.
        let header: dsi_api::downloader::DownloaderHeader = d
            .chunk_header("dsi-local", &seeder, &chunk, 1_700_000_000_000.0)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(header.downloader.to_string(), d.node_id());
        header
            .check(
                &NetworkId::new("dsi-local").unwrap(),
                seeder.parse().unwrap(),
                ChunkId::of(b"x"),
                1_700_000_000_000,
            )
            .unwrap();
        // (JsError needs a JavaScript host; the check behind it is tested natively.)
        assert_eq!(
            seed_of(&[1, 2, 3]).unwrap_err(),
            "a key seed is 32 bytes, got 3"
        );
    }
}
