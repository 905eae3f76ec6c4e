//! `chain-bench`: what the in-process chain client (`dsi-chain`) costs against the
//! `cargo contract` child process per call that it replaced, measured in the same run on a
//! throwaway ink-node with the committed contract bundles deployed.
//!
//! ```sh
//! cargo run --release -p devnet --bin chain-bench [-- --reads 20 --writes 5]
//! ```
//!
//! Prints, for each way: a read (`reward_pool.current_block`), the reads of a close
//! (`multipliers.params` and the boosts of 256 contents) and a write followed to inclusion
//! (`reward_pool.fund`); then a `summary:` line with the ratios (old / new). The baseline
//! needs `cargo contract` on PATH (`scripts/setup --contracts`); without it only the new
//! figures are printed.

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use devnet::{InkNode, Tools};
use dsi_protocol::ContentId;
use oracle::chain::{Chain, Deployment, Signer};

/// Measures the chain client against `cargo contract`.
#[derive(Parser, Debug)]
struct Cli {
    /// Reads of each kind to time.
    #[arg(long, default_value_t = 20)]
    reads: u32,
    /// Writes of each kind to time.
    #[arg(long, default_value_t = 5)]
    writes: u32,
    /// The repository (for contracts/bundles).
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// `ink-node` to run.
    #[arg(long, default_value = "ink-node")]
    ink_node: PathBuf,
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `cargo contract call` as the old client did; returns the time it took.
fn cargo_contract(
    url: &str,
    bundle: &std::path::Path,
    contract: &str,
    message: &str,
    extra: &[&str],
) -> Result<Duration> {
    let started = Instant::now();
    let output = std::process::Command::new("cargo")
        .args(["contract", "call", "--url", url, "--suri", "//Alice"])
        .args([
            "--contract",
            contract,
            "--message",
            message,
            "--output-json",
        ])
        .arg(bundle)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .context("running cargo contract")?;
    // Like the old client: cargo-contract 6.0.0-alpha fails to decode our anonymous events
    // after a successful extrinsic, so the exit status of a write says nothing.
    let write = extra.contains(&"--execute");
    anyhow::ensure!(
        write || output.status.success(),
        "cargo contract {message}: {}",
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .next()
            .unwrap_or("")
    );
    Ok(started.elapsed())
}

async fn run(cli: Cli) -> Result<()> {
    let repo = std::path::absolute(&cli.repo)?;
    let run_dir = tempfile::tempdir()?;
    let tools = Tools {
        node_lite: PathBuf::new(),
        oracle: PathBuf::new(),
        ink_node: cli.ink_node.clone(),
        repo: repo.clone(),
    };
    let node = InkNode::start(&tools.ink_node, &run_dir.path().join("ink-node.log"))?;
    let args = devnet::deploy_args(&[])?;
    let deployment_file = devnet::deploy_to(&tools, &node.url, run_dir.path(), &args).await?;
    let deployment = Deployment::load(&deployment_file)?;
    let chain = Chain::new(deployment.clone(), None, Signer::dev("alice")?)?;
    chain.fund(1_000_000_000_000).await?;
    let contents: Vec<ContentId> = (0..256u32)
        .map(|i| {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_le_bytes());
            ContentId(id)
        })
        .collect();

    // New: in-process.
    let started = Instant::now();
    for _ in 0..cli.reads {
        chain.current_block().await?;
    }
    let new_read = started.elapsed() / cli.reads;
    let started = Instant::now();
    for _ in 0..cli.reads {
        chain.params().await?;
        chain.boosts(&contents).await?;
    }
    let new_close = started.elapsed() / cli.reads;
    let started = Instant::now();
    for _ in 0..cli.writes {
        chain.fund(1).await?;
    }
    let new_write = started.elapsed() / cli.writes;
    println!("in-process (dsi-chain):");
    println!("  read                     {:>9.1} ms", millis(new_read));
    println!("  close reads (256 boosts) {:>9.1} ms", millis(new_close));
    println!("  write to inclusion       {:>9.1} ms", millis(new_write));

    // Old: one `cargo contract` process per call.
    let has_tool = std::process::Command::new("cargo")
        .args(["contract", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !has_tool {
        println!(
            "summary: new read {:.1} ms, close reads {:.1} ms, write {:.1} ms (no cargo contract on PATH: no baseline)",
            millis(new_read),
            millis(new_close),
            millis(new_write)
        );
        return Ok(());
    }
    let bundle = |name: &str| -> Result<PathBuf> {
        deployment
            .artifacts
            .get(name)
            .cloned()
            .context("bundle in the deployment")
    };
    let pool = bundle("reward_pool")?;
    let multipliers = bundle("multipliers")?;
    let old_reads = cli.reads.min(5);
    let mut total = Duration::ZERO;
    for _ in 0..old_reads {
        total += cargo_contract(
            &node.url,
            &pool,
            &deployment.reward_pool,
            "current_block",
            &[],
        )?;
    }
    let old_read = total / old_reads;
    // The old close: params, then one process per content (timed on 8, scaled to 256).
    let sample = 8u32;
    let mut total = cargo_contract(
        &node.url,
        &multipliers,
        &deployment.multipliers,
        "params",
        &[],
    )?;
    let mut per_content = Duration::ZERO;
    for content in contents.iter().take(sample as usize) {
        let id = format!("0x{}", hex::encode(content.0));
        per_content += cargo_contract(
            &node.url,
            &multipliers,
            &deployment.multipliers,
            "boost",
            &["--args", &id],
        )?;
    }
    total += per_content / sample * 256;
    let old_close = total;
    let old_writes = cli.writes.min(3);
    let before_old_writes = chain.free_balance().await?;
    let mut total = Duration::ZERO;
    for _ in 0..old_writes {
        total += cargo_contract(
            &node.url,
            &pool,
            &deployment.reward_pool,
            "fund",
            &["--value", "1", "--execute", "--skip-confirm"],
        )?;
    }
    let old_write = total / old_writes;
    let after = chain.free_balance().await?;
    anyhow::ensure!(
        after >= before_old_writes + u128::from(old_writes),
        "the cargo contract writes did not fund the pool ({before_old_writes} -> {after})"
    );
    println!("one cargo contract process per call (the old client):");
    println!("  read                     {:>9.1} ms", millis(old_read));
    println!(
        "  close reads (256 boosts) {:>9.1} ms (8 boost reads timed, scaled)",
        millis(old_close)
    );
    println!("  write to inclusion       {:>9.1} ms", millis(old_write));
    let ratio = |old: Duration, new: Duration| old.as_secs_f64() / new.as_secs_f64().max(1e-9);
    println!(
        "summary: read {:.1}x, close reads {:.1}x, write {:.1}x faster in-process (old/new: {:.0}/{:.1} ms, {:.0}/{:.1} ms, {:.0}/{:.1} ms)",
        ratio(old_read, new_read),
        ratio(old_close, new_close),
        ratio(old_write, new_write),
        millis(old_read),
        millis(new_read),
        millis(old_close),
        millis(new_close),
        millis(old_write),
        millis(new_write),
    );
    drop(node);
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
