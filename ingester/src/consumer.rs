//! The Kafka side: read records, turn them into documents, write them, and
//! only then let their offsets be committed.
//!
//! Offsets are *stored* (not committed) after the engine has every document
//! of a batch; librdkafka's auto-commit then commits stored offsets
//! periodically, on rebalance and on close. A record whose documents are not
//! yet durable therefore never has its offset committed, and a crash leads to
//! redelivery, which the deterministic document ids turn into 409s.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use spanway_schemas::proto::jaeger::api_v2 as jaeger;
use spanway_schemas::{decode_record, headers, record_encoding};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::IngesterConfig;
use crate::document::{DocumentKind, IndexNames, service_document, span_document};
use crate::metrics::IngesterMetrics;
use crate::writer::{BulkWriter, WriterError};

/// Written service/operation pairs are remembered up to this many entries,
/// then forgotten all at once (a rewrite is harmless: it is a 409).
const SERVICE_CACHE_LIMIT: usize = 100_000;

/// Failures that stop the consumer.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// The Kafka client failed.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// One record's position and what it decoded to.
struct Consumed {
    topic: String,
    partition: i32,
    offset: i64,
    spans: Vec<jaeger::Span>,
}

/// Creates the consumer group member and subscribes it.
pub fn create_consumer(config: &IngesterConfig) -> Result<StreamConsumer, ConsumeError> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", config.kafka.brokers.join(","))
        .set("group.id", &config.kafka.group_id)
        .set("auto.offset.reset", &config.kafka.start_offset)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "1000")
        .create()?;
    let topics: Vec<&str> = config.kafka.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    Ok(consumer)
}

/// Runs until `cancel` fires, then commits what was written and returns.
pub async fn run(
    config: IngesterConfig,
    consumer: StreamConsumer,
    writer: BulkWriter,
    metrics: IngesterMetrics,
    cancel: CancellationToken,
) -> Result<(), ConsumeError> {
    let consumer = Arc::new(consumer);
    let names = IndexNames::new(&config.elasticsearch.index_prefix);
    let mut written_services: HashSet<(String, String)> = HashSet::new();
    while !cancel.is_cancelled() {
        let batch = collect_batch(&consumer, &config, &metrics, &cancel).await?;
        if batch.is_empty() {
            continue;
        }
        let mut documents = Vec::new();
        let mut new_services: HashSet<(String, String)> = HashSet::new();
        let mut service_documents = Vec::new();
        for record in &batch {
            for span in &record.spans {
                match span_document(span, &names) {
                    Ok(doc) => documents.push(doc),
                    Err(error) => tracing::error!(%error, "span cannot be serialized"),
                }
                if let Ok(doc) = service_document(span, &names) {
                    let key = (doc.index.clone(), doc.id.clone());
                    if !written_services.contains(&key) && new_services.insert(key) {
                        service_documents.push(doc);
                    }
                }
            }
        }
        let span_count = documents.len() as u64;
        let service_count = service_documents.len() as u64;
        documents.append(&mut service_documents);
        let bytes: usize = documents.iter().map(|d| d.source.len()).sum();
        metrics.bytes_in_flight.set(bytes as i64);

        match writer.write_all(documents, &cancel).await {
            Ok(rejected) => {
                for r in &rejected {
                    tracing::error!(index = %r.document.index, id = %r.document.id, reason = %r.reason, "document refused by the engine");
                }
                let rejected_services = rejected
                    .iter()
                    .filter(|r| r.document.kind == DocumentKind::Service)
                    .count() as u64;
                let rejected_spans = rejected.len() as u64 - rejected_services;
                metrics.documents_rejected.inc_by(rejected.len() as u64);
                metrics.spans_indexed.inc_by(span_count - rejected_spans);
                metrics
                    .services_indexed
                    .inc_by(service_count - rejected_services);
            }
            Err(WriterError::Cancelled) => {
                tracing::info!("shutdown while writing; the batch will be read again");
                break;
            }
            Err(error) => {
                tracing::error!(%error, "writer failed");
                break;
            }
        }
        metrics.bytes_in_flight.set(0);
        if written_services.len() > SERVICE_CACHE_LIMIT {
            written_services.clear();
        }
        written_services.extend(new_services);
        store_offsets(&consumer, &batch)?;
        metrics.offsets_stored.inc();
    }
    commit_on_exit(consumer).await;
    Ok(())
}

/// Reads records until the batch is full, the flush interval has passed
/// since the first record, or shutdown.
async fn collect_batch(
    consumer: &StreamConsumer,
    config: &IngesterConfig,
    metrics: &IngesterMetrics,
    cancel: &CancellationToken,
) -> Result<Vec<Consumed>, ConsumeError> {
    let mut batch = Vec::new();
    let mut bytes = 0usize;
    // Until the first record arrives there is nothing to flush.
    let mut deadline = Instant::now() + Duration::from_secs(3600);
    while batch.len() < config.bulk.max_records && bytes < config.bulk.max_bytes {
        let message = tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep_until(deadline) => break,
            message = consumer.recv() => message?,
        };
        if batch.is_empty() {
            deadline = Instant::now() + config.bulk.flush_interval;
        }
        metrics.records_consumed.inc();
        let payload = message.payload().unwrap_or_default();
        bytes += payload.len();
        let header = message.headers().and_then(|h| {
            h.iter()
                .find(|h| h.key == headers::ENCODING)
                .and_then(|h| h.value)
        });
        let decoded = record_encoding(header, config.kafka.default_encoding)
            .and_then(|encoding| decode_record(encoding, payload));
        let spans = match decoded {
            Ok(spans) => spans,
            Err(error) => {
                metrics.records_undecodable.inc();
                tracing::error!(
                    topic = message.topic(),
                    partition = message.partition(),
                    offset = message.offset(),
                    %error,
                    "record cannot be decoded; skipped"
                );
                Vec::new()
            }
        };
        batch.push(Consumed {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            spans,
        });
    }
    Ok(batch)
}

/// Stores the next offset to read for every partition of the batch. Records
/// of one partition arrive in order and the batch is written as a whole, so
/// the highest offset per partition is contiguous with what came before.
fn store_offsets(consumer: &StreamConsumer, batch: &[Consumed]) -> Result<(), ConsumeError> {
    let mut highest: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for record in batch {
        let entry = highest
            .entry((record.topic.as_str(), record.partition))
            .or_insert(record.offset);
        *entry = (*entry).max(record.offset);
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in highest {
        // The committed offset is the next one to read, hence `+ 1`.
        list.add_partition_offset(topic, partition, Offset::Offset(offset + 1))?;
    }
    match consumer.store_offsets(&list) {
        Ok(()) => Ok(()),
        // A partition revoked meanwhile belongs to another member now; it
        // will reread these records and its writes are 409s.
        Err(error) => {
            tracing::warn!(%error, "cannot store offsets (partition revoked?)");
            Ok(())
        }
    }
}

async fn commit_on_exit(consumer: Arc<StreamConsumer>) {
    let result =
        tokio::task::spawn_blocking(move || consumer.commit_consumer_state(CommitMode::Sync)).await;
    match result {
        Ok(Ok(())) => tracing::info!("offsets committed"),
        Ok(Err(error)) => tracing::warn!(%error, "final commit failed"),
        Err(error) => tracing::error!(%error, "final commit task failed"),
    }
}
