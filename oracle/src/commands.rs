//! The work of every `oracle` subcommand, as library functions that return a report
//! (`dsi_service::report::Report`); `main.rs` parses the command line, prints the report and
//! exits with [`CommandError::exit`]'s code from the table both DSI binaries share.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dsi_api::exit::Exit;
use dsi_api::oracle::ClosedEpoch;
use dsi_protocol::fixed::{LinearCurve, Ppm};
use dsi_protocol::reward::{MarketParams, RewardParams};
use dsi_protocol::{ContentId, Epoch, NodeId, PayoutAccount};
use dsi_service::report::Report;
use dsi_service::{ClientError, OracleClient};
use serde::Serialize;
use tokio::net::TcpListener;

use crate::batch::{VerifyError, batch_content_id, decode_batch, verify_batch};
use crate::chain::{Chain, ChainError, Deployment, Signer, Written};
use crate::{DataDir, OracleState};

/// Why a command failed; each maps to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Bad arguments or configuration.
    #[error("{0}")]
    Usage(String),
    /// What was asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The data directory (key, token, config, database) cannot be used.
    #[error("{0}")]
    DataDir(String),
    /// The oracle's API failed or refused.
    #[error(transparent)]
    Oracle(#[from] ClientError),
    /// The chain failed or refused.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// A batch file does not check out.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// The server failed.
    #[error("{0}")]
    Serve(String),
}

impl CommandError {
    /// The exit code.
    pub fn exit(&self) -> Exit {
        match self {
            Self::Usage(_) => Exit::Usage,
            Self::NotFound(_) => Exit::NotFound,
            Self::DataDir(_) => Exit::DataDir,
            Self::Oracle(e) => e.exit(),
            Self::Chain(ChainError::Refused { .. }) => Exit::Refused,
            Self::Chain(ChainError::Deployment(_) | ChainError::Key(_) | ChainError::Bundle(_)) => {
                Exit::Usage
            }
            Self::Chain(_) => Exit::Unavailable,
            Self::Verify(VerifyError::Malformed(_)) => Exit::Usage,
            Self::Verify(_) => Exit::Integrity,
            Self::Serve(_) => Exit::Failure,
        }
    }
}

type Result<T> = std::result::Result<T, CommandError>;

fn data_dir_error(error: anyhow::Error) -> CommandError {
    CommandError::DataDir(format!("{error:#}"))
}

/// `oracle init`.
#[derive(Debug, Serialize)]
pub struct InitReport {
    /// The data directory.
    pub path: PathBuf,
    /// The oracle's audit identity.
    pub oracle: NodeId,
    /// Whether anything was created.
    pub created: bool,
}

impl Report for InitReport {
    fn text(&self) -> String {
        let what = if self.created {
            "initialized"
        } else {
            "already initialized:"
        };
        format!("{what} {}\noracle id {}", self.path.display(), self.oracle)
    }
}

/// Creates the data directory, key, admin token and config (keeps what exists).
pub fn init(dir: &DataDir) -> Result<InitReport> {
    let created = dir.init().map_err(data_dir_error)?;
    Ok(InitReport {
        path: dir.path().to_path_buf(),
        oracle: dir.key().map_err(data_dir_error)?.node_id(),
        created,
    })
}

/// Opens the oracle's state and binds its listener (`listen`, else the config's);
/// `crate::serve` then runs it.
pub async fn prepare_serve(
    dir: &DataDir,
    listen: Option<std::net::SocketAddr>,
    database_url: Option<String>,
) -> Result<(Arc<OracleState>, TcpListener)> {
    let state = OracleState::open(dir, database_url)
        .await
        .map_err(data_dir_error)?;
    if state.config.iroh.enabled() {
        // A bad relay URL fails now, not at the first close's audits.
        dsi_transport::Dialer::new(state.key.clone(), &state.config.iroh)
            .map_err(|e| CommandError::Usage(format!("[iroh]: {e}")))?;
    }
    let addr = listen.unwrap_or(state.config.listen);
    let (listener, _) = crate::bind(addr)
        .await
        .map_err(|e| CommandError::Usage(format!("cannot listen on {addr}: {e}")))?;
    Ok((state, listener))
}

/// The client of the oracle at `url`, or at the configured listen address.
fn oracle_client(dir: &DataDir, url: Option<String>) -> Result<OracleClient> {
    let url = match url {
        Some(url) => url,
        None => format!("http://{}", dir.config().map_err(data_dir_error)?.listen),
    };
    Ok(OracleClient::new(&url)?)
}

/// `oracle close-epoch`: the epochs closed.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct CloseReport(pub Vec<ClosedEpoch>);

