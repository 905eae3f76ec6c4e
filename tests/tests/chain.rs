//! The money path on a real ink-node, through the `oracle` command line: seeders announce
//! and forward receipts, `oracle close-epoch` closes the epoch and the oracle submits its
//! root, `oracle claim` pays both seeders exactly their leaves (a second claim pays 0), their
//! reputation reaches the contract; an oracle killed right after submitting does not
//! submit again after a restart.
//!
//! Keys stay in the processes that use them: while the oracle submits, no process's
//! command line or environment and no log holds the committee's secret. A node killed
//! and restarted in the middle of a submission neither loses nor repeats it.
//!
//! The chain is a throwaway ink-node with the four contracts deployed in-process by
//! `dsi_chain::deploy` (started by `devnet::Network`, the same harness as the devnet test). Needs `ink-node` on
//! PATH and the contracts built (`scripts/deploy --build-only`): `scripts/test` runs it with
//! `DSI_REQUIRE_CHAIN=1`. Without that it says so and passes.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use devnet::{InkNode, Network, Options, random_file};
use dsi_api::oracle::EpochStatus;
use dsi_protocol::{ContentId, Epoch, PayoutAccount};
use oracle::chain::{Chain, Deployment, Signer, Written};

/// Every process's command line and environment that holds `secret`: `pid: where`.
fn processes_showing(secret: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        for file in ["cmdline", "environ"] {
            // Processes come and go; unreadable ones (other users') cannot be ours.
            if let Ok(bytes) = std::fs::read(entry.path().join(file))
                && bytes.windows(secret.len()).any(|w| w == secret.as_bytes())
            {
                let cmd = String::from_utf8_lossy(&bytes).replace('\0', " ");
                found.push(format!("{name} {file}: {cmd}"));
            }
        }
    }
    found
}

/// Watches every process until `stop`, collecting those that show `secret`.
fn watch_processes(
    secret: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            for hit in processes_showing(secret) {
                if !seen.contains(&hit) {
                    seen.push(hit);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        seen
    })
}

const EPOCH_MS: u64 = 30_000;

/// A devnet in `tmp` with `EPOCH_MS` epochs, this subsidy budget and this much in the pool.
async fn network(tmp: &Path, budget: u128, fund: u128) -> Network {
    network_capped(
        tmp,
        budget,
        fund,
        Options::new(tmp.join("run")).max_epoch_total,
    )
    .await
}

/// [`network`], with `reward_pool`'s `max_epoch_total` at `cap`.
async fn network_capped(tmp: &Path, budget: u128, fund: u128, cap: u128) -> Network {
    let mut options = Options::new(tmp.join("run"));
    options.epoch_ms = EPOCH_MS;
    options.budget = budget;
    options.fund = fund;
    options.max_epoch_total = cap;
    Network::start(dsi_tests::network_tools(), options)
        .await
        .expect("network starts")
}

fn oracle_cli(data_dir: &Path, args: &[&str]) -> String {
    let (code, printed) = oracle_cli_status(data_dir, args);
    assert_eq!(code, Some(0), "oracle {args:?}: {printed}");
    printed
}

/// `oracle verify-epoch FILE --deployment` against `net`'s chain from an empty directory
/// (a checker with no oracle data directory and no key): its exit code and output.
fn verify_keyless(tmp: &Path, net: &Network, file: &Path) -> (Option<i32>, String) {
    oracle_cli_status(
        &tmp.join("checker"),
        &[
            "verify-epoch",
            &file.to_string_lossy(),
            "--deployment",
            &net.deployment.to_string_lossy(),
        ],
    )
}

/// The batch file `net`'s oracle published for `epoch`.
fn batch_file(net: &Network, epoch: u64) -> std::path::PathBuf {
    net.oracle_dir
        .join("batches")
        .join(format!("epoch-{epoch:08}.batch"))
}

