//! Jaeger v2 (an OpenTelemetry Collector distribution, built by `dev/jaeger build v2`) on the
//! same topics as our services:
//! - their producer, our consumers: for each Kafka exporter encoding the contract accepts
//!   (`otlp_proto`, `otlp_json`, `jaeger_proto`, `jaeger_json`), the OpenTelemetry Python SDK
//!   sends to Jaeger v2's OTLP receiver, whose Kafka exporter writes a topic of 3 partitions
//!   (`partition_traces_by_id: true`, no headers); our ingester and streaming analytics read
//!   it with the matching default encoding. Every exported span is stored exactly once, as the
//!   same spans are stored when they go through our collector (for the Jaeger encodings, but
//!   for one tag the Collector's own OTLP → Jaeger translation adds), and the same edges are
//!   counted;
//!   the records of a trace all share its key and partition;
//! - without `partition_traces_by_id`, OTLP records have no key and may hold several traces:
//!   our consumers still store every span once;
//! - our producer, their consumer: our collector writes a topic; Jaeger v2's Kafka receiver
//!   (`encoding: otlp_proto`) reads it into its memory store, and its query API returns every
//!   trace with all its spans.
//!
//! Needs `dev/jaeger build v2` (dev/test runs it).

// A failed step is a failed test: panicking on it is the point.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use prost::Message as _;
use serde_json::Value;
use spanway_e2e::jaeger_v2::{JaegerV2, collector_config, free_ports, query_config};
use spanway_e2e::{
    Edges, Engine, create_topic, dependency_edges, opensearch_url, read_topic, require_kafka,
    span_documents, unique_name,
};
use spanway_ingester::Ingester;
use spanway_schemas::Encoding;
use spanway_schemas::proto::otlp;
use spanway_streaming_analytics::Analytics;
use tokio_util::sync::CancellationToken;

mod common;

const PARTITIONS: i32 = 3;

/// The OpenTelemetry Python SDK (`dev/clients/otel-python`) sends its known traces over
/// OTLP/gRPC to `endpoint`; returns what it reports as exported.
async fn send_with_python_sdk(
    endpoint: String,
    run_id: &str,
    dir: &Path,
) -> otlp::ExportTraceServiceRequest {
    let out = dir.join(format!("{run_id}.binpb"));
    let script = spanway_e2e::secure::repo_root().join("dev/clients/otel-python");
    let output = {
        let out = out.clone();
        let run_id = run_id.to_owned();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("bash")
                .arg(script)
                .args(["--endpoint", &endpoint, "--protocol", "grpc"])
                .args(["--run-id", &run_id])
                .arg("--out")
                .arg(out)
                .output()
        })
        .await
        .unwrap()
        .expect("run dev/clients/otel-python")
    };
    assert!(
        output.status.success(),
        "dev/clients/otel-python failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    otlp::ExportTraceServiceRequest::decode(std::fs::read(&out).expect("sent spans").as_slice())
        .expect("sent spans decode")
}

