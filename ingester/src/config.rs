//! Ingester configuration: typed, with defaults, validated before any I/O.

use std::time::Duration;

use serde::Deserialize;
use spanway_kafka::KafkaClientConfig;
use spanway_schemas::{DEFAULT_TOPIC, Encoding};
use spanway_search::bulk::writer::WriterOptions;
use spanway_search::config::EngineClientConfig;
pub use spanway_search::document::SpanIds;
pub use spanway_search::index::{DateSeparator, SpanIndexPeriod};
pub use spanway_search::retention::RetentionConfig;
pub use spanway_search::templates::{
    IdLookupFilter, ReferencesMapping, RefreshInterval, SpanFieldsMapping, TemplateApi,
};
use spanway_service_kit::config::ConfigError;
use spanway_service_kit::liveness;
use spanway_service_kit::logging::LogConfig;
use spanway_service_kit::runtime::RuntimeConfig;
use spanway_service_kit::section::Section;

/// Everything the ingester reads at start.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngesterConfig {
    /// The Kafka consumer: the shared client settings (`brokers`, `tls`,
    /// `sasl`, `properties`) and the consumer group's own.
    pub kafka: KafkaSection,
    /// The search engine (connection keys from `EngineClientConfig`, the
    /// rest from `ElasticsearchConfig`, side by side in one section) and the
    /// documents written to it.
    pub elasticsearch: Section<EngineClientConfig, ElasticsearchConfig>,
    /// How documents are batched into bulk requests.
    pub bulk: BulkConfig,
    /// Where records that cannot be stored go.
    pub dead_letter: DeadLetterConfig,
    /// Health and metrics endpoint.
    pub ops: OpsConfig,
    /// Log output.
    pub log: LogConfig,
    /// Async runtime threads; `auto` is one per CPU.
    pub runtime: RuntimeConfig,
}

/// The `[kafka]` section.
pub type KafkaSection = Section<KafkaClientConfig, ConsumerConfig>;

/// The Kafka consumer group.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Topics to read.
    pub topics: Vec<String>,
    /// Consumer group id; ingesters sharing it share the partitions.
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
    /// On rebalance and shutdown, how long in-flight writes may take to
    /// finish before their offsets are committed and the partitions let go.
    /// Must be below `session_timeout`.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Ceiling of librdkafka's prefetch queue, in kilobytes of decompressed
    /// records per consumer (see `spanway_kafka::fetch`).
    pub fetch_queue_kbytes: u32,
    /// Most compressed kilobytes one fetch asks of each partition
    /// (`max.partition.fetch.bytes`): what bounds the queue's overshoot. A
    /// record batch larger than this is still fetched whole.
    pub fetch_partition_kbytes: u32,
}

/// The dead-letter topic.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeadLetterConfig {
    /// Topic that receives undecodable records and documents the engine
    /// refuses, with the reason and the source position as headers.
    pub topic: String,
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        DeadLetterConfig {
            topic: format!("{DEFAULT_TOPIC}-dlq"),
        }
    }
}

