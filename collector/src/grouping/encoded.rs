//! Grouping by trace without decoding: the spans of an encoded OTLP request
//! are copied byte for byte into one `TracesData` record per trace.
//!
//! Decoding a request into messages and encoding each trace again allocates
//! every attribute key and value twice; for a forwarder that reads only the
//! ids and times of a span, that is most of its work. Here the request is
//! validated once ([`wire::otlp::validate`], as strict as decoding), each
//! span's ids and times are read in place, and the records are assembled
//! from slices of the request: each span's bytes, its resource's and
//! scope's other fields, and new length prefixes. Decoding a record gives
//! the same messages the decoded path ([`super::group_by_trace`]) would
//! have published; fields this version does not know travel on.

use spanway_schemas::id_hashing::{IdMap, id_map};
use spanway_schemas::wire::{self, Value, otlp};
use spanway_schemas::{SpanId, TraceId};

use super::{RejectedSpan, SpanProblem};

/// Field numbers in `TracesData`, `ResourceSpans` and `ScopeSpans`.
const RESOURCE_SPANS: u32 = 1;
const SCOPE_SPANS: u32 = 2;
const SPANS: u32 = 2;
const RESOURCE: u32 = 1;

/// The spans of one trace as a `TracesData` record value.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedGroup {
    /// The trace all spans belong to.
    pub trace_id: TraceId,
    /// `TracesData` holding the spans under their resources and scopes.
    pub value: Vec<u8>,
    /// Number of spans in the group.
    pub span_count: usize,
}

/// The outcome of [`group_encoded`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EncodedGrouped {
    /// One group per trace, in first-seen order; only valid spans.
    pub groups: Vec<EncodedGroup>,
    /// The spans left out, in request order.
    pub rejected: Vec<RejectedSpan>,
}

impl EncodedGrouped {
    /// Number of spans in `groups`.
    pub fn span_count(&self) -> usize {
        self.groups.iter().map(|g| g.span_count).sum()
    }
}

/// The fields of a `ResourceSpans` or `ScopeSpans` other than its children,
/// copied into every record that holds some of its spans.
#[derive(Debug, Default)]
struct Header<'a> {
    fields: Vec<&'a [u8]>,
    len: usize,
}

impl<'a> Header<'a> {
    fn push(&mut self, raw: &'a [u8]) {
        self.len += raw.len();
        self.fields.push(raw);
    }

    fn write(&self, out: &mut Vec<u8>) {
        for raw in &self.fields {
            out.extend_from_slice(raw);
        }
    }
}

/// A valid span: which resource and scope it sits under, and its bytes.
#[derive(Debug, Clone, Copy)]
struct SpanRef<'a> {
    scope: usize,
    bytes: &'a [u8],
}

/// Groups the spans of `request`, an `ExportTraceServiceRequest` (or
/// `TracesData`) that [`otlp::validate`] accepted. `None` when a resource
/// has no `service.name`: naming it changes the resource, which the
/// decoded path does.
pub fn group_encoded(request: &[u8]) -> Option<EncodedGrouped> {
    // Per scope: its resource's index, and the headers.
    let mut resources: Vec<Header> = Vec::new();
    let mut scopes: Vec<(usize, Header)> = Vec::new();
    let mut groups: Vec<(TraceId, Vec<SpanRef>)> = Vec::new();
    // Keyed by the id as a number: the keyed hash for ids takes a number
    // in two multiplications, where std's SipHash over the id's bytes was
    // a twentieth of the grouping.
    let mut index: IdMap<u128, usize> = id_map();
    let mut rejected = Vec::new();

    for (r, resource_spans) in otlp::nested(request, RESOURCE_SPANS).enumerate() {
        let mut header = Header::default();
        let mut named = false;
        let mut scope_position = 0;
        for field in otlp::fields(resource_spans) {
            match (field.number, field.value) {
                (SCOPE_SPANS, Value::Bytes(scope_spans)) => {
                    let scope = scopes.len();
                    let mut scope_header = Header::default();
                    let mut span_position = 0;
                    for inner in otlp::fields(scope_spans) {
                        let (SPANS, Value::Bytes(span)) = (inner.number, inner.value) else {
                            scope_header.push(inner.raw);
                            continue;
                        };
                        match check_span(span) {
                            Ok(trace_id) => {
                                let key = u128::from_be_bytes(*trace_id.as_bytes());
                                let slot = *index.entry(key).or_insert_with(|| {
                                    groups.push((trace_id, Vec::new()));
                                    groups.len() - 1
                                });
                                groups[slot].1.push(SpanRef { scope, bytes: span });
                            }
                            Err(problem) => rejected.push(RejectedSpan {
                                resource: r,
                                scope: scope_position,
                                span: span_position,
                                problem,
                            }),
                        }
                        span_position += 1;
                    }
                    scopes.push((r, scope_header));
                    scope_position += 1;
                }
                (RESOURCE, Value::Bytes(resource)) => {
                    named |= otlp::string_attribute(resource, "service.name")
                        .is_some_and(|name| !name.is_empty());
                    header.push(field.raw);
                }
                _ => header.push(field.raw),
            }
        }
        if !named {
            return None;
        }
        resources.push(header);
    }

    let groups = groups
        .into_iter()
        .map(|(trace_id, spans)| EncodedGroup {
            trace_id,
            value: encode_group(&spans, &resources, &scopes),
            span_count: spans.len(),
        })
        .collect();
    Some(EncodedGrouped { groups, rejected })
}

