//! The whole life of an epoch across the four contracts, on a real pallet-revive runtime:
//! funding, committee submissions reaching the threshold, a veto through governance inside
//! the challenge window, claims paying real balances, double and wrong-proof claims refused,
//! governance changing a multiplier through propose/approve/timelock/execute, reputation
//! batches, and unauthorized calls refused.
//!
//! The same suite runs on the in-process sandbox runtime and, with `--features node-tests`,
//! on a real ink-node (`CONTRACTS_NODE=/path/to/ink-node`, or `ink-node` on `PATH`).

use dsi_contract_tests::{default_bounds, default_market, default_params, RewardTree, UNIT};
use governance::governance::{Action, Governance, GovernanceRef};
use ink::Address;
use ink_e2e::{ChainBackend, ContractsBackend, E2EBackend, Keypair, Sr25519Keyring};
use multipliers::multipliers::{Curve, Market, Multipliers, MultipliersRef};
use reputation::reputation::{Reputation, ReputationRef, Score};
use reward_pool::reward_pool::{Claim, EpochStatus, Error as PoolError, RewardPool, RewardPoolRef};

type E2EResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Challenge window of the pool, and the governance timelock (blocks). The pool refuses a
/// window shorter than the timelock plus `VETO_MARGIN_BLOCKS`, so governance can veto in time.
const CHALLENGE_BLOCKS: u32 = 30;
const TIMELOCK_BLOCKS: u32 = 2;
/// The pool's per-epoch cap.
const MAX_EPOCH_TOTAL: u128 = 100 * UNIT;
/// Most a call may pay for storage: the e2e client's default limit (0) makes dry runs
/// under-estimate the deposit of calls that create storage.
const DEPOSIT_LIMIT: u128 = UNIT;

fn address(account: Sr25519Keyring) -> Address {
    ink_e2e::address::<ink::env::DefaultEnvironment>(account)
}

/// Submits a message that must succeed and returns its value.
macro_rules! ok {
    ($client:expr, $who:expr, $message:expr) => {{
        let message = $message;
        let result = $client
            .call($who, &message)
            .storage_deposit_limit(DEPOSIT_LIMIT)
            .submit()
            .await
            .expect("call submitted");
        result.return_value().expect("message returned Ok")
    }};
}

/// Dry-runs a message and returns its result (for refusals: nothing is submitted).
macro_rules! dry {
    ($client:expr, $who:expr, $message:expr) => {{
        let message = $message;
        $client
            .call($who, &message)
            .storage_deposit_limit(DEPOSIT_LIMIT)
            .dry_run()
            .await
            .expect("dry run")
            .return_value()
    }};
}

/// Builds `n` blocks (on the sandbox only instantiation builds a block; on a node every
/// transaction is one).
async fn advance<Client: E2EBackend>(client: &mut Client, n: u32)
where
    Client::AccountId: From<[u8; 32]>,
    Client::Balance: Into<u128>,
    <Client as ChainBackend>::Error: std::fmt::Debug,
    <Client as ContractsBackend<ink::env::DefaultEnvironment>>::Error: std::fmt::Debug,
{
    for _ in 0..n {
        let mut constructor = GovernanceRef::new(vec![address(Sr25519Keyring::Alice)], 1, 0);
        client
            .instantiate("governance", &ink_e2e::alice(), &mut constructor)
            .submit()
            .await
            .expect("a block-building instantiation");
    }
}

async fn balance<Client: E2EBackend>(client: &mut Client, who: &Keypair) -> u128
where
    Client::AccountId: From<[u8; 32]>,
    Client::Balance: Into<u128>,
    <Client as ChainBackend>::Error: std::fmt::Debug,
    <Client as ContractsBackend<ink::env::DefaultEnvironment>>::Error: std::fmt::Debug,
{
    client
        .free_balance(Client::AccountId::from(who.public_key().0))
        .await
        .expect("balance")
        .into()
}

