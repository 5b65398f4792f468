//! OTLP spans → Jaeger `api_v2` spans.
//!
//! The mapping is the one Jaeger's own OTLP translator uses, so that a span
//! sent over OTLP and read back through Jaeger query looks as if Jaeger had
//! stored it: span kind becomes the `span.kind` tag, status ERROR the
//! `error=true` tag, the scope `otel.scope.name`/`otel.scope.version`,
//! events become logs with an `event` field, and resource attributes become
//! process tags with `service.name` lifted into `process.serviceName`.
//!
//! One deviation: a resource without `service.name` is given
//! [`UNKNOWN_SERVICE`] (what OpenTelemetry SDKs report) rather than Jaeger's
//! `OTLPResourceNoServiceName`, so one name covers every missing-name case.

use std::fmt::Write as _;

use crate::ids::{IdError, SpanId, TraceId};
use crate::proto::jaeger::api_v2 as jaeger;
use crate::proto::otlp;

/// Service name given to spans whose resource names none.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// A span that cannot be converted, with the path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}.{source}")]
pub struct ConvertError {
    /// Where the span sits in the message, e.g. `resource_spans[0].scope_spans[1].spans[2]`.
    pub path: String,
    /// What is wrong with it.
    pub source: IdError,
}

/// Converts every span of one `ResourceSpans`, appending to `out`, each
/// span with its process embedded.
///
/// `index` is the position of `resource_spans` in its message; it only
/// feeds error paths.
pub fn convert_resource_spans(
    index: usize,
    resource_spans: &otlp::ResourceSpans,
    out: &mut Vec<jaeger::Span>,
) -> Result<(), ConvertError> {
    let first = out.len();
    let process = take_resource_spans(index, resource_spans.clone(), out)?;
    for span in &mut out[first..] {
        span.process = Some(process.clone());
    }
    Ok(())
}

/// Converts every span of one `ResourceSpans` it owns, appending to `out`,
/// and returns the process they share; the spans carry none. Strings move
/// from the OTLP message into the Jaeger spans instead of being copied, and
/// the resource is converted once instead of once per span: for a reader
/// that drops the message afterwards (the ingester), that is most of the
/// conversion's allocations.
pub fn take_resource_spans(
    index: usize,
    resource_spans: otlp::ResourceSpans,
    out: &mut Vec<jaeger::Span>,
) -> Result<jaeger::Process, ConvertError> {
    let process = process_from_resource(resource_spans.resource);
    for (scope_index, scope_spans) in resource_spans.scope_spans.into_iter().enumerate() {
        let scope = scope_spans.scope.as_ref();
        for (span_index, span) in scope_spans.spans.into_iter().enumerate() {
            let converted = convert_span(span, scope).map_err(|source| ConvertError {
                path: format!(
                    "resource_spans[{index}].scope_spans[{scope_index}].spans[{span_index}]"
                ),
                source,
            })?;
            out.push(converted);
        }
    }
    Ok(process)
}

/// The service name a resource declares, or [`UNKNOWN_SERVICE`].
pub fn service_name(resource: Option<&otlp::Resource>) -> &str {
    resource
        .into_iter()
        .flat_map(|r| r.attributes.iter())
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            otlp::any_value::Value::StringValue(s) if !s.is_empty() => Some(s.as_str()),
            _ => None,
        })
        .unwrap_or(UNKNOWN_SERVICE)
}

fn process_from_resource(resource: Option<otlp::Resource>) -> jaeger::Process {
    let service_name = service_name(resource.as_ref()).to_owned();
    let tags = resource
        .into_iter()
        .flat_map(|r| r.attributes)
        .filter(|kv| kv.key != "service.name")
        .map(attribute_to_tag)
        .collect();
    jaeger::Process { service_name, tags }
}

