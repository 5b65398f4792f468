//! OTLP/gRPC against the real broker: spans sent by the OpenTelemetry
//! Python SDK's gRPC exporter (gzip), and by its HTTP/protobuf exporter to
//! the OTLP/HTTP receiver, come out of Kafka as they were sent, one trace
//! per key and partition; partial success and the retryable
//! statuses reach a tonic client as the OTLP specification describes.
#![allow(clippy::unwrap_used)]

use super::grpc_common;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use grpc_common::{config, hex, metric, read_topic, request, span, spans_by_id};
use prost::Message as _;
use spanway_collector::Collector;
use spanway_e2e::{create_topic, require_kafka, unique_name};
use spanway_schemas::proto::grpc::otlp_trace::trace_service_client::TraceServiceClient;
use spanway_schemas::proto::otlp;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::codec::CompressionEncoding;

const PARTITIONS: i32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_spans_reach_kafka_unchanged() {
    python_sdk_spans_over("grpc", "otlp_grpc").await;
}

/// The same client and spans over OTLP/HTTP with protobuf bodies (gzip).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_http_protobuf_spans_reach_kafka_unchanged() {
    python_sdk_spans_over("http/protobuf", "otlp_http").await;
}

async fn python_sdk_spans_over(protocol: &str, receiver: &str) {
    require_kafka();
    let topic = unique_name("it-otlp-sdk");
    create_topic(&topic, PARTITIONS).await;
    let shutdown = CancellationToken::new();
    let collector = Collector::start(&config(&topic), shutdown.clone())
        .await
        .unwrap();
    let endpoint = if protocol == "grpc" {
        collector.otlp_grpc_addr.unwrap().to_string()
    } else {
        collector.otlp_http_addr.unwrap().to_string()
    };
    let protocol = protocol.to_owned();

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sent.binpb");
    let run_id = unique_name("run");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dev/clients/otel-python");
    let client = {
        let out = out.clone();
        let run_id = run_id.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("bash")
                .arg(script)
                .args(["--endpoint", &endpoint, "--protocol", &protocol])
                .args(["--run-id", &run_id, "--out"])
                .arg(out)
                .output()
                .unwrap()
        })
    };
    let output = client.await.unwrap();
    assert!(
        output.status.success(),
        "dev/clients/otel-python failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let sent =
        otlp::ExportTraceServiceRequest::decode(std::fs::read(&out).unwrap().as_slice()).unwrap();
    let mut expected = HashMap::new();
    for rs in &sent.resource_spans {
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                let entry = (
                    rs.resource.clone().unwrap_or_default(),
                    ss.scope.clone().unwrap_or_default(),
                    span.clone(),
                );
                expected.insert(span.span_id.clone(), entry);
            }
        }
    }
    assert_eq!(expected.len(), 31, "the client's known set");
    let traces: HashSet<_> = expected
        .values()
        .map(|(_, _, s)| s.trace_id.clone())
        .collect();
    assert_eq!(traces.len(), 3);

    let records = read_topic(&topic, expected.len(), Duration::from_secs(30)).await;
    let received = spans_by_id(&records, PARTITIONS as u32);
    assert_eq!(received.len(), expected.len(), "every span, once");
    for (id, want) in &expected {
        let got = received
            .get(id)
            .unwrap_or_else(|| panic!("span {} is not on the topic", hex(id)));
        assert_eq!(got, want, "span {} differs from what was sent", hex(id));
    }
    let mut partitions: HashMap<&str, HashSet<i32>> = HashMap::new();
    for record in &records {
        partitions
            .entry(&record.key)
            .or_default()
            .insert(record.partition);
    }
    assert_eq!(partitions.len(), 3, "one key per trace");
    assert!(
        partitions.values().all(|p| p.len() == 1),
        "every span of a trace is on one partition: {partitions:?}"
    );
    assert_eq!(
        metric(
            collector.ops_addr,
            &format!("collector_spans_accepted_total{{receiver=\"{receiver}\"}}"),
        )
        .await,
        31.0
    );
    // librdkafka's statistics come every 5 s: the records went out in at
    // least one batch, and in no more batches than records.
    let records = metric(collector.ops_addr, "collector_kafka_records_produced_total").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut batches = 0.0;
    while batches == 0.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        batches = metric(collector.ops_addr, "collector_kafka_batches_total").await;
    }
    assert!(
        batches >= 1.0 && batches <= records,
        "{batches} batches for {records} records"
    );

    shutdown.cancel();
    collector.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_spans_are_reported_by_partial_success_or_invalid_argument() {
    require_kafka();
    let topic = unique_name("it-otlp-grpc-partial");
    create_topic(&topic, PARTITIONS).await;
    let shutdown = CancellationToken::new();
    let collector = Collector::start(&config(&topic), shutdown.clone())
        .await
        .unwrap();
    let mut client =
        TraceServiceClient::connect(format!("http://{}", collector.otlp_grpc_addr.unwrap()))
            .await
            .unwrap()
            .send_compressed(CompressionEncoding::Gzip);

    let mut bad = span(0x42, 2, 10);
    bad.trace_id.truncate(8);
    let response = client
        .export(request(vec![span(0x41, 1, 10), bad.clone()]))
        .await
        .unwrap()
        .into_inner();
    let partial = response.partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 1);
    assert_eq!(
        partial.error_message,
        "1 span rejected: resource_spans[0].scope_spans[0].spans[1].trace_id: expected 16 bytes, got 8"
    );

    let status = client.export(request(vec![bad])).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status
            .message()
            .contains("resource_spans[0].scope_spans[0].spans[0].trace_id"),
        "{}",
        status.message()
    );

    // Bytes that are no OTLP request: an attribute key that is not UTF-8.
    // The request is refused as a whole, naming the field.
    let mut malformed = request(vec![span(0x43, 3, 10)]).encode_to_vec();
    let key = malformed
        .windows(4)
        .position(|w| w == b"payl")
        .expect("the span's attribute key");
    malformed[key] = 0xff;
    let status = raw_export(collector.otlp_grpc_addr.unwrap(), malformed)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "malformed request body: ExportTraceServiceRequest: KeyValue.key: invalid UTF-8"
    );

    let records = read_topic(&topic, 1, Duration::from_secs(20)).await;
    let received = spans_by_id(&records, PARTITIONS as u32);
    assert_eq!(received.len(), 1, "only the valid span is published");
    assert!(received.contains_key(&vec![1u8; 8]));

    shutdown.cancel();
    collector.wait().await;
}

