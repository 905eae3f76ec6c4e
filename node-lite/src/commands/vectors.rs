//! `node-lite vectors ...`: build, update and query vector indexes, add and use text models.
//! The index and model logic is in [`crate::vectors`]; this module turns command-line
//! requests into calls and reports.

use std::collections::HashMap;
use std::path::PathBuf;

use dsi_protocol::ContentId;
use serde::Serialize;

use super::{Report, parse_content, parse_peers, progress_bar};
use crate::cli::parse_metric;
use crate::size::human_bytes;
use crate::store::ChunkStore;
use crate::vectors::{self, BuildReport, PagePeers, QueryStats};
use crate::{DataDir, NodeError};

/// Peers to fetch vector pages and models from, paid with this node's key.
pub fn page_peers(dir: &DataDir, peers: &[String]) -> Result<PagePeers, NodeError> {
    let urls = parse_peers(peers)?;
    let config = dir.config()?;
    Ok(PagePeers::new(
        urls,
        dir.key()?,
        config.network,
        config.epochs,
    ))
}

fn open_store(dir: &DataDir) -> Result<ChunkStore, NodeError> {
    dir.key()?;
    Ok(ChunkStore::open(dir.path())?)
}

/// What `vectors build` was asked (its command line).
#[derive(Debug, Clone, clap::Args)]
pub struct BuildRequest {
    /// The vectors (.npy or JSON, see below).
    #[arg(required_unless_present = "text_file", conflicts_with = "text_file")]
    pub input: Option<PathBuf>,
    /// Index the lines of a text file instead, embedded with --model.
    #[arg(long, value_name = "FILE", requires = "model")]
    pub text_file: Option<PathBuf>,
    /// The text model's content id (printed by `vectors add-model`).
    #[arg(long, value_name = "ID")]
    pub model: Option<String>,
    /// A peer to fetch the text model from if it is not stored here (repeatable).
    #[arg(long = "peer", value_name = "URL")]
    pub peers: Vec<String>,
    /// Distance: cosine (vectors are normalized) or l2 (squared Euclidean).
    #[arg(long, default_value = "cosine", value_parser = parse_metric)]
    pub metric: vector_store::Metric,
    /// Also store 8-bit quantized codes per list: queries fetch a quarter of the bytes
    /// and re-rank the best candidates with the exact vectors.
    #[arg(long)]
    pub sq8: bool,
    /// Number of lists (pages); default about 4 x sqrt(number of vectors).
    #[arg(long, value_name = "N")]
    pub lists: Option<usize>,
    /// k-means iterations.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub iterations: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

impl BuildRequest {
    /// The index options asked for.
    pub fn options(&self) -> vector_store::BuildOptions {
        vector_store::BuildOptions {
            metric: self.metric,
            encoding: if self.sq8 {
                vector_store::Encoding::Sq8
            } else {
                vector_store::Encoding::F32
            },
            lists: self.lists,
            iterations: self.iterations,
            ..vector_store::BuildOptions::default()
        }
    }
}

/// `vectors build` (and `vectors update`).
#[derive(Debug, Serialize)]
pub struct BuildOutcome {
    /// The index.
    #[serde(flatten)]
    pub report: BuildReport,
    /// The distance.
    #[serde(skip)]
    pub metric: Option<vector_store::Metric>,
    /// Vectors in the index before an update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vectors_before: Option<u64>,
    /// With `--text-file`: the content holding the lines, for readers to show matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub texts_content_id: Option<ContentId>,
}

impl Report for BuildOutcome {
    fn text(&self) -> String {
        self.report.content_id.to_string()
    }

