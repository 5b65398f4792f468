//! Decoding: walks the JSON document into the protobuf messages, naming the
//! field at fault when a value has the wrong shape.

use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use serde_json::{Map, Value};

use super::{OtlpJsonError, Result};
use crate::proto::otlp;
use otlp::any_value::Value as Any;

/// Decodes an OTLP/JSON `TracesData`; see [`decode`](fn@super::decode).
pub(super) fn traces_data(bytes: &[u8]) -> Result<otlp::TracesData> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| OtlpJsonError::Syntax(e.to_string()))?;
    let root = Path::Root;
    let obj = object(&value, &root)?;
    Ok(otlp::TracesData {
        resource_spans: repeated(
            obj,
            &root,
            "resourceSpans",
            "resource_spans",
            resource_spans,
        )?,
    })
}

/// Where a value sits in the document; rendered only for errors.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Field(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => f.write_str("TracesData"),
            Path::Field(Path::Root, name) => f.write_str(name),
            Path::Field(parent, name) => write!(f, "{parent}.{name}"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

fn fail(path: &Path<'_>, reason: impl Into<String>) -> OtlpJsonError {
    OtlpJsonError::Field {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// A string value for an error message, quoted and cut short.
fn shown(text: &str) -> String {
    const MAX: usize = 64;
    match text.char_indices().nth(MAX) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
    }
}

/// Any JSON value for an error message, cut short.
fn shown_json(v: &Value) -> String {
    match v {
        Value::String(s) => shown(s),
        other => {
            let text = other.to_string();
            match text.char_indices().nth(64) {
                None => text,
                Some((cut, _)) => format!("{}…", &text[..cut]),
            }
        }
    }
}

fn expected(what: &str, v: &Value) -> String {
    format!("expected {what}, got {}", shown_json(v))
}

fn object<'v>(v: &'v Value, path: &Path<'_>) -> Result<&'v Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| fail(path, expected("an object", v)))
}

/// The field under its camelCase or snake_case name, with the name found;
/// `null` counts as absent.
fn get<'v>(
    obj: &'v Map<String, Value>,
    camel: &'static str,
    snake: &'static str,
) -> Option<(&'static str, &'v Value)> {
    [camel, snake]
        .into_iter()
        .find_map(|name| obj.get(name).filter(|v| !v.is_null()).map(|v| (name, v)))
}

type Parse<T> = fn(&Value) -> std::result::Result<T, String>;
type Decode<T> = fn(&Value, &Path<'_>) -> Result<T>;

fn scalar<T: Default>(
    obj: &Map<String, Value>,
    path: &Path<'_>,
    camel: &'static str,
    snake: &'static str,
    parse: Parse<T>,
) -> Result<T> {
    match get(obj, camel, snake) {
        None => Ok(T::default()),
        Some((name, v)) => parse(v).map_err(|reason| fail(&Path::Field(path, name), reason)),
    }
}

fn message<T>(
    obj: &Map<String, Value>,
    path: &Path<'_>,
    camel: &'static str,
    snake: &'static str,
    decode: Decode<T>,
) -> Result<Option<T>> {
    match get(obj, camel, snake) {
        None => Ok(None),
        Some((name, v)) => decode(v, &Path::Field(path, name)).map(Some),
    }
}

fn repeated<T>(
    obj: &Map<String, Value>,
    path: &Path<'_>,
    camel: &'static str,
    snake: &'static str,
    decode: Decode<T>,
) -> Result<Vec<T>> {
    let Some((name, v)) = get(obj, camel, snake) else {
        return Ok(Vec::new());
    };
    let here = Path::Field(path, name);
    let items = v
        .as_array()
        .ok_or_else(|| fail(&here, expected("an array", v)))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| decode(item, &Path::Index(&here, i)))
        .collect()
}

fn resource_spans(v: &Value, path: &Path<'_>) -> Result<otlp::ResourceSpans> {
    let o = object(v, path)?;
    Ok(otlp::ResourceSpans {
        resource: message(o, path, "resource", "resource", resource)?,
        scope_spans: repeated(o, path, "scopeSpans", "scope_spans", scope_spans)?,
        schema_url: scalar(o, path, "schemaUrl", "schema_url", string)?,
    })
}

fn resource(v: &Value, path: &Path<'_>) -> Result<otlp::Resource> {
    let o = object(v, path)?;
    Ok(otlp::Resource {
        attributes: repeated(o, path, "attributes", "attributes", key_value)?,
        dropped_attributes_count: dropped_attributes_count(o, path)?,
    })
}

fn scope_spans(v: &Value, path: &Path<'_>) -> Result<otlp::ScopeSpans> {
    let o = object(v, path)?;
    Ok(otlp::ScopeSpans {
        scope: message(o, path, "scope", "scope", scope)?,
        spans: repeated(o, path, "spans", "spans", span)?,
        schema_url: scalar(o, path, "schemaUrl", "schema_url", string)?,
    })
}

