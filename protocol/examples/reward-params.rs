//! Prints the starting reward parameters, [`RewardParams::default`], in the argument syntax
//! of `cargo contract instantiate --args`: `scripts/deploy` instantiates the `multipliers`
//! contract with exactly this, so the deployed defaults and the protocol's have one source.
//!
//! `cargo run --quiet -p dsi-protocol --example reward-params`

use dsi_protocol::fixed::LinearCurve;
use dsi_protocol::reward::RewardParams;

fn curve(c: &LinearCurve) -> String {
    format!(
        "{{ base: {}, slope: {}, min: {}, max: {} }}",
        c.base.0, c.slope.0, c.min.0, c.max.0
    )
}

fn main() {
    let p = RewardParams::default();
    println!(
        "{{ rarity: {}, target_replication: {}, demand: {}, bandwidth_share: {} }}",
        curve(&p.rarity),
        p.target_replication,
        curve(&p.demand),
        p.bandwidth_share.0
    );
}
