//! Closing an epoch: audits, reputation update, aggregation with the `protocol` crate's
//! rule, Merkle tree and proofs, the published batch file, and one database transaction
//! that records it all.
//!
//! Epochs close in order. The first epoch the oracle closes is the one asked for (or, on
//! the timer, the epoch before the current one); every later close is the next epoch.
//! Ingest and close share a lock: a receipt lands before its epoch closes or is refused.
//! A crash before the transaction commits leaves the epoch open; it closes again later.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

use dsi_protocol::fixed::Ppm;
use dsi_protocol::reward::{
    ChunkFacts, ContentFacts, CreditFacts, EpochInputs, Funding, Holder, Location, SeederFacts,
};
use dsi_protocol::{ChunkId, ContentId, Epoch, NodeId, PayoutAccount};
use parity_scale_codec::Encode;

use crate::OracleState;
use crate::batch::{
    BATCH_VERSION, BatchSponsorship, EpochBatch, batch_content_id, chain_draws, compute,
    write_durably,
};
use crate::store::Held;
use crate::store::{EpochClose, SeederState};
use dsi_api::oracle::{ClosedEpoch, EpochStatus, Leaf, NodeAnnouncement};
use dsi_protocol::now_ms;

/// Why an epoch cannot be closed.
#[derive(Debug, thiserror::Error)]
pub enum CloseError {
    /// Asked to close an epoch that is not the next one.
    #[error("epoch {asked} cannot close now: the next epoch to close is {next}")]
    OutOfOrder {
        /// Asked for.
        asked: Epoch,
        /// The next one.
        next: Epoch,
    },
    /// Asked to close an epoch that has not started.
    #[error("epoch {asked} has not started (current epoch {current})")]
    Future {
        /// Asked for.
        asked: Epoch,
        /// The current one.
        current: Epoch,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Reading the multipliers, sponsorships or credits from the chain failed.
    #[error("reading the chain: {0}")]
    Chain(#[from] crate::chain::ChainError),
    /// The inputs do not aggregate.
    #[error("aggregation failed: {0}")]
    Aggregate(#[from] dsi_protocol::reward::AggregateError),
    /// The batch file could not be written.
    #[error("cannot write batch file {path}: {source}")]
    Batch {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// With a chain, sponsorships and credits are deposits in `reward_pool`; the ledger
/// mirrors them: every chain sponsorship (by its id; the new ones read in pages of
/// [`dsi_chain::READ_PART`]) and, for each downloader with receipts in `epoch`, what was
/// deposited for it beyond what the ledger has. Runs before the ingest lock: a downloader
/// whose first receipt of the epoch arrives after this read is mirrored by the next close
/// (its receipts of this epoch pay nothing, as any downloader's without credit).
async fn mirror_chain_funding(
    state: &OracleState,
    chain: &crate::chain::Chain,
    epoch: Epoch,
) -> Result<(), CloseError> {
    let _mirroring = state.mirror_lock.lock().await;
    let now = now_ms();
    let mut new = 0usize;
    // A sponsorship's terms never change: only the ones made since the last mirror are
    // read (the ids count up from 0).
    let next = state
        .store
        .max_chain_sponsorship()
        .await?
        .map_or(0, |id| id.saturating_add(1));
    for s in chain.sponsorships_from(next).await? {
        let mirrored = dsi_api::oracle::Sponsorship {
            content: ContentId(s.content),
            per_epoch: s.per_epoch,
            replicas: s.replicas,
            first_epoch: Epoch(s.first_epoch),
            last_epoch: Epoch(s.last_epoch),
            funded_at_ms: now,
            chain_id: Some(s.id),
        };
        if state.store.add_sponsorship(&mirrored).await? {
            new += 1;
        }
    }
    let downloaders = state.store.epoch_downloaders(epoch).await?;
    let credits = chain.credits(&downloaders).await?;
    let mut topped_up = 0usize;
    for (downloader, credit) in downloaders.iter().zip(credits) {
        let (funded, _) = state.store.credit(downloader).await?;
        if credit.deposited > funded {
            state
                .store
                .add_credit(downloader, credit.deposited - funded, now)
                .await?;
            topped_up += 1;
        }
    }
    if new + topped_up > 0 {
        tracing::info!(
            epoch = epoch.0,
            sponsorships = new,
            credits = topped_up,
            "mirrored the chain's new deposits"
        );
    }
    Ok(())
}

/// Funded contents and their target replication: governance's subsidized list (at the
/// rule's target), then the active sponsorships of other contents (summed; the target is
/// the one of the sponsorship paying most per epoch, among equals the first's, so a tiny
/// sponsorship cannot spread a large one over more replicas). A content on the subsidized
/// list keeps its subsidy: sponsoring it (anyone can, on chain) cannot replace its share
/// of the subsidy by a token amount; such a sponsorship is not drawn and goes back to its
/// sponsor.
pub fn funded_contents(
    subsidized: &[crate::config::Boost],
    sponsorships: &[dsi_api::oracle::Sponsorship],
    target_replication: u32,
) -> BTreeMap<ContentId, (Funding, u32)> {
    let mut funded: BTreeMap<ContentId, (Funding, u32)> = BTreeMap::new();
    for subsidy in subsidized {
        funded.entry(subsidy.content).or_insert((
            Funding::Subsidized {
                boost: subsidy.boost,
            },
            target_replication,
        ));
    }
    let mut largest: HashMap<ContentId, u128> = HashMap::new();
    for sponsorship in sponsorships {
        let entry = funded
            .entry(sponsorship.content)
            .or_insert((Funding::Sponsored { per_epoch: 0 }, 0));
        if let Funding::Sponsored { per_epoch } = &mut entry.0 {
            *per_epoch = per_epoch.saturating_add(sponsorship.per_epoch);
            let most = largest.entry(sponsorship.content).or_insert(0);
            if sponsorship.per_epoch > *most || entry.1 == 0 {
                *most = sponsorship.per_epoch;
                entry.1 = sponsorship.replicas;
            }
        }
    }
    funded
}

/// The chain client pinned to the block every read of `epoch`'s close is made at: the
/// newest block made before the epoch ended ([`dsi_chain::client::Node::block_at`], which
/// waits up to [`BOUNDARY_FINALITY_WAIT`] for it to be final).
async fn boundary_chain(
    chain: &crate::chain::Chain,
    schedule: &dsi_protocol::EpochSchedule,
    epoch: Epoch,
) -> Result<crate::chain::Chain, CloseError> {
    let (_, end) = schedule.window(epoch);
    let block = match chain
        .node()
        .block_at(end.saturating_sub(1), BOUNDARY_FINALITY_WAIT)
        .await
    {
        Ok(block) => block,
        // A node that prunes old state (256 blocks by default) no longer has the boundary
        // of an epoch closed long after it ended: the close reads the newest final state,
        // which another member of a committee may not see alike.
        Err(crate::chain::ChainError::Rpc(why)) if why.contains("discarded") => {
            let head = chain.node().finalized().await?;
            tracing::warn!(
                epoch = epoch.0,
                block = head.number,
                "the node no longer holds the state of the block the epoch ended at (run it with --state-pruning archive-canonical); reading the newest final block"
            );
            head
        }
        Err(e) => return Err(e.into()),
    };
    tracing::debug!(
        epoch = epoch.0,
        block = block.number,
        "the close reads the chain at this block"
    );
    Ok(chain.at(block))
}

/// How long a close waits for the blocks made before its epoch ended to be final.
pub const BOUNDARY_FINALITY_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The subsidy budget an epoch can be paid with on chain: the configured `budget`, at
/// most `reward_pool`'s `max_epoch_subsidy` and what its `free` balance keeps after the
/// subsidies of earlier epochs not funded yet (`pending`). An epoch's subsidy (its total
/// less what it draws and debits) is at most its budget, since sponsored storage pays at
/// most the draws and paid bandwidth at most the debits.
pub fn chain_budget(budget: u128, max_subsidy: u128, free: u128, pending: u128) -> u128 {
    budget.min(max_subsidy).min(free.saturating_sub(pending))
}

/// What the epochs before `epoch` that the chain had not funded at the pinned block will
/// still take from the pool's free balance as read there (`chain` is pinned: every
/// member of a committee computes the same amount). An epoch final there but not funded
/// takes its subsidy plus what its applied parts already drew (those draws left the
/// committed total and count as free until its total is reserved); an epoch the chain did
/// not have there takes its subsidy as `submit` will ask for it. Epochs before the chain's
/// latest good one are funded (a root needs a funded base), so only the oracle's epochs
/// from that one on are looked at, with one chain read each (usually one or two).
async fn pending_subsidies(
    state: &OracleState,
    chain: &crate::chain::Chain,
    epoch: Epoch,
) -> Result<u128, CloseError> {
    let last_good = chain.last_good_epoch().await?;
    let statuses: Vec<EpochStatus> = EpochStatus::ALL
        .iter()
        .copied()
        .filter(|s| !matches!(s, EpochStatus::Open | EpochStatus::Vetoed))
        .collect();
    let mut pending = 0u128;
    let from = Epoch(last_good.unwrap_or(0));
    for record in state.store.epochs_with_status_from(&statuses, from).await? {
        if record.epoch >= epoch {
            continue;
        }
        match chain.epoch_record(record.epoch.0).await? {
            Some(on_chain) => {
                let funded = on_chain.applied >= on_chain.parts;
                if on_chain.status == dsi_chain::contracts::EpochStatus::Final && !funded {
                    pending = pending
                        .saturating_add(on_chain.subsidy)
                        .saturating_add(on_chain.drawn);
                }
            }
            None => {
                let funding = crate::submit::funding(state, record.epoch, record.total).await?;
                pending = pending.saturating_add(funding.subsidy);
            }
        }
    }
    Ok(pending)
}

/// Most draws and debits one epoch's funding parts can carry on chain
/// (`reward_pool::MAX_FUNDING_PARTS` parts of [`dsi_chain::FUNDING_PART`] entries).
pub const MAX_FUNDING_ENTRIES: usize = dsi_chain::MAX_FUNDING_PARTS * dsi_chain::FUNDING_PART;

/// Most sponsorships one epoch pays from (half of [`MAX_FUNDING_ENTRIES`], the other
/// half for debits).
pub const MAX_PAID_SPONSORSHIPS: usize = MAX_FUNDING_ENTRIES / 2;

/// An epoch pays from at most [`MAX_PAID_SPONSORSHIPS`] sponsorships, those paying most
/// per epoch (ties: the smaller contract id), so its funding parts always fit on chain:
/// sponsorships are cheap to make, and an epoch whose parts do not fit could never be
/// funded. The others wait (their sponsors get back what no epoch draws). Sorted by
/// contract id, so every oracle of a committee sees them in one order.
pub fn bounded_sponsorships(
    mut sponsorships: Vec<dsi_api::oracle::Sponsorship>,
) -> Vec<dsi_api::oracle::Sponsorship> {
    // Ties go to the smaller contract id (the same on every oracle of a committee; the
    // ledger's own sponsorships, without one, after them), and the order the rule sees
    // is by id too: never the local mirror time, which differs between oracles.
    let id = |s: &dsi_api::oracle::Sponsorship| s.chain_id.map_or(u64::MAX, u64::from);
    if sponsorships.len() > MAX_PAID_SPONSORSHIPS {
        sponsorships.sort_by_key(|s| (std::cmp::Reverse(s.per_epoch), id(s), s.funded_at_ms));
        sponsorships.truncate(MAX_PAID_SPONSORSHIPS);
    }
    sponsorships.sort_by_key(|s| (id(s), s.funded_at_ms, s.content));
    sponsorships
}

/// At most `room` downloaders' credit pays in an epoch: those whose receipts to `known`
/// seeders (the ones the rule pays: a receipt to a key that is no seeder debits nothing)
/// cost most (bytes × price, at most their credit; ties: the smaller key). The others'
/// receipts pay nothing this epoch, as any downloader's without credit. So the epoch's
/// debits always fit in its funding parts: thousands of free keys each funded with the
/// smallest deposit cannot make an epoch impossible to fund, and displacing a paying
/// downloader costs more than it paid (receipts to a made-up seeder, which cost nothing,
/// do not rank). Sorted by key, as the rule wants.
pub fn bounded_credits(
    mut credits: Vec<CreditFacts>,
    receipts: &[dsi_protocol::SignedReceipt],
    known: impl Fn(&NodeId) -> bool,
    price_per_byte: u64,
    room: usize,
) -> Vec<CreditFacts> {
    if credits.len() <= room {
        return credits;
    }
    let mut bytes: HashMap<NodeId, u64> = HashMap::new();
    for r in receipts.iter().filter(|r| known(&r.receipt.seeder)) {
        let b = bytes.entry(r.receipt.downloader).or_default();
        *b = b.saturating_add(u64::from(r.receipt.bytes));
    }
    let cost = |c: &CreditFacts| {
        u128::from(bytes.get(&c.downloader).copied().unwrap_or(0))
            .saturating_mul(u128::from(price_per_byte))
            .min(c.available)
    };
    credits.sort_by(|a, b| cost(b).cmp(&cost(a)).then(a.downloader.cmp(&b.downloader)));
    credits.truncate(room);
    credits.sort_by_key(|c| c.downloader);
    credits
}

/// What [`fit_to_cap`] took out of an epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CapCut {
    /// The subsidy budget before the cut.
    pub budget_before: u128,
    /// For each sponsorship given to the fit, in its order: whether the epoch pays from it.
    pub kept: Vec<bool>,
    /// Downloaders whose credit pays less than their receipts cost.
    pub credits_cut: usize,
    /// Sponsored contents paid nothing this epoch, by content id.
    pub contents_left_out: Vec<ContentId>,
}

/// Which sponsorships fit in `room`, taken in the order given (by contract id): each whole,
/// while its amount per epoch fits in what is left; one that does not fit is left out and
/// the next ones are still tried. `Some(per_epoch)` for a candidate, `None` for an entry
/// that is not one (it is not kept and takes nothing). `verify-epoch --chain` runs the
/// same function over the recorded sponsorships and those the chain held but the batch
/// left out.
pub fn admit_sponsorships(mut room: u128, candidates: &[Option<u128>]) -> Vec<bool> {
    candidates
        .iter()
        .map(|candidate| match *candidate {
            Some(per_epoch) if per_epoch <= room => {
                room -= per_epoch;
                true
            }
            _ => false,
        })
        .collect()
}

/// What `rewards` paid the subsidized contents of `inputs` (after factors).
pub fn subsidy_paid(inputs: &EpochInputs, rewards: &dsi_protocol::reward::EpochRewards) -> u128 {
    // `rewards.contents` is in input order, one entry per content.
    inputs
        .contents
        .iter()
        .zip(&rewards.contents)
        .filter(|(facts, _)| matches!(facts.funding, Funding::Subsidized { .. }))
        .fold(0u128, |acc, (_, pay)| acc.saturating_add(pay.paid))
}

/// The contents `inputs` funds by sponsorship.
fn sponsored_contents(inputs: &EpochInputs) -> HashSet<ContentId> {
    inputs
        .contents
        .iter()
        .filter(|c| matches!(c.funding, Funding::Sponsored { .. }))
        .map(|c| c.content)
        .collect()
}

/// Fits an epoch's funding under `cap`, `reward_pool`'s `max_epoch_total` (a root whose
/// total is above it is refused at every vote, and every later epoch would wait behind
/// it; sponsorships and credit are deposits anyone can make). The epoch takes, up to the
/// cap:
///
/// 1. the subsidy (governance's own money): the budget is cut to the cap, and what it
///    pays at the cut budget is counted (`receipts` aggregated: a subsidized content
///    nobody holds takes no room);
/// 2. `sponsorships` (those of the epoch's sponsored contents, by contract id, as
///    `bounded_sponsorships` orders them), each whole at its amount per epoch, the oldest
///    first ([`admit_sponsorships`]): a deposit made later, even on the same content,
///    cannot take the place of one made earlier. A content is paid the sum of its kept
///    sponsorships (its target replication the largest kept one's), nothing if none is
///    kept;
/// 3. downloaders' credit: all of what their receipts debit if it fits, otherwise the
///    room left split over them pro rata by debit (each downloader's seeders share its
///    part, as when credit runs out; the rest of its credit stays for later epochs; a
///    receipt to a key that is no seeder debits nothing and takes no room).
///
/// Each kept part pays at most what it is counted for (the subsidy what it paid at the
/// cut budget, a content at most its amount per epoch, a debit at most its credit), so
/// the fitted inputs' total is at most `cap`. The inputs stay sorted as the rule wants.
pub fn fit_to_cap(
    cap: u128,
    inputs: &mut EpochInputs,
    receipts: &[dsi_protocol::SignedReceipt],
    sponsorships: &[dsi_api::oracle::Sponsorship],
) -> Result<CapCut, dsi_protocol::reward::AggregateError> {
    let mut cut = CapCut {
        budget_before: inputs.budget,
        ..CapCut::default()
    };
    // The budget is cut first and the rewards figured at the cut budget: a smaller
    // budget can pay a seeder more (the units a pro rata split rounds off go to the
    // largest remainders), so the figures at the uncut one would not bound it.
    inputs.budget = inputs.budget.min(cap);
    let rewards = &dsi_protocol::reward::aggregate(inputs, receipts.iter().map(|r| &r.receipt))?;
    let mut room = cap.saturating_sub(subsidy_paid(inputs, rewards));
    let sponsored = sponsored_contents(inputs);
    let candidates: Vec<Option<u128>> = sponsorships
        .iter()
        .map(|s| sponsored.contains(&s.content).then_some(s.per_epoch))
        .collect();
    cut.kept = admit_sponsorships(room, &candidates);
    let kept: Vec<dsi_api::oracle::Sponsorship> = sponsorships
        .iter()
        .zip(&cut.kept)
        .filter(|(_, kept)| **kept)
        .map(|(s, _)| s.clone())
        .collect();
    room -= kept.iter().map(|s| s.per_epoch).sum::<u128>();
    // Each content: the sum of its kept sponsorships, the largest one's target, by the
    // rule that made the unfitted inputs.
    let terms = funded_contents(&[], &kept, 0);
    let mut left_out = Vec::new();
    inputs.contents.retain_mut(|c| {
        if !matches!(c.funding, Funding::Sponsored { .. }) {
            return true;
        }
        match terms.get(&c.content) {
            Some(&(funding, replicas)) => {
                c.funding = funding;
                c.replicas = replicas;
                true
            }
            None => {
                left_out.push(c.content);
                false
            }
        }
    });
    cut.contents_left_out = left_out;
    let debits: Vec<(NodeId, u128)> = rewards
        .debits
        .iter()
        .filter(|d| d.debited > 0)
        .map(|d| (d.downloader, d.debited))
        .collect();
    let wanted = debits.iter().fold(0u128, |acc, d| acc.saturating_add(d.1));
    if wanted > room {
        let weights: Vec<u128> = debits.iter().map(|d| d.1).collect();
        // Shares of less than the whole never exceed their weight; if the weights
        // overflowed, no credit pays (never more than the cap).
        let shares = dsi_protocol::fixed::split_pro_rata(room, &weights)
            .unwrap_or_else(|_| vec![0; weights.len()]);
        let parts: HashMap<NodeId, u128> = debits
            .iter()
            .zip(shares)
            .map(|((downloader, debited), share)| (*downloader, share.min(*debited)))
            .collect();
        for credit in &mut inputs.credits {
            if let Some(&part) = parts.get(&credit.downloader)
                && part < credit.available
            {
                credit.available = part;
                cut.credits_cut += 1;
            }
        }
        inputs.credits.retain(|c| c.available > 0);
    }
    Ok(cut)
}

/// Name of an epoch's batch file inside `batches/`.
pub fn batch_file_name(epoch: Epoch) -> String {
    format!("epoch-{:08}.batch", epoch.0)
}

/// The next epoch to close: the one after the newest closed epoch; before the first close,
/// the oldest epoch any accepted receipt names (so no accepted receipt is left behind in
/// an epoch that never closes). None: nothing closed and no receipts, any epoch may be
/// first.
pub async fn next_to_close(state: &OracleState) -> Result<Option<Epoch>, CloseError> {
    match state.store.last_closed_epoch().await? {
        Some(last) => Ok(Some(last.next())),
        None => Ok(state.store.first_receipt_epoch().await?),
    }
}

/// Closes every epoch from the next one through `through` (inclusive), which may be the
/// current epoch (closing it early). Returns the records of the epochs it closed.
pub async fn close_through(
    state: &OracleState,
    through: Epoch,
) -> Result<Vec<ClosedEpoch>, CloseError> {
    let current = state.config.epochs.epoch_at(now_ms());
    if through > current {
        return Err(CloseError::Future {
            asked: through,
            current,
        });
    }
    let mut closed = Vec::new();
    let mut next = match next_to_close(state).await? {
        // Before the first close, the oldest epoch with receipts closes first, and
        // nothing earlier than the one asked for is skipped.
        Some(first) if state.store.last_closed_epoch().await?.is_none() => first.min(through),
        Some(next) => next,
        None => through,
    };
    while next <= through {
        closed.push(close_epoch(state, next).await?);
        next = next.next();
    }
    Ok(closed)
}

/// Closes the epochs whose end (plus the configured delay) has passed.
pub async fn close_due(state: &OracleState) -> Result<Vec<ClosedEpoch>, CloseError> {
    let now = now_ms();
    let schedule = state.config.epochs;
    let current = schedule.epoch_at(now);
    let next = match next_to_close(state).await? {
        Some(next) => next,
        None if current.0 == 0 => return Ok(Vec::new()),
        None => Epoch(current.0 - 1),
    };
    let mut closed = Vec::new();
    let mut epoch = next;
    while epoch < current {
        let (_, end) = schedule.window(epoch);
        if end.saturating_add(state.config.close.delay_ms) > now {
            break;
        }
        closed.push(close_epoch(state, epoch).await?);
        epoch = epoch.next();
    }
    Ok(closed)
}

/// The chunks of every registered content the `nodes` announce (each content looked up
/// once). Only registered content (with chunks) can earn, so only its boost is read from
/// the chain: a junk content id costs one lookup and nothing on chain.
pub async fn content_chunks(
    state: &OracleState,
    nodes: &[NodeAnnouncement],
) -> Result<HashMap<ContentId, Vec<ChunkId>>, crate::store::StoreError> {
    let mut content_chunks = HashMap::new();
    let mut looked_up = HashSet::new();
    for node in nodes {
        for content in &node.contents {
            if looked_up.insert(*content) {
                let chunks = state.store.chunks_of(content).await?;
                if !chunks.is_empty() {
                    content_chunks.insert(*content, chunks);
                }
            }
        }
    }
    Ok(content_chunks)
}

/// The runs of `before` that go on although not proven in `epoch` (not in `proven_now`):
/// those not disproven this epoch (`disproven(node, content)`: an audit of one of the
/// content's chunks answered wrongly), proven at most `grace` epochs ago, and still
/// announcing the content if live (`announces` is `None` for a node that is not live: an
/// expired announcement is a node that was away, like an unreachable one). A run keeps its
/// `since` and its last `proven` epoch; it counts for nothing until proven again, and then
/// its `since` moves on by the epochs it missed ([`resumed_since`]).
///
/// The runs of a node paused in `epoch` (`paused(node)`) wait for it whatever their age:
/// `since` and `proven` both move on by one, so the pause uses none of the grace and
/// adds no seniority.
pub fn carried_runs<'a>(
    before: impl IntoIterator<Item = &'a Held>,
    proven_now: &[Held],
    announces: impl Fn(&NodeId, &ContentId) -> Option<bool>,
    disproven: impl Fn(&NodeId, &ContentId) -> bool,
    paused: impl Fn(&NodeId) -> bool,
    epoch: Epoch,
    grace: u64,
) -> Vec<Held> {
    let now: HashSet<(NodeId, ContentId)> =
        proven_now.iter().map(|h| (h.node, h.content)).collect();
    let mut carried: Vec<Held> = before
        .into_iter()
        .filter(|h| {
            !now.contains(&(h.node, h.content))
                && !disproven(&h.node, &h.content)
                && announces(&h.node, &h.content) != Some(false)
        })
        .filter_map(|h| {
            if paused(&h.node) {
                let shift = |e: Epoch| Epoch(e.0.saturating_add(1).min(epoch.0));
                Some(Held {
                    since: shift(h.since),
                    proven: shift(h.proven),
                    ..*h
                })
            } else {
                (epoch.0.saturating_sub(h.proven.0) <= grace).then_some(*h)
            }
        })
        .collect();
    carried.sort_by_key(|h| (h.node, h.content));
    carried
}

/// The `since` of a run proven again in `epoch`: moved on by the epochs it was not proven
/// (carried in its grace), so seniority counts proven epochs only. A holder that proves a
/// content one epoch in four (and drops it, or its connection, in between) ages a quarter
/// as fast as one that holds it all along, instead of keeping the oldest `since` for free.
pub fn resumed_since(run: &Held, epoch: Epoch) -> Epoch {
    let missed = epoch.0.saturating_sub(run.proven.0).saturating_sub(1);
    Epoch(run.since.0.saturating_add(missed).min(epoch.0))
}

/// How long an expired announcement is kept (at least the seniority grace).
pub const EXPIRED_NODE_RETENTION_MS: u64 = 24 * 3600 * 1000;

/// Closes one epoch (which must be the next one).
pub async fn close_epoch(state: &OracleState, epoch: Epoch) -> Result<ClosedEpoch, CloseError> {
    let started = Instant::now();
    let config = &state.config;
    let now = now_ms();
    let current = config.epochs.epoch_at(now);
    if epoch > current {
        return Err(CloseError::Future {
            asked: epoch,
            current,
        });
    }

    // Audits, content lookups and chain reads take time: all run before the ingest lock is
    // taken, so receipts keep flowing meanwhile.
    // Every chain read of the close is made at one block: the newest one made before the
    // epoch ended, once final. Members of a committee closing at different times read the
    // same deposits, market, limits and balance (a deposit made later counts from the next
    // epoch on), and no reorg takes back what was read.
    let chain = match &state.chain {
        Some(chain) => Some(boundary_chain(chain, &config.epochs, epoch).await?),
        None => None,
    };
    if let Some(chain) = &chain {
        mirror_chain_funding(state, chain, epoch).await?;
    }
    let live = state.store.live_nodes(now).await?;
    // Nodes that announced a pause covering this epoch: not audited, their reputation and
    // runs wait for them (`tracker.max_paused_epochs` bounds a pause).
    let paused = state.store.paused_in(epoch).await?;
    let content_chunks = content_chunks(state, &live).await?;
    // Every funded content a node announces gets a chunk in its challenge. (Read again
    // under the lock for the pay: a sponsorship recorded meanwhile is paid, and only
    // sampled from the next close on.)
    let funded_now: HashSet<ContentId> = state
        .store
        .sponsorships(None, Some(epoch))
        .await?
        .iter()
        .map(|s| s.content)
        .chain(config.subsidized.iter().map(|s| s.content))
        .collect();
    // Where each node announced from (its connection's source network, recorded at
    // announce time): a URL proves nothing about where a node is, and a node is audited
    // only at an address of its URL inside that network.
    let locations = state.store.live_locations(now).await?;
    let audited: Vec<NodeAnnouncement> = live
        .iter()
        .filter(|n| !paused.contains(&n.node))
        .cloned()
        .collect();
    let audits = crate::audit::audit_nodes(
        state,
        &audited,
        &locations,
        &content_chunks,
        &funded_now,
        epoch,
    )
    .await?;
    let held_before: HashMap<(NodeId, ContentId), Held> = state
        .store
        .held_since()
        .await?
        .into_iter()
        .map(|h| ((h.node, h.content), h))
        .collect();

    // Reward parameters and the market: from the multipliers contract when a chain is
    // configured.
    let (params, market, chain_boosts) = match &chain {
        Some(chain) => {
            let params = chain.params().await?;
            let market = chain.market().await?;
            state.set_market(market);
            // One read per `dsi_chain::BOOSTS_PART` contents.
            let contents: Vec<ContentId> = content_chunks.keys().copied().collect();
            let boosts: HashMap<ContentId, Ppm> = contents
                .iter()
                .copied()
                .zip(chain.boosts(&contents).await?)
                .collect();
            (params, market, Some(boosts))
        }
        None => (config.rewards, config.market, None),
    };
    // The subsidy budget. With a chain, an epoch never asks more than `reward_pool` can
    // pay: one that did would never be final (`SubsidyTooLarge`) or never funded
    // (`InsufficientFunds`), and every later epoch would wait behind it.
    let (budget, max_total) = match &chain {
        Some(chain) => {
            let (max_subsidy, _) = chain.funding_limits().await?;
            let (_, max_total) = chain.limits().await?;
            let free = chain.free_balance().await?;
            let pending = pending_subsidies(state, chain, epoch).await?;
            let configured = u128::from(config.close.budget);
            let budget = chain_budget(configured, max_subsidy, free, pending);
            if budget < configured {
                tracing::warn!(
                    epoch = epoch.0,
                    configured = %configured,
                    budget = %budget,
                    max_epoch_subsidy = %max_subsidy,
                    free_balance = %free,
                    pending_subsidies = %pending,
                    "the reward pool cannot pay the configured budget: the epoch's subsidy is cut to what it can pay (fund the pool, or governance raises max_epoch_subsidy)"
                );
            }
            (budget, Some(max_total))
        }
        None => (u128::from(config.close.budget), None),
    };
    let _guard = state.ingest_lock.lock().await;
    match (
        state.store.last_closed_epoch().await?,
        next_to_close(state).await?,
    ) {
        // Epochs close in order.
        (Some(_), Some(next)) if next != epoch => {
            return Err(CloseError::OutOfOrder { asked: epoch, next });
        }
        // The first close may start early, never after receipts it would leave behind.
        (None, Some(first)) if epoch > first => {
            return Err(CloseError::OutOfOrder {
                asked: epoch,
                next: first,
            });
        }
        _ => {}
    }
    // Read under the lock, as `POST /v1/sponsors` writes: a sponsorship of this epoch
    // recorded while the audits ran is paid.
    // With a chain only the chain's deposits fund (a sponsorship the ledger holds without a
    // contract id, recorded before the chain was configured, would be paid by the pool).
    let all_sponsorships: Vec<_> = state
        .store
        .sponsorships(None, Some(epoch))
        .await?
        .into_iter()
        .filter(|s| state.chain.is_none() || s.chain_id.is_some())
        .collect();
    let receipts = state.store.receipts_for_epoch(epoch).await?;
    // One view of the chunk lengths for the whole batch. A receipt judged against a length
    // that the chunk's bytes disproved since (`POST /v1/chunks/{id}`) is left out: it claims
    // bytes the chunk does not have, and `verify-epoch` would refuse the batch.
    let lengths = state.chunk_lengths.read().await;
    let loaded = receipts.len();
    let receipts: Vec<_> = receipts
        .into_iter()
        .filter(|r| lengths.get(&r.receipt.chunk) == Some(&r.receipt.bytes))
        .collect();
    if receipts.len() < loaded {
        tracing::warn!(
            epoch = epoch.0,
            left_out = loaded - receipts.len(),
            "receipts judged against a disproven chunk length are left out of the batch"
        );
    }

    let boost_of = |content: &ContentId| match &chain_boosts {
        Some(boosts) => boosts.get(content).copied().unwrap_or(Ppm::ONE),
        None => config.boost(content),
    };
    // Audit outcomes per node.
    let mut outcomes: HashMap<NodeId, (u32, u32)> = HashMap::new();
    for audit in &audits {
        let entry = outcomes.entry(audit.seeder).or_insert((0, 0));
        if audit.passed() {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }

    // A holder is a node that proved it holds what it announced: announcements that fail
    // their audits do not make content look common (which would move rarity pay away from
    // it). Without audits (a test network with `audit.enabled = false`) every announcement
    // counts.
    let proven = |node: &NodeId| {
        !paused.contains(node)
            && (!config.audit.enabled
                || outcomes
                    .get(node)
                    .is_some_and(|&(passed, failed)| passed > 0 && failed == 0))
    };
    // Funded contents. Only registered, announced contents can have holders.
    let all_funded = funded_contents(
        &config.subsidized,
        &all_sponsorships,
        params.target_replication,
    );
    let receipt_chunks: BTreeSet<ChunkId> = receipts.iter().map(|r| r.receipt.chunk).collect();
    let mut chunk_locations: BTreeMap<ChunkId, BTreeSet<Location>> = BTreeMap::new();
    let mut boosts: HashMap<ChunkId, Ppm> = HashMap::new();
    let mut content_holders: BTreeMap<ContentId, Vec<Holder>> = BTreeMap::new();
    let mut held = Vec::new();
    for node in &live {
        let location = locations.get(&node.node).copied();
        let is_proven = proven(&node.node);
        for content in &node.contents {
            let boost = boost_of(content);
            for chunk in content_chunks.get(content).into_iter().flatten() {
                if !receipt_chunks.contains(chunk) {
                    continue;
                }
                let entry = boosts.entry(*chunk).or_insert(Ppm::ONE);
                *entry = (*entry).max(boost);
                if let (true, Some(location)) = (is_proven, location) {
                    chunk_locations.entry(*chunk).or_default().insert(location);
                }
            }
            if is_proven && all_funded.contains_key(content) && content_chunks.contains_key(content)
            {
                let since = held_before
                    .get(&(node.node, *content))
                    .map_or(epoch, |h| resumed_since(h, epoch));
                held.push(Held {
                    node: node.node,
                    content: *content,
                    since,
                    proven: epoch,
                });
                if let Some(location) = location {
                    content_holders.entry(*content).or_default().push(Holder {
                        node: node.node,
                        location,
                        since,
                    });
                }
            }
        }
    }
    // Runs not proven this epoch go on within their grace, unless an audit of one of the
    // content's chunks disproved it (a wrong answer about one content does not end the
    // node's runs of the others).
    let mut failed_chunks: HashMap<NodeId, HashSet<ChunkId>> = HashMap::new();
    for audit in audits.iter().filter(|a| a.outcome.disproves()) {
        failed_chunks
            .entry(audit.seeder)
            .or_default()
            .insert(audit.chunk);
    }
    let disproven: HashSet<(NodeId, ContentId)> = held_before
        .keys()
        .filter(|(node, content)| {
            failed_chunks.get(node).is_some_and(|failed| {
                content_chunks
                    .get(content)
                    .is_some_and(|chunks| chunks.iter().any(|c| failed.contains(c)))
            })
        })
        .copied()
        .collect();
    let announced: HashMap<NodeId, &[ContentId]> =
        live.iter().map(|n| (n.node, &n.contents[..])).collect();
    let carried = carried_runs(
        held_before.values(),
        &held,
        |node, content| announced.get(node).map(|c| c.contains(content)),
        |node, content| disproven.contains(&(*node, *content)),
        |node| paused.contains(node),
        epoch,
        config.audit.seniority_grace_epochs,
    );
    held.extend(carried);
    // The epoch pays from a bounded number of sponsorships; only those of contents with a
    // proven holder (the ones that can draw at all) compete for the places, so
    // sponsorships of content nobody holds (never drawn, refundable: almost free) cannot
    // push the others out.
    let sponsorships = bounded_sponsorships(
        all_sponsorships
            .into_iter()
            .filter(|s| content_holders.contains_key(&s.content))
            .collect(),
    );
    let funded = funded_contents(&config.subsidized, &sponsorships, params.target_replication);
    let mut contents = Vec::new();
    for (content, (funding, replicas)) in &funded {
        let Some(chunks) = content_chunks.get(content) else {
            continue;
        };
        let mut holders = content_holders.remove(content).unwrap_or_default();
        holders.sort_by_key(|h| h.node);
        holders.dedup_by_key(|h| h.node);
        let length = chunks
            .iter()
            .map(|c| u64::from(lengths.get(c).copied().unwrap_or(0)))
            .sum();
        contents.push(ContentFacts {
            content: *content,
            length,
            replicas: *replicas,
            funding: *funding,
            holders,
        });
    }

    // Who can earn: live nodes, plus seeders with receipts whose (expired) record names a
    // payout account.
    let mut earners: BTreeMap<NodeId, PayoutAccount> =
        live.iter().map(|n| (n.node, n.payout)).collect();
    let receipt_seeders: BTreeSet<NodeId> = receipts.iter().map(|r| r.receipt.seeder).collect();
    for seeder in &receipt_seeders {
        if !earners.contains_key(seeder)
            && let Some(NodeAnnouncement { payout, .. }) = state.store.node(seeder).await?
        {
            earners.insert(*seeder, payout);
        }
    }
    let mut new_states = Vec::new();
    let mut seeder_facts = Vec::new();
    let funded_chunks: HashSet<ChunkId> = all_funded
        .keys()
        .flat_map(|content| content_chunks.get(content).into_iter().flatten().copied())
        .collect();
    // Vetting credit: passed audits of funded content, at most `audit.chunks_per_node` a
    // close (as `Store::funded_audits_passed` counts past ones), so announcing many small
    // funded contents does not vet a key faster.
    let vetting_per_epoch = config.audit.chunks_per_node as u64;
    let mut funded_passed: HashMap<NodeId, u64> = HashMap::new();
    for audit in audits
        .iter()
        .filter(|a| a.passed() && funded_chunks.contains(&a.chunk))
    {
        let credit = funded_passed.entry(audit.seeder).or_default();
        *credit = (*credit + 1).min(vetting_per_epoch);
    }
    let mut scores = Vec::new();
    for (seeder, payout) in &earners {
        let previous = state.store.seeder_state(seeder).await?;
        let (passed, failed) = outcomes.get(seeder).copied().unwrap_or((0, 0));
        // A paused node's evidence neither decays nor grows: its reputation waits.
        let reputation = if paused.contains(seeder) {
            previous.reputation
        } else {
            previous
                .reputation
                .update(&config.reputation, passed, failed)
        };
        // A network without audits cannot vet anyone: every key counts as vetted there.
        // Only audits of funded content vet a key: holding junk proves nothing anyone pays
        // for, and would vet a stock of fresh keys for free.
        let audits_passed = if config.audit.enabled {
            state
                .store
                .funded_audits_passed(seeder, vetting_per_epoch)
                .await?
                .saturating_add(funded_passed.get(seeder).copied().unwrap_or(0))
        } else {
            u64::MAX
        };
        seeder_facts.push(SeederFacts {
            seeder: *seeder,
            payout: *payout,
            previous_cumulative: previous.cumulative,
            reputation: reputation.factor(&config.reputation),
            audits_passed,
        });
        if passed + failed > 0 {
            scores.push((*seeder, reputation.score().0));
        }
        new_states.push((*seeder, previous, reputation));
    }

    // Credit of every downloader with receipts.
    let downloaders: BTreeSet<NodeId> = receipts.iter().map(|r| r.receipt.downloader).collect();
    let mut credits = Vec::new();
    for downloader in downloaders {
        let (funded, spent) = state.store.credit(&downloader).await?;
        let available = funded.saturating_sub(spent);
        if available > 0 {
            credits.push(CreditFacts {
                downloader,
                available,
            });
        }
    }
    let draws_at_most = sponsorships.iter().filter(|s| s.chain_id.is_some()).count();
    let credits = bounded_credits(
        credits,
        &receipts,
        |seeder| earners.contains_key(seeder),
        market.price_per_byte,
        MAX_FUNDING_ENTRIES.saturating_sub(draws_at_most),
    );

    // Chunk facts for every chunk a receipt names.
    let chunks: Vec<ChunkFacts> = receipt_chunks
        .into_iter()
        .filter_map(|chunk| {
            lengths.get(&chunk).map(|&length| ChunkFacts {
                chunk,
                length,
                holders: chunk_locations.get(&chunk).map_or(0, |l| l.len() as u32),
                boost: boosts.get(&chunk).copied().unwrap_or(Ppm::ONE),
            })
        })
        .collect();
    drop(lengths);

    let mut inputs = EpochInputs {
        epoch,
        budget,
        params,
        market,
        chunks,
        contents,
        credits,
        seeders: seeder_facts,
    };
    let (mut rewards, mut tree) = compute(&inputs, &receipts)?;
    // Whether the epoch pays from each of `sponsorships` (all, unless the cap cuts).
    let mut kept = vec![true; sponsorships.len()];
    // An epoch whose total would pass `max_epoch_total` is refused by `reward_pool` at
    // every vote and stops every later one: it takes only the funding that fits.
    if let Some(cap) = max_total
        && rewards.total > cap
    {
        let wanted = rewards.total;
        let cut = fit_to_cap(cap, &mut inputs, &receipts, &sponsorships)?;
        (rewards, tree) = compute(&inputs, &receipts)?;
        tracing::warn!(
            epoch = epoch.0,
            wanted = %wanted,
            total = %rewards.total,
            max_epoch_total = %cap,
            budget_before = %cut.budget_before,
            budget = %inputs.budget,
            credits_cut = cut.credits_cut,
            contents_left_out = cut.contents_left_out.len(),
            sponsorships_left_out = cut.kept.iter().filter(|k| !**k).count(),
            "the epoch's funding passes reward_pool's max_epoch_total: it takes the subsidy, then the oldest sponsorships that fit, then credit pro rata (governance raises max_epoch_total to pay more)"
        );
        kept = cut.kept;
    }
    // The sponsorships the epoch pays from, as the batch records them: those of the
    // contents it funds by sponsorship (a subsidized content's are not drawn), in the
    // order of `bounded_sponsorships`.
    let sponsored = sponsored_contents(&inputs);
    let batch_sponsorships: Vec<BatchSponsorship> = sponsorships
        .iter()
        .zip(&kept)
        .filter(|(s, kept)| **kept && sponsored.contains(&s.content))
        .map(|(s, _)| BatchSponsorship::from(s))
        .collect();
    let root = tree.root();
    let draws = chain_draws(&rewards.contents, &inputs.contents, &batch_sponsorships);

    // Publish the batch.
    let batch = EpochBatch {
        version: BATCH_VERSION,
        network: config.network.clone(),
        schedule: config.epochs,
        issued_at_skew_ms: config.ingest.issued_at_skew_ms,
        downloader_cap_bytes: config.ingest.downloader_cap_bytes,
        inputs: inputs.clone(),
        sponsorships: batch_sponsorships,
        boundary: chain.as_ref().and_then(|c| c.read_block()),
        receipts,
        root,
        total: rewards.total,
    };
    let bytes = batch.encode();
    let file_name = batch_file_name(epoch);
    let path = state.batches_dir.join(&file_name);
    let write_path = path.clone();
    let content_id = batch_content_id(&bytes);
    tokio::task::spawn_blocking(move || write_durably(&write_path, &bytes))
        .await
        .map_err(|e| CloseError::Batch {
            path: path.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?
        .map_err(|source| CloseError::Batch {
            path: path.display().to_string(),
            source,
        })?;

    // Leaves with proofs, in tree order (seeders that earned, by node id).
    let mut leaves = Vec::new();
    let factors: HashMap<NodeId, Ppm> = inputs
        .seeders
        .iter()
        .map(|s| (s.seeder, s.reputation))
        .collect();
    for (leaf_index, reward) in rewards.seeders.iter().filter(|s| s.amount > 0).enumerate() {
        leaves.push(Leaf {
            epoch,
            seeder: reward.seeder,
            payout: reward.payout,
            amount: reward.amount,
            cumulative: reward.cumulative,
            bandwidth_amount: reward.bandwidth_amount,
            storage_amount: reward.storage_amount,
            bytes_served: reward.bytes_served,
            receipts: reward.receipts,
            reputation: factors.get(&reward.seeder).map_or(0, |p| p.0),
            proof: tree.proof(leaf_index).unwrap_or_default(),
        });
    }
    let cumulative: HashMap<NodeId, u128> = rewards
        .seeders
        .iter()
        .map(|s| (s.seeder, s.cumulative))
        .collect();
    let seeders = new_states
        .into_iter()
        .map(|(seeder, previous, reputation)| {
            (
                seeder,
                SeederState {
                    cumulative: cumulative
                        .get(&seeder)
                        .copied()
                        .unwrap_or(previous.cumulative),
                    reputation,
                    updated_epoch: Some(epoch),
                },
            )
        })
        .collect();
    let record = ClosedEpoch {
        epoch,
        status: EpochStatus::Closed,
        root,
        total: rewards.total,
        seeders: leaves.len() as u64,
        receipts: batch.receipts.len() as u64,
        batch_content_id: content_id,
        batch_file: file_name,
        closed_at_ms: now_ms(),
        close_duration_ms: started.elapsed().as_millis() as u64,
    };
    state
        .store
        .record_close(&EpochClose {
            record: record.clone(),
            leaves,
            seeders,
            scores,
            audits,
            funded_chunks,
            debits: rewards
                .debits
                .iter()
                .map(|d| (d.downloader, d.debited))
                .collect(),
            draws,
            held,
        })
        .await?;
    // The replicas the close counted changed: `GET /v1/replication` answers afresh.
    *state.replication.lock().await = None;
    // Announcements expired longer than a day (or than the seniority grace, if longer)
    // are forgotten: a runaway of abandoned keys does not grow the database for ever.
    let keep_ms = EXPIRED_NODE_RETENTION_MS.max(
        config
            .epochs
            .length_ms
            .saturating_mul(config.audit.seniority_grace_epochs.saturating_add(1)),
    );
    let pruned = state
        .store
        .prune_expired_nodes(now.saturating_sub(keep_ms), epoch)
        .await?;
    if pruned > 0 {
        tracing::info!(pruned, "forgot announcements expired over a day ago");
    }
    state.metrics.epoch_closed(started.elapsed());
    tracing::info!(
        epoch = epoch.0,
        receipts = record.receipts,
        seeders = record.seeders,
        total = %record.total,
        root = %hex::encode(root),
        ms = record.close_duration_ms,
        "epoch closed"
    );
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A receipt of `bytes` bytes of chunk `[downloader; 32]` from `seeder` to
    /// `downloader` (keys `[n; 32]`), epoch 1, its signature not checked here.
    fn receipt(downloader: u8, seeder: u8, bytes: u32) -> dsi_protocol::SignedReceipt {
        dsi_protocol::SignedReceipt {
            receipt: dsi_protocol::Receipt {
                epoch: Epoch(1),
                downloader: NodeId([downloader; 32]),
                seeder: NodeId([seeder; 32]),
                chunk: ChunkId([downloader; 32]),
                bytes,
                issued_at_ms: 0,
                nonce: 0,
            },
            signature: dsi_protocol::Signature([0; 64]),
        }
    }

    fn sponsorship(
        content: u8,
        per_epoch: u128,
        replicas: u32,
        id: u32,
    ) -> dsi_api::oracle::Sponsorship {
        dsi_api::oracle::Sponsorship {
            content: ContentId([content; 32]),
            per_epoch,
            replicas,
            first_epoch: Epoch(1),
            last_epoch: Epoch(9),
            funded_at_ms: u64::from(id),
            chain_id: Some(id),
        }
    }

    #[test]
    fn the_budget_is_what_the_pool_can_pay() {
        // Enough free balance and a high cap: the configured budget.
        assert_eq!(chain_budget(1_000, u128::MAX, 10_000, 0), 1_000);
        // Governance's cap on an epoch's subsidy.
        assert_eq!(chain_budget(1_000, 600, 10_000, 0), 600);
        // A pool running dry pays what it holds, after the epochs waiting to be funded.
        assert_eq!(chain_budget(1_000, u128::MAX, 700, 0), 700);
        assert_eq!(chain_budget(1_000, u128::MAX, 700, 500), 200);
        assert_eq!(chain_budget(1_000, u128::MAX, 700, 900), 0);
        assert_eq!(chain_budget(0, u128::MAX, 700, 0), 0);
    }

    #[test]
    fn a_token_sponsorship_neither_replaces_a_subsidy_nor_spreads_a_large_one() {
        let subsidized = [crate::config::Boost {
            content: ContentId([1; 32]),
            boost: Ppm(2_000_000),
        }];
        let sponsorships = [
            // A token amount on the subsidized content, at 64 replicas.
            sponsorship(1, 1, 64, 0),
            // A real sponsor of content 2 at 3 replicas; then a token one at 64.
            sponsorship(2, 1_000, 3, 1),
            sponsorship(2, 1, 64, 2),
        ];
        let funded = funded_contents(&subsidized, &sponsorships, 3);
        assert_eq!(
            funded.get(&ContentId([1; 32])),
            Some(&(
                Funding::Subsidized {
                    boost: Ppm(2_000_000)
                },
                3
            ))
        );
        assert_eq!(
            funded.get(&ContentId([2; 32])),
            Some(&(Funding::Sponsored { per_epoch: 1_001 }, 3))
        );
        // Pays for content 2 are drawn pro rata; the subsidized content's sponsor never.
        let contents = [ContentFacts {
            content: ContentId([2; 32]),
            length: 1,
            replicas: 3,
            funding: Funding::Sponsored { per_epoch: 1_001 },
            holders: Vec::new(),
        }];
        let pays = [dsi_protocol::reward::ContentPay {
            content: ContentId([2; 32]),
            counted: Vec::new(),
            paid: 1_001,
        }];
        assert_eq!(
            chain_draws(
                &pays,
                &contents,
                &sponsorships
                    .iter()
                    .map(BatchSponsorship::from)
                    .collect::<Vec<_>>()
            ),
            vec![(1, 1_000), (2, 1)]
        );
    }

    #[test]
    fn an_epoch_pays_from_a_bounded_number_of_sponsorships_and_credits() {
        // Sponsorships: the ones paying most per epoch (ties: the older).
        // Mirrored in the reverse order of their ids (another oracle of the committee saw
        // them in another order): the ids decide, never the local mirror time.
        let many: Vec<_> = (0..MAX_PAID_SPONSORSHIPS as u32 + 3)
            .map(|i| {
                let mut s = sponsorship(3, if i < 2 { 5 } else { 7 }, 1, i);
                s.funded_at_ms = u64::MAX - u64::from(i);
                s
            })
            .collect();
        let kept = bounded_sponsorships(many);
        assert_eq!(kept.len(), MAX_PAID_SPONSORSHIPS);
        assert!(
            kept.iter().all(|s| s.per_epoch == 7),
            "the two smallest left out"
        );
        assert_eq!(
            kept.last().and_then(|s| s.chain_id),
            Some(MAX_PAID_SPONSORSHIPS as u32 + 1)
        );
        assert_eq!(kept.first().and_then(|s| s.chain_id), Some(2));
        // Credits: the downloaders whose receipts cost most, at most their credit.
        let key = |i: u8| NodeId([i; 32]);
        let credits: Vec<CreditFacts> = (1..=4u8)
            .map(|i| CreditFacts {
                downloader: key(i),
                available: if i == 4 { 10 } else { 1_000 },
            })
            .collect();
        // 1 costs 300, 2 costs 200, 3 costs 400, 4 would cost 500 but has 10 of credit.
        let receipts = [
            receipt(1, 9, 300),
            receipt(2, 9, 200),
            receipt(3, 9, 400),
            receipt(4, 9, 500),
        ];
        let known = |seeder: &NodeId| *seeder == key(9);
        let kept = bounded_credits(credits.clone(), &receipts, known, 1, 2);
        assert_eq!(
            kept.iter().map(|c| c.downloader).collect::<Vec<_>>(),
            vec![key(1), key(3)]
        );
        assert_eq!(
            bounded_credits(credits.clone(), &receipts, known, 1, 4),
            credits
        );
        // Receipts to a key that is no seeder debit nothing, so they do not rank: 3's
        // 400 bytes to an unknown key leave it behind 2's 200.
        let mut receipts = receipts;
        receipts[2].receipt.seeder = key(8);
        let kept = bounded_credits(credits.clone(), &receipts, known, 1, 2);
        assert_eq!(
            kept.iter().map(|c| c.downloader).collect::<Vec<_>>(),
            vec![key(1), key(2)]
        );
    }

    #[test]
    fn an_epoch_over_the_cap_takes_the_subsidy_then_the_oldest_sponsorships_then_credit() {
        let key = |i: u8| NodeId([i; 32]);
        // Downloader 1's receipts to seeder 9 cost 300, 2's 200, 3's 400 but it has 150
        // of credit. Downloader 5 has 10,000 of credit and signs 10,000 bytes to a key
        // that is no seeder (8): its receipts debit nothing, so they take no room.
        let receipts = [
            receipt(1, 9, 300),
            receipt(2, 9, 200),
            receipt(3, 9, 400),
            receipt(5, 8, 10_000),
        ];
        let content = |id: u8, funding: Funding| ContentFacts {
            content: ContentId([id; 32]),
            length: 1_000,
            replicas: 1,
            funding,
            holders: vec![Holder {
                node: key(9),
                location: Location([id; 8]),
                since: Epoch(0),
            }],
        };
        let market = dsi_protocol::reward::MarketParams {
            price_per_byte: 1,
            vetting_audits: 0,
            ..Default::default()
        };
        let inputs = EpochInputs {
            epoch: Epoch(1),
            budget: 200,
            params: dsi_protocol::reward::RewardParams::default(),
            market,
            chunks: [1u8, 2, 3, 5]
                .into_iter()
                .map(|i| ChunkFacts {
                    chunk: ChunkId([i; 32]),
                    length: 400,
                    holders: 1,
                    boost: Ppm::ONE,
                })
                .collect(),
            contents: vec![
                content(1, Funding::Subsidized { boost: Ppm::ONE }),
                content(2, Funding::Sponsored { per_epoch: 500 }),
                content(3, Funding::Sponsored { per_epoch: 300 }),
                content(4, Funding::Sponsored { per_epoch: 50 }),
            ],
            credits: [1u8, 2, 3, 5]
                .into_iter()
                .map(|i| CreditFacts {
                    downloader: key(i),
                    available: match i {
                        3 => 150,
                        5 => 10_000,
                        _ => 1_000,
                    },
                })
                .collect(),
            seeders: vec![SeederFacts {
                seeder: key(9),
                payout: PayoutAccount([9; 20]),
                previous_cumulative: 0,
                reputation: Ppm::ONE,
                audits_passed: u64::MAX,
            }],
        };
        // Content 3's sponsorship is the oldest (contract id 1), then 2's (5), then 4's (9).
        let sponsorships = vec![
            sponsorship(3, 300, 1, 1),
            sponsorship(2, 500, 1, 5),
            sponsorship(4, 50, 1, 9),
        ];
        let rewards = |inputs: &EpochInputs| {
            dsi_protocol::reward::aggregate(inputs, receipts.iter().map(|r| &r.receipt))
                .expect("aggregate")
        };
        let fit = |cap: u128, inputs: &EpochInputs| {
            let mut fitted = inputs.clone();
            let cut = fit_to_cap(cap, &mut fitted, &receipts, &sponsorships).expect("fits");
            let total = rewards(&fitted).total;
            assert!(total <= cap, "cap {cap}: total {total}");
            (fitted, cut)
        };
        let contents = |inputs: &EpochInputs| -> Vec<u8> {
            inputs.contents.iter().map(|c| c.content.0[0]).collect()
        };
        let available = |inputs: &EpochInputs| -> Vec<(u8, u128)> {
            inputs
                .credits
                .iter()
                .map(|c| (c.downloader.0[0], c.available))
                .collect()
        };
        // Subsidy 200 + sponsorships 850 + debits 650 = 1,700.
        assert_eq!(rewards(&inputs).total, 1_700);
        assert_eq!(fit(1_700, &inputs).0, inputs, "a total at the cap is kept");

        // A cap of 1,500: the subsidy, all three sponsorships (850), then 450 for 650 of
        // debits, pro rata. Downloader 5 keeps its credit (it debited nothing).
        let (fitted, cut) = fit(1_500, &inputs);
        assert_eq!(cut.credits_cut, 3);
        assert!(cut.contents_left_out.is_empty());
        assert_eq!(
            available(&fitted),
            vec![(1, 208), (2, 138), (3, 104), (5, 10_000)]
        );
        assert_eq!(rewards(&fitted).total, 1_500);

        // A cap of 1,000: the subsidy (200), then the oldest sponsorship (content 3, 300),
        // then content 2's (500); content 4's 50 no longer fits, nor any credit.
        let (fitted, cut) = fit(1_000, &inputs);
        assert_eq!(contents(&fitted), vec![1, 2, 3]);
        assert_eq!(cut.contents_left_out, vec![ContentId([4; 32])]);
        assert_eq!(available(&fitted), vec![(5, 10_000)]);
        assert_eq!(rewards(&fitted).total, 1_000);

        // A cap of 600: content 2's 500 does not fit after content 3's 300, and content
        // 4's 50 still does (a content that does not fit does not stop the next ones);
        // the last 50 go to credit.
        let (fitted, cut) = fit(600, &inputs);
        assert_eq!(contents(&fitted), vec![1, 3, 4]);
        assert_eq!(cut.contents_left_out, vec![ContentId([2; 32])]);
        assert_eq!(
            available(&fitted),
            vec![(1, 23), (2, 15), (3, 12), (5, 10_000)]
        );
        assert_eq!(rewards(&fitted).total, 600);

        // A cap below the subsidy: the subsidy is cut to it, nothing else pays.
        let (fitted, cut) = fit(120, &inputs);
        assert_eq!((fitted.budget, cut.budget_before), (120, 200));
        assert_eq!(contents(&fitted), vec![1]);
        assert_eq!(rewards(&fitted).total, 120);

        // A subsidized content nobody holds pays nothing and takes no room: the
        // sponsorships (850) and the debits (650) fit under 1,500.
        let mut unheld = inputs.clone();
        unheld.contents[0].holders.clear();
        let (fitted, cut) = fit(1_500, &unheld);
        assert_eq!(cut.kept, vec![true; 3]);
        assert_eq!(cut.credits_cut, 0);
        assert_eq!(fitted, unheld);
    }

    #[test]
    fn a_later_deposit_on_an_early_sponsored_content_does_not_take_the_place_of_others() {
        // Content 1 has a tiny early sponsorship (id 0); content 2 an honest one (id 1);
        // then someone adds a large one to content 1 (id 2), at another target. Under a
        // cap of 1,000 the large one comes last: content 1 keeps its tiny amount and
        // target, content 2 is paid.
        let key = |i: u8| NodeId([i; 32]);
        let content = |id: u8, per_epoch: u128, replicas: u32| ContentFacts {
            content: ContentId([id; 32]),
            length: 1_000,
            replicas,
            funding: Funding::Sponsored { per_epoch },
            holders: vec![Holder {
                node: key(9),
                location: Location([id; 8]),
                since: Epoch(0),
            }],
        };
        let sponsorships = vec![
            sponsorship(1, 10, 1, 0),
            sponsorship(2, 900, 1, 1),
            sponsorship(1, 990, 5, 2),
        ];
        let mut inputs = EpochInputs {
            epoch: Epoch(1),
            budget: 0,
            params: dsi_protocol::reward::RewardParams::default(),
            market: dsi_protocol::reward::MarketParams::default(),
            chunks: Vec::new(),
            // As `funded_contents` makes them: the sum, the largest one's target.
            contents: vec![content(1, 1_000, 5), content(2, 900, 1)],
            credits: Vec::new(),
            seeders: vec![SeederFacts {
                seeder: key(9),
                payout: PayoutAccount([9; 20]),
                previous_cumulative: 0,
                reputation: Ppm::ONE,
                audits_passed: u64::MAX,
            }],
        };
        let cut = fit_to_cap(1_000, &mut inputs, &[], &sponsorships).expect("fits");
        assert_eq!(cut.kept, vec![true, true, false]);
        assert!(cut.contents_left_out.is_empty());
        assert_eq!(inputs.contents, vec![content(1, 10, 1), content(2, 900, 1)]);
        let total = dsi_protocol::reward::aggregate(&inputs, std::iter::empty())
            .expect("aggregate")
            .total;
        assert_eq!(total, 910);
    }

    #[test]
    fn the_cap_fit_figures_the_subsidy_at_the_cut_budget() {
        // Subsidized contents of lengths 1, 3 and 3, each held by its own seeder; only
        // the first seeder's factor is above zero. A budget of 4 pays them 0, 2 and 2
        // (before factors): nothing reaches the first. Cut to 3 it pays 1, 1 and 1, and
        // the first seeder gets 1. A fit figured at the uncut budget would leave room
        // for content 4's sponsorship (3) and pass the cap by that unit.
        let key = |i: u8| NodeId([i; 32]);
        let content = |id: u8, length: u64, holder: u8, funding: Funding| ContentFacts {
            content: ContentId([id; 32]),
            length,
            replicas: 1,
            funding,
            holders: vec![Holder {
                node: key(holder),
                location: Location([id; 8]),
                since: Epoch(0),
            }],
        };
        let subsidized = Funding::Subsidized { boost: Ppm::ONE };
        let seeder = |i: u8, reputation: Ppm| SeederFacts {
            seeder: key(i),
            payout: PayoutAccount([i; 20]),
            previous_cumulative: 0,
            reputation,
            audits_passed: u64::MAX,
        };
        let mut inputs = EpochInputs {
            epoch: Epoch(1),
            budget: 4,
            params: dsi_protocol::reward::RewardParams::default(),
            market: dsi_protocol::reward::MarketParams::default(),
            chunks: Vec::new(),
            contents: vec![
                content(1, 1, 1, subsidized),
                content(2, 3, 2, subsidized),
                content(3, 3, 3, subsidized),
                content(4, 1, 1, Funding::Sponsored { per_epoch: 3 }),
            ],
            credits: Vec::new(),
            seeders: vec![
                seeder(1, Ppm::ONE),
                seeder(2, Ppm::ZERO),
                seeder(3, Ppm::ZERO),
            ],
        };
        let total = |inputs: &EpochInputs| {
            dsi_protocol::reward::aggregate(inputs, std::iter::empty())
                .expect("aggregate")
                .total
        };
        assert_eq!(
            total(&inputs),
            3,
            "the subsidy pays the first seeder nothing"
        );
        let cut = fit_to_cap(3, &mut inputs, &[], &[sponsorship(4, 3, 1, 0)]).expect("fits");
        assert_eq!(inputs.budget, 3);
        assert_eq!(cut.contents_left_out, vec![ContentId([4; 32])]);
        assert_eq!(total(&inputs), 1);
    }

    fn run(node: u8, content: u8, since: u64, proven: u64) -> Held {
        Held {
            node: NodeId([node; 32]),
            content: ContentId([content; 32]),
            since: Epoch(since),
            proven: Epoch(proven),
        }
    }

    #[test]
    fn a_run_survives_its_grace_unless_disproven_or_let_go() {
        let before = [
            run(1, 9, 10, 19), // unreachable in 20: carried
            run(2, 9, 10, 19), // disproven in 20: ends
            run(3, 9, 10, 16), // last proven 4 epochs ago, grace 3: ends
            run(4, 9, 10, 17), // last proven 3 epochs ago: carried
            run(5, 9, 10, 19), // live, no longer announces the content: ends
            run(6, 9, 10, 19), // not live (announcement expired): carried
            run(7, 9, 10, 19), // proven again in 20: in proven_now, not carried twice
            run(2, 8, 10, 19), // node 2's other content, not disproven: carried
        ];
        let proven_now = [run(7, 9, 10, 20)];
        let disproven: HashSet<(NodeId, ContentId)> =
            [(NodeId([2; 32]), ContentId([9; 32]))].into();
        let disproven = |n: &NodeId, c: &ContentId| disproven.contains(&(*n, *c));
        let announces = |node: &NodeId, _: &ContentId| match node.0[0] {
            5 => Some(false),
            6 => None,
            _ => Some(true),
        };
        let carried = carried_runs(
            &before,
            &proven_now,
            announces,
            disproven,
            |_| false,
            Epoch(20),
            3,
        );
        assert_eq!(
            carried,
            vec![
                run(1, 9, 10, 19),
                run(2, 8, 10, 19),
                run(4, 9, 10, 17),
                run(6, 9, 10, 19)
            ]
        );
        // Without grace, only runs proven now go on.
        let none = carried_runs(
            &before,
            &proven_now,
            announces,
            disproven,
            |_| false,
            Epoch(20),
            0,
        );
        assert!(none.is_empty(), "{none:?}");
    }

    #[test]
    fn a_paused_node_keeps_its_runs_without_using_grace_or_gaining_seniority() {
        let paused = |node: &NodeId| node.0[0] == 1;
        // Node 1 proved its run last in 10 (since 4) and pauses 11 to 30, far past a grace of
        // 3; node 2, not paused, loses its run of the same age.
        let mut runs = vec![run(1, 9, 4, 10), run(2, 9, 4, 10)];
        for epoch in 11..=30 {
            runs = carried_runs(
                &runs,
                &[],
                |_, _| None,
                |_, _| false,
                paused,
                Epoch(epoch),
                3,
            );
        }
        assert_eq!(
            runs,
            vec![run(1, 9, 24, 30)],
            "shifted by the 20 paused epochs"
        );
        // Back and proven in 31: no epoch counts as missed, and the seniority (epochs since
        // `since`) is what it was when the pause began (10 − 4 = 6, now 30 − 24 = 6).
        assert_eq!(resumed_since(&runs[0], Epoch(31)), Epoch(24));
        // A paused node's run disproven or let go still ends.
        let ended = carried_runs(
            &runs,
            &[],
            |_, _| Some(false),
            |_, _| false,
            paused,
            Epoch(31),
            3,
        );
        assert!(ended.is_empty(), "{ended:?}");
    }

    #[test]
    fn seniority_counts_proven_epochs_only() {
        // Proven in 19 and again in 20: no epoch missed.
        assert_eq!(resumed_since(&run(1, 9, 10, 19), Epoch(20)), Epoch(10));
        // Last proven in 16, proven again in 20 (three epochs carried): since moves on 3.
        assert_eq!(resumed_since(&run(1, 9, 10, 16), Epoch(20)), Epoch(13));
        // Proving one epoch in four from epoch 0 for 40 epochs ages like 10 proven epochs.
        let mut held = run(1, 9, 0, 0);
        for epoch in (4..=40).step_by(4) {
            held = Held {
                since: resumed_since(&held, Epoch(epoch)),
                proven: Epoch(epoch),
                ..held
            };
        }
        assert_eq!(40 - held.since.0 + 1, 11, "{held:?}");
        // Never later than the epoch itself.
        assert_eq!(resumed_since(&run(1, 9, 5, 0), Epoch(3)), Epoch(3));
    }
}
