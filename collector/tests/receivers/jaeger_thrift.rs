//! The Jaeger Thrift/HTTP receiver against the real broker: spans sent by
//! Jaeger's Java client (`dev/clients/java/src/JaegerSend.java`, HttpSender,
//! Thrift binary protocol) come out of Kafka as the client recorded them,
//! keyed by trace id, each trace on one partition; bad bodies are refused
//! with the field named.
#![allow(clippy::unwrap_used)]

use super::http_common;

use std::time::Duration;

use http_common::{
    assert_retryable_refusals, attributes, ensure_clients, hex, object, read_topic, run_java,
    spans_by_id, start, start_without_kafka,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jaeger_java_client_spans_arrive_as_sent() {
    ensure_clients();
    let started = start("it-jaeger-thrift").await;
    let url = format!(
        "http://{}/api/traces",
        started.collector.jaeger_thrift_http_addr.unwrap()
    );
    let stdout = run_java("JaegerSend", &[&url, "3", "3"]).await;
    let sent: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(sent.len(), 12, "per trace: root, two children, a follower");

    let records = read_topic(&started.topic, sent.len(), Duration::from_secs(30)).await;
    let read = spans_by_id(&records);
    assert_eq!(read.len(), sent.len(), "every span once, nothing else");

    for expected in &sent {
        let got = &read[expected["spanId"].as_str().unwrap()];
        let span = &got.span;
        let trace = format!(
            "{}{}",
            expected["traceIdHigh"].as_str().unwrap(),
            expected["traceIdLow"].as_str().unwrap()
        );
        assert_eq!(got.key, trace);
        let parent = expected["parentId"].as_str().unwrap();
        let parent = if parent == "0000000000000000" {
            ""
        } else {
            parent
        };
        assert_eq!(hex(&span.parent_span_id), parent);
        assert_eq!(span.name, expected["operationName"].as_str().unwrap());
        let start = expected["startMicros"].as_u64().unwrap();
        let duration = expected["durationMicros"].as_u64().unwrap();
        assert_eq!(span.start_time_unix_nano, start * 1000);
        assert_eq!(span.end_time_unix_nano, (start + duration) * 1000);

        let mut tags = object(&expected["tags"]);
        let kind = match tags.remove("span.kind").unwrap().as_str().unwrap() {
            "server" => 2,
            "client" => 3,
            "producer" => 4,
            other => panic!("unexpected kind {other}"),
        };
        assert_eq!(span.kind, kind);
        let status = span.status.clone().unwrap_or_default();
        if tags.remove("error") == Some(true.into()) {
            assert_eq!(status.code, 2, "error=true makes the status ERROR");
        } else {
            assert_eq!(status.code, 0);
        }
        assert_eq!(attributes(&span.attributes), tags);
        // As OpenTelemetry's translator: a FOLLOWS_FROM reference stays a
        // link even when it also serves as the parent; CHILD_OF does not.
        let links: Vec<_> = span
            .links
            .iter()
            .map(|l| (hex(&l.span_id), attributes(&l.attributes)))
            .collect();
        let expected_links: Vec<_> = expected["references"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["type"] == "follows_from")
            .map(|r| {
                (
                    r["spanId"].as_str().unwrap().to_owned(),
                    std::collections::BTreeMap::from([(
                        "opentracing.ref_type".to_owned(),
                        serde_json::Value::from("follows_from"),
                    )]),
                )
            })
            .collect();
        assert_eq!(links, expected_links);

        let logs = expected["logs"].as_array().unwrap();
        assert_eq!(span.events.len(), logs.len());
        for (event, log) in span.events.iter().zip(logs) {
            assert_eq!(
                event.time_unix_nano,
                log["timeMicros"].as_u64().unwrap() * 1000
            );
            let mut fields = object(&log["fields"]);
            let name = fields.remove("event").unwrap();
            assert_eq!(event.name, name.as_str().unwrap());
            assert_eq!(attributes(&event.attributes), fields);
        }
        let resource = attributes(&got.resource.attributes);
        assert_eq!(resource["service.name"], "java-jaeger-client");
        assert_eq!(resource["deployment.environment"], "test");
        assert!(resource.contains_key("host.name"), "{resource:?}");
    }
    started.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_thrift_is_refused_naming_the_field() {
    let started = start("it-jaeger-thrift-bad").await;
    let url = format!(
        "http://{}/api/traces",
        started.collector.jaeger_thrift_http_addr.unwrap()
    );
    let client = reqwest::Client::new();
    // A batch whose span list claims more elements than the body holds.
    let mut body = vec![15u8, 0, 2, 12];
    body.extend_from_slice(&1_000_000i32.to_be_bytes());
    for content_type in [
        "application/x-thrift",
        "application/vnd.apache.thrift.binary",
    ] {
        let response = client
            .post(&url)
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        assert_eq!(
            response.text().await.unwrap().trim(),
            "malformed request body: batch.spans: length 1000000 cannot fit in the 0 bytes left"
        );
    }
    let response = client
        .post(&url)
        .header("content-type", "application/json")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let metrics = reqwest::get(format!("http://{}/metrics", started.collector.ops_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "collector_requests_refused_total{receiver=\"jaeger_thrift_http\",reason=\"malformed\"} 2"
        ),
        "{metrics}"
    );
    started.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_trouble_is_answered_retryably() {
    // A batch with a 5000-byte tag: two such requests do not fit the budget.
    let started = start_without_kafka(8 * 1024).await;
    let url = format!(
        "http://{}/api/traces",
        started.collector.jaeger_thrift_http_addr.unwrap()
    );
    assert_retryable_refusals(&url, "application/x-thrift", big_batch(5000)).await;
    started.stop().await;
}

/// A one-span batch with a string tag of `size` bytes, written by hand in
/// Thrift's binary protocol.
fn big_batch(size: usize) -> Vec<u8> {
    let mut b = Vec::new();
    let field = |b: &mut Vec<u8>, ty: u8, id: i16| {
        b.push(ty);
        b.extend_from_slice(&id.to_be_bytes());
    };
    let string = |b: &mut Vec<u8>, s: &str| {
        b.extend_from_slice(&(s.len() as i32).to_be_bytes());
        b.extend_from_slice(s.as_bytes());
    };
    field(&mut b, 12, 1); // process
    field(&mut b, 11, 1);
    string(&mut b, "svc");
    b.push(0);
    field(&mut b, 15, 2); // spans
    b.push(12);
    b.extend_from_slice(&1i32.to_be_bytes());
    for (id, value) in [(1i16, 7i64), (2, 0), (3, 9), (4, 0)] {
        field(&mut b, 10, id);
        b.extend_from_slice(&value.to_be_bytes());
    }
    field(&mut b, 11, 5);
    string(&mut b, "op");
    field(&mut b, 8, 7);
    b.extend_from_slice(&1i32.to_be_bytes());
    for (id, value) in [(8i16, 1_700_000_000_000_000i64), (9, 10)] {
        field(&mut b, 10, id);
        b.extend_from_slice(&value.to_be_bytes());
    }
    field(&mut b, 15, 10); // tags
    b.push(12);
    b.extend_from_slice(&1i32.to_be_bytes());
    field(&mut b, 11, 1);
    string(&mut b, "payload");
    field(&mut b, 8, 2);
    b.extend_from_slice(&0i32.to_be_bytes());
    field(&mut b, 11, 3);
    string(&mut b, &"x".repeat(size));
    b.push(0); // tag
    b.push(0); // span
    b.push(0); // batch
    b
}
