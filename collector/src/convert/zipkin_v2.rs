//! Zipkin v2 JSON spans → OTLP.
//!
//! The mapping follows the OpenTelemetry Collector's Zipkin receiver, so a
//! span reads the same whichever collector took it:
//! - spans are grouped into one resource per `localEndpoint.serviceName`
//!   (`service.name`), in first-seen order, and one scope per
//!   `otel.library.name`/`otel.scope.name` tag;
//! - `kind` CLIENT/SERVER/PRODUCER/CONSUMER maps to the OTLP kind; without a
//!   kind the span is UNSPECIFIED, or INTERNAL when tagged `span.kind=internal`;
//! - the local endpoint's address becomes `net.host.ip`/`net.host.port`; the
//!   remote endpoint becomes `peer.service`, `net.peer.ip`, `net.peer.port`;
//! - tags become string attributes; annotations become events named by
//!   their value; `timestamp` and `duration` are microseconds;
//! - `otel.status_code`/`otel.status_description` set the status. An `error`
//!   tag sets status ERROR too, and its value (unless `true` or empty)
//!   becomes the status message. Here we part from OpenTelemetry, which only
//!   honours `error=true`: Zipkin's own convention is that the tag's presence
//!   marks the failure and its value is the message (brave writes the
//!   exception message there), and dropping that would hide failed spans;
//! - a missing `timestamp` gives a span starting at the epoch, marked with
//!   `otel.zipkin.absentField.startTime=true`, as OpenTelemetry does;
//! - 16-hex-digit (64-bit) trace ids are left-padded with zeros to 32.
//!
//! `shared` has no OTLP field; a shared span (a server span reusing its
//! client's span id, as Zipkin B3 propagation allows) keeps the flag as the
//! attribute `zipkin.shared=true` so that the duplicate span id can be
//! explained when it is read back.

use std::collections::HashMap;

use serde_json::{Map, Value};
use spanway_schemas::proto::otlp;
use spanway_schemas::{SpanId, TraceId};

/// Attribute marking a span that had no `timestamp` (OpenTelemetry's name).
pub const START_TIME_ABSENT: &str = "otel.zipkin.absentField.startTime";
/// Attribute keeping Zipkin's `shared` flag.
pub const SHARED: &str = "zipkin.shared";