/// The same checks as the decoded path's, on the span's bytes.
fn check_span(span: &[u8]) -> Result<TraceId, SpanProblem> {
    let head = otlp::span_head(span);
    let trace_id = TraceId::from_slice(head.trace_id).map_err(SpanProblem::TraceId)?;
    SpanId::from_slice(head.span_id).map_err(SpanProblem::SpanId)?;
    if !head.parent_span_id.is_empty() {
        SpanId::from_slice(head.parent_span_id).map_err(SpanProblem::ParentSpanId)?;
    }
    let links = otlp::span_links(span).take(head.links);
    for (index, (link_trace, link_span)) in links.enumerate() {
        let at = |source| SpanProblem::Link { index, source };
        TraceId::from_slice(link_trace).map_err(at)?;
        SpanId::from_slice(link_span).map_err(at)?;
    }
    if head.end < head.start {
        return Err(SpanProblem::EndBeforeStart {
            start: head.start,
            end: head.end,
        });
    }
    Ok(trace_id)
}

/// Runs of consecutive spans under one scope, and of scopes under one
/// resource, with the payload sizes their length prefixes need.
struct Run {
    scope: usize,
    spans: std::ops::Range<usize>,
    len: usize,
}

/// Writes `TracesData { resource_spans: [...] }` for one trace's spans,
/// keeping request order and sharing a resource or scope between
/// neighbouring spans under the same one.
fn encode_group(spans: &[SpanRef], resources: &[Header], scopes: &[(usize, Header)]) -> Vec<u8> {
    let mut runs: Vec<Run> = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        let span_size = wire::len_field_size(span.bytes.len());
        match runs.last_mut() {
            Some(run) if run.scope == span.scope => {
                run.spans.end = i + 1;
                run.len += span_size;
            }
            _ => runs.push(Run {
                scope: span.scope,
                spans: i..i + 1,
                len: scopes[span.scope].1.len + span_size,
            }),
        }
    }
    // Resource runs over the scope runs: (resource, scope runs, payload size).
    let mut resource_runs: Vec<(usize, std::ops::Range<usize>, usize)> = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let resource = scopes[run.scope].0;
        let scope_size = wire::len_field_size(run.len);
        match resource_runs.last_mut() {
            Some((r, range, len)) if *r == resource => {
                range.end = i + 1;
                *len += scope_size;
            }
            _ => resource_runs.push((resource, i..i + 1, resources[resource].len + scope_size)),
        }
    }
    let total: usize = resource_runs
        .iter()
        .map(|(_, _, len)| wire::len_field_size(*len))
        .sum();
    let mut out = Vec::with_capacity(total);
    for (resource, scope_runs, len) in resource_runs {
        wire::put_len_prefix(&mut out, RESOURCE_SPANS, len);
        resources[resource].write(&mut out);
        for run in &runs[scope_runs] {
            wire::put_len_prefix(&mut out, SCOPE_SPANS, run.len);
            scopes[run.scope].1.write(&mut out);
            for span in &spans[run.spans.clone()] {
                wire::put_len_prefix(&mut out, SPANS, span.bytes.len());
                out.extend_from_slice(span.bytes);
            }
        }
    }
    debug_assert_eq!(out.len(), total);
    out
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use spanway_schemas::proto::otlp as pb;

    use super::super::{Grouped, group_by_trace, tests::resource, tests::span};
    use super::*;

    fn both(request: pb::ExportTraceServiceRequest) -> (Grouped, EncodedGrouped) {
        let bytes = request.encode_to_vec();
        otlp::validate(otlp::Message::TracesData, &bytes).unwrap();
        let encoded = group_encoded(&bytes).expect("every resource is named");
        (group_by_trace(request), encoded)
    }

    /// The records decode to exactly what the decoded path publishes.
    fn assert_same(decoded: &Grouped, encoded: &EncodedGrouped) {
        assert_eq!(decoded.rejected, encoded.rejected);
        assert_eq!(decoded.groups.len(), encoded.groups.len());
        for (d, e) in decoded.groups.iter().zip(&encoded.groups) {
            assert_eq!(d.trace_id, e.trace_id);
            assert_eq!(d.span_count, e.span_count);
            let data = pb::TracesData::decode(e.value.as_slice()).unwrap();
            assert_eq!(data.resource_spans, d.resource_spans);
        }
    }

    #[test]
    fn records_decode_to_what_the_decoded_path_publishes() {
        let mut with_scope = resource("b", vec![span(1, 4), span(3, 5)]);
        with_scope.schema_url = "https://opentelemetry.io/schemas/1.26.0".into();
        with_scope.scope_spans[0].scope = Some(pb::InstrumentationScope {
            name: "lib".into(),
            version: "1.0".into(),
            ..Default::default()
        });
        with_scope.scope_spans.push(pb::ScopeSpans {
            spans: vec![span(1, 6)],
            schema_url: "s".into(),
            ..Default::default()
        });
        let request = pb::ExportTraceServiceRequest {
            resource_spans: vec![
                resource("a", vec![span(1, 1), span(2, 2), span(1, 3)]),
                with_scope,
            ],
        };
        let (decoded, encoded) = both(request);
        assert_eq!(encoded.groups.len(), 3);
        assert_eq!(encoded.span_count(), 6);
        assert_same(&decoded, &encoded);
    }

    #[test]
    fn invalid_spans_are_rejected_at_the_same_places() {
        let mut bad_parent = span(1, 2);
        bad_parent.parent_span_id = vec![0; 8];
        let mut bad_link = span(1, 3);
        bad_link.links.push(pb::span::Link {
            trace_id: vec![1; 16],
            span_id: vec![1; 4],
            ..Default::default()
        });
        let mut backwards = span(1, 4);
        backwards.end_time_unix_nano = 5;
        let mut short_trace = span(1, 5);
        short_trace.trace_id = vec![1; 3];
        let request = pb::ExportTraceServiceRequest {
            resource_spans: vec![
                resource("a", vec![span(1, 1), bad_parent]),
                resource("b", vec![bad_link, backwards, short_trace, span(2, 6)]),
            ],
        };
        let (decoded, encoded) = both(request);
        assert_eq!(encoded.rejected.len(), 4);
        assert_eq!(
            encoded.rejected[0].problem.reason(),
            "invalid_parent_span_id"
        );
        assert_eq!(
            (encoded.rejected[3].resource, encoded.rejected[3].span),
            (1, 2)
        );
        assert_same(&decoded, &encoded);
    }

    #[test]
    fn a_resource_without_a_service_name_is_left_to_the_decoded_path() {
        let mut unnamed = resource("a", vec![span(1, 1)]);
        unnamed.resource = None;
        let mut empty = resource("", vec![span(1, 1)]);
        empty.scope_spans.clear();
        for rs in [unnamed, empty] {
            let request = pb::ExportTraceServiceRequest {
                resource_spans: vec![resource("a", vec![span(2, 2)]), rs],
            };
            assert_eq!(group_encoded(&request.encode_to_vec()), None);
        }
    }

    #[test]
    fn unknown_fields_of_a_span_travel_on() {
        // A span with field 99 (bytes "x"), which this version does not know.
        let extra = [0x9a, 0x06, 0x01, b'x'];
        let mut span_bytes = span(1, 1).encode_to_vec();
        span_bytes.extend_from_slice(&extra);
        let mut scope_spans = Vec::new();
        wire::put_len_prefix(&mut scope_spans, SPANS, span_bytes.len());
        scope_spans.extend_from_slice(&span_bytes);
        let mut resource_spans = resource("a", vec![]).encode_to_vec();
        wire::put_len_prefix(&mut resource_spans, SCOPE_SPANS, scope_spans.len());
        resource_spans.extend_from_slice(&scope_spans);
        let mut request = Vec::new();
        wire::put_len_prefix(&mut request, RESOURCE_SPANS, resource_spans.len());
        request.extend_from_slice(&resource_spans);

        otlp::validate(otlp::Message::TracesData, &request).unwrap();
        let grouped = group_encoded(&request).unwrap();
        assert!(grouped.groups[0].value.ends_with(&extra));
        let data = pb::TracesData::decode(grouped.groups[0].value.as_slice()).unwrap();
        assert_eq!(data.resource_spans[0].scope_spans[0].spans[0], span(1, 1));
    }
}
