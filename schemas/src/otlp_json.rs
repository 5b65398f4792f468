//! `otlp_json`: `opentelemetry.proto.trace.v1.TracesData` in OTLP/JSON, as
//! the OpenTelemetry Collector's Kafka exporter writes it with
//! `encoding: otlp_json`.
//!
//! The mapping is protobuf's JSON mapping with the changes the OTLP
//! specification makes ("JSON Protobuf Encoding"): trace and span ids are
//! hex strings (either case; an empty string means no id) rather than
//! base64, and enums are integers. Names are lowerCamelCase, 64-bit integers
//! are strings, and `AnyValue` is an object holding one of `stringValue`,
//! `boolValue`, `intValue`, `doubleValue`, `bytesValue` (base64),
//! `arrayValue` or `kvlistValue`.
//!
//! [`decode`] accepts what a protobuf JSON reader must: the original
//! snake_case names too, numbers or strings for 64-bit integers, enum names
//! (`"SPAN_KIND_SERVER"`) as well as numbers, `"NaN"`/`"Infinity"`/
//! `"-Infinity"` for doubles, `null` for an absent field; unknown fields are
//! ignored. Ids of the wrong length are accepted here and rejected by the
//! conversion to Jaeger spans ([`crate::to_jaeger`]), like the protobuf form.
//!
//! [`encode`] writes the canonical form: camelCase names in the order of the
//! `.proto` declarations, lowercase hex ids, integer enums, 64-bit integers
//! as strings, and no fields holding their default value.

use std::fmt;
use std::io::Write as _;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use serde_json::{Map, Value};

use crate::proto::otlp;
use otlp::any_value::Value as Any;

/// A document that is not OTLP/JSON `TracesData`; names the field at fault,
/// e.g. `resourceSpans[0].scopeSpans[1].spans[2].traceId`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtlpJsonError {
    /// Not JSON at all.
    #[error("invalid JSON: {0}")]
    Syntax(String),
    /// A field with a value of the wrong shape.
    #[error("{path}: {reason}")]
    Field {
        /// Where the field sits, in the names the document used.
        path: String,
        /// What is wrong with its value.
        reason: String,
    },
}

type Result<T> = std::result::Result<T, OtlpJsonError>;

/// Decodes an OTLP/JSON `TracesData` (or `ExportTraceServiceRequest`, which
/// has the same JSON form).
pub fn decode(bytes: &[u8]) -> Result<otlp::TracesData> {
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

/// Encodes `data` in canonical OTLP/JSON.
pub fn encode(data: &otlp::TracesData) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut o = JsonObject::open(&mut out);
    o.array("resourceSpans", &data.resource_spans, write_resource_spans);
    o.close();
    out
}

// ---------------------------------------------------------------- decoding

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

// ---------------------------------------------------------------- encoding

