//! Node configuration: a documented struct whose `Default` is a working local setup.
//!
//! Sources, later ones winning: built-in defaults, `config.toml` in the data directory,
//! environment variables `DSI_<SECTION>__<KEY>` (for example `DSI_NETWORK=dsi-devnet`,
//! `DSI_SERVE__LISTEN=127.0.0.1:7100`), then command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use dsi_protocol::{EpochSchedule, NetworkId, NodeId};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::NodeError;

/// How a seeder checks chunks it reads from disk before serving them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum VerifyMode {
    /// Hash a chunk the first time it is served and again whenever its file changes
    /// (size or modification time). The default: corruption from edits is caught, and
    /// `node-lite verify` scrubs for silent bit rot.
    #[default]
    Cached,
    /// Hash every chunk on every read.
    Always,
    /// Never hash before serving; downloaders still verify (they always do). For
    /// benchmarking and for testing downloaders against a peer that sends bad bytes.
    Never,
}

/// Everything a node can be configured with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The network this node belongs to; part of every receipt's signing bytes.
    pub network: NetworkId,
    /// How wall-clock time maps to reward epochs.
    pub epochs: EpochSchedule,
    /// Serving chunks and collecting receipts.
    pub serve: ServeConfig,
    /// Downloading from the swarm.
    pub download: DownloadConfig,
    /// The oracle's tracker: announcing, finding peers, forwarding receipts.
    pub tracker: TrackerConfig,
    /// The HTTP gateway (`GET /content/{id}`).
    pub gateway: GatewayConfig,
    /// The chunk store.
    pub storage: StorageConfig,
    /// The seeder dashboard (`/dashboard`).
    pub dashboard: DashboardConfig,
    /// Node-to-node connections over iroh (QUIC, hole punching, the network's relays).
    pub iroh: IrohConfig,
}

/// `[iroh]`: node-to-node connections over iroh (`node_lite::transport`). Off until the
/// network's relay is named.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IrohConfig {
    /// Relay URLs of the network (`dsi-relay`, run by the network's operator); empty: no
    /// iroh endpoint, HTTP only. With a relay, `serve` accepts peers over iroh and `get`
    /// reaches peers named by node id.
    pub relays: Vec<String>,
    /// UDP sockets for direct connections and hole punching (port 0: any free port);
    /// empty: relay only. Used only when `relays` is set.
    pub bind: Vec<SocketAddr>,
    /// Most peers connected over iroh at once (`serve`); half of them (at least one) may be
    /// peers reached only through a relay.
    pub max_connections: usize,
    /// The UDP port of the relays' QUIC address discovery (`dsi-relay --qad`): behind a
    /// home router the node learns there the public address its router gives it, so
    /// that peers behind routers too can punch holes to it. Unset: none.
    pub qad_port: Option<u16>,
    /// A PEM file of certificates trusted beside the web's roots for the node's TLS to
    /// relays (address discovery, HTTPS relay URLs): the network operator's relay
    /// certificate (`dsi-relay --write-cert`), whose key can pass for any such server.
    /// A relative path is taken from the working directory.
    pub relay_ca_file: Option<PathBuf>,
}

impl Default for IrohConfig {
    fn default() -> Self {
        Self {
            relays: Vec::new(),
            bind: vec![SocketAddr::from(([0, 0, 0, 0], 0))],
            max_connections: 256,
            qad_port: None,
            relay_ca_file: None,
        }
    }
}

impl IrohConfig {
    /// Whether iroh is on (a relay is named).
    pub fn enabled(&self) -> bool {
        !self.relays.is_empty()
    }

    /// The relays and sockets of the endpoint (`dsi_transport`).
    pub fn endpoint(&self) -> dsi_transport::EndpointConfig {
        dsi_transport::EndpointConfig {
            relays: self.relays.clone(),
            bind: self.bind.clone(),
            qad_port: self.qad_port,
            relay_ca_file: self.relay_ca_file.clone(),
        }
    }
}

