//! Job metrics, and the optional per-edge series with their cardinality cap.

use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use spanway_search::metrics::WriterMetrics;
use spanway_service_kit::metric_set::MetricSet;

use crate::aggregate::BUCKETS_MS;
use crate::edges::Edge;
use crate::span::Connection;
use spanway_schemas::id_hashing::{IdMap, id_map};

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

spanway_service_kit::metric_set! {
    /// Every counter the job keeps.
    pub struct AnalyticsMetrics {
        /// Records read from Kafka.
        records_consumed: Counter => "records_consumed", "Records read from Kafka";
        /// Records that could not be decoded (skipped, logged with their position).
        records_undecodable: Counter => "records_undecodable", "Records that could not be decoded";
        /// Spans read.
        spans_read: Counter => "spans_read", "Spans read";
        /// Spans that could not be analysed (bad ids), skipped and logged.
        spans_unreadable: Counter => "spans_unreadable", "Spans skipped for invalid ids";
        /// Traces analysed after the pairing wait.
        traces_expired: Counter => "traces_expired", "Traces analysed after the pairing wait";
        /// Traces analysed early because the pairing store was full.
        traces_evicted: Counter => "traces_evicted",
            "Traces analysed early because the pairing store was full";
        /// Client and producer spans nobody answered within the pairing wait.
        unpaired_calls: Counter => "unpaired_calls",
            "Client and producer spans nobody answered within the pairing wait";
        /// Spans whose parent did not arrive within the pairing wait.
        orphan_spans: Counter => "orphan_spans",
            "Spans whose parent did not arrive within the pairing wait";
        /// Edges counted.
        edges_counted: Counter => "edges_counted", "Edges counted into windows";
        /// Edges counted past their own window (later than the allowed lateness).
        edges_late: Counter => "edges_late", "Edges counted after their own window was written";
        /// Windows written (one per partition and window).
        windows_written: Counter => "windows_written", "Windows written, per partition";
        /// Documents the engine refused for good (logged with the reason).
        documents_rejected: Counter => "documents_rejected", "Documents the engine refused";
        /// Spans held for pairing.
        spans_held: Gauge => "spans_held", "Spans held for pairing";
        /// Windows open or waiting to be written.
        windows_pending: Gauge => "windows_pending", "Windows open or not yet written";
        /// Times reading paused because writes fell behind.
        pauses: Counter => "pauses", "Times reading paused for the writer";
        /// Records between the consumer's position and the end of each partition.
        lag_records: Family<PartitionLabels, Gauge> => "lag_records",
            "Records behind the end of each partition";
        /// Event-time clock of each partition (latest span start read), seconds since the epoch.
        clock_seconds: Family<PartitionLabels, Gauge> => "clock_seconds",
            "Latest span start read per partition (event time)";
        /// Offsets committed.
        commits: Counter => "commits", "Offset commits sent";
        /// The bulk writer's requests, retries and latency, under the same
        /// names as the ingester's (`analytics_bulk_requests_total`, …).
        writer: WriterMetrics;
    }
}

impl AnalyticsMetrics {
    /// Registers every metric under `analytics_`.
    pub fn register(&self, registry: &mut Registry) {
        self.register_in(registry.sub_registry_with_prefix("analytics"));
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
        // One lookup per edge: a check, then a lookup, hashed and compared
        // both names twice, most of this function's time.
        let at_limit = known.len() >= self.max_edges;
        let key = (edge.client.clone(), edge.server.clone(), edge.connection);
        let handles = match known.entry(key) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(_) if at_limit => {
                self.over_limit.inc();
                return;
            }
            Entry::Vacant(entry) => {
                let labels = EdgeLabels {
                    client: edge.client.to_string(),
                    server: edge.server.to_string(),
                    connection_type: edge.connection.as_str().to_owned(),
                };
                let calls = self.calls.get_or_create(&labels).clone();
                entry.insert(EdgeHandles {
                    labels,
                    calls,
                    errors: None,
                    server_latency: None,
                    client_latency: None,
                })
            }
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
