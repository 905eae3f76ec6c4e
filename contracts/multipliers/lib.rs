//! # multipliers: the reward curve parameters the oracle reads at every epoch close
//!
//! - **Rarity**: a clamped linear curve over the replicas a chunk is missing below
//!   `target_replication` (`dsi_protocol::fixed::LinearCurve`, ppm).
//! - **Demand**: a clamped linear curve over the requests a chunk had in the epoch.
//! - **Bandwidth share**: the part of each epoch's budget paid for bandwidth (receipts); the
//!   rest pays storage (audited holdings).
//! - **Boosts**: a per-content multiplier (1× when unset).
//! - **Market**: the price a downloader's credit pays per byte, the protocol fee the pool
//!   keeps of each debit, and vetting (audits a new key passes before its full share, and
//!   its share before). [`Market`] encodes exactly like `dsi_protocol::reward::MarketParams`.
//!   Governance moves it only inside `dsi_protocol::reward::MarketBounds` (fields of
//!   [`Bounds`]): a fee above 0 and below 1×, a byte never free, vetting never off. Paying
//!   yourself never profits whatever the market: a paid byte's rarity bonus from the pool
//!   is at most its fee (`dsi_protocol::reward::bonus`), so at best you get back what you
//!   paid.
//!
//! Hard [`Bounds`] are fixed at instantiation and never change. Only governance changes
//! values, and only within the bounds. All values are parts per million (1_000_000 = 1×);
//! [`Curve`] encodes exactly like `dsi_protocol::fixed::LinearCurve`, so the oracle decodes
//! it directly.
#![cfg_attr(not(feature = "std"), no_std, no_main)]

#[ink::contract]
pub mod multipliers {
    use ink::prelude::vec::Vec;
    use ink::storage::Mapping;

    /// 1× in parts per million.
    pub const ONE: u32 = 1_000_000;

    /// Most content ids one [`Multipliers::boosts`] call answers for (the rest of a longer
    /// list is ignored): a bounded read, whoever calls it.
    pub const MAX_BOOSTS: usize = 256;

    /// Everything that can go wrong.
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Error {
        /// The caller is not governance.
        Unauthorized,
        /// The value is outside the hard bounds (or a curve's min exceeds its max).
        OutOfBounds,
        /// The bounds themselves are inconsistent (at instantiation).
        InvalidBounds,
    }

    /// Result of every message.
    pub type Result<T> = core::result::Result<T, Error>;

    /// A clamped linear curve `clamp(base + slope × x, min, max)`, ppm.
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Curve {
        /// Value at x = 0.
        pub base: u32,
        /// Increase per unit of x.
        pub slope: u32,
        /// Lower clamp.
        pub min: u32,
        /// Upper clamp.
        pub max: u32,
    }

    /// The adjustable parameters.
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Params {
        /// Rarity curve over missing replicas.
        pub rarity: Curve,
        /// Replicas a chunk should have; fewer make it rare.
        pub target_replication: u32,
        /// Demand curve over requests per epoch.
        pub demand: Curve,
        /// Part of the epoch budget paid for bandwidth (ppm); the rest pays storage.
        pub bandwidth_share: u32,
    }

    /// Limits fixed at instantiation.
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Bounds {
        /// No curve may go below this.
        pub multiplier_min: u32,
        /// No curve may go above this.
        pub multiplier_max: u32,
        /// Steepest allowed slope.
        pub max_slope: u32,
        /// Highest allowed target replication.
        pub max_target_replication: u32,
        /// Lowest bandwidth share.
        pub bandwidth_share_min: u32,
        /// Highest bandwidth share (at most 1_000_000).
        pub bandwidth_share_max: u32,
        /// Highest per-content boost (at least 1_000_000).
        pub max_boost: u32,
        /// Lowest protocol fee (ppm of each debit the pool keeps). Above 0.
        pub fee_min: u32,
        /// Highest protocol fee (ppm, below 1_000_000).
        pub fee_max: u32,
        /// Lowest price per byte (native units, at least 1).
        pub price_min: u64,
        /// Highest price per byte.
        pub price_max: u64,
        /// Fewest audits a new key passes before its full share (at least 1).
        pub vetting_audits_min: u32,
        /// Most audits a new key passes before its full share.
        pub vetting_audits_max: u32,
        /// Highest share (ppm) a key earns before it is vetted (below 1_000_000).
        pub unvetted_share_max: u32,
    }

