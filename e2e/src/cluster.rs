//! The clusters of `dev/services` for fault drills: three Kafka brokers
//! (`kafka-1` … `kafka-3`) and two OpenSearch nodes (`opensearch-1`, the
//! cluster manager, and `opensearch-2`, data only). Their addresses, a
//! replicated topic, which broker leads a partition, and killing and
//! restarting one node.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer as _};

use crate::secure::repo_root;

/// Bootstrap list of the Kafka cluster (`KAFKA_CLUSTER_BOOTSTRAP`, default
/// the three nodes on 127.0.0.1:9101–9103).
pub fn bootstrap() -> String {
    std::env::var("KAFKA_CLUSTER_BOOTSTRAP")
        .unwrap_or_else(|_| "127.0.0.1:9101,127.0.0.1:9102,127.0.0.1:9103".into())
}

/// Base URL of the OpenSearch cluster's manager node, `opensearch-1`
/// (`OPENSEARCH_CLUSTER_URL`, default `http://127.0.0.1:9221`).
pub fn search_url() -> String {
    std::env::var("OPENSEARCH_CLUSTER_URL").unwrap_or_else(|_| "http://127.0.0.1:9221".into())
}

/// Panics with instructions unless the OpenSearch cluster has both nodes.
pub async fn require_search() {
    let url = search_url();
    let health: serde_json::Value = match reqwest::get(format!(
        "{url}/_cluster/health?wait_for_nodes=2&timeout=30s"
    ))
    .await
    {
        Ok(response) => response.json().await.expect("cluster health"),
        Err(error) => panic!(
            "the OpenSearch cluster is not reachable at {url} ({error}); start it with \
             `dev/services up opensearch-cluster`"
        ),
    };
    assert_eq!(
        health["number_of_nodes"], 2,
        "the OpenSearch cluster at {url} has not both nodes: {health}"
    );
}

/// Panics with instructions unless all three nodes are brokers of the cluster.
pub fn require() {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("kafka client");
    match producer
        .client()
        .fetch_metadata(None, Duration::from_secs(10))
    {
        Ok(metadata) if metadata.brokers().len() == 3 => {}
        Ok(metadata) => panic!(
            "the Kafka cluster has {} brokers, not 3; start it with `dev/services up kafka-cluster`",
            metadata.brokers().len()
        ),
        Err(error) => panic!(
            "the Kafka cluster is not reachable at {} ({error}); start it with \
             `dev/services up kafka-cluster`",
            bootstrap()
        ),
    }
}

/// Creates `topic` with replication factor 3 (`min.insync.replicas` 2 is
/// the cluster's default).
pub async fn create_topic(topic: &str, partitions: i32) {
    crate::create_topic_on(&bootstrap(), topic, partitions, 3).await;
}

/// The node id (1–3) leading `partition` of `topic`, once it has one.
pub fn leader(topic: &str, partition: i32) -> i32 {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("kafka client");
    for _ in 0..100 {
        let metadata = producer
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        let leader = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions())
            .find(|p| p.id() == partition)
            .map(|p| p.leader());
        if let Some(id @ 1..=3) = leader {
            return id;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{topic}/{partition} has no leader");
}

fn pid_file(service: &str) -> PathBuf {
    repo_root().join(format!(".services/{service}/{service}.pid"))
}

/// SIGKILLs the `dev/services` service `service` (`kafka-2`,
/// `opensearch-2`): no shutdown, no hand-over.
pub fn kill(service: &str) {
    let path = pid_file(service);
    let pid = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let status = Command::new("kill")
        .arg("-KILL")
        .arg(pid.trim())
        .status()
        .expect("kill");
    assert!(status.success(), "kill -KILL {} failed", pid.trim());
}

/// Starts the service again and waits until it serves.
pub fn start(service: &str) {
    let status = Command::new("bash")
        .arg(repo_root().join("dev/services"))
        .arg("up")
        .arg(service)
        .status()
        .expect("dev/services");
    assert!(status.success(), "dev/services up {service} failed");
}

/// Starts the service again when dropped, so that a failed drill leaves
/// the cluster whole for the next test.
#[derive(Debug)]
pub struct Restart(pub Option<String>);

impl Drop for Restart {
    fn drop(&mut self) {
        if let Some(service) = self.0.take() {
            start(&service);
        }
    }
}
