//! `node-lite`: the command-line front end of a light DSI storage node. Parses arguments,
//! sets up logging, and calls the `node_lite` library.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dsi_protocol::manifest::DEFAULT_CHUNK_SIZE;
use dsi_protocol::{ContentId, Epoch};
use node_lite::config::VerifyMode;
use node_lite::download::{DownloadOptions, Downloader};
use node_lite::error::exit_code_of;
use node_lite::peers::{PeerSource, StaticPeers, parse_peer_url};
use node_lite::receipts::ReceiptStore;
use node_lite::server::{self, NodeState};
use node_lite::size::{human_bytes, parse_duration, parse_size};
use node_lite::store::ChunkStore;
use node_lite::tracker::TrackerClient;
use node_lite::{DataDir, NodeError};
use tokio_util::sync::CancellationToken;

const AFTER_HELP: &str = "\
Exit codes: 0 success, 1 unexpected failure, 2 bad input, 3 unknown content or missing file,
4 integrity failure (manifest mismatch, corrupt chunks), 5 download incomplete,
6 data directory unusable or not initialized, 130 interrupted.

Logging: DSI_LOG or RUST_LOG (for example DSI_LOG=debug). Config: DATA_DIR/config.toml and
DSI_* environment variables (DSI_NETWORK, DSI_SERVE__LISTEN, ...).";

