//! Span documents written from `otlp_proto` record bytes in place.
//!
//! Decoding a record into prost messages allocated every key and string
//! value of every attribute, only for the document writer to copy them
//! once more; with the conversion to Jaeger spans that was about a quarter
//! of the ingester's CPU. Here the bytes are read where they lie, checked
//! field by field in the same pass, and the document is written from
//! borrowed views with the conversion rules of `spanway_schemas::to_jaeger`
//! (tag order, span kind, status, scope, events as logs, links as
//! references).
//!
//! The documents must be the ones the decoding path writes, byte for byte,
//! since ids hash them, and a record decoding refuses must not be read
//! here. So the reader is at least as strict as decoding (wire types of
//! known fields, UTF-8 of strings, framing), and wherever decoding would do
//! something it does not reproduce (a message field given twice, which
//! protobuf merges; a group; an id of the wrong length, which the decoding
//! path reports with its path) it gives up on the record and the caller
//! decodes it instead. Tests compare both paths over varied records and
//! over every single-byte corruption of one.

use std::borrow::Cow;

use prost::Message as _;
use spanway_schemas::proto::otlp;
use spanway_schemas::to_jaeger::{self, UNKNOWN_SERVICE};
use spanway_schemas::wire::otlp::{self as wire, Message};
use spanway_schemas::wire::{Fields, Value};
use spanway_schemas::{SpanId, TraceId};
use spanway_search::index::IndexNames;

use super::json::{ProcessParts, Reference, SpanParts, Tag, TagValue};
use super::{Learning, ServiceOf, TagsAsFields, Unsealed, unsealed_document};

/// One span's document, its id still to be sealed, and what its service
/// document needs.
pub type WireSpan<'a> = (Unsealed, ServiceOf<'a>);

/// How the tags of the documents being read are placed: the configured
/// fields, and the learned keys with them when learning.
type Placing<'f> = (&'f TagsAsFields, Option<&'f Learning<'f>>);

/// Calls `each` with every field of `message`; `None` when a field is
/// malformed or `each` gives up.
fn each_field<'a>(
    message: &'a [u8],
    mut each: impl FnMut(u32, Value<'a>) -> Option<()>,
) -> Option<()> {
    let mut fields = Fields::new(message);
    while let Some((number, value)) = fields.next_field().ok()? {
        each(number, value)?;
    }
    Some(())
}

fn text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

/// The span documents of an `otlp_proto` record, in the order the decoding
/// path writes them; `None` when the record must take that path instead.
pub fn span_documents<'a>(
    payload: &'a [u8],
    names: &IndexNames,
    fields: &TagsAsFields,
    learning: Option<&Learning<'_>>,
) -> Option<Vec<WireSpan<'a>>> {
    let fields = (fields, learning);
    let mut out = Vec::new();
    let mut parts = SpanParts::default();
    each_field(payload, |number, value| match (number, value) {
        (1, Value::Bytes(resource_spans)) => {
            read_resource_spans(resource_spans, names, fields, &mut parts, &mut out)
        }
        (1, _) => None,
        _ => Some(()),
    })?;
    Some(out)
}

fn read_resource_spans<'a>(
    resource_spans: &'a [u8],
    names: &IndexNames,
    fields: Placing<'_>,
    parts: &mut SpanParts<'a>,
    out: &mut Vec<WireSpan<'a>>,
) -> Option<()> {
    // The resource may follow its spans: find it first.
    let mut resource = None;
    each_field(resource_spans, |number, value| match (number, value) {
        (1, Value::Bytes(r)) => resource.replace(r).is_none().then_some(()),
        (2, Value::Bytes(_)) => Some(()),
        (3, Value::Bytes(url)) => text(url).map(drop),
        (1..=3, _) => None,
        _ => Some(()),
    })?;
    let process = process(resource)?;
    each_field(resource_spans, |number, value| match (number, value) {
        (2, Value::Bytes(scope_spans)) => {
            read_scope_spans(scope_spans, &process, names, fields, parts, out)
        }
        _ => Some(()),
    })
}

