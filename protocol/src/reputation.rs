//! The reputation update rule: a Beta-style score per node key with a forgetting factor,
//! fed by the oracle's audits, and the graded reward factor it implies.
//!
//! A node's evidence is two decaying counters, `successes` and `failures`, kept in
//! millionths of an observation. Each epoch both are multiplied by the forgetting factor
//! `λ` and the epoch's audit outcomes are added, so old behaviour fades and a node can
//! recover. The score is the mean of `Beta(successes + 1, failures + 1)`:
//! `(s + 1) / (s + f + 2)`, in ppm.
//!
//! The score maps to a reward factor in grades, never a silent cliff:
//!
//! | standing | when | factor |
//! |---|---|---|
//! | unrated | less than one observation of evidence | 1× |
//! | good | score ≥ `good` | 1× |
//! | reduced | `suspend_below` ≤ score < `good`, or below it during the grace period | `floor` … 1×, linear in the score |
//! | suspended | score < `suspend_below` after the grace period | 0 |
//! | excluded | suspended `exclude_after` epochs in a row; permanent | 0 |
//!
//! Integer arithmetic only; the oracle computes it and writes the score on chain.

use parity_scale_codec::{Decode, Encode, MaxEncodedLen};

use crate::fixed::{PPM_SCALE, Ppm, mul_div};

/// Parameters of the rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, MaxEncodedLen)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ReputationParams {
    /// Weight kept of old evidence each epoch (`λ`, at most 1×).
    pub forgetting: Ppm,
    /// Scores at or above this earn the full reward.
    pub good: Ppm,
    /// Scores below this suspend the node (after the grace period).
    pub suspend_below: Ppm,
    /// The factor at `suspend_below`; it rises linearly to 1× at `good`.
    pub floor: Ppm,
    /// Epochs (since a node's first observation) during which it is never suspended.
    pub grace_epochs: u32,
    /// Consecutive suspended epochs after which a node is excluded for good.
    pub exclude_after: u32,
}

impl Default for ReputationParams {
    fn default() -> Self {
        Self {
            forgetting: Ppm(900_000),
            good: Ppm(800_000),
            suspend_below: Ppm(500_000),
            floor: Ppm(250_000),
            grace_epochs: 3,
            exclude_after: 4,
        }
    }
}

/// Where a node stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, MaxEncodedLen)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Standing {
    /// Not enough evidence yet.
    Unrated,
    /// Full reward.
    Good,
    /// Reduced reward.
    Reduced,
    /// No reward this epoch.
    Suspended,
    /// No reward, permanently.
    Excluded,
}

/// One node's evidence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode, MaxEncodedLen)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ReputationState {
    /// Decayed successful audits, in millionths.
    pub successes: u64,
    /// Decayed failed audits, in millionths.
    pub failures: u64,
    /// Epochs since the first observation (0 = never observed).
    pub epochs_observed: u32,
    /// Consecutive epochs ending suspended.
    pub suspended_streak: u32,
    /// Excluded for good.
    pub excluded: bool,
}

const ONE: u64 = PPM_SCALE as u64;

impl ReputationState {
    /// The state after one more epoch with `passed` and `failed` audits.
    pub fn update(&self, params: &ReputationParams, passed: u32, failed: u32) -> Self {
        let forgetting = u128::from(params.forgetting.0.min(PPM_SCALE));
        let decay = |value: u64| {
            mul_div(u128::from(value), forgetting, u128::from(PPM_SCALE))
                .and_then(|v| u64::try_from(v).ok())
                .unwrap_or(u64::MAX)
        };
        let mut next = Self {
            successes: decay(self.successes).saturating_add(u64::from(passed).saturating_mul(ONE)),
            failures: decay(self.failures).saturating_add(u64::from(failed).saturating_mul(ONE)),
            epochs_observed: self.epochs_observed,
            suspended_streak: self.suspended_streak,
            excluded: self.excluded,
        };
        if self.epochs_observed > 0 || passed > 0 || failed > 0 {
            next.epochs_observed = self.epochs_observed.saturating_add(1);
        }
        if next.standing_before_streak(params) == Standing::Suspended {
            next.suspended_streak = next.suspended_streak.saturating_add(1);
            if next.suspended_streak >= params.exclude_after {
                next.excluded = true;
            }
        } else {
            next.suspended_streak = 0;
        }
        next
    }

    /// The Beta mean `(s + 1) / (s + f + 2)`, ppm.
    pub fn score(&self) -> Ppm {
        let s = u128::from(self.successes) + u128::from(ONE);
        let total = u128::from(self.successes) + u128::from(self.failures) + 2 * u128::from(ONE);
        let score = mul_div(s, u128::from(PPM_SCALE), total).unwrap_or(0);
        Ppm(u32::try_from(score).unwrap_or(PPM_SCALE))
    }

