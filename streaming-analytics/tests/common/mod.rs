//! Shared set-up of the analytics integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};
use spanway_e2e::jaeger_v2::JaegerV2;
use spanway_e2e::{create_topic, kafka_bootstrap, produce, topology, unique_name};
use spanway_streaming_analytics::{Analytics, AnalyticsConfig};
use tokio_util::sync::CancellationToken;

/// 2026-03-02T00:00:00Z in ms: all test spans start that day.
pub const START_MS: u64 = 1_772_409_600_000;

/// Names of one test's topic, group and indices.
#[derive(Debug, Clone)]
pub struct Names {
    pub topic: String,
    pub group: String,
    pub prefix: String,
    pub graph: String,
}

impl Names {
    pub fn new(topic: &str, run: &str) -> Self {
        let id = unique_name(run);
        Names {
            topic: topic.to_owned(),
            group: format!("{id}-group"),
            prefix: id.clone(),
            graph: format!("{id}-graph"),
        }
    }

    pub fn dependency_indices(&self) -> String {
        format!("{}-jaeger-dependencies-*", self.prefix)
    }

    pub fn graph_indices(&self) -> String {
        format!("{}-*", self.graph)
    }

    /// The job reading this test's topic into its indices on `url`, with the default windows:
    /// offsets committed often and the last windows written 3 s after the topic is read, so a
    /// test waits seconds, not minutes. Not yet validated: a test changes what it needs first.
    pub fn job_config(&self, url: &str) -> AnalyticsConfig {
        let mut config = AnalyticsConfig::default();
        config.kafka.client.brokers = vec![kafka_bootstrap()];
        config.kafka.topics = vec![self.topic.clone()];
        config.kafka.group_id = self.group.clone();
        config.kafka.commit_interval = Duration::from_millis(200);
        config.elasticsearch.client.url = Some(url.to_owned());
        config.elasticsearch.index_prefix = self.prefix.clone();
        config.elasticsearch.service_graph_index = self.graph.clone();
        config.elasticsearch.replicas = 0;
        config.windows.idle_flush = Duration::from_secs(3);
        config.ops.listen = "127.0.0.1:0".parse().unwrap();
        config
    }
}

/// A new topic of `partitions` named for `run`, holding `traces` single calls from `frontend`
/// to `cart`, `spacing_ms` apart from `START_MS`; the names of the test's group and indices.
pub async fn single_calls_topic(run: &str, partitions: i32, traces: u64, spacing_ms: u64) -> Names {
    let topic = unique_name(&format!("analytics-{run}"));
    create_topic(&topic, partitions).await;
    let traffic = topology::single_calls(traces, START_MS, spacing_ms);
    produce(&topic, &traffic.as_produce_input()).await;
    Names::new(&topic, run)
}