fn read_scope_spans<'a>(
    scope_spans: &'a [u8],
    process: &ProcessParts<'a>,
    names: &IndexNames,
    fields: Placing<'_>,
    parts: &mut SpanParts<'a>,
    out: &mut Vec<WireSpan<'a>>,
) -> Option<()> {
    let mut scope = None;
    each_field(scope_spans, |number, value| match (number, value) {
        (1, Value::Bytes(s)) => scope.replace(s).is_none().then_some(()),
        (2, Value::Bytes(_)) => Some(()),
        (3, Value::Bytes(url)) => text(url).map(drop),
        (1..=3, _) => None,
        _ => Some(()),
    })?;
    let scope = match scope {
        Some(scope) => Some(read_scope(scope)?),
        None => None,
    };
    each_field(scope_spans, |number, value| {
        let (2, Value::Bytes(span)) = (number, value) else {
            return Some(());
        };
        parts.clear();
        if let Some((name, version)) = scope {
            for (key, text) in [("otel.scope.name", name), ("otel.scope.version", version)] {
                if !text.is_empty() {
                    parts.tags.push(string_tag(key, text));
                }
            }
        }
        let head = read_span(span, parts)?;
        let start_micros = head.start / 1000;
        let document = unsealed_document(
            parts,
            process,
            names,
            fields,
            (head.trace_id, head.span_id),
            (start_micros, head.end.saturating_sub(head.start) / 1000),
        );
        out.push((
            document,
            ServiceOf {
                start_micros,
                service: process.service_name,
                operation: parts.operation_name,
            },
        ));
        Some(())
    })
}

/// The scope's name and version, the last of each as decoding keeps them.
fn read_scope(scope: &[u8]) -> Option<(&str, &str)> {
    let (mut name, mut version) = ("", "");
    each_field(scope, |number, value| match (number, value) {
        (1, Value::Bytes(t)) => text(t).map(|t| name = t),
        (2, Value::Bytes(t)) => text(t).map(|t| version = t),
        (3, Value::Bytes(kv)) => wire::validate(Message::KeyValue, kv).ok(),
        (4, Value::Varint(_)) => Some(()),
        (1..=4, _) => None,
        _ => Some(()),
    })?;
    Some((name, version))
}

fn process(resource: Option<&[u8]>) -> Option<ProcessParts<'_>> {
    let mut service_name = None;
    let mut tags = Vec::new();
    if let Some(resource) = resource {
        each_field(resource, |number, value| match (number, value) {
            (1, Value::Bytes(kv)) => {
                let (tag, is_string) = read_key_value(kv)?;
                if tag.key != "service.name" {
                    tags.push(tag);
                } else if service_name.is_none() {
                    // The first attribute so named decides, as in the conversion.
                    service_name = Some(match tag.value {
                        TagValue::Str(Cow::Borrowed(name)) if is_string && !name.is_empty() => name,
                        _ => UNKNOWN_SERVICE,
                    });
                }
                Some(())
            }
            (2, Value::Varint(_)) => Some(()),
            (1 | 2, _) => None,
            _ => Some(()),
        })?;
    }
    Some(ProcessParts {
        service_name: service_name.unwrap_or(UNKNOWN_SERVICE),
        tags,
    })
}

fn string_tag<'a>(key: &'a str, text: &'a str) -> Tag<'a> {
    Tag {
        key,
        value: TagValue::Str(Cow::Borrowed(text)),
    }
}

