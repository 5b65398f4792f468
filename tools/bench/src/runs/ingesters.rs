//! The ingesters a run can start, ours and Jaeger's, with their command lines
//! and configuration.

use anyhow::Context;
use std::path::Path;
use std::process::Command;

use spanway_schemas::Encoding;

use super::{Destination, Options};

/// Which ingester a run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ingester {
    Spanway,
    Jaeger,
    JaegerV2,
}

impl Ingester {
    pub(super) fn name(self) -> &'static str {
        match self {
            Ingester::Spanway => "spanway",
            Ingester::Jaeger => "jaeger",
            Ingester::JaegerV2 => "jaeger-v2",
        }
    }

    pub(super) fn command(
        self,
        options: &Options,
        topic: &str,
        group: &str,
        url: &str,
        prefix: &str,
    ) -> anyhow::Result<Command> {
        Ok(match self {
            Ingester::JaegerV2 => {
                let config = options.log_dir.join(format!("{prefix}-jaeger-v2.yaml"));
                std::fs::write(
                    &config,
                    jaeger_v2_config(&options.kafka, topic, group, url, prefix, options.shards),
                )
                .with_context(|| format!("writing {}", config.display()))?;
                let mut command = Command::new(&options.jaeger_v2_bin);
                command
                    .arg(format!("--config={}", config.display()))
                    .args(&options.jaeger_args);
                command
            }
            Ingester::Spanway => {
                let mut command = spanway_command(
                    &options.ingester_bin,
                    &options.kafka,
                    topic,
                    group,
                    url,
                    prefix,
                    options.shards,
                );
                command.envs(options.ingester_env.iter().cloned());
                command
            }
            Ingester::Jaeger => {
                let mut command = Command::new(&options.jaeger_bin);
                command
                    .env("SPAN_STORAGE_TYPE", "opensearch")
                    .arg(format!("--kafka.consumer.brokers={}", options.kafka))
                    .arg(format!("--kafka.consumer.topic={topic}"))
                    .arg(format!("--kafka.consumer.group-id={group}"))
                    .arg(format!(
                        "--kafka.consumer.protocol-version={}",
                        options.jaeger_kafka_version
                    ))
                    .arg(format!("--es.server-urls={url}"))
                    .arg(format!("--es.index-prefix={prefix}"))
                    .arg(format!("--es.num-shards={}", options.shards))
                    .arg("--es.num-replicas=0")
                    // Off 14270, which is our ingester's default port too.
                    .arg("--admin.http.host-port=127.0.0.1:0")
                    .args(&options.jaeger_args);
                command
            }
        })
    }
}

/// Our ingester reading `topic` as `group` into `url` under `prefix`, with
/// `shards` primary shards and no replica.
pub(crate) fn spanway_command(
    bin: &Path,
    kafka: &str,
    topic: &str,
    group: &str,
    url: &str,
    prefix: &str,
    shards: u32,
) -> Command {
    let mut command = Command::new(bin);
    command
        .env("SPANWAY_KAFKA__BROKERS", kafka)
        .env("SPANWAY_KAFKA__TOPICS", topic)
        .env("SPANWAY_KAFKA__GROUP_ID", group)
        .env("SPANWAY_DEAD_LETTER__TOPIC", format!("{topic}-dlq"))
        .env("SPANWAY_ELASTICSEARCH__URL", url)
        .env("SPANWAY_ELASTICSEARCH__INDEX_PREFIX", prefix)
        .env("SPANWAY_ELASTICSEARCH__SHARDS", shards.to_string())
        .env("SPANWAY_ELASTICSEARCH__REPLICAS", "0")
        .env("SPANWAY_OPS__LISTEN", "127.0.0.1:0")
        // Plain log lines in the log file.
        .env("NO_COLOR", "1");
    command
}

/// Jaeger v2 in the ingester's role: the Kafka receiver reads the
/// `otlp_proto` topic from the start as `group`, the storage exporter
/// writes to the OpenSearch backend at `url` under `prefix` (`shards`
/// primary shards and no replica, as ours). Everything else keeps Jaeger
/// v2's defaults, including its exporter queue and bulk settings.
pub(crate) fn jaeger_v2_config(
    kafka: &str,
    topic: &str,
    group: &str,
    url: &str,
    prefix: &str,
    shards: u32,
) -> String {
    let receivers = kafka_receiver_yaml(kafka, topic, group);
    format!(
        "service:
  extensions: [jaeger_storage]
  pipelines:
    traces:
      receivers: [kafka]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_storage:
    backends:
      engine:
        opensearch:
          server_urls: [{url}]
          indices:
            index_prefix: {prefix}
            spans:
              shards: {shards}
              replicas: 0
            services:
              shards: {shards}
              replicas: 0
{receivers}exporters:
  jaeger_storage_exporter:
    trace_storage: engine
"
    )
}

