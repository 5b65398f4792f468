//! The Zipkin receiver against the real broker: spans sent by Zipkin's own
//! Java reporter (`dev/clients/java/src/ZipkinSend.java`, URLConnectionSender,
//! JSON v2, gzip) come out of Kafka converted as the OpenTelemetry
//! Collector's Zipkin receiver would, keyed by trace id, each trace on one
//! partition; bad input is refused with the field named and nothing of it
//! is published.
#![allow(clippy::unwrap_used)]

use super::http_common;

use std::collections::BTreeMap;
use std::time::Duration;

use http_common::{
    assert_retryable_refusals, attributes, ensure_clients, hex, object, read_topic, run_java,
    spans_by_id, start, start_without_kafka,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zipkin_reporter_spans_arrive_as_sent() {
    ensure_clients();
    let started = start("it-zipkin").await;
    let url = format!(
        "http://{}/api/v2/spans",
        started.collector.zipkin_addr.unwrap()
    );
    let stdout = run_java("ZipkinSend", &[&url, "4", "4"]).await;
    let sent: Vec<serde_json::Value> = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(sent.len(), 16);

    let records = read_topic(&started.topic, sent.len(), Duration::from_secs(30)).await;
    let read = spans_by_id(&records);
    assert_eq!(read.len(), sent.len(), "every span once, nothing else");

    for expected in &sent {
        let got = &read[expected["id"].as_str().unwrap()];
        let span = &got.span;
        let trace = expected["traceId"].as_str().unwrap();
        assert_eq!(got.key, format!("{trace:0>32}"), "64-bit ids left-padded");
        assert_eq!(
            hex(&span.parent_span_id),
            expected["parentId"].as_str().unwrap_or("")
        );
        assert_eq!(span.name, expected["name"].as_str().unwrap());
        let kind = match expected["kind"].as_str().unwrap() {
            "SERVER" => 2,
            "CLIENT" => 3,
            "PRODUCER" => 4,
            "CONSUMER" => 5,
            other => panic!("unexpected kind {other}"),
        };
        assert_eq!(span.kind, kind);
        let timestamp = expected["timestamp"].as_u64().unwrap();
        let duration = expected["duration"].as_u64().unwrap();
        assert_eq!(span.start_time_unix_nano, timestamp * 1000);
        assert_eq!(span.end_time_unix_nano, (timestamp + duration) * 1000);

        let mut tags = object(&expected["tags"]);
        let error = tags.remove("error");
        let status = span.status.clone().unwrap_or_default();
        match error {
            Some(message) => {
                assert_eq!(status.code, 2, "an error tag makes the status ERROR");
                assert_eq!(status.message, message.as_str().unwrap());
            }
            None => assert_eq!(status.code, 0),
        }
        let local = &expected["localEndpoint"];
        tags.insert("net.host.ip".into(), local["ipv4"].clone());
        tags.insert("net.host.port".into(), local["port"].clone());
        let remote = &expected["remoteEndpoint"];
        if remote.is_object() {
            tags.insert("peer.service".into(), remote["serviceName"].clone());
            tags.insert("net.peer.ip".into(), remote["ipv4"].clone());
            tags.insert("net.peer.port".into(), remote["port"].clone());
        }
        if expected["shared"] == true {
            tags.insert("zipkin.shared".into(), true.into());
        }
        assert_eq!(
            attributes(&span.attributes),
            tags,
            "span {}",
            expected["id"]
        );

        let events: Vec<_> = span
            .events
            .iter()
            .map(|e| serde_json::json!({"timestamp": e.time_unix_nano / 1000, "value": e.name}))
            .collect();
        let annotations = expected.get("annotations").cloned().unwrap_or_default();
        let annotations = if annotations.is_null() {
            serde_json::json!([])
        } else {
            annotations
        };
        assert_eq!(serde_json::Value::from(events), annotations);
        assert_eq!(
            attributes(&got.resource.attributes),
            BTreeMap::from([("service.name".to_owned(), local["serviceName"].clone())])
        );
    }
    started.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_zipkin_input_is_refused_naming_the_field() {
    let started = start("it-zipkin-bad").await;
    let url = format!(
        "http://{}/api/v2/spans",
        started.collector.zipkin_addr.unwrap()
    );
    let client = reqwest::Client::new();
    let good = r#"{"traceId":"aaaaaaaaaaaaaaaa","id":"0000000000000001","name":"ok"}"#;
    let cases = [
        (
            format!(r#"[{good},{{"traceId":"12345","id":"0000000000000002"}}]"#),
            "spans[1].traceId: expected 16 or 32 hex characters, got 5",
        ),
        (
            format!(
                r#"[{good},{good},{good},{{"traceId":"bbbbbbbbbbbbbbbb","id":"0000000000000000"}}]"#
            ),
            "spans[3].id: all-zero id is invalid",
        ),
        (
            r#"{"traceId":"bbbbbbbbbbbbbbbb"}"#.to_owned(),
            "spans: expected a JSON array of spans",
        ),
    ];
    for (body, message) in cases {
        let response = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let text = response.text().await.unwrap();
        assert_eq!(text.trim(), format!("malformed request body: {message}"));
    }
    let response = client
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);

    // A good request afterwards is the only thing on the topic.
    let response = client
        .post(&url)
        .body(format!("[{good}]"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let records = read_topic(&started.topic, 1, Duration::from_secs(20)).await;
    let read = spans_by_id(&records);
    assert_eq!(read.len(), 1);
    assert_eq!(
        read["0000000000000001"].key,
        "0000000000000000aaaaaaaaaaaaaaaa"
    );
    started.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_trouble_is_answered_retryably() {
    let started = start_without_kafka(8 * 1024).await;
    let url = format!(
        "http://{}/api/v2/spans",
        started.collector.zipkin_addr.unwrap()
    );
    let payload = "x".repeat(5000);
    let body = format!(
        r#"[{{"traceId":"aaaaaaaaaaaaaaaa","id":"0000000000000001","tags":{{"payload":"{payload}"}}}}]"#
    );
    assert_retryable_refusals(&url, "application/json", body.into_bytes()).await;
    started.stop().await;
}
