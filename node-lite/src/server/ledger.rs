//! Receipt-gated serving: the seeder remembers which chunks each downloader has been served
//! but not yet paid for with a receipt, and refuses a downloader that owes too many, or
//! whose network address owes too many in all.
//!
//! The ledger is in memory on purpose: it is a policy, not data anyone was promised. Its
//! memory is bounded whatever the traffic:
//!
//! - a debt is one entry per (downloader, chunk): asking for the same chunk again while it
//!   is unpaid counts one more serve on the same entry, and a receipt pays the entry;
//! - unpaid entries are forgiven after `forgive_after` (a downloader whose endgame request
//!   was cancelled or that crashed is not locked out forever); expired entries are dropped
//!   on the write path, amortised O(1) per request (one queue in serve order, so the
//!   oldest entry is always at its front);
//! - at most `max_debts` entries are held; when a new one would pass that, the oldest
//!   unpaid entry is forgiven early ([`Ledger::forgiven_early`] counts them). Failing
//!   closed instead (refusing everyone new) would let whoever fills the table lock honest
//!   downloaders out; forgiving early only gives away chunks that were served long ago;
//! - downloaders and addresses are tracked only while they owe something, so there are at
//!   most `max_debts` of each.
//!
//! Downloaders prove who they are (signed chunk requests), but keys are free, so unpaid
//! serves are also bounded per network address ([`address_group`]: an IPv4 address, or
//! an IPv6 /64): fresh keys from one address share `max_owed_per_address`.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dsi_protocol::{ChunkId, NodeId};

/// What a ledger enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedgerLimits {
    /// Unpaid serves a downloader may owe before it is refused; 0 turns the ledger off.
    pub max_owed: usize,
    /// Unpaid serves all downloaders at one address group may owe together; 0: no bound.
    pub max_owed_per_address: usize,
    /// Unpaid entries older than this are forgiven.
    pub forgive_after: Duration,
    /// Most entries held; past it the oldest is forgiven early. At least 1.
    pub max_debts: usize,
}

/// Why a chunk request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The downloader owes `owed` serves (its limit).
    Downloader {
        /// Serves it owes.
        owed: usize,
    },
    /// The downloaders at the request's address group owe `owed` serves together.
    Address {
        /// Serves owed at the address group.
        owed: usize,
    },
    /// The downloader already owes this chunk, from a request issued at the same time or
    /// later: this one is a replay (or out of order).
    Replayed {
        /// Issue time of the request the entry last counted.
        last_issued_at_ms: u64,
    },
}

/// The address group unpaid serves are counted under: an IPv4 address (also when it
/// arrives IPv4-mapped in IPv6), or the /64 prefix of an IPv6 address (one host usually
/// has a whole /64).
pub fn address_group(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

/// One unpaid (downloader, chunk).
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Its record in the serve-order queue.
    seq: u64,
    /// Address group of the request that opened it.
    address: IpAddr,
    /// Times served since it opened.
    serves: usize,
    /// Issue time of the latest request counted.
    last_issued_at_ms: u64,
}

#[derive(Debug, Default)]
struct Owed {
    chunks: HashMap<ChunkId, Entry>,
    /// Σ serves of `chunks`.
    serves: usize,
}

/// A record in serve order; stale once its entry is paid (the seq no longer matches).
#[derive(Clone, Copy, Debug)]
struct Record {
    seq: u64,
    at: Instant,
    downloader: NodeId,
    chunk: ChunkId,
}

#[derive(Debug, Default)]
struct State {
    owed: HashMap<NodeId, Owed>,
    /// Serves owed per address group.
    by_address: HashMap<IpAddr, usize>,
    /// Every entry opened, in serve order (so in expiry order); paid ones stay as stale
    /// records until they reach the front or the queue is compacted.
    queue: VecDeque<Record>,
    /// Live entries.
    live: usize,
    next_seq: u64,
    forgiven_early: u64,
    /// Issue time of the last request counted on each entry a receipt paid, kept for
    /// [`REPLAY_MEMORY`] so a captured header cannot open a new debt in its owner's name
    /// once the old one is paid. Bounded like the entries (`max_debts`).
    settled: HashMap<(NodeId, ChunkId), u64>,
    /// `settled` in settlement order, for expiry.
    settled_order: VecDeque<(Instant, NodeId, ChunkId, u64)>,
}

