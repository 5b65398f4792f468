//! Job metrics, and the optional per-edge series with their cardinality cap.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use spanway_search::metrics::WriterMetrics;

use crate::aggregate::BUCKETS_MS;
use crate::edges::Edge;
use crate::ids::{IdMap, id_map};
use crate::span::Connection;

use spanway_kafka::group::PartitionLabels;

/// Labels of an edge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EdgeLabels {
    /// Calling node.
    pub client: String,
    /// Called node.
    pub server: String,
    /// `direct`, `database`, `messaging` or `virtual`.
    pub connection_type: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS_MS.iter().map(|ms| ms / 1000.0))
}

/// Every counter the job keeps.
#[derive(Debug, Clone, Default)]
pub struct AnalyticsMetrics {
    /// Records read from Kafka.
    pub records_consumed: Counter,
    /// Records that could not be decoded (skipped, logged with their position).
    pub records_undecodable: Counter,
    /// Spans read.
    pub spans_read: Counter,
    /// Spans that could not be analysed (bad ids), skipped and logged.
    pub spans_unreadable: Counter,
    /// Traces analysed after the pairing wait.
    pub traces_expired: Counter,
    /// Traces analysed early because the pairing store was full.
    pub traces_evicted: Counter,
    /// Client and producer spans nobody answered within the pairing wait.
    pub unpaired_calls: Counter,
    /// Spans whose parent did not arrive within the pairing wait.
    pub orphan_spans: Counter,
    /// Edges counted.
    pub edges_counted: Counter,
    /// Edges counted past their own window (later than the allowed lateness).
    pub edges_late: Counter,
    /// Windows written (one per partition and window).
    pub windows_written: Counter,
    /// Documents the engine refused for good (logged with the reason).
    pub documents_rejected: Counter,
    /// Spans held for pairing.
    pub spans_held: Gauge,
    /// Windows open or waiting to be written.
    pub windows_pending: Gauge,
    /// Times reading paused because writes fell behind.
    pub pauses: Counter,
    /// Records between the consumer's position and the end of each partition.
    pub lag_records: Family<PartitionLabels, Gauge>,
    /// Event-time clock of each partition (latest span start read), seconds since the epoch.
    pub clock_seconds: Family<PartitionLabels, Gauge>,
    /// Offsets committed.
    pub commits: Counter,
    /// The bulk writer's requests, retries and latency, under the same
    /// names as the ingester's (`analytics_bulk_requests_total`, …).
    pub writer: WriterMetrics,
}

impl AnalyticsMetrics {
    /// Registers every metric under `analytics_`.
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("analytics");
        let counters: [(&str, &str, &Counter); 13] = [
            (
                "unpaired_calls",
                "Client and producer spans nobody answered within the pairing wait",
                &self.unpaired_calls,
            ),
            (
                "orphan_spans",
                "Spans whose parent did not arrive within the pairing wait",
                &self.orphan_spans,
            ),
            (
                "records_consumed",
                "Records read from Kafka",
                &self.records_consumed,
            ),
            (
                "records_undecodable",
                "Records that could not be decoded",
                &self.records_undecodable,
            ),
            ("spans_read", "Spans read", &self.spans_read),
            (
                "spans_unreadable",
                "Spans skipped for invalid ids",
                &self.spans_unreadable,
            ),
            (
                "traces_expired",
                "Traces analysed after the pairing wait",
                &self.traces_expired,
            ),
            (
                "traces_evicted",
                "Traces analysed early because the pairing store was full",
                &self.traces_evicted,
            ),
            (
                "edges_counted",
                "Edges counted into windows",
                &self.edges_counted,
            ),
            (
                "edges_late",
                "Edges counted after their own window was written",
                &self.edges_late,
            ),
            (
                "windows_written",
                "Windows written, per partition",
                &self.windows_written,
            ),
            (
                "documents_rejected",
                "Documents the engine refused",
                &self.documents_rejected,
            ),
            (
                "pauses",
                "Times reading paused for the writer",
                &self.pauses,
            ),
        ];
        for (name, help, counter) in counters {
            sub.register(name, help, counter.clone());
        }
        sub.register("commits", "Offset commits sent", self.commits.clone());
        sub.register(
            "spans_held",
            "Spans held for pairing",
            self.spans_held.clone(),
        );
        sub.register(
            "windows_pending",
            "Windows open or not yet written",
            self.windows_pending.clone(),
        );
        sub.register(
            "lag_records",
            "Records behind the end of each partition",
            self.lag_records.clone(),
        );
        sub.register(
            "clock_seconds",
            "Latest span start read per partition (event time)",
            self.clock_seconds.clone(),
        );
        self.writer.register(sub);
    }
}

/// The aggregates as Prometheus series, for at most `max_edges` distinct edges.
#[derive(Debug, Clone)]
pub struct EdgeSeries {
    calls: Family<EdgeLabels, Counter>,
    errors: Family<EdgeLabels, Counter>,
    server_latency: Family<EdgeLabels, Histogram>,
    client_latency: Family<EdgeLabels, Histogram>,
    over_limit: Counter,
    known: Arc<Mutex<IdMap<EdgeKey, EdgeHandles>>>,
    max_edges: usize,
}