fn convert_span(
    mut span: otlp::Span,
    scope: Option<&otlp::InstrumentationScope>,
) -> Result<jaeger::Span, IdError> {
    let trace_id = TraceId::from_slice(&span.trace_id)?;
    let span_id = SpanId::from_slice(&span.span_id)?;
    let mut references = Vec::with_capacity(span.links.len() + 1);
    let has_parent = !span.parent_span_id.is_empty();
    if has_parent {
        let parent =
            SpanId::from_slice(&span.parent_span_id).map_err(|e| rename(e, "parent_span_id"))?;
        references.push(jaeger::SpanRef {
            trace_id: trace_id.as_bytes().to_vec(),
            span_id: parent.as_bytes().to_vec(),
            ref_type: jaeger::SpanRefType::ChildOf as i32,
        });
    }
    for link in &span.links {
        let link_trace =
            TraceId::from_slice(&link.trace_id).map_err(|e| rename(e, "links.trace_id"))?;
        let link_span =
            SpanId::from_slice(&link.span_id).map_err(|e| rename(e, "links.span_id"))?;
        let ref_type = link_ref_type(link);
        // A link to the parent only changes the type of the parent reference.
        if has_parent
            && references[0].trace_id == link_trace.as_bytes()
            && references[0].span_id == link_span.as_bytes()
        {
            references[0].ref_type = ref_type as i32;
            continue;
        }
        references.push(jaeger::SpanRef {
            trace_id: link_trace.as_bytes().to_vec(),
            span_id: link_span.as_bytes().to_vec(),
            ref_type: ref_type as i32,
        });
    }

    let tags = span_tags(&mut span, scope);
    Ok(jaeger::Span {
        trace_id: trace_id.as_bytes().to_vec(),
        span_id: span_id.as_bytes().to_vec(),
        operation_name: span.name,
        references,
        // The low byte of OTLP flags holds the W3C trace flags (bit 0 = sampled),
        // which is what Jaeger's flags carry.
        flags: span.flags & 0xff,
        start_time: Some(timestamp(span.start_time_unix_nano)),
        duration: Some(duration(
            span.end_time_unix_nano
                .saturating_sub(span.start_time_unix_nano),
        )),
        tags,
        logs: span.events.into_iter().map(event_to_log).collect(),
        process: None,
        process_id: String::new(),
        warnings: Vec::new(),
    })
}

fn rename(error: IdError, field: &'static str) -> IdError {
    match error {
        IdError::WrongLength {
            expected, actual, ..
        } => IdError::WrongLength {
            field,
            expected,
            actual,
        },
        IdError::AllZero { .. } => IdError::AllZero { field },
        IdError::NotHex { value, .. } => IdError::NotHex { field, value },
    }
}

fn link_ref_type(link: &otlp::span::Link) -> jaeger::SpanRefType {
    let child_of = link.attributes.iter().any(|kv| {
        kv.key == "opentracing.ref_type"
            && matches!(
                kv.value.as_ref().and_then(|v| v.value.as_ref()),
                Some(otlp::any_value::Value::StringValue(s)) if s == "child_of"
            )
    });
    if child_of {
        jaeger::SpanRefType::ChildOf
    } else {
        jaeger::SpanRefType::FollowsFrom
    }
}

/// The span's tags; takes its attributes, status message and trace state.
fn span_tags(
    span: &mut otlp::Span,
    scope: Option<&otlp::InstrumentationScope>,
) -> Vec<jaeger::KeyValue> {
    let mut tags = Vec::with_capacity(span.attributes.len() + 4);
    if let Some(scope) = scope {
        if !scope.name.is_empty() {
            tags.push(string_tag("otel.scope.name", &scope.name));
        }
        if !scope.version.is_empty() {
            tags.push(string_tag("otel.scope.version", &scope.version));
        }
    }
    tags.extend(
        std::mem::take(&mut span.attributes)
            .into_iter()
            .map(attribute_to_tag),
    );
    if let Some(kind) = span_kind_name(span.kind) {
        tags.push(string_tag("span.kind", kind));
    }
    if let Some(status) = &mut span.status {
        match otlp::status::StatusCode::try_from(status.code) {
            Ok(otlp::status::StatusCode::Ok) => tags.push(string_tag("otel.status_code", "OK")),
            Ok(otlp::status::StatusCode::Error) => tags.push(bool_tag("error", true)),
            _ => {}
        }
        if !status.message.is_empty() {
            tags.push(owned_string_tag(
                "otel.status_description",
                std::mem::take(&mut status.message),
            ));
        }
    }
    if !span.trace_state.is_empty() {
        tags.push(owned_string_tag(
            "w3c.tracestate",
            std::mem::take(&mut span.trace_state),
        ));
    }
    tags
}

/// The `span.kind` value Jaeger uses for an OTLP span kind; none for UNSPECIFIED.
pub fn span_kind_name(kind: i32) -> Option<&'static str> {
    use otlp::span::SpanKind;
    match SpanKind::try_from(kind).ok()? {
        SpanKind::Client => Some("client"),
        SpanKind::Server => Some("server"),
        SpanKind::Producer => Some("producer"),
        SpanKind::Consumer => Some("consumer"),
        SpanKind::Internal => Some("internal"),
        SpanKind::Unspecified => None,
    }
}

fn event_to_log(event: otlp::span::Event) -> jaeger::Log {
    let has_event_attr = event.attributes.iter().any(|kv| kv.key == "event");
    let mut fields = Vec::with_capacity(event.attributes.len() + 1);
    if !event.name.is_empty() && !has_event_attr {
        fields.push(owned_string_tag("event", event.name));
    }
    fields.extend(event.attributes.into_iter().map(attribute_to_tag));
    jaeger::Log {
        timestamp: Some(timestamp(event.time_unix_nano)),
        fields,
    }
}

