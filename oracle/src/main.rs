//! `oracle`: the DSI oracle's command line. Parses the command line ([`oracle::cli`]), sets
//! up logging and the runtime, runs the command ([`oracle::commands`]), prints its report,
//! and exits with the code of the one table both DSI binaries share
//! (`dsi_api::exit::Exit`).

use std::process::ExitCode;

use clap::Parser;
use dsi_api::exit::Exit;
use dsi_service::report::{Report, emit};
use dsi_service::runtime::{init_logging, runtime, shutdown_token};
use oracle::DataDir;
use oracle::cli::{Cli, Command, GovernanceCommand};
use oracle::commands::{self, CommandError};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging("info,sqlx=warn");
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return Exit::Failure.into();
        }
    };
    let data_dir = DataDir::new(cli.data_dir.unwrap_or_else(DataDir::default_path));
    match runtime.block_on(run(cli.command, data_dir)) {
        Ok(exit) => exit.into(),
        Err(error) => {
            eprintln!("error: {error}");
            error.exit().into()
        }
    }
}

/// Prints a report as text.
fn print<R: Report>(report: &R) -> Result<Exit, CommandError> {
    emit(report, false).map_err(|e| CommandError::Serve(format!("printing: {e}")))?;
    Ok(Exit::Success)
}

async fn run(command: Command, data_dir: DataDir) -> Result<Exit, CommandError> {
    match command {
        Command::Init => print(&commands::init(&data_dir)?),
        Command::Serve {
            listen,
            database_url,
        } => {
            let (state, listener) =
                commands::prepare_serve(&data_dir, listen, database_url).await?;
            let local = listener
                .local_addr()
                .map_err(|e| CommandError::Serve(e.to_string()))?;
            tracing::info!(%local, network = %state.config.network, oracle = %state.key.node_id().short(), "oracle listening");
            // The first line of output: scripts and tests read the address from it.
            println!("listening on http://{local}");
            oracle::serve(state.clone(), listener, shutdown_token())
                .await
                .map_err(|e| CommandError::Serve(format!("server failed: {e}")))?;
            state.store.close().await;
            Ok(Exit::Success)
        }
        Command::CloseEpoch { through, url } => {
            print(&commands::close_epoch(&data_dir, through, url).await?)
        }
        Command::Claim { seeder, epoch, url } => {
            print(&commands::claim(&data_dir, &seeder, epoch, url).await?)
        }
        Command::Sponsor {
            content,
            amount,
            epochs,
            replicas,
            first_epoch,
            url,
            suri_file,
        } => print(
            &commands::sponsor(
                &data_dir,
                &content,
                commands::SponsorTerms {
                    per_epoch: amount,
                    epochs,
                    replicas,
                    first_epoch,
                },
                url,
                suri_file,
            )
            .await?,
        ),
        Command::Credit {
            node,
            amount,
            url,
            suri_file,
        } => print(&commands::credit(&data_dir, &node, amount, url, suri_file).await?),
        Command::Fund { amount } => print(&commands::fund(&data_dir, amount).await?),
        Command::Governance(command) => {
            let chain = commands::chain_client(&data_dir)?;
            match command {
                GovernanceCommand::ProposeRarity {
                    base,
                    slope,
                    min,
                    max,
                    target_replication,
                    suri_file,
                } => {
                    let chain = commands::signer(chain, suri_file)?;
                    let curve = commands::curve(base, slope, min, max);
                    print(&commands::propose_rarity(&chain, curve, target_replication).await?)
                }
                GovernanceCommand::ProposeMarket {
                    price_per_byte,
                    fee,
                    vetting_audits,
                    unvetted_share,
                    suri_file,
                } => {
                    let chain = commands::signer(chain, suri_file)?;
                    let market = dsi_protocol::reward::MarketParams {
                        price_per_byte,
                        fee: dsi_protocol::fixed::Ppm(fee),
                        vetting_audits,
                        unvetted_share: dsi_protocol::fixed::Ppm(unvetted_share),
                    };
                    print(&commands::propose_market(&chain, market).await?)
                }
                GovernanceCommand::Approve { id, suri_file } => {
                    let chain = commands::signer(chain, suri_file)?;
                    print(&commands::approve(&chain, id).await?)
                }
                GovernanceCommand::Execute { id, suri_file } => {
                    let chain = commands::signer(chain, suri_file)?;
                    print(&commands::execute(&chain, id).await?)
                }
                GovernanceCommand::Show { id } => print(&commands::show(&chain, id).await?),
                GovernanceCommand::Params => print(&commands::params(&chain).await?),
            }
        }
        Command::Deploy(args) => print(&commands::deploy(&args).await?),
        Command::VerifyEpoch {
            batch_file,
            seeders,
            chain,
            deployment,
            chain_url,
        } => {
            let chain = match chain || deployment.is_some() {
                true => Some(commands::chain_reader(
                    &data_dir,
                    deployment.as_deref(),
                    chain_url,
                )?),
                false => None,
            };
            let report = commands::verify_epoch(&batch_file, seeders, chain.as_ref()).await?;
            print(&report)?;
            Ok(report.exit())
        }
    }
}
