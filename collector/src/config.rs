//! Collector configuration: typed, with defaults, validated before any I/O.

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use spanway_kafka::KafkaClientConfig;
use spanway_schemas::{DEFAULT_TOPIC, Encoding, MAX_RECORD_BYTES};
use spanway_service_kit::config::ConfigError;
use spanway_service_kit::logging::LogConfig;
use spanway_service_kit::runtime::RuntimeConfig;
use spanway_service_kit::section::Section;

pub use crate::receiver::auth::AuthConfig;
pub use crate::receiver::tls::TlsConfig;

use crate::receiver::listener::Listener;

/// Everything the collector reads at start.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    /// The OTLP/HTTP receiver.
    pub otlp_http: OtlpHttpConfig,
    /// The Zipkin v2 JSON receiver.
    pub zipkin: ZipkinConfig,
    /// The Jaeger Thrift-over-HTTP receiver.
    pub jaeger_thrift_http: JaegerThriftHttpConfig,
    /// The OTLP/gRPC receiver.
    pub otlp_grpc: OtlpGrpcConfig,
    /// The Jaeger gRPC receiver.
    pub jaeger_grpc: JaegerGrpcConfig,
    /// Jaeger remote sampling: strategies served to SDKs.
    pub sampling: SamplingConfig,
    /// Credentials the receivers ask for; off unless a file is set.
    pub auth: AuthConfig,
    /// Where and how spans are published: the shared Kafka client settings
    /// (`brokers`, `tls`, `sasl`, `properties`) and the producer's own.
    pub kafka: KafkaSection,
    /// Health and metrics endpoint.
    pub ops: OpsConfig,
    /// Log output.
    pub log: LogConfig,
    /// Async runtime threads; `auto` is one per CPU.
    pub runtime: RuntimeConfig,
}

/// What tells one receiver's section from another's: its defaults. The
/// protocol it speaks is in the marker type's documentation.
pub trait ReceiverDefaults {
    /// The port its clients send to by default.
    const PORT: u16;
    /// The largest request body or message accepted, in bytes.
    const MAX_BYTES: usize;
}

/// The section of a receiver that reads whole HTTP request bodies
/// (`[otlp_http]`, `[zipkin]`, `[jaeger_thrift_http]`). Every receiver is
/// on by default and can be switched off.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, bound = "R: ReceiverDefaults")]
pub struct HttpReceiverConfig<R> {
    /// Whether the receiver listens at all.
    pub enabled: bool,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes, after gzip decompression.
    pub max_request_bytes: usize,
    /// Longest a client may take to send a request's head, and then its
    /// body. A body still arriving then is cut short (HTTP 408) and the
    /// byte budget it held is freed; a connection with no request in
    /// flight for this long is closed (HTTP/2: GOAWAY). So stalled senders
    /// hold neither budget nor connections for longer.
    #[serde(with = "humantime_serde")]
    pub read_timeout: Duration,
    /// Most client connections open at once on this listener (TLS
    /// handshakes included). One more is closed as soon as it is accepted,
    /// and counted (`collector_connections_refused_total`), so a flood of
    /// connections cannot grow memory without bound; clients reconnect
    /// with backoff, and a load balancer tries another replica.
    pub max_connections: usize,
    /// TLS for this listener; without the table it speaks plain text.
    pub tls: Option<TlsConfig>,
    /// Whether requests must carry credentials when `[auth]` has any.
    pub require_auth: bool,
    #[serde(skip)]
    receiver: PhantomData<R>,
}