    /// Paid bandwidth and vetting: encodes exactly like `dsi_protocol::reward::MarketParams`.
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Market {
        /// Native units a downloader's credit pays per byte it is served.
        pub price_per_byte: u64,
        /// Part of each debit the pool keeps (ppm); a paid byte's bonus is at most this.
        pub fee: u32,
        /// Audits a node key passes before it earns its full share.
        pub vetting_audits: u32,
        /// The share (ppm) a key earns before it is vetted.
        pub unvetted_share: u32,
    }

    /// Governance changed a parameter.
    #[ink(event, anonymous)]
    pub struct ParamsChanged {
        params: Params,
    }

    /// Governance changed the market.
    #[ink(event, anonymous)]
    pub struct MarketChanged {
        market: Market,
    }

    /// Governance set or cleared a content boost.
    #[ink(event, anonymous)]
    pub struct BoostChanged {
        content: [u8; 32],
        boost: u32,
    }

    /// The multipliers registry.
    #[ink(storage)]
    pub struct Multipliers {
        governance: Address,
        bounds: Bounds,
        params: Params,
        boosts: Mapping<[u8; 32], u32>,
        market: Market,
    }

    impl Bounds {
        fn consistent(&self) -> bool {
            self.multiplier_min <= self.multiplier_max
                && self.bandwidth_share_min <= self.bandwidth_share_max
                && self.bandwidth_share_max <= ONE
                && self.max_boost >= ONE
                && self.max_target_replication >= 1
                && self.market_bounds().consistent()
        }

        /// The market's bounds as the protocol states them: one rule here, in the oracle's
        /// CLI and in `verify-epoch`.
        fn market_bounds(&self) -> dsi_protocol::reward::MarketBounds {
            use dsi_protocol::fixed::Ppm;
            dsi_protocol::reward::MarketBounds {
                fee_min: Ppm(self.fee_min),
                fee_max: Ppm(self.fee_max),
                price_min: self.price_min,
                price_max: self.price_max,
                vetting_audits_min: self.vetting_audits_min,
                vetting_audits_max: self.vetting_audits_max,
                unvetted_share_max: Ppm(self.unvetted_share_max),
            }
        }

        fn allows_market(&self, market: &Market) -> bool {
            use dsi_protocol::fixed::Ppm;
            self.market_bounds()
                .allows(&dsi_protocol::reward::MarketParams {
                    price_per_byte: market.price_per_byte,
                    fee: Ppm(market.fee),
                    vetting_audits: market.vetting_audits,
                    unvetted_share: Ppm(market.unvetted_share),
                })
        }

        fn allows_curve(&self, curve: &Curve) -> bool {
            self.multiplier_min <= curve.min
                && curve.min <= curve.base
                && curve.base <= curve.max
                && curve.max <= self.multiplier_max
                && curve.slope <= self.max_slope
        }

        fn allows(&self, params: &Params) -> bool {
            self.allows_curve(&params.rarity)
                && self.allows_curve(&params.demand)
                && (1..=self.max_target_replication).contains(&params.target_replication)
                && (self.bandwidth_share_min..=self.bandwidth_share_max)
                    .contains(&params.bandwidth_share)
        }
    }

    impl Multipliers {
        /// A registry with hard `bounds` and initial `params` and `market` inside them.
        #[ink(constructor)]
        pub fn new(
            governance: Address,
            bounds: Bounds,
            params: Params,
            market: Market,
        ) -> Result<Self> {
            if !bounds.consistent() {
                return Err(Error::InvalidBounds);
            }
            if !bounds.allows(&params) || !bounds.allows_market(&market) {
                return Err(Error::OutOfBounds);
            }
            Ok(Self {
                governance,
                bounds,
                params,
                boosts: Mapping::default(),
                market,
            })
        }

