//! Jaeger `api_v2` model (`model.proto`, as `PostSpans` carries it) → OTLP.
//!
//! The mapping is the one of the OpenTelemetry Collector's Jaeger translator
//! (`pkg/translator/jaeger`), so that a span sent to us over Jaeger gRPC
//! lands on the topic as it would after an OpenTelemetry Collector's Jaeger
//! receiver, and reads back through `spanway_schemas::to_jaeger` as it was
//! sent:
//! - the process becomes the resource: `serviceName` → `service.name`, tags →
//!   attributes, `hostname` → `host.name` and `jaeger.version` →
//!   `opencensus.exporterversion` (`Jaeger-<version>`); a span's own process
//!   wins over the batch's, so spans are regrouped by process;
//! - tags become attributes, except the ones that are OTLP fields:
//!   `otel.scope.name`/`otel.scope.version` (the scope, by which spans are
//!   grouped), `span.kind`, `w3c.tracestate`, and the status tags;
//! - status: `error=true` is ERROR whatever else says; otherwise
//!   `otel.status_code`; otherwise a failed `http.status_code` (4xx is an
//!   error for clients only); the message comes from
//!   `otel.status_description` (or `http.status_message`);
//! - the parent is the first `CHILD_OF` reference within the trace, else the
//!   first `FOLLOWS_FROM`; every other reference becomes a link with an
//!   `opentracing.ref_type` attribute;
//! - logs become events, named by their `event` field.
//!
//! Ids are checked here, not later, so that an error names the field as the
//! Jaeger client knows it (`batch.spans[3].trace_id`).

use spanway_schemas::proto::jaeger::api_v2 as jaeger;
use spanway_schemas::proto::otlp;
use spanway_schemas::{IdError, SpanId, TraceId};

/// The service name OpenTelemetry's OTLP→Jaeger translator gives a resource
/// without one; such a process converts back to an empty resource.
pub const NO_SERVICE_NAME: &str = "OTLPResourceNoServiceName";

/// A span with an id that cannot become an OTLP id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}.{source}")]
pub struct ConvertError {
    /// Where the id sits, e.g. `batch.spans[3]` or `batch.spans[3].references[0]`.
    pub path: String,
    /// What is wrong with it.
    pub source: IdError,
}

/// A process and the spans it applies to, with their positions in the batch.
type ProcessSpans = (Option<jaeger::Process>, Vec<(usize, jaeger::Span)>);

/// Converts a `PostSpans` batch into one OTLP export request.
pub fn batch_to_otlp(
    batch: jaeger::Batch,
) -> Result<otlp::ExportTraceServiceRequest, ConvertError> {
    // Spans grouped by the process that applies to them, in first-seen order.
    // Batches hold one or a few processes, so a linear search is cheapest.
    let mut by_process: Vec<ProcessSpans> = vec![(batch.process, Vec::new())];
    for (index, mut span) in batch.spans.into_iter().enumerate() {
        if span == jaeger::Span::default() {
            continue;
        }
        let process = span.process.take();
        let slot = match process {
            None => 0,
            Some(own) => match by_process
                .iter()
                .position(|(p, _)| p.as_ref() == Some(&own))
            {
                Some(slot) => slot,
                None => {
                    by_process.push((Some(own), Vec::new()));
                    by_process.len() - 1
                }
            },
        };
        by_process[slot].1.push((index, span));
    }

    let mut resource_spans = Vec::with_capacity(by_process.len());
    for (process, spans) in by_process {
        if spans.is_empty() {
            continue;
        }
        let mut scopes: Vec<(otlp::InstrumentationScope, Vec<otlp::Span>)> = Vec::new();
        for (index, span) in spans {
            let (scope, span) = convert_span(index, span)?;
            match scopes.iter_mut().find(|(s, _)| *s == scope) {
                Some((_, list)) => list.push(span),
                None => scopes.push((scope, vec![span])),
            }
        }
        resource_spans.push(otlp::ResourceSpans {
            resource: Some(process_to_resource(process)),
            scope_spans: scopes
                .into_iter()
                .map(|(scope, spans)| otlp::ScopeSpans {
                    scope: Some(scope),
                    spans,
                    schema_url: String::new(),
                })
                .collect(),
            schema_url: String::new(),
        });
    }
    Ok(otlp::ExportTraceServiceRequest { resource_spans })
}

fn process_to_resource(process: Option<jaeger::Process>) -> otlp::Resource {
    let mut resource = otlp::Resource::default();
    let Some(process) = process else {
        return resource;
    };
    if process.service_name == NO_SERVICE_NAME {
        return resource;
    }
    let attributes = &mut resource.attributes;
    if !process.service_name.is_empty() {
        put(
            attributes,
            "service.name",
            string_value(process.service_name),
        );
    }
    for tag in process.tags {
        let (key, value) = tag_to_attribute(tag);
        put(attributes, &key, value);
    }
    if !has(attributes, "host.name")
        && let Some(hostname) = take(attributes, "hostname")
    {
        put(attributes, "host.name", hostname);
    }
    if !has(attributes, "opencensus.exporterversion")
        && let Some(version) = take(attributes, "jaeger.version")
    {
        let version = format!("Jaeger-{}", value_text(&version));
        put(
            attributes,
            "opencensus.exporterversion",
            string_value(version),
        );
    }
    resource
}