/// A Zipkin document that cannot be converted, naming the field at fault,
/// e.g. `spans[3].traceId`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZipkinError {
    /// Not JSON at all.
    #[error("invalid JSON: {0}")]
    Syntax(String),
    /// A field with a missing or wrong value.
    #[error("{path}: {reason}")]
    Field {
        /// Where the field sits, e.g. `spans[3].localEndpoint.port`.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

type Result<T> = std::result::Result<T, ZipkinError>;

fn fail(path: impl Into<String>, reason: impl Into<String>) -> ZipkinError {
    ZipkinError::Field {
        path: path.into(),
        reason: reason.into(),
    }
}

/// Decodes a `POST /api/v2/spans` body (a JSON array of spans) into one OTLP
/// request.
pub fn decode(bytes: &[u8]) -> Result<otlp::ExportTraceServiceRequest> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| ZipkinError::Syntax(e.to_string()))?;
    let Value::Array(items) = value else {
        return Err(fail("spans", "expected a JSON array of spans"));
    };
    let mut resources: Vec<otlp::ResourceSpans> = Vec::new();
    // (service name) → index in `resources`.
    let mut by_service: HashMap<Option<String>, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("spans[{i}]");
        let converted = span(item, &path)?;
        let slot = *by_service
            .entry(converted.service.clone())
            .or_insert_with(|| {
                resources.push(otlp::ResourceSpans {
                    resource: Some(otlp::Resource {
                        attributes: converted
                            .service
                            .iter()
                            .map(|name| string_attribute("service.name", name))
                            .collect(),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
                resources.len() - 1
            });
        let scopes = &mut resources[slot].scope_spans;
        let position = scopes
            .iter()
            .position(|s| s.scope.as_ref() == Some(&converted.scope));
        let index = position.unwrap_or_else(|| {
            scopes.push(otlp::ScopeSpans {
                scope: Some(converted.scope.clone()),
                ..Default::default()
            });
            scopes.len() - 1
        });
        scopes[index].spans.push(converted.span);
    }
    Ok(otlp::ExportTraceServiceRequest {
        resource_spans: resources,
    })
}

/// One converted span with what decides its resource and scope.
struct Converted {
    service: Option<String>,
    scope: otlp::InstrumentationScope,
    span: otlp::Span,
}

fn span(value: &Value, path: &str) -> Result<Converted> {
    let Value::Object(o) = value else {
        return Err(fail(path, "expected a span object"));
    };
    let at = |field: &str| format!("{path}.{field}");

    let trace_id = trace_id(required_str(o, "traceId", path)?, &at("traceId"))?;
    let span_id = span_id_of(required_str(o, "id", path)?, &at("id"))?;
    let parent = match optional_str(o, "parentId", path)? {
        None | Some("") => None,
        Some(hex) => Some(span_id_of(hex, &at("parentId"))?),
    };
    let name = optional_str(o, "name", path)?.unwrap_or("").to_owned();
    let mut tags = tags(o, path)?;

    let kind = match optional_str(o, "kind", path)? {
        None => match tags.remove("span.kind").as_deref() {
            Some("internal") => otlp::span::SpanKind::Internal,
            _ => otlp::span::SpanKind::Unspecified,
        },
        Some("CLIENT") => otlp::span::SpanKind::Client,
        Some("SERVER") => otlp::span::SpanKind::Server,
        Some("PRODUCER") => otlp::span::SpanKind::Producer,
        Some("CONSUMER") => otlp::span::SpanKind::Consumer,
        Some(other) => {
            return Err(fail(
                at("kind"),
                format!("{other:?} is not one of CLIENT, SERVER, PRODUCER, CONSUMER"),
            ));
        }
    };

    let timestamp = optional_u64(o, "timestamp", path)?.unwrap_or(0);
    let duration = optional_u64(o, "duration", path)?.unwrap_or(0);
    let start = micros_to_nanos(timestamp, &at("timestamp"))?;
    let end = micros_to_nanos(duration, &at("duration"))?
        .checked_add(start)
        .ok_or_else(|| fail(at("duration"), "timestamp + duration overflows"))?;

    let status = status(&mut tags);
    let trace_state = tags.remove("w3c.tracestate").unwrap_or_default();
    let scope = otlp::InstrumentationScope {
        name: tags
            .remove("otel.scope.name")
            .or_else(|| tags.remove("otel.library.name"))
            .unwrap_or_default(),
        version: tags
            .remove("otel.scope.version")
            .or_else(|| tags.remove("otel.library.version"))
            .unwrap_or_default(),
        ..Default::default()
    };

    let mut attributes: Vec<otlp::KeyValue> =
        tags.iter().map(|(k, v)| string_attribute(k, v)).collect();
    let local = endpoint(o, "localEndpoint", path)?;
    let remote = endpoint(o, "remoteEndpoint", path)?;
    if let Some(local) = &local {
        if let Some(ip) = &local.ip {
            attributes.push(string_attribute("net.host.ip", ip));
        }
        if let Some(port) = local.port {
            attributes.push(int_attribute("net.host.port", port));
        }
    }
    if let Some(remote) = &remote {
        if let Some(service) = &remote.service {
            attributes.push(string_attribute("peer.service", service));
        }
        if let Some(ip) = &remote.ip {
            attributes.push(string_attribute("net.peer.ip", ip));
        }
        if let Some(port) = remote.port {
            attributes.push(int_attribute("net.peer.port", port));
        }
    }
    if timestamp == 0 {
        attributes.push(bool_attribute(START_TIME_ABSENT, true));
    }
    if optional_bool(o, "shared", path)? == Some(true) {
        attributes.push(bool_attribute(SHARED, true));
    }
    // `debug` only forces sampling in Zipkin; it is read to check its type.
    optional_bool(o, "debug", path)?;

    let events = annotations(o, path)?;
    let span = otlp::Span {
        trace_id: trace_id.as_bytes().to_vec(),
        span_id: span_id.as_bytes().to_vec(),
        trace_state,
        // A span naming itself as parent is a root (OpenTelemetry does the same).
        parent_span_id: parent
            .filter(|p| *p != span_id)
            .map(|p| p.as_bytes().to_vec())
            .unwrap_or_default(),
        name,
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes,
        events,
        status,
        ..Default::default()
    };
    let service = local.and_then(|l| l.service);
    Ok(Converted {
        service,
        scope,
        span,
    })
}

/// 16 or 32 hex digits; 16 are the low half of a 128-bit id.
fn trace_id(hex: &str, path: &str) -> Result<TraceId> {
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(fail(path, format!("{hex:?} is not hexadecimal")));
    }
    let padded;
    let full = match hex.len() {
        32 => hex,
        16 => {
            padded = format!("{:0>32}", hex);
            &padded
        }
        n => {
            return Err(fail(
                path,
                format!("expected 16 or 32 hex characters, got {n}"),
            ));
        }
    };
    TraceId::from_hex(full).map_err(|e| fail(path, id_reason(e)))
}

fn span_id_of(hex: &str, path: &str) -> Result<SpanId> {
    if hex.len() != 16 {
        return Err(fail(
            path,
            format!("expected 16 hex characters, got {}", hex.len()),
        ));
    }
    SpanId::from_hex(hex).map_err(|e| fail(path, id_reason(e)))
}

fn id_reason(error: spanway_schemas::IdError) -> String {
    match error {
        spanway_schemas::IdError::AllZero { .. } => "all-zero id is invalid".to_owned(),
        spanway_schemas::IdError::NotHex { value, .. } => format!("{value:?} is not hexadecimal"),
        spanway_schemas::IdError::WrongLength {
            expected, actual, ..
        } => format!("expected {expected} bytes, got {actual}"),
    }
}

fn micros_to_nanos(micros: u64, path: &str) -> Result<u64> {
    micros
        .checked_mul(1000)
        .ok_or_else(|| fail(path, format!("{micros} microseconds overflow nanoseconds")))
}

/// `otel.status_code` first, then the `error` tag; both are removed.
fn status(tags: &mut std::collections::BTreeMap<String, String>) -> Option<otlp::Status> {
    let mut status = None;
    if let Some(code) = tags.remove("otel.status_code") {
        let code = match code.as_str() {
            "STATUS_CODE_OK" | "OK" => otlp::status::StatusCode::Ok,
            "STATUS_CODE_ERROR" | "ERROR" => otlp::status::StatusCode::Error,
            _ => otlp::status::StatusCode::Unset,
        };
        status = Some(otlp::Status {
            code: code as i32,
            message: tags.remove("otel.status_description").unwrap_or_default(),
        });
    }
    if let Some(error) = tags.remove("error") {
        let message = match error.as_str() {
            "" | "true" => status.take().map(|s| s.message).unwrap_or_default(),
            _ => error,
        };
        status = Some(otlp::Status {
            code: otlp::status::StatusCode::Error as i32,
            message,
        });
    }
    status
}

struct Endpoint {
    service: Option<String>,
    ip: Option<String>,
    port: Option<i64>,
}

fn endpoint(o: &Map<String, Value>, field: &str, path: &str) -> Result<Option<Endpoint>> {
    let at = format!("{path}.{field}");
    let e = match o.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(e)) => e,
        Some(_) => return Err(fail(at, "expected an endpoint object")),
    };
    let service = optional_str(e, "serviceName", &at)?
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    // OpenTelemetry writes the IPv6 address over the IPv4 one when both are set.
    let ipv4 = optional_str(e, "ipv4", &at)?;
    let ipv6 = optional_str(e, "ipv6", &at)?;
    if let Some(ip) = ipv4 {
        ip.parse::<std::net::Ipv4Addr>().map_err(|_| {
            fail(
                format!("{at}.ipv4"),
                format!("{ip:?} is not an IPv4 address"),
            )
        })?;
    }
    if let Some(ip) = ipv6 {
        ip.parse::<std::net::Ipv6Addr>().map_err(|_| {
            fail(
                format!("{at}.ipv6"),
                format!("{ip:?} is not an IPv6 address"),
            )
        })?;
    }
    let ip = ipv6.or(ipv4).filter(|s| !s.is_empty()).map(str::to_owned);
    let port = match optional_u64(e, "port", &at)? {
        None | Some(0) => None,
        Some(p) if p <= 65535 => Some(p as i64),
        Some(p) => return Err(fail(format!("{at}.port"), format!("{p} is not a port"))),
    };
    Ok(Some(Endpoint { service, ip, port }))
}

