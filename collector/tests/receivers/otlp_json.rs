//! OTLP/HTTP with JSON bodies, and partial success in both encodings,
//! against the real broker.
//!
//! The first test sends with the OpenTelemetry JS SDK's OTLP/HTTP exporter
//! (`dev/clients/otlp-js`), which speaks JSON, and checks that every span
//! comes out of Kafka as the SDK recorded it, keyed by trace id, each trace
//! on one partition. The others post hand-made requests holding invalid
//! spans: the valid ones are published, the invalid ones are reported in
//! `partial_success`, counted, and absent from the topic.
#![allow(clippy::unwrap_used)]

use super::http_common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use http_common::{
    attributes, clients_dir, ensure_clients, hex, object, read_topic, run_client, spans_by_id,
    start,
};
use prost::Message as _;
use spanway_schemas::proto::otlp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_sdk_json_exporter_spans_arrive_as_sent() {
    ensure_clients();
    let started = start("it-otlp-json").await;
    let url = format!(
        "http://{}/v1/traces",
        started.collector.otlp_http_addr.unwrap()
    );
    let mut command = Command::new("node");
    command
        .arg(clients_dir().join("node/send.cjs"))
        .args([&url, "4", "3"]);
    let stdout = tokio::task::spawn_blocking(move || run_client(command))
        .await
        .unwrap();
    let sent: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(sent.len(), 12);

    let records = read_topic(&started.topic, sent.len(), Duration::from_secs(30)).await;
    let read = spans_by_id(&records);
    assert_eq!(read.len(), sent.len(), "every span once, nothing else");
    let traces: std::collections::HashSet<_> = read.values().map(|s| s.key.clone()).collect();
    assert_eq!(traces.len(), 4);

    for expected in &sent {
        let got = &read[expected["spanId"].as_str().unwrap()];
        let span = &got.span;
        assert_eq!(got.key, expected["traceId"].as_str().unwrap());
        assert_eq!(
            hex(&span.parent_span_id),
            expected["parentSpanId"].as_str().unwrap()
        );
        assert_eq!(span.name, expected["name"].as_str().unwrap());
        // The JS SDK numbers kinds from INTERNAL = 0; OTLP from UNSPECIFIED = 0.
        assert_eq!(span.kind as i64, expected["kind"].as_i64().unwrap() + 1);
        assert_eq!(
            span.start_time_unix_nano.to_string(),
            expected["startTimeUnixNano"].as_str().unwrap()
        );
        assert_eq!(
            span.end_time_unix_nano.to_string(),
            expected["endTimeUnixNano"].as_str().unwrap()
        );
        assert_eq!(
            attributes(&span.attributes),
            object(&expected["attributes"])
        );
        let events: Vec<_> = span
            .events
            .iter()
            .map(|e| {
                serde_json::json!({
                    "name": e.name,
                    "timeUnixNano": e.time_unix_nano.to_string(),
                    "attributes": attributes(&e.attributes),
                })
            })
            .collect();
        assert_eq!(serde_json::Value::from(events), expected["events"]);
        let status = span.status.clone().unwrap_or_default();
        assert_eq!(
            status.code as i64,
            expected["status"]["code"].as_i64().unwrap()
        );
        assert_eq!(
            status.message,
            expected["status"]["message"].as_str().unwrap()
        );
        assert_eq!(
            attributes(&got.resource.attributes),
            object(&expected["resource"])
        );
        assert_eq!(got.scope.name, expected["scope"]["name"].as_str().unwrap());
        assert_eq!(
            got.scope.version,
            expected["scope"]["version"].as_str().unwrap()
        );
    }
    started.stop().await;
}

/// A JSON span of trace `trace`, id `id`, with `start`/`end`.
fn json_span(trace: &str, id: &str, start: u64, end: u64) -> serde_json::Value {
    serde_json::json!({
        "traceId": trace, "spanId": id, "name": format!("op-{id}"), "kind": 2,
        "startTimeUnixNano": start.to_string(), "endTimeUnixNano": end.to_string(),
    })
}

const T1: &str = "11111111111111111111111111111111";
const T2: &str = "22222222222222222222222222222222";
const T3: &str = "33333333333333333333333333333333";