impl Report for CloseReport {
    fn text(&self) -> String {
        if self.0.is_empty() {
            return "nothing to close".into();
        }
        self.0
            .iter()
            .map(|e| {
                format!(
                    "epoch {}: {} receipts, {} seeders, total {}, root 0x{}, batch {}",
                    e.epoch,
                    e.receipts,
                    e.seeders,
                    e.total,
                    hex::encode(e.root),
                    e.batch_content_id
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Asks a running oracle (with the admin token) to close epochs through `through`.
pub async fn close_epoch(
    dir: &DataDir,
    through: Option<u64>,
    url: Option<String>,
) -> Result<CloseReport> {
    let token = dir.admin_token().map_err(data_dir_error)?;
    let client = oracle_client(dir, url)?;
    let closed = client.close(&token, through.map(Epoch)).await?;
    Ok(CloseReport(closed.closed))
}

/// `oracle sponsor`: the sponsorship recorded.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct SponsorReport(pub dsi_api::oracle::Sponsorship);

impl Report for SponsorReport {
    fn text(&self) -> String {
        let s = &self.0;
        let id = s
            .chain_id
            .map_or_else(String::new, |id| format!(" (reward_pool sponsorship {id})"));
        format!(
            "sponsored {}{id}: {} per epoch, epochs {} to {}, up to {} replicas",
            s.content, s.per_epoch, s.first_epoch, s.last_epoch, s.replicas
        )
    }
}

/// What a sponsor pays for.
#[derive(Clone, Copy, Debug)]
pub struct SponsorTerms {
    /// Native units per epoch.
    pub per_epoch: u128,
    /// Epochs funded.
    pub epochs: u64,
    /// Target replication.
    pub replicas: u32,
    /// First epoch funded (default: the current one).
    pub first_epoch: Option<u64>,
}

/// Sponsors a content: a deposit in `reward_pool` when the data directory configures a
/// chain (signed by `suri_file`, required: see [`depositor`]), else a record in a running
/// oracle's ledger.
pub async fn sponsor(
    dir: &DataDir,
    content: &str,
    terms: SponsorTerms,
    url: Option<String>,
    suri_file: Option<PathBuf>,
) -> Result<SponsorReport> {
    let content: ContentId = content
        .parse()
        .map_err(|e| CommandError::Usage(format!("content {content:?}: {e}")))?;
    let config = dir.config().map_err(data_dir_error)?;
    if !config.chain.deployment.is_empty() {
        let chain = depositor(dir, suri_file, "oracle sponsor")?;
        let epochs = u32::try_from(terms.epochs)
            .map_err(|_| CommandError::Usage(format!("--epochs {} is too many", terms.epochs)))?;
        // Default: the current epoch, or the one after the latest good epoch on chain if
        // that is later (the contract funds only epochs still to come).
        let first = match terms.first_epoch {
            Some(first) => first,
            None => {
                let current = config.epochs.epoch_at(dsi_protocol::now_ms()).0;
                match chain.last_good_epoch().await? {
                    Some(last) => current.max(last.saturating_add(1)),
                    None => current,
                }
            }
        };
        let deposit = terms
            .per_epoch
            .checked_mul(u128::from(epochs))
            .ok_or_else(|| CommandError::Usage("--amount × --epochs overflows".into()))?;
        let id = chain
            .sponsor(&content, first, epochs, terms.replicas, deposit)
            .await?;
        return Ok(SponsorReport(dsi_api::oracle::Sponsorship {
            content,
            per_epoch: terms.per_epoch,
            replicas: terms.replicas,
            first_epoch: Epoch(first),
            last_epoch: Epoch(first.saturating_add(terms.epochs.saturating_sub(1))),
            funded_at_ms: dsi_protocol::now_ms(),
            chain_id: Some(id),
        }));
    }
    let token = dir.admin_token().map_err(data_dir_error)?;
    let client = oracle_client(dir, url)?;
    let request = dsi_api::oracle::SponsorRequest {
        content,
        per_epoch: terms.per_epoch,
        epochs: terms.epochs,
        replicas: terms.replicas,
        first_epoch: terms.first_epoch.map(Epoch),
    };
    Ok(SponsorReport(client.sponsor(&token, &request).await?))
}

/// `oracle credit`: a downloader's credit.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct CreditReport(pub dsi_api::oracle::Credit);

impl Report for CreditReport {
    fn text(&self) -> String {
        self.0.to_string()
    }
}

/// Shows a downloader's credit, or adds `amount` to it first: a deposit in `reward_pool`
/// when the data directory configures a chain (signed by `suri_file`, required: see
/// [`depositor`]), else a record in a running oracle's ledger.
pub async fn credit(
    dir: &DataDir,
    node: &str,
    amount: Option<u128>,
    url: Option<String>,
    suri_file: Option<PathBuf>,
) -> Result<CreditReport> {
    let downloader: NodeId = node
        .parse()
        .map_err(|e| CommandError::Usage(format!("node {node:?}: {e}")))?;
    let config = dir.config().map_err(data_dir_error)?;
    if let (Some(amount), false) = (amount, config.chain.deployment.is_empty()) {
        let chain = depositor(dir, suri_file, "oracle credit --amount")?;
        chain.credit(&downloader, amount).await?;
        let on_chain = chain
            .credits(&[downloader])
            .await?
            .first()
            .copied()
            .unwrap_or_default();
        return Ok(CreditReport(dsi_api::oracle::Credit {
            downloader,
            funded: on_chain.deposited,
            spent: on_chain.deposited.saturating_sub(on_chain.unspent),
            available: on_chain.unspent,
            price_per_byte: chain.market().await?.price_per_byte,
        }));
    }
    let client = oracle_client(dir, url)?;
    let credit = match amount {
        Some(amount) => {
            let token = dir.admin_token().map_err(data_dir_error)?;
            let request = dsi_api::oracle::CreditRequest { downloader, amount };
            client.add_credit(&token, &request).await?
        }
        None => client.credit(&downloader).await?,
    };
    Ok(CreditReport(credit))
}

/// The chain client of the data directory's `[chain]` settings.
pub fn chain_client(dir: &DataDir) -> Result<Chain> {
    let config = dir.config().map_err(data_dir_error)?;
    if config.chain.deployment.is_empty() {
        return Err(CommandError::Usage(format!(
            "no chain configured: set [chain] deployment and suri_file in {}/config.toml",
            dir.path().display()
        )));
    }
    let deployment = Deployment::load(Path::new(&config.chain.deployment))?;
    let signer = Signer::from_file(Path::new(&config.chain.suri_file))
        .map_err(|e| CommandError::DataDir(format!("[chain] suri_file: {e}")))?;
    Ok(Chain::new(deployment, Some(config.chain.url), signer)?)
}

/// A chain client that only reads: `deployment` (a `deployment.json`) and `url` if given,
/// else the data directory's `[chain] deployment` and `url`. No key is read, so anyone can
/// check what the chain holds (`verify-epoch --chain`).
pub fn chain_reader(
    dir: &DataDir,
    deployment: Option<&Path>,
    url: Option<String>,
) -> Result<Chain> {
    let (deployment, url) = match deployment {
        Some(path) => (path.to_path_buf(), url),
        None => {
            let config = dir.config().map_err(data_dir_error)?;
            if config.chain.deployment.is_empty() {
                return Err(CommandError::Usage(format!(
                    "no chain to read: give --deployment FILE, or set [chain] deployment in {}/config.toml",
                    dir.path().display()
                )));
            }
            (
                PathBuf::from(&config.chain.deployment),
                url.or(Some(config.chain.url)),
            )
        }
    };
    Ok(Chain::reader(Deployment::load(&deployment)?, url)?)
}

/// What happened to one leaf in `oracle claim`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimOutcome {
    /// Paid now.
    Paid,
    /// Paid before (by anyone): nothing more to pay.
    AlreadyClaimed,
    /// The epoch's challenge window is still open: claim again later.
    InChallengeWindow,
    /// The epoch is not final on chain (yet).
    NotFinal,
    /// Governance vetoed the epoch: the leaf never pays.
    Vetoed,
    /// The pool refused this leaf for another reason (`error`), for example an epoch this
    /// oracle marked `mismatch` whose leaves are not the chain's.
    Refused,
}

/// One leaf of `oracle claim`.
#[derive(Debug, Serialize)]
pub struct ClaimLine {
    /// The leaf's epoch.
    pub epoch: Epoch,
    /// Where the money goes.
    pub payout: PayoutAccount,
    /// What the leaf is worth.
    #[serde(with = "dsi_api::serde_as::decimal")]
    pub amount: u128,
    /// What this claim paid.
    #[serde(with = "dsi_api::serde_as::decimal")]
    pub paid: u128,
    /// What happened.
    pub outcome: ClaimOutcome,
    /// The pool's error, for `refused`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `oracle claim`.
#[derive(Debug, Serialize)]
pub struct ClaimReport {
    /// The seeder.
    pub seeder: NodeId,
    /// What this run paid in total.
    #[serde(with = "dsi_api::serde_as::decimal")]
    pub paid: u128,
    /// Every leaf tried, oldest epoch first.
    pub claims: Vec<ClaimLine>,
}

impl Report for ClaimReport {
    fn text(&self) -> String {
        let mut text = format!(
            "seeder {}: paid {} for {} leaves",
            self.seeder.short(),
            self.paid,
            self.claims.len()
        );
        for line in &self.claims {
            let what = match line.outcome {
                ClaimOutcome::Paid => format!("paid {} to {}", line.paid, line.payout),
                ClaimOutcome::AlreadyClaimed => "already claimed".into(),
                ClaimOutcome::InChallengeWindow => "in its challenge window: later".into(),
                ClaimOutcome::NotFinal => "not final on chain yet".into(),
                ClaimOutcome::Vetoed => "vetoed: never pays".into(),
                ClaimOutcome::Refused => format!(
                    "refused by the pool: {}",
                    line.error.as_deref().unwrap_or("?")
                ),
            };
            text.push_str(&format!(
                "\n  epoch {}: leaf {}, {what}",
                line.epoch, line.amount
            ));
        }
        text
    }
}

/// Fetches a seeder's leaves and proofs from the oracle (of `epoch`, else every leaf the
/// oracle lists for it, at most the 50 newest) and submits `reward_pool.claim` for each one
/// not paid yet. Leaves that cannot pay now (challenge window, vetoed, not final) are
/// reported, not errors.
pub async fn claim(
    dir: &DataDir,
    seeder: &str,
    epoch: Option<u64>,
    url: Option<String>,
) -> Result<ClaimReport> {
    let chain = chain_client(dir)?;
    let seeder: NodeId = seeder
        .parse()
        .map_err(|e| CommandError::Usage(format!("bad seeder id {seeder:?}: {e}")))?;
    let client = oracle_client(dir, url)?;
    let mut leaves = match epoch {
        Some(epoch) => vec![client.leaf(Epoch(epoch), &seeder).await?],
        None => client.seeder(&seeder).await?.epochs,
    };
    if leaves.is_empty() {
        return Err(CommandError::NotFound(format!(
            "seeder {seeder} has no leaf yet (no closed epoch paid it)"
        )));
    }
    leaves.sort_by_key(|l| l.epoch);
    let mut claims = Vec::with_capacity(leaves.len());
    let mut total = 0u128;
    for leaf in leaves {
        let result = chain
            .claim(
                leaf.epoch.0,
                &seeder,
                &leaf.payout,
                leaf.amount,
                &leaf.proof,
            )
            .await;
        let (paid, outcome, error) = match result {
            Ok(0) => (0, ClaimOutcome::AlreadyClaimed, None),
            Ok(paid) => (paid, ClaimOutcome::Paid, None),
            Err(ChainError::Refused {
                contract,
                message,
                error,
            }) => match error.as_str() {
                "InChallengeWindow" => (0, ClaimOutcome::InChallengeWindow, None),
                "EpochNotFinal" => (0, ClaimOutcome::NotFinal, None),
                "EpochVetoed" => (0, ClaimOutcome::Vetoed, None),
                // The one leaf asked for: its refusal is the command's.
                _ if epoch.is_some() => {
                    return Err(ChainError::Refused {
                        contract,
                        message,
                        error,
                    }
                    .into());
                }
                // One bad leaf (a `mismatch` epoch, say) must not keep the others unpaid.
                _ => (0, ClaimOutcome::Refused, Some(error)),
            },
            Err(e) => return Err(e.into()),
        };
        total = total.saturating_add(paid);
        claims.push(ClaimLine {
            epoch: leaf.epoch,
            payout: leaf.payout,
            amount: leaf.amount,
            paid,
            outcome,
            error,
        });
    }
    Ok(ClaimReport {
        seeder,
        paid: total,
        claims,
    })
}

/// `oracle fund`.
#[derive(Debug, Serialize)]
pub struct FundReport {
    /// Put into the pool.
    #[serde(with = "dsi_api::serde_as::decimal")]
    pub amount: u128,
    /// The pool's free balance after.
    #[serde(with = "dsi_api::serde_as::decimal")]
    pub free_balance: u128,
}

impl Report for FundReport {
    fn text(&self) -> String {
        format!(
            "funded the reward pool with {}; free balance {}",
            self.amount, self.free_balance
        )
    }
}

/// Funds the reward pool from the `[chain] suri_file` account.
pub async fn fund(dir: &DataDir, amount: u128) -> Result<FundReport> {
    let chain = chain_client(dir)?;
    chain.fund(amount).await?;
    Ok(FundReport {
        amount,
        free_balance: chain.free_balance().await?,
    })
}

/// What `oracle deploy` did.
#[derive(Debug, Serialize)]
pub struct DeployReport {
    /// The file written.
    pub out: PathBuf,
    /// The deployment.
    pub deployment: serde_json::Value,
}

impl Report for DeployReport {
    fn text(&self) -> String {
        format!("== wrote {}", self.out.display())
    }
}

/// Deploys the four contracts (progress on stdout) and writes the deployment file.
pub async fn deploy(args: &crate::cli::DeployArgs) -> Result<DeployReport> {
    let options = args.options()?;
    let deployment = dsi_chain::deploy::deploy(&options, |line| println!("   {line}")).await?;
    dsi_chain::deploy::write_deployment(&deployment, &args.out)?;
    Ok(DeployReport {
        out: args.out.clone(),
        deployment: serde_json::to_value(&deployment)
            .map_err(|e| CommandError::Serve(e.to_string()))?,
    })
}

/// A governance action's outcome, as one line.
#[derive(Debug, Serialize)]
pub struct GovernanceReport {
    /// The proposal.
    pub proposal: Option<u32>,
    /// What happened.
    pub message: String,
}

impl Report for GovernanceReport {
    fn text(&self) -> String {
        self.message.clone()
    }
}

/// The client that signs a deposit (`what`, a sponsorship or a credit) with the
/// depositor's own key, given by `--suri-file`. Never the committee's `[chain] suri_file`
/// by default: that account pays the oracle's submissions (a deposit from it could leave
/// the committee unable to vote) and would become the sponsor, the only account that can
/// withdraw what no epoch draws.
pub fn depositor(dir: &DataDir, suri_file: Option<PathBuf>, what: &str) -> Result<Chain> {
    match suri_file {
        Some(path) => signer(chain_client(dir)?, Some(path)),
        None => Err(CommandError::Usage(format!(
            "{what} with a chain is a deposit from your own account: give --suri-file FILE (mode 0600, holding its secret URI); the committee's key ([chain] suri_file) is not used for deposits"
        ))),
    }
}

/// Who signs a governance action: the `[chain]` account, or the member whose secret URI is
/// in `suri_file` (0600).
pub fn signer(chain: Chain, suri_file: Option<PathBuf>) -> Result<Chain> {
    Ok(match suri_file {
        Some(path) => chain.signing_as(
            Signer::from_file(&path).map_err(|e| CommandError::DataDir(e.to_string()))?,
        ),
        None => chain,
    })
}

/// Proposes a new rarity curve (the proposer approves it too).
pub async fn propose_rarity(
    chain: &Chain,
    curve: LinearCurve,
    target_replication: u32,
) -> Result<GovernanceReport> {
    if curve.min > curve.max {
        return Err(CommandError::Usage(format!(
            "--min {} is above --max {}",
            curve.min.0, curve.max.0
        )));
    }
    let id = chain.propose_rarity(curve, target_replication).await?;
    Ok(GovernanceReport {
        proposal: Some(id),
        message: format!("proposal {id}: set the rarity curve (approved by the proposer)"),
    })
}

/// Proposes a new market for `multipliers` (the proposer approves it too). The contract
/// refuses at execution anything outside its hard bounds; this reads them and refuses
/// first.
pub async fn propose_market(chain: &Chain, market: MarketParams) -> Result<GovernanceReport> {
    // The contract's own bounds (one rule: `MarketBounds`): a market outside them would
    // wait out the timelock only to fail at execution.
    let bounds = chain.bounds().await?.market();
    if let Some(field) = bounds.refuses(&market) {
        let b = &bounds;
        let allowed = match field {
            "fee" => format!("--fee {} to {} ppm", b.fee_min.0, b.fee_max.0),
            "price_per_byte" => format!("--price-per-byte {} to {}", b.price_min, b.price_max),
            "vetting_audits" => format!(
                "--vetting-audits {} to {}",
                b.vetting_audits_min, b.vetting_audits_max
            ),
            _ => format!("--unvetted-share at most {} ppm", b.unvetted_share_max.0),
        };
        return Err(CommandError::Usage(format!(
            "{field} is outside the bounds multipliers was instantiated with: {allowed}"
        )));
    }
    let id = chain.propose_market(market).await?;
    Ok(GovernanceReport {
        proposal: Some(id),
        message: format!(
            "proposal {id}: set the market to {} units per byte, fee {} ppm, {} audits to vet at {} ppm before (approved by the proposer)",
            market.price_per_byte, market.fee.0, market.vetting_audits, market.unvetted_share.0
        ),
    })
}

/// A rarity curve from ppm values.
pub fn curve(base: u32, slope: u32, min: u32, max: u32) -> LinearCurve {
    LinearCurve {
        base: Ppm(base),
        slope: Ppm(slope),
        min: Ppm(min),
        max: Ppm(max),
    }
}

/// Approves a proposal as a council member.
pub async fn approve(chain: &Chain, id: u32) -> Result<GovernanceReport> {
    let written = chain.approve(id).await?;
    let proposal = chain
        .proposal(id)
        .await?
        .ok_or_else(|| CommandError::NotFound(format!("no proposal {id}")))?;
    let note = match written {
        Written::Sent => "approved",
        Written::AlreadyThere => "already approved by this member",
    };
    let message = match proposal.approved_at {
        Some(block) => format!(
            "proposal {id}: {note}; {} approvals, timelock started at block {block}",
            proposal.approvals
        ),
        None => format!("proposal {id}: {note}; {} approvals", proposal.approvals),
    };
    Ok(GovernanceReport {
        proposal: Some(id),
        message,
    })
}

/// Executes an approved proposal after its timelock.
pub async fn execute(chain: &Chain, id: u32) -> Result<GovernanceReport> {
    let message = match chain.execute(id).await? {
        Written::Sent => format!("proposal {id}: executed"),
        Written::AlreadyThere => format!("proposal {id}: was already executed"),
    };
    Ok(GovernanceReport {
        proposal: Some(id),
        message,
    })
}

/// A proposal's state and the current block.
pub async fn show(chain: &Chain, id: u32) -> Result<GovernanceReport> {
    let proposal = chain
        .proposal(id)
        .await?
        .ok_or_else(|| CommandError::NotFound(format!("no proposal {id}")))?;
    Ok(GovernanceReport {
        proposal: Some(id),
        message: format!(
            "proposal {id}: proposer {}, {} approvals, approved at {}, executed {}; current block {}",
            proposal.proposer,
            proposal.approvals,
            proposal
                .approved_at
                .map_or_else(|| "-".to_string(), |b| format!("block {b}")),
            proposal.executed,
            chain.current_block().await?
        ),
    })
}

/// `oracle governance params`: the reward parameters on chain.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct ParamsReport(pub RewardParams);

impl Report for ParamsReport {
    fn text(&self) -> String {
        let p = &self.0;
        format!(
            "rarity: base {} slope {} min {} max {} (ppm), target replication {}\n\
             demand: base {} slope {} min {} max {} (ppm); bandwidth share {} ppm",
            p.rarity.base.0,
            p.rarity.slope.0,
            p.rarity.min.0,
            p.rarity.max.0,
            p.target_replication,
            p.demand.base.0,
            p.demand.slope.0,
            p.demand.min.0,
            p.demand.max.0,
            p.bandwidth_share.0
        )
    }
}

/// The reward parameters the `multipliers` contract holds now.
pub async fn params(chain: &Chain) -> Result<ParamsReport> {
    Ok(ParamsReport(chain.params().await?))
}

/// One seeder's line of `verify-epoch --seeders`.
#[derive(Debug, Serialize)]
pub struct SeederAmount {
    /// The seeder.
    pub seeder: NodeId,
    /// Its payout account.
    pub payout: PayoutAccount,
    /// Bytes it served.
    pub bytes_served: u64,
    /// Earned in the epoch.
    #[serde(with = "dsi_api::serde_as::decimal")]
    pub amount: u128,
    /// Earned so far.
    #[serde(with = "dsi_api::serde_as::decimal")]
    pub cumulative: u128,
}

/// `oracle verify-epoch`.
#[derive(Debug, Serialize)]
pub struct VerifyEpochReport {
    /// The file.
    pub file: PathBuf,
    /// Its content id.
    pub batch_content_id: dsi_protocol::ContentId,
    /// The epoch.
    pub epoch: Epoch,
    /// Its network.
    pub network: dsi_protocol::NetworkId,
    /// Receipts in the batch.
    pub receipts: usize,
    /// Chunk facts.
    pub chunks: usize,
    /// Seeder facts.
    pub seeders: usize,
    /// The epoch's budget.
    #[serde(with = "dsi_api::serde_as::decimal")]
    pub budget: u128,
    /// The recomputed root, when it matched.
    pub root: Option<String>,
    /// The recomputed total, when it matched.
    pub total: Option<String>,
    /// Per seeder, when asked for.
    pub amounts: Vec<SeederAmount>,
    /// The recomputed funding, when the batch records it (version 3) and checks out.
    pub funding: Option<FundingSummary>,
    /// What `--chain` compared, when asked for and the batch checked out.
    pub chain: Option<ChainComparison>,
    /// Why verification failed.
    pub failure: Option<String>,
}

/// The funding `verify-epoch` recomputed from a batch.
#[derive(Debug, Serialize)]
pub struct FundingSummary {
    /// Sponsorships drawn on.
    pub draws: usize,
    /// What the draws take from sponsorships.
    #[serde(with = "dsi_api::serde_as::decimal")]
    pub drawn: u128,
    /// Downloaders whose credit paid.
    pub debits: usize,
    /// What the debits take from credit.
    #[serde(with = "dsi_api::serde_as::decimal")]
    pub debited: u128,
    /// What the epoch takes from the pool's free balance.
    #[serde(with = "dsi_api::serde_as::decimal")]
    pub subsidy: u128,
    /// The hashes of its funding parts, in order, hex.
    pub part_hashes: Vec<String>,
}

/// What `verify-epoch --chain` found on chain for the batch's epoch.
#[derive(Debug, Serialize)]
pub struct ChainComparison {
    /// `Final` or `Vetoed`.
    pub status: String,
    /// Funding parts applied, of how many.
    pub parts_applied: (u32, u32),
    /// Sponsorships compared with the chain's.
    pub sponsorships_checked: usize,
    /// The block the batch says its close read at, checked to be the epoch's boundary
    /// and read at (version 4 batches).
    pub boundary_block: Option<u32>,
    /// Said about that block without failing (a later block made before the epoch ended).
    pub boundary_note: Option<String>,
}

impl Report for VerifyEpochReport {
    fn text(&self) -> String {
        let mut lines = vec![
            format!(
                "batch {} (content id {})",
                self.file.display(),
                self.batch_content_id
            ),
            format!(
                "epoch {} on {}: {} receipts, {} chunks, {} seeders, budget {}",
                self.epoch, self.network, self.receipts, self.chunks, self.seeders, self.budget
            ),
        ];
        if !self.amounts.is_empty() {
            lines.push(
                "seeder            payout                                      bytes         amount     cumulative"
                    .into(),
            );
            for s in &self.amounts {
                lines.push(format!(
                    "{:<17} {} {:>12} {:>14} {:>14}",
                    s.seeder.short().to_string(),
                    s.payout,
                    s.bytes_served,
                    s.amount,
                    s.cumulative
                ));
            }
        }
        if let Some(f) = &self.funding {
            lines.push(format!(
                "funding: {} draws on sponsorships ({}), {} debits of credit ({}), subsidy {}, {} parts",
                f.draws,
                f.drawn,
                f.debits,
                f.debited,
                f.subsidy,
                f.part_hashes.len()
            ));
            for (index, hash) in f.part_hashes.iter().enumerate() {
                lines.push(format!("  part {index}: 0x{hash}"));
            }
        }
        if let (Some(root), Some(total)) = (&self.root, &self.total) {
            lines.push(format!(
                "ok: root 0x{root} total {total} recomputed bit for bit"
            ));
        }
        if let Some(c) = &self.chain {
            lines.push(format!(
                "ok: the chain's epoch ({}, {}/{} parts applied) has this batch, root, total, subsidy and part hashes; {} sponsorships match the chain's, none left out",
                c.status,
                c.parts_applied.0,
                c.parts_applied.1,
                c.sponsorships_checked,
            ));
            if let Some(block) = c.boundary_block {
                lines.push(format!(
                    "ok: the close read at block {block} (final, made before the epoch ended); there the chain had the same market, reward parameters and limits, and no sponsorship the batch leaves out"
                ));
            }
            if let Some(note) = &c.boundary_note {
                lines.push(format!("note: {note}"));
            }
        }
        lines.join("\n")
    }

    fn summary(&self) -> Option<String> {
        self.failure
            .as_ref()
            .map(|why| format!("verification failed: {why}"))
    }
}

impl VerifyEpochReport {
    /// The exit code: [`Exit::Integrity`] when the batch does not check out.
    pub fn exit(&self) -> Exit {
        if self.failure.is_some() {
            Exit::Integrity
        } else {
            Exit::Success
        }
    }
}

/// Recomputes an epoch from its batch file: every receipt judged by the ingest rules, the
/// rewards, the root and the funding recomputed and compared bit for bit. With `chain`,
/// also compares them with what `reward_pool` agreed on for the epoch (batch id, root,
/// total, subsidy, part hashes) and each sponsorship the batch draws on with the chain's
/// (content, amount per epoch, epochs).
pub async fn verify_epoch(
    file: &Path,
    seeders: bool,
    chain: Option<&Chain>,
) -> Result<VerifyEpochReport> {
    let bytes = tokio::fs::read(file)
        .await
        .map_err(|e| CommandError::NotFound(format!("cannot read {}: {e}", file.display())))?;
    let batch = decode_batch(&bytes).map_err(|e| match e {
        VerifyError::Malformed(why) => {
            CommandError::Usage(format!("{}: not a DSI epoch batch: {why}", file.display()))
        }
        other => CommandError::Verify(other),
    })?;
    let mut report = VerifyEpochReport {
        file: file.to_path_buf(),
        batch_content_id: batch_content_id(&bytes),
        epoch: batch.inputs.epoch,
        network: batch.network.clone(),
        receipts: batch.receipts.len(),
        chunks: batch.inputs.chunks.len(),
        seeders: batch.inputs.seeders.len(),
        budget: batch.inputs.budget,
        root: None,
        total: None,
        amounts: Vec::new(),
        funding: None,
        chain: None,
        failure: None,
    };
    let (batch, checked) = tokio::task::spawn_blocking(move || {
        let checked = verify_batch(&batch);
        (batch, checked)
    })
    .await
    .map_err(|e| CommandError::Serve(format!("verification task: {e}")))?;
    let verified = match checked {
        Ok(verified) => verified,
        Err(error) => {
            report.failure = Some(error.to_string());
            return Ok(report);
        }
    };
    report.root = Some(hex::encode(verified.root));
    report.total = Some(verified.rewards.total.to_string());
    if seeders {
        report.amounts = verified
            .rewards
            .seeders
            .iter()
            .map(|s| SeederAmount {
                seeder: s.seeder,
                payout: s.payout,
                bytes_served: s.bytes_served,
                amount: s.amount,
                cumulative: s.cumulative,
            })
            .collect();
    }
    report.funding = verified.funding.as_ref().map(|f| FundingSummary {
        draws: f.draws.len(),
        drawn: f.drawn(),
        debits: f.debits.len(),
        debited: f.debited(),
        subsidy: f.subsidy,
        part_hashes: f.hashes.iter().map(hex::encode).collect(),
    });
    if let Some(chain) = chain {
        match compare_with_chain(chain, &report, &verified, &batch).await? {
            Ok(comparison) => report.chain = Some(comparison),
            Err(why) => report.failure = Some(format!("the chain disagrees: {why}")),
        }
    }
    Ok(report)
}

/// What the chain holds for a batch's epoch, as `verify-epoch --chain` reads it.
#[derive(Debug, Clone)]
pub struct ChainView {
    /// `reward_pool.epoch(n)`.
    pub record: dsi_chain::contracts::EpochRecord,
    /// `reward_pool.funding_parts(n)`, of the same finalization.
    pub hashes: Vec<[u8; 32]>,
    /// The chain's sponsorships with ids up to the newest the batch records, by id.
    pub sponsorships: HashMap<u32, dsi_chain::ChainSponsorship>,
    /// `multipliers.bounds()`' market part: the batch's market must be inside.
    pub market_bounds: dsi_protocol::reward::MarketBounds,
    /// What the chain held at the block the batch says its close read at (version 4).
    pub boundary: Option<BoundaryReads>,
}

/// The chain's state at an epoch's boundary block, as `verify-epoch --chain` reads it.
#[derive(Debug, Clone)]
pub struct BoundaryReads {
    /// The block (checked to be the last one made before the epoch ended).
    pub block: dsi_chain::BlockRef,
    /// `multipliers.market()` there.
    pub market: MarketParams,
    /// `multipliers.params()` there.
    pub params: RewardParams,
    /// `reward_pool`'s `max_epoch_subsidy` there.
    pub max_subsidy: u128,
    /// `reward_pool`'s `max_epoch_total` there.
    pub max_total: u128,
}

/// `e`, or what to do about it when the node no longer holds `block`'s state.
fn pruned(e: CommandError, block: dsi_chain::BlockRef) -> CommandError {
    match e {
        CommandError::Chain(ChainError::Rpc(why)) if why.contains("discarded") => {
            CommandError::Chain(ChainError::Rpc(format!(
                "the node no longer holds the state of block {} (the block the batch's close read at): run verify-epoch against an archive node (ink-node --state-pruning archive-canonical), or pass --chain-url of one ({why})",
                block.number
            )))
        }
        e => e,
    }
}

/// Checks the block a batch says its close read at: `Err(why)` when it is not a final
/// block of the chain made before the epoch ended (at `end_ms`); `Ok(Some(note))` when a
/// later block was made before the end too. A close after the end reads the last one
/// (`close` pins it), so that happens only when the epoch was closed before its end (an
/// administrator's early close reads the newest final block of its time) or when the
/// committee read at an earlier block than the rule: the note says so, it does not fail.
async fn check_boundary(
    chain: &Chain,
    block: dsi_chain::BlockRef,
    end_ms: u64,
) -> Result<std::result::Result<Option<String>, String>> {
    let node = chain.node();
    let finalized = node.finalized().await?;
    if block.number > finalized.number {
        return Ok(Err(format!(
            "the batch was read at block {}, which is not final (the finalized head is {})",
            block.number, finalized.number
        )));
    }
    if node.block_hash(block.number).await? != Some(block.hash) {
        return Ok(Err(format!(
            "the batch was read at block {} 0x{}, which is not the chain's block {}",
            block.number,
            hex::encode(block.hash),
            block.number
        )));
    }
    let made = node.timestamp(block.hash).await?;
    if made >= end_ms {
        return Ok(Err(format!(
            "the batch was read at block {}, made at {made} ms, after the epoch ended at {end_ms} ms (an oracle whose node no longer held the boundary's state reads the newest final block: run it against an archive node)",
            block.number
        )));
    }
    if let Some(next) = node.block_hash(block.number.saturating_add(1)).await?
        && node.timestamp(next).await? < end_ms
    {
        return Ok(Ok(Some(format!(
            "block {} was made before the epoch ended too: the epoch was closed before its end, or read at an earlier block than the last one (what changed on chain in between is not in it)",
            block.number.saturating_add(1)
        ))));
    }
    Ok(Ok(None))
}

/// Reads what [`compare_funding`] compares a verified batch with; `Err(why)` when the
/// epoch is not final on chain or was finalized again while it was read.
async fn compare_with_chain(
    chain: &Chain,
    report: &VerifyEpochReport,
    verified: &crate::batch::Verified,
    batch: &crate::batch::EpochBatch,
) -> Result<std::result::Result<ChainComparison, String>> {
    let epoch = report.epoch;
    let sponsorships = &batch.sponsorships;
    // A version 4 batch names the block its close read at: checked to be the epoch's
    // boundary, then read there, so what the close saw is compared exactly.
    let note;
    let boundary = match batch.boundary {
        Some(block) => {
            let (_, end) = batch.schedule.window(epoch);
            let read = async {
                let found = check_boundary(chain, block, end).await?;
                let at = chain.at(block);
                Ok::<_, CommandError>(found.map(|note| (note, at)))
            };
            let (found, mut at) = match read.await.map_err(|e| pruned(e, block))? {
                Ok(read) => read,
                Err(why) => return Ok(Err(why)),
            };
            // A later block was made before the end too: everything is checked at the
            // last one, so what changed in between (a sponsorship, the market) is found.
            let mut checked_at = block;
            if found.is_some() {
                checked_at = chain
                    .node()
                    .block_at(end.saturating_sub(1), crate::close::BOUNDARY_FINALITY_WAIT)
                    .await?;
                at = chain.at(checked_at);
            }
            note = found.map(|found| {
                format!(
                    "{found}; everything was checked at block {}, the last one made before the end",
                    checked_at.number
                )
            });
            let block = checked_at;
            let reads = async {
                Ok::<_, CommandError>(BoundaryReads {
                    block,
                    market: at.market().await?,
                    params: at.params().await?,
                    max_subsidy: at.funding_limits().await?.0,
                    max_total: at.limits().await?.1,
                })
            };
            Some(reads.await.map_err(|e| pruned(e, block))?)
        }
        // A version 4 batch of an epoch on chain names its block (a close with a chain
        // always does): one without would skip every check made there.
        None if batch.version >= 4 => {
            return Ok(Err(format!(
                "the batch (version {}) names no block its close read the chain at; an epoch closed with a chain always names one, and without it the market, limits and sponsorships cannot be checked where the close read them",
                batch.version
            )));
        }
        None => {
            note = Some(format!(
                "a version {} batch names no block its close read the chain at: the market was checked against its bounds only, and sponsorships left out only up to the newest recorded id",
                batch.version
            ));
            None
        }
    };
    let Some(record) = chain.epoch_record(epoch.0).await? else {
        return Ok(Err(format!("epoch {epoch} is not final on chain")));
    };
    let hashes = chain.funding_part_hashes(epoch.0).await?;
    // The hashes belong to the finalization read above (not one after a veto meanwhile).
    if chain.epoch_record(epoch.0).await?.map(|r| r.seq) != Some(record.seq) {
        return Ok(Err(format!(
            "epoch {epoch} was finalized again while it was read: run verify-epoch again"
        )));
    }
    // At the boundary block the close knew every sponsorship the chain held there.
    // Without it (before version 4): the oracle mirrors the chain's sponsorships in id
    // order, so at the close it knew every one up to the newest it records.
    let on_chain = match (
        &boundary,
        sponsorships.iter().filter_map(|s| s.chain_id).max(),
    ) {
        (Some(b), _) => chain.at(b.block).sponsorships().await?,
        (None, Some(newest)) => chain.sponsorships_between(0, newest).await?,
        (None, None) => Vec::new(),
    };
    let view = ChainView {
        record,
        hashes,
        sponsorships: on_chain.into_iter().map(|s| (s.id, s)).collect(),
        market_bounds: chain.bounds().await?.market(),
        boundary,
    };
    Ok(compare_funding(
        epoch,
        &view,
        verified,
        sponsorships,
        &batch.inputs,
        report.batch_content_id,
    )
    .map(|comparison| ChainComparison {
        boundary_note: note.clone(),
        boundary_block: batch.boundary.map(|b| b.number),
        ..comparison
    })
    .map_err(|why| match &note {
        Some(note) => format!("{why}; note: {note}"),
        None => why,
    }))
}

/// Compares a verified batch with what the chain holds for its epoch: the batch id, root,
/// total, subsidy and part hashes; every recorded sponsorship a deposit on chain with the
/// recorded terms; none of the chain's left out; each sponsored content's target
/// replication the one of its largest sponsorship. `Err(why)` when they disagree.
pub fn compare_funding(
    epoch: Epoch,
    view: &ChainView,
    verified: &crate::batch::Verified,
    sponsorships: &[crate::batch::BatchSponsorship],
    inputs: &dsi_protocol::reward::EpochInputs,
    batch_id: dsi_protocol::ContentId,
) -> std::result::Result<ChainComparison, String> {
    let record = &view.record;
    let on_chain = &view.sponsorships;
    let contents = &inputs.contents;
    if record.batch != batch_id.0 {
        return Err(format!(
            "the chain's epoch {epoch} names batch {}, this file is {batch_id}",
            dsi_protocol::ContentId(record.batch)
        ));
    }
    if record.root != verified.root || record.total != verified.rewards.total {
        return Err(format!(
            "the chain's epoch {epoch} has root 0x{} and total {}, the batch 0x{} and {}",
            hex::encode(record.root),
            record.total,
            hex::encode(verified.root),
            verified.rewards.total
        ));
    }
    let status = match record.status {
        dsi_chain::contracts::EpochStatus::Final => "Final",
        dsi_chain::contracts::EpochStatus::Vetoed => "Vetoed",
    };
    // Priced inside the market's hard bounds (governance can never set another).
    if let Some(field) = view.market_bounds.refuses(&inputs.market) {
        return Err(format!(
            "the batch's market ({:?}) has a {field} outside the bounds multipliers was instantiated with",
            inputs.market
        ));
    }
    // Read where the close read: the same market, parameters and limits.
    if let Some(b) = &view.boundary {
        let block = b.block.number;
        if b.market != inputs.market {
            return Err(format!(
                "the batch's market ({:?}) is not the one multipliers held at block {block} ({:?})",
                inputs.market, b.market
            ));
        }
        if b.params != inputs.params {
            return Err(format!(
                "the batch's reward parameters ({:?}) are not the ones multipliers held at block {block} ({:?})",
                inputs.params, b.params
            ));
        }
        if inputs.budget > b.max_subsidy {
            return Err(format!(
                "the batch's subsidy budget {} is above reward_pool's max_epoch_subsidy {} at block {block}",
                inputs.budget, b.max_subsidy
            ));
        }
        if verified.rewards.total > b.max_total {
            return Err(format!(
                "the batch's total {} is above reward_pool's max_epoch_total {} at block {block}",
                verified.rewards.total, b.max_total
            ));
        }
    }
    let Some(funding) = &verified.funding else {
        // A version 2 batch records no sponsorships: it can only stand for an epoch paid
        // wholly by the subsidy.
        if record.parts > 0 || record.subsidy != record.total {
            return Err(format!(
                "the chain's epoch {epoch} is funded by {} parts and a subsidy of {}; a version 2 batch does not record the sponsorships, so it cannot show that funding",
                record.parts, record.subsidy
            ));
        }
        return Ok(ChainComparison {
            status: status.into(),
            parts_applied: (record.applied, record.parts),
            sponsorships_checked: 0,
            boundary_block: view.boundary.as_ref().map(|b| b.block.number),
            boundary_note: None,
        });
    };
    if record.subsidy != funding.subsidy {
        return Err(format!(
            "the chain's epoch {epoch} takes a subsidy of {}, the batch's funding needs {}",
            record.subsidy, funding.subsidy
        ));
    }
    let hashes = &view.hashes;
    if *hashes != funding.hashes {
        let first = hashes
            .iter()
            .zip(&funding.hashes)
            .position(|(a, b)| a != b)
            .unwrap_or(hashes.len().min(funding.hashes.len()));
        return Err(format!(
            "the chain agreed on {} funding parts, the batch makes {}; they differ from part {first} on",
            hashes.len(),
            funding.hashes.len()
        ));
    }
    // Every recorded sponsorship is a deposit on chain with the recorded terms.
    let mut ids = Vec::with_capacity(sponsorships.len());
    for (index, s) in sponsorships.iter().enumerate() {
        match s.chain_id {
            Some(id) => ids.push(id),
            None => {
                return Err(format!(
                    "sponsorship {index} (content {}) has no contract id: with a chain only reward_pool's deposits fund an epoch",
                    s.content
                ));
            }
        }
    }
    for s in sponsorships {
        let Some(id) = s.chain_id else { continue };
        let Some(found) = on_chain.get(&id) else {
            return Err(format!("sponsorship {id} does not exist on chain"));
        };
        if found.content != s.content.0
            || found.per_epoch != s.per_epoch
            || !(found.first_epoch..=found.last_epoch).contains(&epoch.0)
        {
            return Err(format!(
                "sponsorship {id} on chain pays {} per epoch for content {} in epochs {}..={}; the batch records {} per epoch for content {} in epoch {epoch}",
                found.per_epoch,
                dsi_protocol::ContentId(found.content),
                found.first_epoch,
                found.last_epoch,
                s.per_epoch,
                s.content
            ));
        }
    }
    // None left out: every chain sponsorship of a content the epoch funds by sponsorship,
    // active in the epoch and older than the newest recorded one, is recorded (unless the
    // epoch hit its bound on sponsorships).
    let recorded: std::collections::HashSet<u32> = ids.iter().copied().collect();
    let sponsored: HashMap<dsi_protocol::ContentId, &dsi_protocol::reward::ContentFacts> = contents
        .iter()
        .filter(|c| matches!(c.funding, dsi_protocol::reward::Funding::Sponsored { .. }))
        .map(|c| (c.content, c))
        .collect();
    let mut left_out: Vec<&dsi_chain::ChainSponsorship> = on_chain
        .values()
        .filter(|c| {
            !recorded.contains(&c.id)
                && sponsored.contains_key(&dsi_protocol::ContentId(c.content))
                && (c.first_epoch..=c.last_epoch).contains(&epoch.0)
        })
        .collect();
    left_out.sort_by_key(|c| c.id);
    // The close pays from at most `MAX_PAID_SPONSORSHIPS` (`close::bounded_sponsorships`,
    // ranked among those of contents with a proven holder, which the chain does not
    // show): if the chain held more active in the epoch, the bound may have left some
    // out before the cap did, and nothing here can tell which.
    let active = on_chain
        .values()
        .filter(|c| (c.first_epoch..=c.last_epoch).contains(&epoch.0))
        .count();
    if sponsorships.len() < crate::close::MAX_PAID_SPONSORSHIPS
        && active <= crate::close::MAX_PAID_SPONSORSHIPS
        && !left_out.is_empty()
    {
        // An epoch over `max_epoch_total` leaves out the sponsorships that do not fit
        // (`close::fit_to_cap`): the same admission, over the recorded ones and those
        // left out in contract id order, after the subsidy the epoch paid, must keep
        // exactly the recorded ones. Without the block the close read at, none may be
        // left out.
        let fits = view.boundary.as_ref().map(|b| {
            let subsidy = crate::close::subsidy_paid(inputs, &verified.rewards);
            let mut candidates: Vec<(u32, u128, bool)> = sponsorships
                .iter()
                .filter_map(|s| s.chain_id.map(|id| (id, s.per_epoch, true)))
                .chain(left_out.iter().map(|c| (c.id, c.per_epoch, false)))
                .collect();
            candidates.sort_by_key(|c| c.0);
            let admitted = crate::close::admit_sponsorships(
                b.max_total.saturating_sub(subsidy),
                &candidates.iter().map(|c| Some(c.1)).collect::<Vec<_>>(),
            );
            candidates
                .into_iter()
                .zip(admitted)
                .find(|((_, _, recorded), admitted)| recorded != admitted)
                .map(|((id, _, recorded), _)| (id, recorded))
        });
        match fits {
            Some(None) => {}
            Some(Some((id, true))) => {
                return Err(format!(
                    "sponsorship {id} is recorded, but after the older ones it does not fit under max_epoch_total, which left others out"
                ));
            }
            Some(Some((id, false))) => {
                let c = left_out
                    .iter()
                    .find(|c| c.id == id)
                    .copied()
                    .unwrap_or(left_out[0]);
                return Err(format!(
                    "sponsorship {id} of content {} is active in epoch {epoch} and fits under max_epoch_total, but the batch leaves it out",
                    dsi_protocol::ContentId(c.content)
                ));
            }
            None => {
                return Err(format!(
                    "sponsorship {} of content {} is active in epoch {epoch} but the batch leaves it out",
                    left_out[0].id,
                    dsi_protocol::ContentId(left_out[0].content)
                ));
            }
        }
    }
    // Each sponsored content's target is the one of its sponsorship paying most per epoch
    // (among equals the first recorded), as `close::funded_contents` sets it.
    let mut targets: HashMap<dsi_protocol::ContentId, (u128, u32)> = HashMap::new();
    for s in sponsorships {
        let Some(found) = s.chain_id.and_then(|id| on_chain.get(&id)) else {
            continue;
        };
        let entry = targets.entry(s.content).or_insert((0, found.replicas));
        if found.per_epoch > entry.0 {
            *entry = (found.per_epoch, found.replicas);
        }
    }
    for (content, facts) in &sponsored {
        if let Some(&(_, replicas)) = targets.get(content)
            && replicas != facts.replicas
        {
            return Err(format!(
                "content {content} counts {} replicas; its largest sponsorship on chain asks for {replicas}",
                facts.replicas
            ));
        }
    }
    Ok(ChainComparison {
        status: status.into(),
        parts_applied: (record.applied, record.parts),
        sponsorships_checked: sponsorships.len(),
        boundary_block: view.boundary.as_ref().map(|b| b.block.number),
        boundary_note: None,
    })
}