/// Runs `oracle` in `data_dir`: its exit code and what it printed (stdout, then stderr).
fn oracle_cli_status(data_dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let output = std::process::Command::new(dsi_tests::oracle_bin())
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("DSI_LOG", "warn")
        .output()
        .expect("oracle runs");
    (
        output.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epochs_are_submitted_once_and_claims_pay_exactly_the_leaves() {
    if !dsi_tests::chain_ready("the chain test") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut net = network(tmp.path(), 4_000_000_000_000, 20_000_000_000_000).await;
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
    // Funding through the CLI: the file's storage (2 replicas, one per network) and the
    // downloader's credit, from the sponsor's own account. Never from the committee's key
    // by default: it pays the oracle's submissions.
    let sponsor_key = tmp.path().join("sponsor.suri");
    oracle::chain::accounts::write_secret_file(&sponsor_key, "//Ferdie").expect("key file");
    let sponsor_key = sponsor_key.to_string_lossy().into_owned();
    let sponsor_args = [
        "sponsor",
        &content,
        "--amount",
        "1000000000000",
        "--epochs",
        "100",
        "--replicas",
        "2",
        "--url",
        &net.oracle.url,
    ];
    let (code, printed) = oracle_cli_status(&oracle_dir, &sponsor_args);
    assert_ne!(code, Some(0), "{printed}");
    assert!(
        printed.contains("give --suri-file FILE"),
        "no deposit from the committee's key: {printed}"
    );
    let printed = oracle_cli(
        &oracle_dir,
        &[&sponsor_args[..], &["--suri-file", &sponsor_key]].concat(),
    );
    assert!(
        printed.starts_with(&format!("sponsored {content} (reward_pool sponsorship 0)")),
        "the id of the transaction's event: {printed}"
    );
    let downloader_id = node_lite::data_dir::DataDir::new(&downloader)
        .key()
        .expect("key")
        .node_id()
        .to_string();
    let printed = oracle_cli(
        &oracle_dir,
        &[
            "credit",
            &downloader_id,
            "--amount",
            "5000000000000",
            "--url",
            &net.oracle.url,
            "--suri-file",
            &sponsor_key,
        ],
    );
    assert!(printed.contains("available 5000000000000"), "{printed}");
    // Both went to the reward_pool contract; the oracle's own ledger refuses deposits that
    // the chain never received, even with the admin token.
    let on_chain = net.chain.sponsorships().await.expect("sponsorships");
    assert_eq!(on_chain.len(), 1);
    assert_eq!(
        (on_chain[0].per_epoch, on_chain[0].unspent),
        (1_000_000_000_000, 100_000_000_000_000)
    );
    let token = net.admin_token().expect("token");
    let content_id: ContentId = content.parse().expect("content id");
    let downloader_key: dsi_protocol::NodeId = downloader_id.parse().expect("node id");
    let refused = client
        .sponsor(
            &token,
            &dsi_api::oracle::SponsorRequest {
                content: content_id,
                per_epoch: 1,
                epochs: 1,
                replicas: 1,
                first_epoch: None,
            },
        )
        .await
        .expect_err("a ledger sponsorship with a chain");
    assert_eq!(refused.code(), Some(dsi_api::ErrorCode::FundingOnChain));
    let refused = client
        .add_credit(
            &token,
            &dsi_api::oracle::CreditRequest {
                downloader: downloader_key,
                amount: 1,
            },
        )
        .await
        .expect_err("a ledger credit with a chain");
    assert_eq!(refused.code(), Some(dsi_api::ErrorCode::FundingOnChain));
    let out = net.download(&downloader, &content, &[]).expect("download");
    assert_eq!(
        std::fs::read(&out).expect("read"),
        std::fs::read(&file).expect("read")
    );
    assert_eq!(net.wait_for_receipts(epoch, 4).await.expect("receipts"), 4);

    // `oracle close-epoch`; the oracle submits the root; blocks advance past the challenge
    // window. Meanwhile no process shows the committee's secret (the devnet committee is
    // //Alice, read by the oracle from its 0600 file).
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_processes("//Alice", stop.clone());
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
    // seeder-1 leaves the network after the close paid it: the oracle claims its leaf for
    // it once the epoch is claimable.
    let leaver = net.peer("seeder-1").expect("seeder-1");
    let (leaver_dir, leaver_id) = (leaver.dir.clone(), leaver.id);
    let exit: serde_json::Value = serde_json::from_str(&dsi_tests::node_lite_ok(
        &leaver_dir,
        &["exit", "--yes", "--json", "--tracker", &net.oracle.url],
    ))
    .expect("exit report");
    assert_eq!(exit["node_id"], leaver_id.to_string(), "{exit}");
    let leaver_before = net.chain.balance(&payouts[1]).await.expect("balance");
    let record = net.wait_claimable(epoch).await.expect("claimable");
    stop.store(true, Ordering::Relaxed);
    let shown = watcher.join().expect("watcher");
    assert!(shown.is_empty(), "the secret showed in: {shown:#?}");
    let log = std::fs::read_to_string(net.run_dir().join("oracle.log")).expect("oracle log");
    assert!(
        log.contains("root submitted"),
        "the oracle submitted:\n{log}"
    );
    assert!(!log.contains("//Alice"), "the oracle logged its secret");
    let on_chain = net
        .chain
        .epoch(epoch)
        .await
        .expect("chain")
        .expect("epoch on chain");
    assert_eq!(on_chain.root, record.root);
    assert_eq!(on_chain.total, record.total);
    // The epoch was paid by its funding parts: the sponsorship's draw and the downloader's
    // debit, applied on chain, cover its total (nothing came from the subsidy here).
    assert!(
        on_chain.funded() && on_chain.parts_applied.1 >= 1,
        "{on_chain:?}"
    );
    let chain_record = net
        .chain
        .epoch_record(epoch)
        .await
        .expect("chain")
        .expect("record");
    assert!(chain_record.drawn >= record.total, "{chain_record:?}");
    let sponsorship = &net.chain.sponsorships().await.expect("sponsorships")[0];
    let credit = net.chain.credits(&[downloader_key]).await.expect("credit")[0];
    assert_eq!(
        (100_000_000_000_000 - sponsorship.unspent) + (5_000_000_000_000 - credit.unspent),
        chain_record.drawn
    );
    assert!(
        sponsorship.unspent < 100_000_000_000_000,
        "the sponsorship paid"
    );
    assert!(credit.unspent < 5_000_000_000_000, "the credit paid");
    // `verify-epoch --chain` recomputes the batch's funding and finds it on chain: the
    // batch id, root, total, subsidy, part hashes, and the sponsorship it draws on.
    let batch_file = batch_file(&net, epoch);
    // A checker holds no key and no oracle data directory: the deployment file is enough.
    let (code, printed) = verify_keyless(tmp.path(), &net, &batch_file);
    assert_eq!(code, Some(0), "{printed}");
    assert!(
        printed.contains("ok: the chain's epoch (Final, ")
            && printed.contains("1 sponsorships match the chain's"),
        "{printed}"
    );
    // A batch that checks out on its own but is not the one the chain names is refused.
    let mut other =
        oracle::batch::decode_batch(&std::fs::read(&batch_file).expect("batch")).expect("batch");
    other.issued_at_skew_ms += 1;
    let other_file = oracle_dir.join("other.batch");
    std::fs::write(&other_file, parity_scale_codec::Encode::encode(&other)).expect("write");
    let (code, said) = oracle_cli_status(
        &oracle_dir,
        &["verify-epoch", "--chain", &other_file.to_string_lossy()],
    );
    assert_eq!(code, Some(dsi_api::exit::Exit::Integrity as i32), "{said}");
    assert!(
        said.contains("the chain disagrees") && said.contains("names batch"),
        "{said}"
    );

    // `oracle claim` for the seeder that stayed, and the oracle by itself for the one that
    // exited: balances move by exactly their leaves; claiming again pays 0.
    let leaves = net.leaves(epoch).await.expect("leaves");
    assert_eq!(leaves.len(), 2);
    for leaf in &leaves {
        assert!(payouts.contains(&leaf.payout));
        let seeder = leaf.seeder.to_string();
        let claim = ["claim", "--seeder", &seeder, "--url", &net.oracle.url];
        if leaf.seeder == leaver_id {
            // Paid without anyone asking.
            net.wait_for("the oracle's claim for the exited seeder", 60, async || {
                let paid = net.chain.claimed_in(epoch, &leaf.seeder).await.ok()??;
                Some(paid)
            })
            .await
            .map(|paid| assert_eq!(paid, leaf.amount, "exactly the leaf"))
            .expect("claimed for the exited seeder");
            assert_eq!(leaf.payout, payouts[1]);
            assert_eq!(
                net.chain.balance(&leaf.payout).await.expect("balance") - leaver_before,
                leaf.amount,
                "the exited seeder's payout account received exactly the leaf"
            );
            let log =
                std::fs::read_to_string(net.run_dir().join("oracle.log")).expect("oracle log");
            assert!(
                log.contains("claimed for an exited seeder"),
                "the oracle claimed:\n{log}"
            );
        } else {
            let before = net.chain.balance(&leaf.payout).await.expect("balance");
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
        }
        assert_eq!(
            net.chain.claimed(&leaf.seeder).await.expect("claimed"),
            leaf.amount
        );
        let again = oracle_cli(&oracle_dir, &claim);
        assert!(again.contains("paid 0"), "{again}");
        // The seeder page reads the claim from the chain (a read is reused for 10 s):
        // nothing left to claim.
        dsi_tests::poll("the seeder page shows the claim", async || {
            let claims = client.seeder(&leaf.seeder).await.ok()?.claims;
            ((claims.claimed, claims.claimable, claims.waiting) == (Some(leaf.amount), 0, 0))
                .then_some(())
        })
        .await;
        // Reputation reached the contract (the exited seeder was not audited at this close).
        if leaf.seeder == leaver_id {
            continue;
        }
        let page = client.seeder(&leaf.seeder).await.expect("seeder page");
        let score = net
            .chain
            .reputation_score(&leaf.seeder)
            .await
            .expect("score")
            .expect("scored");
        assert_eq!((score.0, score.1), (page.score, epoch));
    }

    // Governance moves the market (`oracle governance propose-market`, as Alice; Bob
    // approves; the timelock passes; Alice executes): the next close prices with it.
    let dearer = dsi_protocol::reward::MarketParams {
        price_per_byte: 2_000,
        fee: dsi_protocol::fixed::Ppm(150_000),
        vetting_audits: 4,
        unvetted_share: dsi_protocol::fixed::Ppm(400_000),
    };
    let printed = oracle_cli(
        &oracle_dir,
        &[
            "governance",
            "propose-market",
            "--price-per-byte",
            "2000",
            "--fee",
            "150000",
            "--vetting-audits",
            "4",
            "--unvetted-share",
            "400000",
        ],
    );
    let id: u32 = printed
        .split("proposal ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no proposal id in {printed}"));
    let bob = net.chain.signing_as(Signer::dev("bob").expect("bob"));
    assert_eq!(bob.approve(id).await.expect("approve"), Written::Sent);
    let proposal = net
        .chain
        .proposal(id)
        .await
        .expect("read")
        .expect("proposal");
    let unlock = proposal.approved_at.expect("approved") + 6;
    let now = net.chain.current_block().await.expect("block");
    if now < unlock {
        net.chain
            .advance_blocks(unlock - now)
            .await
            .expect("blocks");
    }
    let executed = oracle_cli(&oracle_dir, &["governance", "execute", &id.to_string()]);
    assert!(executed.contains("executed"), "{executed}");
    assert_eq!(net.chain.market().await.expect("market"), dearer);
    // A fee under the contract's floor is refused before it is proposed (the CLI reads
    // the bounds from the chain), naming the bound.
    let output = std::process::Command::new(dsi_tests::oracle_bin())
        .arg("--data-dir")
        .arg(&oracle_dir)
        .args(["governance", "propose-market", "--price-per-byte", "2000"])
        .args(["--fee", "5000", "--vetting-audits", "4"])
        .args(["--unvetted-share", "0"])
        .env("DSI_LOG", "warn")
        .output()
        .expect("oracle runs");
    let said = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(dsi_api::exit::Exit::Usage as i32),
        "{said}"
    );
    assert!(said.contains("fee is outside the bounds"), "{said}");

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
    // That close priced with the chain's new market, and the public route shows it.
    let next_batch = oracle::batch::decode_batch(
        &std::fs::read(
            oracle_dir
                .join("batches")
                .join(format!("epoch-{next:08}.batch")),
        )
        .expect("batch"),
    )
    .expect("batch");
    assert_eq!(next_batch.inputs.market, dearer);
    let shown = client.credit(&downloader_key).await.expect("credit");
    assert_eq!(shown.price_per_byte, 2_000);
}

