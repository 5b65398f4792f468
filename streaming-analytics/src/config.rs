//! Configuration of the analytics job: typed, with defaults, validated
//! before any I/O.

use std::time::Duration;

use serde::Deserialize;
use spanway_kafka::KafkaClientConfig;
use spanway_schemas::{DEFAULT_TOPIC, Encoding};
use spanway_search::config::EngineClientConfig;
use spanway_search::index::DateSeparator;
use spanway_search::templates::TemplateApi;
use spanway_service_kit::config::ConfigError;
use spanway_service_kit::liveness;
use spanway_service_kit::logging::LogConfig;
use spanway_service_kit::runtime::RuntimeConfig;
use spanway_service_kit::section::Section;

use crate::documents::Indices;
use crate::edges::{Rules, SameService};
use crate::pairing::Timing;
use crate::span::PeerSource;

/// Everything the job reads at start.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalyticsConfig {
    /// The Kafka consumer group: the shared client settings (`brokers`,
    /// `tls`, `sasl`, `properties`) and the group's own.
    pub kafka: KafkaSection,
    /// Where the aggregates are written: connection keys from
    /// `EngineClientConfig`, the rest from `OutputConfig`, side by side in
    /// one section.
    pub elasticsearch: Section<EngineClientConfig, OutputConfig>,
    /// Windows, lateness and pairing.
    pub windows: WindowConfig,
    /// Which edges count.
    pub model: ModelConfig,
    /// The Jaeger dependency documents.
    pub dependencies: DependenciesConfig,
    /// The optional Prometheus view of the aggregates.
    pub edge_metrics: EdgeMetricsConfig,
    /// Health and metrics endpoint.
    pub ops: OpsConfig,
    /// Log output.
    pub log: LogConfig,
    /// Async runtime threads; `auto` is one per CPU.
    pub runtime: RuntimeConfig,
}

/// The `[kafka]` section.
pub type KafkaSection = Section<KafkaClientConfig, ConsumerConfig>;

/// The Kafka consumer group (its own, beside the ingester's).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Topics to read.
    pub topics: Vec<String>,
    /// Consumer group id; instances sharing it share the partitions.
    pub group_id: String,
    /// Where a new group starts: `earliest` or `latest`.
    pub start_offset: String,
    /// Encoding of records that carry no `encoding` header.
    pub default_encoding: Encoding,
    /// The group coordinator removes a member it has not heard from for this long.
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// Static group membership id (`group.instance.id`), unique per
    /// instance; `spanway_kafka::membership` says what it buys and costs.
    /// Unset: dynamic membership.
    pub instance_id: Option<String>,
    /// How often the safe offsets are committed.
    #[serde(with = "humantime_serde")]
    pub commit_interval: Duration,
    /// On shutdown and rebalance, how long closed windows may take to be
    /// written before what is written is committed. Below `session_timeout`.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Ceiling of librdkafka's prefetch queue, in kilobytes of decompressed
    /// records per consumer (see `spanway_kafka::fetch`).
    pub fetch_queue_kbytes: u32,
    /// Most compressed kilobytes one fetch asks of each partition
    /// (`max.partition.fetch.bytes`): what bounds the queue's overshoot.
    /// Lower both to trade catch-up speed for memory (docs/benchmarks.md).
    pub fetch_partition_kbytes: u32,
}