fn convert_span(
    index: usize,
    span: jaeger::Span,
) -> Result<(otlp::InstrumentationScope, otlp::Span), ConvertError> {
    let at = |path: String| move |source| ConvertError { path, source };
    let here = format!("batch.spans[{index}]");
    let trace_id = TraceId::from_slice(&span.trace_id).map_err(at(here.clone()))?;
    let span_id = SpanId::from_slice(&span.span_id).map_err(at(here.clone()))?;
    let mut references = Vec::with_capacity(span.references.len());
    for (r, reference) in span.references.iter().enumerate() {
        let path = format!("{here}.references[{r}]");
        let ref_trace = TraceId::from_slice(&reference.trace_id).map_err(at(path.clone()))?;
        let ref_span = SpanId::from_slice(&reference.span_id).map_err(at(path))?;
        let child_of = reference.ref_type == jaeger::SpanRefType::ChildOf as i32;
        references.push((ref_trace, ref_span, child_of));
    }
    // As Jaeger's `Span.ParentSpanID`: CHILD_OF wins, FOLLOWS_FROM will do.
    let same_trace = || references.iter().filter(|(t, _, _)| *t == trace_id);
    let parent = same_trace()
        .find(|(_, _, child_of)| *child_of)
        .or_else(|| same_trace().next())
        .map(|(_, s, _)| *s);
    let links = references
        .iter()
        .filter(|(_, s, child_of)| !(*child_of && Some(*s) == parent))
        .map(|(t, s, child_of)| otlp::span::Link {
            trace_id: t.as_bytes().to_vec(),
            span_id: s.as_bytes().to_vec(),
            attributes: vec![kv(
                "opentracing.ref_type",
                string_value(
                    if *child_of {
                        "child_of"
                    } else {
                        "follows_from"
                    }
                    .to_owned(),
                ),
            )],
            ..Default::default()
        })
        .collect();

    let mut attributes = Vec::with_capacity(span.tags.len());
    for tag in span.tags {
        let (key, value) = tag_to_attribute(tag);
        put(&mut attributes, &key, value);
    }
    let scope = take_scope(&mut attributes);
    let kind = take(&mut attributes, "span.kind")
        .map(|v| span_kind(&value_text(&v)))
        .unwrap_or(otlp::span::SpanKind::Unspecified);
    let status = take_status(&mut attributes, kind);
    let trace_state = take(&mut attributes, "w3c.tracestate")
        .map(|v| value_text(&v))
        .unwrap_or_default();

    let start = nanos(span.start_time.map(|t| (t.seconds, t.nanos)));
    let duration = nanos(span.duration.map(|d| (d.seconds, d.nanos)));
    let converted = otlp::Span {
        trace_id: trace_id.as_bytes().to_vec(),
        span_id: span_id.as_bytes().to_vec(),
        trace_state,
        parent_span_id: parent.map(|p| p.as_bytes().to_vec()).unwrap_or_default(),
        // Only the sampled bit is a W3C trace flag; Jaeger's debug (2) and
        // firehose (4) bits have no OTLP meaning.
        flags: span.flags & 0x1,
        name: span.operation_name,
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start.saturating_add(duration),
        attributes,
        events: span.logs.into_iter().map(log_to_event).collect(),
        links,
        status,
        ..Default::default()
    };
    Ok((scope, converted))
}

/// Removes the scope tags. `otel.library.*` are the names older SDKs used.
fn take_scope(attributes: &mut Vec<otlp::KeyValue>) -> otlp::InstrumentationScope {
    let name =
        take(attributes, "otel.scope.name").or_else(|| take(attributes, "otel.library.name"));
    let version =
        take(attributes, "otel.scope.version").or_else(|| take(attributes, "otel.library.version"));
    otlp::InstrumentationScope {
        name: name.map(|v| value_text(&v)).unwrap_or_default(),
        version: version.map(|v| value_text(&v)).unwrap_or_default(),
        ..Default::default()
    }
}

fn span_kind(text: &str) -> otlp::span::SpanKind {
    use otlp::span::SpanKind;
    match text {
        "client" => SpanKind::Client,
        "server" => SpanKind::Server,
        "producer" => SpanKind::Producer,
        "consumer" => SpanKind::Consumer,
        "internal" => SpanKind::Internal,
        _ => SpanKind::Unspecified,
    }
}

