//! `node-lite-wan-bench`: `node-lite get` from three seeders over emulated wide-area links,
//! over HTTP and over iroh, against `aria2c` downloading the same file from three plain
//! HTTP servers on the same links, measured side by side in one run.
//!
//! Run as root (it makes network namespaces), after `cargo build --release -p node-lite`:
//! `sudo target/release/node-lite-wan-bench [--size-mib 64] [--rate-mbit 20]`, or
//! `scripts/bench-wan`, which builds, installs `aria2` if missing and runs it.
//!
//! Each seeder runs `node-lite serve` in its own network namespace, reachable only through
//! its own veth link whose upload is shaped by `tc tbf` to `--rate-mbit`; a plain HTTP file
//! server with ranges (for aria2c's split download) runs beside it in the same namespace.
//! A `dsi-relay` runs on the host at 10.213.0.1 (every namespace routes there through its
//! link); over iroh the downloader dials the seeders by node id through it and moves to a
//! direct path over the link when hole punching succeeds (relayed or direct, every byte
//! crosses the seeder's shaped link).
//! The downloader (`node-lite get --peer …` or `aria2c -s3 -x3`) runs in the host namespace
//! as a child process, so its CPU time (user + sys) is measured per GiB received.
//! No latency is added (`netem` is not available on these machines).
//!
//! Figures are medians of `--runs` interleaved triples after one warm-up of each. The last line
//! is a summary for scripts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

/// Where the bench's relay listens: a host address every namespace routes to.
const RELAY_HOST_CIDR: &str = "10.213.0.1/32";
const RELAY_LISTEN: &str = "10.213.0.1:3340";

/// `get` from several seeders over shaped links against `aria2c` on the same links.
#[derive(clap::Parser, Debug)]
#[command(name = "node-lite-wan-bench", version)]
struct Args {
    /// Size of the file downloaded, MiB.
    #[arg(long, default_value_t = 64, value_name = "N")]
    size_mib: usize,
    /// Each seeder's upload rate, Mbit/s.
    #[arg(long, default_value_t = 20, value_name = "N")]
    rate_mbit: u32,
    /// Seeders (each on its own link).
    #[arg(long, default_value_t = 3, value_name = "N")]
    seeders: u8,
    /// Timed pairs (after one warm-up pair).
    #[arg(long, default_value_t = 3, value_name = "N")]
    runs: usize,
    /// The `node-lite` binary (default: the one beside this one).
    #[arg(long, value_name = "FILE")]
    node_lite: Option<PathBuf>,
    /// The `dsi-relay` binary (default: the one beside `node-lite`).
    #[arg(long, value_name = "FILE")]
    relay: Option<PathBuf>,
    /// (internal) Serve FILE with ranges at --listen until killed.
    #[arg(long, value_name = "FILE", hide = true, requires = "listen")]
    serve_file: Option<PathBuf>,
    /// (internal) The address for --serve-file.
    #[arg(long, value_name = "ADDR", hide = true)]
    listen: Option<SocketAddr>,
}

fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let (Some(file), Some(listen)) = (&args.serve_file, args.listen) {
        return runtime.block_on(serve_file(file.clone(), listen));
    }
    runtime.block_on(run(args))
}

