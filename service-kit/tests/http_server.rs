//! The HTTP server's deadlines, over real loopback connections: what a
//! silent, idle or pinging client gets, and that neither the idle close
//! nor shutdown cuts a request in flight.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use prometheus_client::registry::Registry;
use spanway_service_kit::http_server::{self, Ending};
use spanway_service_kit::liveness::Liveness;
use spanway_service_kit::ops::{self, Readiness};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const READ_TIMEOUT: Duration = Duration::from_millis(600);
/// Far beyond any deadline here: only a server that never closes reaches it.
const NEVER: Duration = Duration::from_secs(20);
/// How long the slow route takes: longer than the read timeout.
const SLOW: Duration = Duration::from_millis(1500);

fn app() -> Router {
    Router::new().route("/", get(|| async { "ok" })).route(
        "/slow",
        get(|| async {
            tokio::time::sleep(SLOW).await;
            "done"
        }),
    )
}

async fn start(read_timeout: Duration) -> (SocketAddr, CancellationToken, JoinHandle<()>) {
    start_with(http_server::Deadlines::new(read_timeout, NEVER)).await
}

async fn start_with(
    deadlines: http_server::Deadlines,
) -> (SocketAddr, CancellationToken, JoinHandle<()>) {
    start_serving(deadlines, http_server::Versions::Any, Endings::default()).await
}

/// What the server told of the connections it ended, in order.
#[derive(Debug, Clone, Default)]
struct Endings(Arc<Mutex<Vec<Ending>>>);

impl Endings {
    fn seen(&self) -> Vec<Ending> {
        self.0.lock().unwrap().clone()
    }
}

async fn start_serving(
    deadlines: http_server::Deadlines,
    versions: http_server::Versions,
    endings: Endings,
) -> (SocketAddr, CancellationToken, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let connections = http_server::accept_plain(listener, "test", shutdown.clone());
    let server = tokio::spawn(http_server::serve(
        connections,
        app(),
        deadlines,
        versions,
        http_server::Port {
            name: "test",
            on_ending: Some(Arc::new(move |ending| {
                endings.0.lock().unwrap().push(ending)
            })),
        },
        shutdown.clone(),
    ));
    (addr, shutdown, server)
}

/// Reads until the server closes the connection; how long that took.
async fn until_closed(stream: &mut TcpStream) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(NEVER, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the server kept the connection open for {NEVER:?}"),
        }
    }
}

/// An HTTP/2 connection by prior knowledge; its driver's task ends when
/// the server closes it.
async fn h2_connect(
    addr: SocketAddr,
) -> (
    h2::client::SendRequest<bytes::Bytes>,
    h2::PingPong,
    JoinHandle<()>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, mut connection) = h2::client::handshake(tcp).await.unwrap();
    let ping_pong = connection.ping_pong().expect("the first call gives it");
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    (client, ping_pong, driver)
}

async fn h2_get(
    client: &mut h2::client::SendRequest<bytes::Bytes>,
    addr: SocketAddr,
    path: &str,
) -> (StatusCode, String) {
    let request = Request::get(format!("http://{addr}{path}"))
        .body(())
        .unwrap();
    let ready = client.clone().ready().await.unwrap();
    *client = ready;
    let (response, _) = client.send_request(request, true).unwrap();
    let response = response.await.unwrap();
    let status = response.status();
    let mut body = response.into_body();
    let mut text = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        text.extend_from_slice(&chunk);
    }
    (status, String::from_utf8(text).unwrap())
}

