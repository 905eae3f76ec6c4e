//! The vector search page in real headless Chromium: a seeder built an index and serves it
//! with the page (`node-lite serve --web`); the page loads the index by content id, queries,
//! pages through results, reloads, and must fetch no page twice. The page says whether its
//! key's receipts pay (its credit at the seeder's tracker, funded between sessions).
//!
//! Needs `scripts/build-web` (the page), Debian's `chromium` and `playwright-core` in
//! vector-web/test (`scripts/setup --browser`). Without them the test says so and passes,
//! unless DSI_REQUIRE_BROWSER=1 (as `scripts/test` sets), when it fails. The text search
//! test also needs the all-MiniLM-L6-v2 model (`scripts/setup --model`, or DSI_MODEL_DIR),
//! required when DSI_REQUIRE_MODEL is set (as `scripts/test` does).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use dsi_tests::{Seeder, node_lite_ok, poll};
use serde_json::Value;
use vector_store::SplitMix64;
use vector_store::input::to_npy;

const DIM: usize = 24;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn missing_tools(web: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    if !web.join("pkg/vector_web_bg.wasm").is_file() {
        missing.push(format!(
            "the page in {} (run scripts/build-web)",
            web.display()
        ));
    }
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        missing.push(format!("{chromium} (scripts/setup --browser)"));
    }
    if !root()
        .join("vector-web/test/node_modules/playwright-core")
        .is_dir()
    {
        missing.push("playwright-core in vector-web/test (scripts/setup --browser)".into());
    }
    if Command::new("node").arg("--version").output().is_err() {
        missing.push("node".into());
    }
    missing
}

fn ids(pages: &Value) -> Vec<Vec<u64>> {
    pages
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect()
        })
        .collect()
}

/// The built page, or None (after saying why) when the tools are missing and not required.
fn web_dir() -> Option<PathBuf> {
    let web = std::env::var_os("DSI_WEB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/vector-web/www"));
    let missing = missing_tools(&web);
    if missing.is_empty() {
        return Some(web);
    }
    let message = format!("browser test needs: {}", missing.join(", "));
    if std::env::var("DSI_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!("{message}");
    }
    eprintln!("skipped: {message}");
    None
}

