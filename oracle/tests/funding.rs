//! `verify-epoch` recomputes an epoch's funding from its published batch: the draws on
//! each chain sponsorship, the debits of credit, the parts and part hashes `reward_pool`
//! checks and the subsidy, exactly as the oracle submits them; and it refuses a batch
//! whose recorded sponsorships do not fund its contents the way its inputs say.

mod support;

use dsi_protocol::reward::Funding;
use dsi_protocol::{ContentId, Epoch};
use oracle::batch::{BatchSponsorship, EpochBatch, VerifyError, decode_batch, verify_batch};
use support::*;

/// One epoch on `url`: a content sponsored on chain twice (ids 7 and 3) and, if `ledger`,
/// once in the ledger, a holder that passes its audit, a downloader with credit, one receipt per
/// chunk. Returns the state and the closed epoch's batch.
async fn funded_epoch(
    url: &str,
    dir: &std::path::Path,
    ledger: bool,
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
    if ledger {
        // The ledger's sponsorship (as an oracle without a chain records it) and credit.
        fund(&state, &content_id, [downloader.clone()]).await;
    } else {
        let reply = call_with_headers(
            &state,
            "POST",
            "/v1/credits",
            serde_json::json!({
                "downloader": downloader.node_id().to_string(),
                "amount": "1000000000000000",
            })
            .to_string()
            .into_bytes(),
            &[
                ("content-type", "application/json".to_string()),
                ("authorization", format!("Bearer {TOKEN}")),
            ],
        )
        .await;
        assert_eq!(reply.status, axum::http::StatusCode::OK);
    }
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
        let (state, batch) = funded_epoch(url, &sub, true).await;
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
    let (_state, batch) = funded_epoch(&url, dir.path(), true).await;
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
    let cases: [(&str, &Change, &str); 8] = [
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
        (
            "amounts that overflow",
            &|s| {
                s[2].per_epoch = u128::MAX;
            },
            "overflow",
        ),
        (
            "more than an epoch pays from",
            &|s| {
                let last = s[2];
                s.resize(oracle::close::MAX_PAID_SPONSORSHIPS + 1, last);
            },
            "at most",
        ),
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

/// What `verify-epoch --chain` compares ([`oracle::commands::compare_funding`]; the chain
/// reads around it run against a real ink-node in `tests/tests/chain.rs`): an honest chain
/// view passes, and each way a committee could fund the epoch otherwise is named.
#[tokio::test]
async fn verify_epoch_chain_names_every_funding_the_chain_did_not_agree_on() {
    use dsi_chain::ChainSponsorship;
    use dsi_chain::contracts::{Address, EpochRecord, EpochStatus};
    use oracle::commands::{ChainView, compare_funding};
    use parity_scale_codec::Encode;

    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/o.db", dir.path().display());
    let (_state, batch) = funded_epoch(&url, dir.path(), false).await;
    let epoch = batch.inputs.epoch;
    let batch_id = oracle::batch::batch_content_id(&batch.encode());
    let verified = verify_batch(&batch).expect("verifies");
    let funding = verified.funding.clone().expect("funding");
    let sponsorship = |s: &BatchSponsorship| ChainSponsorship {
        id: s.chain_id.expect("on chain"),
        funder: Address([5; 20]),
        content: s.content.0,
        per_epoch: s.per_epoch,
        first_epoch: epoch.0 - 1,
        last_epoch: epoch.0 + 10,
        replicas: 3,
        unspent: 0,
    };
    let honest = ChainView {
        record: EpochRecord {
            root: batch.root,
            total: batch.total,
            batch: batch_id.0,
            status: EpochStatus::Final,
            final_block: 10,
            claimable_from: 30,
            base: None,
            paid: 0,
            subsidy: funding.subsidy,
            drawn: funding.drawn() + funding.debited(),
            parts: funding.hashes.len() as u32,
            applied: funding.hashes.len() as u32,
            seq: 4,
        },
        hashes: funding.hashes.clone(),
        sponsorships: batch
            .sponsorships
            .iter()
            .map(|s| (s.chain_id.expect("id"), sponsorship(s)))
            .collect(),
        market_bounds: dsi_protocol::reward::MarketBounds::default(),
        // What the chain held at the block the close read at (a version 4 batch names
        // it): the batch's own market, parameters and limits above what it paid.
        boundary: Some(oracle::commands::BoundaryReads {
            block: dsi_chain::BlockRef {
                number: 9,
                hash: [9; 32],
            },
            market: batch.inputs.market,
            params: batch.inputs.params,
            max_subsidy: batch.inputs.budget,
            max_total: u128::MAX,
        }),
    };
    let compare = |view: &ChainView, verified: &oracle::batch::Verified, batch: &EpochBatch| {
        compare_funding(
            epoch,
            view,
            verified,
            &batch.sponsorships,
            &batch.inputs,
            oracle::batch::batch_content_id(&batch.encode()),
        )
    };
    let passed = compare(&honest, &verified, &batch).expect("the honest view agrees");
    assert_eq!(passed.sponsorships_checked, 2);
    assert_eq!(passed.boundary_block, Some(9));

    type Change = dyn Fn(&mut ChainView);
    let content = batch.sponsorships[0].content;
    let total = batch.total;
    fn boundary(v: &mut ChainView) -> &mut oracle::commands::BoundaryReads {
        v.boundary.as_mut().expect("boundary")
    }
    let cases: [(&str, &Change, &str); 13] = [
        (
            "another market at the boundary block (a change executed after the epoch ended, or a market made up)",
            &|v| boundary(v).market.price_per_byte += 1,
            "is not the one multipliers held at block 9",
        ),
        (
            "other reward parameters at the boundary block",
            &|v| boundary(v).params.target_replication += 1,
            "reward parameters",
        ),
        (
            "a budget above max_epoch_subsidy at the boundary block",
            &|v| boundary(v).max_subsidy -= 1,
            "max_epoch_subsidy",
        ),
        (
            "a total above max_epoch_total at the boundary block",
            &move |v| boundary(v).max_total = total - 1,
            "max_epoch_total",
        ),
        (
            "a market outside the bounds (a fee above the ceiling)",
            &|v| v.market_bounds.fee_max = dsi_protocol::fixed::Ppm(99_999),
            "has a fee outside",
        ),
        (
            "another batch",
            &|v| v.record.batch = [0; 32],
            "names batch",
        ),
        ("another total", &|v| v.record.total += 1, "total"),
        ("a larger subsidy", &|v| v.record.subsidy += 1, "subsidy of"),
        (
            "other parts",
            &|v| v.hashes[0][0] ^= 1,
            "differ from part 0",
        ),
        (
            "a sponsorship the chain does not hold",
            &|v| {
                v.sponsorships.remove(&3);
            },
            "does not exist on chain",
        ),
        (
            "other terms",
            &|v| {
                if let Some(s) = v.sponsorships.get_mut(&7) {
                    s.per_epoch += 1;
                }
            },
            "on chain pays",
        ),
        (
            "one of the chain's left out",
            &move |v| {
                v.sponsorships.insert(
                    5,
                    ChainSponsorship {
                        id: 5,
                        funder: Address([6; 20]),
                        content: content.0,
                        per_epoch: 1_000_000_000_000,
                        first_epoch: epoch.0,
                        last_epoch: epoch.0,
                        replicas: 3,
                        unspent: 0,
                    },
                );
            },
            "leaves it out",
        ),
        (
            "a target the largest sponsorship did not ask for",
            &|v| {
                if let Some(s) = v.sponsorships.get_mut(&7) {
                    s.replicas = 64;
                }
            },
            "replicas",
        ),
    ];
    for (what, change, expected) in cases {
        let mut view = honest.clone();
        change(&mut view);
        let why = compare(&view, &verified, &batch).expect_err(what);
        assert!(why.contains(expected), "{what}: {why}");
    }
    // An epoch over `max_epoch_total` leaves out the sponsorships that do not fit after
    // the older ones (`close::fit_to_cap`). With the cap at the subsidy paid plus the
    // recorded sponsorships, one between them (id 5) that does not fit is rightly left
    // out; one that would fit is not.
    let subsidy = oracle::close::subsidy_paid(&batch.inputs, &verified.rewards);
    let recorded: u128 = batch.sponsorships.iter().map(|s| s.per_epoch).sum();
    let with_left_out = |per_epoch: u128| {
        let mut view = honest.clone();
        view.sponsorships.insert(
            5,
            ChainSponsorship {
                id: 5,
                funder: Address([6; 20]),
                content: content.0,
                per_epoch,
                first_epoch: epoch.0,
                last_epoch: epoch.0,
                replicas: 1,
                unspent: 0,
            },
        );
        boundary(&mut view).max_total = subsidy + recorded;
        view
    };
    let passed = compare(&with_left_out(recorded + 1), &verified, &batch)
        .expect("a sponsorship that does not fit under the cap is left out");
    assert_eq!(passed.sponsorships_checked, 2);
    let why = compare(&with_left_out(1), &verified, &batch).expect_err("it fits");
    assert!(
        why.contains("sponsorship 5")
            && why.contains("fits under max_epoch_total, but the batch leaves it out"),
        "{why}"
    );
    // More sponsorships active on chain than an epoch pays from: the bound may have left
    // that one out before the cap did (it ranks only contents with a proven holder, which
    // the chain does not show), so it is not named.
    let mut crowded = with_left_out(1);
    for id in 100..100 + oracle::close::MAX_PAID_SPONSORSHIPS as u32 {
        crowded.sponsorships.insert(
            id,
            ChainSponsorship {
                id,
                funder: Address([6; 20]),
                content: [0xCC; 32],
                per_epoch: 1,
                first_epoch: epoch.0,
                last_epoch: epoch.0,
                replicas: 1,
                unspent: 0,
            },
        );
    }
    compare(&crowded, &verified, &batch).expect("the bound may have left it out");
    // Without the block the close read at, none may be left out.
    let mut blind = with_left_out(recorded + 1);
    blind.boundary = None;
    let why = compare(&blind, &verified, &batch).expect_err("no block");
    assert!(why.contains("leaves it out"), "{why}");
    // A version 2 batch (no sponsorships recorded) for an epoch funded by parts.
    let downgraded = oracle::batch::Verified {
        funding: None,
        ..verified.clone()
    };
    let why = compare(&honest, &downgraded, &batch).expect_err("downgrade");
    assert!(why.contains("version 2"), "{why}");
    // With a chain, a sponsorship without a contract id funds nothing.
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/o.db", dir.path().display());
    let (_state, ledger_batch) = funded_epoch(&url, dir.path(), true).await;
    let ledger_verified = verify_batch(&ledger_batch).expect("verifies");
    let mut view = honest.clone();
    view.record.batch = oracle::batch::batch_content_id(&ledger_batch.encode()).0;
    view.record.root = ledger_batch.root;
    view.record.total = ledger_batch.total;
    let ledger_funding = ledger_verified.funding.clone().expect("funding");
    view.record.subsidy = ledger_funding.subsidy;
    view.hashes = ledger_funding.hashes.clone();
    view.boundary = None;
    let why = compare(&view, &ledger_verified, &ledger_batch).expect_err("ledger-only");
    assert!(why.contains("no contract id"), "{why}");
}
