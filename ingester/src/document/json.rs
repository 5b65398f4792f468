//! The span document's JSON, written straight into one buffer.
//!
//! Serializing document structs with serde_json built a JSON value and a
//! vector per tag, and that allocation was the largest single cost of the
//! ingester. This writer produces the same bytes (tests compare it with
//! that serialization over varied spans): field order, number forms, string
//! escapes, and the `tag` objects' keys in sorted order with the last of a
//! repeated key winning. The bytes matter beyond the engine: a span
//! document's id hashes its source, so a record replayed after an upgrade
//! must give the same id to be recognised as stored.
//!
//! It writes from [`SpanParts`], borrowed views, so that spans read in place
//! from OTLP bytes (`super::otlp_wire`) and decoded Jaeger spans share it.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::ops::Range;

use spanway_schemas::proto::jaeger::api_v2 as jaeger;

use super::TagsAsFields;

/// A tag's value as the document stores it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum TagValue<'a> {
    Str(Cow<'a, str>),
    Bool(bool),
    Int(i64),
    Float(f64),
    Binary(&'a [u8]),
}

/// One tag or log field.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Tag<'a> {
    pub key: &'a str,
    pub value: TagValue<'a>,
}

impl<'a> From<&'a jaeger::KeyValue> for Tag<'a> {
    fn from(kv: &'a jaeger::KeyValue) -> Self {
        use jaeger::ValueType;
        let value = match ValueType::try_from(kv.v_type).unwrap_or(ValueType::String) {
            ValueType::String => TagValue::Str(Cow::Borrowed(&kv.v_str)),
            ValueType::Bool => TagValue::Bool(kv.v_bool),
            ValueType::Int64 => TagValue::Int(kv.v_int64),
            ValueType::Float64 => TagValue::Float(kv.v_float64),
            ValueType::Binary => TagValue::Binary(&kv.v_binary),
        };
        Tag {
            key: &kv.key,
            value,
        }
    }
}

/// A reference to another span.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Reference<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub follows_from: bool,
}

/// What a span document is written from. The vectors are reused from span
/// to span by a reader that builds many.
#[derive(Debug, Default)]
pub(super) struct SpanParts<'a> {
    pub flags: u32,
    pub operation_name: &'a str,
    pub references: Vec<Reference<'a>>,
    pub tags: Vec<Tag<'a>>,
    /// Each log's timestamp (µs) and its fields in `log_fields`.
    pub logs: Vec<(u64, Range<usize>)>,
    pub log_fields: Vec<Tag<'a>>,
}

impl<'a> SpanParts<'a> {
    /// Empties the parts for the next span, keeping their capacity.
    pub fn clear(&mut self) {
        self.flags = 0;
        self.operation_name = "";
        self.references.clear();
        self.tags.clear();
        self.logs.clear();
        self.log_fields.clear();
    }

    pub fn of_jaeger(span: &'a jaeger::Span) -> Self {
        let mut parts = SpanParts {
            flags: span.flags,
            operation_name: &span.operation_name,
            references: span
                .references
                .iter()
                .map(|r| Reference {
                    trace_id: &r.trace_id,
                    span_id: &r.span_id,
                    follows_from: r.ref_type == jaeger::SpanRefType::FollowsFrom as i32,
                })
                .collect(),
            tags: span.tags.iter().map(Tag::from).collect(),
            ..Default::default()
        };
        for log in &span.logs {
            let start = parts.log_fields.len();
            parts.log_fields.extend(log.fields.iter().map(Tag::from));
            let timestamp = super::micros_of_timestamp(log.timestamp.as_ref());
            parts.logs.push((timestamp, start..parts.log_fields.len()));
        }
        parts
    }
}

/// The process a span document names.
#[derive(Debug, Default)]
pub(super) struct ProcessParts<'a> {
    pub service_name: &'a str,
    pub tags: Vec<Tag<'a>>,
}

impl<'a> ProcessParts<'a> {
    pub fn of_jaeger(process: Option<&'a jaeger::Process>) -> Self {
        process.map_or_else(Default::default, |p| ProcessParts {
            service_name: &p.service_name,
            tags: p.tags.iter().map(Tag::from).collect(),
        })
    }
}

