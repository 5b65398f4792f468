//! Traces of a known topology go through the real broker; the streaming
//! job's documents must count every edge exactly as the topology says, a
//! batch recomputation over the span documents the ingester wrote must
//! agree, and Jaeger query's `/api/dependencies` must return the same totals
//! from our dependency indices. On OpenSearch a fifth of the records are on
//! the topic twice, and every count holds.
#![allow(clippy::unwrap_used)]

use super::common;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use spanway_e2e::jaeger_query::{JaegerQuery, jaeger_query_bin};
use spanway_e2e::{
    Engine, RemoveOnDrop, create_topic, kafka_bootstrap, produce, require_kafka, topology,
    unique_name, wait_for_count,
};
use spanway_ingester::Ingester;
use spanway_ingester::config::IngesterConfig;
use spanway_streaming_analytics::{Analytics, AnalyticsConfig, recompute};
use tokio_util::sync::CancellationToken;

use common::{Names, START_MS, dependency_totals, documents, wait_until_read};

const PARTITIONS: i32 = 3;

fn analytics_config(names: &Names, url: &str) -> AnalyticsConfig {
    let mut config = names.job_config(url);
    config.kafka.session_timeout = Duration::from_secs(6);
    config.kafka.drain_timeout = Duration::from_secs(3);
    config.windows.size = Duration::from_secs(5);
    config.windows.allowed_lateness = Duration::from_secs(5);
    config.windows.pairing_wait = Duration::from_secs(2);
    config.validate().unwrap();
    config
}

fn ingester_config(names: &Names, url: &str) -> IngesterConfig {
    let mut config = IngesterConfig::default();
    config.kafka.client.brokers = vec![kafka_bootstrap()];
    config.kafka.topics = vec![names.topic.clone()];
    config.kafka.group_id = format!("{}-ingester", names.group);
    config.elasticsearch.client.url = Some(url.to_owned());
    config.elasticsearch.index_prefix = names.prefix.clone();
    config.elasticsearch.shards = 1;
    config.elasticsearch.replicas = 0;
    config.bulk.flush_interval = Duration::from_millis(100);
    config.ops.listen = "127.0.0.1:0".parse().unwrap();
    config.dead_letter.topic = format!("{}-dlq", names.topic);
    config.validate().unwrap();
    config
}

type Pair = (String, String);

/// Sums of the service-graph documents per (client, server).
#[derive(Debug, Default)]
struct Graph {
    calls: BTreeMap<Pair, u64>,
    errors: BTreeMap<Pair, u64>,
    late: u64,
    connection: BTreeMap<Pair, String>,
}

fn graph(docs: &BTreeMap<String, Value>) -> Graph {
    let mut out = Graph::default();
    for doc in docs.values() {
        let pair = (
            doc["client"].as_str().unwrap().to_owned(),
            doc["server"].as_str().unwrap().to_owned(),
        );
        *out.calls.entry(pair.clone()).or_default() += doc["calls"].as_u64().unwrap();
        let errors = doc["errors"].as_u64().unwrap();
        if errors > 0 {
            *out.errors.entry(pair.clone()).or_default() += errors;
        }
        out.late += doc["late_calls"].as_u64().unwrap();
        let connection = doc["connection_type"].as_str().unwrap().to_owned();
        let previous = out.connection.insert(pair.clone(), connection.clone());
        assert!(
            previous.is_none_or(|p| p == connection),
            "{pair:?} has one connection type"
        );
    }
    out
}

