//! End to end with real `node-lite` processes on loopback.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashSet;
use std::path::Path;

use dsi_protocol::{ChunkId, NodeId};
use dsi_tests::{Seeder, node_lite, node_lite_ok, peer, random_file, sha256_of};
use serde_json::Value;

const MIB: usize = 1 << 20;
const CHUNK: usize = 256 * 1024;

fn node_id(dir: &Path) -> NodeId {
    node_lite_ok(dir, &["id"]).trim().parse().expect("node id")
}

/// Chunk ids of a file cut in default-sized chunks.
fn chunk_ids(file: &Path) -> Vec<ChunkId> {
    std::fs::read(file)
        .unwrap()
        .chunks(CHUNK)
        .map(ChunkId::of)
        .collect()
}

fn chunk_path(data_dir: &Path, id: &ChunkId) -> std::path::PathBuf {
    let hex = id.to_string();
    data_dir.join("chunks").join(&hex[..2]).join(hex)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_seeder_is_dropped_and_receipts_match_what_was_served() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("data.bin");
    let sha = random_file(&file, 64 * MIB);
    let file_arg = file.to_str().unwrap();
    let (honest_dir, corrupt_dir, downloader_dir) = (
        tmp.path().join("honest"),
        tmp.path().join("corrupt"),
        tmp.path().join("downloader"),
    );
    for dir in [&honest_dir, &corrupt_dir, &downloader_dir] {
        node_lite_ok(dir, &["init"]);
    }
    let content = node_lite_ok(&honest_dir, &["add", file_arg])
        .trim()
        .to_string();
    assert_eq!(
        node_lite_ok(&corrupt_dir, &["add", file_arg]).trim(),
        content
    );

    // The corrupt seeder's disk rots under some chunks, and it serves without checking.
    let ids = chunk_ids(&file);
    assert_eq!(ids.len(), 256);
    let corrupted: HashSet<ChunkId> = [3, 50, 100, 150, 200, 255]
        .iter()
        .map(|i| ids[*i])
        .collect();
    for id in &corrupted {
        let path = chunk_path(&corrupt_dir, id);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[1000] ^= 0x5a;
        std::fs::write(&path, bytes).unwrap();
    }
    let honest = Seeder::start(&honest_dir, &[]).unwrap();
    let corrupt = Seeder::start(&corrupt_dir, &["--verify", "never"]).unwrap();

    let out = tmp.path().join("out.bin");
    let stdout = node_lite_ok(
        &downloader_dir,
        &[
            "get",
            &content,
            "--peer",
            &corrupt.url,
            "--peer",
            &honest.url,
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();

    // Byte-identical output, and the reported hash is the file's.
    assert_eq!(sha256_of(&out), sha);
    assert_eq!(report["sha256"], sha);
    assert_eq!(report["chunks_fetched"], 256);

    // The bad peer was dropped for bad bytes.
    let bad = peer(&report, &corrupt.url);
    assert!(
        bad["dropped"].as_str().unwrap_or("").contains("bad bytes"),
        "{bad}"
    );
    let good = peer(&report, &honest.url);
    assert!(good["dropped"].is_null(), "{good}");

    // Every seeder holds valid signed receipts, addressed to it, from this downloader, for
    // exactly the chunks it served correctly.
    let downloader = node_id(&downloader_dir);
    let honest_receipts = honest.receipts();
    let corrupt_receipts = corrupt.receipts();
    for (seeder, receipts) in [(&honest, &honest_receipts), (&corrupt, &corrupt_receipts)] {
        let me = node_id(&seeder.data_dir);
        let chunks: HashSet<ChunkId> = receipts.iter().map(|r| r.receipt.chunk).collect();
        assert_eq!(chunks.len(), receipts.len(), "one receipt per chunk");
        for r in receipts.iter() {
            assert_eq!(r.receipt.seeder, me);
            assert_eq!(r.receipt.downloader, downloader);
            assert_eq!(r.receipt.bytes as usize, CHUNK);
            assert!(ids.contains(&r.receipt.chunk));
        }
        assert_eq!(
            seeder.metric("dsi_node_receipts_held").await.unwrap(),
            receipts.len() as u64
        );
        assert_eq!(
            peer(&report, &seeder.url)["receipts_accepted"],
            receipts.len() as u64
        );
    }
    let honest_served = honest.metric("dsi_node_chunks_served_total").await.unwrap();
    assert_eq!(
        honest_receipts.len() as u64,
        honest_served,
        "the honest seeder is paid for every chunk it served"
    );
    assert!(
        corrupt_receipts
            .iter()
            .all(|r| !corrupted.contains(&r.receipt.chunk)),
        "no receipt for bad bytes"
    );
    assert!(
        (corrupt_receipts.len() as u64)
            < corrupt
                .metric("dsi_node_chunks_served_total")
                .await
                .unwrap()
    );
    let paid: HashSet<ChunkId> = honest_receipts
        .iter()
        .chain(&corrupt_receipts)
        .map(|r| r.receipt.chunk)
        .collect();
    assert_eq!(paid.len(), 256, "every chunk was paid for by someone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_survive_a_killed_seeder_and_a_killed_downloader() {
    // Over HTTP: seeders named by their URLs (`tests/tests/iroh.rs` runs the same over iroh).
    let tmp = tempfile::tempdir().unwrap();
    dsi_tests::downloads_survive_killed_peers(
        tmp.path(),
        |_| {},
        |seeder| seeder.url.clone(),
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_rot_and_repair_refetches_it() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("data.bin");
    random_file(&file, 3 * MIB);
    let (good_dir, rotten_dir) = (tmp.path().join("good"), tmp.path().join("rotten"));
    node_lite_ok(&good_dir, &["init"]);
    node_lite_ok(&rotten_dir, &["init"]);
    node_lite_ok(&good_dir, &["add", file.to_str().unwrap()]);
    node_lite_ok(&rotten_dir, &["add", file.to_str().unwrap()]);
    let bad = chunk_ids(&file)[5];
    std::fs::write(chunk_path(&rotten_dir, &bad), b"bit rot").unwrap();
    assert!(node_lite_ok(&good_dir, &["verify"]).contains("checked 12 chunks"));

    let found = node_lite(&rotten_dir, &["verify"]);
    assert_eq!(
        found.status.code(),
        Some(4),
        "corruption is an integrity failure"
    );
    let text = String::from_utf8_lossy(&found.stdout);
    assert!(text.contains(&format!("corrupt {bad}")), "{text}");
    assert!(
        String::from_utf8_lossy(&found.stderr).contains("--repair"),
        "the error says how to fix it"
    );

    let good = Seeder::start(&good_dir, &[]).unwrap();
    node_lite_ok(&rotten_dir, &["verify", "--repair", "--peer", &good.url]);
    let clean = node_lite_ok(&rotten_dir, &["verify", "--json"]);
    let clean: Value = serde_json::from_str(&clean).unwrap();
    assert_eq!(clean["corrupt"], serde_json::json!([]));
    assert_eq!(clean["missing"], serde_json::json!([]));
    assert_eq!(
        good.receipts().len(),
        1,
        "the repair paid for the chunk it fetched"
    );
}

#[test]
fn bad_input_gets_a_clear_error_and_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let uninitialized = node_lite(&tmp.path().join("nothing-here"), &["add", "x"]);
    assert_eq!(uninitialized.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&uninitialized.stderr).contains("node-lite --data-dir"));

    node_lite_ok(&dir, &["init"]);
    let cases: [(&[&str], i32, &str); 6] = [
        (&["add", "/no/such/file"], 3, "cannot read /no/such/file"),
        (
            &["add", "/etc/hostname", "--chunk-size", "1000"],
            2,
            "power of two",
        ),
        (
            &["get", "abc", "--peer", "http://127.0.0.1:1", "--out", "x"],
            2,
            "bad content id",
        ),
        (
            &[
                "get",
                &"0".repeat(64),
                "--peer",
                "localhost:1",
                "--out",
                "x",
            ],
            2,
            "malformed peer URL",
        ),
        (
            &[
                "get",
                &"0".repeat(64),
                "--peer",
                "http://127.0.0.1:1",
                "--out",
                "x",
            ],
            5,
            "no usable peer",
        ),
        (&["serve", "--listen", "256.0.0.1:1"], 2, "invalid value"),
    ];
    for (args, code, message) in cases {
        let output = node_lite(&dir, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }

    // Unknown content on a live peer, and a key others can read.
    let seeder = Seeder::start(&tmp.path().join("seeder"), &[]).unwrap();
    let unknown = node_lite(
        &dir,
        &["get", &"0".repeat(64), "--peer", &seeder.url, "--out", "x"],
    );
    assert_eq!(
        unknown.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown content id"));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("node.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let exposed = node_lite(&dir, &["id"]);
    assert_eq!(exposed.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&exposed.stderr).contains("chmod 600"));
}
