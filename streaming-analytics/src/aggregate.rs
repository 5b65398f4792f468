//! What is kept per edge and window: counts and latency histograms.
//!
//! Histograms have fixed buckets so that aggregates from several partitions
//! or windows can be added bucket by bucket, and percentiles derived from
//! them are a pure function of the counts (the same input always yields the
//! same document).

use std::collections::HashMap;
use std::sync::Arc;

use spanway_schemas::id_hashing::IdHashing;

use crate::edges::Edge;
use crate::span::Connection;

/// Upper bounds of the latency buckets, in milliseconds; a last, open
/// bucket catches everything slower. From 1 ms to 15 s, as service-graph
/// tools use.
pub const BUCKETS_MS: [f64; 15] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1_000.0, 2_000.0, 5_000.0, 10_000.0,
    15_000.0, 30_000.0,
];

/// A latency histogram over [`BUCKETS_MS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Counts per bucket; the last entry is the open bucket.
    pub counts: [u64; BUCKETS_MS.len() + 1],
    /// Sum of the observations, µs.
    pub sum_micros: u64,
}

impl Histogram {
    /// Adds one observation.
    pub fn observe(&mut self, micros: u64) {
        let ms = micros as f64 / 1000.0;
        let bucket = BUCKETS_MS
            .iter()
            .position(|bound| ms <= *bound)
            .unwrap_or(BUCKETS_MS.len());
        self.counts[bucket] += 1;
        self.sum_micros = self.sum_micros.saturating_add(micros);
    }

    /// Observations counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `q` quantile in milliseconds, interpolated linearly inside its
    /// bucket; `None` without observations. The open bucket reports its
    /// lower bound.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let mut below = 0u64;
        for (i, count) in self.counts.iter().enumerate() {
            let through = below + count;
            if *count > 0 && through as f64 >= rank {
                let lower = if i == 0 { 0.0 } else { BUCKETS_MS[i - 1] };
                let Some(upper) = BUCKETS_MS.get(i) else {
                    return Some(lower);
                };
                let fraction = (rank - below as f64) / *count as f64;
                return Some(lower + (upper - lower) * fraction.clamp(0.0, 1.0));
            }
            below = through;
        }
        BUCKETS_MS.last().copied()
    }
}

/// Identifies an edge within a window.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdgeKey {
    /// Calling node.
    pub client: Arc<str>,
    /// Called node.
    pub server: Arc<str>,
    /// Connection type.
    pub connection: Connection,
}

/// Counts of one edge in one window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgeStats {
    /// Calls.
    pub calls: u64,
    /// Calls where either side reported an error.
    pub errors: u64,
    /// Calls counted in this window although they started in an earlier,
    /// already written one (later than the allowed lateness).
    pub late: u64,
    /// Durations measured by the caller.
    pub client_latency: Histogram,
    /// Durations measured by the callee.
    pub server_latency: Histogram,
}

/// Every edge of one window. A hash map, with the job's keyed hash: a
/// sorted map compared names about eight times per call counted, where
/// this hashes them once; the window's documents are sorted instead
/// ([`crate::documents::window_documents`]), so they still come out in a
/// stable order.
pub type WindowEdges = HashMap<EdgeKey, EdgeStats, IdHashing>;

/// Adds `edge` to `edges`; `late` marks a call counted past its own window.
pub fn add(edges: &mut WindowEdges, edge: &Edge, late: bool) {
    let key = EdgeKey {
        client: edge.client.clone(),
        server: edge.server.clone(),
        connection: edge.connection,
    };
    let stats = edges.entry(key).or_default();
    stats.calls += 1;
    stats.errors += u64::from(edge.error);
    stats.late += u64::from(late);
    if let Some(micros) = edge.client_micros {
        stats.client_latency.observe(micros);
    }
    if let Some(micros) = edge.server_micros {
        stats.server_latency.observe(micros);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_inclusive_upper_bounds() {
        let mut h = Histogram::default();
        h.observe(1_000); // exactly 1 ms
        h.observe(1_001);
        h.observe(60_000_000); // a minute: open bucket
        assert_eq!(h.counts[0], 1);
        assert_eq!(h.counts[1], 1);
        assert_eq!(h.counts[BUCKETS_MS.len()], 1);
        assert_eq!(h.total(), 3);
        assert_eq!(h.sum_micros, 60_002_001);
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let mut h = Histogram::default();
        for _ in 0..100 {
            h.observe(15_000); // 15 ms: bucket (10, 20]
        }
        assert_eq!(h.quantile_ms(0.5), Some(15.0));
        assert_eq!(h.quantile_ms(1.0), Some(20.0));
        assert_eq!(Histogram::default().quantile_ms(0.5), None);
        let mut open = Histogram::default();
        open.observe(100_000_000);
        assert_eq!(open.quantile_ms(0.99), Some(30_000.0));
    }

    #[test]
    fn p99_finds_the_slow_tail() {
        let mut h = Histogram::default();
        for _ in 0..98 {
            h.observe(500);
        }
        h.observe(900_000);
        h.observe(900_000);
        assert!(h.quantile_ms(0.5).unwrap() <= 1.0);
        let p99 = h.quantile_ms(0.99).unwrap();
        assert!((500.0..=1_000.0).contains(&p99), "{p99}");
    }
}
