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

use std::collections::{HashMap, HashSet};
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

/// One collector in the failover drill: its topic, its delivery timeout and
/// what its clients were answered.
struct Subject {
    topic: String,
    collector: Collector,
    url: String,
}

impl Subject {
    async fn start(delivery_timeout: Duration, shutdown: &CancellationToken) -> Subject {
        use spanway_e2e::cluster;
        let topic = unique_name("it-failover-collector");
        cluster::create_topic(&topic, 3).await;
        let mut config = CollectorConfig::default();
        config.kafka.client.brokers = cluster::bootstrap().split(',').map(str::to_owned).collect();
        config.kafka.topic = topic.clone();
        config.kafka.delivery_timeout = delivery_timeout;
        config.on_ephemeral_loopback_ports();
        config.validate().unwrap();
        let collector = Collector::start(&config, shutdown.clone()).await.unwrap();
        let url = format!("http://{}/v1/traces", collector.otlp_http_addr.unwrap());
        Subject {
            topic,
            collector,
            url,
        }
    }

    async fn metric(&self, series: &str) -> f64 {
        let text = spanway_e2e::ops::metrics_text(self.collector.ops_addr).await;
        spanway_e2e::ops::sample(&text, series).unwrap_or_else(|| panic!("{series} not exported"))
    }
}

/// Eight clients sending one trace per request to `url` until `stop`, with
/// trace numbers from `next`; each returns (trace id, status, sent at).
fn drive(
    url: &str,
    stop: &CancellationToken,
    next: &std::sync::Arc<std::sync::atomic::AtomicU32>,
) -> Vec<tokio::task::JoinHandle<Vec<(String, u16, Instant)>>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    (0..8)
        .map(|_| {
            let (client, url, stop, next) =
                (client.clone(), url.to_owned(), stop.clone(), next.clone());
            tokio::spawn(async move {
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
            })
        })
        .collect()
}

/// What one collector's clients were answered.
#[derive(Default)]
struct Answers {
    acknowledged: HashSet<String>,
    refused: HashSet<String>,
    total: usize,
    during: usize,
    during_ok: usize,
}

async fn collect(
    clients: Vec<tokio::task::JoinHandle<Vec<(String, u16, Instant)>>>,
    outage: std::ops::Range<Instant>,
) -> Answers {
    let mut answers = Answers::default();
    for handle in clients {
        for (id, status, sent) in handle.await.unwrap() {
            let in_outage = outage.contains(&sent);
            answers.total += 1;
            answers.during += usize::from(in_outage);
            match status {
                200 => {
                    answers.during_ok += usize::from(in_outage);
                    answers.acknowledged.insert(id);
                }
                429 | 503 => {
                    answers.refused.insert(id);
                }
                other => panic!("trace {id}: status {other}, neither stored nor retryable"),
            }
        }
    }
    answers
}