/// Index and document options; the connection keys of the same section
/// are `spanway_search::config::EngineClientConfig`'s.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ElasticsearchConfig {
    /// Prefix of every index name; `prod` gives `prod-jaeger-span-…`, as in Jaeger.
    pub index_prefix: String,
    /// Primary shards of new daily indices.
    pub shards: u32,
    /// Replicas of new daily indices.
    pub replicas: u32,
    /// Install the index templates at start.
    pub create_templates: bool,
    /// Which template API to use: `auto` (legacy `_template` for OpenSearch
    /// and Elasticsearch 7, composable `_index_template` for Elasticsearch 8
    /// and later, from the server's answer at start), `legacy` or `composable`.
    pub template_api: TemplateApi,
    /// The span indices' Bloom filter over document ids
    /// (`index.optimize_doc_id_lookup.fuzzy_set.enabled`): `auto` sets it on
    /// OpenSearch 2.13 and later, `on` always (an engine without it refuses
    /// the template at start), `off` never. Every span is written with
    /// `create` and our id, which the engine first looks up in each segment;
    /// the filter makes that lookup cheap (from about 7 % of the engine's
    /// indexing samples to under 2 %, docs/benchmarks.md) for a few bits per
    /// document.
    pub id_lookup_filter: IdLookupFilter,
    /// Who gives span documents their ids. `derived` (the default): the
    /// trace id, the span id and a hash of the document, written with
    /// `create`, so a span delivered again (after a crash, a rebalance, or
    /// a producer's retry) is refused as already stored: exactly once.
    /// `engine`: `index` without an id, as Jaeger's own writers send; the
    /// engine skips the lookup of each id, which costs it a fifth to a
    /// third less CPU per span (more as the index grows, docs/benchmarks.md),
    /// and a span delivered again is stored twice. With `engine`, `auto`
    /// leaves the id filter off: nothing looks ids up.
    pub span_ids: SpanIds,
    /// How often new span and service indices make written spans visible
    /// to searches: a duration (`500ms`, the default) or `engine` for the
    /// engine's own (one second, and none on shards nobody searches). Most
    /// of the delay between a span's acknowledgement and Jaeger query
    /// finding it is this wait (docs/benchmarks.md, "Freshness").
    pub refresh_interval: RefreshInterval,
    /// How new span indices map each span's `references`: `stored` (the
    /// default) keeps them in the document without indexing them, `nested`
    /// is Jaeger's mapping, a hidden nested document per reference. Jaeger
    /// query, Jaeger v2 and OpenSearch Dashboards' Trace Analytics read
    /// references from the document and give the same answers either way;
    /// `stored` costs the engine about a tenth less per span
    /// (docs/indices.md). Choose `nested` for queries of your own inside
    /// references (a `nested` query on `references.spanID`).
    pub references: ReferencesMapping,
    /// How new span indices map a span's own fields and tag fields:
    /// `searched` (the default) maps them by what readers do with them.
    /// `parentSpanID` and `flags` are kept in the document only; where the
    /// engine searches doc values (OpenSearch 2.14+, Elasticsearch 8.1+),
    /// `spanID` and tag fields are found through their doc values instead of
    /// an inverted index. Jaeger query, Jaeger v2, OpenSearch Dashboards'
    /// Trace Analytics and the shipped dashboards answer the same; the
    /// engine spends about a tenth less per span (docs/indices.md). `jaeger`
    /// is Jaeger's mapping: every field indexed, for queries of your own on
    /// `flags` or `parentSpanID`, or fast searches by a tag or `spanID`
    /// alone over a large index.
    pub span_fields: SpanFieldsMapping,
    /// Tags stored as object fields instead of nested documents.
    pub tags_as_fields: TagsAsFieldsConfig,
    /// Write to `<prefix>jaeger-span-write` / `-service-write` aliases
    /// instead of daily indices (Jaeger's `--es.use-aliases`), for rollover
    /// by an index lifecycle policy. The first indices and aliases are
    /// created at start when missing.
    pub use_aliases: bool,
    /// How much time one span index holds: `day` (the default,
    /// `…-jaeger-span-YYYY-MM-DD`) or `hour` (`…-YYYY-MM-DD-HH`), the UTC
    /// day or hour of each span's start, as Jaeger's
    /// `--es.index-rollover-frequency-spans` names them: for a deployment
    /// whose Jaeger query reads hourly indices, or whose daily ones grow too
    /// large. 24 times the indices and their shards: lower `shards` with it.
    /// Raw loads in start order cost the engine a sixth less with them where
    /// each hourly index held 50,000 spans; through the ingester the
    /// benchmark found no saving, on a day of spans packed into seconds or
    /// on two hours (docs/benchmarks.md).
    /// Jaeger query reads them with
    /// `--es.index-rollover-frequency-spans=hour` (Jaeger v2:
    /// `indices.spans.rollover_frequency: hour` and `date_layout:
    /// "2006-01-02-15"`). Service indices stay daily. Not with `use_aliases`.
    pub index_rollover_frequency_spans: SpanIndexPeriod,
    /// What goes between the year, month, day (and hour) of dated index
    /// names: Jaeger's `--es.index-date-separator`, for a deployment whose
    /// Jaeger query was given one (`.` names `jaeger-span-2026.12.07`;
    /// Jaeger v2: `date_layout: "2006.01.02"` on spans and services). Empty
    /// or up to 8 of `-`, `_`, `.`, `+`. Not with `use_aliases`.
    pub index_date_separator: DateSeparator,
    /// An optional lifecycle policy that deletes old indices (and, with
    /// `use_aliases`, rolls the write aliases over).
    pub retention: RetentionConfig,
}

