//! The real Jaeger query (v1.76.0, built by `dev/jaeger build`) reads the
//! indices the ingester writes: known traces go OTLP/HTTP → collector →
//! Kafka → ingester → OpenSearch (and Elasticsearch 7.17), then Jaeger
//! query's HTTP API must list the services and operations, find a trace by
//! service and tag, and return it by id with every span and the parent/child
//! structure intact, also for a trace id whose high half is zero (which
//! Jaeger looks up in its 16-character form).

// A failed step is a failed test: panicking on it is the point.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message as _;
use serde_json::{Value, json};
use spanway_e2e::jaeger_query::{JaegerQuery, jaeger_query_bin};
use spanway_e2e::{Engine, search};
use spanway_schemas::proto::otlp;

/// The gold customer's order: frontend → checkout → payments.
const GOLD: &str = "7c1e0a9b3d5f42e8a6b4c2d0e8f61a3b";
/// The same shape for a silver customer: must not match the gold search.
const SILVER: &str = "e4d3c2b1a0f9487e9d6c5b4a39281706";
/// A single-span trace of the frontend alone.
const HEALTH: &str = "5a5a5a5a5a5a4b4b8c8c8c8c8c8c8c8c";
/// A frontend readiness check calling a cache, with a trace id whose high
/// 8 bytes are zero (as from a client with 64-bit ids). Jaeger writes and
/// looks up such ids in their 16-character form ([`ZERO_HIGH_JAEGER`]) with
/// an exact term query, so the ingester must write that form too. Its low
/// half is [`HEALTH`]'s, so a lookup that is not exact would mix the two.
const ZERO_HIGH: &str = "00000000000000008c8c8c8c8c8c8c8c";
/// [`ZERO_HIGH`] as Jaeger spells it.
const ZERO_HIGH_JAEGER: &str = "8c8c8c8c8c8c8c8c";

const SERVICES: [&str; 3] = ["checkout", "frontend", "payments"];

/// One span of a known trace, with times relative to the test's base time.
struct SpanSpec {
    id: &'static str,
    parent: Option<&'static str>,
    service: &'static str,
    name: &'static str,
    kind: otlp::span::SpanKind,
    /// Start, in µs after the trace's base time.
    offset_us: u64,
    duration_us: u64,
    attributes: Vec<(&'static str, &'static str)>,
}

