//! What the HTTP receiver integration tests share: the real clients under
//! `dev/clients/` (installed once per test binary), a collector on loopback
//! ports chosen by the kernel, a reader of the spans topic, and small
//! accessors for comparing OTLP spans with what a client says it sent.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use prost::Message as _;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use spanway_collector::Collector;
use spanway_collector::config::CollectorConfig;
use spanway_e2e::{create_topic, kafka_bootstrap, require_kafka, unique_name};
use spanway_schemas::proto::otlp;
use tokio_util::sync::CancellationToken;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where `dev/clients/install` puts the clients.
pub fn clients_dir() -> PathBuf {
    root().join(".services/clients")
}

/// Installs the real clients (idempotent; the first run downloads them from
/// npm and Maven Central). Panics with the installer's output on failure.
pub fn ensure_clients() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let output = Command::new("bash")
            .arg(root().join("dev/clients/install"))
            .output()
            .expect("run dev/clients/install");
        assert!(
            output.status.success(),
            "dev/clients/install failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    });
}

/// Runs a client program to completion; panics with its output on failure
/// and returns its stdout.
pub fn run_client(mut command: Command) -> String {
    let output = command.output().expect("start the client");
    assert!(
        output.status.success(),
        "client {command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs the Java client `class` from `dev/clients/java` with `args`, off
/// the runtime's threads, and returns what it printed.
pub async fn run_java(class: &str, args: &[&str]) -> String {
    let mut command = Command::new("java");
    command.args(["-cp", &java_classpath(), class]).args(args);
    tokio::task::spawn_blocking(move || run_client(command))
        .await
        .unwrap()
}

/// The Java client classpath.
pub fn java_classpath() -> String {
    let dir = clients_dir().join("java");
    format!(
        "{}:{}/*",
        dir.join("classes").display(),
        dir.join("libs").display()
    )
}

/// A collector started for one test, with its topic.
pub struct Started {
    pub collector: Collector,
    pub topic: String,
    pub shutdown: CancellationToken,
}

impl Started {
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.collector.wait().await;
    }
}

/// Creates a topic of three partitions and starts a collector writing to
/// it, with the HTTP receivers on free loopback ports and the gRPC ones off.
pub async fn start(prefix: &str) -> Started {
    require_kafka();
    let topic = unique_name(prefix);
    create_topic(&topic, 3).await;
    let mut config = CollectorConfig::default();
    config.kafka.client.brokers = vec![kafka_bootstrap()];
    config.kafka.topic = topic.clone();
    config.on_ephemeral_loopback_ports();
    config.zipkin.enabled = true;
    config.jaeger_thrift_http.enabled = true;
    config.otlp_grpc.enabled = false;
    config.jaeger_grpc.enabled = false;
    config.sampling.enabled = false;
    config.validate().unwrap();
    let shutdown = CancellationToken::new();
    let collector = Collector::start(&config, shutdown.clone()).await.unwrap();
    Started {
        collector,
        topic,
        shutdown,
    }
}

/// A collector whose Kafka cannot be reached (nothing listens on port 1 of
/// loopback): every publish fails after `delivery_timeout`, which tests the
/// retryable answers without stopping the shared broker. The byte budget is
/// one request of `max_request_bytes`, so a second request while the first
/// waits finds it spent.
pub async fn start_without_kafka(max_request_bytes: usize) -> Started {
    let mut config = CollectorConfig::default();
    config.kafka.client.brokers = vec!["127.0.0.1:1".to_owned()];
    config.kafka.topic = unique_name("it-unreachable");
    config.kafka.delivery_timeout = Duration::from_millis(1500);
    config.on_ephemeral_loopback_ports();
    config.limit_requests_to(max_request_bytes);
    config.zipkin.enabled = true;
    config.jaeger_thrift_http.enabled = true;
    config.otlp_grpc.enabled = false;
    config.jaeger_grpc.enabled = false;
    config.sampling.enabled = false;
    config.validate().unwrap();
    let shutdown = CancellationToken::new();
    let collector = Collector::start(&config, shutdown.clone()).await.unwrap();
    Started {
        collector,
        topic: config.kafka.topic.clone(),
        shutdown,
    }
}

/// Posts `body` twice at once to `url` with a Kafka that cannot be reached:
/// one answer must be 429 (budget spent by the other), the other 503 (not
/// acknowledged in time), both with `Retry-After`.
pub async fn assert_retryable_refusals(url: &str, content_type: &str, body: Vec<u8>) {
    let client = reqwest::Client::new();
    let send = |delay: u64| {
        let request = client
            .post(url)
            .header("content-type", content_type)
            .body(body.clone());
        async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let started = Instant::now();
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned()),
                started.elapsed(),
            )
        }
    };
    // The second starts once the first holds the budget.
    let (first, second) = tokio::join!(send(0), send(300));
    assert_eq!(first.0, 503, "Kafka unreachable: {first:?}");
    assert_eq!(first.1.as_deref(), Some("1"));
    assert!(first.2 < Duration::from_secs(5), "{first:?}");
    assert_eq!(second.0, 429, "budget spent: {second:?}");
    assert_eq!(second.1.as_deref(), Some("1"));
    assert!(
        second.2 < Duration::from_millis(500),
        "refused at once: {second:?}"
    );
}