fn annotations(o: &Map<String, Value>, path: &str) -> Result<Vec<otlp::span::Event>> {
    let items = match o.get("annotations") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(fail(format!("{path}.annotations"), "expected an array")),
    };
    let mut events = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}.annotations[{i}]");
        let Value::Object(a) = item else {
            return Err(fail(at, "expected an annotation object"));
        };
        let timestamp = optional_u64(a, "timestamp", &at)?
            .ok_or_else(|| fail(format!("{at}.timestamp"), "missing"))?;
        let value = required_str(a, "value", &at)?;
        events.push(otlp::span::Event {
            time_unix_nano: micros_to_nanos(timestamp, &format!("{at}.timestamp"))?,
            name: value.to_owned(),
            ..Default::default()
        });
    }
    Ok(events)
}

/// Tags are strings in Zipkin's model; numbers and booleans that some
/// clients write are kept in their JSON text.
fn tags(o: &Map<String, Value>, path: &str) -> Result<std::collections::BTreeMap<String, String>> {
    let map = match o.get("tags") {
        None | Some(Value::Null) => return Ok(Default::default()),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(fail(format!("{path}.tags"), "expected an object")),
    };
    map.iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(fail(
                        format!("{path}.tags.{k}"),
                        "expected a string, number or boolean",
                    ));
                }
            };
            Ok((k.clone(), text))
        })
        .collect()
}

