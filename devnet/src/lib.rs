//! # devnet: a whole DSI network on one machine
//!
//! [`Network::start`] starts a throwaway `ink-node` on loopback, deploys the four contracts
//! in-process (`dsi_chain::deploy`, what `oracle deploy` runs), funds the reward pool, starts the oracle (SQLite, short epochs,
//! chain configured); seeders and downloaders are `node-lite` data directories, every process
//! with its data and log in one run directory. The methods then drive what a user does:
//! add files, download through the tracker, close an epoch, wait for the root to become
//! claimable, claim for every seeder ([`Network::claim_epoch`], which checks every paid
//! amount against the oracle's leaf and the payout account's balance), and change the
//! rarity multiplier through governance ([`Network::raise_rarity`]).
//!
//! The `devnet` binary (run by `scripts/devnet`) tells the story with these parts and
//! prints a table per epoch; `tests/tests/devnet.rs` runs it with assertions and the
//! failure cases.
//!
//! The processes are [`harness`] services (also used by the end-to-end tests); the oracle is
//! spoken to with the typed `dsi_service::OracleClient`. Every process is killed when the
//! [`Network`] is dropped. Nothing listens beyond loopback.

pub mod cheat;
pub mod harness;

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use dsi_api::oracle::{ClosedEpoch, EpochStatus, Leaf};
use dsi_protocol::fixed::{LinearCurve, Ppm};
use dsi_protocol::reward::{EpochInputs, EpochRewards, Funding, RewardParams};
use dsi_protocol::{ContentId, Epoch, NodeId, PayoutAccount};
use dsi_service::OracleClient;
use oracle::chain::{Chain, Deployment, Signer};
use oracle::cli::DeployArgs;

use harness::run;
pub use harness::{InkNode, Service};

/// The binaries and the repository a network runs from.
#[derive(Clone, Debug)]
pub struct Tools {
    /// `node-lite`.
    pub node_lite: PathBuf,
    /// `oracle`.
    pub oracle: PathBuf,
    /// `ink-node` (a name on `PATH` or a path).
    pub ink_node: PathBuf,
    /// The repository root (for the built contracts).
    pub repo: PathBuf,
}

/// How the network is set up.
#[derive(Clone, Debug)]
pub struct Options {
    /// Everything goes here: data directories, logs, the deployment file.
    pub run_dir: PathBuf,
    /// Epoch length.
    pub epoch_ms: u64,
    /// Blocks after an epoch is final during which governance may veto it.
    pub challenge_blocks: u32,
    /// Blocks between a proposal's approval and its execution.
    pub timelock_blocks: u32,
    /// Native units paid out per epoch.
    pub budget: u128,
    /// Native units put in the reward pool at the start.
    pub fund: u128,
    /// `reward_pool`'s `max_epoch_total`: the most one epoch may add, native units.
    pub max_epoch_total: u128,
    /// Bytes one downloader may attest per epoch (the oracle's `downloader_cap_bytes`).
    pub downloader_cap_bytes: u64,
    /// Print what happens.
    pub verbose: bool,
}

impl Options {
    /// Defaults for `run_dir`: 20 s epochs, a 2-block timelock and a 6-block challenge
    /// window (the pool refuses a window shorter than the timelock plus its 4-block veto
    /// margin), one token per epoch, 100 tokens in the pool, at most 1,000 tokens an
    /// epoch (`oracle deploy`'s default).
    pub fn new(run_dir: PathBuf) -> Self {
        Self {
            run_dir,
            epoch_ms: 20_000,
            challenge_blocks: 6,
            timelock_blocks: 2,
            budget: 1_000_000_000_000,
            fund: 100_000_000_000_000,
            max_epoch_total: 1_000_000_000_000_000,
            downloader_cap_bytes: 64 << 30,
            verbose: false,
        }
    }
}

/// A `node-lite` data directory, and its `serve` process while it runs.
#[derive(Debug)]
pub struct Peer {
    /// Short name (`seeder-a`).
    pub name: String,
    /// Data directory.
    pub dir: PathBuf,
    /// Node id.
    pub id: NodeId,
    /// Where its rewards go.
    pub payout: PayoutAccount,
    /// The `serve` process.
    pub service: Option<Service>,
}

impl Peer {
    /// Its URL while serving.
    pub fn url(&self) -> Option<&str> {
        self.service.as_ref().map(|s| s.url.as_str())
    }
}

