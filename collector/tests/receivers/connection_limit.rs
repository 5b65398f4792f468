//! What the listeners do with connections: each holds at most
//! `max_connections` (one more is closed as soon as it is accepted and
//! counted, and the slot of a connection that ends is free for the next),
//! and at shutdown none waits past its drain for a client that never
//! closes.
#![allow(clippy::unwrap_used)]

use super::grpc_common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use grpc_common::{config, metric, read_topic, request, span};
use spanway_collector::Collector;
use spanway_e2e::{create_topic, require_kafka, unique_name};
use spanway_schemas::proto::grpc::otlp_trace::trace_service_client::TraceServiceClient;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Waits until `series` reads `expected`.
async fn wait_for(ops: SocketAddr, series: &str, expected: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value = metric(ops, series).await;
        if value == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} is {value}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An HTTP/2 connection the server has taken (its SETTINGS answered).
async fn h2_connection(addr: SocketAddr) -> h2::client::SendRequest<bytes::Bytes> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client.ready().await.unwrap()
}

/// Sends `hello` on a new connection and says whether the server closed
/// it without a byte of answer.
async fn closed_at_once(addr: SocketAddr, hello: &[u8]) -> bool {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The server may close before or after these bytes arrive.
    let _ = stream.write_all(hello).await;
    let mut buf = [0u8; 256];
    match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => false,
        Err(_) => panic!("the connection was neither answered nor closed"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_are_closed_at_once_and_counted() {
    require_kafka();
    let topic = unique_name("it-connection-limit");
    create_topic(&topic, 1).await;
    let mut config = config(&topic);
    config.otlp_grpc.max_connections = 2;
    config.otlp_http.max_connections = 1;
    config.validate().unwrap();
    let shutdown = CancellationToken::new();
    let collector = Collector::start(&config, shutdown.clone()).await.unwrap();
    let grpc = collector.otlp_grpc_addr.unwrap();
    let http = collector.otlp_http_addr.unwrap();
    let ops = collector.ops_addr;
    let open = r#"collector_connections_open{receiver="otlp_grpc"}"#;
    let refused = r#"collector_connections_refused_total{receiver="otlp_grpc"}"#;

    let first = h2_connection(grpc).await;
    let _second = h2_connection(grpc).await;
    wait_for(ops, open, 2.0).await;
    assert!(
        closed_at_once(grpc, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await,
        "a third gRPC connection is closed"
    );
    wait_for(ops, refused, 1.0).await;
    assert_eq!(metric(ops, open).await, 2.0);

    // A connection that ends gives its slot to the next client.
    drop(first);
    wait_for(ops, open, 1.0).await;
    let mut client = TraceServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    client.export(request(vec![span(1, 1, 10)])).await.unwrap();
    let records = read_topic(&topic, 1, Duration::from_secs(20)).await;
    assert_eq!(records.len(), 1, "the export through the freed slot landed");
    assert_eq!(metric(ops, refused).await, 1.0);

    // The HTTP listener has its own limit and counts.
    let mut kept = TcpStream::connect(http).await.unwrap();
    kept.write_all(format!("GET /health HTTP/1.1\r\nhost: {http}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    assert!(
        kept.read(&mut buf).await.unwrap() > 0,
        "the first is answered"
    );
    let hello = format!("GET /health HTTP/1.1\r\nhost: {http}\r\n\r\n");
    assert!(closed_at_once(http, hello.as_bytes()).await);
    wait_for(
        ops,
        r#"collector_connections_refused_total{receiver="otlp_http"}"#,
        1.0,
    )
    .await;
    drop(kept);
    wait_for(
        ops,
        r#"collector_connections_open{receiver="otlp_http"}"#,
        0.0,
    )
    .await;
    assert!(!closed_at_once(http, hello.as_bytes()).await, "room again");

    shutdown.cancel();
    collector.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_waiting_for_clients_that_never_close() {
    require_kafka();
    let topic = unique_name("it-connection-drain");
    create_topic(&topic, 1).await;
    let mut config = config(&topic);
    config.kafka.delivery_timeout = Duration::from_secs(1);
    config.validate().unwrap();
    // The delivery timeout and the listeners' 5 s after it.
    let drain = Duration::from_secs(6);
    let shutdown = CancellationToken::new();
    let collector = Collector::start(&config, shutdown.clone()).await.unwrap();

    // HTTP/2 clients that never read again, so never answer the PING the
    // server sends after GOAWAY, on a gRPC and on an HTTP port.
    let hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    let mut deaf = Vec::new();
    for addr in [
        collector.otlp_grpc_addr.unwrap(),
        collector.otlp_http_addr.unwrap(),
    ] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(hello).await.unwrap();
        let mut settings = [0u8; 9];
        stream.read_exact(&mut settings).await.unwrap();
        deaf.push(stream);
    }

    let cancelled = Instant::now();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(60), collector.wait())
        .await
        .expect("the collector stopped");
    let waited = cancelled.elapsed();
    assert!(waited >= drain, "it waited for the drain first: {waited:?}");
}

/// Reads until the server closes `stream`, answering nothing; how long
/// that took.
async fn until_closed(stream: &mut TcpStream) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the connection was kept open for 30 s"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_idle_and_deaf_clients_give_their_slots_back() {
    require_kafka();
    let topic = unique_name("it-connection-idle");
    create_topic(&topic, 1).await;
    let mut config = config(&topic);
    let read = Duration::from_secs(1);
    let idle = Duration::from_secs(2);
    config.otlp_grpc.max_connections = 1;
    config.otlp_grpc.read_timeout = read;
    config.otlp_grpc.max_connection_idle = idle;
    config.otlp_http.max_connections = 1;
    config.otlp_http.read_timeout = read;
    config.validate().unwrap();
    let shutdown = CancellationToken::new();
    let collector = Collector::start(&config, shutdown.clone()).await.unwrap();
    let grpc = collector.otlp_grpc_addr.unwrap();
    let http = collector.otlp_http_addr.unwrap();
    let ops = collector.ops_addr;
    let open = r#"collector_connections_open{receiver="otlp_grpc"}"#;

    // A client that connects to the gRPC port and sends nothing holds the
    // only slot until the read timeout.
    let mut silent = TcpStream::connect(grpc).await.unwrap();
    wait_for(ops, open, 1.0).await;
    let waited = until_closed(&mut silent).await;
    assert!(waited >= read / 2, "dropped after {waited:?}");
    wait_for(ops, open, 0.0).await;

    // HTTP/2 clients that never answer the server, so never complete the
    // close after GOAWAY: idle, asked to close, then dropped a read
    // timeout later, on the gRPC and on an HTTP port.
    let hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    for (addr, asked_after) in [(grpc, idle), (http, read)] {
        let mut deaf = TcpStream::connect(addr).await.unwrap();
        deaf.write_all(hello).await.unwrap();
        let waited = until_closed(&mut deaf).await;
        assert!(
            waited >= asked_after + read / 2,
            "{addr}: dropped after {waited:?}"
        );
    }
    wait_for(ops, open, 0.0).await;

    // A real client is asked to close when idle too, and reconnects for
    // its next export through the free slot.
    let mut client = TraceServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    client.export(request(vec![span(1, 1, 10)])).await.unwrap();
    wait_for(ops, open, 1.0).await;
    tokio::time::sleep(idle + read).await;
    wait_for(ops, open, 0.0).await;
    client.export(request(vec![span(2, 2, 10)])).await.unwrap();
    let records = read_topic(&topic, 2, Duration::from_secs(20)).await;
    assert_eq!(records.len(), 2, "both exports landed");
    let refused = r#"collector_connections_refused_total{receiver="otlp_grpc"}"#;
    assert_eq!(metric(ops, refused).await, 0.0, "no client was turned away");
    let ended = |receiver: &str, reason: &str| {
        format!(r#"collector_connections_ended_total{{receiver="{receiver}",reason="{reason}"}}"#)
    };
    assert_eq!(metric(ops, &ended("otlp_grpc", "silent")).await, 1.0);
    assert_eq!(
        metric(ops, &ended("otlp_grpc", "idle")).await,
        2.0,
        "the deaf client and the real one"
    );
    assert_eq!(metric(ops, &ended("otlp_grpc", "unresponsive")).await, 1.0);
    assert_eq!(metric(ops, &ended("otlp_http", "idle")).await, 1.0);
    assert_eq!(metric(ops, &ended("otlp_http", "unresponsive")).await, 1.0);

    shutdown.cancel();
    collector.wait().await;
}
