//! Receipt-gated serving: the seeder remembers which chunks each downloader has been served
//! but not yet paid for with a receipt, and refuses a downloader that owes too many.
//!
//! The ledger is in memory on purpose: it is a policy, not data anyone was promised. Unpaid
//! entries are forgiven after a while, so a downloader whose endgame request was cancelled
//! or that crashed is not locked out forever.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dsi_protocol::{ChunkId, NodeId};

/// Chunks served and not yet paid for, per downloader.
#[derive(Debug)]
pub struct Ledger {
    max_owed: usize,
    forgive_after: Duration,
    owed: Mutex<HashMap<NodeId, VecDeque<(ChunkId, Instant)>>>,
}

impl Ledger {
    /// A ledger refusing downloaders that owe `max_owed` receipts (0: never refuse) and
    /// forgiving debts older than `forgive_after`.
    pub fn new(max_owed: u32, forgive_after: Duration) -> Self {
        Self {
            max_owed: max_owed as usize,
            forgive_after,
            owed: Mutex::new(HashMap::new()),
        }
    }

    fn with<R>(
        &self,
        f: impl FnOnce(&mut HashMap<NodeId, VecDeque<(ChunkId, Instant)>>) -> R,
    ) -> R {
        // A poisoned lock only means another request panicked mid-update; the map is still
        // a valid (if slightly stale) ledger.
        let mut guard = self
            .owed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    fn prune(entries: &mut VecDeque<(ChunkId, Instant)>, forgive_after: Duration, now: Instant) {
        while entries
            .front()
            .is_some_and(|(_, at)| now.duration_since(*at) > forgive_after)
        {
            entries.pop_front();
        }
    }

    /// Records that `chunk` is about to be served to `downloader`, or refuses with the
    /// number of receipts it owes.
    pub fn try_serve(&self, downloader: NodeId, chunk: ChunkId) -> Result<(), usize> {
        let now = Instant::now();
        let (max, forgive) = (self.max_owed, self.forgive_after);
        self.with(|owed| {
            let entries = owed.entry(downloader).or_default();
            Self::prune(entries, forgive, now);
            if max > 0 && entries.len() >= max {
                return Err(entries.len());
            }
            entries.push_back((chunk, now));
            Ok(())
        })
    }

    /// Removes one unpaid `chunk` for `downloader` (a receipt arrived, or the chunk was not
    /// served after all). Returns whether there was one.
    pub fn settle(&self, downloader: &NodeId, chunk: &ChunkId) -> bool {
        self.with(|owed| {
            let Some(entries) = owed.get_mut(downloader) else {
                return false;
            };
            let found = entries
                .iter()
                .position(|(c, _)| c == chunk)
                .map(|i| entries.remove(i));
            if entries.is_empty() {
                owed.remove(downloader);
            }
            found.is_some()
        })
    }

    /// Receipts `downloader` owes now.
    pub fn owed(&self, downloader: &NodeId) -> usize {
        let now = Instant::now();
        let forgive = self.forgive_after;
        self.with(|owed| {
            owed.get_mut(downloader).map_or(0, |entries| {
                Self::prune(entries, forgive, now);
                entries.len()
            })
        })
    }

    /// Downloaders currently refused (owing the maximum).
    pub fn refused_count(&self) -> usize {
        if self.max_owed == 0 {
            return 0;
        }
        let now = Instant::now();
        let (max, forgive) = (self.max_owed, self.forgive_after);
        self.with(|owed| {
            owed.retain(|_, entries| {
                Self::prune(entries, forgive, now);
                !entries.is_empty()
            });
            owed.values().filter(|entries| entries.len() >= max).count()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_at_the_limit_until_paid() {
        let ledger = Ledger::new(2, Duration::from_secs(60));
        let d = NodeId([1; 32]);
        assert!(ledger.try_serve(d, ChunkId([1; 32])).is_ok());
        assert!(ledger.try_serve(d, ChunkId([2; 32])).is_ok());
        assert_eq!(ledger.try_serve(d, ChunkId([3; 32])), Err(2));
        assert_eq!(ledger.refused_count(), 1);
        assert!(ledger.settle(&d, &ChunkId([1; 32])));
        assert!(!ledger.settle(&d, &ChunkId([1; 32])));
        assert!(ledger.try_serve(d, ChunkId([3; 32])).is_ok());
        assert!(
            ledger.try_serve(NodeId([2; 32]), ChunkId([3; 32])).is_ok(),
            "per downloader"
        );
    }

    #[test]
    fn old_debts_are_forgiven_and_zero_means_unlimited() {
        let ledger = Ledger::new(1, Duration::from_millis(0));
        let d = NodeId([1; 32]);
        assert!(ledger.try_serve(d, ChunkId([1; 32])).is_ok());
        std::thread::sleep(Duration::from_millis(2));
        assert!(ledger.try_serve(d, ChunkId([2; 32])).is_ok());
        let unlimited = Ledger::new(0, Duration::from_secs(60));
        for i in 0..100u8 {
            assert!(unlimited.try_serve(d, ChunkId([i; 32])).is_ok());
        }
        assert_eq!(unlimited.refused_count(), 0);
        assert_eq!(unlimited.owed(&d), 100);
    }
}