/// Writes one JSON object, leaving out fields that hold their default value.
struct JsonObject<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> JsonObject<'a> {
    fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        JsonObject { out, empty: true }
    }

    fn key(&mut self, name: &str) -> &mut Vec<u8> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    fn string(&mut self, name: &str, value: &str) {
        if !value.is_empty() {
            write_string(self.key(name), value);
        }
    }

    fn id(&mut self, name: &str, bytes: &[u8]) {
        if !bytes.is_empty() {
            let out = self.key(name);
            out.push(b'"');
            out.extend_from_slice(hex::encode(bytes).as_bytes());
            out.push(b'"');
        }
    }

    /// 64-bit integers are strings, so that JavaScript readers keep every digit.
    fn u64(&mut self, name: &str, value: u64) {
        if value != 0 {
            let _ = write!(self.key(name), "\"{value}\"");
        }
    }

    fn u32(&mut self, name: &str, value: u32) {
        if value != 0 {
            let _ = write!(self.key(name), "{value}");
        }
    }

    fn i32(&mut self, name: &str, value: i32) {
        if value != 0 {
            let _ = write!(self.key(name), "{value}");
        }
    }

    fn message<T>(&mut self, name: &str, value: Option<&T>, write: fn(&mut Vec<u8>, &T)) {
        if let Some(value) = value {
            write(self.key(name), value);
        }
    }

    fn array<T>(&mut self, name: &str, items: &[T], write: fn(&mut Vec<u8>, &T)) {
        if items.is_empty() {
            return;
        }
        let out = self.key(name);
        out.push(b'[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write(out, item);
        }
        out.push(b']');
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

fn write_string(out: &mut Vec<u8>, value: &str) {
    // Serializing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

fn write_resource_spans(out: &mut Vec<u8>, rs: &otlp::ResourceSpans) {
    let mut o = JsonObject::open(out);
    o.message("resource", rs.resource.as_ref(), write_resource);
    o.array("scopeSpans", &rs.scope_spans, write_scope_spans);
    o.string("schemaUrl", &rs.schema_url);
    o.close();
}

fn write_resource(out: &mut Vec<u8>, resource: &otlp::Resource) {
    let mut o = JsonObject::open(out);
    o.array("attributes", &resource.attributes, write_key_value);
    o.u32("droppedAttributesCount", resource.dropped_attributes_count);
    o.close();
}

fn write_scope_spans(out: &mut Vec<u8>, ss: &otlp::ScopeSpans) {
    let mut o = JsonObject::open(out);
    o.message("scope", ss.scope.as_ref(), write_scope);
    o.array("spans", &ss.spans, write_span);
    o.string("schemaUrl", &ss.schema_url);
    o.close();
}

fn write_scope(out: &mut Vec<u8>, scope: &otlp::InstrumentationScope) {
    let mut o = JsonObject::open(out);
    o.string("name", &scope.name);
    o.string("version", &scope.version);
    o.array("attributes", &scope.attributes, write_key_value);
    o.u32("droppedAttributesCount", scope.dropped_attributes_count);
    o.close();
}

fn write_span(out: &mut Vec<u8>, span: &otlp::Span) {
    let mut o = JsonObject::open(out);
    o.id("traceId", &span.trace_id);
    o.id("spanId", &span.span_id);
    o.string("traceState", &span.trace_state);
    o.id("parentSpanId", &span.parent_span_id);
    o.u32("flags", span.flags);
    o.string("name", &span.name);
    o.i32("kind", span.kind);
    o.u64("startTimeUnixNano", span.start_time_unix_nano);
    o.u64("endTimeUnixNano", span.end_time_unix_nano);
    o.array("attributes", &span.attributes, write_key_value);
    o.u32("droppedAttributesCount", span.dropped_attributes_count);
    o.array("events", &span.events, write_event);
    o.u32("droppedEventsCount", span.dropped_events_count);
    o.array("links", &span.links, write_link);
    o.u32("droppedLinksCount", span.dropped_links_count);
    o.message("status", span.status.as_ref(), write_status);
    o.close();
}

fn write_event(out: &mut Vec<u8>, event: &otlp::span::Event) {
    let mut o = JsonObject::open(out);
    o.u64("timeUnixNano", event.time_unix_nano);
    o.string("name", &event.name);
    o.array("attributes", &event.attributes, write_key_value);
    o.u32("droppedAttributesCount", event.dropped_attributes_count);
    o.close();
}

fn write_link(out: &mut Vec<u8>, link: &otlp::span::Link) {
    let mut o = JsonObject::open(out);
    o.id("traceId", &link.trace_id);
    o.id("spanId", &link.span_id);
    o.string("traceState", &link.trace_state);
    o.array("attributes", &link.attributes, write_key_value);
    o.u32("droppedAttributesCount", link.dropped_attributes_count);
    o.u32("flags", link.flags);
    o.close();
}

fn write_status(out: &mut Vec<u8>, status: &otlp::Status) {
    let mut o = JsonObject::open(out);
    o.string("message", &status.message);
    o.i32("code", status.code);
    o.close();
}

fn write_key_value(out: &mut Vec<u8>, kv: &otlp::KeyValue) {
    let mut o = JsonObject::open(out);
    o.string("key", &kv.key);
    o.message("value", kv.value.as_ref(), write_any_value);
    o.close();
}

/// A set oneof member is written even when it holds its type's default
/// (`{"intValue":"0"}`), so that it reads back as set.
fn write_any_value(out: &mut Vec<u8>, value: &otlp::AnyValue) {
    let mut o = JsonObject::open(out);
    match &value.value {
        None => {}
        Some(Any::StringValue(s)) => write_string(o.key("stringValue"), s),
        Some(Any::BoolValue(b)) => {
            let _ = write!(o.key("boolValue"), "{b}");
        }
        Some(Any::IntValue(i)) => {
            let _ = write!(o.key("intValue"), "\"{i}\"");
        }
        Some(Any::DoubleValue(d)) => write_double(o.key("doubleValue"), *d),
        Some(Any::BytesValue(b)) => write_string(o.key("bytesValue"), &STANDARD.encode(b)),
        Some(Any::ArrayValue(array)) => {
            let out = o.key("arrayValue");
            let mut inner = JsonObject::open(out);
            inner.array("values", &array.values, write_any_value);
            inner.close();
        }
        Some(Any::KvlistValue(list)) => {
            let out = o.key("kvlistValue");
            let mut inner = JsonObject::open(out);
            inner.array("values", &list.values, write_key_value);
            inner.close();
        }
    }
    o.close();
}

fn write_double(out: &mut Vec<u8>, value: f64) {
    if value.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if value == f64::INFINITY {
        out.extend_from_slice(b"\"Infinity\"");
    } else if value == f64::NEG_INFINITY {
        out.extend_from_slice(b"\"-Infinity\"");
    } else {
        // Serializing a finite number into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &value);
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use serde_json::json;

    use super::*;
    use crate::contract::Encoding;
    use crate::record::decode_record;

    /// A document as the OpenTelemetry Collector's Kafka exporter writes it
    /// (`encoding: otlp_json`), with the liberties other writers take: ids in
    /// upper case, 64-bit integers as numbers, enum names, `null`, unknown fields.
    const COLLECTOR_DOCUMENT: &str = r#"{
      "resourceSpans": [
        {
          "resource": {
            "attributes": [
              {"key": "service.name", "value": {"stringValue": "frontend"}},
              {"key": "host.cpu.count", "value": {"intValue": 8}},
              {"key": "process.pid", "value": {"intValue": "4242"}}
            ],
            "droppedAttributesCount": 1,
            "entityRefs": [{"type": "service"}]
          },
          "scopeSpans": [
            {
              "scope": {
                "name": "io.opentelemetry.http",
                "version": "1.2.0",
                "attributes": [{"key": "scope.attr", "value": {"boolValue": true}}],
                "droppedAttributesCount": 2
              },
              "spans": [
                {
                  "traceId": "5B8EFFF798038103D269B633813FC60C",
                  "spanId": "EEE19B7EC3C1B174",
                  "traceState": "vendor=x",
                  "parentSpanId": "",
                  "flags": 257,
                  "name": "GET /checkout",
                  "kind": 2,
                  "startTimeUnixNano": "1767225600000000000",
                  "endTimeUnixNano": "1767225600120500000",
                  "attributes": [
                    {"key": "http.request.method", "value": {"stringValue": "GET"}},
                    {"key": "http.response.status_code", "value": {"intValue": "500"}},
                    {"key": "retry", "value": {"boolValue": false}},
                    {"key": "load", "value": {"doubleValue": 0.25}},
                    {"key": "payload", "value": {"bytesValue": "3q2+7w=="}},
                    {"key": "tags", "value": {"arrayValue": {"values": [
                      {"stringValue": "a"}, {"intValue": -3}, {"doubleValue": 1.5}, {}
                    ]}}},
                    {"key": "user", "value": {"kvlistValue": {"values": [
                      {"key": "id", "value": {"intValue": "-7"}},
                      {"key": "vip", "value": {"boolValue": true}}
                    ]}}},
                    {"key": "no.value"},
                    {"key": "empty.value", "value": {}}
                  ],
                  "droppedAttributesCount": 3,
                  "events": [
                    {
                      "timeUnixNano": "1767225600100000000",
                      "name": "exception",
                      "attributes": [{"key": "exception.type", "value": {"stringValue": "Timeout"}}],
                      "droppedAttributesCount": 1
                    }
                  ],
                  "droppedEventsCount": 4,
                  "links": [
                    {
                      "traceId": "0af7651916cd43dd8448eb211c80319c",
                      "spanId": "B7AD6B7169203331",
                      "traceState": "rojo=00f067aa0ba902b7",
                      "attributes": [{"key": "link.reason", "value": {"stringValue": "batch"}}],
                      "droppedAttributesCount": 1,
                      "flags": 1
                    }
                  ],
                  "droppedLinksCount": 5,
                  "status": {"code": 2, "message": "payment timed out"},
                  "someFutureField": {"ignored": true}
                },
                {
                  "traceId": "5b8efff798038103d269b633813fc60c",
                  "spanId": "0102040810204080",
                  "parentSpanId": "EEE19B7EC3C1B174",
                  "traceState": null,
                  "flags": 1,
                  "name": "POST /pay",
                  "kind": "SPAN_KIND_CLIENT",
                  "startTimeUnixNano": 1767225600001000000,
                  "endTimeUnixNano": "1767225600101000000",
                  "status": {}
                }
              ],
              "schemaUrl": "https://opentelemetry.io/schemas/1.24.0"
            },
            {
              "scope": {"name": "manual"},
              "spans": [
                {
                  "traceId": "5b8efff798038103d269b633813fc60c",
                  "spanId": "1112131415161718",
                  "parentSpanId": "eee19b7ec3c1b174",
                  "name": "render",
                  "kind": 1,
                  "startTimeUnixNano": "1767225600110000000",
                  "endTimeUnixNano": "1767225600115000000",
                  "status": {"code": "STATUS_CODE_OK"}
                }
              ]
            }
          ],
          "schemaUrl": "https://opentelemetry.io/schemas/1.21.0"
        },
        {
          "resource": {
            "attributes": [{"key": "service.name", "value": {"stringValue": "payments"}}]
          },
          "scopeSpans": [
            {
              "scope": {},
              "spans": [
                {
                  "traceId": "5b8efff798038103d269b633813fc60c",
                  "spanId": "A1A2A3A4A5A6A7A8",
                  "parentSpanId": "0102040810204080",
                  "flags": 1,
                  "name": "pay",
                  "kind": 2,
                  "startTimeUnixNano": "1767225600002000000",
                  "endTimeUnixNano": "1767225600099000000",
                  "status": {"code": 1}
                }
              ]
            }
          ]
        }
      ]
    }"#;

    fn any(value: Any) -> otlp::AnyValue {
        otlp::AnyValue { value: Some(value) }
    }

    fn kv(key: &str, value: Any) -> otlp::KeyValue {
        otlp::KeyValue {
            key: key.into(),
            value: Some(any(value)),
        }
    }

    fn id(text: &str) -> Vec<u8> {
        hex::decode(text).unwrap()
    }

    /// What [`COLLECTOR_DOCUMENT`] holds, built by hand.
    fn expected() -> otlp::TracesData {
        let trace = id("5b8efff798038103d269b633813fc60c");
        let start = 1_767_225_600_000_000_000_u64;
        let checkout = otlp::Span {
            trace_id: trace.clone(),
            span_id: id("eee19b7ec3c1b174"),
            trace_state: "vendor=x".into(),
            parent_span_id: Vec::new(),
            flags: 257,
            name: "GET /checkout".into(),
            kind: otlp::span::SpanKind::Server as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + 120_500_000,
            attributes: vec![
                kv("http.request.method", Any::StringValue("GET".into())),
                kv("http.response.status_code", Any::IntValue(500)),
                kv("retry", Any::BoolValue(false)),
                kv("load", Any::DoubleValue(0.25)),
                kv("payload", Any::BytesValue(vec![0xde, 0xad, 0xbe, 0xef])),
                kv(
                    "tags",
                    Any::ArrayValue(otlp::ArrayValue {
                        values: vec![
                            any(Any::StringValue("a".into())),
                            any(Any::IntValue(-3)),
                            any(Any::DoubleValue(1.5)),
                            otlp::AnyValue { value: None },
                        ],
                    }),
                ),
                kv(
                    "user",
                    Any::KvlistValue(otlp::KeyValueList {
                        values: vec![kv("id", Any::IntValue(-7)), kv("vip", Any::BoolValue(true))],
                    }),
                ),
                otlp::KeyValue {
                    key: "no.value".into(),
                    value: None,
                },
                otlp::KeyValue {
                    key: "empty.value".into(),
                    value: Some(otlp::AnyValue { value: None }),
                },
            ],
            dropped_attributes_count: 3,
            events: vec![otlp::span::Event {
                time_unix_nano: start + 100_000_000,
                name: "exception".into(),
                attributes: vec![kv("exception.type", Any::StringValue("Timeout".into()))],
                dropped_attributes_count: 1,
            }],
            dropped_events_count: 4,
            links: vec![otlp::span::Link {
                trace_id: id("0af7651916cd43dd8448eb211c80319c"),
                span_id: id("b7ad6b7169203331"),
                trace_state: "rojo=00f067aa0ba902b7".into(),
                attributes: vec![kv("link.reason", Any::StringValue("batch".into()))],
                dropped_attributes_count: 1,
                flags: 1,
            }],
            dropped_links_count: 5,
            status: Some(otlp::Status {
                message: "payment timed out".into(),
                code: otlp::status::StatusCode::Error as i32,
            }),
        };
        let pay_client = otlp::Span {
            trace_id: trace.clone(),
            span_id: id("0102040810204080"),
            parent_span_id: id("eee19b7ec3c1b174"),
            flags: 1,
            name: "POST /pay".into(),
            kind: otlp::span::SpanKind::Client as i32,
            start_time_unix_nano: start + 1_000_000,
            end_time_unix_nano: start + 101_000_000,
            status: Some(otlp::Status::default()),
            ..Default::default()
        };
        let render = otlp::Span {
            trace_id: trace.clone(),
            span_id: id("1112131415161718"),
            parent_span_id: id("eee19b7ec3c1b174"),
            name: "render".into(),
            kind: otlp::span::SpanKind::Internal as i32,
            start_time_unix_nano: start + 110_000_000,
            end_time_unix_nano: start + 115_000_000,
            status: Some(otlp::Status {
                message: String::new(),
                code: otlp::status::StatusCode::Ok as i32,
            }),
            ..Default::default()
        };
        let pay_server = otlp::Span {
            trace_id: trace,
            span_id: id("a1a2a3a4a5a6a7a8"),
            parent_span_id: id("0102040810204080"),
            flags: 1,
            name: "pay".into(),
            kind: otlp::span::SpanKind::Server as i32,
            start_time_unix_nano: start + 2_000_000,
            end_time_unix_nano: start + 99_000_000,
            status: Some(otlp::Status {
                message: String::new(),
                code: otlp::status::StatusCode::Ok as i32,
            }),
            ..Default::default()
        };
        otlp::TracesData {
            resource_spans: vec![
                otlp::ResourceSpans {
                    resource: Some(otlp::Resource {
                        attributes: vec![
                            kv("service.name", Any::StringValue("frontend".into())),
                            kv("host.cpu.count", Any::IntValue(8)),
                            kv("process.pid", Any::IntValue(4242)),
                        ],
                        dropped_attributes_count: 1,
                    }),
                    scope_spans: vec![
                        otlp::ScopeSpans {
                            scope: Some(otlp::InstrumentationScope {
                                name: "io.opentelemetry.http".into(),
                                version: "1.2.0".into(),
                                attributes: vec![kv("scope.attr", Any::BoolValue(true))],
                                dropped_attributes_count: 2,
                            }),
                            spans: vec![checkout, pay_client],
                            schema_url: "https://opentelemetry.io/schemas/1.24.0".into(),
                        },
                        otlp::ScopeSpans {
                            scope: Some(otlp::InstrumentationScope {
                                name: "manual".into(),
                                ..Default::default()
                            }),
                            spans: vec![render],
                            schema_url: String::new(),
                        },
                    ],
                    schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
                },
                otlp::ResourceSpans {
                    resource: Some(otlp::Resource {
                        attributes: vec![kv("service.name", Any::StringValue("payments".into()))],
                        dropped_attributes_count: 0,
                    }),
                    scope_spans: vec![otlp::ScopeSpans {
                        scope: Some(otlp::InstrumentationScope::default()),
                        spans: vec![pay_server],
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                },
            ],
        }
    }

    /// Renames every object key from lowerCamelCase to snake_case.
    fn to_snake_case(value: Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(key, v)| {
                        let mut snake = String::new();
                        for c in key.chars() {
                            if c.is_ascii_uppercase() {
                                snake.push('_');
                                snake.push(c.to_ascii_lowercase());
                            } else {
                                snake.push(c);
                            }
                        }
                        (snake, to_snake_case(v))
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.into_iter().map(to_snake_case).collect()),
            other => other,
        }
    }

    fn error(doc: &Value) -> String {
        decode(doc.to_string().as_bytes()).unwrap_err().to_string()
    }

    /// One span at `resourceSpans[0].scopeSpans[0].spans[0]`.
    fn one_span(span: Value) -> Value {
        json!({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
    }

    #[test]
    fn decodes_every_field_of_a_collector_document() {
        assert_eq!(decode(COLLECTOR_DOCUMENT.as_bytes()).unwrap(), expected());
    }

    #[test]
    fn accepts_snake_case_names() {
        let camel: Value = serde_json::from_slice(&encode(&expected())).unwrap();
        let snake = to_snake_case(camel).to_string();
        for name in [
            "\"resource_spans\"",
            "\"scope_spans\"",
            "\"schema_url\"",
            "\"trace_id\"",
            "\"span_id\"",
            "\"parent_span_id\"",
            "\"trace_state\"",
            "\"start_time_unix_nano\"",
            "\"end_time_unix_nano\"",
            "\"time_unix_nano\"",
            "\"dropped_attributes_count\"",
            "\"dropped_events_count\"",
            "\"dropped_links_count\"",
            "\"string_value\"",
            "\"bool_value\"",
            "\"int_value\"",
            "\"double_value\"",
            "\"bytes_value\"",
            "\"array_value\"",
            "\"kvlist_value\"",
        ] {
            assert!(snake.contains(name), "{name} missing from {snake}");
        }
        assert!(!snake.contains("Id\""), "{snake}");
        assert_eq!(decode(snake.as_bytes()).unwrap(), expected());
    }

    #[test]
    fn encode_then_decode_gives_the_original_message() {
        let original = expected();
        let text = encode(&original);
        assert_eq!(decode(&text).unwrap(), original);
        assert_eq!(encode(&decode(&text).unwrap()), text, "encoding is stable");
        let empty = otlp::TracesData::default();
        assert_eq!(encode(&empty), b"{}");
        assert_eq!(decode(&encode(&empty)).unwrap(), empty);
    }

    #[test]
    fn encodes_the_canonical_form() {
        let v: Value = serde_json::from_slice(&encode(&expected())).unwrap();
        let spans = &v["resourceSpans"][0]["scopeSpans"][0]["spans"];
        let checkout = &spans[0];
        assert_eq!(checkout["traceId"], "5b8efff798038103d269b633813fc60c");
        assert_eq!(checkout["spanId"], "eee19b7ec3c1b174");
        assert_eq!(checkout.get("parentSpanId"), None, "empty id omitted");
        assert_eq!(checkout["kind"], 2);
        assert_eq!(checkout["flags"], 257);
        assert_eq!(checkout["startTimeUnixNano"], "1767225600000000000");
        assert_eq!(
            checkout["status"],
            json!({"message": "payment timed out", "code": 2})
        );
        assert_eq!(
            checkout["attributes"][1]["value"],
            json!({"intValue": "500"})
        );
        assert_eq!(
            checkout["attributes"][2]["value"],
            json!({"boolValue": false})
        );
        assert_eq!(
            checkout["attributes"][3]["value"],
            json!({"doubleValue": 0.25})
        );
        assert_eq!(
            checkout["attributes"][4]["value"],
            json!({"bytesValue": "3q2+7w=="})
        );
        assert_eq!(checkout["attributes"][7], json!({"key": "no.value"}));
        assert_eq!(
            checkout["attributes"][8],
            json!({"key": "empty.value", "value": {}})
        );
        assert_eq!(checkout["events"][0]["timeUnixNano"], "1767225600100000000");
        assert_eq!(checkout["links"][0]["spanId"], "b7ad6b7169203331");
        assert_eq!(spans[1]["status"], json!({}));
        assert_eq!(spans[1].get("traceState"), None);
        assert_eq!(spans[1].get("droppedAttributesCount"), None);
        assert_eq!(v["resourceSpans"][1]["scopeSpans"][0]["scope"], json!({}));
        // Field order follows the .proto declarations.
        let text = String::from_utf8(encode(&expected())).unwrap();
        assert!(text.starts_with(r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"frontend"}}"#), "{text}");
        assert!(text.contains(r#""traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","traceState":"vendor=x","flags":257,"name":"GET /checkout","kind":2,"startTimeUnixNano":"#), "{text}");
    }

    #[test]
    fn special_doubles_and_lenient_scalars() {
        let doc = one_span(json!({
            "attributes": [
                {"key": "nan", "value": {"doubleValue": "NaN"}},
                {"key": "inf", "value": {"doubleValue": "Infinity"}},
                {"key": "-inf", "value": {"doubleValue": "-Infinity"}},
                {"key": "text", "value": {"doubleValue": "2.5"}},
                {"key": "whole", "value": {"doubleValue": 3}},
                {"key": "exp", "value": {"intValue": 1e3}},
                {"key": "url", "value": {"bytesValue": "3q2-7w"}},
                {"key": "max", "value": {"intValue": "9223372036854775807"}}
            ],
            "startTimeUnixNano": 18446744073709551615_u64,
            "status": {"code": "STATUS_CODE_ERROR"}
        }));
        let data = decode(doc.to_string().as_bytes()).unwrap();
        let span = &data.resource_spans[0].scope_spans[0].spans[0];
        let value = |i: usize| span.attributes[i].value.clone().unwrap().value.unwrap();
        assert!(matches!(value(0), Any::DoubleValue(d) if d.is_nan()));
        assert_eq!(value(1), Any::DoubleValue(f64::INFINITY));
        assert_eq!(value(2), Any::DoubleValue(f64::NEG_INFINITY));
        assert_eq!(value(3), Any::DoubleValue(2.5));
        assert_eq!(value(4), Any::DoubleValue(3.0));
        assert_eq!(value(5), Any::IntValue(1000));
        assert_eq!(value(6), Any::BytesValue(vec![0xde, 0xad, 0xbe, 0xef]));
        assert_eq!(value(7), Any::IntValue(i64::MAX));
        assert_eq!(span.start_time_unix_nano, u64::MAX);
        assert_eq!(span.status.as_ref().unwrap().code, 2);

        let v: Value = serde_json::from_slice(&encode(&data)).unwrap();
        let attributes = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"];
        assert_eq!(attributes[0]["value"]["doubleValue"], "NaN");
        assert_eq!(attributes[1]["value"]["doubleValue"], "Infinity");
        assert_eq!(attributes[2]["value"]["doubleValue"], "-Infinity");
        assert_eq!(attributes[6]["value"]["bytesValue"], "3q2+7w==");
    }

    #[test]
    fn json_and_protobuf_decode_to_the_same_jaeger_spans() {
        let from_json = decode_record(Encoding::OtlpJson, COLLECTOR_DOCUMENT.as_bytes()).unwrap();
        let from_proto = decode_record(Encoding::OtlpProto, &expected().encode_to_vec()).unwrap();
        assert_eq!(from_json.len(), 4);
        assert_eq!(from_json, from_proto);
        let from_encoded = decode_record(Encoding::OtlpJson, &encode(&expected())).unwrap();
        assert_eq!(from_encoded, from_proto);
    }

    #[test]
    fn errors_name_the_path() {
        // A bad hex id, deep in the document.
        let doc = json!({"resourceSpans": [{"scopeSpans": [
            {"spans": []},
            {"spans": [{}, {}, {"traceId": "xyz"}]}
        ]}]});
        assert_eq!(
            error(&doc),
            r#"resourceSpans[0].scopeSpans[1].spans[2].traceId: "xyz" is not hexadecimal"#
        );
        assert_eq!(
            error(&one_span(json!({"spanId": "abc"}))),
            r#"resourceSpans[0].scopeSpans[0].spans[0].spanId: "abc" is not hexadecimal (odd number of digits)"#
        );
        assert_eq!(
            error(&one_span(json!({"spanId": "7u3v95gDgQM="}))),
            r#"resourceSpans[0].scopeSpans[0].spans[0].spanId: "7u3v95gDgQM=" is not hexadecimal (OTLP/JSON ids are hex, not base64)"#
        );
        // The snake_case name the document used is the one reported.
        let doc =
            json!({"resource_spans": [{"scope_spans": [{"spans": [{"parent_span_id": 5}]}]}]});
        assert_eq!(
            error(&doc),
            "resource_spans[0].scope_spans[0].spans[0].parent_span_id: expected a hex string, got 5"
        );
        // A span that is not an object.
        let doc = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{}, "oops"]}]}]});
        assert_eq!(
            error(&doc),
            r#"resourceSpans[0].scopeSpans[0].spans[1]: expected an object, got "oops""#
        );
        // An intValue that is no integer.
        let doc = one_span(json!({"attributes": [
            {"key": "ok", "value": {"intValue": "1"}},
            {"key": "bad", "value": {"arrayValue": {"values": [{"intValue": "abc"}]}}}
        ]}));
        assert_eq!(
            error(&doc),
            r#"resourceSpans[0].scopeSpans[0].spans[0].attributes[1].value.arrayValue.values[0].intValue: "abc" is not a 64-bit integer"#
        );
        assert_eq!(
            error(&one_span(json!({"startTimeUnixNano": "-1"}))),
            r#"resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano: "-1" is not an unsigned 64-bit integer"#
        );
        assert_eq!(
            error(&one_span(json!({"kind": "SERVER"}))),
            r#"resourceSpans[0].scopeSpans[0].spans[0].kind: "SERVER" is not a known enum name"#
        );
        assert_eq!(
            error(&one_span(
                json!({"events": [{"attributes": [{"key": "k", "value": {"stringValue": "a", "intValue": 1}}]}]})
            )),
            "resourceSpans[0].scopeSpans[0].spans[0].events[0].attributes[0].value: holds both stringValue and intValue; an AnyValue holds one value"
        );
        assert_eq!(
            error(&json!({"resourceSpans": {}})),
            "resourceSpans: expected an array, got {}"
        );
        assert_eq!(error(&json!([])), "TracesData: expected an object, got []");
        // Not JSON.
        assert!(matches!(
            decode(b"{\"resourceSpans\": [}"),
            Err(OtlpJsonError::Syntax(_))
        ));
    }

    #[test]
    fn record_errors_carry_encoding_and_path() {
        // A well-formed hex id of the wrong length is reported by the conversion.
        let doc = one_span(json!({
            "traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": "0102"
        }));
        let err = decode_record(Encoding::OtlpJson, doc.to_string().as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "otlp_json: resource_spans[0].scope_spans[0].spans[0].span_id: expected 8 bytes, got 2"
        );
        let doc = one_span(json!({"traceId": "xyz"}));
        let err = decode_record(Encoding::OtlpJson, doc.to_string().as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"otlp_json: resourceSpans[0].scopeSpans[0].spans[0].traceId: "xyz" is not hexadecimal"#
        );
        assert!(matches!(
            err,
            crate::DecodeError::OtlpJson {
                encoding: Encoding::OtlpJson,
                source: OtlpJsonError::Field { ref path, .. },
            } if path == "resourceSpans[0].scopeSpans[0].spans[0].traceId"
        ));
        let err = decode_record(Encoding::OtlpJson, b"not json").unwrap_err();
        assert!(
            err.to_string().starts_with("otlp_json: invalid JSON: "),
            "{err}"
        );
    }
}