fn string_tag(key: &str, value: &str) -> jaeger::KeyValue {
    owned_string_tag(key, value.to_owned())
}

fn owned_string_tag(key: &str, value: String) -> jaeger::KeyValue {
    jaeger::KeyValue {
        key: key.to_owned(),
        v_type: jaeger::ValueType::String as i32,
        v_str: value,
        ..Default::default()
    }
}

fn bool_tag(key: &str, value: bool) -> jaeger::KeyValue {
    jaeger::KeyValue {
        key: key.to_owned(),
        v_type: jaeger::ValueType::Bool as i32,
        v_bool: value,
        ..Default::default()
    }
}

/// One OTLP attribute as a Jaeger tag; arrays and maps become their JSON text,
/// as Jaeger's translator renders them.
pub fn attribute_to_tag(attribute: otlp::KeyValue) -> jaeger::KeyValue {
    use otlp::any_value::Value;
    let mut tag = jaeger::KeyValue {
        key: attribute.key,
        ..Default::default()
    };
    match attribute.value.and_then(|v| v.value) {
        Some(Value::StringValue(s)) => tag.v_str = s,
        Some(Value::BoolValue(b)) => {
            tag.v_type = jaeger::ValueType::Bool as i32;
            tag.v_bool = b;
        }
        Some(Value::IntValue(i)) => {
            tag.v_type = jaeger::ValueType::Int64 as i32;
            tag.v_int64 = i;
        }
        Some(Value::DoubleValue(d)) => {
            tag.v_type = jaeger::ValueType::Float64 as i32;
            tag.v_float64 = d;
        }
        Some(Value::BytesValue(b)) => {
            tag.v_type = jaeger::ValueType::Binary as i32;
            tag.v_binary = b;
        }
        Some(other @ (Value::ArrayValue(_) | Value::KvlistValue(_))) => {
            let mut text = String::new();
            write_json(&mut text, Some(&other));
            tag.v_str = text;
        }
        None => {}
    }
    tag
}

fn write_json(out: &mut String, value: Option<&otlp::any_value::Value>) {
    use otlp::any_value::Value;
    match value {
        None => out.push_str("null"),
        Some(Value::StringValue(s)) => {
            out.push_str(&serde_json::Value::from(s.as_str()).to_string())
        }
        Some(Value::BoolValue(b)) => {
            let _ = write!(out, "{b}");
        }
        Some(Value::IntValue(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(Value::DoubleValue(d)) => out.push_str(&serde_json::Value::from(*d).to_string()),
        Some(Value::BytesValue(b)) => {
            use base64::Engine as _;
            let text = base64::engine::general_purpose::STANDARD.encode(b);
            out.push_str(&serde_json::Value::from(text).to_string());
        }
        Some(Value::ArrayValue(array)) => {
            out.push('[');
            for (i, item) in array.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item.value.as_ref());
            }
            out.push(']');
        }
        Some(Value::KvlistValue(list)) => {
            out.push('{');
            for (i, kv) in list.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::from(kv.key.as_str()).to_string());
                out.push(':');
                write_json(out, kv.value.as_ref().and_then(|v| v.value.as_ref()));
            }
            out.push('}');
        }
    }
}

fn timestamp(unix_nanos: u64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: (unix_nanos / 1_000_000_000) as i64,
        nanos: (unix_nanos % 1_000_000_000) as i32,
    }
}

