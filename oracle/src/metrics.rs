//! Prometheus metrics, kept in atomics and rendered as text.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dsi_api::RejectionCode;
use dsi_api::oracle::{AuditOutcome, EpochStatus};

use crate::rules::RULES;

/// Upper bounds (seconds) of the ingest latency histogram.
const LATENCY_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// The oracle's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    accepted: AtomicU64,
    rejected: Mutex<BTreeMap<RejectionCode, u64>>,
    batches: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_sum_micros: AtomicU64,
    epochs_closed: AtomicU64,
    last_close_millis: AtomicU64,
    close_sum_millis: AtomicU64,
    audits: Mutex<BTreeMap<AuditOutcome, u64>>,
    announcements: AtomicU64,
    submissions: AtomicU64,
}

impl Metrics {
    /// Records one ingested batch.
    pub fn batch(&self, accepted: u64, rejected: &[RejectionCode], latency: Duration) {
        self.accepted.fetch_add(accepted, Ordering::Relaxed);
        if !rejected.is_empty()
            && let Ok(mut map) = self.rejected.lock()
        {
            for code in rejected {
                *map.entry(*code).or_insert(0) += 1;
            }
        }
        self.batches.fetch_add(1, Ordering::Relaxed);
        let seconds = latency.as_secs_f64();
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_sum_micros
            .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
    }

    /// Records a closed epoch.
    pub fn epoch_closed(&self, took: Duration) {
        self.epochs_closed.fetch_add(1, Ordering::Relaxed);
        let millis = took.as_millis() as u64;
        self.last_close_millis.store(millis, Ordering::Relaxed);
        self.close_sum_millis.fetch_add(millis, Ordering::Relaxed);
    }

    /// Records an audit outcome.
    pub fn audit(&self, outcome: AuditOutcome) {
        if let Ok(mut map) = self.audits.lock() {
            *map.entry(outcome).or_insert(0) += 1;
        }
    }

    /// Records an accepted announcement.
    pub fn announced(&self) {
        self.announcements.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a root sent to the chain.
    pub fn submitted(&self) {
        self.submissions.fetch_add(1, Ordering::Relaxed);
    }

    /// Receipts accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Prometheus text. `epochs` is the number of closed epochs per status.
    pub fn render(&self, receipts_held: u64, epochs: &BTreeMap<EpochStatus, u64>) -> String {
        use dsi_service::prometheus::{Kind, Text};
        let mut text = Text::new();
        text.single(
            "dsi_oracle_receipts_accepted_total",
            Kind::Counter,
            "Receipts accepted.",
            self.accepted(),
        );
        let name = "dsi_oracle_receipts_rejected_total";
        text.family(name, Kind::Counter, "Receipts rejected, by rule.");
        let rejected = self.rejected.lock().map(|m| m.clone()).unwrap_or_default();
        for rule in RULES {
            let count = rejected.get(&rule).copied().unwrap_or(0);
            text.sample(name, &[("rule", rule.as_str())], count);
        }
        text.single(
            "dsi_oracle_receipts_held",
            Kind::Gauge,
            "Receipts in the database.",
            receipts_held,
        );
        text.family(
            "dsi_oracle_ingest_seconds",
            Kind::Histogram,
            "Time to ingest one receipt batch.",
        );
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            let count = self.latency_buckets[i].load(Ordering::Relaxed);
            text.sample(
                "dsi_oracle_ingest_seconds_bucket",
                &[("le", &bound.to_string())],
                count,
            );
        }
        let batches = self.batches.load(Ordering::Relaxed);
        let sum = self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        text.sample(
            "dsi_oracle_ingest_seconds_bucket",
            &[("le", "+Inf")],
            batches,
        )
        .sample("dsi_oracle_ingest_seconds_sum", &[], sum)
        .sample("dsi_oracle_ingest_seconds_count", &[], batches);
        text.single(
            "dsi_oracle_epochs_closed_total",
            Kind::Counter,
            "Epochs closed by this process.",
            self.epochs_closed.load(Ordering::Relaxed),
        );
        let last = self.last_close_millis.load(Ordering::Relaxed) as f64 / 1e3;
        text.single(
            "dsi_oracle_epoch_close_seconds",
            Kind::Gauge,
            "Duration of the last epoch close.",
            last,
        );
        let name = "dsi_oracle_audits_total";
        text.family(name, Kind::Counter, "Audit results, by outcome.");
        let audits = self.audits.lock().map(|m| m.clone()).unwrap_or_default();
        for &outcome in AuditOutcome::ALL {
            let count = audits.get(&outcome).copied().unwrap_or(0);
            text.sample(name, &[("outcome", outcome.as_str())], count);
        }
        let name = "dsi_oracle_epochs";
        text.family(
            name,
            Kind::Gauge,
            "Closed epochs by chain submission status.",
        );
        for &status in EpochStatus::ALL.iter().filter(|s| **s != EpochStatus::Open) {
            let count = epochs.get(&status).copied().unwrap_or(0);
            text.sample(name, &[("status", status.as_str())], count);
        }
        text.single(
            "dsi_oracle_announcements_total",
            Kind::Counter,
            "Announcements accepted.",
            self.announcements.load(Ordering::Relaxed),
        );
        text.single(
            "dsi_oracle_chain_submissions_total",
            Kind::Counter,
            "Roots this process sent to the chain.",
            self.submissions.load(Ordering::Relaxed),
        );
        text.finish()
    }
}
