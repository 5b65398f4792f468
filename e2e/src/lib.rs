//! Helpers for tests that need the real services started by `dev/services up`.
//!
//! A test that cannot reach a service fails with a message saying how to
//! start it; it never skips.

pub mod chart;
pub mod cluster;
pub mod corpus;
pub mod jaeger_query;
pub mod jaeger_v2;
pub mod logs;
pub mod ops;
pub mod otlp;
pub mod relay;
pub mod secure;
pub mod topology;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::Rng;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Headers as _;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};

/// Bootstrap address of the test broker (`KAFKA_BOOTSTRAP`, default `127.0.0.1:9092`).
pub fn kafka_bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// Base URL of the test search engine (`OPENSEARCH_URL`, default `http://127.0.0.1:9200`).
pub fn opensearch_url() -> String {
    std::env::var("OPENSEARCH_URL").unwrap_or_else(|_| "http://127.0.0.1:9200".into())
}

/// Base URL of the Elasticsearch 7.17 test node (`ELASTICSEARCH_URL`, default `http://127.0.0.1:9201`).
pub fn elasticsearch_url() -> String {
    std::env::var("ELASTICSEARCH_URL").unwrap_or_else(|_| "http://127.0.0.1:9201".into())
}

/// Base URL of the Elasticsearch 8 test node (`ELASTICSEARCH8_URL`, default `http://127.0.0.1:9202`).
pub fn elasticsearch8_url() -> String {
    std::env::var("ELASTICSEARCH8_URL").unwrap_or_else(|_| "http://127.0.0.1:9202".into())
}

/// Writes `content` to `path` and moves its modification time two seconds
/// ahead, so that a watcher sees the change even within the second of the
/// previous write (file systems with coarse timestamps).
pub fn rewrite_later(path: &std::path::Path, content: &str) {
    std::fs::write(path, content).expect("write");
    let later = std::time::SystemTime::now() + Duration::from_secs(2);
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(later))
        .expect("set modification time");
}

/// A lowercase name unique to this test run, e.g. `e2e-4f9c2a`.
pub fn unique_name(prefix: &str) -> String {
    let suffix: u32 = rand::rng().random();
    format!("{prefix}-{suffix:08x}")
}

/// Panics with instructions unless the broker answers a metadata request.
pub fn require_kafka() {
    let bootstrap = kafka_bootstrap();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("kafka client");
    if let Err(error) = producer
        .client()
        .fetch_metadata(None, Duration::from_secs(10))
    {
        panic!(
            "Kafka is not reachable at {bootstrap} ({error}). Start the test services with \
             `dev/services up` (or set KAFKA_BOOTSTRAP)."
        );
    }
}

/// A search engine the tests run against: where it listens, what it is
/// called in messages, and which `dev/services` name starts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The OpenSearch node (`opensearch`).
    OpenSearch,
    /// The Elasticsearch 7.17 node (`elasticsearch`).
    Elasticsearch7,
    /// The Elasticsearch 8 node (`elasticsearch8`).
    Elasticsearch8,
}

impl Engine {
    /// The engine's base URL (from its environment variable, or the default).
    pub fn url(self) -> String {
        match self {
            Engine::OpenSearch => opensearch_url(),
            Engine::Elasticsearch7 => elasticsearch_url(),
            Engine::Elasticsearch8 => elasticsearch8_url(),
        }
    }

    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Engine::OpenSearch => "OpenSearch",
            Engine::Elasticsearch7 => "Elasticsearch 7.17",
            Engine::Elasticsearch8 => "Elasticsearch 8",
        }
    }

    /// The `dev/services` name that starts it.
    pub fn service(self) -> &'static str {
        match self {
            Engine::OpenSearch => "opensearch",
            Engine::Elasticsearch7 => "elasticsearch",
            Engine::Elasticsearch8 => "elasticsearch8",
        }
    }

    /// What Jaeger's storage settings call it: `opensearch` or `elasticsearch`.
    pub fn jaeger_kind(self) -> &'static str {
        match self {
            Engine::OpenSearch => "opensearch",
            Engine::Elasticsearch7 | Engine::Elasticsearch8 => "elasticsearch",
        }
    }

    /// The engine's URL, once it answers; panics with instructions otherwise.
    pub async fn require(self) -> String {
        let url = self.url();
        require_engine(&url, self.name(), self.service()).await;
        url
    }
}

/// Declares one test per engine, each calling the same `async fn(Engine)`:
/// `per_engine!(check_fn: test_on_opensearch => OpenSearch, test_on_es8 => Elasticsearch8);`.
#[macro_export]
macro_rules! per_engine {
    ($check:ident: $($test:ident => $engine:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                $check($crate::Engine::$engine).await;
            }
        )+
    };
}

