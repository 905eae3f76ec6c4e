//! The seeder's side of receipts: which receipts it accepts ([`check`]) and the durable
//! database it keeps them in ([`ReceiptStore`]).
//!
//! A receipt is acknowledged to the downloader only after the transaction holding it has
//! committed with `synchronous=FULL`, so an acknowledged receipt survives a crash or power
//! loss. Forwarding to the oracle (a later step) reads from here and deletes only what the
//! oracle acknowledged.

use std::path::Path;
use std::time::Duration;

use dsi_api::RejectionCode;
use dsi_protocol::{ChunkId, Epoch, EpochSchedule, NodeId, SignedReceipt};
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// Why a seeder refused a receipt. Each names its rule's [`RejectionCode`], the same code
/// the oracle uses for the same rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The receipt names another seeder.
    #[error("receipt is for seeder {seeder}, not this node")]
    WrongSeeder {
        /// The seeder it names.
        seeder: NodeId,
    },
    /// The downloader and seeder are the same node.
    #[error("a node cannot sign receipts for itself")]
    SelfReceipt,
    /// The signature does not verify (or the downloader key is unusable).
    #[error("{0}")]
    BadSignature(String),
    /// This node does not hold the chunk.
    #[error("this node does not hold chunk {chunk}")]
    UnknownChunk {
        /// The chunk.
        chunk: ChunkId,
    },
    /// The byte count is not the chunk's length.
    #[error("receipt says {actual} bytes but chunk is {expected} bytes")]
    ChunkSizeMismatch {
        /// The chunk's length.
        expected: u64,
        /// What the receipt says.
        actual: u32,
    },
    /// The epoch is in the future or too far in the past.
    #[error("epoch {epoch} is outside the accepted window (current epoch {current})")]
    EpochOutOfWindow {
        /// The receipt's epoch.
        epoch: Epoch,
        /// The seeder's current epoch.
        current: Epoch,
    },
    /// `issued_at_ms` lies outside the receipt's epoch (widened by the allowed skew).
    #[error(
        "issued at {issued_at_ms} ms, outside epoch {epoch} ({start}..{end} ms, give or take {skew_ms} ms)"
    )]
    IssuedOutOfWindow {
        /// The receipt's epoch.
        epoch: Epoch,
        /// The receipt's issue time.
        issued_at_ms: u64,
        /// The epoch's start.
        start: u64,
        /// The epoch's end.
        end: u64,
        /// The allowed skew.
        skew_ms: u64,
    },
    /// A different receipt for the same downloader, chunk and epoch is already held.
    #[error("a different receipt for this downloader, chunk and epoch is already held")]
    Duplicate,
}

impl Rejection {
    /// The rule's code, for the API and metrics.
    pub fn code(&self) -> RejectionCode {
        match self {
            Self::WrongSeeder { .. } => RejectionCode::WrongSeeder,
            Self::SelfReceipt => RejectionCode::SelfReceipt,
            Self::BadSignature(_) => RejectionCode::BadSignature,
            Self::UnknownChunk { .. } => RejectionCode::UnknownChunk,
            Self::ChunkSizeMismatch { .. } => RejectionCode::ChunkSizeMismatch,
            Self::EpochOutOfWindow { .. } | Self::IssuedOutOfWindow { .. } => {
                RejectionCode::EpochOutOfWindow
            }
            Self::Duplicate => RejectionCode::Duplicate,
        }
    }
}

/// What a seeder knows when it checks a receipt.
pub struct CheckContext<'a> {
    /// This node.
    pub me: NodeId,
    /// The current epoch.
    pub current: Epoch,
    /// How many epochs back are still accepted.
    pub grace: u64,
    /// The epoch schedule (for the issue-time window).
    pub epochs: EpochSchedule,
    /// How far `issued_at_ms` may lie outside its epoch, either way.
    pub issued_at_skew_ms: u64,
    /// Length of a held chunk, `None` if not held.
    pub chunk_len: &'a dyn Fn(&ChunkId) -> Option<u64>,
}

