//! The documents a closed window becomes, and their index templates.
//!
//! Each partition writes its own share of a window: one service-graph
//! document per window, edge and partition. Ids are derived from the
//! window, the edge and the partition only, so rewriting a window after a
//! replay replaces the same documents, and instances that share the
//! partitions never write over each other. Kibana sums `calls` and `errors`
//! over every document in the range it is asked for, so totals over any
//! range are exact. Jaeger's dependency documents are summed from these,
//! one per period ([`crate::rollup`]).

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use spanway_search::document::{Document, DocumentKind};
use spanway_search::index::{self, DateSeparator, Family, Prefix};
use spanway_search::templates;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::aggregate::{BUCKETS_MS, Histogram};
use crate::pairing::ClosedWindow;

/// The value of `source` in Jaeger dependency links written here.
pub const LINK_SOURCE: &str = "spanway";

/// Index naming: Jaeger's dependency indices and the service-graph indices.
#[derive(Debug, Clone)]
pub struct Indices {
    prefix: Prefix,
    service_graph: String,
}

impl Indices {
    /// `prefix` as Jaeger takes it (`prod` → `prod-jaeger-dependencies-…`);
    /// `service_graph` is the base name of the service-graph indices.
    pub fn new(prefix: &str, service_graph: &str) -> Self {
        Indices {
            prefix: Prefix::new(prefix),
            service_graph: service_graph.to_owned(),
        }
    }

    /// Jaeger's dependency indices with `separator` between the date's
    /// parts (Jaeger's `--es.index-date-separator`); the service-graph
    /// indices keep `-`.
    pub fn with_date_separator(self, separator: DateSeparator) -> Self {
        Indices {
            prefix: self.prefix.with_date_separator(separator),
            ..self
        }
    }

    /// Jaeger's daily dependency index for a window starting at `micros`.
    pub fn dependencies(&self, micros: i64) -> String {
        self.prefix.daily(Family::Dependencies, micros)
    }

    /// The daily service-graph index for a window starting at `micros`.
    pub fn service_graph(&self, micros: i64) -> String {
        index::daily(&self.service_graph, micros)
    }

    /// Legacy template bodies, by template name.
    pub fn templates(&self, shards: u32, replicas: u32) -> Vec<(String, Value)> {
        let settings =
            json!({"index.number_of_shards": shards, "index.number_of_replicas": replicas});
        let keyword = json!({"type": "keyword", "ignore_above": 256});
        let latency = json!({"properties": {
            "p50": {"type": "double"}, "p95": {"type": "double"}, "p99": {"type": "double"},
            "count": {"type": "long"}, "sum": {"type": "double"}
        }});
        let buckets = json!({"properties": {"le": {"type": "double"}, "counts": {"type": "long"}}});
        vec![
            (
                self.prefix.base(Family::Dependencies),
                templates::dependencies_template(&self.prefix, shards, replicas),
            ),
            (
                self.service_graph.clone(),
                json!({
                    "index_patterns": [index::pattern(&self.service_graph)],
                    "settings": settings,
                    "mappings": {"dynamic": false, "properties": {
                        "@timestamp": {"type": "date"},
                        "window_end": {"type": "date"},
                        "client": keyword, "server": keyword, "connection_type": keyword,
                        "calls": {"type": "long"}, "errors": {"type": "long"},
                        "late_calls": {"type": "long"},
                        "client_latency_ms": latency, "server_latency_ms": latency,
                        "client_latency_buckets": buckets, "server_latency_buckets": buckets,
                        "source_topic": keyword, "source_partition": {"type": "integer"}
                    }}
                }),
            ),
        ]
    }
}

