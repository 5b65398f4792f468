//! Index templates for the span and service indices.
//!
//! The mappings are Jaeger's: keyword ids and names, `startTime` as a long in
//! microseconds, `startTimeMillis` as an `epoch_millis` date for range
//! queries, and nested `tags`, `process.tags`, `logs.fields` and
//! `references`, which Jaeger query searches with nested queries. This
//! version installs legacy `_template`s, which OpenSearch 1–3 and
//! Elasticsearch 7 read.

use serde_json::{Value, json};

fn keyword() -> Value {
    json!({"type": "keyword", "ignore_above": 256})
}

fn key_values() -> Value {
    json!({
        "type": "nested",
        "dynamic": false,
        "properties": {"key": keyword(), "value": keyword(), "type": keyword()}
    })
}

fn dynamic_templates() -> Value {
    json!([
        {"span_tags_map": {"mapping": keyword(), "path_match": "tag.*"}},
        {"process_tags_map": {"mapping": keyword(), "path_match": "process.tag.*"}}
    ])
}

fn settings(shards: u32, replicas: u32) -> Value {
    json!({
        "index.number_of_shards": shards,
        "index.number_of_replicas": replicas,
        "index.mapping.nested_fields.limit": 50,
        "index.requests.cache.enable": true
    })
}

/// The legacy template for `<prefix>jaeger-span-*`.
pub fn span_template(prefix: &str, shards: u32, replicas: u32) -> Value {
    json!({
        "index_patterns": [format!("{prefix}jaeger-span-*")],
        "settings": settings(shards, replicas),
        "mappings": {
            "dynamic_templates": dynamic_templates(),
            "properties": {
                "traceID": keyword(),
                "parentSpanID": keyword(),
                "spanID": keyword(),
                "operationName": keyword(),
                "startTime": {"type": "long"},
                "startTimeMillis": {"type": "date", "format": "epoch_millis"},
                "duration": {"type": "long"},
                "flags": {"type": "integer"},
                "logs": {
                    "type": "nested",
                    "dynamic": false,
                    "properties": {"timestamp": {"type": "long"}, "fields": key_values()}
                },
                "process": {
                    "properties": {
                        "serviceName": keyword(),
                        "tag": {"type": "object"},
                        "tags": key_values()
                    }
                },
                "references": {
                    "type": "nested",
                    "dynamic": false,
                    "properties": {"refType": keyword(), "traceID": keyword(), "spanID": keyword()}
                },
                "tag": {"type": "object"},
                "tags": key_values()
            }
        }
    })
}

/// The legacy template for `<prefix>jaeger-service-*`.
pub fn service_template(prefix: &str, shards: u32, replicas: u32) -> Value {
    json!({
        "index_patterns": [format!("{prefix}jaeger-service-*")],
        "settings": settings(shards, replicas),
        "mappings": {
            "dynamic_templates": dynamic_templates(),
            "properties": {"serviceName": keyword(), "operationName": keyword()}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_reaches_patterns_and_nested_fields_are_nested() {
        let t = span_template("prod-", 3, 0);
        assert_eq!(t["index_patterns"][0], "prod-jaeger-span-*");
        assert_eq!(t["settings"]["index.number_of_shards"], 3);
        for path in ["tags", "logs", "references"] {
            assert_eq!(
                t["mappings"]["properties"][path]["type"], "nested",
                "{path}"
            );
        }
        assert_eq!(
            t["mappings"]["properties"]["process"]["properties"]["tags"]["type"],
            "nested"
        );
        assert_eq!(
            service_template("", 1, 1)["index_patterns"][0],
            "jaeger-service-*"
        );
    }
}
