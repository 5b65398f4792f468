//! Ingester metrics; every outcome of a record or document is counted.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use spanway_kafka::group::PartitionLabels;
use spanway_search::metrics::WriterMetrics;
use spanway_service_kit::metric_set::MetricSet;

spanway_service_kit::metric_set! {
    /// Every counter the ingester keeps.
    pub struct IngesterMetrics {
        /// Records read from Kafka.
        records_consumed: Counter => "records_consumed", "Records read from Kafka";
        /// Records that could not be decoded (logged with topic, partition, offset).
        records_undecodable: Counter => "records_undecodable", "Records that could not be decoded";
        /// Span documents stored (including 409: already stored).
        spans_indexed: Counter => "spans_indexed", "Span documents stored";
        /// Service/operation documents stored.
        services_indexed: Counter => "services_indexed", "Service documents stored";
        /// Span documents written again with their learned tag fields nested,
        /// because the index had no room for more fields.
        spans_renested: Counter => "spans_renested",
            "Spans written again with learned tag fields nested, the index being out of fields";
        /// Tag keys learned as fields so far.
        tag_keys_learned: Gauge => "tag_keys_learned", "Tag keys learned as fields";
        /// Documents the engine refused for good (logged with the reason).
        documents_rejected: Counter => "documents_rejected", "Documents refused by the engine";
        /// The bulk writer's requests, retries and latency.
        writer: WriterMetrics;
        /// Offset stores: a batch became durable and its offsets were handed to
        /// the consumer for committing.
        offsets_stored: Counter => "offsets_stored", "Batches whose offsets were stored for commit";
        /// Record bytes read but not yet durable (the budget `bulk.max_bytes_in_flight` caps it).
        bytes_in_flight: Gauge => "bytes_in_flight", "Bytes of documents waiting to be written";
        /// Records dead-lettered (undecodable records and refused documents).
        dead_lettered: Counter => "dead_lettered",
            "Records and documents sent to the dead-letter topic";
        /// New epochs of the dead-letter producer: after one, a letter sent again
        /// may be on the dead-letter topic twice.
        dead_letter_producer_epochs: Counter => "dead_letter_producer_epochs",
            "Dead-letter producer epochs started after the first (a letter sent again may be there twice)";
        /// Times reading was paused because writes fell behind.
        pauses: Counter => "pauses", "Times reading paused because writes fell behind";
        /// Records between the consumer's position and the end of each partition.
        lag_records: Family<PartitionLabels, Gauge> => "lag_records",
            "Records between the consumer's position and the end of each partition";
        /// Age in seconds of the newest record read from each partition.
        lag_seconds: Family<PartitionLabels, Gauge> => "lag_seconds",
            "Age in seconds of the newest record read from each partition";
    }
}

impl IngesterMetrics {
    /// Registers every metric under the `ingester` prefix.
    pub fn register(&self, registry: &mut Registry) {
        self.register_in(registry.sub_registry_with_prefix("ingester"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every counter the ingester keeps shows on `/metrics`: one that is
    /// counted but never registered is invisible to operators.
    #[test]
    fn every_metric_is_exported() {
        let metrics = IngesterMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.dead_lettered.inc();
        metrics.pauses.inc();
        let labels = PartitionLabels {
            topic: "t".into(),
            partition: 0,
        };
        metrics.lag_records.get_or_create(&labels).set(3);
        metrics.lag_seconds.get_or_create(&labels).set(1);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for name in [
            "ingester_records_consumed_total",
            "ingester_dead_lettered_total 1",
            "ingester_dead_letter_producer_epochs_total 0",
            "ingester_pauses_total 1",
            "ingester_lag_records{topic=\"t\",partition=\"0\"} 3",
            "ingester_lag_seconds{topic=\"t\",partition=\"0\"} 1",
            "ingester_bulk_requests_total",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }
}