/// A `KeyValue` as the conversion turns it into a tag, and whether its
/// value was a `string_value`.
fn read_key_value(kv: &[u8]) -> Option<(Tag<'_>, bool)> {
    // Most attributes are strings in the shape exporters write: read those
    // in one UTF-8 check and no field walk.
    if let Some((key, text)) = wire::plain_string_key_value(kv) {
        return Some((string_tag(key, text), true));
    }
    let mut key = "";
    let mut any = None;
    each_field(kv, |number, value| match (number, value) {
        (1, Value::Bytes(k)) => text(k).map(|k| key = k),
        (2, Value::Bytes(a)) => any.replace(a).is_none().then_some(()),
        (1 | 2, _) => None,
        _ => Some(()),
    })?;
    let (value, is_string) = match any {
        None => (TagValue::Str(Cow::Borrowed("")), false),
        Some(any) => any_value(any)?,
    };
    Some((Tag { key, value }, is_string))
}

fn tag(kv: &[u8]) -> Option<Tag<'_>> {
    read_key_value(kv).map(|(tag, _)| tag)
}

fn any_value(any: &[u8]) -> Option<(TagValue<'_>, bool)> {
    let mut set = None;
    each_field(any, |number, value| {
        let fits = matches!(
            (number, value),
            (1 | 5 | 6 | 7, Value::Bytes(_)) | (2 | 3, Value::Varint(_)) | (4, Value::Fixed64(_))
        );
        match number {
            // Several oneof fields: decoding keeps the last, merging when
            // both are the same message; not worth reproducing.
            1..=7 if fits && set.is_none() => {
                set = Some((number, value));
                Some(())
            }
            1..=7 => None,
            _ => Some(()),
        }
    })?;
    let Some(field) = set else {
        return Some((TagValue::Str(Cow::Borrowed("")), false));
    };
    Some(match field {
        (1, Value::Bytes(t)) => (TagValue::Str(Cow::Borrowed(text(t)?)), true),
        (2, Value::Varint(b)) => (TagValue::Bool(b != 0), false),
        (3, Value::Varint(i)) => (TagValue::Int(i as i64), false),
        (4, Value::Fixed64(bits)) => (TagValue::Float(f64::from_bits(bits)), false),
        (7, Value::Bytes(bytes)) => (TagValue::Binary(bytes), false),
        (5 | 6, Value::Bytes(_)) => {
            // Arrays and maps are rare; their JSON text comes from the
            // conversion itself. Checked first within a depth decoding of
            // the whole record would also accept.
            wire::validate(Message::AnyValue, any).ok()?;
            let value = otlp::AnyValue::decode(any).ok()?;
            let converted = to_jaeger::attribute_to_tag(otlp::KeyValue {
                key: String::new(),
                value: Some(value),
            });
            (TagValue::Str(Cow::Owned(converted.v_str)), false)
        }
        _ => return None,
    })
}

/// Ids (checked as the conversion checks them) and times of a span.
struct Head<'a> {
    trace_id: &'a [u8],
    span_id: &'a [u8],
    start: u64,
    end: u64,
}

/// Reads `span` into `parts` (after the scope's tags already there).
fn read_span<'a>(span: &'a [u8], parts: &mut SpanParts<'a>) -> Option<Head<'a>> {
    let (mut trace_id, mut span_id, mut parent): (&[u8], &[u8], &[u8]) = (&[], &[], &[]);
    let (mut start, mut end, mut kind, mut flags) = (0u64, 0u64, 0i32, 0u32);
    let mut trace_state = "";
    let mut links = Vec::new();
    let mut status = None;
    each_field(span, |number, value| {
        match (number, value) {
            (1, Value::Bytes(id)) => trace_id = id,
            (2, Value::Bytes(id)) => span_id = id,
            (3, Value::Bytes(t)) => trace_state = text(t)?,
            (4, Value::Bytes(id)) => parent = id,
            (5, Value::Bytes(t)) => parts.operation_name = text(t)?,
            (6, Value::Varint(k)) => kind = k as i32,
            (7, Value::Fixed64(t)) => start = t,
            (8, Value::Fixed64(t)) => end = t,
            (9, Value::Bytes(kv)) => parts.tags.push(tag(kv)?),
            (10 | 12 | 14, Value::Varint(_)) => {}
            (11, Value::Bytes(event)) => read_event(event, parts)?,
            (13, Value::Bytes(link)) => links.push(link),
            (15, Value::Bytes(s)) if status.is_none() => status = Some(s),
            (16, Value::Fixed32(f)) => flags = f,
            (1..=16, _) => return None,
            _ => {}
        }
        Some(())
    })?;
    TraceId::from_slice(trace_id).ok()?;
    SpanId::from_slice(span_id).ok()?;
    parts.flags = flags & 0xff;
    read_references(trace_id, parent, &links, parts)?;
    if let Some(kind) = to_jaeger::span_kind_name(kind) {
        parts.tags.push(string_tag("span.kind", kind));
    }
    if let Some(status) = status {
        read_status(status, parts)?;
    }
    if !trace_state.is_empty() {
        parts.tags.push(string_tag("w3c.tracestate", trace_state));
    }
    Some(Head {
        trace_id,
        span_id,
        start,
        end,
    })
}

