//! # oracle: the off-chain half of DSI's money path
//!
//! A tokio + axum service that
//!
//! - runs the **tracker**: nodes announce (signed) where they serve, where their rewards go
//!   and what they hold; downloaders ask which live nodes hold a content; holder counts
//!   feed the rarity multiplier ([`api`]);
//! - **ingests receipts** in batches, applying the named anti-fraud rules and storing what
//!   passes durably and idempotently ([`ingest`]);
//! - **audits** announced holdings by fetching random chunks ([`audit`]) and keeps each
//!   node's reputation with the `protocol` crate's Beta-style rule;
//! - **closes epochs**: aggregates receipts and audited holdings with rarity, demand,
//!   boosts and reputation into per-seeder amounts, builds the Merkle tree, stores every
//!   leaf with its proof and publishes the epoch's batch so anyone can recompute the root
//!   with `oracle verify-epoch` ([`close`], [`batch`]).
//!
//! Storage is SQLite by default and PostgreSQL on request ([`store`]). It does not own
//! the reward rule or any wire format (those are in `dsi-protocol`), nor the chain.

pub mod api;
pub mod audit;
pub mod batch;
pub mod chain;
pub mod cli;
pub mod close;
pub mod commands;
pub mod config;
pub mod data_dir;
pub mod ingest;
pub mod metrics;
pub mod rules;
pub mod store;
pub mod submit;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dsi_protocol::{ChunkId, SecretKey};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, RwLock};
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use data_dir::DataDir;
pub use metrics::Metrics;
pub use store::Store;

/// Everything the handlers and background tasks share.
#[derive(Debug)]
pub struct OracleState {
    /// Configuration.
    pub config: Config,
    /// The database.
    pub store: Store,
    /// The oracle's identity (audits).
    pub key: SecretKey,
    /// Bearer token for admin calls.
    pub admin_token: String,
    /// Where batches are published.
    pub batches_dir: PathBuf,
    /// Length of every registered chunk (a cache of the `chunks` table).
    pub chunk_lengths: RwLock<HashMap<ChunkId, u32>>,
    /// Serializes receipt ingest with epoch close.
    pub ingest_lock: Mutex<()>,
    /// Serializes announcements (the per-location bound counts, then writes).
    pub announce_lock: Mutex<()>,
    /// Serializes mirroring the chain's deposits into the ledger (it reads what the
    /// ledger has, then adds the difference: two at once would add it twice).
    pub mirror_lock: Mutex<()>,
    /// Host names of announced URLs being resolved at once
    /// (`tracker.max_concurrent_resolutions`): a lookup holds one of the runtime's
    /// blocking threads for up to its timeout, so free announcements naming hosts behind
    /// a dead name server must not take them all.
    pub resolve_slots: tokio::sync::Semaphore,
    /// Counters.
    pub metrics: Metrics,
    /// The chain client, when `[chain] deployment` is configured.
    pub chain: Option<chain::Chain>,
    /// Price per byte, fee and vetting in force: `[market]` without a chain; with one, the
    /// `multipliers` contract's as the last close or chain round read them (the public
    /// routes show and apply these, and never read the chain themselves).
    market: std::sync::Mutex<dsi_protocol::reward::MarketParams>,
    /// The last `GET /v1/replication` answer and when it was made (a public route reading
    /// every funded content: answered from this for a few seconds).
    pub replication:
        tokio::sync::Mutex<Option<(std::time::Instant, Arc<dsi_api::oracle::Replication>)>>,
    /// What each seeder claimed on chain in all and what its claimable leaves still owe,
    /// as last read, and when (`GET /v1/seeders/{node}` reads the chain at most every 10 s
    /// a seeder, at most 2 seeders at once, remembering at most 4096).
    pub claimed: std::sync::Mutex<ClaimedCache>,
    /// Chain reads public routes may make at once.
    pub chain_reads: tokio::sync::Semaphore,
}

/// Per seeder: when its claims were read from the chain, what it claimed in all, and what
/// its claimable leaves still owe.
pub type ClaimedCache = HashMap<dsi_protocol::NodeId, (std::time::Instant, (u128, u128))>;

