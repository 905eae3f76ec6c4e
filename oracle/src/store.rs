//! The oracle's database: SQLite (a file, no setup) or PostgreSQL, through `sqlx::Any`
//! with one set of queries and a migration directory per backend
//! (`migrations/sqlite`, `migrations/postgres`).
//!
//! Encodings: ids are BLOBs/BYTEAs of their raw bytes; `u64` values are stored as the
//! `BIGINT` with the same bit pattern; `u128` amounts as decimal TEXT (neither backend has
//! a portable 128-bit integer). Receipts are keyed by (epoch, downloader, seeder, chunk).
//! SQLite runs in WAL mode with `synchronous=FULL`: a committed write survives power loss.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use dsi_api::oracle::{
    Audit, ClosedEpoch, EpochStatus, Leaf, NodeAnnouncement, NodeAvailability, Sponsorship,
};
use dsi_protocol::reputation::ReputationState;
use dsi_protocol::reward::Location;
use dsi_protocol::{
    Announcement, Availability, AvailabilityNotice, ChunkId, ContentId, Epoch, Manifest, NodeId,
    PayoutAccount, Receipt, Signature, SignedReceipt,
};
use parity_scale_codec::{Decode, Encode};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

use crate::rules::{ReceiptKey, receipt_key};

/// Which database is behind the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A database error, with what the oracle was doing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported database.
    #[error("unsupported database url (use sqlite:// or postgres://): {0}")]
    UnsupportedUrl(String),
    /// Connecting or migrating failed.
    #[error("cannot open database: {0}")]
    Open(String),
    /// A query failed.
    #[error("database error while {doing}: {source}")]
    Query {
        /// What the oracle was doing.
        doing: &'static str,
        /// The error.
        source: sqlx::Error,
    },
    /// Stored data does not decode (the database was edited or corrupted).
    #[error("corrupt stored value in {0}")]
    Corrupt(&'static str),
}

type Result<T> = std::result::Result<T, StoreError>;

fn query_error(doing: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { doing, source }
}

fn i64_of(value: u64) -> i64 {
    value as i64
}

fn u64_of(value: i64) -> u64 {
    value as u64
}

fn id_from<const N: usize>(bytes: Vec<u8>, what: &'static str) -> Result<[u8; N]> {
    bytes.try_into().map_err(|_| StoreError::Corrupt(what))
}

fn amount_from(text: &str, what: &'static str) -> Result<u128> {
    u128::from_str(text).map_err(|_| StoreError::Corrupt(what))
}

/// A node's vetting credit ([`Store::funded_audits_passed`]): `$1` the node, `$2` the most
/// counted in one epoch.
const VETTING_CREDIT: &str = "SELECT CAST(COALESCE(SUM(CASE WHEN n > $2 THEN $2 ELSE n END), 0) \
     AS BIGINT) FROM (SELECT COUNT(*) AS n FROM audits \
     WHERE seeder = $1 AND outcome = 'passed' AND funded = 1 GROUP BY epoch) AS per_epoch";

async fn vetting_credit(
    conn: &mut sqlx::AnyConnection,
    node: &[u8],
    per_epoch: u64,
) -> Result<u64> {
    let row = sqlx::query(VETTING_CREDIT)
        .bind(node.to_vec())
        .bind(i64_of(per_epoch))
        .fetch_one(conn)
        .await
        .map_err(query_error("counting audits"))?;
    Ok(u64_of(
        row.try_get(0).map_err(|_| StoreError::Corrupt("audits"))?,
    ))
}

/// How many live keys one location may hold and how a full one ranks them
/// ([`Store::put_announcement`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocationBound {
    /// Live keys one location may hold (0: no bound).
    pub max: u32,
    /// Passed funded audits counted per epoch towards vetting credit.
    pub vetting_per_epoch: u64,
    /// Credit above this ranks as this (a vetted key is vetted: credit does not grow into
    /// a lead nobody can catch up with).
    pub vetted_at: u64,
}

/// The newest closed epoch and when its close started (`None` before any).
async fn newest_close(conn: &mut sqlx::AnyConnection) -> Result<Option<(i64, i64)>> {
    let row = sqlx::query(
        "SELECT epoch, closed_at_ms - close_duration_ms FROM epochs \
         ORDER BY epoch DESC LIMIT 1",
    )
    .fetch_optional(conn)
    .await
    .map_err(query_error("reading epochs"))?;
    row.map(|row| {
        let corrupt = |_| StoreError::Corrupt("epochs");
        Ok((
            row.try_get(0).map_err(corrupt)?,
            row.try_get(1).map_err(corrupt)?,
        ))
    })
    .transpose()
}

/// Whether a live key keeps its place in a full location: it became live after the newest
/// close started (its first audit is still to come), or that close audited it and every
/// answer passed.
async fn settled(
    conn: &mut sqlx::AnyConnection,
    node: &[u8],
    first_seen_ms: i64,
    newest_close: Option<(i64, i64)>,
) -> Result<bool> {
    let Some((epoch, started_ms)) = newest_close else {
        return Ok(true);
    };
    if first_seen_ms >= started_ms {
        return Ok(true);
    }
    let row = sqlx::query(
        "SELECT CAST(COUNT(*) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN outcome = 'passed' THEN 0 ELSE 1 END), 0) AS BIGINT) \
         FROM audits WHERE seeder = $1 AND epoch = $2",
    )
    .bind(node.to_vec())
    .bind(epoch)
    .fetch_one(conn)
    .await
    .map_err(query_error("reading audits"))?;
    let corrupt = |_| StoreError::Corrupt("audits");
    let audited: i64 = row.try_get(0).map_err(corrupt)?;
    let failed: i64 = row.try_get(1).map_err(corrupt)?;
    Ok(audited > 0 && failed == 0)
}

/// What happened to an announcement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnnounceOutcome {
    /// Stored (new or newer than the one held).
    Stored,
    /// Stored in a full location in the place of `weaker`, a live key there with less
    /// vetting credit, which is no longer live.
    Displaced {
        /// The key whose place was taken.
        weaker: NodeId,
    },
    /// Older than (or as old as) the one held; ignored.
    Stale,
    /// The key exited the network (in this epoch); nothing stored.
    Exited(Epoch),
    /// A key not yet live at `location`, which already has `live` live keys (the
    /// per-location bound), none with less vetting credit; nothing stored.
    LocationFull {
        /// The location announced from (`None`: the group of nodes without one).
        location: Option<Location>,
        /// Live keys there.
        live: u64,
    },
}

/// What happened to an availability notice ([`Store::apply_notice`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoticeOutcome {
    /// Taken: the node's availability now.
    Applied(NodeAvailability),
    /// The tracker holds no record of the key.
    UnknownNode,
    /// The key exited in this epoch.
    Exited(Epoch),
    /// Not newer than the last notice taken from the node.
    Stale,
    /// A pause from a node paused now or from the next epoch.
    AlreadyPaused {
        /// The pause in effect.
        from: Epoch,
        /// Its end (exclusive).
        until: Epoch,
    },
    /// A resume from a node that is not paused.
    NotPaused,
}

/// A seeder's running state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeederState {
    /// Cumulative earnings so far.
    pub cumulative: u128,
    /// Reputation evidence.
    pub reputation: ReputationState,
    /// Last epoch that updated it.
    pub updated_epoch: Option<Epoch>,
}

/// What [`Store::roll_back_veto`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VetoRollback {
    /// The newest closed epoch still good: the cumulative amounts are back at its values.
    pub base: Option<Epoch>,
    /// The epochs it marked vetoed (the vetoed one and every later one), oldest first.
    pub vetoed: Vec<Epoch>,
}

/// Everything an epoch close writes, in one transaction.
#[derive(Clone, Debug)]
pub struct EpochClose {
    /// The epoch row.
    pub record: ClosedEpoch,
    /// Its leaves.
    pub leaves: Vec<Leaf>,
    /// New seeder states.
    pub seeders: Vec<(NodeId, SeederState)>,
    /// Reputation scores (ppm) for the reputation contract, by node.
    pub scores: Vec<(NodeId, u32)>,
    /// Audits made for it.
    pub audits: Vec<Audit>,
    /// The chunks of the epoch's funded contents: audits of these vet a new key.
    pub funded_chunks: HashSet<ChunkId>,
    /// What each downloader's credit paid.
    pub debits: Vec<(NodeId, u128)>,
    /// What the epoch draws on each chain sponsorship (`reward_pool` id).
    pub draws: Vec<(u32, u128)>,
    /// Every (node, funded content) run that goes on: proven this epoch, or within its
    /// grace; replaces the previous set.
    pub held: Vec<Held>,
}

/// A run of epochs in which a node proved it holds a funded content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    /// The node.
    pub node: NodeId,
    /// The funded content.
    pub content: ContentId,
    /// The run's first epoch (the holder's seniority).
    pub since: Epoch,
    /// The last epoch it was proven.
    pub proven: Epoch,
}

/// The oracle's database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

const RECEIPT_COLUMNS: &str =
    "epoch, downloader, seeder, chunk, bytes, issued_at_ms, nonce, signature";

/// Rows per multi-row statement: 8 parameters each stays under SQLite's 32766.
const ROWS_PER_STATEMENT: usize = 1000;

/// What registering a manifest did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// Stored now.
    New,
    /// Already registered: nothing changed.
    Known,
    /// Refused, nothing stored: the registrant's manifests would exceed its quota.
    OverQuota {
        /// Manifest bytes the registrant registered so far.
        used: u64,
        /// Its quota.
        quota: u64,
    },
    /// Refused, nothing stored: it gives `chunk` another length than the one known.
    Conflict {
        /// The chunk.
        chunk: ChunkId,
        /// Its length as first registered.
        known: u32,
        /// The length this manifest gives it.
        claimed: u32,
    },
}

/// What [`Store::settle_chunk_length`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settled {
    /// The length registered before (equal to the proven one when nothing changed).
    pub previous: u32,
    /// Manifests dropped because they gave the chunk a false length.
    pub dropped_manifests: Vec<ContentId>,
}

fn chunk_length_from_row(row: &AnyRow) -> Result<(ChunkId, u32)> {
    let chunk: Vec<u8> = row
        .try_get(0)
        .map_err(|_| StoreError::Corrupt("chunk_lengths"))?;
    let length: i64 = row
        .try_get(1)
        .map_err(|_| StoreError::Corrupt("chunk_lengths"))?;
    Ok((
        ChunkId(id_from(chunk, "chunk_lengths.chunk")?),
        u32::try_from(length).map_err(|_| StoreError::Corrupt("chunk_lengths.length"))?,
    ))
}

