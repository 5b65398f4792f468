//! Splits an OTLP export request into one group per trace, setting aside
//! the spans that cannot be published.
//!
//! The contract wants one record per trace, keyed by trace id. A request may
//! mix many traces across many resources and scopes; each group keeps the
//! resource and scope of its spans, so nothing of the original is lost.
//!
//! A span whose ids are invalid or whose end precedes its start is removed
//! here, before anything is encoded: the Jaeger encodings could not convert
//! it and the ingester could not store it, so letting it through would only
//! move the failure to a place where nobody can tell the client. OTLP lets a
//! server reject such spans one by one (`partial_success`) while publishing
//! the rest; receivers without that notion refuse the request instead.

pub mod encoded;

use std::collections::HashMap;
use std::fmt;

use spanway_schemas::proto::otlp;
use spanway_schemas::{IdError, SpanId, TraceId};

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

/// What is wrong with a rejected span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpanProblem {
    /// `trace_id` is not 16 bytes, or is all zero.
    TraceId(IdError),
    /// `span_id` is not 8 bytes, or is all zero.
    SpanId(IdError),
    /// `parent_span_id` is set but not 8 bytes, or is all zero.
    ParentSpanId(IdError),
    /// A link's trace or span id is invalid; the error names which.
    Link {
        /// Position of the link in `links`.
        index: usize,
        /// The id at fault.
        source: IdError,
    },
    /// `end_time_unix_nano` is before `start_time_unix_nano`.
    EndBeforeStart {
        /// The span's start, in nanoseconds since the epoch.
        start: u64,
        /// The span's end, earlier than `start`.
        end: u64,
    },
}

impl SpanProblem {
    /// A fixed label for the refusal metric.
    pub fn reason(&self) -> &'static str {
        match self {
            SpanProblem::TraceId(_) => "invalid_trace_id",
            SpanProblem::SpanId(_) => "invalid_span_id",
            SpanProblem::ParentSpanId(_) => "invalid_parent_span_id",
            SpanProblem::Link { .. } => "invalid_link",
            SpanProblem::EndBeforeStart { .. } => "end_before_start",
        }
    }
}

/// How field names are spelled in messages: the `.proto` names for protobuf
/// clients, the lowerCamelCase names of the OTLP/JSON mapping for JSON ones,
/// so that a client finds the field in the form it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldNaming {
    /// `resource_spans[0].scope_spans[0].spans[1].span_id`.
    Proto,
    /// `resourceSpans[0].scopeSpans[0].spans[1].spanId`.
    Json,
}

/// A span removed from a request, with where it sat and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedSpan {
    /// Index in `resource_spans`.
    pub resource: usize,
    /// Index in that resource's `scope_spans`.
    pub scope: usize,
    /// Index in that scope's `spans`.
    pub span: usize,
    /// What is wrong.
    pub problem: SpanProblem,
}

impl RejectedSpan {
    /// `<path to the field>: <problem>`, spelled as `naming` says.
    pub fn describe(&self, naming: FieldNaming) -> String {
        let json = naming == FieldNaming::Json;
        let name = |proto: &'static str, camel: &'static str| if json { camel } else { proto };
        let path = format!(
            "{}[{}].{}[{}].spans[{}]",
            name("resource_spans", "resourceSpans"),
            self.resource,
            name("scope_spans", "scopeSpans"),
            self.scope,
            self.span
        );
        match &self.problem {
            SpanProblem::TraceId(e) => {
                format!("{path}.{}: {}", name("trace_id", "traceId"), id_problem(e))
            }
            SpanProblem::SpanId(e) => {
                format!("{path}.{}: {}", name("span_id", "spanId"), id_problem(e))
            }
            SpanProblem::ParentSpanId(e) => format!(
                "{path}.{}: {}",
                name("parent_span_id", "parentSpanId"),
                id_problem(e)
            ),
            SpanProblem::Link { index, source } => {
                let field = match source {
                    IdError::WrongLength { field, .. }
                    | IdError::AllZero { field }
                    | IdError::NotHex { field, .. } => *field,
                };
                let field = match (field, json) {
                    ("trace_id", true) => "traceId",
                    ("span_id", true) => "spanId",
                    (other, _) => other,
                };
                format!("{path}.links[{index}].{field}: {}", id_problem(source))
            }
            SpanProblem::EndBeforeStart { start, end } => format!(
                "{path}.{}: {end} is before {} {start}",
                name("end_time_unix_nano", "endTimeUnixNano"),
                name("start_time_unix_nano", "startTimeUnixNano"),
            ),
        }
    }
}

