//! The money path on a real ink-node, through the `oracle` command line: seeders announce
//! and forward receipts, `oracle close-epoch` closes the epoch and the oracle submits its
//! root, `oracle claim` pays both seeders exactly their leaves (a second claim pays 0), their
//! reputation reaches the contract; an oracle killed right after submitting does not
//! submit again after a restart.
//!
//! The chain is a throwaway ink-node with the four contracts deployed by `scripts/deploy`
//! (started by `devnet::Network`, the same harness as the devnet test). Needs `ink-node` on
//! PATH and the contracts built (`scripts/deploy --build-only`): `scripts/test` runs it with
//! `DSI_REQUIRE_CHAIN=1`. Without that it says so and passes.

use std::path::Path;

use devnet::{Network, Options, random_file};
use dsi_api::oracle::EpochStatus;
use dsi_protocol::{Epoch, PayoutAccount};

const EPOCH_MS: u64 = 30_000;

fn oracle_cli(data_dir: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new(dsi_tests::oracle_bin())
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("DSI_LOG", "warn")
        .output()
        .expect("oracle runs");
    assert!(
        output.status.success(),
        "oracle {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epochs_are_submitted_once_and_claims_pay_exactly_the_leaves() {
    if !dsi_tests::chain_ready("the chain test") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut options = Options::new(tmp.path().join("run"));
    options.epoch_ms = EPOCH_MS;
    options.budget = 4_000_000_000_000;
    options.fund = 20_000_000_000_000;
    let mut net = Network::start(dsi_tests::network_tools(), options)
        .await
        .expect("network starts");
    let oracle_dir = net.oracle_dir.clone();
    let client = net.client.clone();

    // Two seeders with fresh payout accounts, one downloader fetching through the tracker.
    let payouts = [PayoutAccount([0x51; 20]), PayoutAccount([0x52; 20])];
    let file = tmp.path().join("data.bin");
    random_file(&file, 1 << 20).expect("file");
    let mut content = String::new();
    for (i, payout) in payouts.iter().enumerate() {
        let name = format!("seeder-{i}");
        net.add_peer(&name, *payout).expect("peer");
        content = net.add_file(&name, &file).expect("add");
        net.start_peer(&name, &[]).expect("serve");
    }
    net.wait_for_peers(&content, 2).await.expect("announced");
    let epoch = net.fresh_epoch(20_000).await;
    let downloader = net.add_downloader("downloader").expect("downloader");
    let out = net.download(&downloader, &content, &[]).expect("download");
    assert_eq!(
        std::fs::read(&out).expect("read"),
        std::fs::read(&file).expect("read")
    );
    assert_eq!(net.wait_for_receipts(epoch, 4).await.expect("receipts"), 4);

    // `oracle close-epoch`; the oracle submits the root; blocks advance past the challenge
    // window.
    let printed = oracle_cli(
        &oracle_dir,
        &[
            "close-epoch",
            "--url",
            &net.oracle.url,
            "--through",
            &epoch.to_string(),
        ],
    );
    assert!(
        printed.contains(&format!("epoch {epoch}: 4 receipts")),
        "{printed}"
    );
    let record = net.wait_claimable(epoch).await.expect("claimable");
    let on_chain = net
        .chain
        .epoch(epoch)
        .await
        .expect("chain")
        .expect("epoch on chain");
    assert_eq!(on_chain.root, record.root);
    assert_eq!(on_chain.total, record.total);

    // `oracle claim` for both seeders: balances move by exactly their leaves; again pays 0.
    let leaves = net.leaves(epoch).await.expect("leaves");
    assert_eq!(leaves.len(), 2);
    for leaf in &leaves {
        assert!(payouts.contains(&leaf.payout));
        let before = net.chain.balance(&leaf.payout).await.expect("balance");
        let seeder = leaf.seeder.to_string();
        let claim = ["claim", "--seeder", &seeder, "--url", &net.oracle.url];
        let printed = oracle_cli(&oracle_dir, &claim);
        assert!(
            printed.contains(&format!("paid {}", leaf.amount)),
            "{printed}"
        );
        let after = net.chain.balance(&leaf.payout).await.expect("balance");
        assert_eq!(
            after - before,
            leaf.amount,
            "the payout account received exactly the leaf"
        );
        assert_eq!(
            net.chain.claimed(&leaf.seeder).await.expect("claimed"),
            leaf.amount
        );
        let again = oracle_cli(&oracle_dir, &claim);
        assert!(again.contains("paid 0"), "{again}");
        // Reputation reached the contract.
        let page = client.seeder(&leaf.seeder).await.expect("seeder page");
        let score = net
            .chain
            .reputation_score(&leaf.seeder)
            .await
            .expect("score")
            .expect("scored");
        assert_eq!((score.0, score.1), (page.score, epoch));
    }

    // The next epoch: the oracle dies right after sending the root (before recording it);
    // after a restart it finds the root on chain and does not send it again.
    let next = net.next_epoch(epoch).await;
    net.oracle
        .restart_with_env(&[(
            "DSI_FAULT".to_string(),
            "oracle-abort-after-submit".to_string(),
        )])
        .expect("oracle restarts with the fault");
    let token = net.admin_token().expect("token");
    let _ = client.close(&token, Some(Epoch(next))).await;
    net.wait_for("the root on chain", 60, async || {
        net.chain.epoch(next).await.ok().flatten()
    })
    .await
    .expect("root on chain");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while net.oracle.running() {
        assert!(
            std::time::Instant::now() < deadline,
            "the oracle did not die right after submitting"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    assert!(
        client.epoch(Epoch(next)).await.is_err(),
        "the faulty oracle is gone"
    );
    net.oracle.restart_with_env(&[]).expect("restart");
    net.wait_for("the epoch final at the oracle", 60, async || {
        let info = net.closed_epoch(next).await.ok()?;
        matches!(info.status, EpochStatus::Final | EpochStatus::Claimable).then_some(())
    })
    .await
    .expect("final");
    let metrics = client.metrics().await.expect("metrics");
    assert!(
        metrics.contains("dsi_oracle_chain_submissions_total 0"),
        "resubmitted after restart:\n{metrics}"
    );
}
