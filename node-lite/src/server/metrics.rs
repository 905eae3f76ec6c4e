//! Counters exposed at `/metrics` in the Prometheus text format.

use std::sync::atomic::{AtomicU64, Ordering};

/// The node's counters. All monotonic except `receipts_held`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Chunk bytes sent to downloaders.
    pub bytes_served: AtomicU64,
    /// Chunks sent to downloaders.
    pub chunks_served: AtomicU64,
    /// Chunk requests refused because the downloader owed receipts.
    pub requests_refused: AtomicU64,
    /// Chunks found corrupt when read for serving.
    pub chunks_corrupt: AtomicU64,
    /// Receipts accepted.
    pub receipts_accepted: AtomicU64,
    /// Receipts rejected.
    pub receipts_rejected: AtomicU64,
    /// Receipts in the database.
    pub receipts_held: AtomicU64,
    /// Gateway requests (`/content/...`).
    pub gateway_requests: AtomicU64,
    /// Content bytes the gateway sent.
    pub gateway_bytes_sent: AtomicU64,
    /// Chunks the gateway fetched from peers.
    pub gateway_chunks_fetched: AtomicU64,
    /// Requests refused because the egress budget was spent.
    pub egress_refused: AtomicU64,
    /// Requests refused because as many downloaders as allowed were being served.
    pub downloaders_refused: AtomicU64,
}

/// Gauges read from the node's state when `/metrics` is rendered.
#[derive(Debug, Default)]
pub struct Gauges {
    /// Downloaders currently refused for owing receipts.
    pub peers_banned: usize,
    /// Bytes sent this UTC day and month.
    pub egress_day_bytes: u64,
    /// Bytes sent this UTC month.
    pub egress_month_bytes: u64,
    /// The budgets (0: none).
    pub egress_day_limit_bytes: u64,
    /// The month's budget (0: none).
    pub egress_month_limit_bytes: u64,
    /// Downloaders being served now.
    pub downloaders_serving: usize,
    /// The disk quota (0: none).
    pub storage_limit_bytes: u64,
    /// The store's size as the quota last measured it (0 before that, or without a quota).
    pub stored_bytes: u64,
}

impl Metrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Renders every metric, with the `gauges` read from the node's state.
    pub fn render(&self, gauges: &Gauges) -> String {
        use dsi_service::prometheus::{Kind, Text};
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut text = Text::new();
        text.single(
            "dsi_node_served_bytes_total",
            Kind::Counter,
            "Chunk bytes sent to downloaders.",
            load(&self.bytes_served),
        )
        .single(
            "dsi_node_chunks_served_total",
            Kind::Counter,
            "Chunks sent to downloaders.",
            load(&self.chunks_served),
        )
        .single(
            "dsi_node_receipts_held",
            Kind::Gauge,
            "Seeding receipts held by this node.",
            load(&self.receipts_held),
        )
        .single(
            "dsi_node_receipts_accepted_total",
            Kind::Counter,
            "Receipts accepted from downloaders.",
            load(&self.receipts_accepted),
        )
        .single(
            "dsi_node_receipts_rejected_total",
            Kind::Counter,
            "Receipts rejected.",
            load(&self.receipts_rejected),
        )
        .single(
            "dsi_node_peers_banned",
            Kind::Gauge,
            "Downloaders currently refused for owing receipts.",
            gauges.peers_banned,
        )
        .single(
            "dsi_node_requests_refused_total",
            Kind::Counter,
            "Chunk requests refused for owed receipts.",
            load(&self.requests_refused),
        )
        .single(
            "dsi_node_chunks_corrupt_total",
            Kind::Counter,
            "Chunks found corrupt on disk and quarantined.",
            load(&self.chunks_corrupt),
        )
        .single(
            "dsi_node_gateway_requests_total",
            Kind::Counter,
            "Gateway requests for content.",
            load(&self.gateway_requests),
        )
        .single(
            "dsi_node_gateway_sent_bytes_total",
            Kind::Counter,
            "Content bytes sent by the gateway.",
            load(&self.gateway_bytes_sent),
        )
        .single(
            "dsi_node_gateway_fetched_chunks_total",
            Kind::Counter,
            "Chunks the gateway fetched from peers.",
            load(&self.gateway_chunks_fetched),
        )
        .single(
            "dsi_node_egress_refused_total",
            Kind::Counter,
            "Requests refused because the egress budget was spent.",
            load(&self.egress_refused),
        )
        .single(
            "dsi_node_downloaders_refused_total",
            Kind::Counter,
            "Requests refused because serve.max_concurrent_downloaders were being served.",
            load(&self.downloaders_refused),
        )
        .single(
            "dsi_node_downloaders_serving",
            Kind::Gauge,
            "Downloaders being served now.",
            gauges.downloaders_serving,
        )
        .single(
            "dsi_node_egress_day_bytes",
            Kind::Gauge,
            "Bytes sent this UTC day.",
            gauges.egress_day_bytes,
        )
        .single(
            "dsi_node_egress_month_bytes",
            Kind::Gauge,
            "Bytes sent this UTC month.",
            gauges.egress_month_bytes,
        )
        .single(
            "dsi_node_egress_day_limit_bytes",
            Kind::Gauge,
            "The egress budget per UTC day (0: none).",
            gauges.egress_day_limit_bytes,
        )
        .single(
            "dsi_node_egress_month_limit_bytes",
            Kind::Gauge,
            "The egress budget per UTC month (0: none).",
            gauges.egress_month_limit_bytes,
        )
        .single(
            "dsi_node_storage_limit_bytes",
            Kind::Gauge,
            "The disk quota storage.max_bytes (0: none).",
            gauges.storage_limit_bytes,
        )
        .single(
            "dsi_node_stored_bytes",
            Kind::Gauge,
            "Chunk bytes stored, as the disk quota last measured them (0: not yet, or no quota).",
            gauges.stored_bytes,
        );
        text.finish()
    }
}

pub use dsi_service::prometheus::sample;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_reads_back() {
        let metrics = Metrics::default();
        Metrics::add(&metrics.bytes_served, 42);
        let text = metrics.render(&Gauges {
            peers_banned: 3,
            ..Gauges::default()
        });
        assert_eq!(sample(&text, "dsi_node_served_bytes_total"), Some(42));
        assert_eq!(sample(&text, "dsi_node_peers_banned"), Some(3));
        assert!(text.contains("# TYPE dsi_node_receipts_held gauge"));
        assert_eq!(
            dsi_service::prometheus::undocumented(&text),
            Vec::<String>::new()
        );
    }
}