/// Panics with instructions unless the search engine at `url` answers.
/// `name` and `service` say which engine and which `dev/services` name starts it.
pub async fn require_engine(url: &str, name: &str, service: &str) {
    let answer = reqwest::get(format!(
        "{url}/_cluster/health?wait_for_status=yellow&timeout=10s"
    ))
    .await;
    match answer {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => panic!(
            "{name} at {url} answered {}; check `dev/services status {service}`",
            r.status()
        ),
        Err(error) => panic!(
            "{name} is not reachable at {url} ({error}). Start it with `dev/services up {service}`."
        ),
    }
}

/// Creates `topic` with `partitions` partitions on the test broker and
/// waits until it exists.
pub async fn create_topic(topic: &str, partitions: i32) {
    create_topic_on(&kafka_bootstrap(), topic, partitions, 1).await;
}

/// Creates `topic` on the brokers at `bootstrap`, with `replication`
/// copies of each partition, and waits until it exists.
pub async fn create_topic_on(bootstrap: &str, topic: &str, partitions: i32, replication: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(
                topic,
                partitions,
                TopicReplication::Fixed(replication),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("create topic request");
    for result in results {
        result.expect("topic created");
    }
}

/// SIGTERM to a child process, which must then exit successfully: the
/// pipeline's processes drain and commit on it.
pub fn stop_cleanly(mut child: std::process::Child) {
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success(), "kill -TERM {} failed", child.id());
    let status = child.wait().expect("wait for the child");
    assert!(status.success(), "clean exit on SIGTERM: {status}");
}

/// Starts one of our binaries (`program`, from `env!("CARGO_BIN_EXE_…")`)
/// configured by `env` and then `extra`, logging at info to `log`.
pub fn spawn_logged(
    program: &str,
    env: Vec<(String, String)>,
    extra: &[(&str, &str)],
    log: &std::path::Path,
) -> std::process::Child {
    let log = std::fs::File::create(log).expect("create the log file");
    std::process::Command::new(program)
        .envs(env)
        .envs(extra.iter().copied())
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the binary")
}

/// A folder for one test's process logs, in the temporary directory.
pub fn log_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(name);
    std::fs::create_dir_all(&dir).expect("create the log folder");
    dir
}

/// Searches `index` on the engine at `url` (after a refresh) and returns the hits' `_source`s.
pub async fn search(url: &str, index: &str, query: serde_json::Value) -> Vec<serde_json::Value> {
    search_hits(url, index, query)
        .await
        .into_iter()
        .map(|mut hit| hit["_source"].take())
        .collect()
}

/// [`search`], returning whole hits: for a test that reads `_id` or `_index` beside the source.
pub async fn search_hits(
    url: &str,
    index: &str,
    query: serde_json::Value,
) -> Vec<serde_json::Value> {
    let client = reqwest::Client::new();
    let _ = client.post(format!("{url}/{index}/_refresh")).send().await;
    let response = client
        .post(format!("{url}/{index}/_search"))
        .json(&query)
        .send()
        .await
        .expect("search request");
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Vec::new();
    }
    let mut body: serde_json::Value = response.json().await.expect("search response");
    match body["hits"]["hits"].take() {
        serde_json::Value::Array(hits) => hits,
        _ => Vec::new(),
    }
}

/// Counts documents in `index` (a name or pattern) on the engine at `url`,
/// after a refresh; 0 when the index does not exist yet.
pub async fn count(url: &str, index: &str) -> u64 {
    let client = reqwest::Client::new();
    let _ = client.post(format!("{url}/{index}/_refresh")).send().await;
    let Ok(response) = client.get(format!("{url}/{index}/_count")).send().await else {
        return 0;
    };
    let Ok(body) = response.json::<serde_json::Value>().await else {
        return 0;
    };
    body["count"].as_u64().unwrap_or(0)
}

/// Polls [`count`] until it reaches `expected` or `timeout` passes; returns the last count.
pub async fn wait_for_count(url: &str, index: &str, expected: u64, timeout: Duration) -> u64 {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let n = count(url, index).await;
        if n >= expected || std::time::Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Deletes every index matching `pattern`.
pub async fn delete_indices(url: &str, pattern: &str) {
    let _ = reqwest::Client::new()
        .delete(format!("{url}/{pattern}"))
        .send()
        .await;
}

/// Deletes the indices and the index templates, legacy and composable, whose
/// names start with `prefix`.
pub async fn delete_prefixed(url: &str, prefix: &str) {
    let client = reqwest::Client::new();
    for path in [
        format!("{prefix}*"),
        format!("_template/{prefix}*"),
        format!("_index_template/{prefix}*"),
    ] {
        let _ = client.delete(format!("{url}/{path}")).send().await;
    }
}

/// Removes a test's indices and index templates when dropped, so also when
/// the test fails midway. A node kept between test runs otherwise collects
/// them, and an engine reads every legacy template whenever it creates an
/// index, which the benchmarks run on the same node pay for.
#[derive(Debug)]
#[must_use = "the indices are removed when this is dropped"]
pub struct RemoveOnDrop {
    url: String,
    prefix: String,
}

impl RemoveOnDrop {
    /// Removes what starts with `prefix` from the engine at `url` on drop.
    pub fn new(url: &str, prefix: &str) -> Self {
        RemoveOnDrop {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
        }
    }
}

impl Drop for RemoveOnDrop {
    /// Runs on a thread of its own with its own runtime: the test's runtime
    /// may be the one dropping this, or already gone.
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(delete_prefixed(&url, &prefix));
            }
        })
        .join();
    }
}