    fn standing_before_streak(&self, params: &ReputationParams) -> Standing {
        if self.excluded {
            return Standing::Excluded;
        }
        if self.successes.saturating_add(self.failures) < ONE {
            return Standing::Unrated;
        }
        let score = self.score();
        if score >= params.good {
            Standing::Good
        } else if score >= params.suspend_below || self.epochs_observed <= params.grace_epochs {
            Standing::Reduced
        } else {
            Standing::Suspended
        }
    }

    /// Where the node stands.
    pub fn standing(&self, params: &ReputationParams) -> Standing {
        self.standing_before_streak(params)
    }

    /// The factor applied to the node's rewards.
    pub fn factor(&self, params: &ReputationParams) -> Ppm {
        match self.standing(params) {
            Standing::Unrated | Standing::Good => Ppm::ONE,
            Standing::Suspended | Standing::Excluded => Ppm::ZERO,
            Standing::Reduced => {
                let score = self.score().0.max(params.suspend_below.0);
                let span = params.good.0.saturating_sub(params.suspend_below.0);
                let floor = params.floor.0.min(PPM_SCALE);
                if span == 0 {
                    return Ppm(floor);
                }
                let above = score.saturating_sub(params.suspend_below.0).min(span);
                let rise = mul_div(
                    u128::from(PPM_SCALE - floor),
                    u128::from(above),
                    u128::from(span),
                )
                .unwrap_or(0);
                Ppm(floor.saturating_add(u32::try_from(rise).unwrap_or(0)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(epochs: &[(u32, u32)]) -> ReputationState {
        let params = ReputationParams::default();
        epochs
            .iter()
            .fold(ReputationState::default(), |state, (ok, bad)| {
                state.update(&params, *ok, *bad)
            })
    }

    #[test]
    fn new_nodes_are_unrated_and_paid_in_full() {
        let params = ReputationParams::default();
        let state = ReputationState::default();
        assert_eq!(state.score(), Ppm(500_000));
        assert_eq!(state.standing(&params), Standing::Unrated);
        assert_eq!(state.factor(&params), Ppm::ONE);
        let idle = state.update(&params, 0, 0);
        assert_eq!(idle, state, "no evidence, no change");
    }

    #[test]
    fn honest_nodes_are_good() {
        let params = ReputationParams::default();
        let state = run(&[(3, 0)]);
        assert_eq!(state.score(), Ppm(800_000));
        assert_eq!(state.standing(&params), Standing::Good);
        assert_eq!(state.factor(&params), Ppm::ONE);
    }

    #[test]
    fn failures_grade_down_then_suspend_then_exclude() {
        let params = ReputationParams::default();
        let mut state = run(&[(3, 0), (3, 0)]);
        assert_eq!(state.standing(&params), Standing::Good);
        // One bad epoch reduces the reward, it does not cut it off.
        state = state.update(&params, 1, 2);
        assert_eq!(state.standing(&params), Standing::Reduced);
        let reduced = state.factor(&params);
        assert!(reduced > params.floor && reduced < Ppm::ONE, "{reduced}");
        // Keep failing: suspended (past the grace period), then excluded.
        let mut seen_suspended = false;
        for _ in 0..10 {
            state = state.update(&params, 0, 3);
            if state.standing(&params) == Standing::Suspended {
                seen_suspended = true;
                assert_eq!(state.factor(&params), Ppm::ZERO);
            }
        }
        assert!(seen_suspended, "suspension comes before exclusion");
        assert_eq!(state.standing(&params), Standing::Excluded);
        // Exclusion is permanent.
        for _ in 0..20 {
            state = state.update(&params, 3, 0);
        }
        assert_eq!(state.standing(&params), Standing::Excluded);
        assert_eq!(state.factor(&params), Ppm::ZERO);
    }

    #[test]
    fn grace_period_protects_new_nodes_and_nodes_recover() {
        let params = ReputationParams::default();
        let state = run(&[(0, 2)]);
        assert!(state.score() < params.suspend_below);
        assert_eq!(state.standing(&params), Standing::Reduced, "grace period");
        assert_eq!(state.factor(&params), params.floor);
        // A node that fails once and then behaves recovers to good.
        let state = run(&[(3, 0), (2, 1), (3, 0), (3, 0), (3, 0)]);
        assert_eq!(state.standing(&params), Standing::Good);
    }

    #[test]
    fn factor_is_monotonic_in_the_score() {
        let params = ReputationParams {
            grace_epochs: 0,
            ..ReputationParams::default()
        };
        let mut last = Ppm::ZERO;
        for successes in 0..80u64 {
            let state = ReputationState {
                successes: successes * ONE / 4,
                failures: 3 * ONE,
                epochs_observed: 5,
                suspended_streak: 0,
                excluded: false,
            };
            let factor = state.factor(&params);
            assert!(factor >= last, "{successes}: {factor} < {last}");
            last = factor;
        }
        assert_eq!(last, Ppm::ONE);
    }
}
