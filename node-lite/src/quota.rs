//! The disk quota (`storage.max_bytes`) on the chunk files of the store. When an `add` or
//! a gateway fetch needs room, the least valuable unpinned holdings go first:
//!
//! 1. chunks no stored manifest names (what the gateway fetched and passed through, chunks
//!    left by an earlier eviction), oldest first;
//! 2. then whole contents, unfunded before funded, then least reward per byte, then least
//!    recently used (added, or read through the gateway). Funding and reward come
//!    from the tracker's public `GET /v1/content/{id}/funding` (without a tracker every
//!    content counts as unfunded, so the order is least recently used);
//!
//! never a pinned content (`node-lite pin`), and never a chunk the request itself is about
//! to use. The plan is made before anything is deleted: if even evicting everything
//! allowed would not make room, nothing is evicted and the caller gets
//! [`NodeError::StoreFull`] with the figures. A chunk shared by several contents is freed
//! only with the last of them; a vector index's pages count as its chunks.
//!
//! Limits, said plainly: vector builds and page fetches and `verify --repair` write without
//! asking for room; manifests, pins and `quarantine/` are not counted; and the size is
//! measured at most every 10 s, with reservations counted in between, so processes
//! sharing a data directory (an `add` beside `serve`) can pass the quota briefly by what
//! they wrote at the same time. Under the gateway alone the store stays under it.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use dsi_protocol::{ChunkId, ContentId};
use serde::Serialize;

use crate::NodeError;
use crate::store::ChunkStore;
use crate::tracker::TrackerClient;

/// How long a measured store size is trusted before the chunk files are walked again
/// (other processes on the same data directory add and evict too).
const USAGE_TTL: Duration = Duration::from_secs(10);

/// How much a content is worth keeping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Value {
    /// Someone funds it now.
    pub funded: bool,
    /// Funding per epoch per holder per byte, in 10^-12 units.
    pub reward_per_byte: u128,
}

/// One stored content, as the planner sees it.
#[derive(Clone, Debug)]
pub struct Holding {
    /// The content.
    pub content: ContentId,
    /// Its chunk ids (repeats allowed).
    pub chunks: Vec<ChunkId>,
    /// Pinned: never evicted.
    pub pinned: bool,
    /// Last use.
    pub last_used: SystemTime,
    /// Its worth.
    pub value: Value,
}

/// What to delete to make room.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Unreferenced chunks to delete.
    pub orphans: Vec<ChunkId>,
    /// Contents to evict (manifest, then their chunks no other content names).
    pub contents: Vec<ContentId>,
    /// Chunks those contents free.
    pub freed_chunks: Vec<ChunkId>,
    /// Bytes freed in all.
    pub frees: u64,
}

/// Why no plan makes room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shortfall {
    /// Bytes stored now.
    pub usage: u64,
    /// Bytes that could be freed (everything unpinned and unprotected).
    pub freeable: u64,
}

