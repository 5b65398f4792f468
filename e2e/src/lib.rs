//! Helpers for tests that need the real services started by `dev/services up`.
//!
//! A test that cannot reach a service fails with a message saying how to
//! start it; it never skips.

use std::time::Duration;

use rand::Rng;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseProducer, Producer};

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

/// Creates `topic` with `partitions` partitions and waits until it exists.
pub async fn create_topic(topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .expect("admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create topic request");
    for result in results {
        result.expect("topic created");
    }
}

/// Searches `index` on the engine at `url` (after a refresh) and returns the hits' `_source`s.
pub async fn search(url: &str, index: &str, query: serde_json::Value) -> Vec<serde_json::Value> {
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
    let body: serde_json::Value = response.json().await.expect("search response");
    body["hits"]["hits"]
        .as_array()
        .map(|hits| hits.iter().map(|h| h["_source"].clone()).collect())
        .unwrap_or_default()
}
