//! Collector metrics. Labels are bounded: receiver names and refusal reasons
//! are fixed sets, never values taken from a request.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of per-receiver counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReceiverLabel {
    /// `otlp_http`, `zipkin`, `jaeger_thrift_http`, …
    pub receiver: &'static str,
}

/// Labels of refusal counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// `otlp_http`, …
    pub receiver: &'static str,
    /// One of the fixed reasons of [`crate::error::RequestError::reason`],
    /// or, for a span removed from a partially accepted OTLP request, of
    /// [`crate::grouping::SpanProblem::reason`].
    pub reason: &'static str,
}

/// Every counter the collector keeps.
#[derive(Debug, Clone, Default)]
pub struct CollectorMetrics {
    /// Spans in requests that decoded.
    pub spans_received: Family<ReceiverLabel, Counter>,
    /// Spans acknowledged by Kafka and answered as accepted.
    pub spans_accepted: Family<ReceiverLabel, Counter>,
    /// Spans refused, by reason.
    pub spans_refused: Family<RefusalLabels, Counter>,
    /// Requests refused before their spans could be counted, by reason.
    pub requests_refused: Family<RefusalLabels, Counter>,
    /// Records acknowledged by Kafka.
    pub records_produced: Counter,
    /// Traces split into several records to stay under the record limit.
    pub traces_split: Counter,
    /// Bytes of requests accepted but not yet acknowledged by Kafka.
    pub bytes_in_flight: prometheus_client::metrics::gauge::Gauge,
    /// Spans whose resource had no `service.name`; they are published
    /// under `unknown_service`, as OpenTelemetry SDKs name them.
    pub spans_without_service: Counter,
    /// Time from handing a request's records to the producer until Kafka
    /// acknowledged all of them (or one failed), per request.
    pub produce_latency: ProduceLatency,
}

/// Histogram of [`CollectorMetrics::produce_latency`], in seconds from
/// 1 ms to about 33 s.
#[derive(Debug, Clone)]
pub struct ProduceLatency(pub Histogram);

impl Default for ProduceLatency {
    fn default() -> Self {
        ProduceLatency(Histogram::new(exponential_buckets(0.001, 2.0, 16)))
    }
}

impl CollectorMetrics {
    /// Registers every metric under the `collector` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("collector");
        sub.register(
            "spans_received",
            "Spans in decoded requests",
            self.spans_received.clone(),
        );
        sub.register(
            "spans_accepted",
            "Spans acknowledged by Kafka",
            self.spans_accepted.clone(),
        );
        sub.register(
            "spans_refused",
            "Spans refused, by reason",
            self.spans_refused.clone(),
        );
        sub.register(
            "requests_refused",
            "Requests refused, by reason",
            self.requests_refused.clone(),
        );
        sub.register(
            "kafka_records_produced",
            "Records acknowledged by Kafka",
            self.records_produced.clone(),
        );
        sub.register(
            "traces_split",
            "Traces split into several records to stay under the record limit",
            self.traces_split.clone(),
        );
        sub.register(
            "bytes_in_flight",
            "Request bytes waiting for Kafka's acknowledgement",
            self.bytes_in_flight.clone(),
        );
        sub.register(
            "spans_without_service",
            "Spans without service.name, published as unknown_service",
            self.spans_without_service.clone(),
        );
        sub.register(
            "kafka_produce_latency_seconds",
            "Time until Kafka acknowledged every record of a request",
            self.produce_latency.0.clone(),
        );
    }
}