/// `[dashboard]`: the page at `/dashboard` and its data at `/dashboard/status.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    /// Who may see it (others get 403 `client_refused`): it shows earnings, payout and
    /// holdings.
    pub clients: Clients,
}

/// `[storage]`: the chunk store on disk.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// The most bytes the stored chunks may take (`"50GiB"`, or a number of bytes); 0: no
    /// quota. When `add` or the gateway needs room, the least valuable unpinned content is
    /// evicted (`node-lite/src/quota.rs`).
    #[serde(deserialize_with = "crate::size::deserialize_size")]
    pub max_bytes: u64,
}

/// Who may use the HTTP gateway, or see the dashboard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Clients {
    /// Programs on this machine: the connection comes from a loopback address, the `Host`
    /// is a loopback address or `localhost`, and a browser request comes from a page of
    /// the gateway itself (not another site: `Sec-Fetch-Site`, `Origin`, `Referer`).
    #[default]
    Loopback,
    /// Anyone who can reach the listener, browsers on any site included: a public gateway,
    /// whose reads and fetches the operator pays for.
    Anyone,
}

/// `[gateway]`: streaming content over HTTP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Who may use the gateway (others get 403 `client_refused`). The gateway's reads are
    /// not paid with receipts, and its fetches spend this node's credit and disk.
    pub clients: Clients,
    /// Fetch the chunks a request needs and the node lacks from the swarm (verified, paid
    /// with this node's receipts, kept in its store); false: serve only what is held.
    pub fetch: bool,
    /// Requests fetching from the swarm at once (1 to 1024); more are answered 503
    /// `gateway_busy`.
    pub max_concurrent_fetches: usize,
    /// Chunks fetched per round while a response streams (1 to 256).
    pub window_chunks: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            clients: Clients::Loopback,
            fetch: true,
            max_concurrent_fetches: 8,
            window_chunks: 8,
        }
    }
}

/// `[tracker]`: the oracle this node reports to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerConfig {
    /// The oracle's base URL (`http://127.0.0.1:7400`); empty: no tracker.
    pub url: String,
    /// The H160 account (`0x` + 40 hex) that receives this node's rewards; needed to
    /// announce.
    pub payout: String,
    /// The URL other nodes reach this one at; empty: `iroh://NODE_ID/` when iroh is on and
    /// HTTP listens on loopback only (peers and audits come over iroh), else
    /// `http://<listen address>`.
    pub public_url: String,
    /// Seconds between announcements (the tracker forgets a node after 300 s by default).
    pub announce_interval_secs: u64,
    /// Seconds between receipt forwarding rounds.
    pub forward_interval_secs: u64,
    /// Most receipts per forwarded batch.
    pub forward_batch: usize,
    /// The network's oracle key (64 hex digits), the only auditor this node answers; empty:
    /// the key the tracker's `GET /v1/info` names, which whoever answers at the tracker's URL
    /// (over plain HTTP, anyone on the path) chooses. Set, the node does not announce to a
    /// tracker that names another key.
    pub oracle_key: String,
}

impl TrackerConfig {
    /// The pinned oracle key (`oracle_key`), if one is set; an error naming the field if it
    /// is not a key.
    pub fn pinned_oracle(&self) -> Result<Option<NodeId>, String> {
        if self.oracle_key.is_empty() {
            return Ok(None);
        }
        self.oracle_key
            .parse::<NodeId>()
            .map(Some)
            .map_err(|e| format!("[tracker] oracle_key {:?}: {e}", self.oracle_key))
    }
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            payout: String::new(),
            public_url: String::new(),
            announce_interval_secs: 60,
            forward_interval_secs: 5,
            forward_batch: 1000,
            oracle_key: String::new(),
        }
    }
}

