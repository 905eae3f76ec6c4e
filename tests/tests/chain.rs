//! The money path on a real ink-node: seeders announce and forward receipts, the oracle
//! closes the epoch and submits its root, both seeders claim and their payout balances move
//! by exactly their leaves; an oracle killed right after submitting does not submit again.
//!
//! Needs a node with the four contracts deployed: `scripts/test` starts a throwaway
//! ink-node, runs `scripts/deploy --challenge-blocks 2` and sets `DSI_TEST_DEPLOYMENT`.
//! Without it the test says so and passes only if `DSI_REQUIRE_CHAIN` is not `1`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use dsi_protocol::{NodeId, PayoutAccount};
use dsi_tests::{OracleProcess, Seeder, node_lite_ok, random_file, sha256_of};
use oracle::chain::{Chain, Deployment};
use serde_json::Value;

const EPOCH_MS: u64 = 30_000;

fn now_ms() -> u64 {
    oracle::now_ms()
}

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

async fn get_json(url: &str) -> Option<Value> {
    reqwest::get(url).await.ok()?.json().await.ok()
}

async fn wait_for<T>(what: &str, secs: u64, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Waits until the current epoch has at least `margin_ms` left.
async fn fresh_epoch(margin_ms: u64) -> u64 {
    loop {
        let now = now_ms();
        let left = EPOCH_MS - now % EPOCH_MS;
        if left >= margin_ms {
            return now / EPOCH_MS;
        }
        tokio::time::sleep(Duration::from_millis(left + 50)).await;
    }
}

fn set_epochs(config: &Path) {
    let text = std::fs::read_to_string(config).expect("config");
    let text = text.replacen("length_ms = 3600000", &format!("length_ms = {EPOCH_MS}"), 1);
    std::fs::write(config, text).expect("config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epochs_are_submitted_once_and_claims_pay_exactly_the_leaves() {
    let Ok(deployment_path) = std::env::var("DSI_TEST_DEPLOYMENT") else {
        assert_ne!(
            std::env::var("DSI_REQUIRE_CHAIN").as_deref(),
            Ok("1"),
            "DSI_REQUIRE_CHAIN=1 but DSI_TEST_DEPLOYMENT is not set"
        );
        eprintln!("note: no deployment (DSI_TEST_DEPLOYMENT); the chain test needs scripts/test");
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let suri = tmp.path().join("committee.suri");
    std::fs::write(&suri, "//Alice\n").expect("suri");
    std::fs::set_permissions(&suri, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    // The oracle: 30 s epochs, manual close, the chain from the deployment.
    let oracle_dir = tmp.path().join("oracle");
    oracle_cli(&oracle_dir, &["init"]);
    let config = oracle_dir.join("config.toml");
    set_epochs(&config);
    let mut text = std::fs::read_to_string(&config).expect("config");
    text = text
        .replace("auto = true", "auto = false")
        .replace("budget = 1000000000000", "budget = 4000000000000")
        .replace(
            "deployment = \"\"",
            &format!("deployment = {deployment_path:?}"),
        )
        .replace(
            "suri_file = \"\"",
            &format!("suri_file = {:?}", suri.display().to_string()),
        )
        .replace("poll_ms = 2000", "poll_ms = 500");
    std::fs::write(&config, text).expect("config");
    oracle_cli(&oracle_dir, &["fund", "20000000000000"]);
    let chain = Chain::new(
        Deployment::load(Path::new(&deployment_path)).expect("deployment"),
        None,
        "//Alice".into(),
    );
    let mut oracle = OracleProcess::start(&oracle_dir, &[]).expect("oracle starts");

    // Two seeders with fresh payout accounts, one downloader.
    let payouts = [PayoutAccount([0x51; 20]), PayoutAccount([0x52; 20])];
    let file = tmp.path().join("data.bin");
    let sha = random_file(&file, 1 << 20);
    let mut seeders = Vec::new();
    let mut content = String::new();
    let epoch = fresh_epoch(20_000).await;
    for (i, payout) in payouts.iter().enumerate() {
        let dir = tmp.path().join(format!("seeder{i}"));
        node_lite_ok(&dir, &["init"]);
        set_epochs(&dir.join("config.toml"));
        let cfg = std::fs::read_to_string(dir.join("config.toml")).expect("config");
        let cfg = cfg
            .replace("announce_interval_secs = 60", "announce_interval_secs = 1")
            .replace("forward_interval_secs = 5", "forward_interval_secs = 1");
        std::fs::write(dir.join("config.toml"), cfg).expect("config");
        content = node_lite_ok(&dir, &["add", file.to_str().expect("utf8")])
            .trim()
            .to_string();
        let payout = payout.to_string();
        seeders.push(
            Seeder::start(&dir, &["--tracker", &oracle.url, "--payout", &payout]).expect("seeder"),
        );
    }
    let url = oracle.url.clone();
    wait_for("two peers", 30, async || {
        let peers = get_json(&format!("{url}/v1/content/{content}/peers")).await?;
        (peers["peers"].as_array()?.len() == 2).then_some(())
    })
    .await;
    let downloader = tmp.path().join("downloader");
    node_lite_ok(&downloader, &["init"]);
    set_epochs(&downloader.join("config.toml"));
    let out = tmp.path().join("out.bin");
    node_lite_ok(
        &downloader,
        &[
            "get",
            &content,
            "--tracker",
            &oracle.url,
            "--out",
            out.to_str().expect("utf8"),
        ],
    );
    assert_eq!(sha256_of(&out), sha);
    wait_for("receipts at the oracle", 30, async || {
        let info = get_json(&format!("{url}/v1/epochs/{epoch}")).await?;
        (info["receipts"].as_u64()? == 4).then_some(())
    })
    .await;

    // Close; the oracle submits the root; blocks advance (instant seal makes a block per
    // transaction) until the challenge window passes.
    oracle_cli(
        &oracle_dir,
        &[
            "close-epoch",
            "--url",
            &oracle.url,
            "--through",
            &epoch.to_string(),
        ],
    );
    let record = wait_for("the root on chain", 60, async || {
        let info = get_json(&format!("{url}/v1/epochs/{epoch}")).await?;
        matches!(info["status"].as_str()?, "final" | "claimable").then_some(info)
    })
    .await;
    let on_chain = chain
        .epoch(epoch)
        .await
        .expect("chain")
        .expect("epoch on chain");
    assert_eq!(format!("0x{}", hex::encode(on_chain.root)), record["root"]);
    assert_eq!(on_chain.total.to_string(), record["total"]);
    wait_for("claimable", 60, async || {
        let info = get_json(&format!("{url}/v1/epochs/{epoch}")).await?;
        if info["status"] == "claimable" {
            return Some(());
        }
        oracle_cli(&oracle_dir, &["fund", "1000000"]);
        None
    })
    .await;

    // Both seeders claim; balances move by exactly their leaves; a second claim pays 0.
    let leaves: Vec<Value> = get_json(&format!("{url}/v1/epochs/{epoch}/leaves"))
        .await
        .expect("leaves")
        .as_array()
        .expect("array")
        .clone();
    assert_eq!(leaves.len(), 2);
    for leaf in &leaves {
        let seeder: NodeId = leaf["seeder"].as_str().expect("id").parse().expect("id");
        let payout: PayoutAccount = leaf["payout"]
            .as_str()
            .expect("payout")
            .parse()
            .expect("payout");
        let amount: u128 = leaf["amount"]
            .as_str()
            .expect("amount")
            .parse()
            .expect("u128");
        assert!(payouts.contains(&payout));
        let before = chain.balance(&payout).await.expect("balance");
        let printed = oracle_cli(
            &oracle_dir,
            &[
                "claim",
                "--seeder",
                &seeder.to_string(),
                "--url",
                &oracle.url,
            ],
        );
        assert!(printed.contains(&format!("paid {amount}")), "{printed}");
        let after = chain.balance(&payout).await.expect("balance");
        assert_eq!(
            after - before,
            amount,
            "the payout account received exactly the leaf"
        );
        assert_eq!(chain.claimed(&seeder).await.expect("claimed"), amount);
        let again = oracle_cli(
            &oracle_dir,
            &[
                "claim",
                "--seeder",
                &seeder.to_string(),
                "--url",
                &oracle.url,
            ],
        );
        assert!(again.contains("paid 0"), "{again}");
        // Reputation reached the contract.
        let page = get_json(&format!("{url}/v1/seeders/{seeder}"))
            .await
            .expect("seeder");
        let score = chain
            .reputation_score(&seeder)
            .await
            .expect("score")
            .expect("scored");
        assert_eq!(
            (u64::from(score.0), score.1),
            (page["score"].as_u64().expect("score"), epoch)
        );
    }

    // The next epoch: the oracle dies right after sending the root (before recording it);
    // after a restart it finds the root on chain and does not send it again.
    while now_ms() / EPOCH_MS == epoch {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let next = now_ms() / EPOCH_MS;
    oracle.kill();
    let mut faulty =
        OracleProcess::start(&oracle_dir, &[("DSI_FAULT", "oracle-abort-after-submit")])
            .expect("oracle");
    let url = faulty.url.clone();
    let token = faulty.admin_token();
    let _ = reqwest::Client::new()
        .post(format!("{url}/v1/epochs/close"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "through": next }))
        .send()
        .await;
    wait_for("the root on chain", 60, async || {
        chain.epoch(next).await.ok().flatten()
    })
    .await;
    wait_for("the oracle to die right after submitting", 30, async || {
        faulty.exited().then_some(())
    })
    .await;
    assert!(
        get_json(&format!("{url}/v1/epochs/{next}")).await.is_none(),
        "the faulty oracle is gone"
    );
    faulty.restart_with_env(&[]).expect("restart");
    let url = faulty.url.clone();
    wait_for("the epoch final at the oracle", 60, async || {
        let info = get_json(&format!("{url}/v1/epochs/{next}")).await?;
        matches!(info["status"].as_str()?, "final" | "claimable").then_some(())
    })
    .await;
    let metrics = reqwest::get(format!("{url}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("dsi_oracle_chain_submissions_total 0"),
        "resubmitted after restart:\n{metrics}"
    );
    drop(seeders);
}
