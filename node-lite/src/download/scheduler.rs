//! Which chunk to ask which peer for next: pure state, no I/O, so the policy is testable.
//!
//! - **Rarest first**: a peer is given the needed chunk held by the fewest active peers.
//!   Ties go to the earlier chunk, so content arrives roughly in order: the downloader
//!   hashes the output while it downloads, and a player could start early. (Random
//!   tie-breaking pays off only when downloaders re-seed partial content, which `get` does
//!   not do.)
//! - **One request per chunk** until every needed chunk has been requested; then
//!   **endgame**: an idle peer may duplicate a chunk in flight elsewhere (at most
//!   [`ENDGAME_DUPLICATES`] requests per chunk) once that chunk's request has taken longer
//!   than the endgame delay, so slow requests are rescued without doubling the last
//!   requests of every download. The first verified copy completes the
//!   chunk; the duplicates are not cancelled but finish and are paid with a receipt like any
//!   chunk served, so a seeder holds receipts for exactly what it served.
//! - Dropping a peer returns its chunks to the queue and lowers their availability.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::store::Bitfield;

/// Most simultaneous requests for one chunk in endgame mode.
pub const ENDGAME_DUPLICATES: usize = 2;

/// Index of a peer in the download's peer list.
pub type PeerIndex = usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    /// Not needed (already present) or done.
    Done,
    /// Needed.
    Needed,
}

#[derive(Debug)]
struct PeerSlot {
    have: Bitfield,
    inflight: usize,
    active: bool,
}

/// The scheduling state of one download.
#[derive(Debug)]
pub struct Scheduler {
    state: Vec<ChunkState>,
    /// Peers currently fetching each chunk.
    fetching: Vec<Vec<PeerIndex>>,
    /// Active peers holding each chunk.
    availability: Vec<u32>,
    /// Needed chunks with no request in flight: (availability, index), rarest first.
    queue: BTreeSet<(u32, usize)>,
    /// Needed chunks with at least one request in flight.
    inflight: BTreeSet<usize>,
    /// When each in-flight chunk got its first current request.
    since: Vec<Option<Instant>>,
    peers: Vec<PeerSlot>,
    remaining: usize,
}

impl Scheduler {
    /// A download of `chunks` chunks where `needed` are still missing, from peers holding
    /// `haves` (one bitfield per peer).
    pub fn new(chunks: usize, needed: &[usize], haves: Vec<Bitfield>) -> Self {
        let mut state = vec![ChunkState::Done; chunks];
        for &i in needed {
            if i < chunks {
                state[i] = ChunkState::Needed;
            }
        }
        let mut availability = vec![0u32; chunks];
        for have in &haves {
            for (i, count) in availability.iter_mut().enumerate() {
                if have.get(i) {
                    *count += 1;
                }
            }
        }
        let queue = (0..chunks)
            .filter(|&i| state[i] == ChunkState::Needed)
            .map(|i| (availability[i], i))
            .collect();
        let remaining = state.iter().filter(|s| **s == ChunkState::Needed).count();
        Self {
            state,
            fetching: vec![Vec::new(); chunks],
            since: vec![None; chunks],
            availability,
            queue,
            inflight: BTreeSet::new(),
            peers: haves
                .into_iter()
                .map(|have| PeerSlot {
                    have,
                    inflight: 0,
                    active: true,
                })
                .collect(),
            remaining,
        }
    }

    /// Needed chunks not yet done.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// Whether every needed chunk is done.
    pub fn is_done(&self) -> bool {
        self.remaining == 0
    }

    /// Requests in flight at `peer`.
    pub fn inflight(&self, peer: PeerIndex) -> usize {
        self.peers.get(peer).map_or(0, |p| p.inflight)
    }

    /// Whether `peer` is still used.
    pub fn is_active(&self, peer: PeerIndex) -> bool {
        self.peers.get(peer).is_some_and(|p| p.active)
    }

    /// Whether chunk `index` is done.
    pub fn is_complete(&self, index: usize) -> bool {
        self.state.get(index) == Some(&ChunkState::Done)
    }

    /// Peers fetching chunk `index` now.
    pub fn fetchers(&self, index: usize) -> &[PeerIndex] {
        self.fetching.get(index).map_or(&[], Vec::as_slice)
    }

    /// When the next in-flight chunk becomes eligible for an endgame duplicate (only in
    /// endgame, and only if that is after `now`).
    pub fn endgame_wake(&self, now: Instant, endgame_delay: Duration) -> Option<Instant> {
        if !self.queue.is_empty() {
            return None;
        }
        self.inflight
            .iter()
            .filter(|&&i| self.fetching[i].len() < ENDGAME_DUPLICATES)
            .filter_map(|&i| self.since[i].map(|t| t + endgame_delay))
            .filter(|t| *t > now)
            .min()
    }

