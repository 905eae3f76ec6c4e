//! The aggregation is deterministic: the same receipts in any order (and any batching)
//! give the same root, the same leaves and the same published batch.

mod support;

use dsi_protocol::fixed::Ppm;
use dsi_protocol::merkle::{Keccak256, MerkleTree};
use dsi_protocol::reward::{
    ChunkFacts, ContentFacts, CreditFacts, EpochInputs, Funding, Holder, Location, MarketParams,
    RewardParams, SeederFacts, aggregate,
};
use dsi_protocol::{ChunkId, ContentId, Epoch, NodeId, PayoutAccount, Receipt};
use proptest::prelude::*;
use support::*;

fn inputs(seeders: u8, chunks: u8, budget: u128) -> EpochInputs {
    let location = |n: u8| Location::of(std::net::IpAddr::from([10, 0, n % 3, n]));
    EpochInputs {
        epoch: Epoch(3),
        budget,
        params: RewardParams::default(),
        market: MarketParams {
            vetting_audits: 2,
            ..MarketParams::default()
        },
        chunks: (0..chunks)
            .map(|c| ChunkFacts {
                chunk: ChunkId([c; 32]),
                length: 1000 + u32::from(c),
                holders: u32::from(c % 5),
                boost: Ppm(1_000_000 + u32::from(c) * 1000),
            })
            .collect(),
        contents: (0..4u8)
            .map(|c| ContentFacts {
                content: ContentId([c; 32]),
                length: 10_000 * u64::from(c + 1),
                replicas: 1 + u32::from(c),
                funding: if c % 2 == 0 {
                    Funding::Sponsored {
                        per_epoch: 1_000_000 * u128::from(c + 1),
                    }
                } else {
                    Funding::Subsidized {
                        boost: Ppm(1_000_000 + u32::from(c) * 100_000),
                    }
                },
                holders: (0..seeders)
                    .filter(|s| (s + c) % 2 == 0)
                    .map(|s| Holder {
                        node: NodeId([s; 32]),
                        location: location(s),
                        since: Epoch(u64::from(s % 3)),
                    })
                    .collect(),
            })
            .collect(),
        credits: (0..40u8)
            .filter(|d| d % 4 != 0)
            .map(|d| CreditFacts {
                downloader: NodeId([100 + d; 32]),
                available: 1_000 * u128::from(d) * 1_000,
            })
            .collect(),
        seeders: (0..seeders)
            .map(|s| SeederFacts {
                seeder: NodeId([s; 32]),
                payout: PayoutAccount([s; 20]),
                previous_cumulative: u128::from(s) * 7,
                reputation: Ppm(500_000 + u32::from(s) * 50_000),
                audits_passed: u64::from(s % 4),
            })
            .collect(),
    }
}

