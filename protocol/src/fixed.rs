//! Integer fixed-point arithmetic for money paths: parts-per-million multipliers, exact
//! `a * b / d` with a 256-bit intermediate, pro-rata splits that hand out every unit, and
//! clamped linear multiplier curves. No floats; every operation is checked or saturating,
//! and the same code runs off-chain (oracle) and on-chain (contracts).

use alloc::vec::Vec;
use core::fmt;

use parity_scale_codec::{Decode, Encode, MaxEncodedLen};

/// One million: [`Ppm::ONE`] as a raw value.
pub const PPM_SCALE: u32 = 1_000_000;

/// A non-negative fixed-point number in parts per million: `Ppm(1_500_000)` is 1.5×.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Encode, Decode, MaxEncodedLen,
)]
#[cfg_attr(feature = "scale-info", derive(scale_info::TypeInfo))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct Ppm(pub u32);

impl Ppm {
    /// 0×.
    pub const ZERO: Self = Self(0);
    /// 1×.
    pub const ONE: Self = Self(PPM_SCALE);
    /// The largest representable value (about 4294.97×).
    pub const MAX: Self = Self(u32::MAX);

    /// `numerator / denominator` rounded down, saturating at [`Ppm::MAX`]; `None` when the
    /// denominator is zero.
    pub fn from_ratio(numerator: u64, denominator: u64) -> Option<Self> {
        let value = mul_div(
            u128::from(numerator),
            u128::from(PPM_SCALE),
            u128::from(denominator),
        );
        match value {
            Some(v) => Some(Self(u32::try_from(v).unwrap_or(u32::MAX))),
            None if denominator == 0 => None,
            None => Some(Self::MAX),
        }
    }

    /// `amount × self`, rounded down, saturating at `u128::MAX`.
    pub fn apply(self, amount: u128) -> u128 {
        mul_div(amount, u128::from(self.0), u128::from(PPM_SCALE)).unwrap_or(u128::MAX)
    }

    /// `self × other`, rounded down, saturating at [`Ppm::MAX`].
    pub fn saturating_mul(self, other: Self) -> Self {
        let value = u64::from(self.0) * u64::from(other.0) / u64::from(PPM_SCALE);
        Self(u32::try_from(value).unwrap_or(u32::MAX))
    }

    /// `self + other`, saturating.
    pub fn saturating_add(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }

    /// `self - other`, saturating at zero.
    pub fn saturating_sub(self, other: Self) -> Self {
        Self(self.0.saturating_sub(other.0))
    }

    /// `self` limited to `[min, max]` (`min` wins if the bounds cross).
    pub fn clamp_to(self, min: Self, max: Self) -> Self {
        if self > max {
            max.max(min)
        } else if self < min {
            min
        } else {
            self
        }
    }
}

impl fmt::Debug for Ppm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ppm({self})")
    }
}

impl fmt::Display for Ppm {
    /// As a decimal multiplier, `1.5x`, exact (six decimals at most, trailing zeros dropped).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / PPM_SCALE;
        let frac = self.0 % PPM_SCALE;
        if frac == 0 {
            return write!(f, "{whole}x");
        }
        let mut digits = alloc::format!("{frac:06}");
        while digits.ends_with('0') {
            digits.pop();
        }
        write!(f, "{whole}.{digits}x")
    }
}

/// Full 256-bit product of two u128 values as `(high, low)`.
const fn mul_wide(a: u128, b: u128) -> (u128, u128) {
    const MASK: u128 = u64::MAX as u128;
    let (a1, a0) = (a >> 64, a & MASK);
    let (b1, b0) = (b >> 64, b & MASK);
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 64) + (p01 & MASK) + (p10 & MASK);
    let low = (p00 & MASK) | (mid << 64);
    let high = p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64);
    (high, low)
}

/// `(a × b) / d` and `(a × b) mod d`, exactly, with a 256-bit intermediate. `None` when `d`
/// is zero or the quotient does not fit in a u128.
pub fn mul_div_rem(a: u128, b: u128, d: u128) -> Option<(u128, u128)> {
    if d == 0 {
        return None;
    }
    let (high, low) = mul_wide(a, b);
    if high >= d {
        return None;
    }
    if high == 0 {
        return Some((low / d, low % d));
    }
    // Schoolbook binary long division of (high, low) by d; high < d keeps the quotient in
    // 128 bits and the running remainder below d (plus one carry bit).
    let mut remainder = high;
    let mut quotient = 0u128;
    for bit in (0..128).rev() {
        let carry = remainder >> 127;
        remainder = (remainder << 1) | ((low >> bit) & 1);
        if carry == 1 || remainder >= d {
            remainder = remainder.wrapping_sub(d);
            quotient |= 1 << bit;
        }
    }
    Some((quotient, remainder))
}

/// `(a × b) / d` rounded down, exactly. `None` when `d` is zero or the result overflows.
pub fn mul_div(a: u128, b: u128, d: u128) -> Option<u128> {
    mul_div_rem(a, b, d).map(|(q, _)| q)
}

/// Why a pro-rata split could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// The weights add up to more than `u128::MAX`.
    #[error("the weights add up to more than u128::MAX")]
    WeightOverflow,
}