async fn lifecycle<Client: E2EBackend>(mut client: Client) -> E2EResult<()>
where
    Client::AccountId: From<[u8; 32]>,
    Client::Balance: Into<u128>,
    <Client as ChainBackend>::Error: std::fmt::Debug,
    <Client as ContractsBackend<ink::env::DefaultEnvironment>>::Error: std::fmt::Debug,
{
    let (alice, bob, charlie, dave, eve, ferdie) = (
        ink_e2e::alice(),
        ink_e2e::bob(),
        ink_e2e::charlie(),
        ink_e2e::dave(),
        ink_e2e::eve(),
        ink_e2e::ferdie(),
    );
    let committee = vec![address(Sr25519Keyring::Dave), address(Sr25519Keyring::Eve)];

    // Given: governance with a council of alice, bob and charlie (2 of 3), and the three
    // contracts it administers.
    let council = vec![
        address(Sr25519Keyring::Alice),
        address(Sr25519Keyring::Bob),
        address(Sr25519Keyring::Charlie),
    ];
    let mut constructor = GovernanceRef::new(council, 2, TIMELOCK_BLOCKS);
    let gov = client
        .instantiate("governance", &alice, &mut constructor)
        .submit()
        .await
        .expect("submitted");
    let gov_address = gov.addr;
    let mut gov = gov.call_builder::<Governance>();
    let mut constructor = RewardPoolRef::new(
        gov_address,
        committee.clone(),
        2,
        CHALLENGE_BLOCKS,
        TIMELOCK_BLOCKS,
        MAX_EPOCH_TOTAL,
    );
    let pool = client
        .instantiate("reward_pool", &alice, &mut constructor)
        .submit()
        .await
        .expect("submitted");
    let pool_address = pool.addr;
    let mut pool = pool.call_builder::<RewardPool>();
    let mut constructor = ReputationRef::new(gov_address, committee, 2);
    let mut reputation = client
        .instantiate("reputation", &alice, &mut constructor)
        .submit()
        .await
        .expect("submitted")
        .call_builder::<Reputation>();
    let mut constructor = MultipliersRef::new(
        gov_address,
        default_bounds(),
        default_params(),
        default_market(),
    );
    let mults = client
        .instantiate("multipliers", &alice, &mut constructor)
        .submit()
        .await
        .expect("submitted");
    let mults_address = mults.addr;
    let mut mults = mults.call_builder::<Multipliers>();

    // When: alice funds the pool with 100 tokens.
    let funded = client
        .call(&alice, &pool.fund())
        .value(100 * UNIT)
        .submit()
        .await
        .expect("submitted");
    assert_eq!(funded.return_value(), Ok(100 * UNIT));
    let free = dry!(client, &alice, pool.free_balance());
    assert!(free >= 100 * UNIT, "free balance {free}");

    // Epoch 1: seeder A (paid to ferdie) earned 10 tokens, seeder B (paid to bob) 5.
    let (seeder_a, seeder_b) = ([0xA1; 32], [0xB2; 32]);
    let epoch1 = RewardTree::new(
        1,
        &[
            (seeder_a, address(Sr25519Keyring::Ferdie), 10 * UNIT),
            (seeder_b, address(Sr25519Keyring::Bob), 5 * UNIT),
        ],
    );
    // Then: an outsider cannot submit; one member is not enough; the second identical
    // submission makes the epoch final and reserves its total.
    assert_eq!(
        dry!(
            client,
            &ferdie,
            pool.submit(
                1,
                None,
                epoch1.root(),
                epoch1.total(),
                [7; 32],
                epoch1.total(),
                Vec::new()
            )
        ),
        Err(PoolError::Unauthorized)
    );
    assert!(!ok!(
        client,
        &dave,
        pool.submit(
            1,
            None,
            epoch1.root(),
            epoch1.total(),
            [7; 32],
            epoch1.total(),
            Vec::new()
        )
    ));
    assert_eq!(
        dry!(
            client,
            &dave,
            pool.submit(
                1,
                None,
                epoch1.root(),
                epoch1.total(),
                [7; 32],
                epoch1.total(),
                Vec::new()
            )
        ),
        Err(PoolError::AlreadyVoted)
    );
    assert!(dry!(client, &alice, pool.epoch(1)).is_none());
    assert!(ok!(
        client,
        &eve,
        pool.submit(
            1,
            None,
            epoch1.root(),
            epoch1.total(),
            [7; 32],
            epoch1.total(),
            Vec::new()
        )
    ));
    let record = dry!(client, &alice, pool.epoch(1)).expect("epoch 1 is final");
    assert_eq!(
        (record.root, record.total, record.status),
        (epoch1.root(), 15 * UNIT, EpochStatus::Final)
    );
    assert_eq!(dry!(client, &alice, pool.reserved()), 15 * UNIT);

    // An epoch above the per-epoch cap is refused at the first vote.
    let greedy = RewardTree::new(
        2,
        &[(seeder_a, address(Sr25519Keyring::Ferdie), 1_000 * UNIT)],
    );
    assert_eq!(
        dry!(
            client,
            &dave,
            pool.submit(
                2,
                Some(1),
                greedy.root(),
                greedy.total(),
                [8; 32],
                greedy.total(),
                Vec::new()
            )
        ),
        Err(PoolError::EpochTotalTooLarge)
    );
    // An epoch that does not build on the latest good epoch is refused.
    assert_eq!(
        dry!(
            client,
            &dave,
            pool.submit(
                2,
                None,
                epoch1.root(),
                epoch1.total(),
                [8; 32],
                epoch1.total(),
                Vec::new()
            )
        ),
        Err(PoolError::WrongBase)
    );
    // An epoch the pool cannot pay is refused, and leaves nothing behind.
    let greedy = RewardTree::new(2, &[(seeder_a, address(Sr25519Keyring::Ferdie), 90 * UNIT)]);
    assert!(!ok!(
        client,
        &dave,
        pool.submit(
            2,
            Some(1),
            greedy.root(),
            greedy.total(),
            [8; 32],
            greedy.total(),
            Vec::new()
        )
    ));
    assert_eq!(
        dry!(
            client,
            &eve,
            pool.submit(
                2,
                Some(1),
                greedy.root(),
                greedy.total(),
                [8; 32],
                greedy.total(),
                Vec::new()
            )
        ),
        Err(PoolError::InsufficientFunds)
    );

    // Epoch 2: a bad root becomes final, and governance vetoes it inside the window.
    let bad = RewardTree::new(2, &[(seeder_a, address(Sr25519Keyring::Ferdie), 60 * UNIT)]);
    assert!(!ok!(
        client,
        &eve,
        pool.submit(
            2,
            Some(1),
            bad.root(),
            50 * UNIT,
            [9; 32],
            50 * UNIT,
            Vec::new()
        )
    ));
    assert!(ok!(
        client,
        &dave,
        pool.submit(
            2,
            Some(1),
            bad.root(),
            50 * UNIT,
            [9; 32],
            50 * UNIT,
            Vec::new()
        )
    ));
    assert_eq!(
        dry!(client, &alice, pool.veto(2)),
        Err(PoolError::Unauthorized),
        "only governance vetoes"
    );
    let veto = Action::Call {
        callee: pool_address,
        selector: ink::selector_bytes!("veto"),
        input: ink::scale::Encode::encode(&2u64),
    };
    let id = ok!(client, &alice, gov.propose(veto));
    ok!(client, &bob, gov.approve(id));
    assert_eq!(
        dry!(client, &alice, gov.execute(id)),
        Err(governance::governance::Error::Timelocked)
    );
    advance(&mut client, TIMELOCK_BLOCKS).await;
    ok!(client, &charlie, gov.execute(id));
    assert_eq!(
        dry!(client, &alice, pool.epoch(2)).expect("epoch 2").status,
        EpochStatus::Vetoed
    );
    assert_eq!(
        dry!(client, &alice, pool.reserved()),
        15 * UNIT,
        "the veto released epoch 2's reservation"
    );
    // The next epoch builds on epoch 1 again; the vetoed epoch is no base.
    assert_eq!(dry!(client, &alice, pool.last_good_epoch()), Some(1));
    assert_eq!(
        dry!(
            client,
            &dave,
            pool.submit(3, Some(2), [3; 32], 0, [3; 32], 0, Vec::new())
        ),
        Err(PoolError::WrongBase)
    );

    // Claims wait for the window to close. (On a node every transaction is a block, on the
    // sandbox only instantiations are: read where the chain is instead of assuming.)
    let claimable_from = dry!(client, &alice, pool.epoch(1))
        .expect("epoch 1")
        .claimable_from;
    let now = dry!(client, &alice, pool.current_block());
    assert!(
        now < claimable_from,
        "still inside the window at block {now}"
    );
    assert_eq!(
        dry!(
            client,
            &alice,
            pool.claim(
                1,
                seeder_a,
                address(Sr25519Keyring::Ferdie),
                10 * UNIT,
                epoch1.proof(0)
            )
        ),
        Err(PoolError::InChallengeWindow)
    );
    advance(&mut client, claimable_from - now).await;

    // Claims pay the payout accounts exactly the leaf amounts (alice submits them, so the
    // payout accounts pay no fees).
    // Payout accounts must be mapped to receive on their own account; earlier calls may
    // already have mapped them (a second mapping is refused, which is fine).
    let _ = client.map_account(&ferdie).await;
    let _ = client.map_account(&bob).await;
    let (ferdie_before, bob_before) = (
        balance(&mut client, &ferdie).await,
        balance(&mut client, &bob).await,
    );
    assert_eq!(
        dry!(
            client,
            &alice,
            pool.claim(
                1,
                seeder_a,
                address(Sr25519Keyring::Ferdie),
                11 * UNIT,
                epoch1.proof(0)
            )
        ),
        Err(PoolError::BadProof),
        "wrong amount"
    );
    assert_eq!(
        dry!(
            client,
            &alice,
            pool.claim(
                1,
                seeder_a,
                address(Sr25519Keyring::Ferdie),
                10 * UNIT,
                epoch1.proof(1)
            )
        ),
        Err(PoolError::BadProof),
        "wrong proof"
    );
    assert_eq!(
        dry!(
            client,
            &alice,
            pool.claim(
                1,
                seeder_a,
                address(Sr25519Keyring::Alice),
                10 * UNIT,
                epoch1.proof(0)
            )
        ),
        Err(PoolError::BadProof),
        "wrong payout"
    );
    assert_eq!(
        ok!(
            client,
            &alice,
            pool.claim(
                1,
                seeder_a,
                address(Sr25519Keyring::Ferdie),
                10 * UNIT,
                epoch1.proof(0)
            )
        ),
        10 * UNIT
    );
    assert_eq!(
        ok!(
            client,
            &alice,
            pool.claim(
                1,
                seeder_b,
                address(Sr25519Keyring::Bob),
                5 * UNIT,
                epoch1.proof(1)
            )
        ),
        5 * UNIT
    );
    assert_eq!(
        balance(&mut client, &ferdie).await - ferdie_before,
        10 * UNIT
    );
    assert_eq!(balance(&mut client, &bob).await - bob_before, 5 * UNIT);
    assert_eq!(
        dry!(
            client,
            &alice,
            pool.claim(
                1,
                seeder_a,
                address(Sr25519Keyring::Ferdie),
                10 * UNIT,
                epoch1.proof(0)
            )
        ),
        Err(PoolError::AlreadyClaimed)
    );
    assert_eq!(
        dry!(
            client,
            &alice,
            pool.claim(
                2,
                seeder_a,
                address(Sr25519Keyring::Ferdie),
                60 * UNIT,
                bad.proof(0)
            )
        ),
        Err(PoolError::EpochVetoed)
    );
    assert_eq!(dry!(client, &alice, pool.reserved()), 0);
    assert_eq!(dry!(client, &alice, pool.claimed(seeder_a)), 10 * UNIT);

    // Governance raises the rarity multiplier: propose, approve, timelock, execute.
    let steeper = Curve {
        base: 1_000_000,
        slope: 500_000,
        min: 1_000_000,
        max: 3_000_000,
    };
    assert_eq!(
        dry!(client, &alice, mults.set_rarity(steeper, 4)),
        Err(multipliers::multipliers::Error::Unauthorized)
    );
    let raise = Action::Call {
        callee: mults_address,
        selector: ink::selector_bytes!("set_rarity"),
        input: ink::scale::Encode::encode(&(steeper, 4u32)),
    };
    let id = ok!(client, &bob, gov.propose(raise));
    assert_eq!(
        dry!(client, &bob, gov.execute(id)),
        Err(governance::governance::Error::NotApproved)
    );
    assert_eq!(
        dry!(client, &ferdie, gov.approve(id)),
        Err(governance::governance::Error::Unauthorized)
    );
    ok!(client, &charlie, gov.approve(id));
    advance(&mut client, TIMELOCK_BLOCKS).await;
    ok!(client, &alice, gov.execute(id));
    let params = dry!(client, &alice, mults.params());
    assert_eq!((params.rarity, params.target_replication), (steeper, 4));
    assert_eq!(
        dry!(client, &alice, gov.execute(id)),
        Err(governance::governance::Error::AlreadyExecuted)
    );
    // A change outside the hard bounds fails at execution.
    let too_steep = Curve {
        max: 9_000_000,
        ..steeper
    };
    let wild = Action::Call {
        callee: mults_address,
        selector: ink::selector_bytes!("set_rarity"),
        input: ink::scale::Encode::encode(&(too_steep, 4u32)),
    };
    let id = ok!(client, &bob, gov.propose(wild));
    ok!(client, &alice, gov.approve(id));
    advance(&mut client, TIMELOCK_BLOCKS).await;
    assert_eq!(
        dry!(client, &alice, gov.execute(id)),
        Err(governance::governance::Error::ExecutionFailed)
    );

    // Governance moves the market; a fee of zero (paying oneself free) never executes.
    let dearer = Market {
        price_per_byte: 2_000,
        fee: 200_000,
        vetting_audits: 12,
        unvetted_share: 250_000,
    };
    for (market, executes) in [(Market { fee: 0, ..dearer }, false), (dearer, true)] {
        let change = Action::Call {
            callee: mults_address,
            selector: ink::selector_bytes!("set_market"),
            input: ink::scale::Encode::encode(&market),
        };
        let id = ok!(client, &bob, gov.propose(change));
        ok!(client, &alice, gov.approve(id));
        advance(&mut client, TIMELOCK_BLOCKS).await;
        if executes {
            ok!(client, &alice, gov.execute(id));
        } else {
            assert_eq!(
                dry!(client, &alice, gov.execute(id)),
                Err(governance::governance::Error::ExecutionFailed)
            );
        }
    }
    assert_eq!(dry!(client, &alice, mults.market()), dearer);

    // The committee writes reputation scores for epoch 1.
    let batch = vec![(seeder_a, 950_000u32), (seeder_b, 400_000u32)];
    assert!(!ok!(client, &dave, reputation.submit(1, 0, batch.clone())));
    assert!(ok!(client, &eve, reputation.submit(1, 0, batch)));
    assert_eq!(
        dry!(client, &ferdie, reputation.score(seeder_a)),
        Some(Score {
            ppm: 950_000,
            epoch: 1
        })
    );
    assert_eq!(
        dry!(
            client,
            &ferdie,
            reputation.set_committee(vec![address(Sr25519Keyring::Ferdie)], 1)
        ),
        Err(reputation::reputation::Error::Unauthorized)
    );

    // Governance rotates the oracle committee of the pool.
    let rotate = Action::Call {
        callee: pool_address,
        selector: ink::selector_bytes!("set_committee"),
        input: ink::scale::Encode::encode(&(vec![address(Sr25519Keyring::Ferdie)], 1u32)),
    };
    let id = ok!(client, &alice, gov.propose(rotate));
    ok!(client, &bob, gov.approve(id));
    advance(&mut client, TIMELOCK_BLOCKS).await;
    ok!(client, &alice, gov.execute(id));
    assert_eq!(
        dry!(client, &alice, pool.committee()),
        (vec![address(Sr25519Keyring::Ferdie)], 1)
    );
    assert_eq!(
        dry!(
            client,
            &dave,
            pool.submit(3, Some(1), [3; 32], 0, [3; 32], 0, Vec::new())
        ),
        Err(PoolError::Unauthorized)
    );
    assert!(ok!(
        client,
        &ferdie,
        pool.submit(3, Some(1), [3; 32], 0, [3; 32], 0, Vec::new())
    ));
    Ok(())
}

