//! What every receiver does with a decoded request: set invalid spans
//! aside, group by trace, publish, count.

use std::future::Future;

use bytes::Bytes;
use prost::Message as _;
use spanway_schemas::proto::otlp;
use spanway_schemas::{Encoding, wire};

use crate::budget::{Budget, Reservation};
use crate::error::RequestError;
use crate::grouping::encoded::{EncodedGrouped, group_encoded};
use crate::grouping::{Grouped, InvalidSpan, RejectedSpan, group_by_trace};
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

    /// The byte budget, which request bodies reserve as they arrive.
    pub fn budget(&self) -> &Budget {
        &self.budget
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
        held: Reservation,
    ) -> Result<(), RequestError> {
        self.handle(receiver, request, InvalidSpans::RefuseRequest, held)
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
        held: Reservation,
    ) -> Result<Accepted, RequestError> {
        self.handle(receiver, request, InvalidSpans::Reject, held)
            .await
    }

    /// Publishes the spans of an encoded `ExportTraceServiceRequest`, as
    /// [`Pipeline::accept`] does a decoded one.
    pub async fn accept_encoded(
        &self,
        receiver: &'static str,
        request: Bytes,
        held: Reservation,
    ) -> Result<(), RequestError> {
        self.handle_encoded(receiver, request, InvalidSpans::RefuseRequest, held)
            .await
            .map(|_| ())
    }

    /// Publishes the valid spans of an encoded `ExportTraceServiceRequest`,
    /// as [`Pipeline::accept_partial`] does a decoded one.
    pub async fn accept_encoded_partial(
        &self,
        receiver: &'static str,
        request: Bytes,
        held: Reservation,
    ) -> Result<Accepted, RequestError> {
        self.handle_encoded(receiver, request, InvalidSpans::Reject, held)
            .await
    }

    /// Validates the bytes, then groups them as they are when the topic
    /// takes `otlp_proto` and every resource is named; otherwise decodes
    /// them and takes the decoded path.
    async fn handle_encoded(
        &self,
        receiver: &'static str,
        request: Bytes,
        invalid: InvalidSpans,
        mut reservation: Reservation,
    ) -> Result<Accepted, RequestError> {
        if let Err(error) = wire::otlp::validate(wire::otlp::Message::TracesData, &request) {
            let error = RequestError::Malformed(format!("ExportTraceServiceRequest: {error}"));
            self.count_request_refusal(receiver, &error);
            return Err(error);
        }
        let forward = self.producer.encoding() == Encoding::OtlpProto;
        if !reservation.try_grow_to(request.len()) {
            let spans = wire::otlp::nested(&request, 1)
                .flat_map(|rs| wire::otlp::nested(rs, 2))
                .map(|ss| wire::otlp::nested(ss, 2).count())
                .sum();
            self.count_received(receiver, spans);
            return Err(self.refuse(receiver, spans, RequestError::Overloaded));
        }
        let Some(grouped) = forward.then(|| group_encoded(&request)).flatten() else {
            let decoded = otlp::ExportTraceServiceRequest::decode(request)
                .map_err(|e| RequestError::Malformed(e.to_string()))?;
            return self.handle(receiver, decoded, invalid, reservation).await;
        };
        let spans = grouped.span_count() + grouped.rejected.len();
        self.count_received(receiver, spans);
        let valid = grouped.span_count();
        let EncodedGrouped { groups, rejected } = grouped;
        self.publish_valid(
            receiver,
            spans,
            valid,
            rejected,
            invalid,
            reservation,
            || self.producer.publish_encoded(groups),
        )
        .await
    }

    async fn handle(
        &self,
        receiver: &'static str,
        mut request: otlp::ExportTraceServiceRequest,
        invalid: InvalidSpans,
        mut reservation: Reservation,
    ) -> Result<Accepted, RequestError> {
        let unnamed = name_unknown_services(&mut request);
        if unnamed > 0 {
            self.metrics.spans_without_service.inc_by(unnamed);
        }
        let spans: usize = request
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum();
        self.count_received(receiver, spans);
        if !reservation.try_grow_to(request.encoded_len()) {
            return Err(self.refuse(receiver, spans, RequestError::Overloaded));
        }
        let grouped = group_by_trace(request);
        let valid = grouped.span_count();
        let Grouped { groups, rejected } = grouped;
        self.publish_valid(
            receiver,
            spans,
            valid,
            rejected,
            invalid,
            reservation,
            || self.producer.publish(groups),
        )
        .await
    }

    fn count_received(&self, receiver: &'static str, spans: usize) {
        self.metrics
            .spans_received
            .get_or_create(&ReceiverLabel { receiver })
            .inc_by(spans as u64);
    }

    /// What both paths do once the spans are grouped: refuse or report the
    /// invalid ones, publish the rest, release the reservation, count.
    #[allow(clippy::too_many_arguments)]
    async fn publish_valid<F, P>(
        &self,
        receiver: &'static str,
        spans: usize,
        valid: usize,
        rejected: Vec<RejectedSpan>,
        invalid: InvalidSpans,
        reservation: Reservation,
        publish: P,
    ) -> Result<Accepted, RequestError>
    where
        P: FnOnce() -> F,
        F: Future<Output = Result<usize, RequestError>>,
    {
        if let Some(first) = rejected.first() {
            if invalid == InvalidSpans::RefuseRequest {
                let error = RequestError::from(InvalidSpan(first.clone()));
                drop(reservation);
                return Err(self.refuse(receiver, spans, error));
            }
            for rejected in &rejected {
                let labels = RefusalLabels {
                    receiver,
                    reason: rejected.problem.reason(),
                };
                self.metrics.spans_refused.get_or_create(&labels).inc();
            }
            tracing::debug!(
                receiver,
                rejected = rejected.len(),
                first = %first.describe(crate::grouping::FieldNaming::Proto),
                "invalid spans removed from a request"
            );
        }
        let outcome = if valid == 0 {
            Ok(0)
        } else {
            let started = std::time::Instant::now();
            let published = publish().await;
            self.metrics
                .produce_latency
                .observe(started.elapsed().as_secs_f64());
            published
        };
        drop(reservation);
        match outcome {
            Ok(records) => {
                self.metrics
                    .spans_accepted
                    .get_or_create(&ReceiverLabel { receiver })
                    .inc_by(valid as u64);
                self.metrics.records_produced.inc_by(records as u64);
                Ok(Accepted {
                    spans: valid,
                    rejected,
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

/// Gives every resource without a `service.name` the name OpenTelemetry
/// SDKs use for that case, so the span is stored and findable rather than
/// filed under an empty service. Returns the spans renamed.
fn name_unknown_services(request: &mut otlp::ExportTraceServiceRequest) -> u64 {
    use spanway_schemas::proto::otlp::any_value::Value;
    let mut renamed = 0;
    for rs in &mut request.resource_spans {
        let resource = rs.resource.get_or_insert_with(Default::default);
        let named = resource.attributes.iter().any(|kv| {
            kv.key == "service.name"
                && matches!(
                    kv.value.as_ref().and_then(|v| v.value.as_ref()),
                    Some(Value::StringValue(s)) if !s.is_empty()
                )
        });
        if named {
            continue;
        }
        resource.attributes.retain(|kv| kv.key != "service.name");
        resource.attributes.push(otlp::KeyValue {
            key: "service.name".into(),
            value: Some(otlp::AnyValue {
                value: Some(Value::StringValue(
                    spanway_schemas::to_jaeger::UNKNOWN_SERVICE.into(),
                )),
            }),
        });
        renamed += rs
            .scope_spans
            .iter()
            .map(|ss| ss.spans.len() as u64)
            .sum::<u64>();
    }
    renamed
}

#[cfg(test)]
mod unknown_service_tests {
    use super::*;

    #[test]
    fn resources_without_a_service_name_are_named_and_counted() {
        let span = otlp::Span::default();
        let named = otlp::ResourceSpans {
            resource: Some(otlp::Resource {
                attributes: vec![otlp::KeyValue {
                    key: "service.name".into(),
                    value: Some(otlp::AnyValue {
                        value: Some(otlp::any_value::Value::StringValue("cart".into())),
                    }),
                }],
                ..Default::default()
            }),
            scope_spans: vec![otlp::ScopeSpans {
                spans: vec![span.clone()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let unnamed = otlp::ResourceSpans {
            resource: None,
            scope_spans: vec![otlp::ScopeSpans {
                spans: vec![span.clone(), span],
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut request = otlp::ExportTraceServiceRequest {
            resource_spans: vec![named.clone(), unnamed],
        };
        assert_eq!(name_unknown_services(&mut request), 2);
        assert_eq!(
            request.resource_spans[0], named,
            "named resources are untouched"
        );
        let attributes = &request.resource_spans[1]
            .resource
            .as_ref()
            .unwrap()
            .attributes;
        assert_eq!(attributes.len(), 1);
        assert_eq!(
            attributes[0].value.as_ref().unwrap().value,
            Some(otlp::any_value::Value::StringValue(
                "unknown_service".into()
            ))
        );
    }
}