fn order_trace(ids: [&'static str; 5], tier: &'static str) -> Vec<SpanSpec> {
    use otlp::span::SpanKind::{Client, Server};
    let [root, place, order, charge, pay] = ids;
    vec![
        SpanSpec {
            id: root,
            parent: None,
            service: "frontend",
            name: "GET /cart/checkout",
            kind: Server,
            offset_us: 0,
            duration_us: 120_000,
            attributes: vec![("http.request.method", "GET")],
        },
        SpanSpec {
            id: place,
            parent: Some(root),
            service: "frontend",
            name: "checkout.PlaceOrder",
            kind: Client,
            offset_us: 1_000,
            duration_us: 110_000,
            attributes: vec![("peer.service", "checkout")],
        },
        SpanSpec {
            id: order,
            parent: Some(place),
            service: "checkout",
            name: "PlaceOrder",
            kind: Server,
            offset_us: 2_500,
            duration_us: 105_000,
            attributes: vec![("customer.tier", tier)],
        },
        SpanSpec {
            id: charge,
            parent: Some(order),
            service: "checkout",
            name: "payments.Charge",
            kind: Client,
            offset_us: 10_000,
            duration_us: 80_000,
            attributes: vec![("peer.service", "payments")],
        },
        SpanSpec {
            id: pay,
            parent: Some(charge),
            service: "payments",
            name: "POST /v2/charges",
            kind: Server,
            offset_us: 11_250,
            duration_us: 77_777,
            attributes: vec![("payment.method", "card")],
        },
    ]
}

fn known_traces() -> Vec<(&'static str, Vec<SpanSpec>)> {
    use otlp::span::SpanKind::{Client, Server};
    vec![
        (
            GOLD,
            order_trace(
                [
                    "a1a1a1a1a1a1a1a1",
                    "a2a2a2a2a2a2a2a2",
                    "a3a3a3a3a3a3a3a3",
                    "a4a4a4a4a4a4a4a4",
                    "a5a5a5a5a5a5a5a5",
                ],
                "gold",
            ),
        ),
        (
            SILVER,
            order_trace(
                [
                    "b1b1b1b1b1b1b1b1",
                    "b2b2b2b2b2b2b2b2",
                    "b3b3b3b3b3b3b3b3",
                    "b4b4b4b4b4b4b4b4",
                    "b5b5b5b5b5b5b5b5",
                ],
                "silver",
            ),
        ),
        (
            HEALTH,
            vec![SpanSpec {
                id: "c1c1c1c1c1c1c1c1",
                parent: None,
                service: "frontend",
                name: "GET /healthz",
                kind: Server,
                offset_us: 0,
                duration_us: 350,
                attributes: vec![],
            }],
        ),
        (
            ZERO_HIGH,
            vec![
                SpanSpec {
                    id: "d1d1d1d1d1d1d1d1",
                    parent: None,
                    service: "frontend",
                    name: "GET /readyz",
                    kind: Server,
                    offset_us: 0,
                    duration_us: 2_000,
                    attributes: vec![("http.request.method", "GET")],
                },
                SpanSpec {
                    id: "d2d2d2d2d2d2d2d2",
                    parent: Some("d1d1d1d1d1d1d1d1"),
                    service: "frontend",
                    name: "cache.Get",
                    kind: Client,
                    offset_us: 300,
                    duration_us: 1_200,
                    attributes: vec![("peer.service", "cache")],
                },
            ],
        ),
    ]
}

/// How Jaeger spells a trace id: 16 characters when the high half is zero.
fn jaeger_id(trace_id: &str) -> &str {
    match trace_id.strip_prefix("0000000000000000") {
        Some(low) if trace_id.len() == 32 => low,
        _ => trace_id,
    }
}

fn bytes(hex_text: &str) -> Vec<u8> {
    (0..hex_text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex_text[i..i + 2], 16).expect("hex literal"))
        .collect()
}

