//! `verify-epoch` recomputes an epoch's funding from its published batch: the draws on
//! each chain sponsorship, the debits of credit, the parts and part hashes `reward_pool`
//! checks and the subsidy, exactly as the oracle submits them; and it refuses a batch
//! whose recorded sponsorships do not fund its contents the way its inputs say.

mod support;

use dsi_protocol::reward::Funding;
use dsi_protocol::{ContentId, Epoch};
use oracle::batch::{BatchSponsorship, EpochBatch, VerifyError, decode_batch, verify_batch};
use support::*;

/// One epoch on `url`: a content sponsored on chain twice (ids 7 and 3) and once in the
/// ledger, a holder that passes its audit, a downloader with credit, one receipt per
/// chunk. Returns the state and the closed epoch's batch.
async fn funded_epoch(
    url: &str,
    dir: &std::path::Path,
) -> (std::sync::Arc<oracle::OracleState>, EpochBatch) {
    let state = oracle_at(url, dir, test_config()).await;
    let network = state.config.network.clone();
    let (manifest, data) = content(57, 3);
    let content_id = manifest.content_id();
    register(&state, &manifest).await;
    let holder = key(42);
    let downloader = key(10);
    let server = chunk_server(holder.clone(), data).await;
    post_json(
        &state,
        "/v1/announce",
        announcement(&holder, &server.url, 42, vec![content_id], &network),
    )
    .await;
    // The ledger's sponsorship (as an oracle without a chain records it) and credit.
    fund(&state, &content_id, [downloader.clone()]).await;
    // Two mirrored chain sponsorships, mirrored in the reverse order of their ids.
    let epoch = epoch_of(&state);
    for (id, per_epoch) in [(7u32, 2_000_000_000_000u128), (3, 1_000_000_000_000)] {
        let added = state
            .store
            .add_sponsorship(&dsi_api::oracle::Sponsorship {
                content: content_id,
                per_epoch,
                replicas: 3,
                first_epoch: Epoch(epoch.0.saturating_sub(1)),
                last_epoch: Epoch(epoch.0 + 10),
                funded_at_ms: now_ms(),
                chain_id: Some(id),
            })
            .await
            .expect("sponsorship");
        assert!(added);
    }
    let receipts: Vec<_> = manifest
        .chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            receipt(
                &state,
                &holder,
                &downloader,
                *chunk,
                manifest.chunk_len(i),
                1,
            )
        })
        .collect();
    assert!(
        send_receipts(&state, &receipts)
            .await
            .iter()
            .all(|v| v == "accepted")
    );
    close_current(&state).await;
    let file = state
        .batches_dir
        .join(oracle::close::batch_file_name(epoch));
    let batch = decode_batch(&std::fs::read(file).expect("batch")).expect("decodes");
    (state, batch)
}

#[tokio::test]
async fn verify_epoch_recomputes_the_funding_the_oracle_submits() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (n, url) in backends(dir.path()).await.iter().enumerate() {
        let sub = dir.path().join(format!("b{n}"));
        std::fs::create_dir_all(&sub).expect("dir");
        let (state, batch) = funded_epoch(url, &sub).await;
        assert_eq!(batch.version, oracle::batch::BATCH_VERSION);
        // The batch records the chain sponsorships by id, the ledger's last.
        let recorded: Vec<Option<u32>> = batch.sponsorships.iter().map(|s| s.chain_id).collect();
        assert_eq!(recorded, vec![Some(3), Some(7), None], "{url}");

        let verified = verify_batch(&batch).expect("verifies");
        let recomputed = verified.funding.expect("a version 3 batch has its funding");
        let submitted = oracle::submit::funding(&state, batch.inputs.epoch, batch.total)
            .await
            .expect("the oracle's funding");
        assert_eq!(
            recomputed, submitted,
            "{url}: verify-epoch recomputes the parts the oracle votes on"
        );
        // Both chain sponsorships and the credit pay; the ledger's share is the subsidy's.
        let ids: Vec<u32> = recomputed.draws.iter().map(|d| d.0).collect();
        assert_eq!(ids, vec![3, 7], "{url}");
        assert_eq!(
            recomputed.draws[1].1,
            2 * recomputed.draws[0].1,
            "{url}: drawn pro rata"
        );
        assert_eq!(recomputed.debits.len(), 1, "{url}");
        assert_eq!(recomputed.debits[0].0, key(10).node_id().0);
        assert!(recomputed.subsidy > 0, "{url}: the ledger's share");
        assert_eq!(recomputed.hashes.len(), 1);
    }
}

#[tokio::test]
async fn a_batch_whose_sponsorships_do_not_fund_its_contents_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/o.db", dir.path().display());
    let (_state, batch) = funded_epoch(&url, dir.path()).await;
    let content = batch.sponsorships[0].content;
    assert!(matches!(
        batch.inputs.contents[0].funding,
        Funding::Sponsored { .. }
    ));
    let tamper = |change: &dyn Fn(&mut Vec<BatchSponsorship>)| -> String {
        let mut bad = batch.clone();
        change(&mut bad.sponsorships);
        match verify_batch(&bad) {
            Err(VerifyError::Funding(why)) => why,
            other => panic!("a tampered batch passed or failed otherwise: {other:?}"),
        }
    };
    type Change = dyn Fn(&mut Vec<BatchSponsorship>);
    let cases: [(&str, &Change, &str); 6] = [
        (
            "one drops out: the rest do not sum to the content's amount",
            &|s| {
                s.remove(0);
            },
            "sum to",
        ),
        (
            "an amount moved up: the sum is off",
            &|s| s[0].per_epoch += 1,
            "sum to",
        ),
        (
            "a sponsorship of a content the epoch does not fund",
            &|s| {
                s.push(BatchSponsorship {
                    chain_id: None,
                    content: ContentId([0xee; 32]),
                    per_epoch: 1,
                })
            },
            "does not fund",
        ),
        ("out of the order of ids", &|s| s.swap(0, 1), "out of order"),
        (
            "one id twice",
            &|s| s[1].chain_id = s[0].chain_id,
            "out of order",
        ),
        ("a zero amount", &|s| s[0].per_epoch = 0, "nothing"),
    ];
    for (what, change, expected) in cases {
        let why = tamper(change);
        assert!(why.contains(expected), "{what}: {why}");
    }
    // Moving an amount between two sponsorships of the content keeps its sum: offline the
    // batch checks out, but its draws (and part hashes) are not the ones the chain agreed
    // on, which `verify-epoch --chain` compares (tests/tests/chain.rs).
    let mut moved = batch.clone();
    moved.sponsorships[0].per_epoch += 1;
    moved.sponsorships[1].per_epoch -= 1;
    assert_eq!(moved.sponsorships[0].content, content);
    let honest = verify_batch(&batch).expect("verifies").funding;
    let other = verify_batch(&moved).expect("verifies").funding;
    assert_ne!(
        honest.map(|f| f.hashes),
        other.map(|f| f.hashes),
        "another split is another part hash"
    );
}
