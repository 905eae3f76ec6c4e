//! `node-lite`: the command-line front end of a light DSI storage node. Parses the command
//! line ([`node_lite::cli`]), sets up logging and the runtime, runs the command
//! ([`node_lite::commands`]), prints its report, and exits with the code of the one table
//! both DSI binaries share (`dsi_api::exit::Exit`).

use std::process::ExitCode;

use clap::Parser;
use dsi_api::exit::Exit;
use dsi_service::runtime::{init_logging, runtime, shutdown_token};
use node_lite::cli::{Cli, Command, VectorsCommand};
use node_lite::commands::{self, Report, vectors};
use node_lite::error::exit_of;
use node_lite::{DataDir, NodeError};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, Command::Serve { .. } | Command::Gateway(_));
    init_logging(if serving {
        "info,sqlx=warn"
    } else {
        "warn,sqlx=warn"
    });
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Failure.into();
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(exit) => exit.into(),
        Err(error) => {
            eprintln!("error: {error:#}");
            exit_of(&error).into()
        }
    }
}

/// Prints a report (text, or JSON with `--json`).
fn emit<R: Report>(report: &R, json: bool) -> anyhow::Result<()> {
    Ok(dsi_service::report::emit(report, json)?)
}

async fn run(cli: Cli) -> anyhow::Result<Exit> {
    let dir = DataDir::new(cli.data_dir.unwrap_or_else(DataDir::default_path));
    match cli.command {
        Command::Init => emit(&commands::init(&dir)?, false)?,
        Command::Id => emit(&commands::id(&dir)?, false)?,
        Command::Add {
            file,
            chunk_size,
            name,
        } => {
            let chunk_size = chunk_size
                .parse()
                .map_err(|e| NodeError::Usage(format!("chunk size {chunk_size:?}: {e}")))?;
            emit(&commands::add(&dir, &file, chunk_size, name).await?, false)?;
        }
        Command::Status { tracker, json } => {
            emit(&commands::status(&dir, tracker).await?, json)?;
        }
        Command::Pin { content_id } => emit(&commands::pin(&dir, &content_id, true)?, false)?,
        Command::Unpin { content_id } => {
            emit(&commands::pin(&dir, &content_id, false)?, false)?;
        }
        Command::Pause {
            epochs,
            wait,
            tracker,
            json,
        } => emit(
            &commands::availability::pause(&dir, tracker, epochs, wait).await?,
            json,
        )?,
        Command::Resume { tracker, json } => {
            emit(&commands::availability::resume(&dir, tracker).await?, json)?;
        }
        Command::Exit { tracker, yes, json } => {
            if !yes {
                return Err(NodeError::Usage(
                    "an exit is final for this node key: run again with --yes to confirm \
                     (`node-lite pause --epochs N` is for a while)"
                        .into(),
                )
                .into());
            }
            emit(&commands::availability::exit(&dir, tracker).await?, json)?;
        }
        Command::List { json } => emit(&commands::list(&dir)?, json)?,
        Command::Serve(overrides) => {
            let (state, listener, iroh) = commands::prepare_serve(&dir, overrides).await?;
            let address = listener.local_addr()?;
            // The first line of output: scripts and tests read the address from it.
            println!("node-lite {} listening on http://{address}", state.node_id);
            node_lite::serve(state, listener, iroh, shutdown_token()).await?;
        }
        Command::Gateway(request) => {
            let (state, listener) = commands::prepare_gateway(&dir, request).await?;
            let address = listener.local_addr()?;
            // The first line of output: scripts and tests read the address from it.
            println!(
                "node-lite {} gateway listening on http://{address}",
                state.node_id
            );
            node_lite::serve_gateway(state, listener, shutdown_token()).await?;
        }
        Command::Get(request) => {
            let json = request.json;
            emit(
                &commands::get(&dir, request, &shutdown_token()).await?,
                json,
            )?;
        }
        Command::Credit { tracker, json } => emit(&commands::credit(&dir, tracker).await?, json)?,
        Command::Receipts { epoch, json } => emit(&commands::receipts(&dir, epoch).await?, json)?,
        Command::Verify {
            repair,
            peers,
            json,
        } => {
            let report = commands::verify(&dir, repair, &peers, &shutdown_token()).await?;
            emit(&report, json)?;
            if let Some(failure) = report.failure() {
                return Err(failure.into());
            }
        }
        Command::Vectors { command } => run_vectors(&dir, command).await?,
    }
    Ok(Exit::Success)
}

async fn run_vectors(dir: &DataDir, command: VectorsCommand) -> anyhow::Result<()> {
    match command {
        VectorsCommand::Build(request) => {
            let json = request.json;
            emit(&vectors::build(dir, request).await?, json)
        }
        VectorsCommand::AddModel {
            dir: model_dir,
            json,
        } => emit(&vectors::add_model(dir, &model_dir)?, json),
        VectorsCommand::Embed {
            model,
            text,
            text_file,
            out,
            peers,
        } => emit(
            &vectors::embed(dir, &model, text, text_file, out, &peers).await?,
            false,
        ),
        VectorsCommand::Update {
            index,
            insert,
            delete,
            json,
        } => emit(&vectors::update(dir, &index, insert, &delete).await?, json),
        VectorsCommand::Query(request) => {
            let json = request.json;
            emit(&vectors::query(dir, request).await?, json)
        }
    }
}
