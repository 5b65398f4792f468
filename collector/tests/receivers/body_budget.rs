//! Request bodies count against the byte budget while they arrive, not only
//! once read: a half-sent body holds its bytes, a request that no longer
//! fits is refused retryably, and the bytes come back when the sender gives
//! up.
#![allow(clippy::unwrap_used)]

use super::grpc_common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use grpc_common::{config, hex, metric, read_topic, request, span};
use prost::Message as _;
use spanway_collector::Collector;
use spanway_collector::config::CollectorConfig;
use spanway_e2e::{create_topic, require_kafka, unique_name};
use spanway_schemas::proto::grpc::otlp_trace::trace_service_client::TraceServiceClient;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;
use tonic::Code;

const KIB: usize = 1024;
/// The collector's byte budget in these tests.
const BUDGET: usize = 1024 * KIB;
/// What the half-sent body has sent: with the next request, over the budget.
const HELD: usize = 600 * KIB;
/// The payload of the request that must wait for the held bytes.
const PAYLOAD: usize = 500 * KIB;
const IN_FLIGHT: &str = "collector_bytes_in_flight";

fn budget_config(topic: &str) -> CollectorConfig {
    let mut config = config(topic);
    config.limit_requests_to(BUDGET);
    config.validate().unwrap();
    config
}

