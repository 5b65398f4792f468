//! Encoding: the canonical OTLP/JSON writer.

use std::io::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::proto::otlp;
use otlp::any_value::Value as Any;

/// Encodes `data` in canonical OTLP/JSON; see [`encode`](fn@super::encode).
pub(super) fn traces_data(data: &otlp::TracesData) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut o = JsonObject::open(&mut out);
    o.array("resourceSpans", &data.resource_spans, write_resource_spans);
    o.close();
    out
}

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
            crate::hex::extend(out, bytes);
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