fn partial_body() -> serde_json::Value {
    serde_json::json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "partial"}}]},
        "scopeSpans": [{"spans": [
            json_span(T1, "a000000000000001", 10, 20),
            json_span(T2, "0000000000000000", 10, 20),
            json_span(T3, "c000000000000003", 30, 20),
            json_span(T2, "d000000000000004", 10, 20),
        ]}]
    }]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_partial_success_publishes_the_valid_spans_only() {
    // Unique trace ids per run are not needed: the topic is new.
    let started = start("it-otlp-partial-json").await;
    let url = format!(
        "http://{}/v1/traces",
        started.collector.otlp_http_addr.unwrap()
    );
    let client = reqwest::Client::new();
    let response = client
        .post(&url)
        .header("content-type", "application/json")
        .body(partial_body().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["partialSuccess"]["rejectedSpans"], "2");
    assert_eq!(
        body["partialSuccess"]["errorMessage"],
        "2 spans rejected: resourceSpans[0].scopeSpans[0].spans[1].spanId: all-zero id is invalid; \
         resourceSpans[0].scopeSpans[0].spans[2].endTimeUnixNano: 20 is before startTimeUnixNano 30"
    );

    // Every span invalid: refused as a whole, in JSON.
    let all_bad = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        json_span(T3, "0000000000000000", 10, 20),
    ]}]}]});
    let response = client
        .post(&url)
        .header("content-type", "application/json")
        .body(all_bad.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let status: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status["code"], 3);
    assert_eq!(
        status["message"],
        "every span is invalid: 1 span rejected: resourceSpans[0].scopeSpans[0].spans[0].spanId: all-zero id is invalid"
    );

    // A body that is not OTLP/JSON at all: 400 naming the field.
    let response = client
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let status: serde_json::Value = response.json().await.unwrap();
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("resourceSpans[0].scopeSpans[0].spans[0].traceId"),
        "{status}"
    );

    let records = read_topic(&started.topic, 2, Duration::from_secs(20)).await;
    let read = spans_by_id(&records);
    let ids: BTreeMap<_, _> = read
        .iter()
        .map(|(id, s)| (id.clone(), s.key.clone()))
        .collect();
    assert_eq!(
        ids,
        BTreeMap::from([
            ("a000000000000001".to_owned(), T1.to_owned()),
            ("d000000000000004".to_owned(), T2.to_owned()),
        ]),
        "only the valid spans reach Kafka"
    );

    let metrics = reqwest::get(format!("http://{}/metrics", started.collector.ops_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for reason in ["invalid_span_id", "end_before_start"] {
        let line =
            format!("collector_spans_refused_total{{receiver=\"otlp_http\",reason=\"{reason}\"}}");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
    assert!(
        metrics.contains("collector_spans_accepted_total{receiver=\"otlp_http\"} 2"),
        "{metrics}"
    );
    started.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_partial_success() {
    let started = start("it-otlp-partial-proto").await;
    let url = format!(
        "http://{}/v1/traces",
        started.collector.otlp_http_addr.unwrap()
    );
    let span = |trace: u8, id: u8, start: u64, end: u64| otlp::Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        name: "op".into(),
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        ..Default::default()
    };
    let mut wrong_length = span(5, 5, 1, 2);
    wrong_length.trace_id = vec![5; 8];
    let request = otlp::ExportTraceServiceRequest {
        resource_spans: vec![otlp::ResourceSpans {
            scope_spans: vec![otlp::ScopeSpans {
                spans: vec![span(4, 1, 1, 2), wrong_length, span(4, 2, 1, 2)],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .body(request.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    let answer = otlp::ExportTraceServiceResponse::decode(body).unwrap();
    let partial = answer.partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 1);
    assert_eq!(
        partial.error_message,
        "1 span rejected: resource_spans[0].scope_spans[0].spans[1].trace_id: expected 16 bytes, got 8"
    );
    let records = read_topic(&started.topic, 2, Duration::from_secs(20)).await;
    let read = spans_by_id(&records);
    assert_eq!(read.len(), 2);
    assert!(read.values().all(|s| s.key == hex(&[4; 16])));
    started.stop().await;
}
