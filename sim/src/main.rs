//! `sim`: plays an honest population and every known attack through the real oracle and
//! prints what each attacker earned, spent and netted, the honest seeders' pay against the
//! baseline, the replication table, and one `sim:` summary line. Exit 1 if an attack that
//! uses only the attacker's own keys, content and traffic nets more than zero or the honest
//! seeders lose more than 1 ppm.

use std::process::ExitCode;

use clap::Parser;

/// The DSI economics simulator.
#[derive(Parser, Debug)]
#[command(name = "sim", version, about, long_about = None)]
struct Cli {
    /// Attacker key counts to try where keys matter (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000,10000")]
    keys: Vec<u64>,
    /// Measured epochs per scenario (after one honest warm-up epoch and, for a patient
    /// attacker, the rounds that vet its keys).
    #[arg(long, default_value_t = 2)]
    epochs: u32,
    /// Shortest epoch in milliseconds (each epoch is closed early; the next starts on
    /// time). Scenarios with K keys use at least 1,500 + 3·K ms; a round that outlasts its
    /// epoch stops the run with an error rather than print skewed figures.
    #[arg(long, default_value_t = 1_500)]
    epoch_ms: u64,
    /// Play only these attacks (comma-separated; the baseline is always played): ring-unfunded,
    /// ring-sponsored, ring-subsidized, demand-inflation, farm-at-target, farm-below-target,
    /// proxy-farm, holding-half, key-churn. Default: all.
    #[arg(long, value_delimiter = ',', value_parser = attack)]
    attacks: Vec<sim::Attack>,
}

fn attack(slug: &str) -> Result<sim::Attack, String> {
    sim::Attack::from_slug(slug).ok_or_else(|| {
        let known: Vec<&str> = sim::Attack::ALL.iter().map(|a| a.slug()).collect();
        format!("unknown attack {slug:?}; known: {}", known.join(", "))
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = sim::Settings {
        keys: cli.keys,
        epochs: cli.epochs,
        epoch_ms: cli.epoch_ms,
        attacks: cli.attacks,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let report = runtime.block_on(sim::run_all(&settings, |o| {
        eprintln!(
            "  {} (keys {}{}): reward {} cost {}, busiest round {} ms of a {} ms epoch",
            o.attack.name(),
            o.keys,
            if o.vetted { ", vetted" } else { "" },
            o.reward,
            o.cost,
            o.busiest_ms,
            o.epoch_ms
        );
    }));
    let report = match report {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", report.table());
    println!("replication (20 seeders with room for 2 contents, 8 sponsored contents, target 3):");
    for rule in [sim::dynamics::Rule::Rarity, sim::dynamics::Rule::Flat] {
        let run = sim::dynamics::run(rule);
        println!(
            "  {:<40} epochs to target: {:>6}   under-replicated at the end: {}",
            match rule {
                sim::dynamics::Rule::Rarity => "rule (amount split over counted replicas)",
                sim::dynamics::Rule::Flat => "flat (every funded byte pays the same)",
            },
            run.epochs_to_target
                .map_or_else(|| "never".to_string(), |e| e.to_string()),
            run.under_replicated
        );
    }
    println!("{}", report.summary());
    if report.worst_attacker_net_ppm() > 0
        || report.honest_loss_ppm() > 1
        || !report.over_allowance().is_empty()
    {
        eprintln!("sim: an attack paid");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