/// One seeder's line in an epoch's table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Peer name.
    pub name: String,
    /// Node id.
    pub seeder: NodeId,
    /// Bytes served (accepted receipts).
    pub bytes_served: u64,
    /// Receipts counted.
    pub receipts: u64,
    /// Byte-weighted rarity multiplier of what it served, ppm (it weighs the bonus).
    pub rarity: u32,
    /// Of the leaf, paid for storage (sponsorships and subsidy).
    pub storage: u128,
    /// Of the leaf, paid for bandwidth (downloaders' credit less the fee, plus the bonus).
    pub bandwidth: u128,
    /// Of the bandwidth pay, the rarity bonus from the pool (before factors).
    pub bonus: u128,
    /// Reputation factor applied, ppm.
    pub reputation: u32,
    /// The leaf: earned this epoch.
    pub leaf_amount: u128,
    /// Earned so far (the oracle's record; the Merkle leaf commits to `leaf_amount`).
    pub cumulative: u128,
    /// Paid by the claim.
    pub claimed: u128,
    /// The payout account's balance change across the claim.
    pub balance_change: u128,
}

/// What an epoch paid.
#[derive(Clone, Debug)]
pub struct EpochReport {
    /// The epoch.
    pub epoch: u64,
    /// The root on chain (hex).
    pub root: String,
    /// Total paid by the epoch.
    pub total: u128,
    /// The reward parameters the oracle used (read from `multipliers` at close).
    pub params: RewardParams,
    /// Where the money came from.
    pub money: Money,
    /// One row per paid seeder.
    pub rows: Vec<Row>,
}

/// Where an epoch's money came from (recomputed from the published batch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Money {
    /// Drawn from sponsors' deposits (storage of sponsored content).
    pub sponsored: u128,
    /// Drawn from governance's subsidy (storage of subsidized content).
    pub subsidy: u128,
    /// Debited from downloaders' credit (bandwidth).
    pub debited: u128,
    /// Of the debits, the fee the pool keeps.
    pub fees: u128,
    /// Rarity bonuses the pool paid on top (each portion's at most its fee).
    pub bonuses: u128,
}

impl Money {
    /// What an epoch's rewards drew on, by source.
    pub fn of(inputs: &EpochInputs, rewards: &EpochRewards) -> Self {
        let mut money = Money {
            fees: rewards.fees,
            bonuses: rewards.bonuses,
            debited: rewards.debits.iter().map(|d| d.debited).sum(),
            ..Money::default()
        };
        for (facts, pay) in inputs.contents.iter().zip(&rewards.contents) {
            match facts.funding {
                Funding::Sponsored { .. } => money.sponsored += pay.paid,
                Funding::Subsidized { .. } => money.subsidy += pay.paid,
            }
        }
        money
    }
}

impl EpochReport {
    /// Every claim paid exactly the leaf's amount and moved the payout balance by it.
    pub fn check(&self) -> Result<()> {
        for row in &self.rows {
            ensure!(
                row.claimed == row.leaf_amount,
                "epoch {}: {} claimed {} but its leaf says {}",
                self.epoch,
                row.name,
                row.claimed,
                row.leaf_amount
            );
            ensure!(
                row.balance_change == row.claimed,
                "epoch {}: {}'s payout balance moved by {} for a claim of {}",
                self.epoch,
                row.name,
                row.balance_change,
                row.claimed
            );
        }
        Ok(())
    }

    /// The row of a peer.
    pub fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name == name)
    }
}

/// A ppm multiplier as `1.25x`.
pub fn ppm(value: u32) -> String {
    format!("{}.{:02}x", value / 1_000_000, (value % 1_000_000) / 10_000)
}

/// What the devnet's sponsor pays per epoch for each file (one token).
pub const SPONSOR_PER_EPOCH: u128 = 1_000_000_000_000;
/// Credit the devnet gives each downloader key (100 tokens).
pub const DOWNLOADER_CREDIT: u128 = 100_000_000_000_000;

/// Native units as tokens with six decimals.
pub fn tokens(units: u128) -> String {
    format!(
        "{}.{:06}",
        units / 1_000_000_000_000,
        (units % 1_000_000_000_000) / 1_000_000
    )
}