/// `[serve]`: the HTTP chunk server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Address to listen on. Loopback by default: listening on other interfaces is an
    /// explicit choice.
    pub listen: SocketAddr,
    /// A downloader that owes more receipts than this is refused until it pays; 0 turns
    /// receipt-gated serving off (chunks are then served without the downloader header).
    pub max_owed_receipts: u32,
    /// All downloaders at one network address (an IPv4 address or an IPv6 /64) together
    /// may owe at most this many receipts (fresh keys are free, addresses are not); 0: no
    /// bound. Downloaders behind one NAT share it.
    pub max_owed_receipts_per_address: u32,
    /// Most unpaid (downloader, chunk) debts remembered; past it the oldest is forgiven
    /// early, so the ledger's memory is bounded whatever the traffic.
    pub max_tracked_debts: usize,
    /// Unpaid chunks older than this many seconds are forgiven (a downloader that crashed
    /// or cancelled an endgame request is not locked out forever).
    pub owed_forgive_after_secs: u64,
    /// How chunks are checked before they are served.
    pub verify: VerifyMode,
    /// Upload cap in bytes per second across all downloaders; 0 means unlimited.
    pub max_upload_bytes_per_sec: u64,
    /// Bytes the node may send per UTC day (chunks and gateway answers; `"10GiB"`); 0: no
    /// budget. Past it downloads are answered 503 `egress_budget_spent` until midnight UTC.
    #[serde(deserialize_with = "crate::size::deserialize_size")]
    pub max_egress_per_day: u64,
    /// Bytes the node may send per UTC month (`"500GiB"`); 0: no budget.
    #[serde(deserialize_with = "crate::size::deserialize_size")]
    pub max_egress_per_month: u64,
    /// Downloaders served at once (by signed key, or address when serving is not gated); a
    /// new one past it is answered 503 `too_many_downloaders`. 0: no cap.
    pub max_concurrent_downloaders: u32,
    /// Bytes of funded content the replicator may hold (`"20GiB"`; 0: no replicator). With
    /// a tracker, the node fetches funded content below its target replication, best paid
    /// per byte first, and drops what it fetched once no longer needed.
    #[serde(deserialize_with = "crate::size::deserialize_size")]
    pub replicate: u64,
    /// Seconds between the replicator's rounds (each asks the oracle, then fetches at most
    /// one content or drops what is no longer needed).
    pub replicate_interval_secs: u64,
    /// Receipts for epochs more than this many epochs before the current one are refused.
    pub receipt_epoch_grace: u64,
    /// A receipt's `issued_at_ms` must lie in its epoch's window widened by this many
    /// milliseconds on both sides (the oracle's `issued_at_skew_ms`, default 60000).
    pub receipt_issued_at_skew_ms: u64,
    /// A directory of static files served at `/` (the vector search page built by
    /// `scripts/build-web`); empty: no web page.
    pub web: String,
}

/// `[download]`: the swarm downloader.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DownloadConfig {
    /// Chunk requests in flight per peer.
    pub per_peer_concurrency: usize,
    /// A peer that sends no bytes for this many milliseconds is dropped.
    pub stall_timeout_ms: u64,
    /// A peer with this many failed requests in a row (connection errors, server errors)
    /// is dropped.
    pub max_peer_failures: u32,
    /// A peer that refuses this many times in a row for owed receipts (HTTP 429), with
    /// growing pauses in between, is dropped.
    pub max_peer_refusals: u32,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            max_owed_receipts: 64,
            max_owed_receipts_per_address: 256,
            max_tracked_debts: 65_536,
            owed_forgive_after_secs: 600,
            verify: VerifyMode::Cached,
            max_upload_bytes_per_sec: 0,
            max_egress_per_day: 0,
            max_egress_per_month: 0,
            max_concurrent_downloaders: 0,
            replicate: 0,
            replicate_interval_secs: 60,
            receipt_epoch_grace: 1,
            receipt_issued_at_skew_ms: 60_000,
            web: String::new(),
        }
    }
}

impl Default for DownloadConfig {
    fn default() -> Self {
        Self {
            per_peer_concurrency: 8,
            stall_timeout_ms: 10_000,
            max_peer_failures: 3,
            max_peer_refusals: 6,
        }
    }
}