/// Plans the eviction that brings `usage + need` under `max`; `files` are the stored
/// chunks (length, modification time).
pub fn plan(
    usage: u64,
    max: u64,
    need: u64,
    files: &HashMap<ChunkId, (u64, SystemTime)>,
    holdings: &[Holding],
    protect: &HashSet<ChunkId>,
) -> Result<Plan, Shortfall> {
    let mut plan = Plan::default();
    let enough = |frees: u64| usage.saturating_sub(frees).saturating_add(need) <= max;
    if enough(0) {
        return Ok(plan);
    }
    let mut references: HashMap<ChunkId, usize> = HashMap::new();
    for holding in holdings {
        let unique: HashSet<&ChunkId> = holding.chunks.iter().collect();
        for id in unique {
            *references.entry(*id).or_default() += 1;
        }
    }
    let mut orphans: Vec<(&ChunkId, &(u64, SystemTime))> = files
        .iter()
        .filter(|(id, _)| !references.contains_key(id) && !protect.contains(id))
        .collect();
    orphans.sort_by_key(|(id, (_, modified))| (*modified, **id));
    for (id, (len, _)) in orphans {
        if enough(plan.frees) {
            return Ok(plan);
        }
        plan.orphans.push(*id);
        plan.frees += len;
    }
    let mut candidates: Vec<&Holding> = holdings.iter().filter(|h| !h.pinned).collect();
    candidates.sort_by_key(|h| (h.value, h.last_used, h.content));
    for holding in candidates {
        if enough(plan.frees) {
            return Ok(plan);
        }
        let unique: HashSet<&ChunkId> = holding.chunks.iter().collect();
        // What evicting it would free: chunks no other remaining content names.
        let freed: Vec<(ChunkId, u64)> = unique
            .iter()
            .filter(|id| references.get(**id) == Some(&1) && !protect.contains(**id))
            .filter_map(|id| files.get(*id).map(|(len, _)| (**id, *len)))
            .collect();
        if freed.is_empty() {
            // Nothing to gain: its chunks are shared, protected or gone. It stays.
            continue;
        }
        plan.contents.push(holding.content);
        for id in unique {
            if let Some(count) = references.get_mut(id) {
                *count -= 1;
            }
        }
        for (id, len) in freed {
            plan.freed_chunks.push(id);
            plan.frees += len;
        }
    }
    if enough(plan.frees) {
        Ok(plan)
    } else {
        Err(Shortfall {
            usage,
            freeable: plan.frees,
        })
    }
}

/// What an eviction removed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Evicted {
    /// Contents evicted, with their names.
    pub contents: Vec<(ContentId, String)>,
    /// Unreferenced chunks deleted.
    pub orphan_chunks: usize,
    /// Bytes freed.
    pub bytes: u64,
}

/// A store's quota, shared by the requests of one process.
#[derive(Debug)]
pub struct Quota {
    max: u64,
    tracker: Option<TrackerClient>,
    /// The last measured size and when; requests take turns.
    usage: tokio::sync::Mutex<Option<(u64, Instant)>>,
}

impl Quota {
    /// A quota of `max` bytes (0: none); `tracker` tells what content is worth.
    pub fn new(max: u64, tracker: Option<TrackerClient>) -> Self {
        Self {
            max,
            tracker,
            usage: tokio::sync::Mutex::new(None),
        }
    }

    /// The quota in bytes (0: none).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The store's size as last measured or counted (None before the first need for room).
    pub fn last_usage(&self) -> Option<u64> {
        self.usage
            .try_lock()
            .ok()
            .and_then(|u| u.map(|(bytes, _)| bytes))
    }

