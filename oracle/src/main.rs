//! `oracle`: the DSI oracle's command line. Thin: parses arguments and calls the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dsi_protocol::Epoch;
use oracle::api::{CloseRequest, CloseResponse, ErrorBody};
use oracle::batch::{batch_content_id, decode_batch, verify_batch};
use oracle::{DataDir, OracleState};
use tokio_util::sync::CancellationToken;

/// The DSI oracle: tracker, receipt ingest, audits, epoch aggregation and Merkle proofs.
#[derive(Parser, Debug)]
#[command(name = "oracle", version, about, long_about = None)]
struct Cli {
    /// Data directory (key, admin token, config, SQLite database, published batches).
    /// Default: ~/.local/share/dsi/oracle.
    #[arg(long, global = true, env = "DSI_ORACLE_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
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
    /// Claim a seeder's rewards on chain: fetch its newest leaf and proof from the oracle and
    /// submit `reward_pool.claim` (anyone may; the money goes to the leaf's payout account).
    /// Uses `[chain]` from the data directory's config.
    Claim {
        /// The seeder's node id.
        #[arg(long, value_name = "NODE")]
        seeder: String,
        /// Claim with the leaf of this epoch (default: the seeder's newest).
        #[arg(long, value_name = "EPOCH")]
        epoch: Option<u64>,
        /// The oracle's URL (default: http://<listen address from config>).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
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
    /// Recompute an epoch's root from its published batch file, bit for bit: every receipt
    /// is re-checked (signatures, rules) and the rewards recomputed. Exit 0 if the root
    /// and total match, 4 if they do not.
    VerifyEpoch {
        /// The batch file (`batches/epoch-NNNNNNNN.batch`, or downloaded from
        /// `GET /v1/epochs/{n}/batch`).
        batch_file: PathBuf,
        /// Also list every seeder's amounts.
        #[arg(long)]
        seeders: bool,
    },
}

#[derive(Subcommand, Debug)]
enum GovernanceCommand {
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

/// Exit codes.
mod exit {
    pub const BAD_INPUT: u8 = 3;
    pub const VERIFY_FAILED: u8 = 4;
    pub const DATA_DIR: u8 = 6;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DSI_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let data_dir = DataDir::new(cli.data_dir.unwrap_or_else(DataDir::default_path));
    match runtime.block_on(run(cli.command, data_dir)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn chain_client(data_dir: &DataDir) -> anyhow::Result<oracle::chain::Chain> {
    let config = data_dir.config()?;
    if config.chain.deployment.is_empty() {
        anyhow::bail!(
            "no chain configured: set [chain] deployment and suri_file in {}/config.toml",
            data_dir.path().display()
        );
    }
    let deployment =
        oracle::chain::Deployment::load(std::path::Path::new(&config.chain.deployment))?;
    let suri = oracle::data_dir::read_secret_file(std::path::Path::new(&config.chain.suri_file))
        .context("reading [chain] suri_file")?;
    Ok(oracle::chain::Chain::new(
        deployment,
        Some(config.chain.url),
        suri,
    ))
}

fn signer(
    chain: oracle::chain::Chain,
    suri_file: Option<PathBuf>,
) -> anyhow::Result<oracle::chain::Chain> {
    Ok(match suri_file {
        Some(path) => chain.signing_as(
            oracle::data_dir::read_secret_file(&path)
                .with_context(|| format!("reading {}", path.display()))?,
        ),
        None => chain,
    })
}

fn print_params(params: &dsi_protocol::reward::RewardParams) {
    println!(
        "rarity: base {} slope {} min {} max {} (ppm), target replication {}",
        params.rarity.base.0,
        params.rarity.slope.0,
        params.rarity.min.0,
        params.rarity.max.0,
        params.target_replication
    );
    println!(
        "demand: base {} slope {} min {} max {} (ppm); bandwidth share {} ppm",
        params.demand.base.0,
        params.demand.slope.0,
        params.demand.min.0,
        params.demand.max.0,
        params.bandwidth_share.0
    );
}

async fn governance(data_dir: &DataDir, command: GovernanceCommand) -> anyhow::Result<ExitCode> {
    use dsi_protocol::fixed::{LinearCurve, Ppm};
    let chain = chain_client(data_dir)?;
    match command {
        GovernanceCommand::ProposeRarity {
            base,
            slope,
            min,
            max,
            target_replication,
            suri_file,
        } => {
            if min > max {
                anyhow::bail!("--min {min} is above --max {max}");
            }
            let chain = signer(chain, suri_file)?;
            let curve = LinearCurve {
                base: Ppm(base),
                slope: Ppm(slope),
                min: Ppm(min),
                max: Ppm(max),
            };
            let id = chain.propose_rarity(curve, target_replication).await?;
            println!("proposal {id}: set the rarity curve (approved by the proposer)");
        }
        GovernanceCommand::Approve { id, suri_file } => {
            let chain = signer(chain, suri_file)?;
            let written = chain.approve(id).await?;
            let proposal = chain.proposal(id).await?.context("the proposal is gone")?;
            let note = match written {
                oracle::chain::Written::Sent => "approved",
                oracle::chain::Written::AlreadyThere => "already approved by this member",
            };
            match proposal.approved_at {
                Some(block) => println!(
                    "proposal {id}: {note}; {} approvals, timelock started at block {block}",
                    proposal.approvals
                ),
                None => println!("proposal {id}: {note}; {} approvals", proposal.approvals),
            }
        }
        GovernanceCommand::Execute { id, suri_file } => {
            let chain = signer(chain, suri_file)?;
            match chain.execute(id).await? {
                oracle::chain::Written::Sent => println!("proposal {id}: executed"),
                oracle::chain::Written::AlreadyThere => {
                    println!("proposal {id}: was already executed")
                }
            }
        }
        GovernanceCommand::Show { id } => {
            let Some(proposal) = chain.proposal(id).await? else {
                eprintln!("error: no proposal {id}");
                return Ok(ExitCode::from(exit::BAD_INPUT));
            };
            println!(
                "proposal {id}: proposer {}, {} approvals, approved at {}, executed {}; current block {}",
                proposal.proposer,
                proposal.approvals,
                proposal
                    .approved_at
                    .map_or_else(|| "-".to_string(), |b| format!("block {b}")),
                proposal.executed,
                chain.current_block().await?
            );
        }
        GovernanceCommand::Params => print_params(&chain.params().await?),
    }
    Ok(ExitCode::SUCCESS)
}

async fn run(command: Command, data_dir: DataDir) -> anyhow::Result<ExitCode> {
    match command {
        Command::Init => {
            let created = data_dir.init()?;
            let key = data_dir.key()?;
            if created {
                println!("initialized {}", data_dir.path().display());
            } else {
                println!("already initialized: {}", data_dir.path().display());
            }
            println!("oracle id {}", key.node_id());
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            listen,
            database_url,
        } => {
            let state = match OracleState::open(&data_dir, database_url).await {
                Ok(state) => state,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    return Ok(ExitCode::from(exit::DATA_DIR));
                }
            };
            let addr = listen.unwrap_or(state.config.listen);
            let (listener, local) = oracle::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            tracing::info!(%local, network = %state.config.network, oracle = %state.key.node_id().short(), "oracle listening");
            println!("listening on http://{local}");
            let cancel = CancellationToken::new();
            let on_signal = cancel.clone();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                on_signal.cancel();
            });
            let terminate = cancel.clone();
            tokio::spawn(async move {
                if let Ok(mut signal) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                {
                    signal.recv().await;
                    terminate.cancel();
                }
            });
            oracle::serve(state.clone(), listener, cancel)
                .await
                .context("server failed")?;
            state.store.close().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::CloseEpoch { through, url } => {
            let token = match data_dir.admin_token() {
                Ok(token) => token,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    return Ok(ExitCode::from(exit::DATA_DIR));
                }
            };
            let url = match url {
                Some(url) => url,
                None => format!("http://{}", data_dir.config()?.listen),
            };
            let response = reqwest::Client::new()
                .post(format!("{}/v1/epochs/close", url.trim_end_matches('/')))
                .bearer_auth(token)
                .json(&CloseRequest {
                    through: through.map(Epoch),
                })
                .send()
                .await
                .with_context(|| format!("cannot reach the oracle at {url}"))?;
            if !response.status().is_success() {
                let status = response.status();
                let body: Option<ErrorBody> = response.json().await.ok();
                anyhow::bail!(
                    "the oracle refused ({status}): {}",
                    body.map_or_else(String::new, |b| b.message)
                );
            }
            let closed: CloseResponse = response.json().await.context("unexpected answer")?;
            if closed.closed.is_empty() {
                println!("nothing to close");
            }
            for record in closed.closed {
                println!(
                    "epoch {}: {} receipts, {} seeders, total {}, root 0x{}, batch {}",
                    record.epoch,
                    record.receipts,
                    record.seeders,
                    record.total,
                    hex::encode(record.root),
                    record.batch_content_id
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Claim { seeder, epoch, url } => {
            let chain = chain_client(&data_dir)?;
            let seeder: dsi_protocol::NodeId = seeder
                .parse()
                .map_err(|e| anyhow::anyhow!("bad seeder id {seeder:?}: {e}"))?;
            let url = match url {
                Some(url) => url,
                None => format!("http://{}", data_dir.config()?.listen),
            };
            let url = url.trim_end_matches('/');
            let leaf_url = match epoch {
                Some(epoch) => format!("{url}/v1/epochs/{epoch}/seeders/{seeder}"),
                None => format!("{url}/v1/seeders/{seeder}"),
            };
            let answer = reqwest::get(&leaf_url)
                .await
                .with_context(|| format!("cannot reach the oracle at {url}"))?;
            if !answer.status().is_success() {
                let body: Option<ErrorBody> = answer.json().await.ok();
                anyhow::bail!(
                    "the oracle has no leaf: {}",
                    body.map_or_else(String::new, |b| b.message)
                );
            }
            let value: serde_json::Value = answer.json().await.context("unexpected answer")?;
            let leaf_value = if epoch.is_some() {
                value
            } else {
                value["epochs"][0].clone()
            };
            let leaf: oracle::store::LeafRecord = serde_json::from_value(leaf_value)
                .context("the seeder has no leaf yet (no closed epoch paid it)")?;
            let before = chain.balance(&leaf.payout).await?;
            let paid = chain
                .claim(
                    leaf.epoch.0,
                    &seeder,
                    &leaf.payout,
                    leaf.cumulative,
                    &leaf.proof,
                )
                .await?;
            let after = chain.balance(&leaf.payout).await?;
            println!(
                "claimed epoch {} for {}: paid {paid} to {} (balance {before} -> {after}); cumulative {}",
                leaf.epoch,
                seeder.short(),
                leaf.payout,
                leaf.cumulative
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Fund { amount } => {
            let chain = chain_client(&data_dir)?;
            chain.fund(amount).await?;
            println!(
                "funded the reward pool with {amount}; free balance {}",
                chain.free_balance().await?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Governance(command) => governance(&data_dir, command).await,
        Command::VerifyEpoch {
            batch_file,
            seeders,
        } => {
            let bytes = match tokio::fs::read(&batch_file).await {
                Ok(bytes) => bytes,
                Err(error) => {
                    eprintln!("error: cannot read {}: {error}", batch_file.display());
                    return Ok(ExitCode::from(exit::BAD_INPUT));
                }
            };
            let batch = match decode_batch(&bytes) {
                Ok(batch) => batch,
                Err(error) => {
                    eprintln!("error: {}: {error}", batch_file.display());
                    return Ok(ExitCode::from(exit::BAD_INPUT));
                }
            };
            println!(
                "batch {} (content id {})",
                batch_file.display(),
                batch_content_id(&bytes)
            );
            println!(
                "epoch {} on {}: {} receipts, {} chunks, {} seeders, budget {}",
                batch.inputs.epoch,
                batch.network,
                batch.receipts.len(),
                batch.inputs.chunks.len(),
                batch.inputs.seeders.len(),
                batch.inputs.budget
            );
            let checked = tokio::task::spawn_blocking(move || verify_batch(&batch)).await?;
            match checked {
                Ok(verified) => {
                    if seeders {
                        println!(
                            "seeder            payout                                      bytes         amount     cumulative"
                        );
                        for s in &verified.rewards.seeders {
                            println!(
                                "{:<17} {} {:>12} {:>14} {:>14}",
                                s.seeder.short().to_string(),
                                s.payout,
                                s.bytes_served,
                                s.amount,
                                s.cumulative
                            );
                        }
                    }
                    println!(
                        "ok: root 0x{} total {} recomputed bit for bit",
                        hex::encode(verified.root),
                        verified.rewards.total
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => {
                    eprintln!("verification failed: {error}");
                    Ok(ExitCode::from(exit::VERIFY_FAILED))
                }
            }
        }
    }
}
