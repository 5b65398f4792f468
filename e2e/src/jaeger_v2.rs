//! Jaeger v2 (`cmd/jaeger` of the Jaeger v1.76.0 module, reporting v2.13.0, built by
//! `dev/jaeger build v2`): an OpenTelemetry Collector distribution, started on free loopback
//! ports from a YAML configuration the test writes, either as a collector that exports to a
//! Kafka topic or as a Kafka consumer that stores in memory and answers Jaeger's query API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{kafka_bootstrap, unique_name};

/// The line the collector logs once every component has started.
const READY: &str = "Everything is ready";

/// Where `dev/jaeger build v2` puts the binary, unless `JAEGER_V2_BIN` says otherwise.
pub fn jaeger_v2_bin() -> PathBuf {
    let path = std::env::var_os("JAEGER_V2_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.services/jaeger/bin/jaeger"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "Jaeger v2 is not built: no binary at {}. Build it with `dev/jaeger build v2` \
         (needs Go 1.24.6 or newer), or set JAEGER_V2_BIN.",
        path.display()
    );
    path
}

/// `n` distinct free loopback ports (all held until chosen, then released).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

/// Settings every configuration shares: no metrics endpoint (its default port 8888 would
/// collide between tests), logs at info to stderr.
const TELEMETRY: &str = "  telemetry:
    metrics:
      level: none
    logs:
      level: info
";

/// Jaeger v2 as a collector: OTLP/gRPC on `otlp_grpc_port` → the Kafka exporter writing
/// `topic` with `encoding`. `partition_by_trace_id` sets the exporter's
/// `partition_traces_by_id` (keys OTLP records by trace id, one trace per record; the Jaeger
/// encodings are keyed by trace id either way).
pub fn collector_config(
    otlp_grpc_port: u16,
    topic: &str,
    encoding: &str,
    partition_by_trace_id: bool,
) -> String {
    let bootstrap = kafka_bootstrap();
    format!(
        "service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [kafka]
{TELEMETRY}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{otlp_grpc_port}

exporters:
  kafka:
    brokers: [{bootstrap}]
    traces:
      topic: {topic}
      encoding: {encoding}
    partition_traces_by_id: {partition_by_trace_id}
    producer:
      required_acks: -1
"
    )
}

/// Jaeger v2 as a consumer: the Kafka receiver reads `topic` (records in `otlp_proto`, the
/// contract's default encoding) from the beginning as group `group_id`, stores the spans in
/// memory, and the query extension answers on `http_port` (and gRPC on `grpc_port`).
pub fn query_config(topic: &str, group_id: &str, http_port: u16, grpc_port: u16) -> String {
    let bootstrap = kafka_bootstrap();
    format!(
        "service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [kafka]
      exporters: [jaeger_storage_exporter]
{TELEMETRY}
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{http_port}
    grpc:
      endpoint: 127.0.0.1:{grpc_port}

receivers:
  kafka:
    brokers: [{bootstrap}]
    group_id: {group_id}
    initial_offset: earliest
    traces:
      topic: {topic}
      encoding: otlp_proto

exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"
    )
}

/// Jaeger v2 as a query service over the Jaeger indices the ingester writes: the
/// `jaeger_query` extension reads traces, services and dependencies from `backend`
/// (`opensearch` or `elasticsearch`) at `url` under `prefix`, and answers the Monitor tab's
/// `/api/metrics/*` from the same span indices. Jaeger does not install its own index
/// templates (`create_mappings: false`), so the ingester's stay. No pipeline does anything
/// (`nop` in and out): a Collector distribution needs one.
pub fn engine_query_config(
    backend: &str,
    url: &str,
    prefix: &str,
    http_port: u16,
    grpc_port: u16,
) -> String {
    engine_query_config_for(backend, url, prefix, http_port, grpc_port, &[])
}

/// [`engine_query_config`] with a `(family, date_layout, rollover_frequency)` for each index
/// family named otherwise than by Jaeger's default `2006-01-02` days: `("spans",
/// "2006-01-02-15", "hour")` reads hourly span indices (the ingester's
/// `index_rollover_frequency_spans = "hour"`), `"2006.01.02"` dotted days (its
/// `index_date_separator = "."`). Jaeger v2 names indices by the layout and steps through a
/// query's time range by the frequency.
pub fn engine_query_config_for(
    backend: &str,
    url: &str,
    prefix: &str,
    http_port: u16,
    grpc_port: u16,
    date_layouts: &[(&str, &str, &str)],
) -> String {
    let spans: String = date_layouts
        .iter()
        .map(|(family, layout, frequency)| {
            format!(
                "
            {family}:
              date_layout: \"{layout}\"
              rollover_frequency: {frequency}"
            )
        })
        .collect();
    format!(
        "service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [nop]
      exporters: [nop]
{TELEMETRY}
extensions:
  jaeger_storage:
    backends:
      engine: &engine
        {backend}:
          server_urls: [{url}]
          create_mappings: false
          indices:
            index_prefix: {prefix}{spans}
    metric_backends:
      engine: *engine
  jaeger_query:
    storage:
      traces: engine
      metrics: engine
    http:
      endpoint: 127.0.0.1:{http_port}
    grpc:
      endpoint: 127.0.0.1:{grpc_port}

receivers:
  nop:

exporters:
  nop:
"
    )
}

/// A running Jaeger v2: killed when dropped, even when the test panics, and its log is
/// printed then.
#[derive(Debug)]
pub struct JaegerV2 {
    child: Child,
    log: PathBuf,
    config: PathBuf,
}

impl JaegerV2 {
    /// Writes `config` (YAML) to a temporary file and starts `jaeger --config` on it.
    pub fn start(config: &str) -> Self {
        let bin = jaeger_v2_bin();
        let name = unique_name("jaeger-v2");
        let log = std::env::temp_dir().join(format!("{name}.log"));
        let config_path = std::env::temp_dir().join(format!("{name}.yaml"));
        std::fs::write(&config_path, config).unwrap();
        let out = File::create(&log).unwrap();
        let child = Command::new(&bin)
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        Self {
            child,
            log,
            config: config_path,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until every component has started (the collector logs it), failing with the
    /// log when the process exits first.
    pub async fn wait_ready(&mut self) {
        for _ in 0..480 {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("jaeger exited ({status}):\n{}", self.log_text());
            }
            if self.log_text().contains(READY) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("jaeger did not start within 120 s:\n{}", self.log_text());
    }

    /// Panics with the log unless the process is still running.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("jaeger exited ({status}):\n{}", self.log_text());
        }
    }
}

impl Drop for JaegerV2 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- jaeger (v2) log ----\n{}", self.log_text());
        }
        let _ = std::fs::remove_file(&self.log);
        let _ = std::fs::remove_file(&self.config);
    }
}