    /// Makes room in `store` for `need` more bytes, evicting as the module says and never a
    /// chunk in `protect`; the room is counted as used from now on.
    pub async fn make_room(
        &self,
        store: &ChunkStore,
        need: u64,
        protect: HashSet<ChunkId>,
    ) -> Result<Evicted, NodeError> {
        if self.max == 0 {
            return Ok(Evicted::default());
        }
        if need > self.max {
            return Err(NodeError::StoreFull {
                need,
                max: self.max,
                detail: "larger than the whole quota".into(),
            });
        }
        let mut cached = self.usage.lock().await;
        let usage = match *cached {
            Some((usage, at)) if at.elapsed() < USAGE_TTL => usage,
            _ => {
                let reader = store.clone();
                blocking(move || reader.usage()).await??
            }
        };
        if usage.saturating_add(need) <= self.max {
            // The room counts as used; the files are measured again once the measurement
            // is USAGE_TTL old (the time is the measurement's, not this reservation's).
            let measured = cached.map_or_else(Instant::now, |(_, at)| at);
            *cached = Some((usage + need, measured));
            return Ok(Evicted::default());
        }
        let reader = store.clone();
        let (files, mut holdings, names, protect) = blocking(move || {
            let files: HashMap<ChunkId, (u64, SystemTime)> = reader
                .chunk_files()?
                .into_iter()
                .map(|(id, len, modified)| (id, (len, modified)))
                .collect();
            let mut holdings = Vec::new();
            let mut names = HashMap::new();
            // A vector index's pages are chunks its manifest does not list: they are named
            // inside the index manifest's own bytes. An index whose pages cannot be read
            // makes every unreferenced chunk possibly one of them: none is deleted then.
            let mut pages_known = true;
            for (content, manifest) in reader.list()? {
                names.insert(content, (manifest.name.clone(), manifest.size));
                let mut chunks = manifest.chunks.clone();
                if manifest.name == vector_store::INDEX_CONTENT_NAME {
                    match index_pages(&reader, &manifest) {
                        Some(pages) => chunks.extend(pages),
                        None => pages_known = false,
                    }
                }
                holdings.push(Holding {
                    content,
                    pinned: reader.is_pinned(&content),
                    last_used: reader.last_used(&content).unwrap_or(std::time::UNIX_EPOCH),
                    chunks,
                    value: Value::default(),
                });
            }
            let mut protect = protect;
            if !pages_known {
                let named: HashSet<ChunkId> = holdings
                    .iter()
                    .flat_map(|h| h.chunks.iter().copied())
                    .collect();
                protect.extend(files.keys().filter(|id| !named.contains(id)).copied());
            }
            Ok::<_, crate::store::StoreError>((files, holdings, names, protect))
        })
        .await??;
        // What the files really hold now (the cached figure may be stale).
        let usage: u64 = files.values().map(|(len, _)| len).sum();
        if let Some(tracker) = &self.tracker {
            for holding in holdings.iter_mut().filter(|h| !h.pinned) {
                let size = names.get(&holding.content).map_or(1, |(_, size)| *size);
                holding.value = value_of(tracker, &holding.content, size).await;
            }
        }
        // Evict a tenth of the quota more than needed when that is possible, so that the
        // next requests find room without walking the store again.
        let slack = need.saturating_add(self.max / 10).min(self.max);
        let plan = plan(usage, self.max, slack, &files, &holdings, &protect)
            .or_else(|_| plan(usage, self.max, need, &files, &holdings, &protect))
            .map_err(|short| NodeError::StoreFull {
                need,
                max: self.max,
                detail: format!(
                    "the store holds {} and evicting everything unpinned frees only {}; \
                     unpin content (node-lite unpin) or raise storage.max_bytes",
                    crate::size::human_bytes(short.usage),
                    crate::size::human_bytes(short.freeable)
                ),
            })?;
        let remover = store.clone();
        let executed = plan.clone();
        blocking(move || -> Result<(), crate::store::StoreError> {
            for content in &executed.contents {
                remover.remove_manifest(content)?;
            }
            for id in executed.orphans.iter().chain(&executed.freed_chunks) {
                remover.remove_chunk(id)?;
            }
            Ok(())
        })
        .await??;
        let evicted = Evicted {
            contents: plan
                .contents
                .iter()
                .map(|c| (*c, names.get(c).map(|(n, _)| n.clone()).unwrap_or_default()))
                .collect(),
            orphan_chunks: plan.orphans.len(),
            bytes: plan.frees,
        };
        for (content, name) in &evicted.contents {
            tracing::info!(%content, %name, "evicted to make room (storage.max_bytes)");
        }
        *cached = Some((
            usage.saturating_sub(plan.frees).saturating_add(need),
            Instant::now(),
        ));
        Ok(evicted)
    }
}

/// A content's worth from the tracker's funding answer; unfunded when it cannot say.
async fn value_of(tracker: &TrackerClient, content: &ContentId, size: u64) -> Value {
    let asked = tokio::time::timeout(Duration::from_secs(5), tracker.funding(content)).await;
    match asked {
        Ok(Ok(funding)) if funding.per_epoch_now > 0 => {
            let holders = funding.holders.len().max(1) as u128;
            Value {
                funded: true,
                reward_per_byte: funding.per_epoch_now.saturating_mul(1_000_000_000_000)
                    / holders.saturating_mul(u128::from(size.max(1))),
            }
        }
        Ok(Ok(_)) => Value::default(),
        // The tracker cannot say: keep it as if it paid best (an outage must not make
        // funded content look worthless).
        _ => Value {
            funded: true,
            reward_per_byte: u128::MAX,
        },
    }
}