impl OracleState {
    /// Builds the state over an open store.
    pub async fn new(
        config: Config,
        store: Store,
        key: SecretKey,
        admin_token: String,
        batches_dir: PathBuf,
    ) -> Result<Arc<Self>, store::StoreError> {
        let lengths = store.chunk_lengths().await?;
        let resolve_slots =
            tokio::sync::Semaphore::new(config.tracker.max_concurrent_resolutions as usize);
        let config_market = config.market;
        Ok(Arc::new(Self {
            config,
            store,
            key,
            admin_token,
            batches_dir,
            chunk_lengths: RwLock::new(lengths),
            ingest_lock: Mutex::new(()),
            announce_lock: Mutex::new(()),
            mirror_lock: Mutex::new(()),
            resolve_slots,
            metrics: Metrics::default(),
            chain: None,
            market: std::sync::Mutex::new(config_market),
            replication: tokio::sync::Mutex::new(None),
            claimed: std::sync::Mutex::new(HashMap::new()),
            chain_reads: tokio::sync::Semaphore::new(2),
        }))
    }

    /// Price per byte, fee and vetting in force (see the field).
    pub fn market(&self) -> dsi_protocol::reward::MarketParams {
        match self.market.lock() {
            Ok(market) => *market,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    /// Records the market a close read from the chain.
    pub fn set_market(&self, market: dsi_protocol::reward::MarketParams) {
        match self.market.lock() {
            Ok(mut held) => *held = market,
            Err(poisoned) => *poisoned.into_inner() = market,
        }
    }

    /// The same state with a chain client.
    pub fn with_chain(self: Arc<Self>, chain: Option<chain::Chain>) -> Arc<Self> {
        match Arc::try_unwrap(self) {
            Ok(mut state) => {
                state.chain = chain;
                Arc::new(state)
            }
            Err(shared) => shared,
        }
    }

    /// Opens the state for a data directory: its config (with `database_url` overriding
    /// the configured one when given), key, token and database.
    pub async fn open(
        data_dir: &DataDir,
        database_url: Option<String>,
    ) -> anyhow::Result<Arc<Self>> {
        use anyhow::Context;
        let config = data_dir.config()?;
        let key = data_dir.key()?;
        let token = data_dir.admin_token()?;
        let url = database_url
            .filter(|u| !u.is_empty())
            .or_else(|| Some(config.database_url.clone()).filter(|u| !u.is_empty()))
            .unwrap_or_else(|| data_dir.sqlite_url());
        let store = Store::connect(&url)
            .await
            .with_context(|| format!("cannot open the database {}", redact(&url)))?;
        let chain = if config.chain.deployment.is_empty() {
            None
        } else {
            let deployment =
                chain::Deployment::load(std::path::Path::new(&config.chain.deployment))?;
            let signer = chain::Signer::from_file(std::path::Path::new(&config.chain.suri_file))
                .context("[chain] suri_file")?;
            Some(chain::Chain::new(
                deployment,
                Some(config.chain.url.clone()),
                signer,
            )?)
        };
        Ok(Self::new(config, store, key, token, data_dir.batches())
            .await?
            .with_chain(chain))
    }
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// Serves the API on `listener` and closes due epochs on a timer until `cancel` fires.
pub async fn serve(
    state: Arc<OracleState>,
    listener: TcpListener,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    if state.config.close.auto {
        let state = state.clone();
        let cancel = cancel.clone();
        tasks.spawn(async move {
            let tick =
                Duration::from_millis((state.config.epochs.length_ms / 10).clamp(200, 10_000));
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(tick) => {}
                }
                if let Err(error) = close::close_due(&state).await {
                    tracing::error!(%error, "closing due epochs failed");
                }
            }
        });
    }
    if let Some(chain) = state.chain.clone() {
        let state = state.clone();
        let cancel = cancel.clone();
        tasks.spawn(async move {
            let tick = Duration::from_millis(state.config.chain.poll_ms.max(100));
            loop {
                // The market in force, for the public routes (read here, on the timer,
                // never on a request); a restart shows it from the first round.
                match chain.market().await {
                    Ok(market) => state.set_market(market),
                    Err(error) => tracing::warn!(%error, "reading the market failed; will retry"),
                }
                if let Err(error) = submit::sync(&state, &chain).await {
                    tracing::warn!(%error, "chain submission round failed; will retry");
                }
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(tick) => {}
                }
            }
        });
    }
    // Announcements are located by the address they come from.
    let app = api::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let shutdown = cancel.clone();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    cancel.cancel();
    while tasks.join_next().await.is_some() {}
    result
}

/// Binds `addr` (use port 0 for any) and returns the listener with its address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}