impl fmt::Display for EpochReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "epoch {}: root {}, total {} tokens; rarity curve base {} slope {} max {}, target {} holders",
            self.epoch,
            self.root,
            tokens(self.total),
            ppm(self.params.rarity.base.0),
            ppm(self.params.rarity.slope.0),
            ppm(self.params.rarity.max.0),
            self.params.target_replication
        )?;
        let m = &self.money;
        writeln!(
            f,
            "  money from: sponsors {}, subsidy {}, downloaders' credit {} (the pool kept a fee of {} and paid a rarity bonus of {})",
            tokens(m.sponsored),
            tokens(m.subsidy),
            tokens(m.debited),
            tokens(m.fees),
            tokens(m.bonuses)
        )?;
        writeln!(
            f,
            "  {:<10} {:>10} {:>8} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "seeder",
            "served",
            "receipts",
            "rarity",
            "storage",
            "bandwidth",
            "reputation",
            "leaf",
            "claimed",
            "balance +"
        )?;
        for row in &self.rows {
            writeln!(
                f,
                "  {:<10} {:>8.2}Mi {:>8} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                row.name,
                row.bytes_served as f64 / f64::from(1 << 20),
                row.receipts,
                ppm(row.rarity),
                tokens(row.storage),
                tokens(row.bandwidth),
                ppm(row.reputation),
                tokens(row.leaf_amount),
                tokens(row.claimed),
                tokens(row.balance_change)
            )?;
        }
        Ok(())
    }
}

/// The running network.
pub struct Network {
    /// How it was set up.
    pub options: Options,
    /// Binaries and repository.
    pub tools: Tools,
    /// The chain.
    pub node: InkNode,
    /// `deployment.json` written by `scripts/deploy`.
    pub deployment: PathBuf,
    /// Chain client signing as Alice (council member and committee).
    pub chain: Chain,
    /// The oracle's data directory.
    pub oracle_dir: PathBuf,
    /// The oracle.
    pub oracle: Service,
    /// Seeders, in the order they were added.
    pub peers: Vec<Peer>,
    /// The oracle's API.
    pub client: OracleClient,
}

/// Deploy arguments with the defaults of `oracle deploy` (and `scripts/deploy`).
pub fn deploy_args(extra: &[String]) -> Result<DeployArgs> {
    #[derive(clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: DeployArgs,
    }
    let argv = std::iter::once("deploy".to_string()).chain(extra.iter().cloned());
    Ok(<Wrapper as clap::Parser>::try_parse_from(argv)
        .map_err(|e| anyhow::anyhow!("deploy arguments: {e}"))?
        .args)
}

/// Starts a throwaway `ink-node` (in `run_dir`, log `ink-node.log`) and deploys the four
/// contracts to it in this process with `args` (node URL replaced by the node's; relative
/// bundle paths are under the repository; the deployment goes to `run_dir/deployment.json`).
/// The contracts must be built (`scripts/deploy --build-only`). Returns the node, which
/// stops when dropped, and the deployment file.
pub async fn deploy_chain(
    tools: &Tools,
    run_dir: &Path,
    args: &DeployArgs,
) -> Result<(InkNode, PathBuf)> {
    let node = InkNode::start(&tools.ink_node, &run_dir.join("ink-node.log"))?;
    let deployment = deploy_to(tools, &node.url, run_dir, args).await?;
    Ok((node, deployment))
}

/// Deploys to the node at `url`; see [`deploy_chain`].
pub async fn deploy_to(
    tools: &Tools,
    url: &str,
    run_dir: &Path,
    args: &DeployArgs,
) -> Result<PathBuf> {
    let mut args = args.clone();
    args.url = url.to_string();
    if args.bundles.is_relative() {
        args.bundles = tools.repo.join(&args.bundles);
    }
    args.out = run_dir.join("deployment.json");
    let options = args.options()?;
    let log = run_dir.join("deploy.log");
    let deployment = dsi_chain::deploy::deploy(&options, |line| {
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
        {
            let _ = writeln!(file, "{line}");
        }
    })
    .await
    .context("deploying the contracts (are they built? scripts/deploy --build-only)")?;
    dsi_chain::deploy::write_deployment(&deployment, &args.out)?;
    Ok(args.out)
}