/// The known traces as one OTLP export request; trace `i` starts at
/// `base_us + i` ms (µs since the epoch).
fn export_request(base_us: u64) -> otlp::ExportTraceServiceRequest {
    let mut resource_spans = Vec::new();
    for (i, (trace, spans)) in known_traces().into_iter().enumerate() {
        let trace_base_us = base_us + 1_000 * i as u64;
        let mut by_service: BTreeMap<&str, Vec<otlp::Span>> = BTreeMap::new();
        for s in spans {
            let start_ns = (trace_base_us + s.offset_us) * 1_000;
            by_service.entry(s.service).or_default().push(otlp::Span {
                trace_id: bytes(trace),
                span_id: bytes(s.id),
                parent_span_id: s.parent.map(bytes).unwrap_or_default(),
                name: s.name.into(),
                kind: s.kind as i32,
                start_time_unix_nano: start_ns,
                end_time_unix_nano: start_ns + s.duration_us * 1_000,
                attributes: s
                    .attributes
                    .iter()
                    .map(|(k, v)| otlp::KeyValue::string(*k, *v))
                    .collect(),
                ..Default::default()
            });
        }
        for (service, spans) in by_service {
            resource_spans.push(otlp::ResourceSpans {
                resource: Some(otlp::Resource {
                    attributes: vec![
                        otlp::KeyValue::string("service.name", service),
                        otlp::KeyValue::string("host.name", format!("{service}-host")),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![otlp::ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
    }
    otlp::ExportTraceServiceRequest { resource_spans }
}

fn now_us() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros(),
    )
    .unwrap()
}

fn sorted_strings(value: &Value) -> Vec<String> {
    let mut names: Vec<String> = value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

fn trace_ids(body: &Value) -> BTreeSet<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["traceID"].as_str().unwrap().to_owned())
        .collect()
}

/// A `/api/traces` answer with each trace's spans sorted by span id.
fn spans_by_id(mut body: Value) -> Value {
    for trace in body["data"].as_array_mut().unwrap() {
        trace["spans"]
            .as_array_mut()
            .unwrap()
            .sort_by(|a, b| a["spanID"].as_str().cmp(&b["spanID"].as_str()));
    }
    body
}

spanway_e2e::per_engine!(
    jaeger_query_reads:
    jaeger_query_reads_opensearch_indices => OpenSearch,
    jaeger_query_reads_elasticsearch_indices => Elasticsearch7,
    jaeger_query_reads_elasticsearch_8_indices => Elasticsearch8,
);

async fn jaeger_query_reads(kind: Engine) {
    jaeger_query_bin();
    let engine = &kind.require().await;
    let storage_type = kind.jaeger_kind();
    let pipeline = common::Pipeline::start("e2e-jq", engine).await;
    let prefix = pipeline.prefix.clone();

    // The traces started a few seconds ago: Jaeger looks back 72 h for
    // services and by the requested window for searches.
    let base_us = now_us() - 5_000_000;
    let status = pipeline
        .post_otlp(export_request(base_us).encode_to_vec())
        .await;
    assert_eq!(status, 200, "collector accepted the traces");

    // Wait until the ingester has written every span and service document.
    let span_count: usize = known_traces().iter().map(|(_, s)| s.len()).sum();
    let pair_count = known_traces()
        .iter()
        .flat_map(|(_, spans)| spans.iter().map(|s| (s.service, s.name)))
        .collect::<BTreeSet<_>>()
        .len();
    let all = json!({"query": {"match_all": {}}, "size": 100});
    let span_pattern = format!("{prefix}-jaeger-span-*");
    let service_pattern = format!("{prefix}-jaeger-service-*");
    let (mut spans, mut pairs) = (0, 0);
    for _ in 0..120 {
        spans = search(engine, &span_pattern, all.clone()).await.len();
        pairs = search(engine, &service_pattern, all.clone()).await.len();
        if spans >= span_count && pairs >= pair_count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(spans, span_count, "span documents in {span_pattern}");
    assert_eq!(pairs, pair_count, "service documents in {service_pattern}");

    // Legacy templates on OpenSearch and Elasticsearch 7, composable ones on
    // Elasticsearch 8 (the ingester picks by server): as one map name → body.
    let templates = |engine: String, prefix: String| async move {
        let get = |path: String| async move {
            reqwest::get(path)
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        };
        let legacy = get(format!("{engine}/_template/{prefix}-jaeger-*")).await;
        if legacy.as_object().is_some_and(|o| !o.is_empty()) {
            return legacy;
        }
        let composable = get(format!("{engine}/_index_template/{prefix}-jaeger-*")).await;
        let by_name = composable["index_templates"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| (t["name"].as_str().unwrap_or_default().to_owned(), t.clone()))
            .collect::<serde_json::Map<_, _>>();
        Value::Object(by_name)
    };
    let ours = templates(engine.to_owned(), prefix.clone()).await;
    assert_eq!(ours.as_object().unwrap().len(), 2, "templates: {ours}");

    let mut jaeger = JaegerQuery::start(storage_type, engine, &prefix);
    jaeger.wait_ready().await;
    assert_eq!(
        templates(engine.to_owned(), prefix.clone()).await,
        ours,
        "Jaeger query left the ingester's index templates alone"
    );

    // Services and operations come from the service index.
    let services = jaeger.get("/services", &[]).await;
    assert_eq!(sorted_strings(&services["data"]), SERVICES, "{services}");

    let operations = jaeger.get("/services/frontend/operations", &[]).await;
    assert_eq!(
        sorted_strings(&operations["data"]),
        [
            "GET /cart/checkout",
            "GET /healthz",
            "GET /readyz",
            "cache.Get",
            "checkout.PlaceOrder"
        ],
        "{operations}"
    );
    let operations = jaeger.get("/operations", &[("service", "checkout")]).await;
    let names: BTreeSet<&str> = operations["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["PlaceOrder", "payments.Charge"]),
        "{operations}"
    );

    // Searches use the span index, within a start-time window in µs.
    let start = (base_us - 60_000_000).to_string();
    let end = (now_us() + 60_000_000).to_string();
    let window = [
        ("start", start.as_str()),
        ("end", end.as_str()),
        ("limit", "20"),
    ];
    let find = |extra: Vec<(&'static str, &'static str)>| {
        let mut query = window.to_vec();
        query.extend(extra);
        let jaeger = &jaeger;
        async move { jaeger.get("/traces", &query).await }
    };

    let gold = find(vec![
        ("service", "checkout"),
        ("tags", r#"{"customer.tier":"gold"}"#),
    ])
    .await;
    assert_eq!(
        trace_ids(&gold),
        BTreeSet::from([GOLD.to_owned()]),
        "{gold}"
    );
    assert_eq!(gold["data"][0]["spans"].as_array().unwrap().len(), 5);

    let none = find(vec![
        ("service", "checkout"),
        ("tags", r#"{"customer.tier":"platinum"}"#),
    ])
    .await;
    assert_eq!(trace_ids(&none), BTreeSet::new(), "{none}");

    let by_operation = find(vec![
        ("service", "frontend"),
        ("operation", "GET /cart/checkout"),
    ])
    .await;
    assert_eq!(
        trace_ids(&by_operation),
        BTreeSet::from([GOLD.to_owned(), SILVER.to_owned()]),
        "{by_operation}"
    );

    let frontend = find(vec![("service", "frontend")]).await;
    assert_eq!(
        trace_ids(&frontend),
        BTreeSet::from([
            GOLD.to_owned(),
            SILVER.to_owned(),
            HEALTH.to_owned(),
            ZERO_HIGH_JAEGER.to_owned(),
        ]),
        "{frontend}"
    );

    // The zero-high trace is found by its root's operation, whole, and
    // answered under Jaeger's 16-character id. (A search fetches the stored
    // id strings as they are, so it would pass with 32-character ids too:
    // only the get by id below catches those.)
    let readyz = find(vec![("service", "frontend"), ("operation", "GET /readyz")]).await;
    assert_eq!(
        trace_ids(&readyz),
        BTreeSet::from([ZERO_HIGH_JAEGER.to_owned()]),
        "{readyz}"
    );
    assert_eq!(
        readyz["data"][0]["spans"].as_array().unwrap().len(),
        2,
        "{readyz}"
    );

    // Each trace by id: every span, names, services, parents, times in µs.
    // The zero-high trace goes by its 16-character id here.
    for (i, (trace_id, expected)) in known_traces().into_iter().enumerate() {
        let trace_id = jaeger_id(trace_id);
        let body = jaeger.get(&format!("/traces/{trace_id}"), &[]).await;
        let data = body["data"].as_array().unwrap();
        assert_eq!(data.len(), 1, "{body}");
        let trace = &data[0];
        assert_eq!(trace["traceID"], trace_id);
        let spans = trace["spans"].as_array().unwrap();
        assert_eq!(spans.len(), expected.len(), "spans of {trace_id}: {trace}");
        let trace_base_us = base_us + 1_000 * i as u64;
        for want in &expected {
            let got = spans
                .iter()
                .find(|s| s["spanID"] == want.id)
                .unwrap_or_else(|| panic!("no span {} in {trace}", want.id));
            assert_eq!(got["traceID"], trace_id);
            assert_eq!(got["operationName"], want.name, "{got}");
            assert_eq!(got["startTime"], trace_base_us + want.offset_us, "{got}");
            assert_eq!(got["duration"], want.duration_us, "{got}");
            let process = &trace["processes"][got["processID"].as_str().unwrap()];
            assert_eq!(process["serviceName"], want.service, "{got} {process}");
            let host = process["tags"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["key"] == "host.name")
                .unwrap_or_else(|| panic!("no host.name in {process}"));
            assert_eq!(host["value"], format!("{}-host", want.service));
            let references = match want.parent {
                Some(parent) => {
                    json!([{"refType": "CHILD_OF", "traceID": trace_id, "spanID": parent}])
                }
                None => json!([]),
            };
            assert_eq!(got["references"], references, "{got}");
            let tags = got["tags"].as_array().unwrap();
            let tag = |key: &str| {
                tags.iter()
                    .find(|t| t["key"] == key)
                    .unwrap_or_else(|| panic!("no tag {key} in {got}"))["value"]
                    .clone()
            };
            let kind = match want.kind {
                otlp::span::SpanKind::Client => "client",
                _ => "server",
            };
            assert_eq!(tag("span.kind"), kind, "{got}");
            for (key, value) in &want.attributes {
                assert_eq!(tag(key), *value, "{got}");
            }
        }
    }

    // Jaeger parses a 32-character id with a zero high half to the same
    // id and looks it up in the 16-character form, so the zero-padded id
    // answers with the same trace (ids spelled in the 16-character form).
    // Span order varies between answers, hence the sorting.
    let short = spans_by_id(
        jaeger
            .get(&format!("/traces/{ZERO_HIGH_JAEGER}"), &[])
            .await,
    );
    let padded = spans_by_id(jaeger.get(&format!("/traces/{ZERO_HIGH}"), &[]).await);
    assert_eq!(padded, short, "GET /traces/{ZERO_HIGH}");
    let trace = &padded["data"][0];
    assert_eq!(trace["traceID"], ZERO_HIGH_JAEGER, "{padded}");
    let spans = trace["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2, "{padded}");
    let child = spans
        .iter()
        .find(|s| s["spanID"] == "d2d2d2d2d2d2d2d2")
        .unwrap_or_else(|| panic!("no child span in {padded}"));
    assert_eq!(
        child["references"],
        json!([{"refType": "CHILD_OF", "traceID": ZERO_HIGH_JAEGER, "spanID": "d1d1d1d1d1d1d1d1"}]),
        "{padded}"
    );

    // An id that was never written is a 404, not an empty trace.
    let missing = reqwest::Client::new()
        .get(format!(
            "{}/traces/0123456789abcdef0123456789abcdef",
            jaeger.api
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    drop(jaeger);
    pipeline.stop_and_remove(engine).await;
}

/// With `span_ids = "engine"` a request the collector receives twice (a
/// client resending after a lost answer) is stored twice; Jaeger query's
/// trace view shows each span once all the same, as its standard adjusters
/// drop a span identical to another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jaeger_query_shows_a_span_stored_twice_once() {
    jaeger_query_bin();
    let kind = Engine::OpenSearch;
    let engine = &kind.require().await;
    let pipeline = common::Pipeline::start_with("e2e-jq-twice", engine, |config| {
        config.elasticsearch.span_ids = spanway_ingester::config::SpanIds::Engine;
    })
    .await;
    let prefix = pipeline.prefix.clone();

    let body = export_request(now_us() - 5_000_000).encode_to_vec();
    for _ in 0..2 {
        let status = pipeline.post_otlp(body.clone()).await;
        assert_eq!(status, 200, "collector accepted the traces");
    }
    let span_count: usize = known_traces().iter().map(|(_, s)| s.len()).sum();
    let span_pattern = format!("{prefix}-jaeger-span-*");
    let all = json!({"query": {"match_all": {}}, "size": 100});
    let mut stored = 0;
    for _ in 0..120 {
        stored = search(engine, &span_pattern, all.clone()).await.len();
        if stored >= 2 * span_count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(stored, 2 * span_count, "every span stored twice");

    let mut jaeger = JaegerQuery::start(kind.jaeger_kind(), engine, &prefix);
    jaeger.wait_ready().await;
    for (trace_id, spans) in known_traces() {
        let body = jaeger
            .get(&format!("/traces/{}", jaeger_id(trace_id)), &[])
            .await;
        let shown: BTreeSet<&str> = body["data"][0]["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["spanID"].as_str().unwrap())
            .collect();
        assert_eq!(
            body["data"][0]["spans"].as_array().unwrap().len(),
            spans.len(),
            "{trace_id}: each span once: {body}"
        );
        assert_eq!(
            shown,
            spans.iter().map(|s| s.id).collect::<BTreeSet<_>>(),
            "{trace_id}"
        );
    }

    drop(jaeger);
    pipeline.stop_and_remove(engine).await;
}
