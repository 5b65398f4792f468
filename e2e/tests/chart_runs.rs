//! The Helm chart, run: `helm template` with `tests/chart/secured-values.yaml`,
//! then each rendered Deployment started from the built image's root
//! filesystem exactly as its pod spec says (command, arguments, environment,
//! user 65532, read-only root, the ConfigMap and Secret files at their mount
//! paths) against the secured Kafka and OpenSearch. Spans sent to the
//! collector Service's OTLP/HTTP port, over TLS with a token from a Secret,
//! are stored by the rendered ingester and counted by the rendered
//! analytics job. A chart change that breaks the rendered configuration,
//! a mount path or a credential fails here, where a template test would not.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use prost::Message as _;
use rand::SeedableRng as _;
use spanway_e2e::chart::{self, Image, Pod, Rendered, Secrets};
use spanway_e2e::ops::{metrics_text, sample};
use spanway_e2e::secure::*;
use spanway_e2e::unique_name;

const TOKEN: &str = "chart-run-token";
const TRACES: usize = 20;

fn values_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/chart/secured-values.yaml")
}

/// The Secrets `secured-values.yaml` names, as the cluster would hold them.
fn secrets() -> Secrets {
    let read =
        |path: PathBuf| std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Secrets::default()
        .with("kafka-cluster-ca", "ca.crt", read(ca_path()))
        .with("spanway-kafka-user", "password", KAFKA_PASSWORD)
        .with("tracing-os-ca", "ca.crt", read(ca_path()))
        .with("tracing-os-user", "password", OPENSEARCH_PASSWORD)
        .with(
            "spanway-collector-tls",
            "tls.crt",
            read(cert_path(RECEIVER_CERT)),
        )
        .with(
            "spanway-collector-tls",
            "tls.key",
            read(key_path(RECEIVER_CERT)),
        )
        .with("spanway-ingest-tokens", "tokens", format!("{TOKEN}\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_chart_runs_the_secured_pipeline_from_the_image() {
    chart::require_tools();
    require_secure_kafka();
    require_secure_opensearch().await;
    let topic = unique_name("secure-chart");
    let dead_letter = format!("{topic}-dlq");
    create_secure_topic(&topic, 3).await;
    create_secure_topic(&dead_letter, 1).await;
    let prefix = unique_name("secure-chart");
    let graph_index = format!("{prefix}-spanway-service-graph");
    let ingester_group = format!("{topic}-ingester");
    let analytics_group = format!("{topic}-analytics");
    let rendered = Rendered::render(
        "spanway",
        &[values_file()],
        &[
            ("kafka.topic", &topic),
            ("elasticsearch.indexPrefix", &prefix),
            ("ingester.groupId", &ingester_group),
            ("ingester.deadLetterTopic", &dead_letter),
            ("analytics.groupId", &analytics_group),
            ("analytics.serviceGraphIndex", &graph_index),
        ],
    );
    let image = Image::unpack(&chart::image_layout(), &chart::app_version());
    let secrets = secrets();

    let mut pods: Vec<Pod> = ["collector", "ingester", "analytics"]
        .into_iter()
        .map(|component| {
            Pod::start(
                &image,
                &rendered,
                rendered.workload("Deployment", component),
                &secrets,
            )
        })
        .collect();
    for pod in &mut pods {
        pod.wait_for_probe("startupProbe", Duration::from_secs(60))
            .await;
        pod.wait_for_probe("readinessProbe", Duration::from_secs(90))
            .await;
    }
    let [collector, ingester, analytics] = &mut pods[..] else {
        unreachable!("three pods started");
    };

    // The collector Service's OTLP/HTTP port, reached at the container port it targets.
    let service = rendered.workload("Service", "collector");
    let service_name = service["metadata"]["name"].as_str().expect("service name");
    let port = chart::service_target_port(&rendered, service_name, "otlp-http", collector);
    let url = format!("https://127.0.0.1:{port}/v1/traces");
    let client = https_client();

    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let start_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    let mut sent_spans = 0u64;
    for i in 0..TRACES {
        let (_, request) =
            spanway_loadgen::checkout_trace(&mut rng, start_ns + i as u64 * 1_000_000);
        sent_spans += request
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len() as u64)
            .sum::<u64>();
        let body = request.encode_to_vec();
        if i == 0 {
            // The token Secret is what lets a client in.
            let refused = client
                .post(&url)
                .header("content-type", "application/x-protobuf")
                .body(body.clone())
                .send()
                .await
                .expect("send without a token");
            assert_eq!(refused.status(), 401, "no token: refused");
        }
        let answer = client
            .post(&url)
            .bearer_auth(TOKEN)
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .expect("send to the collector");
        assert!(
            answer.status().is_success(),
            "collector answered {}: {}",
            answer.status(),
            answer.text().await.unwrap_or_default()
        );
    }

    let spans_index = format!("{prefix}-jaeger-span-*");
    let stored = wait_for_secure_count(&spans_index, sent_spans, Duration::from_secs(90)).await;
    assert_eq!(
        stored,
        sent_spans,
        "every span sent is stored by the rendered ingester; ingester log:\n{}",
        ingester.log_text()
    );

    let analytics_ops: std::net::SocketAddr = format!("127.0.0.1:{}", analytics.port("ops"))
        .parse()
        .expect("address");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut read = 0.0;
    while Instant::now() < deadline {
        read = sample(
            &metrics_text(analytics_ops).await,
            "analytics_spans_read_total",
        )
        .unwrap_or(0.0);
        if read >= sent_spans as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        read,
        sent_spans as f64,
        "the rendered analytics job read every span; log:\n{}",
        analytics.log_text()
    );

    // Each checkout trace has the frontend call checkout once; each partition's windows are
    // their own documents, so the calls add up across them.
    let dependencies = format!("{prefix}-jaeger-dependencies-*");
    let frontend_calls = |links: &[(String, String, u64)]| -> u64 {
        links
            .iter()
            .filter(|(p, c, _)| p == "frontend" && c == "checkout")
            .map(|(_, _, n)| n)
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut links = Vec::new();
    while Instant::now() < deadline {
        links = dependency_links(&dependencies).await;
        if frontend_calls(&links) >= TRACES as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(
        frontend_calls(&links),
        TRACES as u64,
        "frontend -> checkout calls among {links:?}; analytics log:\n{}",
        analytics.log_text()
    );

    // Liveness as the kubelet asks it, then a pod deletion's SIGTERM: each process drains and
    // exits cleanly within the rendered grace period.
    for pod in pods.iter_mut() {
        pod.wait_for_probe("livenessProbe", Duration::from_secs(10))
            .await;
    }
    let grace = Duration::from_secs(
        rendered.workload("Deployment", "ingester")["spec"]["template"]["spec"]
            ["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or(30),
    );
    for pod in pods.iter_mut() {
        assert!(
            pod.terminate(grace).await,
            "{} did not exit cleanly on SIGTERM; log:\n{}",
            pod.name,
            pod.log_text()
        );
    }
}

/// The topic-creation hook Job, run from the image as rendered: it creates the span topic
/// with `kafka.partitions` partitions and the dead-letter topic with their topic configs, a
/// second run (an upgrade) leaves them as they are, and a principal without the Create ACL
/// gets a refusal that says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_topic_hook_creates_the_topics_once() {
    chart::require_tools();
    require_secure_kafka();
    let topic = unique_name("secure-chart-topics");
    let dead_letter = format!("{topic}-dlq");
    let image = Image::unpack(&chart::image_layout(), &chart::app_version());
    let topics_values =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/chart/topics-values.yaml");
    let rendered = Rendered::render(
        "spanway",
        &[values_file(), topics_values],
        &[
            ("kafka.topic", &topic),
            ("ingester.deadLetterTopic", &dead_letter),
        ],
    );
    let admin_secrets = secrets().with("spanway-kafka-user", "password", ADMIN_PASSWORD);
    let job = rendered.workload("Job", "topics");
    let hook = job["metadata"]["annotations"]["helm.sh/hook"].as_str();
    assert_eq!(hook, Some("pre-install,pre-upgrade"));
    let timeout = Duration::from_secs(job["spec"]["activeDeadlineSeconds"].as_u64().unwrap_or(300));

    let mut first = Pod::start(&image, &rendered, job, &admin_secrets);
    assert!(
        first.wait_exit(timeout).await,
        "the hook Job failed:\n{}",
        first.log_text()
    );
    let log = first.log_text();
    assert!(
        log.contains(&format!("created topic {topic} with 3 partitions")),
        "{log}"
    );
    assert!(
        log.contains(&format!("created topic {dead_letter} with 1 partition")),
        "{log}"
    );
    assert_eq!(partition_count(&topic), 3);
    assert_eq!(partition_count(&dead_letter), 1);
    assert_eq!(
        topic_config(&topic, "retention.ms").as_deref(),
        Some("3600000")
    );

    let mut again = Pod::start(&image, &rendered, job, &admin_secrets);
    assert!(
        again.wait_exit(timeout).await,
        "the second run failed:\n{}",
        again.log_text()
    );
    let log = again.log_text();
    assert!(
        log.contains(&format!("topic {topic} exists with 3 partitions")),
        "{log}"
    );
    assert!(!log.contains("created topic"), "{log}");

    // The chart's own principal (no Create ACL): refused, and told why.
    let other = unique_name("secure-chart-topics");
    let refused = Rendered::render(
        "spanway",
        &[values_file()],
        &[("kafka.topic", &other), ("topics.create", "true")],
    );
    let mut denied = Pod::start(
        &image,
        &refused,
        refused.workload("Job", "topics"),
        &secrets(),
    );
    assert!(
        !denied.wait_exit(timeout).await,
        "created without the Create ACL:\n{}",
        denied.log_text()
    );
    let log = denied.log_text();
    assert!(log.contains("Create ACL") && log.contains(&other), "{log}");
}

/// Partitions of `topic` on kafka-secure, as its metadata shows them.
fn partition_count(topic: &str) -> usize {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    let consumer: BaseConsumer = admin_client_config().create().expect("admin consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len())
}

/// A topic config's value on kafka-secure.
fn topic_config(topic: &str, key: &str) -> Option<String> {
    let out = kafka_secure_admin(&[
        "configs",
        "--describe",
        "--entity-type",
        "topics",
        "--entity-name",
        topic,
    ]);
    out.split([',', ' ', '\n'])
        .find_map(|part| part.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
}