    fn requeue_if_idle(&mut self, index: usize) {
        if self.fetching[index].is_empty() {
            self.since[index] = None;
        }
        if self.state[index] == ChunkState::Needed && self.fetching[index].is_empty() {
            self.inflight.remove(&index);
            self.queue.insert((self.availability[index], index));
        }
    }

    fn set_availability(&mut self, index: usize, value: u32) {
        let queued = self.queue.remove(&(self.availability[index], index));
        self.availability[index] = value;
        if queued {
            self.queue.insert((value, index));
        }
    }

    /// The next chunk `peer` should fetch, marked in flight; `None` if it has nothing
    /// useful to do now.
    ///
    /// At `now`, a chunk whose first request is older than `endgame_delay` may be
    /// duplicated (endgame).
    pub fn next_for(
        &mut self,
        peer: PeerIndex,
        now: Instant,
        endgame_delay: Duration,
    ) -> Option<usize> {
        let slot = self.peers.get(peer).filter(|p| p.active)?;
        let pick = self.queue.iter().find(|(_, i)| slot.have.get(*i)).copied();
        let index = if let Some(key) = pick {
            self.queue.remove(&key);
            key.1
        } else if self.queue.is_empty() {
            // Endgame: everything needed is requested; help with slow requests.
            *self.inflight.iter().find(|&&i| {
                slot.have.get(i)
                    && !self.fetching[i].contains(&peer)
                    && self.fetching[i].len() < ENDGAME_DUPLICATES
                    && self.since[i]
                        .is_some_and(|t| now.saturating_duration_since(t) >= endgame_delay)
            })?
        } else {
            return None;
        };
        if self.fetching[index].is_empty() {
            self.since[index] = Some(now);
        }
        self.fetching[index].push(peer);
        self.inflight.insert(index);
        self.peers[peer].inflight += 1;
        Some(index)
    }

    fn stop_fetching(&mut self, index: usize, peer: PeerIndex) -> bool {
        let Some(position) = self.fetching[index].iter().position(|p| *p == peer) else {
            return false;
        };
        self.fetching[index].swap_remove(position);
        self.peers[peer].inflight = self.peers[peer].inflight.saturating_sub(1);
        true
    }

    /// `peer` delivered a verified chunk `index`. Returns whether this completed the chunk
    /// (false: another copy was first, this was an endgame duplicate).
    pub fn complete(&mut self, index: usize, peer: PeerIndex) -> bool {
        self.stop_fetching(index, peer);
        if self.state[index] == ChunkState::Done {
            return false;
        }
        self.state[index] = ChunkState::Done;
        self.remaining -= 1;
        self.inflight.remove(&index);
        self.queue.remove(&(self.availability[index], index));
        true
    }

    /// A request for `index` at `peer` failed in a way that says nothing about the chunk
    /// (timeout, connection error, refused for owed receipts): try again later.
    pub fn failed(&mut self, index: usize, peer: PeerIndex) {
        if self.stop_fetching(index, peer) {
            self.requeue_if_idle(index);
        }
    }

    /// `peer` does not have chunk `index` after all (it answered 404).
    pub fn lacks(&mut self, index: usize, peer: PeerIndex) {
        self.stop_fetching(index, peer);
        if self.peers[peer].have.get(index) {
            self.peers[peer].have.set(index, false);
            let value = self.availability[index].saturating_sub(1);
            self.set_availability(index, value);
        }
        self.requeue_if_idle(index);
    }

    /// Stops using `peer`; returns the chunks it was fetching (their requests should be
    /// cancelled).
    pub fn drop_peer(&mut self, peer: PeerIndex) -> Vec<usize> {
        if !self.is_active(peer) {
            return Vec::new();
        }
        self.peers[peer].active = false;
        let held: Vec<usize> = (0..self.state.len())
            .filter(|i| self.peers[peer].have.get(*i))
            .collect();
        for i in held {
            let value = self.availability[i].saturating_sub(1);
            self.set_availability(i, value);
        }
        let fetching: Vec<usize> = (0..self.state.len())
            .filter(|&i| self.fetching[i].contains(&peer))
            .collect();
        for &i in &fetching {
            self.stop_fetching(i, peer);
            self.requeue_if_idle(i);
        }
        self.peers[peer].inflight = 0;
        fetching
    }

