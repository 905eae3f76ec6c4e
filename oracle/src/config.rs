//! Oracle configuration: a documented struct whose `Default` is a working local setup.
//!
//! Sources, later ones winning: built-in defaults, `config.toml` in the data directory,
//! environment variables `DSI_ORACLE_<SECTION>__<KEY>` (for example
//! `DSI_ORACLE_EPOCHS__LENGTH_MS=30000`), then command-line flags.

use std::net::SocketAddr;
use std::path::Path;

use dsi_protocol::fixed::Ppm;
use dsi_protocol::reputation::ReputationParams;
use dsi_protocol::reward::{MarketParams, RewardParams};
use dsi_protocol::{ContentId, EpochSchedule, NetworkId};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The committed example, with every option and its default.
pub const EXAMPLE_TOML: &str = include_str!("../config.example.toml");

/// Everything the oracle can be configured with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The network; receipts and announcements must be signed for it.
    pub network: NetworkId,
    /// How wall-clock time maps to epochs (must match the nodes').
    pub epochs: EpochSchedule,
    /// HTTP listen address (loopback by default).
    pub listen: SocketAddr,
    /// `postgres://...` to use PostgreSQL; empty for the SQLite file `oracle.db` in the
    /// data directory.
    pub database_url: String,
    /// Receipt ingest.
    pub ingest: IngestConfig,
    /// The tracker.
    pub tracker: TrackerConfig,
    /// Closing epochs.
    pub close: CloseConfig,
    /// Reward parameters used when no chain is configured (with a chain they are read
    /// from the `multipliers` contract at every close).
    pub rewards: RewardParams,
    /// Per-content boosts used when no chain is configured (they weight the rarity bonus
    /// of paid bandwidth and the subsidy).
    pub boosts: Vec<Boost>,
    /// Governance's subsidized (public-goods) list: these contents share `close.budget`
    /// each epoch by rarity and boost, one replica per network.
    pub subsidized: Vec<Boost>,
    /// Paid bandwidth (price per byte, fee) and vetting of new keys.
    pub market: MarketParams,
    /// The reputation rule.
    pub reputation: ReputationParams,
    /// Storage audits.
    pub audit: AuditConfig,
    /// Audits over iroh (`[iroh]`): the network's relays (`dsi-relay`) and the UDP sockets
    /// the auditor dials from while it audits. With a relay named, nodes that announce an
    /// iroh endpoint are audited over iroh, and may announce `iroh://NODE_ID/` instead of
    /// an http URL (a node behind a home router). No relay: HTTP audits only.
    pub iroh: dsi_transport::EndpointConfig,
    /// The chain (optional).
    pub chain: ChainConfig,
}

/// `[chain]`: where the contracts are and who signs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChainConfig {
    /// The deployment file `scripts/deploy` wrote (addresses, contract bundles, node URL);
    /// empty: run without a chain.
    pub deployment: String,
    /// Node RPC URL; empty: the one in the deployment file.
    pub url: String,
    /// A file (mode 0600) holding the committee member's secret URI (`//Alice` on a dev
    /// chain).
    pub suri_file: String,
    /// Milliseconds between submission rounds.
    pub poll_ms: u64,
    /// Claim, with this oracle's account (which pays the fees), the leaves of keys that
    /// exited (`node-lite exit`) as their epochs become claimable, so a node that left is
    /// paid without a chain account of its own. Each leaf is tried once.
    pub claim_for_exited: bool,
    /// Leaves below this (native units) are left to the seeder to claim: the fee of a claim
    /// is not spent on dust.
    pub exit_claim_min: u64,
}

/// A per-content reward boost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boost {
    /// The content.
    pub content: ContentId,
    /// Its multiplier, ppm (1_000_000 = 1×).
    pub boost: Ppm,
}

/// `[ingest]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Most receipts in one `POST /v1/receipts`.
    pub max_batch: usize,
    /// Most bytes one downloader may attest per epoch; receipts beyond are rejected
    /// (`downloader_cap`).
    pub downloader_cap_bytes: u64,
    /// How far a receipt's `issued_at_ms` may lie outside its epoch's window.
    pub issued_at_skew_ms: u64,
}

/// `[tracker]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerConfig {
    /// An announcement expires this long after it arrives unless renewed.
    pub announce_ttl_secs: u64,
    /// Announcements and manifest registrations issued further than this from the
    /// oracle's clock are refused.
    pub max_clock_skew_ms: u64,
    /// Manifest bytes one node key may register in total (`manifest_quota` after). Each
    /// manifest is charged once, to the key that registered it first; 64 MiB describe
    /// about two million chunks.
    pub max_manifest_bytes_per_node: u64,
    /// Live node keys one network location (the /24 IPv4 or /48 IPv6 network an
    /// announcement comes from) may have: a new key past it is refused `location_full`
    /// unless a live key there is unproven (the newest close did not see it pass every
    /// audit; a key awaiting its first audit is not) with no more vetting credit than the
    /// new key, whose place it takes (keys already live there renew; see
    /// [`crate::store::Store::put_announcement`]). Keys are free; networks are not: this
    /// bounds what one network makes every close audit. 0 means no limit.
    pub max_nodes_per_location: u32,
    /// Announced URLs naming a host (not an IP address) resolved at once; an announcement
    /// past it is refused `503 resolver_busy`. 0: names are refused (announce an address).
    pub max_concurrent_resolutions: u32,
    /// Longest pause a node may announce (`node-lite pause --epochs N`), in epochs. A
    /// paused node is neither listed nor audited, and its reputation and seniority wait
    /// for it; past this the node resumes, and an absent node is treated as one.
    pub max_paused_epochs: u32,
}