/// How long a paid entry's last request time is remembered against replays: twice the
/// freshness window of a signed chunk request (`dsi_api::downloader`), so a header old
/// enough to be forgotten is also too old to be accepted.
pub const REPLAY_MEMORY: Duration = Duration::from_secs(240);

impl State {
    fn is_live(&self, record: &Record) -> bool {
        self.owed
            .get(&record.downloader)
            .and_then(|owed| owed.chunks.get(&record.chunk))
            .is_some_and(|entry| entry.seq == record.seq)
    }

    /// Removes the entry (downloader, chunk) with all its serves.
    fn remove(&mut self, downloader: &NodeId, chunk: &ChunkId) -> Option<Entry> {
        let owed = self.owed.get_mut(downloader)?;
        let entry = owed.chunks.remove(chunk)?;
        owed.serves -= entry.serves;
        if owed.chunks.is_empty() {
            self.owed.remove(downloader);
        }
        self.release(entry.address, entry.serves);
        self.live -= 1;
        Some(entry)
    }

    fn release(&mut self, address: IpAddr, serves: usize) {
        if let Some(count) = self.by_address.get_mut(&address) {
            *count = count.saturating_sub(serves);
            if *count == 0 {
                self.by_address.remove(&address);
            }
        }
    }

    /// Drops paid records and forgives expired entries at the front of the queue; compacts
    /// the queue when paid records make up most of it. Amortised O(1) per call.
    fn prune(&mut self, forgive_after: Duration, now: Instant) {
        while let Some(front) = self.queue.front().copied() {
            if self.is_live(&front) {
                if now.saturating_duration_since(front.at) <= forgive_after {
                    break;
                }
                self.remove(&front.downloader, &front.chunk);
            }
            self.queue.pop_front();
        }
        if self.queue.len() > 2 * self.live + 1024 {
            let queue = std::mem::take(&mut self.queue);
            self.queue = queue.into_iter().filter(|r| self.is_live(r)).collect();
        }
    }

    /// Remembers a paid entry's last request time (see `settled`).
    fn remember_settled(
        &mut self,
        downloader: NodeId,
        chunk: ChunkId,
        issued_at_ms: u64,
        now: Instant,
        cap: usize,
    ) {
        self.prune_settled(now);
        while self.settled.len() >= cap || self.settled_order.len() >= 2 * cap {
            match self.settled_order.pop_front() {
                Some((_, d, c, at)) => {
                    if self.settled.get(&(d, c)) == Some(&at) {
                        self.settled.remove(&(d, c));
                    }
                }
                None => break,
            }
        }
        self.settled.insert((downloader, chunk), issued_at_ms);
        self.settled_order
            .push_back((now, downloader, chunk, issued_at_ms));
    }

    fn prune_settled(&mut self, now: Instant) {
        while let Some(&(at, d, c, issued)) = self.settled_order.front() {
            if now.saturating_duration_since(at) <= REPLAY_MEMORY {
                break;
            }
            self.settled_order.pop_front();
            if self.settled.get(&(d, c)) == Some(&issued) {
                self.settled.remove(&(d, c));
            }
        }
    }

    /// Forgives the oldest live entry (called with the queue pruned, so it is at the
    /// front).
    fn forgive_oldest(&mut self) {
        while let Some(front) = self.queue.pop_front() {
            if self.remove(&front.downloader, &front.chunk).is_some() {
                self.forgiven_early += 1;
                return;
            }
        }
    }
}

/// Chunks served and not yet paid for, per downloader and per address group.
#[derive(Debug)]
pub struct Ledger {
    limits: LedgerLimits,
    state: Mutex<State>,
}

impl Ledger {
    /// A ledger enforcing `limits`.
    pub fn new(limits: LedgerLimits) -> Self {
        Self {
            limits: LedgerLimits {
                max_debts: limits.max_debts.max(1),
                ..limits
            },
            state: Mutex::new(State::default()),
        }
    }