proptest! {
    #[test]
    fn any_order_gives_the_same_root(
        picks in prop::collection::vec((0u8..6, 0u8..12, 0u8..40), 0..200),
        budget in 0u128..1_000_000_000_000,
        seed in any::<u64>(),
    ) {
        let inputs = inputs(6, 12, budget);
        let mut receipts: Vec<Receipt> = picks
            .iter()
            .map(|&(s, c, d)| Receipt {
                epoch: Epoch(3),
                seeder: NodeId([s; 32]),
                downloader: NodeId([100 + d; 32]),
                chunk: ChunkId([c; 32]),
                bytes: 1000 + u32::from(c),
                issued_at_ms: 0,
                nonce: u64::from(d),
            })
            .collect();
        let first = aggregate(&inputs, &receipts).expect("aggregates");
        let root = MerkleTree::from_leaves::<Keccak256>(&first.leaves()).root();
        // A deterministic shuffle from the seed.
        let mut state = seed | 1;
        for i in (1..receipts.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            receipts.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let second = aggregate(&inputs, &receipts).expect("aggregates");
        prop_assert_eq!(&first, &second);
        prop_assert_eq!(root, MerkleTree::from_leaves::<Keccak256>(&second.leaves()).root());
        // Never more than the funding the epoch draws on, and never more than it offers:
        // the subsidy, the sponsorships and the downloaders' credit.
        prop_assert!(first.total <= first.funding_drawn());
        prop_assert!(first.bonuses <= first.fees);
        let sponsored: u128 = inputs.contents.iter().map(|c| match c.funding {
            Funding::Sponsored { per_epoch } => per_epoch,
            Funding::Subsidized { .. } => 0,
        }).sum();
        let credit: u128 = inputs.credits.iter().map(|c| c.available).sum();
        prop_assert!(first.total <= budget + sponsored + credit);
        for debit in &first.debits {
            let available = inputs.credits.iter().find(|c| c.downloader == debit.downloader).map_or(0, |c| c.available);
            prop_assert!(debit.debited <= available.min(debit.cost));
        }
    }
}

#[tokio::test]
async fn two_oracles_fed_in_different_orders_publish_the_same_epoch() {
    let dir_a = tempfile::tempdir().expect("tempdir");
    let dir_b = tempfile::tempdir().expect("tempdir");
    let mut config = test_config();
    config.audit.enabled = false;
    let a = oracle_at(
        &format!("sqlite://{}/a.db", dir_a.path().display()),
        dir_a.path(),
        config.clone(),
    )
    .await;
    let b = oracle_at(
        &format!("sqlite://{}/b.db", dir_b.path().display()),
        dir_b.path(),
        config,
    )
    .await;
    let (manifest, _) = content(8, 6);
    let mut receipts = Vec::new();
    for s in 1..=3u8 {
        for d in 10..=14u8 {
            for (i, chunk) in manifest.chunks.iter().enumerate() {
                if (i + usize::from(s) + usize::from(d)) % 2 == 0 {
                    receipts.push(receipt(
                        &a,
                        &key(s),
                        &key(d),
                        *chunk,
                        manifest.chunk_len(i),
                        u64::from(d),
                    ));
                }
            }
        }
    }
    for state in [&a, &b] {
        register(state, &manifest).await;
        fund(state, &manifest.content_id(), (10..=14).map(key)).await;
        for s in 1..=3u8 {
            let signed = announcement(
                &key(s),
                &format!("http://127.0.0.1:{}", 9000 + u16::from(s)),
                s,
                vec![manifest.content_id()],
                &state.config.network,
            );
            post_json(state, "/v1/announce", &signed).await;
        }
    }
    // A: one batch in order. B: reversed, in batches of 7, each sent twice.
    assert!(
        send_receipts(&a, &receipts)
            .await
            .iter()
            .all(|v| v == "accepted")
    );
    let reversed: Vec<_> = receipts.iter().rev().copied().collect();
    for part in reversed.chunks(7) {
        assert!(
            send_receipts(&b, part)
                .await
                .iter()
                .all(|v| v == "accepted")
        );
        assert!(
            send_receipts(&b, part)
                .await
                .iter()
                .all(|v| v == "accepted")
        );
    }
    let ra = close_current(&a).await;
    let rb = close_current(&b).await;
    assert_ne!(ra["closed"][0]["total"], "0", "{ra}");
    for field in ["root", "total", "seeders", "receipts", "batch_content_id"] {
        assert_eq!(ra["closed"][0][field], rb["closed"][0][field], "{field}");
    }
    let epoch = epoch_of(&a);
    let la = get(&a, &format!("/v1/epochs/{epoch}/leaves")).await.json();
    let lb = get(&b, &format!("/v1/epochs/{epoch}/leaves")).await.json();
    assert_eq!(la, lb);
}

/// Hole 1 of the security review: one manifest that lists honest chunk ids with another
/// chunk size used to rewrite their lengths (every honest receipt then failed
/// `chunk_size_mismatch`), and lengths reloaded in no fixed order after a restart.
#[tokio::test]
async fn a_manifest_cannot_rewrite_known_chunk_lengths() {
    let dir_a = tempfile::tempdir().expect("tempdir");
    let dir_b = tempfile::tempdir().expect("tempdir");
    let mut config = test_config();
    config.audit.enabled = false;
    let url_a = format!("sqlite://{}/a.db", dir_a.path().display());
    let url_b = format!("sqlite://{}/b.db", dir_b.path().display());
    let a = oracle_at(&url_a, dir_a.path(), config.clone()).await;
    let mut b = oracle_at(&url_b, dir_b.path(), config.clone()).await;
    let (honest, _) = content(9, 4);
    // Another honest content sharing the chunks (same lengths), and the attack: the same
    // chunk ids under a chunk size twice as large.
    let copy = dsi_protocol::Manifest::new(
        "copy",
        honest.size,
        honest.chunk_size,
        honest.chunks.clone(),
    )
    .expect("manifest");
    let evil = doubled(&honest);
    let refuse = |state: std::sync::Arc<oracle::OracleState>| {
        let evil = evil.clone();
        async move {
            let reply = post_manifest(&state, evil.to_bytes(), &key(66)).await;
            assert_eq!(
                reply.status,
                409,
                "{}",
                String::from_utf8_lossy(&reply.body)
            );
            assert_eq!(reply.code(), "chunk_length_conflict");
            let path = format!("/v1/content/{}/manifest", evil.content_id());
            assert_eq!(get(&state, &path).await.status, 404, "nothing registered");
        }
    };
    // A: honest, copy, attack. B: copy, attack, honest.
    register(&a, &honest).await;
    register(&a, &copy).await;
    refuse(a.clone()).await;
    register(&b, &copy).await;
    refuse(b.clone()).await;
    register(&b, &honest).await;
    // B restarts: the lengths it reloads are the registered ones.
    drop(b);
    b = oracle_at(&url_b, dir_b.path(), config).await;
    refuse(b.clone()).await;
    for state in [&a, &b] {
        let lengths = state.chunk_lengths.read().await;
        for (i, chunk) in honest.chunks.iter().enumerate() {
            assert_eq!(lengths.get(chunk), Some(&honest.chunk_len(i)));
        }
    }
    honest_epoch_agrees(&a, &b, &honest).await;
}

/// The other side of the first-manifest rule: an attacker registers honest chunk ids
/// first with false lengths (for common chunks, such as an all-zero block, before anyone
/// else), and sends receipts under them. The honest manifest is refused
/// `chunk_length_conflict` until a chunk's bytes prove its length: then the false manifest
/// is dropped, its other chunks forgotten, the receipts judged against false lengths
/// dropped, and the honest manifest registers. The epoch verifies, and its root equals
/// that of an oracle that was never attacked.
#[tokio::test]
async fn a_false_length_registered_first_is_settled_with_the_chunks_bytes() {
    let dir_a = tempfile::tempdir().expect("tempdir");
    let dir_b = tempfile::tempdir().expect("tempdir");
    let (honest, data) = content(12, 4);
    let evil = doubled(&honest);
    let mut config = test_config();
    config.audit.enabled = false;
    // Room for one manifest and a half per key.
    config.tracker.max_manifest_bytes_per_node = evil.to_bytes().len() as u64 * 3 / 2;
    let url_a = format!("sqlite://{}/a.db", dir_a.path().display());
    let url_b = format!("sqlite://{}/b.db", dir_b.path().display());
    let mut a = oracle_at(&url_a, dir_a.path(), config.clone()).await;
    let b = oracle_at(&url_b, dir_b.path(), config.clone()).await;

    let mallory = key(66);
    assert_eq!(
        post_manifest(&a, evil.to_bytes(), &mallory).await.status,
        200,
        "first: registered"
    );
    // Receipts under the false lengths are accepted while they stand.
    let false_receipts: Vec<_> = evil
        .chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| receipt(&a, &key(67), &key(68), *chunk, evil.chunk_len(i), 1))
        .collect();
    assert!(
        send_receipts(&a, &false_receipts)
            .await
            .iter()
            .all(|v| v == "accepted")
    );
    let honest_reply = post_manifest(&a, honest.to_bytes(), &registrant()).await;
    assert_eq!(honest_reply.code(), "chunk_length_conflict");

    // Proofs that prove nothing change nothing.
    let prove = |state: std::sync::Arc<oracle::OracleState>, chunk: ChunkId, bytes: Vec<u8>| async move {
        call(&state, "POST", &format!("/v1/chunks/{chunk}"), bytes, None).await
    };
    let c0 = honest.chunks[0];
    let wrong = prove(a.clone(), c0, vec![7u8; 100]).await;
    assert_eq!(
        (wrong.status.as_u16(), wrong.code().as_str()),
        (400, "chunk_bytes_mismatch")
    );
    let stranger = vec![9u8; 1000];
    let unknown = prove(a.clone(), ChunkId::of(&stranger), stranger).await;
    assert_eq!(
        (unknown.status.as_u16(), unknown.code().as_str()),
        (404, "unknown_chunk")
    );
    let huge = prove(
        a.clone(),
        c0,
        vec![0u8; dsi_protocol::manifest::MAX_CHUNK_SIZE as usize + 1],
    )
    .await;
    assert_eq!(
        (huge.status.as_u16(), huge.code().as_str()),
        (413, "body_too_large")
    );
    assert_eq!(
        a.chunk_lengths.read().await.get(&c0),
        Some(&evil.chunk_len(0)),
        "still the false length"
    );

    // The first chunk's bytes settle it.
    let settled = prove(a.clone(), c0, data[&c0].clone()).await;
    assert_eq!(
        settled.status,
        200,
        "{}",
        String::from_utf8_lossy(&settled.body)
    );
    let answer: dsi_api::oracle::ChunkProofResponse = settled.parse();
    assert_eq!(
        (answer.length, answer.previous),
        (honest.chunk_len(0), evil.chunk_len(0))
    );
    assert_eq!(answer.dropped_manifests, vec![evil.content_id()]);
    let path = format!("/v1/content/{}/manifest", evil.content_id());
    assert_eq!(
        get(&a, &path).await.status,
        404,
        "the false manifest is gone"
    );
    // The other chunks still carry the lengths the false manifest gave them: the honest
    // manifest is refused until they are proven too (node-lite proves every chunk it holds
    // whose length differs).
    assert_eq!(
        post_manifest(&a, honest.to_bytes(), &registrant())
            .await
            .code(),
        "chunk_length_conflict"
    );
    for (i, chunk) in honest.chunks.iter().enumerate().skip(1) {
        let proof: dsi_api::oracle::ChunkProofResponse =
            prove(a.clone(), *chunk, data[chunk].clone()).await.parse();
        assert_eq!(
            (proof.previous, proof.length),
            (evil.chunk_len(i), honest.chunk_len(i))
        );
        assert!(proof.dropped_manifests.is_empty());
    }
    // Proving it again changes nothing; the attack cannot come back, and a receipt under
    // the false length is refused now.
    let again: dsi_api::oracle::ChunkProofResponse =
        prove(a.clone(), c0, data[&c0].clone()).await.parse();
    assert_eq!(again.previous, again.length);
    assert_eq!(
        post_manifest(&a, evil.to_bytes(), &mallory).await.code(),
        "chunk_length_conflict"
    );
    let late = receipt(&a, &key(67), &key(69), c0, evil.chunk_len(0), 1);
    assert_eq!(send_receipts(&a, &[late]).await, ["chunk_size_mismatch"]);
    // Dropping her manifest gave mallory no quota back.
    let (other, _) = content(13, 4);
    assert_eq!(
        post_manifest(&a, other.to_bytes(), &mallory).await.code(),
        "manifest_quota"
    );

    register(&a, &honest).await;
    register(&b, &honest).await;
    // A restart reloads the settled lengths.
    drop(a);
    a = oracle_at(&url_a, dir_a.path(), config).await;
    for (i, chunk) in honest.chunks.iter().enumerate() {
        assert_eq!(
            a.chunk_lengths.read().await.get(chunk),
            Some(&honest.chunk_len(i))
        );
    }
    honest_epoch_agrees(&a, &b, &honest).await;
}

