//! A search engine that stores nothing: it answers what an ingester asks on
//! start (`GET /`, templates) and acknowledges every `_bulk` item, counting
//! the span documents it receives. Writing to it isolates an ingester's own
//! cost (Kafka, decoding, documents, HTTP) from the engine's.
//!
//! The answers are just real enough for both clients we run against it:
//! - ours checks that a bulk response has one item per document and reads
//!   each item's status;
//! - Jaeger's (olivere/elastic) pings `GET /` and picks its index mappings
//!   from `version.number` and the `tagline` (OpenSearch 2.x → ES 7
//!   mappings), then installs templates with `PUT /_template/<name>`, and
//!   gzips its request bodies by default (`--es.http-compression`).

use std::collections::BTreeSet;
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// What the endpoint has received so far.
#[derive(Debug)]
pub struct Stats {
    /// Span documents after which the run is complete.
    target: u64,
    span_docs: AtomicU64,
    docs: AtomicU64,
    bulk_requests: AtomicU64,
    body_bytes: AtomicU64,
    gzip_requests: AtomicU64,
    /// When the first bulk request with span documents arrived, and how many it had.
    first_spans: Mutex<Option<(Instant, u64)>>,
    /// When the span document count reached `target`.
    done_at: Mutex<Option<Instant>>,
    /// Requests other than `GET /` and `_bulk`, as `METHOD /path`.
    other_requests: Mutex<BTreeSet<String>>,
}

/// A consistent copy of [`Stats`].
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Span documents received (actions whose index is `*jaeger-span-*`).
    pub span_docs: u64,
    /// All documents received (span and service).
    pub docs: u64,
    /// `_bulk` requests.
    pub bulk_requests: u64,
    /// Request body bytes as received (compressed when gzipped).
    pub body_bytes: u64,
    /// Bulk requests that came gzipped.
    pub gzip_requests: u64,
    /// When the first bulk request with span documents arrived, and how
    /// many it had: the start of the steady-rate window.
    pub first_spans: Option<(Instant, u64)>,
    /// When the span document count reached the target.
    pub done_at: Option<Instant>,
    /// Other requests seen, `METHOD /path`.
    pub other_requests: Vec<String>,
}

impl Stats {
    fn new(target: u64) -> Self {
        Stats {
            target,
            span_docs: AtomicU64::new(0),
            docs: AtomicU64::new(0),
            bulk_requests: AtomicU64::new(0),
            body_bytes: AtomicU64::new(0),
            gzip_requests: AtomicU64::new(0),
            first_spans: Mutex::new(None),
            done_at: Mutex::new(None),
            other_requests: Mutex::new(BTreeSet::new()),
        }
    }

    /// Span documents received so far.
    pub fn span_docs(&self) -> u64 {
        self.span_docs.load(Ordering::Relaxed)
    }

    /// When the target was reached, if it was.
    pub fn done_at(&self) -> Option<Instant> {
        *lock(&self.done_at)
    }

    /// A copy of every counter.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            span_docs: self.span_docs.load(Ordering::Relaxed),
            docs: self.docs.load(Ordering::Relaxed),
            bulk_requests: self.bulk_requests.load(Ordering::Relaxed),
            body_bytes: self.body_bytes.load(Ordering::Relaxed),
            gzip_requests: self.gzip_requests.load(Ordering::Relaxed),
            first_spans: *lock(&self.first_spans),
            done_at: *lock(&self.done_at),
            other_requests: lock(&self.other_requests).iter().cloned().collect(),
        }
    }

    fn record_bulk(&self, body: &BulkBody, wire_bytes: usize, gzip: bool) {
        let now = Instant::now();
        self.bulk_requests.fetch_add(1, Ordering::Relaxed);
        self.body_bytes
            .fetch_add(wire_bytes as u64, Ordering::Relaxed);
        if gzip {
            self.gzip_requests.fetch_add(1, Ordering::Relaxed);
        }
        self.docs
            .fetch_add(body.actions.len() as u64, Ordering::Relaxed);
        if body.span_docs == 0 {
            return;
        }
        lock(&self.first_spans).get_or_insert((now, body.span_docs));
        let before = self.span_docs.fetch_add(body.span_docs, Ordering::Relaxed);
        if before < self.target && before + body.span_docs >= self.target {
            *lock(&self.done_at) = Some(now);
        }
    }
}