        /// Governance sets the market (price per byte, fee, vetting), within the bounds.
        #[ink(message)]
        pub fn set_market(&mut self, market: Market) -> Result<()> {
            self.ensure_governance()?;
            if !self.bounds.allows_market(&market) {
                return Err(Error::OutOfBounds);
            }
            self.market = market;
            self.env().emit_event(MarketChanged { market });
            Ok(())
        }

        /// The current market: what the oracle reads at every close.
        #[ink(message)]
        pub fn market(&self) -> Market {
            self.market
        }

        /// Governance sets the rarity curve and target replication.
        #[ink(message)]
        pub fn set_rarity(&mut self, curve: Curve, target_replication: u32) -> Result<()> {
            self.update(|p| {
                p.rarity = curve;
                p.target_replication = target_replication;
            })
        }

        /// Governance sets the demand curve.
        #[ink(message)]
        pub fn set_demand(&mut self, curve: Curve) -> Result<()> {
            self.update(|p| p.demand = curve)
        }

        /// Governance sets the bandwidth part of the epoch budget (ppm).
        #[ink(message)]
        pub fn set_bandwidth_share(&mut self, share: u32) -> Result<()> {
            self.update(|p| p.bandwidth_share = share)
        }

        /// Governance boosts one content id (1_000_000 to `max_boost`; 1_000_000 clears).
        #[ink(message)]
        pub fn set_boost(&mut self, content: [u8; 32], boost: u32) -> Result<()> {
            self.ensure_governance()?;
            if !(ONE..=self.bounds.max_boost).contains(&boost) {
                return Err(Error::OutOfBounds);
            }
            // Clearing stores 1× rather than removing the entry: removal needs an unstable
            // host function in this ink! version, and readers see the same value.
            self.boosts.insert(content, &boost);
            self.env().emit_event(BoostChanged { content, boost });
            Ok(())
        }

        /// Governance hands administration to another account.
        #[ink(message)]
        pub fn set_governance(&mut self, governance: Address) -> Result<()> {
            self.ensure_governance()?;
            self.governance = governance;
            Ok(())
        }

        /// The current parameters.
        #[ink(message)]
        pub fn params(&self) -> Params {
            self.params
        }

        /// The hard bounds.
        #[ink(message)]
        pub fn bounds(&self) -> Bounds {
            self.bounds
        }

        /// The boost of a content id (1_000_000 when none is set).
        #[ink(message)]
        pub fn boost(&self, content: [u8; 32]) -> u32 {
            self.boosts.get(content).unwrap_or(ONE)
        }

        /// The boosts of up to [`MAX_BOOSTS`] content ids, in order: what the oracle reads
        /// at every close, in one call per [`MAX_BOOSTS`] held contents instead of one per
        /// content.
        #[ink(message)]
        pub fn boosts(&self, contents: Vec<[u8; 32]>) -> Vec<u32> {
            contents
                .into_iter()
                .take(MAX_BOOSTS)
                .map(|content| self.boost(content))
                .collect()
        }

        /// The governance account.
        #[ink(message)]
        pub fn governance(&self) -> Address {
            self.governance
        }

        fn update(&mut self, change: impl FnOnce(&mut Params)) -> Result<()> {
            self.ensure_governance()?;
            let mut params = self.params;
            change(&mut params);
            if !self.bounds.allows(&params) {
                return Err(Error::OutOfBounds);
            }
            self.params = params;
            self.env().emit_event(ParamsChanged { params });
            Ok(())
        }

