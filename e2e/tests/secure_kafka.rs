//! The pipeline against a secured broker (`dev/services up kafka-secure`):
//! SASL_SSL with SCRAM-SHA-512 for the collector, mutual TLS for the
//! ingester, ACLs enforced. And the faults operators meet there: a wrong
//! password, a missing ACL, an untrusted certificate, a password rotated in
//! its file while running. Each fault must name the setting at fault, keep
//! the process not ready, and lose or falsely acknowledge nothing.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use spanway_collector::Collector;
use spanway_collector::config::CollectorConfig;
use spanway_e2e::corpus;
use spanway_e2e::secure::{self, *};
use spanway_e2e::{Engine, ops, rewrite_later, unique_name, wait_for_count};
use spanway_ingester::Ingester;
use spanway_ingester::config::IngesterConfig;
use spanway_kafka::{KafkaClientConfig, SaslMechanism};
use spanway_service_kit::secret::Secret;
use tokio_util::sync::CancellationToken;

fn collector_config(client: KafkaClientConfig, topic: &str) -> CollectorConfig {
    let mut config = CollectorConfig::default();
    config.kafka.client = client;
    config.kafka.topic = topic.into();
    config.kafka.delivery_timeout = Duration::from_secs(3);
    config.on_ephemeral_loopback_ports();
    config.validate().expect("valid collector config");
    config
}

/// Records on `topic`, read as the admin: the sum of high watermarks (an
/// idempotent producer without transactions writes contiguous offsets).
fn records_on(topic: &str) -> i64 {
    let consumer: BaseConsumer = admin_client_config()
        .set("group.id", unique_name("secure-inspect"))
        .create()
        .expect("admin consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata as admin");
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .sum()
}

async fn post_traces(collector: &Collector, body: Vec<u8>) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(format!(
            "http://{}/v1/traces",
            collector.otlp_http_addr.expect("otlp http")
        ))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .expect("collector answers")
        .status()
}

/// Waits until the metrics of `ops` contain `needle`, returning them.
async fn wait_for_metric(ops: std::net::SocketAddr, needle: &str, timeout: Duration) -> String {
    ops::wait_for(ops, timeout, |_, metrics| metrics.contains(needle))
        .await
        .1
}