/// Jaeger's `--es.tags-as-fields.*` options.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TagsAsFieldsConfig {
    /// Store every non-binary tag as a field.
    pub all: bool,
    /// Tag keys stored as fields when `all` is false, besides `span.kind`
    /// and `error`, which always are (as Jaeger v2 writes them). Default:
    /// [`DEFAULT_FIELD_TAGS`]; `[]` keeps every other tag nested, as Jaeger
    /// does by default.
    pub keys: Vec<String>,
    /// Replaces `.` in field names (Jaeger's default is `@`).
    pub dot_replacement: String,
    /// Besides `keys`, the first this many other tag keys the process sees
    /// become fields too (from the bulk request after the one that first
    /// carried them); later keys stay nested. Keeps the index's field count
    /// bounded where `all` does not, and moves the common keys out of the
    /// nested lists the engine pays for. 0 turns learning off. Only keys of
    /// letters, digits and `._-/:`, at most 100 bytes, are learned.
    pub learn: usize,
}

impl TagsAsFieldsConfig {
    /// The placement of tags this configures.
    pub fn placement(&self) -> crate::document::TagsAsFields {
        crate::document::TagsAsFields {
            all: self.all,
            keys: self.keys.iter().cloned().collect(),
            dot_replacement: self.dot_replacement.clone(),
        }
    }

    /// The keys to learn, when learning is on (`learn` above 0 and `all` off).
    pub fn learned_keys(&self) -> Option<crate::document::LearnedKeys> {
        (self.learn > 0 && !self.all)
            .then(|| crate::document::LearnedKeys::new(self.learn, &self.dot_replacement))
    }
}

/// Most keys `tags_as_fields.learn` accepts: span and process tags of the
/// same key are two fields, and an index takes 1,000 by default.
pub const MAX_LEARNED_KEYS: usize = 450;

/// The tags people filter and chart by, stored as fields unless configured
/// otherwise: the OpenTelemetry status, HTTP method, route and status code
/// (current and older semantic conventions), RPC system, service, method
/// and gRPC status, and the database and messaging systems.
pub const DEFAULT_FIELD_TAGS: [&str; 13] = [
    "otel.status_code",
    "http.request.method",
    "http.method",
    "http.route",
    "http.response.status_code",
    "http.status_code",
    "rpc.system",
    "rpc.service",
    "rpc.method",
    "rpc.grpc.status_code",
    "db.system",
    "messaging.system",
    "peer.service",
];

impl Default for TagsAsFieldsConfig {
    fn default() -> Self {
        TagsAsFieldsConfig {
            all: false,
            keys: DEFAULT_FIELD_TAGS.iter().map(|k| (*k).to_owned()).collect(),
            dot_replacement: "@".into(),
            learn: 200,
        }
    }
}

