//! Building, querying, paging, verifying and updating an index end to end (in memory).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashSet;

use dsi_protocol::ChunkId;
use vector_store::{
    BuildOptions, Cursor, Encoding, IndexData, IndexManifest, MemorySource, Metric, PageSource,
    SearchOptions, Searcher, SplitMix64, Step, VectorError, distance, normalize,
};

/// `n` vectors around `clusters` random centres.
fn clustered(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    let centres: Vec<f32> = (0..clusters * dim).map(|_| rng.normal()).collect();
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let c = rng.below(clusters);
        for d in 0..dim {
            out.push(centres[c * dim + d] + 0.35 * rng.normal());
        }
    }
    out
}

fn exact(metric: Metric, dim: usize, data: &[f32], query: &[f32], k: usize) -> Vec<u64> {
    let mut q = query.to_vec();
    if metric == Metric::Cosine {
        normalize(&mut q);
    }
    let mut all: Vec<(f32, u64)> = data
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, v)| {
            let mut v = v.to_vec();
            if metric == Metric::Cosine {
                normalize(&mut v);
            }
            (distance(metric, &q, &v), i as u64)
        })
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.into_iter().take(k).map(|(_, i)| i).collect()
}

fn build(
    data: &[f32],
    dim: usize,
    metric: Metric,
    encoding: Encoding,
) -> (IndexManifest, MemorySource) {
    let options = BuildOptions {
        metric,
        encoding,
        lists: Some(40),
        ..BuildOptions::default()
    };
    let index = IndexData::build(dim, data, None, &options, &mut |_, _, _| {}).unwrap();
    let (manifest, pages) = index.write().unwrap();
    (manifest, MemorySource::new(pages))
}

fn recall(metric: Metric, encoding: Encoding) -> (f64, f64) {
    let dim = 16;
    let data = clustered(4000, dim, 30, 1);
    let queries = clustered(50, dim, 30, 2);
    let (manifest, mut source) = build(&data, dim, metric, encoding);
    let total = manifest.page_bytes() as f64;
    let mut searcher = Searcher::new(manifest);
    let options = SearchOptions {
        k: 10,
        nprobe: 4,
        rerank: 4,
    };
    let (mut found, mut fetched) = (0usize, 0.0);
    for q in queries.chunks_exact(dim) {
        searcher.clear_pages();
        let page = searcher.search(&mut source, q, &options, None).unwrap();
        let truth: HashSet<u64> = exact(metric, dim, &data, q, 10).into_iter().collect();
        found += page.hits.iter().filter(|h| truth.contains(&h.id)).count();
        fetched += searcher.added_bytes() as f64 / total;
    }
    (found as f64 / 500.0, fetched / 50.0)
}

#[test]
fn recall_is_high_and_few_pages_are_fetched() {
    for metric in [Metric::L2, Metric::Cosine] {
        let (r, f) = recall(metric, Encoding::F32);
        assert!(r >= 0.9, "{metric} f32 recall {r}");
        assert!(f <= 0.2, "{metric} f32 fetched {f}");
        let (r8, f8) = recall(metric, Encoding::Sq8);
        assert!(r8 >= 0.9, "{metric} sq8 recall {r8}");
        assert!(f8 < f, "{metric}: sq8 fetched {f8}, f32 fetched {f}");
    }
}