/// The `receivers` section an OpenTelemetry Collector (Jaeger v2, the
/// servicegraph peer) reads a benchmark's `otlp_proto` topic with: from
/// the start, as `group`.
pub(crate) fn kafka_receiver_yaml(kafka: &str, topic: &str, group: &str) -> String {
    format!(
        "receivers:
  kafka:
    brokers: [{kafka}]
    group_id: {group}
    initial_offset: earliest
    traces:
      topic: {topic}
      encoding: otlp_proto
"
    )
}

/// One ingester run: which ingester reads which topic and writes where.
#[derive(Debug)]
pub(super) struct Case<'a> {
    pub(super) ingester: Ingester,
    pub(super) destination: Destination,
    pub(super) topic: &'a str,
    /// The topic's record encoding.
    pub(super) encoding: Encoding,
    /// Processes started in the one consumer group.
    pub(super) instances: usize,
}

impl Case<'_> {
    /// e.g. `spanway → null`, `spanway (jaeger_proto) → null`.
    pub(super) fn name(&self) -> String {
        let input = match (self.ingester, self.encoding) {
            (Ingester::Spanway | Ingester::JaegerV2, Encoding::OtlpProto)
            | (Ingester::Jaeger, Encoding::JaegerProto) => String::new(),
            (_, encoding) => format!(" ({encoding})"),
        };
        let destination = match self.destination {
            Destination::Null => "null",
            Destination::OpenSearch => "OpenSearch",
        };
        let instances = match self.instances {
            1 => String::new(),
            n => format!(" ×{n}"),
        };
        format!("{}{instances}{input} → {destination}", self.ingester.name())
    }

    /// The log file name: the name in plain characters.
    pub(super) fn log_name(&self) -> String {
        let mut slug = String::new();
        for c in self.name().chars() {
            if c.is_ascii_alphanumeric() || c == '_' {
                slug.push(c.to_ascii_lowercase());
            } else if !slug.ends_with('-') {
                slug.push('-');
            }
        }
        format!("{}.log", slug.trim_matches('-'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_names() {
        let case = Case {
            ingester: Ingester::Spanway,
            destination: Destination::Null,
            topic: "t",
            encoding: Encoding::JaegerProto,
            instances: 1,
        };
        assert_eq!(case.name(), "spanway (jaeger_proto) → null");
        assert_eq!(case.log_name(), "spanway-jaeger_proto-null.log");
        let case = Case {
            ingester: Ingester::Jaeger,
            destination: Destination::OpenSearch,
            ..case
        };
        assert_eq!(case.name(), "jaeger → OpenSearch");
        assert_eq!(case.log_name(), "jaeger-opensearch.log");
        let case = Case {
            ingester: Ingester::Spanway,
            destination: Destination::Null,
            encoding: Encoding::OtlpProto,
            instances: 4,
            ..case
        };
        assert_eq!(case.name(), "spanway ×4 → null");
        assert_eq!(case.log_name(), "spanway-4-null.log");
    }

    #[test]
    fn both_ingesters_get_the_shard_count_asked_for() {
        let yaml = jaeger_v2_config("k:9092", "t", "g", "http://os:9200", "p", 5);
        let shards: Vec<&str> = yaml
            .lines()
            .filter(|line| line.trim_start().starts_with("shards:"))
            .collect();
        assert_eq!(shards.len(), 2, "spans and services: {yaml}");
        assert!(
            shards.iter().all(|line| line.trim() == "shards: 5"),
            "{yaml}"
        );

        let command = spanway_command(Path::new("x"), "k", "t", "g", "u", "p", 5);
        let value = command
            .get_envs()
            .find(|(key, _)| *key == "SPANWAY_ELASTICSEARCH__SHARDS")
            .and_then(|(_, value)| value);
        assert_eq!(value, Some(std::ffi::OsStr::new("5")));
    }
}
