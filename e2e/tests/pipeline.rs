//! One known trace through the whole pipeline: OTLP/HTTP into the collector,
//! through a real Kafka topic, into real OpenSearch via the ingester. The
//! span documents must carry exactly the fields Jaeger query reads.

// A failed step is a failed test: panicking on it is the point.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use prost::Message as _;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use serde_json::{Value, json};
use spanway_e2e::{Engine, create_topic, kafka_bootstrap, require_kafka, search, unique_name};
use spanway_schemas::partition::murmur2_partition;
use spanway_schemas::proto::otlp::{self, any_value::Value as Any};
use tokio_util::sync::CancellationToken;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const ROOT: &str = "00f067aa0ba902b7";
const CLIENT: &str = "1a2b3c4d5e6f7081";
const SERVER: &str = "99aabbccddeeff00";
/// 2026-03-14T01:59:26.535897Z in nanoseconds.
const START_NS: u64 = 1_773_453_566_535_897_000;

fn bytes(hex_text: &str) -> Vec<u8> {
    (0..hex_text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex_text[i..i + 2], 16).expect("hex literal"))
        .collect()
}

fn span(
    id: &str,
    parent: Option<&str>,
    name: &str,
    kind: otlp::span::SpanKind,
    start: u64,
    end: u64,
) -> otlp::Span {
    otlp::Span {
        trace_id: bytes(TRACE),
        span_id: bytes(id),
        parent_span_id: parent.map(bytes).unwrap_or_default(),
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        ..Default::default()
    }
}

