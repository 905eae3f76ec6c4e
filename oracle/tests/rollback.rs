//! A veto on chain rolls the oracle back (issue 13, item 4): the vetoed epoch and every later
//! closed epoch are vetoed, and each seeder's cumulative earnings go back to their value at
//! the base, so the next close builds on the last good amounts. Store level, on SQLite (and
//! PostgreSQL when `DSI_TEST_POSTGRES_URL` is set).

mod support;

use dsi_api::oracle::{ClosedEpoch, EpochStatus, Leaf};
use dsi_protocol::{ContentId, Epoch, NodeId, PayoutAccount};
use oracle::Store;
use oracle::store::{EpochClose, SeederState, VetoRollback};
use support::*;

const UNIT: u128 = 1_000_000_000_000;

fn seeder(n: u8) -> NodeId {
    NodeId([n; 32])
}

/// A close of `epoch` whose seeders reach the given cumulative amounts.
fn close(epoch: u64, status: EpochStatus, cumulative: &[(u8, u128)]) -> EpochClose {
    let leaves: Vec<Leaf> = cumulative
        .iter()
        .map(|(n, c)| Leaf {
            epoch: Epoch(epoch),
            seeder: seeder(*n),
            payout: PayoutAccount([*n; 20]),
            amount: 0,
            cumulative: *c,
            bandwidth_amount: 0,
            storage_amount: 0,
            bytes_served: 0,
            receipts: 0,
            reputation: 1_000_000,
            proof: Vec::new(),
        })
        .collect();
    EpochClose {
        record: ClosedEpoch {
            epoch: Epoch(epoch),
            status,
            root: [epoch as u8; 32],
            total: 0,
            seeders: leaves.len() as u64,
            receipts: 0,
            batch_content_id: ContentId([epoch as u8; 32]),
            batch_file: format!("epoch-{epoch:08}.batch"),
            closed_at_ms: epoch * 1000,
            close_duration_ms: 1,
        },
        seeders: cumulative
            .iter()
            .map(|(n, c)| {
                (
                    seeder(*n),
                    SeederState {
                        cumulative: *c,
                        updated_epoch: Some(Epoch(epoch)),
                        ..SeederState::default()
                    },
                )
            })
            .collect(),
        leaves,
        scores: Vec::new(),
        audits: Vec::new(),
        funded_chunks: Default::default(),
        // The downloader's credit paid `epoch` units in every epoch.
        debits: vec![(downloader(), u128::from(epoch))],
        // And it drew `epoch` units on chain sponsorships 9 and 4.
        draws: vec![(9, u128::from(epoch)), (4, u128::from(epoch))],
        held: Vec::new(),
    }
}

fn downloader() -> NodeId {
    NodeId([0xdd; 32])
}

async fn cumulative(store: &Store, n: u8) -> u128 {
    store
        .seeder_state(&seeder(n))
        .await
        .expect("seeder state")
        .cumulative
}

async fn status(store: &Store, epoch: u64) -> EpochStatus {
    store
        .epoch(Epoch(epoch))
        .await
        .expect("epoch")
        .expect("closed")
        .status
}

