//! The aggregation is deterministic: the same receipts in any order (and any batching)
//! give the same root, the same leaves and the same published batch.

mod support;

use dsi_protocol::fixed::Ppm;
use dsi_protocol::merkle::{Keccak256, MerkleTree};
use dsi_protocol::reward::{ChunkFacts, EpochInputs, RewardParams, SeederFacts, aggregate};
use dsi_protocol::{ChunkId, Epoch, NodeId, PayoutAccount, Receipt};
use proptest::prelude::*;
use support::*;

fn inputs(seeders: u8, chunks: u8, budget: u128) -> EpochInputs {
    EpochInputs {
        epoch: Epoch(3),
        budget,
        params: RewardParams::default(),
        chunks: (0..chunks)
            .map(|c| ChunkFacts {
                chunk: ChunkId([c; 32]),
                length: 1000 + u32::from(c),
                holders: u32::from(c % 5),
                boost: Ppm(1_000_000 + u32::from(c) * 1000),
            })
            .collect(),
        seeders: (0..seeders)
            .map(|s| SeederFacts {
                seeder: NodeId([s; 32]),
                payout: PayoutAccount([s; 20]),
                previous_cumulative: u128::from(s) * 7,
                reputation: Ppm(500_000 + u32::from(s) * 50_000),
                stored: (0..chunks)
                    .filter(|c| (c + s) % 3 == 0)
                    .map(|c| ChunkId([c; 32]))
                    .collect(),
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
        // Every unit of a paid part is handed out.
        prop_assert!(first.total <= budget);
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
    for field in ["root", "total", "seeders", "receipts", "batch_content_id"] {
        assert_eq!(ra["closed"][0][field], rb["closed"][0][field], "{field}");
    }
    let epoch = epoch_of(&a);
    let la = get(&a, &format!("/v1/epochs/{epoch}/leaves")).await.json();
    let lb = get(&b, &format!("/v1/epochs/{epoch}/leaves")).await.json();
    assert_eq!(la, lb);
}