/// The problem of an id without the field name [`IdError`] puts first,
/// since the caller names the field itself.
fn id_problem(error: &IdError) -> String {
    match error {
        IdError::WrongLength {
            expected, actual, ..
        } => format!("expected {expected} bytes, got {actual}"),
        IdError::AllZero { .. } => "all-zero id is invalid".to_owned(),
        IdError::NotHex { value, .. } => format!("{value:?} is not hexadecimal"),
    }
}

/// A rejected span as an error, for receivers that refuse the whole request
/// when one span is invalid (their protocol has no partial success).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidSpan(pub RejectedSpan);

impl fmt::Display for InvalidSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.describe(FieldNaming::Proto))
    }
}

/// The outcome of [`group_by_trace`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Grouped {
    /// One group per trace, in first-seen order; only valid spans.
    pub groups: Vec<TraceGroup>,
    /// The spans left out, in request order.
    pub rejected: Vec<RejectedSpan>,
}

impl Grouped {
    /// Number of spans in `groups`.
    pub fn span_count(&self) -> usize {
        self.groups.iter().map(|g| g.span_count).sum()
    }
}

/// Checks one span; `Ok` holds its trace id.
fn check_span(span: &otlp::Span) -> Result<TraceId, SpanProblem> {
    let trace_id = TraceId::from_slice(&span.trace_id).map_err(SpanProblem::TraceId)?;
    SpanId::from_slice(&span.span_id).map_err(SpanProblem::SpanId)?;
    // An empty parent means a root span; anything else must be a real id.
    if !span.parent_span_id.is_empty() {
        SpanId::from_slice(&span.parent_span_id).map_err(SpanProblem::ParentSpanId)?;
    }
    for (index, link) in span.links.iter().enumerate() {
        let at = |source| SpanProblem::Link { index, source };
        TraceId::from_slice(&link.trace_id).map_err(at)?;
        SpanId::from_slice(&link.span_id).map_err(at)?;
    }
    if span.end_time_unix_nano < span.start_time_unix_nano {
        return Err(SpanProblem::EndBeforeStart {
            start: span.start_time_unix_nano,
            end: span.end_time_unix_nano,
        });
    }
    Ok(trace_id)
}