fn resource_spans(service: &str, spans: Vec<otlp::Span>) -> otlp::ResourceSpans {
    otlp::ResourceSpans {
        resource: Some(otlp::Resource {
            attributes: vec![
                otlp::KeyValue::new("service.name", Any::StringValue(service.into())),
                otlp::KeyValue::new("host.name", Any::StringValue("e2e-host".into())),
            ],
            ..Default::default()
        }),
        scope_spans: vec![otlp::ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn known_trace() -> otlp::ExportTraceServiceRequest {
    use otlp::span::SpanKind;
    let mut root = span(
        ROOT,
        None,
        "GET /checkout",
        SpanKind::Server,
        START_NS,
        START_NS + 250_000_000,
    );
    root.attributes = vec![
        otlp::KeyValue::new("http.request.method", Any::StringValue("GET".into())),
        otlp::KeyValue::new("http.response.status_code", Any::IntValue(502)),
    ];
    root.status = Some(otlp::Status {
        code: otlp::status::StatusCode::Error as i32,
        message: "upstream failed".into(),
    });
    let mut client = span(
        CLIENT,
        Some(ROOT),
        "charge",
        SpanKind::Client,
        START_NS + 10_000,
        START_NS + 200_010_000,
    );
    client.attributes = vec![otlp::KeyValue::new(
        "peer.service",
        Any::StringValue("payments".into()),
    )];
    let server = span(
        SERVER,
        Some(CLIENT),
        "POST /charge",
        SpanKind::Server,
        START_NS + 20_000,
        START_NS + 199_000_000,
    );
    otlp::ExportTraceServiceRequest {
        resource_spans: vec![
            resource_spans("frontend", vec![root, client]),
            resource_spans("payments", vec![server]),
        ],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_trace_reaches_opensearch_as_jaeger_documents() {
    let url = Engine::OpenSearch.require().await;
    otlp_trace_reaches_engine(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_trace_reaches_elasticsearch_as_jaeger_documents() {
    let url = Engine::Elasticsearch7.require().await;
    otlp_trace_reaches_engine(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_trace_reaches_elasticsearch_8_as_jaeger_documents() {
    let url = Engine::Elasticsearch8.require().await;
    otlp_trace_reaches_engine(&url).await;
}

async fn otlp_trace_reaches_engine(engine: &str) {
    let pipeline = common::Pipeline::start("e2e", engine).await;
    let prefix = pipeline.prefix.clone();
    let ingester = &pipeline.ingester;

    // Send the trace as an OTLP exporter does.
    let status = pipeline.post_otlp(known_trace().encode_to_vec()).await;
    assert_eq!(status, 200, "collector accepted the trace");

    // Kafka holds one record for the trace, keyed and labelled as the contract says.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("group.id", unique_name("e2e-inspect"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&pipeline.topic]).unwrap();
    let record = (0..60)
        .find_map(|_| {
            consumer
                .poll(Duration::from_millis(500))
                .map(|m| m.unwrap().detach())
        })
        .expect("a record on the topic");
    assert_eq!(record.key(), Some(TRACE.as_bytes()));
    assert_eq!(
        u32::try_from(record.partition()).unwrap(),
        murmur2_partition(TRACE.as_bytes(), 3),
        "the producer places the record where the contract's partitioner says"
    );
    let headers = record.headers().unwrap();
    let encoding = headers
        .iter()
        .find(|h| h.key == "encoding")
        .and_then(|h| h.value);
    assert_eq!(encoding, Some(&b"otlp_proto"[..]));
    let data = otlp::TracesData::decode(record.payload().unwrap()).unwrap();
    assert_eq!(
        data.resource_spans
            .iter()
            .map(|rs| rs.scope_spans[0].spans.len())
            .sum::<usize>(),
        3
    );

    // OpenSearch gets the three span documents in the daily index of the span start.
    let span_index = format!("{prefix}-jaeger-span-2026-03-14");
    let query = json!({"query": {"term": {"traceID": TRACE}}, "size": 10});
    let mut docs = Vec::new();
    for _ in 0..120 {
        docs = search(engine, &span_index, query.clone()).await;
        if docs.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(docs.len(), 3, "span documents in {span_index}: {docs:?}");
    let by_id = |id: &str| {
        docs.iter()
            .find(|d| d["spanID"] == id)
            .unwrap_or_else(|| panic!("no span {id}"))
    };

    let root = by_id(ROOT);
    assert_eq!(root["traceID"], TRACE);
    assert_eq!(root["operationName"], "GET /checkout");
    assert_eq!(root["process"]["serviceName"], "frontend");
    assert_eq!(root["startTime"], START_NS / 1000);
    assert_eq!(root["startTimeMillis"], START_NS / 1_000_000);
    assert_eq!(root["duration"], 250_000);
    assert_eq!(root["references"], json!([]));
    // Span kind and the error flag are fields, as Jaeger v2 writes them, and so are the
    // HTTP tags of the default tags-as-fields keys, the status code a number, and the
    // other tags, whose keys the ingester learns.
    assert_eq!(
        root["tag"],
        json!({
            "span@kind": "server",
            "error": true,
            "http@request@method": "GET",
            "http@response@status_code": 502,
            "otel@status_description": "upstream failed"
        })
    );
    // A keyword, which Jaeger's regexp tag search needs, with a numeric sub-field for charts.
    for (field, expected) in [
        ("tag.http@response@status_code", "keyword"),
        ("tag.http@response@status_code.number", "long"),
    ] {
        let mapping: Value = reqwest::get(format!("{engine}/{span_index}/_mapping/field/{field}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let found = mapping
            .as_object()
            .and_then(|indices| indices.values().next())
            .and_then(|index| index["mappings"][field]["mapping"].as_object())
            .and_then(|m| m.values().next())
            .map(|f| f["type"].clone());
        assert_eq!(found, Some(json!(expected)), "{field}: {mapping}");
    }
    assert!(
        root["tags"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["key"] != "span.kind" && t["key"] != "error"),
        "not nested as well: {root}"
    );
    assert_eq!(root["tags"], json!([]), "no tag left nested: {root}");
    assert_eq!(root["process"]["tag"], json!({"host@name": "e2e-host"}));
    assert_eq!(root["process"]["tags"], json!([]));

    let client = by_id(CLIENT);
    assert_eq!(client["operationName"], "charge");
    assert_eq!(client["startTime"], START_NS / 1000 + 10);
    assert_eq!(client["duration"], 200_000);
    assert_eq!(client["tag"]["span@kind"], "client");
    assert_eq!(client["tag"]["peer@service"], "payments");
    assert_eq!(
        client["references"],
        json!([{"refType": "CHILD_OF", "traceID": TRACE, "spanID": ROOT}])
    );

    let server = by_id(SERVER);
    assert_eq!(server["process"]["serviceName"], "payments");
    assert_eq!(server["duration"], 198_980);
    assert_eq!(
        server["references"],
        json!([{"refType": "CHILD_OF", "traceID": TRACE, "spanID": CLIENT}])
    );

    // The service index lists every service/operation pair once.
    let service_index = format!("{prefix}-jaeger-service-2026-03-14");
    let services = search(engine, &service_index, json!({"size": 100})).await;
    let mut pairs: Vec<(String, String)> = services
        .iter()
        .map(|d| {
            (
                d["serviceName"].as_str().unwrap().into(),
                d["operationName"].as_str().unwrap().into(),
            )
        })
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        vec![
            ("frontend".into(), "GET /checkout".into()),
            ("frontend".into(), "charge".into()),
            ("payments".into(), "POST /charge".into()),
        ]
    );

    // Sending the same trace again must not create duplicates (deterministic ids + create).
    let again = pipeline.post_otlp(known_trace().encode_to_vec()).await;
    assert_eq!(again, 200);
    for _ in 0..60 {
        if ingester.metrics.records_consumed.get() >= 2
            && ingester.metrics.bytes_in_flight.get() == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        ingester.metrics.records_consumed.get(),
        2,
        "the resent trace was consumed"
    );
    assert_eq!(
        search(engine, &span_index, query).await.len(),
        3,
        "redelivery created no duplicate"
    );

    pipeline.stop().await;
    spanway_e2e::delete_prefixed(engine, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_refuses_invalid_ids_naming_the_field() {
    require_kafka();
    let topic = unique_name("e2e-invalid");
    create_topic(&topic, 1).await;
    let shutdown = CancellationToken::new();
    let collector = common::collector(&topic, &shutdown).await;

    let mut request = known_trace();
    request.resource_spans[1].scope_spans[0].spans[0].trace_id = vec![0; 16];
    let response = reqwest::Client::new()
        .post(format!(
            "http://{}/v1/traces",
            collector.otlp_http_addr.unwrap()
        ))
        .header("content-type", "application/x-protobuf")
        .body(request.encode_to_vec())
        .send()
        .await
        .unwrap();
    // OTLP partial success: the other spans are published, the invalid one
    // is left out and reported with the field named.
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    let answer = otlp::ExportTraceServiceResponse::decode(body).unwrap();
    let partial = answer.partial_success.unwrap_or_default();
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial
            .error_message
            .contains("resource_spans[1].scope_spans[0].spans[0].trace_id: all-zero id is invalid"),
        "{}",
        partial.error_message
    );
    shutdown.cancel();
    collector.wait().await;
}
