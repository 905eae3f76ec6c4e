//! Cost benchmark on the sandbox runtime: weight (ref_time, proof_size) and storage deposit
//! of `claim` for reward trees of 2^4, 2^10 and 2^16 leaves, and of `submit` (the first vote
//! and the one that makes an epoch final).
//!
//! Run it with `cargo test -p dsi-contract-tests --test costs -- --nocapture` to see the
//! table. Weights on the sandbox are deterministic (not timings), so the goals are checked:
//! claim cost grows with log(n) (2^16 leaves cost at most 1.5x 2^4 leaves) and submit cost
//! does not depend on the number of seeders.

use dsi_contract_tests::RewardTree;
use ink::Address;
use ink_e2e::{ContractsBackend, Sr25519Keyring};
use reward_pool::reward_pool::{RewardPool, RewardPoolRef};

type E2EResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Most a call may pay for storage (the e2e client's default of 0 makes dry runs
/// under-estimate the deposit of calls that create storage).
const DEPOSIT_LIMIT: u128 = dsi_contract_tests::UNIT;

fn address(account: Sr25519Keyring) -> Address {
    ink_e2e::address::<ink::env::DefaultEnvironment>(account)
}

/// One measured call.
#[derive(Debug, Clone)]
struct Cost {
    ref_time: u64,
    proof_size: u64,
    deposit: String,
}

macro_rules! measure {
    ($client:expr, $who:expr, $message:expr) => {{
        let message = $message;
        let dry_run = $client
            .call($who, &message)
            .storage_deposit_limit(DEPOSIT_LIMIT)
            .dry_run()
            .await
            .expect("dry run");
        assert!(
            !dry_run.is_err(),
            "the measured call must succeed: {:?}",
            dry_run.exec_result.result
        );
        let result = &dry_run.exec_result;
        Cost {
            ref_time: result.gas_consumed.ref_time(),
            proof_size: result.gas_consumed.proof_size(),
            deposit: format!("{:?}", result.storage_deposit),
        }
    }};
}

#[ink_e2e::test(backend(runtime_only))]
async fn claim_and_submit_costs<Client: E2EBackend>(mut client: Client) -> E2EResult<()> {
    let (alice, bob) = (ink_e2e::alice(), ink_e2e::bob());
    let committee = vec![address(Sr25519Keyring::Alice), address(Sr25519Keyring::Bob)];
    let window = reward_pool::reward_pool::VETO_MARGIN_BLOCKS;
    let mut constructor = RewardPoolRef::new(
        address(Sr25519Keyring::Alice),
        committee,
        2,
        window,
        0,
        100 * dsi_contract_tests::UNIT,
    );
    let mut pool = client
        .instantiate("reward_pool", &alice, &mut constructor)
        .submit()
        .await
        .expect("submitted")
        .call_builder::<RewardPool>();
    client
        .call(&alice, &pool.fund())
        .value(100 * dsi_contract_tests::UNIT)
        .submit()
        .await
        .expect("submitted");
    // The payout account exists (mapped), so tiny claims need no existential deposit.
    ink_e2e::BuilderClient::<ink::env::DefaultEnvironment>::map_account(
        &mut client,
        &ink_e2e::ferdie(),
    )
    .await
    .expect("mapped");

    let mut rows = Vec::new();
    // An empty first epoch, so every measured epoch builds on a base (the first one reads
    // no base record and would be cheaper).
    for member in [&alice, &bob] {
        client
            .call(
                member,
                &pool.submit(1, None, [0; 32], 0, [0; 32], 0, Vec::new()),
            )
            .storage_deposit_limit(DEPOSIT_LIMIT)
            .submit()
            .await
            .expect("submitted");
    }
    let mut base = Some(1);
    for (epoch, exponent) in [(2u64, 4u32), (3, 10), (4, 16)] {
        let leaves = 1usize << exponent;
        let tree = RewardTree::synthetic(epoch, leaves, address(Sr25519Keyring::Ferdie));
        let (root, total) = (tree.root(), tree.total());
        let first_vote = measure!(
            client,
            &alice,
            pool.submit(epoch, base, root, total, [0; 32], total, Vec::new())
        );
        client
            .call(
                &alice,
                &pool.submit(epoch, base, root, total, [0; 32], total, Vec::new()),
            )
            .storage_deposit_limit(DEPOSIT_LIMIT)
            .submit()
            .await
            .expect("submitted");
        let final_vote = measure!(
            client,
            &bob,
            pool.submit(epoch, base, root, total, [0; 32], total, Vec::new())
        );
        client
            .call(
                &bob,
                &pool.submit(epoch, base, root, total, [0; 32], total, Vec::new()),
            )
            .storage_deposit_limit(DEPOSIT_LIMIT)
            .submit()
            .await
            .expect("submitted");
        base = Some(epoch);
        // Claims wait for the challenge window (on the sandbox, instantiations build blocks).
        for _ in 0..window {
            let mut builder = RewardPoolRef::new(
                address(Sr25519Keyring::Alice),
                vec![address(Sr25519Keyring::Alice)],
                1,
                window,
                0,
                0,
            );
            client
                .instantiate("reward_pool", &alice, &mut builder)
                .submit()
                .await
                .expect("a block-building instantiation");
        }
        // The last leaf has a proof as long as any in the tree.
        let index = leaves - 1;
        let leaf = tree.leaves[index];
        let proof = tree.proof(index);
        let proof_len = proof.len();
        let claim = measure!(
            client,
            &alice,
            pool.claim(
                epoch,
                leaf.seeder.0,
                address(Sr25519Keyring::Ferdie),
                leaf.amount,
                proof
            )
        );
        rows.push((leaves, proof_len, first_vote, final_vote, claim));
    }

    println!("\nreward_pool costs on the sandbox runtime (dry runs)");
    println!(
        "{:>8} {:>6} | {:>14} {:>10} | {:>14} {:>10} | {:>14} {:>10} | claim deposit",
        "leaves",
        "proof",
        "claim ref_time",
        "proof_sz",
        "submit 1st",
        "proof_sz",
        "submit final",
        "proof_sz"
    );
    for (leaves, proof_len, first, last, claim) in &rows {
        println!(
            "{leaves:>8} {proof_len:>6} | {:>14} {:>10} | {:>14} {:>10} | {:>14} {:>10} | {}",
            claim.ref_time,
            claim.proof_size,
            first.ref_time,
            first.proof_size,
            last.ref_time,
            last.proof_size,
            claim.deposit
        );
    }
    let (small, large) = (&rows[0].4, &rows[2].4);
    let claim_ratio = large.ref_time as f64 / small.ref_time as f64;
    let submit_spread = rows.iter().map(|r| r.3.ref_time).max().unwrap_or(0) as f64
        / rows.iter().map(|r| r.3.ref_time).min().unwrap_or(1) as f64;
    println!("claim ref_time 2^16 / 2^4 = {claim_ratio:.3} (goal <= 1.5); final submit max/min over tree sizes = {submit_spread:.3}");
    println!(
        "summary: claim_ref_time_2_4={} claim_ref_time_2_10={} claim_ref_time_2_16={} claim_ratio={claim_ratio:.3} submit_ref_time={} submit_spread={submit_spread:.3}",
        rows[0].4.ref_time, rows[1].4.ref_time, rows[2].4.ref_time, rows[2].3.ref_time
    );
    assert!(
        claim_ratio <= 1.5,
        "claim cost must grow with log(n): ratio {claim_ratio}"
    );
    assert!(
        submit_spread <= 1.05,
        "submit cost must not depend on the number of seeders: spread {submit_spread}"
    );
    Ok(())
}
