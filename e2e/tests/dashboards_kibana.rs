//! The portable saved-object bundle (`dashboards/portable.ndjson`: index patterns,
//! aggregation-based visualizations, a saved search, dashboards by reference) for OpenSearch
//! Dashboards 1–3 and Kibana 7.10–8.x, checked without either tool (neither installs here):
//! - structure: every line and every embedded JSON string parses, ids are unique, every
//!   reference resolves inside the bundle, and version stamps are at or below what OpenSearch
//!   Dashboards accepts;
//! - fields: after the pipeline stored a known topology in OpenSearch and in Elasticsearch 7.17,
//!   `_field_caps` shows every field a panel uses as aggregatable, of the expected type, and
//!   outside any nested path;
//! - queries: each visualization's aggregations, as the dashboard tool sends them (time range on
//!   the index pattern's time field, the saved query, buckets nested in order, metrics inside),
//!   return the numbers the topology implies;
//! - OpenSearch Dashboards' Trace Analytics in Jaeger mode (which reads `*jaeger-span-*` itself,
//!   no saved objects): its services list and services-table queries give the right services,
//!   trace counts, latency, error counts and error rates.

// A failed step is a failed test: panicking on it is the point.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message as _;
use serde_json::{Value, json};
use spanway_e2e::otlp::{int_kv, resource_spans};
use spanway_e2e::{Engine, wait_for_count};
use spanway_schemas::Encoding;
use spanway_schemas::proto::otlp;
use spanway_streaming_analytics::Analytics;

mod common;

/// The last migration OpenSearch Dashboards knows per type: objects stamped above are refused.
const OSD_MAX: [(&str, &str); 4] = [
    ("index-pattern", "7.6.0"),
    ("visualization", "7.10.0"),
    ("dashboard", "7.9.3"),
    ("search", "7.9.3"),
];

/// Every field a panel may use, with the type it must have.
const FIELD_TYPES: [(&str, &str); 19] = [
    ("startTimeMillis", "date"),
    ("process.serviceName", "keyword"),
    ("operationName", "keyword"),
    ("duration", "long"),
    ("traceID", "keyword"),
    ("tag.span@kind", "keyword"),
    ("tag.error", "keyword"),
    ("@timestamp", "date"),
    ("client", "keyword"),
    ("server", "keyword"),
    ("connection_type", "keyword"),
    ("calls", "long"),
    ("errors", "long"),
    ("late_calls", "long"),
    ("client_latency_ms.p95", "double"),
    ("server_latency_ms.p95", "double"),
    ("timestamp", "date"),
    ("edges", "integer"),
    ("tag.http@response@status_code.number", "long"),
];

fn bundle() -> Vec<Value> {
    bundle_file("portable.ndjson")
}

fn bundle_file(name: &str) -> Vec<Value> {
    let path = spanway_e2e::secure::repo_root()
        .join("dashboards")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .enumerate()
        .map(|(n, line)| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), n + 1))
        })
        .collect()
}

fn embedded(object: &Value, pointer: &str) -> Value {
    let text = object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{} has no string at {pointer}", object["id"]));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{} {pointer}: {e}: {text}", object["id"]))
}

fn version(text: &str) -> Vec<u32> {
    text.split('.').map(|n| n.parse().unwrap()).collect()
}