    /// Whether serving is gated at all (`max_owed` > 0).
    pub fn is_gating(&self) -> bool {
        self.limits.max_owed > 0
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        // A poisoned lock only means another request panicked mid-update; the state is
        // still a valid (if slightly stale) ledger.
        let mut guard = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// Records that `chunk` is about to be served to `downloader`, asking from `address`
    /// with a request issued at `issued_at_ms`, or says why not.
    pub fn try_serve(
        &self,
        downloader: NodeId,
        chunk: ChunkId,
        address: IpAddr,
        issued_at_ms: u64,
    ) -> Result<(), Refusal> {
        self.try_serve_at(downloader, chunk, address, issued_at_ms, Instant::now())
    }

    /// [`Ledger::try_serve`] at the instant `now`.
    pub fn try_serve_at(
        &self,
        downloader: NodeId,
        chunk: ChunkId,
        address: IpAddr,
        issued_at_ms: u64,
        now: Instant,
    ) -> Result<(), Refusal> {
        let limits = self.limits;
        if limits.max_owed == 0 {
            return Ok(());
        }
        let address = address_group(address);
        self.with(|state| {
            state.prune(limits.forgive_after, now);
            state.prune_settled(now);
            let owed = state.owed.get(&downloader);
            let existing = owed.and_then(|o| o.chunks.get(&chunk)).copied();
            if let Some(entry) = existing
                && issued_at_ms <= entry.last_issued_at_ms
            {
                return Err(Refusal::Replayed {
                    last_issued_at_ms: entry.last_issued_at_ms,
                });
            }
            if existing.is_none()
                && let Some(&paid) = state.settled.get(&(downloader, chunk))
                && issued_at_ms <= paid
            {
                return Err(Refusal::Replayed {
                    last_issued_at_ms: paid,
                });
            }
            let serves = owed.map_or(0, |o| o.serves);
            if serves >= limits.max_owed {
                return Err(Refusal::Downloader { owed: serves });
            }
            // A re-serve counts at the address of the entry's first request.
            let counted_at = existing.map_or(address, |e| e.address);
            let at_address = state.by_address.get(&counted_at).copied().unwrap_or(0);
            if limits.max_owed_per_address > 0 && at_address >= limits.max_owed_per_address {
                return Err(Refusal::Address { owed: at_address });
            }
            match existing {
                Some(_) => {
                    if let Some(entry) = state
                        .owed
                        .get_mut(&downloader)
                        .and_then(|o| o.chunks.get_mut(&chunk))
                    {
                        entry.serves += 1;
                        entry.last_issued_at_ms = issued_at_ms;
                    }
                }
                None => {
                    if state.live >= limits.max_debts {
                        state.forgive_oldest();
                    }
                    let seq = state.next_seq;
                    state.next_seq += 1;
                    state.queue.push_back(Record {
                        seq,
                        at: now,
                        downloader,
                        chunk,
                    });
                    state.live += 1;
                    state.owed.entry(downloader).or_default().chunks.insert(
                        chunk,
                        Entry {
                            seq,
                            address: counted_at,
                            serves: 1,
                            last_issued_at_ms: issued_at_ms,
                        },
                    );
                }
            }
            if let Some(owed) = state.owed.get_mut(&downloader) {
                owed.serves += 1;
            }
            *state.by_address.entry(counted_at).or_default() += 1;
            Ok(())
        })
    }

    /// Takes back one serve of `chunk` to `downloader` that did not happen after all (the
    /// chunk was missing or corrupt).
    pub fn unserve(&self, downloader: &NodeId, chunk: &ChunkId) {
        self.with(|state| {
            let Some(owed) = state.owed.get_mut(downloader) else {
                return;
            };
            let Some(entry) = owed.chunks.get_mut(chunk) else {
                return;
            };
            if entry.serves <= 1 {
                state.remove(downloader, chunk);
                return;
            }
            entry.serves -= 1;
            let address = entry.address;
            owed.serves -= 1;
            state.release(address, 1);
        })
    }

    /// A receipt paid for `chunk`: removes the entry with every serve of it. Returns
    /// whether there was one.
    pub fn settle(&self, downloader: &NodeId, chunk: &ChunkId) -> bool {
        let cap = self.limits.max_debts;
        self.with(|state| match state.remove(downloader, chunk) {
            Some(entry) => {
                state.remember_settled(
                    *downloader,
                    *chunk,
                    entry.last_issued_at_ms,
                    Instant::now(),
                    cap,
                );
                true
            }
            None => false,
        })
    }

    /// Unpaid serves `downloader` owes now.
    pub fn owed(&self, downloader: &NodeId) -> usize {
        let forgive = self.limits.forgive_after;
        self.with(|state| {
            state.prune(forgive, Instant::now());
            state.owed.get(downloader).map_or(0, |o| o.serves)
        })
    }

    /// Unpaid serves owed at the address group of `address` now.
    pub fn owed_by_address(&self, address: IpAddr) -> usize {
        let forgive = self.limits.forgive_after;
        self.with(|state| {
            state.prune(forgive, Instant::now());
            state
                .by_address
                .get(&address_group(address))
                .copied()
                .unwrap_or(0)
        })
    }

    /// Downloaders currently refused (owing the maximum).
    pub fn refused_count(&self) -> usize {
        let (max, forgive) = (self.limits.max_owed, self.limits.forgive_after);
        if max == 0 {
            return 0;
        }
        self.with(|state| {
            state.prune(forgive, Instant::now());
            state.owed.values().filter(|o| o.serves >= max).count()
        })
    }

    /// Entries forgiven before their time because the ledger was full.
    pub fn forgiven_early(&self) -> u64 {
        self.with(|state| state.forgiven_early)
    }

    /// What the ledger holds: (entries, downloaders, address groups, queue records).
    pub fn size(&self) -> (usize, usize, usize, usize) {
        self.with(|state| {
            (
                state.live,
                state.owed.len(),
                state.by_address.len(),
                state.queue.len(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const HOME: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

    fn limits(max_owed: usize) -> LedgerLimits {
        LedgerLimits {
            max_owed,
            max_owed_per_address: 0,
            forgive_after: Duration::from_secs(60),
            max_debts: 1 << 20,
        }
    }

    fn id(n: u32) -> NodeId {
        let mut bytes = [0u8; 32];
        bytes[..4].copy_from_slice(&n.to_le_bytes());
        NodeId(bytes)
    }

    fn chunk(n: u32) -> ChunkId {
        ChunkId(id(n).0)
    }

    #[test]
    fn refuses_at_the_limit_until_paid() {
        let ledger = Ledger::new(limits(2));
        let d = NodeId([1; 32]);
        assert!(ledger.try_serve(d, ChunkId([1; 32]), HOME, 1).is_ok());
        assert!(ledger.try_serve(d, ChunkId([2; 32]), HOME, 1).is_ok());
        assert_eq!(
            ledger.try_serve(d, ChunkId([3; 32]), HOME, 1),
            Err(Refusal::Downloader { owed: 2 })
        );
        assert_eq!(ledger.refused_count(), 1);
        assert!(ledger.settle(&d, &ChunkId([1; 32])));
        assert!(!ledger.settle(&d, &ChunkId([1; 32])));
        assert!(ledger.try_serve(d, ChunkId([3; 32]), HOME, 1).is_ok());
        assert!(
            ledger
                .try_serve(NodeId([2; 32]), ChunkId([3; 32]), HOME, 1)
                .is_ok(),
            "per downloader"
        );
    }

    #[test]
    fn old_debts_are_forgiven_and_zero_means_unlimited() {
        let ledger = Ledger::new(LedgerLimits {
            forgive_after: Duration::from_millis(0),
            ..limits(1)
        });
        let d = NodeId([1; 32]);
        assert!(ledger.try_serve(d, ChunkId([1; 32]), HOME, 1).is_ok());
        std::thread::sleep(Duration::from_millis(2));
        assert!(ledger.try_serve(d, ChunkId([2; 32]), HOME, 1).is_ok());
        let unlimited = Ledger::new(limits(0));
        for i in 0..100u8 {
            assert!(unlimited.try_serve(d, ChunkId([i; 32]), HOME, 1).is_ok());
        }
        assert_eq!(unlimited.refused_count(), 0);
        assert_eq!(
            unlimited.size(),
            (0, 0, 0, 0),
            "an unlimited ledger keeps nothing"
        );
    }

    /// A captured header replayed any number of times adds nothing to its owner's debt; a
    /// fresh request for the same unpaid chunk counts one more serve on the same entry,
    /// and one receipt pays them all.
    #[test]
    fn a_chunk_is_one_entry_and_replays_are_refused() {
        let ledger = Ledger::new(limits(10));
        let d = id(1);
        assert!(ledger.try_serve(d, chunk(1), HOME, 100).is_ok());
        for _ in 0..50 {
            assert_eq!(
                ledger.try_serve(d, chunk(1), HOME, 100),
                Err(Refusal::Replayed {
                    last_issued_at_ms: 100
                })
            );
        }
        assert_eq!(ledger.owed(&d), 1);
        assert!(ledger.try_serve(d, chunk(1), HOME, 101).is_ok());
        assert_eq!(ledger.owed(&d), 2);
        assert_eq!(ledger.size().0, 1, "one entry");
        ledger.unserve(&d, &chunk(1));
        assert_eq!(ledger.owed(&d), 1);
        assert!(ledger.settle(&d, &chunk(1)));
        assert_eq!(ledger.owed(&d), 0);
        assert_eq!(ledger.owed_by_address(HOME), 0);
        assert_eq!(ledger.size().0, 0);
        // Paid: a captured header replayed now opens no new debt in the payer's name...
        for issued in [100, 101] {
            assert_eq!(
                ledger.try_serve(d, chunk(1), HOME, issued),
                Err(Refusal::Replayed {
                    last_issued_at_ms: 101
                })
            );
        }
        assert_eq!(ledger.owed(&d), 0);
        // ...while a new request (a real re-download) is served.
        assert!(ledger.try_serve(d, chunk(1), HOME, 102).is_ok());
    }

    #[test]
    fn fresh_keys_share_the_bound_of_their_address() {
        let ledger = Ledger::new(LedgerLimits {
            max_owed_per_address: 5,
            ..limits(2)
        });
        let mut served = 0;
        for n in 0..100 {
            if ledger.try_serve(id(n), chunk(1), HOME, 1).is_ok() {
                served += 1;
            }
        }
        assert_eq!(served, 5);
        assert_eq!(
            ledger.try_serve(id(1000), chunk(1), HOME, 1),
            Err(Refusal::Address { owed: 5 })
        );
        // Another address is not affected; an IPv6 host's whole /64 is one address.
        let v6 = |last: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, last));
        let mut served6 = 0;
        for n in 0..100u16 {
            if ledger
                .try_serve(id(2000 + u32::from(n)), chunk(1), v6(n), 1)
                .is_ok()
            {
                served6 += 1;
            }
        }
        assert_eq!(served6, 5);
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        assert_eq!(address_group(mapped), HOME);
        // Paying frees the address.
        assert!(ledger.settle(&id(0), &chunk(1)));
        assert!(ledger.try_serve(id(1000), chunk(1), HOME, 1).is_ok());
    }

    /// Many keys from many addresses: the ledger never holds more than `max_debts`
    /// entries (nor more downloaders or addresses), forgiving the oldest first.
    #[test]
    fn the_ledger_is_bounded_whatever_the_traffic() {
        let max = 1000;
        let ledger = Ledger::new(LedgerLimits {
            max_owed_per_address: 3,
            max_debts: max,
            ..limits(64)
        });
        let start = Instant::now();
        for n in 0..50_000u32 {
            let address = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n / 2));
            assert!(
                ledger
                    .try_serve_at(id(n), chunk(n % 7), address, 1, start)
                    .is_ok()
            );
            // Paying half of them leaves stale records in the queue.
            if n % 2 == 0 {
                ledger.settle(&id(n), &chunk(n % 7));
            }
            let (entries, downloaders, addresses, records) = ledger.size();
            assert!(entries <= max && downloaders <= max && addresses <= max);
            assert!(records <= 2 * max + 1024 + 1, "{records} queue records");
        }
        assert!(ledger.forgiven_early() > 0);
        // The oldest went first: the newest unpaid debt is still there.
        assert_eq!(ledger.owed(&id(49_999)), 1);
        assert_eq!(ledger.owed(&id(1)), 0);
    }

    /// Expired entries are dropped by later requests, without anyone reading the metrics.
    #[test]
    fn expired_entries_go_on_the_write_path() {
        let ledger = Ledger::new(limits(64));
        let start = Instant::now();
        for n in 0..1000 {
            assert!(ledger.try_serve_at(id(n), chunk(0), HOME, 1, start).is_ok());
        }
        assert_eq!(ledger.size().0, 1000);
        let later = start + Duration::from_secs(61);
        assert!(
            ledger
                .try_serve_at(id(5000), chunk(0), HOME, 1, later)
                .is_ok()
        );
        assert_eq!(ledger.size(), (1, 1, 1, 1));
    }
}
