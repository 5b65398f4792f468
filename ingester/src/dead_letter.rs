//! The dead-letter topic: where records and documents that can never be
//! stored go, so that nothing is dropped and an operator can inspect and
//! replay them. A batch's offsets are committed only after its dead letters
//! are acknowledged by Kafka.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use rand::Rng;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use spanway_kafka::{
    AckingContext, Acks, FaultReporter, KafkaClient, PolledProducer, ReportingContext,
};
use spanway_service_kit::liveness::Heartbeat;
use tokio_util::sync::CancellationToken;

/// Header names on dead letters.
pub mod headers {
    /// Why the record or document was refused.
    pub const REASON: &str = "dlq.reason";
    /// `undecodable_record` or `rejected_document`.
    pub const KIND: &str = "dlq.kind";
    /// Topic of the source record.
    pub const SOURCE_TOPIC: &str = "dlq.source.topic";
    /// Partition of the source record, decimal.
    pub const SOURCE_PARTITION: &str = "dlq.source.partition";
    /// Offset of the source record, decimal.
    pub const SOURCE_OFFSET: &str = "dlq.source.offset";
    /// Index the refused document was written to.
    pub const DOCUMENT_INDEX: &str = "dlq.document.index";
    /// Id of the refused document.
    pub const DOCUMENT_ID: &str = "dlq.document.id";
}

/// Where a record came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
}

/// What is dead-lettered.
#[derive(Debug, Clone, PartialEq)]
pub enum LetterKind {
    /// A record that could not be decoded; the value is the original bytes.
    UndecodableRecord,
    /// A document the engine refused; the value is the document source.
    RejectedDocument {
        /// Target index.
        index: String,
        /// Document id.
        id: String,
    },
}

/// One dead letter.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Source record.
    pub origin: Origin,
    /// Record key, if any (the trace id for contract records).
    pub key: Option<Vec<u8>>,
    /// The value to publish.
    pub value: Vec<u8>,
    /// Why.
    pub reason: String,
    /// What.
    pub kind: LetterKind,
}

/// Shutdown arrived before every dead letter was acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shutdown before the dead letters were acknowledged")]
pub struct Cancelled;

/// Publishes dead letters.
#[derive(Clone)]
pub struct DeadLetters {
    producer: PolledProducer<AckingContext>,
    topic: String,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl DeadLetters {
    /// An idempotent producer to `topic`, connected as the consumer is
    /// (`client`), reporting connection faults to `faults` and counting its
    /// new epochs in `epochs`.
    ///
    /// Dead letters are delivered at least once: a letter whose send failed
    /// is sent again, and when the failure came with a new producer epoch
    /// (see [`AckingContext::counting_epochs`]) its first attempt may be on
    /// the topic too. The counter tells an operator replaying the topic
    /// whether copies are possible; each letter's source position headers
    /// identify them.
    pub fn new(
        client: &KafkaClient,
        topic: &str,
        faults: FaultReporter,
        epochs: Counter,
    ) -> Result<Self, KafkaError> {
        let properties = client.client_config(|role| {
            role.set("enable.idempotence", "true")
                .set("acks", "all")
                .set("compression.type", "zstd")
                .set("message.timeout.ms", "30000")
                // The statistics carry the producer's epoch.
                .set("statistics.interval.ms", "5000");
        });
        let producer = PolledProducer::new(
            &properties,
            AckingContext::new(ReportingContext::new(client, faults)).counting_epochs(epochs),
            "dead-letters",
        )?;
        Ok(DeadLetters {
            producer,
            topic: topic.to_owned(),
        })
    }

    /// Hands a rotated SASL password to the producer.
    pub fn set_sasl_credentials(&self, username: &str, password: &str) -> Result<(), String> {
        spanway_kafka::set_sasl_credentials(
            rdkafka::producer::Producer::client(&*self.producer),
            username,
            password,
        )
    }

    /// Publishes every letter, retrying failures with backoff until each is
    /// acknowledged or `cancel` fires. `heartbeat` beats every round: a
    /// round lasts at most the producer's message timeout.
    pub async fn send_all(
        &self,
        letters: &[DeadLetter],
        cancel: &CancellationToken,
        heartbeat: &Heartbeat,
    ) -> Result<(), Cancelled> {
        let mut backoff = Duration::from_millis(200);
        let mut pending: Vec<&DeadLetter> = letters.iter().collect();
        while !pending.is_empty() {
            heartbeat.beat();
            let mut deliveries = Vec::with_capacity(pending.len());
            for letter in &pending {
                // Each letter is its own set: only the failed ones go again.
                let acks = Acks::new(1);
                let outcome = match self.producer.send(self.record(letter, acks.clone())) {
                    Ok(()) => futures::future::Either::Left(acks.all()),
                    // Refused before it was queued (a full queue, say): no
                    // report will come, so the outcome is known now.
                    Err((error, _)) => {
                        futures::future::Either::Right(std::future::ready(Err(error)))
                    }
                };
                deliveries.push(outcome);
            }
            let outcomes = futures::future::join_all(deliveries).await;
            let mut failed = Vec::new();
            for (letter, outcome) in pending.into_iter().zip(outcomes) {
                if let Err(error) = outcome {
                    tracing::warn!(%error, topic = %self.topic, "dead letter not acknowledged; retrying");
                    failed.push(letter);
                }
            }
            pending = failed;
            if pending.is_empty() {
                break;
            }
            let jitter = rand::rng().random_range(0.5..1.0);
            tokio::select! {
                _ = cancel.cancelled() => return Err(Cancelled),
                _ = tokio::time::sleep(backoff.mul_f64(jitter)) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
        Ok(())
    }

    fn record<'a>(
        &'a self,
        letter: &'a DeadLetter,
        acks: std::sync::Arc<Acks>,
    ) -> BaseRecord<'a, [u8], [u8], std::sync::Arc<Acks>> {
        let partition = letter.origin.partition.to_string();
        let offset = letter.origin.offset.to_string();
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: headers::REASON,
                value: Some(letter.reason.as_bytes()),
            })
            .insert(Header {
                key: headers::SOURCE_TOPIC,
                value: Some(letter.origin.topic.as_bytes()),
            })
            .insert(Header {
                key: headers::SOURCE_PARTITION,
                value: Some(partition.as_bytes()),
            })
            .insert(Header {
                key: headers::SOURCE_OFFSET,
                value: Some(offset.as_bytes()),
            });
        match &letter.kind {
            LetterKind::UndecodableRecord => {
                headers = headers.insert(Header {
                    key: headers::KIND,
                    value: Some("undecodable_record"),
                });
            }
            LetterKind::RejectedDocument { index, id } => {
                headers = headers
                    .insert(Header {
                        key: headers::KIND,
                        value: Some("rejected_document"),
                    })
                    .insert(Header {
                        key: headers::DOCUMENT_INDEX,
                        value: Some(index.as_bytes()),
                    })
                    .insert(Header {
                        key: headers::DOCUMENT_ID,
                        value: Some(id.as_bytes()),
                    });
            }
        }
        let mut record = BaseRecord::with_opaque_to(&self.topic, acks)
            .payload(&letter.value[..])
            .headers(headers);
        if let Some(key) = &letter.key {
            record = record.key(&key[..]);
        }
        record
    }
}