/// Bulk request shaping.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BulkConfig {
    /// Most documents in one bulk request. Counted in documents, not Kafka
    /// records: one OTLP record can carry a whole trace of hundreds of
    /// spans. A batch of records that yields more is split into several
    /// requests. `max_records`, the old name, is still read.
    #[serde(alias = "max_records")]
    pub max_documents: usize,
    /// Most bytes in one bulk request body (action lines included); only a
    /// single document larger than this is sent alone, above it. The reading
    /// side also cuts its batches at this many record bytes.
    pub max_bytes: usize,
    /// Send at most this long after the first buffered record.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// First retry delay after a failed bulk request or item; doubles each time.
    #[serde(with = "humantime_serde")]
    pub retry_initial_backoff: Duration,
    /// Ceiling of the retry delay.
    #[serde(with = "humantime_serde")]
    pub retry_max_backoff: Duration,
    /// Bulk requests in flight at once, whatever the number of partitions.
    pub max_in_flight: usize,
    /// A bulk request that has not answered within this time is retried.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Record bytes read but not yet durable; past it the partitions are
    /// paused until writes catch up, which bounds memory when the engine is
    /// slow or down.
    pub max_bytes_in_flight: usize,
}

/// The operations endpoint, on port 14270 by default.
pub type OpsConfig = spanway_service_kit::ops::OpsConfig<IngesterOps>;

/// The default operations port.
#[derive(Debug, Clone)]
pub struct IngesterOps;

impl spanway_service_kit::ops::DefaultPort for IngesterOps {
    const PORT: u16 = 14270;
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            topics: vec![DEFAULT_TOPIC.into()],
            group_id: "spanway-ingester".into(),
            start_offset: "earliest".into(),
            default_encoding: Encoding::OtlpProto,
            session_timeout: Duration::from_secs(45),
            instance_id: None,
            drain_timeout: Duration::from_secs(15),
            fetch_queue_kbytes: 16 * 1024,
            fetch_partition_kbytes: 256,
        }
    }
}

impl ElasticsearchConfig {
    /// The id filter to install: `auto` means off when the engine makes the
    /// span ids, as no write looks an id up then, and off with time-led
    /// ids, whose lookups the segments' bounds settle more cheaply than
    /// the filter's hashing (docs/benchmarks.md).
    pub fn effective_id_lookup_filter(&self) -> IdLookupFilter {
        match (self.id_lookup_filter, self.span_ids) {
            (IdLookupFilter::Auto, SpanIds::Engine | SpanIds::TimeLed) => IdLookupFilter::Off,
            (filter, _) => filter,
        }
    }
}

impl Default for ElasticsearchConfig {
    fn default() -> Self {
        ElasticsearchConfig {
            index_prefix: String::new(),
            shards: 5,
            replicas: 1,
            create_templates: true,
            template_api: TemplateApi::Auto,
            id_lookup_filter: IdLookupFilter::Auto,
            span_ids: SpanIds::Derived,
            refresh_interval: RefreshInterval::default(),
            references: ReferencesMapping::Stored,
            span_fields: SpanFieldsMapping::Searched,
            tags_as_fields: TagsAsFieldsConfig::default(),
            use_aliases: false,
            index_rollover_frequency_spans: SpanIndexPeriod::Day,
            index_date_separator: DateSeparator::default(),
            retention: RetentionConfig::default(),
        }
    }
}

impl Default for BulkConfig {
    fn default() -> Self {
        BulkConfig {
            max_documents: 1000,
            max_bytes: 5 * 1024 * 1024,
            flush_interval: Duration::from_millis(200),
            retry_initial_backoff: Duration::from_millis(100),
            retry_max_backoff: Duration::from_secs(10),
            max_in_flight: 4,
            request_timeout: Duration::from_secs(30),
            max_bytes_in_flight: 64 * 1024 * 1024,
        }
    }
}

impl BulkConfig {
    /// What the bulk writer needs of these settings.
    pub fn writer_options(&self) -> WriterOptions {
        WriterOptions {
            limits: spanway_search::bulk::body::Limits {
                max_documents: self.max_documents,
                max_bytes: self.max_bytes,
            },
            retry_initial_backoff: self.retry_initial_backoff,
            retry_max_backoff: self.retry_max_backoff,
            request_timeout: self.request_timeout,
        }
    }
}

