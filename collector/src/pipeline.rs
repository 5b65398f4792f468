//! What every receiver does with a decoded request: set invalid spans
//! aside, group by trace, publish, count.

use spanway_schemas::proto::otlp;

use prost::Message as _;

use crate::budget::Budget;
use crate::error::RequestError;
use crate::grouping::{InvalidSpan, RejectedSpan, group_by_trace};
use crate::metrics::{CollectorMetrics, ReceiverLabel, RefusalLabels};
use crate::producer::SpanProducer;

/// The receiver-independent part of handling a request.
#[derive(Debug)]
pub struct Pipeline {
    producer: SpanProducer,
    budget: Budget,
    metrics: CollectorMetrics,
}

/// What happened to the spans of a request that was not refused as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Spans acknowledged by Kafka.
    pub spans: usize,
    /// Spans removed because they were invalid; none of their data was
    /// published. When `spans` is 0 and this is not empty, every span of
    /// the request was invalid and the receiver should answer as for bad
    /// input rather than with success.
    pub rejected: Vec<RejectedSpan>,
}

/// What to do with a request holding some invalid spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InvalidSpans {
    /// Publish the others and report the invalid ones (OTLP's partial success).
    Reject,
    /// Refuse the whole request (protocols without partial success).
    RefuseRequest,
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
    /// One invalid span refuses the whole request, for protocols that cannot
    /// tell a client that only some of its spans were taken.
    pub async fn accept(
        &self,
        receiver: &'static str,
        request: otlp::ExportTraceServiceRequest,
    ) -> Result<(), RequestError> {
        self.handle(receiver, request, InvalidSpans::RefuseRequest)
            .await
            .map(|_| ())
    }

    /// Publishes the valid spans of `request` and returns the invalid ones,
    /// for OTLP's `partial_success`; `Ok` only once Kafka has every valid
    /// span. Each rejected span is counted under its own reason.
    pub async fn accept_partial(
        &self,
        receiver: &'static str,
        request: otlp::ExportTraceServiceRequest,
    ) -> Result<Accepted, RequestError> {
        self.handle(receiver, request, InvalidSpans::Reject).await
    }

    async fn handle(
        &self,
        receiver: &'static str,
        request: otlp::ExportTraceServiceRequest,
        invalid: InvalidSpans,
    ) -> Result<Accepted, RequestError> {
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
        let Some(reservation) = self.budget.try_reserve(request.encoded_len()) else {
            return Err(self.refuse(receiver, spans, RequestError::Overloaded));
        };
        self.metrics
            .bytes_in_flight
            .set(self.budget.in_use() as i64);
        let grouped = group_by_trace(request);
        if let Some(first) = grouped.rejected.first() {
            if invalid == InvalidSpans::RefuseRequest {
                let error = RequestError::from(InvalidSpan(first.clone()));
                drop(reservation);
                self.metrics
                    .bytes_in_flight
                    .set(self.budget.in_use() as i64);
                return Err(self.refuse(receiver, spans, error));
            }
            for rejected in &grouped.rejected {
                let labels = RefusalLabels {
                    receiver,
                    reason: rejected.problem.reason(),
                };
                self.metrics.spans_refused.get_or_create(&labels).inc();
            }
            tracing::debug!(
                receiver,
                rejected = grouped.rejected.len(),
                first = %first.describe(crate::grouping::FieldNaming::Proto),
                "invalid spans removed from a request"
            );
        }
        let valid = grouped.span_count();
        let outcome = if grouped.groups.is_empty() {
            Ok(0)
        } else {
            self.producer.publish(grouped.groups).await
        };
        drop(reservation);
        self.metrics
            .bytes_in_flight
            .set(self.budget.in_use() as i64);
        match outcome {
            Ok(records) => {
                self.metrics
                    .spans_accepted
                    .get_or_create(&label)
                    .inc_by(valid as u64);
                self.metrics.records_produced.inc_by(records as u64);
                Ok(Accepted {
                    spans: valid,
                    rejected: grouped.rejected,
                })
            }
            Err(error) => Err(self.refuse(receiver, valid, error)),
        }
    }

    /// Counts `spans` refused for `error` and hands the error back.
    fn refuse(&self, receiver: &'static str, spans: usize, error: RequestError) -> RequestError {
        let labels = RefusalLabels {
            receiver,
            reason: error.reason(),
        };
        self.metrics
            .spans_refused
            .get_or_create(&labels)
            .inc_by(spans as u64);
        tracing::debug!(receiver, spans, %error, "request refused");
        error
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
