//! The Kafka client every spanway process uses: one configuration type
//! (brokers, TLS, SASL, extra librdkafka properties), the librdkafka
//! properties made from it, rotation of a SASL password kept in a file, and
//! the diagnosis of connection faults that need an operator.

pub mod client;
pub mod config;
pub mod fault;

use rdkafka::ClientContext;
use rdkafka::error::KafkaError;

pub use client::{KafkaClient, set_sasl_credentials};
pub use config::{KafkaClientConfig, KafkaSaslConfig, KafkaTlsConfig, SaslMechanism};
pub use fault::{Diagnosis, FaultKind, FaultReporter};

/// A client context that hands librdkafka's errors to a [`FaultReporter`],
/// for clients that need no other callback (the collector's producer, the
/// dead-letter producer). Consumers with rebalance callbacks call
/// [`FaultReporter::report`] from their own context's `error`.
#[derive(Debug, Clone)]
pub struct ReportingContext(pub FaultReporter);

impl ClientContext for ReportingContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if self.0.report(&error, reason).is_none() {
            tracing::warn!(%error, reason, "kafka client error");
        }
    }
}
