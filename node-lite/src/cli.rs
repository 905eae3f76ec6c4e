//! The command line of `node-lite`: every subcommand and flag, with the help text users
//! read. `main.rs` parses [`Cli`] and hands each command to [`crate::commands`].

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use dsi_protocol::Epoch;
use dsi_protocol::manifest::DEFAULT_CHUNK_SIZE;

use crate::size::parse_size;

/// The text after `--help`: exit codes, logging and configuration.
pub fn after_help() -> String {
    format!(
        "{}\nLogging: DSI_LOG or RUST_LOG (for example DSI_LOG=debug). Config: DATA_DIR/config.toml and\n\
         DSI_* environment variables (DSI_NETWORK, DSI_SERVE__LISTEN, ...).",
        dsi_api::exit::Exit::help()
    )
}

/// A light DSI storage node: store chunks, serve them, download from the swarm, and deal in
/// signed seeding receipts.
#[derive(Parser, Debug)]
#[command(name = "node-lite", version, after_help = after_help(), propagate_version = true)]
pub struct Cli {
    /// The node's data directory (key, config, chunks, receipts). Default:
    /// ~/.local/share/dsi/node-lite.
    #[arg(long, global = true, env = "DSI_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    #[command(subcommand)]
    /// What to do.
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
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
    /// Keep content whatever the disk quota needs: pinned content is never evicted.
    Pin {
        /// The content id.
        content_id: String,
    },
    /// Let the disk quota evict content again when it needs room.
    Unpin {
        /// The content id.
        content_id: String,
    },
    /// Show this node's status: disk and bandwidth against their limits, receipts waiting
    /// and refused (each rule explained), and from the oracle its earnings per epoch,
    /// reputation and audits (what `/dashboard` shows).
    Status {
        /// The oracle's URL (default: `[tracker] url` of the config).
        #[arg(long, value_name = "URL")]
        tracker: Option<String>,
        /// Print JSON (the dashboard's `/dashboard/status.json`).
        #[arg(long)]
        json: bool,
    },
    /// Pause for N epochs (maintenance, a move, a holiday): the tracker stops listing this
    /// node now, and from the next epoch stops auditing it; its reputation and seniority
    /// wait for it (up to the oracle's `tracker.max_paused_epochs`). The current epoch is
    /// still audited at its close: keep serving until that close is done (`--wait` waits
    /// for it).
    Pause {
        /// Epochs to pause after the current one.
        #[arg(long, value_name = "N")]
        epochs: u32,
        /// Return only once the current epoch is closed (its audits done): then this node
        /// may stop.
        #[arg(long)]
        wait: bool,
        /// The oracle's URL (default: `[tracker] url` of the config).
        #[arg(long, value_name = "URL")]
        tracker: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// End a pause now (or cancel one not started): listed again at once, audited from the
    /// current epoch's close.
    Resume {
        /// The oracle's URL (default: `[tracker] url` of the config).
        #[arg(long, value_name = "URL")]
        tracker: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Leave the network for good: forward every receipt held, tell the tracker (which
    /// stops listing and auditing this node and never takes its key again), mark the data
    /// directory so `serve` no longer announces, and list what is owed and how to claim it.
    Exit {
        /// The oracle's URL (default: `[tracker] url` of the config).
        #[arg(long, value_name = "URL")]
        tracker: Option<String>,
        /// Confirm: an exit cannot be undone for this node key.
        #[arg(long)]
        yes: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the content this node holds.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Serve held chunks over HTTP and collect receipts until Ctrl-C.
    Serve(crate::commands::ServeOverrides),
    /// Download content from peers, verifying every chunk and signing receipts for the
    /// seeders. An interrupted download resumes when run again.
    Get(crate::commands::GetRequest),
    /// Run an HTTP gateway until Ctrl-C: GET /content/ID (or /content/ID/NAME) streams a
    /// content, with ranges, fetching the chunks it needs from the swarm (verified, paid
    /// with receipts, kept in this node's store). `serve` answers the same routes.
    #[command(after_help = "\
Examples:
  node-lite gateway --tracker http://127.0.0.1:7400
  curl -r 0-99 http://127.0.0.1:7080/content/ID        # the first 100 bytes
  mpv http://127.0.0.1:7080/content/ID/movie.mp4        # players seek with ranges
Only programs on this machine may use it, never a web page of another site
(gateway.clients, --clients).")]
    Gateway(crate::commands::GatewayRequest),
    /// Show this node key's credit as a downloader (funded, spent, available) from the
    /// oracle's funding ledger. Seeders are paid for what they serve it from this credit;
    /// without credit its receipts are still signed and counted, and pay nothing.
    Credit {
        /// The oracle's URL (default: `[tracker] url` of the config).
        #[arg(long, value_name = "URL")]
        tracker: Option<String>,
        /// Print JSON.
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
        /// What to do with vectors.
        #[command(subcommand)]
        command: VectorsCommand,
    },
}

/// `node-lite vectors` subcommands.
#[derive(Subcommand, Debug)]
pub enum VectorsCommand {
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
    Build(crate::commands::vectors::BuildRequest),
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
    Query(crate::commands::vectors::QueryRequest),
}

/// Parses `--metric`.
pub fn parse_metric(text: &str) -> Result<vector_store::Metric, String> {
    text.parse()
        .map_err(|e: vector_store::VectorError| e.to_string())
}

/// Parses `--chunk-size` (a size such as `256KiB`) and checks it is a valid chunk size.
pub fn parse_chunk_size(text: &str) -> Result<String, String> {
    let size = parse_size(text)?;
    let size = u32::try_from(size).map_err(|_| format!("{text} is larger than 4MiB"))?;
    dsi_protocol::manifest::validate_chunk_size(size).map_err(|e| e.to_string())?;
    Ok(size.to_string())
}
