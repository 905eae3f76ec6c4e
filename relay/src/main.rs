//! `dsi-relay`: runs the network's iroh relay until Ctrl-C (see the library docs).

use std::net::SocketAddr;
use std::num::NonZeroU32;

use clap::Parser;

/// The network's iroh relay: nodes that cannot reach each other directly exchange their
/// (end-to-end encrypted) traffic through it. Nodes name it in `[iroh] relays`.
#[derive(Parser, Debug)]
#[command(name = "dsi-relay", version)]
struct Args {
    /// Address to serve HTTP and WebSocket on. Loopback by default: serving the internet
    /// is an explicit choice (then front it with a TLS proxy that passes WebSocket
    /// upgrades).
    #[arg(
        long,
        env = "DSI_RELAY_LISTEN",
        default_value = "127.0.0.1:3340",
        value_name = "ADDR"
    )]
    listen: SocketAddr,
    /// Most bytes per second one client may send through the relay (unlimited if unset).
    #[arg(long, env = "DSI_RELAY_CLIENT_BYTES_PER_SEC", value_name = "N")]
    client_bytes_per_sec: Option<NonZeroU32>,
    /// How many node keys the relay remembers (bounds its memory).
    #[arg(long, default_value_t = 65_536, value_name = "N")]
    key_cache: usize,
    /// Carry only the keys this tracker (the network's oracle) vouches for: the oracle,
    /// nodes whose announcement is live, downloaders with credit (`GET
    /// /v1/relay-access/{node}`: admissions kept 5 min, and used while the tracker is
    /// down; refusals 5 s). Unset: every key, so anyone who knows the relay's URL can
    /// relay through it.
    #[arg(long, env = "DSI_RELAY_ADMIT_FROM", value_name = "URL")]
    admit_from: Option<String>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DSI_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let settings = dsi_relay::Settings {
        listen: args.listen,
        client_bytes_per_sec: args.client_bytes_per_sec,
        key_cache: args.key_cache,
        admit_from: args.admit_from,
    };
    match serve(&settings).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dsi-relay: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the relay until Ctrl-C or SIGTERM; the first line on stdout names its URL.
async fn serve(settings: &dsi_relay::Settings) -> anyhow::Result<()> {
    // The handlers are in place before the URL is printed: a SIGTERM sent as soon as it
    // appears stops the relay cleanly instead of killing it.
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let relay = dsi_relay::Relay::start(settings).await?;
    println!("dsi-relay: relaying at {}", relay.url());
    match &settings.admit_from {
        Some(tracker) => eprintln!("dsi-relay: carrying the keys {tracker} vouches for"),
        None => eprintln!("dsi-relay: carrying every key (--admit-from limits it to a network's)"),
    }
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = term.recv() => {}
    }
    relay.shutdown().await
}
