//! `node-lite-wan-bench`: `node-lite get` from three seeders over emulated wide-area links,
//! against `aria2c` downloading the same file from three plain HTTP servers on the same
//! links, measured side by side in one run.
//!
//! Run as root (it makes network namespaces), after `cargo build --release -p node-lite`:
//! `sudo target/release/node-lite-wan-bench [--size-mib 64] [--rate-mbit 20]`, or
//! `scripts/bench-wan`, which builds, installs `aria2` if missing and runs it.
//!
//! Each seeder runs `node-lite serve` in its own network namespace, reachable only through
//! its own veth link whose upload is shaped by `tc tbf` to `--rate-mbit`; a plain HTTP file
//! server with ranges (for aria2c's split download) runs beside it in the same namespace.
//! The downloader (`node-lite get --peer …` or `aria2c -s3 -x3`) runs in the host namespace
//! as a child process, so its CPU time (user + sys) is measured per GiB received.
//! No latency is added (`netem` is not available on these machines).
//!
//! Figures are medians of `--runs` interleaved pairs after one warm-up pair. The last line
//! is a summary for scripts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

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
    };
    let client = reqwest::Client::new();
    let (mut peers, mut mirrors) = (Vec::new(), Vec::new());
    let mut content = String::new();
    for n in 1..=args.seeders {
        let ns = make_link(&mut links, &tag, n, args.rate_mbit)?;
        let dir = tmp.path().join(format!("seeder-{n}"));
        node(&dir, &["init"])?;
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
        "node-lite-wan-bench: {} MiB random file, {} seeders each behind a {} Mbit/s link (sum {link_sum:.2} MiB/s), medians of {} interleaved pairs",
        args.size_mib, args.seeders, args.rate_mbit, args.runs
    );

    let get_out = tmp.path().join("get.bin");
    let aria_dir = tmp.path().join("aria");
    std::fs::create_dir_all(&aria_dir)?;
    let aria_out = aria_dir.join("aria.bin");
    let get_once = |run: usize| -> anyhow::Result<(f64, f64)> {
        // A fresh downloader each run: nothing cached, new receipts.
        let dir = tmp.path().join(format!("downloader-{run}"));
        node(&dir, &["init"])?;
        let _ = std::fs::remove_file(&get_out);
        let mut get_args = vec![
            "--data-dir".to_string(),
            dir.display().to_string(),
            "get".into(),
            content.clone(),
            "--out".into(),
            get_out.display().to_string(),
        ];
        for peer in &peers {
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

    get_once(0)?;
    aria_once()?;
    let mib = size as f64 / f64::from(1 << 20);
    let gib = size as f64 / f64::from(1 << 30);
    let (mut get_rate, mut aria_rate, mut get_cpu, mut aria_cpu, mut ratio) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 1..=args.runs {
        let (aria_wall, aria_secs) = aria_once()?;
        let (get_wall, get_secs) = get_once(run)?;
        get_rate.push(mib / get_wall);
        aria_rate.push(mib / aria_wall);
        get_cpu.push(get_secs / gib);
        aria_cpu.push(aria_secs / gib);
        ratio.push(aria_wall / get_wall);
    }
    let (get_rate, aria_rate) = (median(get_rate), median(aria_rate));
    let (get_cpu, aria_cpu, ratio) = (median(get_cpu), median(aria_cpu), median(ratio));
    println!(
        "{:<48} {get_rate:>7.2} MiB/s  {:.2}x the links' sum  {get_cpu:>6.2} CPU s/GiB",
        format!("node-lite get, {} seeders, HTTP", args.seeders),
        get_rate / link_sum
    );
    println!(
        "{:<48} {aria_rate:>7.2} MiB/s  {:.2}x the links' sum  {aria_cpu:>6.2} CPU s/GiB",
        format!("aria2c -s{0} -x{0}, {0} HTTP mirrors", args.seeders),
        aria_rate / link_sum
    );
    println!(
        "summary: link_sum_mib_s={link_sum:.2} get_mib_s={get_rate:.2} get_of_links={:.2} aria2c_mib_s={aria_rate:.2} aria2c_of_links={:.2} get_vs_aria2c={ratio:.2} get_cpu_s_per_gib={get_cpu:.2} aria2c_cpu_s_per_gib={aria_cpu:.2}",
        get_rate / link_sum,
        aria_rate / link_sum
    );
    drop(links);
    Ok(())
}