fn read_status<'a>(status: &'a [u8], parts: &mut SpanParts<'a>) -> Option<()> {
    let mut code = 0i32;
    let mut message = "";
    each_field(status, |number, value| match (number, value) {
        (2, Value::Bytes(t)) => text(t).map(|t| message = t),
        (3, Value::Varint(c)) => {
            code = c as i32;
            Some(())
        }
        (2 | 3, _) => None,
        _ => Some(()),
    })?;
    match otlp::status::StatusCode::try_from(code) {
        Ok(otlp::status::StatusCode::Ok) => {
            parts.tags.push(string_tag("otel.status_code", "OK"));
        }
        Ok(otlp::status::StatusCode::Error) => parts.tags.push(Tag {
            key: "error",
            value: TagValue::Bool(true),
        }),
        _ => {}
    }
    if !message.is_empty() {
        parts
            .tags
            .push(string_tag("otel.status_description", message));
    }
    Some(())
}

/// The parent first, then each link, a link to the parent only setting
/// the parent reference's type.
fn read_references<'a>(
    trace_id: &'a [u8],
    parent: &'a [u8],
    links: &[&'a [u8]],
    parts: &mut SpanParts<'a>,
) -> Option<()> {
    let has_parent = !parent.is_empty();
    if has_parent {
        SpanId::from_slice(parent).ok()?;
        parts.references.push(Reference {
            trace_id,
            span_id: parent,
            follows_from: false,
        });
    }
    for link in links {
        let (mut link_trace, mut link_span): (&[u8], &[u8]) = (&[], &[]);
        let mut child_of = false;
        each_field(link, |number, value| {
            match (number, value) {
                (1, Value::Bytes(id)) => link_trace = id,
                (2, Value::Bytes(id)) => link_span = id,
                (3, Value::Bytes(t)) => {
                    text(t)?;
                }
                (4, Value::Bytes(kv)) => {
                    let (tag, is_string) = read_key_value(kv)?;
                    if tag.key == "opentracing.ref_type"
                        && is_string
                        && tag.value == TagValue::Str(Cow::Borrowed("child_of"))
                    {
                        child_of = true;
                    }
                }
                (5, Value::Varint(_)) | (6, Value::Fixed32(_)) => {}
                (1..=6, _) => return None,
                _ => {}
            }
            Some(())
        })?;
        TraceId::from_slice(link_trace).ok()?;
        SpanId::from_slice(link_span).ok()?;
        if let Some(first) = parts.references.first_mut()
            && has_parent
            && first.trace_id == link_trace
            && first.span_id == link_span
        {
            first.follows_from = !child_of;
            continue;
        }
        parts.references.push(Reference {
            trace_id: link_trace,
            span_id: link_span,
            follows_from: !child_of,
        });
    }
    Some(())
}

