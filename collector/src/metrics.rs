//! Collector metrics. Labels are bounded: receiver names and refusal reasons
//! are fixed sets, never values taken from a request.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use spanway_service_kit::metric_set::MetricSet;

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

spanway_service_kit::metric_set! {
    /// Every counter the collector keeps.
    pub struct CollectorMetrics {
        /// Spans in requests that decoded.
        spans_received: Family<ReceiverLabel, Counter> => "spans_received",
            "Spans in decoded requests";
        /// Spans acknowledged by Kafka and answered as accepted.
        spans_accepted: Family<ReceiverLabel, Counter> => "spans_accepted",
            "Spans acknowledged by Kafka";
        /// Spans refused, by reason.
        spans_refused: Family<RefusalLabels, Counter> => "spans_refused",
            "Spans refused, by reason";
        /// Requests refused before their spans could be counted, by reason.
        requests_refused: Family<RefusalLabels, Counter> => "requests_refused",
            "Requests refused, by reason";
        /// Records acknowledged by Kafka.
        records_produced: Counter => "kafka_records_produced", "Records acknowledged by Kafka";
        /// Batches (message sets) the producer made, from librdkafka's
        /// statistics every 5 s: records per batch is the produced count
        /// over this one, and few records per batch cost CPU here and in
        /// Kafka (a longer `kafka.linger`, or fewer partitions, raises it).
        kafka_batches: Counter => "kafka_batches",
            "Batches the Kafka producer made, counted every 5 s";
        /// Records of refused requests that Kafka wrote, or may have
        /// written (librdkafka's "possibly persisted": the request timed out
        /// or the connection broke after sending), counted whenever they
        /// settle. A client resending such a request writes them twice; the
        /// ingester and the analytics job count each span once.
        kafka_records_refused_written: Counter => "kafka_records_refused_written",
            "Records of refused requests that Kafka wrote or may have written";
        /// Producer epochs started after the first, from librdkafka's
        /// statistics every 5 s. The producer deduplicates its own retries
        /// only within an epoch, so after a new one, records whose first
        /// attempt timed out may be on the topic twice; it stays at 0 while
        /// every produce request is answered within `kafka.delivery_timeout`.
        kafka_producer_epochs: Counter => "kafka_producer_epochs",
            "Kafka producer epochs started after the first (records sent again may be duplicated)";
        /// Traces split into several records to stay under the record limit.
        traces_split: Counter => "traces_split",
            "Traces split into several records to stay under the record limit";
        /// Bytes the byte budget holds: request bodies being read, and
        /// requests accepted but not yet acknowledged by Kafka.
        bytes_in_flight: Gauge => "bytes_in_flight",
            "Request bytes being read or waiting for Kafka's acknowledgement";
        /// Spans whose resource had no `service.name`; they are published
        /// under `unknown_service`, as OpenTelemetry SDKs name them.
        spans_without_service: Counter => "spans_without_service",
            "Spans without service.name, published as unknown_service";
        /// Time from handing a request's records to the producer until Kafka
        /// acknowledged all of them (or one failed), per request, in seconds
        /// from 1 ms to about 33 s.
        produce_latency: Histogram = Histogram::new(exponential_buckets(0.001, 2.0, 16))
            => "kafka_produce_latency_seconds",
            "Time until Kafka acknowledged every record of a request";
    }
}

impl CollectorMetrics {
    /// Registers every metric under the `collector` prefix.
    pub fn register(&self, registry: &mut Registry) {
        self.register_in(registry.sub_registry_with_prefix("collector"));
    }
}
