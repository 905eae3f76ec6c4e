//! One simulated network: a real oracle in-process (SQLite in a temporary directory, its
//! HTTP API called in-process), nodes whose audit answers come from loopback HTTP servers
//! (one per simulated network, `127.0.L.1`, answering for many node keys), real manifests,
//! announcements and signed receipts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Request, StatusCode};
use dsi_api::oracle::Leaf;
use dsi_protocol::audit::{SignedAuditChallenge, possession_proof, sign_answer};
use dsi_protocol::reward::{EpochRewards, aggregate};
use dsi_protocol::{
    Announcement, ChunkId, ContentId, Epoch, Manifest, NetworkId, NodeId, PayoutAccount, Receipt,
    SecretKey, SignedAnnouncement, SignedReceipt, now_ms,
};
use oracle::{Config, OracleState, Store};
use tower::ServiceExt;

const ADMIN: &str = "sim-admin-token";

/// Chunk bytes by id.
pub type Chunks = Arc<HashMap<ChunkId, Vec<u8>>>;

/// A registered content: its manifest and bytes.
#[derive(Clone)]
pub struct Content {
    /// The manifest.
    pub manifest: Manifest,
    /// Its chunks.
    pub chunks: Chunks,
}

impl Content {
    /// The content id.
    pub fn id(&self) -> ContentId {
        self.manifest.content_id()
    }

    /// The chunks with the first `keep` of them only (a node holding part of it).
    pub fn part(&self, keep: usize) -> Chunks {
        Arc::new(
            self.manifest
                .chunks
                .iter()
                .take(keep)
                .filter_map(|c| self.chunks.get(c).map(|b| (*c, b.clone())))
                .collect(),
        )
    }
}

type Registry = Arc<RwLock<Vec<(Arc<SecretKey>, Chunks)>>>;

/// A loopback HTTP server standing for one network: answers audits for every node key
/// registered on it (`/n/{index}/v1/audit`).
struct Site {
    base: String,
    nodes: Registry,
    _stop: tokio_util::sync::DropGuard,
}

impl Site {
    async fn start(location: u8, network: NetworkId) -> Result<Self> {
        let nodes: Registry = Arc::default();
        let shared = (nodes.clone(), Arc::new(network));
        let app = axum::Router::new()
            .route("/n/{index}/v1/audit", axum::routing::post(answer))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, location, 1], 0)))
            .await
            .with_context(|| format!("binding 127.0.{location}.1"))?;
        let addr = listener.local_addr()?;
        let cancel = tokio_util::sync::CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
        });
        Ok(Self {
            base: format!("http://{addr}"),
            nodes,
            _stop: cancel.drop_guard(),
        })
    }
}

async fn answer(
    State((nodes, network)): State<(Registry, Arc<NetworkId>)>,
    Path(index): Path<usize>,
    axum::Json(signed): axum::Json<SignedAuditChallenge>,
) -> (StatusCode, Vec<u8>) {
    let Some((key, chunks)) = nodes.read().ok().and_then(|n| n.get(index).cloned()) else {
        return (StatusCode::NOT_FOUND, Vec::new());
    };
    let mut out = Vec::new();
    for id in &signed.challenge.chunks {
        let Some(bytes) = chunks.get(id) else {
            return (StatusCode::NOT_FOUND, Vec::new());
        };
        out.push(bytes.clone());
    }
    let proof = possession_proof(&signed.challenge.nonce, out.iter().map(Vec::as_slice));
    let signature = sign_answer(&key, &network, &signed.challenge, &proof);
    let mut body = signature.0.to_vec();
    for bytes in out {
        body.extend_from_slice(&bytes);
    }
    (StatusCode::OK, body)
}

/// What one [`World::close`] closed.
pub struct Closed {
    /// The leaves of every epoch it closed.
    pub leaves: Vec<Leaf>,
    /// The current epoch's rewards, recomputed from its published batch.
    pub rewards: EpochRewards,
    /// How many epochs it closed (more than one when the round took longer than an epoch).
    pub epochs: usize,
    /// How long the round took, from the epoch's start (or the world's making) to the end
    /// of its close: what must fit in an epoch.
    pub busy: Duration,
}

/// The simulated network.
pub struct World {
    /// The oracle.
    pub state: Arc<OracleState>,
    /// When the latest [`World::close`] returned (the current epoch's start), or the world
    /// was made.
    epoch_started: std::time::Instant,
    sites: HashMap<u8, Site>,
    nonce: u64,
    _dir: tempfile::TempDir,
}

/// A deterministic key from a label and a number.
pub fn key(label: u8, n: u64) -> SecretKey {
    let mut seed = [label; 32];
    seed[..8].copy_from_slice(&n.to_le_bytes());
    SecretKey::from_seed(&seed)
}

