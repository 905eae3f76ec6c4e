//! Paying seeders: a downloader signs one receipt per verified chunk for the seeder that
//! served it ([`Signer`]) and hands it to that seeder's [`Payer`], which delivers receipts in
//! the background: everything queued while a request is in flight goes in the next batch (at
//! most `dsi_api::MAX_RECEIPT_BATCH`), and a failed delivery is retried with backoff before
//! the batch counts as undelivered.
//!
//! The swarm downloader (`get`, `verify --repair`) and the page fetcher of vector indexes
//! and text models (`vectors`) pay through this one module.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dsi_api::downloader::DownloaderHeader;
use dsi_api::{MAX_RECEIPT_BATCH, ReceiptVerdict};
use dsi_protocol::{ChunkId, EpochSchedule, NetworkId, NodeId, Receipt, SecretKey, SignedReceipt};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::download::client::PeerClient;

/// Retries of a failed delivery before its receipts count as undelivered.
const RETRIES: u32 = 4;

/// Signs receipts as this node: stamped with the current epoch and time, a random nonce,
/// for this node's network; and the downloader header of each chunk request.
#[derive(Debug)]
pub struct Signer {
    key: SecretKey,
    network: NetworkId,
    epochs: EpochSchedule,
    /// Issue time of the last chunk request signed: none is earlier than the last, even
    /// if the clock steps back, so a seeder never takes a fresh request for a replay.
    last_request_ms: AtomicU64,
}

impl Signer {
    /// A signer with `key` for `network`, epochs from `epochs`.
    pub fn new(key: SecretKey, network: NetworkId, epochs: EpochSchedule) -> Self {
        Self {
            key,
            network,
            epochs,
            last_request_ms: AtomicU64::new(0),
        }
    }

    /// The signed `x-dsi-downloader` header asking `seeder` for `chunk`, issued now (and
    /// not before any header signed earlier).
    pub fn request_header(&self, seeder: NodeId, chunk: ChunkId) -> DownloaderHeader {
        let now = dsi_protocol::now_ms();
        let issued_at_ms = self
            .last_request_ms
            .fetch_max(now, Ordering::Relaxed)
            .max(now);
        DownloaderHeader::sign(&self.key, &self.network, seeder, chunk, issued_at_ms)
    }

    /// This node's id (the receipts' downloader).
    pub fn node_id(&self) -> NodeId {
        self.key.node_id()
    }

    /// The network receipts are signed for.
    pub fn network(&self) -> &NetworkId {
        &self.network
    }

    /// A receipt for `bytes` bytes of `chunk` served by `seeder`, now.
    pub fn sign(&self, seeder: NodeId, chunk: ChunkId, bytes: u32) -> SignedReceipt {
        let now = dsi_protocol::now_ms();
        let receipt = Receipt {
            epoch: self.epochs.epoch_at(now),
            seeder,
            downloader: self.key.node_id(),
            chunk,
            bytes,
            issued_at_ms: now,
            nonce: rand::random(),
        };
        SignedReceipt::sign(receipt, &self.network, &self.key)
    }
}

/// What paying one seeder came to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Paid {
    /// Receipts handed to the payer.
    pub sent: u64,
    /// Accepted by the seeder.
    pub accepted: u64,
    /// Refused by one of its rules.
    pub rejected: u64,
    /// Could not be delivered (or still in flight when the payer was finished).
    pub undelivered: u64,
}

impl std::ops::AddAssign for Paid {
    fn add_assign(&mut self, other: Self) {
        self.sent += other.sent;
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        self.undelivered += other.undelivered;
    }
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    rejected: AtomicU64,
}

/// Delivers receipts to one seeder from a background task.
#[derive(Debug)]
pub struct Payer {
    queue: Option<mpsc::UnboundedSender<SignedReceipt>>,
    task: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    answered: watch::Receiver<u64>,
    sent: u64,
}

