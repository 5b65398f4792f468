//! The Kafka broker stopped while clients keep sending: the collector
//! refuses with a retryable status within a bounded time and within its byte
//! budget, recovers when the broker is back, and every trace it acknowledged
//! is on the topic.
//!
//! The first test stops and restarts the shared broker with `dev/services`,
//! so it lives in a test binary of its own (cargo runs test binaries one
//! after another); the second kills a partition leader of the three-broker
//! cluster (`dev/services up kafka-cluster`), which nothing else uses.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
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

fn services(action: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dev/services");
    let status = Command::new("bash")
        .arg(script)
        .arg(action)
        .arg("kafka")
        .status()
        .unwrap();
    assert!(status.success(), "dev/services {action} kafka failed");
}

/// Restarts the broker even when an assertion fails.
struct RestartOnDrop(bool);

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        if self.0 {
            services("up");
        }
    }
}

fn request(n: u32) -> (String, Vec<u8>) {
    let mut trace_id = [0u8; 16];
    trace_id[..4].copy_from_slice(&n.to_be_bytes());
    trace_id[15] = 1;
    let span = otlp::Span {
        trace_id: trace_id.to_vec(),
        span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
        name: "op".into(),
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_001_000_000,
        attributes: vec![otlp::KeyValue {
            key: "payload".into(),
            value: Some(otlp::AnyValue {
                value: Some(otlp::any_value::Value::StringValue("x".repeat(2000))),
            }),
        }],
        ..Default::default()
    };
    let body = otlp::ExportTraceServiceRequest {
        resource_spans: vec![otlp::ResourceSpans {
            scope_spans: vec![otlp::ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec();
    (hex(&trace_id), body)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_is_refused_retryably_and_nothing_acknowledged_is_lost() {
    require_kafka();
    let topic = unique_name("it-outage-collector");
    create_topic(&topic, 3).await;
    let mut config = CollectorConfig::default();
    config.kafka.client.brokers = vec![kafka_bootstrap()];
    config.kafka.topic = topic.clone();
    config.kafka.delivery_timeout = Duration::from_secs(3);
    let budget = 2 * 1024 * 1024;
    config.kafka.max_bytes_in_flight = budget;
    config.otlp_http.max_request_bytes = 64 * 1024;
    config.on_ephemeral_loopback_ports();
    // Only OTLP/HTTP: the other receivers' larger request limits would not
    // fit this small budget.
    config.otlp_grpc.enabled = false;
    config.jaeger_grpc.enabled = false;
    config.sampling.enabled = false;
    config.zipkin.enabled = false;
    config.jaeger_thrift_http.enabled = false;
    config.validate().unwrap();
    let shutdown = CancellationToken::new();
    let collector = Collector::start(&config, shutdown.clone()).await.unwrap();
    let url = format!("http://{}/v1/traces", collector.otlp_http_addr.unwrap());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    let mut acknowledged = HashSet::new();
    let mut n = 0u32;
    let send = |n: u32| {
        let (id, body) = request(n);
        let client = client.clone();
        let url = url.clone();
        async move {
            let started = Instant::now();
            let response = client
                .post(&url)
                .header("content-type", "application/x-protobuf")
                .body(body)
                .send()
                .await
                .unwrap();
            (
                id,
                response.status().as_u16(),
                response.headers().contains_key("retry-after"),
                started.elapsed(),
            )
        }
    };

    // Broker up: accepted.
    for _ in 0..20 {
        n += 1;
        let (id, status, _, _) = send(n).await;
        assert_eq!(status, 200);
        acknowledged.insert(id);
    }

    services("down");
    let mut restart = RestartOnDrop(true);
    // Broker down: many clients at once; each answer is retryable and comes
    // within the delivery timeout plus a margin, and memory stays within the budget.
    let mut refused = 0;
    let mut slowest = Duration::ZERO;
    for _round in 0..5 {
        let mut batch = Vec::new();
        for _ in 0..50 {
            n += 1;
            batch.push(tokio::spawn(send(n)));
        }
        for handle in batch {
            let (id, status, retry_after, took) = handle.await.unwrap();
            slowest = slowest.max(took);
            match status {
                200 => {
                    acknowledged.insert(id);
                }
                429 | 503 => {
                    refused += 1;
                    assert!(retry_after, "retryable answers carry Retry-After");
                }
                other => panic!("unexpected status {other} while the broker is down"),
            }
        }
    }
    assert!(
        refused >= 200,
        "requests were refused while the broker was down ({refused})"
    );
    assert!(
        slowest < Duration::from_secs(10),
        "slowest answer took {slowest:?}"
    );
    let metrics = reqwest::get(format!("http://{}/metrics", collector.ops_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("collector_spans_refused_total"),
        "{metrics}"
    );

    services("up");
    restart.0 = false;
    // Broker back: accepted again (the producer reconnects on its own).
    let mut recovered = false;
    for _ in 0..120 {
        n += 1;
        let (id, status, _, _) = send(n).await;
        if status == 200 {
            acknowledged.insert(id);
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(recovered, "requests succeed again once the broker is back");
    for _ in 0..20 {
        n += 1;
        let (id, status, _, _) = send(n).await;
        assert_eq!(status, 200);
        acknowledged.insert(id);
    }

    // Every acknowledged trace is on the topic.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("group.id", unique_name("it-outage-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut on_topic = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && !acknowledged.is_subset(&on_topic) {
        if let Some(message) = consumer.poll(Duration::from_millis(500)) {
            let message = message.unwrap();
            on_topic.insert(String::from_utf8(message.key().unwrap().to_vec()).unwrap());
        }
    }
    let missing: Vec<_> = acknowledged.difference(&on_topic).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not on the topic: {missing:?}"
    );

    shutdown.cancel();
    collector.wait().await;
}

/// On the three-broker cluster (replication factor 3, `min.insync.replicas`
/// 2): the broker leading a partition is SIGKILLed while clients keep
/// sending, and started again later. Every request is answered 200 or a
/// retryable refusal, never anything else; every acknowledged trace is on
/// the topic exactly once, and no refused one more than once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_leader_killed_under_load_loses_and_duplicates_nothing() {
    use spanway_e2e::cluster;
    cluster::require();
    let topic = unique_name("it-failover-collector");
    cluster::create_topic(&topic, 3).await;
    let mut config = CollectorConfig::default();
    config.kafka.client.brokers = cluster::bootstrap().split(',').map(str::to_owned).collect();
    config.kafka.topic = topic.clone();
    config.on_ephemeral_loopback_ports();
    config.validate().unwrap();
    let shutdown = CancellationToken::new();
    let collector = Collector::start(&config, shutdown.clone()).await.unwrap();
    let url = format!("http://{}/v1/traces", collector.otlp_http_addr.unwrap());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();

    // Eight clients send one trace per request until told to stop.
    let stop = CancellationToken::new();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (client, url, stop, next) = (client.clone(), url.clone(), stop.clone(), next.clone());
        clients.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.is_cancelled() {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                let (id, body) = request(n);
                let sent = Instant::now();
                let status = match client
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(response) => response.status().as_u16(),
                    Err(error) => panic!("no answer for trace {id}: {error}"),
                };
                answers.push((id, status, sent));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answers
        }));
    }

    tokio::time::sleep(Duration::from_secs(3)).await;
    let victim = cluster::leader(&topic, 0);
    let killed_at = Instant::now();
    let service = format!("kafka-{victim}");
    cluster::kill(&service);
    let mut restart = cluster::Restart(Some(service.clone()));
    eprintln!("killed kafka-{victim}, leader of {topic}/0");
    // Longer than the controller takes to fence the dead broker (9 s) and
    // than the collector's delivery timeout (10 s).
    tokio::time::sleep(Duration::from_secs(15)).await;
    cluster::start(&service);
    restart.0 = None;
    let restarted_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.cancel();

    let mut answers = Vec::new();
    for handle in clients {
        answers.extend(handle.await.unwrap());
    }
    let mut acknowledged = HashSet::new();
    let mut refused = HashSet::new();
    let (mut during, mut during_ok) = (0, 0);
    for (id, status, sent) in &answers {
        let in_outage = *sent >= killed_at && *sent < restarted_at;
        during += usize::from(in_outage);
        match status {
            200 => {
                during_ok += usize::from(in_outage);
                acknowledged.insert(id.clone());
            }
            429 | 503 => {
                refused.insert(id.clone());
            }
            other => panic!("trace {id}: status {other}, neither stored nor retryable"),
        }
    }
    eprintln!(
        "{} requests: {} acknowledged, {} refused; {during} sent while kafka-{victim} was down, {during_ok} of them acknowledged",
        answers.len(),
        acknowledged.len(),
        refused.len()
    );
    assert!(during > 0, "requests were sent while the broker was down");
    assert!(
        during_ok > 0,
        "the surviving brokers took writes during the outage"
    );

    // Read the whole topic back: one record per trace.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster::bootstrap())
        .set("group.id", unique_name("it-failover-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut copies: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(message) => {
                let message = message.unwrap();
                let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
                *copies.entry(key).or_default() += 1;
                quiet_since = Instant::now();
            }
            None => {
                let all_there = acknowledged.iter().all(|id| copies.contains_key(id));
                if all_there && quiet_since.elapsed() > Duration::from_secs(3) {
                    break;
                }
            }
        }
    }
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|id| !copies.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not on the topic: {missing:?}"
    );
    let doubled: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        doubled.is_empty(),
        "on the topic more than once: {doubled:?}"
    );
    let unknown: Vec<_> = copies
        .keys()
        .filter(|id| !acknowledged.contains(*id) && !refused.contains(*id))
        .collect();
    assert!(unknown.is_empty(), "never sent: {unknown:?}");
    let refused_but_stored = refused.iter().filter(|id| copies.contains_key(*id)).count();
    eprintln!(
        "{refused_but_stored} refused traces were stored nonetheless (the client would resend them)"
    );

    shutdown.cancel();
    collector.wait().await;
}
