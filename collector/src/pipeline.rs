//! What every receiver does with a decoded request: group by trace, publish,
//! count.

use spanway_schemas::proto::otlp;

use prost::Message as _;

use crate::budget::Budget;
use crate::error::RequestError;
use crate::grouping::group_by_trace;
use crate::metrics::{CollectorMetrics, ReceiverLabel, RefusalLabels};
use crate::producer::SpanProducer;

/// The receiver-independent part of handling a request.
#[derive(Debug)]
pub struct Pipeline {
    producer: SpanProducer,
    budget: Budget,
    metrics: CollectorMetrics,
}

impl Pipeline {
    /// Wires the producer and the metrics.
    pub fn new(producer: SpanProducer, budget: Budget, metrics: CollectorMetrics) -> Self {
        Pipeline {
            producer,
            budget,
            metrics,
        }
    }

    /// The producer, for readiness checks and the final flush.
    pub fn producer(&self) -> &SpanProducer {
        &self.producer
    }

    /// Publishes the spans of `request`; `Ok` only once Kafka has them all.
    pub async fn accept(
        &self,
        receiver: &'static str,
        request: otlp::ExportTraceServiceRequest,
    ) -> Result<(), RequestError> {
        let spans: usize = request
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum();
        let label = ReceiverLabel { receiver };
        self.metrics
            .spans_received
            .get_or_create(&label)
            .inc_by(spans as u64);
        let outcome = match self.budget.try_reserve(request.encoded_len()) {
            None => Err(RequestError::Overloaded),
            Some(reservation) => {
                self.metrics
                    .bytes_in_flight
                    .set(self.budget.in_use() as i64);
                let outcome = match group_by_trace(request) {
                    Ok(groups) => self.producer.publish(groups).await,
                    Err(invalid) => Err(RequestError::from(invalid)),
                };
                drop(reservation);
                self.metrics
                    .bytes_in_flight
                    .set(self.budget.in_use() as i64);
                outcome
            }
        };
        match outcome {
            Ok(records) => {
                self.metrics
                    .spans_accepted
                    .get_or_create(&label)
                    .inc_by(spans as u64);
                self.metrics.records_produced.inc_by(records as u64);
                Ok(())
            }
            Err(error) => {
                let labels = RefusalLabels {
                    receiver,
                    reason: error.reason(),
                };
                self.metrics
                    .spans_refused
                    .get_or_create(&labels)
                    .inc_by(spans as u64);
                tracing::debug!(receiver, spans, %error, "request refused");
                Err(error)
            }
        }
    }

    /// Counts a request refused before its spans could be read.
    pub fn count_request_refusal(&self, receiver: &'static str, error: &RequestError) {
        let labels = RefusalLabels {
            receiver,
            reason: error.reason(),
        };
        self.metrics.requests_refused.get_or_create(&labels).inc();
        tracing::debug!(receiver, %error, "request refused");
    }
}