/// A pool holding less than the configured budget pays what it holds: the close cuts the
/// epoch's subsidy to the pool's free balance, so the epoch is final, funded and claimable
/// (before, it asked for the whole budget, `reward_pool` refused it at submission, and
/// every later epoch waited behind it). A checker without a key verifies it on chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_short_of_the_budget_pays_what_it_holds() {
    if !dsi_tests::chain_ready("the chain test") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut net = network(tmp.path(), 4_000_000_000_000, 1_000_000_000_000).await;
    let file = tmp.path().join("data.bin");
    random_file(&file, 256 << 10).expect("file");
    net.add_peer("seeder", PayoutAccount([0x61; 20]))
        .expect("peer");
    let content = net.add_file("seeder", &file).expect("add");
    net.start_peer("seeder", &[]).expect("serve");
    net.wait_for_peers(&content, 1).await.expect("announced");
    // Governance's subsidized list names the content: its storage is paid by the subsidy.
    let oracle_data = oracle::DataDir::new(&net.oracle_dir);
    let mut config = oracle_data.config().expect("config");
    config.subsidized.push(oracle::config::Boost {
        content: content.parse().expect("content id"),
        boost: dsi_protocol::fixed::Ppm::ONE,
    });
    config
        .save(&net.oracle_dir.join("config.toml"))
        .expect("config saved");
    net.oracle.kill();
    net.oracle.restart().expect("oracle restarts");
    let free = net.chain.free_balance().await.expect("free balance");
    assert_eq!(free, 1_000_000_000_000);

    let epoch = net.fresh_epoch(10_000).await;
    net.next_epoch(epoch).await;
    net.close(epoch).await.expect("close");
    let claimable = net
        .wait_claimable(epoch)
        .await
        .expect("the epoch asks no more than the pool holds: final, funded, claimable");
    let (batch, rewards) = net.rewards(epoch).await.expect("rewards");
    assert_eq!(
        batch.inputs.budget, free,
        "the budget is cut to the free balance"
    );
    assert!(
        rewards.total > 0 && rewards.total <= free,
        "the seeder's storage is paid from what the pool holds: {}",
        rewards.total
    );
    assert_eq!(claimable.total, rewards.total);
    // The pool reserved the total out of its free balance (a few units of dust may come
    // back to it from transaction deposits).
    let after = net.chain.free_balance().await.expect("free balance");
    assert!(
        after < free && after >= free - rewards.total,
        "{after} after, {free} before, total {}",
        rewards.total
    );

    let (code, printed) = verify_keyless(tmp.path(), &net, &batch_file(&net, epoch));
    assert_eq!(code, Some(0), "{printed}");
    assert!(
        printed.contains("ok: the chain's epoch (Final, "),
        "{printed}"
    );
}

