//! The Kafka client every spanway process uses: one configuration type
//! (brokers, TLS, SASL, extra librdkafka properties), the librdkafka
//! properties made from it, rotation of a SASL password kept in a file, and
//! the diagnosis of connection faults that need an operator.

pub mod acks;
pub mod admin;
pub mod client;
pub mod config;
pub mod fault;
pub mod fetch;
pub mod group;
pub mod membership;
pub mod memory;
pub mod oidc;
pub mod polled;

use rdkafka::ClientContext;
use rdkafka::error::KafkaError;

pub use acks::{AckingContext, Acks};
pub use client::{KafkaClient, set_sasl_credentials};
pub use config::{KafkaClientConfig, KafkaSaslConfig, KafkaTlsConfig, SaslMechanism};
pub use fault::{Diagnosis, FaultKind, FaultReporter};
pub use polled::PolledProducer;

/// A client context that hands librdkafka's errors to a [`FaultReporter`]
/// and fetches OAUTHBEARER tokens, for clients that need no other callback
/// (the collector's producer, the dead-letter producer). Consumers with
/// rebalance callbacks do the same from their own context.
#[derive(Debug, Clone)]
pub struct ReportingContext {
    faults: FaultReporter,
    client: KafkaClient,
}

impl ReportingContext {
    /// A context for a client made from `client`.
    pub fn new(client: &KafkaClient, faults: FaultReporter) -> Self {
        ReportingContext {
            faults,
            client: client.clone(),
        }
    }
}

impl ClientContext for ReportingContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn error(&self, error: KafkaError, reason: &str) {
        if self.faults.report(&error, reason).is_none() {
            tracing::warn!(%error, reason, "kafka client error");
        }
    }

    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
        self.client.oauth_token()
    }
}
