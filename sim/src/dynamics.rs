//! The second table: do the incentives move the network?
//!
//! Twenty seeders, each on its own network with room for two contents, start where people
//! start: all of them hold the two popular contents. Eight contents are sponsored, each
//! for the same amount per epoch at a target of three replicas. Every epoch the pay is
//! computed by `protocol::reward::aggregate` (counted replicas, sponsored split), and then
//! each seeder in turn swaps its worst-paying content for the best-paying one it does not
//! hold, if that pays more per byte (expected pay of joining: the amount split over one more
//! counted replica, nothing past the target).
//!
//! Under the rule (fewer replicas, more each) the seeders spread out until every content
//! has its target. Under a flat rule (every funded byte stored pays the same) no swap ever
//! pays, and the rare contents stay without replicas.

use std::collections::BTreeSet;

use dsi_protocol::fixed::Ppm;
use dsi_protocol::reward::{
    ContentFacts, EpochInputs, Funding, Holder, Location, MarketParams, RewardParams, SeederFacts,
    aggregate,
};
use dsi_protocol::{ContentId, Epoch, NodeId, PayoutAccount};

/// Seeders in the model.
pub const SEEDERS: usize = 20;
/// Contents each seeder has room for.
pub const ROOM: usize = 2;
/// Sponsored contents.
pub const CONTENTS: usize = 8;
/// Target replication of every content.
pub const TARGET: u32 = 3;
/// Epochs the model runs at most.
pub const HORIZON: u32 = 50;

/// The pay rule a model run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// `protocol::reward`: a content's amount split over its counted replicas.
    Rarity,
    /// Every funded byte stored pays the same, however many replicas there are.
    Flat,
}

/// One model run.
#[derive(Clone, Debug)]
pub struct Dynamics {
    /// The rule.
    pub rule: Rule,
    /// The first epoch at which every content had its target (None: not within
    /// [`HORIZON`]).
    pub epochs_to_target: Option<u32>,
    /// Contents below their target at the end.
    pub under_replicated: usize,
}

fn node(i: usize) -> NodeId {
    NodeId([i as u8 + 1; 32])
}

fn content(c: usize) -> ContentId {
    ContentId([c as u8 + 1; 32])
}

const PER_EPOCH: u128 = 1_000_000_000_000;
const LENGTH: u64 = 1 << 30;

/// Runs the model under `rule`.
pub fn run(rule: Rule) -> Dynamics {
    let mut holds: Vec<BTreeSet<usize>> = (0..SEEDERS).map(|_| [0, 1].into()).collect();
    let mut since: Vec<Vec<u64>> = vec![vec![0; CONTENTS]; SEEDERS];
    let mut reached = None;
    let mut under = CONTENTS;
    for epoch in 0..u64::from(HORIZON) {
        under = counted(&holds, &since, epoch)
            .iter()
            .filter(|c| (c.len() as u32) < TARGET)
            .count();
        if under == 0 && reached.is_none() {
            reached = Some(epoch as u32);
            break;
        }
        // Each seeder in turn reconsiders one content.
        for s in 0..SEEDERS {
            let counted = counted(&holds, &since, epoch);
            let me = node(s);
            // What a content pays this seeder per epoch: its share if it is (or, joining,
            // would be) a counted replica, nothing otherwise.
            let pay = |c: usize, joining: bool| -> u128 {
                let n = counted[c].len() as u32;
                match rule {
                    Rule::Flat => PER_EPOCH / u128::from(TARGET),
                    Rule::Rarity if joining && n < TARGET => PER_EPOCH / u128::from(n + 1),
                    Rule::Rarity if !joining && counted[c].contains(&me) => {
                        PER_EPOCH / u128::from(n.max(1))
                    }
                    Rule::Rarity => 0,
                }
            };
            let Some(&worst) = holds[s].iter().min_by_key(|&&c| pay(c, false)) else {
                continue;
            };
            let best = (0..CONTENTS)
                .filter(|c| !holds[s].contains(c))
                .max_by_key(|&c| (pay(c, true), std::cmp::Reverse(c)));
            if let Some(best) = best
                && pay(best, true) > pay(worst, false)
            {
                holds[s].remove(&worst);
                holds[s].insert(best);
                since[s][best] = epoch + 1;
            }
        }
    }
    Dynamics {
        rule,
        epochs_to_target: reached,
        under_replicated: under,
    }
}

/// Counted replicas of each content at `epoch`, by `protocol::reward::aggregate`.
fn counted(holds: &[BTreeSet<usize>], since: &[Vec<u64>], epoch: u64) -> Vec<Vec<NodeId>> {
    let contents = (0..CONTENTS)
        .map(|c| ContentFacts {
            content: content(c),
            length: LENGTH,
            replicas: TARGET,
            funding: Funding::Sponsored {
                per_epoch: PER_EPOCH,
            },
            holders: (0..holds.len())
                .filter(|&s| holds[s].contains(&c))
                .map(|s| Holder {
                    node: node(s),
                    location: Location::of(std::net::IpAddr::from([10, 0, s as u8, 1])),
                    since: Epoch(since[s][c]),
                })
                .collect(),
        })
        .collect();
    let inputs = EpochInputs {
        epoch: Epoch(epoch),
        budget: 0,
        params: RewardParams::default(),
        market: MarketParams {
            vetting_audits: 0,
            ..MarketParams::default()
        },
        chunks: Vec::new(),
        contents,
        credits: Vec::new(),
        seeders: (0..holds.len())
            .map(|s| SeederFacts {
                seeder: node(s),
                payout: PayoutAccount([s as u8; 20]),
                previous_cumulative: 0,
                reputation: Ppm::ONE,
                audits_passed: u64::MAX,
            })
            .collect(),
    };
    match aggregate(&inputs, std::iter::empty()) {
        Ok(rewards) => rewards.contents.into_iter().map(|c| c.counted).collect(),
        Err(_) => vec![Vec::new(); CONTENTS],
    }
}
