//! The swarm downloader.
//!
//! 1. Ask the [`PeerSource`] for peers, ask each for its node id and network.
//! 2. Fetch the manifest from the first peer that has it and check that its bytes hash to
//!    the content id; peers that send a different manifest are dropped.
//! 3. Resume: the output is written to `OUT.dsi-part`; every chunk slot of an existing part
//!    file is hashed, and slots that already hold the right bytes are not fetched again.
//!    There is no separate state file that could disagree with the data.
//! 4. Ask each peer which chunks it holds, then fetch rarest first with a bounded number of
//!    requests per peer and endgame duplication at the end ([`scheduler`]). Every chunk is
//!    hashed before it is written. A peer that sends bad bytes or stalls is dropped and its
//!    chunks go back to the queue; one that fails repeatedly is dropped too.
//! 5. For every verified chunk, sign a receipt for the peer that served it and send it
//!    (batched) to that peer.
//! 6. Sync, rename `OUT.dsi-part` to `OUT`, and report the SHA-256 of the result.
//!
//! The same engine fills gaps in the local chunk store (`node-lite verify --repair`).

pub mod client;
pub mod scheduler;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dsi_protocol::manifest::content_id_of_bytes;
use dsi_protocol::{ChunkId, ContentId, EpochSchedule, Manifest, NetworkId, NodeId, SecretKey};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::Url;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::task::{AbortHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::NodeError;
use crate::config::DownloadConfig;
use crate::payer::{Payer, Signer};
use crate::peers::PeerSource;
use crate::store::{Bitfield, ChunkStore};
use client::{FetchError, PeerClient, Pieces};
use scheduler::Scheduler;

/// Suffix of the partial output file.
pub const PART_SUFFIX: &str = ".dsi-part";

/// How a download behaves.
#[derive(Clone, Debug)]
pub struct DownloadOptions {
    /// Chunk requests in flight per peer.
    pub per_peer_concurrency: usize,
    /// A peer that sends nothing for this long is dropped.
    pub stall_timeout: Duration,
    /// A peer with this many failed requests in a row is dropped.
    pub max_peer_failures: u32,
    /// A peer that refuses this many times in a row for owed receipts (429) is dropped.
    pub max_peer_refusals: u32,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Replace an existing output file that is not this content.
    pub force: bool,
    /// Compute the SHA-256 of the output (while downloading) for the report. Integrity does
    /// not depend on it: every chunk is BLAKE3-verified against the manifest.
    pub sha256: bool,
}

impl DownloadOptions {
    /// Options from the `[download]` config section (no progress bar, no force).
    pub fn from_config(config: &DownloadConfig) -> Self {
        Self {
            per_peer_concurrency: config.per_peer_concurrency.max(1),
            stall_timeout: Duration::from_millis(config.stall_timeout_ms.max(1)),
            max_peer_failures: config.max_peer_failures.max(1),
            max_peer_refusals: config.max_peer_refusals.max(1),
            progress: false,
            force: false,
            sha256: true,
        }
    }
}

/// What happened with one peer.
#[derive(Debug, Clone, Serialize)]
pub struct PeerReport {
    /// The peer's base URL.
    pub url: String,
    /// Its node id, once known.
    pub node_id: Option<NodeId>,
    /// Verified chunks it delivered.
    pub chunks: usize,
    /// Verified bytes it delivered.
    pub bytes: u64,
    /// Receipts signed for it.
    pub receipts_sent: u64,
    /// Receipts it accepted.
    pub receipts_accepted: u64,
    /// Receipts it rejected.
    pub receipts_rejected: u64,
    /// Receipts that could not be delivered.
    pub receipts_undelivered: u64,
    /// Why it was dropped, if it was.
    pub dropped: Option<String>,
    /// How an iroh peer was reached when the download ended (`direct`: the address of a
    /// direct path, a public one or a hole punched through routers, else `null`: through
    /// a relay) and what its connection received on each kind of path; absent over HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<dsi_transport::PathReport>,
}

/// The result of a download.
#[derive(Debug, Clone, Serialize)]
pub struct DownloadReport {
    /// The content id.
    pub content_id: ContentId,
    /// Its name from the manifest.
    pub name: String,
    /// Its size.
    pub size: u64,
    /// Where it was written.
    pub out: PathBuf,
    /// Number of chunks.
    pub chunks_total: usize,
    /// Chunks already present from an earlier attempt.
    pub chunks_resumed: usize,
    /// Chunks fetched now.
    pub chunks_fetched: usize,
    /// Bytes fetched now (verified, first copies only).
    pub bytes_fetched: u64,
    /// SHA-256 of the output file, hex.
    pub sha256: Option<String>,
    /// Wall-clock time.
    pub elapsed_ms: u64,
    /// Per peer.
    pub peers: Vec<PeerReport>,
}

/// Where verified chunks go.
trait Sink: Send + Sync {
    fn write(&self, index: usize, bytes: &Pieces) -> Result<(), NodeError>;
}

/// Bytes written to a part file past which a background `sync_data` starts: the disk
/// writes the file while the rest downloads, so the final sync has little left to wait for.
const FLUSH_EVERY: u64 = 8 << 20;

struct FileSink {
    file: File,
    chunk_size: u64,
    path: PathBuf,
    /// Bytes written since the last background flush began.
    unflushed: std::sync::atomic::AtomicU64,
    /// The background flush and the first error one met.
    flush: Arc<Flush>,
}

#[derive(Default)]
struct Flush {
    /// The latest flush, joined before the final sync (one runs at a time).
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    /// A flush on a shared file description consumes a write-back error, so the final
    /// sync reports it from here.
    error: std::sync::Mutex<Option<String>>,
}

/// A lock that outlives a panicked holder (the data stays usable).
fn locked<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FileSink {
    fn new(file: File, chunk_size: u64, path: PathBuf) -> Self {
        Self {
            file,
            chunk_size,
            path,
            unflushed: Default::default(),
            flush: Arc::default(),
        }
    }

    /// Starts a background `sync_data` once [`FLUSH_EVERY`] bytes were written since the
    /// last, unless one is running.
    fn flush_behind(&self, written: u64) {
        use std::sync::atomic::Ordering;
        let unflushed = self.unflushed.fetch_add(written, Ordering::Relaxed) + written;
        if unflushed < FLUSH_EVERY {
            return;
        }
        let mut thread = locked(&self.flush.thread);
        if thread.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        self.unflushed.store(0, Ordering::Relaxed);
        let flush = self.flush.clone();
        // If none can start, no flush this time: the final sync writes everything anyway.
        *thread = self
            .file
            .try_clone()
            .and_then(|file| {
                std::thread::Builder::new()
                    .name("dsi-flush".into())
                    .spawn(move || {
                        if let Err(e) = file.sync_data() {
                            locked(&flush.error).get_or_insert(e.to_string());
                        }
                    })
            })
            .ok();
    }

    /// Makes everything written durable: waits for a running background flush, then
    /// `sync_all`; the first error either met fails it (a write-back error is reported to
    /// one of two syncs on the same file, so both are checked).
    fn sync(&self) -> Result<(), NodeError> {
        let running = locked(&self.flush.thread).take();
        if let Some(thread) = running {
            let _ = thread.join();
        }
        let synced = self.file.sync_all();
        let failed = locked(&self.flush.error).clone();
        let outcome = match failed {
            Some(reason) => Err(reason),
            None => synced.map_err(|e| e.to_string()),
        };
        outcome.map_err(|reason| NodeError::Io {
            action: "cannot sync",
            path: self.path.clone(),
            reason,
        })
    }
}

impl Sink for FileSink {
    fn write(&self, index: usize, bytes: &Pieces) -> Result<(), NodeError> {
        bytes
            .write_at(&self.file, index as u64 * self.chunk_size)
            .map_err(|e| NodeError::Io {
                action: "cannot write",
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
        self.flush_behind(bytes.len() as u64);
        Ok(())
    }
}

struct StoreSink {
    store: ChunkStore,
    manifest: Arc<Manifest>,
}

impl Sink for StoreSink {
    fn write(&self, index: usize, bytes: &Pieces) -> Result<(), NodeError> {
        self.store
            .put_chunk(&self.manifest.chunks[index], &bytes.to_vec(), false)?;
        Ok(())
    }
}

/// A peer taking part in a download.
struct Peer {
    client: PeerClient,
    node_id: NodeId,
    failures: u32,
    /// Refusals for owed receipts (429) in a row, counting one per pause.
    refusals: u32,
    paused_until: Option<tokio::time::Instant>,
    report: PeerReport,
    payer: Option<Payer>,
    /// The receipts it lets a downloader owe (`NodeInfo::max_owed_receipts`): requests in
    /// flight plus unanswered receipts stay within it, so it never has to refuse.
    max_owed: Option<u32>,
}

/// What one run of the engine fetches, and where it puts it.
struct Job<'a> {
    content: &'a ContentId,
    manifest: &'a Manifest,
    /// Chunk indexes to fetch.
    needed: &'a [usize],
    /// Where verified chunks go.
    sink: Arc<dyn Sink>,
    /// Told how many leading chunks are complete (for the prefix hasher).
    prefix: Option<std::sync::mpsc::Sender<usize>>,
    /// Which chunks each peer holds ([`Downloader::haves`]), in the order of the peers.
    haves: Vec<Bitfield>,
}

enum Outcome {
    Stored { len: usize },
    Fetch(FetchError),
    BadBytes { actual: ChunkId, len: usize },
    Sink(NodeError),
}

/// The peers of one content, contacted, with its verified manifest: see
/// [`Downloader::join`].
pub struct ContentSwarm {
    content: ContentId,
    manifest: Arc<Manifest>,
    peers: Vec<Peer>,
    failed: Vec<PeerReport>,
    /// What each peer held when last asked.
    haves: Option<Vec<Bitfield>>,
}

impl ContentSwarm {
    /// The content's manifest (its bytes hash to the content id).
    pub fn manifest(&self) -> &Arc<Manifest> {
        &self.manifest
    }
}

/// Downloads content from the swarm, signing receipts as the node with `key`.
pub struct Downloader {
    http: reqwest::Client,
    dialer: Option<crate::transport::Dialer>,
    signer: Signer,
    options: DownloadOptions,
}

impl Downloader {
    /// A downloader for `network` whose receipts are stamped with epochs from `epochs`.
    pub fn new(
        key: SecretKey,
        network: NetworkId,
        epochs: EpochSchedule,
        options: DownloadOptions,
    ) -> Self {
        Self {
            http: client::http_client(),
            dialer: None,
            signer: Signer::new(key, network, epochs),
            options,
        }
    }

    /// Reaches peers named by node id (`iroh://NODE_ID/`) over iroh with `dialer`.
    pub fn with_iroh(mut self, dialer: crate::transport::Dialer) -> Self {
        self.dialer = Some(dialer);
        self
    }

    fn progress_bar(&self, total: u64) -> ProgressBar {
        if !self.options.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{bar:32.cyan/blue} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta} {msg}",
        ) {
            bar.set_style(style);
        }
        bar
    }

    /// Contacts every peer for its id; unreachable peers and peers on another network are
    /// reported and left out.
    async fn contact(&self, urls: Vec<Url>) -> (Vec<Peer>, Vec<PeerReport>) {
        let stall = self.options.stall_timeout;
        let mut tasks = JoinSet::new();
        for (i, url) in urls.into_iter().enumerate() {
            let client = PeerClient::for_url(&self.http, self.dialer.as_ref(), url);
            tasks.spawn(async move { (i, client.node_info(stall).await, client) });
        }
        let mut answers = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            if let Ok(answer) = joined {
                answers.push(answer);
            }
        }
        answers.sort_by_key(|(i, _, _)| *i);
        let mut peers = Vec::new();
        let mut failed = Vec::new();
        for (_, info, client) in answers {
            let mut report = PeerReport {
                url: client.url().to_string(),
                node_id: None,
                chunks: 0,
                bytes: 0,
                receipts_sent: 0,
                receipts_accepted: 0,
                receipts_rejected: 0,
                receipts_undelivered: 0,
                dropped: None,
                path: None,
            };
            match info {
                Ok(info) if info.network != *self.signer.network() => {
                    report.dropped = Some(format!(
                        "peer is on network {}, not {}",
                        info.network,
                        self.signer.network()
                    ));
                }
                Ok(info) if info.node_id == self.signer.node_id() => {
                    report.dropped = Some("peer is this node itself".into());
                }
                Ok(info) if client.iroh_node().is_some_and(|node| node != info.node_id) => {
                    // Over iroh the connection proves the key; receipts go to that key only.
                    report.dropped = Some(format!(
                        "peer dialed over iroh answers as another node, {}",
                        info.node_id
                    ));
                }
                Ok(info) => {
                    report.node_id = Some(info.node_id);
                    peers.push(Peer {
                        client,
                        node_id: info.node_id,
                        failures: 0,
                        refusals: 0,
                        paused_until: None,
                        report,
                        payer: None,
                        max_owed: info.max_owed_receipts,
                    });
                    continue;
                }
                Err(e) => report.dropped = Some(format!("unreachable: {e}")),
            }
            tracing::warn!(peer = %report.url, reason = report.dropped.as_deref().unwrap_or(""), "peer left out");
            failed.push(report);
        }
        (peers, failed)
    }

    /// Fetches and verifies the manifest; peers that send a wrong one are dropped.
    async fn fetch_manifest(
        &self,
        content: &ContentId,
        peers: &mut Vec<Peer>,
        failed: &mut Vec<PeerReport>,
    ) -> Result<Manifest, NodeError> {
        let mut notes = Vec::new();
        let mut mismatches = 0;
        let mut index = 0;
        while index < peers.len() {
            let peer = &peers[index];
            match peer
                .client
                .manifest(content, self.options.stall_timeout)
                .await
            {
                Ok(bytes) if content_id_of_bytes(&bytes) == *content => {
                    match Manifest::from_bytes(&bytes) {
                        Ok(manifest) => return Ok(manifest),
                        Err(e) => {
                            notes.push(format!("{}: manifest invalid: {e}", peer.client.url()))
                        }
                    }
                }
                Ok(bytes) => {
                    mismatches += 1;
                    let actual = content_id_of_bytes(&bytes);
                    let mut peer = peers.remove(index);
                    let reason = format!("sent a manifest whose id is {actual}");
                    tracing::warn!(peer = %peer.client.url(), %actual, "manifest id mismatch; dropping peer");
                    notes.push(format!("{}: {reason}", peer.client.url()));
                    peer.report.dropped = Some(reason);
                    failed.push(peer.report);
                    continue;
                }
                Err(FetchError::Status { status: 404, .. }) => {
                    notes.push(format!("{}: does not have it", peer.client.url()));
                }
                Err(e) => notes.push(format!("{}: {e}", peer.client.url())),
            }
            index += 1;
        }
        let detail = if notes.is_empty() {
            "no peers".to_string()
        } else {
            notes.join("; ")
        };
        if mismatches > 0 {
            Err(NodeError::ManifestMismatch {
                content: *content,
                detail,
            })
        } else {
            Err(NodeError::UnknownContent {
                content: *content,
                detail,
            })
        }
    }

    /// Downloads `content` to `out`, finding peers through `source`. Cancelling `token`
    /// stops the download and keeps the partial file for resuming.
    pub async fn download(
        &self,
        content: &ContentId,
        source: &impl PeerSource,
        out: &Path,
        token: &CancellationToken,
    ) -> Result<DownloadReport, NodeError> {
        let started = Instant::now();
        let urls = source.peers(content).await?;
        if urls.is_empty() {
            return Err(NodeError::Usage(
                "no peers to download from: give at least one --peer URL".into(),
            ));
        }
        let (mut peers, mut failed) = self.contact(urls).await;
        if peers.is_empty() {
            return Err(no_peers(content, &failed));
        }
        let manifest = self
            .fetch_manifest(content, &mut peers, &mut failed)
            .await?;
        tracing::debug!(elapsed = ?started.elapsed(), peers = peers.len(), "manifest verified");

        let io_err = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |e: std::io::Error| NodeError::Io {
                action,
                path,
                reason: e.to_string(),
            }
        };
        let part_path = PathBuf::from(format!("{}{PART_SUFFIX}", out.display()));
        if out.exists() {
            if out.is_dir() {
                return Err(NodeError::Usage(format!(
                    "output {} is a directory",
                    out.display()
                )));
            }
            let present = scan_file(out, &manifest).await?;
            if present.iter().all(|p| *p) {
                tracing::info!(path = %out.display(), "output already holds this content");
                let sha256 = match self.options.sha256 {
                    true => Some(sha256_file(out).await?),
                    false => None,
                };
                return Ok(DownloadReport {
                    content_id: *content,
                    name: manifest.name.clone(),
                    size: manifest.size,
                    out: out.to_path_buf(),
                    chunks_total: manifest.chunk_count(),
                    chunks_resumed: manifest.chunk_count(),
                    chunks_fetched: 0,
                    bytes_fetched: 0,
                    sha256,
                    elapsed_ms: started.elapsed().as_millis() as u64,
                    peers: peers.into_iter().map(|p| p.report).chain(failed).collect(),
                });
            }
            if !self.options.force {
                return Err(NodeError::OutputExists {
                    path: out.to_path_buf(),
                    content: *content,
                });
            }
        }
        let resuming = part_path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(!resuming)
            .open(&part_path)
            .map_err(io_err("cannot open", &part_path))?;
        file.set_len(manifest.size)
            .map_err(io_err("cannot size", &part_path))?;
        let present = if resuming {
            scan_file(&part_path, &manifest).await?
        } else {
            vec![false; manifest.chunk_count()]
        };
        let needed: Vec<usize> = (0..manifest.chunk_count())
            .filter(|i| !present[*i])
            .collect();
        let resumed = manifest.chunk_count() - needed.len();
        if resumed > 0 {
            tracing::info!(resumed, total = manifest.chunk_count(), "resuming download");
        }
        // The hasher reads through its own handle (the part file may be renamed first).
        let reader = match self.options.sha256 {
            true => Some(
                file.try_clone()
                    .map_err(io_err("cannot open", &part_path))?,
            ),
            false => None,
        };
        let sink = Arc::new(FileSink::new(
            file,
            u64::from(manifest.chunk_size),
            part_path.clone(),
        ));
        let (prefix, hasher) = match reader {
            Some(reader) => {
                let (prefix, hasher) = prefix_hasher(reader, part_path.clone(), &manifest);
                (Some(prefix), Some(hasher))
            }
            None => (None, None),
        };
        let haves = self.haves(content, &manifest, &mut peers, &needed).await;
        let outcome = self
            .swarm(
                Job {
                    content,
                    manifest: &manifest,
                    needed: &needed,
                    sink: sink.clone(),
                    prefix,
                    haves,
                },
                &mut peers,
                token,
            )
            .await;
        tracing::debug!(elapsed = ?started.elapsed(), "chunks fetched");
        let peer_reports: Vec<PeerReport> = self
            .finish_receipts(peers)
            .await
            .into_iter()
            .chain(failed)
            .collect();
        let (chunks_fetched, bytes_fetched) = outcome.map_err(|e| match e {
            NodeError::Incomplete {
                content,
                missing,
                total,
                detail,
            } => {
                let dropped: Vec<String> = peer_reports
                    .iter()
                    .filter_map(|p| p.dropped.as_ref().map(|d| format!("{}: {d}", p.url)))
                    .collect();
                let detail = if dropped.is_empty() {
                    detail
                } else {
                    format!("{detail}; dropped peers: {}", dropped.join("; "))
                };
                NodeError::Incomplete {
                    content,
                    missing,
                    total,
                    detail,
                }
            }
            other => other,
        })?;
        tracing::debug!(elapsed = ?started.elapsed(), "receipts delivered");
        sink.sync()?;
        std::fs::rename(&part_path, out).map_err(io_err("cannot rename into place", out))?;
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err("cannot sync", dir))?;
        }
        tracing::debug!(elapsed = ?started.elapsed(), "output synced");
        let sha256 = match hasher {
            Some(hasher) => Some(
                hasher
                    .await
                    .map_err(|e| NodeError::Usage(format!("hash task failed: {e}")))??,
            ),
            None => None,
        };
        tracing::debug!(elapsed = ?started.elapsed(), "sha256 computed");
        Ok(DownloadReport {
            content_id: *content,
            name: manifest.name.clone(),
            size: manifest.size,
            out: out.to_path_buf(),
            chunks_total: manifest.chunk_count(),
            chunks_resumed: resumed,
            chunks_fetched,
            bytes_fetched,
            sha256,
            elapsed_ms: started.elapsed().as_millis() as u64,
            peers: peer_reports,
        })
    }

    /// Fetches the chunks of `content` missing from `store` (after corruption was
    /// quarantined, or for content whose chunks were never all present). Returns the number
    /// of chunks fetched and per-peer reports.
    pub async fn repair(
        &self,
        store: &ChunkStore,
        content: &ContentId,
        source: &impl PeerSource,
        token: &CancellationToken,
    ) -> Result<(usize, Vec<PeerReport>), NodeError> {
        let Some(manifest) = store.manifest(content)? else {
            return Err(NodeError::UnknownContent {
                content: *content,
                detail: "not in the local store".into(),
            });
        };
        let held = store.held(&manifest);
        let needed: Vec<usize> = (0..held.len()).filter(|i| !held.get(*i)).collect();
        if needed.is_empty() {
            return Ok((0, Vec::new()));
        }
        let (mut peers, failed) = self.contact(source.peers(content).await?).await;
        let manifest = Arc::new(manifest);
        let sink = Arc::new(StoreSink {
            store: store.clone(),
            manifest: manifest.clone(),
        });
        let haves = self.haves(content, &manifest, &mut peers, &needed).await;
        let outcome = self
            .swarm(
                Job {
                    content,
                    manifest: &manifest,
                    needed: &needed,
                    sink,
                    prefix: None,
                    haves,
                },
                &mut peers,
                token,
            )
            .await;
        let reports: Vec<PeerReport> = self
            .finish_receipts(peers)
            .await
            .into_iter()
            .chain(failed)
            .collect();
        let (fetched, _) = outcome?;
        let ids: Vec<ChunkId> = needed.iter().map(|i| manifest.chunks[*i]).collect();
        store.sync_chunks(&ids)?;
        Ok((fetched, reports))
    }

    /// Contacts the peers `source` names for `content` and fetches its verified manifest
    /// (or takes `known`, a manifest already verified against the id): a [`ContentSwarm`]
    /// to fetch chunks from, a few at a time ([`Downloader::fetch_chunks`]), as the
    /// gateway does while it streams.
    pub async fn join(
        &self,
        content: &ContentId,
        source: &impl PeerSource,
        known: Option<Arc<Manifest>>,
    ) -> Result<ContentSwarm, NodeError> {
        let (mut peers, mut failed) = self.contact(source.peers(content).await?).await;
        if peers.is_empty() {
            return Err(no_peers(content, &failed));
        }
        let manifest = match known {
            Some(manifest) => manifest,
            None => Arc::new(
                self.fetch_manifest(content, &mut peers, &mut failed)
                    .await?,
            ),
        };
        Ok(ContentSwarm {
            content: *content,
            manifest,
            peers,
            failed,
            haves: None,
        })
    }

    /// Fetches chunks `needed` (indexes) of the swarm's content into `store`, verified,
    /// paid for and synced to disk; returns how many were fetched. The swarm's peers,
    /// payers and what each peer holds carry over to the next call (what peers hold is
    /// asked again once when it no longer covers `needed`).
    pub async fn fetch_chunks(
        &self,
        swarm: &mut ContentSwarm,
        store: &ChunkStore,
        needed: &[usize],
        token: &CancellationToken,
    ) -> Result<usize, NodeError> {
        let sink = Arc::new(StoreSink {
            store: store.clone(),
            manifest: swarm.manifest.clone(),
        });
        let mut fresh = false;
        let fetched = loop {
            let haves = match swarm.haves.take() {
                Some(haves) => haves,
                None => {
                    fresh = true;
                    self.haves(&swarm.content, &swarm.manifest, &mut swarm.peers, needed)
                        .await
                }
            };
            swarm.haves = Some(haves.clone());
            let outcome = self
                .swarm(
                    Job {
                        content: &swarm.content,
                        manifest: &swarm.manifest,
                        needed,
                        sink: sink.clone(),
                        prefix: None,
                        haves,
                    },
                    &mut swarm.peers,
                    token,
                )
                .await;
            match outcome {
                Err(NodeError::Incomplete { .. }) if !fresh => swarm.haves = None,
                other => break other?.0,
            }
        };
        let ids: Vec<ChunkId> = needed.iter().map(|i| swarm.manifest.chunks[*i]).collect();
        store.sync_chunks(&ids)?;
        Ok(fetched)
    }

    /// Which chunks of `manifest` each peer holds (asked of all peers at once); a peer that
    /// does not answer, or was dropped before, offers nothing (and is dropped). Nothing is
    /// asked when nothing is `needed`.
    async fn haves(
        &self,
        content: &ContentId,
        manifest: &Manifest,
        peers: &mut [Peer],
        needed: &[usize],
    ) -> Vec<Bitfield> {
        let stall = self.options.stall_timeout;
        let chunks = manifest.chunk_count();
        if needed.is_empty() {
            return vec![Bitfield::new(chunks); peers.len()];
        }
        let answers = futures_util::future::join_all(peers.iter().map(|peer| async move {
            if peer.report.dropped.is_some() {
                return Ok(None);
            }
            match peer.client.have(content, stall).await {
                Ok(wire) => Bitfield::from_hex(&wire.held, chunks)
                    .map(Some)
                    .ok_or_else(|| "sent a malformed bitfield".to_string()),
                Err(FetchError::Status { status: 404, .. }) => {
                    Err("does not have this content".to_string())
                }
                Err(e) => Err(format!("cannot list its chunks: {e}")),
            }
        }))
        .await;
        peers
            .iter_mut()
            .zip(answers)
            .map(|(peer, answer)| match answer {
                Ok(Some(have)) => have,
                Ok(None) => Bitfield::new(chunks),
                Err(reason) => {
                    tracing::info!(peer = %peer.client.url(), %reason, "peer has nothing to offer");
                    peer.report.dropped = Some(reason);
                    Bitfield::new(chunks)
                }
            })
            .collect()
    }

    /// Delivers the receipts still owed to the swarm's peers (bounded wait) and reports.
    pub async fn leave(&self, swarm: ContentSwarm) -> Vec<PeerReport> {
        self.finish_receipts(swarm.peers)
            .await
            .into_iter()
            .chain(swarm.failed)
            .collect()
    }

    /// Lets every payer deliver what it holds (bounded) and completes the reports.
    async fn finish_receipts(&self, peers: Vec<Peer>) -> Vec<PeerReport> {
        let deadline = tokio::time::Instant::now() + self.options.stall_timeout * 3;
        let mut reports = Vec::with_capacity(peers.len());
        for mut peer in peers {
            if let Some(payer) = peer.payer.take() {
                let paid = payer.finish(deadline).await;
                peer.report.receipts_sent = paid.sent;
                peer.report.receipts_accepted = paid.accepted;
                peer.report.receipts_rejected = paid.rejected;
                peer.report.receipts_undelivered = paid.undelivered;
            }
            peer.report.path = peer.client.iroh_path().await;
            reports.push(peer.report);
        }
        reports
    }

    /// The engine: fetch the job's chunks from `peers`. Returns (chunks fetched, bytes
    /// fetched).
    async fn swarm(
        &self,
        job: Job<'_>,
        peers: &mut [Peer],
        token: &CancellationToken,
    ) -> Result<(usize, u64), NodeError> {
        let Job {
            content,
            manifest,
            needed,
            sink,
            prefix,
            haves,
        } = job;
        let stall = self.options.stall_timeout;
        let total_bytes: u64 = needed
            .iter()
            .map(|i| u64::from(manifest.chunk_len(*i)))
            .sum();
        let bar = self.progress_bar(total_bytes);
        if needed.is_empty() {
            return Ok((0, 0));
        }
        let mut scheduler = Scheduler::new(manifest.chunk_count(), needed, haves);
        for (p, peer) in peers.iter_mut().enumerate() {
            if peer.report.dropped.is_some() {
                scheduler.drop_peer(p);
            }
            if peer.payer.is_none() {
                peer.payer = Some(Payer::start(peer.client.clone(), stall));
            }
        }
        let mut tasks: JoinSet<Outcome> = JoinSet::new();
        let mut running: HashMap<tokio::task::Id, (usize, usize, Instant)> = HashMap::new();
        let mut chunk_time: Option<Duration> = None;
        let mut handles: HashMap<(usize, usize), AbortHandle> = HashMap::new();
        let (mut fetched, mut fetched_bytes) = (0usize, 0u64);
        let concurrency = self.options.per_peer_concurrency;
        let mut grace: Option<tokio::time::Instant> = None;
        // Chunks 0..contiguous are complete; the prefix hasher follows them.
        let mut contiguous = 0;
        let mut advance_prefix = |scheduler: &Scheduler| {
            let before = contiguous;
            while contiguous < manifest.chunk_count() && scheduler.is_complete(contiguous) {
                contiguous += 1;
            }
            if (contiguous != before || contiguous == 0)
                && let Some(prefix) = &prefix
            {
                let _ = prefix.send(contiguous);
            }
        };
        advance_prefix(&scheduler);

        let drop_peer = |p: usize,
                         reason: String,
                         scheduler: &mut Scheduler,
                         handles: &mut HashMap<(usize, usize), AbortHandle>,
                         peers: &mut [Peer]| {
            tracing::warn!(peer = %peers[p].client.url(), %reason, "dropping peer");
            for index in scheduler.drop_peer(p) {
                if let Some(handle) = handles.remove(&(p, index)) {
                    handle.abort();
                }
            }
            peers[p].report.dropped.get_or_insert(reason);
        };

        loop {
            let now = tokio::time::Instant::now();
            let clock = now.into_std();
            // Duplicate a request in endgame only once it takes twice as long as chunks
            // usually do (at least 20 ms, at most half the stall timeout).
            let delay = chunk_time
                .map_or(Duration::from_millis(20), |t| t * 2)
                .clamp(
                    Duration::from_millis(20),
                    (stall / 2).max(Duration::from_millis(20)),
                );
            // The payers' answers that let a peer held at its receipt limit be asked again.
            let mut answers = Vec::new();
            for (p, peer) in peers.iter_mut().enumerate() {
                if peer.paused_until.is_some_and(|until| until > now) {
                    continue;
                }
                // A peer that refused for owed receipts is asked again only once the
                // receipts it is owed have been answered, and one request at a time until
                // it serves again.
                if peer.refusals > 0 && peer.payer.as_ref().is_some_and(|p| p.unanswered() > 0) {
                    peer.paused_until = Some(now + Duration::from_millis(20));
                    continue;
                }
                let mut concurrency = if peer.refusals > 0 { 1 } else { concurrency };
                // Never owe the peer more than it serves against: a request is sent only
                // while those in flight plus the receipts not yet answered stay within its
                // limit; past it, wait for the payer's answers instead of being refused.
                if let (Some(max), Some(payer)) = (peer.max_owed, &peer.payer)
                    && let Some((unanswered, watch)) = payer.unanswered_watch()
                {
                    // At least one: a peer naming 0 is not waited on for answers that
                    // nothing sent can bring.
                    let room = u64::from(max.max(1)).saturating_sub(unanswered);
                    let room = usize::try_from(room).unwrap_or(usize::MAX);
                    if room < concurrency {
                        concurrency = room;
                        // Room grows only as receipts are answered (none unanswered: the
                        // room is the whole limit and a request goes out).
                        if unanswered > 0 && scheduler.is_active(p) {
                            answers.push(watch);
                        }
                    }
                }
                while scheduler.is_active(p) && scheduler.inflight(p) < concurrency {
                    let Some(index) = scheduler.next_for(p, clock, delay) else {
                        break;
                    };
                    let client = peer.client.clone();
                    let id = manifest.chunks[index];
                    let header = self.signer.request_header(peer.node_id, id);
                    let len = manifest.chunk_len(index) as usize;
                    let sink = sink.clone();
                    let handle = tasks.spawn(async move {
                        let bytes = match client.chunk(&id, &header, len, stall).await {
                            Ok(bytes) => bytes,
                            Err(e) => return Outcome::Fetch(e),
                        };
                        let written = tokio::task::spawn_blocking(move || {
                            let actual = bytes.chunk_id();
                            if actual != id || bytes.len() != len {
                                return Outcome::BadBytes {
                                    actual,
                                    len: bytes.len(),
                                };
                            }
                            match sink.write(index, &bytes) {
                                Ok(()) => Outcome::Stored { len },
                                Err(e) => Outcome::Sink(e),
                            }
                        })
                        .await;
                        written.unwrap_or_else(|e| {
                            Outcome::Sink(NodeError::Usage(format!(
                                "verification task failed: {e}"
                            )))
                        })
                    });
                    running.insert(handle.id(), (p, index, clock));
                    handles.insert((p, index), handle);
                }
            }
            if scheduler.is_done() {
                // Endgame duplicates still in flight finish (and are paid) if they arrive
                // within a short grace period.
                if tasks.is_empty() {
                    break;
                }
                let deadline = *grace.get_or_insert_with(|| {
                    tokio::time::Instant::now() + stall.min(Duration::from_secs(1))
                });
                if tokio::time::Instant::now() >= deadline {
                    tasks.abort_all();
                    break;
                }
            }
            let wake = peers
                .iter()
                .enumerate()
                .filter(|(p, _)| scheduler.is_active(*p))
                .filter_map(|(_, peer)| peer.paused_until)
                .filter(|until| *until > now)
                .chain(grace)
                .chain(
                    scheduler
                        .endgame_wake(clock, delay)
                        .map(tokio::time::Instant::from_std),
                )
                .min();
            if tasks.is_empty() && wake.is_none() && answers.is_empty() {
                let missing = scheduler.remaining();
                let unavailable = scheduler.unavailable();
                for handle in handles.values() {
                    handle.abort();
                }
                return Err(NodeError::Incomplete {
                    content: *content,
                    missing,
                    total: manifest.chunk_count(),
                    detail: format!("{unavailable} chunk(s) are held by no usable peer"),
                });
            }
            let joined = tokio::select! {
                () = token.cancelled() => {
                    tasks.abort_all();
                    bar.abandon();
                    return Err(NodeError::Interrupted);
                }
                () = async { if let Some(wake) = wake { tokio::time::sleep_until(wake).await } else { std::future::pending().await } } => continue,
                () = Payer::any_answer(answers) => continue,
                joined = tasks.join_next_with_id() => joined,
            };
            let Some(joined) = joined else { continue };
            let (task, outcome) = match joined {
                Ok((task, outcome)) => (task, outcome),
                Err(e) if e.is_cancelled() => {
                    running.remove(&e.id());
                    continue;
                }
                Err(e) => {
                    // A panicked request: treat as a failed request.
                    if let Some((p, index, _)) = running.remove(&e.id()) {
                        handles.remove(&(p, index));
                        scheduler.failed(index, p);
                    }
                    tracing::error!(error = %e, "chunk request task failed");
                    continue;
                }
            };
            let Some((p, index, issued)) = running.remove(&task) else {
                continue;
            };
            handles.remove(&(p, index));
            match outcome {
                Outcome::Stored { len } => {
                    let took = issued.elapsed();
                    chunk_time = Some(chunk_time.map_or(took, |t| (t * 4 + took) / 5));
                    peers[p].failures = 0;
                    peers[p].refusals = 0;
                    let first = scheduler.complete(index, p);
                    if first {
                        advance_prefix(&scheduler);
                    }
                    let receipt =
                        self.signer
                            .sign(peers[p].node_id, manifest.chunks[index], len as u32);
                    let peer = &mut peers[p];
                    peer.report.chunks += 1;
                    peer.report.bytes += len as u64;
                    if let Some(payer) = &mut peer.payer
                        && payer.pay(receipt)
                    {
                        peer.report.receipts_sent += 1;
                    }
                    if first {
                        fetched += 1;
                        fetched_bytes += len as u64;
                        bar.inc(len as u64);
                    }
                }
                Outcome::BadBytes { actual, len } => {
                    let reason = format!(
                        "sent bad bytes for chunk {} ({len} bytes hashing to {})",
                        manifest.chunks[index].short(),
                        actual.short()
                    );
                    drop_peer(p, reason, &mut scheduler, &mut handles, peers);
                }
                Outcome::Fetch(FetchError::Stalled(after)) => {
                    drop_peer(
                        p,
                        format!("stalled: no data for {after:?}"),
                        &mut scheduler,
                        &mut handles,
                        peers,
                    );
                }
                Outcome::Fetch(FetchError::TooLong(limit)) => {
                    drop_peer(
                        p,
                        format!("sent more than {limit} bytes for a chunk"),
                        &mut scheduler,
                        &mut handles,
                        peers,
                    );
                }
                Outcome::Fetch(FetchError::Status { status: 404, .. }) => scheduler.lacks(index, p),
                Outcome::Fetch(FetchError::Status {
                    code: dsi_api::ErrorCode::EgressBudgetSpent,
                    message,
                    ..
                }) => {
                    // Hours or days away: not worth waiting for in this download.
                    drop_peer(
                        p,
                        format!("its egress budget is spent: {message}"),
                        &mut scheduler,
                        &mut handles,
                        peers,
                    );
                }
                // Owed receipts (429), or as many downloaders served as it takes (503): pay,
                // pause, ask again.
                Outcome::Fetch(FetchError::Status {
                    status,
                    code,
                    message,
                }) if status == 429 || code == dsi_api::ErrorCode::TooManyDownloaders => {
                    scheduler.failed(index, p);
                    let now = tokio::time::Instant::now();
                    let peer = &mut peers[p];
                    // Requests already in flight when the pause began are refused too;
                    // they do not count again.
                    if peer.paused_until.is_none_or(|until| until <= now) {
                        peer.refusals += 1;
                        if peer.refusals >= self.options.max_peer_refusals {
                            drop_peer(
                                p,
                                format!(
                                    "refused {} times in a row, last: {code}: {message}",
                                    peer.refusals
                                ),
                                &mut scheduler,
                                &mut handles,
                                peers,
                            );
                        } else {
                            let pause = refusal_pause(peer.refusals);
                            tracing::debug!(peer = %peer.client.url(), refusals = peer.refusals, ?pause, %code, "refused (owed receipts or busy); paying and pausing");
                            peer.paused_until = Some(now + pause);
                        }
                    }
                }
                Outcome::Fetch(error) => {
                    scheduler.failed(index, p);
                    let peer = &mut peers[p];
                    peer.failures += 1;
                    if peer.failures >= self.options.max_peer_failures {
                        drop_peer(
                            p,
                            format!(
                                "failed {} requests in a row, last: {error}",
                                self.options.max_peer_failures
                            ),
                            &mut scheduler,
                            &mut handles,
                            peers,
                        );
                    } else {
                        peer.paused_until = Some(
                            tokio::time::Instant::now()
                                + Duration::from_millis(100 * u64::from(peer.failures)),
                        );
                    }
                }
                Outcome::Sink(error) => {
                    tasks.abort_all();
                    return Err(error);
                }
            }
            let active = (0..peers.len()).filter(|p| scheduler.is_active(*p)).count();
            bar.set_message(format!("{active} peer(s)"));
        }
        bar.finish_and_clear();
        Ok((fetched, fetched_bytes))
    }
}

