//! The HTTP gateway (`GET /content/{id}`) end to end: real `node-lite serve` and
//! `node-lite gateway` processes on loopback, read with `curl`.
//!
//! - every kind of range of a file of odd size (first byte, last byte, across chunk edges,
//!   suffixes, past the end) equals the file's bytes, through a gateway that holds nothing
//!   and fetches from a seeder, and through the seeder itself; the seeder is paid a receipt
//!   for every chunk the gateway fetched;
//! - a seek into the middle of a 64 MiB content fetches only the chunks it reads, and a
//!   whole-content answer starts before the gateway has fetched the content;
//! - a browser's cross-site request, or a client beyond loopback, never makes the gateway
//!   fetch (it would spend the operator's credit on an attacker's content).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use dsi_protocol::NodeId;
use dsi_tests::{Seeder, node_lite_ok};

const CHUNK: usize = 16 * 1024;

/// An answer read with curl: status, headers (lower-case names), body.
struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// `curl` with `args` (and `-sS -D`) on `url`.
fn curl(url: &str, args: &[&str]) -> Answer {
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("head");
    let body = dir.path().join("body");
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "curl {args:?} {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let head = std::fs::read_to_string(&head).unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

/// Adds `bytes` as `name` to the node at `dir` (chunks of `chunk_size`); its content id.
fn add(dir: &Path, bytes: &[u8], name: &str, chunk_size: &str) -> String {
    node_lite_ok(dir, &["init"]);
    let file = dir.with_extension(name);
    std::fs::write(&file, bytes).unwrap();
    node_lite_ok(
        dir,
        &[
            "add",
            file.to_str().unwrap(),
            "--chunk-size",
            chunk_size,
            "--name",
            name,
        ],
    )
    .split_whitespace()
    .next()
    .unwrap()
    .to_string()
}

fn chunk_files(dir: &Path) -> usize {
    walk(&dir.join("chunks"))
}

fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| {
                if e.path().is_dir() {
                    walk(&e.path())
                } else {
                    usize::from(!e.file_name().to_string_lossy().starts_with('.'))
                }
            })
            .sum()
    })
}

fn node_id(dir: &Path) -> NodeId {
    node_lite_ok(dir, &["id"]).trim().parse().unwrap()
}