fn datetime(micros: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(crate) fn rfc3339(micros: i64) -> String {
    datetime(micros)
        .format(&Rfc3339)
        .unwrap_or_else(|_| micros.to_string())
}

pub(crate) fn digest(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hasher.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn latency(h: &Histogram) -> Value {
    json!({
        "p50": h.quantile_ms(0.5),
        "p95": h.quantile_ms(0.95),
        "p99": h.quantile_ms(0.99),
        "count": h.total(),
        "sum": h.sum_micros as f64 / 1000.0,
    })
}

fn buckets(h: &Histogram) -> Value {
    json!({"le": BUCKETS_MS, "counts": h.counts})
}

fn to_bytes(value: &Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

/// The documents of one window of `topic`/`partition`, in the order of
/// their edges' keys.
pub fn window_documents(
    indices: &Indices,
    topic: &str,
    partition: i32,
    window: &ClosedWindow,
    window_micros: i64,
) -> Vec<Document> {
    let start = window.start_micros;
    let partition_text = partition.to_string();
    let start_text = start.to_string();
    let mut edges: Vec<_> = window.edges.iter().collect();
    edges.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut docs = Vec::with_capacity(edges.len());
    for (key, stats) in edges {
        docs.push(Document {
            kind: DocumentKind::Aggregate,
            index: indices.service_graph(start),
            id: digest(&[
                "edge",
                &start_text,
                &key.client,
                &key.server,
                key.connection.as_str(),
                topic,
                &partition_text,
            ]),
            source: to_bytes(&json!({
                "@timestamp": rfc3339(start),
                "window_end": rfc3339(start.saturating_add(window_micros)),
                "client": &*key.client,
                "server": &*key.server,
                "connection_type": key.connection.as_str(),
                "calls": stats.calls,
                "errors": stats.errors,
                "late_calls": stats.late,
                "client_latency_ms": latency(&stats.client_latency),
                "server_latency_ms": latency(&stats.server_latency),
                "client_latency_buckets": buckets(&stats.client_latency),
                "server_latency_buckets": buckets(&stats.server_latency),
                "source_topic": topic,
                "source_partition": partition,
            })),
        });
    }
    docs
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::aggregate::{self, WindowEdges};
    use crate::edges::Edge;
    use crate::span::Connection;

    fn window() -> ClosedWindow {
        let mut edges = WindowEdges::default();
        let edge = Edge {
            client: Arc::from("frontend"),
            server: Arc::from("cart"),
            connection: Connection::Direct,
            time_micros: 0,
            error: true,
            client_micros: Some(3_000),
            server_micros: Some(2_000),
        };
        aggregate::add(&mut edges, &edge, false);
        aggregate::add(&mut edges, &edge, true);
        ClosedWindow {
            // 2026-11-26T01:02:00Z
            start_micros: 1_795_654_920_000_000,
            edges,
        }
    }

    #[test]
    fn service_graph_document_counts_errors_late_calls_and_latency() {
        let indices = Indices::new("", "graph");
        let docs = window_documents(&indices, "jaeger-spans", 3, &window(), 60_000_000);
        assert_eq!(docs.len(), 1, "one document per edge");
        assert_eq!(docs[0].index, "graph-2026-11-26");
        assert_eq!(docs[0].kind, DocumentKind::Aggregate);
        let source: Value = serde_json::from_slice(&docs[0].source).unwrap();
        assert_eq!(source["calls"], 2);
        assert_eq!(source["errors"], 2);
        assert_eq!(source["late_calls"], 1);
        assert_eq!(source["window_end"], "2026-11-26T01:03:00Z");
        assert_eq!(source["client_latency_ms"]["count"], 2);
        assert_eq!(source["server_latency_ms"]["p50"], 1.5);
        assert_eq!(source["source_partition"], 3);
    }

    #[test]
    fn ids_depend_on_window_edge_and_partition_only() {
        let indices = Indices::new("", "graph");
        let a = window_documents(&indices, "t", 0, &window(), 60_000_000);
        let again = window_documents(&indices, "t", 0, &window(), 60_000_000);
        let other_partition = window_documents(&indices, "t", 1, &window(), 60_000_000);
        assert_eq!(a, again);
        assert_ne!(a[0].id, other_partition[0].id);
    }

    #[test]
    fn documents_come_out_in_edge_order_whatever_the_map_holds() {
        // Two maps with the same edges added in opposite orders, each with
        // its own hash keys: the same documents in the same order.
        let edge = |client: &str, server: &str| Edge {
            client: Arc::from(client),
            server: Arc::from(server),
            connection: Connection::Direct,
            time_micros: 0,
            error: false,
            client_micros: Some(1_000),
            server_micros: None,
        };
        let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
        let edges: Vec<Edge> = names
            .iter()
            .flat_map(|client| names.iter().map(|server| edge(client, server)))
            .collect();
        let window_of = |edges: &mut dyn Iterator<Item = &Edge>| {
            let mut map = WindowEdges::default();
            for edge in edges {
                aggregate::add(&mut map, edge, false);
            }
            ClosedWindow {
                start_micros: 0,
                edges: map,
            }
        };
        let indices = Indices::new("", "graph");
        let forward = window_of(&mut edges.iter());
        let backward = window_of(&mut edges.iter().rev());
        let docs = window_documents(&indices, "t", 0, &forward, 60_000_000);
        assert_eq!(
            docs,
            window_documents(&indices, "t", 0, &backward, 60_000_000)
        );
        let pairs: Vec<(String, String)> = docs
            .iter()
            .map(|doc| {
                let source: Value = serde_json::from_slice(&doc.source).unwrap();
                let name = |field: &str| source[field].as_str().unwrap().to_owned();
                (name("client"), name("server"))
            })
            .collect();
        let mut sorted = pairs.clone();
        sorted.sort();
        assert_eq!(pairs.len(), 64);
        assert_eq!(pairs, sorted);
    }

    #[test]
    fn templates_cover_both_index_families() {
        let indices = Indices::new("prod", "graph");
        let names: Vec<String> = indices
            .templates(1, 0)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["prod-jaeger-dependencies", "graph"]);
    }
}
