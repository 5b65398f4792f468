//! Set-up shared by the tests that run our ingester and streaming analytics on a topic written
//! by another producer (the kits, Jaeger v2) and compare with our collector's path.
// Each test binary that includes this module uses part of it.
#![allow(dead_code)]

use std::time::Duration;

use spanway_collector::Collector;
use spanway_collector::config::CollectorConfig;
use spanway_e2e::{
    create_topic, kafka_bootstrap, opensearch_url, require_kafka, unique_name, wait_for_count,
};
use spanway_ingester::Ingester;
use spanway_ingester::config::IngesterConfig;
use spanway_schemas::Encoding;
use spanway_streaming_analytics::AnalyticsConfig;

/// Our collector on ephemeral loopback ports, writing `topic`.
pub async fn collector(topic: &str, shutdown: &tokio_util::sync::CancellationToken) -> Collector {
    let mut config = CollectorConfig::default();
    config.kafka.client.brokers = vec![kafka_bootstrap()];
    config.kafka.topic = topic.to_owned();
    config.on_ephemeral_loopback_ports();
    config.validate().expect("valid collector config");
    Collector::start(&config, shutdown.clone())
        .await
        .expect("collector starts")
}

/// Our collector and ingester on a fresh three-partition topic, storing OTLP
/// spans under a fresh index prefix in the engine at `engine`.
pub struct Pipeline {
    /// The topic between them.
    pub topic: String,
    /// The ingester's index prefix.
    pub prefix: String,
    /// Stops both (and anything else the test starts with it).
    pub shutdown: tokio_util::sync::CancellationToken,
    /// The collector, on ephemeral loopback ports.
    pub collector: Collector,
    /// The ingester.
    pub ingester: Ingester,
}

impl Pipeline {
    /// Starts both; `label` begins the topic and prefix names.
    pub async fn start(label: &str, engine: &str) -> Pipeline {
        Self::start_with(label, engine, |_| {}).await
    }

    /// [`Pipeline::start`] with the ingester's configuration changed by `tweak`.
    pub async fn start_with(
        label: &str,
        engine: &str,
        tweak: impl FnOnce(&mut IngesterConfig),
    ) -> Pipeline {
        require_kafka();
        let topic = unique_name(&format!("{label}-spans"));
        let prefix = unique_name(label);
        create_topic(&topic, 3).await;
        let shutdown = tokio_util::sync::CancellationToken::new();
        let collector = collector(&topic, &shutdown).await;
        let mut config = ingester_on(engine, &topic, &prefix, Encoding::OtlpProto);
        tweak(&mut config);
        let ingester = Ingester::start(config, shutdown.clone())
            .await
            .expect("ingester starts");
        Pipeline {
            topic,
            prefix,
            shutdown,
            collector,
            ingester,
        }
    }

    /// The collector's OTLP/HTTP traces endpoint.
    pub fn otlp_http_traces(&self) -> String {
        let addr = self.collector.otlp_http_addr.expect("OTLP/HTTP receiver");
        format!("http://{addr}/v1/traces")
    }

    /// Posts an encoded `ExportTraceServiceRequest` to the OTLP/HTTP endpoint as an OTLP
    /// exporter does, and returns the answer's status.
    pub async fn post_otlp(&self, request: Vec<u8>) -> reqwest::StatusCode {
        reqwest::Client::new()
            .post(self.otlp_http_traces())
            .header("content-type", "application/x-protobuf")
            .body(request)
            .send()
            .await
            .expect("the collector answers")
            .status()
    }

    /// Stops both, and fails the test unless the ingester stopped cleanly.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.collector.wait().await;
        self.ingester
            .wait()
            .await
            .expect("the ingester stops cleanly");
    }

    /// [`Pipeline::stop`], then removes the indices and templates under its
    /// prefix from the engine at `engine`.
    pub async fn stop_and_remove(self, engine: &str) {
        let prefix = self.prefix.clone();
        self.stop().await;
        spanway_e2e::delete_prefixed(engine, &prefix).await;
    }
}

/// An ingester reading `topic` (records without an `encoding` header read as `encoding`) into
/// indices prefixed `prefix` on the test OpenSearch, flushing fast.
pub fn ingester(topic: &str, prefix: &str, encoding: Encoding) -> IngesterConfig {
    ingester_on(&opensearch_url(), topic, prefix, encoding)
}

/// [`ingester`] writing to the engine at `engine`.
pub fn ingester_on(engine: &str, topic: &str, prefix: &str, encoding: Encoding) -> IngesterConfig {
    let mut config = IngesterConfig::default();
    config.kafka.client.brokers = vec![kafka_bootstrap()];
    config.kafka.topics = vec![topic.to_owned()];
    config.kafka.group_id = unique_name("e2e-ingester");
    config.kafka.default_encoding = encoding;
    config.dead_letter.topic = format!("{topic}-dlq");
    config.elasticsearch.client.url = Some(engine.to_owned());
    config.elasticsearch.index_prefix = prefix.to_owned();
    config.elasticsearch.shards = 1;
    config.elasticsearch.replicas = 0;
    config.bulk.flush_interval = Duration::from_millis(100);
    config.ops.listen = "127.0.0.1:0".parse().expect("address");
    config.validate().expect("valid ingester config");
    config
}

/// Streaming analytics on `topic` with windows short enough for a test.
pub fn analytics(topic: &str, prefix: &str, encoding: Encoding) -> AnalyticsConfig {
    let mut config = AnalyticsConfig::default();
    config.kafka.client.brokers = vec![kafka_bootstrap()];
    config.kafka.topics = vec![topic.to_owned()];
    config.kafka.group_id = unique_name("e2e-analytics");
    config.kafka.default_encoding = encoding;
    config.kafka.commit_interval = Duration::from_millis(200);
    config.elasticsearch.client.url = Some(opensearch_url());
    config.elasticsearch.index_prefix = prefix.to_owned();
    config.elasticsearch.service_graph_index = format!("{prefix}-spanway-service-graph");
    config.elasticsearch.replicas = 0;
    config.windows.size = Duration::from_secs(5);
    config.windows.allowed_lateness = Duration::from_secs(5);
    config.windows.pairing_wait = Duration::from_secs(2);
    config.windows.idle_flush = Duration::from_secs(3);
    config.ops.listen = "127.0.0.1:0".parse().expect("address");
    config.validate().expect("valid analytics config");
    config
}

/// Waits until each prefix's span indices hold `count` documents; fails naming `label` and
/// the prefix otherwise.
pub async fn wait_for_stored(label: &str, prefixes: [&str; 2], count: u64) {
    let url = opensearch_url();
    for prefix in prefixes {
        let stored = wait_for_count(
            &url,
            &format!("{prefix}-jaeger-span-*"),
            count,
            Duration::from_secs(120),
        )
        .await;
        assert_eq!(
            stored, count,
            "{label}: every exported span stored ({prefix})"
        );
    }
}
