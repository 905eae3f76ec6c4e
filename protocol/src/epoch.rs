//! Epochs: fixed-length windows of wall-clock time, counted from a genesis instant.

use crate::Epoch;
use parity_scale_codec::{Decode, Encode};

/// Maps Unix milliseconds to epochs: epoch `n` covers
/// `[genesis_ms + n * length_ms, genesis_ms + (n + 1) * length_ms)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct EpochSchedule {
    /// Start of epoch 0, in Unix milliseconds.
    pub genesis_ms: u64,
    /// Length of one epoch in milliseconds (never 0).
    pub length_ms: u64,
}

impl Default for EpochSchedule {
    /// One-hour epochs counted from the Unix epoch.
    fn default() -> Self {
        Self {
            genesis_ms: 0,
            length_ms: 3_600_000,
        }
    }
}

impl EpochSchedule {
    /// The epoch containing `now_ms` (epoch 0 for instants before genesis).
    pub fn epoch_at(&self, now_ms: u64) -> Epoch {
        let length = self.length_ms.max(1);
        Epoch(now_ms.saturating_sub(self.genesis_ms) / length)
    }

    /// Start (inclusive) and end (exclusive) of an epoch, in Unix milliseconds (saturating).
    pub fn window(&self, epoch: Epoch) -> (u64, u64) {
        let length = self.length_ms.max(1);
        let start = self
            .genesis_ms
            .saturating_add(epoch.0.saturating_mul(length));
        (start, start.saturating_add(length))
    }

    /// The receipt time rule: whether `issued_at_ms` lies in `epoch`'s window widened by
    /// `skew_ms` on both sides (`start − skew ≤ issued_at_ms < end + skew`).
    pub fn issued_in_window(&self, epoch: Epoch, issued_at_ms: u64, skew_ms: u64) -> bool {
        let (start, end) = self.window(epoch);
        issued_at_ms.saturating_add(skew_ms) >= start && issued_at_ms < end.saturating_add(skew_ms)
    }
}

/// The current wall-clock time in Unix milliseconds (0 before 1970, `u64::MAX` after
/// the year 584 million). The one clock every DSI program reads epochs from.
#[cfg(feature = "std")]
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_tile_time() {
        let s = EpochSchedule {
            genesis_ms: 1000,
            length_ms: 10,
        };
        assert_eq!(s.epoch_at(0), Epoch(0));
        assert_eq!(s.epoch_at(1009), Epoch(0));
        assert_eq!(s.epoch_at(1010), Epoch(1));
        assert_eq!(s.window(Epoch(1)), (1010, 1020));
        assert!(s.issued_in_window(Epoch(1), 1005, 5));
        assert!(!s.issued_in_window(Epoch(1), 1004, 5));
        assert!(s.issued_in_window(Epoch(1), 1024, 5));
        assert!(!s.issued_in_window(Epoch(1), 1025, 5));
        assert!(s.issued_in_window(Epoch(1), 1010, 0) && !s.issued_in_window(Epoch(1), 1020, 0));
        assert_eq!(s.epoch_at(u64::MAX), Epoch((u64::MAX - 1000) / 10));
        let zero = EpochSchedule {
            genesis_ms: 0,
            length_ms: 0,
        };
        assert_eq!(zero.epoch_at(5), Epoch(5));
    }
}
