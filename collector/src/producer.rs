//! Publishes trace groups to Kafka and waits for every acknowledgement.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prost::Message as _;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};
use spanway_kafka::{
    AckingContext, Acks, FaultReporter, KafkaClient, PolledProducer, ReportingContext,
};
use spanway_schemas::proto::otlp;
use spanway_schemas::{EncodeError, Encoding, SpanRecord, TraceId, encode_trace_within};
use spanway_service_kit::config::ConfigError;

use crate::config::KafkaSection;
use crate::error::RequestError;
use crate::grouping::TraceGroup;
use crate::grouping::encoded::EncodedGroup;
use crate::metrics::CollectorMetrics;

/// The Kafka side of the collector.
pub struct SpanProducer {
    producer: PolledProducer<AckingContext>,
    client: KafkaClient,
    faults: FaultReporter,
    topic: String,
    encoding: Encoding,
    max_record_bytes: usize,
    records_split: Counter,
    written_after_refusal: Counter,
    answer_deadline: Duration,
}

impl std::fmt::Debug for SpanProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanProducer")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl SpanProducer {
    /// Creates the producer. Idempotence and `acks=all` make an acknowledged
    /// record durable, and never duplicated by the producer's own retries
    /// within one producer epoch (a new epoch follows records timing out:
    /// see [`AckingContext::counting_epochs`]); `murmur2_random` is the
    /// partitioner the topic contract prescribes. Connection faults
    /// (credentials, ACLs, certificates) go to `faults`; split traces,
    /// batches, producer epochs and records written after their request was
    /// refused are counted in `metrics`.
    pub fn new(
        config: &KafkaSection,
        metrics: &CollectorMetrics,
        faults: FaultReporter,
    ) -> Result<Self, ProducerError> {
        let client = KafkaClient::new(&config.client)?;
        client.log_settings("producer");
        let properties = client.client_config(|role| {
            role.set("enable.idempotence", "true")
                .set("acks", "all")
                .set("partitioner", "murmur2_random")
                .set("compression.type", &config.compression)
                .set("compression.level", config.compression_level.to_string())
                .set("linger.ms", config.linger.as_millis().to_string())
                .set("batch.size", config.batch_bytes.to_string())
                .set("batch.num.messages", config.batch_records.to_string())
                // For the batch and epoch counts
                // (collector_kafka_batches_total, collector_kafka_producer_epochs_total).
                .set("statistics.interval.ms", "5000")
                .set(
                    "message.timeout.ms",
                    config.delivery_timeout.as_millis().to_string(),
                )
                .set(
                    "message.max.bytes",
                    (config.max_record_bytes + 64 * 1024).to_string(),
                );
        });
        let producer = PolledProducer::new(
            &properties,
            AckingContext::new(ReportingContext::new(&client, faults.clone()))
                .counting_batches(metrics.kafka_batches.clone())
                .counting_epochs(metrics.kafka_producer_epochs.clone())
                .counting_written_after_refusal(metrics.kafka_records_refused_written.clone()),
            "kafka-acks",
        )?;
        Ok(SpanProducer {
            producer,
            client,
            faults,
            topic: config.topic.clone(),
            encoding: config.encoding,
            max_record_bytes: config.max_record_bytes,
            records_split: metrics.traces_split.clone(),
            written_after_refusal: metrics.kafka_records_refused_written.clone(),
            answer_deadline: config.delivery_timeout + Duration::from_secs(1),
        })
    }

    /// Hands a rotated `kafka.sasl.password_file` to the producer until
    /// `token` is cancelled.
    pub fn spawn_password_refresh(
        &self,
        token: tokio_util::sync::CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let producer = self.producer.clone();
        self.client.spawn_password_refresh(
            move |username, password| {
                spanway_kafka::set_sasl_credentials(producer.client(), username, password)
            },
            token,
        )
    }

    /// The encoding records are written in.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Publishes every group and returns the number of records written.
    /// Succeeds only when Kafka acknowledged all of them.
    pub async fn publish(&self, groups: Vec<TraceGroup>) -> Result<usize, RequestError> {
        let mut records = Vec::new();
        let mut split = 0usize;
        for group in groups {
            let encoded = self.encode_within(group.trace_id, group.resource_spans)?;
            if encoded.len() > 1 && !self.encoding.one_span_per_record() {
                split += 1;
            }
            records.extend(encoded);
        }
        self.records_split.inc_by(split as u64);
        self.send(&records).await
    }

    /// Publishes groups whose `otlp_proto` values are built already (see
    /// [`crate::grouping::encoded`]); a value over the record limit is
    /// decoded and split as [`SpanProducer::publish`] splits it. Only for a
    /// producer writing `otlp_proto`.
    pub async fn publish_encoded(&self, groups: Vec<EncodedGroup>) -> Result<usize, RequestError> {
        debug_assert_eq!(self.encoding, Encoding::OtlpProto);
        let mut records = Vec::with_capacity(groups.len());
        let mut split = 0usize;
        for group in groups {
            if group.value.len() <= self.max_record_bytes {
                records.push(SpanRecord::new(group.trace_id, self.encoding, group.value));
                continue;
            }
            let data = otlp::TracesData::decode(group.value.as_slice())
                .map_err(|e| RequestError::Malformed(e.to_string()))?;
            let encoded = self.encode_within(group.trace_id, data.resource_spans)?;
            if encoded.len() > 1 {
                split += 1;
            }
            records.extend(encoded);
        }
        self.records_split.inc_by(split as u64);
        self.send(&records).await
    }

    fn encode_within(
        &self,
        trace_id: TraceId,
        resource_spans: Vec<otlp::ResourceSpans>,
    ) -> Result<Vec<SpanRecord>, RequestError> {
        encode_trace_within(
            self.encoding,
            trace_id,
            resource_spans,
            self.max_record_bytes,
        )
        .map_err(|e| match e {
            EncodeError::SpanTooLarge { .. } => RequestError::SpanTooLarge(e.to_string()),
            other => RequestError::Malformed(other.to_string()),
        })
    }

    /// Sends `records` and waits for every acknowledgement.
    async fn send(&self, records: &[SpanRecord]) -> Result<usize, RequestError> {
        let acks = Acks::new(records.len());
        for record in records {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for (name, value) in record.headers {
                headers = headers.insert(Header {
                    key: name,
                    value: Some(value),
                });
            }
            let base = BaseRecord::with_opaque_to(&self.topic, acks.clone())
                .key(record.key.as_str())
                .payload(record.value.as_slice())
                .headers(headers);
            // A record refused here is never reported, so the request
            // answers now; the ones already queued settle unobserved but
            // counted if written.
            let refusal = match self.producer.send(base) {
                Ok(()) => continue,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    RequestError::Overloaded
                }
                Err((error, _)) => RequestError::Unavailable(error.to_string()),
            };
            self.written_after_refusal.inc_by(acks.refused());
            return Err(refusal);
        }

        // librdkafka's own timeout can run late (an idempotent producer
        // waits for requests already on the wire), so the answer to the
        // client is bounded here as well.
        let Ok(outcome) = tokio::time::timeout(self.answer_deadline, acks.clone().all()).await
        else {
            self.written_after_refusal.inc_by(acks.refused());
            return Err(RequestError::Unavailable(format!(
                "no acknowledgement within {}ms",
                self.answer_deadline.as_millis()
            )));
        };
        if let Err(error) = outcome {
            self.written_after_refusal.inc_by(acks.refused());
            let reason = error.to_string();
            self.faults.report(&error, &reason);
            return Err(RequestError::Unavailable(reason));
        }
        self.faults.clear();
        Ok(records.len())
    }

    /// Waits up to `timeout` for records still in flight.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }

    /// Whether the brokers answer a metadata request for the topic, the
    /// topic may be written, and no connection fault (credentials, ACL,
    /// certificate) was reported lately.
    pub fn check_brokers(&self, timeout: Duration) -> Result<(), String> {
        if let Some(fault) = self.faults.current() {
            return Err(format!(
                "{} fault; check {}",
                fault.kind.as_str(),
                fault.setting
            ));
        }
        let metadata = self
            .producer
            .client()
            .fetch_metadata(Some(&self.topic), timeout)
            .map_err(|e| e.to_string())?;
        if let Some(error) = metadata.topics().iter().find_map(|t| t.error()) {
            let error = KafkaError::MetadataFetch(error.into());
            let reason = error.to_string();
            self.faults.report(&error, &reason);
            return Err(reason);
        }
        Ok(())
    }
}

/// The producer could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    /// A setting is invalid or a file it names cannot be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// librdkafka refused the properties.
    #[error("kafka producer: {0}")]
    Kafka(#[from] KafkaError),
}
