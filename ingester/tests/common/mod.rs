//! Set-up shared by the ingester's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use spanway_e2e::{kafka_bootstrap, unique_name};
use spanway_ingester::config::IngesterConfig;

/// Names unique to one test run.
#[derive(Debug, Clone)]
pub struct Names {
    pub topic: String,
    pub prefix: String,
    pub group: String,
    pub dead_letter: String,
}

impl Names {
    pub fn new(label: &str) -> Self {
        Names {
            topic: unique_name(&format!("it-{label}")),
            prefix: unique_name(label),
            group: unique_name(&format!("it-{label}-group")),
            dead_letter: unique_name(&format!("it-{label}-dlq")),
        }
    }

    pub fn span_indices(&self) -> String {
        format!("{}-jaeger-span-*", self.prefix)
    }

    pub fn service_indices(&self) -> String {
        format!("{}-jaeger-service-*", self.prefix)
    }

    pub fn prefix_indices(&self) -> String {
        format!("{}-*", self.prefix)
    }
}

/// An ingester configuration for tests: one shard, no replicas, short
/// timeouts so that rebalances after a kill settle quickly.
pub fn config(names: &Names, engine: &str) -> IngesterConfig {
    let mut config = IngesterConfig::default();
    config.kafka.client.brokers = vec![kafka_bootstrap()];
    config.kafka.topics = vec![names.topic.clone()];
    config.kafka.group_id = names.group.clone();
    config.kafka.session_timeout = Duration::from_secs(6);
    config.kafka.drain_timeout = Duration::from_secs(3);
    config.dead_letter.topic = names.dead_letter.clone();
    config.elasticsearch.client.url = Some(engine.to_owned());
    config.elasticsearch.index_prefix = names.prefix.clone();
    config.elasticsearch.shards = 1;
    config.elasticsearch.replicas = 0;
    config.bulk.flush_interval = Duration::from_millis(100);
    config.bulk.retry_max_backoff = Duration::from_secs(2);
    config.ops.listen = "127.0.0.1:0".parse().unwrap();
    config.validate().unwrap();
    config
}

/// The same configuration as environment variables, for the binary.
pub fn env(names: &Names, engine: &str) -> Vec<(String, String)> {
    [
        ("SPANWAY_KAFKA__BROKERS", kafka_bootstrap()),
        ("SPANWAY_KAFKA__TOPICS", names.topic.clone()),
        ("SPANWAY_KAFKA__GROUP_ID", names.group.clone()),
        ("SPANWAY_KAFKA__SESSION_TIMEOUT", "6s".into()),
        ("SPANWAY_KAFKA__DRAIN_TIMEOUT", "3s".into()),
        ("SPANWAY_DEAD_LETTER__TOPIC", names.dead_letter.clone()),
        ("SPANWAY_ELASTICSEARCH__URL", engine.to_owned()),
        ("SPANWAY_ELASTICSEARCH__INDEX_PREFIX", names.prefix.clone()),
        ("SPANWAY_ELASTICSEARCH__SHARDS", "1".into()),
        ("SPANWAY_ELASTICSEARCH__REPLICAS", "0".into()),
        ("SPANWAY_BULK__FLUSH_INTERVAL", "100ms".into()),
        ("SPANWAY_BULK__RETRY_MAX_BACKOFF", "2s".into()),
        ("SPANWAY_OPS__LISTEN", "127.0.0.1:0".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}
