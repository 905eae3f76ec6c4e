//! `dsi-relay`: runs the network's iroh relay until Ctrl-C (see the library docs).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;

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
    /// Also answer QUIC address discovery on this UDP address (7842 is iroh's usual
    /// port): nodes behind home routers learn there the public address their router gives
    /// them, so that two of them can punch holes to each other (nodes set `iroh.qad_port`).
    /// Needs --tls-cert and --tls-key.
    #[arg(long, env = "DSI_RELAY_QAD", value_name = "ADDR", requires_all = ["tls_cert", "tls_key"])]
    qad: Option<SocketAddr>,
    /// The certificate chain (PEM) QUIC address discovery shows; nodes trust it through
    /// the web's roots or `iroh.relay_ca_file`.
    #[arg(
        long,
        env = "DSI_RELAY_TLS_CERT",
        value_name = "FILE",
        requires = "qad"
    )]
    tls_cert: Option<PathBuf>,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1), in a file only the relay's user can
    /// read.
    #[arg(long, env = "DSI_RELAY_TLS_KEY", value_name = "FILE", requires = "qad")]
    tls_key: Option<PathBuf>,
    /// Write a self-signed certificate for the host names or addresses nodes reach the
    /// relay at (NAME,...) to DIR/relay-cert.pem (for nodes' `iroh.relay_ca_file`) and its
    /// key to DIR/relay-key.pem (0600), then exit.
    #[arg(long, value_name = "DIR", requires = "names", conflicts_with = "qad")]
    write_cert: Option<PathBuf>,
    /// The names for --write-cert, comma-separated (`relay.example.org,203.0.113.7`).
    #[arg(
        long,
        value_name = "NAME,...",
        value_delimiter = ',',
        requires = "write_cert"
    )]
    names: Vec<String>,
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
    if let Some(dir) = &args.write_cert {
        return match dsi_relay::write_self_signed(dir, &args.names) {
            Ok((cert, key)) => {
                println!(
                    "dsi-relay: certificate {} (give it to nodes), key {}",
                    cert.display(),
                    key.display()
                );
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("dsi-relay: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let qad = match (args.qad, &args.tls_cert, &args.tls_key) {
        (Some(listen), Some(cert), Some(key)) => {
            match dsi_relay::Qad::from_pem_files(listen, cert, key) {
                Ok(qad) => Some(qad),
                Err(e) => {
                    eprintln!("dsi-relay: {e:#}");
                    return std::process::ExitCode::from(2);
                }
            }
        }
        _ => None,
    };
    let settings = dsi_relay::Settings {
        listen: args.listen,
        client_bytes_per_sec: args.client_bytes_per_sec,
        key_cache: args.key_cache,
        admit_from: args.admit_from,
        qad,
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
    match relay.qad_address() {
        Some(address) => eprintln!("dsi-relay: QUIC address discovery on udp {address}"),
        None => eprintln!(
            "dsi-relay: no QUIC address discovery (--qad): nodes behind home routers reach each other through the relay only"
        ),
    }
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = term.recv() => {}
    }
    relay.shutdown().await
}
