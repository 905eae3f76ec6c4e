//! Counters exposed at `/metrics` in the Prometheus text format.

use std::fmt::Write;
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
}

impl Metrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Renders every metric; `peers_banned` is the number of downloaders currently refused.
    pub fn render(&self, peers_banned: usize) -> String {
        let rows: [(&str, &str, &str, u64); 11] = [
            (
                "dsi_node_bytes_served_total",
                "counter",
                "Chunk bytes sent to downloaders.",
                self.bytes_served.load(Ordering::Relaxed),
            ),
            (
                "dsi_node_chunks_served_total",
                "counter",
                "Chunks sent to downloaders.",
                self.chunks_served.load(Ordering::Relaxed),
            ),
            (
                "dsi_node_receipts_held",
                "gauge",
                "Seeding receipts held by this node.",
                self.receipts_held.load(Ordering::Relaxed),
            ),
            (
                "dsi_node_receipts_accepted_total",
                "counter",
                "Receipts accepted from downloaders.",
                self.receipts_accepted.load(Ordering::Relaxed),
            ),
            (
                "dsi_node_receipts_rejected_total",
                "counter",
                "Receipts rejected.",
                self.receipts_rejected.load(Ordering::Relaxed),
            ),
            (
                "dsi_node_peers_banned",
                "gauge",
                "Downloaders currently refused for owing receipts.",
                peers_banned as u64,
            ),
            (
                "dsi_node_requests_refused_total",
                "counter",
                "Chunk requests refused for owed receipts.",
                self.requests_refused.load(Ordering::Relaxed),
            ),
            (
                "dsi_node_chunks_corrupt_total",
                "counter",
                "Chunks found corrupt on disk and quarantined.",
                self.chunks_corrupt.load(Ordering::Relaxed),
            ),
            (
                "dsi_node_gateway_requests_total",
                "counter",
                "Gateway requests for content.",
                self.gateway_requests.load(Ordering::Relaxed),
            ),
            (
                "dsi_node_gateway_sent_bytes_total",
                "counter",
                "Content bytes sent by the gateway.",
                self.gateway_bytes_sent.load(Ordering::Relaxed),
            ),
            (
                "dsi_node_gateway_fetched_chunks_total",
                "counter",
                "Chunks the gateway fetched from peers.",
                self.gateway_chunks_fetched.load(Ordering::Relaxed),
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in rows {
            // Writing to a String cannot fail.
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        out
    }
}

/// Reads one sample from Prometheus text (for tests and tools).
pub fn sample(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_reads_back() {
        let metrics = Metrics::default();
        Metrics::add(&metrics.bytes_served, 42);
        let text = metrics.render(3);
        assert_eq!(sample(&text, "dsi_node_bytes_served_total"), Some(42));
        assert_eq!(sample(&text, "dsi_node_peers_banned"), Some(3));
        assert!(text.contains("# TYPE dsi_node_receipts_held gauge"));
    }
}