/// The seeder's stateless rules for one receipt, cheapest first and before its signature
/// is checked: the seeder, self receipts, the epoch window and the issue time within the
/// epoch (the oracle's rule), the chunk held and its length.
pub fn check(receipt: &SignedReceipt, context: &CheckContext<'_>) -> Result<(), Rejection> {
    let r = &receipt.receipt;
    if r.seeder != context.me {
        return Err(Rejection::WrongSeeder { seeder: r.seeder });
    }
    if r.downloader == context.me {
        return Err(Rejection::SelfReceipt);
    }
    if r.epoch > context.current || r.epoch.0 < context.current.0.saturating_sub(context.grace) {
        return Err(Rejection::EpochOutOfWindow {
            epoch: r.epoch,
            current: context.current,
        });
    }
    if !context
        .epochs
        .issued_in_window(r.epoch, r.issued_at_ms, context.issued_at_skew_ms)
    {
        let (start, end) = context.epochs.window(r.epoch);
        return Err(Rejection::IssuedOutOfWindow {
            epoch: r.epoch,
            issued_at_ms: r.issued_at_ms,
            start,
            end,
            skew_ms: context.issued_at_skew_ms,
        });
    }
    let Some(expected) = (context.chunk_len)(&r.chunk) else {
        return Err(Rejection::UnknownChunk { chunk: r.chunk });
    };
    if u64::from(r.bytes) != expected {
        return Err(Rejection::ChunkSizeMismatch {
            expected,
            actual: r.bytes,
        });
    }
    Ok(())
}

/// What storing one receipt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Newly stored.
    New,
    /// The identical receipt was already held (resubmission is harmless).
    AlreadyHeld,
    /// A different receipt with the same key is held.
    Conflict,
}

/// A receipt as listed by `node-lite receipts` (`--json`: the receipt's flat JSON form
/// with `received_at_ms`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldReceipt {
    /// The signed receipt.
    #[serde(flatten)]
    pub receipt: SignedReceipt,
    /// When this node stored it (Unix ms).
    pub received_at_ms: u64,
}

/// The seeder's receipt database.
#[derive(Clone, Debug)]
pub struct ReceiptStore {
    pool: SqlitePool,
}