/// The commented config file `init` writes: `config.example.toml` in the repository.
pub const EXAMPLE_TOML: &str = include_str!("../config.example.toml");

impl Config {
    /// Writes this configuration as `config.toml` in `data_dir`, every option spelled out
    /// (replacing the commented file `init` wrote). `load` reads it back unchanged.
    pub fn save(&self, data_dir: &Path) -> Result<(), NodeError> {
        let path = data_dir.join("config.toml");
        let text = toml::to_string(self)
            .map_err(|e| NodeError::Usage(format!("cannot write the configuration: {e}")))?;
        std::fs::write(&path, text).map_err(|e| NodeError::Io {
            action: "cannot write",
            path,
            reason: e.to_string(),
        })
    }

    /// Loads `config.toml` from `data_dir` (if present) and `DSI_*` environment variables
    /// over the defaults.
    pub fn load(data_dir: &Path) -> Result<Self, NodeError> {
        let file = data_dir.join("config.toml");
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(&file))
            .merge(
                // Only this tool's sections: other DSI_* variables (DSI_LOG, DSI_DATA_DIR,
                // other tools' settings) are not node-lite config.
                Env::prefixed("DSI_").split("__").filter(|key| {
                    let section = key.as_str().split('.').next().unwrap_or_default();
                    [
                        "network",
                        "epochs",
                        "serve",
                        "download",
                        "tracker",
                        "gateway",
                        "storage",
                        "dashboard",
                        "iroh",
                    ]
                    .iter()
                    .any(|s| section.eq_ignore_ascii_case(s))
                }),
            )
            .extract()
            .map_err(|e| NodeError::Usage(format!("configuration ({}): {e}", file.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature
    fn a_saved_configuration_loads_back_unchanged() {
        figment::Jail::expect_with(|_jail| {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let mut config = Config::default();
            config.epochs.length_ms = 20_000;
            config.tracker.announce_interval_secs = 1;
            config.serve.verify = VerifyMode::Never;
            config.save(dir.path()).map_err(|e| e.to_string())?;
            assert_eq!(Config::load(dir.path()).map_err(|e| e.to_string())?, config);
            Ok(())
        });
    }

    #[test]
    fn example_file_matches_defaults() {
        let parsed: Config = toml::from_str(EXAMPLE_TOML).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature
    fn file_values_load_and_typos_are_named() {
        // Inside a Jail: environment tests run in parallel and must not leak into this one.
        figment::Jail::expect_with(|_jail| {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let write = |text: &str| std::fs::write(dir.path().join("config.toml"), text);
            write("network = \"dsi-test\"\n[serve]\nmax_owed_receipts = 3\n")
                .map_err(|e| e.to_string())?;
            let config = Config::load(dir.path()).map_err(|e| e.to_string())?;
            assert_eq!(config.network.as_str(), "dsi-test");
            assert_eq!(config.serve.max_owed_receipts, 3);
            write("[serve]\nlisten_addr = \"x\"\n").map_err(|e| e.to_string())?;
            let err = Config::load(dir.path()).unwrap_err().to_string();
            assert!(err.contains("listen_addr"), "{err}");
            write("network = \"Bad Name\"\n").map_err(|e| e.to_string())?;
            assert!(Config::load(dir.path()).is_err());
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature
    fn environment_overrides_and_foreign_variables_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("DSI_LOG", "debug");
            jail.set_env("DSI_ORACLE__LISTEN", "x");
            jail.set_env("DSI_SERVE__MAX_OWED_RECEIPTS", "7");
            jail.set_env("DSI_NETWORK", "dsi-env");
            let config = Config::load(dir.path()).map_err(|e| e.to_string())?;
            assert_eq!(config.serve.max_owed_receipts, 7);
            assert_eq!(config.network.as_str(), "dsi-env");
            jail.set_env("DSI_SERVE__MAX_OWED", "7");
            assert!(
                Config::load(dir.path()).is_err(),
                "a typo inside a section is an error"
            );
            Ok(())
        });
    }
}