impl Payer {
    /// Starts paying the seeder behind `client`; each delivery attempt may take `timeout`.
    pub fn start(client: PeerClient, timeout: Duration) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        let (answered_tx, answered) = watch::channel(0);
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(deliver(
            client,
            receiver,
            counters.clone(),
            answered_tx,
            timeout,
        ));
        Self {
            queue: Some(queue),
            task: Some(task),
            counters,
            answered,
            sent: 0,
        }
    }

    /// Queues a receipt for delivery. False if the payer has stopped.
    pub fn pay(&mut self, receipt: SignedReceipt) -> bool {
        let queued = self
            .queue
            .as_ref()
            .is_some_and(|queue| queue.send(receipt).is_ok());
        if queued {
            self.sent += 1;
        }
        queued
    }

    /// Waits (at most `limit`) until every receipt queued so far has been answered or given
    /// up on: what a downloader does before asking again a seeder that refused to serve
    /// because receipts were owed. True if everything was answered in time.
    pub async fn settled(&mut self, limit: Duration) -> bool {
        let sent = self.sent;
        tokio::time::timeout(limit, self.answered.wait_for(|n| *n >= sent))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Receipts queued and not yet answered (nor given up on), and a watch that
    /// [`Payer::any_answer`] wakes on when that number falls; None once the payer stopped.
    pub fn unanswered_watch(&self) -> Option<(u64, watch::Receiver<u64>)> {
        let mut watch = self.answered.clone();
        // Marked seen at the value counted, so any later answer wakes it.
        let answered = *watch.borrow_and_update();
        watch.has_changed().ok()?;
        Some((self.sent.saturating_sub(answered), watch))
    }

    /// Returns when any of `watches` ([`Payer::unanswered_watch`]) sees a new answer or
    /// its payer stops; never with none.
    pub async fn any_answer(watches: Vec<watch::Receiver<u64>>) {
        if watches.is_empty() {
            return std::future::pending().await;
        }
        let waits = watches.into_iter().map(|mut watch| {
            Box::pin(async move {
                let _ = watch.changed().await;
            })
        });
        futures_util::future::select_all(waits).await;
    }

    /// Receipts queued and not yet answered (nor given up on).
    pub fn unanswered(&self) -> u64 {
        self.sent.saturating_sub(*self.answered.borrow())
    }

    /// What has been answered so far.
    pub fn paid(&self) -> Paid {
        let accepted = self.counters.accepted.load(Ordering::Relaxed);
        let rejected = self.counters.rejected.load(Ordering::Relaxed);
        Paid {
            sent: self.sent,
            accepted,
            rejected,
            undelivered: self.sent.saturating_sub(accepted + rejected),
        }
    }

    /// Stops taking receipts, lets the queue drain until `deadline`, and reports; what is
    /// still queued then counts as undelivered.
    pub async fn finish(mut self, deadline: tokio::time::Instant) -> Paid {
        self.queue = None;
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout_at(deadline, &mut task).await.is_err()
        {
            tracing::warn!("gave up delivering receipts");
            task.abort();
        }
        self.paid()
    }
}

impl Drop for Payer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The delivery loop of one payer.
async fn deliver(
    client: PeerClient,
    mut queue: mpsc::UnboundedReceiver<SignedReceipt>,
    counters: Arc<Counters>,
    answered: watch::Sender<u64>,
    timeout: Duration,
) {
    let mut done = 0u64;
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_RECEIPT_BATCH {
            match queue.try_recv() {
                Ok(receipt) => batch.push(receipt),
                Err(_) => break,
            }
        }
        let mut attempt = 0u32;
        loop {
            match client.send_receipts(&batch, timeout).await {
                Ok(answer) => {
                    for verdict in &answer.results {
                        match verdict {
                            ReceiptVerdict::Accepted => {
                                counters.accepted.fetch_add(1, Ordering::Relaxed)
                            }
                            ReceiptVerdict::Rejected { code, message } => {
                                tracing::warn!(peer = %client.url(), %code, %message, "receipt rejected");
                                counters.rejected.fetch_add(1, Ordering::Relaxed)
                            }
                            ReceiptVerdict::Unknown => {
                                tracing::warn!(peer = %client.url(), "receipt answered with an unknown status");
                                counters.rejected.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                    break;
                }
                Err(error) if attempt < RETRIES => {
                    attempt += 1;
                    tracing::debug!(peer = %client.url(), %error, attempt, "receipt delivery failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                Err(error) => {
                    // Counted as undelivered: sent but neither accepted nor rejected.
                    tracing::warn!(peer = %client.url(), %error, receipts = batch.len(), "could not deliver receipts");
                    break;
                }
            }
        }
        done += batch.len() as u64;
        answered.send_replace(done);
    }
}