    /// Needed chunks that no active peer holds.
    pub fn unavailable(&self) -> usize {
        (0..self.state.len())
            .filter(|&i| {
                self.state[i] == ChunkState::Needed
                    && !self.peers.iter().any(|p| p.active && p.have.get(i))
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Instant {
        Instant::now()
    }

    fn field(len: usize, held: &[usize]) -> Bitfield {
        let mut f = Bitfield::new(len);
        for &i in held {
            f.set(i, true);
        }
        f
    }

    #[test]
    fn rarest_first() {
        // Chunk 2 is held by one peer only; everything else by both.
        let all = field(4, &[0, 1, 2, 3]);
        let common = field(4, &[0, 1, 3]);
        let mut s = Scheduler::new(4, &[0, 1, 2, 3], vec![all, common]);
        assert_eq!(s.next_for(0, now(), Duration::ZERO), Some(2));
        let next = s.next_for(1, now(), Duration::ZERO).unwrap();
        assert_ne!(next, 2);
    }

    #[test]
    fn every_chunk_once_then_endgame() {
        let all = field(3, &[0, 1, 2]);
        let mut s = Scheduler::new(3, &[0, 1, 2], vec![all.clone(), all]);
        let a = s.next_for(0, now(), Duration::ZERO).unwrap();
        let b = s.next_for(0, now(), Duration::ZERO).unwrap();
        let c = s.next_for(1, now(), Duration::ZERO).unwrap();
        let mut got = vec![a, b, c];
        got.sort();
        assert_eq!(got, vec![0, 1, 2]);
        // Queue empty: peer 1 may duplicate what peer 0 is fetching, once each.
        let d = s.next_for(1, now(), Duration::ZERO).unwrap();
        assert!(d == a || d == b);
        let e = s.next_for(1, now(), Duration::ZERO).unwrap();
        assert!((e == a || e == b) && e != d);
        assert_eq!(s.next_for(1, now(), Duration::ZERO), None);
        assert!(s.complete(d, 1));
        assert_eq!(s.fetchers(d), &[0], "the duplicate keeps running");
        assert_eq!(s.inflight(0), 2);
        assert!(
            !s.complete(d, 0),
            "the second copy does not complete it again"
        );
        assert_eq!(s.inflight(0), 1);
    }

    #[test]
    fn dropped_peer_returns_chunks_and_availability() {
        let mut s = Scheduler::new(2, &[0, 1], vec![field(2, &[0, 1]), field(2, &[0])]);
        let first = s.next_for(0, now(), Duration::ZERO).unwrap();
        assert_eq!(s.drop_peer(0), vec![first]);
        assert!(!s.is_active(0));
        assert_eq!(s.next_for(0, now(), Duration::ZERO), None);
        assert_eq!(s.unavailable(), 1, "chunk 1 was only at peer 0");
        assert_eq!(s.next_for(1, now(), Duration::ZERO), Some(0));
        assert!(s.complete(0, 1));
        assert_eq!(s.remaining(), 1);
        assert_eq!(s.next_for(1, now(), Duration::ZERO), None);
    }

    #[test]
    fn lacks_and_failed_requeue() {
        let mut s = Scheduler::new(1, &[0], vec![field(1, &[0]), field(1, &[0])]);
        assert_eq!(s.next_for(0, now(), Duration::ZERO), Some(0));
        s.lacks(0, 0);
        assert_eq!(
            s.next_for(0, now(), Duration::ZERO),
            None,
            "peer 0 no longer claims it"
        );
        assert_eq!(s.next_for(1, now(), Duration::ZERO), Some(0));
        s.failed(0, 1);
        assert_eq!(
            s.next_for(1, now(), Duration::ZERO),
            Some(0),
            "failed requests are retried"
        );
        s.complete(0, 1);
        assert!(s.is_done());
    }

    #[test]
    fn already_present_chunks_are_not_fetched() {
        let mut s = Scheduler::new(3, &[1], vec![field(3, &[0, 1, 2])]);
        assert_eq!(s.remaining(), 1);
        assert_eq!(s.next_for(0, now(), Duration::ZERO), Some(1));
        assert_eq!(s.next_for(0, now(), Duration::ZERO), None);
    }

    #[test]
    fn endgame_waits_for_slow_requests() {
        let all = field(1, &[0]);
        let mut s = Scheduler::new(1, &[0], vec![all.clone(), all]);
        let start = Instant::now();
        let delay = Duration::from_millis(50);
        assert_eq!(s.next_for(0, start, delay), Some(0));
        assert_eq!(
            s.next_for(1, start + Duration::from_millis(10), delay),
            None,
            "not slow yet"
        );
        assert_eq!(s.endgame_wake(start, delay), Some(start + delay));
        assert_eq!(
            s.next_for(1, start + delay, delay),
            Some(0),
            "slow: duplicate it"
        );
        assert_eq!(
            s.endgame_wake(start + delay, delay),
            None,
            "no more duplicates"
        );
    }
}