/// Waits until `/health/ready` answers `status`.
async fn wait_for_ready(ops: std::net::SocketAddr, status: u16, timeout: Duration) -> u16 {
    ops::wait_for(ops, timeout, |got, _| got == status).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_collector_and_mtls_ingester_store_every_span_once() {
    require_secure_kafka();
    let engine = Engine::OpenSearch.require().await;
    let topic = unique_name("secure-spans");
    create_secure_topic(&topic, 3).await;
    let shutdown = CancellationToken::new();

    let collector = Collector::start(
        &collector_config(kafka_scram(KAFKA_USER, KAFKA_PASSWORD), &topic),
        shutdown.clone(),
    )
    .await
    .expect("collector starts");

    let prefix = unique_name("secure");
    let mut ingester = IngesterConfig::default();
    ingester.kafka.client = kafka_mtls(INGESTER_CERT);
    ingester.kafka.topics = vec![topic.clone()];
    ingester.kafka.group_id = unique_name("secure-ingester");
    ingester.dead_letter.topic = format!("{topic}-dlq");
    set_engine(&mut ingester, &engine, &prefix);
    ingester.validate().expect("valid ingester config");
    let ingester = Ingester::start(ingester, shutdown.clone())
        .await
        .expect("ingester starts");

    let corpus = corpus::generate(9, 40, 5);
    for record in &corpus.records {
        assert_eq!(post_traces(&collector, record.value.clone()).await, 200);
    }
    assert_eq!(records_on(&topic), corpus.records.len() as i64);
    let stored = wait_for_count(
        &engine,
        &format!("{prefix}-jaeger-span-*"),
        corpus.spans.len() as u64,
        Duration::from_secs(90),
    )
    .await;
    assert_eq!(stored, corpus.spans.len() as u64, "every span stored once");
    assert_eq!(
        wait_for_ready(collector.ops_addr, 200, Duration::from_secs(15)).await,
        200
    );
    assert_eq!(
        wait_for_ready(ingester.ops_addr, 200, Duration::from_secs(15)).await,
        200
    );
    shutdown.cancel();
    collector.wait().await;
    ingester.wait().await.expect("the ingester stops cleanly");
}

/// Points the ingester at the plain test engine.
fn set_engine(config: &mut IngesterConfig, engine: &str, prefix: &str) {
    config.elasticsearch.client.url = Some(engine.to_owned());
    config.elasticsearch.index_prefix = prefix.to_owned();
    config.elasticsearch.shards = 1;
    config.elasticsearch.replicas = 0;
    config.bulk.flush_interval = Duration::from_millis(100);
    config.ops.listen = "127.0.0.1:0".parse().expect("address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_named_not_ready_and_nothing_is_acknowledged() {
    require_secure_kafka();
    let topic = unique_name("secure-wrongpw");
    create_secure_topic(&topic, 1).await;
    let shutdown = CancellationToken::new();
    let collector = Collector::start(
        &collector_config(kafka_scram(KAFKA_USER, "not-the-password"), &topic),
        shutdown.clone(),
    )
    .await
    .expect("collector starts");

    let corpus = corpus::generate(10, 3, 2);
    for record in &corpus.records {
        let status = post_traces(&collector, record.value.clone()).await;
        assert!(
            status == 503 || status == 429,
            "a span Kafka refused must not be acknowledged, got {status}"
        );
    }
    let text = wait_for_metric(
        collector.ops_addr,
        r#"kind="authentication",setting="kafka.sasl.password""#,
        Duration::from_secs(20),
    )
    .await;
    assert!(
        text.contains(
            r#"collector_kafka_faults_total{kind="authentication",setting="kafka.sasl.password"}"#
        ),
        "the fault names kafka.sasl.password:\n{text}"
    );
    assert_eq!(
        wait_for_ready(collector.ops_addr, 503, Duration::from_secs(15)).await,
        503
    );
    assert_eq!(records_on(&topic), 0, "nothing reached the topic");
    shutdown.cancel();
    collector.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_acl_is_named_for_producer_and_consumer() {
    require_secure_kafka();
    let engine = Engine::OpenSearch.require().await;
    let topic = unique_name("secure-noacl");
    create_secure_topic(&topic, 1).await;
    let shutdown = CancellationToken::new();
    let collector = Collector::start(
        &collector_config(kafka_scram(KAFKA_NOACL_USER, KAFKA_NOACL_PASSWORD), &topic),
        shutdown.clone(),
    )
    .await
    .expect("collector starts");
    let corpus = corpus::generate(11, 2, 2);
    let status = post_traces(&collector, corpus.records[0].value.clone()).await;
    assert!(status == 503 || status == 429, "refused, got {status}");
    let text = wait_for_metric(
        collector.ops_addr,
        r#"kind="authorization",setting="kafka.topic""#,
        Duration::from_secs(20),
    )
    .await;
    assert!(
        text.contains(
            r#"collector_kafka_faults_total{kind="authorization",setting="kafka.topic"}"#
        ),
        "the fault names kafka.topic:\n{text}"
    );
    assert_eq!(
        wait_for_ready(collector.ops_addr, 503, Duration::from_secs(15)).await,
        503
    );

    // A consumer without ACLs: not ready, the fault named, nothing stored.
    let prefix = unique_name("secure");
    let mut ingester = IngesterConfig::default();
    ingester.kafka.client = kafka_scram(KAFKA_NOACL_USER, KAFKA_NOACL_PASSWORD);
    ingester.kafka.topics = vec![topic.clone()];
    ingester.kafka.group_id = unique_name("secure-noacl");
    set_engine(&mut ingester, &engine, &prefix);
    let ingester = Ingester::start(ingester, shutdown.clone())
        .await
        .expect("ingester starts");
    let text = wait_for_metric(
        ingester.ops_addr,
        r#"ingester_kafka_faults_total{kind="authorization""#,
        Duration::from_secs(30),
    )
    .await;
    assert!(
        text.contains(r#"ingester_kafka_faults_total{kind="authorization""#),
        "the consumer's fault is an authorization fault:\n{text}"
    );
    assert_eq!(
        wait_for_ready(ingester.ops_addr, 503, Duration::from_secs(15)).await,
        503
    );
    assert_eq!(records_on(&topic), 0);
    shutdown.cancel();
    collector.wait().await;
    ingester.wait().await.expect("the ingester stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_client_certificate_is_named() {
    require_secure_kafka();
    let engine = Engine::OpenSearch.require().await;
    let topic = unique_name("secure-untrusted");
    create_secure_topic(&topic, 1).await;
    let shutdown = CancellationToken::new();
    let prefix = unique_name("secure");
    let mut ingester = IngesterConfig::default();
    ingester.kafka.client = kafka_mtls(UNTRUSTED_CERT);
    ingester.kafka.topics = vec![topic.clone()];
    ingester.kafka.group_id = unique_name("secure-untrusted");
    set_engine(&mut ingester, &engine, &prefix);
    let ingester = Ingester::start(ingester, shutdown.clone())
        .await
        .expect("ingester starts");
    let text = wait_for_metric(
        ingester.ops_addr,
        r#"ingester_kafka_faults_total{kind="tls",setting="kafka.tls.cert_file"}"#,
        Duration::from_secs(30),
    )
    .await;
    assert!(
        text.contains(r#"ingester_kafka_faults_total{kind="tls",setting="kafka.tls.cert_file"}"#),
        "the refused certificate names kafka.tls.cert_file:\n{text}"
    );
    assert_eq!(
        wait_for_ready(ingester.ops_addr, 503, Duration::from_secs(15)).await,
        503
    );
    shutdown.cancel();
    ingester.wait().await.expect("the ingester stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_rotated_in_its_file_is_used_without_restart() {
    require_secure_kafka();
    // A user of its own, so that rotating its password disturbs no other test.
    let user = unique_name("rotate");
    set_scram_password(&user, "first-password");
    add_prefixed_acl(&user, "topic", SECURE_PREFIX, &["Write", "Describe"]);
    let topic = unique_name("secure-rotate");
    create_secure_topic(&topic, 1).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "first-password\n").expect("write password");
    let mut client = kafka_scram(&user, "unused");
    client.sasl.password = None;
    client.sasl.password_file = Some(password_file.clone());
    let shutdown = CancellationToken::new();
    let collector = Collector::start(&collector_config(client, &topic), shutdown.clone())
        .await
        .expect("collector starts");
    let corpus = corpus::generate(12, 4, 2);
    assert_eq!(
        post_traces(&collector, corpus.records[0].value.clone()).await,
        200
    );

    // Rotate: the broker first, then the file, as a secret manager would.
    set_scram_password(&user, "second-password");
    rewrite_later(&password_file, "second-password\n");
    // The broker makes clients re-authenticate (connections.max.reauth.ms),
    // so the old password stops working on the open connection too.
    tokio::time::sleep(reauth_wait()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sent = 1;
    for record in &corpus.records[1..] {
        loop {
            let status = post_traces(&collector, record.value.clone()).await;
            if status == 200 {
                sent += 1;
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the rotated password was not picked up (last answer {status})"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    assert_eq!(records_on(&topic), sent);
    assert_eq!(sent, corpus.records.len() as i64);
    shutdown.cancel();
    collector.wait().await;
}

/// Longer than the broker's `connections.max.reauth.ms` plus the file check
/// interval, so the next request runs on a re-authenticated connection.
fn reauth_wait() -> Duration {
    secure::REAUTH_INTERVAL
        + spanway_service_kit::secret::DEFAULT_REFRESH_INTERVAL
        + Duration::from_secs(2)
}

/// A token endpoint for the client credentials grant that answers the
/// client `client_id` with secret `secret` with an unsecured JWT for
/// `subject` (the test broker validates tokens with Kafka's unsecured
/// validator; the flow up to the broker is the real one).
async fn token_endpoint(client_id: &'static str, secret: &'static str, subject: String) -> String {
    use axum::http::{HeaderMap, StatusCode};
    use base64::Engine as _;
    let encode = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}"))
    );
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let expected = expected.clone();
            let subject = subject.clone();
            async move {
                let authorized = headers
                    .get("authorization")
                    .is_some_and(|v| v.as_bytes() == expected.as_bytes());
                if !authorized || !body.contains("grant_type=client_credentials") {
                    return (
                        StatusCode::UNAUTHORIZED,
                        r#"{"error":"invalid_client"}"#.to_string(),
                    );
                }
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock")
                    .as_secs();
                let claims = format!(r#"{{"sub":"{subject}","iat":{now},"exp":{}}}"#, now + 3600);
                let jwt = format!("{}.{}.", encode(r#"{"alg":"none"}"#), encode(&claims));
                (
                    StatusCode::OK,
                    format!(
                        r#"{{"access_token":"{jwt}","token_type":"Bearer","expires_in":3600}}"#
                    ),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind token endpoint");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/token")
}

fn oauthbearer(token_endpoint_url: String, secret: &str) -> KafkaClientConfig {
    let mut client = kafka_over_tls(kafka_sasl_bootstrap());
    client.sasl.mechanism = Some(SaslMechanism::OauthBearer);
    client.sasl.oidc = Some(spanway_kafka::oidc::OidcConfig {
        token_endpoint_url,
        client_id: "spanway-client".into(),
        client_secret: Some(Secret::new(secret)),
        ..Default::default()
    });
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_tokens_from_an_oidc_provider() {
    require_secure_kafka();
    let url = token_endpoint("spanway-client", "oidc-secret", KAFKA_USER.into()).await;
    let topic = unique_name("secure-oidc");
    create_secure_topic(&topic, 1).await;
    let shutdown = CancellationToken::new();

    let collector = Collector::start(
        &collector_config(oauthbearer(url.clone(), "oidc-secret"), &topic),
        shutdown.clone(),
    )
    .await
    .expect("collector starts");
    let corpus = corpus::generate(13, 3, 2);
    for record in &corpus.records {
        assert_eq!(post_traces(&collector, record.value.clone()).await, 200);
    }
    assert_eq!(records_on(&topic), corpus.records.len() as i64);

    // A secret the provider refuses: named, not ready, nothing acknowledged.
    let refused = Collector::start(
        &collector_config(oauthbearer(url, "wrong-secret"), &topic),
        shutdown.clone(),
    )
    .await
    .expect("collector starts");
    let status = post_traces(&refused, corpus.records[0].value.clone()).await;
    assert!(status == 503 || status == 429, "refused, got {status}");
    let text = wait_for_metric(
        refused.ops_addr,
        r#"setting="kafka.sasl.oidc.client_secret""#,
        Duration::from_secs(20),
    )
    .await;
    assert!(
        text.contains(r#"collector_kafka_faults_total{kind="authentication",setting="kafka.sasl.oidc.client_secret"}"#),
        "the fault names kafka.sasl.oidc.client_secret:\n{text}"
    );
    assert_eq!(
        wait_for_ready(refused.ops_addr, 503, Duration::from_secs(15)).await,
        503
    );
    assert_eq!(records_on(&topic), corpus.records.len() as i64);
    shutdown.cancel();
    collector.wait().await;
    refused.wait().await;
}