fn spans_of(request: &otlp::ExportTraceServiceRequest) -> impl Iterator<Item = &otlp::Span> {
    request
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Trace id (hex) → span ids (hex) of `request`.
fn traces_of(request: &otlp::ExportTraceServiceRequest) -> BTreeMap<String, BTreeSet<String>> {
    let mut traces: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for span in spans_of(request) {
        traces
            .entry(hex(&span.trace_id))
            .or_default()
            .insert(hex(&span.span_id));
    }
    traces
}

/// Polls the edges of both prefixes until `expected` is among the first and both agree, or a
/// deadline passes; returns the last reads.
async fn settled_edges(
    prefix: &str,
    reference: &str,
    expected: &(String, String),
) -> (Edges, Edges) {
    let url = opensearch_url();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let theirs = dependency_edges(&url, prefix).await;
        let ours = dependency_edges(&url, reference).await;
        if (theirs.contains_key(expected) && theirs == ours) || Instant::now() >= deadline {
            return (theirs, ours);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `doc` without an `otel.status_code` tag valued `ERROR`. For the Jaeger encodings the
/// OpenTelemetry Collector translates OTLP to the Jaeger model itself, and it writes that tag
/// beside `error: true` for a failed span; our collector (`schemas/src/to_jaeger.rs`) writes
/// `error: true` alone. That tag is the only difference the comparison allows.
/// The ingester stores it as the field `tag.otel@status_code` (a default tags-as-fields key),
/// else in the nested tags.
fn without_error_status_code(doc: &Value) -> Value {
    let mut doc = doc.clone();
    if let Some(tags) = doc["tags"].as_array_mut() {
        tags.retain(|t| !(t["key"] == "otel.status_code" && t["value"] == "ERROR"));
    }
    if let Some(fields) = doc["tag"].as_object_mut()
        && fields.get("otel@status_code").is_some_and(|v| v == "ERROR")
    {
        fields.remove("otel@status_code");
    }
    doc
}

/// Jaeger v2 as a collector writing `encoding` to a topic; our ingester and analytics read it.
async fn their_producer(encoding: &str, ours: Encoding, partition_by_trace_id: bool) {
    require_kafka();
    Engine::OpenSearch.require().await;
    let dir = tempfile::tempdir().unwrap();
    let topic = unique_name(&format!("jv2-{}", encoding.replace('_', "-")));
    let reference_topic = format!("{topic}-reference");
    for t in [&topic, &reference_topic] {
        create_topic(t, PARTITIONS).await;
    }
    let prefix = unique_name("jv2");
    let reference_prefix = format!("{prefix}-ref");
    let shutdown = CancellationToken::new();
    let mut started = Vec::new();
    for (t, p, e) in [
        (&topic, &prefix, ours),
        (&reference_topic, &reference_prefix, Encoding::OtlpProto),
    ] {
        let ingester = Ingester::start(common::ingester(t, p, e), shutdown.clone())
            .await
            .expect("ingester starts");
        let analytics = Analytics::start(&common::analytics(t, p, e), shutdown.clone())
            .await
            .expect("analytics starts");
        started.push((ingester, analytics));
    }

    let [otlp_grpc] = free_ports();
    let mut jaeger = JaegerV2::start(&collector_config(
        otlp_grpc,
        &topic,
        encoding,
        partition_by_trace_id,
    ));
    jaeger.wait_ready().await;
    let sent = send_with_python_sdk(format!("127.0.0.1:{otlp_grpc}"), &prefix, dir.path()).await;
    let traces = traces_of(&sent);
    let span_count = spans_of(&sent).count() as u64;
    assert!(
        span_count > 0 && traces.len() > 1,
        "the SDK sent spans of several traces"
    );

    // The same spans through our collector.
    let collector = common::collector(&reference_topic, &shutdown).await;
    let answer = reqwest::Client::new()
        .post(format!(
            "http://{}/v1/traces",
            collector.otlp_http_addr.expect("otlp http")
        ))
        .header("content-type", "application/x-protobuf")
        .body(sent.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.status(),
        200,
        "our collector took the reference spans"
    );

    common::wait_for_stored(encoding, [&prefix, &reference_prefix], span_count).await;
    jaeger.assert_running();

    // What Jaeger's exporter wrote: no headers (our consumers used their default encoding).
    let records = read_topic(&topic, PARTITIONS, 1);
    assert!(!records.is_empty(), "{encoding}: records in {topic}");
    for record in &records {
        assert!(
            record.headers.is_empty(),
            "{encoding}: the exporter wrote headers {:?}",
            record.headers
        );
    }
    if partition_by_trace_id {
        // Every record is keyed by its trace id (32 hex characters: the SDK's trace ids have a
        // non-zero high half) and every trace stays on one partition.
        let mut partitions: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
        for record in &records {
            let key = String::from_utf8(record.key.clone()).expect("utf-8 key");
            assert!(
                traces.contains_key(&key),
                "{encoding}: key {key:?} is not the trace id of a sent span"
            );
            partitions.entry(key).or_default().insert(record.partition);
        }
        assert_eq!(
            partitions.keys().collect::<Vec<_>>(),
            traces.keys().collect::<Vec<_>>(),
            "{encoding}: every trace keyed"
        );
        for (trace, on) in &partitions {
            assert_eq!(
                on.len(),
                1,
                "{encoding}: trace {trace} on partitions {on:?}"
            );
        }
    } else {
        for record in &records {
            assert!(
                record.key.is_empty(),
                "{encoding}: a record keyed {:?} without partition_traces_by_id",
                String::from_utf8_lossy(&record.key)
            );
        }
    }

    // Nothing more arrives: exactly once, and each span as our collector stores it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let url = opensearch_url();
    let theirs = span_documents(&url, &prefix).await;
    let reference = span_documents(&url, &reference_prefix).await;
    assert_eq!(
        theirs.len() as u64,
        span_count,
        "{encoding}: each span stored once"
    );
    assert_eq!(
        theirs.keys().collect::<Vec<_>>(),
        reference.keys().collect::<Vec<_>>(),
        "{encoding}: the same spans on both paths"
    );
    for (id, doc) in &theirs {
        match ours {
            Encoding::OtlpProto | Encoding::OtlpJson => assert_eq!(
                doc, &reference[id],
                "{encoding}: span {id} stored as our collector stores it"
            ),
            Encoding::JaegerProto | Encoding::JaegerJson => assert_eq!(
                without_error_status_code(doc),
                reference[id],
                "{encoding}: span {id} stored as our collector stores it"
            ),
        }
    }

    // The SDK's checkout queries PostgreSQL: the same edges on both paths.
    let expected = ("py-shop".to_owned(), "postgresql".to_owned());
    let (theirs, ours) = settled_edges(&prefix, &reference_prefix, &expected).await;
    assert!(
        theirs.get(&expected).is_some_and(|(calls, _)| *calls >= 1),
        "{encoding}: py-shop -> postgresql among {theirs:?}"
    );
    assert_eq!(theirs, ours, "{encoding}: the same edges on both paths");

    drop(jaeger);
    shutdown.cancel();
    collector.wait().await;
    for (ingester, analytics) in started {
        ingester.wait().await.expect("the ingester stops cleanly");
        analytics
            .wait()
            .await
            .expect("streaming analytics stops cleanly");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn their_otlp_proto_is_stored_once_with_the_same_edges() {
    their_producer("otlp_proto", Encoding::OtlpProto, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn their_otlp_json_is_stored_once_with_the_same_edges() {
    their_producer("otlp_json", Encoding::OtlpJson, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn their_jaeger_proto_is_stored_once_with_the_same_edges() {
    their_producer("jaeger_proto", Encoding::JaegerProto, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn their_jaeger_json_is_stored_once_with_the_same_edges() {
    their_producer("jaeger_json", Encoding::JaegerJson, true).await;
}

/// Without `partition_traces_by_id`, records are unkeyed and hold whole export batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn their_unkeyed_otlp_proto_is_still_stored_once() {
    their_producer("otlp_proto", Encoding::OtlpProto, false).await;
}

/// Our collector writes the topic; Jaeger v2 reads it and answers for every trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jaeger_v2_reads_our_topic_and_returns_every_trace() {
    require_kafka();
    let dir = tempfile::tempdir().unwrap();
    let topic = unique_name("jv2-ours");
    create_topic(&topic, PARTITIONS).await;
    let shutdown = CancellationToken::new();
    let collector = common::collector(&topic, &shutdown).await;

    let [http, grpc] = free_ports();
    let mut jaeger = JaegerV2::start(&query_config(&topic, &unique_name("jv2-group"), http, grpc));
    jaeger.wait_ready().await;

    let run_id = unique_name("jv2-ours");
    let endpoint = collector.otlp_grpc_addr.expect("otlp grpc").to_string();
    let sent = send_with_python_sdk(endpoint, &run_id, dir.path()).await;
    let expected = traces_of(&sent);
    assert!(expected.len() > 1, "the SDK sent several traces");

    let client = reqwest::Client::new();
    let api = format!("http://127.0.0.1:{http}/api");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    while Instant::now() < deadline && found != expected {
        jaeger.assert_running();
        for trace in expected.keys() {
            let Ok(answer) = client.get(format!("{api}/traces/{trace}")).send().await else {
                continue;
            };
            if answer.status() != 200 {
                continue;
            }
            let body: Value = answer.json().await.unwrap();
            let spans: BTreeSet<String> = body["data"][0]["spans"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| s["spanID"].as_str().unwrap_or_default().to_owned())
                .collect();
            found.insert(trace.clone(), spans);
        }
        if found != expected {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    assert_eq!(
        found, expected,
        "every trace with all its spans from Jaeger's /api/traces"
    );

    // The services Jaeger lists include the SDK's.
    let services: Value = client
        .get(format!("{api}/services"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        services["data"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s == "py-shop")),
        "py-shop among {services}"
    );

    drop(jaeger);
    shutdown.cancel();
    collector.wait().await;
}