/// Reads `topic` from the start until every acknowledged trace is there and
/// nothing more arrives: the copies of each trace.
fn read_topic(topic: &str, acknowledged: &HashSet<String>) -> HashMap<String, usize> {
    use spanway_e2e::cluster;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster::bootstrap())
        .set("group.id", unique_name("it-failover-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut copies: HashMap<String, usize> = HashMap::new();
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
    copies
}

/// On the three-broker cluster (replication factor 3, `min.insync.replicas`
/// 2): the broker leading a partition is SIGKILLed while clients keep
/// sending to two collectors, and started again 15 s later.
///
/// Every partition stalls, not only the dead leader's: with `acks=all` the
/// other leaders wait for the dead replica until the controller fences it
/// (about 9 s). One collector's delivery timeout (30 s) outlasts that: every
/// request is acknowledged, and a trace is on the topic twice only after a
/// new epoch, which this producer starts only when leadership moves back to
/// the restarted broker within the drill. The other's (5 s) is shorter than
/// the stall, so produce requests time out: some requests are refused,
/// retryably; the producer starts new epochs and counts them
/// (`collector_kafka_producer_epochs_total`); every acknowledged trace is on
/// the topic, none is there that was not sent, a refused trace is there
/// only if `collector_kafka_records_refused_written_total` counted it, and a
/// trace is there twice only after a new epoch, which is how librdkafka's
/// idempotent producer can duplicate. The default (10 s) is between the two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_leader_killed_under_load_loses_and_duplicates_nothing() {
    use spanway_e2e::cluster;
    cluster::require();
    let shutdown = CancellationToken::new();
    let patient = Subject::start(Duration::from_secs(30), &shutdown).await;
    let hasty = Subject::start(Duration::from_secs(5), &shutdown).await;

    let stop = CancellationToken::new();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let patient_clients = drive(&patient.url, &stop, &next);
    let hasty_clients = drive(&hasty.url, &stop, &next);

    tokio::time::sleep(Duration::from_secs(3)).await;
    let victim = cluster::leader(&patient.topic, 0);
    let killed_at = Instant::now();
    let service = format!("kafka-{victim}");
    cluster::kill(&service);
    let mut restart = cluster::Restart(Some(service.clone()));
    eprintln!("killed kafka-{victim}, leader of {}/0", patient.topic);
    // Longer than the controller takes to fence the dead broker (9 s).
    tokio::time::sleep(Duration::from_secs(15)).await;
    cluster::start(&service);
    restart.0 = None;
    let restarted_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.cancel();
    let outage = killed_at..restarted_at;
    let patient_answers = collect(patient_clients, outage.clone()).await;
    let hasty_answers = collect(hasty_clients, outage).await;

    for (name, subject, answers) in [
        ("30 s", &patient, &patient_answers),
        ("5 s", &hasty, &hasty_answers),
    ] {
        let copies = read_topic(&subject.topic, &answers.acknowledged);
        let epochs = subject
            .metric("collector_kafka_producer_epochs_total")
            .await;
        let refused_written = subject
            .metric("collector_kafka_records_refused_written_total")
            .await;
        let doubled: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).collect();
        let refused_but_stored = answers
            .refused
            .iter()
            .filter(|id| copies.contains_key(*id))
            .count();
        eprintln!(
            "delivery timeout {name}: {} requests, {} acknowledged, {} refused; {} sent while \
             kafka-{victim} was down, {} of them acknowledged; {epochs} new producer epochs; \
             {} traces on the topic twice; {refused_but_stored} refused traces stored nonetheless, \
             {refused_written} records of refused requests counted as written or possibly written",
            answers.total,
            answers.acknowledged.len(),
            answers.refused.len(),
            answers.during,
            answers.during_ok,
            doubled.len(),
        );
        assert!(
            answers.during > 0,
            "{name}: requests were sent while the broker was down"
        );
        assert!(
            answers.during_ok > 0,
            "{name}: the surviving brokers took writes during the outage"
        );
        let missing: Vec<_> = answers
            .acknowledged
            .iter()
            .filter(|id| !copies.contains_key(*id))
            .collect();
        assert!(
            missing.is_empty(),
            "{name}: acknowledged but not on the topic: {missing:?}"
        );
        let unknown: Vec<_> = copies
            .keys()
            .filter(|id| !answers.acknowledged.contains(*id) && !answers.refused.contains(*id))
            .collect();
        assert!(unknown.is_empty(), "{name}: never sent: {unknown:?}");
        // One record per request here: each refused trace on the topic
        // was counted, when librdkafka reported it possibly written or
        // when it settled as written after the refusal.
        assert!(
            refused_but_stored as f64 <= refused_written,
            "{name}: {refused_but_stored} refused traces on the topic, \
             {refused_written} counted as written"
        );
        assert!(
            doubled.is_empty() || epochs > 0.0,
            "{name}: on the topic more than once with no new producer epoch: {doubled:?}"
        );
        if std::ptr::eq(subject, &patient) {
            assert!(
                answers.refused.is_empty(),
                "{name}: refused though the delivery timeout outlasts the failover: {:?}",
                answers.refused
            );
            // No record times out, yet the producer sometimes starts a new
            // epoch: when leadership moves back to the restarted broker
            // while traffic still runs, its first answers are "not leader"
            // and a batch in flight behind them "out of order sequence", on
            // which librdkafka restarts its sequence numbers under a new
            // epoch (docs/drills.md). A duplicate is then possible, and the
            // assertion above allows one only with the epoch counted.
            if epochs > 0.0 {
                eprintln!("{name}: {epochs} new producer epochs with no record timed out");
            }
        } else {
            assert!(
                !answers.refused.is_empty(),
                "{name}: nothing refused, so the drill did not outlast the delivery timeout"
            );
            assert!(
                epochs > 0.0,
                "{name}: records timed out, yet no new producer epoch was counted"
            );
        }
    }

    shutdown.cancel();
    patient.collector.wait().await;
    hasty.collector.wait().await;
}