/// An event as a log: its name as the `event` field unless an attribute
/// has that key, then its attributes.
fn read_event<'a>(event: &'a [u8], parts: &mut SpanParts<'a>) -> Option<()> {
    let start = parts.log_fields.len();
    let mut time = 0u64;
    let mut name = "";
    let mut has_event_attr = false;
    each_field(event, |number, value| {
        match (number, value) {
            (1, Value::Fixed64(t)) => time = t,
            (2, Value::Bytes(t)) => name = text(t)?,
            (3, Value::Bytes(kv)) => {
                let tag = tag(kv)?;
                has_event_attr |= tag.key == "event";
                parts.log_fields.push(tag);
            }
            (4, Value::Varint(_)) => {}
            (1..=4, _) => return None,
            _ => {}
        }
        Some(())
    })?;
    if !name.is_empty() && !has_event_attr {
        parts.log_fields.insert(start, string_tag("event", name));
    }
    let end = parts.log_fields.len();
    parts.logs.push((time / 1000, start..end));
    Some(())
}

#[cfg(test)]
mod tests {
    //! The reader against the decoding path it stands in for: the same
    //! documents, byte for byte, or no answer at all.
    use otlp::any_value::Value as V;
    use spanway_schemas::{Encoding, decode_record_grouped};

    use super::*;
    use crate::document::span_document_unsealed;

    type Expected = Vec<(Unsealed, (u64, String, String))>;

    /// What the decoding path writes for `payload`, or `None` when it
    /// refuses the record.
    fn decoded(payload: &[u8], names: &IndexNames, fields: &TagsAsFields) -> Option<Expected> {
        let groups = decode_record_grouped(Encoding::OtlpProto, payload).ok()?;
        let mut out = Vec::new();
        for group in &groups {
            for span in &group.spans {
                let process = Some(&group.process);
                let doc = span_document_unsealed(span, process, names, fields, None);
                let service = ServiceOf::new(span, process);
                out.push((doc, parts_of(&service)));
            }
        }
        Some(out)
    }

    fn parts_of(service: &ServiceOf<'_>) -> (u64, String, String) {
        (
            service.start_micros,
            service.service.to_owned(),
            service.operation.to_owned(),
        )
    }

    fn read(payload: &[u8], names: &IndexNames, fields: &TagsAsFields) -> Option<Expected> {
        let spans = span_documents(payload, names, fields, None)?;
        Some(spans.into_iter().map(|(d, s)| (d, parts_of(&s))).collect())
    }

    fn kv(key: &str, value: Option<V>) -> otlp::KeyValue {
        otlp::KeyValue {
            key: key.into(),
            value: value.map(|v| otlp::AnyValue { value: Some(v) }),
        }
    }

    fn attributes(seed: u8) -> Vec<otlp::KeyValue> {
        let array = V::ArrayValue(otlp::ArrayValue {
            values: vec![
                otlp::AnyValue {
                    value: Some(V::StringValue("a\"b".into())),
                },
                otlp::AnyValue { value: None },
                otlp::AnyValue {
                    value: Some(V::DoubleValue(f64::NAN)),
                },
                otlp::AnyValue {
                    value: Some(V::BytesValue(vec![1, 2, 3])),
                },
            ],
        });
        let map = V::KvlistValue(otlp::KeyValueList {
            values: vec![
                kv("x", Some(V::IntValue(-3))),
                kv("y", None),
                kv("z", Some(V::BoolValue(true))),
            ],
        });
        let all = vec![
            kv("http.method", Some(V::StringValue("GET".into()))),
            kv("http.status_code", Some(V::IntValue(200 + i64::from(seed)))),
            kv("ratio", Some(V::DoubleValue(0.25 * f64::from(seed)))),
            kv("inf", Some(V::DoubleValue(f64::INFINITY))),
            kv("ok", Some(V::BoolValue(seed.is_multiple_of(2)))),
            kv("blob", Some(V::BytesValue(vec![0xde, 0xad, seed]))),
            kv("list", Some(array)),
            kv("map", Some(map)),
            kv("missing", None),
            otlp::KeyValue {
                key: "empty".into(),
                value: Some(otlp::AnyValue { value: None }),
            },
            kv("esc\n\u{1}\"é", Some(V::StringValue("中文 \\ 🙂".into()))),
            kv("event", Some(V::StringValue("attr".into()))),
            kv("http.method", Some(V::StringValue("POST".into()))),
            kv("error", Some(V::BoolValue(false))),
        ];
        // A different selection per seed, order kept.
        all.into_iter()
            .enumerate()
            .filter(|(i, _)| (usize::from(seed) + i) % 3 != 0)
            .map(|(_, kv)| kv)
            .collect()
    }