/// A static file server with single ranges (`tower_http::services::ServeFile`).
async fn serve_file(file: PathBuf, listen: SocketAddr) -> anyhow::Result<()> {
    let app =
        axum::Router::new().route_service("/file", tower_http::services::ServeFile::new(file));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs a command to completion; fails naming it and its stderr.
fn run_ok(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    ensure!(
        output.status.success(),
        "{program} {} failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The namespaces, links and processes of one run; all removed when dropped.
struct Links {
    namespaces: Vec<String>,
    children: Vec<Child>,
    /// The relay's address on the host's loopback interface, once added.
    relay_address: Option<String>,
}

impl Drop for Links {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Deleting a namespace deletes its end of the veth pair, and the pair with it.
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        if let Some(address) = &self.relay_address {
            let _ = Command::new("ip")
                .args(["addr", "del", address, "dev", "lo"])
                .status();
        }
    }
}

/// One link: namespace `ns` at `10.213.{n}.2`, the host at `10.213.{n}.1`, the namespace's
/// upload shaped to `rate_mbit`.
fn make_link(links: &mut Links, tag: &str, n: u8, rate_mbit: u32) -> anyhow::Result<String> {
    let ns = format!("dsiwan-{tag}-{n}");
    let host = format!("dw{tag}h{n}");
    let inner = format!("dw{tag}n{n}");
    run_ok("ip", &["netns", "add", &ns])?;
    links.namespaces.push(ns.clone());
    run_ok(
        "ip",
        &["link", "add", &host, "type", "veth", "peer", "name", &inner],
    )?;
    run_ok("ip", &["link", "set", &inner, "netns", &ns])?;
    run_ok(
        "ip",
        &["addr", "add", &format!("10.213.{n}.1/24"), "dev", &host],
    )?;
    run_ok("ip", &["link", "set", &host, "up"])?;
    let in_ns = |args: &[&str]| -> anyhow::Result<String> {
        let mut all = vec!["netns", "exec", &ns];
        all.extend_from_slice(args);
        run_ok("ip", &all)
    };
    in_ns(&[
        "ip",
        "addr",
        "add",
        &format!("10.213.{n}.2/24"),
        "dev",
        &inner,
    ])?;
    in_ns(&["ip", "link", "set", &inner, "up"])?;
    in_ns(&["ip", "link", "set", "lo", "up"])?;
    // The relay listens on a host address outside the link's /24.
    in_ns(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        &format!("10.213.{n}.1"),
    ])?;
    in_ns(&[
        "tc",
        "qdisc",
        "add",
        "dev",
        &inner,
        "root",
        "tbf",
        "rate",
        &format!("{rate_mbit}mbit"),
        "burst",
        "64kb",
        "latency",
        "100ms",
    ])?;
    Ok(ns)
}

/// Polls `url` until it answers (a server just started in a namespace).
async fn wait_up(client: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "{url} did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// User + system CPU seconds of this process's waited-for children so far: `cutime` and
/// `cstime` of `/proc/self/stat`, in clock ticks of `getconf CLK_TCK`.
fn children_cpu(ticks_per_sec: f64) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let after = stat
        .rsplit_once(')')
        .context("/proc/self/stat has no command name")?
        .1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state); cutime and cstime are fields 16 and 17.
    let field = |n: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(n - 3)
            .context("/proc/self/stat is too short")?
            .parse::<f64>()?)
    };
    Ok((field(16)? + field(17)?) / ticks_per_sec)
}

