//! The devnet story with assertions, on a real ink-node with the four contracts, the oracle
//! and node-lite processes on loopback (the same parts `scripts/devnet` runs, driven from
//! here, not through the script):
//!
//! 1. three seeders, a popular file on two and a rare file on one; a downloader fetches
//!    both through the tracker; the epoch closes, its root goes on chain, the challenge
//!    window passes, every seeder claims exactly its leaf;
//! 2. governance raises the rarity multiplier (a non-member cannot propose; execution
//!    before the timelock is refused); the next epoch pays the rare file's seeder more;
//! 3. failure cases in a third epoch: a seeder serving corrupted bytes earns nothing and
//!    fails its audits (lower reputation, on chain too); receipts a seeder signs for itself
//!    and receipts beyond a downloader's cap are refused and earn nothing; receipts from a key
//!    without credit pay nothing; a ring (its own seeder and content, sponsored by itself,
//!    fresh keys signing receipts, some funded by the ring) loses money; a replica farm (3
//!    keys on one /24, on a content below its target) counts once; the honest seeders are
//!    paid exactly what the same epoch recomputed without the ring and with the farm as one
//!    node pays them; the oracle killed mid-epoch loses no receipt; a claim with a wrong
//!    amount is rejected by the chain.
//!
//! Needs `ink-node` on PATH and the contracts built (`scripts/deploy --build-only`):
//! `scripts/test` runs it with `DSI_REQUIRE_CHAIN=1`. Without that it says so and passes.

use std::path::Path;

use devnet::cheat::{chunks_of, manifest, post_receipts};
use devnet::{Network, Options, raised_rarity, random_file};
use dsi_api::oracle::AuditOutcome;
use dsi_protocol::{PayoutAccount, SecretKey};
use oracle::chain::ChainError;

const MIB: usize = 1 << 20;

