//! The command line of `oracle`: every subcommand and flag with its help text. `main.rs`
//! parses [`Cli`] and hands each command to [`crate::commands`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The text after `--help`: exit codes, logging and configuration.
pub fn after_help() -> String {
    format!(
        "{}\nLogging: DSI_LOG or RUST_LOG (default info). Config: DATA_DIR/config.toml and\n\
         DSI_ORACLE_* environment variables (DSI_ORACLE_EPOCHS__LENGTH_MS, ...).",
        dsi_api::exit::Exit::help()
    )
}

/// The DSI oracle: tracker, receipt ingest, audits, epoch aggregation and Merkle proofs.
#[derive(Parser, Debug)]
#[command(name = "oracle", version, about, long_about = None, after_help = after_help())]
pub struct Cli {
    /// Data directory (key, admin token, config, SQLite database, published batches).
    /// Default: ~/.local/share/dsi/oracle.
    #[arg(long, global = true, env = "DSI_ORACLE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create the data directory: oracle key and admin token (mode 0600) and config.toml.
    Init,
    /// Run the HTTP API and close epochs on a timer.
    Serve {
        /// Address to listen on (default from config: 127.0.0.1:7400).
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// `postgres://user@host/db` to use PostgreSQL instead of the SQLite file in the
        /// data directory.
        #[arg(long, env = "DSI_ORACLE_DATABASE_URL", value_name = "URL")]
        database_url: Option<String>,
    },
    /// Close epochs now, through the given one (default: the current epoch), on a running
    /// oracle.
    CloseEpoch {
        /// Last epoch to close.
        #[arg(long, value_name = "EPOCH")]
        through: Option<u64>,
        /// The oracle's URL (default: http://<listen address from config>).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Claim a seeder's rewards on chain: fetch its leaves and proofs from the oracle and
    /// submit `reward_pool.claim` for each one not paid yet (anyone may; the money goes to
    /// each leaf's payout account). Leaves are per epoch; leaves still in their challenge
    /// window, vetoed or not final are listed and skipped. Uses `[chain]` from the data
    /// directory's config.
    Claim {
        /// The seeder's node id.
        #[arg(long, value_name = "NODE")]
        seeder: String,
        /// Claim only the leaf of this epoch (default: every leaf the oracle lists, at
        /// most the 50 newest).
        #[arg(long, value_name = "EPOCH")]
        epoch: Option<u64>,
        /// The oracle's URL (default: http://<listen address from config>).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Sponsor a content's storage: AMOUNT native units per epoch for EPOCHS epochs, split
    /// among at most REPLICAS replicas, one per /24 (IPv6 /48) network, each proven by
    /// audits. Fewer replicas means more for each. With `[chain]` configured, AMOUNT ×
    /// EPOCHS is deposited in the reward_pool contract (signed by the account in
    /// `--suri-file`; what the epochs do not draw goes back to it); without
    /// a chain, it is recorded in a running oracle's ledger (admin token).
    Sponsor {
        /// The content id.
        content: String,
        /// Native units per epoch (12 decimals: 1000000000000 is one token).
        #[arg(long, value_name = "UNITS")]
        amount: u128,
        /// Epochs funded.
        #[arg(long, value_name = "N")]
        epochs: u64,
        /// Target replication.
        #[arg(long, value_name = "R", default_value_t = 3)]
        replicas: u32,
        /// First epoch funded (default: the current one; with a chain, at least the one
        /// after the latest final epoch).
        #[arg(long, value_name = "EPOCH")]
        first_epoch: Option<u64>,
        /// The oracle's URL (default: http://<listen address from config>).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// With a chain, required: file (0600) with the sponsor's secret URI (the
        /// account that pays the deposit and may withdraw what no epoch draws; never the
        /// committee's key by default).
        #[arg(long, value_name = "FILE")]
        suri_file: Option<PathBuf>,
    },
    /// Show a downloader key's credit, or add to it with --amount. Seeders are paid for
    /// bytes they serve it at the market's price per byte, less the fee. With `[chain]`
    /// configured, --amount is deposited in the reward_pool contract (signed by the
    /// account in `--suri-file`; not refundable: it pays the key's
    /// seeders); without a chain, it is recorded in a running oracle's ledger (admin token).
    Credit {
        /// The downloader's node id.
        node: String,
        /// Native units to add.
        #[arg(long, value_name = "UNITS")]
        amount: Option<u128>,
        /// The oracle's URL (default: http://<listen address from config>).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// With a chain, required with --amount: file (0600) with the funder's secret
        /// URI (never the committee's key by default).
        #[arg(long, value_name = "FILE")]
        suri_file: Option<PathBuf>,
    },
    /// Fund the reward pool with AMOUNT native units (12 decimals: 1000000000000 is one
    /// token), signed by the `[chain] suri_file` account.
    Fund {
        /// Native units.
        amount: u128,
    },
    /// Governance of the contracts by the council: propose a change, approve it, execute
    /// it after the timelock. Uses `[chain]` from the config; `--suri-file` signs as another
    /// council member.
    #[command(subcommand)]
    Governance(GovernanceCommand),
    /// Deploy the four contracts to a node with the built bundles, wire them (governance
    /// administers the other three), read the wiring back and write the deployment file
    /// the oracle's `[chain] deployment` names. Signs in this process: the deployer's
    /// secret comes from a 0600 file, or is a public dev account's.
    Deploy(DeployArgs),
    /// Recompute an epoch's root and funding from its published batch file, bit for bit:
    /// every receipt is judged by the ingest rules, the rewards recomputed, and the draws
    /// on sponsorships, debits of credit, funding part hashes and subsidy recomputed. Exit
    /// 0 if all match (and, with --chain, agree with the chain), 4 if not.
    VerifyEpoch {
        /// The batch file (`batches/epoch-NNNNNNNN.batch`, or downloaded from
        /// `GET /v1/epochs/N/batch`).
        batch_file: PathBuf,
        /// Also list every seeder's amounts.
        #[arg(long)]
        seeders: bool,
        /// Also compare with the chain: what `reward_pool` agreed on for the epoch (batch
        /// id, root, total, subsidy, funding part hashes), the sponsorships it draws on
        /// (terms, none left out) and the market (inside `multipliers`' bounds); for a
        /// batch that names the block its close read at (version 4), the block (final,
        /// made before the epoch ended) and, read there, the market, reward parameters,
        /// caps and every sponsorship. Only reads (no key needed; the node must still
        /// hold that block's state: an archive node), through the data directory's
        /// `[chain]` deployment and url unless `--deployment` is given.
        #[arg(long)]
        chain: bool,
        /// The deployment file (`deployment.json`) of the chain to compare with; implies
        /// `--chain`, for a checker without an oracle data directory.
        #[arg(long, value_name = "FILE")]
        deployment: Option<PathBuf>,
        /// The node's WebSocket RPC URL (default: the deployment's, or `[chain] url`).
        #[arg(long, value_name = "URL")]
        chain_url: Option<String>,
    },
}

/// `oracle governance` subcommands.
#[derive(Subcommand, Debug)]
pub enum GovernanceCommand {
    /// Propose a new rarity curve for `multipliers` (parts per million; 1000000 = 1x):
    /// multiplier = clamp(base + slope x missing replicas, min, max). Prints the id.
    ProposeRarity {
        /// Multiplier of a chunk with `target_replication` holders or more.
        #[arg(long, value_name = "PPM")]
        base: u32,
        /// Added per missing replica.
        #[arg(long, value_name = "PPM")]
        slope: u32,
        /// Lower clamp.
        #[arg(long, value_name = "PPM")]
        min: u32,
        /// Upper clamp.
        #[arg(long, value_name = "PPM")]
        max: u32,
        /// Holders a chunk should have; fewer make it rare.
        #[arg(long, value_name = "N")]
        target_replication: u32,
        /// File (0600) with the proposing member's secret URI (default: [chain] suri_file).
        #[arg(long, value_name = "FILE")]
        suri_file: Option<PathBuf>,
    },
    /// Propose a new market for `multipliers`: the price a downloader's credit pays per
    /// byte, the protocol fee the pool keeps of each debit (a paid byte's rarity bonus is
    /// at most this), and vetting. The contract refuses values outside the hard bounds it
    /// was instantiated with. Prints the id.
    ProposeMarket {
        /// Native units (10^-12 token) a downloader's credit pays per byte served.
        #[arg(long, value_name = "UNITS")]
        price_per_byte: u64,
        /// Part of each debit the pool keeps (ppm; 100000 = 10 %).
        #[arg(long, value_name = "PPM")]
        fee: u32,
        /// Audits a new node key passes before it earns its full share.
        #[arg(long, value_name = "N")]
        vetting_audits: u32,
        /// The share a key earns before it is vetted (ppm).
        #[arg(long, value_name = "PPM")]
        unvetted_share: u32,
        /// File (0600) with the proposing member's secret URI (default: [chain] suri_file).
        #[arg(long, value_name = "FILE")]
        suri_file: Option<PathBuf>,
    },
    /// Approve a proposal as a council member.
    Approve {
        /// Proposal id.
        id: u32,
        /// File (0600) with the member's secret URI (default: [chain] suri_file).
        #[arg(long, value_name = "FILE")]
        suri_file: Option<PathBuf>,
    },
    /// Execute an approved proposal once its timelock has passed.
    Execute {
        /// Proposal id.
        id: u32,
        /// File (0600) with the member's secret URI (default: [chain] suri_file).
        #[arg(long, value_name = "FILE")]
        suri_file: Option<PathBuf>,
    },
    /// Show a proposal's state and the current block.
    Show {
        /// Proposal id.
        id: u32,
    },
    /// Show the reward parameters the multipliers contract holds now.
    Params,
}

/// `oracle deploy` options (also what `scripts/deploy` and `devnet --deploy-only` take).
#[derive(Args, Debug, Clone)]
pub struct DeployArgs {
    /// Node RPC URL.
    #[arg(long, default_value = "ws://127.0.0.1:9944", value_name = "URL")]
    pub url: String,
    /// File (0600) with the deployer's secret URI.
    #[arg(long, value_name = "FILE", conflicts_with = "deployer")]
    pub deployer_file: Option<PathBuf>,
    /// A dev account as the deployer (alice..ferdie; their keys are public: dev chains
    /// only). Default: alice, unless --deployer-file is given.
    #[arg(long, value_name = "NAME")]
    pub deployer: Option<String>,
    /// Governance council: dev names (alice..ferdie) or 0x H160 addresses.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "alice,bob,charlie",
        value_name = "A,B,..."
    )]
    pub council: Vec<String>,
    /// Approvals a proposal needs (a strict majority of the council).
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub council_threshold: u32,
    /// Blocks between a proposal's approval and its execution.
    #[arg(long, default_value_t = 5, value_name = "BLOCKS")]
    pub timelock: u32,
    /// Oracle committee: dev names or 0x H160 addresses.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "alice",
        value_name = "A,B,..."
    )]
    pub committee: Vec<String>,
    /// Identical submissions that make an epoch final (a strict majority of the
    /// committee).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub committee_threshold: u32,
    /// Blocks after finality during which governance can veto (at least the timelock +
    /// 4; the pool refuses less).
    #[arg(long = "challenge-blocks", default_value_t = 20, value_name = "N")]
    pub challenge_blocks: u32,
    /// Most one epoch may add, native units of 10^-12 token (default: 1000 tokens).
    #[arg(long, default_value_t = 1_000_000_000_000_000, value_name = "N")]
    pub max_epoch_total: u128,
    /// Directory of the four `<name>.contract` bundles (`<name>.contract` or
    /// `<name>/<name>.contract`; default: the repository's committed bundles, run from
    /// the repository).
    #[arg(long, default_value = "contracts/bundles", value_name = "DIR")]
    pub bundles: PathBuf,
    /// Where to write the deployment.
    #[arg(long, default_value = "contracts/deployment.json", value_name = "FILE")]
    pub out: PathBuf,
}

impl DeployArgs {
    /// The deploy options these arguments give.
    pub fn options(&self) -> Result<dsi_chain::deploy::DeployOptions, dsi_chain::ChainError> {
        use dsi_chain::accounts::{Signer, parse_address};
        let deployer = match (&self.deployer_file, &self.deployer) {
            (Some(file), _) => Signer::from_file(file)?,
            (None, Some(name)) => Signer::dev(name)?,
            (None, None) => Signer::dev("alice")?,
        };
        let list = |names: &[String]| -> Result<Vec<[u8; 20]>, dsi_chain::ChainError> {
            names.iter().map(|n| parse_address(n.trim())).collect()
        };
        Ok(dsi_chain::deploy::DeployOptions {
            url: self.url.clone(),
            deployer,
            council: list(&self.council)?,
            council_threshold: self.council_threshold,
            timelock: self.timelock,
            committee: list(&self.committee)?,
            committee_threshold: self.committee_threshold,
            challenge_blocks: self.challenge_blocks,
            max_epoch_total: self.max_epoch_total,
            bundles: self.bundles.clone(),
        })
    }
}
