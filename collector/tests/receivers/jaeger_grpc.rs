//! Jaeger gRPC (`jaeger.api_v2.CollectorService/PostSpans`) against the real
//! broker: a batch sent by a tonic client, gzip-compressed, comes out of
//! Kafka as OTLP records that read back (through the contract's own
//! OTLP→Jaeger conversion) as the Jaeger spans that were sent.
#![allow(clippy::unwrap_used)]

use super::grpc_common;

use std::collections::HashMap;
use std::time::Duration;

use grpc_common::{config, hex, metric, read_topic, spans_by_id};
use spanway_collector::Collector;
use spanway_e2e::{create_topic, require_kafka, unique_name};
use spanway_schemas::prost_types::{Duration as PbDuration, Timestamp};
use spanway_schemas::proto::grpc::jaeger::collector_service_client::CollectorServiceClient;
use spanway_schemas::proto::jaeger::api_v2 as jaeger;
use spanway_schemas::to_jaeger;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::codec::CompressionEncoding;

const PARTITIONS: i32 = 3;
const T1: [u8; 16] = [0x71; 16];
const T2: [u8; 16] = [0x72; 16];

fn tag(key: &str, value: &str) -> jaeger::KeyValue {
    jaeger::KeyValue {
        key: key.into(),
        v_str: value.into(),
        ..Default::default()
    }
}

fn typed(key: &str, v_type: jaeger::ValueType) -> jaeger::KeyValue {
    jaeger::KeyValue {
        key: key.into(),
        v_type: v_type as i32,
        ..Default::default()
    }
}

fn reference(trace: [u8; 16], span: u8, kind: jaeger::SpanRefType) -> jaeger::SpanRef {
    jaeger::SpanRef {
        trace_id: trace.to_vec(),
        span_id: vec![span; 8],
        ref_type: kind as i32,
    }
}

fn span(trace: [u8; 16], id: u8, name: &str) -> jaeger::Span {
    jaeger::Span {
        trace_id: trace.to_vec(),
        span_id: vec![id; 8],
        operation_name: name.into(),
        flags: 1,
        start_time: Some(Timestamp {
            seconds: 1_700_000_000,
            nanos: 123_456_000,
        }),
        duration: Some(PbDuration {
            seconds: 0,
            nanos: 2_500_000,
        }),
        ..Default::default()
    }
}

/// Spans in the shape the contract's OTLP→Jaeger conversion writes (tag
/// order included), so that the round trip can be compared exactly.
fn batch() -> jaeger::Batch {
    let mut root = span(T1, 1, "GET /cart");
    let mut int = typed("http.status_code", jaeger::ValueType::Int64);
    int.v_int64 = 500;
    let mut error = typed("error", jaeger::ValueType::Bool);
    error.v_bool = true;
    root.tags = vec![
        tag("otel.scope.name", "shop"),
        tag("otel.scope.version", "1.0"),
        tag("http.method", "GET"),
        int,
        tag("span.kind", "server"),
        error,
        tag("otel.status_description", "boom"),
    ];
    let mut attempt = typed("attempt", jaeger::ValueType::Int64);
    attempt.v_int64 = 2;
    root.logs = vec![jaeger::Log {
        timestamp: Some(Timestamp {
            seconds: 1_700_000_000,
            nanos: 124_000_000,
        }),
        fields: vec![tag("event", "retry"), attempt],
    }];

    let mut child = span(T1, 2, "SELECT");
    child.references = vec![reference(T1, 1, jaeger::SpanRefType::ChildOf)];
    let mut ratio = typed("db.ratio", jaeger::ValueType::Float64);
    ratio.v_float64 = 0.5;
    let mut raw = typed("db.raw", jaeger::ValueType::Binary);
    raw.v_binary = vec![1, 2, 3];
    child.tags = vec![ratio, raw, tag("span.kind", "client")];
    child.process = Some(jaeger::Process {
        service_name: "db-proxy".into(),
        tags: vec![tag("host.name", "db-1")],
    });

    let mut follower = span(T2, 3, "consume");
    follower.references = vec![
        reference(T2, 9, jaeger::SpanRefType::ChildOf),
        reference(T1, 1, jaeger::SpanRefType::FollowsFrom),
    ];
    follower.tags = vec![tag("span.kind", "consumer"), tag("otel.status_code", "OK")];

    jaeger::Batch {
        spans: vec![root, child, follower],
        process: Some(jaeger::Process {
            service_name: "cart".into(),
            tags: vec![tag("host.name", "web-1"), tag("client-uuid", "abc")],
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jaeger_batches_reach_kafka_and_read_back_unchanged() {
    require_kafka();
    let topic = unique_name("it-jaeger-grpc");
    create_topic(&topic, PARTITIONS).await;
    let shutdown = CancellationToken::new();
    let collector = Collector::start(&config(&topic), shutdown.clone())
        .await
        .unwrap();
    let mut client =
        CollectorServiceClient::connect(format!("http://{}", collector.jaeger_grpc_addr.unwrap()))
            .await
            .unwrap()
            .send_compressed(CompressionEncoding::Gzip);

    let sent = batch();
    client
        .post_spans(jaeger::PostSpansRequest {
            batch: Some(sent.clone()),
        })
        .await
        .unwrap();

    // One bad id refuses the whole batch (Jaeger has no partial success),
    // naming the field as the client wrote it.
    let mut bad = batch();
    bad.spans[1].trace_id = vec![7; 8];
    bad.spans[0].span_id = vec![0x55; 8];
    let status = client
        .post_spans(jaeger::PostSpansRequest { batch: Some(bad) })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "invalid span: batch.spans[1].trace_id: expected 16 bytes, got 8"
    );

    let records = read_topic(&topic, sent.spans.len(), Duration::from_secs(30)).await;
    let received = spans_by_id(&records, PARTITIONS as u32);
    assert_eq!(
        received.len(),
        3,
        "the valid batch, once; nothing of the bad one"
    );
    let mut keys: HashMap<&str, i32> = HashMap::new();
    for record in &records {
        assert_eq!(
            *keys.entry(&record.key).or_insert(record.partition),
            record.partition
        );
    }
    assert_eq!(keys.len(), 2, "one key per trace");

    let mut read_back = Vec::new();
    for record in &records {
        for (i, rs) in record.data.resource_spans.iter().enumerate() {
            to_jaeger::convert_resource_spans(i, rs, &mut read_back).unwrap();
        }
    }
    let read_back: HashMap<Vec<u8>, jaeger::Span> = read_back
        .into_iter()
        .map(|s| (s.span_id.clone(), s))
        .collect();
    for mut want in sent.spans {
        if want.process.is_none() {
            want.process = sent.process.clone();
        }
        let got = read_back
            .get(&want.span_id)
            .unwrap_or_else(|| panic!("span {} missing", hex(&want.span_id)));
        assert_eq!(got, &want);
    }
    assert_eq!(
        metric(
            collector.ops_addr,
            "collector_spans_accepted_total{receiver=\"jaeger_grpc\"}"
        )
        .await,
        3.0
    );
    assert_eq!(
        metric(
            collector.ops_addr,
            "collector_requests_refused_total{receiver=\"jaeger_grpc\",reason=\"invalid_span\"}"
        )
        .await,
        1.0
    );

    shutdown.cancel();
    collector.wait().await;
}