/// Flips bytes in every stored chunk of a node (lengths unchanged).
fn corrupt_chunks(data_dir: &Path) -> usize {
    let mut corrupted = 0;
    for shard in std::fs::read_dir(data_dir.join("chunks")).expect("chunks dir") {
        for file in std::fs::read_dir(shard.expect("shard").path()).expect("shard dir") {
            let path = file.expect("chunk").path();
            let mut bytes = std::fs::read(&path).expect("chunk bytes");
            for b in bytes.iter_mut().step_by(997) {
                *b ^= 0x5a;
            }
            std::fs::write(&path, bytes).expect("write chunk");
            corrupted += 1;
        }
    }
    corrupted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_devnet_story_pays_exactly_the_leaves_and_fraud_earns_nothing() {
    if !dsi_tests::chain_ready("the devnet test") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let tools = dsi_tests::network_tools();
    let mut options = Options::new(tmp.path().join("run"));
    options.downloader_cap_bytes = 4 * MIB as u64;
    let mut net = Network::start(tools, options)
        .await
        .expect("network starts");
    let oracle = net.client.clone();

    // Three seeders; the popular file (2 MiB, 8 chunks) on a and b, the rare one (1 MiB,
    // 4 chunks) on c.
    for (name, byte) in [("seeder-a", 0xa1), ("seeder-b", 0xb2), ("seeder-c", 0xc3)] {
        net.add_peer(name, PayoutAccount([byte; 20])).expect("peer");
    }
    let popular = tmp.path().join("popular.bin");
    let rare = tmp.path().join("rare.bin");
    random_file(&popular, 2 * MIB).expect("file");
    random_file(&rare, MIB).expect("file");
    let popular_id = net.add_file("seeder-a", &popular).expect("add");
    assert_eq!(net.add_file("seeder-b", &popular).expect("add"), popular_id);
    let rare_id = net.add_file("seeder-c", &rare).expect("add");
    for name in ["seeder-a", "seeder-b", "seeder-c"] {
        net.start_peer(name, &[]).expect("serve");
    }
    net.wait_for_peers(&popular_id, 2).await.expect("announced");
    net.wait_for_peers(&rare_id, 1).await.expect("announced");
    // A sponsor funds both files' storage: the popular file at two replicas (a and b), the
    // rare one at three.
    for (id, replicas) in [(&popular_id, 2), (&rare_id, 3)] {
        net.sponsor(id, devnet::SPONSOR_PER_EPOCH, 1_000, replicas)
            .await
            .expect("sponsor");
    }

    // Epoch 1.
    let mut reports = Vec::new();
    for round in 1..=2u64 {
        if round == 2 {
            // A non-member cannot propose; the council can (timelock checked inside).
            let dave = net
                .chain
                .signing_as(oracle::chain::Signer::dev("dave").unwrap());
            match dave.propose_rarity(raised_rarity(), 3).await {
                Err(ChainError::Refused { error, .. }) => assert_eq!(error, "Unauthorized"),
                other => panic!("a non-member proposed: {other:?}"),
            }
            net.raise_rarity(raised_rarity(), 3)
                .await
                .expect("governance");
            let params = net.chain.params().await.expect("params");
            assert_eq!(params.rarity, raised_rarity());
        }
        let after = reports.last().map_or(0, |r: &devnet::EpochReport| r.epoch);
        net.next_epoch(after).await;
        let epoch = net.fresh_epoch(12_000).await;
        let downloader = net
            .add_downloader(&format!("downloader-{round}"))
            .expect("downloader");
        let credit = net
            .credit(&downloader, devnet::DOWNLOADER_CREDIT)
            .await
            .expect("credit");
        for (id, original) in [(&popular_id, &popular), (&rare_id, &rare)] {
            let got = net.download(&downloader, id, &[]).expect("download");
            assert_eq!(
                std::fs::read(got).expect("read"),
                std::fs::read(original).expect("read")
            );
        }
        assert_eq!(
            net.wait_for_receipts(epoch, 12).await.expect("receipts"),
            12
        );
        net.close(epoch).await.expect("close");
        let report = net.claim_epoch(epoch).await.expect("claims");
        eprintln!("{report}");
        report.check().expect("claims match leaves and balances");
        let (a, b, c) = (
            report.row("seeder-a").expect("a paid"),
            report.row("seeder-b").expect("b paid"),
            report.row("seeder-c").expect("c paid"),
        );
        assert_eq!(a.bytes_served + b.bytes_served, 2 * MIB as u64);
        assert_eq!(c.bytes_served, MIB as u64);
        let (popular_rarity, rare_rarity) = if round == 1 {
            (1_250_000, 1_500_000)
        } else {
            (1_500_000, 2_000_000)
        };
        for row in [a, b] {
            if row.bytes_served > 0 {
                assert_eq!(row.rarity, popular_rarity, "{row:?}");
            }
        }
        assert_eq!(c.rarity, rare_rarity);
        let sum: u128 = report.rows.iter().map(|r| r.leaf_amount).sum();
        assert_eq!(sum, report.total);
        // Paid: the downloader's debit for the 3 MiB (less the fee, plus a bonus never above
        // it) and the sponsorships; nobody is on the subsidized list.
        let spent = oracle
            .credit(&credit.downloader)
            .await
            .expect("credit")
            .spent;
        assert_eq!(spent, 3 * MIB as u128 * u128::from(credit.price_per_byte));
        assert!(report.total > 0);
        assert!(report.total <= spent + 2 * devnet::SPONSOR_PER_EPOCH);
        for leaf in net.leaves(epoch).await.expect("leaves") {
            assert_eq!(
                net.chain.claimed(&leaf.seeder).await.expect("claimed"),
                leaf.cumulative,
                "every epoch of the seeder claimed: its total paid is the oracle's cumulative"
            );
            assert_eq!(
                net.chain
                    .claimed_in(epoch, &leaf.seeder)
                    .await
                    .expect("claimed_in"),
                Some(leaf.amount)
            );
            let again = net
                .chain
                .claim(epoch, &leaf.seeder, &leaf.payout, leaf.amount, &leaf.proof)
                .await
                .expect("a second claim");
            assert_eq!(again, 0, "a second claim paid");
        }
        reports.push(report);
    }
    // Seeder c is the rare file's only replica: it takes that file's whole sponsorship
    // (rarity that pays for itself), more than a or b, who share the popular one.
    for report in &reports {
        let c = report.row("seeder-c").expect("c").leaf_amount;
        for other in ["seeder-a", "seeder-b"] {
            assert!(c > report.row(other).expect("paid").leaf_amount, "{report}");
        }
    }

    // Epoch 3: failure cases. Mallory holds the popular file with every chunk corrupted and
    // serves without checking.
    net.add_peer("mallory", PayoutAccount([0xdd; 20]))
        .expect("peer");
    assert_eq!(net.add_file("mallory", &popular).expect("add"), popular_id);
    assert_eq!(corrupt_chunks(&net.peer("mallory").expect("m").dir), 8);
    net.start_peer("mallory", &["--verify", "never"])
        .expect("serve");
    net.wait_for_peers(&popular_id, 3).await.expect("announced");
    let mallory = net.peer("mallory").expect("m").id;

    // Two cheaters. A ring: its own seeder on its own network with its own 1 MiB of junk,
    // which it sponsors itself, and 6 fresh keys (3 with credit the ring paid for) that sign
    // receipts for it without downloading anything. A replica farm: 3 keys on one /24
    // (127.0.200.0/24) holding the rare file, which is sponsored at 3 replicas and has one
    // (seeder c): if each key counted, the farm would take both free places.
    let ring = net
        .start_ring(
            "ring",
            &tmp.path().join("ring.bin"),
            MIB,
            6,
            3,
            devnet::DOWNLOADER_CREDIT / 100,
        )
        .await
        .expect("ring");
    let farm = net
        .start_farm("farm", 3, &rare, 200, 1)
        .await
        .expect("farm");

    net.next_epoch(reports[1].epoch).await;
    let epoch = net.fresh_epoch(14_000).await;
    let verdicts = net
        .ring_receipts(&ring, epoch)
        .await
        .expect("ring receipts");
    assert_eq!(
        verdicts,
        vec!["accepted"; 6 * 4],
        "the ring's receipts are valid evidence"
    );
    let downloader = net.add_downloader("downloader-3").expect("downloader");
    let credit = net
        .credit(&downloader, devnet::DOWNLOADER_CREDIT)
        .await
        .expect("credit");
    let got = net
        .download(&downloader, &popular_id, &[])
        .expect("download despite a corrupt peer");
    assert_eq!(
        std::fs::read(got).expect("read"),
        std::fs::read(&popular).expect("read")
    );
    // The popular file's 8 receipts, besides the ring's 24.
    assert_eq!(
        net.wait_for_receipts(epoch, 24 + 8)
            .await
            .expect("receipts"),
        24 + 8
    );

    // The oracle dies (SIGKILL) mid-epoch; a download happens meanwhile (peers given
    // directly); after the restart the held receipts arrive and the acknowledged ones are
    // still there.
    net.oracle.kill();
    let seeder_c = net
        .peer("seeder-c")
        .expect("c")
        .url()
        .expect("url")
        .to_string();
    net.download(&downloader, &rare_id, &[&seeder_c])
        .expect("download while the oracle is down");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    net.oracle.restart().expect("oracle restarts");
    assert_eq!(
        net.wait_for_receipts(epoch, 24 + 12)
            .await
            .expect("receipts"),
        24 + 12,
        "receipts lost across the oracle restart"
    );

    // A seeder signing receipts for itself: refused, earns nothing.
    let key_a = node_lite::data_dir::DataDir::new(&net.peer("seeder-a").expect("a").dir)
        .key()
        .expect("key");
    let id_a = key_a.node_id();
    let popular_chunks = chunks_of(&manifest(&oracle, &popular_id).await.expect("manifest"));
    let rare_chunks = chunks_of(&manifest(&oracle, &rare_id).await.expect("manifest"));
    let selfish: Vec<_> = popular_chunks.iter().map(|(c, l)| (id_a, *c, *l)).collect();
    let verdicts = post_receipts(&oracle, epoch, &key_a, &selfish)
        .await
        .expect("post");
    assert!(verdicts.iter().all(|v| v == "self_receipt"), "{verdicts:?}");
    // A downloader attesting 5 MiB against a 4 MiB cap: the last MiB is refused.
    let greedy = SecretKey::generate(&mut rand::rngs::OsRng);
    let id_b = net.peer("seeder-b").expect("b").id;
    let id_c = net.peer("seeder-c").expect("c").id;
    let mut claims: Vec<_> = popular_chunks.iter().map(|(c, l)| (id_a, *c, *l)).collect();
    claims.extend(popular_chunks.iter().map(|(c, l)| (id_b, *c, *l)));
    claims.extend(rare_chunks.iter().map(|(c, l)| (id_c, *c, *l)));
    let verdicts = post_receipts(&oracle, epoch, &greedy, &claims)
        .await
        .expect("post");
    assert_eq!(&verdicts[..16], &["accepted"; 16][..]);
    assert_eq!(&verdicts[16..], &["downloader_cap"; 4][..]);
    assert_eq!(
        net.receipts_held(epoch).await.expect("held"),
        12 + 16 + 24,
        "the real downloads', the greedy downloader's and the ring's receipts"
    );

    net.close(epoch).await.expect("close");
    let report = net.claim_epoch(epoch).await.expect("claims");
    eprintln!("{report}");
    report.check().expect("claims match leaves and balances");
    // Mallory served nothing that verified and failed its audits: no pay, low reputation.
    assert!(report.rows.iter().all(|r| r.seeder != mallory), "{report}");
    let page = oracle.seeder(&mallory).await.expect("mallory's page");
    assert!(!page.audits.is_empty(), "{page:?}");
    assert!(
        page.audits
            .iter()
            .all(|a| a.outcome == AuditOutcome::WrongBytes),
        "{page:?}"
    );
    let honest = oracle.seeder(&id_a).await.expect("a's page");
    assert!(
        page.score < honest.score,
        "mallory {page:?} vs honest {honest:?}"
    );
    let on_chain_mallory = net
        .chain
        .reputation_score(&mallory)
        .await
        .expect("score")
        .expect("mallory scored");
    let on_chain_honest = net
        .chain
        .reputation_score(&id_a)
        .await
        .expect("score")
        .expect("a scored");
    assert!(on_chain_mallory.0 < on_chain_honest.0);
    // Seeder c counted its 4 real receipts only (the greedy downloader's were refused); a
    // and b the real 8 plus the greedy downloader's 16 accepted ones. The greedy key has no
    // credit: its receipts are evidence and pay nothing, so the seeders' bandwidth pay is
    // exactly what the funded downloader's credit paid (less the fee, plus a bonus never
    // above it). Before issue 15 these fabricated receipts were paid from the budget.
    let c = report.row("seeder-c").expect("c");
    assert_eq!(c.receipts, 4);
    let ab =
        report.row("seeder-a").expect("a").receipts + report.row("seeder-b").expect("b").receipts;
    assert_eq!(ab, 8 + 16);
    let spent = oracle
        .credit(&credit.downloader)
        .await
        .expect("credit")
        .spent;
    assert_eq!(spent, 3 * MIB as u128 * u128::from(credit.price_per_byte));
    let greedy_credit = oracle.credit(&greedy.node_id()).await.expect("credit");
    assert_eq!((greedy_credit.funded, greedy_credit.spent), (0, 0));
    let bandwidth: u128 = net
        .leaves(epoch)
        .await
        .expect("leaves")
        .iter()
        .map(|l| l.bandwidth_amount)
        .sum();
    let cheat = net
        .cheat_report(epoch, &ring, &farm, &rare_id)
        .await
        .expect("cheat report");
    eprintln!("{cheat}");
    assert!(
        bandwidth <= spent + cheat.ring_debited,
        "{bandwidth} > {spent} + {}",
        cheat.ring_debited
    );

    // The ring: its receipts counted, its credited keys paid it, and yet it did not gain:
    // its sponsorship comes back once, its keys' debits at most (less the fee, plus a bonus
    // never above it); its seeder is new, so it gets half until vetted, and loses.
    assert_eq!(cheat.ring_receipts, 24);
    assert_eq!(
        cheat.ring_debited,
        3 * MIB as u128 * u128::from(credit.price_per_byte)
    );
    assert!(cheat.ring_paid > 0, "{cheat}");
    assert!(cheat.ring_net() < 0, "{cheat}");
    // The farm: one of its three keys counts (one network, one replica) and is paid one
    // replica's share; the honest seeders are paid exactly what the same epoch pays them
    // without the ring and with the farm as one node.
    assert_eq!(cheat.farm_counted, 1, "{cheat}");
    assert!(cheat.farm_storage > 0, "{cheat}");
    assert!(
        cheat
            .honest
            .iter()
            .any(|p| p.name == "seeder-a" && p.paid > 0),
        "{cheat}"
    );
    cheat
        .check()
        .expect("the ring loses, the farm counts once, honest pay unchanged");

    // A claim for more than the leaf: the chain refuses, nothing moves.
    let leaf_a = net
        .leaves(epoch)
        .await
        .expect("leaves")
        .into_iter()
        .find(|l| l.seeder == id_a)
        .expect("a's leaf");
    let before = net.chain.balance(&leaf_a.payout).await.expect("balance");
    let claimed = net.chain.claimed(&id_a).await.expect("claimed");
    let wrong = net
        .chain
        .claim(
            epoch,
            &id_a,
            &leaf_a.payout,
            leaf_a.amount + 1,
            &leaf_a.proof,
        )
        .await;
    match wrong {
        Err(ChainError::Refused { error, .. }) => assert_eq!(error, "BadProof"),
        other => panic!("a wrong amount was not refused: {other:?}"),
    }
    assert_eq!(
        net.chain.balance(&leaf_a.payout).await.expect("balance"),
        before
    );
    assert_eq!(net.chain.claimed(&id_a).await.expect("claimed"), claimed);
}
