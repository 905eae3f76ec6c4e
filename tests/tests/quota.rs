//! The disk quota (`storage.max_bytes`) with real `node-lite` processes: `add` past the
//! quota evicts the least recently used unpinned content (whole: manifest and chunks),
//! never a pinned one; a file that cannot fit stores nothing and evicts nothing; a gateway
//! streams a content larger than its quota, keeping only what fits. (The order among
//! funded contents, by reward per byte, is `node-lite/src/quota.rs`
//! `the_least_valuable_go_first_and_pinned_never`.)

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::time::Duration;

use dsi_tests::{Seeder, node_lite, node_lite_ok};

const KIB: usize = 1024;

/// Bytes of chunk files in the store at `dir`.
fn stored_bytes(dir: &Path) -> u64 {
    node_lite::store::ChunkStore::open(dir)
        .unwrap()
        .usage()
        .unwrap()
}

fn listed(dir: &Path) -> Vec<String> {
    let list: serde_json::Value =
        serde_json::from_str(&node_lite_ok(dir, &["list", "--json"])).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

/// `node-lite add` of `len` random bytes named `name`: the output.
fn add(dir: &Path, name: &str, len: usize, seed: u64) -> std::process::Output {
    let file = dir.with_extension(name);
    std::fs::write(&file, dsi_tests::seeded_bytes(len, seed)).unwrap();
    // Distinct last-use times, in the order of the adds.
    std::thread::sleep(Duration::from_millis(20));
    node_lite(
        dir,
        &[
            "add",
            file.to_str().unwrap(),
            "--chunk-size",
            "16KiB",
            "--name",
            name,
        ],
    )
}

fn content_id(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn adding_past_the_quota_evicts_the_least_recently_used_unpinned_content() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    dsi_tests::init_node(&dir, |config| {
        config.storage.max_bytes = 100 * KIB as u64;
    });
    let a = add(&dir, "a.bin", 40 * KIB, 1);
    content_id(&a);
    let b = content_id(&add(&dir, "b.bin", 40 * KIB, 2));
    assert!(node_lite_ok(&dir, &["pin", &b]).contains("pinned"));
    assert_eq!(stored_bytes(&dir), 80 * KIB as u64);

    // c does not fit beside a and b: a (older, unpinned) goes, whole.
    let c = add(&dir, "c.bin", 40 * KIB, 3);
    content_id(&c);
    assert!(
        String::from_utf8_lossy(&c.stderr).contains("evicted"),
        "{}",
        String::from_utf8_lossy(&c.stderr)
    );
    assert_eq!(listed(&dir), vec!["b.bin", "c.bin"]);
    assert_eq!(stored_bytes(&dir), 80 * KIB as u64);

    // Larger than the whole quota: refused, nothing stored, nothing evicted.
    let huge = add(&dir, "huge.bin", 200 * KIB, 4);
    assert_eq!(huge.status.code(), Some(2));
    let error = String::from_utf8_lossy(&huge.stderr);
    assert!(
        error.contains("storage.max_bytes") && error.contains("larger than the whole quota"),
        "{error}"
    );
    // Fits the quota but not beside the pinned b even with c evicted: refused, and c is
    // not evicted for nothing.
    let big = add(&dir, "big.bin", 90 * KIB, 5);
    assert_eq!(big.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&big.stderr).contains("unpin"),
        "{}",
        String::from_utf8_lossy(&big.stderr)
    );
    assert_eq!(listed(&dir), vec!["b.bin", "c.bin"]);
    assert_eq!(stored_bytes(&dir), 80 * KIB as u64);

    // Unpinned, b (older than c) goes first, then c.
    node_lite_ok(&dir, &["unpin", &b]);
    content_id(&add(&dir, "big.bin", 90 * KIB, 5));
    assert_eq!(listed(&dir), vec!["big.bin"]);
    assert_eq!(stored_bytes(&dir), 90 * KIB as u64);
    // Pinning content that is not here is an error.
    let missing = node_lite(&dir, &["pin", &b]);
    assert_eq!(missing.status.code(), Some(3));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_streams_a_content_larger_than_its_quota() {
    let tmp = tempfile::tempdir().unwrap();
    let seeder_dir = tmp.path().join("seeder");
    node_lite_ok(&seeder_dir, &["init"]);
    let bytes = dsi_tests::seeded_bytes(512 * KIB, 6);
    let file = tmp.path().join("long.bin");
    std::fs::write(&file, &bytes).unwrap();
    let content = node_lite_ok(
        &seeder_dir,
        &["add", file.to_str().unwrap(), "--chunk-size", "16KiB"],
    )
    .trim()
    .to_string();
    let seeder = Seeder::start(&seeder_dir, &[]).unwrap();
    let gateway_dir = tmp.path().join("gateway");
    dsi_tests::init_node(&gateway_dir, |config| {
        config.storage.max_bytes = 128 * KIB as u64;
        config.gateway.window_chunks = 2;
    });
    let gateway = Seeder::gateway(&gateway_dir, &["--peer", &seeder.url]).unwrap();
    let body = reqwest::get(format!("{}content/{content}", gateway.url))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(body[..] == bytes[..], "the whole content, right bytes");
    assert_eq!(
        gateway
            .metric("dsi_node_gateway_fetched_chunks_total")
            .await
            .unwrap(),
        32
    );
    let kept = stored_bytes(&gateway_dir);
    assert!(
        kept <= 128 * KIB as u64 && kept > 0,
        "the gateway keeps {kept} bytes under a 128 KiB quota"
    );
    // A range smaller than the quota is served, kept, and served again without a fetch.
    let tail = reqwest::Client::new()
        .get(format!("{}content/{content}", gateway.url))
        .header("range", "bytes=-20000")
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 206);
    assert!(tail.bytes().await.unwrap()[..] == bytes[bytes.len() - 20000..]);
}

#[test]
fn a_vector_indexs_pages_are_not_taken_for_unreferenced_chunks() {
    // An index's pages are chunks its content manifest does not list (the index manifest
    // names them): eviction must count them as the index's, not as leftovers.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    dsi_tests::init_node(&dir, |config| {
        config.storage.max_bytes = 2 << 20;
    });
    let dim = 16;
    let mut rng = vector_store::SplitMix64::new(3);
    let data: Vec<f32> = (0..4000 * dim).map(|_| rng.normal()).collect();
    let npy = tmp.path().join("v.npy");
    std::fs::write(&npy, vector_store::input::to_npy(dim, &data)).unwrap();
    let index = node_lite_ok(
        &dir,
        &[
            "vectors",
            "build",
            npy.to_str().unwrap(),
            "--metric",
            "l2",
            "--lists",
            "16",
        ],
    )
    .trim()
    .to_string();
    node_lite_ok(&dir, &["pin", &index]);
    let query: Vec<String> = data[..dim].iter().map(|x| x.to_string()).collect();
    let query = query.join(",");
    let before = node_lite_ok(&dir, &["vectors", "query", &index, "--vector", &query]);
    // Fill the rest of the quota twice over: unpinned files evict each other, the pinned
    // index keeps every page.
    let room = (2 << 20) - stored_bytes(&dir) as usize;
    for seed in 0..4 {
        content_id(&add(&dir, &format!("f{seed}.bin"), room * 3 / 4, 10 + seed));
        assert!(stored_bytes(&dir) <= 2 << 20);
    }
    let after = node_lite_ok(&dir, &["vectors", "query", &index, "--vector", &query]);
    assert_eq!(before, after, "the index still answers from its own pages");
}