/// Groups the valid spans of `request` by trace id, in first-seen order, and
/// lists the others.
pub fn group_by_trace(request: otlp::ExportTraceServiceRequest) -> Grouped {
    let mut order: Vec<TraceGroup> = Vec::new();
    let mut rejected = Vec::new();
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
                let trace_id = match check_span(&span) {
                    Ok(trace_id) => trace_id,
                    Err(problem) => {
                        rejected.push(RejectedSpan {
                            resource: r,
                            scope: s,
                            span: i,
                            problem,
                        });
                        continue;
                    }
                };
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
                let same_resource = group
                    .resource_spans
                    .last()
                    .is_some_and(|last| last.resource == resource && last.schema_url == schema_url);
                if !same_resource {
                    group.resource_spans.push(otlp::ResourceSpans {
                        resource: resource.clone(),
                        scope_spans: Vec::new(),
                        schema_url: schema_url.clone(),
                    });
                }
                let Some(rs) = group.resource_spans.last_mut() else {
                    continue; // unreachable: pushed above when empty
                };
                let same_scope = rs
                    .scope_spans
                    .last()
                    .is_some_and(|last| last.scope == scope && last.schema_url == scope_schema_url);
                if !same_scope {
                    rs.scope_spans.push(otlp::ScopeSpans {
                        scope: scope.clone(),
                        spans: Vec::new(),
                        schema_url: scope_schema_url.clone(),
                    });
                }
                if let Some(ss) = rs.scope_spans.last_mut() {
                    ss.spans.push(span);
                }
            }
        }
    }
    Grouped {
        groups: order,
        rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn span(trace: u8, id: u8) -> otlp::Span {
        otlp::Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            ..Default::default()
        }
    }

    pub(super) fn resource(name: &str, spans: Vec<otlp::Span>) -> otlp::ResourceSpans {
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

    fn one(spans: Vec<otlp::Span>) -> Grouped {
        group_by_trace(otlp::ExportTraceServiceRequest {
            resource_spans: vec![resource("a", spans)],
        })
    }

    #[test]
    fn groups_across_resources_and_keeps_resources() {
        let request = otlp::ExportTraceServiceRequest {
            resource_spans: vec![
                resource("a", vec![span(1, 1), span(2, 2), span(1, 3)]),
                resource("b", vec![span(1, 4)]),
            ],
        };
        let grouped = group_by_trace(request);
        assert!(grouped.rejected.is_empty());
        let groups = grouped.groups;
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
    fn invalid_id_names_the_span_and_the_rest_is_kept() {
        let mut bad = span(1, 1);
        bad.span_id = vec![0; 8];
        let grouped = one(vec![span(1, 2), bad, span(3, 3)]);
        assert_eq!(grouped.span_count(), 2);
        assert_eq!(grouped.groups.len(), 2);
        assert_eq!(grouped.rejected.len(), 1);
        let rejected = &grouped.rejected[0];
        assert_eq!(rejected.problem.reason(), "invalid_span_id");
        assert_eq!(
            rejected.describe(FieldNaming::Proto),
            "resource_spans[0].scope_spans[0].spans[1].span_id: all-zero id is invalid"
        );
        assert_eq!(
            InvalidSpan(rejected.clone()).to_string(),
            "resource_spans[0].scope_spans[0].spans[1].span_id: all-zero id is invalid"
        );
        assert_eq!(
            rejected.describe(FieldNaming::Json),
            "resourceSpans[0].scopeSpans[0].spans[1].spanId: all-zero id is invalid"
        );
    }

    #[test]
    fn every_problem_is_named() {
        let mut short_trace = span(1, 1);
        short_trace.trace_id = vec![1; 8];
        let mut zero_trace = span(1, 1);
        zero_trace.trace_id = vec![0; 16];
        let mut long_span = span(1, 1);
        long_span.span_id = vec![1; 9];
        let mut bad_parent = span(1, 1);
        bad_parent.parent_span_id = vec![0; 8];
        let mut bad_link = span(1, 1);
        bad_link.links = vec![otlp::span::Link {
            trace_id: vec![2; 16],
            span_id: vec![1; 4],
            ..Default::default()
        }];
        let mut backwards = span(1, 1);
        backwards.start_time_unix_nano = 30;
        let mut fine = span(1, 1);
        fine.parent_span_id = vec![7; 8];
        let grouped = one(vec![
            short_trace,
            zero_trace,
            long_span,
            bad_parent,
            bad_link,
            backwards,
            fine,
        ]);
        assert_eq!(grouped.span_count(), 1);
        let described: Vec<_> = grouped
            .rejected
            .iter()
            .map(|r| (r.problem.reason(), r.describe(FieldNaming::Json)))
            .collect();
        let p = "resourceSpans[0].scopeSpans[0].spans";
        assert_eq!(
            described,
            vec![
                (
                    "invalid_trace_id",
                    format!("{p}[0].traceId: expected 16 bytes, got 8")
                ),
                (
                    "invalid_trace_id",
                    format!("{p}[1].traceId: all-zero id is invalid")
                ),
                (
                    "invalid_span_id",
                    format!("{p}[2].spanId: expected 8 bytes, got 9")
                ),
                (
                    "invalid_parent_span_id",
                    format!("{p}[3].parentSpanId: all-zero id is invalid")
                ),
                (
                    "invalid_link",
                    format!("{p}[4].links[0].spanId: expected 8 bytes, got 4")
                ),
                (
                    "end_before_start",
                    format!("{p}[5].endTimeUnixNano: 20 is before startTimeUnixNano 30")
                ),
            ]
        );
        assert_eq!(
            grouped.rejected[5].describe(FieldNaming::Proto),
            "resource_spans[0].scope_spans[0].spans[5].end_time_unix_nano: 20 is before start_time_unix_nano 30"
        );
    }

    #[test]
    fn all_invalid_leaves_no_group() {
        let mut bad = span(1, 1);
        bad.trace_id.clear();
        let grouped = one(vec![bad]);
        assert!(grouped.groups.is_empty());
        assert_eq!(grouped.rejected.len(), 1);
    }
}