/// An edge as [`Edge`] names it, so that finding its series needs no new
/// label strings.
type EdgeKey = (Arc<str>, Arc<str>, Connection);

/// One edge's series, taken from the families once: a family lookup hashes
/// the three label strings and takes a lock, four times per edge. A
/// series a family has not created yet (no error, no latency so far) is
/// created on first use, so `/metrics` shows the same series as before.
#[derive(Debug)]
struct EdgeHandles {
    labels: EdgeLabels,
    calls: Counter,
    errors: Option<Counter>,
    server_latency: Option<Histogram>,
    client_latency: Option<Histogram>,
}

impl EdgeSeries {
    /// Series registered under `analytics_edge_`.
    pub fn new(registry: &mut Registry, max_edges: usize) -> Self {
        let series = EdgeSeries {
            calls: Family::default(),
            errors: Family::default(),
            server_latency: Family::new_with_constructor(latency_histogram),
            client_latency: Family::new_with_constructor(latency_histogram),
            over_limit: Counter::default(),
            known: Arc::new(Mutex::new(id_map())),
            max_edges,
        };
        let sub = registry.sub_registry_with_prefix("analytics_edge");
        sub.register(
            "calls",
            "Calls per edge (recounted on replay)",
            series.calls.clone(),
        );
        sub.register("errors", "Failed calls per edge", series.errors.clone());
        sub.register(
            "server_latency_seconds",
            "Duration measured by the called side",
            series.server_latency.clone(),
        );
        sub.register(
            "client_latency_seconds",
            "Duration measured by the calling side",
            series.client_latency.clone(),
        );
        sub.register(
            "over_limit",
            "Edges not given series because edge_metrics.max_edges was reached",
            series.over_limit.clone(),
        );
        series
    }

    /// Counts one edge, unless it would be one distinct edge too many.
    pub fn observe(&self, edge: &Edge) {
        let Ok(mut known) = self.known.lock() else {
            return;
        };
        let key = (edge.client.clone(), edge.server.clone(), edge.connection);
        if !known.contains_key(&key) {
            if known.len() >= self.max_edges {
                self.over_limit.inc();
                return;
            }
            let labels = EdgeLabels {
                client: edge.client.to_string(),
                server: edge.server.to_string(),
                connection_type: edge.connection.as_str().to_owned(),
            };
            let calls = self.calls.get_or_create(&labels).clone();
            known.insert(
                key.clone(),
                EdgeHandles {
                    labels,
                    calls,
                    errors: None,
                    server_latency: None,
                    client_latency: None,
                },
            );
        }
        let Some(handles) = known.get_mut(&key) else {
            return;
        };
        handles.calls.inc();
        if edge.error {
            handles
                .errors
                .get_or_insert_with(|| self.errors.get_or_create(&handles.labels).clone())
                .inc();
        }
        if let Some(micros) = edge.server_micros {
            handles
                .server_latency
                .get_or_insert_with(|| self.server_latency.get_or_create(&handles.labels).clone())
                .observe(micros as f64 / 1e6);
        }
        if let Some(micros) = edge.client_micros {
            handles
                .client_latency
                .get_or_insert_with(|| self.client_latency.get_or_create(&handles.labels).clone())
                .observe(micros as f64 / 1e6);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn edge(server: &str) -> Edge {
        Edge {
            client: Arc::from("a"),
            server: Arc::from(server),
            connection: Connection::Direct,
            time_micros: 0,
            error: false,
            client_micros: None,
            server_micros: Some(1_000),
        }
    }

    #[test]
    fn distinct_edges_are_capped_and_the_rest_counted() {
        let mut registry = Registry::default();
        let series = EdgeSeries::new(&mut registry, 2);
        for server in ["b", "c", "b", "d", "e"] {
            series.observe(&edge(server));
        }
        assert_eq!(series.over_limit.get(), 2);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(
                r#"analytics_edge_calls_total{client="a",server="b",connection_type="direct"} 2"#
            ),
            "{text}"
        );
        assert!(!text.contains(r#"server="d""#));
        // No error and no client-side duration yet: those series do not exist.
        assert!(!text.contains("analytics_edge_errors_total{"), "{text}");
        assert!(!text.contains("analytics_edge_client_latency_seconds_count{"));
        assert!(text.contains(
            r#"analytics_edge_server_latency_seconds_count{client="a",server="b",connection_type="direct"} 2"#
        ));
    }

    #[test]
    fn a_known_edge_gains_its_error_and_latency_series_on_first_use() {
        let mut registry = Registry::default();
        let series = EdgeSeries::new(&mut registry, 10);
        series.observe(&edge("b"));
        let mut failing = edge("b");
        failing.error = true;
        failing.client_micros = Some(3_000);
        series.observe(&failing);
        series.observe(&failing);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let labels = r#"{client="a",server="b",connection_type="direct"}"#;
        for line in [
            format!("analytics_edge_calls_total{labels} 3"),
            format!("analytics_edge_errors_total{labels} 2"),
            format!("analytics_edge_client_latency_seconds_count{labels} 2"),
            format!("analytics_edge_server_latency_seconds_count{labels} 3"),
        ] {
            assert!(text.contains(&line), "{line} not in {text}");
        }
    }
}