/// Waits until the budget gauge satisfies `holds`, and returns its value.
async fn wait_for_gauge(ops: SocketAddr, what: &str, holds: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value = metric(ops, IN_FLIGHT).await;
        if holds(value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{IN_FLIGHT} is {value}, expected {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An OTLP/gRPC export whose message claims more bytes than it sends: the
/// stream stays open with `HELD` bytes of body until it is reset.
struct HalfSentGrpc {
    connection: h2::client::SendRequest<Bytes>,
    response: h2::client::ResponseFuture,
    stream: h2::SendStream<Bytes>,
}

async fn half_sent_grpc(addr: SocketAddr) -> HalfSentGrpc {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.unwrap();
    let request = tonic::codegen::http::Request::post(format!(
        "http://{addr}/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(())
    .unwrap();
    let (response, mut stream) = client.send_request(request, false).unwrap();
    // The gRPC length prefix announces a message larger than what follows.
    let mut body = vec![0u8];
    body.extend_from_slice(&u32::try_from(HELD + 100 * KIB).unwrap().to_be_bytes());
    body.resize(5 + HELD, b'x');
    stream.send_data(Bytes::from(body), false).unwrap();
    HalfSentGrpc {
        connection: client,
        response,
        stream,
    }
}

/// An OTLP/HTTP request whose body stops `HELD` bytes into its
/// Content-Length; the connection stays open until dropped.
async fn half_sent_http(addr: SocketAddr) -> tokio::net::TcpStream {
    let mut held = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-protobuf\r\n\
         content-length: {}\r\n\r\n",
        HELD + 100 * KIB
    );
    held.write_all(head.as_bytes()).await.unwrap();
    held.write_all(&vec![b'x'; HELD]).await.unwrap();
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_body_holds_the_budget_while_it_arrives() {
    require_kafka();
    let topic = unique_name("it-body-budget-grpc");
    create_topic(&topic, 1).await;
    let shutdown = CancellationToken::new();
    let collector = Collector::start(&budget_config(&topic), shutdown.clone())
        .await
        .unwrap();
    let addr = collector.otlp_grpc_addr.unwrap();
    let ops = collector.ops_addr;

    let HalfSentGrpc {
        connection,
        stream: mut held,
        ..
    } = half_sent_grpc(addr).await;
    let in_flight = wait_for_gauge(ops, "the half-sent body's bytes", |v| v >= HELD as f64).await;
    assert!(in_flight <= (HELD + 20 * KIB) as f64, "{in_flight}");
    // The server's settings have arrived by now: streams per connection
    // are limited, as hyper would by default.
    assert_eq!(connection.current_max_send_streams(), 200);

    let mut client = TraceServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
        .max_encoding_message_size(BUDGET);
    let status = client
        .export(request(vec![span(1, 1, PAYLOAD)]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(!status.details().is_empty(), "RetryInfo in the details");
    let refused = metric(
        ops,
        "collector_requests_refused_total{receiver=\"otlp_grpc\",reason=\"overloaded\"}",
    )
    .await;
    assert_eq!(refused, 1.0);

    // The sender gives up: its bytes come back, and the retry goes through.
    held.send_reset(h2::Reason::CANCEL);
    wait_for_gauge(ops, "0 once the stream is reset", |v| v == 0.0).await;
    client
        .export(request(vec![span(1, 1, PAYLOAD)]))
        .await
        .unwrap();
    let records = read_topic(&topic, 1, Duration::from_secs(20)).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].key, hex(&[1; 16]));
    wait_for_gauge(ops, "0 once Kafka has the spans", |v| v == 0.0).await;

    shutdown.cancel();
    collector.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_body_holds_the_budget_while_it_arrives() {
    require_kafka();
    let topic = unique_name("it-body-budget-http");
    create_topic(&topic, 1).await;
    let shutdown = CancellationToken::new();
    let collector = Collector::start(&budget_config(&topic), shutdown.clone())
        .await
        .unwrap();
    let addr = collector.otlp_http_addr.unwrap();
    let ops = collector.ops_addr;

    // HTTP/1.1 with a Content-Length the sender never reaches.
    let held = half_sent_http(addr).await;
    wait_for_gauge(ops, "the half-sent body's bytes", |v| v >= HELD as f64).await;

    let url = format!("http://{addr}/v1/traces");
    let client = reqwest::Client::new();
    let post = || {
        client
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .body(request(vec![span(2, 2, PAYLOAD)]).encode_to_vec())
            .send()
    };
    let response = post().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    let refused = metric(
        ops,
        "collector_requests_refused_total{receiver=\"otlp_http\",reason=\"overloaded\"}",
    )
    .await;
    assert_eq!(refused, 1.0);

    drop(held);
    wait_for_gauge(ops, "0 once the connection is closed", |v| v == 0.0).await;
    let response = post().await.unwrap();
    assert_eq!(response.status(), 200);
    let records = read_topic(&topic, 1, Duration::from_secs(20)).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].key, hex(&[2; 16]));

    shutdown.cancel();
    collector.wait().await;
}

/// A body that stalls is cut at the receiver's body timeout, answered
/// DEADLINE_EXCEEDED or 408, counted, and its budget freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_cut_at_the_body_timeout() {
    require_kafka();
    let topic = unique_name("it-body-timeout");
    create_topic(&topic, 1).await;
    let mut config = budget_config(&topic);
    // Room for both half-sent bodies: only the timeout cuts them.
    config.kafka.max_bytes_in_flight = 4 * BUDGET;
    let timeout = Duration::from_secs(1);
    config.otlp_grpc.read_timeout = timeout;
    config.otlp_http.read_timeout = timeout;
    config.validate().unwrap();
    let shutdown = CancellationToken::new();
    let collector = Collector::start(&config, shutdown.clone()).await.unwrap();
    let ops = collector.ops_addr;

    let started = Instant::now();
    let grpc = half_sent_grpc(collector.otlp_grpc_addr.unwrap()).await;
    let mut http = half_sent_http(collector.otlp_http_addr.unwrap()).await;

    let response = tokio::time::timeout(Duration::from_secs(20), grpc.response)
        .await
        .expect("an answer once the body timeout passes")
        .unwrap();
    assert!(started.elapsed() >= timeout, "not before the timeout");
    // A trailers-only answer: the status is in the headers.
    assert_eq!(response.headers()["grpc-status"], "4", "DEADLINE_EXCEEDED");
    // Percent-encoded, as gRPC sends messages.
    let message = response.headers()["grpc-message"].to_str().unwrap();
    assert!(message.contains("not%20received%20in%20full"), "{message}");

    let mut answer = vec![0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(20), http.read(&mut answer))
        .await
        .expect("an answer once the body timeout passes")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    wait_for_gauge(ops, "0 once both bodies are cut", |v| v == 0.0).await;

    // Over HTTP/1 a request's head has the same time, and a connection
    // that sends nothing is closed after it too.
    let http_addr = collector.otlp_http_addr.unwrap();
    let started = Instant::now();
    let mut idle = tokio::net::TcpStream::connect(http_addr).await.unwrap();
    let mut half_head = tokio::net::TcpStream::connect(http_addr).await.unwrap();
    half_head
        .write_all(b"POST /v1/traces HTTP/1.1\r\nhost: collector\r\n")
        .await
        .unwrap();
    // A kept-alive connection after one answered request.
    let mut kept = tokio::net::TcpStream::connect(http_addr).await.unwrap();
    kept.write_all(
        b"POST /v1/traces HTTP/1.1\r\nhost: collector\r\n\
          content-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = vec![0u8; 512];
    let read = kept.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    for (what, stream) in [
        ("nothing sent", &mut idle),
        ("half a head", &mut half_head),
        ("one request answered", &mut kept),
    ] {
        // Read to the end (an answer to the stalled head, if any, first).
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut rest))
            .await
            .unwrap_or_else(|_| panic!("a connection with {what} is closed"))
            .ok();
    }
    assert!(started.elapsed() >= timeout, "not before the timeout");
    for receiver in ["otlp_grpc", "otlp_http"] {
        let series = format!(
            "collector_requests_refused_total{{receiver=\"{receiver}\",reason=\"body_timeout\"}}"
        );
        assert_eq!(metric(ops, &series).await, 1.0, "{series}");
    }

    shutdown.cancel();
    collector.wait().await;
}

/// The grpc-status of a call: from the headers of a trailers-only answer,
/// or from the trailers after the response message.
async fn grpc_status(response: h2::client::ResponseFuture) -> String {
    let response = response.await.unwrap();
    let status = |headers: &tonic::codegen::http::HeaderMap| {
        headers
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    if let Some(code) = status(response.headers()) {
        return code;
    }
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body.trailers().await.unwrap().expect("trailers");
    status(&trailers).expect("grpc-status in the trailers")
}

/// `message` gzip-compressed and framed as one gRPC message.
fn gzip_framed(message: &[u8]) -> Bytes {
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gzip, message).unwrap();
    let compressed = gzip.finish().unwrap();
    assert!(compressed.len() < 8 * KIB, "{} bytes", compressed.len());
    let mut framed = vec![1u8];
    framed.extend_from_slice(&u32::try_from(compressed.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(&compressed);
    Bytes::from(framed)
}

/// A Jaeger `PostSpansRequest` of one span whose name is `payload` bytes.
fn jaeger_request(payload: usize) -> Vec<u8> {
    use spanway_schemas::prost_types::{Duration as PbDuration, Timestamp};
    use spanway_schemas::proto::jaeger::api_v2 as jaeger;
    let span = jaeger::Span {
        trace_id: vec![8; 16],
        span_id: vec![1; 8],
        operation_name: "x".repeat(payload),
        start_time: Some(Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }),
        duration: Some(PbDuration {
            seconds: 0,
            nanos: 1_000_000,
        }),
        ..Default::default()
    };
    jaeger::PostSpansRequest {
        batch: Some(jaeger::Batch {
            spans: vec![span],
            process: Some(jaeger::Process {
                service_name: "shop".into(),
                tags: Vec::new(),
            }),
        }),
    }
    .encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_message_is_answered_without_waiting_for_its_stream_to_end() {
    require_kafka();
    let topic = unique_name("it-body-budget-gzip");
    create_topic(&topic, 1).await;
    let shutdown = CancellationToken::new();
    let collector = Collector::start(&budget_config(&topic), shutdown.clone())
        .await
        .unwrap();
    let ops = collector.ops_addr;
    // Each half the budget once inflated, a few KiB as sent.
    let calls = [
        (
            collector.otlp_grpc_addr.unwrap(),
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            gzip_framed(&request(vec![span(7, 1, PAYLOAD)]).encode_to_vec()),
        ),
        (
            collector.jaeger_grpc_addr.unwrap(),
            "/jaeger.api_v2.CollectorService/PostSpans",
            gzip_framed(&jaeger_request(PAYLOAD)),
        ),
    ];

    let mut ok = 0;
    let mut open = Vec::new();
    for (addr, path, framed) in calls {
        // Calls that send their whole message but never end their stream.
        // Holding each inflated message until the stream ended would keep
        // memory the budget never saw, 100 times what was sent.
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut client = client.ready().await.unwrap();
        const CALLS: usize = 8;
        let mut answers = Vec::new();
        for _ in 0..CALLS {
            let call = tonic::codegen::http::Request::post(format!("http://{addr}{path}"))
                .header("content-type", "application/grpc")
                .header("grpc-encoding", "gzip")
                .header("te", "trailers")
                .body(())
                .unwrap();
            client = client.ready().await.unwrap();
            let (response, mut stream) = client.send_request(call, false).unwrap();
            stream.send_data(framed.clone(), false).unwrap();
            open.push(stream);
            answers.push(tokio::spawn(grpc_status(response)));
        }
        let mut ok_here = 0;
        for answer in answers {
            let status = tokio::time::timeout(Duration::from_secs(10), answer)
                .await
                .unwrap_or_else(|_| panic!("{path}: no answer while the stream is open"))
                .unwrap();
            match status.as_str() {
                "0" => ok_here += 1,
                // RESOURCE_EXHAUSTED: the budget was full of the others.
                "8" => {}
                other => panic!("{path}: grpc-status {other}"),
            }
        }
        assert!(ok_here >= 1, "{path}: at least the first fit the budget");
        ok += ok_here;
        wait_for_gauge(ops, "0 with every call answered", |v| v == 0.0).await;
    }
    let records = read_topic(&topic, ok, Duration::from_secs(20)).await;
    assert_eq!(records.len(), ok, "every call answered OK is on the topic");
    drop(open);

    shutdown.cancel();
    collector.wait().await;
}