#[tokio::test]
async fn a_client_that_sends_nothing_is_dropped_after_the_read_timeout() {
    let endings = Endings::default();
    let deadlines = http_server::Deadlines::new(READ_TIMEOUT, NEVER);
    let (addr, _shutdown, _server) =
        start_serving(deadlines, http_server::Versions::Any, endings.clone()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let waited = until_closed(&mut stream).await;
    assert!(waited >= READ_TIMEOUT, "closed after {waited:?}");
    assert_eq!(endings.seen(), [Ending::Silent]);
}

#[tokio::test]
async fn an_idle_http1_connection_is_closed_a_read_timeout_after_its_last_answer() {
    let (addr, _shutdown, _server) = start(READ_TIMEOUT).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let read = stream.read(&mut buf).await.unwrap();
    let answer = String::from_utf8_lossy(&buf[..read]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok"), "{answer}");
    let waited = until_closed(&mut stream).await;
    // Less than the whole timeout may be left: it runs from the answer.
    assert!(waited >= READ_TIMEOUT / 2, "closed after {waited:?}");
}

#[tokio::test]
async fn an_idle_http2_connection_gets_goaway_though_its_client_pings() {
    let (addr, _shutdown, _server) = start(READ_TIMEOUT).await;
    let (mut client, mut ping_pong, driver) = h2_connect(addr).await;
    let (status, body) = h2_get(&mut client, addr, "/").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    let answered = Instant::now();
    // Pings every tenth of the timeout, answered, keep nothing open.
    let pinger = tokio::spawn(async move {
        let mut pongs = 0u32;
        while ping_pong.ping(h2::Ping::opaque()).await.is_ok() {
            pongs += 1;
            tokio::time::sleep(READ_TIMEOUT / 10).await;
        }
        pongs
    });
    tokio::time::timeout(NEVER, driver)
        .await
        .expect("the server kept an idle HTTP/2 connection open")
        .unwrap();
    let waited = answered.elapsed();
    assert!(waited >= READ_TIMEOUT / 2, "closed after {waited:?}");
    let pongs = pinger.await.unwrap();
    assert!(pongs >= 3, "the client's pings were answered: {pongs}");
}

/// The bytes of an HTTP/2 client's preface and an empty SETTINGS frame.
const H2_HELLO: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

#[tokio::test]
async fn an_idle_http2_client_that_never_answers_the_goaway_is_dropped() {
    let endings = Endings::default();
    let deadlines = http_server::Deadlines::new(READ_TIMEOUT, NEVER);
    let (addr, _shutdown, _server) =
        start_serving(deadlines, http_server::Versions::Any, endings.clone()).await;
    // It reads what the server sends, but answers nothing: not its
    // SETTINGS, not the PING that follows GOAWAY.
    let mut deaf = TcpStream::connect(addr).await.unwrap();
    deaf.write_all(H2_HELLO).await.unwrap();
    let waited = until_closed(&mut deaf).await;
    // Idle for the read timeout, then asked to close, then a read timeout
    // more for the close to finish.
    assert!(waited >= 2 * READ_TIMEOUT, "closed after {waited:?}");
    assert_eq!(endings.seen(), [Ending::Idle, Ending::Unresponsive]);
}

#[tokio::test]
async fn an_http2_only_port_closes_connections_at_their_age_and_refuses_http1() {
    let age = Duration::from_secs(1);
    let deadlines = http_server::Deadlines {
        max_age: Some(age),
        ..http_server::Deadlines::new(NEVER, NEVER)
    };
    let versions = http_server::Versions::Http2 { max_streams: 10 };
    let endings = Endings::default();
    let (addr, _shutdown, _server) = start_serving(deadlines, versions, endings.clone()).await;

    let connected = Instant::now();
    let (mut client, mut ping_pong, driver) = h2_connect(addr).await;
    let (status, body) = h2_get(&mut client, addr, "/").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    // A busy connection closes at its age too: a slow request is in
    // flight when the age comes, and is answered first.
    let slow = tokio::spawn(async move { h2_get(&mut client, addr, "/slow").await });
    let pinger = tokio::spawn(async move {
        while ping_pong.ping(h2::Ping::opaque()).await.is_ok() {
            tokio::time::sleep(age / 10).await;
        }
    });
    let (status, body) = slow.await.unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "done"));
    tokio::time::timeout(NEVER, driver)
        .await
        .expect("the server kept a connection past its age")
        .unwrap();
    let lived = connected.elapsed();
    assert!(lived >= SLOW, "closed after {lived:?}");
    assert_eq!(endings.seen(), [Ending::Old]);
    pinger.abort();

    let mut http1 = TcpStream::connect(addr).await.unwrap();
    http1
        .write_all(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(NEVER, http1.read_to_end(&mut answer))
        .await
        .expect("the server answered or closed");
    assert!(
        !answer.starts_with(b"HTTP/1.1"),
        "no HTTP/1 answer: {}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test]
async fn a_request_longer_than_the_read_timeout_is_answered_then_the_connection_closes() {
    let (addr, _shutdown, _server) = start(READ_TIMEOUT).await;
    let (mut client, _ping_pong, driver) = h2_connect(addr).await;
    let sent = Instant::now();
    let (status, body) = h2_get(&mut client, addr, "/slow").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "done"));
    assert!(sent.elapsed() >= SLOW);
    let answered = Instant::now();
    tokio::time::timeout(NEVER, driver)
        .await
        .expect("the server kept the connection open")
        .unwrap();
    assert!(answered.elapsed() >= READ_TIMEOUT / 2);

    // The same over HTTP/1.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let read = stream.read(&mut buf).await.unwrap();
        assert!(read > 0, "closed before the answer");
        answer.extend_from_slice(&buf[..read]);
        if answer.ends_with(b"done") {
            break;
        }
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"));
}

#[tokio::test]
async fn shutdown_answers_the_requests_in_flight_then_returns() {
    let (addr, shutdown, server) = start(NEVER).await;
    let (mut client, _ping_pong, driver) = h2_connect(addr).await;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    assert!(idle.read(&mut buf).await.unwrap() > 0);

    let slow = tokio::spawn(async move { h2_get(&mut client, addr, "/slow").await });
    tokio::time::sleep(SLOW / 3).await;
    shutdown.cancel();
    let (status, body) = slow.await.unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "done"));
    tokio::time::timeout(NEVER, server)
        .await
        .expect("serve returned once the request was answered")
        .unwrap();
    tokio::time::timeout(NEVER, driver).await.unwrap().unwrap();
    // The idle HTTP/1 connection was closed, well before its timeout.
    assert!(until_closed(&mut idle).await < NEVER);
}

