//! What the gRPC and sampling integration tests share: a collector on
//! loopback ports chosen by the kernel, and a reader of the spans topic.
#![allow(clippy::unwrap_used, dead_code)]

use std::time::{Duration, Instant};

use prost::Message as _;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use spanway_collector::config::CollectorConfig;
use spanway_e2e::{kafka_bootstrap, unique_name};
use spanway_schemas::proto::otlp;

/// A configuration writing to `topic`, every listener on a free loopback port.
pub fn config(topic: &str) -> CollectorConfig {
    let mut config = CollectorConfig::default();
    config.kafka.client.brokers = vec![kafka_bootstrap()];
    config.kafka.topic = topic.to_owned();
    config.on_ephemeral_loopback_ports();
    config.validate().unwrap();
    config
}

/// One record of the spans topic, decoded as the `otlp_proto` encoding.
#[derive(Debug)]
pub struct Record {
    pub key: String,
    pub partition: i32,
    pub data: otlp::TracesData,
}

impl Record {
    pub fn spans(&self) -> impl Iterator<Item = &otlp::Span> {
        self.data
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
    }
}

/// Reads `topic` from the start until it holds at least `spans` spans (then
/// a second more, so that duplicates would show), or `timeout` passes.
pub async fn read_topic(topic: &str, spans: usize, timeout: Duration) -> Vec<Record> {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", kafka_bootstrap())
            .set("group.id", unique_name("it-grpc-reader"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        consumer.subscribe(&[&topic]).unwrap();
        let mut records = Vec::new();
        let mut seen = 0;
        let deadline = Instant::now() + timeout;
        let mut until = deadline;
        while Instant::now() < until {
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = message.unwrap();
            let record = Record {
                key: String::from_utf8(message.key().unwrap().to_vec()).unwrap(),
                partition: message.partition(),
                data: otlp::TracesData::decode(message.payload().unwrap()).unwrap(),
            };
            seen += record.spans().count();
            records.push(record);
            if seen >= spans && until == deadline {
                until = Instant::now() + Duration::from_secs(1);
            }
        }
        records
    })
    .await
    .unwrap()
}

/// Lower-case hex, as record keys carry trace ids.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every span of `records` with its resource and scope, keyed by span id,
/// after checking the contract: the key is the trace id of every span in the
/// record, the partition is the partitioner's, and no span comes twice.
pub fn spans_by_id(
    records: &[Record],
    partitions: u32,
) -> std::collections::HashMap<Vec<u8>, (otlp::Resource, otlp::InstrumentationScope, otlp::Span)> {
    let mut spans = std::collections::HashMap::new();
    for record in records {
        assert_eq!(
            u32::try_from(record.partition).unwrap(),
            spanway_schemas::partition::murmur2_partition(record.key.as_bytes(), partitions),
            "record of trace {} is on the partition the contract's partitioner names",
            record.key
        );
        for rs in &record.data.resource_spans {
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    assert_eq!(
                        hex(&span.trace_id),
                        record.key,
                        "record key is the trace id"
                    );
                    let entry = (
                        rs.resource.clone().unwrap_or_default(),
                        ss.scope.clone().unwrap_or_default(),
                        span.clone(),
                    );
                    assert!(
                        spans.insert(span.span_id.clone(), entry).is_none(),
                        "span {} is on the topic twice",
                        hex(&span.span_id)
                    );
                }
            }
        }
    }
    spans
}

/// Counter value of `name{labels}` in a Prometheus text exposition, 0 when absent.
pub async fn metric(ops: std::net::SocketAddr, series: &str) -> f64 {
    let text = reqwest::get(format!("http://{ops}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// A span of trace `[trace; 16]` with a `payload`-byte attribute.
pub fn span(trace: u8, id: u8, payload: usize) -> otlp::Span {
    otlp::Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        name: "op".into(),
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_001_000_000,
        attributes: vec![otlp::KeyValue {
            key: "payload".into(),
            value: Some(otlp::AnyValue {
                value: Some(otlp::any_value::Value::StringValue("x".repeat(payload))),
            }),
        }],
        ..Default::default()
    }
}

/// A request of one resource and scope holding `spans`.
pub fn request(spans: Vec<otlp::Span>) -> otlp::ExportTraceServiceRequest {
    otlp::ExportTraceServiceRequest {
        resource_spans: vec![otlp::ResourceSpans {
            scope_spans: vec![otlp::ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}