impl World {
    /// A fresh oracle: epochs of `epoch_ms`, audits on (3 chunks, loopback allowed), the
    /// `subsidized` list, `budget` units of subsidy per epoch.
    pub async fn new(epoch_ms: u64, budget: u64, subsidized: &[ContentId]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut config = Config::default();
        config.epochs.length_ms = epoch_ms;
        config.close.auto = false;
        config.close.budget = budget;
        config.audit.allow_private_addresses = true;
        config.audit.timeout_ms = 5_000;
        config.audit.concurrency = 32;
        // The simulator measures the reward rule with every key announced: the
        // per-location bound would refuse most of a replica farm's keys before the rule
        // ever saw them (`oracle/tests/api.rs` tests the bound).
        config.tracker.max_nodes_per_location = 0;
        config.subsidized = subsidized
            .iter()
            .map(|c| oracle::config::Boost {
                content: *c,
                boost: dsi_protocol::fixed::Ppm::ONE,
            })
            .collect();
        let store =
            Store::connect(&format!("sqlite://{}", dir.path().join("o.db").display())).await?;
        let state = OracleState::new(
            config,
            store,
            key(0xaa, 0),
            ADMIN.into(),
            dir.path().join("batches"),
        )
        .await?;
        Ok(Self {
            state,
            epoch_started: std::time::Instant::now(),
            sites: HashMap::new(),
            nonce: 0,
            _dir: dir,
        })
    }

    fn network(&self) -> &NetworkId {
        &self.state.config.network
    }

    async fn call(&self, path: &str, body: Vec<u8>, headers: &[(&str, String)]) -> Result<()> {
        self.call_from(
            SocketAddr::from(([127, 0, 0, 1], 40_000)),
            path,
            body,
            headers,
        )
        .await
    }

