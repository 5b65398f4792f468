//! Splits an OTLP export request into one group per trace.
//!
//! The contract wants one record per trace, keyed by trace id. A request may
//! mix many traces across many resources and scopes; each group keeps the
//! resource and scope of its spans, so nothing of the original is lost.

use std::collections::HashMap;

use spanway_schemas::TraceId;
use spanway_schemas::proto::otlp;

/// Spans of one trace, still in OTLP form.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceGroup {
    /// The trace all spans belong to.
    pub trace_id: TraceId,
    /// The spans, under their original resources and scopes.
    pub resource_spans: Vec<otlp::ResourceSpans>,
    /// Number of spans in the group.
    pub span_count: usize,
}

/// A span whose ids are invalid; the whole request is refused because OTLP
/// clients expect all-or-nothing unless `partial_success` says otherwise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("resource_spans[{resource}].scope_spans[{scope}].spans[{span}].{source}")]
pub struct InvalidSpan {
    resource: usize,
    scope: usize,
    span: usize,
    source: spanway_schemas::IdError,
}

/// Groups the spans of `request` by trace id, in first-seen order.
pub fn group_by_trace(
    request: otlp::ExportTraceServiceRequest,
) -> Result<Vec<TraceGroup>, InvalidSpan> {
    let mut order: Vec<TraceGroup> = Vec::new();
    let mut index: HashMap<TraceId, usize> = HashMap::new();
    for (r, resource_spans) in request.resource_spans.into_iter().enumerate() {
        let otlp::ResourceSpans {
            resource,
            scope_spans,
            schema_url,
        } = resource_spans;
        for (s, scope_spans) in scope_spans.into_iter().enumerate() {
            let otlp::ScopeSpans {
                scope,
                spans,
                schema_url: scope_schema_url,
            } = scope_spans;
            for (i, span) in spans.into_iter().enumerate() {
                let at = |source| InvalidSpan {
                    resource: r,
                    scope: s,
                    span: i,
                    source,
                };
                let trace_id = TraceId::from_slice(&span.trace_id).map_err(at)?;
                spanway_schemas::SpanId::from_slice(&span.span_id).map_err(at)?;
                let slot = *index.entry(trace_id).or_insert_with(|| {
                    order.push(TraceGroup {
                        trace_id,
                        resource_spans: Vec::new(),
                        span_count: 0,
                    });
                    order.len() - 1
                });
                let group = &mut order[slot];
                group.span_count += 1;
                // Spans arrive grouped by resource and scope, so the last
                // entry is the one to extend unless we moved on.
                let needs_resource = group
                    .resource_spans
                    .last()
                    .is_none_or(|last| last.resource != resource || last.schema_url != schema_url);
                if needs_resource {
                    group.resource_spans.push(otlp::ResourceSpans {
                        resource: resource.clone(),
                        scope_spans: Vec::new(),
                        schema_url: schema_url.clone(),
                    });
                }
                let rs = group.resource_spans.last_mut().expect("pushed above");
                let needs_scope = rs
                    .scope_spans
                    .last()
                    .is_none_or(|last| last.scope != scope || last.schema_url != scope_schema_url);
                if needs_scope {
                    rs.scope_spans.push(otlp::ScopeSpans {
                        scope: scope.clone(),
                        spans: Vec::new(),
                        schema_url: scope_schema_url.clone(),
                    });
                }
                rs.scope_spans
                    .last_mut()
                    .expect("pushed above")
                    .spans
                    .push(span);
            }
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(trace: u8, id: u8) -> otlp::Span {
        otlp::Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            ..Default::default()
        }
    }

    fn resource(name: &str, spans: Vec<otlp::Span>) -> otlp::ResourceSpans {
        otlp::ResourceSpans {
            resource: Some(otlp::Resource {
                attributes: vec![otlp::KeyValue {
                    key: "service.name".into(),
                    value: Some(otlp::AnyValue {
                        value: Some(otlp::any_value::Value::StringValue(name.into())),
                    }),
                }],
                ..Default::default()
            }),
            scope_spans: vec![otlp::ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn groups_across_resources_and_keeps_resources() {
        let request = otlp::ExportTraceServiceRequest {
            resource_spans: vec![
                resource("a", vec![span(1, 1), span(2, 2), span(1, 3)]),
                resource("b", vec![span(1, 4)]),
            ],
        };
        let groups = group_by_trace(request).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].trace_id.as_bytes(), &[1; 16]);
        assert_eq!(groups[0].span_count, 3);
        assert_eq!(groups[0].resource_spans.len(), 2, "one per source resource");
        assert_eq!(groups[0].resource_spans[0].scope_spans[0].spans.len(), 2);
        assert_eq!(groups[1].span_count, 1);
        let total: usize = groups.iter().map(|g| g.span_count).sum();
        assert_eq!(total, 4);
    }

    #[test]
    fn invalid_id_names_the_span() {
        let mut bad = span(1, 1);
        bad.span_id = vec![0; 8];
        let request = otlp::ExportTraceServiceRequest {
            resource_spans: vec![resource("a", vec![span(1, 2), bad])],
        };
        let err = group_by_trace(request).unwrap_err();
        assert_eq!(
            err.to_string(),
            "resource_spans[0].scope_spans[0].spans[1].span_id: all-zero id is invalid"
        );
    }
}
