//! Index templates for Jaeger's span, service and dependency indices.
//!
//! The mappings are Jaeger's: keyword ids and names, `startTime` as a long in
//! microseconds, `startTimeMillis` as an `epoch_millis` date for range
//! queries, and nested `tags`, `process.tags`, `logs.fields` and
//! `references`; Jaeger query searches the first three with nested
//! queries, and never searches references, which the ingester maps as
//! stored only by default ([`store_references_only`]). Bodies
//! are written in the legacy `_template` form, which OpenSearch 1–3 and
//! Elasticsearch 7 read; [`composable`] derives the `_index_template` form
//! Elasticsearch 8 and later prefer.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::index::{Family, Prefix};

mod refresh;

pub use refresh::{MAX_REFRESH_INTERVAL, MIN_REFRESH_INTERVAL, RefreshInterval};

/// Which template API to install with, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateApi {
    /// Chosen from the detected server.
    Auto,
    /// `_template` (OpenSearch 1–3, Elasticsearch 6–7).
    Legacy,
    /// `_index_template` (Elasticsearch 7.8+, 8, 9; OpenSearch 1+).
    Composable,
}

/// Whether span indices get a Bloom filter over document ids, as configured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdLookupFilter {
    /// On where the engine has it ([`id_lookup_filter_supported`]), off
    /// elsewhere.
    #[default]
    Auto,
    /// Always set; an engine without it refuses the template at start.
    On,
    /// Never set.
    Off,
}

/// How span indices map `references`, as configured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReferencesMapping {
    /// Kept in `_source`, not indexed: no hidden nested document per
    /// reference. Jaeger query, Jaeger v2 and OpenSearch Dashboards' Trace
    /// Analytics never search inside references (its filters on them match
    /// every span under either mapping), they read them from the document.
    #[default]
    Stored,
    /// Jaeger's mapping: a nested document per reference, for queries of
    /// one's own on `references.spanID` and the like.
    Nested,
}

/// Which of a span's own fields new span indices index, as configured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanFieldsMapping {
    /// What a reader searches, sorts or aggregates on is mapped as Jaeger
    /// maps it; the rest is kept in `_source` only ([`index_searched_fields_only`]).
    #[default]
    Searched,
    /// Jaeger's mapping: every field indexed, every field with doc values.
    Jaeger,
}

/// OpenSearch's per-segment Bloom filter over `_id`, an index setting since
/// OpenSearch 2.13 (2.12 had it behind an experimental node flag;
/// Elasticsearch has none and refuses the key). Every `create` with our ids
/// first looks the id up in each segment of the index; the filter answers
/// "not here" for most segments without walking their term dictionaries.
pub const ID_LOOKUP_FILTER_SETTING: &str = "index.optimize_doc_id_lookup.fuzzy_set.enabled";

/// The first OpenSearch release that takes [`ID_LOOKUP_FILTER_SETTING`]
/// without a node flag.
const ID_LOOKUP_FILTER_SINCE: (u32, u32) = (2, 13);

/// The distribution (whether OpenSearch) and `(major, minor)` release of
/// a `GET /` answer.
fn release(info: &Value) -> Option<(bool, (u32, u32))> {
    let version = &info["version"];
    let mut parts = version["number"]
        .as_str()?
        .split(['.', '-'])
        .map(|part| part.parse::<u32>().ok());
    let (major, minor) = (parts.next()??, parts.next()??);
    Some((version["distribution"] == "opensearch", (major, minor)))
}

/// Whether the server of a `GET /` answer takes [`ID_LOOKUP_FILTER_SETTING`].
pub fn id_lookup_filter_supported(info: &Value) -> bool {
    matches!(release(info), Some((true, at)) if at >= ID_LOOKUP_FILTER_SINCE)
}

/// Whether the server of a `GET /` answer searches a keyword field that has
/// doc values but no inverted index (`index: false`): term, terms, prefix
/// and regexp queries then read the doc values. Elasticsearch has it from
/// 8.1; OpenSearch added it in the 2.12 to 2.14 releases, and 2.14 is the
/// first taken here.
pub fn doc_values_search_supported(info: &Value) -> bool {
    match release(info) {
        Some((true, at)) => at >= (2, 14),
        Some((false, at)) => at >= (8, 1),
        None => false,
    }
}

impl IdLookupFilter {
    /// Whether to set the filter, given the server's `GET /` answer (asked
    /// only for `Auto`).
    pub fn wanted(self, info: Option<&Value>) -> bool {
        match self {
            IdLookupFilter::On => true,
            IdLookupFilter::Off => false,
            IdLookupFilter::Auto => info.is_some_and(id_lookup_filter_supported),
        }
    }

