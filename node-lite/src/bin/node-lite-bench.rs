//! `node-lite-bench`: download throughput on loopback, against a plain HTTP GET baseline
//! measured in the same run.
//!
//! Run with `cargo run --release -p node-lite --bin node-lite-bench [-- --size-mib N]`.
//!
//! What it measures, each as the median of `--runs` runs after one warm-up run:
//! - BLAKE3 throughput, one thread, over 256 KiB chunks (the per-chunk check);
//! - a plain single-stream HTTP GET of the same file from a minimal axum server, written to
//!   a file and synced (the baseline);
//! - `node-lite get` (the library's `Downloader`) from 1 and from 3 seeders, over HTTP and
//!   over iroh (QUIC on direct loopback paths, a new endpoint per run as a new process
//!   has), with chunk verification, receipts signed and delivered, the output synced, and
//!   (HTTP, last two rows) its SHA-256 computed as the command does by default;
//! - the iroh transport's own ceiling: the file on one QUIC stream of a new endpoint, no DSI
//!   protocol (no HTTP framing, signed requests, verification or receipts), written to a
//!   file and synced like the baseline.
//!
//! A download is timed from its start to the synced file with its receipts delivered;
//! closing an iroh endpoint afterwards (QUIC's close timer) is not counted.
//!
//! Everything runs in this process on the same runtime (the machine's cores are shared by
//! seeders and downloader, as on one host). The last line is a summary for scripts.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use dsi_protocol::manifest::DEFAULT_CHUNK_SIZE;
use dsi_protocol::{ChunkId, ContentId, NetworkId, NodeId, SecretKey};
use futures_util::StreamExt;
use node_lite::config::IrohConfig;
use node_lite::download::{DownloadOptions, Downloader};
use node_lite::peers::{StaticPeers, parse_peer_url};
use node_lite::server::{NodeState, peer_routes, serve};
use node_lite::{Config, DataDir, transport};
use reqwest::Url;
use tokio_util::sync::CancellationToken;

/// Download throughput on loopback against a plain HTTP GET of the same file, each the
/// median of --runs runs after a warm-up. The last line is a summary for scripts.
#[derive(clap::Parser, Debug)]
#[command(name = "node-lite-bench", version)]
struct Args {
    /// Size of the file downloaded, MiB.
    #[arg(long, default_value_t = 64, value_parser = positive, value_name = "N")]
    size_mib: usize,
    /// Timed runs per measurement (after one warm-up run).
    #[arg(long, default_value_t = 5, value_parser = positive, value_name = "N")]
    runs: usize,
    /// Chunk requests in flight per peer (default: the config's).
    #[arg(long, value_parser = positive, value_name = "N")]
    concurrency: Option<usize>,
    /// Which transports to measure (the plain HTTP GET baseline is always measured).
    #[arg(long, value_enum, default_value_t = Transports::Both)]
    transport: Transports,
}

/// The transports a run measures.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Transports {
    /// HTTP and iroh.
    Both,
    /// HTTP only.
    Http,
    /// iroh only.
    Iroh,
}

impl Transports {
    fn includes(self, iroh: bool) -> bool {
        match self {
            Transports::Both => true,
            Transports::Http => !iroh,
            Transports::Iroh => iroh,
        }
    }
}

fn positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{text:?} is not a positive whole number")),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn mib_per_sec(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / elapsed.as_secs_f64()
}

/// Measures `f` once as warm-up, then `runs` times; returns the median throughput.
async fn measure<F, Fut>(bytes: usize, runs: usize, mut f: F) -> anyhow::Result<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    f().await?;
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        f().await?;
        samples.push(mib_per_sec(bytes, start.elapsed()));
    }
    Ok(median(samples))
}

/// A seeder serving over HTTP and over iroh (direct paths on loopback, no relay).
struct BenchSeeder {
    url: Url,
    node: NodeId,
    iroh_addresses: Vec<SocketAddr>,
    content: ContentId,
    stop: CancellationToken,
    iroh: iroh::protocol::Router,
}

/// The iroh settings of the benchmark: loopback sockets, no relay.
fn loopback_iroh() -> IrohConfig {
    IrohConfig {
        relays: Vec::new(),
        bind: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        ..IrohConfig::default()
    }
}

