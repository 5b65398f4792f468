//! What the bulk writer counts. Each process registers these under its own
//! prefix (`ingester_`, `analytics_`), so the names read the same in both.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The bulk writer's counters; clones share them.
#[derive(Debug, Clone)]
pub struct WriterMetrics {
    /// Bulk requests sent, answered or not.
    pub bulk_requests: Counter,
    /// Bulk requests without a usable per-item answer (no connection, a
    /// timeout, a non-2xx status, a body that cannot be read); all their
    /// documents were retried.
    pub bulk_failures: Counter,
    /// Document writes retried after a passing failure.
    pub documents_retried: Counter,
    /// Document writes refused by an index block (write or read-only block,
    /// disk flood stage), counted on each attempt; retried.
    pub documents_blocked: Counter,
    /// Bulk requests the engine refused for want of valid credentials or
    /// write rights; their documents are kept and retried.
    pub auth_failures: Counter,
    /// Duration of bulk requests, answered or failed, in seconds.
    pub bulk_latency: Histogram,
}

impl Default for WriterMetrics {
    fn default() -> Self {
        WriterMetrics {
            bulk_requests: Counter::default(),
            bulk_failures: Counter::default(),
            documents_retried: Counter::default(),
            documents_blocked: Counter::default(),
            auth_failures: Counter::default(),
            // 5 ms to about 20 s.
            bulk_latency: Histogram::new(exponential_buckets(0.005, 2.0, 13)),
        }
    }
}

impl WriterMetrics {
    /// Registers every metric in `registry`, which the caller has already
    /// given its prefix.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "bulk_requests",
            "Bulk requests sent",
            self.bulk_requests.clone(),
        );
        registry.register(
            "bulk_failures",
            "Bulk requests without a usable per-item answer; every document retried",
            self.bulk_failures.clone(),
        );
        registry.register(
            "documents_retried",
            "Document writes retried",
            self.documents_retried.clone(),
        );
        registry.register(
            "documents_blocked",
            "Document writes refused by an index block (write block, read-only, disk flood stage); retried",
            self.documents_blocked.clone(),
        );
        registry.register(
            "bulk_auth_failures",
            "Bulk requests refused for credentials or write rights; documents kept and retried",
            self.auth_failures.clone(),
        );
        registry.register(
            "bulk_latency_seconds",
            "Duration of bulk requests, answered or failed",
            self.bulk_latency.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_callers_prefix() {
        let mut registry = Registry::default();
        let metrics = WriterMetrics::default();
        metrics.register(registry.sub_registry_with_prefix("ingester"));
        metrics.bulk_requests.inc();
        metrics.bulk_latency.observe(0.01);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for name in [
            "ingester_bulk_requests_total 1",
            "ingester_bulk_failures_total 0",
            "ingester_documents_retried_total 0",
            "ingester_documents_blocked_total 0",
            "ingester_bulk_auth_failures_total 0",
            "ingester_bulk_latency_seconds_count 1",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }
}