/// Runs a downloader child to completion: (wall seconds, CPU seconds).
fn timed(program: &Path, args: &[String], ticks: f64) -> anyhow::Result<(f64, f64)> {
    let cpu = children_cpu(ticks)?;
    let start = Instant::now();
    let output = Command::new(program)
        .args(args)
        .env("DSI_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    let wall = start.elapsed().as_secs_f64();
    ensure!(
        output.status.success(),
        "{} failed ({}): {}",
        program.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok((wall, children_cpu(ticks)? - cpu))
}

fn same_bytes(a: &Path, b: &Path) -> anyhow::Result<()> {
    let (a, b) = (std::fs::read(a)?, std::fs::read(b)?);
    ensure!(a == b, "the downloaded file differs from the original");
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<()> {
    // `/proc/self` belongs to the effective user.
    if std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self")?) != 0 {
        bail!("node-lite-wan-bench makes network namespaces: run it as root (scripts/bench-wan)");
    }
    for tool in ["ip", "tc"] {
        ensure!(
            which(tool),
            "`{tool}` not found: install the Debian package iproute2"
        );
    }
    ensure!(
        which("aria2c"),
        "`aria2c` not found: install the Debian package aria2 (scripts/bench-wan does)"
    );
    ensure!((1..=8).contains(&args.seeders), "--seeders must be 1 to 8");
    let node_lite = match &args.node_lite {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("this binary's folder")?
            .join("node-lite"),
    };
    ensure!(
        node_lite.is_file(),
        "{} not found: build it first (cargo build --release -p node-lite) or give --node-lite",
        node_lite.display()
    );
    let ticks: f64 = run_ok("getconf", &["CLK_TCK"])?
        .trim()
        .parse()
        .context("getconf CLK_TCK")?;
    let relay_bin = match &args.relay {
        Some(path) => path.clone(),
        None => node_lite.with_file_name("dsi-relay"),
    };
    ensure!(
        relay_bin.is_file(),
        "{} not found: build it first (cargo build --release -p dsi-relay) or give --relay",
        relay_bin.display()
    );
    let me = std::env::current_exe()?;
    let size = args.size_mib << 20;
    let tmp = tempfile::tempdir()?;
    let file = tmp.path().join("bench.bin");
    let mut data = vec![0u8; size];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut data);
    std::fs::write(&file, &data)?;
    drop(data);
    let node = |dir: &Path, args: &[&str]| -> anyhow::Result<String> {
        let mut all = vec!["--data-dir", dir.to_str().context("UTF-8 path")?];
        all.extend_from_slice(args);
        run_ok(node_lite.to_str().context("UTF-8 path")?, &all)
    };

    let tag = format!("{}", std::process::id() % 10_000);
    let mut links = Links {
        namespaces: Vec::new(),
        children: Vec::new(),
        relay_address: None,
    };
    let client = reqwest::Client::new();
    // The network's relay, on the host at an address every namespace routes to. Nodes
    // find each other through it, then hole-punch to a direct path over their link.
    run_ok("ip", &["addr", "add", RELAY_HOST_CIDR, "dev", "lo"])?;
    links.relay_address = Some(RELAY_HOST_CIDR.to_string());
    links.children.push(
        Command::new(&relay_bin)
            .args(["--listen", RELAY_LISTEN])
            .env("DSI_LOG", "off")
            .stdout(Stdio::null())
            .spawn()
            .context("starting dsi-relay")?,
    );
    let relay_url = format!("http://{RELAY_LISTEN}/");
    wait_up(&client, &format!("{relay_url}generate_204")).await?;
    let with_iroh = |dir: &Path| -> anyhow::Result<()> {
        let mut config = node_lite::Config::load(dir)?;
        config.iroh.relays = vec![relay_url.clone()];
        config.iroh.bind = vec![std::net::SocketAddr::from(([0, 0, 0, 0], 0))];
        config.save(dir)?;
        Ok(())
    };
    let mut node_ids = Vec::new();
    let (mut peers, mut mirrors) = (Vec::new(), Vec::new());
    let mut content = String::new();
    for n in 1..=args.seeders {
        let ns = make_link(&mut links, &tag, n, args.rate_mbit)?;
        let dir = tmp.path().join(format!("seeder-{n}"));
        node(&dir, &["init"])?;
        with_iroh(&dir)?;
        node_ids.push(node(&dir, &["id"])?.trim().to_string());
        content = node(&dir, &["add", file.to_str().context("UTF-8 path")?])?
            .trim()
            .to_string();
        let seeder = format!("10.213.{n}.2:7000");
        let plain = format!("10.213.{n}.2:7001");
        links.children.push(
            Command::new("ip")
                .args(["netns", "exec", &ns])
                .arg(&node_lite)
                .arg("--data-dir")
                .arg(&dir)
                .args(["serve", "--listen", &seeder])
                .env("DSI_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .context("starting a seeder")?,
        );
        links.children.push(
            Command::new("ip")
                .args(["netns", "exec", &ns])
                .arg(&me)
                .arg("--serve-file")
                .arg(&file)
                .args(["--listen", &plain])
                .stdout(Stdio::null())
                .spawn()
                .context("starting a file server")?,
        );
        wait_up(&client, &format!("http://{seeder}/health")).await?;
        wait_up(&client, &format!("http://{plain}/file")).await?;
        peers.push(format!("http://{seeder}"));
        mirrors.push(format!("http://{plain}/file"));
    }
    let link_sum =
        f64::from(args.rate_mbit) * f64::from(args.seeders) * 1e6 / 8.0 / f64::from(1 << 20);
    println!(
        "node-lite-wan-bench: {} MiB random file, {} seeders each behind a {} Mbit/s link (sum {link_sum:.2} MiB/s), medians of {} interleaved triples",
        args.size_mib, args.seeders, args.rate_mbit, args.runs
    );

    let get_out = tmp.path().join("get.bin");
    let aria_dir = tmp.path().join("aria");
    std::fs::create_dir_all(&aria_dir)?;
    let aria_out = aria_dir.join("aria.bin");
    let get_once = |run: usize, iroh: bool| -> anyhow::Result<(f64, f64)> {
        // A fresh downloader each run: nothing cached, new receipts, a new endpoint.
        let dir = tmp.path().join(format!("downloader-{run}-{iroh}"));
        node(&dir, &["init"])?;
        with_iroh(&dir)?;
        let _ = std::fs::remove_file(&get_out);
        let mut get_args = vec![
            "--data-dir".to_string(),
            dir.display().to_string(),
            "get".into(),
            content.clone(),
            "--out".into(),
            get_out.display().to_string(),
        ];
        for peer in if iroh { &node_ids } else { &peers } {
            get_args.push("--peer".into());
            get_args.push(peer.clone());
        }
        let timing = timed(&node_lite, &get_args, ticks)?;
        same_bytes(&file, &get_out)?;
        std::fs::remove_dir_all(&dir)?;
        Ok(timing)
    };
    let aria_once = || -> anyhow::Result<(f64, f64)> {
        let _ = std::fs::remove_file(&aria_out);
        let split = args.seeders.to_string();
        let mut aria_args: Vec<String> = vec![
            // `--name=value`: aria2c takes a bare word after a boolean option for a URI.
            format!("--split={split}"),
            format!("--max-connection-per-server={split}"),
            "--min-split-size=1M".into(),
            "--file-allocation=none".into(),
            "--allow-overwrite=true".into(),
            "--auto-file-renaming=false".into(),
            "--console-log-level=warn".into(),
            "--summary-interval=0".into(),
            format!("--dir={}", aria_dir.display()),
            "--out=aria.bin".into(),
        ];
        aria_args.extend(mirrors.iter().cloned());
        let timing = timed(Path::new("aria2c"), &aria_args, ticks)?;
        same_bytes(&file, &aria_out)?;
        Ok(timing)
    };

    // One warm-up of each, then interleaved triples: aria2c, get over HTTP, get over iroh.
    get_once(0, false)?;
    get_once(0, true)?;
    aria_once()?;
    let mib = size as f64 / f64::from(1 << 20);
    let gib = size as f64 / f64::from(1 << 30);
    let mut samples: [Vec<(f64, f64, f64)>; 3] = Default::default();
    for run in 1..=args.runs {
        let aria = aria_once()?;
        let http = get_once(run, false)?;
        let iroh = get_once(run, true)?;
        for (i, (wall, cpu)) in [aria, http, iroh].into_iter().enumerate() {
            samples[i].push((mib / wall, cpu / gib, aria.0 / wall));
        }
    }
    let figures: Vec<(f64, f64, f64)> = samples
        .iter()
        .map(|runs| {
            (
                median(runs.iter().map(|s| s.0).collect()),
                median(runs.iter().map(|s| s.1).collect()),
                median(runs.iter().map(|s| s.2).collect()),
            )
        })
        .collect();
    let labels = [
        format!("aria2c -s{0} -x{0}, {0} HTTP mirrors", args.seeders),
        format!("node-lite get, {} seeders, HTTP", args.seeders),
        format!("node-lite get, {} seeders, iroh", args.seeders),
    ];
    for (label, (rate, cpu, vs_aria)) in labels.iter().zip(&figures) {
        println!(
            "{label:<40} {rate:>7.2} MiB/s  {:.2}x the links' sum  {vs_aria:.2}x aria2c  {cpu:>6.2} CPU s/GiB",
            rate / link_sum
        );
    }
    let [aria, http, iroh] = [figures[0], figures[1], figures[2]];
    println!(
        "summary: link_sum_mib_s={link_sum:.2} aria2c_mib_s={:.2} aria2c_of_links={:.2} http_get_mib_s={:.2} http_get_of_links={:.2} http_get_vs_aria2c={:.2} iroh_get_mib_s={:.2} iroh_get_of_links={:.2} iroh_get_vs_aria2c={:.2} aria2c_cpu_s_per_gib={:.2} http_get_cpu_s_per_gib={:.2} iroh_get_cpu_s_per_gib={:.2}",
        aria.0,
        aria.0 / link_sum,
        http.0,
        http.0 / link_sum,
        http.2,
        iroh.0,
        iroh.0 / link_sum,
        iroh.2,
        aria.1,
        http.1,
        iroh.1,
    );
    drop(links);
    Ok(())
}