/// Appends the `_source` of `span`'s document.
#[cfg(test)]
pub(super) fn write_span(
    out: &mut Vec<u8>,
    span: &jaeger::Span,
    process: Option<&jaeger::Process>,
    fields: &TagsAsFields,
    ids: (&str, &str),
    start_time: u64,
    duration: u64,
) {
    let parts = SpanParts::of_jaeger(span);
    let process = ProcessParts::of_jaeger(process);
    write_parts(
        out,
        &parts,
        &process,
        fields,
        (ids, (start_time, duration)),
        None,
    );
}

/// Where a written document's two tag sections (`,"tags":[…]` and its
/// `,"tag":{…}`, the span's and the process's) lie in it.
#[derive(Debug, Clone)]
pub(super) struct TagSections {
    span: Range<usize>,
    process: Range<usize>,
}

/// Tags a list may hold for their keys and values to be noted in a
/// [`Noted`].
pub(super) const NOTED_TAGS: usize = 64;

/// Where a tag's key (quoted, dots replaced if it was written as a field)
/// and value were written in a document: start and end of each.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Spot {
    key: (u32, u32),
    value: (u32, u32),
}

/// Each tag's [`Spot`], by the tag's position in its list. Empty where it
/// was not noted (past [`NOTED_TAGS`], or a field whose repeated key a
/// later tag overrode).
pub(super) type Noted = [Spot; NOTED_TAGS];

/// What the tag writers do with keys and values: write them ([`Write`]),
/// also note where they went ([`Note`]), or copy them ([`CopyFrom`]). A type
/// each, so that the writers are compiled once per kind, with no choice
/// made per tag.
trait Values {
    /// Appends the key and then the value of `tag`, at `position` in its
    /// list, with `between` between them. With `replacement`, the key's
    /// dots become it: a field's name.
    fn put(
        &mut self,
        out: &mut Vec<u8>,
        position: usize,
        tag: &Tag<'_>,
        layout: (&[u8], Option<u8>),
    );
}

/// Writes each key and value.
struct Write;

/// Writes each key and value and notes where they went.
struct Note<'v>(&'v mut Noted);

/// Copies each key and value from `.0`, a document that noted them in
/// `.1`: the same key or value written again would be the same bytes,
/// found again at a cost.
struct CopyFrom<'v>(&'v [u8], &'v Noted);

/// The key and value of `tag` written, with `between` between them.
#[inline]
fn put_written(
    out: &mut Vec<u8>,
    tag: &Tag<'_>,
    (between, replacement): (&[u8], Option<u8>),
) -> Spot {
    let key_start = out.len();
    match replacement {
        Some(replacement) => write_field_name(out, tag.key, replacement),
        None => write_str(out, tag.key),
    }
    let key_end = out.len();
    out.extend_from_slice(between);
    let value_start = out.len();
    write_value(out, &tag.value);
    let at = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    Spot {
        key: (at(key_start), at(key_end)),
        value: (at(value_start), at(out.len())),
    }
}

impl Values for Write {
    #[inline]
    fn put(&mut self, out: &mut Vec<u8>, _: usize, tag: &Tag<'_>, layout: (&[u8], Option<u8>)) {
        put_written(out, tag, layout);
    }
}

impl Values for Note<'_> {
    #[inline]
    fn put(
        &mut self,
        out: &mut Vec<u8>,
        position: usize,
        tag: &Tag<'_>,
        layout: (&[u8], Option<u8>),
    ) {
        let spot = put_written(out, tag, layout);
        // A document past 4 GiB would note nothing: it is written, not copied.
        if let Some(slot) = self.0.get_mut(position)
            && spot.value.1 != u32::MAX
        {
            *slot = spot;
        }
    }
}

impl Values for CopyFrom<'_> {
    /// Replacing the dots in the quoted key is quoting the replaced key,
    /// as escapes hold no dot and the replacement is a byte JSON leaves
    /// alone.
    #[inline]
    fn put(
        &mut self,
        out: &mut Vec<u8>,
        position: usize,
        tag: &Tag<'_>,
        (between, replacement): (&[u8], Option<u8>),
    ) {
        let CopyFrom(written, noted) = self;
        let Some(spot) = noted.get(position).filter(|s| s.value.0 < s.value.1) else {
            put_written(out, tag, (between, replacement));
            return;
        };
        let start = out.len();
        out.extend_from_slice(&written[spot.key.0 as usize..spot.key.1 as usize]);
        if let Some(replacement) = replacement {
            replace_dots(&mut out[start..], replacement);
        }
        out.extend_from_slice(between);
        out.extend_from_slice(&written[spot.value.0 as usize..spot.value.1 as usize]);
    }
}

