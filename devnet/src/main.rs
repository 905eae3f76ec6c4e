//! `devnet`: the DSI story on a local network. Run by `scripts/devnet`, which builds
//! everything first; see `devnet --help`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use devnet::{EpochReport, Network, Options, Tools, raised_rarity, random_file};
use dsi_protocol::PayoutAccount;

/// A local DSI network: ink-node, the four contracts, the oracle, three node-lite seeders
/// and downloaders. Runs three rewarded epochs (governance raises the rarity multiplier
/// after the first; two cheaters try their luck in the third), prints a table per epoch,
/// and exits 0 only if every claim paid exactly the oracle's leaf and moved the payout
/// balance by exactly that, and the cheaters gained nothing from anyone.
#[derive(Parser, Debug)]
#[command(name = "devnet", version, about, long_about = None)]
struct Cli {
    /// Where data directories, logs and the deployment file go (a new or empty directory).
    #[arg(long, value_name = "DIR")]
    run_dir: PathBuf,
    /// The repository (for the built contracts).
    #[arg(long, value_name = "DIR", default_value = ".")]
    repo: PathBuf,
    /// The node-lite binary.
    #[arg(long, value_name = "FILE", default_value = "target/release/node-lite")]
    node_lite: PathBuf,
    /// The oracle binary.
    #[arg(long, value_name = "FILE", default_value = "target/release/oracle")]
    oracle: PathBuf,
    /// The ink-node binary.
    #[arg(long, value_name = "FILE", default_value = "ink-node")]
    ink_node: PathBuf,
    /// Epoch length in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 20)]
    epoch_secs: u64,
    /// Size of the popular file (on two seeders), MiB.
    #[arg(long, value_name = "MIB", default_value_t = 4)]
    size_mib: usize,
    /// Leave everything running after the story and print the URLs; Ctrl-C stops it all.
    #[arg(long)]
    keep: bool,
    /// Only start a throwaway ink-node, deploy the contracts to it (the options of
    /// `oracle deploy` as DEPLOY_ARGS), print the deployment and stop (what
    /// `scripts/deploy --temp-node` runs).
    #[arg(long)]
    deploy_only: bool,
    /// Arguments for the deploy with --deploy-only (after `--`).
    #[arg(last = true, value_name = "DEPLOY_ARGS")]
    deploy_args: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("devnet: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        tokio::select! {
            result = run(cli) => match result {
                Ok(code) => code,
                Err(error) => {
                    eprintln!("devnet: FAILED: {error:#}");
                    ExitCode::FAILURE
                }
            },
            _ = tokio::signal::ctrl_c() => {
                eprintln!("devnet: interrupted; stopping every process");
                ExitCode::from(130)
            }
        }
    })
}

