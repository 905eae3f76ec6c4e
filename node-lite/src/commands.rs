//! The work of every `node-lite` subcommand, as library functions that return a report.
//! `main.rs` only parses the command line and prints what these return
//! (`dsi_service::report::emit`): the report's [`Report::text`] on stdout (or the whole
//! report as JSON with `--json`) and its [`Report::summary`] for a human on stderr.

pub mod availability;
pub mod vectors;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dsi_api::node::ContentEntry;
use dsi_protocol::{ChunkId, ContentId, Epoch, NodeId};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::VerifyMode;
use crate::download::{DownloadOptions, DownloadReport, Downloader};
use crate::peers::{Peers, StaticPeers, parse_peer_url};
use crate::receipts::{HeldReceipt, ReceiptStore};
use crate::server::NodeState;
use crate::size::human_bytes;
use crate::size::{parse_duration, parse_size};
use crate::store::ChunkStore;
use crate::tracker::TrackerClient;
use crate::{Config, DataDir, NodeError};
pub use dsi_service::report::Report;

/// A progress bar on stderr when it is a terminal, hidden otherwise.
pub fn progress_bar(len: u64) -> indicatif::ProgressBar {
    if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(len)
    } else {
        indicatif::ProgressBar::hidden()
    }
}

/// Parses a content id given on the command line.
pub fn parse_content(text: &str) -> Result<ContentId, NodeError> {
    text.parse()
        .map_err(|e| NodeError::Usage(format!("bad content id {text:?}: {e}")))
}

fn parse_peers(peers: &[String]) -> Result<Vec<reqwest::Url>, NodeError> {
    peers.iter().map(|p| parse_peer_url(p)).collect()
}

/// `node-lite init`.
#[derive(Debug, Serialize)]
pub struct InitReport {
    /// The data directory.
    pub path: PathBuf,
    /// The node's id.
    pub node_id: NodeId,
    /// Whether a new key was made.
    pub created: bool,
}

impl Report for InitReport {
    fn text(&self) -> String {
        let verb = if self.created {
            "initialized"
        } else {
            "already initialized"
        };
        format!("{verb} {}\nnode id {}", self.path.display(), self.node_id)
    }
}

/// Creates the data directory, key and config (keeps what exists).
pub fn init(dir: &DataDir) -> Result<InitReport, NodeError> {
    let outcome = dir.init()?;
    Ok(InitReport {
        path: dir.path().to_path_buf(),
        node_id: outcome.key.node_id(),
        created: outcome.created,
    })
}

/// `node-lite id`.
#[derive(Debug, Serialize)]
pub struct IdReport {
    /// The node's id.
    pub node_id: NodeId,
}

impl Report for IdReport {
    fn text(&self) -> String {
        self.node_id.to_string()
    }
}

/// The node's id.
pub fn id(dir: &DataDir) -> Result<IdReport, NodeError> {
    Ok(IdReport {
        node_id: dir.key()?.node_id(),
    })
}

/// `node-lite credit`.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct CreditReport(pub dsi_api::oracle::Credit);

impl Report for CreditReport {
    fn text(&self) -> String {
        self.0.to_string()
    }

    fn summary(&self) -> Option<String> {
        (self.0.available == 0).then(|| {
            "no credit left: receipts this node signs are counted but pay its seeders nothing"
                .to_string()
        })
    }
}

/// This node key's credit at the oracle (`tracker`, or `[tracker] url`).
pub async fn credit(dir: &DataDir, tracker: Option<String>) -> Result<CreditReport, NodeError> {
    let key = dir.key()?;
    let client = tracker_for(dir, tracker)?;
    Ok(CreditReport(client.credit(&key.node_id()).await?))
}

/// The oracle a command talks to: `--tracker URL`, else `[tracker] url` of the config.
pub fn tracker_for(dir: &DataDir, tracker: Option<String>) -> Result<TrackerClient, NodeError> {
    let url = match tracker {
        Some(url) => url,
        None => dir.config()?.tracker.url,
    };
    if url.is_empty() {
        return Err(NodeError::Usage(
            "no oracle: pass --tracker URL or set [tracker] url in the config".into(),
        ));
    }
    TrackerClient::new(&url)
}