/// Splits `total` among `weights` in proportion, handing out every unit: each share is
/// `floor(total × w / Σw)`, and the units left over go one each to the largest remainders
/// (ties to the lower index). The shares add up to exactly `total` unless all weights are
/// zero, in which case every share is zero. Deterministic.
pub fn split_pro_rata(total: u128, weights: &[u128]) -> Result<Vec<u128>, SplitError> {
    let whole = weights
        .iter()
        .try_fold(0u128, |acc, w| acc.checked_add(*w))
        .ok_or(SplitError::WeightOverflow)?;
    if whole == 0 {
        return Ok(alloc::vec![0; weights.len()]);
    }
    let mut shares = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    let mut handed_out = 0u128;
    for (index, weight) in weights.iter().enumerate() {
        // weight <= whole, so the quotient is at most total and always fits.
        let (share, remainder) = mul_div_rem(total, *weight, whole).unwrap_or((0, 0));
        shares.push(share);
        remainders.push((remainder, index));
        handed_out = handed_out.saturating_add(share);
    }
    // Fewer than weights.len() units are left: each floor loses less than one unit.
    let left = usize::try_from(total.saturating_sub(handed_out)).unwrap_or(usize::MAX);
    remainders.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, index) in remainders.into_iter().take(left) {
        shares[index] = shares[index].saturating_add(1);
    }
    Ok(shares)
}

/// A clamped linear multiplier curve: `clamp(base + slope × x, min, max)`.
///
/// The rarity multiplier uses `x` = replicas missing below the target replication
/// (`target.saturating_sub(holders)`); the demand multiplier uses `x` = requests in the
/// epoch. Governance moves `base`, `slope`, `min` and `max` inside hard bounds fixed when the
/// `multipliers` contract is instantiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, MaxEncodedLen)]
#[cfg_attr(feature = "scale-info", derive(scale_info::TypeInfo))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LinearCurve {
    /// Value at `x = 0`.
    pub base: Ppm,
    /// Increase per unit of `x`.
    pub slope: Ppm,
    /// Lower clamp.
    pub min: Ppm,
    /// Upper clamp.
    pub max: Ppm,
}

impl LinearCurve {
    /// A curve that is 1× everywhere.
    pub const FLAT: Self = Self {
        base: Ppm::ONE,
        slope: Ppm::ZERO,
        min: Ppm::ONE,
        max: Ppm::ONE,
    };

    /// The multiplier at `x`.
    pub fn eval(&self, x: u64) -> Ppm {
        let rise = u64::from(self.slope.0).saturating_mul(x);
        let value = u64::from(self.base.0).saturating_add(rise);
        Ppm(u32::try_from(value).unwrap_or(u32::MAX)).clamp_to(self.min, self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn ppm_display_is_exact() {
        assert_eq!(Ppm::ONE.to_string(), "1x");
        assert_eq!(Ppm(1_500_000).to_string(), "1.5x");
        assert_eq!(Ppm(1).to_string(), "0.000001x");
        assert_eq!(Ppm(2_030_000).to_string(), "2.03x");
    }

    #[test]
    fn ppm_arithmetic_saturates() {
        assert_eq!(Ppm(1_500_000).apply(1_000), 1_500);
        assert_eq!(Ppm(333_333).apply(3), 0);
        assert_eq!(Ppm::MAX.apply(u128::MAX), u128::MAX);
        assert_eq!(Ppm::MAX.saturating_mul(Ppm::MAX), Ppm::MAX);
        assert_eq!(
            Ppm(2_000_000).saturating_mul(Ppm(1_500_000)),
            Ppm(3_000_000)
        );
        assert_eq!(Ppm::from_ratio(1, 3), Some(Ppm(333_333)));
        assert_eq!(Ppm::from_ratio(1, 0), None);
        assert_eq!(Ppm::from_ratio(u64::MAX, 1), Some(Ppm::MAX));
        assert_eq!(Ppm(5).clamp_to(Ppm(10), Ppm(20)), Ppm(10));
        assert_eq!(Ppm(50).clamp_to(Ppm(10), Ppm(20)), Ppm(20));
        assert_eq!(Ppm(50).clamp_to(Ppm(30), Ppm(20)), Ppm(30));
    }

    #[test]
    fn mul_div_is_exact_beyond_u128() {
        assert_eq!(mul_div(u128::MAX, u128::MAX, u128::MAX), Some(u128::MAX));
        assert_eq!(mul_div(u128::MAX, 2, 4), Some(u128::MAX / 2));
        assert_eq!(mul_div(u128::MAX, 3, 2), None);
        assert_eq!(mul_div(1, 1, 0), None);
        assert_eq!(
            mul_div_rem(1 << 100, 1 << 100, (1 << 90) + 7).map(|(_, r)| r < (1 << 90) + 7),
            Some(true)
        );
    }

    #[test]
    fn split_hands_out_every_unit() {
        assert_eq!(
            split_pro_rata(10, &[1, 1, 1]).unwrap(),
            alloc::vec![4, 3, 3]
        );
        assert_eq!(split_pro_rata(100, &[0, 0]).unwrap(), alloc::vec![0, 0]);
        assert_eq!(
            split_pro_rata(7, &[]).unwrap(),
            alloc::vec::Vec::<u128>::new()
        );
        assert_eq!(
            split_pro_rata(5, &[u128::MAX, 1]),
            Err(SplitError::WeightOverflow)
        );
        assert_eq!(
            split_pro_rata(u128::MAX, &[u128::MAX - 1, 1])
                .unwrap()
                .iter()
                .sum::<u128>(),
            u128::MAX
        );
    }

    #[test]
    fn curves_clamp() {
        let rarity = LinearCurve {
            base: Ppm::ONE,
            slope: Ppm(250_000),
            min: Ppm::ONE,
            max: Ppm(2_000_000),
        };
        assert_eq!(rarity.eval(0), Ppm::ONE);
        assert_eq!(rarity.eval(2), Ppm(1_500_000));
        assert_eq!(rarity.eval(100), Ppm(2_000_000));
        assert_eq!(rarity.eval(u64::MAX), Ppm(2_000_000));
        assert_eq!(LinearCurve::FLAT.eval(9), Ppm::ONE);
    }
}