    fn summary(&self) -> Option<String> {
        let r = &self.report;
        let mut text = match self.vectors_before {
            Some(before) => format!(
                "{} vectors now ({before} before); {} of {} pages are new",
                r.vectors, r.pages_new, r.pages
            ),
            None => format!(
                "indexed {} vectors of dimension {} ({}): {} lists, {} pages ({} new), {}",
                r.vectors,
                r.dim,
                self.metric.map_or_else(String::new, |m| m.to_string()),
                r.lists,
                r.pages,
                r.pages_new,
                human_bytes(r.page_bytes)
            ),
        };
        if let Some(texts) = self.texts_content_id {
            text.push_str(&format!(
                "\nthe lines are content {texts} (give it to the page to show them)"
            ));
        }
        Some(text)
    }
}

/// Builds an index from vectors, or from the lines of a text file embedded with a model.
pub async fn build(dir: &DataDir, request: BuildRequest) -> Result<BuildOutcome, NodeError> {
    let store = open_store(dir)?;
    let bar = progress_bar(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:>14} [{bar:30}] {pos}/{len}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut progress = |stage: &str, done: usize, total: usize| {
        bar.set_message(stage.to_string());
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let options = &request.options();
    let (report, texts) = match (request.input, request.text_file, request.model) {
        (_, Some(path), Some(model)) => {
            let mut peers = page_peers(dir, &request.peers)?;
            let lines = vectors::text_lines(&path)?;
            let embedder = vectors::open_model(
                &store,
                &parse_content(&model)?,
                &mut peers,
                &mut |done, total| progress("fetching model", done, total),
            )
            .await;
            peers.pay().await;
            let embedder = embedder?;
            let vectors = vectors::embed_texts(&embedder, &lines, &mut |done, total| {
                progress("embedding", done, total)
            })?;
            let report = vectors::build_vectors(
                &store,
                &vectors,
                &path.display().to_string(),
                options,
                &mut progress,
            )?;
            // The lines themselves, so readers can show what matched.
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .filter(|n| dsi_protocol::manifest::validate_name(n).is_ok())
                .unwrap_or_else(|| "texts.txt".into());
            let texts = store.add_file(
                &path,
                &name,
                dsi_protocol::manifest::DEFAULT_CHUNK_SIZE,
                &mut |_| {},
            )?;
            (report, Some(texts.content_id))
        }
        (Some(input), _, _) => (
            vectors::build(&store, &input, options, &mut progress)?,
            None,
        ),
        _ => {
            return Err(NodeError::Usage(
                "give INPUT, or --text-file FILE with --model ID".into(),
            ));
        }
    };
    bar.finish_and_clear();
    Ok(BuildOutcome {
        report,
        metric: Some(options.metric),
        vectors_before: None,
        texts_content_id: texts,
    })
}

/// `vectors add-model`.
#[derive(Debug, Serialize)]
pub struct ModelReport {
    /// The model's content id.
    pub content_id: ContentId,
    /// Its name.
    pub name: String,
    /// Embedding dimension.
    pub dim: usize,
    /// Longest input in tokens.
    pub max_seq_length: usize,
    /// Whether embeddings are L2-normalized.
    pub normalize: bool,
    /// Bundle size.
    pub bytes: u64,
}

impl Report for ModelReport {
    fn text(&self) -> String {
        self.content_id.to_string()
    }

    fn summary(&self) -> Option<String> {
        Some(format!(
            "text model {}: dimension {}, up to {} tokens, {}",
            self.name,
            self.dim,
            self.max_seq_length,
            human_bytes(self.bytes)
        ))
    }
}

/// Stores a text model directory as one content.
pub fn add_model(dir: &DataDir, model_dir: &std::path::Path) -> Result<ModelReport, NodeError> {
    let store = open_store(dir)?;
    let (content_id, settings, dim, bytes) = vectors::add_model(&store, dir.path(), model_dir)?;
    Ok(ModelReport {
        content_id,
        name: settings.name,
        dim,
        max_seq_length: settings.max_seq_length,
        normalize: settings.normalize,
        bytes,
    })
}

/// `vectors embed`: the vectors, or where they were written.
#[derive(Debug, Serialize)]
pub struct EmbedReport {
    /// Embedding dimension.
    pub dim: usize,
    /// The vectors, when printed.
    pub vectors: Vec<Vec<f32>>,
    /// The .npy file written, if any.
    pub out: Option<PathBuf>,
    /// How many vectors.
    pub count: usize,
}

impl Report for EmbedReport {
    fn text(&self) -> String {
        self.vectors
            .iter()
            .map(|row| serde_json::to_string(row).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn summary(&self) -> Option<String> {
        self.out.as_ref().map(|path| {
            format!(
                "{} vectors of dimension {} written to {}",
                self.count,
                self.dim,
                path.display()
            )
        })
    }
}

/// Embeds texts (or a file's lines) with a model; writes a .npy file when `out` is given.
pub async fn embed(
    dir: &DataDir,
    model: &str,
    texts: Vec<String>,
    text_file: Option<PathBuf>,
    out: Option<PathBuf>,
    peers: &[String],
) -> Result<EmbedReport, NodeError> {
    let store = ChunkStore::open(dir.path())?;
    let mut page_peers = page_peers(dir, peers)?;
    let embedder = vectors::open_model(
        &store,
        &parse_content(model)?,
        &mut page_peers,
        &mut |_, _| {},
    )
    .await;
    page_peers.pay().await;
    let embedder = embedder?;
    let lines = match text_file {
        Some(path) => vectors::text_lines(&path)?,
        None => texts
            .into_iter()
            .enumerate()
            .map(|(i, t)| (i as u64, t))
            .collect(),
    };
    let vectors = vectors::embed_texts(&embedder, &lines, &mut |_, _| {})?;
    let dim = vectors.dim;
    let count = vectors.len();
    let rows = match &out {
        Some(path) => {
            let bytes = vector_store::input::to_npy(vectors.dim, &vectors.data);
            std::fs::write(path, bytes).map_err(|e| NodeError::Io {
                action: "cannot write",
                path: path.clone(),
                reason: e.to_string(),
            })?;
            Vec::new()
        }
        None => vectors
            .data
            .chunks_exact(dim.max(1))
            .map(<[f32]>::to_vec)
            .collect(),
    };
    Ok(EmbedReport {
        dim,
        vectors: rows,
        out,
        count,
    })
}

/// Inserts and deletes vectors of a locally held index; reports the new index.
pub async fn update(
    dir: &DataDir,
    index: &str,
    insert: Option<PathBuf>,
    delete: &[u64],
) -> Result<BuildOutcome, NodeError> {
    dir.key()?;
    if insert.is_none() && delete.is_empty() {
        return Err(NodeError::Usage(
            "nothing to do: give --insert FILE and/or --delete IDS".into(),
        ));
    }
    let content = parse_content(index)?;
    let store = ChunkStore::open(dir.path())?;
    let mut no_peers = page_peers(dir, &[])?;
    let manifest = vectors::open_index(&store, &content, &mut no_peers).await?;
    let insert = match insert {
        Some(path) => {
            let bytes = std::fs::read(&path).map_err(|e| NodeError::InputFile {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            Some(
                vector_store::input::parse(&bytes)
                    .map_err(|e| NodeError::Usage(format!("{}: {e}", path.display())))?,
            )
        }
        None => None,
    };
    let report = vectors::update(&store, &manifest, insert, delete)?;
    Ok(BuildOutcome {
        report,
        metric: None,
        vectors_before: Some(manifest.count),
        texts_content_id: None,
    })
}

/// What `vectors query` was asked (its command line).
#[derive(Debug, Clone, clap::Args)]
pub struct QueryRequest {
    /// The index's content id (printed by `vectors build`).
    pub index: String,
    /// The query vector: comma- or space-separated numbers, or a JSON array.
    #[arg(
        long,
        value_name = "VALUES",
        allow_hyphen_values = true,
        required_unless_present_any = ["vector_file", "text"],
        conflicts_with_all = ["vector_file", "text"]
    )]
    pub vector: Option<String>,
    /// Read the query vector from a file (same formats as --vector).
    #[arg(long, value_name = "FILE", conflicts_with = "text")]
    pub vector_file: Option<PathBuf>,
    /// Query with text, embedded by --model (the model the index was built with).
    #[arg(long, value_name = "TEXT", requires = "model")]
    pub text: Option<String>,
    /// The text model's content id, for --text.
    #[arg(long, value_name = "ID")]
    pub model: Option<String>,
    /// Show each result's line from this text file (the one given to build --text-file).
    #[arg(long, value_name = "FILE")]
    pub lines: Option<PathBuf>,
    /// Results per page.
    #[arg(short, long, default_value_t = 10)]
    pub k: usize,
    /// Lists searched first (default: 1/10 of the lists); the search widens by as many
    /// when later pages need more.
    #[arg(long, value_name = "N")]
    pub nprobe: Option<usize>,
    /// With sq8 indexes: candidates re-ranked per result with exact vectors.
    #[arg(long, default_value_t = vector_store::DEFAULT_RERANK, value_name = "N")]
    pub rerank: usize,
    /// Continue from the cursor a previous page printed (same vector, k and nprobe).
    #[arg(long)]
    pub cursor: Option<String>,
    /// A peer to fetch missing pages from (repeatable).
    #[arg(long = "peer", value_name = "URL")]
    pub peers: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// One result.
#[derive(Debug, Serialize)]
pub struct Hit {
    /// The vector's id.
    pub id: u64,
    /// Its distance to the query.
    pub distance: f32,
    /// Its line, when `--lines` was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// `vectors query`: one page of results.
#[derive(Debug, Serialize)]
pub struct QueryReport {
    /// Page number (0 first).
    pub page: u32,
    /// The results, nearest first.
    pub hits: Vec<Hit>,
    /// The cursor of the next page, if there is one.
    pub next_cursor: Option<String>,
    /// Lists searched.
    pub lists_probed: usize,
    /// Lists searched first.
    pub nprobe: usize,
    /// Where the pages came from.
    pub stats: QueryStats,
    /// Receipts the seeders accepted for the pages fetched.
    pub receipts_accepted: u64,
    /// Results per page.
    #[serde(skip)]
    pub k: usize,
    /// Whether results have lines to show.
    #[serde(skip)]
    pub labelled: bool,
}

impl Report for QueryReport {
    fn text(&self) -> String {
        let mut lines = vec![format!("{:>5}  {:>12}  {:>12}", "rank", "id", "distance")];
        let first = self.page as usize * self.k;
        for (i, hit) in self.hits.iter().enumerate() {
            let label = if self.labelled {
                format!("  {}", hit.text.as_deref().unwrap_or(""))
            } else {
                String::new()
            };
            lines.push(format!(
                "{:>5}  {:>12}  {:>12.6}{label}",
                first + i + 1,
                hit.id,
                hit.distance
            ));
        }
        lines.push(match &self.next_cursor {
            Some(c) => format!("next page: --cursor {c}"),
            None => "no more results".into(),
        });
        lines.join("\n")
    }

    fn summary(&self) -> Option<String> {
        let s = &self.stats;
        Some(format!(
            "searched {} lists; pages: {} local, {} fetched from peers; {} of pages used ({:.2}% of the index)",
            self.lists_probed,
            s.pages_local,
            s.pages_fetched,
            human_bytes(s.page_bytes),
            s.page_bytes as f64 * 100.0 / s.index_page_bytes.max(1) as f64
        ))
    }
}

/// Runs one page of a query: pages from the local store, else from peers (paid).
pub async fn query(dir: &DataDir, request: QueryRequest) -> Result<QueryReport, NodeError> {
    dir.key()?;
    let content = parse_content(&request.index)?;
    let cursor = request
        .cursor
        .map(|c| c.parse::<vector_store::Cursor>())
        .transpose()?;
    let labels: Option<HashMap<u64, String>> = request
        .lines
        .as_deref()
        .map(vectors::text_lines)
        .transpose()?
        .map(|l| l.into_iter().collect());
    let store = ChunkStore::open(dir.path())?;
    let mut peers = page_peers(dir, &request.peers)?;
    let query = match (
        request.vector,
        request.vector_file,
        request.text,
        request.model,
    ) {
        (_, _, Some(text), Some(model)) => {
            let embedder =
                vectors::open_model(&store, &parse_content(&model)?, &mut peers, &mut |_, _| {})
                    .await?;
            embedder.embed(&text)?
        }
        (Some(v), _, _, _) => vector_store::input::parse_query(&v)?,
        (None, Some(path), _, _) => {
            let text = std::fs::read_to_string(&path).map_err(|e| NodeError::InputFile {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            vector_store::input::parse_query(&text)?
        }
        _ => {
            return Err(NodeError::Usage(
                "give --vector, --vector-file, or --text with --model".into(),
            ));
        }
    };
    let manifest = vectors::open_index(&store, &content, &mut peers).await?;
    let mut options = vector_store::SearchOptions::for_index(&manifest);
    options.k = request.k;
    options.rerank = request.rerank;
    if let Some(n) = request.nprobe {
        options.nprobe = n;
    }
    let result = vectors::query(
        &store,
        manifest,
        &mut peers,
        &query,
        &options,
        cursor.as_ref(),
    )
    .await;
    let paid = peers.pay().await;
    let (page, stats) = result?;
    Ok(QueryReport {
        page: page.page,
        hits: page
            .hits
            .iter()
            .map(|h| Hit {
                id: h.id,
                distance: h.distance,
                text: labels.as_ref().and_then(|l| l.get(&h.id)).cloned(),
            })
            .collect(),
        next_cursor: page.next.map(|c| c.to_string()),
        lists_probed: page.lists_probed,
        nprobe: options.nprobe,
        stats,
        receipts_accepted: paid.accepted,
        k: options.k,
        labelled: labels.is_some(),
    })
}