/// `(type, id)` of each object: what must be unique in a bundle, and what references name.
fn type_ids(objects: &[Value]) -> BTreeSet<(String, String)> {
    objects
        .iter()
        .map(|o| {
            (
                o["type"].as_str().unwrap().to_owned(),
                o["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn bundle_structure_imports_everywhere() {
    let objects = bundle();
    let ids = type_ids(&objects);
    assert_eq!(ids.len(), objects.len(), "type:id unique");
    let maxima: BTreeMap<&str, &str> = OSD_MAX.into_iter().collect();
    let mut dashboards = 0;
    for o in &objects {
        let kind = o["type"].as_str().unwrap();
        assert!(o["attributes"].is_object(), "{}: attributes", o["id"]);
        assert!(
            o.get("coreMigrationVersion").is_none(),
            "{}: 8.x stamp",
            o["id"]
        );
        let stamp = o["migrationVersion"][kind].as_str().unwrap();
        assert!(
            version(stamp) <= version(maxima[kind]),
            "{} stamped {stamp}, above what OpenSearch Dashboards knows",
            o["id"]
        );
        let references = o["references"].as_array().unwrap();
        let named = |name: &str| {
            let r = references
                .iter()
                .find(|r| r["name"] == name)
                .unwrap_or_else(|| panic!("{}: no reference {name}", o["id"]));
            let target = (
                r["type"].as_str().unwrap().to_owned(),
                r["id"].as_str().unwrap().to_owned(),
            );
            assert!(
                ids.contains(&target),
                "{}: {target:?} not in the bundle",
                o["id"]
            );
        };
        match kind {
            "index-pattern" => {
                assert!(o["attributes"]["title"].as_str().unwrap().contains('*'));
                if o["attributes"].get("fieldFormatMap").is_some() {
                    embedded(o, "/attributes/fieldFormatMap");
                }
            }
            "visualization" | "search" => {
                if kind == "visualization" {
                    let state = embedded(o, "/attributes/visState");
                    assert!(state["aggs"].as_array().is_some_and(|a| !a.is_empty()));
                    embedded(o, "/attributes/uiStateJSON");
                }
                let source = embedded(o, "/attributes/kibanaSavedObjectMeta/searchSourceJSON");
                named(source["indexRefName"].as_str().unwrap());
            }
            "dashboard" => {
                dashboards += 1;
                embedded(o, "/attributes/optionsJSON");
                embedded(o, "/attributes/kibanaSavedObjectMeta/searchSourceJSON");
                let panels = embedded(o, "/attributes/panelsJSON");
                for panel in panels.as_array().unwrap() {
                    let grid = &panel["gridData"];
                    assert_eq!(
                        grid["i"], panel["panelIndex"],
                        "gridData.i is the panel index"
                    );
                    let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
                    assert!(x + w <= 48, "{}: panel past the 48-column grid", o["id"]);
                    named(panel["panelRefName"].as_str().unwrap());
                }
            }
            other => panic!("unexpected type {other}"),
        }
    }
    assert_eq!(dashboards, 3);
}

/// The Lens panels of the Lens bundle's dashboards: (dashboard, panel).
fn lens_panels(objects: &[Value]) -> Vec<(Value, Value)> {
    let mut out = Vec::new();
    for dashboard in objects.iter().filter(|o| o["type"] == "dashboard") {
        for panel in embedded(dashboard, "/attributes/panelsJSON")
            .as_array()
            .unwrap()
        {
            assert_eq!(
                panel["type"], "lens",
                "{}: only Lens panels",
                dashboard["id"]
            );
            out.push((dashboard.clone(), panel.clone()));
        }
    }
    out
}

/// Each layer of a Lens panel: (layer id, the layer, the index pattern it reads).
fn lens_layers<'a>(
    objects: &'a [Value],
    dashboard: &Value,
    panel: &'a Value,
) -> Vec<(String, &'a Value, &'a Value)> {
    let layers = panel["embeddableConfig"]["attributes"]["state"]["datasourceStates"]["formBased"]
        ["layers"]
        .as_object()
        .unwrap();
    layers
        .iter()
        .map(|(id, layer)| {
            let name = format!(
                "{}:indexpattern-datasource-layer-{id}",
                panel["panelIndex"].as_str().unwrap()
            );
            let reference = dashboard["references"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == name.as_str())
                .unwrap_or_else(|| panic!("{}: no reference {name}", dashboard["id"]));
            let pattern = objects
                .iter()
                .find(|o| o["type"] == reference["type"] && o["id"] == reference["id"])
                .unwrap_or_else(|| panic!("{name} points outside the bundle"));
            (id.clone(), layer, pattern)
        })
        .collect()
}

#[test]
fn lens_bundle_structure_imports_into_kibana_8_and_9() {
    let objects = bundle_file("lens.ndjson");
    let ids = type_ids(&objects);
    assert_eq!(ids.len(), objects.len(), "type:id unique");
    for o in &objects {
        // An 8.x export: Kibana 8 and 9 import it, 7.x and OpenSearch Dashboards refuse it.
        assert_eq!(o["coreMigrationVersion"], "8.8.0", "{}", o["id"]);
        assert!(o["typeMigrationVersion"].is_string(), "{}", o["id"]);
        assert!(o.get("migrationVersion").is_none(), "{}", o["id"]);
        assert!(o["attributes"].is_object());
    }
    for dashboard in objects.iter().filter(|o| o["type"] == "dashboard") {
        embedded(dashboard, "/attributes/optionsJSON");
        embedded(
            dashboard,
            "/attributes/kibanaSavedObjectMeta/searchSourceJSON",
        );
    }
    let panels = lens_panels(&objects);
    assert!(panels.len() >= 5);
    for (dashboard, panel) in &panels {
        let grid = &panel["gridData"];
        assert_eq!(grid["i"], panel["panelIndex"]);
        assert!(grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap() <= 48);
        let attributes = &panel["embeddableConfig"]["attributes"];
        for (id, layer, pattern) in lens_layers(&objects, dashboard, panel) {
            assert_eq!(pattern["type"], "index-pattern");
            let columns = layer["columns"].as_object().unwrap();
            let order: BTreeSet<&str> = layer["columnOrder"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
            assert_eq!(
                order,
                columns.keys().map(String::as_str).collect::<BTreeSet<_>>(),
                "{id}: columnOrder lists every column"
            );
            for (cid, column) in columns {
                for r in column["references"].as_array().into_iter().flatten() {
                    assert!(columns.contains_key(r.as_str().unwrap()), "{cid} → {r}");
                }
                if column["operationType"] == "math" {
                    for arg in column["params"]["tinymathAst"]["args"].as_array().unwrap() {
                        assert!(columns.contains_key(arg.as_str().unwrap()), "{cid}: {arg}");
                    }
                }
                if let Some(by) = column["params"]["orderBy"]["columnId"].as_str() {
                    assert!(columns.contains_key(by), "{cid} ordered by {by}");
                }
            }
            // What the chart shows must be columns of the layer.
            let visualization = &attributes["state"]["visualization"];
            let mut shown: Vec<&str> = visualization["columns"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| c["columnId"].as_str().unwrap())
                .collect();
            for layer in visualization["layers"].as_array().into_iter().flatten() {
                shown.extend(layer["xAccessor"].as_str());
                shown.extend(layer["splitAccessor"].as_str());
                shown.extend(
                    layer["accessors"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|a| a.as_str().unwrap()),
                );
            }
            assert!(!shown.is_empty(), "{id} shows nothing");
            for c in shown {
                assert!(columns.contains_key(c), "{id}: shows unknown column {c}");
            }
        }
    }
}

// ---- the known topology --------------------------------------------------------------------

const TRACES: u64 = 40;

/// frontend `GET /checkout` (250 ms, every 4th fails) → checkout `POST /order` (200 ms) →
/// payments `POST /charge` (30 ms, every 5th fails), through client spans.
fn topology(start_ms: u64, run: u64) -> otlp::ExportTraceServiceRequest {
    use otlp::span::SpanKind::{Client, Server};
    let mut by_service: BTreeMap<&str, Vec<otlp::Span>> = BTreeMap::new();
    for i in 0..TRACES {
        let trace_id = [run.to_be_bytes(), (i + 1).to_be_bytes()].concat();
        let t0 = (start_ms + i * 100) * 1_000_000;
        let mut add = |service: &'static str,
                       id: u64,
                       parent: Option<u64>,
                       name: &str,
                       kind: otlp::span::SpanKind,
                       offset_ms: u64,
                       ms: u64,
                       failed: bool| {
            by_service.entry(service).or_default().push(otlp::Span {
                trace_id: trace_id.clone(),
                span_id: id.to_be_bytes().to_vec(),
                parent_span_id: parent.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
                name: name.into(),
                kind: kind as i32,
                start_time_unix_nano: t0 + offset_ms * 1_000_000,
                end_time_unix_nano: t0 + (offset_ms + ms) * 1_000_000,
                status: failed.then(|| otlp::Status {
                    code: otlp::status::StatusCode::Error as i32,
                    message: "failed".into(),
                }),
                ..Default::default()
            });
        };
        add(
            "frontend",
            1,
            None,
            "GET /checkout",
            Server,
            0,
            250,
            i % 4 == 0,
        );
        add(
            "frontend",
            2,
            Some(1),
            "call checkout",
            Client,
            10,
            220,
            false,
        );
        add(
            "checkout",
            3,
            Some(2),
            "POST /order",
            Server,
            20,
            200,
            false,
        );
        add(
            "checkout",
            4,
            Some(3),
            "call payments",
            Client,
            30,
            40,
            false,
        );
        add(
            "payments",
            5,
            Some(4),
            "POST /charge",
            Server,
            35,
            30,
            i % 5 == 0,
        );
    }
    // The frontend answers 503 when it fails, 200 otherwise.
    for request in by_service
        .get_mut("frontend")
        .unwrap()
        .iter_mut()
        .filter(|s| s.name == "GET /checkout")
    {
        let status = if request.status.is_some() { 503 } else { 200 };
        request
            .attributes
            .push(int_kv("http.response.status_code", status));
    }
    otlp::ExportTraceServiceRequest {
        resource_spans: by_service
            .into_iter()
            .map(|(service, spans)| resource_spans(service, spans))
            .collect(),
    }
}

// ---- running a panel as the dashboard tool would ---------------------------------------------

/// The saved query (KQL of the forms `field:value` and `field > n`, joined by `and`) as an
/// engine query.
fn kql(query: &str) -> Vec<Value> {
    query
        .split(" and ")
        .filter(|t| !t.trim().is_empty())
        .map(|term| {
            if let Some((field, value)) = term.split_once(':') {
                json!({"match": {field.trim(): value.trim()}})
            } else if let Some((field, n)) = term.split_once('>') {
                json!({"range": {field.trim(): {"gt": n.trim().parse::<f64>().unwrap()}}})
            } else {
                panic!("KQL term the test does not translate: {term}")
            }
        })
        .collect()
}

fn metric_agg(agg: &Value) -> Option<Value> {
    let p = &agg["params"];
    match agg["type"].as_str().unwrap() {
        "count" => None,
        "sum" | "max" | "avg" | "min" => {
            Some(json!({agg["type"].as_str().unwrap(): {"field": p["field"]}}))
        }
        "percentiles" => {
            Some(json!({"percentiles": {"field": p["field"], "percents": p["percents"]}}))
        }
        other => panic!("metric type the test does not translate: {other}"),
    }
}

/// A bucket aggregation; a terms aggregation ordered by a metric carries that metric inside
/// it, as the dashboard tools add it.
fn bucket_agg(agg: &Value, metrics: &[Value]) -> Value {
    let p = &agg["params"];
    match agg["type"].as_str().unwrap() {
        "terms" => {
            let by = p["orderBy"].as_str().unwrap();
            let metric = metrics.iter().find(|m| m["id"] == by);
            let (order, order_agg) = match metric {
                None => (json!({by: p["order"]}), None),
                Some(m) if m["type"] == "count" => (json!({"_count": p["order"]}), None),
                Some(m) => (json!({by: p["order"]}), metric_agg(m)),
            };
            let mut out =
                json!({"terms": {"field": p["field"], "size": p["size"], "order": order}});
            if let Some(order_agg) = order_agg {
                out["aggs"] = json!({by: order_agg});
            }
            out
        }
        "date_histogram" => json!({"date_histogram": {
            "field": p["field"], "fixed_interval": "1m", "min_doc_count": 1
        }}),
        "range" => {
            let ranges: Vec<Value> = p["ranges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| json!({"from": r["from"], "to": r["to"], "key": r["label"]}))
                .collect();
            json!({"range": {"field": p["field"], "ranges": ranges}})
        }
        other => panic!("bucket type the test does not translate: {other}"),
    }
}

/// One row per combination of bucket keys, with each metric's value by agg id (`count` as
/// the document count, percentiles as `<id>.<percent>`).
type Rows = Vec<(Vec<String>, BTreeMap<String, f64>)>;

fn flatten(
    level: &Value,
    depth: usize,
    buckets: &[Value],
    metrics: &[Value],
    keys: &mut Vec<String>,
    out: &mut Rows,
) {
    if depth == buckets.len() {
        let mut values = BTreeMap::new();
        for m in metrics {
            let id = m["id"].as_str().unwrap();
            match m["type"].as_str().unwrap() {
                "count" => {
                    values.insert(id.to_owned(), level["doc_count"].as_f64().unwrap());
                }
                "percentiles" => {
                    for (percent, v) in level[id]["values"].as_object().unwrap() {
                        let percent = percent.trim_end_matches(".0");
                        values.insert(format!("{id}.{percent}"), v.as_f64().unwrap_or(f64::NAN));
                    }
                }
                _ => {
                    values.insert(
                        id.to_owned(),
                        level[id]["value"].as_f64().unwrap_or(f64::NAN),
                    );
                }
            }
        }
        out.push((keys.clone(), values));
        return;
    }
    let id = buckets[depth]["id"].as_str().unwrap();
    for bucket in level[id]["buckets"].as_array().unwrap() {
        keys.push(bucket_key(bucket));
        flatten(bucket, depth + 1, buckets, metrics, keys, out);
        keys.pop();
    }
}

/// A bucket's key as the tools label it: the formatted key of a date, else the key.
fn bucket_key(bucket: &Value) -> String {
    bucket
        .get("key_as_string")
        .or(bucket.get("key"))
        .map(|k| k.as_str().map_or_else(|| k.to_string(), str::to_owned))
        .unwrap()
}

struct Dashboards {
    url: String,
    /// Index pattern title in the bundle → this test's indices.
    patterns: BTreeMap<String, String>,
    from_ms: u64,
    to_ms: u64,
}

impl Dashboards {
    async fn post(&self, path: &str, body: Value) -> Value {
        let response = reqwest::Client::new()
            .post(format!("{}/{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {answer}");
        answer
    }

    async fn refresh(&self, index: &str) {
        let _ = reqwest::Client::new()
            .post(format!("{}/{index}/_refresh", self.url))
            .send()
            .await;
    }

    /// The index pattern, time field and query of a visualization or search.
    fn source(&self, objects: &[Value], object: &Value) -> (String, String, Vec<Value>) {
        let source = embedded(object, "/attributes/kibanaSavedObjectMeta/searchSourceJSON");
        let index_id = object["references"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == source["indexRefName"])
            .unwrap()["id"]
            .clone();
        let pattern = objects.iter().find(|o| o["id"] == index_id).unwrap();
        let title = pattern["attributes"]["title"].as_str().unwrap();
        (
            self.patterns[title].clone(),
            pattern["attributes"]["timeFieldName"]
                .as_str()
                .unwrap()
                .to_owned(),
            kql(source["query"]["query"].as_str().unwrap()),
        )
    }

    fn filters(&self, time_field: &str, mut query: Vec<Value>) -> Value {
        query.push(json!({"range": {time_field: {
            "gte": self.from_ms, "lte": self.to_ms, "format": "epoch_millis"
        }}}));
        json!({"bool": {"filter": query}})
    }

    /// Every field the object uses, with the index pattern they are read from.
    fn fields(&self, objects: &[Value], object: &Value) -> (String, BTreeSet<String>) {
        let (index, time_field, query) = self.source(objects, object);
        let mut fields = BTreeSet::from([time_field]);
        for q in &query {
            let clause = q.as_object().unwrap().values().next().unwrap();
            fields.extend(clause.as_object().unwrap().keys().cloned());
        }
        if object["type"] == "visualization" {
            let state = embedded(object, "/attributes/visState");
            for agg in state["aggs"].as_array().unwrap() {
                if let Some(field) = agg["params"]["field"].as_str() {
                    fields.insert(field.to_owned());
                }
            }
        } else {
            for column in object["attributes"]["columns"].as_array().unwrap() {
                fields.insert(column.as_str().unwrap().to_owned());
            }
        }
        (index, fields)
    }

    /// Runs a Lens panel's layer as Lens compiles it: its bucket columns nested in order, its
    /// metric columns inside (a count with a KQL filter as a `filter` aggregation), and its
    /// formulas (divisions of two columns) computed from the answer. Rows of bucket keys,
    /// with each value by column id.
    async fn run_lens(&self, objects: &[Value], dashboard: &Value, panel: &Value) -> Rows {
        let (_, layer, pattern) = lens_layers(objects, dashboard, panel).remove(0);
        let index = &self.patterns[pattern["attributes"]["title"].as_str().unwrap()];
        let time_field = pattern["attributes"]["timeFieldName"].as_str().unwrap();
        let query = &panel["embeddableConfig"]["attributes"]["state"]["query"]["query"];
        let columns = layer["columns"].as_object().unwrap();
        let order: Vec<&str> = layer["columnOrder"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        let buckets: Vec<&str> = order
            .iter()
            .copied()
            .filter(|c| columns[*c]["isBucketed"] == true)
            .collect();
        let metric = |id: &str| -> Option<Value> {
            let c = &columns[id];
            let agg = match c["operationType"].as_str().unwrap() {
                "count" => None,
                "sum" => Some(json!({"sum": {"field": c["sourceField"]}})),
                "percentile" => Some(json!({"percentiles": {
                    "field": c["sourceField"], "percents": [c["params"]["percentile"]]
                }})),
                _ => return None,
            };
            match (&c["filter"]["query"], agg) {
                (Value::String(kql_text), agg) => {
                    let mut f = json!({"filter": {"bool": {"filter": kql(kql_text)}}});
                    if let Some(agg) = agg {
                        f["aggs"] = json!({"v": agg});
                    }
                    Some(f)
                }
                (_, agg) => agg,
            }
        };
        let mut inner = serde_json::Map::new();
        for id in order.iter().filter(|c| !buckets.contains(c)) {
            if let Some(agg) = metric(id) {
                inner.insert((*id).to_owned(), agg);
            }
        }
        for id in buckets.iter().rev() {
            let c = &columns[*id];
            let p = &c["params"];
            let mut agg = match c["operationType"].as_str().unwrap() {
                "terms" => {
                    let direction = p["orderDirection"].clone();
                    let order = match p["orderBy"]["columnId"].as_str() {
                        Some(by)
                            if columns[by]["operationType"] == "count"
                                && columns[by].get("filter").is_none() =>
                        {
                            json!({"_count": direction})
                        }
                        Some(by) => json!({by: direction}),
                        None => json!({"_key": direction}),
                    };
                    json!({"terms": {"field": c["sourceField"], "size": p["size"], "order": order}})
                }
                "date_histogram" => json!({"date_histogram": {
                    "field": c["sourceField"], "fixed_interval": "1m", "min_doc_count": 1
                }}),
                other => panic!("Lens bucket the test does not compile: {other}"),
            };
            // A terms column ordered by a metric carries that metric, as Lens sends it.
            if let Some(by) = p["orderBy"]["columnId"].as_str()
                && let Some(order_agg) = metric(by)
            {
                inner.entry(by.to_owned()).or_insert(order_agg);
            }
            if !inner.is_empty() {
                agg["aggs"] = Value::Object(inner);
            }
            inner = serde_json::Map::from_iter([((*id).to_owned(), agg)]);
        }
        let mut filters = kql(query.as_str().unwrap());
        filters.push(json!({"range": {time_field: {
            "gte": self.from_ms, "lte": self.to_ms, "format": "epoch_millis"
        }}}));
        let body = json!({"size": 0, "query": {"bool": {"filter": filters}}, "aggs": inner});
        let answer = self.post(&format!("{index}/_search"), body).await;

        fn walk(
            level: &Value,
            depth: usize,
            buckets: &[&str],
            columns: &serde_json::Map<String, Value>,
            keys: &mut Vec<String>,
            out: &mut Rows,
        ) {
            if depth == buckets.len() {
                let mut values = BTreeMap::new();
                for (id, c) in columns.iter().filter(|(_, c)| c["isBucketed"] != true) {
                    let v = match c["operationType"].as_str().unwrap() {
                        "count" if c.get("filter").is_some() => level[id]["doc_count"].as_f64(),
                        "count" => level["doc_count"].as_f64(),
                        "sum" if c.get("filter").is_some() => level[id]["v"]["value"].as_f64(),
                        "sum" => level[id]["value"].as_f64(),
                        "percentile" => level[id]["values"]
                            .as_object()
                            .and_then(|v| v.values().next())
                            .and_then(Value::as_f64),
                        _ => None,
                    };
                    if let Some(v) = v {
                        values.insert(id.clone(), v);
                    }
                }
                // Math columns divide two columns; a formula shows its math column.
                for (id, c) in columns.iter().filter(|(_, c)| c["operationType"] == "math") {
                    let args = c["params"]["tinymathAst"]["args"].as_array().unwrap();
                    assert_eq!(c["params"]["tinymathAst"]["name"], "divide");
                    let (n, d) = (
                        values[args[0].as_str().unwrap()],
                        values[args[1].as_str().unwrap()],
                    );
                    values.insert(id.clone(), if d == 0.0 { 0.0 } else { n / d });
                }
                for (id, c) in columns
                    .iter()
                    .filter(|(_, c)| c["operationType"] == "formula")
                {
                    let math = c["references"][0].as_str().unwrap();
                    values.insert(id.clone(), values[math]);
                }
                out.push((keys.clone(), values));
                return;
            }
            for bucket in level[buckets[depth]]["buckets"].as_array().unwrap() {
                keys.push(bucket_key(bucket));
                walk(bucket, depth + 1, buckets, columns, keys, out);
                keys.pop();
            }
        }
        let mut rows = Vec::new();
        walk(
            &answer["aggregations"],
            0,
            &buckets,
            columns,
            &mut Vec::new(),
            &mut rows,
        );
        rows
    }

    /// Runs a visualization's aggregations.
    async fn run(&self, objects: &[Value], id: &str) -> Rows {
        let object = objects.iter().find(|o| o["id"] == id).unwrap();
        let (index, time_field, query) = self.source(objects, object);
        let state = embedded(object, "/attributes/visState");
        let aggs = state["aggs"].as_array().unwrap();
        let (metrics, buckets): (Vec<Value>, Vec<Value>) =
            aggs.iter().cloned().partition(|a| a["schema"] == "metric");
        let mut inner = serde_json::Map::new();
        for m in &metrics {
            if let Some(agg) = metric_agg(m) {
                inner.insert(m["id"].as_str().unwrap().to_owned(), agg);
            }
        }
        for b in buckets.iter().rev() {
            let mut agg = bucket_agg(b, &metrics);
            if let Some(order_agg) = agg.get("aggs").and_then(Value::as_object) {
                for (k, v) in order_agg.clone() {
                    inner.entry(k).or_insert(v);
                }
            }
            if !inner.is_empty() {
                agg["aggs"] = Value::Object(inner);
            }
            inner = serde_json::Map::from_iter([(b["id"].as_str().unwrap().to_owned(), agg)]);
        }
        let body = json!({"size": 0, "query": self.filters(&time_field, query), "aggs": inner});
        let answer = self.post(&format!("{index}/_search"), body).await;
        let mut rows = Vec::new();
        flatten(
            &answer["aggregations"],
            0,
            &buckets,
            &metrics,
            &mut Vec::new(),
            &mut rows,
        );
        rows
    }
}

/// Sums one metric per the key at `key_index`, over the other keys.
fn by_key(rows: &Rows, key_index: usize, metric: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (keys, values) in rows {
        *out.entry(keys[key_index].clone()).or_default() += values[metric];
    }
    out
}

fn expect(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panels_chart_a_known_topology_on_opensearch() {
    let url = Engine::OpenSearch.require().await;
    panels_chart_a_known_topology(&url, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panels_chart_a_known_topology_on_elasticsearch() {
    let url = Engine::Elasticsearch7.require().await;
    panels_chart_a_known_topology(&url, false).await;
}

/// With `opensearch`, also OpenSearch Dashboards' Trace Analytics queries (they need painless
/// scripts, which the test Elasticsearch node, assembled without modules, does not have).
async fn panels_chart_a_known_topology(url: &str, opensearch: bool) {
    let pipeline = common::Pipeline::start("e2e-kib", url).await;
    let prefix = pipeline.prefix.clone();
    let mut analytics_config = common::analytics(&pipeline.topic, &prefix, Encoding::OtlpProto);
    analytics_config.elasticsearch.client.url = Some(url.to_owned());
    let analytics = Analytics::start(&analytics_config, pipeline.shutdown.clone())
        .await
        .unwrap();

    let now_ms = u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let start_ms = now_ms - 120_000;
    let status = pipeline
        .post_otlp(topology(start_ms, now_ms).encode_to_vec())
        .await;
    assert_eq!(status, 200);

    let spans = format!("{prefix}-jaeger-span-*");
    let graph = format!("{prefix}-spanway-service-graph-*");
    let dependencies = format!("{prefix}-jaeger-dependencies-*");
    assert_eq!(
        wait_for_count(url, &spans, 5 * TRACES, Duration::from_secs(60)).await,
        5 * TRACES
    );
    let engine = Dashboards {
        url: url.to_owned(),
        patterns: BTreeMap::from([
            ("*jaeger-span-*".to_owned(), spans.clone()),
            ("*spanway-service-graph-*".to_owned(), graph.clone()),
            ("*jaeger-dependencies-*".to_owned(), dependencies.clone()),
        ]),
        // From the start of the hour: the Jaeger dependency document is stamped with it.
        from_ms: start_ms - start_ms % 3_600_000,
        to_ms: now_ms + 60_000,
    };
    // The service graph is written once the windows close (seconds, with the test's windows),
    // and the Jaeger dependency documents summed from it.
    for index in [&graph, &dependencies] {
        let mut calls = 0.0;
        for _ in 0..120 {
            engine.refresh(index).await;
            // A just-created index answers 503 until its shard has started: keep waiting.
            let sum: Value = match reqwest::Client::new()
                .post(format!("{url}/{index}/_search"))
                .json(&json!({"size": 0, "aggs": {"c": {"sum": {"field": "calls"}}}}))
                .send()
                .await
            {
                Ok(response) => response.json().await.unwrap_or_default(),
                Err(_) => Value::Null,
            };
            calls = sum["aggregations"]["c"]["value"].as_f64().unwrap_or(0.0);
            if calls >= (3 * TRACES) as f64 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(calls, (3 * TRACES) as f64, "calls in {index}");
    }
    pipeline.stop().await;
    analytics
        .wait()
        .await
        .expect("streaming analytics stops cleanly");
    engine.refresh(&spans).await;

    let objects = bundle();

    // Fields: present, aggregatable, typed, not nested.
    for object in objects
        .iter()
        .filter(|o| o["type"] == "visualization" || o["type"] == "search")
    {
        let (index, fields) = engine.fields(&objects, object);
        check_fields(url, &index, &fields, object["id"].as_str().unwrap()).await;
    }
    let lens_objects = bundle_file("lens.ndjson");
    for (dashboard, panel) in lens_panels(&lens_objects) {
        for (_, layer, pattern) in lens_layers(&lens_objects, &dashboard, &panel) {
            let index = &engine.patterns[pattern["attributes"]["title"].as_str().unwrap()];
            let mut fields = BTreeSet::from([pattern["attributes"]["timeFieldName"]
                .as_str()
                .unwrap()
                .to_owned()]);
            let mut queries =
                vec![panel["embeddableConfig"]["attributes"]["state"]["query"]["query"].clone()];
            for column in layer["columns"].as_object().unwrap().values() {
                fields.extend(
                    column["sourceField"]
                        .as_str()
                        .filter(|f| *f != "___records___")
                        .map(str::to_owned),
                );
                queries.push(column["filter"]["query"].clone());
            }
            for q in queries.iter().filter_map(Value::as_str) {
                for clause in kql(q) {
                    let clause = clause.as_object().unwrap().values().next().unwrap();
                    fields.extend(clause.as_object().unwrap().keys().cloned());
                }
            }
            check_fields(url, index, &fields, panel["title"].as_str().unwrap()).await;
        }
    }

    // Queries.
    let rows = engine.run(&objects, "spanway-spans-per-service").await;
    assert_eq!(
        by_key(&rows, 1, "1"),
        expect(&[("checkout", 80.0), ("frontend", 80.0), ("payments", 40.0)])
    );
    let rows = engine.run(&objects, "spanway-requests-per-service").await;
    assert_eq!(
        by_key(&rows, 0, "1"),
        expect(&[("checkout", 40.0), ("frontend", 40.0), ("payments", 40.0)])
    );
    let rows = engine
        .run(&objects, "spanway-failed-requests-per-service")
        .await;
    assert_eq!(
        by_key(&rows, 0, "1"),
        expect(&[("frontend", 10.0), ("payments", 8.0)])
    );
    let rows = engine
        .run(&objects, "spanway-request-latency-per-service")
        .await;
    for (service, micros) in [
        ("checkout", 200_000.0),
        ("frontend", 250_000.0),
        ("payments", 30_000.0),
    ] {
        let (_, values) = rows.iter().find(|(k, _)| k[0] == service).unwrap();
        for p in ["50", "95", "99"] {
            assert_eq!(values[&format!("1.{p}")], micros, "{service} p{p}");
        }
    }
    let rows = engine
        .run(&objects, "spanway-request-latency-over-time")
        .await;
    assert!(
        rows.iter().all(|(k, v)| match k[1].as_str() {
            "payments" => v["1.95"] == 30_000.0,
            "checkout" => v["1.95"] == 200_000.0,
            _ => v["1.95"] == 250_000.0,
        }),
        "{rows:?}"
    );
    let rows = engine.run(&objects, "spanway-operations").await;
    let operations: BTreeMap<(String, String), (f64, f64)> = rows
        .iter()
        .map(|(k, v)| ((k[0].clone(), k[1].clone()), (v["1"], v["3.95"])))
        .collect();
    assert_eq!(
        operations,
        BTreeMap::from([
            (("checkout".into(), "POST /order".into()), (40.0, 200_000.0)),
            (
                ("frontend".into(), "GET /checkout".into()),
                (40.0, 250_000.0)
            ),
            (("payments".into(), "POST /charge".into()), (40.0, 30_000.0)),
        ])
    );
    // The status code is a number: ranges count it.
    let rows = engine.run(&objects, "spanway-http-status-classes").await;
    let classes: BTreeMap<String, f64> = rows
        .iter()
        .filter(|(_, v)| v["1"] > 0.0)
        .map(|(k, v)| (k.join(" "), v["1"]))
        .collect();
    assert_eq!(
        classes,
        expect(&[("frontend 2xx", 30.0), ("frontend 5xx", 10.0)])
    );
    let rows = engine.run(&objects, "spanway-failed-operations").await;
    assert_eq!(
        rows.iter()
            .map(|(k, v)| (k.join(" "), v["1"]))
            .collect::<BTreeMap<_, _>>(),
        expect(&[
            ("frontend GET /checkout", 10.0),
            ("payments POST /charge", 8.0)
        ])
    );
    // The saved search of failed spans.
    let search = objects
        .iter()
        .find(|o| o["id"] == "spanway-failed-spans")
        .unwrap();
    let (index, time_field, query) = engine.source(&objects, search);
    let hits = engine
        .post(
            &format!("{index}/_count"),
            json!({"query": engine.filters(&time_field, query)}),
        )
        .await;
    assert_eq!(hits["count"], 18, "failed spans");

    // The service graph, by the default rules: no same-service edges.
    let rows = engine.run(&objects, "spanway-edges").await;
    let edges: BTreeMap<String, (f64, f64, f64)> = rows
        .iter()
        .map(|(k, v)| (k.join(" "), (v["1"], v["2"], v["5"])))
        .collect();
    assert_eq!(
        edges,
        BTreeMap::from([
            ("checkout payments direct".to_owned(), (40.0, 8.0, 0.0)),
            ("frontend checkout direct".to_owned(), (40.0, 0.0, 0.0)),
            ("user frontend direct".to_owned(), (40.0, 10.0, 0.0)),
        ])
    );
    let (_, payments) = rows.iter().find(|(k, _)| k[1] == "payments").unwrap();
    assert!(
        (20.0..=50.0).contains(&payments["4"]),
        "payments answers in 30 ms: server p95 {}",
        payments["4"]
    );
    let rows = engine.run(&objects, "spanway-top-failing-edges").await;
    let failing: Vec<(String, f64)> = rows.iter().map(|(k, v)| (k.join(" "), v["1"])).collect();
    assert_eq!(
        failing.iter().map(|(_, e)| *e).sum::<f64>(),
        18.0,
        "{failing:?}"
    );
    let mut sorted = failing.clone();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
    assert_eq!(sorted[0], ("user frontend".to_owned(), 10.0));
    let per_edge = |rows: &Rows| {
        let mut out: BTreeMap<String, f64> = BTreeMap::new();
        for (k, v) in rows {
            *out.entry(format!("{} {}", k[1], k[2])).or_default() += v["1"];
        }
        out
    };
    let rows = engine.run(&objects, "spanway-calls-per-edge").await;
    assert_eq!(
        per_edge(&rows),
        expect(&[
            ("checkout payments", 40.0),
            ("frontend checkout", 40.0),
            ("user frontend", 40.0)
        ])
    );
    let rows = engine.run(&objects, "spanway-failed-calls-per-edge").await;
    let failed = per_edge(&rows);
    assert_eq!(
        (failed["user frontend"], failed["checkout payments"]),
        (10.0, 8.0)
    );
    assert_eq!(failed.get("frontend checkout").copied().unwrap_or(0.0), 0.0);

    // The Jaeger dependency documents over time: every call once, three edges.
    let rows = engine.run(&objects, "spanway-dependency-calls").await;
    assert_eq!(
        rows.iter().map(|(_, v)| v["1"]).sum::<f64>(),
        (3 * TRACES) as f64
    );
    let rows = engine.run(&objects, "spanway-dependency-edges").await;
    assert!(
        !rows.is_empty() && rows.iter().all(|(_, v)| v["1"] == 3.0),
        "{rows:?}"
    );

    lens_panels_chart_the_topology(&engine).await;

    if opensearch {
        trace_analytics_reads_the_span_indices(&engine, &spans).await;
    }

    spanway_e2e::delete_prefixed(url, &prefix).await;
}

/// Every field of `fields` is in `index`, aggregatable, of its expected type, and neither it
/// nor a parent path is nested: what Kibana's data view needs to chart it.
async fn check_fields(url: &str, index: &str, fields: &BTreeSet<String>, what: &str) {
    let expected_types: BTreeMap<&str, &str> = FIELD_TYPES.into_iter().collect();
    let mut paths = fields.clone();
    for field in fields {
        let mut prefix = String::new();
        for part in field.split('.') {
            prefix.push_str(part);
            paths.insert(prefix.clone());
            prefix.push('.');
        }
    }
    let caps = reqwest::get(format!(
        "{url}/{index}/_field_caps?fields={}",
        paths.iter().cloned().collect::<Vec<_>>().join(",")
    ))
    .await
    .unwrap()
    .json::<Value>()
    .await
    .unwrap();
    for field in fields {
        let caps_of = &caps["fields"][field];
        let types: Vec<&String> = caps_of
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        let want = expected_types
            .get(field.as_str())
            .unwrap_or_else(|| panic!("{what}: field {field} has no expected type"));
        assert_eq!(types, [want], "{what}: {field} in {index}: {caps_of}");
        assert_eq!(caps_of[*want]["aggregatable"], true, "{what}: {field}");
    }
    for path in &paths {
        assert!(
            caps["fields"][path].get("nested").is_none(),
            "{what}: {path} is nested"
        );
    }
}

/// The Lens bundle's panels, compiled as Lens compiles them, on the known topology.
async fn lens_panels_chart_the_topology(engine: &Dashboards) {
    let objects = bundle_file("lens.ndjson");
    let panels = lens_panels(&objects);
    let run = |title: &str| {
        let (dashboard, panel) = panels
            .iter()
            .find(|(_, p)| p["title"] == title)
            .unwrap_or_else(|| panic!("no Lens panel {title:?}"));
        engine.run_lens(&objects, dashboard, panel)
    };
    let rows = run("Requests and error rate per service").await;
    let table: BTreeMap<String, (f64, f64, f64)> = rows
        .iter()
        .map(|(k, v)| (k[0].clone(), (v["req"], v["err"], v["rate"])))
        .collect();
    assert_eq!(
        table,
        BTreeMap::from([
            ("checkout".to_owned(), (40.0, 0.0, 0.0)),
            ("frontend".to_owned(), (40.0, 10.0, 0.25)),
            ("payments".to_owned(), (40.0, 8.0, 0.2)),
        ])
    );
    let rows = run("Requests per service over time").await;
    assert_eq!(
        by_key(&rows, 1, "req"),
        expect(&[("checkout", 40.0), ("frontend", 40.0), ("payments", 40.0)])
    );
    let rows = run("Request latency per service").await;
    let p95: BTreeMap<String, f64> = rows.iter().map(|(k, v)| (k[0].clone(), v["p95"])).collect();
    assert_eq!(
        p95,
        expect(&[
            ("checkout", 200_000.0),
            ("frontend", 250_000.0),
            ("payments", 30_000.0)
        ])
    );
    let rows = run("Operations").await;
    let operations: BTreeMap<String, (f64, f64, f64, f64)> = rows
        .iter()
        .map(|(k, v)| (k.join(" "), (v["req"], v["err"], v["rate"], v["p95"])))
        .collect();
    assert_eq!(
        operations,
        BTreeMap::from([
            (
                "checkout POST /order".to_owned(),
                (40.0, 0.0, 0.0, 200_000.0)
            ),
            (
                "frontend GET /checkout".to_owned(),
                (40.0, 10.0, 0.25, 250_000.0)
            ),
            (
                "payments POST /charge".to_owned(),
                (40.0, 8.0, 0.2, 30_000.0)
            ),
        ])
    );
    let rows = run("Service graph edges").await;
    let edges: BTreeMap<String, (f64, f64)> = rows
        .iter()
        .map(|(k, v)| (k.join(" "), (v["calls"], v["rate"])))
        .collect();
    assert_eq!(
        edges,
        BTreeMap::from([
            ("checkout payments".to_owned(), (40.0, 0.2)),
            ("frontend checkout".to_owned(), (40.0, 0.0)),
            ("user frontend".to_owned(), (40.0, 0.25)),
        ])
    );
}

/// OpenSearch Dashboards' Trace Analytics in Jaeger mode: the services list (traces per
/// service) and the services table's metrics (average latency, error count and rate, errors
/// being `tag.error: true`), with the fields, aggregations and filters it sends.
async fn trace_analytics_reads_the_span_indices(engine: &Dashboards, spans: &str) {
    let services = engine
        .post(
            &format!("{spans}/_search"),
            json!({
                "size": 0,
                "query": {"bool": {"must": [], "filter": [], "should": [], "must_not": []}},
                "aggs": {"service": {
                    "terms": {"field": "process.serviceName", "size": 10000},
                    "aggs": {"trace_count": {"cardinality": {"field": "traceID"}}}
                }}
            }),
        )
        .await;
    let traces: BTreeMap<String, u64> = services["aggregations"]["service"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["key"].as_str().unwrap().to_owned(),
                b["trace_count"]["value"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        traces,
        BTreeMap::from([
            ("checkout".to_owned(), TRACES),
            ("frontend".to_owned(), TRACES),
            ("payments".to_owned(), TRACES)
        ])
    );

    // Root and non-root spans alike (it ORs a filter on `references` with its negation).
    let any_references = json!({"bool": {"should": [
        {"bool": {"filter": [{"bool": {"must_not": {"term": {"references": {"value": []}}}}}]}},
        {"bool": {"must": {"term": {"references": {"value": []}}}}}
    ]}});
    let metrics = engine
        .post(
            &format!("{spans}/_search"),
            json!({
                "size": 0,
                "query": {"bool": {"filter": [
                    {"terms": {"process.serviceName": ["checkout", "frontend", "payments"]}},
                    any_references,
                    {"range": {"startTime": {
                        "gte": engine.from_ms * 1000, "lte": engine.to_ms * 1000
                    }}}
                ]}},
                "aggregations": {"service_name": {
                    "terms": {"field": "process.serviceName", "size": 500,
                              "order": [{"_count": "desc"}, {"_key": "asc"}]},
                    "aggregations": {
                        "average_latency_nanos": {"avg": {"field": "duration"}},
                        "average_latency": {"bucket_script": {
                            "buckets_path": {"count": "_count", "latency": "average_latency_nanos.value"},
                            "script": "Math.round(params.latency / 10) / 100.0"
                        }},
                        "error_count": {"filter": {"term": {"tag.error": true}}},
                        "error_rate": {"bucket_script": {
                            "buckets_path": {"total": "_count", "errors": "error_count._count"},
                            "script": "params.errors / params.total * 100"
                        }}
                    }
                }}
            }),
        )
        .await;
    let table: BTreeMap<String, (u64, f64, u64, f64)> =
        metrics["aggregations"]["service_name"]["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["key"].as_str().unwrap().to_owned(),
                    (
                        b["doc_count"].as_u64().unwrap(),
                        b["average_latency"]["value"].as_f64().unwrap(),
                        b["error_count"]["doc_count"].as_u64().unwrap(),
                        b["error_rate"]["value"].as_f64().unwrap(),
                    ),
                )
            })
            .collect();
    // Spans per service (server and client), average duration in ms, failed spans, % failed.
    assert_eq!(
        table,
        BTreeMap::from([
            ("checkout".to_owned(), (80, 120.0, 0, 0.0)),
            ("frontend".to_owned(), (80, 235.0, 10, 12.5)),
            ("payments".to_owned(), (40, 30.0, 8, 20.0)),
        ])
    );
}