/// Output indices and write retries; the connection keys of the same
/// section are `spanway_search::config::EngineClientConfig`'s.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// Prefix of Jaeger's dependency indices: `prod` gives `prod-jaeger-dependencies-…`.
    pub index_prefix: String,
    /// Name of the service-graph indices; a `-YYYY-MM-DD` suffix is added.
    pub service_graph_index: String,
    /// What goes between the year, month and day of Jaeger's dependency
    /// index names: Jaeger's `--es.index-date-separator` (`.` names
    /// `jaeger-dependencies-2026.12.07`; Jaeger v2: `date_layout:
    /// "2006.01.02"` on dependencies). Empty or up to 8 of `-`, `_`, `.`,
    /// `+`. The service-graph indices keep `-`.
    pub index_date_separator: DateSeparator,
    /// Primary shards of new indices.
    pub shards: u32,
    /// Replicas of new indices.
    pub replicas: u32,
    /// Install the index templates at start.
    pub create_templates: bool,
    /// `auto`, `legacy` or `composable`, as for the ingester.
    pub template_api: TemplateApi,
    /// First retry delay of a failed write; doubles each time.
    #[serde(with = "humantime_serde")]
    pub retry_initial_backoff: Duration,
    /// Ceiling of the retry delay.
    #[serde(with = "humantime_serde")]
    pub retry_max_backoff: Duration,
    /// A bulk request that has not answered within this time is retried.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Closed windows waiting to be written; past it reading pauses until
    /// the engine catches up.
    pub max_pending_windows: usize,
    /// What stands for `.` in the names of span tags stored as fields, as
    /// the ingester's `elasticsearch.tags_as_fields.dot_replacement`; the
    /// `recompute` command reads `span.kind` and `error` there.
    pub tags_dot_replacement: String,
}

/// Event-time rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WindowConfig {
    /// Length of a tumbling window.
    #[serde(with = "humantime_serde")]
    pub size: Duration,
    /// How long after its end (in event time) a window is written; spans
    /// later than that are counted in the window they arrive in, flagged late.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// How long a trace is held, in event time after its latest span, for
    /// its other spans to arrive. At most `allowed_lateness`.
    #[serde(with = "humantime_serde")]
    pub pairing_wait: Duration,
    /// Spans held for pairing per partition; past it the oldest trace is
    /// analysed early (counted as evicted). Bounds memory.
    pub max_spans_per_partition: usize,
    /// A partition that delivers nothing for this long (wall clock) has its
    /// waiting traces analysed and its windows written. Not counted while
    /// reading is paused for the writer: unread is not quiet.
    #[serde(with = "humantime_serde")]
    pub idle_flush: Duration,
}

/// Switches of the dependency model.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Which edges from a service to itself count: `calls` (a client or
    /// producer span answered by a server or consumer span of the same
    /// service), `all` (every parent/child pair, Jaeger's rule, which makes
    /// every outgoing call a self-loop too) or `none`.
    pub same_service: SameService,
    /// Unanswered client and producer spans make edges to a named peer.
    pub virtual_nodes: bool,
    /// Root server spans make edges from `user`.
    pub user_node: bool,
    /// Attributes that name a peer, tried in order: `peer_service`, `db`,
    /// `messaging`, `server_address`.
    pub peer_attributes: Vec<PeerSource>,
}

/// The documents Jaeger query reads for its dependency graph.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DependenciesConfig {
    /// Time covered by one Jaeger dependency document, for all partitions
    /// together. Jaeger query reads at most 10,000 documents per request
    /// (`max_doc_count`) and sums what it read, so the documents of the
    /// longest lookback anyone asks for must stay below that: an hour gives
    /// 168 a week and 8,760 a year. A multiple of `windows.size` that
    /// divides a day.
    #[serde(with = "humantime_serde")]
    pub period: Duration,
}

impl Default for DependenciesConfig {
    fn default() -> Self {
        DependenciesConfig {
            period: Duration::from_secs(3600),
        }
    }
}

/// Aggregates as Prometheus series.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgeMetricsConfig {
    /// Export per-edge call and error counters and latency histograms.
    pub enabled: bool,
    /// Distinct edges given their own series; further edges are counted in
    /// `edges_over_limit` instead, so label cardinality stays bounded.
    pub max_edges: usize,
}

/// The operations endpoint, on port 14271 by default.
pub type OpsConfig = spanway_service_kit::ops::OpsConfig<AnalyticsOps>;