/// The section of a gRPC receiver (`[otlp_grpc]`, `[jaeger_grpc]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, bound = "R: ReceiverDefaults")]
pub struct GrpcReceiverConfig<R> {
    /// Whether the service listens at all. For `[jaeger_grpc]`: whether
    /// `PostSpans` is served; the same server answers
    /// `jaeger.api_v2.SamplingManager` when sampling is on.
    pub enabled: bool,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest request message accepted, in bytes, after gzip decompression.
    pub max_message_bytes: usize,
    /// Longest a request message may take to arrive, from its headers to
    /// its last byte. A message still arriving then is cut short
    /// (DEADLINE_EXCEEDED) and the byte budget it held is freed, so stalled
    /// senders cannot keep it. Also how long a new connection may stay
    /// silent, and how long one asked to close (for its age, idleness or
    /// shutdown) may take to do so with no call in flight, before it is
    /// dropped: otherwise such clients would hold their connection slots.
    #[serde(with = "humantime_serde")]
    pub read_timeout: Duration,
    /// How long a client's connection lives before the server asks it to
    /// reconnect (HTTP/2 GOAWAY; calls in flight finish first), within a
    /// tenth either way so that clients that connected together do not
    /// reconnect together. gRPC clients keep one connection for good
    /// otherwise, so the replicas an autoscaler adds behind a Kubernetes
    /// Service would get none of their calls.
    #[serde(with = "humantime_serde")]
    pub max_connection_age: Duration,
    /// How long a connection with no call in flight stays open before the
    /// server asks it to close (HTTP/2 GOAWAY; PINGs do not count as
    /// calls). The client reconnects for its next call. Without it, idle
    /// clients would hold `max_connections` slots that busy ones need.
    #[serde(with = "humantime_serde")]
    pub max_connection_idle: Duration,
    /// Most client connections open at once on this listener (TLS
    /// handshakes included). One more is closed as soon as it is accepted,
    /// and counted (`collector_connections_refused_total`), so a flood of
    /// connections cannot grow memory without bound; clients reconnect
    /// with backoff, and a load balancer tries another replica.
    pub max_connections: usize,
    /// TLS for this listener (for `[jaeger_grpc]`, `CollectorService` and
    /// `SamplingManager`); without the table it speaks plain text.
    pub tls: Option<TlsConfig>,
    /// Whether requests must carry credentials when `[auth]` has any (for
    /// `[jaeger_grpc]`, `PostSpans`; `SamplingManager` follows
    /// `sampling.require_auth`).
    pub require_auth: bool,
    #[serde(skip)]
    receiver: PhantomData<R>,
}

impl<R: ReceiverDefaults> Default for HttpReceiverConfig<R> {
    fn default() -> Self {
        HttpReceiverConfig {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], R::PORT)),
            max_request_bytes: R::MAX_BYTES,
            read_timeout: DEFAULT_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            tls: None,
            require_auth: true,
            receiver: PhantomData,
        }
    }
}

impl<R: ReceiverDefaults> Default for GrpcReceiverConfig<R> {
    fn default() -> Self {
        GrpcReceiverConfig {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], R::PORT)),
            max_message_bytes: R::MAX_BYTES,
            read_timeout: DEFAULT_READ_TIMEOUT,
            max_connection_age: DEFAULT_MAX_CONNECTION_AGE,
            max_connection_idle: DEFAULT_MAX_CONNECTION_IDLE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            tls: None,
            require_auth: true,
            receiver: PhantomData,
        }
    }
}

/// Time for a request to arrive: a 16 MiB body at about 4 Mbit/s. Also
/// how long an idle connection to an HTTP receiver stays open (the
/// OpenTelemetry Collector's HTTP servers close theirs after a minute).
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Ten minutes: new replicas get calls within minutes of starting, and a
/// reconnection is rare beside the calls a connection carries.
const DEFAULT_MAX_CONNECTION_AGE: Duration = Duration::from_secs(600);

/// Five minutes: longer than any exporter's or sampler's usual interval
/// (OpenTelemetry SDKs export every 5 s when they have spans, remote
/// samplers poll every minute), so only a client that has gone quiet
/// reconnects.
const DEFAULT_MAX_CONNECTION_IDLE: Duration = Duration::from_secs(300);

/// Connections one listener holds at most: far more clients than one
/// collector replica serves at its rate (an SDK keeps one connection per
/// exporter), few enough that an idle connection's 16–18 KiB times the
/// limit stays near 70 MiB a listener (docs/benchmarks.md, "Collector:
/// what a connection holds"), well inside the chart's memory limit beside
/// the byte budget.
const DEFAULT_MAX_CONNECTIONS: usize = 4_096;

/// The shortest connection age accepted.
const MIN_CONNECTION_AGE: Duration = Duration::from_secs(1);