/// A poisoned lock only means a handler panicked mid-update of a plain
/// value; the value is still the best we have.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running null endpoint.
#[derive(Debug)]
pub struct NullEndpoint {
    addr: SocketAddr,
    stats: Arc<Stats>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl NullEndpoint {
    /// Listens on an ephemeral loopback port; the run is complete once
    /// `target_span_docs` span documents have arrived.
    pub async fn start(target_span_docs: u64) -> std::io::Result<NullEndpoint> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(Stats::new(target_span_docs));
        let app = router(stats.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(NullEndpoint {
            addr,
            stats,
            stop,
            task,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The live counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Stops listening; connections still open are closed as their requests end.
    pub async fn stop(self) -> Snapshot {
        let _ = self.stop.send(());
        // A graceful shutdown waits for idle keep-alive connections only as
        // long as the client keeps them; the client is gone by now.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.task).await;
        self.stats.snapshot()
    }
}

fn router(stats: Arc<Stats>) -> Router {
    Router::new()
        .route("/", get(info))
        .route("/_bulk", post(bulk).put(bulk))
        .route("/{index}/_bulk", post(bulk).put(bulk))
        .fallback(other)
        // Bulk bodies are up to 5 MB (ours and Jaeger's default), above
        // axum's 2 MB default limit.
        .layer(DefaultBodyLimit::max(256 * 1024 * 1024))
        .with_state(stats)
}

/// OpenSearch 2.x as `GET /` shows it: Jaeger reads the major version and
/// the tagline to choose ES 7 mappings.
const INFO: &str = r#"{"name":"null-endpoint","cluster_name":"spanway-bench-null","cluster_uuid":"spanway-bench-null","version":{"distribution":"opensearch","number":"2.19.6","build_type":"tar","build_hash":"null","build_date":"2026-01-01T00:00:00Z","build_snapshot":false,"lucene_version":"9.12.1","minimum_wire_compatibility_version":"7.10.0","minimum_index_compatibility_version":"7.0.0"},"tagline":"The OpenSearch Project: https://opensearch.org/"}"#;

async fn info() -> Response {
    json_response(StatusCode::OK, INFO.to_owned())
}

/// Takes the body even though nothing reads it: answering before a body
/// arrives makes hyper close the connection, and a client that has already
/// picked that keep-alive connection for its next request (Jaeger's template
/// `PUT`s, one after another) then reads `EOF` instead of an answer.
async fn other(
    State(stats): State<Arc<Stats>>,
    method: Method,
    uri: Uri,
    _body: Bytes,
) -> Response {
    lock(&stats.other_requests).insert(format!("{method} {}", uri.path()));
    json_response(StatusCode::OK, r#"{"acknowledged":true}"#.to_owned())
}

async fn bulk(State(stats): State<Arc<Stats>>, headers: HeaderMap, body: Bytes) -> Response {
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let wire_bytes = body.len();
    let plain = if gzip {
        let mut out = Vec::with_capacity(body.len() * 8);
        if let Err(error) = flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out) {
            return json_response(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": format!("bad gzip body: {error}")}).to_string(),
            );
        }
        Bytes::from(out)
    } else {
        body
    };
    let parsed = parse_bulk(&plain);
    stats.record_bulk(&parsed, wire_bytes, gzip);
    json_response(StatusCode::OK, bulk_response(&parsed.actions))
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A bulk action, as named in the action line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `create`: our ingester (a redelivery becomes a 409).
    Create,
    /// `index`: Jaeger's ingester.
    Index,
    /// `update`.
    Update,
    /// `delete`: the only action without a source line.
    Delete,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Index => "index",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

/// What a bulk body holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BulkBody {
    /// Every action, in order: the response has one item for each.
    pub actions: Vec<Action>,
    /// Actions whose target index is a Jaeger span index.
    pub span_docs: u64,
}

/// Reads the action lines of an NDJSON bulk body. An action line is
/// followed by a source line, except for `delete`. Only the action lines are
/// looked at, and only with a byte scan: the endpoint shares the CPU with
/// the process being measured, so it must stay cheap.
pub fn parse_bulk(body: &[u8]) -> BulkBody {
    let mut parsed = BulkBody::default();
    let mut expect_source = false;
    for line in body.split(|b| *b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if expect_source {
            expect_source = false;
            continue;
        }
        let action = action_of(line);
        if contains(line, b"jaeger-span-") {
            parsed.span_docs += 1;
        }
        expect_source = action != Action::Delete;
        parsed.actions.push(action);
    }
    parsed
}

/// The action named by the first key of an action line such as
/// `{"create":{"_index":"x","_id":"y"}}`; an unknown one counts as `index`.
fn action_of(line: &[u8]) -> Action {
    let start = line.iter().position(|b| *b == b'"').map_or(0, |i| i + 1);
    let rest = &line[start.min(line.len())..];
    if rest.starts_with(b"create\"") {
        Action::Create
    } else if rest.starts_with(b"delete\"") {
        Action::Delete
    } else if rest.starts_with(b"update\"") {
        Action::Update
    } else {
        Action::Index
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `{"took":0,"errors":false,"items":[{"create":{"status":201}},…]}`, one
/// item per action in order, as a successful bulk response has.
pub fn bulk_response(actions: &[Action]) -> String {
    let mut out = String::with_capacity(40 + actions.len() * 28);
    out.push_str(r#"{"took":0,"errors":false,"items":["#);
    for (i, action) in actions.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let status = if *action == Action::Create || *action == Action::Index {
            "201"
        } else {
            "200"
        };
        out.push_str("{\"");
        out.push_str(action.name());
        out.push_str("\":{\"status\":");
        out.push_str(status);
        out.push_str("}}");
    }
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_actions_and_span_documents() {
        let body = concat!(
            r#"{"create":{"_index":"p-jaeger-span-2026-02-01","_id":"a"}}"#,
            "\n",
            r#"{"traceID":"jaeger-span-in-source-is-not-counted"}"#,
            "\n",
            r#"{"index":{"_index":"p-jaeger-service-2026-02-01","_type":"service"}}"#,
            "\n",
            r#"{"serviceName":"s"}"#,
            "\n",
            r#"{"delete":{"_index":"x","_id":"b"}}"#,
            "\n",
            r#"{"index":{"_index":"p-jaeger-span-2026-02-01"}}"#,
            "\n",
            r#"{"spanID":"1"}"#,
            "\n"
        );
        let parsed = parse_bulk(body.as_bytes());
        assert_eq!(
            parsed.actions,
            vec![Action::Create, Action::Index, Action::Delete, Action::Index]
        );
        assert_eq!(parsed.span_docs, 2);
        let response: serde_json::Value =
            serde_json::from_str(&bulk_response(&parsed.actions)).unwrap();
        assert_eq!(response["errors"], false);
        assert_eq!(response["items"].as_array().unwrap().len(), 4);
        assert_eq!(response["items"][0]["create"]["status"], 201);
        assert_eq!(response["items"][2]["delete"]["status"], 200);
    }

    #[tokio::test]
    async fn answers_like_an_engine() {
        let endpoint = NullEndpoint::start(2).await.unwrap();
        let client = reqwest::Client::new();
        let info: serde_json::Value = client
            .get(endpoint.url())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(info["version"]["number"], "2.19.6");
        let template = client
            .put(format!("{}/_template/p-jaeger-span", endpoint.url()))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert!(template.status().is_success());

        let line = r#"{"create":{"_index":"p-jaeger-span-2026-02-01","_id":"a"}}"#;
        let body = format!("{line}\n{{}}\n{line}\n{{}}\n");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, body.as_bytes()).unwrap();
        let response: serde_json::Value = client
            .post(format!("{}/_bulk", endpoint.url()))
            .header("content-encoding", "gzip")
            .body(gz.finish().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(response["items"].as_array().unwrap().len(), 2);
        assert!(endpoint.stats().done_at().is_some());
        let snapshot = endpoint.stop().await;
        assert_eq!(snapshot.span_docs, 2);
        assert_eq!(snapshot.gzip_requests, 1);
        assert_eq!(
            snapshot.other_requests,
            vec!["PUT /_template/p-jaeger-span"]
        );
    }

    /// A template `PUT` whose body arrives after its head, then a second
    /// request on the same connection: both are answered.
    #[tokio::test]
    async fn keeps_the_connection_when_a_body_arrives_late() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

        let endpoint = NullEndpoint::start(1).await.unwrap();
        let mut stream = tokio::net::TcpStream::connect(endpoint.addr).await.unwrap();
        let body = "{}";
        let head = format!(
            "PUT /_template/p-jaeger-span HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        stream.write_all(body.as_bytes()).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();

        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        let answered_twice = |r: &[u8]| {
            r.windows(b"HTTP/1.1 200".len())
                .filter(|w| *w == b"HTTP/1.1 200")
                .count()
                == 2
                && r.ends_with(b"}")
        };
        while !answered_twice(&received) {
            let n = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut buf))
                .await
                .expect("an answer within 10 s")
                .unwrap();
            assert!(
                n > 0,
                "connection closed after: {}",
                String::from_utf8_lossy(&received)
            );
            received.extend_from_slice(&buf[..n]);
        }
        assert!(String::from_utf8_lossy(&received).contains("2.19.6"));
        endpoint.stop().await;
    }
}