/// The default operations port.
#[derive(Debug, Clone)]
pub struct AnalyticsOps;

impl spanway_service_kit::ops::DefaultPort for AnalyticsOps {
    const PORT: u16 = 14271;
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            topics: vec![DEFAULT_TOPIC.into()],
            group_id: "spanway-analytics".into(),
            start_offset: "earliest".into(),
            default_encoding: Encoding::OtlpProto,
            session_timeout: Duration::from_secs(45),
            instance_id: None,
            commit_interval: Duration::from_secs(2),
            drain_timeout: Duration::from_secs(15),
            // librdkafka's own defaults: this job reads several times faster
            // than the ingester, and smaller fetches halved its rate.
            fetch_queue_kbytes: 64 * 1024,
            fetch_partition_kbytes: 1024,
        }
    }
}

impl OutputConfig {
    /// The names of the indices this output writes.
    pub fn indices(&self) -> Indices {
        Indices::new(&self.index_prefix, &self.service_graph_index)
            .with_date_separator(self.index_date_separator.clone())
    }
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            index_prefix: String::new(),
            service_graph_index: "spanway-service-graph".into(),
            index_date_separator: DateSeparator::default(),
            shards: 1,
            replicas: 1,
            create_templates: true,
            template_api: TemplateApi::Auto,
            retry_initial_backoff: Duration::from_millis(100),
            retry_max_backoff: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_pending_windows: 1_000,
            tags_dot_replacement: "@".into(),
        }
    }
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            size: Duration::from_secs(60),
            allowed_lateness: Duration::from_secs(60),
            pairing_wait: Duration::from_secs(30),
            max_spans_per_partition: 200_000,
            idle_flush: Duration::from_secs(30),
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            same_service: SameService::default(),
            virtual_nodes: true,
            user_node: true,
            peer_attributes: vec![
                PeerSource::PeerService,
                PeerSource::Db,
                PeerSource::Messaging,
                PeerSource::ServerAddress,
            ],
        }
    }
}

