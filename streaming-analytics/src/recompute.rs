//! Batch recomputation: the same edges, computed from the span documents
//! already stored in `jaeger-span-*`, trace by trace, the way
//! spark-dependencies computes them once a day. Used to check the streaming
//! totals over a range (`spanway-streaming-analytics recompute`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use elasticsearch::{ClearScrollParts, ScrollParts, SearchParts};
use serde_json::{Value, json};
use spanway_search::client::{ClientError, EngineClient};
use spanway_search::config::EngineClientConfig;

use crate::edges::{self, Rules};
use crate::span::{PeerSource, SpanFacts, kind_named, peer_of};

/// Failures of a recomputation.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The client could not be built from its settings.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A request failed.
    #[error("elasticsearch: {0}")]
    Engine(String),
    /// A span document is not in Jaeger's format.
    #[error("span document {id}: {reason}")]
    Document { id: String, reason: String },
}

/// Calls per (parent, child), as Jaeger's dependency links sum them.
pub type Totals = BTreeMap<(String, String), u64>;

fn hex_u128(text: &str) -> Option<u128> {
    if text.is_empty() || text.len() > 32 {
        return None;
    }
    u128::from_str_radix(text, 16).ok()
}

fn hex_u64(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 16 {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}

/// A span document's tags: the nested `tags` list, and the `tag` object
/// that tags stored as fields move to (`span.kind` and `error` always, as
/// Jaeger v2 writes them; more with `tags_as_fields`).
struct DocTags<'a> {
    nested: &'a [Value],
    fields: Option<&'a serde_json::Map<String, Value>>,
    dot_replacement: &'a str,
}

impl<'a> DocTags<'a> {
    fn of(doc: &'a Value, dot_replacement: &'a str) -> Self {
        DocTags {
            nested: doc["tags"].as_array().map(Vec::as_slice).unwrap_or(&[]),
            fields: doc["tag"].as_object(),
            dot_replacement,
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        if let Some(value) = self.nested.iter().find(|t| t["key"] == key) {
            return Some(&value["value"]);
        }
        let fields = self.fields?;
        if key.contains('.') {
            fields.get(&key.replace('.', self.dot_replacement))
        } else {
            fields.get(key)
        }
    }

    fn str(&self, key: &str) -> Option<&'a str> {
        self.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }
}

/// Reads a span document as Jaeger writes it (and the ingester does).
/// `dot_replacement` is what stands for `.` in the names of tags stored as
/// fields (`@` unless the writer was configured otherwise).
pub fn facts_of_document(
    id: &str,
    doc: &Value,
    order: &[PeerSource],
    dot_replacement: &str,
) -> Result<SpanFacts, BatchError> {
    let bad = |reason: &str| BatchError::Document {
        id: id.to_owned(),
        reason: reason.to_owned(),
    };
    let trace_id = doc["traceID"]
        .as_str()
        .and_then(hex_u128)
        .ok_or_else(|| bad("traceID is not 1-32 hex digits"))?;
    let span_id = doc["spanID"]
        .as_str()
        .and_then(hex_u64)
        .ok_or_else(|| bad("spanID is not 1-16 hex digits"))?;
    let parent_id = match doc["references"].as_array().and_then(|r| r.first()) {
        Some(reference) => Some(
            reference["spanID"]
                .as_str()
                .and_then(hex_u64)
                .ok_or_else(|| bad("references[0].spanID is not hex"))?,
        ),
        None => None,
    };
    let tags = DocTags::of(doc, dot_replacement);
    let kind = kind_named(tags.str("span.kind"));
    let error = matches!(tags.get("error"), Some(v) if v == true || v == "true")
        || tags.str("otel.status_code") == Some("ERROR");
    let peer = if kind.calls_out() {
        peer_of(order, |key| tags.str(key))
    } else {
        None
    };
    Ok(SpanFacts {
        trace_id,
        span_id,
        parent_id,
        service: Arc::from(doc["process"]["serviceName"].as_str().unwrap_or("")),
        kind,
        start_micros: doc["startTime"].as_i64().unwrap_or(0),
        duration_micros: doc["duration"].as_u64().unwrap_or(0),
        error,
        peer,
    })
}

/// Sums the edges of `traces` per (client, server).
pub fn totals(traces: impl IntoIterator<Item = Vec<SpanFacts>>, rules: Rules) -> Totals {
    let mut out = Totals::new();
    for spans in traces {
        for edge in edges::edges(&spans, rules) {
            *out.entry((edge.client.to_string(), edge.server.to_string()))
                .or_default() += 1;
        }
    }
    out
}

