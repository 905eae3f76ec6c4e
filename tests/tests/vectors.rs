//! `node-lite vectors` end to end: build an index into a seeder's store, serve it, and query
//! it from another node over loopback HTTP, page by page.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashSet;
use std::path::Path;

use dsi_protocol::ChunkId;
use dsi_tests::{Seeder, node_lite, node_lite_ok};
use node_lite::store::ChunkStore;
use serde_json::Value;
use vector_store::SplitMix64;
use vector_store::input::to_npy;

const DIM: usize = 16;

fn clustered(n: usize) -> Vec<f32> {
    let mut rng = SplitMix64::new(9);
    let centres: Vec<f32> = (0..20 * DIM).map(|_| rng.normal()).collect();
    (0..n)
        .flat_map(|_| {
            let c = rng.below(20);
            (0..DIM)
                .map(|d| centres[c * DIM + d] + 0.3 * rng.normal())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn query(dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["vectors", "query", "--json"];
    all.extend_from_slice(args);
    json(&node_lite_ok(dir, &all))
}

fn ids(result: &Value) -> Vec<u64> {
    result["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn build_serve_and_query_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let seeder_dir = tmp.path().join("seeder");
    let reader_dir = tmp.path().join("reader");
    node_lite_ok(&seeder_dir, &["init"]);
    node_lite_ok(&reader_dir, &["init"]);
    let data = clustered(3000);
    let npy = tmp.path().join("vectors.npy");
    std::fs::write(&npy, to_npy(DIM, &data)).unwrap();
    let npy_arg = npy.to_str().unwrap();

    let build = |dir: &Path| {
        json(&node_lite_ok(
            dir,
            &[
                "vectors", "build", npy_arg, "--metric", "l2", "--sq8", "--lists", "60", "--json",
            ],
        ))
    };
    let report = build(&seeder_dir);
    let index = report["content_id"].as_str().unwrap().to_string();
    assert_eq!(report["vectors"], 3000);
    assert_eq!(
        report["pages"], 120,
        "a code page and a vector page per list"
    );
    // Deterministic: building again gives the same id and writes nothing new.
    let again = build(&seeder_dir);
    assert_eq!(again["content_id"], index.as_str());
    assert_eq!(again["pages_new"], 0);
    // The index is ordinary content in the store's listing.
    assert!(node_lite_ok(&seeder_dir, &["list"]).contains("index.dsivec"));

    let seeder = Seeder::start(&seeder_dir, &[]).unwrap();
    let peer = seeder.url.trim_end_matches('/').to_string();
    let row = |i: usize| {
        data[i * DIM..(i + 1) * DIM]
            .iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let q = row(123);
    let first = query(
        &reader_dir,
        &[
            &index, "--vector", &q, "-k", "5", "--nprobe", "3", "--peer", &peer,
        ],
    );
    assert_eq!(
        ids(&first)[0],
        123,
        "a stored vector is its own nearest neighbour"
    );
    let fetched = first["stats"]["pages_fetched"].as_u64().unwrap();
    assert!(fetched >= 3, "{first}");
    let total_pages_bytes = first["stats"]["index_page_bytes"].as_f64().unwrap();
    let used = first["stats"]["page_bytes"].as_f64().unwrap();
    assert!(
        used / total_pages_bytes < 0.25,
        "fetched only what the query needs: {first}"
    );
    // Every page fetched from the peer (plus the manifest chunk) was paid for.
    assert_eq!(first["receipts_accepted"].as_u64().unwrap(), fetched + 1);

    // The same query again is served from the reader's own store.
    let repeat = query(
        &reader_dir,
        &[&index, "--vector", &q, "-k", "5", "--nprobe", "3"],
    );
    assert_eq!(repeat["hits"], first["hits"]);
    assert_eq!(repeat["stats"]["pages_fetched"], 0);

    // Paging: the next pages continue without repeats, widening as needed.
    let mut seen: HashSet<u64> = ids(&first).into_iter().collect();
    let mut cursor = first["next_cursor"].as_str().unwrap().to_string();
    for _ in 0..5 {
        let next = query(
            &reader_dir,
            &[
                &index, "--vector", &q, "-k", "5", "--nprobe", "3", "--cursor", &cursor, "--peer",
                &peer,
            ],
        );
        for id in ids(&next) {
            assert!(seen.insert(id), "id {id} repeated");
        }
        cursor = next["next_cursor"].as_str().unwrap().to_string();
    }
    assert_eq!(seen.len(), 30);

    // A corrupt page in the reader's store is caught, quarantined and fetched again.
    let store = ChunkStore::open(&reader_dir).unwrap();
    // Corrupt every page the reader holds (pages start with their magic): the next query
    // catches each one it needs, quarantines it and fetches it again.
    let pages: Vec<ChunkId> = walk(&reader_dir)
        .into_iter()
        .filter_map(|p| {
            let id = p.file_name()?.to_str()?.parse::<ChunkId>().ok()?;
            std::fs::read(&p)
                .ok()?
                .starts_with(b"DSIVPG1\0")
                .then_some(id)
        })
        .collect();
    assert!(pages.len() as u64 >= fetched);
    for page in &pages {
        let path = store.chunk_path(page);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }
    let healed = query(
        &reader_dir,
        &[
            &index, "--vector", &q, "-k", "5", "--nprobe", "3", "--peer", &peer,
        ],
    );
    assert_eq!(healed["stats"]["pages_fetched"].as_u64(), Some(fetched));
    assert_eq!(healed["hits"], first["hits"]);

    // Bad input is refused with a message naming what is wrong.
    let out = node_lite(
        &reader_dir,
        &["vectors", "query", &index, "--vector", "1,2,3"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the query has 3"),
        "{out:?}"
    );
    let out = node_lite(
        &reader_dir,
        &[
            "vectors", "query", &index, "--vector", &q, "--cursor", "nonsense",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let unknown = "ab".repeat(32);
    let out = node_lite(&reader_dir, &["vectors", "query", &unknown, "--vector", &q]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let ragged = tmp.path().join("ragged.json");
    std::fs::write(&ragged, "[[1, 2, 3], [4, 5]]").unwrap();
    let out = node_lite(&seeder_dir, &["vectors", "build", ragged.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("vector 1 has 2 values"),
        "{out:?}"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn json_input_keeps_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    node_lite_ok(&dir, &["init"]);
    let file = tmp.path().join("v.json");
    std::fs::write(
        &file,
        r#"{"ids": [100, 200, 300, 400], "vectors": [[1, 0], [0, 1], [-1, 0], [0.9, 0.1]]}"#,
    )
    .unwrap();
    let out = node_lite_ok(
        &dir,
        &["vectors", "build", file.to_str().unwrap(), "--lists", "2"],
    );
    let index = out.trim();
    let result = query(
        &dir,
        &[index, "--vector", "[1, 0.05]", "-k", "2", "--nprobe", "2"],
    );
    assert_eq!(ids(&result), vec![100, 400]);
    assert!(result["hits"][0]["distance"].as_f64().unwrap() < 0.01);

    // Updates write a new index; the old one still answers as before.
    let more = tmp.path().join("more.json");
    std::fs::write(&more, "[[0, -1], [-0.7, -0.7]]").unwrap();
    let report = json(&node_lite_ok(
        &dir,
        &[
            "vectors",
            "update",
            index,
            "--insert",
            more.to_str().unwrap(),
            "--delete",
            "100",
            "--json",
        ],
    ));
    let updated = report["content_id"].as_str().unwrap();
    assert_ne!(updated, index);
    assert_eq!(report["vectors"], 5);
    let all = |idx: &str, q: &str| {
        ids(&query(
            &dir,
            &[idx, "--vector", q, "-k", "5", "--nprobe", "2"],
        ))
    };
    assert_eq!(
        all(updated, "0, -1")[0],
        401,
        "new vectors get ids after the largest"
    );
    assert_eq!(all(updated, "1, 0.05")[0], 400, "100 is gone");
    assert!(!all(updated, "1, 0").contains(&100));
    assert_eq!(all(index, "1, 0.05")[0], 100, "the old index is unchanged");
    let out = node_lite(&dir, &["vectors", "update", updated, "--delete", "12345"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("12345 is not in the index"),
        "{out:?}"
    );
}

/// Text search from the command line: a text model (all-MiniLM-L6-v2, unpacked by
/// `scripts/setup --model`) stored as swarm content, an index of sentences embedded with it,
/// and a reader that has neither and fetches both from the seeder, paying for every chunk.
#[tokio::test(flavor = "multi_thread")]
async fn text_model_index_and_query_over_http() {
    let Some(model_dir) = dsi_tests::minilm_dir() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let seeder_dir = tmp.path().join("seeder");
    let reader_dir = tmp.path().join("reader");
    node_lite_ok(&seeder_dir, &["init"]);
    node_lite_ok(&reader_dir, &["init"]);
    let added = json(&node_lite_ok(
        &seeder_dir,
        &[
            "vectors",
            "add-model",
            model_dir.to_str().unwrap(),
            "--json",
        ],
    ));
    assert_eq!(added["dim"], 384);
    assert_eq!(added["max_seq_length"], 256);
    let model = added["content_id"].as_str().unwrap().to_string();

    let corpus = tmp.path().join("notes.txt");
    let lines = [
        "The weather is lovely today.",
        "",
        "The team won the championship in overtime.",
        "I love pasta with fresh tomato sauce.",
        "It's so sunny outside!",
        "The compiler reported a type error.",
        "My dog loves to chase the ball in the park.",
    ];
    std::fs::write(&corpus, lines.join("\n")).unwrap();
    let built = dsi_tests::build_text_index(&seeder_dir, &corpus, &model, 2);
    assert_eq!(built["vectors"], 6, "the empty line is skipped");
    assert_eq!(built["dim"], 384);
    let index = built["content_id"].as_str().unwrap().to_string();
    let texts = built["texts_content_id"].as_str().unwrap();

    // `embed` prints the vector the index holds for a line: its own nearest neighbour.
    let vector = node_lite_ok(
        &seeder_dir,
        &["vectors", "embed", "--model", &model, "--text", lines[5]],
    );
    let own = query(&seeder_dir, &[&index, "--vector", vector.trim(), "-k", "1"]);
    assert_eq!(ids(&own), vec![5]);
    assert!(own["hits"][0]["distance"].as_f64().unwrap() < 1e-5);
    let npy = tmp.path().join("lines.npy");
    node_lite_ok(
        &seeder_dir,
        &[
            "vectors",
            "embed",
            "--model",
            &model,
            "--text-file",
            corpus.to_str().unwrap(),
            "--out",
            npy.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::metadata(&npy).unwrap().len(), 128 + 6 * 384 * 4);

    let seeder = Seeder::start(&seeder_dir, &[]).unwrap();
    let peer = seeder.url.clone();
    let ask = |dir: &Path, extra: &[&str]| {
        let mut args = vec![
            index.as_str(),
            "--text",
            "sunny weather",
            "--model",
            &model,
            "-k",
            "3",
            "--nprobe",
            "2",
            "--lines",
            corpus.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        query(dir, &args)
    };
    let local = ask(&seeder_dir, &[]);
    let mut best = ids(&local)[..2].to_vec();
    best.sort_unstable();
    assert_eq!(best, [0, 4], "the two weather lines first: {local}");
    for hit in local["hits"].as_array().unwrap() {
        assert_eq!(hit["text"], lines[hit["id"].as_u64().unwrap() as usize]);
    }
    // The reader has no model and no index: it fetches both (88 model chunks are more than
    // the 64 receipts a seeder lets a downloader owe, so it pays as it goes).
    let remote = ask(&reader_dir, &["--peer", &peer]);
    assert_eq!(remote["hits"], local["hits"]);
    let served = seeder.receipts().len();
    assert!(served > 87, "{served} receipts");
    assert_eq!(remote["receipts_accepted"].as_u64(), Some(served as u64));
    // Everything is local now.
    let again = ask(&reader_dir, &["--peer", &peer]);
    assert_eq!(again["stats"]["pages_fetched"], 0);
    assert_eq!(seeder.receipts().len(), served);
    // The lines are content too, byte for byte.
    let copy = tmp.path().join("copy.txt");
    node_lite_ok(
        &reader_dir,
        &[
            "get",
            texts,
            "--out",
            copy.to_str().unwrap(),
            "--peer",
            &peer,
        ],
    );
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(&corpus).unwrap()
    );

    // Mistakes get a clear error.
    let out = node_lite(&reader_dir, &["vectors", "query", &index, "--text", "hi"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--model"),
        "{out:?}"
    );
    let out = node_lite(
        &reader_dir,
        &[
            "vectors", "query", &index, "--text", "hi", "--model", &index,
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a text model"),
        "{out:?}"
    );
    let out = node_lite(
        &reader_dir,
        &["vectors", "add-model", tmp.path().to_str().unwrap()],
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("config.json"),
        "{out:?}"
    );
}