impl Default for EdgeMetricsConfig {
    fn default() -> Self {
        EdgeMetricsConfig {
            enabled: true,
            max_edges: 1_000,
        }
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl AnalyticsConfig {
    /// The time rules the partition state runs on.
    pub fn timing(&self) -> Timing {
        Timing {
            window_micros: micros(self.windows.size),
            lateness_micros: micros(self.windows.allowed_lateness),
            wait_micros: micros(self.windows.pairing_wait),
            max_spans: self.windows.max_spans_per_partition,
            rules: self.rules(),
        }
    }

    /// The model's switches.
    pub fn rules(&self) -> Rules {
        Rules {
            same_service: self.model.same_service,
            virtual_nodes: self.model.virtual_nodes,
            user_node: self.model.user_node,
        }
    }

    /// Checks rules serde cannot express; names the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let k = &self.kafka;
        k.client.validate()?;
        if k.topics.is_empty() || k.topics.iter().any(String::is_empty) {
            return Err(ConfigError::invalid(
                "kafka.topics",
                "at least one non-empty topic is required",
            ));
        }
        if k.group_id.is_empty() {
            return Err(ConfigError::invalid("kafka.group_id", "must not be empty"));
        }
        if let Some(id) = &k.instance_id {
            spanway_kafka::membership::validate_instance_id("kafka.instance_id", id)?;
        }
        spanway_kafka::fetch::validate(k.fetch_queue_kbytes, k.fetch_partition_kbytes)?;
        if !matches!(k.start_offset.as_str(), "earliest" | "latest") {
            return Err(ConfigError::invalid(
                "kafka.start_offset",
                format!("{:?} is not earliest or latest", k.start_offset),
            ));
        }
        if k.drain_timeout >= k.session_timeout {
            return Err(ConfigError::invalid(
                "kafka.drain_timeout",
                "must be below kafka.session_timeout, or the group evicts the member while it drains",
            ));
        }
        if k.commit_interval.is_zero() {
            return Err(ConfigError::invalid(
                "kafka.commit_interval",
                "must be positive",
            ));
        }
        let w = &self.windows;
        if w.size < Duration::from_secs(1) {
            return Err(ConfigError::invalid("windows.size", "must be at least 1s"));
        }
        if w.pairing_wait > w.allowed_lateness {
            return Err(ConfigError::invalid(
                "windows.pairing_wait",
                format!(
                    "{} is above windows.allowed_lateness ({}): every call would be counted late",
                    humantime::format_duration(w.pairing_wait),
                    humantime::format_duration(w.allowed_lateness)
                ),
            ));
        }
        if w.max_spans_per_partition == 0 {
            return Err(ConfigError::invalid(
                "windows.max_spans_per_partition",
                "must be at least 1",
            ));
        }
        if w.idle_flush.is_zero() {
            return Err(ConfigError::invalid(
                "windows.idle_flush",
                "must be positive",
            ));
        }
        let period = self.dependencies.period;
        const DAY: Duration = Duration::from_secs(86_400);
        if period < w.size
            || period > DAY
            || !period.as_micros().is_multiple_of(w.size.as_micros())
            || !DAY.as_micros().is_multiple_of(period.as_micros())
        {
            return Err(ConfigError::invalid(
                "dependencies.period",
                format!(
                    "{} must be a multiple of windows.size ({}) that divides a day",
                    humantime::format_duration(period),
                    humantime::format_duration(w.size)
                ),
            ));
        }
        if self.model.virtual_nodes && self.model.peer_attributes.is_empty() {
            return Err(ConfigError::invalid(
                "model.peer_attributes",
                "must list at least one source when model.virtual_nodes is on",
            ));
        }
        self.elasticsearch.client.validate()?;
        let o = &self.elasticsearch;
        let name = &o.service_graph_index;
        if name.is_empty()
            || name.starts_with(['-', '_', '+'])
            || name
                .chars()
                .any(|c| c.is_ascii_uppercase() || " \"*\\<|,>/?#:".contains(c))
        {
            return Err(ConfigError::invalid(
                "elasticsearch.service_graph_index",
                format!(
                    "{name:?} is not a valid index name (lowercase, no spaces or \\/*?\"<>|,#:)"
                ),
            ));
        }
        if o.shards == 0 {
            return Err(ConfigError::invalid(
                "elasticsearch.shards",
                "must be at least 1",
            ));
        }
        if o.max_pending_windows == 0 {
            return Err(ConfigError::invalid(
                "elasticsearch.max_pending_windows",
                "must be at least 1",
            ));
        }
        if o.retry_initial_backoff.is_zero() || o.retry_initial_backoff > o.retry_max_backoff {
            return Err(ConfigError::invalid(
                "elasticsearch.retry_initial_backoff",
                "must be positive and not above elasticsearch.retry_max_backoff",
            ));
        }
        if self.edge_metrics.enabled && self.edge_metrics.max_edges == 0 {
            return Err(ConfigError::invalid(
                "edge_metrics.max_edges",
                "must be at least 1 when edge_metrics.enabled",
            ));
        }
        // The longest gaps between beats: one write attempt and its back-off,
        // and a poll with a revoke that waits for the writer.
        liveness::validate_stall_timeout(
            self.ops.stall_timeout,
            &[
                (
                    "elasticsearch.request_timeout + elasticsearch.retry_max_backoff",
                    o.request_timeout + o.retry_max_backoff,
                ),
                ("kafka.drain_timeout", k.drain_timeout),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        AnalyticsConfig::default().validate().unwrap();
    }

    #[test]
    fn rules_name_the_key() {
        let mut cfg = AnalyticsConfig::default();
        cfg.windows.pairing_wait = Duration::from_secs(600);
        let error = cfg.validate().unwrap_err().to_string();
        assert!(error.contains("windows.pairing_wait"), "{error}");
        let mut cfg = AnalyticsConfig::default();
        cfg.elasticsearch.service_graph_index = "Service Graph".into();
        let error = cfg.validate().unwrap_err().to_string();
        assert!(error.contains("service_graph_index"), "{error}");
    }

    #[test]
    fn dependency_period_fits_windows_and_days() {
        let mut cfg = AnalyticsConfig::default();
        for bad in [7 * 60, 30, 2 * 86_400, 90 * 60 + 30] {
            cfg.dependencies.period = Duration::from_secs(bad);
            let error = cfg.validate().unwrap_err().to_string();
            assert!(error.contains("dependencies.period"), "{bad}: {error}");
        }
        for good in [60, 10 * 60, 3600, 6 * 3600, 86_400] {
            cfg.dependencies.period = Duration::from_secs(good);
            cfg.validate().unwrap();
        }
    }

    #[test]
    fn stall_timeout_must_exceed_a_write_attempt() {
        let mut cfg = AnalyticsConfig::default();
        cfg.ops.stall_timeout = Duration::ZERO;
        let error = cfg.validate().unwrap_err().to_string();
        assert!(error.contains("ops.stall_timeout"), "{error}");
        cfg.ops.stall_timeout = Duration::from_secs(60);
        cfg.elasticsearch.request_timeout = Duration::from_secs(55);
        let error = cfg.validate().unwrap_err().to_string();
        assert!(error.contains("elasticsearch.request_timeout"), "{error}");
        cfg.elasticsearch.request_timeout = Duration::from_secs(45);
        cfg.validate().unwrap();
    }

    #[test]
    fn same_service_rule_is_named_in_config() {
        let load = |value: &str| {
            spanway_service_kit::config::load_with_env::<AnalyticsConfig>(
                None,
                [("SPANWAY_MODEL__SAME_SERVICE".to_owned(), value.to_owned())],
            )
        };
        assert_eq!(load("all").unwrap().rules().same_service, SameService::All);
        assert_eq!(
            load("none").unwrap().rules().same_service,
            SameService::None
        );
        assert_eq!(
            AnalyticsConfig::default().rules().same_service,
            SameService::Calls
        );
        let error = load("jaeger").unwrap_err().to_string();
        assert!(error.contains("same_service"), "{error}");
        assert!(error.contains("calls"), "{error}");
    }

    #[test]
    fn index_date_separator_names_dependency_indices() {
        let load = |value: &str| {
            spanway_service_kit::config::load_with_env::<AnalyticsConfig>(
                None,
                [(
                    "SPANWAY_ELASTICSEARCH__INDEX_DATE_SEPARATOR".to_owned(),
                    value.to_owned(),
                )],
            )
        };
        // 2026-12-07T10:00:00Z.
        let micros = 1_796_637_600_000_000;
        let indices = load(".").unwrap().elasticsearch.indices();
        assert_eq!(
            indices.dependencies(micros),
            "jaeger-dependencies-2026.12.07"
        );
        assert_eq!(
            indices.service_graph(micros),
            "spanway-service-graph-2026-12-07",
            "our own index keeps its dashes"
        );
        assert_eq!(
            AnalyticsConfig::default()
                .elasticsearch
                .indices()
                .dependencies(micros),
            "jaeger-dependencies-2026-12-07"
        );
        let error = load("#").unwrap_err().to_string();
        assert!(
            error.contains("index date separator") && error.contains("'#'"),
            "{error}"
        );
    }

    /// The shipped example must load, validate, and equal the defaults it documents.
    #[test]
    fn example_file_is_the_defaults() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("analytics.example.toml");
        let cfg: AnalyticsConfig =
            spanway_service_kit::config::load_with_env(Some(&path), []).unwrap();
        cfg.validate().unwrap();
        assert_eq!(
            format!("{cfg:?}"),
            format!("{:?}", AnalyticsConfig::default())
        );
    }
}