/// The ALPN of the transport-ceiling measurement: a stream asking for anything gets the
/// whole file.
const RAW_ALPN: &[u8] = b"dsi-bench/raw-file/1";

/// Serves the benchmark file on every stream of [`RAW_ALPN`], read from disk in 256 KiB
/// pieces as the baseline HTTP server reads it.
#[derive(Debug, Clone)]
struct RawFile(Arc<std::path::PathBuf>);

impl iroh::protocol::ProtocolHandler for RawFile {
    async fn accept(
        &self,
        connection: iroh::endpoint::Connection,
    ) -> Result<(), iroh::protocol::AcceptError> {
        use iroh::protocol::AcceptError;
        use tokio::io::AsyncReadExt;
        // Streams until the client closes the connection.
        while let Ok((mut send, mut recv)) = connection.accept_bi().await {
            recv.read_to_end(64).await.map_err(AcceptError::from_err)?;
            let mut file = tokio::fs::File::open(&*self.0).await?;
            let mut buffer = vec![0u8; 256 * 1024];
            loop {
                let n = file.read(&mut buffer).await?;
                if n == 0 {
                    break;
                }
                send.write_all(&buffer[..n])
                    .await
                    .map_err(AcceptError::from_err)?;
            }
            send.finish()?;
        }
        Ok(())
    }
}

/// The file on one stream of [`RAW_ALPN`] from `seeder`, over a new endpoint (as a
/// `node-lite get` process makes one), written to `out` and synced. Returns the time from
/// binding the endpoint to the synced file (closing the connection and the endpoint, which
/// waits out QUIC's close timer, is not counted; nor is it for `get`).
async fn raw_iroh_get(seeder: &BenchSeeder, out: &Path) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let key = SecretKey::generate(&mut rand::rngs::OsRng);
    let endpoint = transport::bind(&key, &loopback_iroh(), false).await?;
    let id = iroh::EndpointId::from_bytes(&seeder.node.0)?;
    let address = seeder
        .iroh_addresses
        .iter()
        .fold(iroh::EndpointAddr::new(id), |address, socket| {
            address.with_ip_addr(*socket)
        });
    let connection = endpoint.connect(address, RAW_ALPN).await?;
    let (mut send, mut recv) = connection.open_bi().await?;
    send.write_all(b"get").await?;
    send.finish()?;
    let mut file = std::fs::File::create(out)?;
    while let Some(piece) = recv.read_chunk(usize::MAX).await? {
        file.write_all(&piece)?;
    }
    file.sync_all()?;
    let took = start.elapsed();
    connection.close(0u32.into(), b"done");
    endpoint.close().await;
    Ok(took)
}

async fn start_seeder(root: &Path, name: &str, file: &Path) -> anyhow::Result<BenchSeeder> {
    let dir = DataDir::new(root.join(name));
    dir.init()?;
    let key = dir.key()?;
    let state = Arc::new(NodeState::open(&dir, Config::default()).await?);
    let report = state
        .store
        .add_file(file, "bench.bin", DEFAULT_CHUNK_SIZE, &mut |_| {})?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = parse_peer_url(&format!("http://{}", listener.local_addr()?))?;
    let endpoint = transport::bind(&key, &loopback_iroh(), true).await?;
    let iroh_addresses = endpoint.addr().ip_addrs().copied().collect();
    let iroh = iroh::protocol::Router::builder(endpoint)
        .accept(
            transport::ALPN,
            transport::PeerService::new(peer_routes(state.clone()), 256),
        )
        .accept(RAW_ALPN, RawFile(Arc::new(file.to_path_buf())))
        .spawn();
    let stop = CancellationToken::new();
    tokio::spawn(serve(listener, state, stop.clone()));
    Ok(BenchSeeder {
        url,
        node: key.node_id(),
        iroh_addresses,
        content: report.content_id,
        stop,
        iroh,
    })
}