/// Reads every span document of `index_pattern` that started in
/// `[from_ms, to_ms)` and returns the totals of the traces they make up.
pub async fn recompute(
    connection: &EngineClientConfig,
    index_pattern: &str,
    from_ms: i64,
    to_ms: i64,
    rules: Rules,
    order: &[PeerSource],
    dot_replacement: &str,
) -> Result<Totals, BatchError> {
    let engine = |e: elasticsearch::Error| BatchError::Engine(e.to_string());
    let engine_client = EngineClient::new(connection)?;
    let client = engine_client.client();
    let query = json!({
        "size": 5000,
        "query": {"range": {"startTimeMillis": {"gte": from_ms, "lt": to_ms}}},
        "_source": ["traceID", "spanID", "references", "startTime", "duration", "tags", "tag", "process.serviceName"]
    });
    let mut page: Value = client
        .search(SearchParts::Index(&[index_pattern]))
        .scroll("2m")
        .body(query)
        .request_timeout(Duration::from_secs(60))
        .send()
        .await
        .map_err(engine)?
        .error_for_status_code()
        .map_err(engine)?
        .json()
        .await
        .map_err(engine)?;
    let mut traces: HashMap<u128, Vec<SpanFacts>> = HashMap::new();
    loop {
        let hits = page["hits"]["hits"].as_array().cloned().unwrap_or_default();
        if hits.is_empty() {
            break;
        }
        for hit in &hits {
            let id = hit["_id"].as_str().unwrap_or("?");
            let facts = facts_of_document(id, &hit["_source"], order, dot_replacement)?;
            traces.entry(facts.trace_id).or_default().push(facts);
        }
        let Some(scroll_id) = page["_scroll_id"].as_str().map(str::to_owned) else {
            break;
        };
        page = client
            .scroll(ScrollParts::None)
            .body(json!({"scroll": "2m", "scroll_id": scroll_id}))
            .send()
            .await
            .map_err(engine)?
            .error_for_status_code()
            .map_err(engine)?
            .json()
            .await
            .map_err(engine)?;
    }
    if let Some(scroll_id) = page["_scroll_id"].as_str() {
        // Best effort: an unreleased scroll expires by itself.
        let _ = client
            .clear_scroll(ClearScrollParts::None)
            .body(json!({"scroll_id": [scroll_id]}))
            .send()
            .await;
    }
    // Spans in trace order, as a stable input to the model.
    let mut ordered: Vec<(u128, Vec<SpanFacts>)> = traces.into_iter().collect();
    ordered.sort_by_key(|(id, _)| *id);
    for (_, spans) in &mut ordered {
        spans.sort_by_key(|s| (s.start_micros, s.span_id));
    }
    Ok(totals(ordered.into_iter().map(|(_, spans)| spans), rules))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::{Connection, Kind};

    const ORDER: [PeerSource; 1] = [PeerSource::PeerService];

    #[test]
    fn reads_a_jaeger_span_document() {
        let doc = json!({
            "traceID": "0000000000000000000000000000000a",
            "spanID": "00000000000000bb",
            "references": [{"refType": "CHILD_OF", "traceID": "a", "spanID": "00000000000000aa"}],
            "startTime": 1_700_000_000_000_000i64,
            "duration": 1500,
            "tags": [
                {"key": "span.kind", "type": "string", "value": "client"},
                {"key": "error", "type": "bool", "value": true},
                {"key": "peer.service", "type": "string", "value": "ledger"}
            ],
            "process": {"serviceName": "billing"}
        });
        let facts = facts_of_document("x", &doc, &ORDER, "@").unwrap();
        assert_eq!(facts.trace_id, 10);
        assert_eq!(facts.span_id, 0xbb);
        assert_eq!(facts.parent_id, Some(0xaa));
        assert_eq!(facts.kind, Kind::Client);
        assert!(facts.error);
        assert_eq!(&*facts.service, "billing");
        assert_eq!(facts.peer, Some((Arc::from("ledger"), Connection::Virtual)));
    }

    #[test]
    fn reads_tags_stored_as_fields() {
        // As Jaeger v2 (and the ingester) write them: kind and error as
        // fields, dots replaced; the peer stays nested.
        let doc = json!({
            "traceID": "a",
            "spanID": "b",
            "startTime": 1,
            "tags": [{"key": "peer.service", "type": "string", "value": "ledger"}],
            "tag": {"span@kind": "client", "error": true},
            "process": {"serviceName": "billing"}
        });
        let facts = facts_of_document("x", &doc, &ORDER, "@").unwrap();
        assert_eq!(facts.kind, Kind::Client);
        assert!(facts.error);
        assert_eq!(facts.peer, Some((Arc::from("ledger"), Connection::Virtual)));
        let other = facts_of_document("x", &doc, &ORDER, "_").unwrap();
        assert_eq!(other.kind, Kind::Internal, "another writer's replacement");
    }

    #[test]
    fn bad_ids_name_the_document_and_field() {
        let doc = json!({"traceID": "zz", "spanID": "1"});
        let error = facts_of_document("doc-1", &doc, &ORDER, "@")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("doc-1") && error.contains("traceID"),
            "{error}"
        );
    }
}