fn required_str<'a>(o: &'a Map<String, Value>, field: &str, path: &str) -> Result<&'a str> {
    optional_str(o, field, path)?.ok_or_else(|| fail(format!("{path}.{field}"), "missing"))
}

fn optional_str<'a>(o: &'a Map<String, Value>, field: &str, path: &str) -> Result<Option<&'a str>> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(fail(
            format!("{path}.{field}"),
            format!("expected a string, got {other}"),
        )),
    }
}

fn optional_u64(o: &Map<String, Value>, field: &str, path: &str) -> Result<Option<u64>> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| {
            fail(
                format!("{path}.{field}"),
                format!("expected a non-negative integer, got {n}"),
            )
        }),
        Some(other) => Err(fail(
            format!("{path}.{field}"),
            format!("expected a non-negative integer, got {other}"),
        )),
    }
}

fn optional_bool(o: &Map<String, Value>, field: &str, path: &str) -> Result<Option<bool>> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(fail(
            format!("{path}.{field}"),
            format!("expected a boolean, got {other}"),
        )),
    }
}

fn string_attribute(key: &str, value: &str) -> otlp::KeyValue {
    otlp::KeyValue::new(key, otlp::any_value::Value::StringValue(value.to_owned()))
}

fn int_attribute(key: &str, value: i64) -> otlp::KeyValue {
    otlp::KeyValue::new(key, otlp::any_value::Value::IntValue(value))
}

fn bool_attribute(key: &str, value: bool) -> otlp::KeyValue {
    otlp::KeyValue::new(key, otlp::any_value::Value::BoolValue(value))
}

#[cfg(test)]
mod tests;