/// The attack on lengths: `honest`'s chunk ids under a chunk size twice as large.
fn doubled(honest: &dsi_protocol::Manifest) -> dsi_protocol::Manifest {
    let chunk_size = honest.chunk_size * 2;
    dsi_protocol::Manifest::new(
        "evil",
        u64::from(chunk_size) * honest.chunks.len() as u64,
        chunk_size,
        honest.chunks.clone(),
    )
    .expect("manifest")
}

/// Both oracles accept one honest receipt per chunk of `honest`, close the epoch to the
/// same root with exactly those receipts, and publish batches that `verify-epoch` passes.
async fn honest_epoch_agrees(
    a: &std::sync::Arc<oracle::OracleState>,
    b: &std::sync::Arc<oracle::OracleState>,
    honest: &dsi_protocol::Manifest,
) {
    let receipts: Vec<_> = honest
        .chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| receipt(a, &key(1), &key(10), *chunk, honest.chunk_len(i), 1))
        .collect();
    for state in [a, b] {
        assert!(
            send_receipts(state, &receipts)
                .await
                .iter()
                .all(|v| v == "accepted"),
            "honest receipts are accepted"
        );
    }
    let ra = close_current(a).await;
    let rb = close_current(b).await;
    assert_eq!(ra["closed"][0]["root"], rb["closed"][0]["root"]);
    assert_eq!(ra["closed"][0]["receipts"], honest.chunks.len());
    for state in [a, b] {
        let file = state.batches_dir.join(
            state
                .store
                .last_closed_epoch()
                .await
                .expect("store")
                .map(oracle::close::batch_file_name)
                .expect("closed"),
        );
        let batch = oracle::batch::decode_batch(&std::fs::read(file).expect("batch"))
            .expect("batch decodes");
        let verified = oracle::batch::verify_batch(&batch).expect("verify-epoch passes");
        assert_eq!(verified.root, batch.root);
    }
}

