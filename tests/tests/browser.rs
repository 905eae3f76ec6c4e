//! The vector search page in real headless Chromium: a seeder built an index and serves it
//! with the page (`node-lite serve --web`); the page loads the index by content id, queries,
//! pages through results, reloads, and must fetch no page twice.
//!
//! Needs `scripts/build-web` (the page), Debian's `chromium` and `playwright-core` in
//! vector-web/test (`scripts/setup --browser`). Without them the test says so and passes,
//! unless DSI_REQUIRE_BROWSER=1 (as `scripts/test` sets), when it fails.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use dsi_tests::{Seeder, node_lite_ok};
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

#[tokio::test(flavor = "multi_thread")]
async fn the_page_queries_pages_through_and_reloads_from_its_cache() {
    let web = std::env::var_os("DSI_WEB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/vector-web/www"));
    let missing = missing_tools(&web);
    if !missing.is_empty() {
        let message = format!("browser test needs: {}", missing.join(", "));
        if std::env::var("DSI_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!("{message}");
        }
        eprintln!("skipped: {message}");
        return;
    }

    let tmp = tempfile::tempdir().unwrap();
    let seeder_dir = tmp.path().join("seeder");
    node_lite_ok(&seeder_dir, &["init"]);
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
    let seeder = Seeder::start(&seeder_dir, &["--web", web.to_str().unwrap()]).unwrap();

    let row = 77;
    let query: String = data[row * DIM..(row + 1) * DIM]
        .iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let output = Command::new("node")
        .arg(root().join("vector-web/test/drive.mjs"))
        .args([&seeder.url, &index, &query, "5", "3", "3"])
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
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "driver output ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    let first = &report["first"];
    assert_eq!(first["error"], "", "{report}");
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
    let mut cursor: Option<String> = None;
    for (i, page) in pages.iter().enumerate() {
        let mut args = vec![
            "vectors", "query", "--json", &index, "--vector", &query, "-k", "5", "--nprobe", "3",
        ];
        if let Some(c) = &cursor {
            args.extend(["--cursor", c.as_str()]);
        }
        let cli: Value = serde_json::from_str(&node_lite_ok(&seeder_dir, &args)).unwrap();
        let cli_ids: Vec<u64> = cli["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_u64().unwrap())
            .collect();
        assert_eq!(&cli_ids, page, "page {i}");
        cursor = cli["next_cursor"].as_str().map(str::to_string);
    }

    // Only the pages the query needed were fetched, each once, and all were paid for.
    let requested: Vec<String> = first["requested"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
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