/// With no broker at all: a request waits for the delivery timeout and gets
/// UNAVAILABLE; a request arriving while the byte budget is taken gets
/// RESOURCE_EXHAUSTED at once. Both carry a RetryInfo. A shutdown meanwhile
/// lets the waiting request finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_trouble_maps_to_retryable_codes() {
    let mut config = config("it-otlp-grpc-nowhere");
    config.kafka.client.brokers = vec!["127.0.0.1:1".into()];
    config.kafka.delivery_timeout = Duration::from_secs(2);
    config.limit_requests_to(64 * 1024);
    config.zipkin.enabled = false;
    config.jaeger_thrift_http.enabled = false;
    config.validate().unwrap();
    let shutdown = CancellationToken::new();
    let collector = Collector::start(&config, shutdown.clone()).await.unwrap();
    let client =
        TraceServiceClient::connect(format!("http://{}", collector.otlp_grpc_addr.unwrap()))
            .await
            .unwrap();

    let started = Instant::now();
    let mut first = client.clone();
    let slow = tokio::spawn(async move { first.export(request(vec![span(1, 1, 40_000)])).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut second = client.clone();
    let status = second
        .export(request(vec![span(2, 2, 40_000)]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(!status.details().is_empty(), "RetryInfo in the details");

    // Shutting down stops accepting but lets the request in flight finish
    // with its real answer rather than a cut connection.
    shutdown.cancel();
    let status = slow.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(!status.details().is_empty(), "RetryInfo in the details");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered within the delivery timeout plus a margin: {:?}",
        started.elapsed()
    );
    collector.wait().await;
}

/// Sends `bytes` as the body of `TraceService/Export`, as a client with a
/// broken encoder would.
async fn raw_export(addr: std::net::SocketAddr, bytes: Vec<u8>) -> Result<(), tonic::Status> {
    use bytes::{Buf as _, BufMut as _, Bytes};
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

    #[derive(Default)]
    struct Raw;
    impl Encoder for Raw {
        type Item = Bytes;
        type Error = tonic::Status;
        fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
            dst.put(item);
            Ok(())
        }
    }
    impl Decoder for Raw {
        type Item = Bytes;
        type Error = tonic::Status;
        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
            Ok(Some(src.copy_to_bytes(src.remaining())))
        }
    }
    impl Codec for Raw {
        type Encode = Bytes;
        type Decode = Bytes;
        type Encoder = Raw;
        type Decoder = Raw;
        fn encoder(&mut self) -> Raw {
            Raw
        }
        fn decoder(&mut self) -> Raw {
            Raw
        }
    }

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    grpc.unary(
        tonic::Request::new(Bytes::from(bytes)),
        tonic::codegen::http::uri::PathAndQuery::from_static(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        ),
        Raw,
    )
    .await
    .map(|_| ())
}

/// A client's connection is asked to reconnect after `max_connection_age`
/// (HTTP/2 GOAWAY, then closed), and a client that keeps calling carries
/// on over a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_asked_to_reconnect_after_their_age() {
    require_kafka();
    let topic = unique_name("it-otlp-grpc-age");
    create_topic(&topic, 1).await;
    let mut config = config(&topic);
    let age = Duration::from_secs(1);
    config.otlp_grpc.max_connection_age = age;
    config.validate().unwrap();
    let shutdown = CancellationToken::new();
    let collector = Collector::start(&config, shutdown.clone()).await.unwrap();
    let addr = collector.otlp_grpc_addr.unwrap();

    let started = Instant::now();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (_client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), connection)
        .await
        .expect("the server closes the connection once it is old enough")
        .ok();
    // Each connection's age is drawn within a tenth of the setting.
    assert!(started.elapsed() >= age * 9 / 10, "not before its age");

    let mut client = TraceServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    client.export(request(vec![span(1, 1, 10)])).await.unwrap();
    tokio::time::sleep(3 * age).await;
    client.export(request(vec![span(2, 2, 10)])).await.unwrap();
    let records = read_topic(&topic, 2, Duration::from_secs(20)).await;
    assert_eq!(records.len(), 2, "both calls reached Kafka");

    shutdown.cancel();
    collector.wait().await;
}