/// One record of the spans topic, decoded as the `otlp_proto` encoding.
#[derive(Debug)]
pub struct Record {
    pub key: String,
    pub partition: i32,
    pub data: otlp::TracesData,
}

/// A span as read back, with the resource and scope it sat under.
#[derive(Debug, Clone)]
pub struct ReadSpan {
    pub key: String,
    pub partition: i32,
    pub resource: otlp::Resource,
    pub scope: otlp::InstrumentationScope,
    pub span: otlp::Span,
}

/// Reads `topic` from the start until it holds at least `spans` spans (then
/// a second more, so that extra records would show), or `timeout` passes.
pub async fn read_topic(topic: &str, spans: usize, timeout: Duration) -> Vec<Record> {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", kafka_bootstrap())
            .set("group.id", unique_name("it-http-reader"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        consumer.subscribe(&[&topic]).unwrap();
        let mut records = Vec::new();
        let mut seen = 0;
        let deadline = Instant::now() + timeout;
        let mut settle: Option<Instant> = None;
        while Instant::now() < deadline && settle.is_none_or(|s| Instant::now() < s) {
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = message.unwrap();
            let data = otlp::TracesData::decode(message.payload().unwrap()).unwrap();
            seen += data
                .resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .map(|ss| ss.spans.len())
                .sum::<usize>();
            records.push(Record {
                key: String::from_utf8(message.key().unwrap().to_vec()).unwrap(),
                partition: message.partition(),
                data,
            });
            if seen >= spans && settle.is_none() {
                settle = Some(Instant::now() + Duration::from_secs(1));
            }
        }
        records
    })
    .await
    .unwrap()
}

/// Every span of `records`, keyed by span id in hex; checks on the way that
/// each record's key is its spans' trace id and that all records of a trace
/// went to one partition.
pub fn spans_by_id(records: &[Record]) -> HashMap<String, ReadSpan> {
    let mut partition_of: HashMap<String, i32> = HashMap::new();
    let mut out = HashMap::new();
    for record in records {
        let first = *partition_of
            .entry(record.key.clone())
            .or_insert(record.partition);
        assert_eq!(
            first, record.partition,
            "all records of trace {} on one partition",
            record.key
        );
        for rs in &record.data.resource_spans {
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    assert_eq!(hex(&span.trace_id), record.key, "record keyed by trace id");
                    let previous = out.insert(
                        hex(&span.span_id),
                        ReadSpan {
                            key: record.key.clone(),
                            partition: record.partition,
                            resource: rs.resource.clone().unwrap_or_default(),
                            scope: ss.scope.clone().unwrap_or_default(),
                            span: span.clone(),
                        },
                    );
                    assert!(previous.is_none(), "span {} read twice", hex(&span.span_id));
                }
            }
        }
    }
    out
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Attribute values in a form that compares with JSON from the clients.
pub fn value_json(value: Option<&otlp::AnyValue>) -> serde_json::Value {
    use otlp::any_value::Value as V;
    match value.and_then(|v| v.value.as_ref()) {
        None => serde_json::Value::Null,
        Some(V::StringValue(s)) => s.clone().into(),
        Some(V::BoolValue(b)) => (*b).into(),
        Some(V::IntValue(i)) => (*i).into(),
        Some(V::DoubleValue(d)) => (*d).into(),
        Some(V::ArrayValue(a)) => a
            .values
            .iter()
            .map(|v| value_json(Some(v)))
            .collect::<Vec<_>>()
            .into(),
        Some(V::KvlistValue(kv)) => attributes(&kv.values).into_iter().collect(),
        Some(V::BytesValue(b)) => hex(b).into(),
    }
}

/// Attributes as a sorted map of JSON values.
pub fn attributes(kvs: &[otlp::KeyValue]) -> BTreeMap<String, serde_json::Value> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), value_json(kv.value.as_ref())))
        .collect()
}

/// A JSON object as a sorted map.
pub fn object(value: &serde_json::Value) -> BTreeMap<String, serde_json::Value> {
    value
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}