/// seeder-c's byte-weighted rarity and its rarity bonus in an epoch.
fn rare_seeder(report: &EpochReport) -> (String, String) {
    report.row("seeder-c").map_or_else(
        || ("-".into(), "0".into()),
        |row| (devnet::ppm(row.rarity), devnet::tokens(row.bonus)),
    )
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let absolute = |p: PathBuf| -> Result<PathBuf> {
        if p.components().count() > 1 || p.is_absolute() {
            std::path::absolute(&p).with_context(|| format!("bad path {}", p.display()))
        } else {
            Ok(p)
        }
    };
    let tools = Tools {
        node_lite: absolute(cli.node_lite)?,
        oracle: absolute(cli.oracle)?,
        ink_node: cli.ink_node,
        repo: absolute(cli.repo)?,
    };
    if cli.deploy_only {
        std::fs::create_dir_all(&cli.run_dir)
            .with_context(|| format!("cannot create {}", cli.run_dir.display()))?;
        let run_dir = absolute(cli.run_dir)?;
        println!("== starting a throwaway ink-node and deploying the contracts");
        let args = devnet::deploy_args(&cli.deploy_args)?;
        let (node, deployment) = devnet::deploy_chain(&tools, &run_dir, &args).await?;
        println!("   node {} (log {})", node.url, node.log.display());
        println!("{}", std::fs::read_to_string(&deployment)?);
        println!("== ok: deployed and the wiring read back; stopping the node");
        return Ok(ExitCode::SUCCESS);
    }
    for binary in [&tools.node_lite, &tools.oracle] {
        anyhow::ensure!(
            binary.exists(),
            "{} does not exist (cargo build --release -p node-lite -p oracle)",
            binary.display()
        );
    }
    anyhow::ensure!(cli.epoch_secs >= 10, "--epoch-secs must be at least 10");
    let mut options = Options::new(cli.run_dir);
    options.epoch_ms = cli.epoch_secs * 1000;
    options.verbose = true;
    let mut net = Network::start(tools, options).await?;
    let run_dir = net.run_dir().to_path_buf();

    println!("== three seeders: seeder-a and seeder-b hold a popular file, seeder-c a rare one");
    let seeders = [
        ("seeder-a", [0xa1; 20]),
        ("seeder-b", [0xb2; 20]),
        ("seeder-c", [0xc3; 20]),
    ];
    for (name, payout) in seeders {
        net.add_peer(name, PayoutAccount(payout))?;
    }
    let popular = run_dir.join("popular.bin");
    let rare = run_dir.join("rare.bin");
    random_file(&popular, cli.size_mib << 20)?;
    random_file(&rare, 1 << 20)?;
    let popular_id = net.add_file("seeder-a", &popular)?;
    net.add_file("seeder-b", &popular)?;
    let rare_id = net.add_file("seeder-c", &rare)?;
    println!("   popular {popular_id} ({} MiB)", cli.size_mib);
    println!("   rare    {rare_id} (1 MiB)");
    println!(
        "== a sponsor funds both files' storage: {} tokens per epoch each, the popular file at 2 replicas, the rare one at 3, one per network",
        devnet::tokens(devnet::SPONSOR_PER_EPOCH)
    );
    for (id, replicas) in [(&popular_id, 2), (&rare_id, 3)] {
        net.sponsor(id, devnet::SPONSOR_PER_EPOCH, 1_000, replicas)
            .await?;
    }
    for (name, _) in seeders {
        net.start_peer(name, &[])?;
        println!(
            "   {name} serving at {}",
            net.peer(name)?.url().unwrap_or("?")
        );
    }
    net.wait_for_peers(&popular_id, 2).await?;
    net.wait_for_peers(&rare_id, 1).await?;

    let mut reports = Vec::new();
    let mut cheaters = None;
    for round in 1..=3 {
        if round == 2 {
            println!(
                "== governance raises the rarity multiplier (propose, approve, timelock, execute)"
            );
            net.raise_rarity(raised_rarity(), 3).await?;
        }
        if round == 3 {
            println!(
                "== two cheaters join. A ring: its own seeder on its own network with 1 MiB of its own junk, sponsored by itself, and 20 fresh keys (10 with credit the ring paid for) that sign receipts without downloading"
            );
            let ring = net
                .start_ring(
                    "ring",
                    &run_dir.join("ring.bin"),
                    1 << 20,
                    20,
                    10,
                    devnet::DOWNLOADER_CREDIT / 100,
                )
                .await?;
            println!(
                "   and a replica farm: 4 keys on one network (127.0.200.0/24), each holding the rare file (sponsored at 3 replicas, held by seeder-c alone)"
            );
            let farm = net.start_farm("farm", 4, &rare, 200, 1).await?;
            cheaters = Some((ring, farm));
        }
        let after = reports.last().map_or(0, |r: &EpochReport| r.epoch);
        let mut epoch = net.fresh_epoch(12_000).await;
        if epoch <= after {
            net.next_epoch(after).await;
            epoch = net.fresh_epoch(12_000).await;
        }
        println!("== epoch {epoch}: a new downloader fetches both files through the tracker");
        let downloader = net.add_downloader(&format!("downloader-{round}"))?;
        let credit = net.credit(&downloader, devnet::DOWNLOADER_CREDIT).await?;
        println!(
            "   its key has {} tokens of credit: its seeders are paid {} units per byte, less the fee",
            devnet::tokens(credit.available),
            credit.price_per_byte
        );
        let chunks = ((cli.size_mib << 20) + (1 << 20)).div_ceil(256 << 10) as u64;
        for (id, original) in [(&popular_id, &popular), (&rare_id, &rare)] {
            let got = net.download(&downloader, id, &[])?;
            anyhow::ensure!(
                std::fs::read(&got)? == std::fs::read(original)?,
                "the download of {id} differs from the original"
            );
        }
        println!("   both files byte-identical; {chunks} receipts signed");
        let mut expected = chunks;
        if let Some((ring, _)) = &cheaters {
            let verdicts = net.ring_receipts(ring, epoch).await?;
            let accepted = verdicts.iter().filter(|v| *v == "accepted").count();
            println!(
                "   the ring's keys signed {} receipts for the ring's seeder; the oracle accepted {accepted} (valid evidence)",
                verdicts.len()
            );
            expected += accepted as u64;
        }
        let held = net.wait_for_receipts(epoch, expected).await?;
        println!("   the oracle holds {held} receipts");
        println!(
            "== closing epoch {epoch}; the committee submits its root; the challenge window passes; everyone claims"
        );
        net.close(epoch).await?;
        let report = net.claim_epoch(epoch).await?;
        println!("{report}");
        reports.push(report);
    }
    let mut ok = true;
    if let Some((ring, farm)) = &cheaters {
        let epoch = reports[2].epoch;
        let cheat = net.cheat_report(epoch, ring, farm, &rare_id).await?;
        println!("== what cheating paid in epoch {epoch}");
        print!("{cheat}");
        match cheat.check() {
            Ok(()) => println!(
                "   the ring did not gain, the farm counted as one replica (one network), the honest seeders were paid exactly as without the ring and with the farm as one node"
            ),
            Err(error) => {
                eprintln!("devnet: CHEATING PAID: {error:#}");
                ok = false;
            }
        }
    }
    let (first, second) = (&reports[0], &reports[1]);
    let ((rarity_before, bonus_before), (rarity_after, bonus_after)) =
        (rare_seeder(first), rare_seeder(second));
    println!(
        "== the rarity change raised the rare file's weight from {rarity_before} (epoch {}) to {rarity_after} (epoch {}); seeder-c's rarity bonus went from {bonus_before} to {bonus_after} tokens: a bonus never exceeds the fee of the bytes it rides on, so paid bandwidth pays at most what its downloader paid, whatever the curve",
        first.epoch, second.epoch
    );
    for report in &reports {
        if let Err(error) = report.check() {
            eprintln!("devnet: MISMATCH: {error:#}");
            ok = false;
        }
    }
    if ok {
        println!(
            "== ok: every claim paid exactly its leaf and moved its payout balance by exactly that"
        );
    }
    println!("   logs and data: {}", run_dir.display());

    if cli.keep {
        println!("== running; Ctrl-C stops every process");
        for (what, url) in net.urls() {
            println!("   {what:<22} {url}");
        }
        println!(
            "   oracle data dir        {} (oracle --data-dir ... governance params | claim | fund)",
            net.oracle_dir.display()
        );
        println!(
            "   epochs close on demand: {} --data-dir {} close-epoch --url {}",
            net.tools.oracle.display(),
            net.oracle_dir.display(),
            net.oracle.url
        );
        std::future::pending::<()>().await;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