fn pair(a: &str, b: &str) -> Pair {
    (a.to_owned(), b.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opensearch_counts_exactly_and_batch_and_jaeger_agree() {
    let url = Engine::OpenSearch.require().await;
    known_topology_is_counted_exactly(&url, "opensearch", Copies::EveryFifth).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_counts_exactly_and_batch_and_jaeger_agree() {
    let url = Engine::Elasticsearch7.require().await;
    known_topology_is_counted_exactly(&url, "elasticsearch", Copies::None).await;
}

/// Records written twice to the topic, as a client resending a request it
/// was refused after a timeout, or the collector's producer after a new
/// epoch, leaves them: each copy right behind its original.
#[derive(Clone, Copy)]
enum Copies {
    None,
    EveryFifth,
}

async fn known_topology_is_counted_exactly(url: &str, storage_type: &str, copies: Copies) {
    require_kafka();
    jaeger_query_bin();
    let url = url.to_owned();
    let topic = unique_name("analytics-accuracy");
    create_topic(&topic, PARTITIONS).await;
    // 2,000 traces 20 ms apart: 40 s of event time, eight 5 s windows.
    let traffic = topology::generate(5, 2_000, START_MS, 20);
    let mut records = Vec::new();
    for (i, record) in traffic.as_produce_input().into_iter().enumerate() {
        if matches!(copies, Copies::EveryFifth) && i % 5 == 0 {
            records.push(record.clone());
        }
        records.push(record);
    }
    produce(&topic, &records).await;
    let names = Names::new(&topic, "accuracy");
    let _leftovers = RemoveOnDrop::new(&url, &names.prefix);

    let shutdown = CancellationToken::new();
    let analytics = Analytics::start(&analytics_config(&names, &url), shutdown.clone())
        .await
        .unwrap();
    let ingester = Ingester::start(ingester_config(&names, &url), shutdown.clone())
        .await
        .unwrap();
    wait_until_read(&names.group, &topic, PARTITIONS, Duration::from_secs(240)).await;
    let span_indices = format!("{}-jaeger-span-*", names.prefix);
    let stored = wait_for_count(&url, &span_indices, traffic.spans, Duration::from_secs(240)).await;
    assert_eq!(stored, traffic.spans);
    shutdown.cancel();
    analytics
        .wait()
        .await
        .expect("streaming analytics stops cleanly");
    ingester.wait().await.expect("the ingester stops cleanly");

    // The service graph: calls and errors per edge, exactly, copies or not.
    let graph = graph(&documents(&url, &names.graph_indices()).await);
    assert_eq!(graph.calls, traffic.expected.calls, "calls per edge");
    assert_eq!(graph.errors, traffic.expected.errors, "errors per edge");
    assert_eq!(graph.late, 0, "nothing in this traffic is late");
    for (edge, kind) in [
        (pair("frontend", "cart"), "direct"),
        (pair("user", "frontend"), "direct"),
        (pair("checkout", "postgresql/orders"), "database"),
        (pair("checkout", "notifications"), "messaging"),
        (pair("payments", "fraud-api"), "virtual"),
        (pair("notifications", "smtp.mail.internal"), "virtual"),
    ] {
        assert_eq!(graph.connection[&edge], kind, "{edge:?}");
    }
    // payments answers in 30 ms: its server-side median lies in (20, 50] ms.
    let docs = documents(&url, &names.graph_indices()).await;
    for doc in docs
        .values()
        .filter(|d| d["client"] == "checkout" && d["server"] == "payments")
    {
        let p50 = doc["server_latency_ms"]["p50"].as_f64().unwrap();
        assert!((20.0..=50.0).contains(&p50), "p50 {p50} in {doc}");
    }

    // Jaeger's dependency documents sum to the same calls.
    let dependencies = dependency_totals(&documents(&url, &names.dependency_indices()).await);
    assert_eq!(dependencies, traffic.expected.calls, "jaeger-dependencies");

    // Batch recomputation over the span documents agrees.
    let config = analytics_config(&names, &url);
    let from_ms = (traffic.span_micros.0 / 1000) as i64;
    let to_ms = (traffic.span_micros.1 / 1000) as i64 + 1;
    let batch = recompute::recompute(
        &config.elasticsearch.client,
        &span_indices,
        from_ms,
        to_ms,
        config.rules(),
        &config.model.peer_attributes,
        &config.elasticsearch.tags_dot_replacement,
    )
    .await
    .unwrap();
    assert_eq!(batch, dependencies, "batch recomputation vs stream");

    // Jaeger query reads our dependency indices unmodified.
    let mut jaeger = JaegerQuery::start(storage_type, &url, &names.prefix);
    jaeger.wait_ready().await;
    let end_ms = to_ms + 60_000;
    let body = jaeger
        .get(
            "/dependencies",
            &[
                ("endTs", &end_ms.to_string()),
                ("lookback", &(end_ms - from_ms + 60_000).to_string()),
            ],
        )
        .await;
    let mut from_jaeger: BTreeMap<Pair, u64> = BTreeMap::new();
    for link in body["data"].as_array().unwrap() {
        let key = pair(
            link["parent"].as_str().unwrap(),
            link["child"].as_str().unwrap(),
        );
        *from_jaeger.entry(key).or_default() += link["callCount"].as_u64().unwrap();
    }
    assert_eq!(
        from_jaeger, traffic.expected.calls,
        "Jaeger /api/dependencies"
    );
    drop(jaeger);
}