/// The status the tags describe, removing the tags that only carried it.
fn take_status(
    attributes: &mut Vec<otlp::KeyValue>,
    kind: otlp::span::SpanKind,
) -> Option<otlp::Status> {
    use otlp::status::StatusCode;
    let status = |code: StatusCode, message: String| {
        Some(otlp::Status {
            message,
            code: code as i32,
        })
    };
    let error_tag = get(attributes, "error").and_then(|v| match v.value {
        Some(otlp::any_value::Value::BoolValue(b)) => Some(b),
        _ => None,
    });
    if error_tag == Some(true) {
        take(attributes, "error");
        let message = take(attributes, "otel.status_description")
            .or_else(|| get(attributes, "http.status_message").cloned())
            .map(|v| value_text(&v))
            .unwrap_or_default();
        take(attributes, "otel.status_code");
        return status(StatusCode::Error, message);
    }
    if let Some(code) = take(attributes, "otel.status_code") {
        let code = match value_text(&code).to_ascii_uppercase().as_str() {
            "OK" => StatusCode::Ok,
            "ERROR" => StatusCode::Error,
            _ => StatusCode::Unset,
        };
        let message = take(attributes, "otel.status_description")
            .map(|v| value_text(&v))
            .unwrap_or_default();
        return status(code, message);
    }
    let http_code = get(attributes, "http.status_code").and_then(|v| match &v.value {
        Some(otlp::any_value::Value::IntValue(i)) => Some(*i),
        Some(otlp::any_value::Value::StringValue(s)) => s.parse().ok(),
        _ => None,
    })?;
    let code = match http_code {
        400..=499 if kind == otlp::span::SpanKind::Server => StatusCode::Unset,
        400..=499 if kind == otlp::span::SpanKind::Client => StatusCode::Error,
        100..=399 => StatusCode::Unset,
        _ => StatusCode::Error,
    };
    if code == StatusCode::Unset {
        return None;
    }
    let message = get(attributes, "http.status_message")
        .map(value_text)
        .unwrap_or_default();
    status(code, message)
}

fn log_to_event(log: jaeger::Log) -> otlp::span::Event {
    let mut attributes = Vec::with_capacity(log.fields.len());
    for field in log.fields {
        let (key, value) = tag_to_attribute(field);
        put(&mut attributes, &key, value);
    }
    let name = take(&mut attributes, "event")
        .map(|v| value_text(&v))
        .unwrap_or_default();
    otlp::span::Event {
        time_unix_nano: nanos(log.timestamp.map(|t| (t.seconds, t.nanos))),
        name,
        attributes,
        dropped_attributes_count: 0,
    }
}

fn tag_to_attribute(tag: jaeger::KeyValue) -> (String, otlp::AnyValue) {
    use jaeger::ValueType;
    use otlp::any_value::Value;
    let value = match ValueType::try_from(tag.v_type) {
        Ok(ValueType::String) => Value::StringValue(tag.v_str),
        Ok(ValueType::Bool) => Value::BoolValue(tag.v_bool),
        Ok(ValueType::Int64) => Value::IntValue(tag.v_int64),
        Ok(ValueType::Float64) => Value::DoubleValue(tag.v_float64),
        Ok(ValueType::Binary) => Value::BytesValue(tag.v_binary),
        Err(_) => Value::StringValue(format!("<Unknown Jaeger TagType \"{}\">", tag.v_type)),
    };
    (tag.key, otlp::AnyValue { value: Some(value) })
}

fn kv(key: &str, value: otlp::AnyValue) -> otlp::KeyValue {
    otlp::KeyValue {
        key: key.to_owned(),
        value: Some(value),
    }
}

fn string_value(text: String) -> otlp::AnyValue {
    otlp::AnyValue {
        value: Some(otlp::any_value::Value::StringValue(text)),
    }
}

/// Sets `key` as a map would: a repeated key replaces the earlier value in
/// its place, since OTLP attributes are a map and Jaeger tags are a list.
fn put(attributes: &mut Vec<otlp::KeyValue>, key: &str, value: otlp::AnyValue) {
    match attributes.iter_mut().find(|kv| kv.key == key) {
        Some(existing) => existing.value = Some(value),
        None => attributes.push(kv(key, value)),
    }
}

fn get<'a>(attributes: &'a [otlp::KeyValue], key: &str) -> Option<&'a otlp::AnyValue> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

fn has(attributes: &[otlp::KeyValue], key: &str) -> bool {
    attributes.iter().any(|kv| kv.key == key)
}

fn take(attributes: &mut Vec<otlp::KeyValue>, key: &str) -> Option<otlp::AnyValue> {
    let index = attributes.iter().position(|kv| kv.key == key)?;
    Some(attributes.remove(index).value.unwrap_or_default())
}

/// The text of a value; tags that should be strings sometimes are not.
fn value_text(value: &otlp::AnyValue) -> String {
    use otlp::any_value::Value;
    match &value.value {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

/// Nanoseconds of a timestamp or duration; negative values (before 1970, or
/// a clock gone backwards) become 0 rather than wrapping.
fn nanos(value: Option<(i64, i32)>) -> u64 {
    let Some((seconds, nanos)) = value else {
        return 0;
    };
    let total = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
    u64::try_from(total.max(0)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