/// The shortest body timeout accepted.
const MIN_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// 16 MiB: a large batch of spans from an SDK or agent, gzip included.
const HTTP_MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// 4 MiB, the gRPC default message limit that clients are tuned for.
const GRPC_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// OTLP over HTTP (`POST /v1/traces`), on 4318 as OTLP exporters expect.
#[derive(Debug, Clone)]
pub struct OtlpHttp;

impl ReceiverDefaults for OtlpHttp {
    const PORT: u16 = 4318;
    const MAX_BYTES: usize = HTTP_MAX_REQUEST_BYTES;
}

/// Zipkin's HTTP API (`POST /api/v2/spans`, JSON v2), on 9411 as Zipkin
/// reporters expect.
#[derive(Debug, Clone)]
pub struct Zipkin;

impl ReceiverDefaults for Zipkin {
    const PORT: u16 = 9411;
    const MAX_BYTES: usize = HTTP_MAX_REQUEST_BYTES;
}

/// Jaeger's collector HTTP API (`POST /api/traces`, a Thrift binary
/// `Batch`, as Jaeger clients' `HttpSender` posts), on 14268.
#[derive(Debug, Clone)]
pub struct JaegerThriftHttp;

impl ReceiverDefaults for JaegerThriftHttp {
    const PORT: u16 = 14268;
    const MAX_BYTES: usize = HTTP_MAX_REQUEST_BYTES;
}

/// OTLP over gRPC (`opentelemetry.proto.collector.trace.v1.TraceService/Export`),
/// on 4317 as OTLP exporters expect.
#[derive(Debug, Clone)]
pub struct OtlpGrpc;

impl ReceiverDefaults for OtlpGrpc {
    const PORT: u16 = 4317;
    const MAX_BYTES: usize = GRPC_MAX_MESSAGE_BYTES;
}

/// Jaeger over gRPC (`jaeger.api_v2.CollectorService/PostSpans`), on 14250
/// as Jaeger clients and agents expect.
#[derive(Debug, Clone)]
pub struct JaegerGrpc;

impl ReceiverDefaults for JaegerGrpc {
    const PORT: u16 = 14250;
    const MAX_BYTES: usize = GRPC_MAX_MESSAGE_BYTES;
}

/// The `[otlp_http]` section.
pub type OtlpHttpConfig = HttpReceiverConfig<OtlpHttp>;
/// The `[zipkin]` section.
pub type ZipkinConfig = HttpReceiverConfig<Zipkin>;
/// The `[jaeger_thrift_http]` section.
pub type JaegerThriftHttpConfig = HttpReceiverConfig<JaegerThriftHttp>;
/// The `[otlp_grpc]` section.
pub type OtlpGrpcConfig = GrpcReceiverConfig<OtlpGrpc>;
/// The `[jaeger_grpc]` section.
pub type JaegerGrpcConfig = GrpcReceiverConfig<JaegerGrpc>;

/// Jaeger remote sampling. SDKs poll `GET /sampling?service=NAME` on
/// `http_listen` (or call `jaeger.api_v2.SamplingManager` on the Jaeger gRPC
/// port) and get the strategy for their service from `strategies_file`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingConfig {
    /// Whether strategies are served at all.
    pub enabled: bool,
    /// A strategies file in Jaeger's format (`default_strategy`,
    /// `service_strategies`). Without one every service gets the default:
    /// probabilistic with probability 0.001, as in Jaeger.
    pub strategies_file: Option<PathBuf>,
    /// How often the file is checked for changes. A changed file that does
    /// not validate is refused: the previous strategies stay in force.
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
    /// Address of the HTTP endpoint; 5778 is the port Jaeger SDKs poll.
    pub http_listen: SocketAddr,
    /// Most connections open at once on the HTTP endpoint; the gRPC one
    /// counts under `jaeger_grpc.max_connections`.
    pub max_connections: usize,
    /// TLS for the HTTP endpoint; the gRPC one uses `jaeger_grpc.tls`.
    pub tls: Option<TlsConfig>,
    /// Whether strategy requests, HTTP and gRPC, must carry credentials
    /// when `[auth]` has any. Off by default: Jaeger and OpenTelemetry
    /// SDKs poll without credentials unless specially set up, and a
    /// strategy reveals only sampling rates.
    pub require_auth: bool,
}