impl IngesterConfig {
    /// Checks rules serde cannot express; names the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.kafka.client.validate()?;
        if self.kafka.topics.is_empty() || self.kafka.topics.iter().any(String::is_empty) {
            return Err(ConfigError::invalid(
                "kafka.topics",
                "at least one non-empty topic is required",
            ));
        }
        if self.kafka.group_id.is_empty() {
            return Err(ConfigError::invalid("kafka.group_id", "must not be empty"));
        }
        if let Some(id) = &self.kafka.instance_id {
            spanway_kafka::membership::validate_instance_id("kafka.instance_id", id)?;
        }
        if !matches!(self.kafka.start_offset.as_str(), "earliest" | "latest") {
            return Err(ConfigError::invalid(
                "kafka.start_offset",
                format!("{:?} is not earliest or latest", self.kafka.start_offset),
            ));
        }
        if self.kafka.drain_timeout >= self.kafka.session_timeout {
            return Err(ConfigError::invalid(
                "kafka.drain_timeout",
                format!(
                    "{} must be below kafka.session_timeout ({}), or the group evicts the member while it drains",
                    humantime::format_duration(self.kafka.drain_timeout),
                    humantime::format_duration(self.kafka.session_timeout)
                ),
            ));
        }
        spanway_kafka::fetch::validate(
            self.kafka.fetch_queue_kbytes,
            self.kafka.fetch_partition_kbytes,
        )?;
        if self.dead_letter.topic.is_empty() || self.kafka.topics.contains(&self.dead_letter.topic)
        {
            return Err(ConfigError::invalid(
                "dead_letter.topic",
                "must be set and differ from every topic in kafka.topics",
            ));
        }
        if self.bulk.max_in_flight == 0 {
            return Err(ConfigError::invalid(
                "bulk.max_in_flight",
                "must be at least 1",
            ));
        }
        if self.bulk.max_bytes_in_flight < self.bulk.max_bytes {
            return Err(ConfigError::invalid(
                "bulk.max_bytes_in_flight",
                "must be at least bulk.max_bytes, or no batch could ever fill",
            ));
        }
        self.elasticsearch.client.validate()?;
        let dot = &self.elasticsearch.tags_as_fields.dot_replacement;
        if dot.is_empty() || dot.contains('.') {
            return Err(ConfigError::invalid(
                "elasticsearch.tags_as_fields.dot_replacement",
                format!("{dot:?} must be non-empty and contain no dot"),
            ));
        }
        let learn = self.elasticsearch.tags_as_fields.learn;
        if learn > MAX_LEARNED_KEYS {
            return Err(ConfigError::invalid(
                "elasticsearch.tags_as_fields.learn",
                format!(
                    "{learn} is more than {MAX_LEARNED_KEYS}: a key can be a span and a process field, and an index takes 1,000 fields unless its settings say otherwise"
                ),
            ));
        }
        self.elasticsearch
            .refresh_interval
            .check()
            .map_err(|reason| ConfigError::invalid("elasticsearch.refresh_interval", reason))?;
        if self.elasticsearch.use_aliases
            && self.elasticsearch.index_rollover_frequency_spans != SpanIndexPeriod::Day
        {
            return Err(ConfigError::invalid(
                "elasticsearch.index_rollover_frequency_spans",
                format!(
                    "{:?} names indices by the hour, but elasticsearch.use_aliases writes every span to the write alias: choose one",
                    self.elasticsearch.index_rollover_frequency_spans.as_str()
                ),
            ));
        }
        let separator = &self.elasticsearch.index_date_separator;
        if self.elasticsearch.use_aliases && *separator != DateSeparator::default() {
            return Err(ConfigError::invalid(
                "elasticsearch.index_date_separator",
                format!(
                    "{:?} writes dates into index names, but elasticsearch.use_aliases writes to the write alias, which has none: choose one",
                    separator.as_str()
                ),
            ));
        }
        if self.elasticsearch.shards == 0 {
            return Err(ConfigError::invalid(
                "elasticsearch.shards",
                "must be at least 1",
            ));
        }
        if self.bulk.max_documents == 0 {
            return Err(ConfigError::invalid(
                "bulk.max_documents",
                "must be at least 1",
            ));
        }
        if self.bulk.max_bytes == 0 {
            return Err(ConfigError::invalid("bulk.max_bytes", "must be positive"));
        }
        if self.bulk.retry_initial_backoff.is_zero()
            || self.bulk.retry_initial_backoff > self.bulk.retry_max_backoff
        {
            return Err(ConfigError::invalid(
                "bulk.retry_initial_backoff",
                "must be positive and not above bulk.retry_max_backoff",
            ));
        }
        self.validate_stall_timeout()?;
        self.validate_retention()
    }

    /// The longest gaps between beats: one bulk attempt and its back-off
    /// (the writer beats between them, so this is generous), and a poll
    /// with a revoke that drains in-flight writes.
    fn validate_stall_timeout(&self) -> Result<(), ConfigError> {
        liveness::validate_stall_timeout(
            self.ops.stall_timeout,
            &[
                (
                    "bulk.request_timeout + bulk.retry_max_backoff",
                    self.bulk.request_timeout + self.bulk.retry_max_backoff,
                ),
                ("kafka.drain_timeout", self.kafka.drain_timeout),
            ],
        )
    }

    fn validate_retention(&self) -> Result<(), ConfigError> {
        let es = &self.elasticsearch;
        let retention = &es.retention;
        if !retention.enabled {
            return Ok(());
        }
        if !es.create_templates {
            return Err(ConfigError::invalid(
                "elasticsearch.retention.enabled",
                "needs elasticsearch.create_templates = true: the index templates attach the policy to new indices",
            ));
        }
        if !whole_seconds(retention.delete_after) {
            return Err(ConfigError::invalid(
                "elasticsearch.retention.delete_after",
                "must be a positive whole number of seconds",
            ));
        }
        if es.use_aliases {
            if !whole_seconds(retention.rollover_max_age) {
                return Err(ConfigError::invalid(
                    "elasticsearch.retention.rollover_max_age",
                    "must be a positive whole number of seconds",
                ));
            }
            if !is_byte_size(&retention.rollover_max_size) {
                return Err(ConfigError::invalid(
                    "elasticsearch.retention.rollover_max_size",
                    format!(
                        "{:?} is not a byte size such as 500mb or 50gb (units b, kb, mb, gb, tb, pb)",
                        retention.rollover_max_size
                    ),
                ));
            }
        } else if retention.delete_after < Duration::from_secs(86_400) {
            // A daily index is written to all day long (and later, for late
            // spans); deleting it sooner would delete data still arriving.
            return Err(ConfigError::invalid(
                "elasticsearch.retention.delete_after",
                format!(
                    "{} is below one day, which daily indices need (or set elasticsearch.use_aliases)",
                    humantime::format_duration(retention.delete_after)
                ),
            ));
        }
        Ok(())
    }
}

/// Engine time values have no unit below the millisecond we want to rely
/// on, and sub-second retention makes no sense.
fn whole_seconds(d: Duration) -> bool {
    !d.is_zero() && d.subsec_nanos() == 0
}

/// The engines' byte-size syntax: digits then a lowercase unit.
fn is_byte_size(text: &str) -> bool {
    let digits = text.chars().take_while(char::is_ascii_digit).count();
    let unit = &text[digits..];
    digits > 0 && matches!(unit, "b" | "kb" | "mb" | "gb" | "tb" | "pb")
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod example_tests {
    use super::*;

    /// The shipped example must load, validate, and equal the defaults it documents.
    #[test]
    fn example_file_is_the_defaults() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ingester.example.toml");
        let cfg: IngesterConfig =
            spanway_service_kit::config::load_with_env(Some(&path), []).unwrap();
        cfg.validate().unwrap();
        assert_eq!(
            format!("{cfg:?}"),
            format!("{:?}", IngesterConfig::default())
        );
    }
}
