//! What the bulk writer counts. Each process registers these under its own
//! prefix (`ingester_`, `analytics_`), so the names read the same in both.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

spanway_service_kit::metric_set! {
    /// The bulk writer's counters; clones share them.
    pub struct WriterMetrics {
        /// Bulk requests sent, answered or not.
        bulk_requests: Counter => "bulk_requests", "Bulk requests sent";
        /// Bulk requests without a usable per-item answer (no connection, a
        /// timeout, a non-2xx status, a body that cannot be read); all their
        /// documents were retried.
        bulk_failures: Counter => "bulk_failures",
            "Bulk requests without a usable per-item answer; every document retried";
        /// Bytes of bulk request bodies as sent, after compression when
        /// `elasticsearch.compression` is set; retries count again.
        bulk_request_bytes: Counter => "bulk_request_bytes",
            "Bytes of bulk request bodies as sent, after compression";
        /// Span documents the engine already held (409 on `create`): a
        /// span delivered again, after a crash, a takeover past the drain
        /// timeout, a request sent again, or a producer's duplicate, and
        /// stored once. With `span_ids = "engine"` such a span would have
        /// been stored twice.
        spans_already_stored: Counter => "spans_already_stored",
            "Span documents the engine already held (409 on create): a span delivered again, stored once";
        /// Document writes retried after a passing failure.
        documents_retried: Counter => "documents_retried", "Document writes retried";
        /// Document writes refused by an index block (write or read-only block,
        /// disk flood stage), counted on each attempt; retried.
        documents_blocked: Counter => "documents_blocked",
            "Document writes refused by an index block (write block, read-only, disk flood stage); retried";
        /// Bulk requests the engine refused for want of valid credentials or
        /// write rights; their documents are kept and retried.
        auth_failures: Counter => "bulk_auth_failures",
            "Bulk requests refused for credentials or write rights; documents kept and retried";
        /// Duration of bulk requests, answered or failed, in seconds (5 ms
        /// to about 20 s).
        bulk_latency: Histogram = Histogram::new(exponential_buckets(0.005, 2.0, 13))
            => "bulk_latency_seconds", "Duration of bulk requests, answered or failed";
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;
    use spanway_service_kit::metric_set::MetricSet;

    use super::*;

    #[test]
    fn names_carry_the_callers_prefix() {
        let mut registry = Registry::default();
        let metrics = WriterMetrics::default();
        metrics.register_in(registry.sub_registry_with_prefix("ingester"));
        metrics.bulk_requests.inc();
        metrics.bulk_latency.observe(0.01);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for name in [
            "ingester_bulk_requests_total 1",
            "ingester_bulk_failures_total 0",
            "ingester_bulk_request_bytes_total 0",
            "ingester_documents_retried_total 0",
            "ingester_spans_already_stored_total 0",
            "ingester_documents_blocked_total 0",
            "ingester_bulk_auth_failures_total 0",
            "ingester_bulk_latency_seconds_count 1",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }
}