/// The `[kafka]` section: connection settings shared with the other
/// processes, and the producer's own.
pub type KafkaSection = Section<KafkaClientConfig, ProducerConfig>;

/// The Kafka producer's own settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProducerConfig {
    /// Topic spans are written to.
    pub topic: String,
    /// Record encoding (`otlp_proto`, `otlp_json`, `jaeger_proto`, `jaeger_json`).
    pub encoding: Encoding,
    /// Compression codec: `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    /// `lz4` by default: at the record rates a collector sees, message sets
    /// hold a few records each, and every consumer pays zstd's per-set
    /// set-up on each of them (the analytics job read such a topic with
    /// 40 % less CPU as lz4; the collector writes it with an eighth less),
    /// for a topic about 40 % larger than zstd's (docs/benchmarks.md).
    pub compression: String,
    /// The codec's level (librdkafka `compression.level`): -1 for the
    /// codec's default, else 0–9 for gzip, 0–12 for lz4, 1–12 for zstd.
    /// Lower levels cost the collector less CPU and Kafka more bytes; zstd 1
    /// took a sixth less of the collector's CPU than the default (3) at
    /// 50,000 spans/s (docs/benchmarks.md).
    pub compression_level: i32,
    /// How long the producer waits to fill a batch. 10 ms by default: at
    /// 50,000 spans/s it took the collector's CPU per span from about 3.6 µs
    /// (5 ms) to 2.9 µs and Kafka's CPU by a third or more, for about 4 ms
    /// more on each answer (docs/benchmarks.md). Each partition's records
    /// are batched apart, so the saving grows with the partition count: at
    /// 12 partitions 40 ms took a tenth or more off 10 ms's CPU per span.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// Largest batch sent to one partition, in bytes (librdkafka
    /// `batch.size`).
    pub batch_bytes: usize,
    /// Most records in one batch (librdkafka `batch.num.messages`).
    pub batch_records: usize,
    /// How long a record may wait for the broker's acknowledgement before the
    /// request that carried it fails with a retryable status.
    ///
    /// It is also librdkafka's `message.timeout.ms`, and a record timing out
    /// makes the idempotent producer start a new epoch, after which a retried
    /// record whose first attempt was written can land on the topic twice
    /// (`collector_kafka_producer_epochs_total` counts those moments). With
    /// `acks=all`, losing a broker stalls every partition it replicates
    /// until the controller fences it (`broker.session.timeout.ms`, 9 s by
    /// default), so a timeout shorter than that stall turns a broker loss
    /// into possible duplicates; a longer one keeps every record once, at
    /// the cost of clients waiting longer for a refusal.
    #[serde(with = "humantime_serde")]
    pub delivery_timeout: Duration,
    /// Largest record value written, in bytes before compression; larger
    /// traces are split at span boundaries.
    pub max_record_bytes: usize,
    /// Request bytes held in memory: bodies being read (reserved frame by
    /// frame as they arrive) and requests waiting for Kafka's
    /// acknowledgement. Past it requests are refused at once with a
    /// retryable status (HTTP 429, gRPC RESOURCE_EXHAUSTED), so neither a
    /// slow or absent Kafka nor a flood of large bodies can make the
    /// collector run out of memory.
    pub max_bytes_in_flight: usize,
}