    /// Whether [`IdLookupFilter::wanted`] needs the server's answer.
    pub fn needs_server_info(self) -> bool {
        self == IdLookupFilter::Auto
    }
}

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
pub fn span_template(prefix: &Prefix, shards: u32, replicas: u32) -> Value {
    json!({
        "index_patterns": [prefix.pattern(Family::Span)],
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
pub fn service_template(prefix: &Prefix, shards: u32, replicas: u32) -> Value {
    json!({
        "index_patterns": [prefix.pattern(Family::Service)],
        "settings": settings(shards, replicas),
        "mappings": {
            "dynamic_templates": dynamic_templates(),
            "properties": {"serviceName": keyword(), "operationName": keyword()}
        }
    })
}

/// The legacy template for `<prefix>jaeger-dependencies-*`: one document
/// per time slice, its links nested, as Jaeger's dependency reader expects,
/// and the slice's total `calls` and number of `edges` as plain fields that
/// dashboards can chart.
pub fn dependencies_template(prefix: &Prefix, shards: u32, replicas: u32) -> Value {
    json!({
        "index_patterns": [prefix.pattern(Family::Dependencies)],
        "settings": {"index.number_of_shards": shards, "index.number_of_replicas": replicas},
        "mappings": {"properties": {
            "timestamp": {"type": "date"},
            "calls": {"type": "long"},
            "edges": {"type": "integer"},
            "dependencies": {"type": "nested", "properties": {
                "parent": keyword(), "child": keyword(),
                "callCount": {"type": "long"}, "source": keyword()
            }}
        }}
    })
}

/// Maps `references` as kept in `_source` only ([`ReferencesMapping::Stored`]),
/// in a legacy template body (before [`composable`] wraps it). A span has a
/// reference to its parent, and each nested reference is a Lucene document
/// of its own with three keyword fields: about a tenth of the engine's
/// indexing work per span once tags are fields (docs/benchmarks.md).
pub fn store_references_only(template: &mut Value) {
    template["mappings"]["properties"]["references"] = json!({"type": "object", "enabled": false});
}

/// Maps a span's own fields by what readers do with them
/// ([`SpanFieldsMapping::Searched`]), in a legacy template body (before
/// [`composable`] wraps it).
///
/// `parentSpanID` and `flags` are kept in `_source` only: Jaeger query (v1
/// and v2) reads them from the document, and nothing searches them (Data
/// Prepper's `parentSpanId` is another field). Where the engine searches a
/// keyword by its doc values (`doc_values_search`,
/// [`doc_values_search_supported`]), `spanID` and the `tag.*` and
/// `process.tag.*` keyword fields keep their doc values but get no inverted
/// index: they are what Jaeger query, Trace Analytics and dashboards find
/// and aggregate, always beside a service or a time range that the indexed
/// fields narrow, or (Trace Analytics' span flyout, one span by `spanID`)
/// once per click. A unique keyword per span and a term per tag were about
/// a tenth of the engine's CPU per span (docs/benchmarks.md).
pub fn index_searched_fields_only(template: &mut Value, doc_values_search: bool) {
    let fields = &mut template["mappings"]["properties"];
    for stored_only in ["parentSpanID", "flags"] {
        fields[stored_only]["index"] = Value::Bool(false);
        fields[stored_only]["doc_values"] = Value::Bool(false);
    }
    if !doc_values_search {
        return;
    }
    fields["spanID"]["index"] = Value::Bool(false);
    if let Some(dynamic) = template["mappings"]["dynamic_templates"].as_array_mut() {
        for entry in dynamic.iter_mut().filter_map(Value::as_object_mut) {
            for rule in entry.values_mut() {
                if rule["mapping"]["type"] == "keyword" {
                    rule["mapping"]["index"] = Value::Bool(false);
                }
            }
        }
    }
}

/// Gives some `tag.<name>` object fields a mapping of their own (a number
/// where charts need one) instead of the `keyword` every other tag field
/// gets, in a legacy template body (before [`composable`] wraps it).
pub fn add_tag_field_types(template: &mut Value, fields: &[(String, Value)]) {
    if fields.is_empty() {
        return;
    }
    let tag = &mut template["mappings"]["properties"]["tag"];
    for (name, mapping) in fields {
        tag["properties"][name] = mapping.clone();
    }
}

/// Adds index settings to a legacy template body (before [`composable`]
/// wraps it, which carries them over).
pub fn add_settings(template: &mut Value, settings: serde_json::Map<String, Value>) {
    if let Some(existing) = template["settings"].as_object_mut() {
        existing.extend(settings);
    }
}

/// Adds aliases that every new index matching a legacy template body gets.
pub fn add_aliases(template: &mut Value, aliases: serde_json::Map<String, Value>) {
    if aliases.is_empty() {
        return;
    }
    if let Some(body) = template.as_object_mut() {
        let existing = body
            .entry("aliases")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(existing) = existing.as_object_mut() {
            existing.extend(aliases);
        }
    }
}

/// Wraps a legacy template body in the composable form: settings and
/// mappings move under `template`, and a `priority` decides between
/// templates matching the same index (0, as Jaeger installs them).
pub fn composable(legacy: Value) -> Value {
    let mut body = json!({
        "index_patterns": legacy["index_patterns"].clone(),
        "priority": 0,
        "template": {
            "settings": legacy["settings"].clone(),
            "mappings": legacy["mappings"].clone()
        }
    });
    if let Some(aliases) = legacy.get("aliases") {
        body["template"]["aliases"] = aliases.clone();
    }
    body
}

/// The template API a server understands best.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `_template`.
    Legacy,
    /// `_index_template`.
    Composable,
}

/// Picks the API from a `GET /` answer: OpenSearch and Elasticsearch 7 keep
/// the legacy API Jaeger uses there, Elasticsearch 8+ gets composable
/// templates (legacy ones are deprecated there).
pub fn detect(info: &Value) -> Api {
    let version = &info["version"];
    if version["distribution"] == "opensearch" {
        return Api::Legacy;
    }
    let major = version["number"]
        .as_str()
        .and_then(|n| n.split('.').next())
        .and_then(|m| m.parse::<u32>().ok())
        .unwrap_or(7);
    if major >= 8 {
        Api::Composable
    } else {
        Api::Legacy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `GET /` answer: `distribution` is OpenSearch's field, absent on
    /// Elasticsearch.
    fn server(distribution: Option<&str>, number: &str) -> Value {
        match distribution {
            Some(d) => json!({"version": {"distribution": d, "number": number}}),
            None => json!({"version": {"number": number}}),
        }
    }

    #[test]
    fn prefix_reaches_patterns_and_nested_fields_are_nested() {
        let t = span_template(&Prefix::new("prod"), 3, 0);
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
            service_template(&Prefix::default(), 1, 1)["index_patterns"][0],
            "jaeger-service-*"
        );
    }

    #[test]
    fn stored_references_are_neither_nested_nor_indexed_in_either_form() {
        let mut t = span_template(&Prefix::default(), 1, 0);
        store_references_only(&mut t);
        for body in [&t, &composable(t.clone())["template"]] {
            let references = &body["mappings"]["properties"]["references"];
            assert_eq!(references["type"], "object", "{body}");
            assert_eq!(references["enabled"], false, "{body}");
            assert_eq!(body["mappings"]["properties"]["tags"]["type"], "nested");
        }
        let configured: ReferencesMapping = serde_json::from_value(json!("nested")).unwrap();
        assert_eq!(configured, ReferencesMapping::Nested);
        assert_eq!(ReferencesMapping::default(), ReferencesMapping::Stored);
    }

    #[test]
    fn searched_fields_keep_what_readers_query_in_either_form() {
        for doc_values_search in [true, false] {
            let mut t = span_template(&Prefix::default(), 1, 0);
            index_searched_fields_only(&mut t, doc_values_search);
            for body in [&t, &composable(t.clone())["template"]] {
                let fields = &body["mappings"]["properties"];
                for stored_only in ["parentSpanID", "flags"] {
                    assert_eq!(fields[stored_only]["index"], false, "{stored_only}");
                    assert_eq!(fields[stored_only]["doc_values"], false, "{stored_only}");
                }
                // Searched by doc values where the engine can, indexed elsewhere.
                let span_id = &fields["spanID"];
                assert_eq!(span_id["type"], "keyword");
                assert_eq!(
                    span_id.get("index") == Some(&json!(false)),
                    doc_values_search
                );
                assert!(span_id.get("doc_values").is_none(), "{body}");
                let rules = body["mappings"]["dynamic_templates"].as_array().unwrap();
                assert_eq!(rules.len(), 2);
                for rule in rules.iter().flat_map(|r| r.as_object().unwrap().values()) {
                    assert_eq!(rule["mapping"]["type"], "keyword");
                    let unindexed = rule["mapping"].get("index") == Some(&json!(false));
                    assert_eq!(unindexed, doc_values_search, "{rule}");
                }
                // What Jaeger query, Trace Analytics and the dashboards find
                // traces by keeps Jaeger's mapping.
                for kept in [
                    "traceID",
                    "operationName",
                    "startTime",
                    "startTimeMillis",
                    "duration",
                ] {
                    assert!(fields[kept].get("index").is_none(), "{kept}");
                    assert!(fields[kept].get("doc_values").is_none(), "{kept}");
                }
                assert!(
                    fields["process"]["properties"]["serviceName"]
                        .get("index")
                        .is_none()
                );
                assert_eq!(fields["flags"]["type"], "integer");
            }
        }
        let configured: SpanFieldsMapping = serde_json::from_value(json!("jaeger")).unwrap();
        assert_eq!(configured, SpanFieldsMapping::Jaeger);
        assert_eq!(SpanFieldsMapping::default(), SpanFieldsMapping::Searched);
    }

    #[test]
    fn doc_values_search_from_opensearch_2_14_and_elasticsearch_8_1() {
        for (distribution, number, expected) in [
            (Some("opensearch"), "2.19.6", true),
            (Some("opensearch"), "2.14.0", true),
            (Some("opensearch"), "3.0.0", true),
            (Some("opensearch"), "2.13.0", false),
            (Some("opensearch"), "1.3.20", false),
            (None, "8.17.2", true),
            (None, "8.1.0", true),
            (None, "9.0.0-SNAPSHOT", true),
            (None, "8.0.1", false),
            (None, "7.17.29", false),
            (None, "eight", false),
        ] {
            assert_eq!(
                doc_values_search_supported(&server(distribution, number)),
                expected,
                "{distribution:?} {number}"
            );
        }
        assert!(!doc_values_search_supported(&json!({})));
    }

    #[test]
    fn typed_tag_fields_override_the_keyword_default() {
        let mut t = span_template(&Prefix::default(), 1, 0);
        add_tag_field_types(
            &mut t,
            &[("http@status_code".into(), json!({"type": "long"}))],
        );
        assert_eq!(
            t["mappings"]["properties"]["tag"],
            json!({"type": "object", "properties": {"http@status_code": {"type": "long"}}})
        );
        let c = composable(t);
        assert_eq!(
            c["template"]["mappings"]["properties"]["tag"]["properties"]["http@status_code"]["type"],
            "long"
        );
    }

    #[test]
    fn composable_moves_settings_and_mappings_under_template() {
        let legacy = span_template(&Prefix::default(), 1, 0);
        let c = composable(legacy.clone());
        assert_eq!(c["index_patterns"], legacy["index_patterns"]);
        assert_eq!(c["template"]["mappings"], legacy["mappings"]);
        assert_eq!(c["template"]["settings"], legacy["settings"]);
        assert!(c.get("mappings").is_none());
    }

    #[test]
    fn added_settings_reach_both_template_forms() {
        let mut t = span_template(&Prefix::default(), 1, 0);
        let mut extra = serde_json::Map::new();
        extra.insert("index.lifecycle.name".into(), json!("jaeger-retention"));
        add_settings(&mut t, extra);
        assert_eq!(t["settings"]["index.lifecycle.name"], "jaeger-retention");
        assert_eq!(t["settings"]["index.number_of_shards"], 1, "kept");
        let mut aliases = serde_json::Map::new();
        aliases.insert("jaeger-span-read".into(), json!({}));
        add_aliases(&mut t, aliases);
        assert_eq!(t["aliases"], json!({"jaeger-span-read": {}}));
        let c = composable(t);
        assert_eq!(
            c["template"]["settings"]["index.lifecycle.name"],
            "jaeger-retention"
        );
        assert_eq!(c["template"]["aliases"], json!({"jaeger-span-read": {}}));
        assert!(
            composable(span_template(&Prefix::default(), 1, 0))["template"]
                .get("aliases")
                .is_none(),
            "no aliases unless asked for"
        );
    }

    #[test]
    fn the_id_filter_is_set_on_opensearch_from_2_13_only() {
        for (distribution, number, expected) in [
            (Some("opensearch"), "2.19.6", true),
            (Some("opensearch"), "2.13.0", true),
            (Some("opensearch"), "3.0.0", true),
            (Some("opensearch"), "3.1.0-SNAPSHOT", true),
            (Some("opensearch"), "2.12.0", false),
            (Some("opensearch"), "1.3.20", false),
            (Some("opensearch"), "two", false),
            (None, "8.15.0", false),
            (None, "7.17.29", false),
        ] {
            let info = server(distribution, number);
            assert_eq!(
                id_lookup_filter_supported(&info),
                expected,
                "{distribution:?} {number}"
            );
            assert_eq!(IdLookupFilter::Auto.wanted(Some(&info)), expected);
            assert!(IdLookupFilter::On.wanted(Some(&info)));
            assert!(!IdLookupFilter::Off.wanted(Some(&info)));
        }
        assert!(!IdLookupFilter::Auto.wanted(None), "unknown server: off");
        assert!(!id_lookup_filter_supported(&json!({})));
    }

    #[test]
    fn detects_the_api_from_the_server() {
        let os = json!({"version": {"distribution": "opensearch", "number": "2.19.6"}});
        assert_eq!(detect(&os), Api::Legacy);
        assert_eq!(
            detect(&json!({"version": {"number": "7.17.29"}})),
            Api::Legacy
        );
        assert_eq!(
            detect(&json!({"version": {"number": "8.15.0"}})),
            Api::Composable
        );
        assert_eq!(
            detect(&json!({"version": {"number": "9.1.0"}})),
            Api::Composable
        );
    }
}
