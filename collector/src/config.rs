//! Collector configuration: typed, with defaults, validated before any I/O.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use spanway_schemas::{DEFAULT_TOPIC, Encoding, MAX_RECORD_BYTES};
use spanway_service_kit::config::ConfigError;
use spanway_service_kit::logging::LogConfig;

/// Everything the collector reads at start.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    /// The OTLP/HTTP receiver.
    pub otlp_http: OtlpHttpConfig,
    /// Where and how spans are published.
    pub kafka: ProducerConfig,
    /// Health and metrics endpoint.
    pub ops: OpsConfig,
    /// Log output.
    pub log: LogConfig,
}

/// OTLP over HTTP (`POST /v1/traces`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpHttpConfig {
    /// Whether the receiver listens at all.
    pub enabled: bool,
    /// Address to listen on; 4318 is the port OTLP exporters use by default.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes, after gzip decompression.
    pub max_request_bytes: usize,
}

/// The Kafka producer.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProducerConfig {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// Topic spans are written to.
    pub topic: String,
    /// Record encoding (`otlp_proto`, `otlp_json`, `jaeger_proto`, `jaeger_json`).
    pub encoding: Encoding,
    /// Compression codec: `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    pub compression: String,
    /// How long the producer waits to fill a batch.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// How long a record may wait for the broker's acknowledgement before the
    /// request that carried it fails with a retryable status.
    #[serde(with = "humantime_serde")]
    pub delivery_timeout: Duration,
    /// Largest record value written, in bytes before compression; larger
    /// traces are split at span boundaries.
    pub max_record_bytes: usize,
    /// Request bytes accepted but not yet acknowledged by Kafka. Past it new
    /// requests are refused at once with a retryable status (HTTP 429), so a
    /// slow or absent Kafka cannot make the collector run out of memory.
    pub max_bytes_in_flight: usize,
}

/// The operations endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpsConfig {
    /// Address of `/health/live`, `/health/ready` and `/metrics`.
    pub listen: SocketAddr,
}

impl Default for OtlpHttpConfig {
    fn default() -> Self {
        OtlpHttpConfig {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], 4318)),
            max_request_bytes: 16 * 1024 * 1024,
        }
    }
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            brokers: vec!["127.0.0.1:9092".into()],
            topic: DEFAULT_TOPIC.into(),
            encoding: Encoding::OtlpProto,
            compression: "zstd".into(),
            linger: Duration::from_millis(5),
            delivery_timeout: Duration::from_secs(10),
            max_record_bytes: MAX_RECORD_BYTES,
            max_bytes_in_flight: 256 * 1024 * 1024,
        }
    }
}

impl Default for OpsConfig {
    fn default() -> Self {
        OpsConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 14269)),
        }
    }
}

const COMPRESSIONS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

impl CollectorConfig {
    /// Checks the rules that span several fields or that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.kafka.brokers.is_empty() || self.kafka.brokers.iter().any(|b| b.trim().is_empty()) {
            return Err(ConfigError::invalid(
                "kafka.brokers",
                "at least one non-empty host:port is required",
            ));
        }
        if self.kafka.topic.is_empty() {
            return Err(ConfigError::invalid("kafka.topic", "must not be empty"));
        }
        if !COMPRESSIONS.contains(&self.kafka.compression.as_str()) {
            return Err(ConfigError::invalid(
                "kafka.compression",
                format!(
                    "{:?} is not one of {}",
                    self.kafka.compression,
                    COMPRESSIONS.join(", ")
                ),
            ));
        }
        if self.kafka.max_record_bytes == 0 || self.kafka.max_record_bytes > MAX_RECORD_BYTES {
            return Err(ConfigError::invalid(
                "kafka.max_record_bytes",
                format!("must be between 1 and {MAX_RECORD_BYTES} (the topic contract's limit)"),
            ));
        }
        if self.kafka.delivery_timeout < Duration::from_millis(100) {
            return Err(ConfigError::invalid(
                "kafka.delivery_timeout",
                "must be at least 100ms",
            ));
        }
        if self.kafka.max_bytes_in_flight < self.otlp_http.max_request_bytes {
            return Err(ConfigError::invalid(
                "kafka.max_bytes_in_flight",
                "must be at least otlp_http.max_request_bytes, or the largest request could never be accepted",
            ));
        }
        if self.otlp_http.max_request_bytes == 0 {
            return Err(ConfigError::invalid(
                "otlp_http.max_request_bytes",
                "must be positive",
            ));
        }
        if !self.otlp_http.enabled {
            return Err(ConfigError::invalid(
                "otlp_http.enabled",
                "no receiver is enabled",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        CollectorConfig::default().validate().unwrap();
    }

    #[test]
    fn rules_name_the_key() {
        let mut cfg = CollectorConfig::default();
        cfg.kafka.compression = "brotli".into();
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .starts_with("configuration key kafka.compression")
        );
        let mut cfg = CollectorConfig::default();
        cfg.kafka.max_record_bytes = 2_000_000;
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("kafka.max_record_bytes")
        );
        let mut cfg = CollectorConfig::default();
        cfg.kafka.brokers.clear();
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("kafka.brokers")
        );
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// The shipped example must load, validate, and equal the defaults it documents.
    #[test]
    fn example_file_is_the_defaults() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("collector.example.toml");
        let cfg: CollectorConfig =
            spanway_service_kit::config::load_with_env(Some(&path), []).unwrap();
        cfg.validate().unwrap();
        assert_eq!(
            format!("{cfg:?}"),
            format!("{:?}", CollectorConfig::default())
        );
    }
}