fn scope(v: &Value, path: &Path<'_>) -> Result<otlp::InstrumentationScope> {
    let o = object(v, path)?;
    Ok(otlp::InstrumentationScope {
        name: scalar(o, path, "name", "name", string)?,
        version: scalar(o, path, "version", "version", string)?,
        attributes: repeated(o, path, "attributes", "attributes", key_value)?,
        dropped_attributes_count: dropped_attributes_count(o, path)?,
    })
}

fn span(v: &Value, path: &Path<'_>) -> Result<otlp::Span> {
    let o = object(v, path)?;
    Ok(otlp::Span {
        trace_id: scalar(o, path, "traceId", "trace_id", hex_id)?,
        span_id: scalar(o, path, "spanId", "span_id", hex_id)?,
        trace_state: scalar(o, path, "traceState", "trace_state", string)?,
        parent_span_id: scalar(o, path, "parentSpanId", "parent_span_id", hex_id)?,
        flags: scalar(o, path, "flags", "flags", integer)?,
        name: scalar(o, path, "name", "name", string)?,
        kind: scalar(o, path, "kind", "kind", span_kind)?,
        start_time_unix_nano: scalar(
            o,
            path,
            "startTimeUnixNano",
            "start_time_unix_nano",
            integer,
        )?,
        end_time_unix_nano: scalar(o, path, "endTimeUnixNano", "end_time_unix_nano", integer)?,
        attributes: repeated(o, path, "attributes", "attributes", key_value)?,
        dropped_attributes_count: dropped_attributes_count(o, path)?,
        events: repeated(o, path, "events", "events", event)?,
        dropped_events_count: scalar(
            o,
            path,
            "droppedEventsCount",
            "dropped_events_count",
            integer,
        )?,
        links: repeated(o, path, "links", "links", link)?,
        dropped_links_count: scalar(o, path, "droppedLinksCount", "dropped_links_count", integer)?,
        status: message(o, path, "status", "status", status)?,
    })
}

fn event(v: &Value, path: &Path<'_>) -> Result<otlp::span::Event> {
    let o = object(v, path)?;
    Ok(otlp::span::Event {
        time_unix_nano: scalar(o, path, "timeUnixNano", "time_unix_nano", integer)?,
        name: scalar(o, path, "name", "name", string)?,
        attributes: repeated(o, path, "attributes", "attributes", key_value)?,
        dropped_attributes_count: dropped_attributes_count(o, path)?,
    })
}

fn link(v: &Value, path: &Path<'_>) -> Result<otlp::span::Link> {
    let o = object(v, path)?;
    Ok(otlp::span::Link {
        trace_id: scalar(o, path, "traceId", "trace_id", hex_id)?,
        span_id: scalar(o, path, "spanId", "span_id", hex_id)?,
        trace_state: scalar(o, path, "traceState", "trace_state", string)?,
        attributes: repeated(o, path, "attributes", "attributes", key_value)?,
        dropped_attributes_count: dropped_attributes_count(o, path)?,
        flags: scalar(o, path, "flags", "flags", integer)?,
    })
}

fn status(v: &Value, path: &Path<'_>) -> Result<otlp::Status> {
    let o = object(v, path)?;
    Ok(otlp::Status {
        message: scalar(o, path, "message", "message", string)?,
        code: scalar(o, path, "code", "code", status_code)?,
    })
}

fn dropped_attributes_count(o: &Map<String, Value>, path: &Path<'_>) -> Result<u32> {
    scalar(
        o,
        path,
        "droppedAttributesCount",
        "dropped_attributes_count",
        integer,
    )
}

fn key_value(v: &Value, path: &Path<'_>) -> Result<otlp::KeyValue> {
    let o = object(v, path)?;
    Ok(otlp::KeyValue {
        key: scalar(o, path, "key", "key", string)?,
        value: message(o, path, "value", "value", any_value)?,
    })
}

/// The members of the `AnyValue` oneof, camelCase and snake_case.
const ANY_VALUE_FIELDS: [(&str, &str); 7] = [
    ("stringValue", "string_value"),
    ("boolValue", "bool_value"),
    ("intValue", "int_value"),
    ("doubleValue", "double_value"),
    ("bytesValue", "bytes_value"),
    ("arrayValue", "array_value"),
    ("kvlistValue", "kvlist_value"),
];