/// Hole 8: before the first close, receipts accepted for an earlier, still-open epoch were
/// never published (the first close closed only the current epoch).
#[tokio::test]
async fn receipts_of_an_earlier_epoch_are_published_by_the_first_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config();
    config.audit.enabled = false;
    // One-second epochs starting now-ish: the receipt's epoch is over by the close.
    config.epochs.length_ms = 1_000;
    let state = oracle_at(
        &format!("sqlite://{}/o.db", dir.path().display()),
        dir.path(),
        config,
    )
    .await;
    let (manifest, _) = content(11, 2);
    register(&state, &manifest).await;
    let early = epoch_of(&state);
    let receipt = receipt(
        &state,
        &key(1),
        &key(10),
        manifest.chunks[0],
        manifest.chunk_len(0),
        1,
    );
    assert_eq!(send_receipts(&state, &[receipt]).await, ["accepted"]);
    // Wait for two later epochs, then close: the first close starts at the receipt's epoch.
    while epoch_of(&state).0 < early.0 + 2 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let closed = close_current(&state).await;
    let closed = closed["closed"].as_array().expect("closed epochs");
    assert_eq!(closed[0]["epoch"], early.0, "{closed:?}");
    let published: u64 = closed
        .iter()
        .map(|e| e["receipts"].as_u64().expect("count"))
        .sum();
    assert_eq!(
        published, 1,
        "the receipt is in exactly one published epoch"
    );
    let info = get(&state, &format!("/v1/epochs/{early}")).await;
    assert_eq!(info.status, 200, "{}", String::from_utf8_lossy(&info.body));
    // Epochs before the open window are refused when posted, not stranded.
    let old = dsi_protocol::Receipt {
        epoch: dsi_protocol::Epoch(early.0.saturating_sub(5)),
        ..receipt.receipt
    };
    let old = dsi_protocol::SignedReceipt::sign(old, &state.config.network, &key(10));
    assert_eq!(send_receipts(&state, &[old]).await, ["epoch_out_of_window"]);
}