/// `count` parameters separated by commas, for an `IN (...)` list.
fn placeholders(backend: Backend, count: usize) -> String {
    let mut sql = String::with_capacity(count * 4);
    for i in 0..count {
        if i > 0 {
            sql.push(',');
        }
        match backend {
            Backend::Sqlite => sql.push('?'),
            Backend::Postgres => {
                sql.push('$');
                sql.push_str(&(i + 1).to_string());
            }
        }
    }
    sql
}

/// A multi-row `VALUES` list of `rows` tuples of `columns` parameters. SQLite gets
/// anonymous `?` parameters: looking up a numbered `$N` parameter is linear in the number
/// of parameters there, which made a 1000-row insert quadratic.
fn values_list(backend: Backend, rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 6);
    for row in 0..rows {
        if row > 0 {
            sql.push(',');
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push(',');
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    sql.push('$');
                    sql.push_str(&(row * columns + column + 1).to_string());
                }
            }
        }
        sql.push(')');
    }
    sql
}

fn receipt_from_row(row: &AnyRow) -> Result<SignedReceipt> {
    let get = |i: usize| -> Result<Vec<u8>> {
        row.try_get::<Vec<u8>, _>(i)
            .map_err(|_| StoreError::Corrupt("receipts"))
    };
    let int = |i: usize| -> Result<i64> {
        row.try_get::<i64, _>(i)
            .map_err(|_| StoreError::Corrupt("receipts"))
    };
    Ok(SignedReceipt {
        receipt: Receipt {
            epoch: Epoch(u64_of(int(0)?)),
            downloader: NodeId(id_from(get(1)?, "receipts.downloader")?),
            seeder: NodeId(id_from(get(2)?, "receipts.seeder")?),
            chunk: ChunkId(id_from(get(3)?, "receipts.chunk")?),
            bytes: u32::try_from(int(4)?).map_err(|_| StoreError::Corrupt("receipts.bytes"))?,
            issued_at_ms: u64_of(int(5)?),
            nonce: u64_of(int(6)?),
        },
        signature: Signature(id_from(get(7)?, "receipts.signature")?),
    })
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `url`:
    /// `sqlite://PATH` or `postgres://...`.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_string(),
        };
        let options = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 8,
            })
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(
                            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; \
                             PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            });
        let pool = options
            .connect(&url)
            .await
            .map_err(|e| StoreError::Open(e.to_string()))?;
        let migrator = match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        migrator
            .run(&pool)
            .await
            .map_err(|e| StoreError::Open(format!("migration failed: {e}")))?;
        Ok(Self { pool, backend })
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool (waits for connections to finish).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ---- manifests -------------------------------------------------------------------

    /// Registers a manifest and its chunks, charged to `registrant` for good (the
    /// `registrants` table). A manifest already registered is [`Registered::Known`]
    /// (charged to nobody again). A new one whose bytes would take the registrant's
    /// charged manifest bytes above `quota` changes nothing
    /// and comes back as [`Registered::OverQuota`]. A chunk's length is fixed by the first
    /// manifest that names it: a manifest that gives a known chunk another length changes
    /// nothing and comes back as [`Registered::Conflict`].
    pub async fn put_manifest(
        &self,
        manifest: &Manifest,
        registrant: &NodeId,
        quota: u64,
        now_ms: u64,
    ) -> Result<Registered> {
        let content = manifest.content_id();
        let bytes = manifest.to_bytes();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_error("registering"))?;
        let known = sqlx::query("SELECT 1 FROM manifests WHERE content_id = $1")
            .bind(content.0.to_vec())
            .fetch_optional(&mut *tx)
            .await
            .map_err(query_error("registering a manifest"))?;
        if known.is_some() {
            return Ok(Registered::Known);
        }
        let used: Option<i64> =
            sqlx::query_scalar("SELECT manifest_bytes FROM registrants WHERE node = $1")
                .bind(registrant.0.to_vec())
                .fetch_optional(&mut *tx)
                .await
                .map_err(query_error("reading a registrant's usage"))?;
        let used = used.map_or(0, u64_of);
        let charge = bytes.len() as u64;
        if used.saturating_add(charge) > quota {
            return Ok(Registered::OverQuota { used, quota });
        }
        let inserted = sqlx::query(
            "INSERT INTO manifests (content_id, bytes, name, size, registered_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (content_id) DO NOTHING",
        )
        .bind(content.0.to_vec())
        .bind(bytes)
        .bind(manifest.name.clone())
        .bind(i64_of(manifest.size))
        .bind(i64_of(now_ms))
        .execute(&mut *tx)
        .await
        .map_err(query_error("registering a manifest"))?
        .rows_affected();
        if inserted == 0 {
            return Ok(Registered::Known);
        }
        let distinct = manifest.distinct_chunk_lengths();
        for rows in distinct.chunks(ROWS_PER_STATEMENT) {
            // The first length of a chunk stays; a concurrent registration of the same
            // chunk waits on the key, then sees the committed length below.
            let sql = format!(
                "INSERT INTO chunk_lengths (chunk, length) VALUES {} ON CONFLICT DO NOTHING",
                values_list(self.backend, rows.len(), 2)
            );
            let mut query = sqlx::query(&sql);
            for (chunk, length) in rows {
                query = query.bind(chunk.0.to_vec()).bind(i64::from(*length));
            }
            query
                .execute(&mut *tx)
                .await
                .map_err(query_error("registering chunk lengths"))?;
            let sql = format!(
                "SELECT chunk, length FROM chunk_lengths WHERE chunk IN ({})",
                placeholders(self.backend, rows.len())
            );
            let mut query = sqlx::query(&sql);
            for (chunk, _) in rows {
                query = query.bind(chunk.0.to_vec());
            }
            let known = query
                .fetch_all(&mut *tx)
                .await
                .map_err(query_error("reading chunk lengths"))?;
            let claimed: HashMap<ChunkId, u32> = rows.iter().copied().collect();
            for row in known {
                let (chunk, length) = chunk_length_from_row(&row)?;
                if let Some(&asked) = claimed.get(&chunk)
                    && asked != length
                {
                    tx.rollback()
                        .await
                        .map_err(query_error("registering a manifest"))?;
                    return Ok(Registered::Conflict {
                        chunk,
                        known: length,
                        claimed: asked,
                    });
                }
            }
            let sql = format!(
                "INSERT INTO chunks (chunk, content_id, length) VALUES {} ON CONFLICT DO NOTHING",
                values_list(self.backend, rows.len(), 3)
            );
            let mut query = sqlx::query(&sql);
            for (chunk, length) in rows {
                query = query
                    .bind(chunk.0.to_vec())
                    .bind(content.0.to_vec())
                    .bind(i64::from(*length));
            }
            query
                .execute(&mut *tx)
                .await
                .map_err(query_error("registering chunks"))?;
        }
        // Charged for good: a manifest dropped later (its false length disproven) does not
        // give its bytes back.
        sqlx::query(
            "INSERT INTO registrants (node, manifest_bytes) VALUES ($1, $2) \
             ON CONFLICT (node) DO UPDATE \
             SET manifest_bytes = registrants.manifest_bytes + excluded.manifest_bytes",
        )
        .bind(registrant.0.to_vec())
        .bind(i64_of(charge))
        .execute(&mut *tx)
        .await
        .map_err(query_error("charging a registrant"))?;
        tx.commit()
            .await
            .map_err(query_error("registering a manifest"))?;
        Ok(Registered::New)
    }

    /// The canonical bytes of a registered manifest.
    pub async fn manifest_bytes(&self, content: &ContentId) -> Result<Option<Vec<u8>>> {
        sqlx::query("SELECT bytes FROM manifests WHERE content_id = $1")
            .bind(content.0.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error("reading a manifest"))?
            .map(|row| {
                row.try_get::<Vec<u8>, _>(0)
                    .map_err(|_| StoreError::Corrupt("manifests"))
            })
            .transpose()
    }

    /// Which of `contents` have registered manifests.
    pub async fn known_contents(&self, contents: &[ContentId]) -> Result<HashSet<ContentId>> {
        let mut known = HashSet::new();
        for content in contents {
            if self.manifest_bytes(content).await?.is_some() {
                known.insert(*content);
            }
        }
        Ok(known)
    }

    /// Every registered chunk and its length.
    pub async fn chunk_lengths(&self) -> Result<HashMap<ChunkId, u32>> {
        let rows = sqlx::query("SELECT chunk, length FROM chunk_lengths")
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("reading chunk lengths"))?;
        let mut out = HashMap::with_capacity(rows.len());
        for row in rows {
            let (chunk, length) = chunk_length_from_row(&row)?;
            out.insert(chunk, length);
        }
        Ok(out)
    }

    /// Settles a chunk's length with its bytes' length `length` (the caller hashed the bytes
    /// to the chunk id). When the registered length differs, it was false: in one
    /// transaction the length becomes `length` and every manifest that gives the chunk
    /// another length is dropped with its chunk rows (such a manifest cannot match real
    /// bytes). The other chunks' lengths stay (a dropped manifest may have fixed them too;
    /// each is settled the same way if it is false). Receipts judged against the false length
    /// stay stored, and the close leaves them out of their epoch's batch. `None` if no
    /// manifest ever named the chunk.
    pub async fn settle_chunk_length(
        &self,
        chunk: &ChunkId,
        length: u32,
    ) -> Result<Option<Settled>> {
        let id = chunk.0.to_vec();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_error("settling a chunk length"))?;
        let known: Option<i64> =
            sqlx::query_scalar("SELECT length FROM chunk_lengths WHERE chunk = $1")
                .bind(id.clone())
                .fetch_optional(&mut *tx)
                .await
                .map_err(query_error("reading a chunk length"))?;
        let Some(known) = known else {
            return Ok(None);
        };
        let previous =
            u32::try_from(known).map_err(|_| StoreError::Corrupt("chunk_lengths.length"))?;
        if previous == length {
            return Ok(Some(Settled {
                previous,
                dropped_manifests: Vec::new(),
            }));
        }
        sqlx::query("UPDATE chunk_lengths SET length = $1 WHERE chunk = $2")
            .bind(i64::from(length))
            .bind(id.clone())
            .execute(&mut *tx)
            .await
            .map_err(query_error("settling a chunk length"))?;
        let rows = sqlx::query(
            "SELECT DISTINCT content_id FROM chunks WHERE chunk = $1 AND length <> $2 \
             ORDER BY content_id",
        )
        .bind(id)
        .bind(i64::from(length))
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error("finding false manifests"))?;
        let mut dropped_manifests = Vec::with_capacity(rows.len());
        for row in rows {
            let content: Vec<u8> = row
                .try_get(0)
                .map_err(|_| StoreError::Corrupt("chunks.content_id"))?;
            for sql in [
                "DELETE FROM chunks WHERE content_id = $1",
                "DELETE FROM manifests WHERE content_id = $1",
            ] {
                sqlx::query(sql)
                    .bind(content.clone())
                    .execute(&mut *tx)
                    .await
                    .map_err(query_error("dropping a false manifest"))?;
            }
            dropped_manifests.push(ContentId(id_from(content, "chunks.content_id")?));
        }
        tx.commit()
            .await
            .map_err(query_error("settling a chunk length"))?;
        Ok(Some(Settled {
            previous,
            dropped_manifests,
        }))
    }

    /// The chunks of a content (from its registered manifest).
    pub async fn chunks_of(&self, content: &ContentId) -> Result<Vec<ChunkId>> {
        let rows = sqlx::query("SELECT chunk FROM chunks WHERE content_id = $1 ORDER BY chunk")
            .bind(content.0.to_vec())
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("reading chunks"))?;
        rows.into_iter()
            .map(|row| {
                let bytes: Vec<u8> = row.try_get(0).map_err(|_| StoreError::Corrupt("chunks"))?;
                Ok(ChunkId(id_from(bytes, "chunks.chunk")?))
            })
            .collect()
    }

    // ---- tracker ---------------------------------------------------------------------

    /// Stores a verified announcement, sent from `location` (the network of the
    /// connection's source address; `None` for one that cannot count), unless an equally
    /// new or newer one is held, or the key is not yet live at `location` and that
    /// location is full ([`LocationBound`]).
    ///
    /// In a full location a key may take the place of a live key there that is not
    /// *settled*, one with no more vetting credit ([`Store::funded_audits_passed`], counted
    /// up to `bound.vetted_at`) than its own (the weakest, the newest among equals). A key is
    /// settled while it awaits its first audit (it became live after the newest close
    /// started) or passed every audit of the newest close: a key
    /// that holds what it announces is never pushed out, a newcomer gets its first audit,
    /// and squatting keys that fail their audits give way to anyone, a returning holder
    /// first. Callers serialize announcements (the bound is a count, then a write).
    pub async fn put_announcement(
        &self,
        announcement: &Announcement,
        location: Option<Location>,
        bound: LocationBound,
        now_ms: u64,
        expires_at_ms: u64,
    ) -> Result<AnnounceOutcome> {
        let node = announcement.node.0.to_vec();
        let endpoint = announcement
            .endpoint
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|_| StoreError::Corrupt("nodes.endpoint"))?;
        let mut tx = self.pool.begin().await.map_err(query_error("announcing"))?;
        let held = sqlx::query(
            "SELECT issued_at_ms, first_seen_ms, expires_at_ms, location, exited_epoch \
             FROM nodes WHERE node = $1",
        )
        .bind(node.clone())
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error("reading a node"))?;
        let corrupt = |_| StoreError::Corrupt("nodes");
        let mut live_here = false;
        let first_seen = match held {
            Some(row) => {
                if let Some(exited) = row.try_get::<Option<i64>, _>(4).map_err(corrupt)? {
                    return Ok(AnnounceOutcome::Exited(Epoch(u64_of(exited))));
                }
                let issued: i64 = row.try_get(0).map_err(corrupt)?;
                if u64_of(issued) >= announcement.issued_at_ms {
                    return Ok(AnnounceOutcome::Stale);
                }
                let expires: i64 = row.try_get(2).map_err(corrupt)?;
                let held_at: Option<Vec<u8>> = row.try_get(3).map_err(corrupt)?;
                live_here = u64_of(expires) > now_ms
                    && held_at.as_deref() == location.as_ref().map(|l| &l.0[..]);
                row.try_get::<i64, _>(1).map_err(corrupt)?
            }
            None => i64_of(now_ms),
        };
        // Nodes without a location (a private source on a public network) share one
        // bound: they earn no replica place, but each one is audited at every close.
        let mut displaced = None;
        if !live_here && bound.max > 0 {
            let rows = match location {
                Some(location) => {
                    sqlx::query(
                        "SELECT node, first_seen_ms FROM nodes \
                         WHERE location = $1 AND expires_at_ms > $2 AND node <> $3",
                    )
                    .bind(location.0.to_vec())
                    .bind(i64_of(now_ms))
                    .bind(node.clone())
                    .fetch_all(&mut *tx)
                    .await
                }
                None => {
                    sqlx::query(
                        "SELECT node, first_seen_ms FROM nodes \
                         WHERE location IS NULL AND expires_at_ms > $1 AND node <> $2",
                    )
                    .bind(i64_of(now_ms))
                    .bind(node.clone())
                    .fetch_all(&mut *tx)
                    .await
                }
            }
            .map_err(query_error("counting a location's nodes"))?;
            let live = rows.len() as u64;
            if live >= u64::from(bound.max) {
                let newest_close = newest_close(&mut tx).await?;
                let credit = |c: u64| c.min(bound.vetted_at);
                let mine = credit(vetting_credit(&mut tx, &node, bound.vetting_per_epoch).await?);
                let mut weakest: Option<(u64, std::cmp::Reverse<i64>, Vec<u8>)> = None;
                for row in &rows {
                    let other: Vec<u8> = row.try_get(0).map_err(corrupt)?;
                    let first_seen: i64 = row.try_get(1).map_err(corrupt)?;
                    if settled(&mut tx, &other, first_seen, newest_close).await? {
                        continue;
                    }
                    let theirs =
                        credit(vetting_credit(&mut tx, &other, bound.vetting_per_epoch).await?);
                    let candidate = (theirs, std::cmp::Reverse(first_seen), other);
                    if weakest.as_ref().is_none_or(|w| candidate < *w) {
                        weakest = Some(candidate);
                    }
                }
                match weakest {
                    Some((theirs, _, other)) if theirs <= mine => {
                        sqlx::query("UPDATE nodes SET expires_at_ms = $1 WHERE node = $2")
                            .bind(i64_of(now_ms))
                            .bind(other.clone())
                            .execute(&mut *tx)
                            .await
                            .map_err(query_error("announcing"))?;
                        displaced = Some(NodeId(id_from(other, "nodes.node")?));
                    }
                    _ => return Ok(AnnounceOutcome::LocationFull { location, live }),
                }
            }
        }
        sqlx::query("DELETE FROM nodes WHERE node = $1")
            .bind(node.clone())
            .execute(&mut *tx)
            .await
            .map_err(query_error("announcing"))?;
        sqlx::query(
            "INSERT INTO nodes \
             (node, url, payout, issued_at_ms, expires_at_ms, first_seen_ms, location, \
             endpoint) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(node.clone())
        .bind(announcement.url.clone())
        .bind(announcement.payout.0.to_vec())
        .bind(i64_of(announcement.issued_at_ms))
        .bind(i64_of(expires_at_ms))
        .bind(first_seen)
        .bind(location.map(|l| l.0.to_vec()))
        .bind(endpoint)
        .execute(&mut *tx)
        .await
        .map_err(query_error("announcing"))?;
        sqlx::query("DELETE FROM holdings WHERE node = $1")
            .bind(node.clone())
            .execute(&mut *tx)
            .await
            .map_err(query_error("announcing"))?;
        let mut contents = announcement.contents.clone();
        contents.sort_unstable();
        contents.dedup();
        for content in contents {
            sqlx::query("INSERT INTO holdings (node, content_id) VALUES ($1, $2)")
                .bind(node.clone())
                .bind(content.0.to_vec())
                .execute(&mut *tx)
                .await
                .map_err(query_error("announcing"))?;
        }
        tx.commit().await.map_err(query_error("announcing"))?;
        Ok(match displaced {
            Some(weaker) => AnnounceOutcome::Displaced { weaker },
            None => AnnounceOutcome::Stored,
        })
    }

    fn node_from_row(row: &AnyRow) -> Result<NodeAnnouncement> {
        let corrupt = |_| StoreError::Corrupt("nodes");
        Ok(NodeAnnouncement {
            node: NodeId(id_from(row.try_get(0).map_err(corrupt)?, "nodes.node")?),
            url: row.try_get(1).map_err(corrupt)?,
            payout: PayoutAccount(id_from(row.try_get(2).map_err(corrupt)?, "nodes.payout")?),
            issued_at_ms: u64_of(row.try_get(3).map_err(corrupt)?),
            expires_at_ms: u64_of(row.try_get(4).map_err(corrupt)?),
            first_seen_ms: u64_of(row.try_get(5).map_err(corrupt)?),
            contents: Vec::new(),
            endpoint: row
                .try_get::<Option<String>, _>(6)
                .map_err(corrupt)?
                .map(|text| serde_json::from_str(&text))
                .transpose()
                .map_err(|_| StoreError::Corrupt("nodes.endpoint"))?,
        })
    }

    async fn fill_contents(&self, nodes: &mut [NodeAnnouncement]) -> Result<()> {
        for node in nodes {
            let rows =
                sqlx::query("SELECT content_id FROM holdings WHERE node = $1 ORDER BY content_id")
                    .bind(node.node.0.to_vec())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(query_error("reading holdings"))?;
            node.contents = rows
                .into_iter()
                .map(|row| {
                    let bytes: Vec<u8> = row
                        .try_get(0)
                        .map_err(|_| StoreError::Corrupt("holdings"))?;
                    Ok(ContentId(id_from(bytes, "holdings.content_id")?))
                })
                .collect::<Result<_>>()?;
        }
        Ok(())
    }

    /// Nodes whose announcement has not expired at `now_ms`, with their holdings, by id.
    pub async fn live_nodes(&self, now_ms: u64) -> Result<Vec<NodeAnnouncement>> {
        let rows = sqlx::query(
            "SELECT node, url, payout, issued_at_ms, expires_at_ms, first_seen_ms, endpoint \
             FROM nodes \
             WHERE expires_at_ms > $1 ORDER BY node",
        )
        .bind(i64_of(now_ms))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("reading nodes"))?;
        let mut nodes = rows
            .iter()
            .map(Self::node_from_row)
            .collect::<Result<Vec<_>>>()?;
        self.fill_contents(&mut nodes).await?;
        Ok(nodes)
    }

    /// Forgets announcements that expired before `before_ms` (and what they announced),
    /// except those of seeders with receipts in an epoch after `closed` or with a leaf in
    /// any epoch (an expired record still names where such a seeder is paid, also for
    /// receipts that arrive late; a key earns only what someone funded, so these do not
    /// grow for free). Run at each close: keys announced once and abandoned do not grow
    /// the database without bound. Returns how many went.
    pub async fn prune_expired_nodes(&self, before_ms: u64, closed: Epoch) -> Result<u64> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_error("pruning nodes"))?;
        // Kept: seeders with receipts still to be paid, and every key that ever earned (its
        // payout account pays receipts that arrive late; earning is never free).
        // Also kept: a paused key while its pause lasts (at most `max_paused_epochs`), if
        // it ever passed an audit of funded content (a key that only announced is
        // forgotten, pause or not: keeping it would be free).
        let keep = "SELECT DISTINCT seeder FROM receipts WHERE epoch > $2 \
                    UNION SELECT DISTINCT seeder FROM leaves \
                    UNION SELECT DISTINCT p.node FROM pauses p WHERE p.until_epoch > $2 \
                    AND EXISTS (SELECT 1 FROM audits a WHERE a.seeder = p.node \
                    AND a.outcome = 'passed' AND a.funded = 1)";
        sqlx::query(&format!(
            "DELETE FROM holdings WHERE node IN (SELECT node FROM nodes \
             WHERE expires_at_ms < $1 AND node NOT IN ({keep}))"
        ))
        .bind(i64_of(before_ms))
        .bind(i64_of(closed.0))
        .execute(&mut *tx)
        .await
        .map_err(query_error("pruning holdings"))?;
        let gone = sqlx::query(&format!(
            "DELETE FROM nodes WHERE expires_at_ms < $1 AND node NOT IN ({keep})"
        ))
        .bind(i64_of(before_ms))
        .bind(i64_of(closed.0))
        .execute(&mut *tx)
        .await
        .map_err(query_error("pruning nodes"))?
        .rows_affected();
        // Open-epoch totals of closed epochs (their leaves hold the figures).
        sqlx::query("DELETE FROM seeder_epoch_totals WHERE epoch <= $1")
            .bind(i64_of(closed.0))
            .execute(&mut *tx)
            .await
            .map_err(query_error("pruning receipt totals"))?;
        // Pauses whose epochs are all closed, and those of forgotten nodes.
        sqlx::query(
            "DELETE FROM pauses WHERE until_epoch <= $1 OR node NOT IN (SELECT node FROM nodes)",
        )
        .bind(i64_of(closed.0))
        .execute(&mut *tx)
        .await
        .map_err(query_error("pruning pauses"))?;
        // The newest notice's time once older than any notice the clock-skew window lets
        // in (a replay of one is refused `clock_skew`), and those of forgotten nodes.
        sqlx::query(
            "DELETE FROM availability WHERE issued_at_ms < $1 \
             OR node NOT IN (SELECT node FROM nodes)",
        )
        .bind(i64_of(before_ms))
        .execute(&mut *tx)
        .await
        .map_err(query_error("pruning notices"))?;
        tx.commit().await.map_err(query_error("pruning nodes"))?;
        Ok(gone)
    }

    /// Receipts and bytes accepted for `seeder` in `epoch` (an epoch not closed yet).
    pub async fn seeder_epoch_total(&self, seeder: &NodeId, epoch: Epoch) -> Result<(u64, u64)> {
        let row = sqlx::query(
            "SELECT receipts, bytes FROM seeder_epoch_totals WHERE epoch = $1 AND seeder = $2",
        )
        .bind(i64_of(epoch.0))
        .bind(seeder.0.to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("reading a seeder's receipts"))?;
        let Some(row) = row else { return Ok((0, 0)) };
        let corrupt = |_| StoreError::Corrupt("seeder_epoch_totals");
        Ok((
            u64_of(row.try_get(0).map_err(corrupt)?),
            u64_of(row.try_get(1).map_err(corrupt)?),
        ))
    }

    // ---- availability ----------------------------------------------------------------

    /// Takes a verified availability notice from a node, issued at `current` (the epoch
    /// now) and `now_ms`. A pause covers the `epochs` epochs after `current`; a resume ends
    /// a pause before `current` (which its close then audits) or cancels one not started;
    /// an exit ends the node's announcement and its runs and refuses its later ones.
    /// Callers check the pause's length and serialize notices with announcements.
    pub async fn apply_notice(
        &self,
        notice: &AvailabilityNotice,
        current: Epoch,
        now_ms: u64,
    ) -> Result<NoticeOutcome> {
        let node = notice.node.0.to_vec();
        let corrupt = |_| StoreError::Corrupt("availability");
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_error("taking a notice"))?;
        let exited = sqlx::query("SELECT exited_epoch FROM nodes WHERE node = $1")
            .bind(node.clone())
            .fetch_optional(&mut *tx)
            .await
            .map_err(query_error("reading a node"))?;
        match exited {
            None => return Ok(NoticeOutcome::UnknownNode),
            Some(row) => {
                if let Some(epoch) = row.try_get::<Option<i64>, _>(0).map_err(corrupt)? {
                    return Ok(NoticeOutcome::Exited(Epoch(u64_of(epoch))));
                }
            }
        }
        let newest = sqlx::query("SELECT issued_at_ms FROM availability WHERE node = $1")
            .bind(node.clone())
            .fetch_optional(&mut *tx)
            .await
            .map_err(query_error("reading a notice"))?;
        if let Some(row) = newest {
            let issued: i64 = row.try_get(0).map_err(corrupt)?;
            if u64_of(issued) >= notice.issued_at_ms {
                return Ok(NoticeOutcome::Stale);
            }
        }
        // The pause now or to come (at most one: a pause is refused while one is held).
        // Pauses that ended stay as they are: their epochs' closes may not have run yet.
        let held = sqlx::query(
            "SELECT from_epoch, until_epoch FROM pauses WHERE node = $1 AND until_epoch > $2",
        )
        .bind(node.clone())
        .bind(i64_of(current.0))
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error("reading a pause"))?;
        let held = match held {
            Some(row) => Some((
                Epoch(u64_of(row.try_get(0).map_err(corrupt)?)),
                Epoch(u64_of(row.try_get(1).map_err(corrupt)?)),
            )),
            None => None,
        };
        let availability = match notice.change {
            Availability::Pause { epochs } => {
                if let Some((from, until)) = held {
                    return Ok(NoticeOutcome::AlreadyPaused { from, until });
                }
                let from = Epoch(current.0.saturating_add(1));
                let until = Epoch(from.0.saturating_add(u64::from(epochs)));
                sqlx::query(
                    "INSERT INTO pauses (node, from_epoch, until_epoch) VALUES ($1, $2, $3)",
                )
                .bind(node.clone())
                .bind(i64_of(from.0))
                .bind(i64_of(until.0))
                .execute(&mut *tx)
                .await
                .map_err(query_error("recording a pause"))?;
                NodeAvailability::Paused { from, until }
            }
            Availability::Resume => {
                let Some((from, _)) = held else {
                    return Ok(NoticeOutcome::NotPaused);
                };
                // The current epoch is active again (its close audits the node); a pause
                // that has not started is cancelled.
                let sql = if from >= current {
                    "DELETE FROM pauses WHERE node = $1 AND from_epoch = $2"
                } else {
                    "UPDATE pauses SET until_epoch = $3 WHERE node = $1 AND from_epoch = $2"
                };
                sqlx::query(sql)
                    .bind(node.clone())
                    .bind(i64_of(from.0))
                    .bind(i64_of(current.0))
                    .execute(&mut *tx)
                    .await
                    .map_err(query_error("ending a pause"))?;
                NodeAvailability::Active
            }
            Availability::Exit => {
                sqlx::query(
                    "UPDATE nodes SET exited_epoch = $1, \
                     expires_at_ms = CASE WHEN expires_at_ms > $2 THEN $2 ELSE expires_at_ms END \
                     WHERE node = $3",
                )
                .bind(i64_of(current.0))
                .bind(i64_of(now_ms))
                .bind(node.clone())
                .execute(&mut *tx)
                .await
                .map_err(query_error("recording an exit"))?;
                for table in ["holdings", "held_since"] {
                    sqlx::query(&format!("DELETE FROM {table} WHERE node = $1"))
                        .bind(node.clone())
                        .execute(&mut *tx)
                        .await
                        .map_err(query_error("recording an exit"))?;
                }
                NodeAvailability::Exited { epoch: current }
            }
        };
        sqlx::query("DELETE FROM availability WHERE node = $1")
            .bind(node.clone())
            .execute(&mut *tx)
            .await
            .map_err(query_error("recording a notice"))?;
        sqlx::query("INSERT INTO availability (node, issued_at_ms) VALUES ($1, $2)")
            .bind(node)
            .bind(i64_of(notice.issued_at_ms))
            .execute(&mut *tx)
            .await
            .map_err(query_error("recording a notice"))?;
        tx.commit()
            .await
            .map_err(query_error("recording a notice"))?;
        Ok(NoticeOutcome::Applied(availability))
    }

    /// Whether `node` has an announcement live at `now_ms` and has not exited.
    pub async fn is_live_node(&self, node: &NodeId, now_ms: u64) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 FROM nodes WHERE node = $1 AND expires_at_ms > $2 AND exited_epoch IS NULL",
        )
        .bind(node.0.to_vec())
        .bind(i64_of(now_ms))
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("reading a node"))?;
        Ok(row.is_some())
    }

    /// The epoch each of `nodes` exited in, for those that exited.
    pub async fn exited(&self, nodes: &[NodeId]) -> Result<HashMap<NodeId, Epoch>> {
        let mut out = HashMap::new();
        for node in nodes {
            let row = sqlx::query(
                "SELECT exited_epoch FROM nodes WHERE node = $1 AND exited_epoch IS NOT NULL",
            )
            .bind(node.0.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error("reading a node"))?;
            if let Some(row) = row {
                let epoch: i64 = row.try_get(0).map_err(|_| StoreError::Corrupt("nodes"))?;
                out.insert(*node, Epoch(u64_of(epoch)));
            }
        }
        Ok(out)
    }

    /// A node's availability at `current` (the epoch now): exited, paused now or from a
    /// later epoch, or active.
    pub async fn availability(&self, node: &NodeId, current: Epoch) -> Result<NodeAvailability> {
        let corrupt = |_| StoreError::Corrupt("availability");
        let exited = sqlx::query("SELECT exited_epoch FROM nodes WHERE node = $1")
            .bind(node.0.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error("reading a node"))?;
        if let Some(row) = exited
            && let Some(epoch) = row.try_get::<Option<i64>, _>(0).map_err(corrupt)?
        {
            return Ok(NodeAvailability::Exited {
                epoch: Epoch(u64_of(epoch)),
            });
        }
        let row = sqlx::query(
            "SELECT from_epoch, until_epoch FROM pauses WHERE node = $1 AND until_epoch > $2 \
             ORDER BY from_epoch LIMIT 1",
        )
        .bind(node.0.to_vec())
        .bind(i64_of(current.0))
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("reading a pause"))?;
        Ok(match row {
            Some(row) => NodeAvailability::Paused {
                from: Epoch(u64_of(row.try_get(0).map_err(corrupt)?)),
                until: Epoch(u64_of(row.try_get(1).map_err(corrupt)?)),
            },
            None => NodeAvailability::Active,
        })
    }

    /// The nodes paused in `epoch`: its close neither audits them nor moves their
    /// reputation, and their runs wait for them.
    pub async fn paused_in(&self, epoch: Epoch) -> Result<HashSet<NodeId>> {
        let rows = sqlx::query(
            "SELECT DISTINCT node FROM pauses WHERE from_epoch <= $1 AND until_epoch > $1",
        )
        .bind(i64_of(epoch.0))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("reading pauses"))?;
        rows.iter()
            .map(|row| {
                let bytes: Vec<u8> = row.try_get(0).map_err(|_| StoreError::Corrupt("pauses"))?;
                Ok(NodeId(id_from(bytes, "pauses.node")?))
            })
            .collect()
    }

    /// The location each node live at `now_ms` announced from (nodes without one are
    /// left out).
    pub async fn live_locations(&self, now_ms: u64) -> Result<HashMap<NodeId, Location>> {
        let rows = sqlx::query(
            "SELECT node, location FROM nodes WHERE expires_at_ms > $1 AND location IS NOT NULL",
        )
        .bind(i64_of(now_ms))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("reading locations"))?;
        rows.iter()
            .map(|row| {
                let corrupt = |_| StoreError::Corrupt("nodes");
                Ok((
                    NodeId(id_from(row.try_get(0).map_err(corrupt)?, "nodes.node")?),
                    Location(id_from(row.try_get(1).map_err(corrupt)?, "nodes.location")?),
                ))
            })
            .collect()
    }

    /// A node's record, live or not.
    pub async fn node(&self, node: &NodeId) -> Result<Option<NodeAnnouncement>> {
        let row = sqlx::query(
            "SELECT node, url, payout, issued_at_ms, expires_at_ms, first_seen_ms, endpoint \
             FROM nodes \
             WHERE node = $1",
        )
        .bind(node.0.to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("reading a node"))?;
        let Some(row) = row else { return Ok(None) };
        let mut nodes = vec![Self::node_from_row(&row)?];
        self.fill_contents(&mut nodes).await?;
        Ok(nodes.pop())
    }

    /// Live nodes holding `content`, by id, except those paused in `epoch` (the epoch now)
    /// or from the next one.
    pub async fn peers_for(
        &self,
        content: &ContentId,
        now_ms: u64,
        epoch: Epoch,
    ) -> Result<Vec<NodeAnnouncement>> {
        let rows = sqlx::query(
            "SELECT n.node, n.url, n.payout, n.issued_at_ms, n.expires_at_ms, n.first_seen_ms, \
             n.endpoint FROM nodes n JOIN holdings h ON h.node = n.node \
             WHERE h.content_id = $1 AND n.expires_at_ms > $2 AND NOT EXISTS \
             (SELECT 1 FROM pauses p WHERE p.node = n.node AND p.until_epoch > $3) \
             ORDER BY n.node",
        )
        .bind(content.0.to_vec())
        .bind(i64_of(now_ms))
        .bind(i64_of(epoch.0))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("finding peers"))?;
        rows.iter().map(Self::node_from_row).collect()
    }

    // ---- receipts --------------------------------------------------------------------

    /// Stored receipts with any of the given keys.
    pub async fn existing_receipts(
        &self,
        keys: &[ReceiptKey],
    ) -> Result<HashMap<ReceiptKey, SignedReceipt>> {
        let mut out = HashMap::new();
        for part in keys.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT {RECEIPT_COLUMNS} FROM receipts WHERE (epoch, downloader, seeder, chunk) \
                 IN (VALUES {})",
                values_list(self.backend, part.len(), 4)
            );
            let mut query = sqlx::query(&sql);
            for (epoch, downloader, seeder, chunk) in part {
                query = query
                    .bind(i64_of(epoch.0))
                    .bind(downloader.0.to_vec())
                    .bind(seeder.0.to_vec())
                    .bind(chunk.0.to_vec());
            }
            let rows = query
                .fetch_all(&self.pool)
                .await
                .map_err(query_error("looking up receipts"))?;
            for row in rows {
                let receipt = receipt_from_row(&row)?;
                out.insert(receipt_key(&receipt.receipt), receipt);
            }
        }
        Ok(out)
    }

    /// Bytes already attested per (epoch, downloader), for the given pairs.
    pub async fn downloader_usage(
        &self,
        pairs: &[(Epoch, NodeId)],
    ) -> Result<HashMap<(Epoch, NodeId), u64>> {
        let mut out = HashMap::new();
        for (epoch, downloader) in pairs {
            let row = sqlx::query(
                "SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM receipts \
                 WHERE epoch = $1 AND downloader = $2",
            )
            .bind(i64_of(epoch.0))
            .bind(downloader.0.to_vec())
            .fetch_one(&self.pool)
            .await
            .map_err(query_error("summing a downloader's bytes"))?;
            let sum: i64 = row
                .try_get(0)
                .map_err(|_| StoreError::Corrupt("receipts"))?;
            out.insert((*epoch, *downloader), u64_of(sum));
        }
        Ok(out)
    }

    /// Inserts receipts (keys not yet held) in one transaction; returns how many were new.
    pub async fn insert_receipts(&self, receipts: &[SignedReceipt]) -> Result<u64> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_error("storing receipts"))?;
        let mut inserted = 0;
        let mut totals: std::collections::BTreeMap<(Epoch, NodeId), (u64, u64)> =
            std::collections::BTreeMap::new();
        for part in receipts.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO receipts ({RECEIPT_COLUMNS}) VALUES {} ON CONFLICT DO NOTHING",
                values_list(self.backend, part.len(), 8)
            );
            let mut query = sqlx::query(&sql);
            for signed in part {
                let r = &signed.receipt;
                query = query
                    .bind(i64_of(r.epoch.0))
                    .bind(r.downloader.0.to_vec())
                    .bind(r.seeder.0.to_vec())
                    .bind(r.chunk.0.to_vec())
                    .bind(i64::from(r.bytes))
                    .bind(i64_of(r.issued_at_ms))
                    .bind(i64_of(r.nonce))
                    .bind(signed.signature.0.to_vec());
            }
            let stored = query
                .execute(&mut *tx)
                .await
                .map_err(query_error("storing receipts"))?
                .rows_affected();
            inserted += stored;
            if stored == part.len() as u64 {
                for signed in part {
                    let r = &signed.receipt;
                    let total = totals.entry((r.epoch, r.seeder)).or_default();
                    total.0 += 1;
                    total.1 += u64::from(r.bytes);
                }
            } else {
                // Some were held already: count the groups again from the table.
                for signed in part {
                    totals
                        .entry((signed.receipt.epoch, signed.receipt.seeder))
                        .or_default();
                }
            }
        }
        for ((epoch, seeder), (count, bytes)) in totals {
            if count == 0 {
                let row = sqlx::query(
                    "SELECT CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(bytes), 0) AS BIGINT) \
                     FROM receipts WHERE epoch = $1 AND seeder = $2",
                )
                .bind(i64_of(epoch.0))
                .bind(seeder.0.to_vec())
                .fetch_one(&mut *tx)
                .await
                .map_err(query_error("counting a seeder's receipts"))?;
                let corrupt = |_| StoreError::Corrupt("receipts");
                let count: i64 = row.try_get(0).map_err(corrupt)?;
                let bytes: i64 = row.try_get(1).map_err(corrupt)?;
                sqlx::query(
                    "INSERT INTO seeder_epoch_totals (epoch, seeder, receipts, bytes) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (epoch, seeder) DO UPDATE \
                     SET receipts = excluded.receipts, bytes = excluded.bytes",
                )
                .bind(i64_of(epoch.0))
                .bind(seeder.0.to_vec())
                .bind(count)
                .bind(bytes)
                .execute(&mut *tx)
                .await
                .map_err(query_error("counting a seeder's receipts"))?;
                continue;
            }
            sqlx::query(
                "INSERT INTO seeder_epoch_totals (epoch, seeder, receipts, bytes) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (epoch, seeder) DO UPDATE \
                 SET receipts = seeder_epoch_totals.receipts + excluded.receipts, \
                 bytes = seeder_epoch_totals.bytes + excluded.bytes",
            )
            .bind(i64_of(epoch.0))
            .bind(seeder.0.to_vec())
            .bind(i64_of(count))
            .bind(i64_of(bytes))
            .execute(&mut *tx)
            .await
            .map_err(query_error("counting a seeder's receipts"))?;
        }
        tx.commit().await.map_err(query_error("storing receipts"))?;
        Ok(inserted)
    }

    /// Every receipt of an epoch, ordered by (seeder, chunk, downloader).
    pub async fn receipts_for_epoch(&self, epoch: Epoch) -> Result<Vec<SignedReceipt>> {
        use futures_util::TryStreamExt;
        let sql = format!(
            "SELECT {RECEIPT_COLUMNS} FROM receipts WHERE epoch = $1 \
             ORDER BY seeder, chunk, downloader"
        );
        let mut rows = sqlx::query(&sql).bind(i64_of(epoch.0)).fetch(&self.pool);
        let mut out = Vec::new();
        while let Some(row) = rows
            .try_next()
            .await
            .map_err(query_error("reading an epoch's receipts"))?
        {
            out.push(receipt_from_row(&row)?);
        }
        Ok(out)
    }

    /// Receipts held for an epoch.
    pub async fn count_receipts(&self, epoch: Epoch) -> Result<u64> {
        let row = sqlx::query("SELECT COUNT(*) FROM receipts WHERE epoch = $1")
            .bind(i64_of(epoch.0))
            .fetch_one(&self.pool)
            .await
            .map_err(query_error("counting receipts"))?;
        Ok(u64_of(
            row.try_get::<i64, _>(0)
                .map_err(|_| StoreError::Corrupt("receipts"))?,
        ))
    }

    /// All receipts held (every epoch).
    pub async fn count_all_receipts(&self) -> Result<u64> {
        let row = sqlx::query("SELECT COUNT(*) FROM receipts")
            .fetch_one(&self.pool)
            .await
            .map_err(query_error("counting receipts"))?;
        Ok(u64_of(
            row.try_get::<i64, _>(0)
                .map_err(|_| StoreError::Corrupt("receipts"))?,
        ))
    }

    // ---- epochs ----------------------------------------------------------------------

    /// One optional epoch from an aggregate query over `table` (`MAX(epoch)`, ...).
    async fn epoch_aggregate(&self, sql: &str, table: &'static str) -> Result<Option<Epoch>> {
        let row = sqlx::query(sql)
            .fetch_one(&self.pool)
            .await
            .map_err(query_error("reading epochs"))?;
        Ok(row
            .try_get::<Option<i64>, _>(0)
            .map_err(|_| StoreError::Corrupt(table))?
            .map(|e| Epoch(u64_of(e))))
    }

    /// The newest closed epoch.
    pub async fn last_closed_epoch(&self) -> Result<Option<Epoch>> {
        self.epoch_aggregate("SELECT MAX(epoch) FROM epochs", "epochs")
            .await
    }

    /// The oldest epoch any held receipt names.
    pub async fn first_receipt_epoch(&self) -> Result<Option<Epoch>> {
        self.epoch_aggregate("SELECT MIN(epoch) FROM receipts", "receipts")
            .await
    }

    /// A closed epoch.
    pub async fn epoch(&self, epoch: Epoch) -> Result<Option<ClosedEpoch>> {
        let row = sqlx::query(
            "SELECT epoch, status, root, total, seeders, receipts, batch_content_id, \
             batch_file, closed_at_ms, close_duration_ms FROM epochs WHERE epoch = $1",
        )
        .bind(i64_of(epoch.0))
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("reading an epoch"))?;
        let Some(row) = row else { return Ok(None) };
        let corrupt = |_| StoreError::Corrupt("epochs");
        let total: String = row.try_get(3).map_err(corrupt)?;
        Ok(Some(ClosedEpoch {
            epoch: Epoch(u64_of(row.try_get(0).map_err(corrupt)?)),
            status: row
                .try_get::<String, _>(1)
                .map_err(corrupt)?
                .parse()
                .map_err(|_| StoreError::Corrupt("epochs.status"))?,
            root: id_from(row.try_get(2).map_err(corrupt)?, "epochs.root")?,
            total: amount_from(&total, "epochs.total")?,
            seeders: u64_of(row.try_get(4).map_err(corrupt)?),
            receipts: u64_of(row.try_get(5).map_err(corrupt)?),
            batch_content_id: ContentId(id_from(
                row.try_get(6).map_err(corrupt)?,
                "epochs.batch_content_id",
            )?),
            batch_file: row.try_get(7).map_err(corrupt)?,
            closed_at_ms: u64_of(row.try_get(8).map_err(corrupt)?),
            close_duration_ms: u64_of(row.try_get(9).map_err(corrupt)?),
        }))
    }

    /// Records a closed epoch, its leaves, the seeders' new states and its audits, all or
    /// nothing. Fails if the epoch was already recorded.
    pub async fn record_close(&self, close: &EpochClose) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(query_error("closing"))?;
        let r = &close.record;
        sqlx::query(
            "INSERT INTO epochs (epoch, status, root, total, seeders, receipts, \
             batch_content_id, batch_file, closed_at_ms, close_duration_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(i64_of(r.epoch.0))
        .bind(r.status.as_str())
        .bind(r.root.to_vec())
        .bind(r.total.to_string())
        .bind(i64_of(r.seeders))
        .bind(i64_of(r.receipts))
        .bind(r.batch_content_id.0.to_vec())
        .bind(r.batch_file.clone())
        .bind(i64_of(r.closed_at_ms))
        .bind(i64_of(r.close_duration_ms))
        .execute(&mut *tx)
        .await
        .map_err(query_error("recording an epoch"))?;
        for leaf in &close.leaves {
            let proof: Vec<u8> = leaf.proof.iter().flatten().copied().collect();
            sqlx::query(
                "INSERT INTO leaves (epoch, seeder, payout, amount, cumulative, \
                 bandwidth_amount, storage_amount, bytes_served, receipts, reputation, proof) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(i64_of(leaf.epoch.0))
            .bind(leaf.seeder.0.to_vec())
            .bind(leaf.payout.0.to_vec())
            .bind(leaf.amount.to_string())
            .bind(leaf.cumulative.to_string())
            .bind(leaf.bandwidth_amount.to_string())
            .bind(leaf.storage_amount.to_string())
            .bind(i64_of(leaf.bytes_served))
            .bind(i64_of(leaf.receipts))
            .bind(i64::from(leaf.reputation))
            .bind(proof)
            .execute(&mut *tx)
            .await
            .map_err(query_error("recording leaves"))?;
        }
        for (seeder, state) in &close.seeders {
            sqlx::query("DELETE FROM seeders WHERE seeder = $1")
                .bind(seeder.0.to_vec())
                .execute(&mut *tx)
                .await
                .map_err(query_error("recording seeders"))?;
            sqlx::query(
                "INSERT INTO seeders (seeder, cumulative, reputation, updated_epoch) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(seeder.0.to_vec())
            .bind(state.cumulative.to_string())
            .bind(state.reputation.encode())
            .bind(i64_of(state.updated_epoch.map_or(0, |e| e.0)))
            .execute(&mut *tx)
            .await
            .map_err(query_error("recording seeders"))?;
        }
        for (node, score) in &close.scores {
            sqlx::query("INSERT INTO epoch_scores (epoch, node, score) VALUES ($1, $2, $3)")
                .bind(i64_of(r.epoch.0))
                .bind(node.0.to_vec())
                .bind(i64::from(*score))
                .execute(&mut *tx)
                .await
                .map_err(query_error("recording scores"))?;
        }
        for audit in &close.audits {
            sqlx::query(
                "INSERT INTO audits (epoch, seeder, chunk, outcome, detail, at_ms, funded) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(i64_of(audit.epoch.0))
            .bind(audit.seeder.0.to_vec())
            .bind(audit.chunk.0.to_vec())
            .bind(audit.outcome.as_str())
            .bind(audit.detail.clone())
            .bind(i64_of(audit.at_ms))
            .bind(i64::from(close.funded_chunks.contains(&audit.chunk)))
            .execute(&mut *tx)
            .await
            .map_err(query_error("recording audits"))?;
        }
        for (downloader, amount) in close.debits.iter().filter(|(_, a)| *a > 0) {
            sqlx::query("INSERT INTO debits (epoch, downloader, amount) VALUES ($1, $2, $3)")
                .bind(i64_of(r.epoch.0))
                .bind(downloader.0.to_vec())
                .bind(amount.to_string())
                .execute(&mut *tx)
                .await
                .map_err(query_error("recording debits"))?;
        }
        for (sponsorship, amount) in close.draws.iter().filter(|(_, a)| *a > 0) {
            sqlx::query("INSERT INTO draws (epoch, sponsorship, amount) VALUES ($1, $2, $3)")
                .bind(i64_of(r.epoch.0))
                .bind(i64::from(*sponsorship))
                .bind(amount.to_string())
                .execute(&mut *tx)
                .await
                .map_err(query_error("recording draws"))?;
        }
        sqlx::query("DELETE FROM held_since")
            .execute(&mut *tx)
            .await
            .map_err(query_error("recording holdings"))?;
        for held in &close.held {
            sqlx::query(
                "INSERT INTO held_since (node, content, since, proven) VALUES ($1, $2, $3, $4)",
            )
            .bind(held.node.0.to_vec())
            .bind(held.content.0.to_vec())
            .bind(i64_of(held.since.0))
            .bind(i64_of(held.proven.0))
            .execute(&mut *tx)
            .await
            .map_err(query_error("recording holdings"))?;
        }
        // A node that exited while the close ran keeps no runs (the close read them before).
        sqlx::query(
            "DELETE FROM held_since WHERE node IN \
             (SELECT node FROM nodes WHERE exited_epoch IS NOT NULL)",
        )
        .execute(&mut *tx)
        .await
        .map_err(query_error("recording holdings"))?;
        tx.commit().await.map_err(query_error("closing"))?;
        Ok(())
    }

    // ---- funding ledger --------------------------------------------------------------

    /// Records a sponsorship. One with a `chain_id` already recorded is left as it is
    /// (the chain's sponsorships are mirrored at every close); returns whether it was new.
    pub async fn add_sponsorship(&self, sponsorship: &Sponsorship) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO sponsorships (content, per_epoch, replicas, first_epoch, last_epoch, \
             funded_at_ms, chain_id) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (chain_id) DO NOTHING",
        )
        .bind(sponsorship.content.0.to_vec())
        .bind(sponsorship.per_epoch.to_string())
        .bind(i64::from(sponsorship.replicas))
        .bind(i64_of(sponsorship.first_epoch.0))
        .bind(i64_of(sponsorship.last_epoch.0))
        .bind(i64_of(sponsorship.funded_at_ms))
        .bind(sponsorship.chain_id.map(i64::from))
        .execute(&self.pool)
        .await
        .map_err(query_error("recording a sponsorship"))?;
        Ok(done.rows_affected() > 0)
    }

    /// What `epoch` drew on each chain sponsorship and debited from each downloader's
    /// credit, by id and by key: its funding parts.
    pub async fn epoch_funding(
        &self,
        epoch: Epoch,
    ) -> Result<(Vec<(u32, u128)>, Vec<(NodeId, u128)>)> {
        let rows = sqlx::query(
            "SELECT sponsorship, amount FROM draws WHERE epoch = $1 ORDER BY sponsorship",
        )
        .bind(i64_of(epoch.0))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("reading draws"))?;
        let draws = rows
            .iter()
            .map(|row| {
                let corrupt = |_| StoreError::Corrupt("draws");
                let id: i64 = row.try_get(0).map_err(corrupt)?;
                let amount: String = row.try_get(1).map_err(corrupt)?;
                Ok((
                    u32::try_from(id).map_err(|_| StoreError::Corrupt("draws.sponsorship"))?,
                    amount_from(&amount, "draws.amount")?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let rows = sqlx::query(
            "SELECT downloader, amount FROM debits WHERE epoch = $1 ORDER BY downloader",
        )
        .bind(i64_of(epoch.0))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("reading debits"))?;
        let debits = rows
            .iter()
            .map(|row| {
                let corrupt = |_| StoreError::Corrupt("debits");
                let amount: String = row.try_get(1).map_err(corrupt)?;
                Ok((
                    NodeId(id_from(
                        row.try_get(0).map_err(corrupt)?,
                        "debits.downloader",
                    )?),
                    amount_from(&amount, "debits.amount")?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((draws, debits))
    }

    /// The largest `reward_pool` id of a mirrored sponsorship.
    pub async fn max_chain_sponsorship(&self) -> Result<Option<u32>> {
        let row = sqlx::query("SELECT MAX(chain_id) FROM sponsorships")
            .fetch_one(&self.pool)
            .await
            .map_err(query_error("reading sponsorships"))?;
        let id: Option<i64> = row
            .try_get(0)
            .map_err(|_| StoreError::Corrupt("sponsorships.chain_id"))?;
        id.map(|id| u32::try_from(id).map_err(|_| StoreError::Corrupt("sponsorships.chain_id")))
            .transpose()
    }

    /// The downloaders with receipts in `epoch`, by key.
    pub async fn epoch_downloaders(&self, epoch: Epoch) -> Result<Vec<NodeId>> {
        let rows = sqlx::query(
            "SELECT DISTINCT downloader FROM receipts WHERE epoch = $1 ORDER BY downloader",
        )
        .bind(i64_of(epoch.0))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("reading downloaders"))?;
        rows.iter()
            .map(|row| {
                let id = row
                    .try_get(0)
                    .map_err(|_| StoreError::Corrupt("receipts.downloader"))?;
                Ok(NodeId(id_from(id, "receipts.downloader")?))
            })
            .collect()
    }

    /// Sponsorships of `content`, or those active in `epoch`, oldest first.
    pub async fn sponsorships(
        &self,
        content: Option<&ContentId>,
        epoch: Option<Epoch>,
    ) -> Result<Vec<Sponsorship>> {
        let rows = sqlx::query(
            "SELECT content, per_epoch, replicas, first_epoch, last_epoch, funded_at_ms, \
             chain_id FROM sponsorships WHERE ($1 = 0 OR content = $2) \
             AND ($3 = 0 OR (first_epoch <= $4 AND last_epoch >= $4)) \
             ORDER BY funded_at_ms, content, chain_id",
        )
        .bind(i64::from(content.is_some()))
        .bind(content.map_or_else(Vec::new, |c| c.0.to_vec()))
        .bind(i64::from(epoch.is_some()))
        .bind(i64_of(epoch.map_or(0, |e| e.0)))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("reading sponsorships"))?;
        rows.iter()
            .map(|row| {
                let corrupt = |_| StoreError::Corrupt("sponsorships");
                let per_epoch: String = row.try_get(1).map_err(corrupt)?;
                Ok(Sponsorship {
                    content: ContentId(id_from(
                        row.try_get(0).map_err(corrupt)?,
                        "sponsorships.content",
                    )?),
                    per_epoch: amount_from(&per_epoch, "sponsorships.per_epoch")?,
                    replicas: u32::try_from(row.try_get::<i64, _>(2).map_err(corrupt)?)
                        .map_err(|_| StoreError::Corrupt("sponsorships.replicas"))?,
                    first_epoch: Epoch(u64_of(row.try_get(3).map_err(corrupt)?)),
                    last_epoch: Epoch(u64_of(row.try_get(4).map_err(corrupt)?)),
                    funded_at_ms: u64_of(row.try_get(5).map_err(corrupt)?),
                    chain_id: row
                        .try_get::<Option<i64>, _>(6)
                        .map_err(corrupt)?
                        .map(|id| {
                            u32::try_from(id)
                                .map_err(|_| StoreError::Corrupt("sponsorships.chain_id"))
                        })
                        .transpose()?,
                })
            })
            .collect()
    }

    /// Adds to a downloader's credit.
    pub async fn add_credit(&self, downloader: &NodeId, amount: u128, at_ms: u64) -> Result<()> {
        sqlx::query("INSERT INTO credits (downloader, amount, funded_at_ms) VALUES ($1, $2, $3)")
            .bind(downloader.0.to_vec())
            .bind(amount.to_string())
            .bind(i64_of(at_ms))
            .execute(&self.pool)
            .await
            .map_err(query_error("recording credit"))?;
        Ok(())
    }

    /// A downloader's credit: (funded, spent by closed epochs that were not vetoed).
    pub async fn credit(&self, downloader: &NodeId) -> Result<(u128, u128)> {
        let sum = |rows: Vec<AnyRow>, what: &'static str| -> Result<u128> {
            rows.iter().try_fold(0u128, |acc, row| {
                let text: String = row.try_get(0).map_err(|_| StoreError::Corrupt(what))?;
                Ok(acc.saturating_add(amount_from(&text, what)?))
            })
        };
        let funded = sqlx::query("SELECT amount FROM credits WHERE downloader = $1")
            .bind(downloader.0.to_vec())
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("reading credit"))?;
        let spent = sqlx::query(
            "SELECT d.amount FROM debits d JOIN epochs e ON e.epoch = d.epoch \
             WHERE d.downloader = $1 AND e.status <> 'vetoed' AND e.status <> 'mismatch'",
        )
        .bind(downloader.0.to_vec())
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("reading debits"))?;
        Ok((sum(funded, "credits.amount")?, sum(spent, "debits.amount")?))
    }

    /// A node's vetting credit so far: the audits of funded content it has passed, at
    /// most `per_epoch` of them counted in any one epoch (so announcing many small funded
    /// contents does not vet a key faster than holding one for `vetting_audits /
    /// per_epoch` epochs). The same figure ranks keys in a full network
    /// ([`Store::put_announcement`]).
    pub async fn funded_audits_passed(&self, seeder: &NodeId, per_epoch: u64) -> Result<u64> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(query_error("counting audits"))?;
        vetting_credit(&mut conn, &seeder.0, per_epoch).await
    }

    /// Every (node, funded content) run of proven epochs that goes on.
    pub async fn held_since(&self) -> Result<Vec<Held>> {
        let rows = sqlx::query("SELECT node, content, since, proven FROM held_since")
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("reading holdings"))?;
        rows.iter()
            .map(|row| {
                let corrupt = |_| StoreError::Corrupt("held_since");
                Ok(Held {
                    node: NodeId(id_from(
                        row.try_get(0).map_err(corrupt)?,
                        "held_since.node",
                    )?),
                    content: ContentId(id_from(
                        row.try_get(1).map_err(corrupt)?,
                        "held_since.content",
                    )?),
                    since: Epoch(u64_of(row.try_get(2).map_err(corrupt)?)),
                    proven: Epoch(u64_of(row.try_get(3).map_err(corrupt)?)),
                })
            })
            .collect()
    }

    /// An epoch's reputation scores, by node.
    pub async fn epoch_scores(&self, epoch: Epoch) -> Result<Vec<(NodeId, u32)>> {
        let rows =
            sqlx::query("SELECT node, score FROM epoch_scores WHERE epoch = $1 ORDER BY node")
                .bind(i64_of(epoch.0))
                .fetch_all(&self.pool)
                .await
                .map_err(query_error("reading scores"))?;
        rows.iter()
            .map(|row| {
                let corrupt = |_| StoreError::Corrupt("epoch_scores");
                Ok((
                    NodeId(id_from(
                        row.try_get(0).map_err(corrupt)?,
                        "epoch_scores.node",
                    )?),
                    u32::try_from(row.try_get::<i64, _>(1).map_err(corrupt)?)
                        .map_err(|_| StoreError::Corrupt("epoch_scores.score"))?,
                ))
            })
            .collect()
    }

    /// Closed epochs whose status is one of `statuses`, oldest first.
    pub async fn epochs_with_status(&self, statuses: &[EpochStatus]) -> Result<Vec<ClosedEpoch>> {
        self.epochs_with_status_from(statuses, Epoch(0)).await
    }

    /// [`Store::epochs_with_status`], only epochs from `from` on (one row read per epoch
    /// from there, however long the history).
    pub async fn epochs_with_status_from(
        &self,
        statuses: &[EpochStatus],
        from: Epoch,
    ) -> Result<Vec<ClosedEpoch>> {
        let rows = sqlx::query("SELECT epoch, status FROM epochs WHERE epoch >= $1 ORDER BY epoch")
            .bind(i64_of(from.0))
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("reading epochs"))?;
        let mut out = Vec::new();
        for row in rows {
            let status: String = row.try_get(1).map_err(|_| StoreError::Corrupt("epochs"))?;
            if statuses.iter().any(|s| s.as_str() == status) {
                let epoch: i64 = row.try_get(0).map_err(|_| StoreError::Corrupt("epochs"))?;
                if let Some(record) = self.epoch(Epoch(u64_of(epoch))).await? {
                    out.push(record);
                }
            }
        }
        Ok(out)
    }

    /// Closed epochs per status.
    pub async fn epoch_status_counts(
        &self,
    ) -> Result<std::collections::BTreeMap<EpochStatus, u64>> {
        let rows = sqlx::query("SELECT status, COUNT(*) FROM epochs GROUP BY status")
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("counting epochs"))?;
        rows.iter()
            .map(|row| {
                let corrupt = |_| StoreError::Corrupt("epochs");
                Ok((
                    row.try_get::<String, _>(0)
                        .map_err(corrupt)?
                        .parse()
                        .map_err(|_| StoreError::Corrupt("epochs.status"))?,
                    u64_of(row.try_get::<i64, _>(1).map_err(corrupt)?),
                ))
            })
            .collect()
    }

    /// Sets a closed epoch's status.
    pub async fn set_epoch_status(&self, epoch: Epoch, status: EpochStatus) -> Result<()> {
        sqlx::query("UPDATE epochs SET status = $1 WHERE epoch = $2")
            .bind(status.as_str())
            .bind(i64_of(epoch.0))
            .execute(&self.pool)
            .await
            .map_err(query_error("updating an epoch"))?;
        Ok(())
    }

    /// The base of `epoch` on chain: the newest earlier closed epoch whose status is neither
    /// `vetoed` nor `mismatch` (its cumulative leaves are the ones `epoch` builds on).
    pub async fn base_epoch(&self, epoch: Epoch) -> Result<Option<Epoch>> {
        let row = sqlx::query(
            "SELECT MAX(epoch) FROM epochs WHERE epoch < $1 \
             AND status <> 'vetoed' AND status <> 'mismatch'",
        )
        .bind(i64_of(epoch.0))
        .fetch_one(&self.pool)
        .await
        .map_err(query_error("reading epochs"))?;
        Ok(row
            .try_get::<Option<i64>, _>(0)
            .map_err(|_| StoreError::Corrupt("epochs"))?
            .map(|e| Epoch(u64_of(e))))
    }

    /// Governance vetoed `epoch` on chain. As on chain, every later closed epoch built on it,
    /// so it and all of them become `vetoed`; each seeder's cumulative earnings go back to
    /// their value at the base (its newest leaf in an epoch that is neither vetoed nor
    /// mismatched, 0 without one), so the next close builds on the last good cumulative
    /// amounts. One transaction: all or nothing. Returns the base and the epochs it vetoed.
    pub async fn roll_back_veto(&self, epoch: Epoch) -> Result<VetoRollback> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_error("rolling back"))?;
        let rows = sqlx::query(
            "SELECT epoch FROM epochs WHERE epoch >= $1 AND status <> 'vetoed' ORDER BY epoch",
        )
        .bind(i64_of(epoch.0))
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error("reading epochs"))?;
        let vetoed = rows
            .iter()
            .map(|row| {
                row.try_get::<i64, _>(0)
                    .map(|e| Epoch(u64_of(e)))
                    .map_err(|_| StoreError::Corrupt("epochs"))
            })
            .collect::<Result<Vec<_>>>()?;
        sqlx::query("UPDATE epochs SET status = 'vetoed' WHERE epoch >= $1")
            .bind(i64_of(epoch.0))
            .execute(&mut *tx)
            .await
            .map_err(query_error("vetoing epochs"))?;
        sqlx::query(
            "UPDATE seeders SET cumulative = COALESCE((\
               SELECT l.cumulative FROM leaves l JOIN epochs e ON e.epoch = l.epoch \
               WHERE l.seeder = seeders.seeder \
               AND e.status <> 'vetoed' AND e.status <> 'mismatch' \
               ORDER BY l.epoch DESC LIMIT 1), '0')",
        )
        .execute(&mut *tx)
        .await
        .map_err(query_error("rolling back seeders"))?;
        let row = sqlx::query(
            "SELECT MAX(epoch) FROM epochs WHERE epoch < $1 \
             AND status <> 'vetoed' AND status <> 'mismatch'",
        )
        .bind(i64_of(epoch.0))
        .fetch_one(&mut *tx)
        .await
        .map_err(query_error("reading epochs"))?;
        let base = row
            .try_get::<Option<i64>, _>(0)
            .map_err(|_| StoreError::Corrupt("epochs"))?
            .map(|e| Epoch(u64_of(e)));
        tx.commit().await.map_err(query_error("rolling back"))?;
        Ok(VetoRollback { base, vetoed })
    }

    fn leaf_from_row(row: &AnyRow) -> Result<Leaf> {
        let corrupt = |_| StoreError::Corrupt("leaves");
        let text = |i: usize, what| -> Result<u128> {
            let value: String = row.try_get(i).map_err(corrupt)?;
            amount_from(&value, what)
        };
        let proof: Vec<u8> = row.try_get(10).map_err(corrupt)?;
        if !proof.len().is_multiple_of(32) {
            return Err(StoreError::Corrupt("leaves.proof"));
        }
        Ok(Leaf {
            epoch: Epoch(u64_of(row.try_get(0).map_err(corrupt)?)),
            seeder: NodeId(id_from(row.try_get(1).map_err(corrupt)?, "leaves.seeder")?),
            payout: PayoutAccount(id_from(row.try_get(2).map_err(corrupt)?, "leaves.payout")?),
            amount: text(3, "leaves.amount")?,
            cumulative: text(4, "leaves.cumulative")?,
            bandwidth_amount: text(5, "leaves.bandwidth_amount")?,
            storage_amount: text(6, "leaves.storage_amount")?,
            bytes_served: u64_of(row.try_get(7).map_err(corrupt)?),
            receipts: u64_of(row.try_get(8).map_err(corrupt)?),
            reputation: u32::try_from(row.try_get::<i64, _>(9).map_err(corrupt)?)
                .map_err(|_| StoreError::Corrupt("leaves.reputation"))?,
            proof: proof
                .chunks_exact(32)
                .map(|c| {
                    let mut hash = [0; 32];
                    hash.copy_from_slice(c);
                    hash
                })
                .collect(),
        })
    }

    const LEAF_COLUMNS: &'static str = "epoch, seeder, payout, amount, cumulative, \
        bandwidth_amount, storage_amount, bytes_served, receipts, reputation, proof";

    /// A seeder's leaf in an epoch.
    pub async fn leaf(&self, epoch: Epoch, seeder: &NodeId) -> Result<Option<Leaf>> {
        let sql = format!(
            "SELECT {} FROM leaves WHERE epoch = $1 AND seeder = $2",
            Self::LEAF_COLUMNS
        );
        sqlx::query(&sql)
            .bind(i64_of(epoch.0))
            .bind(seeder.0.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error("reading a leaf"))?
            .as_ref()
            .map(Self::leaf_from_row)
            .transpose()
    }

    /// All leaves of an epoch, by seeder.
    pub async fn leaves(&self, epoch: Epoch) -> Result<Vec<Leaf>> {
        let sql = format!(
            "SELECT {} FROM leaves WHERE epoch = $1 ORDER BY seeder",
            Self::LEAF_COLUMNS
        );
        let rows = sqlx::query(&sql)
            .bind(i64_of(epoch.0))
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("reading leaves"))?;
        rows.iter().map(Self::leaf_from_row).collect()
    }

    /// Leaves of keys that exited, in claimable epochs, that the oracle has not tried to
    /// claim for them yet (`exit_claims`), oldest first, at most `limit`.
    pub async fn exit_claims_due(&self, limit: u32) -> Result<Vec<Leaf>> {
        let sql = format!(
            "SELECT {} FROM leaves l WHERE l.epoch IN \
             (SELECT epoch FROM epochs WHERE status = $1) \
             AND l.seeder IN (SELECT node FROM nodes WHERE exited_epoch IS NOT NULL) \
             AND NOT EXISTS (SELECT 1 FROM exit_claims c \
             WHERE c.epoch = l.epoch AND c.seeder = l.seeder) \
             ORDER BY l.epoch, l.seeder LIMIT $2",
            Self::LEAF_COLUMNS
                .split(", ")
                .map(|c| format!("l.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let rows = sqlx::query(&sql)
            .bind(EpochStatus::Claimable.as_str())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("reading leaves to claim"))?;
        rows.iter().map(Self::leaf_from_row).collect()
    }

    /// Records what claiming an exited key's leaf came to (`outcome`: `paid`,
    /// `already_claimed`, `below_min`, `refused: ...`): it is not tried again.
    pub async fn record_exit_claim(
        &self,
        epoch: Epoch,
        seeder: &NodeId,
        outcome: &str,
        at_ms: u64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO exit_claims (epoch, seeder, outcome, at_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(i64_of(epoch.0))
        .bind(seeder.0.to_vec())
        .bind(outcome)
        .bind(i64_of(at_ms))
        .execute(&self.pool)
        .await
        .map_err(query_error("recording a claim"))?;
        Ok(())
    }

    /// A seeder's leaves, newest first.
    pub async fn seeder_leaves(&self, seeder: &NodeId, limit: u32) -> Result<Vec<Leaf>> {
        let sql = format!(
            "SELECT {} FROM leaves WHERE seeder = $1 ORDER BY epoch DESC LIMIT $2",
            Self::LEAF_COLUMNS
        );
        let rows = sqlx::query(&sql)
            .bind(seeder.0.to_vec())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("reading leaves"))?;
        rows.iter().map(Self::leaf_from_row).collect()
    }

    /// A seeder's running state (default when never seen).
    pub async fn seeder_state(&self, seeder: &NodeId) -> Result<SeederState> {
        let row = sqlx::query(
            "SELECT cumulative, reputation, updated_epoch FROM seeders WHERE seeder = $1",
        )
        .bind(seeder.0.to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("reading a seeder"))?;
        let Some(row) = row else {
            return Ok(SeederState::default());
        };
        let corrupt = |_| StoreError::Corrupt("seeders");
        let cumulative: String = row.try_get(0).map_err(corrupt)?;
        let reputation: Vec<u8> = row.try_get(1).map_err(corrupt)?;
        Ok(SeederState {
            cumulative: amount_from(&cumulative, "seeders.cumulative")?,
            reputation: ReputationState::decode(&mut &reputation[..])
                .map_err(|_| StoreError::Corrupt("seeders.reputation"))?,
            updated_epoch: Some(Epoch(u64_of(row.try_get(2).map_err(corrupt)?))),
        })
    }

    /// A seeder's audits, newest first.
    pub async fn audits(&self, seeder: &NodeId, limit: u32) -> Result<Vec<Audit>> {
        let rows = sqlx::query(
            "SELECT epoch, seeder, chunk, outcome, detail, at_ms FROM audits \
             WHERE seeder = $1 ORDER BY epoch DESC, at_ms DESC LIMIT $2",
        )
        .bind(seeder.0.to_vec())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("reading audits"))?;
        rows.iter()
            .map(|row| {
                let corrupt = |_| StoreError::Corrupt("audits");
                Ok(Audit {
                    epoch: Epoch(u64_of(row.try_get(0).map_err(corrupt)?)),
                    seeder: NodeId(id_from(row.try_get(1).map_err(corrupt)?, "audits.seeder")?),
                    chunk: ChunkId(id_from(row.try_get(2).map_err(corrupt)?, "audits.chunk")?),
                    outcome: row
                        .try_get::<String, _>(3)
                        .map_err(corrupt)?
                        .parse()
                        .map_err(|_| StoreError::Corrupt("audits.outcome"))?,
                    detail: row.try_get(4).map_err(corrupt)?,
                    at_ms: u64_of(row.try_get(5).map_err(corrupt)?),
                })
            })
            .collect()
    }
}
