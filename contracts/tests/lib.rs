//! # dsi-contract-tests: the DSI contracts on a real pallet-revive runtime
//!
//! The suite in `tests/lifecycle.rs` deploys all four contracts and runs the whole life of
//! an epoch; it runs on the in-process sandbox runtime (`ink_e2e` backend `runtime_only`)
//! and, with `--features node-tests`, on a real `ink-node` (`CONTRACTS_NODE` or `ink-node`
//! on `PATH`). `tests/costs.rs` prints the weight and storage deposit of `claim` and `submit`.
//!
//! This library holds what both use: building reward trees with the protocol crate (the
//! off-chain side of the same Merkle code the contracts verify), and deployment defaults.

use dsi_protocol::merkle::{Keccak256, MerkleTree};
use dsi_protocol::{Epoch, NodeId, PayoutAccount, RewardLeaf};
use ink::Address;

/// One native token (12 decimals).
pub const UNIT: u128 = 1_000_000_000_000;

/// A reward tree with its leaves, as the oracle would build it.
pub struct RewardTree {
    /// The leaves, in tree order.
    pub leaves: Vec<RewardLeaf>,
    /// The tree.
    pub tree: MerkleTree,
}

impl RewardTree {
    /// A tree over `(seeder, payout, amount)` for `epoch`.
    pub fn new(epoch: u64, entries: &[([u8; 32], Address, u128)]) -> Self {
        let leaves: Vec<RewardLeaf> = entries
            .iter()
            .map(|(seeder, payout, amount)| RewardLeaf {
                epoch: Epoch(epoch),
                seeder: NodeId(*seeder),
                payout: PayoutAccount(payout.0),
                amount: *amount,
            })
            .collect();
        let tree = MerkleTree::from_leaves::<Keccak256>(&leaves);
        Self { leaves, tree }
    }

    /// A tree of `n` synthetic leaves with tiny amounts (for cost measurements).
    pub fn synthetic(epoch: u64, n: usize, payout: Address) -> Self {
        let entries: Vec<([u8; 32], Address, u128)> = (0..n)
            .map(|i| {
                let mut seeder = [0u8; 32];
                seeder[..8].copy_from_slice(&(i as u64).to_be_bytes());
                (seeder, payout, 1_000_000 + i as u128)
            })
            .collect();
        Self::new(epoch, &entries)
    }

    /// The root.
    pub fn root(&self) -> [u8; 32] {
        self.tree.root()
    }

    /// Sum of the amounts (the epoch total).
    pub fn total(&self) -> u128 {
        self.leaves.iter().map(|l| l.amount).sum()
    }

    /// The proof of leaf `i`.
    pub fn proof(&self, i: usize) -> Vec<[u8; 32]> {
        self.tree.proof(i).expect("leaf index in range")
    }
}

/// Default multiplier bounds for deployments and tests.
pub fn default_bounds() -> multipliers::multipliers::Bounds {
    multipliers::multipliers::Bounds {
        multiplier_min: 500_000,
        multiplier_max: 5_000_000,
        max_slope: 1_000_000,
        max_target_replication: 20,
        bandwidth_share_min: 100_000,
        bandwidth_share_max: 900_000,
        max_boost: 3_000_000,
        fee_min: 10_000,
        fee_max: 500_000,
        price_min: 1,
        price_max: 1_000_000_000,
        vetting_audits_min: 3,
        vetting_audits_max: 1_000,
        unvetted_share_max: 500_000,
    }
}

/// The default market (`dsi_protocol::reward::MarketParams::default()`).
pub fn default_market() -> multipliers::multipliers::Market {
    multipliers::multipliers::Market {
        price_per_byte: 1_000,
        fee: 100_000,
        vetting_audits: 9,
        unvetted_share: 500_000,
    }
}

/// Default multiplier parameters (inside [`default_bounds`]).
pub fn default_params() -> multipliers::multipliers::Params {
    use multipliers::multipliers::Curve;
    Params {
        rarity: Curve {
            base: 1_000_000,
            slope: 250_000,
            min: 1_000_000,
            max: 2_000_000,
        },
        target_replication: 3,
        demand: Curve {
            base: 1_000_000,
            slope: 10_000,
            min: 1_000_000,
            max: 1_500_000,
        },
        bandwidth_share: 700_000,
    }
}

use multipliers::multipliers::Params;