#[test]
fn paging_returns_every_vector_once_and_widens() {
    let dim = 8;
    let data = clustered(600, dim, 10, 3);
    for encoding in [Encoding::F32, Encoding::Sq8] {
        let (manifest, mut source) = build(&data, dim, Metric::L2, encoding);
        let lists = manifest.list_count();
        let mut searcher = Searcher::new(manifest);
        let options = SearchOptions {
            k: 25,
            nprobe: 2,
            rerank: 2,
        };
        let q = &data[..dim];
        let mut seen = HashSet::new();
        let mut cursor: Option<Cursor> = None;
        let mut probed = Vec::new();
        let mut pages = 0;
        loop {
            let page = searcher
                .search(&mut source, q, &options, cursor.as_ref())
                .unwrap();
            assert_eq!(page.page, pages);
            pages += 1;
            assert!(!page.hits.is_empty());
            assert!(page.hits.windows(2).all(|w| w[0].distance <= w[1].distance));
            for h in &page.hits {
                assert!(seen.insert(h.id), "id {} returned twice", h.id);
            }
            probed.push(page.lists_probed);
            match page.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen.len(), 600, "{encoding}: every vector exactly once");
        assert_eq!(pages, 24);
        assert_eq!(probed.first(), Some(&2));
        assert_eq!(
            probed.last(),
            Some(&lists),
            "the search widened to every list"
        );
        assert!(probed.windows(2).all(|w| w[0] <= w[1]));
        // The same cursor again gives the same page (cursors are replayable).
        let first = searcher.search(&mut source, q, &options, None).unwrap();
        let c = first.next.unwrap();
        let a = searcher.search(&mut source, q, &options, Some(&c)).unwrap();
        let b = searcher.search(&mut source, q, &options, Some(&c)).unwrap();
        assert_eq!(a, b);
    }
}

#[test]
fn probing_every_list_is_exact() {
    let dim = 12;
    let data = clustered(1000, dim, 8, 4);
    let (manifest, mut source) = build(&data, dim, Metric::Cosine, Encoding::F32);
    let lists = manifest.list_count();
    let mut searcher = Searcher::new(manifest);
    let options = SearchOptions {
        k: 10,
        nprobe: lists,
        rerank: 1,
    };
    let q = &data[dim * 17..dim * 18];
    let page = searcher.search(&mut source, q, &options, None).unwrap();
    let ids: Vec<u64> = page.hits.iter().map(|h| h.id).collect();
    assert_eq!(ids, exact(Metric::Cosine, dim, &data, q, 10));
    assert_eq!(ids[0], 17);
}

#[test]
fn bad_pages_and_cursors_are_refused_by_name() {
    let dim = 8;
    let data = clustered(300, dim, 5, 5);
    let (manifest, source) = build(&data, dim, Metric::L2, Encoding::F32);
    let mut searcher = Searcher::new(manifest.clone());
    let options = SearchOptions {
        k: 5,
        nprobe: 1,
        rerank: 1,
    };
    let q = &data[..dim];
    let Step::Need(need) = searcher.step(q, &options, None).unwrap() else {
        panic!("a fresh searcher needs pages");
    };
    let wanted = need[0];
    let mut bytes = source.pages[&wanted.chunk].clone();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    match searcher.add_page(wanted.chunk, &bytes) {
        Err(VectorError::Corrupt { expected, .. }) => assert_eq!(expected, wanted.chunk),
        other => panic!("corrupt page accepted: {other:?}"),
    }
    assert!(!searcher.has_page(&wanted.chunk));
    let stranger = ChunkId::of(b"not a page");
    assert!(matches!(
        searcher.add_page(stranger, b"not a page"),
        Err(VectorError::NotAPage(_))
    ));
    // A page of another list under this id is caught by the hash, not used.
    let other = manifest.lists.iter().find(|l| l.raw != wanted).unwrap().raw;
    assert!(
        searcher
            .add_page(wanted.chunk, &source.pages[&other.chunk])
            .is_err()
    );

    let mut source = source;
    let first = searcher.search(&mut source, q, &options, None).unwrap();
    let cursor = first.next.unwrap();
    let other_q = &data[dim..2 * dim];
    let err = searcher
        .search(&mut source, other_q, &options, Some(&cursor))
        .unwrap_err();
    assert!(err.to_string().contains("another query"), "{err}");
    let wider = SearchOptions { k: 6, ..options };
    assert!(
        searcher
            .search(&mut source, q, &wider, Some(&cursor))
            .is_err()
    );
    let err = searcher
        .search(&mut source, &[1.0, 2.0], &options, None)
        .unwrap_err();
    assert!(err.to_string().contains("the query has 2"), "{err}");
}