/// Runs vector-web/test/drive.mjs (with `env`) and returns its report.
fn drive(args: &[&str], env: &[(&str, &str)]) -> Value {
    let output = Command::new("node")
        .arg(root().join("vector-web/test/drive.mjs"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "driver failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!(
        "driver stderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "driver output ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn requested(session: &Value) -> Vec<String> {
    session["requested"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// The pages the command line gives for the same query: `args` plus `-k`/`--nprobe`, page
/// after page through the cursors.
fn cli_pages(dir: &Path, args: &[&str], count: usize) -> Vec<Vec<u64>> {
    let mut cursor: Option<String> = None;
    let mut pages = Vec::new();
    for _ in 0..count {
        let mut all = vec!["vectors", "query", "--json"];
        all.extend_from_slice(args);
        if let Some(c) = &cursor {
            all.extend(["--cursor", c.as_str()]);
        }
        let cli: Value = serde_json::from_str(&node_lite_ok(dir, &all)).unwrap();
        pages.push(
            cli["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["id"].as_u64().unwrap())
                .collect(),
        );
        cursor = cli["next_cursor"].as_str().map(str::to_string);
    }
    pages
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_queries_pages_through_and_reloads_from_its_cache() {
    let Some(web) = web_dir() else { return };

    let tmp = tempfile::tempdir().unwrap();
    // The seeder announces to an oracle (its tracker, which the page asks for its key's
    // credit) and keeps its receipts here (forwarding once a day) for the counts below.
    let oracle = dsi_tests::OracleProcess::start(&tmp.path().join("oracle"), &[]).unwrap();
    let seeder_dir = tmp.path().join("seeder");
    dsi_tests::init_node(&seeder_dir, |config| {
        config.tracker.forward_interval_secs = 86_400;
    });
    let mut rng = SplitMix64::new(5);
    let centres: Vec<f32> = (0..30 * DIM).map(|_| rng.normal()).collect();
    let data: Vec<f32> = (0..4000)
        .flat_map(|_| {
            let c = rng.below(30);
            (0..DIM)
                .map(|d| centres[c * DIM + d] + 0.4 * rng.normal())
                .collect::<Vec<_>>()
        })
        .collect();
    let npy = tmp.path().join("v.npy");
    std::fs::write(&npy, to_npy(DIM, &data)).unwrap();
    let index = node_lite_ok(
        &seeder_dir,
        &[
            "vectors",
            "build",
            npy.to_str().unwrap(),
            "--metric",
            "l2",
            "--sq8",
            "--lists",
            "64",
        ],
    )
    .trim()
    .to_string();
    let seeder = Seeder::start(
        &seeder_dir,
        &[
            "--web",
            web.to_str().unwrap(),
            "--tracker",
            &oracle.url,
            "--payout",
            "0x0101010101010101010101010101010101010101",
        ],
    )
    .unwrap();

    let row = 77;
    let query: String = data[row * DIM..(row + 1) * DIM]
        .iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    // Between the first session and the reload, the driver funds the page's key with one
    // token of credit at the oracle (as an app funds its users).
    let token = oracle.admin_token();
    let report = drive(
        &[&seeder.url, &index, &query, "5", "3", "3"],
        &[("DSI_FUND_URL", &oracle.url), ("DSI_FUND_TOKEN", &token)],
    );
    let first = &report["first"];
    assert_eq!(first["error"], "", "{report}");
    // The page says whether its receipts pay: not before its key is funded, then yes.
    let key = first["nodeId"].as_str().unwrap();
    let credit = first["credit"].as_str().unwrap();
    assert!(
        credit.contains(key)
            && credit.contains("has no credit")
            && credit.contains("pay them nothing"),
        "{report}"
    );
    let funded = report["second"]["credit"].as_str().unwrap();
    assert!(
        funded.contains("has 1.000000 tokens of credit") && funded.contains("units per byte"),
        "{report}"
    );
    assert_eq!(
        report["second"]["nodeId"], first["nodeId"],
        "a reload keeps the key"
    );
    let other = report["quota"]["credit"].as_str().unwrap();
    assert!(
        !other.contains(key) && other.contains("has no credit"),
        "a fresh profile has a fresh key without credit: {report}"
    );
    let pages = ids(&first["pages"]);
    assert_eq!(pages.len(), 4, "{report}");
    assert_eq!(
        pages[0][0], row as u64,
        "a stored vector is its own nearest neighbour"
    );
    let mut seen = HashSet::new();
    for id in pages.iter().flatten() {
        assert!(
            seen.insert(*id),
            "result {id} repeated across pages: {pages:?}"
        );
    }
    assert_eq!(seen.len(), 20);
    assert!(first["info"].as_str().unwrap().contains("4000 vectors"));

    // The browser computes what the command line computes, page for page.
    assert_eq!(
        cli_pages(
            &seeder_dir,
            &[&index, "--vector", &query, "-k", "5", "--nprobe", "3"],
            pages.len()
        ),
        pages
    );

    // Only the pages the query needed were fetched, each once, and all were paid for.
    let requested = requested(first);
    let unique: HashSet<&String> = requested.iter().collect();
    assert_eq!(
        unique.len(),
        requested.len(),
        "a chunk was fetched twice: {requested:?}"
    );
    assert!(
        requested.len() < 128 / 4,
        "fetched {} of 128 pages",
        requested.len()
    );
    let accepted = first["stats"]["receiptsAccepted"].as_u64().unwrap();
    assert_eq!(accepted as usize, requested.len(), "{report}");
    // The seeder holds a receipt for every chunk served: the first session's and those of
    // the quota session below (a fresh browser profile, so a new downloader key).
    let quota_fetched = report["quota"]["stats"]["network"].as_u64().unwrap() as usize;
    assert_eq!(seeder.receipts().len(), requested.len() + quota_fetched);

    // After a reload everything comes from IndexedDB: same results, nothing fetched.
    let second = &report["second"];
    assert_eq!(second["error"], "", "{report}");
    assert_eq!(ids(&second["pages"]), pages);
    assert_eq!(second["requested"].as_array().unwrap().len(), 0, "{report}");
    assert!(second["stats"]["cached"].as_u64().unwrap() >= requested.len() as u64);

    // A full storage quota: a clear message, and the results still come.
    let quota = &report["quota"];
    assert_eq!(quota["error"], "", "{report}");
    assert_eq!(ids(&quota["pages"]), pages);
    assert!(
        quota["warning"]
            .as_str()
            .unwrap()
            .contains("Browser storage is full"),
        "{report}"
    );
}

/// Text search in the page: the text model (all-MiniLM-L6-v2, `scripts/setup --model`) is
/// swarm content like the index; the page fetches it, verifies it, embeds the query text in
/// wasm, and must find what `node-lite vectors query --text` finds, showing the lines.
#[tokio::test(flavor = "multi_thread")]
async fn the_page_searches_by_text_with_a_model_from_the_swarm() {
    let Some(web) = web_dir() else { return };
    let Some(model_dir) = dsi_tests::minilm_dir() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let seeder_dir = tmp.path().join("seeder");
    node_lite_ok(&seeder_dir, &["init"]);
    let model = node_lite_ok(
        &seeder_dir,
        &["vectors", "add-model", model_dir.to_str().unwrap()],
    )
    .trim()
    .to_string();
    let corpus = root().join("vector-web/www/examples/sentences.txt");
    let lines: Vec<String> = std::fs::read_to_string(&corpus)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let built = dsi_tests::build_text_index(&seeder_dir, &corpus, &model, 4);
    let index = built["content_id"].as_str().unwrap().to_string();
    let texts = built["texts_content_id"].as_str().unwrap().to_string();
    assert_eq!(built["vectors"], lines.len());
    let seeder = Seeder::start(&seeder_dir, &["--web", web.to_str().unwrap()]).unwrap();

    let text = "sunny skies and warm weather";
    let extra = format!(
        "&model={model}&texts={texts}&text={}",
        text.replace(' ', "%20")
    );
    let report = drive(&[&seeder.url, &index, "", "5", "2", "1", &extra], &[]);
    let first = &report["first"];
    assert_eq!(first["error"], "", "{report}");
    // This seeder has no tracker: the page says that nobody pays for its receipts.
    assert!(
        first["credit"]
            .as_str()
            .unwrap()
            .contains("name no tracker"),
        "{report}"
    );
    let pages = ids(&first["pages"]);
    assert_eq!(pages.len(), 2, "{report}");
    assert!(
        [0, 1, 4].contains(&pages[0][0]),
        "the best match for {text:?} is a weather line: {:?}",
        lines[pages[0][0] as usize]
    );
    // The page shows each result's line.
    for (page, shown) in pages.iter().zip(first["texts"].as_array().unwrap()) {
        for (id, line) in page.iter().zip(shown.as_array().unwrap()) {
            assert_eq!(line.as_str().unwrap(), lines[*id as usize]);
        }
    }
    assert!(
        first["info"]
            .as_str()
            .unwrap()
            .contains("text model all-MiniLM-L6-v2")
    );
    eprintln!(
        "text embedded in the page in {} ms",
        first["stats"]["embedMs"][0]
    );

    // The browser's embedding and search give what the command line gives.
    let cli = cli_pages(
        &seeder_dir,
        &[
            &index, "--text", text, "--model", &model, "-k", "5", "--nprobe", "2",
        ],
        pages.len(),
    );
    assert_eq!(cli, pages);

    // The model came from the swarm: every chunk once, every chunk paid for.
    let fetched = requested(first);
    let unique: HashSet<&String> = fetched.iter().collect();
    assert_eq!(unique.len(), fetched.len(), "a chunk was fetched twice");
    let model_chunks = 87; // 86.9 MiB in 1 MiB chunks
    assert!(
        fetched.len() > model_chunks,
        "{} chunks fetched",
        fetched.len()
    );
    assert_eq!(
        first["stats"]["receiptsAccepted"].as_u64().unwrap() as usize,
        fetched.len()
    );

    // Reloaded: model, index and texts all come from IndexedDB.
    let second = &report["second"];
    assert_eq!(second["error"], "", "{report}");
    assert_eq!(ids(&second["pages"]), pages);
    assert_eq!(second["texts"], first["texts"]);
    assert_eq!(second["requested"].as_array().unwrap().len(), 0, "{report}");
}

/// Chromium, playwright-core and node, without the built page (the gateway test needs no
/// wasm); None (after saying why) when missing and not required.
fn browser_only() -> Option<()> {
    let missing: Vec<String> = missing_tools(Path::new("/nonexistent"))
        .into_iter()
        .filter(|m| !m.contains("scripts/build-web"))
        .collect();
    if missing.is_empty() {
        return Some(());
    }
    let message = format!("browser test needs: {}", missing.join(", "));
    if std::env::var("DSI_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!("{message}");
    }
    eprintln!("skipped: {message}");
    None
}

/// Runs vector-web/test/range.mjs: `fetch` in a page at `page`, one answer per request.
fn fetch_in_page(page: &str, requests: &[String]) -> Vec<Value> {
    let output = Command::new("node")
        .arg(root().join("vector-web/test/range.mjs"))
        .arg(page)
        .args(requests)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "range driver failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_reads_a_range_through_the_gateway_with_fetch() {
    let Some(()) = browser_only() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let seeder_dir = tmp.path().join("seeder");
    node_lite_ok(&seeder_dir, &["init"]);
    let mut rng = SplitMix64::new(9);
    let bytes: Vec<u8> = (0..3 * 16384 + 1001)
        .map(|_| rng.below(256) as u8)
        .collect();
    let file = tmp.path().join("song.mp3");
    std::fs::write(&file, &bytes).unwrap();
    let add = |path: &Path| -> String {
        node_lite_ok(
            &seeder_dir,
            &["add", path.to_str().unwrap(), "--chunk-size", "16KiB"],
        )
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
    };
    let content = add(&file);
    let other_file = tmp.path().join("other.bin");
    std::fs::write(&other_file, &bytes[..20000]).unwrap();
    let other = add(&other_file);
    let seeder = Seeder::start(&seeder_dir, &[]).unwrap();
    let gateway = Seeder::gateway(&tmp.path().join("gateway"), &["--peer", &seeder.url]).unwrap();

    // Same origin: the page is the gateway's; the gateway fetches from the seeder.
    let url = format!("{}content/{content}", gateway.url);
    let (start, end) = (16000usize, 33000usize);
    let seen = fetch_in_page(
        &format!("{}health", gateway.url),
        &[format!("{url} bytes={start}-{end}"), format!("{url} -")],
    );
    assert_eq!(seen[0]["status"], 206, "{:?}", seen[0]);
    assert_eq!(
        seen[0]["contentRange"],
        format!("bytes {start}-{end}/{}", bytes.len())
    );
    assert_eq!(seen[0]["contentType"], "audio/mpeg");
    assert_eq!(seen[0]["hex"], hex::encode(&bytes[start..=end]));
    assert_eq!(seen[1]["status"], 200);
    assert_eq!(seen[1]["hex"], hex::encode(&bytes));

    // A page of another origin (the seeder's, same site) may not use a loopback gateway:
    // not for what it holds, not to make it fetch.
    let seen = fetch_in_page(
        &format!("{}health", seeder.url),
        &[
            format!("{url} bytes=-10"),
            format!("{}content/{other} bytes=0-9", gateway.url),
        ],
    );
    for answer in &seen {
        assert_eq!(answer["status"], 403, "{answer:?}");
    }

    // A public gateway (`--clients anyone`): CORS lets any page read a range and see its
    // Content-Range.
    let public = Seeder::gateway(
        &tmp.path().join("public"),
        &["--peer", &seeder.url, "--clients", "anyone"],
    )
    .unwrap();
    let seen = fetch_in_page(
        &format!("{}health", seeder.url),
        &[format!("{}content/{content} bytes=-10", public.url)],
    );
    assert_eq!(seen[0]["status"], 206, "{:?}", seen[0]);
    assert_eq!(
        seen[0]["contentRange"],
        format!(
            "bytes {}-{}/{}",
            bytes.len() - 10,
            bytes.len() - 1,
            bytes.len()
        )
    );
    assert_eq!(seen[0]["hex"], hex::encode(&bytes[bytes.len() - 10..]));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_shows_earnings_reputation_receipts_and_limits() {
    let Some(()) = browser_only() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let oracle = dsi_tests::OracleProcess::start(&tmp.path().join("oracle"), &[]).unwrap();
    let seeder_dir = tmp.path().join("seeder");
    dsi_tests::init_node(&seeder_dir, |config| {
        config.tracker.announce_interval_secs = 1;
        config.tracker.forward_interval_secs = 1;
        config.storage.max_bytes = 64 << 20;
        config.serve.max_egress_per_day = 10 << 30;
    });
    let file = tmp.path().join("film.mp4");
    dsi_tests::random_file(&file, 600_000);
    let content = node_lite_ok(&seeder_dir, &["add", file.to_str().unwrap()])
        .trim()
        .to_string();
    let seeder = Seeder::start(
        &seeder_dir,
        &[
            "--tracker",
            &oracle.url,
            "--payout",
            "0x0101010101010101010101010101010101010101",
        ],
    )
    .unwrap();
    let client = oracle.client.clone();
    let content_id: dsi_protocol::ContentId = content.parse().unwrap();
    poll("the seeder announced", async || {
        let answer = client.peers(&content_id).await.ok()?;
        (!answer.peers.is_empty()).then_some(())
    })
    .await;
    // A downloader with credit fetches the content; the seeder forwards its receipts; the
    // epoch closes: the seeder has a leaf.
    let downloader = tmp.path().join("downloader");
    node_lite_ok(&downloader, &["init"]);
    let key = node_lite::DataDir::new(&downloader).key().unwrap();
    client
        .add_credit(
            &oracle.admin_token(),
            &dsi_api::oracle::CreditRequest {
                downloader: key.node_id(),
                amount: 1_000_000_000_000,
            },
        )
        .await
        .unwrap();
    let out = tmp.path().join("out.mp4");
    node_lite_ok(
        &downloader,
        &[
            "get",
            &content,
            "--tracker",
            &oracle.url,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let epoch = client.current_epoch().await.unwrap().epoch;
    poll("receipts forwarded", async || {
        let info = client.epoch(epoch).await.ok()?;
        (info.receipts() == 3).then_some(())
    })
    .await;
    client
        .close(&oracle.admin_token(), Some(epoch))
        .await
        .unwrap();

    // The terminal and the page say the same.
    let status: Value = serde_json::from_str(&node_lite_ok(
        &seeder_dir,
        &["status", "--json", "--tracker", &oracle.url],
    ))
    .unwrap();
    let earned = status["oracle"]["cumulative"].as_str().unwrap().to_string();
    assert_ne!(earned, "0", "{status}");
    assert_eq!(status["oracle"]["epochs"].as_array().unwrap().len(), 1);
    assert_eq!(status["storage"]["max_bytes"], 64 << 20);
    let text = node_lite_ok(&seeder_dir, &["status", "--tracker", &oracle.url]);
    assert!(text.contains(&earned) && text.contains("epoch "), "{text}");

    let screenshot = std::env::var("DSI_DASHBOARD_SCREENSHOT").ok();
    let mut args = vec![
        root()
            .join("vector-web/test/dashboard.mjs")
            .display()
            .to_string(),
        format!("{}dashboard", seeder.url),
    ];
    args.extend(screenshot);
    let output = Command::new("node").args(&args).output().unwrap();
    assert!(
        output.status.success(),
        "dashboard driver failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let page: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(page["error"], "", "{page}");
    assert_eq!(
        page["failed"],
        serde_json::json!([]),
        "no external or failed requests"
    );
    assert_eq!(page["node"], status["node_id"]);
    assert_eq!(page["cumulative"], earned);
    assert_eq!(page["epochRows"], 1);
    assert!(page["standing"].as_str().unwrap().len() > 2, "{page}");
    assert_eq!(page["availability"], "active", "{page}");
    assert!(
        page["openEpoch"]
            .as_str()
            .unwrap()
            .starts_with("open epoch "),
        "{page}"
    );
    assert!(status["oracle"]["open_epoch"]["epoch"].is_u64(), "{status}");
    // No chain here: the closed epoch's leaf waits (never submitted), nothing is claimable
    // and the claimed amount is unknown.
    assert_eq!(
        page["claims"],
        format!("claimed unknown (no chain) · claimable now 0 · waiting {earned}"),
        "{page}"
    );
    assert_eq!(status["oracle"]["availability"]["state"], "active");
    assert!(
        page["storage"].as_str().unwrap().contains("of 64.0 MiB"),
        "{page}"
    );
    assert!(
        page["bandwidth"].as_str().unwrap().contains("of 10.0 GiB"),
        "{page}"
    );

    // Another site's page may not read it.
    let refused = reqwest::Client::new()
        .get(format!("{}dashboard/status.json", seeder.url))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
}