        fn ensure_governance(&self) -> Result<()> {
            if self.env().caller() == self.governance {
                Ok(())
            } else {
                Err(Error::Unauthorized)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::multipliers::*;
    use ink::env::test;

    fn bounds() -> Bounds {
        Bounds {
            multiplier_min: 500_000,
            multiplier_max: 4_000_000,
            max_slope: 1_000_000,
            max_target_replication: 20,
            bandwidth_share_min: 200_000,
            bandwidth_share_max: 900_000,
            max_boost: 3_000_000,
            fee_min: 50_000,
            fee_max: 300_000,
            price_min: 10,
            price_max: 100_000,
            vetting_audits_min: 3,
            vetting_audits_max: 100,
            unvetted_share_max: 500_000,
        }
    }

    fn market() -> Market {
        market_of(&dsi_protocol::reward::MarketParams::default())
    }

    fn market_of(m: &dsi_protocol::reward::MarketParams) -> Market {
        Market {
            price_per_byte: m.price_per_byte,
            fee: m.fee.0,
            vetting_audits: m.vetting_audits,
            unvetted_share: m.unvetted_share.0,
        }
    }

    /// The oracle decodes `market()` as `dsi_protocol::reward::MarketParams`.
    #[test]
    fn market_encodes_like_the_protocols_market_params() {
        use dsi_protocol::fixed::Ppm;
        use dsi_protocol::reward::MarketParams;
        use ink::scale::{Decode, Encode};
        let distinct = MarketParams {
            price_per_byte: 1_234_567_890_123,
            fee: Ppm(2),
            vetting_audits: 3,
            unvetted_share: Ppm(4),
        };
        for protocol in [MarketParams::default(), distinct] {
            let ours = market_of(&protocol);
            assert_eq!(ours.encode(), protocol.encode());
            assert_eq!(
                MarketParams::decode(&mut &ours.encode()[..]).expect("decodes"),
                protocol
            );
        }
    }

    #[ink::test]
    fn governance_moves_the_market_within_bounds_only() {
        let a = test::default_accounts();
        let mut m = registry();
        assert_eq!(m.market(), market());
        let dearer = Market {
            price_per_byte: 2_000,
            fee: 200_000,
            vetting_audits: 12,
            unvetted_share: 250_000,
        };
        test::set_caller(a.bob);
        assert_eq!(m.set_market(dearer), Err(Error::Unauthorized));
        test::set_caller(a.alice);
        // Each bound, one at a time; a refused change changes nothing.
        for (what, bad) in [
            (
                "no fee: paying oneself costs nothing",
                Market { fee: 0, ..dearer },
            ),
            (
                "a fee under the floor",
                Market {
                    fee: 49_999,
                    ..dearer
                },
            ),
            (
                "a fee over the ceiling",
                Market {
                    fee: 300_001,
                    ..dearer
                },
            ),
            (
                "a free byte",
                Market {
                    price_per_byte: 0,
                    ..dearer
                },
            ),
            (
                "a price over the ceiling",
                Market {
                    price_per_byte: 100_001,
                    ..dearer
                },
            ),
            (
                "vetting too quick",
                Market {
                    vetting_audits: 2,
                    ..dearer
                },
            ),
            (
                "vetting without end",
                Market {
                    vetting_audits: 101,
                    ..dearer
                },
            ),
            (
                "too much before vetting",
                Market {
                    unvetted_share: 500_001,
                    ..dearer
                },
            ),
        ] {
            assert_eq!(m.set_market(bad), Err(Error::OutOfBounds), "{what}");
            assert_eq!(m.market(), market(), "{what}");
        }
        assert_eq!(m.set_market(dearer), Ok(()));
        assert_eq!(m.market(), dearer);
        // Bounds that would let the fee reach zero or all of a debit, a byte be free,
        // vetting be off or a new key earn in full never instantiate.
        for bad in [
            Bounds {
                fee_min: 0,
                ..bounds()
            },
            Bounds {
                fee_max: ONE,
                ..bounds()
            },
            Bounds {
                fee_min: 400_000,
                ..bounds()
            },
            Bounds {
                price_min: 0,
                ..bounds()
            },
            Bounds {
                unvetted_share_max: ONE,
                ..bounds()
            },
            Bounds {
                vetting_audits_min: 0,
                ..bounds()
            },
        ] {
            assert_eq!(
                Multipliers::new(a.alice, bad, params(), market()).err(),
                Some(Error::InvalidBounds)
            );
        }
        assert_eq!(
            Multipliers::new(a.alice, bounds(), params(), Market { fee: 0, ..market() }).err(),
            Some(Error::OutOfBounds)
        );
    }

    fn params() -> Params {
        let flat = Curve {
            base: ONE,
            slope: 0,
            min: ONE,
            max: ONE,
        };
        Params {
            rarity: Curve {
                base: ONE,
                slope: 250_000,
                min: ONE,
                max: 2_000_000,
            },
            target_replication: 3,
            demand: flat,
            bandwidth_share: 700_000,
        }
    }

    fn curve_of(c: &dsi_protocol::fixed::LinearCurve) -> Curve {
        Curve {
            base: c.base.0,
            slope: c.slope.0,
            min: c.min.0,
            max: c.max.0,
        }
    }

    fn params_of(p: &dsi_protocol::reward::RewardParams) -> Params {
        Params {
            rarity: curve_of(&p.rarity),
            target_replication: p.target_replication,
            demand: curve_of(&p.demand),
            bandwidth_share: p.bandwidth_share.0,
        }
    }

    /// The oracle decodes `params()` as `dsi_protocol::reward::RewardParams`: both encode
    /// byte for byte alike, for the defaults `scripts/deploy` instantiates with and for
    /// values that differ in every field (so a swapped field cannot hide).
    #[test]
    fn params_encode_like_the_protocols_reward_params() {
        use dsi_protocol::fixed::{LinearCurve, Ppm};
        use dsi_protocol::reward::RewardParams;
        use ink::scale::{Decode, Encode};
        let distinct = RewardParams {
            rarity: LinearCurve {
                base: Ppm(1_000_001),
                slope: Ppm(2),
                min: Ppm(3),
                max: Ppm(4_000_004),
            },
            target_replication: 5,
            demand: LinearCurve {
                base: Ppm(1_000_006),
                slope: Ppm(7),
                min: Ppm(8),
                max: Ppm(9_000_009),
            },
            bandwidth_share: Ppm(10),
        };
        for protocol in [RewardParams::default(), distinct] {
            let ours = params_of(&protocol);
            assert_eq!(ours.encode(), protocol.encode());
            assert_eq!(
                RewardParams::decode(&mut &ours.encode()[..]).expect("decodes"),
                protocol
            );
            assert_eq!(
                Params::decode(&mut &protocol.encode()[..]).expect("decodes"),
                ours
            );
        }
        assert_eq!(
            Curve::decode(&mut &distinct.rarity.encode()[..]).expect("decodes"),
            curve_of(&distinct.rarity)
        );
    }

    /// The deployed defaults are within the bounds `scripts/deploy` instantiates with.
    #[ink::test]
    fn the_protocol_defaults_instantiate() {
        let a = test::default_accounts();
        test::set_caller(a.alice);
        let deploy_bounds = Bounds {
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
        };
        let defaults = params_of(&dsi_protocol::reward::RewardParams::default());
        let registry =
            Multipliers::new(a.alice, deploy_bounds, defaults, market()).expect("instantiates");
        assert_eq!(registry.params(), defaults);
        assert_eq!(registry.market(), market());
    }

    fn registry() -> Multipliers {
        let a = test::default_accounts();
        test::set_caller(a.alice);
        Multipliers::new(a.alice, bounds(), params(), market()).unwrap()
    }

    #[ink::test]
    fn instantiation_checks_bounds_and_params() {
        let a = test::default_accounts();
        let mut bad = bounds();
        bad.multiplier_min = 5_000_000;
        assert_eq!(
            Multipliers::new(a.alice, bad, params(), market()).err(),
            Some(Error::InvalidBounds)
        );
        let mut bad = bounds();
        bad.max_boost = 1;
        assert_eq!(
            Multipliers::new(a.alice, bad, params(), market()).err(),
            Some(Error::InvalidBounds)
        );
        let mut p = params();
        p.rarity.max = 5_000_000;
        assert_eq!(
            Multipliers::new(a.alice, bounds(), p, market()).err(),
            Some(Error::OutOfBounds)
        );
        let m = registry();
        assert_eq!(m.params(), params());
        assert_eq!(m.bounds(), bounds());
        assert_eq!(m.governance(), a.alice);
    }

    #[ink::test]
    fn governance_moves_values_within_bounds_only() {
        let a = test::default_accounts();
        let mut m = registry();
        let steeper = Curve {
            base: ONE,
            slope: 500_000,
            min: ONE,
            max: 3_000_000,
        };
        test::set_caller(a.bob);
        assert_eq!(m.set_rarity(steeper, 5), Err(Error::Unauthorized));
        assert_eq!(m.set_demand(steeper), Err(Error::Unauthorized));
        assert_eq!(m.set_bandwidth_share(500_000), Err(Error::Unauthorized));
        assert_eq!(m.set_boost([1; 32], 2_000_000), Err(Error::Unauthorized));
        assert_eq!(m.set_governance(a.bob), Err(Error::Unauthorized));
        test::set_caller(a.alice);
        assert_eq!(m.set_rarity(steeper, 5), Ok(()));
        assert_eq!(m.params().rarity, steeper);
        assert_eq!(m.params().target_replication, 5);
        assert_eq!(m.set_rarity(steeper, 0), Err(Error::OutOfBounds));
        assert_eq!(m.set_rarity(steeper, 21), Err(Error::OutOfBounds));
        assert_eq!(
            m.set_rarity(
                Curve {
                    slope: 2_000_000,
                    ..steeper
                },
                5
            ),
            Err(Error::OutOfBounds)
        );
        assert_eq!(
            m.set_rarity(
                Curve {
                    min: 100_000,
                    ..steeper
                },
                5
            ),
            Err(Error::OutOfBounds)
        );
        assert_eq!(
            m.set_rarity(
                Curve {
                    max: 9_000_000,
                    ..steeper
                },
                5
            ),
            Err(Error::OutOfBounds)
        );
        assert_eq!(
            m.set_rarity(
                Curve {
                    base: 3_500_000,
                    ..steeper
                },
                5
            ),
            Err(Error::OutOfBounds),
            "base above max"
        );
        assert_eq!(
            m.params().rarity,
            steeper,
            "a refused change changes nothing"
        );
        assert_eq!(m.set_demand(steeper), Ok(()));
        assert_eq!(m.set_bandwidth_share(950_000), Err(Error::OutOfBounds));
        assert_eq!(m.set_bandwidth_share(100_000), Err(Error::OutOfBounds));
        assert_eq!(m.set_bandwidth_share(500_000), Ok(()));
        assert_eq!(m.params().bandwidth_share, 500_000);
    }

    #[ink::test]
    fn boosts_default_to_one_and_stay_in_bounds() {
        let a = test::default_accounts();
        let mut m = registry();
        assert_eq!(m.boost([1; 32]), ONE);
        assert_eq!(m.set_boost([1; 32], 2_000_000), Ok(()));
        assert_eq!(m.boost([1; 32]), 2_000_000);
        assert_eq!(
            m.boosts(vec![[2; 32], [1; 32], [2; 32]]),
            vec![ONE, 2_000_000, ONE]
        );
        assert_eq!(m.boosts(vec![[1; 32]; MAX_BOOSTS + 5]).len(), MAX_BOOSTS);
        assert_eq!(m.set_boost([1; 32], 3_000_001), Err(Error::OutOfBounds));
        assert_eq!(m.set_boost([1; 32], 999_999), Err(Error::OutOfBounds));
        assert_eq!(m.set_boost([1; 32], ONE), Ok(()));
        assert_eq!(m.boost([1; 32]), ONE);
        assert_eq!(m.set_governance(a.bob), Ok(()));
        assert_eq!(m.set_boost([1; 32], 2_000_000), Err(Error::Unauthorized));
    }
}