/// Sponsorships are deposits anyone can make: one larger than `max_epoch_total` made the
/// epoch's root refused at every vote (`EpochTotalTooLarge`), and every later epoch waited
/// behind it. The epoch now takes only the funding that fits under the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sponsorships_above_the_epoch_cap_do_not_stop_the_network() {
    if !dsi_tests::chain_ready("the chain test") {
        return;
    }
    const TOKEN: u128 = 1_000_000_000_000;
    let tmp = tempfile::tempdir().expect("tempdir");
    let cap = 2 * TOKEN;
    let mut net = network_capped(tmp.path(), TOKEN, 100 * TOKEN, cap).await;
    net.add_peer("seeder", PayoutAccount([0x62; 20]))
        .expect("peer");
    let mut contents = Vec::new();
    for name in ["large.bin", "small.bin"] {
        let file = tmp.path().join(name);
        random_file(&file, 128 << 10).expect("file");
        contents.push(net.add_file("seeder", &file).expect("add"));
    }
    net.start_peer("seeder", &[]).expect("serve");
    for content in &contents {
        net.wait_for_peers(content, 1).await.expect("announced");
    }
    let epoch = net.fresh_epoch(20_000).await;
    // An attacker sponsors the content it holds with more than the cap, per epoch; an
    // honest sponsor pays one token per epoch for the other.
    let large = net
        .sponsor(&contents[0], 5 * TOKEN, 3, 1)
        .await
        .expect("large sponsorship");
    let small = net
        .sponsor(&contents[1], TOKEN, 3, 1)
        .await
        .expect("small sponsorship");
    assert!(large.first_epoch.0 <= epoch && small.first_epoch.0 <= epoch);
    net.next_epoch(epoch).await;
    net.close(epoch).await.expect("close");
    let claimable = net
        .wait_claimable(epoch)
        .await
        .expect("an epoch under the cap: final, funded, claimable");
    let (batch, rewards) = net.rewards(epoch).await.expect("rewards");
    assert!(
        rewards.total > 0 && rewards.total <= cap,
        "the small sponsorship is paid, under the cap: {}",
        rewards.total
    );
    assert_eq!(claimable.total, rewards.total);
    assert_eq!(
        batch
            .sponsorships
            .iter()
            .map(|s| s.chain_id)
            .collect::<Vec<_>>(),
        vec![small.chain_id],
        "the epoch pays from the sponsorship that fits, and leaves the larger one out"
    );
    let on_chain = net.chain.sponsorships().await.expect("sponsorships");
    let unspent = |id: Option<u32>| {
        on_chain
            .iter()
            .find(|s| Some(s.id) == id)
            .map(|s| s.unspent)
            .expect("on chain")
    };
    assert_eq!(
        unspent(large.chain_id),
        15 * TOKEN,
        "nothing drawn on the sponsorship left out"
    );
    assert!(unspent(small.chain_id) < 3 * TOKEN);

    let (code, printed) = verify_keyless(tmp.path(), &net, &batch_file(&net, epoch));
    assert_eq!(code, Some(0), "{printed}");
    assert!(
        printed.contains("ok: the chain's epoch (Final, ")
            && printed.contains("ok: the close read at block")
            && !printed.contains("note:"),
        "closed after its end: read at the last block before it, nothing to point out: {printed}"
    );

    // The batch names the block its close read at; `verify-epoch --chain` checks it is a
    // final block of the chain made before the epoch ended before reading there: a
    // batch naming a block the chain does not have is refused, and one naming an earlier
    // block than the last (a committee reading where a sponsorship did not exist yet,
    // say; an early close does the same) is pointed out.
    let boundary = batch
        .boundary
        .expect("a close with a chain names its block");
    let node = net.chain.node();
    let (_, end) = batch.schedule.window(Epoch(epoch));
    assert!(node.timestamp(boundary.hash).await.expect("time") < end);
    let earlier = node
        .block_hash(boundary.number - 1)
        .await
        .expect("rpc")
        .expect("an earlier block");
    let doctored = |block: Option<oracle::chain::BlockRef>| {
        let mut doctored = batch.clone();
        doctored.boundary = block;
        let path = tmp
            .path()
            .join(format!("doctored-{:?}.batch", block.map(|b| b.number)));
        std::fs::write(&path, parity_scale_codec::Encode::encode(&doctored)).expect("write");
        path
    };
    for (block, expected) in [
        (
            Some(oracle::chain::BlockRef {
                number: boundary.number,
                hash: [0xAB; 32],
            }),
            "which is not the chain's block",
        ),
        (
            Some(oracle::chain::BlockRef {
                number: boundary.number - 1,
                hash: earlier,
            }),
            // (It also fails: the chain agreed on another batch.)
            "note: block",
        ),
        // Without a block, nothing could be checked where the close read.
        (None, "names no block its close read the chain at"),
    ] {
        let (code, printed) = verify_keyless(tmp.path(), &net, &doctored(block));
        assert_eq!(code, Some(4), "{printed}");
        assert!(printed.contains(expected), "{printed}");
    }
}