/// Migrations embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl ReceiptStore {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub async fn open(path: &Path) -> Result<Self, sqlx::Error> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    /// Stores receipts in one transaction; returns once it is durable.
    pub async fn insert(&self, receipts: &[SignedReceipt]) -> Result<Vec<Stored>, sqlx::Error> {
        let now = to_i64(dsi_protocol::now_ms());
        let mut tx = self.pool.begin().await?;
        let mut outcomes = Vec::with_capacity(receipts.len());
        for signed in receipts {
            let r = &signed.receipt;
            let encoded = signed.encode();
            let inserted = sqlx::query(
                "INSERT INTO receipts (downloader, chunk, epoch, bytes, issued_at_ms, received_at_ms, encoded)
                 VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(&r.downloader.0[..])
            .bind(&r.chunk.0[..])
            .bind(to_i64(r.epoch.0))
            .bind(i64::from(r.bytes))
            .bind(to_i64(r.issued_at_ms))
            .bind(now)
            .bind(&encoded)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let outcome = if inserted == 1 {
                Stored::New
            } else {
                let held: Vec<u8> = sqlx::query_scalar(
                    "SELECT encoded FROM receipts WHERE downloader = ? AND chunk = ? AND epoch = ?",
                )
                .bind(&r.downloader.0[..])
                .bind(&r.chunk.0[..])
                .bind(to_i64(r.epoch.0))
                .fetch_one(&mut *tx)
                .await?;
                if held == encoded {
                    Stored::AlreadyHeld
                } else {
                    Stored::Conflict
                }
            };
            outcomes.push(outcome);
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    /// Number of receipts held.
    pub async fn count(&self) -> Result<u64, sqlx::Error> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM receipts")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Receipts not yet forwarded, and those the oracle refused by rule code (kept for the
    /// operator), most refused first.
    pub async fn summary(&self) -> Result<(u64, Vec<(String, u64)>), sqlx::Error> {
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM receipts WHERE oracle_verdict IS NULL")
                .fetch_one(&self.pool)
                .await?;
        let rows = sqlx::query(
            "SELECT oracle_verdict AS code, COUNT(*) AS n FROM receipts
             WHERE oracle_verdict IS NOT NULL GROUP BY oracle_verdict ORDER BY n DESC, code",
        )
        .fetch_all(&self.pool)
        .await?;
        let refused = rows
            .into_iter()
            .map(|row| {
                let code: String = row.try_get("code")?;
                let n: i64 = row.try_get("n")?;
                Ok((code, u64::try_from(n).unwrap_or(0)))
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok((u64::try_from(pending).unwrap_or(0), refused))
    }

    /// Receipts held, oldest epoch first, optionally for one epoch only.
    pub async fn list(&self, epoch: Option<Epoch>) -> Result<Vec<HeldReceipt>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT encoded, received_at_ms FROM receipts WHERE (?1 IS NULL OR epoch = ?1)
             ORDER BY epoch, issued_at_ms, chunk",
        )
        .bind(epoch.map(|e| to_i64(e.0)))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                let encoded: Vec<u8> = row.try_get("encoded")?;
                let received: i64 = row.try_get("received_at_ms")?;
                let receipt = SignedReceipt::decode(&mut &encoded[..])
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
                Ok(HeldReceipt {
                    receipt,
                    received_at_ms: u64::try_from(received).unwrap_or(0),
                })
            })
            .collect()
    }

    /// Receipts not yet forwarded to the oracle (no verdict), oldest epoch first.
    pub async fn pending(&self, limit: usize) -> Result<Vec<SignedReceipt>, sqlx::Error> {
        let rows: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT encoded FROM receipts WHERE oracle_verdict IS NULL
             ORDER BY epoch, issued_at_ms, chunk LIMIT ?",
        )
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|encoded| {
                SignedReceipt::decode(&mut &encoded[..])
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))
            })
            .collect()
    }

    /// Records the oracle's verdicts: accepted receipts are deleted, refused ones keep the
    /// rule code. One transaction.
    pub async fn settle(
        &self,
        verdicts: &[(SignedReceipt, Option<RejectionCode>)],
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        for (signed, verdict) in verdicts {
            let r = &signed.receipt;
            let query = match verdict {
                None => sqlx::query(
                    "DELETE FROM receipts WHERE downloader = ? AND chunk = ? AND epoch = ?",
                ),
                Some(code) => sqlx::query(
                    "UPDATE receipts SET oracle_verdict = ? WHERE downloader = ? AND chunk = ? AND epoch = ?",
                )
                .bind(code.as_str()),
            };
            query
                .bind(&r.downloader.0[..])
                .bind(&r.chunk.0[..])
                .bind(to_i64(r.epoch.0))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    /// Closes the database (waits for connections to finish).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsi_protocol::{NetworkId, Receipt, SecretKey};

    /// Ten-second epochs from 0 in the rule tests.
    const EPOCHS: EpochSchedule = EpochSchedule {
        genesis_ms: 0,
        length_ms: 10_000,
    };

    fn signed(seeder: NodeId, key: &SecretKey, chunk: u8, epoch: u64, nonce: u64) -> SignedReceipt {
        let receipt = Receipt {
            epoch: Epoch(epoch),
            seeder,
            downloader: key.node_id(),
            chunk: ChunkId([chunk; 32]),
            bytes: 100,
            issued_at_ms: epoch * 10_000 + 5_000,
            nonce,
        };
        SignedReceipt::sign(receipt, &NetworkId::default(), key)
    }

    #[test]
    fn rules_are_named() {
        let me = NodeId([1; 32]);
        let key = SecretKey::from_seed(&[2; 32]);
        let len = |c: &ChunkId| (c.0[0] == 7).then_some(100u64);
        let context = CheckContext {
            me,
            current: Epoch(10),
            grace: 1,
            epochs: EPOCHS,
            issued_at_skew_ms: 1_000,
            chunk_len: &len,
        };
        assert_eq!(check(&signed(me, &key, 7, 10, 0), &context), Ok(()));
        assert_eq!(check(&signed(me, &key, 7, 9, 0), &context), Ok(()));
        assert_eq!(
            check(&signed(me, &key, 7, 8, 0), &context)
                .unwrap_err()
                .code(),
            RejectionCode::EpochOutOfWindow
        );
        assert_eq!(
            check(&signed(me, &key, 7, 11, 0), &context)
                .unwrap_err()
                .code(),
            RejectionCode::EpochOutOfWindow
        );
        assert_eq!(
            check(&signed(me, &key, 8, 10, 0), &context)
                .unwrap_err()
                .code(),
            RejectionCode::UnknownChunk
        );
        assert_eq!(
            check(&signed(NodeId([3; 32]), &key, 7, 10, 0), &context)
                .unwrap_err()
                .code(),
            RejectionCode::WrongSeeder
        );
        // The issue time must lie in the epoch, give or take the skew.
        for (issued_at_ms, verdict) in [
            (99_000, Ok(())),
            (98_999, Err(RejectionCode::EpochOutOfWindow)),
            (110_999, Ok(())),
            (111_000, Err(RejectionCode::EpochOutOfWindow)),
        ] {
            let mut receipt = signed(me, &key, 7, 10, 0).receipt;
            receipt.issued_at_ms = issued_at_ms;
            let receipt = SignedReceipt::sign(receipt, &NetworkId::default(), &key);
            assert_eq!(
                check(&receipt, &context).map_err(|r| r.code()),
                verdict,
                "{issued_at_ms}"
            );
        }
        let mut wrong_bytes = signed(me, &key, 7, 10, 0);
        wrong_bytes.receipt.bytes = 99;
        assert_eq!(
            check(&wrong_bytes, &context).unwrap_err().code(),
            RejectionCode::ChunkSizeMismatch
        );
        let own = SecretKey::from_seed(&[1; 32]);
        let context_self = CheckContext {
            me: own.node_id(),
            ..context
        };
        assert_eq!(
            check(&signed(own.node_id(), &own, 7, 10, 0), &context_self)
                .unwrap_err()
                .code(),
            RejectionCode::SelfReceipt
        );
    }

    #[tokio::test]
    async fn receipts_survive_reopen_and_resubmission_is_harmless() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("receipts.db");
        let key = SecretKey::from_seed(&[2; 32]);
        let me = NodeId([1; 32]);
        let a = signed(me, &key, 1, 5, 1);
        let b = signed(me, &key, 2, 5, 2);
        {
            let store = ReceiptStore::open(&path).await.unwrap();
            assert_eq!(
                store.insert(&[a, b]).await.unwrap(),
                vec![Stored::New, Stored::New]
            );
            store.close().await;
        }
        let store = ReceiptStore::open(&path).await.unwrap();
        assert_eq!(store.count().await.unwrap(), 2);
        let again = signed(me, &key, 1, 5, 99);
        assert_eq!(
            store.insert(&[a, again]).await.unwrap(),
            vec![Stored::AlreadyHeld, Stored::Conflict]
        );
        let listed = store.list(None).await.unwrap();
        assert_eq!(
            listed.iter().map(|h| h.receipt).collect::<Vec<_>>(),
            vec![a, b]
        );
        assert!(store.list(Some(Epoch(4))).await.unwrap().is_empty());
    }
}