/// `key`, quoted, its dots replaced by the one byte `replacement`.
fn write_field_name(out: &mut Vec<u8>, key: &str, replacement: u8) {
    if spanway_search::json::is_plain(key) {
        out.reserve(key.len() + 2);
        out.push(b'"');
        let start = out.len();
        out.extend_from_slice(key.as_bytes());
        replace_dots(&mut out[start..], replacement);
        out.push(b'"');
    } else {
        write_str(out, &key.replace('.', &char::from(replacement).to_string()));
    }
}

/// Every `.` in `bytes` made `replacement`, without a branch per byte.
fn replace_dots(bytes: &mut [u8], replacement: u8) {
    for byte in bytes {
        *byte = if *byte == b'.' { replacement } else { *byte };
    }
}

/// Appends the `_source` of the span `parts` describe; `times` are its
/// start and duration in microseconds. With `noted`, where each span and
/// process tag's key and value went is noted there, for
/// [`write_replacing_tags`].
pub(super) fn write_parts(
    out: &mut Vec<u8>,
    span: &SpanParts<'_>,
    process: &ProcessParts<'_>,
    fields: &TagsAsFields,
    (ids, times): ((&str, &str), (u64, u64)),
    noted: Option<&mut [Noted; 2]>,
) -> TagSections {
    match noted {
        Some([span_at, process_at]) => write_parts_with(
            out,
            (span, process, fields),
            (ids, times),
            [&mut Note(span_at), &mut Note(process_at)],
        ),
        None => write_parts_with(
            out,
            (span, process, fields),
            (ids, times),
            [&mut Write, &mut Write],
        ),
    }
}

/// [`write_parts`], the span's and the process's tags written through
/// `values`.
fn write_parts_with<V: Values>(
    out: &mut Vec<u8>,
    (span, process, fields): (&SpanParts<'_>, &ProcessParts<'_>, &TagsAsFields),
    ((trace_id, span_id), (start_time, duration)): ((&str, &str), (u64, u64)),
    [span_values, process_values]: [&mut V; 2],
) -> TagSections {
    out.extend_from_slice(b"{\"traceID\":");
    write_hex_digits(out, trace_id);
    out.extend_from_slice(b",\"spanID\":");
    write_hex_digits(out, span_id);
    if span.flags != 0 {
        out.extend_from_slice(b",\"flags\":");
        write_number(out, span.flags);
    }
    out.extend_from_slice(b",\"operationName\":");
    write_str(out, span.operation_name);
    out.extend_from_slice(b",\"references\":[");
    for (i, reference) in span.references.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"refType\":");
        let kind = if reference.follows_from {
            "FOLLOWS_FROM"
        } else {
            "CHILD_OF"
        };
        write_str(out, kind);
        out.extend_from_slice(b",\"traceID\":");
        super::write_trace_id_str(out, reference.trace_id);
        out.extend_from_slice(b",\"spanID\":");
        super::write_hex_str(out, reference.span_id);
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"startTime\":");
    write_number(out, start_time);
    out.extend_from_slice(b",\"startTimeMillis\":");
    write_number(out, start_time / 1000);
    out.extend_from_slice(b",\"duration\":");
    write_number(out, duration);
    let span_tags = tag_section(out, &span.tags, fields, span_values);
    out.extend_from_slice(b",\"logs\":[");
    for (i, (timestamp, range)) in span.logs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"timestamp\":");
        write_number(out, *timestamp);
        out.extend_from_slice(b",\"fields\":");
        let log_fields = &span.log_fields[range.clone()];
        write_list(out, log_fields, 0..log_fields.len(), &mut Write);
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"process\":{\"serviceName\":");
    write_str(out, process.service_name);
    let process_tags = tag_section(out, &process.tags, fields, process_values);
    out.extend_from_slice(b"}}");
    TagSections {
        span: span_tags,
        process: process_tags,
    }
}