    /// A call as if its connection came from `peer` (the oracle locates an announcing node
    /// by it, as `oracle::serve` provides it).
    async fn call_from(
        &self,
        peer: SocketAddr,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> Result<()> {
        let mut request = Request::post(path).header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let mut request = request.body(Body::from(body))?;
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        let answer = oracle::api::router(self.state.clone())
            .oneshot(request)
            .await?;
        let status = answer.status();
        if !status.is_success() {
            let body = axum::body::to_bytes(answer.into_body(), 1 << 16).await?;
            bail!("{path}: {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(())
    }

    /// Makes and registers a content of `chunks` chunks of 16 KiB from `seed`.
    pub async fn content(&self, seed: u64, chunks: usize) -> Result<Content> {
        let content = make_content(seed, chunks)?;
        let bytes = content.manifest.to_bytes();
        let header = dsi_api::registrant::RegistrantHeader::sign(
            &key(0xab, seed),
            self.network(),
            content.id(),
            now_ms(),
        );
        self.call(
            "/v1/manifests",
            bytes,
            &[(dsi_api::REGISTRANT_HEADER, header.to_string())],
        )
        .await?;
        Ok(content)
    }
}

/// A content of `chunks` chunks of 16 KiB, its bytes a function of `seed`.
pub fn make_content(seed: u64, chunks: usize) -> Result<Content> {
    let size = 16 * 1024;
    let mut map = HashMap::new();
    let mut ids = Vec::new();
    for i in 0..chunks {
        let mut x = (seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ((i as u64) << 32)) | 1;
        let bytes: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let id = ChunkId::of(&bytes);
        ids.push(id);
        map.insert(id, bytes);
    }
    let manifest = Manifest::new(
        &format!("content-{seed}"),
        (size * chunks) as u64,
        size as u32,
        ids,
    )?;
    Ok(Content {
        manifest,
        chunks: Arc::new(map),
    })
}

impl World {
    /// A node on network `location` (127.0.L.1) holding `holds` and announcing
    /// `announces`, paid to `payout`.
    pub async fn node(
        &mut self,
        location: u8,
        node: &SecretKey,
        holds: Chunks,
        announces: Vec<ContentId>,
    ) -> Result<NodeId> {
        self.node_via([127, 0, location, 1], location, node, holds, announces)
            .await
    }

    /// A node served (and audited) on network `location` (127.0.L.1) that sends its
    /// announcement from `via` (a proxy in another network, when they differ).
    pub async fn node_via(
        &mut self,
        via: [u8; 4],
        location: u8,
        node: &SecretKey,
        holds: Chunks,
        announces: Vec<ContentId>,
    ) -> Result<NodeId> {
        if !self.sites.contains_key(&location) {
            let site = Site::start(location, self.network().clone()).await?;
            self.sites.insert(location, site);
        }
        let site = &self.sites[&location];
        let index = {
            let mut nodes = site
                .nodes
                .write()
                .map_err(|_| anyhow::anyhow!("site lock"))?;
            nodes.push((Arc::new(node.clone()), holds));
            nodes.len() - 1
        };
        let url = format!("{}/n/{index}", site.base);
        let id = node.node_id();
        let mut payout = [0u8; 20];
        payout.copy_from_slice(&id.0[..20]);
        let signed = SignedAnnouncement::sign(
            Announcement {
                node: id,
                url,
                payout: PayoutAccount(payout),
                contents: announces,
                issued_at_ms: now_ms(),
                endpoint: None,
            },
            self.network(),
            node,
        );
        // The oracle locates nodes by where they announce from.
        self.call_from(
            SocketAddr::from((via, 40_000)),
            "/v1/announce",
            serde_json::to_vec(&signed)?,
            &[],
        )
        .await?;
        Ok(id)
    }

    /// Records a sponsorship of `content` from the current epoch on.
    pub async fn sponsor(&self, content: ContentId, per_epoch: u128, replicas: u32) -> Result<()> {
        let body = serde_json::json!({
            "content": content.to_string(),
            "per_epoch": per_epoch.to_string(),
            "epochs": 1000,
            "replicas": replicas,
        });
        self.call(
            "/v1/sponsors",
            body.to_string().into_bytes(),
            &[("authorization", format!("Bearer {ADMIN}"))],
        )
        .await
    }

    /// Adds `amount` to `downloader`'s credit.
    pub async fn credit(&self, downloader: NodeId, amount: u128) -> Result<()> {
        let body = serde_json::json!({
            "downloader": downloader.to_string(),
            "amount": amount.to_string(),
        });
        self.call(
            "/v1/credits",
            body.to_string().into_bytes(),
            &[("authorization", format!("Bearer {ADMIN}"))],
        )
        .await
    }

    /// What `downloader`'s credit paid so far.
    pub async fn spent(&self, downloader: NodeId) -> Result<u128> {
        Ok(self.state.store.credit(&downloader).await?.1)
    }

    /// Receipts `downloader` signs for every chunk of `content` served by `seeder`, in the
    /// current epoch.
    pub fn receipts(
        &mut self,
        downloader: &SecretKey,
        seeder: NodeId,
        content: &Content,
    ) -> Vec<SignedReceipt> {
        let now = now_ms();
        let epoch = self.state.config.epochs.epoch_at(now);
        (0..content.manifest.chunks.len())
            .map(|i| {
                self.nonce += 1;
                SignedReceipt::sign(
                    Receipt {
                        epoch,
                        seeder,
                        downloader: downloader.node_id(),
                        chunk: content.manifest.chunks[i],
                        bytes: content.manifest.chunk_len(i),
                        issued_at_ms: now,
                        nonce: self.nonce,
                    },
                    self.network(),
                    downloader,
                )
            })
            .collect()
    }

    /// Hands receipts to the oracle's ingest (its rules and signature checks), in batches;
    /// returns how many were accepted.
    pub async fn ingest(&self, receipts: Vec<SignedReceipt>) -> Result<usize> {
        let mut accepted = 0;
        for batch in receipts.chunks(self.state.config.ingest.max_batch.max(1)) {
            let verdicts = oracle::ingest::ingest(&self.state, batch.to_vec()).await?;
            accepted += verdicts.iter().filter(|v| v.rejection().is_none()).count();
        }
        Ok(accepted)
    }

    /// Closes the current epoch (audits every live node over HTTP), then waits for the next
    /// epoch.
    pub async fn close(&mut self) -> Result<Closed> {
        let epoch = self.state.config.epochs.epoch_at(now_ms());
        let closed = oracle::close::close_through(&self.state, epoch).await?;
        ensure!(
            closed.last().map(|c| c.epoch) == Some(epoch),
            "epoch {epoch} did not close"
        );
        // Every epoch this call closed (a slow round can leave one behind): all its leaves.
        let mut leaves = Vec::new();
        for record in &closed {
            leaves.extend(self.state.store.leaves(record.epoch).await?);
        }
        let file = self
            .state
            .batches_dir
            .join(oracle::close::batch_file_name(epoch));
        let batch = oracle::batch::decode_batch(&std::fs::read(file)?)
            .map_err(|e| anyhow::anyhow!("batch: {e}"))?;
        let rewards = aggregate(&batch.inputs, batch.receipts.iter().map(|r| &r.receipt))?;
        let busy = self.epoch_started.elapsed();
        while self.state.config.epochs.epoch_at(now_ms()) == epoch {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.epoch_started = std::time::Instant::now();
        Ok(Closed {
            leaves,
            rewards,
            epochs: closed.len(),
            busy,
        })
    }

    /// The current epoch.
    pub fn epoch(&self) -> Epoch {
        self.state.config.epochs.epoch_at(now_ms())
    }
}