/// The page ids of a stored vector index (None when its manifest chunks cannot be read).
fn index_pages(store: &ChunkStore, manifest: &dsi_protocol::Manifest) -> Option<Vec<ChunkId>> {
    let chunks: Vec<Vec<u8>> = manifest
        .chunks
        .iter()
        .map(|id| store.read_chunk(id).ok().flatten())
        .collect::<Option<_>>()?;
    let index = vector_store::IndexManifest::from_content(manifest, &chunks).ok()?;
    Some(index.pages().map(|page| page.chunk).collect())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, NodeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| NodeError::Usage(format!("a store task failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ChunkId {
        ChunkId::of(&[n])
    }

    fn content(n: u8) -> ContentId {
        dsi_protocol::manifest::content_id_of_bytes(&[n])
    }

    fn at(seconds: u64) -> SystemTime {
        std::time::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn the_least_valuable_go_first_and_pinned_never() {
        // Chunks 1..=8, 10 bytes each; 8 is an orphan.
        let files: HashMap<ChunkId, (u64, SystemTime)> =
            (1..=8).map(|n| (id(n), (10, at(u64::from(n))))).collect();
        let holding = |c: u8, chunks: &[u8], used: u64, value: Value, pinned: bool| Holding {
            content: content(c),
            chunks: chunks.iter().map(|n| id(*n)).collect(),
            pinned,
            last_used: at(used),
            value,
        };
        let funded = |r| Value {
            funded: true,
            reward_per_byte: r,
        };
        let holdings = vec![
            // a: funded, well paid; b: funded, poorly paid; c: unfunded, recent;
            // d: unfunded, old; e: pinned and unfunded, oldest. b and c share chunk 4.
            holding(1, &[1], 5, funded(100), false),
            holding(2, &[2, 4], 5, funded(1), false),
            holding(3, &[3, 4], 9, Value::default(), false),
            holding(4, &[5, 6], 1, Value::default(), false),
            holding(5, &[7], 0, Value::default(), true),
        ];
        let none = HashSet::new();
        // Room for 5 more in 80 of 80: the orphan goes first, then the old unfunded d.
        let p = plan(80, 80, 5, &files, &holdings, &none).unwrap();
        assert_eq!(p.orphans, vec![id(8)]);
        assert!(p.contents.is_empty());
        let p = plan(80, 80, 25, &files, &holdings, &none).unwrap();
        assert_eq!(p.contents, vec![content(4)]);
        assert_eq!(p.frees, 30);
        // More: c (unfunded) next, but its chunk 4 is b's too: only chunk 3 is freed.
        let p = plan(80, 80, 35, &files, &holdings, &none).unwrap();
        assert_eq!(p.contents, vec![content(4), content(3)]);
        assert_eq!(p.frees, 40);
        // Then the poorly paid funded b (frees 2 and, now, 4), then a; never the pinned e.
        let p = plan(80, 80, 60, &files, &holdings, &none).unwrap();
        assert_eq!(p.contents, vec![content(4), content(3), content(2)]);
        let p = plan(80, 80, 70, &files, &holdings, &none).unwrap();
        assert_eq!(
            p.contents,
            vec![content(4), content(3), content(2), content(1)]
        );
        assert_eq!(
            plan(80, 80, 75, &files, &holdings, &none),
            Err(Shortfall {
                usage: 80,
                freeable: 70
            })
        );
        // A content whose every chunk is protected frees nothing: it is not evicted.
        let protect: HashSet<ChunkId> = [id(8), id(5), id(6)].into();
        let p = plan(80, 80, 5, &files, &holdings, &protect).unwrap();
        assert_eq!(p.contents, vec![content(3)], "d frees nothing, c goes");
        // A protected chunk is never deleted (the orphan a request is about to read).
        let protect: HashSet<ChunkId> = [id(8)].into();
        let p = plan(80, 80, 5, &files, &holdings, &protect).unwrap();
        assert!(p.orphans.is_empty());
        assert_eq!(p.contents, vec![content(4)]);
        // Under the quota: nothing.
        assert_eq!(
            plan(50, 80, 30, &files, &holdings, &none),
            Ok(Plan::default())
        );
    }
}