    fn span(seed: u8) -> otlp::Span {
        let trace_id = if seed.is_multiple_of(4) {
            [[0; 8], [seed + 1; 8]].concat()
        } else {
            vec![seed + 1; 16]
        };
        let parent = vec![0x40 + seed; 8];
        let mut links = vec![otlp::span::Link {
            trace_id: vec![0x77; 16],
            span_id: vec![0x78; 8],
            attributes: vec![kv(
                "opentracing.ref_type",
                Some(V::StringValue(
                    if seed.is_multiple_of(2) {
                        "child_of"
                    } else {
                        "x"
                    }
                    .into(),
                )),
            )],
            ..Default::default()
        }];
        if seed.is_multiple_of(3) {
            // A link to the parent changes the parent reference's type.
            links.push(otlp::span::Link {
                trace_id: trace_id.clone(),
                span_id: parent.clone(),
                ..Default::default()
            });
        }
        otlp::Span {
            trace_id,
            span_id: vec![0x20 + seed; 8],
            parent_span_id: if seed.is_multiple_of(5) {
                Vec::new()
            } else {
                parent
            },
            trace_state: if seed.is_multiple_of(2) {
                "k=v".into()
            } else {
                String::new()
            },
            name: format!("op \"{seed}\""),
            kind: i32::from(seed % 7),
            start_time_unix_nano: 1_767_225_599_999_999_999 + u64::from(seed) * 1_234_567,
            end_time_unix_nano: if seed == 6 {
                0
            } else {
                1_767_225_600_000_123_456 + u64::from(seed) * 7_654_321
            },
            attributes: attributes(seed),
            events: (0..seed % 3)
                .map(|i| otlp::span::Event {
                    time_unix_nano: 1_767_225_600_000_000_999 + u64::from(i),
                    name: if i == 0 {
                        "exception".into()
                    } else {
                        String::new()
                    },
                    attributes: attributes(seed + i),
                    ..Default::default()
                })
                .collect(),
            links: if seed % 4 == 1 { Vec::new() } else { links },
            status: (seed % 4 != 3).then(|| otlp::Status {
                message: if seed.is_multiple_of(2) {
                    "boom".into()
                } else {
                    String::new()
                },
                code: i32::from(seed % 4),
            }),
            flags: 0x301 * u32::from(seed % 2),
            ..Default::default()
        }
    }

    fn resource(seed: u8) -> Option<otlp::Resource> {
        let mut attributes = match seed % 5 {
            0 => vec![kv("service.name", Some(V::StringValue("checkout".into())))],
            1 => vec![kv("service.name", Some(V::StringValue(String::new())))],
            2 => vec![
                kv("service.name", Some(V::IntValue(3))),
                kv("service.name", Some(V::StringValue("second".into()))),
            ],
            3 => Vec::new(),
            _ => return None,
        };
        attributes.extend([
            kv("host.name", Some(V::StringValue(format!("node-{seed}")))),
            kv("k8s.pod.ip", Some(V::IntValue(7))),
        ]);
        Some(otlp::Resource {
            attributes,
            ..Default::default()
        })
    }