fn any_value(v: &Value, path: &Path<'_>) -> Result<otlp::AnyValue> {
    let o = object(v, path)?;
    let mut present = ANY_VALUE_FIELDS
        .iter()
        .filter_map(|&(camel, snake)| get(o, camel, snake));
    let Some((name, v)) = present.next() else {
        return Ok(otlp::AnyValue { value: None });
    };
    if let Some((other, _)) = present.next() {
        return Err(fail(
            path,
            format!("holds both {name} and {other}; an AnyValue holds one value"),
        ));
    }
    let here = Path::Field(path, name);
    let at = |reason: String| fail(&here, reason);
    let value = match name {
        "stringValue" | "string_value" => Any::StringValue(string(v).map_err(at)?),
        "boolValue" | "bool_value" => Any::BoolValue(boolean(v).map_err(at)?),
        "intValue" | "int_value" => Any::IntValue(integer(v).map_err(at)?),
        "doubleValue" | "double_value" => Any::DoubleValue(double(v).map_err(at)?),
        "bytesValue" | "bytes_value" => Any::BytesValue(base64_bytes(v).map_err(at)?),
        "arrayValue" | "array_value" => {
            let o = object(v, &here)?;
            Any::ArrayValue(otlp::ArrayValue {
                values: repeated(o, &here, "values", "values", any_value)?,
            })
        }
        _ => {
            let o = object(v, &here)?;
            Any::KvlistValue(otlp::KeyValueList {
                values: repeated(o, &here, "values", "values", key_value)?,
            })
        }
    };
    Ok(otlp::AnyValue { value: Some(value) })
}

fn string(v: &Value) -> std::result::Result<String, String> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| expected("a string", v))
}

fn boolean(v: &Value) -> std::result::Result<bool, String> {
    v.as_bool().ok_or_else(|| expected("a boolean", v))
}

/// The integer types of the messages, with how errors name them.
trait Integer: TryFrom<i128> {
    const NAME: &'static str;
}

impl Integer for i64 {
    const NAME: &'static str = "a 64-bit integer";
}

impl Integer for u64 {
    const NAME: &'static str = "an unsigned 64-bit integer";
}

impl Integer for u32 {
    const NAME: &'static str = "an unsigned 32-bit integer";
}

impl Integer for i32 {
    const NAME: &'static str = "a 32-bit integer";
}

/// A number or a decimal string; an integral number in exponent form
/// (`1e3`) is accepted too, as protobuf's JSON mapping allows.
fn integer<T: Integer>(v: &Value) -> std::result::Result<T, String> {
    let wide: Option<i128> = match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e20)
                    .map(|f| f as i128)
            }),
        Value::String(s) => s.parse().ok(),
        _ => return Err(expected(T::NAME, v)),
    };
    wide.and_then(|w| T::try_from(w).ok())
        .ok_or_else(|| format!("{} is not {}", shown_json(v), T::NAME))
}

fn enumeration(v: &Value, by_name: fn(&str) -> Option<i32>) -> std::result::Result<i32, String> {
    match v {
        Value::String(name) => {
            by_name(name).ok_or_else(|| format!("{} is not a known enum name", shown(name)))
        }
        Value::Number(_) => integer(v),
        _ => Err(expected("an enum number or name", v)),
    }
}

fn span_kind(v: &Value) -> std::result::Result<i32, String> {
    enumeration(v, |name| {
        otlp::span::SpanKind::from_str_name(name).map(|k| k as i32)
    })
}

fn status_code(v: &Value) -> std::result::Result<i32, String> {
    enumeration(v, |name| {
        otlp::status::StatusCode::from_str_name(name).map(|c| c as i32)
    })
}

fn double(v: &Value) -> std::result::Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| expected("a number", v)),
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            _ => s
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .ok_or_else(|| format!("{} is not a number", shown(s))),
        },
        _ => Err(expected("a number", v)),
    }
}

/// Protobuf's JSON mapping accepts standard or URL-safe base64, padded or not.
const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const BASE64_URL_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn base64_bytes(v: &Value) -> std::result::Result<Vec<u8>, String> {
    let text = v.as_str().ok_or_else(|| expected("a base64 string", v))?;
    BASE64_LENIENT
        .decode(text)
        .or_else(|_| BASE64_URL_LENIENT.decode(text))
        .map_err(|e| format!("{} is not base64: {e}", shown(text)))
}

/// A hex id of any length; the empty string is no id.
fn hex_id(v: &Value) -> std::result::Result<Vec<u8>, String> {
    let text = v.as_str().ok_or_else(|| expected("a hex string", v))?;
    hex::decode(text).map_err(|_| {
        let hint = if text.bytes().all(|b| b.is_ascii_hexdigit()) {
            " (odd number of digits)"
        } else if STANDARD
            .decode(text)
            .is_ok_and(|b| b.len() == 8 || b.len() == 16)
        {
            " (OTLP/JSON ids are hex, not base64)"
        } else {
            ""
        };
        format!("{} is not hexadecimal{hint}", shown(text))
    })
}
