//! The simulator's scaled-down run (CI): 1 and 10 attacker keys, one measured epoch. Every
//! attack that uses only the attacker's own keys, content and traffic nets at most zero, the
//! honest seeders lose nothing against the baseline, the farm below target takes at most one
//! replica's share (exactly that once its keys are vetted: a patient attacker is measured
//! too), and the rarity rule brings every content to its target while a flat
//! rule does not.

use sim::{Attack, Settings, dynamics};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_attack_pays_and_honest_seeders_lose_nothing() {
    let settings = Settings {
        keys: vec![1, 10],
        epochs: 1,
        epoch_ms: 1_500,
        attacks: Vec::new(),
    };
    let report = sim::run_all(&settings, |o| eprintln!("{o:?}"))
        .await
        .expect("the simulation runs");
    println!("{}", report.table());
    println!("{}", report.summary());
    let baseline = report
        .outcomes
        .iter()
        .find(|o| o.attack == Attack::Baseline)
        .expect("baseline");
    assert!(baseline.honest > 0, "the honest population is paid");
    for outcome in &report.outcomes {
        if outcome.attack.own_resources_only() {
            assert!(outcome.net() <= 0, "{outcome:?}");
        }
        assert!(outcome.net() <= outcome.allowance as i128, "{outcome:?}");
    }
    // The unfunded ring is paid nothing at all; the farm at target neither.
    for outcome in &report.outcomes {
        if matches!(outcome.attack, Attack::RingUnfunded | Attack::ReplicaFarm) {
            assert_eq!(outcome.reward, 0, "{outcome:?}");
        }
        if outcome.attack == Attack::HoldingHalf {
            assert_eq!(outcome.reward, 0, "it fails every audit: {outcome:?}");
        }
        if outcome.attack == Attack::ReplicaFarmBelowTarget {
            assert!(outcome.reward > 0, "one real replica is paid: {outcome:?}");
        }
        if outcome.attack == Attack::ProxyFarm {
            // Announcing through proxies in other networks: every announcement refused.
            assert_eq!(outcome.refused, outcome.keys, "{outcome:?}");
            assert_eq!(outcome.reward, 0, "{outcome:?}");
        }
    }
    // A patient attacker, vetted before it is measured, earns the full share a new key
    // earns half of, and still nets at most zero.
    for attack in Attack::ALL
        .into_iter()
        .filter(|a| a.vettable() && a.keyed())
    {
        for keys in [1, 10] {
            let find = |vetted| {
                report
                    .outcomes
                    .iter()
                    .find(|o| o.attack == attack && o.keys == keys && o.vetted == vetted)
                    .unwrap_or_else(|| panic!("{attack:?} with {keys} keys, vetted {vetted}"))
            };
            let (new, patient) = (find(false), find(true));
            if attack == Attack::ReplicaFarm {
                // At target: no place to take, new or patient.
                assert_eq!((new.reward, patient.reward), (0, 0), "{patient:?}");
                continue;
            }
            assert!(new.reward > 0, "a new attacker is paid something: {new:?}");
            assert!(
                patient.reward > new.reward,
                "vetting pays more: {patient:?}"
            );
            if attack == Attack::ReplicaFarmBelowTarget {
                // Exactly one replica's share, half of it before vetting: the figures that
                // prove the patient keys really were vetted.
                assert_eq!(patient.net(), patient.allowance as i128, "{patient:?}");
                assert_eq!(2 * new.reward, patient.reward, "{new:?} {patient:?}");
            }
        }
    }
    // The patient baseline aged as long as the patient scenarios: its honest seeders are
    // vetted and paid more than the new baseline's.
    assert!(
        report.baseline(true) > report.baseline(false),
        "{:?} {:?}",
        report.baseline(true),
        report.baseline(false)
    );
    assert!(report.worst_attacker_net_ppm() <= 0, "{}", report.summary());
    assert!(report.honest_loss_ppm() <= 1, "{}", report.table());
    let rarity = dynamics::run(dynamics::Rule::Rarity);
    let flat = dynamics::run(dynamics::Rule::Flat);
    assert!(rarity.epochs_to_target.is_some(), "{rarity:?}");
    assert!(
        flat.epochs_to_target.is_none() && flat.under_replicated > 0,
        "{flat:?}"
    );
}