/// A minimal static file server: one route streaming the file from disk.
async fn start_plain_server(file: &Path) -> anyhow::Result<(String, CancellationToken)> {
    let path = file.to_path_buf();
    let app = Router::new().route(
        "/file",
        get(move || {
            let path = path.clone();
            async move {
                let file = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| e.to_string())?;
                let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
                Ok::<_, String>(Body::from_stream(stream))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/file", listener.local_addr()?);
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(token.cancelled_owned())
            .await
    });
    Ok((url, stop))
}

async fn plain_get(client: &reqwest::Client, url: &str, out: &Path) -> anyhow::Result<()> {
    let response = client.get(url).send().await?.error_for_status()?;
    let mut file = std::fs::File::create(out)?;
    let mut body = response.bytes_stream();
    while let Some(piece) = body.next().await {
        file.write_all(&piece?)?;
    }
    file.sync_all()?;
    Ok(())
}

/// The plain GET every measurement is paired with.
struct Baseline<'a> {
    client: &'a reqwest::Client,
    url: &'a str,
    out: &'a Path,
    size: usize,
    runs: usize,
}

impl Baseline<'_> {
    /// After one warm-up pair, `runs` interleaved pairs (the plain GET, then `candidate`,
    /// which returns the time it counts), so both sides of a ratio see the same machine
    /// conditions: the candidate's median MiB/s and the median of its ratios to the GET
    /// of its pair. Each timed GET's MiB/s goes to `plain`.
    async fn against<F, Fut>(
        &self,
        plain: &mut Vec<f64>,
        mut candidate: F,
    ) -> anyhow::Result<(f64, f64)>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<Duration>>,
    {
        plain_get(self.client, self.url, self.out).await?;
        candidate().await?;
        let (mut values, mut ratios) = (Vec::new(), Vec::new());
        for _ in 0..self.runs {
            let start = Instant::now();
            plain_get(self.client, self.url, self.out).await?;
            let get = mib_per_sec(self.size, start.elapsed());
            let value = mib_per_sec(self.size, candidate().await?);
            plain.push(get);
            values.push(value);
            ratios.push(value / get);
        }
        Ok((median(values), median(ratios)))
    }
}

fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    if let Ok(filter) = std::env::var("DSI_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let size = args.size_mib << 20;
    let tmp = tempfile::tempdir()?;
    let file = tmp.path().join("bench.bin");
    let mut data = vec![0u8; size];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut data);
    std::fs::write(&file, &data)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "node-lite-bench: {} MiB random file, {} KiB chunks, loopback, {cores} cores, medians of {} interleaved runs",
        args.size_mib,
        DEFAULT_CHUNK_SIZE / 1024,
        args.runs
    );

    // BLAKE3, one thread, chunk by chunk.
    let blake3 = measure(size, args.runs, || {
        let data = &data;
        async move {
            let mut last = ChunkId([0; 32]);
            for chunk in data.chunks(DEFAULT_CHUNK_SIZE as usize) {
                last = ChunkId::of(chunk);
            }
            std::hint::black_box(last);
            Ok(())
        }
    })
    .await?;
    println!(
        "{:<52} {blake3:>9.1} MiB/s",
        "blake3, one thread, 256 KiB chunks"
    );
    drop(data);

    // The baseline server and the seeders run side by side for the whole benchmark.
    let (plain_url, plain_stop) = start_plain_server(&file).await?;
    let client = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let plain_out = tmp.path().join("plain.bin");
    let out = tmp.path().join("out.bin");
    let mut seeders = Vec::new();
    for name in ["seeder-1", "seeder-2", "seeder-3"] {
        seeders.push(start_seeder(tmp.path(), name, &file).await?);
    }
    let content = seeders[0].content;

    // Each configuration runs as interleaved pairs (plain GET, then node-lite get), so both
    // sides of a ratio see the same machine conditions; the figures are medians over pairs.
    // Verified chunks and receipts are always on; "+ sha256" adds the CLI's default final
    // digest, one more CPU pass over the bytes.
    let mut summary = String::new();
    let mut all_plain = Vec::new();
    let baseline = Baseline {
        client: &client,
        url: &plain_url,
        out: &plain_out,
        size,
        runs: args.runs,
    };

    // The iroh transport's ceiling on this machine, in interleaved pairs with the baseline.
    let mut iroh_stream = None;
    if args.transport.includes(true) {
        let (raw, ratio) = baseline
            .against(&mut all_plain, || raw_iroh_get(&seeders[0], &out))
            .await?;
        println!(
            "{:<52} {raw:>9.1} MiB/s  ({ratio:.2}x the plain GET)",
            "iroh, one QUIC stream, no DSI protocol (ceiling)"
        );
        summary.push_str(&format!(
            " iroh_stream_mib_s={raw:.1} iroh_stream_ratio={ratio:.2}"
        ));
        iroh_stream = Some(raw);
    }

    let concurrency = args.concurrency;
    for (count, iroh, sha256) in [
        (1usize, false, false),
        (3, false, false),
        (1, true, false),
        (3, true, false),
        (1, false, true),
        (3, false, true),
    ] {
        if !args.transport.includes(iroh) {
            continue;
        }
        let peers = StaticPeers(
            seeders
                .iter()
                .take(count)
                .map(|s| {
                    if iroh {
                        transport::peer_url(&s.node)
                    } else {
                        s.url.clone()
                    }
                })
                .collect(),
        );
        let get_once = || {
            let peers = peers.clone();
            let out = out.clone();
            let seeders = &seeders;
            // The time from start to the synced file with its receipts delivered; closing
            // the iroh endpoint afterwards (QUIC's close timer) is not counted.
            async move {
                let start = Instant::now();
                let _ = std::fs::remove_file(&out);
                // A fresh downloader identity each run: receipts are new, not duplicates.
                let key = SecretKey::generate(&mut rand::rngs::OsRng);
                let mut options = DownloadOptions::from_config(&Default::default());
                options.sha256 = sha256;
                if let Some(n) = concurrency {
                    options.per_peer_concurrency = n;
                }
                let mut downloader = Downloader::new(
                    key.clone(),
                    NetworkId::default(),
                    Default::default(),
                    options,
                );
                // A new endpoint per run, as a new `node-lite get` process has.
                let dialer = if iroh {
                    let dialer = transport::Dialer::new(key, &loopback_iroh().endpoint())?;
                    for seeder in seeders {
                        dialer.add_direct_addresses(seeder.node, seeder.iroh_addresses.clone());
                    }
                    downloader = downloader.with_iroh(dialer.clone());
                    Some(dialer)
                } else {
                    None
                };
                let report = downloader
                    .download(&content, &peers, &out, &CancellationToken::new())
                    .await?;
                let took = start.elapsed();
                if let Some(dialer) = dialer {
                    dialer.close().await;
                }
                let accepted: u64 = report.peers.iter().map(|p| p.receipts_accepted).sum();
                anyhow::ensure!(
                    report.chunks_fetched == report.chunks_total,
                    "incomplete download"
                );
                anyhow::ensure!(
                    accepted as usize >= report.chunks_total,
                    "receipts missing: {accepted}"
                );
                anyhow::ensure!(report.sha256.is_some() == sha256, "sha256 option ignored");
                anyhow::Ok(took)
            }
        };
        let (get, ratio) = baseline.against(&mut all_plain, get_once).await?;
        let label = format!(
            "get, {count} seeder{}, {}, verified + receipts{}",
            if count == 1 { "" } else { "s" },
            if iroh { "iroh" } else { "HTTP" },
            if sha256 { " + sha256" } else { "" }
        );
        match iroh_stream {
            Some(stream) if iroh => println!(
                "{label:<52} {get:>9.1} MiB/s  ({ratio:.2}x the plain GET, {:.2}x the iroh stream)",
                get / stream
            ),
            _ => println!("{label:<52} {get:>9.1} MiB/s  ({ratio:.2}x the plain GET)"),
        }
        let key = format!(
            "get_{count}{}{}",
            if iroh { "_iroh" } else { "" },
            if sha256 { "_sha256" } else { "" }
        );
        summary.push_str(&format!(" {key}_mib_s={get:.1} {key}_ratio={ratio:.2}"));
    }
    plain_stop.cancel();
    for seeder in seeders {
        seeder.stop.cancel();
        seeder.iroh.shutdown().await?;
    }
    let plain = median(all_plain);
    println!(
        "{:<52} {plain:>9.1} MiB/s",
        "plain HTTP GET, one stream (baseline, median)"
    );
    println!("summary: blake3_mib_s={blake3:.1} plain_get_mib_s={plain:.1}{summary}");
    Ok(())
}