/// The links Jaeger v2's query, configured by `config` with its HTTP endpoint on `http_port`,
/// returns for the `lookback_ms` before `end_ms`: (parent, child, calls) each.
pub async fn jaeger_v2_links(
    config: &str,
    http_port: u16,
    end_ms: u64,
    lookback_ms: u64,
) -> Vec<(String, String, u64)> {
    let mut jaeger = JaegerV2::start(config);
    jaeger.wait_ready().await;
    let body: Value = reqwest::get(format!(
        "http://127.0.0.1:{http_port}/api/dependencies?endTs={end_ms}&lookback={lookback_ms}"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    jaeger.assert_running();
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data: {body}"))
        .iter()
        .map(|link| {
            (
                link["parent"].as_str().unwrap().to_owned(),
                link["child"].as_str().unwrap().to_owned(),
                link["callCount"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Runs the job on `config` until its group has committed the end of every partition of
/// `names.topic`, then stops it and waits for its clean exit: everything it read is written.
pub async fn run_until_read(
    config: &AnalyticsConfig,
    names: &Names,
    partitions: i32,
    timeout: Duration,
) {
    config.validate().unwrap();
    let shutdown = CancellationToken::new();
    let analytics = Analytics::start(config, shutdown.clone()).await.unwrap();
    wait_until_read(&names.group, &names.topic, partitions, timeout).await;
    shutdown.cancel();
    analytics
        .wait()
        .await
        .expect("streaming analytics stops cleanly");
}

/// Job settings as environment variables: short windows so a minute of
/// event time makes a dozen of them, a short idle flush so the last ones
/// are written soon after the topic is read.
pub fn env(names: &Names, engine: &str) -> Vec<(String, String)> {
    [
        ("SPANWAY_KAFKA__BROKERS", kafka_bootstrap()),
        ("SPANWAY_KAFKA__TOPICS", names.topic.clone()),
        ("SPANWAY_KAFKA__GROUP_ID", names.group.clone()),
        ("SPANWAY_KAFKA__SESSION_TIMEOUT", "6s".into()),
        ("SPANWAY_KAFKA__DRAIN_TIMEOUT", "3s".into()),
        ("SPANWAY_KAFKA__COMMIT_INTERVAL", "200ms".into()),
        ("SPANWAY_ELASTICSEARCH__URL", engine.to_owned()),
        ("SPANWAY_ELASTICSEARCH__INDEX_PREFIX", names.prefix.clone()),
        (
            "SPANWAY_ELASTICSEARCH__SERVICE_GRAPH_INDEX",
            names.graph.clone(),
        ),
        ("SPANWAY_ELASTICSEARCH__REPLICAS", "0".into()),
        ("SPANWAY_ELASTICSEARCH__RETRY_MAX_BACKOFF", "2s".into()),
        ("SPANWAY_WINDOWS__SIZE", "5s".into()),
        ("SPANWAY_WINDOWS__ALLOWED_LATENESS", "5s".into()),
        ("SPANWAY_WINDOWS__PAIRING_WAIT", "2s".into()),
        ("SPANWAY_WINDOWS__IDLE_FLUSH", "4s".into()),
        ("SPANWAY_OPS__LISTEN", "127.0.0.1:0".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Sum of the group's committed offsets and of the partitions' end offsets.
pub fn progress(group: &str, topic: &str, partitions: i32) -> (i64, i64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .unwrap();
    let mut done = 0;
    let mut end = 0;
    for p in 0..partitions {
        if let Some(Offset::Offset(o)) = committed.find_partition(topic, p).map(|e| e.offset()) {
            done += o;
        }
        end += consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .unwrap()
            .1;
    }
    (done, end)
}

/// Waits until the group has committed the end of every partition.
pub async fn wait_until_read(group: &str, topic: &str, partitions: i32, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let (done, end) = progress(group, topic, partitions);
        if done == end {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "group {group} committed {done} of {end} within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every document of `pattern`, by id.
pub async fn documents(url: &str, pattern: &str) -> BTreeMap<String, Value> {
    let client = reqwest::Client::new();
    client
        .post(format!("{url}/{pattern}/_refresh"))
        .send()
        .await
        .unwrap();
    let body: Value = client
        .post(format!("{url}/{pattern}/_search"))
        .json(&json!({"size": 10000, "query": {"match_all": {}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["hits"]["hits"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|hit| {
            (
                hit["_id"].as_str().unwrap().to_owned(),
                hit["_source"].clone(),
            )
        })
        .collect()
}

/// Sums `callCount` per (parent, child) over Jaeger dependency documents.
pub fn dependency_totals(docs: &BTreeMap<String, Value>) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for doc in docs.values() {
        for link in doc["dependencies"].as_array().unwrap() {
            let key = (
                link["parent"].as_str().unwrap().to_owned(),
                link["child"].as_str().unwrap().to_owned(),
            );
            *out.entry(key).or_default() += link["callCount"].as_u64().unwrap();
        }
    }
    out
}