/// Appends `written` (a document [`write_parts`] wrote, its tag sections at
/// `sections`, its keys and values noted in `noted`) with its tags placed by
/// `fields` instead: everything else, and every key and value, is copied, not
/// written again. `masks` has a bit set for each span and process tag (at
/// most 64 of each) that is a field, found while learning, so that no key
/// is looked up again.
pub(super) fn write_replacing_tags(
    out: &mut Vec<u8>,
    (written, sections, noted): (&[u8], &TagSections, &[Noted; 2]),
    (span_tags, process_tags): (&[Tag<'_>], &[Tag<'_>]),
    replacement: &str,
    masks: [u64; 2],
) {
    let mut copied = 0;
    let lists = [
        (&sections.span, span_tags, masks[0], &noted[0]),
        (&sections.process, process_tags, masks[1], &noted[1]),
    ];
    for (section, tags, mask, noted) in lists {
        out.extend_from_slice(&written[copied..section.start]);
        let is_field = |i: usize, _: &Tag<'_>| i < 64 && mask & (1 << i) != 0;
        write_tags(
            out,
            tags,
            replacement,
            is_field,
            &mut CopyFrom(written, noted),
        );
        copied = section.end;
    }
    out.extend_from_slice(&written[copied..]);
}

/// One list's tag section as `fields` places it; returns where it lies in
/// `out`.
fn tag_section(
    out: &mut Vec<u8>,
    tags: &[Tag<'_>],
    fields: &TagsAsFields,
    values: &mut impl Values,
) -> Range<usize> {
    let start = out.len();
    write_tags(
        out,
        tags,
        &fields.dot_replacement,
        |_, tag| fields.applies_to(tag),
        values,
    );
    start..out.len()
}

/// `,"tags":[…]` and, when some tags are fields, `,"tag":{…}`.
/// `is_field` tells, by position and tag, which are fields; `replacement`
/// stands for the dots in their names.
fn write_tags(
    out: &mut Vec<u8>,
    tags: &[Tag<'_>],
    replacement: &str,
    is_field: impl Fn(usize, &Tag<'_>) -> bool,
    values: &mut impl Values,
) {
    out.extend_from_slice(b",\"tags\":");
    // The positions of the fields, on the stack for the usual few tags.
    let mut few = [0u32; NOTED_TAGS];
    let mut many = Vec::new();
    let fields: &mut [u32] = if tags.len() <= few.len() {
        &mut few
    } else {
        many.resize(tags.len(), 0);
        &mut many
    };
    let mut count = 0;
    // One check per tag: the nested ones are written, the others kept.
    let nested = (0..tags.len()).filter(|&i| {
        if is_field(i, &tags[i]) {
            fields[count] = i as u32;
            count += 1;
            false
        } else {
            true
        }
    });
    write_list(out, tags, nested, values);
    if count == 0 {
        return;
    }
    let fields = &mut fields[..count];
    out.extend_from_slice(b",\"tag\":{");
    match replacement.as_bytes() {
        &[byte] if spanway_search::json::is_plain(replacement) => {
            write_field_object(out, tags, fields, byte, values);
        }
        _ => write_field_object_replaced(out, tags, fields, replacement),
    }
    out.push(b'}');
}

/// The members of the `tag` object, the tags at `fields`: keys with their
/// dots replaced by `replacement`, in order, the last value of a repeated
/// key. With a one-byte replacement the keys are compared and written
/// through the replacement, without a string made for each (learned keys
/// make most tags fields, so this runs for most tags).
fn write_field_object(
    out: &mut Vec<u8>,
    tags: &[Tag<'_>],
    fields: &mut [u32],
    replacement: u8,
    values: &mut impl Values,
) {
    let key = |i: u32| tags[i as usize].key.as_bytes();
    let order = |a: &u32, b: &u32| cmp_replaced(key(*a), key(*b), replacement);
    // Spans often carry their attributes in key order already, each key
    // once: then one comparison per pair both sorts and finds no repeat.
    let strictly_sorted = fields.windows(2).all(|w| order(&w[0], &w[1]).is_lt());
    if !strictly_sorted {
        // Stable, so that of a repeated key the last tag stays last.
        fields.sort_by(order);
    }
    let mut first = true;
    for (n, &i) in fields.iter().enumerate() {
        if !strictly_sorted
            && fields
                .get(n + 1)
                .is_some_and(|next| order(&i, next).is_eq())
        {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        values.put(
            out,
            i as usize,
            &tags[i as usize],
            (b":", Some(replacement)),
        );
    }
}

/// `a` against `b` as they compare once their dots are `replacement`: what
/// is the same before replacing is the same after, so only the bytes where
/// they first differ are replaced.
fn cmp_replaced(a: &[u8], b: &[u8], replacement: u8) -> Ordering {
    let replaced = |byte: u8| if byte == b'.' { replacement } else { byte };
    let mut from = 0;
    loop {
        let (a_rest, b_rest) = (&a[from..], &b[from..]);
        let Some(at) = a_rest.iter().zip(b_rest).position(|(x, y)| x != y) else {
            return a_rest.len().cmp(&b_rest.len());
        };
        match replaced(a_rest[at]).cmp(&replaced(b_rest[at])) {
            Ordering::Equal => from += at + 1,
            unequal => return unequal,
        }
    }
}

/// [`write_field_object`] for a replacement of several bytes (or one that
/// JSON escapes).
fn write_field_object_replaced(
    out: &mut Vec<u8>,
    tags: &[Tag<'_>],
    fields: &[u32],
    replacement: &str,
) {
    let mut keyed: Vec<(String, u32)> = fields
        .iter()
        .map(|&i| (tags[i as usize].key.replace('.', replacement), i))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    let mut first = true;
    for (n, (key, i)) in keyed.iter().enumerate() {
        if keyed.get(n + 1).is_some_and(|next| next.0 == *key) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        // Noted or copied spots are only for one-byte replacements.
        write_str(out, key);
        out.push(b':');
        write_value(out, &tags[*i as usize].value);
    }
}

/// `[{"key":…,"type":…,"value":…},…]` of the tags at `positions`.
fn write_list(
    out: &mut Vec<u8>,
    tags: &[Tag<'_>],
    positions: impl Iterator<Item = usize>,
    values: &mut impl Values,
) {
    out.push(b'[');
    for (n, i) in positions.enumerate() {
        if n > 0 {
            out.push(b',');
        }
        let tag = &tags[i];
        out.extend_from_slice(b"{\"key\":");
        let between: &[u8] = match tag.value {
            TagValue::Str(_) => b",\"type\":\"string\",\"value\":",
            TagValue::Bool(_) => b",\"type\":\"bool\",\"value\":",
            TagValue::Int(_) => b",\"type\":\"int64\",\"value\":",
            TagValue::Float(_) => b",\"type\":\"float64\",\"value\":",
            TagValue::Binary(_) => b",\"type\":\"binary\",\"value\":",
        };
        values.put(out, i, tag, (between, None));
        out.push(b'}');
    }
    out.push(b']');
}

fn write_value(out: &mut Vec<u8>, value: &TagValue<'_>) {
    match value {
        TagValue::Str(text) => write_str(out, text),
        TagValue::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        TagValue::Int(i) => write_number(out, *i),
        // JSON has no NaN or infinity; Jaeger's reader parses the string form.
        TagValue::Float(f) if f.is_finite() => write_number(out, *f),
        TagValue::Float(f) => write_str(out, &f.to_string()),
        TagValue::Binary(bytes) => super::write_hex_str(out, bytes),
    }
}

/// A JSON string, escaped as serde_json escapes it.
fn write_str(out: &mut Vec<u8>, text: &str) {
    spanway_search::json::write_str(out, text);
}

/// Hex digits as a JSON string, which they are unchanged: no check for
/// characters to escape.
fn write_hex_digits(out: &mut Vec<u8>, digits: &str) {
    debug_assert!(digits.bytes().all(|b| b.is_ascii_hexdigit()));
    out.reserve(digits.len() + 2);
    out.push(b'"');
    out.extend_from_slice(digits.as_bytes());
    out.push(b'"');
}

/// A number as serde_json writes it.
fn write_number<N: serde::Serialize>(out: &mut Vec<u8>, number: N) {
    let _ = serde_json::to_writer(&mut *out, &number);
}

#[cfg(test)]
mod tests {
    //! The serialization this writer replaced, kept as the reference its
    //! output must equal byte for byte.
    use serde::Serialize;
    use serde_json::Value;
    use spanway_schemas::prost_types as wkt;

    use super::super::{micros_of_duration, micros_of_timestamp, trace_id_text};
    use super::*;

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct SpanDoc<'a> {
        #[serde(rename = "traceID")]
        trace_id: String,
        #[serde(rename = "spanID")]
        span_id: String,
        #[serde(skip_serializing_if = "is_zero")]
        flags: u32,
        operation_name: &'a str,
        references: Vec<RefDoc>,
        start_time: u64,
        start_time_millis: u64,
        duration: u64,
        tags: Vec<KeyValueDoc<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tag: Option<serde_json::Map<String, Value>>,
        logs: Vec<LogDoc<'a>>,
        process: ProcessDoc<'a>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct RefDoc {
        ref_type: &'static str,
        #[serde(rename = "traceID")]
        trace_id: String,
        #[serde(rename = "spanID")]
        span_id: String,
    }

    #[derive(Serialize)]
    struct KeyValueDoc<'a> {
        key: &'a str,
        #[serde(rename = "type")]
        kind: &'static str,
        value: Value,
    }

    #[derive(Serialize)]
    struct LogDoc<'a> {
        timestamp: u64,
        fields: Vec<KeyValueDoc<'a>>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ProcessDoc<'a> {
        service_name: &'a str,
        tags: Vec<KeyValueDoc<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tag: Option<serde_json::Map<String, Value>>,
    }

    fn is_zero(v: &u32) -> bool {
        *v == 0
    }

    fn key_value_value(kv: &jaeger::KeyValue) -> Value {
        use jaeger::ValueType;
        match ValueType::try_from(kv.v_type).unwrap_or(ValueType::String) {
            ValueType::String => Value::from(kv.v_str.as_str()),
            ValueType::Bool => Value::from(kv.v_bool),
            ValueType::Int64 => Value::from(kv.v_int64),
            ValueType::Float64 => serde_json::Number::from_f64(kv.v_float64)
                .map(Value::Number)
                .unwrap_or_else(|| Value::from(kv.v_float64.to_string())),
            ValueType::Binary => Value::from(hex::encode(&kv.v_binary)),
        }
    }

    fn key_value(kv: &jaeger::KeyValue) -> KeyValueDoc<'_> {
        KeyValueDoc {
            key: &kv.key,
            kind: match jaeger::ValueType::try_from(kv.v_type).unwrap_or_default() {
                jaeger::ValueType::String => "string",
                jaeger::ValueType::Bool => "bool",
                jaeger::ValueType::Int64 => "int64",
                jaeger::ValueType::Float64 => "float64",
                jaeger::ValueType::Binary => "binary",
            },
            value: key_value_value(kv),
        }
    }

    type SplitTags<'a> = (Vec<KeyValueDoc<'a>>, Option<serde_json::Map<String, Value>>);

    fn split<'a>(fields: &TagsAsFields, tags: &'a [jaeger::KeyValue]) -> SplitTags<'a> {
        let mut nested = Vec::new();
        let mut map = serde_json::Map::new();
        for kv in tags {
            if fields.applies(kv) {
                map.insert(
                    kv.key.replace('.', &fields.dot_replacement),
                    key_value_value(kv),
                );
            } else {
                nested.push(key_value(kv));
            }
        }
        (nested, (!map.is_empty()).then_some(map))
    }

    fn reference(span: &jaeger::Span, fields: &TagsAsFields) -> Vec<u8> {
        let start_time = micros_of_timestamp(span.start_time.as_ref());
        let process = span.process.as_ref();
        let (tags, tag) = split(fields, &span.tags);
        let (process_tags, process_tag) =
            process.map(|p| split(fields, &p.tags)).unwrap_or_default();
        let doc = SpanDoc {
            trace_id: trace_id_text(&span.trace_id),
            span_id: hex::encode(&span.span_id),
            flags: span.flags,
            operation_name: &span.operation_name,
            references: span
                .references
                .iter()
                .map(|r| RefDoc {
                    ref_type: if r.ref_type == jaeger::SpanRefType::FollowsFrom as i32 {
                        "FOLLOWS_FROM"
                    } else {
                        "CHILD_OF"
                    },
                    trace_id: trace_id_text(&r.trace_id),
                    span_id: hex::encode(&r.span_id),
                })
                .collect(),
            start_time,
            start_time_millis: start_time / 1000,
            duration: micros_of_duration(span.duration.as_ref()),
            tags,
            tag,
            logs: span
                .logs
                .iter()
                .map(|log| LogDoc {
                    timestamp: micros_of_timestamp(log.timestamp.as_ref()),
                    fields: log.fields.iter().map(key_value).collect(),
                })
                .collect(),
            process: ProcessDoc {
                service_name: process.map(|p| p.service_name.as_str()).unwrap_or(""),
                tags: process_tags,
                tag: process_tag,
            },
        };
        serde_json::to_vec(&doc).unwrap()
    }

    fn written(span: &jaeger::Span, fields: &TagsAsFields) -> Vec<u8> {
        let mut out = Vec::new();
        write_span(
            &mut out,
            span,
            span.process.as_ref(),
            fields,
            (&trace_id_text(&span.trace_id), &hex::encode(&span.span_id)),
            micros_of_timestamp(span.start_time.as_ref()),
            micros_of_duration(span.duration.as_ref()),
        );
        out
    }

    fn kv(key: &str, v_type: i32, set: impl FnOnce(&mut jaeger::KeyValue)) -> jaeger::KeyValue {
        let mut kv = jaeger::KeyValue {
            key: key.into(),
            v_type,
            ..Default::default()
        };
        set(&mut kv);
        kv
    }

    /// Tags of every type and awkward value, keys that collide once dots
    /// are replaced, repeated keys, strings that need escaping.
    fn tags() -> Vec<jaeger::KeyValue> {
        vec![
            kv("http.method", 0, |k| k.v_str = "GET".into()),
            kv("error", 1, |k| k.v_bool = true),
            kv("span.kind", 0, |k| k.v_str = "server".into()),
            kv("n", 2, |k| k.v_int64 = -7),
            kv("big", 2, |k| k.v_int64 = i64::MAX),
            kv("f", 3, |k| k.v_float64 = 0.1),
            kv("neg0", 3, |k| k.v_float64 = -0.0),
            kv("huge", 3, |k| k.v_float64 = 1e300),
            kv("nan", 3, |k| k.v_float64 = f64::NAN),
            kv("inf", 3, |k| k.v_float64 = f64::NEG_INFINITY),
            kv("bin", 4, |k| k.v_binary = vec![0, 1, 255]),
            kv("odd type", 9, |k| k.v_str = "as string".into()),
            kv("esc\"\\\u{1}\n", 0, |k| {
                k.v_str = "é \u{7f} \u{2028} </x>".into()
            }),
            kv("http@method", 0, |k| k.v_str = "collides".into()),
            kv("n", 0, |k| k.v_str = "repeated".into()),
            kv("z.y.x", 1, |k| k.v_bool = false),
        ]
    }

    fn spans() -> Vec<jaeger::Span> {
        let full = jaeger::Span {
            trace_id: [vec![0; 8], vec![0xab; 8]].concat(),
            span_id: vec![0xcd; 8],
            operation_name: "GET /\"quoted\"".into(),
            references: vec![
                jaeger::SpanRef {
                    trace_id: vec![0xab; 16],
                    span_id: vec![0xef; 8],
                    ref_type: 0,
                },
                jaeger::SpanRef {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    ref_type: 1,
                },
            ],
            flags: 1,
            start_time: Some(wkt::Timestamp {
                seconds: 1_767_225_599,
                nanos: 999_999_999,
            }),
            duration: Some(wkt::Duration {
                seconds: 1,
                nanos: 2_000,
            }),
            tags: tags(),
            logs: vec![
                jaeger::Log {
                    timestamp: Some(wkt::Timestamp {
                        seconds: 1,
                        nanos: 5_000,
                    }),
                    fields: tags(),
                },
                jaeger::Log::default(),
            ],
            process: Some(jaeger::Process {
                service_name: "svc".into(),
                tags: tags(),
            }),
            ..Default::default()
        };
        let bare = jaeger::Span {
            trace_id: vec![3; 16],
            span_id: vec![4; 8],
            ..Default::default()
        };
        let mut no_process = full.clone();
        no_process.process = None;
        no_process.flags = 0;
        vec![full, bare, no_process]
    }

    #[test]
    fn the_same_bytes_as_serde_in_every_tag_mode() {
        let modes = [
            TagsAsFields {
                keys: Default::default(),
                ..Default::default()
            },
            TagsAsFields::default(),
            TagsAsFields {
                keys: ["http.method", "z.y.x", "n", "esc\"\\\u{1}\n", "bin"]
                    .into_iter()
                    .collect(),
                ..Default::default()
            },
            TagsAsFields {
                all: true,
                dot_replacement: "__".into(),
                ..Default::default()
            },
        ];
        for (m, mode) in modes.iter().enumerate() {
            for (s, span) in spans().iter().enumerate() {
                let ours = written(span, mode);
                let reference = reference(span, mode);
                assert_eq!(
                    String::from_utf8_lossy(&ours),
                    String::from_utf8_lossy(&reference),
                    "mode {m}, span {s}"
                );
            }
        }
    }

    /// A document written with learned keys is the document written with
    /// those keys configured: the tags placed anew, the rest copied.
    #[test]
    fn learned_keys_place_tags_as_configured_keys_do() {
        use crate::document::{LearnedKeys, span_document_unsealed};
        use spanway_search::index::IndexNames;
        let learnable = ["f", "n", "nan", "bin", "z.y.x", "host.name"];
        let unlearnable = ["http@method", "esc\"\\\u{1}\n"];
        let names = IndexNames::new("");
        let mut moved = 0;
        // With "n" configured, its first (overridden) value is written nowhere,
        // so the learned document cannot copy it from the configured one.
        for configured in [&[][..], &["http.method"][..], &["http.method", "n"][..]] {
            let learned = LearnedKeys::new(100, "@");
            let learning = learned.learning();
            for key in learnable.iter().chain(&unlearnable) {
                learning.check(key);
            }
            let fields = TagsAsFields {
                keys: configured.iter().copied().collect(),
                ..Default::default()
            };
            for (s, span) in spans().iter().enumerate() {
                let process = span.process.as_ref();
                let with_learning =
                    span_document_unsealed(span, process, &names, &fields, Some(&learning));
                // Every learnable key is learned on sight, these spans' own too.
                let keys = learned.snapshot();
                let seen = span.tags.iter().chain(process.iter().flat_map(|p| &p.tags));
                let as_configured = TagsAsFields {
                    keys: configured
                        .iter()
                        .map(|k| (*k).to_owned())
                        .chain(seen.map(|kv| kv.key.clone()).filter(|k| keys.contains(k)))
                        .collect(),
                    ..Default::default()
                };
                assert!(learnable.iter().all(|k| keys.contains(k)));
                assert!(unlearnable.iter().all(|k| !keys.contains(k)));
                let with_keys = span_document_unsealed(span, process, &names, &as_configured, None);
                assert_eq!(
                    String::from_utf8_lossy(&with_learning.document.source),
                    String::from_utf8_lossy(&with_keys.document.source),
                    "keys {configured:?}, span {s}"
                );
                let plain = span_document_unsealed(span, process, &names, &fields, None);
                moved += usize::from(with_learning.document.source != plain.document.source);
            }
        }
        assert!(moved >= 2, "learned keys moved tags in {moved} documents");
    }

    #[test]
    fn keys_compare_as_their_replaced_forms_do() {
        let keys = [
            "", "a", "a.", "a@", "a.b", "a@b", "a-b", "a.b.c", "a@b@c", "a.bc", "ab", "a?", "a.z",
            "b", "é.x",
        ];
        for replacement in [b'@', b'_', b'~'] {
            let text = char::from(replacement).to_string();
            for a in keys {
                for b in keys {
                    assert_eq!(
                        cmp_replaced(a.as_bytes(), b.as_bytes(), replacement),
                        a.replace('.', &text).cmp(&b.replace('.', &text)),
                        "{a:?} against {b:?}, dots as {text}"
                    );
                }
            }
        }
    }
}