/// A persistent ink-node (in `tmp/chain`) with the contracts deployed by the `oracle deploy`
/// command, the deployer's key in a 0600 file; the node, its log and the deployment file.
async fn deployed_node(tmp: &Path) -> (InkNode, std::path::PathBuf, std::path::PathBuf) {
    let tools = dsi_tests::network_tools();
    let base = tmp.join("chain");
    let log = tmp.join("ink-node.log");
    let node = InkNode::start_with(&tools.ink_node, &log, Some(&base), None).expect("node");
    let key = tmp.join("deployer.suri");
    oracle::chain::accounts::write_secret_file(&key, "//Alice").expect("key file");
    let deployment = tmp.join("deployment.json");
    let bundles = tools.repo.join("contracts/bundles");
    let printed = oracle_cli(
        tmp,
        &[
            "deploy",
            "--url",
            &node.url,
            "--deployer-file",
            key.to_str().expect("utf-8"),
            "--timelock",
            "1",
            "--challenge-blocks",
            "8",
            "--bundles",
            bundles.to_str().expect("utf-8"),
            "--out",
            deployment.to_str().expect("utf-8"),
        ],
    );
    assert!(
        printed.contains("governance administers the other three"),
        "{printed}"
    );
    (node, log, deployment)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restart_during_a_submission_neither_loses_nor_repeats_it() {
    if !dsi_tests::chain_ready("the node restart test") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let tools = dsi_tests::network_tools();
    let (mut node, log, deployment) = deployed_node(tmp.path()).await;
    let base = tmp.path().join("chain");
    let port = node.rpc_port().expect("port");
    let alice = Signer::dev("alice").expect("alice");
    let chain = Chain::new(
        Deployment::load(&deployment).expect("deployment"),
        None,
        alice.clone(),
    )
    .expect("client");
    // The committee (alice) is mapped and funds the pool; its nonce is read before.
    chain.fund(1_000_000_000_000).await.expect("fund");
    let nonce = || async {
        let account = alice.account();
        let url = chain.url().replacen("ws://", "http://", 1);
        let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "system_accountNextIndex", "params": [account.to_string()]});
        let answer: serde_json::Value = reqwest::Client::new()
            .post(&url)
            .json(&body)
            .send()
            .await
            .expect("rpc")
            .json()
            .await
            .expect("json");
        answer["result"].as_u64().expect("nonce")
    };
    let before = nonce().await;

    // Submit, and kill the node while the submission is on its way.
    let epoch = 7;
    let root = [0x77; 32];
    let submitting = {
        let chain = chain.clone();
        tokio::spawn(async move {
            chain
                .submit_root(
                    epoch,
                    None,
                    &root,
                    1_000,
                    &ContentId([0x42; 32]),
                    1_000,
                    &[],
                )
                .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    node.kill();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let node =
        InkNode::start_with(&tools.ink_node, &log, Some(&base), Some(port)).expect("restart");
    let written = tokio::time::timeout(std::time::Duration::from_secs(120), submitting)
        .await
        .expect("the submission finished after the restart")
        .expect("task")
        .expect("the submission succeeded after the restart");
    assert_eq!(written, Written::Sent);
    let record = chain
        .epoch(epoch)
        .await
        .expect("read")
        .expect("the epoch is on chain");
    assert_eq!((record.root, record.total), (root, 1_000));
    assert_eq!(
        nonce().await,
        before + 1,
        "the submission went in exactly once"
    );
    // Sent again, the chain already has it: nothing is sent.
    let again = chain
        .submit_root(
            epoch,
            None,
            &root,
            1_000,
            &ContentId([0x42; 32]),
            1_000,
            &[],
        )
        .await
        .expect("again");
    assert_eq!(again, Written::AlreadyThere);
    assert_eq!(nonce().await, before + 1);

    // The answer of the next submission is lost for sure (the client's test hook drops it
    // after the extrinsic went out): the client finds it on chain and sends nothing again.
    let lost = chain.node().lost_answers();
    chain.node().lose_next_answer();
    let written = chain
        .submit_root(
            8,
            Some(epoch),
            &[0x88; 32],
            2_000,
            &ContentId([0x43; 32]),
            2_000,
            &[],
        )
        .await
        .expect("the submission whose answer was lost");
    assert_eq!(written, Written::Sent);
    assert_eq!(
        chain.node().lost_answers(),
        lost + 1,
        "the lost-answer path ran"
    );
    assert_eq!(nonce().await, before + 2, "sent exactly once");
    let record = chain
        .epoch(8)
        .await
        .expect("read")
        .expect("epoch 8 on chain");
    assert_eq!((record.root, record.total), ([0x88; 32], 2_000));

    drop(node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_boosts_of_600_contents_take_three_reads() {
    if !dsi_tests::chain_ready("the boost read test") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_node, _log, deployment) = deployed_node(tmp.path()).await;
    let chain = Chain::new(
        Deployment::load(&deployment).expect("deployment"),
        None,
        Signer::dev("alice").expect("alice"),
    )
    .expect("client");
    // The moment a close would pin its reads to: every block after it comes later.
    let boundary_ms = dsi_protocol::now_ms();
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    // One content past the first read's 256 gets a boost (through governance), so the
    // order and the parts both show.
    let boosted = 300usize;
    let content = |i: u32| {
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&i.to_le_bytes());
        ContentId(id)
    };
    let id = chain
        .propose_boost(
            &content(boosted as u32),
            dsi_protocol::fixed::Ppm(2_000_000),
        )
        .await
        .expect("propose");
    let bob = chain.signing_as(Signer::dev("bob").expect("bob"));
    bob.approve(id).await.expect("approve");
    chain.advance_blocks(1).await.expect("timelock");
    bob.execute(id).await.expect("execute");
    // What a close reads: three reads for 600 contents, not 600.
    let contents: Vec<ContentId> = (0..600u32).map(content).collect();
    let calls = chain.node().runtime_calls();
    let boosts = chain.boosts(&contents).await.expect("boosts");
    assert_eq!(chain.node().runtime_calls() - calls, 3);
    assert_eq!(boosts.len(), 600);
    for (i, boost) in boosts.iter().enumerate() {
        let expected = if i == boosted { 2_000_000 } else { 1_000_000 };
        assert_eq!(boost.0, expected, "boost of content {i}");
    }
    // Pinned to the newest block made before the boundary (final by then), the reads give
    // what the chain held then: the boost executed later is not there.
    let block = chain
        .node()
        .block_at(boundary_ms, std::time::Duration::from_secs(30))
        .await
        .expect("boundary block");
    let now = chain.current_block().await.expect("block");
    assert!(block.number < now, "{} before {now}", block.number);
    assert!(block.number <= chain.node().finalized().await.expect("head").number);
    assert!(chain.node().timestamp(block.hash).await.expect("ts") <= boundary_ms);
    let next = chain
        .node()
        .block_hash(block.number + 1)
        .await
        .expect("hash")
        .expect("a later block");
    assert!(chain.node().timestamp(next).await.expect("ts") > boundary_ms);
    let then = chain.at(block);
    assert!(
        then.boosts(&contents)
            .await
            .expect("boosts at the boundary")
            .iter()
            .all(|b| b.0 == 1_000_000)
    );
    assert_eq!(then.current_block().await.expect("block"), block.number);
    // Without a key the same reads work (dry-runs from an account nobody holds), and a
    // write is refused before anything is sent.
    let reader =
        Chain::reader(Deployment::load(&deployment).expect("deployment"), None).expect("reader");
    assert_eq!(
        reader
            .boosts(&contents)
            .await
            .expect("boosts without a key"),
        boosts
    );
    let blocks = reader.current_block().await.expect("block");
    let refused = reader
        .fund(1_000_000_000_000)
        .await
        .expect_err("a reader cannot write");
    assert!(
        matches!(&refused, oracle::chain::ChainError::Key(why) if why.contains("only reads")),
        "{refused}"
    );
    assert_eq!(reader.current_block().await.expect("block"), blocks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_council_vetoes_a_final_epoch_on_ink_node_and_its_leaf_never_pays() {
    if !dsi_tests::chain_ready("the veto test") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_node, _log, deployment) = deployed_node(tmp.path()).await;
    let deployment = Deployment::load(&deployment).expect("deployment");
    let alice = Chain::new(deployment, None, Signer::dev("alice").expect("alice")).expect("client");
    let bob = alice.signing_as(Signer::dev("bob").expect("bob"));
    let charlie = alice.signing_as(Signer::dev("charlie").expect("charlie"));
    alice.fund(10_000_000_000_000).await.expect("fund");

    // A one-leaf epoch (the leaf is the root) becomes final with the committee's (alice's)
    // submission.
    let seeder = dsi_protocol::NodeId([0x61; 32]);
    let payout = PayoutAccount([0x62; 20]);
    let amount = 1_000_000_000_000u128;
    let leaf = dsi_protocol::merkle::RewardLeaf {
        epoch: Epoch(1),
        seeder,
        payout,
        amount,
    };
    let root = leaf.hash::<dsi_protocol::merkle::Keccak256>();
    let written = alice
        .submit_root(1, None, &root, amount, &ContentId([0x63; 32]), amount, &[])
        .await
        .expect("submit");
    assert_eq!(written, Written::Sent);
    let record = alice.epoch(1).await.expect("read").expect("final");
    assert_eq!(record.status, "Final");

    // Within the challenge window: alice proposes the veto, bob approves (2 of 3), the
    // timelock passes, charlie executes.
    let id = alice.propose_veto(1).await.expect("propose");
    assert_eq!(bob.approve(id).await.expect("approve"), Written::Sent);
    assert_eq!(
        bob.approve(id).await.expect("approve again"),
        Written::AlreadyThere
    );
    let proposal = alice.proposal(id).await.expect("read").expect("proposal");
    let unlock = proposal.approved_at.expect("approved") + 1;
    let now = alice.current_block().await.expect("block");
    if now < unlock {
        alice.advance_blocks(unlock - now).await.expect("blocks");
    }
    assert_eq!(charlie.execute(id).await.expect("execute"), Written::Sent);
    let record = alice.epoch(1).await.expect("read").expect("record");
    assert_eq!(record.status, "Vetoed");
    assert_eq!(alice.last_good_epoch().await.expect("read"), None);

    // The leaf never pays, even after the window.
    alice.advance_blocks(9).await.expect("blocks");
    match alice.claim(1, &seeder, &payout, amount, &[]).await {
        Err(oracle::chain::ChainError::Refused { error, .. }) => assert_eq!(error, "EpochVetoed"),
        other => panic!("a vetoed leaf was not refused: {other:?}"),
    }
    assert_eq!(alice.balance(&payout).await.expect("balance"), 0);
}