/// Checks one range against the file: 206, the bytes, `Content-Range`.
fn check_range(base: &str, file: &[u8], range: &str, start: usize, end: usize) {
    let answer = curl(base, &["-H", &format!("Range: bytes={range}")]);
    assert_eq!(answer.status, 206, "range {range}");
    assert_eq!(
        answer.headers["content-range"],
        format!("bytes {start}-{end}/{}", file.len()),
        "range {range}"
    );
    assert!(
        answer.body == file[start..=end],
        "range {range}: wrong bytes"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_range_of_an_odd_sized_file_streams_through_curl() {
    let tmp = tempfile::tempdir().unwrap();
    let seeder_dir = tmp.path().join("seeder");
    // Five whole chunks and 77 bytes.
    let file = dsi_tests::seeded_bytes(5 * CHUNK + 77, 1);
    let content = add(&seeder_dir, &file, "clip.mp4", "16KiB");
    let other = add(
        &seeder_dir,
        &dsi_tests::seeded_bytes(3 * CHUNK, 2),
        "other.bin",
        "16KiB",
    );
    let seeder = Seeder::start(&seeder_dir, &[]).unwrap();
    let gateway_dir = tmp.path().join("gateway");
    let gateway = Seeder::gateway(&gateway_dir, &["--peer", &seeder.url]).unwrap();
    let size = file.len();
    let last = size - 1;
    let c = CHUNK;
    // (range, first byte, last byte)
    let ranges: Vec<(String, usize, usize)> = vec![
        ("0-0".into(), 0, 0),
        (format!("{last}-{last}"), last, last),
        ("-1".into(), last, last),
        (format!("{}-{}", c - 1, c), c - 1, c),
        (format!("{}-{}", c - 4, 2 * c + 2), c - 4, 2 * c + 2),
        (format!("{}-", 4 * c + 5), 4 * c + 5, last),
        ("-100".into(), size - 100, last),
        (format!("{}-99999999", 3 * c), 3 * c, last),
        (format!("1-{}", last - 1), 1, last - 1),
        (format!("{}-{}", 5 * c, 5 * c + 76), 5 * c, last),
        ("0-".into(), 0, last),
    ];
    let url = format!("{}content/{content}", gateway.url);
    for (range, start, end) in &ranges {
        check_range(&url, &file, range, *start, *end);
    }
    // The gateway fetched every chunk once, kept it, and paid the seeder a receipt each.
    assert_eq!(chunk_files(&gateway_dir), 6);
    assert_eq!(
        gateway
            .metric("dsi_node_gateway_fetched_chunks_total")
            .await
            .unwrap(),
        6
    );
    let downloader = node_id(&gateway_dir);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let paid = seeder
            .receipts()
            .iter()
            .filter(|r| r.receipt.downloader == downloader)
            .count();
        if paid == 6 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{paid} of 6 receipts reached the seeder"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Past the end: 416 with the size, as JSON.
    for range in [
        format!("{size}-"),
        format!("{}-{}", size + 10, size + 20),
        "-0".into(),
    ] {
        let answer = curl(&url, &["-H", &format!("Range: bytes={range}")]);
        assert_eq!(answer.status, 416, "range {range}");
        assert_eq!(answer.headers["content-range"], format!("bytes */{size}"));
        let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(body["code"], "range_not_satisfiable");
    }

    // Whole, named, HEAD, conditional.
    let whole = curl(&url, &[]);
    assert_eq!(whole.status, 200);
    assert!(whole.body == file);
    assert_eq!(whole.headers["content-type"], "video/mp4");
    assert_eq!(whole.headers["etag"], format!("\"{content}\""));
    assert_eq!(whole.headers["accept-ranges"], "bytes");
    assert!(whole.headers["cache-control"].contains("immutable"));
    assert_eq!(whole.headers["content-security-policy"], "sandbox");
    let named = curl(&format!("{url}/clip.mp4"), &["-r", "10-19"]);
    assert_eq!(named.status, 206);
    assert!(named.body == file[10..20]);
    let wrong = curl(&format!("{url}/other.mp4"), &[]);
    assert_eq!(wrong.status, 404);
    assert!(String::from_utf8_lossy(&wrong.body).contains("clip.mp4"));
    let head = curl(&url, &["-I"]);
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["content-length"], size.to_string());
    // With -I curl writes the headers as the output too: nothing else came.
    let text = String::from_utf8(head.body).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("\r\n\r\n"),
        "{text}"
    );
    let cached = curl(&url, &["-H", &format!("If-None-Match: \"{content}\"")]);
    assert_eq!(cached.status, 304);
    assert!(cached.body.is_empty());
    let bad = curl(&format!("{}content/not-an-id", gateway.url), &[]);
    assert_eq!(bad.status, 400);
    assert!(String::from_utf8_lossy(&bad.body).contains("bad_content_id"));

    // The seeder answers the same routes for what it holds.
    let direct = format!("{}content/{content}", seeder.url);
    for (range, start, end) in &ranges[..5] {
        check_range(&direct, &file, range, *start, *end);
    }

    // A loopback gateway serves programs on its machine, not web pages of other sites
    // (they would spend this node's credit on whatever content they name, or probe what
    // it holds), nor a page whose name was rebound to 127.0.0.1.
    let served = seeder.metric("dsi_node_chunks_served_total").await.unwrap();
    let other_url = format!("{}content/{other}", gateway.url);
    for headers in [
        ["-H", "Sec-Fetch-Site: cross-site"],
        ["-H", "Sec-Fetch-Site: same-site"],
        ["-H", "Origin: https://evil.example"],
        ["-H", "Referer: https://evil.example/page"],
        ["-H", "Host: evil.example:7080"],
    ] {
        for url in [&other_url, &url] {
            let refused = curl(url, &headers);
            assert_eq!(refused.status, 403, "{headers:?} {url}");
            let body: serde_json::Value = serde_json::from_slice(&refused.body).unwrap();
            assert_eq!(body["code"], "client_refused");
        }
    }
    assert_eq!(
        seeder.metric("dsi_node_chunks_served_total").await.unwrap(),
        served,
        "the seeder served nothing for the refused requests"
    );
    // The gateway's own pages may.
    let own = curl(&url, &["-H", "Sec-Fetch-Site: same-origin", "-r", "0-9"]);
    assert_eq!(own.status, 206);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_beyond_loopback_is_refused_by_the_gateway_and_the_seeder() {
    // The gateway and the seeder listen on a non-loopback address of this machine (when it
    // has one); a request to it comes from that address. Neither gives content away:
    // beyond loopback a seeder serves chunks against receipts only (/v1/chunks).
    let Some(address) = local_non_loopback() else {
        eprintln!("skipped: this machine has no non-loopback IPv4 address");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let seeder_dir = tmp.path().join("seeder");
    let file = dsi_tests::seeded_bytes(2 * CHUNK, 3);
    let content = add(&seeder_dir, &file, "a.bin", "16KiB");
    let seeder = Seeder::start(&seeder_dir, &["--listen", &format!("{address}:0")]).unwrap();
    let gateway = Seeder::gateway(
        &tmp.path().join("gateway"),
        &["--listen", &format!("{address}:0"), "--peer", &seeder.url],
    )
    .unwrap();
    for url in [&gateway.url, &seeder.url] {
        let refused = curl(&format!("{url}content/{content}"), &[]);
        assert_eq!(refused.status, 403, "{url}");
        assert!(
            String::from_utf8_lossy(&refused.body).contains("gateway.clients"),
            "{url}"
        );
    }
    assert_eq!(
        seeder.metric("dsi_node_chunks_served_total").await.unwrap(),
        0
    );
}

/// A non-loopback IPv4 address of this machine, if it has one.
fn local_non_loopback() -> Option<std::net::IpAddr> {
    // The source address the kernel picks to reach a public address (nothing is sent).
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seek_into_64_mib_fetches_only_the_chunks_it_reads() {
    const MIB: usize = 1 << 20;
    const BIG_CHUNK: usize = 256 * 1024;
    let tmp = tempfile::tempdir().unwrap();
    let seeder_dir = tmp.path().join("seeder");
    let file = dsi_tests::seeded_bytes(64 * MIB, 4);
    let content = add(&seeder_dir, &file, "movie.mp4", "256KiB");
    let seeder = Seeder::start(&seeder_dir, &[]).unwrap();
    let gateway_dir = tmp.path().join("gateway");
    let gateway = Seeder::gateway(&gateway_dir, &["--peer", &seeder.url]).unwrap();
    let url = format!("{}content/{content}", gateway.url);
    let served = || async { seeder.metric("dsi_node_chunks_served_total").await.unwrap() };

    // 100 bytes in the middle: one chunk.
    let middle = 32 * MIB;
    check_range(
        &url,
        &file,
        &format!("{middle}-{}", middle + 99),
        middle,
        middle + 99,
    );
    assert_eq!(
        served().await,
        1,
        "one chunk fetched for a seek into one chunk"
    );
    assert_eq!(chunk_files(&gateway_dir), 1);
    // 20 bytes across a chunk edge: two more.
    let edge = 40 * BIG_CHUNK;
    check_range(
        &url,
        &file,
        &format!("{}-{}", edge - 10, edge + 9),
        edge - 10,
        edge + 9,
    );
    assert_eq!(served().await, 3);
    assert_eq!(chunk_files(&gateway_dir), 3);
    // The same range again: nothing more.
    check_range(
        &url,
        &file,
        &format!("{}-{}", edge - 10, edge + 9),
        edge - 10,
        edge + 9,
    );
    assert_eq!(served().await, 3);

    // The whole content: the first bytes arrive while most of it is still unfetched (the
    // gateway fetches a window at a time, as the client reads).
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut response = response;
    let first = response.chunk().await.unwrap().unwrap();
    assert!(first[..] == file[..first.len()]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fetched = served().await;
    eprintln!("chunks served after the first piece of the whole content: {fetched}");
    assert!(
        fetched < 3 + 128,
        "{fetched} chunks served while the client read one piece of 256: not streaming"
    );
    drop(response);
}

#[tokio::test(flavor = "multi_thread")]
async fn past_its_concurrent_fetches_the_gateway_answers_busy_with_retry_after() {
    let tmp = tempfile::tempdir().unwrap();
    let seeder_dir = tmp.path().join("seeder");
    let slow = add(
        &seeder_dir,
        &dsi_tests::seeded_bytes(64 * CHUNK, 5),
        "slow.bin",
        "16KiB",
    );
    let other = add(
        &seeder_dir,
        &dsi_tests::seeded_bytes(2 * CHUNK, 6),
        "other.bin",
        "16KiB",
    );
    // 64 KiB/s: the first answer keeps fetching (and holds its permit) for seconds.
    let seeder = Seeder::start(&seeder_dir, &["--max-upload-rate", "64KiB"]).unwrap();
    let gateway_dir = tmp.path().join("gateway");
    dsi_tests::init_node(&gateway_dir, |config| {
        config.gateway.max_concurrent_fetches = 1;
        // 256 KiB per window: 4 s each, with a gap of a moment between them.
        config.gateway.window_chunks = 16;
    });
    let gateway = Seeder::gateway(&gateway_dir, &["--peer", &seeder.url]).unwrap();
    let holding = reqwest::get(format!("{}content/{slow}", gateway.url))
        .await
        .unwrap();
    assert_eq!(holding.status(), 200);
    // Well inside the second window (the first one came with the headers).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let url = format!("{}content/{other}", gateway.url);
    let busy = curl(&url, &["-r", "0-9"]);
    assert_eq!(busy.status, 503);
    assert_eq!(busy.headers["retry-after"], "1");
    let body: serde_json::Value = serde_json::from_slice(&busy.body).unwrap();
    assert_eq!(body["code"], "gateway_busy");
    // The client goes away: its permit comes back.
    drop(holding);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = curl(&url, &["-r", "0-9"]);
        if answer.status == 206 {
            break;
        }
        assert_eq!(answer.status, 503);
        assert!(Instant::now() < deadline, "the permit never came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_that_gives_a_chunk_two_lengths_is_refused_not_served_shifted() {
    // A seeder's manifest names one 100-byte chunk X twice: as the last chunk (100 bytes,
    // right) and as the first (16 KiB, wrong). Its id is what its bytes hash to, so X is
    // the same chunk at both places; only the manifest lies.
    let tmp = tempfile::tempdir().unwrap();
    let seeder_dir = tmp.path().join("seeder");
    node_lite_ok(&seeder_dir, &["init"]);
    let x = dsi_tests::seeded_bytes(100, 7);
    let id = dsi_protocol::ChunkId::of(&x);
    let store = node_lite::store::ChunkStore::open(&seeder_dir).unwrap();
    store.put_chunk(&id, &x, true).unwrap();
    let manifest =
        dsi_protocol::Manifest::new("evil.mp4", (CHUNK + 100) as u64, CHUNK as u32, vec![id, id])
            .unwrap();
    let content = store.put_manifest(&manifest).unwrap();
    let seeder = Seeder::start(&seeder_dir, &[]).unwrap();
    let gateway = Seeder::gateway(&tmp.path().join("gateway"), &["--peer", &seeder.url]).unwrap();
    let url = format!("{}content/{content}", gateway.url);
    // The tail first (players read it for metadata): X fetched, right length, kept.
    let tail = curl(&url, &["-r", &format!("{CHUNK}-")]);
    assert_eq!(tail.status, 206);
    assert!(tail.body == x);
    // Then the start: X is held, but not 16 KiB long. A clean error, no panic, no bytes.
    let head = curl(&url, &["-r", "1000-2000"]);
    assert_eq!(head.status, 502);
    let body: serde_json::Value = serde_json::from_slice(&head.body).unwrap();
    assert_eq!(body["code"], "content_unavailable");
    assert!(body["message"].as_str().unwrap().contains("inconsistent"));
    // The seeder itself refuses the same way.
    let direct = curl(&format!("{}content/{content}", seeder.url), &["-r", "0-9"]);
    assert_eq!(direct.status, 502);
    // And a fresh gateway that holds nothing: the swarm engine refuses X at place 0.
    let fresh = Seeder::gateway(&tmp.path().join("fresh"), &["--peer", &seeder.url]).unwrap();
    let fetched = curl(&format!("{}content/{content}", fresh.url), &["-r", "0-9"]);
    assert_eq!(fetched.status, 502);
    // The gateway still works.
    assert_eq!(curl(&url, &["-r", &format!("{CHUNK}-")]).status, 206);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_leaves_mid_window_still_pays_for_every_chunk_fetched() {
    let tmp = tempfile::tempdir().unwrap();
    let seeder_dir = tmp.path().join("seeder");
    let content = add(
        &seeder_dir,
        &dsi_tests::seeded_bytes(64 * CHUNK, 8),
        "long.bin",
        "16KiB",
    );
    // 64 KiB/s: a window of 4 chunks takes a second.
    let seeder = Seeder::start(&seeder_dir, &["--max-upload-rate", "64KiB"]).unwrap();
    let gateway_dir = tmp.path().join("gateway");
    dsi_tests::init_node(&gateway_dir, |config| config.gateway.window_chunks = 4);
    let gateway = Seeder::gateway(&gateway_dir, &["--peer", &seeder.url]).unwrap();
    let mut response = reqwest::get(format!("{}content/{content}", gateway.url))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.chunk().await.unwrap().unwrap();
    // Leave while the next window is being fetched.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(response);
    let downloader = node_id(&gateway_dir);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut settled = 0;
    loop {
        let served = seeder.metric("dsi_node_chunks_served_total").await.unwrap() as usize;
        let paid = seeder
            .receipts()
            .iter()
            .filter(|r| r.receipt.downloader == downloader)
            .count();
        settled = if paid == served { settled + 1 } else { 0 };
        if settled >= 5 {
            assert!(
                served > 4,
                "the second window was fetched ({served} chunks)"
            );
            assert!(served < 64, "the gateway stopped after the client left");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{paid} receipts for {served} chunks served"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_content_is_an_empty_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let seeder_dir = tmp.path().join("seeder");
    let content = add(&seeder_dir, &[], "empty.txt", "16KiB");
    let seeder = Seeder::start(&seeder_dir, &[]).unwrap();
    let url = format!("{}content/{content}", seeder.url);
    for args in [&[][..], &["-r", "0-"][..], &["-r", "-5"][..]] {
        let answer = curl(&url, args);
        assert_eq!(answer.status, 200, "{args:?}");
        assert!(answer.body.is_empty());
        assert_eq!(answer.headers["content-length"], "0");
    }
}