/// A secret URI file (0600) for a dev account.
fn suri_file(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(format!("{}.suri", name.to_lowercase()));
    std::fs::write(&path, format!("//{name}\n"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(path)
}

impl Network {
    /// Starts the chain, deploys, funds the pool and starts the oracle. No seeders yet.
    pub async fn start(tools: Tools, options: Options) -> Result<Self> {
        // A previous run's oracle database builds on epochs its (gone) chain finalized: the
        // new chain would never see them, and every submission would wait for them.
        if std::fs::read_dir(&options.run_dir).is_ok_and(|mut entries| entries.next().is_some()) {
            anyhow::bail!(
                "{} is not empty (a previous run?): its oracle would wait for epochs the new \
                 chain never saw; give a new or empty directory",
                options.run_dir.display()
            );
        }
        std::fs::create_dir_all(&options.run_dir)
            .with_context(|| format!("cannot create {}", options.run_dir.display()))?;
        let run_dir = options.run_dir.canonicalize()?;
        let say = |m: &str| {
            if options.verbose {
                println!("== {m}");
            }
        };
        say("starting ink-node (temporary chain, loopback) and deploying the four contracts");
        let (node, deployment) = deploy_chain(
            &tools,
            &run_dir,
            &deploy_args(&[
                "--timelock".into(),
                options.timelock_blocks.to_string(),
                "--challenge-blocks".into(),
                options.challenge_blocks.to_string(),
                "--max-epoch-total".into(),
                options.max_epoch_total.to_string(),
            ])?,
        )
        .await?;
        say(&format!("deployed to {}", node.url));
        let chain = Chain::new(Deployment::load(&deployment)?, None, Signer::dev("alice")?)?;

        let keys = run_dir.join("keys");
        std::fs::create_dir_all(&keys)?;
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700))?;
        for member in ["Alice", "Bob", "Charlie"] {
            suri_file(&keys, member)?;
        }
        let oracle_dir = run_dir.join("oracle");
        let log = run_dir.join("oracle.log");
        run(
            &tools.oracle,
            &["--data-dir", oracle_dir.to_str().context("utf-8")?, "init"],
            &log,
        )?;
        let oracle_data = oracle::DataDir::new(&oracle_dir);
        let mut config = oracle_data.config()?;
        config.epochs.length_ms = options.epoch_ms;
        config.close.auto = false;
        config.close.budget = u64::try_from(options.budget).context("budget above u64")?;
        config.ingest.downloader_cap_bytes = options.downloader_cap_bytes;
        config.chain.deployment = deployment.display().to_string();
        config.chain.suri_file = keys.join("alice.suri").display().to_string();
        config.chain.poll_ms = 500;
        config.audit.timeout_ms = 2000;
        // Every node of a devnet listens on loopback.
        config.audit.allow_private_addresses = true;
        config.save(&oracle_dir.join("config.toml"))?;
        say(&format!(
            "funding the reward pool with {} tokens",
            tokens(options.fund)
        ));
        chain.fund(options.fund).await?;
        say("starting the oracle (tracker, receipts, epochs, chain submitter)");
        let oracle = Service::spawn(
            "oracle",
            &tools.oracle,
            &[
                "--data-dir".into(),
                oracle_dir.display().to_string(),
                "serve".into(),
                "--listen".into(),
                "127.0.0.1:0".into(),
            ],
            &[],
            &log,
        )?;
        let client = OracleClient::new(&oracle.url)?;
        let mut network = Self {
            options,
            tools,
            node,
            deployment,
            chain,
            oracle_dir,
            oracle,
            peers: Vec::new(),
            client,
        };
        network.options.run_dir = run_dir;
        Ok(network)
    }

    fn say(&self, message: &str) {
        if self.options.verbose {
            println!("== {message}");
        }
    }

    fn init_node(&self, dir: &Path) -> Result<NodeId> {
        let epoch_ms = self.options.epoch_ms;
        harness::init_node(
            &self.tools.node_lite,
            dir,
            &dir.with_extension("log"),
            |config| {
                config.epochs.length_ms = epoch_ms;
                config.tracker.announce_interval_secs = 1;
                config.tracker.forward_interval_secs = 1;
            },
        )
    }

    /// The run directory.
    pub fn run_dir(&self) -> &Path {
        &self.options.run_dir
    }

    /// Initializes a seeder named `name` whose rewards go to `payout` (not started).
    pub fn add_peer(&mut self, name: &str, payout: PayoutAccount) -> Result<usize> {
        let dir = self.options.run_dir.join(name);
        let id = self.init_node(&dir)?;
        self.peers.push(Peer {
            name: name.to_string(),
            dir,
            id,
            payout,
            service: None,
        });
        Ok(self.peers.len() - 1)
    }

    /// The peer called `name`.
    pub fn peer(&self, name: &str) -> Result<&Peer> {
        self.peers
            .iter()
            .find(|p| p.name == name)
            .with_context(|| format!("no peer {name}"))
    }

    fn peer_mut(&mut self, name: &str) -> Result<&mut Peer> {
        self.peers
            .iter_mut()
            .find(|p| p.name == name)
            .with_context(|| format!("no peer {name}"))
    }

    /// `node-lite add FILE` on a peer; returns the content id.
    pub fn add_file(&self, peer: &str, file: &Path) -> Result<String> {
        let peer = self.peer(peer)?;
        let out = run(
            &self.tools.node_lite,
            &[
                "--data-dir",
                peer.dir.to_str().context("utf-8")?,
                "add",
                file.to_str().context("utf-8")?,
            ],
            &peer.dir.with_extension("log"),
        )?;
        Ok(out.trim().to_string())
    }

    /// Starts `node-lite serve` on a peer, announcing to the oracle. `extra` adds flags.
    /// Each peer listens on its own loopback /24 (`127.0.N.1`, N = its place + 1), which
    /// stands for its own network: replicas of funded content count once per network.
    pub fn start_peer(&mut self, name: &str, extra: &[&str]) -> Result<()> {
        let place = self
            .peers
            .iter()
            .position(|p| p.name == name)
            .with_context(|| format!("no peer {name}"))?;
        self.start_peer_on(name, (place % 250) as u8 + 1, 1, extra)
    }

    /// Starts `node-lite serve` on a peer listening on `127.0.{network}.{host}` (so several
    /// peers can share one /24, as a replica farm does). `extra` adds flags.
    pub fn start_peer_on(
        &mut self,
        name: &str,
        network: u8,
        host: u8,
        extra: &[&str],
    ) -> Result<()> {
        let oracle = self.oracle.url.clone();
        let node_lite = self.tools.node_lite.clone();
        let listen = format!("127.0.{network}.{host}:0");
        let peer = self.peer_mut(name)?;
        let mut args: Vec<String> = vec![
            "--data-dir".into(),
            peer.dir.display().to_string(),
            "serve".into(),
            "--listen".into(),
            listen,
            "--tracker".into(),
            oracle,
            "--payout".into(),
            peer.payout.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = peer.dir.with_extension("log");
        peer.service = Some(Service::spawn(name, &node_lite, &args, &[], &log)?);
        Ok(())
    }

    /// Waits until `check` gives a value, for at most `secs` seconds.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        secs: u64,
        mut check: impl AsyncFnMut() -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(value) = check().await {
                return Ok(value);
            }
            ensure!(
                Instant::now() < deadline,
                "timed out after {secs} s waiting for {what} (logs in {})",
                self.options.run_dir.display()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Waits until the tracker lists `count` peers for `content`.
    pub async fn wait_for_peers(&self, content: &str, count: usize) -> Result<()> {
        let content: ContentId = content.parse().context("a content id")?;
        self.wait_for(&format!("{count} peers of {content}"), 30, async || {
            let peers = self.client.peers(&content).await.ok()?;
            (peers.peers.len() >= count).then_some(())
        })
        .await
    }

    /// The current epoch, after waiting (if needed) until at least `margin_ms` of it is left.
    pub async fn fresh_epoch(&self, margin_ms: u64) -> u64 {
        let length = self.options.epoch_ms;
        loop {
            let now = dsi_protocol::now_ms();
            let left = length - now % length;
            if left >= margin_ms {
                return now / length;
            }
            tokio::time::sleep(Duration::from_millis(left + 50)).await;
        }
    }

    /// Waits until the epoch after `epoch` has begun.
    pub async fn next_epoch(&self, epoch: u64) -> u64 {
        while dsi_protocol::now_ms() / self.options.epoch_ms <= epoch {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        dsi_protocol::now_ms() / self.options.epoch_ms
    }

    /// Initializes a downloader (a node that keeps what it fetched: a second `get` of the
    /// same content by the same node fetches nothing). Returns its data directory.
    pub fn add_downloader(&self, name: &str) -> Result<PathBuf> {
        let dir = self.options.run_dir.join(name);
        self.init_node(&dir)?;
        Ok(dir)
    }

    /// The devnet's sponsor and credit funder: Ferdie, a dev account that is neither on
    /// the council nor on the committee.
    pub fn funder(&self) -> Result<Chain> {
        Ok(self.chain.signing_as(Signer::dev("ferdie")?))
    }

    /// A sponsor deposits `content`'s storage in the `reward_pool` contract: `per_epoch`
    /// units for `epochs` epochs from the current one, at most `replicas` replicas (the
    /// oracle mirrors it at its next close).
    pub async fn sponsor(
        &self,
        content: &str,
        per_epoch: u128,
        epochs: u64,
        replicas: u32,
    ) -> Result<dsi_api::oracle::Sponsorship> {
        let content: ContentId = content.parse().context("content id")?;
        // The current epoch, unless it is final on chain already (the devnet closes epochs
        // early): sponsorships start after the latest good epoch.
        let current = dsi_protocol::now_ms() / self.options.epoch_ms;
        let first = match self.chain.last_good_epoch().await? {
            Some(last) => current.max(last + 1),
            None => current,
        };
        let epochs32 = u32::try_from(epochs).context("epochs")?;
        let deposit = per_epoch
            .checked_mul(u128::from(epochs32))
            .context("deposit overflows")?;
        let id = self
            .funder()?
            .sponsor(&content, first, epochs32, replicas, deposit)
            .await?;
        Ok(dsi_api::oracle::Sponsorship {
            content,
            per_epoch,
            replicas,
            first_epoch: Epoch(first),
            last_epoch: Epoch(first + epochs.saturating_sub(1)),
            funded_at_ms: dsi_protocol::now_ms(),
            chain_id: Some(id),
        })
    }

    /// Funds the credit of the downloader whose data directory is `downloader`.
    pub async fn credit(&self, downloader: &Path, amount: u128) -> Result<dsi_api::oracle::Credit> {
        let key = node_lite::data_dir::DataDir::new(downloader)
            .key()
            .context("downloader key")?;
        self.credit_key(&key.node_id(), amount).await
    }

    /// Deposits `amount` in the `reward_pool` contract for the downloader key
    /// `downloader`; returns the credit as the chain has it (the oracle mirrors it at its
    /// next close), with the oracle's price per byte.
    pub async fn credit_key(
        &self,
        downloader: &NodeId,
        amount: u128,
    ) -> Result<dsi_api::oracle::Credit> {
        let funder = self.funder()?;
        funder.credit(downloader, amount).await?;
        let on_chain = funder
            .credits(&[*downloader])
            .await?
            .first()
            .copied()
            .unwrap_or_default();
        let oracle = self.client.credit(downloader).await?;
        Ok(dsi_api::oracle::Credit {
            downloader: *downloader,
            funded: on_chain.deposited,
            spent: on_chain.deposited.saturating_sub(on_chain.unspent),
            available: on_chain.unspent,
            price_per_byte: oracle.price_per_byte,
        })
    }

    /// A downloader fetches `content` (peers from the tracker, or `peers` if given) into
    /// its data directory; returns the file.
    pub fn download(&self, downloader: &Path, content: &str, peers: &[&str]) -> Result<PathBuf> {
        let out = downloader.join(format!("downloaded-{}", &content[..12.min(content.len())]));
        let _ = std::fs::remove_file(&out);
        let mut args = vec![
            "--data-dir".to_string(),
            downloader.display().to_string(),
            "get".into(),
            content.into(),
            "--out".into(),
            out.display().to_string(),
        ];
        if peers.is_empty() {
            args.extend(["--tracker".into(), self.oracle.url.clone()]);
        }
        for peer in peers {
            args.extend(["--peer".into(), peer.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(
            &self.tools.node_lite,
            &args,
            &downloader.with_extension("log"),
        )?;
        Ok(out)
    }

    /// Receipts the oracle holds for `epoch`.
    pub async fn receipts_held(&self, epoch: u64) -> Result<u64> {
        Ok(self.client.epoch(Epoch(epoch)).await?.receipts())
    }

    /// Waits until the oracle holds at least `count` receipts for `epoch`.
    pub async fn wait_for_receipts(&self, epoch: u64, count: u64) -> Result<u64> {
        self.wait_for(
            &format!("{count} receipts for epoch {epoch} at the oracle"),
            60,
            async || {
                let held = self.receipts_held(epoch).await.ok()?;
                (held >= count).then_some(held)
            },
        )
        .await
    }

    /// The oracle's admin token.
    pub fn admin_token(&self) -> Result<String> {
        Ok(
            std::fs::read_to_string(self.oracle_dir.join("admin.token"))?
                .trim()
                .to_string(),
        )
    }

    /// Closes epochs through `epoch` (audits, reputation, rewards, root).
    pub async fn close(&self, epoch: u64) -> Result<Vec<ClosedEpoch>> {
        let closed = self
            .client
            .close(&self.admin_token()?, Some(Epoch(epoch)))
            .await
            .with_context(|| format!("closing epoch {epoch}"))?;
        Ok(closed.closed)
    }

    /// The oracle's record of a closed epoch (its status follows the chain).
    pub async fn closed_epoch(&self, epoch: u64) -> Result<ClosedEpoch> {
        match self.client.epoch(Epoch(epoch)).await? {
            dsi_api::oracle::EpochInfo::Closed(closed) => Ok(closed),
            dsi_api::oracle::EpochInfo::Open(_) => bail!("epoch {epoch} is still open"),
        }
    }

    /// Waits until the oracle's root for `epoch` is on chain and its challenge window has
    /// passed, making blocks as needed (instant seal only makes blocks for transactions).
    pub async fn wait_claimable(&self, epoch: u64) -> Result<ClosedEpoch> {
        self.wait_for(&format!("epoch {epoch} final on chain"), 90, async || {
            let info = self.closed_epoch(epoch).await.ok()?;
            matches!(info.status, EpochStatus::Final | EpochStatus::Claimable).then_some(())
        })
        .await?;
        let on_chain = self
            .chain
            .epoch(epoch)
            .await?
            .context("the oracle says final but the chain has no record")?;
        let now = self.chain.current_block().await?;
        if now < on_chain.claimable_from {
            self.chain
                .advance_blocks(on_chain.claimable_from - now)
                .await?;
        }
        self.wait_for(&format!("epoch {epoch} claimable"), 60, async || {
            let info = self.closed_epoch(epoch).await.ok()?;
            (info.status == EpochStatus::Claimable).then_some(info)
        })
        .await
    }

    /// The published batch of a closed `epoch`, verified (every receipt judged again, the
    /// root and total recomputed) and its rewards.
    pub async fn rewards(&self, epoch: u64) -> Result<(oracle::batch::EpochBatch, EpochRewards)> {
        let bytes = self.client.batch(Epoch(epoch)).await?;
        let batch = oracle::batch::decode_batch(&bytes)
            .map_err(|e| anyhow::anyhow!("batch of epoch {epoch}: {e}"))?;
        let verified = oracle::batch::verify_batch(&batch)
            .map_err(|e| anyhow::anyhow!("batch of epoch {epoch} does not verify: {e}"))?;
        Ok((batch, verified.rewards))
    }

    /// Byte-weighted rarity multiplier per seeder of what it served, from a batch.
    fn rarities(batch: &oracle::batch::EpochBatch) -> BTreeMap<NodeId, u32> {
        let params = batch.inputs.params;
        let holders: BTreeMap<_, u32> = batch
            .inputs
            .chunks
            .iter()
            .map(|c| (c.chunk, c.holders))
            .collect();
        let mut sums: BTreeMap<NodeId, (u128, u128)> = BTreeMap::new();
        for r in &batch.receipts {
            let bytes = u128::from(r.receipt.bytes);
            let rarity = params.rarity(holders.get(&r.receipt.chunk).copied().unwrap_or(0));
            let entry = sums.entry(r.receipt.seeder).or_default();
            entry.0 += bytes;
            entry.1 += bytes * u128::from(rarity.0);
        }
        sums.into_iter()
            .filter(|(_, (bytes, _))| *bytes > 0)
            .map(|(seeder, (bytes, rarity))| {
                (seeder, u32::try_from(rarity / bytes).unwrap_or(u32::MAX))
            })
            .collect()
    }

    /// The oracle's leaves for `epoch`.
    pub async fn leaves(&self, epoch: u64) -> Result<Vec<Leaf>> {
        Ok(self.client.leaves(Epoch(epoch)).await?)
    }

    /// Claims every leaf of a claimable `epoch` and reports what was paid; the balance of
    /// each payout account is read before and after its claim.
    pub async fn claim_epoch(&self, epoch: u64) -> Result<EpochReport> {
        let info = self.wait_claimable(epoch).await?;
        let (batch, rewards) = self.rewards(epoch).await?;
        let rarities = Self::rarities(&batch);
        ensure!(
            rewards.total == info.total,
            "epoch {epoch}: the batch recomputes to {} but the oracle recorded {}",
            rewards.total,
            info.total
        );
        let mut rows = Vec::new();
        for leaf in self.leaves(epoch).await? {
            let name = self.name_of(&leaf.seeder);
            let before = self.chain.balance(&leaf.payout).await?;
            let claimed = self
                .chain
                .claim(epoch, &leaf.seeder, &leaf.payout, leaf.amount, &leaf.proof)
                .await?;
            let after = self.chain.balance(&leaf.payout).await?;
            let reward = rewards
                .seeders
                .iter()
                .find(|s| s.seeder == leaf.seeder)
                .with_context(|| format!("the batch has no reward for {}", leaf.seeder))?;
            rows.push(Row {
                name,
                seeder: leaf.seeder,
                bytes_served: leaf.bytes_served,
                receipts: leaf.receipts,
                rarity: rarities.get(&leaf.seeder).copied().unwrap_or(0),
                storage: reward.storage_amount,
                bandwidth: reward.bandwidth_amount,
                bonus: reward.bonus_amount,
                reputation: leaf.reputation,
                leaf_amount: leaf.amount,
                cumulative: leaf.cumulative,
                claimed,
                balance_change: after.saturating_sub(before),
            });
        }
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(EpochReport {
            epoch,
            root: format!("0x{}", hex::encode(info.root)),
            total: info.total,
            params: batch.inputs.params,
            money: Money::of(&batch.inputs, &rewards),
            rows,
        })
    }

    /// Governance raises the rarity curve: Alice proposes `multipliers.set_rarity`, Bob
    /// approves (2 of 3), blocks pass the timelock, Charlie executes; the new parameters
    /// are read back. Returns the proposal id.
    pub async fn raise_rarity(&self, curve: LinearCurve, target_replication: u32) -> Result<u32> {
        let keys = self.options.run_dir.join("keys");
        let member = |name: &str| -> Result<Chain> {
            Ok(self
                .chain
                .signing_as(Signer::from_file(&keys.join(format!("{name}.suri")))?))
        };
        let id = member("alice")?
            .propose_rarity(curve, target_replication)
            .await?;
        self.say(&format!(
            "governance: alice proposed #{id}: rarity base {} slope {} max {}, target {target_replication}",
            ppm(curve.base.0),
            ppm(curve.slope.0),
            ppm(curve.max.0)
        ));
        member("bob")?.approve(id).await?;
        let proposal = self
            .chain
            .proposal(id)
            .await?
            .context("the proposal vanished")?;
        let approved_at = proposal
            .approved_at
            .context("two approvals did not start the timelock")?;
        self.say(&format!(
            "governance: bob approved #{id} (2 of 3); timelock of {} blocks from block {approved_at}",
            self.options.timelock_blocks
        ));
        let charlie = member("charlie")?;
        match charlie.execute(id).await {
            Err(oracle::chain::ChainError::Refused { error, .. }) if error == "Timelocked" => {
                self.say(&format!(
                    "governance: executing #{id} now is refused: Timelocked"
                ));
            }
            other => bail!("executing before the timelock should be refused, got {other:?}"),
        }
        let unlock = approved_at.saturating_add(self.options.timelock_blocks);
        let now = self.chain.current_block().await?;
        if now < unlock {
            self.chain.advance_blocks(unlock - now).await?;
        }
        charlie.execute(id).await?;
        let params = self.chain.params().await?;
        ensure!(
            params.rarity == curve && params.target_replication == target_replication,
            "multipliers did not change: {params:?}"
        );
        self.say(&format!(
            "governance: charlie executed #{id} at block {}; multipliers.params() reads back the new curve",
            self.chain.current_block().await?
        ));
        Ok(id)
    }

    /// The URLs a user can explore.
    pub fn urls(&self) -> Vec<(String, String)> {
        let mut urls = vec![
            ("ink-node RPC".to_string(), self.node.url.clone()),
            ("oracle API".into(), self.oracle.url.clone()),
            (
                "oracle metrics".into(),
                format!("{}/metrics", self.oracle.url),
            ),
        ];
        for peer in &self.peers {
            if let Some(url) = peer.url() {
                urls.push((format!("{} (node-lite)", peer.name), url.to_string()));
            }
        }
        urls
    }
}

/// Writes `len` pseudo-random bytes to `path`.
pub fn random_file(path: &Path, len: usize) -> Result<()> {
    use rand::RngCore;
    let mut bytes = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut bytes);
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// The rarity curve governance raises to in the story: +0.5x per missing replica (was
/// +0.25x), up to 3x (was 2x).
pub fn raised_rarity() -> LinearCurve {
    LinearCurve {
        base: Ppm(1_000_000),
        slope: Ppm(500_000),
        min: Ppm(1_000_000),
        max: Ppm(3_000_000),
    }
}