/// The operations endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpsConfig {
    /// Address of `/health/live`, `/health/ready` and `/metrics`.
    pub listen: SocketAddr,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            enabled: true,
            strategies_file: None,
            reload_interval: Duration::from_secs(30),
            http_listen: SocketAddr::from(([0, 0, 0, 0], 5778)),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            tls: None,
            require_auth: false,
        }
    }
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            topic: DEFAULT_TOPIC.into(),
            encoding: Encoding::OtlpProto,
            compression: "lz4".into(),
            compression_level: -1,
            linger: Duration::from_millis(10),
            batch_bytes: 1_000_000,
            batch_records: 10_000,
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
    /// Every listener on 127.0.0.1 with a port the system picks: for
    /// tests and embedding, where several collectors share one machine.
    pub fn on_ephemeral_loopback_ports(&mut self) {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        self.otlp_http.listen = any;
        self.otlp_grpc.listen = any;
        self.jaeger_grpc.listen = any;
        self.sampling.http_listen = any;
        self.zipkin.listen = any;
        self.jaeger_thrift_http.listen = any;
        self.ops.listen = any;
    }

    /// Sets the byte budget and every receiver's request limit to `bytes`,
    /// for a collector whose budget one request can fill.
    pub fn limit_requests_to(&mut self, bytes: usize) {
        self.kafka.max_bytes_in_flight = bytes;
        self.otlp_http.max_request_bytes = bytes;
        self.otlp_grpc.max_message_bytes = bytes;
        self.jaeger_grpc.max_message_bytes = bytes;
        self.zipkin.max_request_bytes = bytes;
        self.jaeger_thrift_http.max_request_bytes = bytes;
    }

    /// Checks the rules that span several fields or that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.kafka.client.validate()?;
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
        let level = self.kafka.compression_level;
        let levels = match self.kafka.compression.as_str() {
            "gzip" => Some(0..=9),
            "lz4" => Some(0..=12),
            "zstd" => Some(1..=12),
            _ => None,
        };
        let reason = match levels {
            _ if level == -1 => None,
            None => Some(format!(
                "{level}: {} has no levels; leave it at -1",
                self.kafka.compression
            )),
            Some(levels) if !levels.contains(&level) => Some(format!(
                "{level} is outside {}..={} for {} (-1: the codec's default)",
                levels.start(),
                levels.end(),
                self.kafka.compression
            )),
            Some(_) => None,
        };
        if let Some(reason) = reason {
            return Err(ConfigError::invalid("kafka.compression_level", reason));
        }
        if self.kafka.batch_bytes == 0 || self.kafka.batch_records == 0 {
            return Err(ConfigError::invalid(
                "kafka.batch_bytes",
                "kafka.batch_bytes and kafka.batch_records must be positive",
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
        self.validate_receiver_sizes()?;
        let any_receiver = self.otlp_http.enabled
            || self.otlp_grpc.enabled
            || self.jaeger_grpc.enabled
            || self.zipkin.enabled
            || self.jaeger_thrift_http.enabled;
        if !any_receiver {
            return Err(ConfigError::invalid(
                "otlp_http.enabled",
                "no receiver is enabled (otlp_http, otlp_grpc, jaeger_grpc, zipkin, jaeger_thrift_http)",
            ));
        }
        self.validate_sampling()?;
        self.validate_receiver_security()
    }

    /// Every enabled receiver's request limit is positive and fits in the
    /// byte budget (a request larger than the budget could never be
    /// accepted), its body timeout is at least a second, and so are a gRPC
    /// listener's connection age and idle time.
    fn validate_receiver_sizes(&self) -> Result<(), ConfigError> {
        let receivers = [
            (
                "otlp_http.max_request_bytes",
                "otlp_http.read_timeout",
                self.otlp_http.enabled,
                self.otlp_http.max_request_bytes,
                self.otlp_http.read_timeout,
            ),
            (
                "zipkin.max_request_bytes",
                "zipkin.read_timeout",
                self.zipkin.enabled,
                self.zipkin.max_request_bytes,
                self.zipkin.read_timeout,
            ),
            (
                "jaeger_thrift_http.max_request_bytes",
                "jaeger_thrift_http.read_timeout",
                self.jaeger_thrift_http.enabled,
                self.jaeger_thrift_http.max_request_bytes,
                self.jaeger_thrift_http.read_timeout,
            ),
            (
                "otlp_grpc.max_message_bytes",
                "otlp_grpc.read_timeout",
                self.otlp_grpc.enabled,
                self.otlp_grpc.max_message_bytes,
                self.otlp_grpc.read_timeout,
            ),
            (
                "jaeger_grpc.max_message_bytes",
                "jaeger_grpc.read_timeout",
                self.jaeger_grpc.enabled,
                self.jaeger_grpc.max_message_bytes,
                self.jaeger_grpc.read_timeout,
            ),
        ];
        for (key, timeout_key, enabled, max, timeout) in receivers {
            if !enabled {
                continue;
            }
            if max == 0 {
                return Err(ConfigError::invalid(key, "must be positive"));
            }
            if self.kafka.max_bytes_in_flight < max {
                return Err(ConfigError::invalid(
                    "kafka.max_bytes_in_flight",
                    format!(
                        "must be at least {key} ({max}), or the largest request could never be accepted"
                    ),
                ));
            }
            if timeout < MIN_READ_TIMEOUT {
                return Err(ConfigError::invalid(
                    timeout_key,
                    format!(
                        "must be at least {MIN_READ_TIMEOUT:?}: a body needs time to arrive, even from a nearby client"
                    ),
                ));
            }
        }
        for (key, age) in [
            (
                "otlp_grpc.max_connection_age",
                self.otlp_grpc.max_connection_age,
            ),
            (
                "jaeger_grpc.max_connection_age",
                self.jaeger_grpc.max_connection_age,
            ),
            (
                "otlp_grpc.max_connection_idle",
                self.otlp_grpc.max_connection_idle,
            ),
            (
                "jaeger_grpc.max_connection_idle",
                self.jaeger_grpc.max_connection_idle,
            ),
        ] {
            if age < MIN_CONNECTION_AGE {
                return Err(ConfigError::invalid(
                    key,
                    format!("must be at least {MIN_CONNECTION_AGE:?}"),
                ));
            }
        }
        Ok(())
    }

    /// The rules of the listeners' `tls` tables and of `[auth]`.
    fn validate_receiver_security(&self) -> Result<(), ConfigError> {
        for listener in Listener::ALL {
            let settings = listener.settings(self);
            if let (true, Some(tls)) = (settings.enabled, settings.tls) {
                tls.validate(&listener.tls_keys())?;
            }
            if settings.enabled && settings.max_connections == 0 {
                return Err(ConfigError::invalid(
                    listener.max_connections_key(),
                    "must be at least 1",
                ));
            }
        }
        self.auth.validate()?;
        if self.sampling.enabled && self.sampling.require_auth && !self.auth.is_enabled() {
            return Err(ConfigError::invalid(
                "sampling.require_auth",
                "needs credentials: set auth.bearer_tokens_file or auth.htpasswd_file",
            ));
        }
        Ok(())
    }

    /// The rules of sampling.
    fn validate_sampling(&self) -> Result<(), ConfigError> {
        if self.sampling.reload_interval < Duration::from_millis(100) {
            return Err(ConfigError::invalid(
                "sampling.reload_interval",
                "must be at least 100ms",
            ));
        }
        if self
            .sampling
            .strategies_file
            .as_ref()
            .is_some_and(|path| path.as_os_str().is_empty())
        {
            return Err(ConfigError::invalid(
                "sampling.strategies_file",
                "must not be empty; leave the key out to serve the default strategy",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod security_tests {
    use super::*;

    fn load(toml: &str) -> CollectorConfig {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, toml).unwrap();
        spanway_service_kit::config::load_with_env(Some(&path), []).unwrap()
    }

    #[test]
    fn tls_tables_are_checked_by_listener_and_name_their_key() {
        let cfg = load("[otlp_grpc.tls]\ncert_file = \"c.pem\"\n");
        let err = cfg.validate().unwrap_err().to_string();
        assert_eq!(
            err,
            "configuration key otlp_grpc.tls.key_file: required when otlp_grpc.tls.cert_file is set"
        );
        let cfg = load("[sampling.tls]\nkey_file = \"k.pem\"\n");
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("sampling.tls.cert_file"), "{err}");
        // A disabled listener's table is not looked at.
        let cfg = load("[zipkin]\nenabled = false\n[zipkin.tls]\n");
        cfg.validate().unwrap();
        let cfg = load(
            "[jaeger_thrift_http.tls]\ncert_file = \"c\"\nkey_file = \"k\"\nclient_ca_file = \"ca\"\nreload_interval = \"1m\"\n",
        );
        cfg.validate().unwrap();
        let tls = cfg.jaeger_thrift_http.tls.unwrap();
        assert_eq!(tls.reload_interval, Duration::from_secs(60));
    }

    #[test]
    fn sampling_auth_needs_credentials() {
        let mut cfg = CollectorConfig::default();
        cfg.sampling.require_auth = true;
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("sampling.require_auth"), "{err}");
        cfg.auth.bearer_tokens_file = Some("tokens".into());
        cfg.validate().unwrap();
        assert!(cfg.auth.is_enabled());
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