#[test]
fn manifests_round_trip_as_content() {
    let dim = 6;
    let data = clustered(200, dim, 4, 6);
    for encoding in [Encoding::F32, Encoding::Sq8] {
        let (manifest, _) = build(&data, dim, Metric::Cosine, encoding);
        let bytes = manifest.to_bytes();
        assert_eq!(IndexManifest::from_bytes(&bytes).unwrap(), manifest);
        assert!(IndexManifest::from_bytes(&bytes[..bytes.len() - 3]).is_err());
        let (content, chunks) = manifest.to_content();
        assert_eq!(content.content_id(), manifest.content_id());
        assert_eq!(
            IndexManifest::from_content(&content, &chunks).unwrap(),
            manifest
        );
        let mut tampered = chunks.clone();
        tampered[0][20] ^= 0x40;
        assert!(matches!(
            IndexManifest::from_content(&content, &tampered),
            Err(VectorError::Corrupt { .. })
        ));
    }
    // The same input and options always give the same index id.
    let a = build(&data, dim, Metric::L2, Encoding::Sq8).0.content_id();
    let b = build(&data, dim, Metric::L2, Encoding::Sq8).0.content_id();
    assert_eq!(a, b);
}

#[test]
fn updates_write_new_pages_and_keep_old_ones_valid() {
    let dim = 8;
    let data = clustered(500, dim, 6, 7);
    let (old, mut source) = build(&data, dim, Metric::L2, Encoding::Sq8);
    let mut index = IndexData::load(&old, &mut source).unwrap();
    assert_eq!(index.len(), 500);
    let fresh: Vec<f32> = (0..dim).map(|d| 5.0 + d as f32).collect();
    index.insert(&[1000], &fresh).unwrap();
    assert!(matches!(
        index.insert(&[3], &fresh),
        Err(VectorError::DuplicateId(3))
    ));
    index.delete(&[0, 1]).unwrap();
    assert!(matches!(
        index.delete(&[424242]),
        Err(VectorError::UnknownId(424242))
    ));
    let (new, new_pages) = index.write().unwrap();
    assert_eq!(new.count, 499);
    assert_ne!(new.content_id(), old.content_id());
    let old_ids: HashSet<ChunkId> = old.pages().map(|p| p.chunk).collect();
    let new_ids: HashSet<ChunkId> = new.pages().map(|p| p.chunk).collect();
    let changed = new_ids.difference(&old_ids).count();
    assert!(
        (2..=6).contains(&changed),
        "only touched lists change: {changed} new pages"
    );
    assert!(new_ids.intersection(&old_ids).count() >= new_ids.len() - 6);
    for (id, bytes) in new_pages {
        source.pages.entry(id).or_insert(bytes);
    }
    let options = SearchOptions {
        k: 5,
        nprobe: 2,
        rerank: 4,
    };
    let mut reader = Searcher::new(new);
    let hits = reader
        .search(&mut source, &fresh, &options, None)
        .unwrap()
        .hits;
    assert_eq!(hits[0].id, 1000);
    let near0 = reader
        .search(&mut source, &data[..dim], &options, None)
        .unwrap()
        .hits;
    assert!(near0.iter().all(|h| h.id != 0));
    // A reader of the old manifest still gets old answers from the old pages.
    let mut old_reader = Searcher::new(old);
    let hits = old_reader
        .search(&mut source, &data[..dim], &options, None)
        .unwrap()
        .hits;
    assert_eq!(hits[0].id, 0);
    // A source that lost a page gives an error naming it.
    let mut empty = MemorySource::default();
    let err = Searcher::new(old_reader.manifest().clone())
        .search(&mut empty, &data[..dim], &options, None)
        .unwrap_err();
    assert!(matches!(err, VectorError::Missing { .. }), "{err}");
    let _ = empty.fetch(old_reader.manifest().lists[0].raw);
}