/// A producer configured as the topic contract requires.
pub fn contract_producer() -> rdkafka::producer::FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "20")
        .set("compression.type", "zstd")
        .create()
        .expect("kafka producer")
}

/// A record to produce: key, value and headers.
pub type TestRecord = (Vec<u8>, Vec<u8>, Vec<(&'static str, &'static str)>);

/// Produces records to `topic` and waits for every acknowledgement.
pub async fn produce(topic: &str, records: &[TestRecord]) {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::FutureRecord;
    let producer = contract_producer();
    for chunk in records.chunks(5000) {
        // Enqueue the whole chunk first (`send_result` does not wait), then
        // wait for every acknowledgement: awaiting each send before the
        // next would cost one linger per record.
        let mut deliveries = Vec::with_capacity(chunk.len());
        for (key, value, headers) in chunk {
            let mut owned = OwnedHeaders::new();
            for (name, v) in headers {
                owned = owned.insert(Header {
                    key: name,
                    value: Some(*v),
                });
            }
            let mut record = FutureRecord::to(topic)
                .key(&key[..])
                .payload(&value[..])
                .headers(owned);
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => {
                        deliveries.push(delivery);
                        break;
                    }
                    Err((error, back)) => {
                        assert!(
                            matches!(
                                error.rdkafka_error_code(),
                                Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                            ),
                            "record not enqueued: {error}"
                        );
                        record = back;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => panic!("record not acknowledged: {error}"),
                Err(_) => panic!("producer dropped a delivery"),
            }
        }
    }
}

/// One record read back from a topic.
#[derive(Debug)]
pub struct TopicRecord {
    pub partition: i32,
    pub key: Vec<u8>,
    pub headers: BTreeMap<String, String>,
    pub value: Vec<u8>,
}

/// Every record of `topic` (all `partitions`), read from the beginning until `expected` are in
/// and nothing more arrives for two seconds, or nothing arrives for twenty.
pub fn read_topic(topic: &str, partitions: i32, expected: usize) -> Vec<TopicRecord> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("group.id", unique_name("e2e-inspect"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let mut records = Vec::new();
    let mut quiet_until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < quiet_until {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let mut headers = BTreeMap::new();
                if let Some(all) = message.headers() {
                    for header in all.iter() {
                        headers.insert(
                            header.key.to_owned(),
                            String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
                        );
                    }
                }
                records.push(TopicRecord {
                    partition: message.partition(),
                    key: message.key().unwrap_or_default().to_vec(),
                    headers,
                    value: message.payload().unwrap_or_default().to_vec(),
                });
                let wait = if records.len() >= expected { 2 } else { 20 };
                quiet_until = Instant::now() + Duration::from_secs(wait);
            }
            Some(Err(error)) => panic!("reading {topic}: {error}"),
            None => {}
        }
    }
    records
}

/// Every span document the ingester stored under `prefix` on the engine at `url`, by span id.
pub async fn span_documents(url: &str, prefix: &str) -> BTreeMap<String, serde_json::Value> {
    let docs = search(
        url,
        &format!("{prefix}-jaeger-span-*"),
        serde_json::json!({"size": 10000, "query": {"match_all": {}}}),
    )
    .await;
    docs.into_iter()
        .map(|doc| (doc["spanID"].as_str().expect("spanID").to_owned(), doc))
        .collect()
}

/// Dependency edges: `(parent, child) → (calls, errors)`.
pub type Edges = BTreeMap<(String, String), (u64, u64)>;

/// The edges summed over the dependency documents streaming analytics wrote under `prefix`
/// on the engine at `url`.
pub async fn dependency_edges(url: &str, prefix: &str) -> Edges {
    let index = format!("{prefix}-jaeger-dependencies-*");
    let docs = search(
        url,
        &index,
        serde_json::json!({"size": 1000, "query": {"match_all": {}}}),
    )
    .await;
    let mut edges = Edges::new();
    for doc in docs {
        for link in doc["dependencies"].as_array().into_iter().flatten() {
            let entry: &mut (u64, u64) = edges
                .entry((
                    link["parent"].as_str().unwrap_or_default().to_owned(),
                    link["child"].as_str().unwrap_or_default().to_owned(),
                ))
                .or_default();
            entry.0 += link["callCount"].as_u64().unwrap_or(0);
            entry.1 += link["errorCount"].as_u64().unwrap_or(0);
        }
    }
    edges
}
