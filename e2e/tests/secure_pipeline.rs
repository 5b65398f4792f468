//! The whole pipeline with every connection secured, as a production
//! deployment runs it: the OpenTelemetry Python SDK sends over TLS with a
//! bearer token to the collector; the collector publishes over SASL_SSL
//! (SCRAM-SHA-512); the ingester reads over mutual TLS and writes to
//! OpenSearch with its security plugin, logging in with its client
//! certificate; streaming analytics reads over SASL_SSL and writes its
//! windows there with basic auth. Every span is stored exactly once, and
//! the dependency the SDK's traces make is there.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use prost::Message as _;
use spanway_collector::Collector;
use spanway_collector::config::{CollectorConfig, TlsConfig as ReceiverTls};
use spanway_e2e::secure::*;
use spanway_e2e::unique_name;
use spanway_ingester::Ingester;
use spanway_ingester::config::IngesterConfig;
use spanway_schemas::proto::otlp;
use spanway_search::config::{EngineClientConfig, TlsConfig};
use spanway_service_kit::secret::Secret;
use spanway_streaming_analytics::{Analytics, AnalyticsConfig};
use tokio_util::sync::CancellationToken;

fn secured_engine() -> EngineClientConfig {
    EngineClientConfig {
        url: Some(opensearch_secure_url()),
        tls: TlsConfig {
            ca_file: Some(ca_path()),
            ..TlsConfig::default()
        },
        ..EngineClientConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_to_secured_opensearch_every_span_once() {
    require_secure_kafka();
    require_secure_opensearch().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let topic = unique_name("secure-pipeline");
    create_secure_topic(&topic, 3).await;
    let prefix = unique_name("secure");
    let shutdown = CancellationToken::new();

    // Collector: OTLP/gRPC over TLS with a bearer token; SCRAM to Kafka.
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "sdk-token\n").expect("write tokens");
    let mut collector_config = CollectorConfig::default();
    collector_config.on_ephemeral_loopback_ports();
    collector_config.otlp_grpc.tls = Some(ReceiverTls {
        cert_file: Some(cert_path(RECEIVER_CERT)),
        key_file: Some(key_path(RECEIVER_CERT)),
        ..ReceiverTls::default()
    });
    collector_config.auth.bearer_tokens_file = Some(tokens);
    collector_config.kafka.client = kafka_scram(KAFKA_USER, KAFKA_PASSWORD);
    collector_config.kafka.topic = topic.clone();
    collector_config.validate().expect("valid collector config");
    let collector = Collector::start(&collector_config, shutdown.clone())
        .await
        .expect("collector starts");

    // Ingester: mutual TLS to Kafka, client certificate login to OpenSearch.
    let mut ingester_config = IngesterConfig::default();
    ingester_config.kafka.client = kafka_mtls(INGESTER_CERT);
    ingester_config.kafka.topics = vec![topic.clone()];
    ingester_config.kafka.group_id = unique_name("secure-ingester");
    ingester_config.dead_letter.topic = format!("{topic}-dlq");
    ingester_config.elasticsearch.client = secured_engine();
    ingester_config.elasticsearch.client.tls.cert_file = Some(cert_path(INGESTER_CERT));
    ingester_config.elasticsearch.client.tls.key_file = Some(key_path(INGESTER_CERT));
    ingester_config.elasticsearch.index_prefix = prefix.clone();
    ingester_config.elasticsearch.shards = 1;
    ingester_config.elasticsearch.replicas = 0;
    ingester_config.bulk.flush_interval = Duration::from_millis(100);
    ingester_config.ops.listen = "127.0.0.1:0".parse().expect("address");
    ingester_config.validate().expect("valid ingester config");
    let ingester = Ingester::start(ingester_config, shutdown.clone())
        .await
        .expect("ingester starts");

    // Streaming analytics: SCRAM to Kafka, basic auth to OpenSearch.
    let mut analytics_config = AnalyticsConfig::default();
    analytics_config.kafka.client = kafka_scram(KAFKA_ANALYTICS_USER, KAFKA_ANALYTICS_PASSWORD);
    analytics_config.kafka.topics = vec![topic.clone()];
    analytics_config.kafka.group_id = unique_name("secure-analytics");
    analytics_config.kafka.commit_interval = Duration::from_millis(200);
    analytics_config.elasticsearch.client = secured_engine();
    analytics_config.elasticsearch.client.username = Some(OPENSEARCH_USER.into());
    analytics_config.elasticsearch.client.password = Some(Secret::new(OPENSEARCH_PASSWORD));
    analytics_config.elasticsearch.index_prefix = prefix.clone();
    analytics_config.elasticsearch.service_graph_index = format!("{prefix}-spanway-service-graph");
    analytics_config.elasticsearch.replicas = 0;
    analytics_config.windows.size = Duration::from_secs(5);
    analytics_config.windows.allowed_lateness = Duration::from_secs(5);
    analytics_config.windows.pairing_wait = Duration::from_secs(2);
    analytics_config.windows.idle_flush = Duration::from_secs(3);
    analytics_config.ops.listen = "127.0.0.1:0".parse().expect("address");
    analytics_config.validate().expect("valid analytics config");
    let analytics = Analytics::start(&analytics_config, shutdown.clone())
        .await
        .expect("analytics starts");

    // The real SDK, trusting the test CA and sending the token.
    let out = dir.path().join("sent.binpb");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dev/clients/otel-python");
    let endpoint = collector.otlp_grpc_addr.expect("otlp grpc").to_string();
    let run = {
        let out = out.clone();
        let run_id = prefix.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("bash")
                .arg(script)
                .args(["--endpoint", &endpoint, "--protocol", "grpc"])
                .arg("--ca-file")
                .arg(ca_path())
                .args(["--header", "authorization=Bearer sdk-token"])
                .args(["--run-id", &run_id])
                .arg("--out")
                .arg(out)
                .output()
        })
    };
    let output = run
        .await
        .expect("join")
        .expect("run dev/clients/otel-python");
    assert!(
        output.status.success(),
        "dev/clients/otel-python failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let sent = otlp::ExportTraceServiceRequest::decode(
        std::fs::read(&out).expect("sent spans").as_slice(),
    )
    .expect("sent spans decode");
    let sent_spans = sent
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum::<usize>() as u64;
    assert!(sent_spans > 0);

    let spans = format!("{prefix}-jaeger-span-*");
    let stored = wait_for_secure_count(&spans, sent_spans, Duration::from_secs(90)).await;
    assert_eq!(stored, sent_spans, "every span the SDK exported is stored");
    // Nothing more arrives later: exactly once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(secure_count(&spans).await, sent_spans, "and stored once");

    // The SDK's checkout calls PostgreSQL: the dependency is written too.
    let dependencies = format!("{prefix}-jaeger-dependencies-*");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut links = Vec::new();
    while Instant::now() < deadline {
        links = dependency_links(&dependencies).await;
        if links
            .iter()
            .any(|(p, c, _)| p == "py-shop" && c == "postgresql")
        {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        links
            .iter()
            .any(|(p, c, n)| p == "py-shop" && c == "postgresql" && *n >= 1),
        "py-shop -> postgresql among {links:?}"
    );

    shutdown.cancel();
    collector.wait().await;
    ingester.wait().await.expect("the ingester stops cleanly");
    analytics
        .wait()
        .await
        .expect("streaming analytics stops cleanly");
}
