//! Ingester metrics; every outcome of a record or document is counted.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use spanway_search::metrics::WriterMetrics;

/// Every counter the ingester keeps.
#[derive(Debug, Clone, Default)]
pub struct IngesterMetrics {
    /// Records read from Kafka.
    pub records_consumed: Counter,
    /// Records that could not be decoded (logged with topic, partition, offset).
    pub records_undecodable: Counter,
    /// Span documents stored (including 409: already stored).
    pub spans_indexed: Counter,
    /// Service/operation documents stored.
    pub services_indexed: Counter,
    /// Documents the engine refused for good (logged with the reason).
    pub documents_rejected: Counter,
    /// The bulk writer's requests, retries and latency.
    pub writer: WriterMetrics,
    /// Offset stores: a batch became durable and its offsets were handed to
    /// the consumer for committing.
    pub offsets_stored: Counter,
    /// Record bytes read but not yet durable (the budget `bulk.max_bytes_in_flight` caps it).
    pub bytes_in_flight: Gauge,
    /// Records dead-lettered (undecodable records and refused documents).
    pub dead_lettered: Counter,
    /// Times reading was paused because writes fell behind.
    pub pauses: Counter,
    /// Records between the consumer's position and the end of each partition.
    pub lag_records: Family<spanway_kafka::group::PartitionLabels, Gauge>,
    /// Age in seconds of the newest record read from each partition.
    pub lag_seconds: Family<spanway_kafka::group::PartitionLabels, Gauge>,
}

impl IngesterMetrics {
    /// Registers every metric under the `ingester` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("ingester");
        sub.register(
            "records_consumed",
            "Records read from Kafka",
            self.records_consumed.clone(),
        );
        sub.register(
            "records_undecodable",
            "Records that could not be decoded",
            self.records_undecodable.clone(),
        );
        sub.register(
            "spans_indexed",
            "Span documents stored",
            self.spans_indexed.clone(),
        );
        sub.register(
            "services_indexed",
            "Service documents stored",
            self.services_indexed.clone(),
        );
        sub.register(
            "documents_rejected",
            "Documents refused by the engine",
            self.documents_rejected.clone(),
        );
        sub.register(
            "offsets_stored",
            "Batches whose offsets were stored for commit",
            self.offsets_stored.clone(),
        );
        sub.register(
            "bytes_in_flight",
            "Bytes of documents waiting to be written",
            self.bytes_in_flight.clone(),
        );
        sub.register(
            "dead_lettered",
            "Records and documents sent to the dead-letter topic",
            self.dead_lettered.clone(),
        );
        sub.register(
            "pauses",
            "Times reading paused because writes fell behind",
            self.pauses.clone(),
        );
        sub.register(
            "lag_records",
            "Records between the consumer's position and the end of each partition",
            self.lag_records.clone(),
        );
        sub.register(
            "lag_seconds",
            "Age in seconds of the newest record read from each partition",
            self.lag_seconds.clone(),
        );
        self.writer.register(sub);
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
        let labels = spanway_kafka::group::PartitionLabels {
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
            "ingester_pauses_total 1",
            "ingester_lag_records{topic=\"t\",partition=\"0\"} 3",
            "ingester_lag_seconds{topic=\"t\",partition=\"0\"} 1",
            "ingester_bulk_requests_total",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }
}