/// A light DSI storage node: store chunks, serve them, download from the swarm, and deal in
/// signed seeding receipts.
#[derive(Parser, Debug)]
#[command(name = "node-lite", version, after_help = AFTER_HELP, propagate_version = true)]
struct Cli {
    /// The node's data directory (key, config, chunks, receipts). Default:
    /// ~/.local/share/dsi/node-lite.
    #[arg(long, global = true, env = "DSI_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create the data directory with a new node key (mode 0600) and a commented config
    /// file. Safe to run again: an existing key is never replaced.
    Init,
    /// Print this node's id (its ed25519 public key).
    Id,
    /// Split a file into chunks, store them content-addressed, and print its content id.
    /// Chunks already stored are not written again.
    Add {
        /// The file to add.
        file: PathBuf,
        /// Chunk size: a power of two from 16KiB to 4MiB (suffixes KiB, MiB accepted).
        #[arg(long, default_value_t = DEFAULT_CHUNK_SIZE.to_string(), value_parser = parse_chunk_size)]
        chunk_size: String,
        /// Name recorded in the manifest (default: the file's name).
        #[arg(long)]
        name: Option<String>,
    },
    /// List the content this node holds.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Serve held chunks over HTTP and collect receipts until Ctrl-C.
    Serve {
        /// Address to listen on (default from config: 127.0.0.1:7070). Port 0 picks a free
        /// port; the address is printed on the first line of output.
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// How chunks are checked before serving.
        #[arg(long, value_enum)]
        verify: Option<VerifyMode>,
        /// Refuse downloaders owing more receipts than this (0: never refuse).
        #[arg(long, value_name = "N")]
        max_owed_receipts: Option<u32>,
        /// Upload cap, bytes per second across all downloaders (suffixes accepted: 8MiB).
        #[arg(long, value_name = "RATE", value_parser = parse_size)]
        max_upload_rate: Option<u64>,
        /// The oracle to announce to and forward receipts to, e.g. http://127.0.0.1:7400
        /// (default from config `[tracker] url`).
        #[arg(long, value_name = "URL")]
        tracker: Option<String>,
        /// Where this node's rewards go: an H160 account, 0x + 40 hex digits (default from
        /// config `[tracker] payout`). Required with a tracker.
        #[arg(long, value_name = "ACCOUNT")]
        payout: Option<String>,
        /// The URL other nodes reach this node at (default: http://<listen address>).
        #[arg(long, value_name = "URL")]
        public_url: Option<String>,
        /// Serve the static files of DIR at / (the vector search page: `scripts/build-web`
        /// writes it to target/vector-web/www).
        #[arg(long, value_name = "DIR")]
        web: Option<PathBuf>,
    },
    /// Download content from peers, verifying every chunk and signing receipts for the
    /// seeders. An interrupted download resumes when run again.
    Get {
        /// The content id to fetch.
        content_id: String,
        /// A peer's base URL, e.g. http://127.0.0.1:7070 (repeat for more peers).
        #[arg(long = "peer", value_name = "URL", required_unless_present = "tracker")]
        peers: Vec<String>,
        /// Ask the oracle's tracker at URL which peers hold the content (in addition to
        /// any --peer).
        #[arg(long, value_name = "URL")]
        tracker: Option<String>,
        /// Where to write the content.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Overwrite OUT if it exists and holds something else.
        #[arg(long)]
        force: bool,
        /// Chunk requests in flight per peer (default from config: 4).
        #[arg(long, value_name = "N")]
        concurrency: Option<usize>,
        /// Drop a peer that sends nothing for this long (default from config: 10s).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        stall_timeout: Option<Duration>,
        /// Skip the final SHA-256 of the output (every chunk is still BLAKE3-verified
        /// against the manifest; the digest is only for comparing with a published checksum).
        #[arg(long)]
        no_sha256: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the seeding receipts this node holds (as a seeder).
    Receipts {
        /// Only this epoch.
        #[arg(long)]
        epoch: Option<Epoch>,
        /// Print JSON (one object per receipt, with signature).
        #[arg(long)]
        json: bool,
    },
    /// Hash every stored chunk, quarantine corrupt ones, and report missing chunks.
    /// With --repair, fetch missing chunks from peers.
    Verify {
        /// Fetch missing and quarantined chunks from these peers (requires --peer).
        #[arg(long, requires = "peers")]
        repair: bool,
        /// A peer's base URL (repeatable).
        #[arg(long = "peer", value_name = "URL")]
        peers: Vec<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Vector indexes whose pages are swarm chunks: build one from a file, query one.
    Vectors {
        #[command(subcommand)]
        command: VectorsCommand,
    },
}

#[derive(Subcommand, Debug)]
enum VectorsCommand {
    /// Build an index from INPUT and store it as swarm content (every page a chunk, the index
    /// manifest a content); prints the index's content id. Serve it with `node-lite serve`.
    #[command(after_help = "\
INPUT formats:
  .npy   a 2-D array (n x dim) of float32 or float64 in C order (numpy.save); ids = row numbers
  JSON   [[0.1, 0.2], ...]  or  {\"ids\": [10, 11], \"vectors\": [[...], [...]]}
         or  [{\"id\": 10, \"vector\": [...]}, ...]
  text   --text-file FILE --model ID: every non-empty line is embedded with the text model
         (see add-model); a line's id is its 0-based line number
The same input and options always give the same content id.")]
    Build {
        /// The vectors (.npy or JSON, see below).
        #[arg(required_unless_present = "text_file", conflicts_with = "text_file")]
        input: Option<PathBuf>,
        /// Index the lines of a text file instead, embedded with --model.
        #[arg(long, value_name = "FILE", requires = "model")]
        text_file: Option<PathBuf>,
        /// The text model's content id (printed by `vectors add-model`).
        #[arg(long, value_name = "ID")]
        model: Option<String>,
        /// A peer to fetch the text model from if it is not stored here (repeatable).
        #[arg(long = "peer", value_name = "URL")]
        peers: Vec<String>,
        /// Distance: cosine (vectors are normalized) or l2 (squared Euclidean).
        #[arg(long, default_value = "cosine", value_parser = parse_metric)]
        metric: vector_store::Metric,
        /// Also store 8-bit quantized codes per list: queries fetch a quarter of the bytes
        /// and re-rank the best candidates with the exact vectors.
        #[arg(long)]
        sq8: bool,
        /// Number of lists (pages); default about 4 x sqrt(number of vectors).
        #[arg(long, value_name = "N")]
        lists: Option<usize>,
        /// k-means iterations.
        #[arg(long, default_value_t = 10, value_name = "N")]
        iterations: usize,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Store a text model as swarm content (one `model.dsiemb` bundle) and print its content
    /// id. DIR is a sentence-transformers BERT model with mean pooling, such as
    /// all-MiniLM-L6-v2 (`scripts/setup --model` unpacks it into target/models/).
    AddModel {
        /// The model directory (config.json, vocab.txt, model.safetensors, ...).
        dir: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Embed text with a text model: prints the vector as JSON (one per line for several),
    /// or writes all of them to a .npy file for `vectors build`.
    Embed {
        /// The text model's content id (printed by `vectors add-model`).
        #[arg(long, value_name = "ID")]
        model: String,
        /// A text to embed (repeatable).
        #[arg(long, value_name = "TEXT", required_unless_present = "text_file")]
        text: Vec<String>,
        /// Embed every non-empty line of a file.
        #[arg(long, value_name = "FILE", conflicts_with = "text")]
        text_file: Option<PathBuf>,
        /// Write the vectors to this .npy file (n x dim float32) instead of printing them.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// A peer to fetch the model from if it is not stored here (repeatable).
        #[arg(long = "peer", value_name = "URL")]
        peers: Vec<String>,
    },
    /// Insert and delete vectors: writes new pages for the lists that change and a new index
    /// manifest, and prints the new index's content id. The old index stays valid. Needs
    /// every page of the index in the local store (the node that built it has them).
    Update {
        /// The index's content id.
        index: String,
        /// Vectors to add (.npy or JSON as for build); without ids they get ids after the
        /// largest id in the index.
        #[arg(long, value_name = "FILE")]
        insert: Option<PathBuf>,
        /// Ids of vectors to remove, comma-separated.
        #[arg(long, value_name = "IDS", value_delimiter = ',')]
        delete: Vec<u64>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Query an index: the k nearest vectors, one page of results at a time. Pages come from
    /// the local store, else from --peer (verified, kept locally, paid with receipts).
    Query {
        /// The index's content id (printed by `vectors build`).
        index: String,
        /// The query vector: comma- or space-separated numbers, or a JSON array.
        #[arg(
            long,
            value_name = "VALUES",
            allow_hyphen_values = true,
            required_unless_present_any = ["vector_file", "text"],
            conflicts_with_all = ["vector_file", "text"]
        )]
        vector: Option<String>,
        /// Read the query vector from a file (same formats as --vector).
        #[arg(long, value_name = "FILE", conflicts_with = "text")]
        vector_file: Option<PathBuf>,
        /// Query with text, embedded by --model (the model the index was built with).
        #[arg(long, value_name = "TEXT", requires = "model")]
        text: Option<String>,
        /// The text model's content id, for --text.
        #[arg(long, value_name = "ID")]
        model: Option<String>,
        /// Show each result's line from this text file (the one given to build --text-file).
        #[arg(long, value_name = "FILE")]
        lines: Option<PathBuf>,
        /// Results per page.
        #[arg(short, long, default_value_t = 10)]
        k: usize,
        /// Lists searched first (default: 1/10 of the lists); the search widens by as many
        /// when later pages need more.
        #[arg(long, value_name = "N")]
        nprobe: Option<usize>,
        /// With sq8 indexes: candidates re-ranked per result with exact vectors.
        #[arg(long, default_value_t = vector_store::DEFAULT_RERANK, value_name = "N")]
        rerank: usize,
        /// Continue from the cursor a previous page printed (same vector, k and nprobe).
        #[arg(long)]
        cursor: Option<String>,
        /// A peer to fetch missing pages from (repeatable).
        #[arg(long = "peer", value_name = "URL")]
        peers: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Peers to fetch vector pages and models from, paid with this node's key.
fn page_peers(dir: &DataDir, peers: &[String]) -> Result<node_lite::vectors::PagePeers, NodeError> {
    let urls = peers
        .iter()
        .map(|p| parse_peer_url(p))
        .collect::<Result<Vec<_>, _>>()?;
    let config = dir.config()?;
    Ok(node_lite::vectors::PagePeers::new(
        urls,
        dir.key()?,
        config.network,
        config.epochs,
    ))
}

fn parse_metric(text: &str) -> Result<vector_store::Metric, String> {
    text.parse()
        .map_err(|e: vector_store::VectorError| e.to_string())
}

fn parse_chunk_size(text: &str) -> Result<String, String> {
    let size = parse_size(text)?;
    let size = u32::try_from(size).map_err(|_| format!("{text} is larger than 4MiB"))?;
    dsi_protocol::manifest::validate_chunk_size(size).map_err(|e| e.to_string())?;
    Ok(size.to_string())
}

fn main() {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Serve { .. }) {
        "info"
    } else {
        "warn"
    };
    let filter = std::env::var("DSI_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| format!("{default_level},sqlx=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match runtime.block_on(run(cli)) {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("error: {error:#}");
            exit_code_of(&error)
        }
    };
    std::process::exit(code);
}

/// Cancels the token on Ctrl-C or SIGTERM.
fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { if let Some(term) = term.as_mut() { term.recv().await; } else { std::future::pending::<()>().await } } => {}
        }
        trigger.cancel();
    });
    token
}

fn parse_content(text: &str) -> Result<ContentId, NodeError> {
    text.parse()
        .map_err(|e| NodeError::Usage(format!("bad content id {text:?}: {e}")))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let dir = DataDir::new(cli.data_dir.unwrap_or_else(DataDir::default_path));
    match cli.command {
        Command::Init => {
            let outcome = dir.init()?;
            let verb = if outcome.created {
                "initialized"
            } else {
                "already initialized"
            };
            println!("{verb} {}", dir.path().display());
            println!("node id {}", outcome.key.node_id());
        }
        Command::Id => println!("{}", dir.key()?.node_id()),
        Command::Add {
            file,
            chunk_size,
            name,
        } => add(&dir, &file, &chunk_size, name)?,
        Command::List { json } => list(&dir, json)?,
        Command::Serve {
            listen,
            verify,
            max_owed_receipts,
            max_upload_rate,
            tracker,
            payout,
            public_url,
            web,
        } => {
            let mut config = dir.config()?;
            if let Some(web) = web {
                if !web.join("index.html").is_file() {
                    return Err(NodeError::Usage(format!(
                        "--web {}: no index.html there (build the page with scripts/build-web)",
                        web.display()
                    ))
                    .into());
                }
                config.serve.web = web.to_string_lossy().into_owned();
            }
            if let Some(tracker) = tracker {
                config.tracker.url = tracker;
            }
            if let Some(payout) = payout {
                config.tracker.payout = payout;
            }
            if let Some(public_url) = public_url {
                config.tracker.public_url = public_url;
            }
            if let Some(listen) = listen {
                config.serve.listen = listen;
            }
            if let Some(verify) = verify {
                config.serve.verify = verify;
            }
            if let Some(max) = max_owed_receipts {
                config.serve.max_owed_receipts = max;
            }
            if let Some(rate) = max_upload_rate {
                config.serve.max_upload_bytes_per_sec = rate;
            }
            serve(&dir, config).await?;
        }
        Command::Get {
            content_id,
            peers,
            tracker,
            out,
            force,
            concurrency,
            stall_timeout,
            no_sha256,
            json,
        } => {
            let content = parse_content(&content_id)?;
            let peers = peers
                .iter()
                .map(|p| parse_peer_url(p))
                .collect::<Result<Vec<_>, _>>()?;
            let key = dir.key()?;
            let config = dir.config()?;
            let tracker = tracker
                .or_else(|| Some(config.tracker.url.clone()).filter(|u| !u.is_empty()))
                .map(|url| TrackerClient::new(&url))
                .transpose()?;
            let mut options = DownloadOptions::from_config(&config.download);
            options.force = force;
            options.sha256 = !no_sha256;
            options.progress = std::io::stderr().is_terminal() && !json;
            if let Some(n) = concurrency {
                options.per_peer_concurrency = n.max(1);
            }
            if let Some(stall) = stall_timeout {
                options.stall_timeout = stall;
            }
            let downloader = Downloader::new(key, config.network, config.epochs, options);
            let token = shutdown_token();
            let report = downloader
                .download(
                    &content,
                    &CliPeers {
                        fixed: StaticPeers(peers),
                        tracker,
                    },
                    &out,
                    &token,
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                let secs = (report.elapsed_ms as f64 / 1000.0).max(0.001);
                println!(
                    "downloaded {} ({}) to {}",
                    report.name,
                    human_bytes(report.size),
                    report.out.display()
                );
                println!("content  {}", report.content_id);
                println!(
                    "chunks   {} fetched, {} resumed, of {}",
                    report.chunks_fetched, report.chunks_resumed, report.chunks_total
                );
                println!(
                    "speed    {}/s over {secs:.2}s",
                    human_bytes((report.bytes_fetched as f64 / secs) as u64)
                );
                for peer in &report.peers {
                    let state = peer
                        .dropped
                        .as_deref()
                        .map_or(String::new(), |d| format!("  dropped: {d}"));
                    println!(
                        "peer     {}  {} chunks, {}, receipts {}/{} accepted{state}",
                        peer.url,
                        peer.chunks,
                        human_bytes(peer.bytes),
                        peer.receipts_accepted,
                        peer.receipts_sent
                    );
                }
                if let Some(sha256) = &report.sha256 {
                    println!("{sha256}  {}", report.out.display());
                }
            }
        }
        Command::Receipts { epoch, json } => receipts(&dir, epoch, json).await?,
        Command::Verify {
            repair,
            peers,
            json,
        } => verify(&dir, repair, &peers, json).await?,
        Command::Vectors { command } => vectors(&dir, command).await?,
    }
    Ok(())
}

fn add(dir: &DataDir, file: &Path, chunk_size: &str, name: Option<String>) -> anyhow::Result<()> {
    dir.key()?;
    let chunk_size: u32 = chunk_size.parse().context("chunk size")?;
    let meta = std::fs::metadata(file).map_err(|e| NodeError::InputFile {
        path: file.to_path_buf(),
        reason: e.to_string(),
    })?;
    if !meta.is_file() {
        return Err(NodeError::InputFile {
            path: file.to_path_buf(),
            reason: "not a regular file".into(),
        }
        .into());
    }
    let name = match name {
        Some(name) => name,
        None => file
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
            .ok_or_else(|| {
                NodeError::Usage(format!(
                    "{} has no usable file name; pass --name",
                    file.display()
                ))
            })?,
    };
    let store = ChunkStore::open(dir.path()).map_err(NodeError::from)?;
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(meta.len())
    } else {
        indicatif::ProgressBar::hidden()
    };
    let report = store
        .add_file(file, &name, chunk_size, &mut |done| bar.set_position(done))
        .map_err(NodeError::from)?;
    bar.finish_and_clear();
    eprintln!(
        "added {} ({}, {} chunks, {} new, {} written)",
        report.manifest.name,
        human_bytes(report.manifest.size),
        report.manifest.chunk_count(),
        report.chunks_new,
        human_bytes(report.bytes_new)
    );
    println!("{}", report.content_id);
    Ok(())
}

fn list(dir: &DataDir, json: bool) -> anyhow::Result<()> {
    dir.check()?;
    let store = ChunkStore::open(dir.path()).map_err(NodeError::from)?;
    let entries = store.list().map_err(NodeError::from)?;
    if json {
        let rows: Vec<serde_json::Value> = entries
            .iter()
            .map(|(id, m)| {
                serde_json::json!({
                    "content_id": id, "name": m.name, "size": m.size,
                    "chunk_size": m.chunk_size, "chunks": m.chunk_count(), "held": store.held(m).count(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if entries.is_empty() {
        eprintln!("no content; add some with `node-lite add FILE`");
    }
    for (id, m) in entries {
        println!(
            "{id}  {:>10}  {}/{} chunks  {}",
            human_bytes(m.size),
            store.held(&m).count(),
            m.chunk_count(),
            m.name
        );
    }
    Ok(())
}

/// `--peer` URLs plus, when given, the tracker's answer.
struct CliPeers {
    fixed: StaticPeers,
    tracker: Option<TrackerClient>,
}

impl PeerSource for CliPeers {
    async fn peers(&self, content: &ContentId) -> Result<Vec<reqwest::Url>, NodeError> {
        let mut urls = self.fixed.peers(content).await?;
        if let Some(tracker) = &self.tracker {
            for url in tracker.peers(content).await? {
                if !urls.contains(&url) {
                    urls.push(url);
                }
            }
        }
        Ok(urls)
    }
}

async fn serve(dir: &DataDir, config: node_lite::Config) -> anyhow::Result<()> {
    let listen = config.serve.listen;
    let tracker = config.tracker.url.clone();
    let payout = if tracker.is_empty() {
        None
    } else if config.tracker.payout.is_empty() {
        return Err(NodeError::Usage(
            "a tracker needs a payout account: --payout 0x<40 hex digits> (or [tracker] payout)"
                .into(),
        )
        .into());
    } else {
        Some(
            config
                .tracker
                .payout
                .parse::<dsi_protocol::PayoutAccount>()
                .map_err(|e| {
                    NodeError::Usage(format!(
                        "bad payout account {:?}: {e}",
                        config.tracker.payout
                    ))
                })?,
        )
    };
    let state = Arc::new(NodeState::open(dir, config).await.map_err(|e| match e {
        server::OpenError::DataDir(e) => anyhow::Error::new(e),
        other => anyhow::Error::new(other),
    })?);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| NodeError::Usage(format!("cannot listen on {listen}: {e}")))?;
    let address = listener.local_addr().context("reading the bound address")?;
    if !address.ip().is_loopback() {
        tracing::warn!(%address, "listening beyond loopback, as configured");
    }
    println!("node-lite {} listening on http://{address}", state.node_id);
    tracing::info!(node = %state.node_id.short(), %address, verify = ?state.config.serve.verify, "serving");
    let token = shutdown_token();
    let tracker_task = if tracker.is_empty() {
        None
    } else {
        let client = TrackerClient::new(&tracker)?;
        let public_url = if state.config.tracker.public_url.is_empty() {
            format!("http://{address}")
        } else {
            state.config.tracker.public_url.clone()
        };
        tracing::info!(%tracker, %public_url, "announcing to the tracker");
        Some(tokio::spawn(node_lite::tracker::run(
            state.clone(),
            client,
            public_url,
            payout.unwrap_or_default(),
            token.clone(),
        )))
    };
    server::serve(listener, state.clone(), token.clone())
        .await
        .context("serving HTTP")?;
    token.cancel();
    if let Some(task) = tracker_task {
        let _ = task.await;
    }
    state.receipts.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn receipts(dir: &DataDir, epoch: Option<Epoch>, json: bool) -> anyhow::Result<()> {
    dir.key()?;
    let store = ReceiptStore::open(&dir.receipts_db())
        .await
        .context("opening the receipt database")?;
    let held = store.list(epoch).await.context("reading receipts")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&held)?);
        return Ok(());
    }
    let mut total = 0u64;
    for h in &held {
        let r = &h.receipt.receipt;
        total += u64::from(r.bytes);
        println!(
            "epoch {:>6}  downloader {}  chunk {}  {:>9} bytes  issued {}",
            r.epoch,
            r.downloader.short(),
            r.chunk.short(),
            r.bytes,
            r.issued_at_ms
        );
    }
    println!("{} receipt(s), {} served", held.len(), human_bytes(total));
    Ok(())
}

async fn verify(dir: &DataDir, repair: bool, peers: &[String], json: bool) -> anyhow::Result<()> {
    let key = dir.key()?;
    let store = ChunkStore::open(dir.path()).map_err(NodeError::from)?;
    let peers = peers
        .iter()
        .map(|p| parse_peer_url(p))
        .collect::<Result<Vec<_>, _>>()?;
    let scan_store = store.clone();
    let report = tokio::task::spawn_blocking(move || scan_store.verify_all(&mut |_| {}))
        .await
        .context("verification task")?
        .map_err(NodeError::from)?;
    let mut still_missing = report.missing.clone();
    if repair && !report.missing.is_empty() {
        let config = dir.config()?;
        let downloader = Downloader::new(
            key,
            config.network,
            config.epochs,
            DownloadOptions::from_config(&config.download),
        );
        let token = shutdown_token();
        let source = StaticPeers(peers);
        still_missing.clear();
        for (content, _) in &report.missing {
            match downloader.repair(&store, content, &source, &token).await {
                Ok((fetched, _)) => eprintln!("repaired {content}: fetched {fetched} chunk(s)"),
                Err(e) => {
                    eprintln!("could not repair {content}: {e}");
                    if let Some(m) = store.manifest(content).map_err(NodeError::from)? {
                        let held = store.held(&m);
                        still_missing.push((
                            *content,
                            (0..held.len()).filter(|i| !held.get(*i)).collect(),
                        ));
                    }
                }
            }
        }
    }
    if json {
        println!(
            "{}",
            serde_json::json!({
                "chunks_checked": report.chunks_checked, "bytes_checked": report.bytes_checked,
                "corrupt": report.corrupt, "missing": still_missing.iter().map(|(c, m)| serde_json::json!({"content_id": c, "chunks": m})).collect::<Vec<_>>(),
            })
        );
    } else {
        println!(
            "checked {} chunks ({})",
            report.chunks_checked,
            human_bytes(report.bytes_checked)
        );
        for id in &report.corrupt {
            println!("corrupt {id} (quarantined)");
        }
        for (content, chunks) in &still_missing {
            println!("missing {} chunk(s) of {content}", chunks.len());
        }
    }
    if !still_missing.is_empty() {
        return Err(NodeError::CorruptChunks {
            count: still_missing.iter().map(|(_, c)| c.len()).sum(),
        }
        .into());
    }
    if !report.corrupt.is_empty() && !repair {
        return Err(NodeError::CorruptChunks {
            count: report.corrupt.len(),
        }
        .into());
    }
    Ok(())
}

async fn vectors(dir: &DataDir, command: VectorsCommand) -> anyhow::Result<()> {
    use node_lite::vectors;
    match command {
        VectorsCommand::Build {
            input,
            text_file,
            model,
            peers,
            metric,
            sq8,
            lists,
            iterations,
            json,
        } => {
            dir.key()?;
            let store = ChunkStore::open(dir.path()).map_err(NodeError::from)?;
            let options = vector_store::BuildOptions {
                metric,
                encoding: if sq8 {
                    vector_store::Encoding::Sq8
                } else {
                    vector_store::Encoding::F32
                },
                lists,
                iterations,
                ..vector_store::BuildOptions::default()
            };
            let bar = if std::io::stderr().is_terminal() {
                indicatif::ProgressBar::new(0)
            } else {
                indicatif::ProgressBar::hidden()
            };
            bar.set_style(
                indicatif::ProgressStyle::with_template("{msg:>14} [{bar:30}] {pos}/{len}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let mut progress = |stage: &str, done: usize, total: usize| {
                bar.set_message(stage.to_string());
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            };
            let (report, texts) = match (input, text_file, model) {
                (_, Some(path), Some(model)) => {
                    let mut page_peers = page_peers(dir, &peers)?;
                    let lines = vectors::text_lines(&path)?;
                    let embedder = vectors::open_model(
                        &store,
                        &parse_content(&model)?,
                        &mut page_peers,
                        &mut |done, total| progress("fetching model", done, total),
                    )
                    .await;
                    page_peers.pay().await;
                    let embedder = embedder?;
                    let vectors = vectors::embed_texts(&embedder, &lines, &mut |done, total| {
                        progress("embedding", done, total)
                    })?;
                    let report = vectors::build_vectors(
                        &store,
                        &vectors,
                        &path.display().to_string(),
                        &options,
                        &mut progress,
                    )?;
                    // The lines themselves, so readers can show what matched.
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .filter(|n| dsi_protocol::manifest::validate_name(n).is_ok())
                        .unwrap_or_else(|| "texts.txt".into());
                    let texts = store
                        .add_file(
                            &path,
                            &name,
                            dsi_protocol::manifest::DEFAULT_CHUNK_SIZE,
                            &mut |_| {},
                        )
                        .map_err(NodeError::from)?;
                    (report, Some(texts.content_id))
                }
                (Some(input), _, _) => (
                    vectors::build(&store, &input, &options, &mut progress)?,
                    None,
                ),
                _ => {
                    return Err(NodeError::Usage(
                        "give INPUT, or --text-file FILE with --model ID".into(),
                    )
                    .into());
                }
            };
            bar.finish_and_clear();
            if json {
                let mut out = serde_json::to_value(&report)?;
                if let Some(texts) = texts {
                    out["texts_content_id"] = serde_json::json!(texts.to_string());
                }
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                eprintln!(
                    "indexed {} vectors of dimension {} ({}): {} lists, {} pages ({} new), {}",
                    report.vectors,
                    report.dim,
                    metric,
                    report.lists,
                    report.pages,
                    report.pages_new,
                    human_bytes(report.page_bytes)
                );
                if let Some(texts) = texts {
                    eprintln!("the lines are content {texts} (give it to the page to show them)");
                }
                println!("{}", report.content_id);
            }
        }
        VectorsCommand::AddModel {
            dir: model_dir,
            json,
        } => {
            dir.key()?;
            let store = ChunkStore::open(dir.path()).map_err(NodeError::from)?;
            let (content, settings, dim, bytes) =
                vectors::add_model(&store, dir.path(), &model_dir)?;
            if json {
                let out = serde_json::json!({
                    "content_id": content.to_string(),
                    "name": settings.name,
                    "dim": dim,
                    "max_seq_length": settings.max_seq_length,
                    "normalize": settings.normalize,
                    "bytes": bytes,
                });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                eprintln!(
                    "text model {}: dimension {dim}, up to {} tokens, {}",
                    settings.name,
                    settings.max_seq_length,
                    human_bytes(bytes)
                );
                println!("{content}");
            }
        }
        VectorsCommand::Embed {
            model,
            text,
            text_file,
            out,
            peers,
        } => {
            let store = ChunkStore::open(dir.path()).map_err(NodeError::from)?;
            let mut page_peers = page_peers(dir, &peers)?;
            let embedder = vectors::open_model(
                &store,
                &parse_content(&model)?,
                &mut page_peers,
                &mut |_, _| {},
            )
            .await;
            page_peers.pay().await;
            let embedder = embedder?;
            let lines = match text_file {
                Some(path) => vectors::text_lines(&path)?,
                None => text
                    .into_iter()
                    .enumerate()
                    .map(|(i, t)| (i as u64, t))
                    .collect(),
            };
            let vectors = vectors::embed_texts(&embedder, &lines, &mut |_, _| {})?;
            match out {
                Some(path) => {
                    let bytes = vector_store::input::to_npy(vectors.dim, &vectors.data);
                    std::fs::write(&path, bytes).map_err(|e| NodeError::Io {
                        action: "cannot write",
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                    eprintln!(
                        "{} vectors of dimension {} written to {}",
                        vectors.len(),
                        vectors.dim,
                        path.display()
                    );
                }
                None => {
                    for row in vectors.data.chunks_exact(vectors.dim.max(1)) {
                        println!("{}", serde_json::to_string(row)?);
                    }
                }
            }
        }
        VectorsCommand::Update {
            index,
            insert,
            delete,
            json,
        } => {
            dir.key()?;
            if insert.is_none() && delete.is_empty() {
                return Err(NodeError::Usage(
                    "nothing to do: give --insert FILE and/or --delete IDS".into(),
                )
                .into());
            }
            let content = parse_content(&index)?;
            let store = ChunkStore::open(dir.path()).map_err(NodeError::from)?;
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
            let report = vectors::update(&store, &manifest, insert, &delete)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                eprintln!(
                    "{} vectors now ({} before); {} of {} pages are new",
                    report.vectors, manifest.count, report.pages_new, report.pages
                );
                println!("{}", report.content_id);
            }
        }
        VectorsCommand::Query {
            index,
            vector,
            vector_file,
            text,
            model,
            lines,
            k,
            nprobe,
            rerank,
            cursor,
            peers,
            json,
        } => {
            dir.key()?;
            let content = parse_content(&index)?;
            let cursor = cursor
                .map(|c| c.parse::<vector_store::Cursor>())
                .transpose()
                .map_err(NodeError::from)?;
            let labels = lines
                .as_deref()
                .map(vectors::text_lines)
                .transpose()?
                .map(|l| {
                    l.into_iter()
                        .collect::<std::collections::HashMap<u64, String>>()
                });
            let store = ChunkStore::open(dir.path()).map_err(NodeError::from)?;
            let mut page_peers = page_peers(dir, &peers)?;
            let query = match (vector, vector_file, text, model) {
                (_, _, Some(text), Some(model)) => {
                    let embedder = vectors::open_model(
                        &store,
                        &parse_content(&model)?,
                        &mut page_peers,
                        &mut |_, _| {},
                    )
                    .await?;
                    embedder.embed(&text).map_err(NodeError::from)?
                }
                (Some(v), _, _, _) => {
                    vector_store::input::parse_query(&v).map_err(NodeError::from)?
                }
                (None, Some(path), _, _) => {
                    let text =
                        std::fs::read_to_string(&path).map_err(|e| NodeError::InputFile {
                            path: path.clone(),
                            reason: e.to_string(),
                        })?;
                    vector_store::input::parse_query(&text).map_err(NodeError::from)?
                }
                _ => {
                    return Err(NodeError::Usage(
                        "give --vector, --vector-file, or --text with --model".into(),
                    )
                    .into());
                }
            };
            let manifest = vectors::open_index(&store, &content, &mut page_peers).await?;
            let mut options = vector_store::SearchOptions::for_index(&manifest);
            options.k = k;
            options.rerank = rerank;
            if let Some(n) = nprobe {
                options.nprobe = n;
            }
            let result = vectors::query(
                &store,
                manifest,
                &mut page_peers,
                &query,
                &options,
                cursor.as_ref(),
            )
            .await;
            let paid = page_peers.pay().await;
            let (page, stats) = result?;
            if json {
                let hits: Vec<serde_json::Value> = page
                    .hits
                    .iter()
                    .map(|h| {
                        let mut v = serde_json::json!({"id": h.id, "distance": h.distance});
                        if let Some(text) = labels.as_ref().and_then(|l| l.get(&h.id)) {
                            v["text"] = serde_json::json!(text);
                        }
                        v
                    })
                    .collect();
                let out = serde_json::json!({
                    "page": page.page,
                    "hits": hits,
                    "next_cursor": page.next.map(|c| c.to_string()),
                    "lists_probed": page.lists_probed,
                    "nprobe": options.nprobe,
                    "stats": stats,
                    "receipts_accepted": paid,
                });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("{:>5}  {:>12}  {:>12}", "rank", "id", "distance");
                let first = page.page as usize * options.k;
                for (i, hit) in page.hits.iter().enumerate() {
                    let line = labels
                        .as_ref()
                        .map(|l| format!("  {}", l.get(&hit.id).map_or("", String::as_str)))
                        .unwrap_or_default();
                    println!(
                        "{:>5}  {:>12}  {:>12.6}{line}",
                        first + i + 1,
                        hit.id,
                        hit.distance
                    );
                }
                match page.next {
                    Some(c) => println!("next page: --cursor {c}"),
                    None => println!("no more results"),
                }
                eprintln!(
                    "searched {} lists; pages: {} local, {} fetched from peers; {} of pages used ({:.2}% of the index)",
                    page.lists_probed,
                    stats.pages_local,
                    stats.pages_fetched,
                    human_bytes(stats.page_bytes),
                    stats.page_bytes as f64 * 100.0 / stats.index_page_bytes.max(1) as f64
                );
            }
        }
    }
    Ok(())
}