#[tokio::test]
async fn a_veto_rolls_back_later_epochs_and_cumulative_earnings() {
    let dir = tempfile::tempdir().expect("temp dir");
    for url in backends(dir.path()).await {
        let store = Store::connect(&url).await.expect("store opens");
        // Given: epoch 1 claimable (A 1, B 1), epoch 2 final (A earns 10), epoch 3 final
        // (B earns 2, C earns 5), epoch 4 closed, not submitted yet (A earns 1).
        let closes = [
            close(1, EpochStatus::Claimable, &[(1, UNIT), (2, UNIT)]),
            close(2, EpochStatus::Final, &[(1, 11 * UNIT)]),
            close(3, EpochStatus::Final, &[(2, 3 * UNIT), (3, 5 * UNIT)]),
            close(4, EpochStatus::Closed, &[(1, 12 * UNIT)]),
        ];
        for c in &closes {
            store.record_close(c).await.expect("recorded");
        }
        assert_eq!(
            store.base_epoch(Epoch(4)).await.expect("base"),
            Some(Epoch(3))
        );
        assert_eq!(store.base_epoch(Epoch(1)).await.expect("base"), None);
        // Epochs by status from a given one on (a close reads only those since the chain's
        // latest good epoch, not the whole history).
        let all_but_open = [
            EpochStatus::Closed,
            EpochStatus::Final,
            EpochStatus::Claimable,
        ];
        let epochs = |records: Vec<dsi_api::oracle::ClosedEpoch>| -> Vec<u64> {
            records.iter().map(|r| r.epoch.0).collect()
        };
        assert_eq!(
            epochs(
                store
                    .epochs_with_status(&all_but_open)
                    .await
                    .expect("epochs")
            ),
            vec![1, 2, 3, 4]
        );
        assert_eq!(
            epochs(
                store
                    .epochs_with_status_from(&all_but_open, Epoch(3))
                    .await
                    .expect("epochs")
            ),
            vec![3, 4]
        );
        assert_eq!(
            epochs(
                store
                    .epochs_with_status_from(&[EpochStatus::Final], Epoch(3))
                    .await
                    .expect("epochs")
            ),
            vec![3]
        );
        // Each epoch's funding parts come back as the close recorded them, by id and key.
        assert_eq!(
            store.epoch_funding(Epoch(3)).await.expect("funding"),
            (vec![(4, 3), (9, 3)], vec![(downloader(), 3)])
        );
        assert_eq!(
            store.epoch_funding(Epoch(8)).await.expect("funding"),
            (vec![], vec![])
        );
        // A chain sponsorship is mirrored once, whatever the number of closes that read it;
        // ledger sponsorships (no chain id) are each their own.
        let sponsorship = |chain_id| dsi_api::oracle::Sponsorship {
            content: dsi_protocol::ContentId([3; 32]),
            per_epoch: 5,
            replicas: 2,
            first_epoch: Epoch(1),
            last_epoch: Epoch(9),
            funded_at_ms: 1,
            chain_id,
        };
        assert_eq!(store.max_chain_sponsorship().await.expect("max"), None);
        for (chain_id, new) in [
            (Some(4), true),
            (Some(4), false),
            (None, true),
            (None, true),
        ] {
            let added = store.add_sponsorship(&sponsorship(chain_id)).await;
            assert_eq!(added.expect("sponsorship"), new, "{chain_id:?}");
        }
        let mirrored = store
            .sponsorships(None, Some(Epoch(2)))
            .await
            .expect("read");
        assert_eq!(mirrored.len(), 3);
        assert_eq!(store.max_chain_sponsorship().await.expect("max"), Some(4));
        assert_eq!(mirrored.iter().filter(|s| s.chain_id == Some(4)).count(), 1);

        // When: the chain shows epoch 2 vetoed.
        let rollback = store.roll_back_veto(Epoch(2)).await.expect("rolled back");

        // Then: 2, 3 and 4 are vetoed, 1 stands, and everyone's cumulative amount is back
        // at epoch 1's (C earned only in a vetoed epoch: 0).
        assert_eq!(
            rollback,
            VetoRollback {
                base: Some(Epoch(1)),
                vetoed: vec![Epoch(2), Epoch(3), Epoch(4)],
            }
        );
        assert_eq!(status(&store, 1).await, EpochStatus::Claimable);
        for epoch in 2..=4 {
            assert_eq!(status(&store, epoch).await, EpochStatus::Vetoed, "{epoch}");
        }
        assert_eq!(cumulative(&store, 1).await, UNIT);
        assert_eq!(cumulative(&store, 2).await, UNIT);
        assert_eq!(cumulative(&store, 3).await, 0);
        // What the vetoed epochs debited is the downloader's again.
        store
            .add_credit(&downloader(), 100, 0)
            .await
            .expect("credit");
        assert_eq!(store.credit(&downloader()).await.expect("credit"), (100, 1));
        // The next epoch builds on epoch 1, as the chain requires.
        assert_eq!(
            store.base_epoch(Epoch(5)).await.expect("base"),
            Some(Epoch(1))
        );

        // And again: epoch 5 (on base 1: A earns 1) and a mismatched epoch 6 (B) are rolled
        // back by a veto of 5; A's amount comes from epoch 1, not the vetoed epoch 2.
        store
            .record_close(&close(5, EpochStatus::Final, &[(1, 2 * UNIT)]))
            .await
            .expect("recorded");
        store
            .record_close(&close(6, EpochStatus::Mismatch, &[(2, 9 * UNIT)]))
            .await
            .expect("recorded");
        assert_eq!(cumulative(&store, 1).await, 2 * UNIT);
        assert_eq!(
            store.base_epoch(Epoch(7)).await.expect("base"),
            Some(Epoch(5))
        );
        let rollback = store.roll_back_veto(Epoch(5)).await.expect("rolled back");
        assert_eq!(rollback.base, Some(Epoch(1)));
        assert_eq!(rollback.vetoed, vec![Epoch(5), Epoch(6)]);
        assert_eq!(cumulative(&store, 1).await, UNIT);
        assert_eq!(cumulative(&store, 2).await, UNIT);
        store.close().await;
    }
}