/// No peer could be contacted for `content`: why, peer by peer.
fn no_peers(content: &ContentId, failed: &[PeerReport]) -> NodeError {
    let detail = failed
        .iter()
        .map(|p| format!("{}: {}", p.url, p.dropped.as_deref().unwrap_or("")))
        .collect::<Vec<_>>()
        .join("; ");
    NodeError::NoPeers {
        content: *content,
        detail: if detail.is_empty() {
            "no peers known for it".into()
        } else {
            detail
        },
    }
}

/// How long to leave a peer alone after its `refusals`-th refusal in a row for owed
/// receipts: 100 ms doubling up to 5 s, each with ±25 % jitter so that many downloaders
/// refused together do not come back together.
fn refusal_pause(refusals: u32) -> Duration {
    let base = Duration::from_millis(100)
        .saturating_mul(1 << refusals.saturating_sub(1).min(6))
        .min(Duration::from_secs(5));
    base.mul_f64(0.75 + rand::random::<f64>() / 2.0)
}

/// Which chunk slots of `path` already hold the manifest's chunks.
async fn scan_file(path: &Path, manifest: &Manifest) -> Result<Vec<bool>, NodeError> {
    let path = path.to_path_buf();
    let manifest = manifest.clone();
    tokio::task::spawn_blocking(move || {
        let file = File::open(&path).map_err(|e| NodeError::Io {
            action: "cannot open",
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut buffer = vec![0u8; manifest.chunk_size as usize];
        let mut present = Vec::with_capacity(manifest.chunk_count());
        for (i, id) in manifest.chunks.iter().enumerate() {
            let range = manifest.chunk_range(i);
            let n = (range.end - range.start) as usize;
            let ok = range.end <= len
                && file.read_exact_at(&mut buffer[..n], range.start).is_ok()
                && ChunkId::of(&buffer[..n]) == *id;
            present.push(ok);
        }
        Ok(present)
    })
    .await
    .map_err(|e| NodeError::Usage(format!("scan task failed: {e}")))?
}

/// Hashes `file` (the part file at `path`, named in errors) with SHA-256 in chunk order, as
/// far as the prefix it is told about is complete, so that hashing the output overlaps the
/// download. Ends with the digest once the prefix covers every chunk, or with an error if
/// the sender goes away first. It reads through the handle it is given: the part file may
/// be renamed to the output before the task first runs (a small or empty download).
fn prefix_hasher(
    file: File,
    path: PathBuf,
    manifest: &Manifest,
) -> (
    std::sync::mpsc::Sender<usize>,
    tokio::task::JoinHandle<Result<String, NodeError>>,
) {
    let (tx, rx) = std::sync::mpsc::channel::<usize>();
    let manifest = manifest.clone();
    let task = tokio::task::spawn_blocking(move || {
        let io = |e: std::io::Error| NodeError::Io {
            action: "cannot hash",
            path: path.clone(),
            reason: e.to_string(),
        };
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; manifest.chunk_size as usize];
        let mut hashed = 0;
        while hashed < manifest.chunk_count() {
            let mut target = rx.recv().map_err(|_| NodeError::Interrupted)?;
            while let Ok(newer) = rx.try_recv() {
                target = newer;
            }
            while hashed < target.min(manifest.chunk_count()) {
                let range = manifest.chunk_range(hashed);
                let piece = &mut buffer[..(range.end - range.start) as usize];
                file.read_exact_at(piece, range.start).map_err(io)?;
                hasher.update(&*piece);
                hashed += 1;
            }
        }
        Ok(hex::encode(hasher.finalize()))
    });
    (tx, task)
}

/// SHA-256 of a file, hex.
pub async fn sha256_file(path: &Path) -> Result<String, NodeError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut file = File::open(&path).map_err(|e| NodeError::Io {
            action: "cannot open",
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buffer).map_err(|e| NodeError::Io {
                action: "cannot read",
                path: path.clone(),
                reason: e.to_string(),
            })?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
        }
        Ok(hex::encode(hasher.finalize()))
    })
    .await
    .map_err(|e| NodeError::Usage(format!("hash task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    #[tokio::test]
    async fn the_prefix_hasher_reads_a_part_file_renamed_before_it_starts() {
        // A small or empty download can finish, and its part file be renamed to the
        // output, before the hashing task first runs: it must read through its handle.
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("out.dsi-part");
        let bytes = vec![7u8; 20_000];
        std::fs::write(&part, &bytes).unwrap();
        let size = dsi_protocol::manifest::MIN_CHUNK_SIZE;
        let chunks = bytes.chunks(size as usize).map(ChunkId::of).collect();
        let manifest = Manifest::new("out", bytes.len() as u64, size, chunks).unwrap();
        let file = File::open(&part).unwrap();
        std::fs::rename(&part, dir.path().join("out")).unwrap();
        let (prefix, hasher) = prefix_hasher(file, part, &manifest);
        prefix.send(manifest.chunk_count()).unwrap();
        assert_eq!(
            hasher.await.unwrap().unwrap(),
            hex::encode(Sha256::digest(&bytes))
        );
    }
}