#[tokio::test]
async fn connections_that_do_not_close_are_dropped_after_the_drain() {
    let drain = Duration::from_secs(1);
    let (addr, shutdown, server) = start_with(http_server::Deadlines::new(NEVER, drain)).await;
    // An HTTP/2 client that never reads again: it does not answer the
    // PING the server sends after GOAWAY.
    let mut deaf = TcpStream::connect(addr).await.unwrap();
    deaf.write_all(H2_HELLO).await.unwrap();
    let mut settings = [0u8; 9];
    deaf.read_exact(&mut settings).await.unwrap();
    // An HTTP/1 request whose head stops halfway.
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET / HTTP/1.1\r\nhost: te").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let cancelled = Instant::now();
    shutdown.cancel();
    tokio::time::timeout(NEVER, server)
        .await
        .expect("serve returned after the drain")
        .unwrap();
    let waited = cancelled.elapsed();
    assert!(waited >= drain, "it waited for the drain: {waited:?}");
    assert!(until_closed(&mut half).await < NEVER);
    assert!(until_closed(&mut deaf).await < NEVER);
}

#[tokio::test]
async fn the_operations_endpoint_drops_silent_clients_and_answers_others() {
    let shutdown = CancellationToken::new();
    let addr = ops::serve_with_read_timeout(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(Registry::default()),
        Readiness::default(),
        Liveness::new(Duration::from_secs(30), shutdown.clone()),
        READ_TIMEOUT,
        shutdown.clone(),
    )
    .await
    .unwrap();
    let mut silent = TcpStream::connect(addr).await.unwrap();

    let mut probe = TcpStream::connect(addr).await.unwrap();
    probe
        .write_all(b"GET /health/ready HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let read = probe.read(&mut buf).await.unwrap();
    let answer = String::from_utf8_lossy(&buf[..read]);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");

    let waited = until_closed(&mut silent).await;
    assert!(waited >= READ_TIMEOUT, "closed after {waited:?}");
    shutdown.cancel();
}