/// `node-lite add`.
#[derive(Debug, Serialize)]
pub struct AddReport {
    /// The content id.
    pub content_id: ContentId,
    /// The name recorded.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Chunks in all.
    pub chunks: u64,
    /// Chunks not stored before.
    pub chunks_new: u64,
    /// Bytes written now.
    pub bytes_new: u64,
    /// What the disk quota evicted to make room.
    pub evicted: crate::quota::Evicted,
}

impl Report for AddReport {
    fn text(&self) -> String {
        self.content_id.to_string()
    }

    fn summary(&self) -> Option<String> {
        let mut text = format!(
            "added {} ({}, {} chunks, {} new, {} written)",
            self.name,
            human_bytes(self.size),
            self.chunks,
            self.chunks_new,
            human_bytes(self.bytes_new)
        );
        if self.evicted.bytes > 0 {
            let names: Vec<String> = self
                .evicted
                .contents
                .iter()
                .map(|(id, name)| format!("{name} ({id})"))
                .collect();
            text.push_str(&format!(
                "; evicted {} to stay under storage.max_bytes: {} unreferenced chunks{}{}",
                human_bytes(self.evicted.bytes),
                self.evicted.orphan_chunks,
                if names.is_empty() { "" } else { ", " },
                names.join(", ")
            ));
        }
        Some(text)
    }
}