fn duration(nanos: u64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: (nanos / 1_000_000_000) as i64,
        nanos: (nanos % 1_000_000_000) as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otlp::any_value::Value;

    fn sample() -> otlp::ResourceSpans {
        otlp::ResourceSpans {
            resource: Some(otlp::Resource {
                attributes: vec![
                    otlp::KeyValue::new("service.name", Value::StringValue("checkout".into())),
                    otlp::KeyValue::new("host.name", Value::StringValue("node-1".into())),
                ],
                ..Default::default()
            }),
            scope_spans: vec![otlp::ScopeSpans {
                scope: Some(otlp::InstrumentationScope {
                    name: "lib".into(),
                    version: "1.2".into(),
                    ..Default::default()
                }),
                spans: vec![otlp::Span {
                    trace_id: vec![0x11; 16],
                    span_id: vec![0x22; 8],
                    parent_span_id: vec![0x33; 8],
                    name: "GET /cart".into(),
                    kind: otlp::span::SpanKind::Server as i32,
                    flags: 0x101,
                    start_time_unix_nano: 1_700_000_000_123_456_789,
                    end_time_unix_nano: 1_700_000_000_123_456_789 + 2_500_000,
                    attributes: vec![
                        otlp::KeyValue::new("http.status_code", Value::IntValue(500)),
                        otlp::KeyValue::new(
                            "list",
                            Value::ArrayValue(otlp::ArrayValue {
                                values: vec![
                                    otlp::AnyValue {
                                        value: Some(Value::StringValue("a\"b".into())),
                                    },
                                    otlp::AnyValue {
                                        value: Some(Value::IntValue(3)),
                                    },
                                ],
                            }),
                        ),
                    ],
                    events: vec![otlp::span::Event {
                        time_unix_nano: 1_700_000_000_124_000_000,
                        name: "retry".into(),
                        attributes: vec![otlp::KeyValue::new("attempt", Value::IntValue(2))],
                        ..Default::default()
                    }],
                    status: Some(otlp::Status {
                        code: otlp::status::StatusCode::Error as i32,
                        message: "boom".into(),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn tag<'a>(tags: &'a [jaeger::KeyValue], key: &str) -> &'a jaeger::KeyValue {
        tags.iter()
            .find(|t| t.key == key)
            .unwrap_or_else(|| panic!("no tag {key}"))
    }

    #[test]
    fn converts_span_as_jaeger_does() {
        let mut out = Vec::new();
        convert_resource_spans(0, &sample(), &mut out).unwrap();
        assert_eq!(out.len(), 1);
        let span = &out[0];
        assert_eq!(span.operation_name, "GET /cart");
        assert_eq!(span.flags, 1);
        let process = span.process.as_ref().unwrap();
        assert_eq!(process.service_name, "checkout");
        assert_eq!(process.tags.len(), 1);
        assert_eq!(process.tags[0].key, "host.name");
        assert_eq!(span.references.len(), 1);
        assert_eq!(span.references[0].span_id, vec![0x33; 8]);
        assert_eq!(
            span.references[0].ref_type,
            jaeger::SpanRefType::ChildOf as i32
        );
        let start = span.start_time.unwrap();
        assert_eq!((start.seconds, start.nanos), (1_700_000_000, 123_456_789));
        let duration = span.duration.unwrap();
        assert_eq!((duration.seconds, duration.nanos), (0, 2_500_000));
        assert_eq!(tag(&span.tags, "otel.scope.name").v_str, "lib");
        assert_eq!(tag(&span.tags, "span.kind").v_str, "server");
        assert!(tag(&span.tags, "error").v_bool);
        assert_eq!(tag(&span.tags, "otel.status_description").v_str, "boom");
        assert_eq!(tag(&span.tags, "http.status_code").v_int64, 500);
        assert_eq!(tag(&span.tags, "list").v_str, r#"["a\"b",3]"#);
        assert_eq!(span.logs.len(), 1);
        assert_eq!(tag(&span.logs[0].fields, "event").v_str, "retry");
        assert_eq!(tag(&span.logs[0].fields, "attempt").v_int64, 2);
    }

    #[test]
    fn missing_service_name_is_unknown_service() {
        let mut rs = sample();
        rs.resource = None;
        let mut out = Vec::new();
        convert_resource_spans(0, &rs, &mut out).unwrap();
        assert_eq!(
            out[0].process.as_ref().unwrap().service_name,
            UNKNOWN_SERVICE
        );
    }

    #[test]
    fn bad_ids_report_their_path() {
        let mut rs = sample();
        rs.scope_spans[0].spans[0].parent_span_id = vec![1, 2, 3];
        let err = convert_resource_spans(4, &rs, &mut Vec::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "resource_spans[4].scope_spans[0].spans[0].parent_span_id: expected 8 bytes, got 3"
        );
        let mut rs = sample();
        rs.scope_spans[0].spans[0].trace_id = vec![0; 16];
        let err = convert_resource_spans(0, &rs, &mut Vec::new()).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("trace_id: all-zero id is invalid"),
            "{err}"
        );
    }

    #[test]
    fn link_to_parent_retypes_parent_reference() {
        let mut rs = sample();
        rs.scope_spans[0].spans[0].links = vec![
            otlp::span::Link {
                trace_id: vec![0x11; 16],
                span_id: vec![0x33; 8],
                ..Default::default()
            },
            otlp::span::Link {
                trace_id: vec![0x44; 16],
                span_id: vec![0x55; 8],
                ..Default::default()
            },
        ];
        let mut out = Vec::new();
        convert_resource_spans(0, &rs, &mut out).unwrap();
        let refs = &out[0].references;
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[0].ref_type, jaeger::SpanRefType::FollowsFrom as i32);
        assert_eq!(refs[1].trace_id, vec![0x44; 16]);
    }
}