/// The protocol's golden Merkle vectors verify on chain: their root is submitted as an
/// epoch and every leaf's claim pays its amount: the first leaf through `claim`, the others
/// in one `claim_many`.
async fn golden_vectors<Client: E2EBackend>(mut client: Client) -> E2EResult<()>
where
    Client::AccountId: From<[u8; 32]>,
    Client::Balance: Into<u128>,
    <Client as ChainBackend>::Error: std::fmt::Debug,
    <Client as ContractsBackend<ink::env::DefaultEnvironment>>::Error: std::fmt::Debug,
{
    let text = include_str!("../../../protocol/tests/vectors/merkle.json");
    let vectors: serde_json::Value = serde_json::from_str(text)?;
    let hex32 = |v: &serde_json::Value| -> [u8; 32] {
        hex::decode(v.as_str().expect("hex string"))
            .expect("hex")
            .try_into()
            .expect("32 bytes")
    };
    let leaves = vectors["leaves"].as_array().expect("leaves");
    let total: u128 = leaves
        .iter()
        .map(|l| {
            l["leaf"]["amount"]
                .as_str()
                .expect("amount")
                .parse::<u128>()
                .expect("u128")
        })
        .sum();
    let epoch = leaves[0]["leaf"]["epoch"].as_u64().expect("epoch");
    let alice = ink_e2e::alice();
    let mut constructor = RewardPoolRef::new(
        address(Sr25519Keyring::Alice),
        vec![address(Sr25519Keyring::Alice)],
        1,
        reward_pool::reward_pool::VETO_MARGIN_BLOCKS,
        0,
        total,
    );
    let mut pool = client
        .instantiate("reward_pool", &alice, &mut constructor)
        .submit()
        .await
        .expect("submitted")
        .call_builder::<RewardPool>();
    client
        .call(&alice, &pool.fund())
        .value(total)
        .submit()
        .await
        .expect("submitted");
    assert!(ok!(
        client,
        &alice,
        pool.submit(
            epoch,
            None,
            hex32(&vectors["root"]),
            total,
            [0; 32],
            total,
            Vec::new()
        )
    ));
    let claimable_from = dry!(client, &alice, pool.epoch(epoch))
        .expect("final")
        .claimable_from;
    let now = dry!(client, &alice, pool.current_block());
    advance(&mut client, claimable_from.saturating_sub(now)).await;
    let claims: Vec<Claim> = leaves
        .iter()
        .map(|entry| {
            let leaf = &entry["leaf"];
            let payout: [u8; 20] = hex::decode(
                leaf["payout"]
                    .as_str()
                    .expect("payout")
                    .trim_start_matches("0x"),
            )
            .expect("hex")
            .try_into()
            .expect("20 bytes");
            Claim {
                epoch,
                seeder: hex32(&leaf["seeder"]),
                payout: Address::from(payout),
                amount: leaf["amount"]
                    .as_str()
                    .expect("amount")
                    .parse()
                    .expect("u128"),
                proof: entry["proof"]
                    .as_array()
                    .expect("proof")
                    .iter()
                    .map(hex32)
                    .collect(),
            }
        })
        .collect();
    let (first, rest) = claims.split_first().expect("leaves");
    let paid = ok!(
        client,
        &alice,
        pool.claim(
            first.epoch,
            first.seeder,
            first.payout,
            first.amount,
            first.proof.clone()
        )
    );
    assert_eq!(paid, first.amount);
    assert_eq!(
        dry!(client, &alice, pool.claim_many(claims.clone())),
        Err(PoolError::AlreadyClaimed),
        "the first leaf is paid already"
    );
    let paid = ok!(client, &alice, pool.claim_many(rest.to_vec()));
    assert_eq!(paid, rest.iter().map(|c| c.amount).sum::<u128>());
    for c in &claims {
        assert_eq!(
            dry!(client, &alice, pool.claimed_in(epoch, c.seeder)),
            Some(c.amount)
        );
    }
    assert_eq!(dry!(client, &alice, pool.reserved()), 0);
    Ok(())
}

#[ink_e2e::test(backend(runtime_only))]
async fn epoch_lifecycle_on_the_sandbox<Client: E2EBackend>(client: Client) -> E2EResult<()> {
    lifecycle(client).await
}

#[ink_e2e::test(backend(runtime_only))]
async fn golden_vectors_on_the_sandbox<Client: E2EBackend>(client: Client) -> E2EResult<()> {
    golden_vectors(client).await
}

#[cfg(feature = "node-tests")]
#[ink_e2e::test(backend(node))]
async fn epoch_lifecycle_on_ink_node<Client: E2EBackend>(client: Client) -> E2EResult<()> {
    lifecycle(client).await
}

#[cfg(feature = "node-tests")]
#[ink_e2e::test(backend(node))]
async fn golden_vectors_on_ink_node<Client: E2EBackend>(client: Client) -> E2EResult<()> {
    golden_vectors(client).await
}