/// `[close]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CloseConfig {
    /// Close epochs automatically this long after they end (late receipts still count
    /// until then). `false` leaves closing to `oracle close-epoch`.
    pub auto: bool,
    /// Grace after an epoch's end before it closes automatically.
    pub delay_ms: u64,
    /// Governance's subsidy per epoch in native units (12 decimals: 1_000_000_000_000 is
    /// one token), split over the `subsidized` contents' replicas. Sponsorships and
    /// downloaders' credit pay on top of it.
    pub budget: u64,
}

/// `[audit]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Audit announced nodes when an epoch closes.
    pub enabled: bool,
    /// Random announced chunks fetched from each node per epoch.
    pub chunks_per_node: usize,
    /// Time allowed for one node's challenge (answer included), in milliseconds.
    pub timeout_ms: u64,
    /// Nodes audited at once.
    pub concurrency: usize,
    /// Epochs a holder of a funded content keeps its seniority (`since`, which decides who
    /// holds a network's replica place) without passing an audit, as long as it is not
    /// disproven (wrong bytes, a missing chunk, a foreign signature): one unreachable epoch
    /// (a restart, a flaky link, a flood at close time) does not send an honest holder to
    /// the back of the line. It earns nothing for those epochs, and once proven again its
    /// `since` moves on by them (seniority counts proven epochs).
    pub seniority_grace_epochs: u64,
    /// Contact nodes at loopback, private and link-local addresses (test networks on one
    /// machine). Off: only public addresses, so a node cannot point the auditor at the
    /// oracle's own network or a cloud metadata service.
    pub allow_private_addresses: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            network: NetworkId::default(),
            epochs: EpochSchedule::default(),
            listen: SocketAddr::from(([127, 0, 0, 1], 7400)),
            database_url: String::new(),
            ingest: IngestConfig::default(),
            tracker: TrackerConfig::default(),
            close: CloseConfig::default(),
            rewards: RewardParams::default(),
            boosts: Vec::new(),
            subsidized: Vec::new(),
            market: MarketParams::default(),
            reputation: ReputationParams::default(),
            audit: AuditConfig::default(),
            iroh: dsi_transport::EndpointConfig::default(),
            chain: ChainConfig::default(),
        }
    }
}

impl Default for ChainConfig {
    fn default() -> Self {
        Self {
            deployment: String::new(),
            url: String::new(),
            suri_file: String::new(),
            poll_ms: 2_000,
            claim_for_exited: true,
            exit_claim_min: 1_000_000_000,
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_batch: 10_000,
            downloader_cap_bytes: 64 * 1024 * 1024 * 1024,
            issued_at_skew_ms: 60_000,
        }
    }
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            announce_ttl_secs: 300,
            max_clock_skew_ms: 300_000,
            max_manifest_bytes_per_node: 64 << 20,
            max_nodes_per_location: 16,
            max_concurrent_resolutions: 16,
            max_paused_epochs: 168,
        }
    }
}

impl Default for CloseConfig {
    fn default() -> Self {
        Self {
            auto: true,
            delay_ms: 30_000,
            budget: 1_000_000_000_000,
        }
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            chunks_per_node: 3,
            timeout_ms: 5_000,
            concurrency: 8,
            seniority_grace_epochs: 3,
            allow_private_addresses: false,
        }
    }
}

impl Config {
    /// Writes this configuration to `path` as TOML, every option spelled out (replacing
    /// the commented file `oracle init` wrote). `load` reads it back unchanged.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        use anyhow::Context;
        let text = toml::to_string(self).context("cannot write the configuration as TOML")?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    }

    /// Loads defaults, then `path` if it exists, then `DSI_ORACLE_*` variables.
    pub fn load(path: &Path) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if path.exists() {
            figment = figment.merge(Toml::file(path));
        }
        figment
            // DSI_ORACLE_DATA_DIR names the data directory (a CLI option), not a setting.
            .merge(
                Env::prefixed("DSI_ORACLE_")
                    .split("__")
                    .ignore(&["data_dir"]),
            )
            .extract()
            .map_err(Box::new)
    }

    /// The boost of `content` (1× unless configured).
    pub fn boost(&self, content: &ContentId) -> Ppm {
        self.boosts
            .iter()
            .find(|b| b.content == *content)
            .map_or(Ppm::ONE, |b| b.boost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature
    fn environment_overrides_and_the_data_dir_variable_is_not_a_setting() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("DSI_ORACLE_DATA_DIR", "/somewhere");
            jail.set_env("DSI_ORACLE_CLOSE__AUTO", "false");
            jail.set_env("DSI_ORACLE_EPOCHS__LENGTH_MS", "30000");
            let config =
                Config::load(Path::new("/nonexistent/config.toml")).map_err(|e| e.to_string())?;
            assert!(!config.close.auto);
            assert_eq!(config.epochs.length_ms, 30_000);
            jail.set_env("DSI_ORACLE_CLOSE__AUTOMATIC", "false");
            assert!(Config::load(Path::new("/nonexistent/config.toml")).is_err());
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature
    fn a_saved_configuration_loads_back_unchanged() {
        figment::Jail::expect_with(|_jail| {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let path = dir.path().join("config.toml");
            let mut config = Config::default();
            config.close.auto = false;
            config.epochs.length_ms = 20_000;
            config.chain.deployment = "/run/deployment.json".into();
            config.boosts = vec![Boost {
                content: ContentId([7; 32]),
                boost: Ppm(1_500_000),
            }];
            config.save(&path).map_err(|e| e.to_string())?;
            assert_eq!(Config::load(&path).map_err(|e| e.to_string())?, config);
            Ok(())
        });
    }

    #[test]
    fn the_example_is_the_default() {
        let parsed: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(EXAMPLE_TOML))
            .extract()
            .expect("example parses");
        assert_eq!(parsed, Config::default());
    }
}