    fn record(seed: u8) -> Vec<u8> {
        let scope = |i: u8| match (seed + i) % 3 {
            0 => None,
            1 => Some(otlp::InstrumentationScope {
                name: "lib".into(),
                version: "1.2".into(),
                ..Default::default()
            }),
            _ => Some(otlp::InstrumentationScope {
                name: String::new(),
                version: "only-version".into(),
                ..Default::default()
            }),
        };
        let data = otlp::TracesData {
            resource_spans: (0..1 + seed % 2)
                .map(|r| otlp::ResourceSpans {
                    resource: resource(seed + r),
                    scope_spans: (0..2)
                        .map(|i| otlp::ScopeSpans {
                            scope: scope(i),
                            spans: (0..2).map(|j| span(seed + r + i + j)).collect(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
        };
        data.encode_to_vec()
    }

    fn modes() -> Vec<TagsAsFields> {
        vec![
            TagsAsFields::default(),
            TagsAsFields {
                keys: ["http.method", "ratio", "blob", "host.name"]
                    .into_iter()
                    .collect(),
                ..Default::default()
            },
            TagsAsFields {
                all: true,
                dot_replacement: "__".into(),
                ..Default::default()
            },
        ]
    }

    #[test]
    fn writes_the_documents_decoding_writes() {
        let names = IndexNames::new("p-");
        for fields in modes() {
            for seed in 0..24 {
                let payload = record(seed);
                let expected = decoded(&payload, &names, &fields).expect("decodes");
                let got = read(&payload, &names, &fields);
                assert_eq!(got.as_ref(), Some(&expected), "seed {seed}, {fields:?}");
                assert!(!expected.is_empty());
            }
        }
    }

    #[test]
    fn corrupted_records_are_read_alike_or_left_to_decoding() {
        let names = IndexNames::new("");
        let fields = TagsAsFields::default();
        let payload = record(2);
        let mut answered = 0;
        for at in 0..payload.len() {
            for variant in [
                payload[..at].to_vec(),
                {
                    let mut p = payload.clone();
                    p[at] ^= 0xff;
                    p
                },
                {
                    let mut p = payload.clone();
                    p[at] = p[at].wrapping_add(1);
                    p
                },
            ] {
                if let Some(got) = read(&variant, &names, &fields) {
                    answered += 1;
                    let expected = decoded(&variant, &names, &fields);
                    assert_eq!(Some(got), expected, "at {at}");
                }
            }
        }
        assert!(
            answered > payload.len() / 2,
            "many variants still read: {answered} of {}",
            3 * payload.len()
        );
    }

    #[test]
    fn merged_fields_and_bad_ids_are_left_to_decoding() {
        let names = IndexNames::new("");
        let fields = TagsAsFields::default();
        let status = |code| {
            otlp::Status {
                code,
                ..Default::default()
            }
            .encode_to_vec()
        };
        // A span with two `status` fields: decoding merges them.
        let mut span_bytes = span(1).encode_to_vec();
        for code in [2, 0] {
            spanway_schemas::wire::put_len_prefix(&mut span_bytes, 15, status(code).len());
            span_bytes.extend(status(code));
        }
        let wrap = |span: &[u8]| {
            let mut scope_spans = Vec::new();
            spanway_schemas::wire::put_len_prefix(&mut scope_spans, 2, span.len());
            scope_spans.extend_from_slice(span);
            let mut resource_spans = Vec::new();
            spanway_schemas::wire::put_len_prefix(&mut resource_spans, 2, scope_spans.len());
            resource_spans.extend(scope_spans);
            let mut data = Vec::new();
            spanway_schemas::wire::put_len_prefix(&mut data, 1, resource_spans.len());
            data.extend(resource_spans);
            data
        };
        let merged = wrap(&span_bytes);
        assert!(decoded(&merged, &names, &fields).is_some());
        assert!(read(&merged, &names, &fields).is_none());

        let mut short_id = span(1);
        short_id.span_id = vec![1; 7];
        let bad = wrap(&short_id.encode_to_vec());
        assert!(decoded(&bad, &names, &fields).is_none());
        assert!(read(&bad, &names, &fields).is_none());
    }
}