/// Splits `file` into chunks of `chunk_size` and stores it as content named `name` (default:
/// the file's name), with a progress bar on a terminal. Under a disk quota
/// (`storage.max_bytes`) room is made first ([`crate::quota`]); a file that cannot fit
/// stores nothing and evicts nothing.
pub async fn add(
    dir: &DataDir,
    file: &Path,
    chunk_size: u32,
    name: Option<String>,
) -> Result<AddReport, NodeError> {
    dir.key()?;
    let meta = std::fs::metadata(file).map_err(|e| NodeError::InputFile {
        path: file.to_path_buf(),
        reason: e.to_string(),
    })?;
    if !meta.is_file() {
        return Err(NodeError::InputFile {
            path: file.to_path_buf(),
            reason: "not a regular file".into(),
        });
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
    let store = ChunkStore::open(dir.path())?;
    let config = dir.config()?;
    // The tracker says what content is worth, asked only under a quota.
    let tracker = Some(config.tracker.url.as_str())
        .filter(|url| !url.is_empty() && config.storage.max_bytes > 0)
        .map(TrackerClient::new)
        .transpose()?;
    let quota = crate::quota::Quota::new(config.storage.max_bytes, tracker);
    let evicted = quota
        .make_room(&store, meta.len(), Default::default())
        .await
        .map_err(|e| match e {
            NodeError::StoreFull { need, max, detail } => NodeError::StoreFull {
                need,
                max,
                detail: format!("{} was not added: {detail}", file.display()),
            },
            other => other,
        })?;
    let bar = progress_bar(meta.len());
    let adder = store.clone();
    let (path, named) = (file.to_path_buf(), name.clone());
    let progress = bar.clone();
    let report = tokio::task::spawn_blocking(move || {
        adder.add_file(&path, &named, chunk_size, &mut |done| {
            progress.set_position(done)
        })
    })
    .await
    .map_err(|e| NodeError::Usage(format!("the add task failed: {e}")))??;
    // Added again: used now (the manifest was already there and was not rewritten).
    store.touch(&report.content_id);
    bar.finish_and_clear();
    Ok(AddReport {
        content_id: report.content_id,
        name: report.manifest.name.clone(),
        size: report.manifest.size,
        chunks: report.manifest.chunk_count() as u64,
        chunks_new: report.chunks_new as u64,
        bytes_new: report.bytes_new,
        evicted,
    })
}

/// `node-lite status`: the same report as the dashboard's.
pub async fn status(
    dir: &DataDir,
    tracker: Option<String>,
) -> Result<crate::status::StatusReport, NodeError> {
    let key = dir.key()?;
    let config = dir.config()?;
    let store = ChunkStore::open(dir.path())?;
    let receipts =
        ReceiptStore::open(&dir.receipts_db())
            .await
            .map_err(|e| NodeError::DataDir {
                path: dir.receipts_db(),
                reason: e.to_string(),
            })?;
    let tracker = tracker
        .or_else(|| Some(config.tracker.url.clone()).filter(|u| !u.is_empty()))
        .map(|url| TrackerClient::new(&url))
        .transpose()?;
    let egress = crate::server::budget::Egress::open(
        config.serve.max_egress_per_day,
        config.serve.max_egress_per_month,
        Some(dir.path().join("egress.json")),
    );
    let report = crate::status::collect(crate::status::Sources {
        node_id: key.node_id(),
        config: &config,
        store: &store,
        receipts: &receipts,
        egress: egress.counts(dsi_protocol::now_ms()),
        tracker: tracker.as_ref(),
    })
    .await;
    receipts.close().await;
    report
}

/// `node-lite pin` and `unpin`.
#[derive(Debug, Serialize)]
pub struct PinReport {
    /// The content.
    pub content_id: ContentId,
    /// Pinned now.
    pub pinned: bool,
    /// Whether this changed anything.
    pub changed: bool,
}

impl Report for PinReport {
    fn text(&self) -> String {
        let state = if self.pinned { "pinned" } else { "not pinned" };
        let change = if self.changed { "" } else { " (already)" };
        format!("{} {state}{change}", self.content_id)
    }
}

/// Pins (never evicted by the disk quota) or unpins content this node holds.
pub fn pin(dir: &DataDir, content: &str, pinned: bool) -> Result<PinReport, NodeError> {
    let content = parse_content(content)?;
    let store = ChunkStore::open(dir.path())?;
    if pinned && store.manifest(&content)?.is_none() {
        return Err(NodeError::UnknownContent {
            content,
            detail: "not in the local store (add or fetch it first)".into(),
        });
    }
    let changed = if pinned {
        store.pin(&content)?
    } else {
        store.unpin(&content)?
    };
    Ok(PinReport {
        content_id: content,
        pinned,
        changed,
    })
}

/// `node-lite list`: the content held (the same entries as `GET /v1/content`).
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct ListReport(pub Vec<ContentEntry>);

impl Report for ListReport {
    fn text(&self) -> String {
        self.0
            .iter()
            .map(|e| {
                format!(
                    "{}  {:>10}  {}/{} chunks  {}",
                    e.content_id,
                    human_bytes(e.size),
                    e.held,
                    e.chunks,
                    e.name
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn summary(&self) -> Option<String> {
        self.0
            .is_empty()
            .then(|| "no content; add some with `node-lite add FILE`".to_string())
    }
}

/// The content this node holds, with how many chunks of each.
pub fn list(dir: &DataDir) -> Result<ListReport, NodeError> {
    dir.check()?;
    let store = ChunkStore::open(dir.path())?;
    Ok(ListReport(store.entries()?))
}

/// What `serve` may override from the config (the `serve` command line).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ServeOverrides {
    /// Address to listen on (default from config: 127.0.0.1:7070). Port 0 picks a free
    /// port; the address is printed on the first line of output.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// How chunks are checked before serving.
    #[arg(long, value_enum)]
    pub verify: Option<VerifyMode>,
    /// Refuse downloaders owing more receipts than this (0: never refuse).
    #[arg(long, value_name = "N")]
    pub max_owed_receipts: Option<u32>,
    /// Upload cap, bytes per second across all downloaders (suffixes accepted: 8MiB).
    #[arg(long, value_name = "RATE", value_parser = parse_size)]
    pub max_upload_rate: Option<u64>,
    /// Bytes this node may send per UTC day (e.g. 10GiB; 0: no budget).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_egress_per_day: Option<u64>,
    /// Bytes this node may send per UTC month (e.g. 500GiB; 0: no budget).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_egress_per_month: Option<u64>,
    /// Downloaders served at once (0: no cap).
    #[arg(long, value_name = "N")]
    pub max_downloaders: Option<u32>,
    /// Replicate funded content below its target, up to SIZE in all (e.g. 20GiB; 0: off):
    /// best paid per byte first, dropped once no longer needed. Needs a tracker.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub replicate: Option<u64>,
    /// The oracle to announce to and forward receipts to, e.g. http://127.0.0.1:7400
    /// (default from config `[tracker] url`).
    #[arg(long, value_name = "URL")]
    pub tracker: Option<String>,
    /// Where this node's rewards go: an H160 account, 0x + 40 hex digits (default from
    /// config `[tracker] payout`). Required with a tracker.
    #[arg(long, value_name = "ACCOUNT")]
    pub payout: Option<String>,
    /// The URL other nodes reach this node at (default: http://<listen address>).
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Serve the static files of DIR at / (the vector search page: `scripts/build-web`
    /// writes it to target/vector-web/www).
    #[arg(long, value_name = "DIR")]
    pub web: Option<PathBuf>,
}

impl ServeOverrides {
    /// The config with these overrides applied and checked.
    pub fn apply(self, mut config: Config) -> Result<Config, NodeError> {
        if let Some(web) = self.web {
            if !web.join("index.html").is_file() {
                return Err(NodeError::Usage(format!(
                    "--web {}: no index.html there (build the page with scripts/build-web)",
                    web.display()
                )));
            }
            config.serve.web = web.to_string_lossy().into_owned();
        }
        if let Some(tracker) = self.tracker {
            config.tracker.url = tracker;
        }
        if let Some(payout) = self.payout {
            config.tracker.payout = payout;
        }
        if let Some(public_url) = self.public_url {
            config.tracker.public_url = public_url;
        }
        if let Some(listen) = self.listen {
            config.serve.listen = listen;
        }
        if let Some(verify) = self.verify {
            config.serve.verify = verify;
        }
        if let Some(max) = self.max_owed_receipts {
            config.serve.max_owed_receipts = max;
        }
        if let Some(rate) = self.max_upload_rate {
            config.serve.max_upload_bytes_per_sec = rate;
        }
        if let Some(bytes) = self.max_egress_per_day {
            config.serve.max_egress_per_day = bytes;
        }
        if let Some(bytes) = self.max_egress_per_month {
            config.serve.max_egress_per_month = bytes;
        }
        if let Some(n) = self.max_downloaders {
            config.serve.max_concurrent_downloaders = n;
        }
        if let Some(bytes) = self.replicate {
            config.serve.replicate = bytes;
        }
        if config.serve.replicate > 0 && config.tracker.url.is_empty() {
            return Err(NodeError::Usage(
                "--replicate needs a tracker (--tracker URL or [tracker] url): the oracle says \
                 what is funded and under-replicated"
                    .into(),
            ));
        }
        crate::tracker::TrackerSettings::from_config(&config.tracker)?;
        Ok(config)
    }
}

/// Opens the node's state (store, receipt database, key).
async fn open_state(dir: &DataDir, config: Config) -> Result<NodeState, NodeError> {
    NodeState::open(dir, config).await.map_err(|e| match e {
        crate::server::OpenError::DataDir(e) => e,
        other => NodeError::DataDir {
            path: dir.path().to_path_buf(),
            reason: other.to_string(),
        },
    })
}

/// Opens the node for serving and binds its listener; `crate::serve` then runs it.
pub async fn prepare_serve(
    dir: &DataDir,
    overrides: ServeOverrides,
) -> Result<(Arc<NodeState>, TcpListener, Option<iroh::Endpoint>), NodeError> {
    let config = overrides.apply(dir.config()?)?;
    if !config.tracker.url.is_empty()
        && let Some(mark) = availability::exit_mark(dir)?
        && mark.applies_to(&config.network)
    {
        return Err(NodeError::Exited(format!(
            "this node exited the network in epoch {} (node-lite exit): its key is not \
             announced again; serve without --tracker, or rejoin with a new data directory",
            mark.epoch
        )));
    }
    let listen = config.serve.listen;
    let state = open_state(dir, config).await?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| NodeError::Usage(format!("cannot listen on {listen}: {e}")))?;
    // Bound (and on its relay) before `serve` says it is up, so peers can dial at once.
    let iroh = if state.config.iroh.enabled() {
        Some(crate::transport::bind(&state.key, &state.config.iroh, true).await?)
    } else {
        None
    };
    Ok((Arc::new(state), listener, iroh))
}

/// What `gateway` was asked (its command line).
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayRequest {
    /// Address to listen on. Port 0 picks a free port; the address is printed on the first
    /// line of output.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7080")]
    pub listen: SocketAddr,
    /// A peer to fetch from (repeatable), in addition to the tracker's.
    #[arg(long = "peer", value_name = "URL")]
    pub peers: Vec<String>,
    /// The oracle whose tracker names the peers of a content (default: `[tracker] url` of
    /// the config).
    #[arg(long, value_name = "URL")]
    pub tracker: Option<String>,
    /// Who may use the gateway (default from config: loopback, programs on this machine).
    #[arg(long, value_enum)]
    pub clients: Option<crate::config::Clients>,
    /// Serve only what this node holds; never fetch from the swarm.
    #[arg(long)]
    pub no_fetch: bool,
}

/// Opens the node as a gateway and binds its listener; `crate::serve_gateway` runs it.
pub async fn prepare_gateway(
    dir: &DataDir,
    request: GatewayRequest,
) -> Result<(Arc<NodeState>, TcpListener), NodeError> {
    let mut config = dir.config()?;
    if let Some(clients) = request.clients {
        config.gateway.clients = clients;
    }
    if request.no_fetch {
        config.gateway.fetch = false;
    }
    let fixed = StaticPeers(parse_peers(&request.peers)?);
    let tracker = request
        .tracker
        .or_else(|| Some(config.tracker.url.clone()).filter(|u| !u.is_empty()))
        .map(|url| TrackerClient::new(&url))
        .transpose()?;
    if fixed.0.is_empty() && tracker.is_none() {
        tracing::warn!("no --peer and no tracker: the gateway serves only content this node holds");
    }
    let mut state = open_state(dir, config).await?;
    state.gateway.set_peers(Peers {
        fixed,
        tracker,
        iroh: None,
    });
    let listener = TcpListener::bind(request.listen)
        .await
        .map_err(|e| NodeError::Usage(format!("cannot listen on {}: {e}", request.listen)))?;
    Ok((Arc::new(state), listener))
}

/// What `get` was asked (its command line).
#[derive(Debug, Clone, clap::Args)]
pub struct GetRequest {
    /// The content id to fetch.
    pub content_id: String,
    /// A peer: its base URL (http://127.0.0.1:7070), or its node id to reach it over iroh
    /// (needs `[iroh] relays` in the config). Repeat for more peers.
    #[arg(
        long = "peer",
        value_name = "URL|NODE_ID",
        required_unless_present = "tracker"
    )]
    pub peers: Vec<String>,
    /// Ask the oracle's tracker at URL which peers hold the content (in addition to
    /// any --peer).
    #[arg(long, value_name = "URL")]
    pub tracker: Option<String>,
    /// Where to write the content.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Overwrite OUT if it exists and holds something else.
    #[arg(long)]
    pub force: bool,
    /// Chunk requests in flight per peer (default from config: 8).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Drop a peer that sends nothing for this long (default from config: 10s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub stall_timeout: Option<Duration>,
    /// Skip the final SHA-256 of the output (every chunk is still BLAKE3-verified
    /// against the manifest; the digest is only for comparing with a published checksum).
    #[arg(long)]
    pub no_sha256: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

impl Report for DownloadReport {
    fn text(&self) -> String {
        let secs = (self.elapsed_ms as f64 / 1000.0).max(0.001);
        let mut lines = vec![
            format!(
                "downloaded {} ({}) to {}",
                self.name,
                human_bytes(self.size),
                self.out.display()
            ),
            format!("content  {}", self.content_id),
            format!(
                "chunks   {} fetched, {} resumed, of {}",
                self.chunks_fetched, self.chunks_resumed, self.chunks_total
            ),
            format!(
                "speed    {}/s over {secs:.2}s",
                human_bytes((self.bytes_fetched as f64 / secs) as u64)
            ),
        ];
        for peer in &self.peers {
            let mut state = peer
                .dropped
                .as_deref()
                .map_or(String::new(), |d| format!("  dropped: {d}"));
            if let Some(path) = &peer.path {
                state.push_str(&format!("  via {path}"));
            }
            lines.push(format!(
                "peer     {}  {} chunks, {}, receipts {}/{} accepted{state}",
                peer.url,
                peer.chunks,
                human_bytes(peer.bytes),
                peer.receipts_accepted,
                peer.receipts_sent
            ));
        }
        if let Some(sha256) = &self.sha256 {
            lines.push(format!("{sha256}  {}", self.out.display()));
        }
        lines.join("\n")
    }
}

/// Downloads content from the swarm (peers given and/or the tracker's), paying receipts,
/// until done or `token` fires (the partial file is kept for resuming).
pub async fn get(
    dir: &DataDir,
    request: GetRequest,
    token: &CancellationToken,
) -> Result<DownloadReport, NodeError> {
    let content = parse_content(&request.content_id)?;
    let peers = parse_peers(&request.peers)?;
    let key = dir.key()?;
    let config = dir.config()?;
    let tracker = request
        .tracker
        .or_else(|| Some(config.tracker.url.clone()).filter(|u| !u.is_empty()))
        .map(|url| TrackerClient::new(&url))
        .transpose()?;
    let mut options = DownloadOptions::from_config(&config.download);
    options.force = request.force;
    options.sha256 = !request.no_sha256;
    options.progress = !request.json && std::io::stderr().is_terminal();
    if let Some(n) = request.concurrency {
        options.per_peer_concurrency = n.max(1);
    }
    if let Some(stall) = request.stall_timeout {
        options.stall_timeout = stall;
    }
    let dialer = config
        .iroh
        .enabled()
        .then(|| crate::transport::Dialer::new(key.clone(), &config.iroh.endpoint()))
        .transpose()?;
    let mut downloader = Downloader::new(key, config.network, config.epochs, options);
    if let Some(dialer) = &dialer {
        // A relay that does not answer costs its wait once, here, not on every peer.
        if let Err(e) = dialer.bind().await {
            tracing::warn!(error = %e, "no iroh endpoint; peers named by node id are skipped");
        }
        downloader = downloader.with_iroh(dialer.clone());
    }
    let source = Peers {
        fixed: StaticPeers(peers),
        tracker,
        iroh: dialer.clone(),
    };
    let report = downloader
        .download(&content, &source, &request.out, token)
        .await;
    if let Some(dialer) = dialer {
        dialer.close().await;
    }
    report
}

/// `node-lite receipts`.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct ReceiptsReport(pub Vec<HeldReceipt>);

impl Report for ReceiptsReport {
    fn text(&self) -> String {
        let mut lines = Vec::with_capacity(self.0.len() + 1);
        let mut total = 0u64;
        for held in &self.0 {
            let r = &held.receipt.receipt;
            total += u64::from(r.bytes);
            lines.push(format!(
                "epoch {:>6}  downloader {}  chunk {}  {:>9} bytes  issued {}",
                r.epoch,
                r.downloader.short(),
                r.chunk.short(),
                r.bytes,
                r.issued_at_ms
            ));
        }
        lines.push(format!(
            "{} receipt(s), {} served",
            self.0.len(),
            human_bytes(total)
        ));
        lines.join("\n")
    }
}

/// The receipts this node holds as a seeder (optionally of one epoch).
pub async fn receipts(dir: &DataDir, epoch: Option<Epoch>) -> Result<ReceiptsReport, NodeError> {
    dir.key()?;
    let database = |e: sqlx::Error| NodeError::Io {
        action: "cannot read the receipt database",
        path: dir.receipts_db(),
        reason: e.to_string(),
    };
    let store = ReceiptStore::open(&dir.receipts_db())
        .await
        .map_err(database)?;
    let held = store.list(epoch).await.map_err(database)?;
    store.close().await;
    Ok(ReceiptsReport(held))
}

/// Chunks still missing of one content after `verify`.
#[derive(Debug, Serialize)]
pub struct Missing {
    /// The content.
    pub content_id: ContentId,
    /// Indexes of its missing chunks.
    pub chunks: Vec<usize>,
}

/// `node-lite verify`.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    /// Chunk files hashed.
    pub chunks_checked: usize,
    /// Bytes hashed.
    pub bytes_checked: u64,
    /// Chunks whose bytes did not match (now in quarantine).
    pub corrupt: Vec<ChunkId>,
    /// What is still missing (after repairing, when asked to).
    pub missing: Vec<Missing>,
    /// Repairs: content, chunks fetched, or why it failed.
    #[serde(skip)]
    pub repairs: Vec<(ContentId, Result<usize, String>)>,
    /// Whether repairing was asked for.
    #[serde(skip)]
    pub repair: bool,
}

impl VerifyReport {
    /// The failure this report means for the exit code: missing chunks, or corrupt ones
    /// that were not repaired.
    pub fn failure(&self) -> Option<NodeError> {
        if !self.missing.is_empty() {
            return Some(NodeError::CorruptChunks {
                count: self.missing.iter().map(|m| m.chunks.len()).sum(),
            });
        }
        (!self.corrupt.is_empty() && !self.repair).then_some(NodeError::CorruptChunks {
            count: self.corrupt.len(),
        })
    }
}

impl Report for VerifyReport {
    fn text(&self) -> String {
        let mut lines = vec![format!(
            "checked {} chunks ({})",
            self.chunks_checked,
            human_bytes(self.bytes_checked)
        )];
        for id in &self.corrupt {
            lines.push(format!("corrupt {id} (quarantined)"));
        }
        for missing in &self.missing {
            lines.push(format!(
                "missing {} chunk(s) of {}",
                missing.chunks.len(),
                missing.content_id
            ));
        }
        lines.join("\n")
    }

    fn summary(&self) -> Option<String> {
        let lines: Vec<String> = self
            .repairs
            .iter()
            .map(|(content, outcome)| match outcome {
                Ok(fetched) => format!("repaired {content}: fetched {fetched} chunk(s)"),
                Err(why) => format!("could not repair {content}: {why}"),
            })
            .collect();
        (!lines.is_empty()).then(|| lines.join("\n"))
    }
}

/// Hashes every stored chunk (quarantining corrupt ones) and, with `repair`, fetches what
/// is missing from `peers`.
pub async fn verify(
    dir: &DataDir,
    repair: bool,
    peers: &[String],
    token: &CancellationToken,
) -> Result<VerifyReport, NodeError> {
    let key = dir.key()?;
    let store = ChunkStore::open(dir.path())?;
    let peers = parse_peers(peers)?;
    let scan_store = store.clone();
    let scan = tokio::task::spawn_blocking(move || scan_store.verify_all(&mut |_| {}))
        .await
        .map_err(|e| NodeError::Usage(format!("verification task failed: {e}")))??;
    let mut missing: BTreeMap<ContentId, Vec<usize>> = scan.missing.iter().cloned().collect();
    let mut repairs = Vec::new();
    if repair && !scan.missing.is_empty() {
        let config = dir.config()?;
        let downloader = Downloader::new(
            key,
            config.network,
            config.epochs,
            DownloadOptions::from_config(&config.download),
        );
        let source = StaticPeers(peers);
        for (content, _) in &scan.missing {
            match downloader.repair(&store, content, &source, token).await {
                Ok((fetched, _)) => {
                    missing.remove(content);
                    repairs.push((*content, Ok(fetched)));
                }
                Err(e) => {
                    repairs.push((*content, Err(e.to_string())));
                    if let Some(m) = store.manifest(content)? {
                        let held = store.held(&m);
                        missing.insert(
                            *content,
                            (0..held.len()).filter(|i| !held.get(*i)).collect(),
                        );
                    }
                }
            }
        }
    }
    Ok(VerifyReport {
        chunks_checked: scan.chunks_checked,
        bytes_checked: scan.bytes_checked,
        corrupt: scan.corrupt,
        missing: missing
            .into_iter()
            .map(|(content_id, chunks)| Missing { content_id, chunks })
            .collect(),
        repairs,
        repair,
    })
}
