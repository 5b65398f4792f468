//! The OTLP trace messages as the wire reader sees them: which field numbers
//! are known, with which wire type, and the few fields a forwarder reads.
//!
//! The table follows the vendored `.proto` files under `schemas/proto/`.
//! Fields it does not know are skipped, as `prost` skips them, so a message
//! from a newer OTLP version validates and its new fields travel on.

use super::{Field, Fields, Value, WireError};

/// How deep messages may nest. `prost` stops at 100; staying below it
/// means whatever validates here decodes there.
pub const RECURSION_LIMIT: usize = 64;

/// The OTLP messages of a trace export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// `ExportTraceServiceRequest` and `TracesData` (the same fields).
    TracesData,
    /// `ResourceSpans`.
    ResourceSpans,
    /// `Resource`.
    Resource,
    /// `ScopeSpans`.
    ScopeSpans,
    /// `InstrumentationScope`.
    Scope,
    /// `Span`.
    Span,
    /// `Span.Event`.
    Event,
    /// `Span.Link`.
    Link,
    /// `Status`.
    Status,
    /// `KeyValue`.
    KeyValue,
    /// `AnyValue`.
    AnyValue,
    /// `ArrayValue`.
    ArrayValue,
    /// `KeyValueList`.
    KeyValueList,
}

/// What a known field holds on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Varint,
    Fixed64,
    Fixed32,
    Bytes,
    Str,
    Msg(Message),
}

impl Message {
    fn name(self) -> &'static str {
        match self {
            Message::TracesData => "TracesData",
            Message::ResourceSpans => "ResourceSpans",
            Message::Resource => "Resource",
            Message::ScopeSpans => "ScopeSpans",
            Message::Scope => "InstrumentationScope",
            Message::Span => "Span",
            Message::Event => "Event",
            Message::Link => "Link",
            Message::Status => "Status",
            Message::KeyValue => "KeyValue",
            Message::AnyValue => "AnyValue",
            Message::ArrayValue => "ArrayValue",
            Message::KeyValueList => "KeyValueList",
        }
    }

    /// Every message, in declaration order (`self as usize` indexes it).
    const ALL: [Message; 13] = [
        Message::TracesData,
        Message::ResourceSpans,
        Message::Resource,
        Message::ScopeSpans,
        Message::Scope,
        Message::Span,
        Message::Event,
        Message::Link,
        Message::Status,
        Message::KeyValue,
        Message::AnyValue,
        Message::ArrayValue,
        Message::KeyValueList,
    ];

    /// What field `number` holds, if the schema declares it: a table
    /// lookup, where [`Message::field`]'s match (which also names the
    /// field, for errors) was a tenth of validation's instructions.
    #[inline(always)]
    fn kind(self, number: u32) -> Option<Kind> {
        KINDS
            .get(self as usize)
            .and_then(|row| row.get(number as usize))
            .copied()
            .flatten()
    }

    /// The name of field `number`, for errors; empty when undeclared.
    fn field_name(self, number: u32) -> &'static str {
        self.field(number).map_or("", |(name, _)| name)
    }

    /// The declaration of field `number`, if the schema has one.
    const fn field(self, number: u32) -> Option<(&'static str, Kind)> {
        use Kind::*;
        use Message as M;
        Some(match (self, number) {
            (M::TracesData, 1) => ("resource_spans", Msg(M::ResourceSpans)),
            (M::ResourceSpans, 1) => ("resource", Msg(M::Resource)),
            (M::ResourceSpans, 2) => ("scope_spans", Msg(M::ScopeSpans)),
            (M::ResourceSpans, 3) => ("schema_url", Str),
            (M::Resource, 1) => ("attributes", Msg(M::KeyValue)),
            (M::Resource, 2) => ("dropped_attributes_count", Varint),
            (M::ScopeSpans, 1) => ("scope", Msg(M::Scope)),
            (M::ScopeSpans, 2) => ("spans", Msg(M::Span)),
            (M::ScopeSpans, 3) => ("schema_url", Str),
            (M::Scope, 1) => ("name", Str),
            (M::Scope, 2) => ("version", Str),
            (M::Scope, 3) => ("attributes", Msg(M::KeyValue)),
            (M::Scope, 4) => ("dropped_attributes_count", Varint),
            (M::Span, 1) => ("trace_id", Bytes),
            (M::Span, 2) => ("span_id", Bytes),
            (M::Span, 3) => ("trace_state", Str),
            (M::Span, 4) => ("parent_span_id", Bytes),
            (M::Span, 5) => ("name", Str),
            (M::Span, 6) => ("kind", Varint),
            (M::Span, 7) => ("start_time_unix_nano", Fixed64),
            (M::Span, 8) => ("end_time_unix_nano", Fixed64),
            (M::Span, 9) => ("attributes", Msg(M::KeyValue)),
            (M::Span, 10) => ("dropped_attributes_count", Varint),
            (M::Span, 11) => ("events", Msg(M::Event)),
            (M::Span, 12) => ("dropped_events_count", Varint),
            (M::Span, 13) => ("links", Msg(M::Link)),
            (M::Span, 14) => ("dropped_links_count", Varint),
            (M::Span, 15) => ("status", Msg(M::Status)),
            (M::Span, 16) => ("flags", Fixed32),
            (M::Event, 1) => ("time_unix_nano", Fixed64),
            (M::Event, 2) => ("name", Str),
            (M::Event, 3) => ("attributes", Msg(M::KeyValue)),
            (M::Event, 4) => ("dropped_attributes_count", Varint),
            (M::Link, 1) => ("trace_id", Bytes),
            (M::Link, 2) => ("span_id", Bytes),
            (M::Link, 3) => ("trace_state", Str),
            (M::Link, 4) => ("attributes", Msg(M::KeyValue)),
            (M::Link, 5) => ("dropped_attributes_count", Varint),
            (M::Link, 6) => ("flags", Fixed32),
            (M::Status, 2) => ("message", Str),
            (M::Status, 3) => ("code", Varint),
            (M::KeyValue, 1) => ("key", Str),
            (M::KeyValue, 2) => ("value", Msg(M::AnyValue)),
            (M::AnyValue, 1) => ("string_value", Str),
            (M::AnyValue, 2) => ("bool_value", Varint),
            (M::AnyValue, 3) => ("int_value", Varint),
            (M::AnyValue, 4) => ("double_value", Fixed64),
            (M::AnyValue, 5) => ("array_value", Msg(M::ArrayValue)),
            (M::AnyValue, 6) => ("kvlist_value", Msg(M::KeyValueList)),
            (M::AnyValue, 7) => ("bytes_value", Bytes),
            (M::ArrayValue, 1) => ("values", Msg(M::AnyValue)),
            (M::KeyValueList, 1) => ("values", Msg(M::KeyValue)),
            _ => return None,
        })
    }
}

/// The highest field number any message declares.
const MAX_FIELD: usize = 16;

/// [`Message::field`]'s kinds as a table, by message and field number.
static KINDS: [[Option<Kind>; MAX_FIELD + 1]; Message::ALL.len()] = {
    let mut table = [[None; MAX_FIELD + 1]; Message::ALL.len()];
    let mut m = 0;
    while m < Message::ALL.len() {
        let mut number = 0;
        while number <= MAX_FIELD {
            if let Some((_, kind)) = Message::ALL[m].field(number as u32) {
                table[m][number] = Some(kind);
            }
            number += 1;
        }
        m += 1;
    }
    table
};

/// Checks that `bytes` decode as `message`: every field framed, every known
/// field with its declared wire type, every string UTF-8, nesting within
/// [`RECURSION_LIMIT`].
pub fn validate(message: Message, bytes: &[u8]) -> Result<(), WireError> {
    validate_at(message, bytes, RECURSION_LIMIT)
}

fn validate_at(message: Message, bytes: &[u8], depth: usize) -> Result<(), WireError> {
    // A loop over positions rather than the `Fields` iterator: this walks
    // every byte of every request, and the iterator's framing of each field
    // (raw slices, `Result` per item) costs a third more here.
    if depth == 0 {
        return Err(WireError::TooDeep);
    }
    let mut pos = if message == Message::Span {
        past_leading_span_fields(bytes)
    } else {
        0
    };
    while pos < bytes.len() {
        let field_start = pos;
        let tag;
        (tag, pos) = read_varint(bytes, pos)?;
        let number = tag >> 3;
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return Err(WireError::Tag(tag));
        }
        let wire_type = (tag & 7) as u8;
        let declared = message.kind(number as u32);
        let matches = match wire_type {
            0 => {
                (_, pos) = read_varint(bytes, pos)?;
                matches!(declared, None | Some(Kind::Varint))
            }
            1 => {
                pos = advance(bytes, pos, 8)?;
                matches!(declared, None | Some(Kind::Fixed64))
            }
            5 => {
                pos = advance(bytes, pos, 4)?;
                matches!(declared, None | Some(Kind::Fixed32))
            }
            2 => {
                let len;
                (len, pos) = read_varint(bytes, pos)?;
                let start = pos;
                pos = advance(
                    bytes,
                    pos,
                    usize::try_from(len).map_err(|_| WireError::Truncated)?,
                )?;
                let payload = &bytes[start..pos];
                match declared {
                    None | Some(Kind::Bytes) => true,
                    Some(Kind::Str) => {
                        if !is_utf8(payload) {
                            return Err(WireError::Utf8 {
                                message: message.name(),
                                field: message.field_name(number as u32),
                            });
                        }
                        true
                    }
                    Some(Kind::Msg(Message::KeyValue)) if depth > 2 && plain_key_value(payload) => {
                        if tag < 0x80 {
                            pos = past_plain_key_values(bytes, pos, tag as u8);
                        }
                        true
                    }
                    Some(Kind::Msg(inner)) => {
                        validate_at(inner, payload, depth - 1)?;
                        true
                    }
                    Some(_) => false,
                }
            }
            3 | 4 => {
                // Groups: let the iterator frame (and refuse) them.
                let mut rest = Fields::new(&bytes[field_start..]);
                let Some(field) = rest.next() else {
                    return Err(WireError::Truncated);
                };
                pos = field_start + field?.raw.len();
                declared.is_none()
            }
            _ => return Err(WireError::Tag(tag)),
        };
        if !matches {
            return Err(WireError::WireType {
                message: message.name(),
                field: message.field_name(number as u32),
                wire_type,
            });
        }
    }
    Ok(())
}

/// Walks the fields exporters write first in a `Span`, in the order they
/// write them: trace_id, span_id, trace_state, parent_span_id (absent on a
/// root span), name, kind, start and end time, each with its usual length
/// (one byte, or the ids' 16 and 8), by comparing its tag byte with the one expected next: the
/// general walk spent about 70 instructions on each. Validation and the
/// span head both read them here. `take` sees each field and may refuse
/// it; the walk stops before the first field that is refused or not in
/// this shape (an absent field is passed over), and returns that position,
/// from which the general walk reads the rest in order. So a field repeated
/// later still counts last, and whatever this takes, the general walk
/// would have taken the same way.
#[inline(always)]
fn leading_span_fields<'a>(bytes: &'a [u8], mut take: impl FnMut(u32, Value<'a>) -> bool) -> usize {
    let mut rest = bytes;
    // Each tag, with the length its ids have (the general walk takes an id
    // of another length the same way) or 0 where any one-byte length goes.
    // Spelled out, not a loop over a list: the compiler kept that loop, and
    // picking each field's shape at run time cost validation a fifth more
    // instructions. Fixed lengths save the span head a few more.
    macro_rules! fields {
        ($(($tag:literal, $len:literal)),*) => {
            $( rest = leading_span_field(rest, $tag, $len, &mut take); )*
        };
    }
    fields!(
        (0x0a, 16),
        (0x12, 8),
        (0x1a, 0),
        (0x22, 8),
        (0x2a, 0),
        (0x30, 0),
        (0x39, 0),
        (0x41, 0)
    );
    bytes.len() - rest.len()
}

/// What follows the field under `tag` at the start of `rest`, if it is
/// there in [`leading_span_fields`]' shape and `take` accepts it; else
/// `rest` as it was.
#[inline(always)]
fn leading_span_field<'a>(
    rest: &'a [u8],
    tag: u8,
    id_len: u8,
    take: &mut impl FnMut(u32, Value<'a>) -> bool,
) -> &'a [u8] {
    let read = match rest {
        [next, len, after @ ..]
            if *next == tag && tag & 7 == 2 && id_len != 0 && *len == id_len =>
        {
            after
                .split_at_checked(usize::from(id_len))
                .map(|(payload, after)| (Value::Bytes(payload), after))
        }
        [next, len @ 0..0x80, after @ ..] if *next == tag && tag & 7 == 2 && id_len == 0 => after
            .split_at_checked(usize::from(*len))
            .map(|(payload, after)| (Value::Bytes(payload), after)),
        [next, value @ 0..0x80, after @ ..] if *next == tag && tag & 7 == 0 => {
            Some((Value::Varint(u64::from(*value)), after))
        }
        [next, a, b, c, d, e, f, g, h, after @ ..] if *next == tag && tag & 7 == 1 => Some((
            Value::Fixed64(u64::from_le_bytes([*a, *b, *c, *d, *e, *f, *g, *h])),
            after,
        )),
        _ => None,
    };
    match read {
        Some((value, after)) if take(u32::from(tag >> 3), value) => after,
        _ => rest,
    }
}

/// The position after a `Span`'s leading fields ([`leading_span_fields`]).
/// It stops before a string that is not UTF-8, so that the general walk
/// refuses it and names the field.
#[inline(always)]
fn past_leading_span_fields(bytes: &[u8]) -> usize {
    leading_span_fields(bytes, |number, value| match (number, value) {
        // trace_state and name.
        (3 | 5, Value::Bytes(text)) => is_utf8(text),
        _ => true,
    })
}

/// The position after the attributes in [`plain_key_value`]'s shape that
/// follow `pos` back to back, each under the one-byte `tag` of the field
/// just checked. Exporters write a span's attributes as one run of such
/// fields, and taking the run here spares each the general walk's tag and
/// length reading, table lookup and wire-type match. Stops at the first
/// field of any other kind or shape, which the general walk then reads:
/// what this takes, the walk would have accepted the same way.
#[inline(always)]
fn past_plain_key_values(bytes: &[u8], mut pos: usize, tag: u8) -> usize {
    while let Some([next, len @ 0..0x80, rest @ ..]) = bytes.get(pos..)
        && *next == tag
        && let Some(pair) = rest.get(..usize::from(*len))
        && plain_key_value(pair)
    {
        pos += 2 + pair.len();
    }
    pos
}

/// Whether `bytes` is an attribute in the shape nearly every exporter
/// writes, checked in one pass: `key` then `value`, each once, with
/// one-byte lengths, the value a string, a bool or int of up to nine
/// varint bytes, or a double. Attributes are most of a request's fields,
/// and the general walk spends a call, a table lookup and a wire-type
/// match on each field of the pair and of its value. `false` means only
/// "not this shape": the general walk then decides, and reports what is
/// wrong. The caller makes sure the nesting limit leaves room for the
/// value.
#[inline]
fn plain_key_value(bytes: &[u8]) -> bool {
    let Some((key, value)) = plain_pair(bytes) else {
        return false;
    };
    match value {
        // string_value. Every byte around the two strings is a tag or a
        // one-byte length, below 0x80: one ASCII check over the whole pair
        // covers key and text, in the place of two calls.
        [0x0a, len, text @ ..] => {
            *len < 0x80
                && usize::from(*len) == text.len()
                && (bytes.is_ascii() || (is_utf8(text) && is_utf8(key)))
        }
        // bool_value, int_value: a varint short enough not to overflow
        [0x10 | 0x18, varint @ ..] => is_short_varint(varint) && is_utf8(key),
        // double_value
        [0x21, _, _, _, _, _, _, _, _] => is_utf8(key),
        _ => false,
    }
}

/// The key and the `AnyValue` bytes of a `KeyValue` in the shape exporters
/// write: field 1 then field 2, each once, each with a one-byte length, and
/// nothing else. `None` for any other shape, which says nothing about
/// whether it is valid.
#[inline(always)]
fn plain_pair(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    if let [0x0a, key_len @ 0..0x80, rest @ ..] = bytes
        && let Some((key, [0x12, value_len @ 0..0x80, value @ ..])) =
            rest.split_at_checked(usize::from(*key_len))
        && usize::from(*value_len) == value.len()
    {
        return Some((key, value));
    }
    None
}

/// Whether `bytes` is exactly one varint of at most nine bytes (63 bits:
/// a tenth byte is where decoders check for overflow).
#[inline(always)]
fn is_short_varint(bytes: &[u8]) -> bool {
    match bytes.split_last() {
        Some((last, body)) => {
            *last < 0x80 && body.len() < 9 && body.iter().all(|byte| byte & 0x80 != 0)
        }
        None => false,
    }
}

/// UTF-8, checked in words first: most keys and values are ASCII, on which
/// the full check is 1.6x slower.
#[inline(always)]
fn is_utf8(bytes: &[u8]) -> bool {
    bytes.is_ascii() || std::str::from_utf8(bytes).is_ok()
}

/// A varint at `pos`, and the position after it.
#[inline(always)]
fn read_varint(bytes: &[u8], pos: usize) -> Result<(u64, usize), WireError> {
    match bytes.get(pos..) {
        Some([byte, ..]) if *byte < 0x80 => Ok((u64::from(*byte), pos + 1)),
        // Two bytes: the length of nearly every span and of long
        // attributes, and the tags of fields 16 and up (a span's flags).
        Some([low, high, ..]) if *high < 0x80 => {
            Ok((u64::from(low & 0x7f) | u64::from(*high) << 7, pos + 2))
        }
        Some(_) => {
            let mut fields = Fields::new(bytes);
            fields.pos = pos;
            let value = fields.varint()?;
            Ok((value, fields.pos))
        }
        None => Err(WireError::Truncated),
    }
}

/// `pos + len`, if the message has that many bytes left.
#[inline(always)]
fn advance(bytes: &[u8], pos: usize, len: usize) -> Result<usize, WireError> {
    let end = pos.checked_add(len).ok_or(WireError::Truncated)?;
    if end > bytes.len() {
        return Err(WireError::Truncated);
    }
    Ok(end)
}

/// The fields of an already validated message. Validation framed every
/// field, so errors cannot occur; should the bytes not have been validated,
/// iteration stops at the first malformed field.
pub fn fields(bytes: &[u8]) -> impl Iterator<Item = Field<'_>> {
    Fields::new(bytes).map_while(Result::ok)
}

/// The length-delimited payloads of field `number` in a validated message.
pub fn nested(bytes: &[u8], number: u32) -> impl Iterator<Item = &[u8]> {
    let mut fields = Fields::new(bytes);
    std::iter::from_fn(move || {
        loop {
            if let (n, Value::Bytes(inner)) = fields.next_validated()?
                && n == number
            {
                return Some(inner);
            }
        }
    })
}

/// What a forwarder needs of a validated `Span`. Where a field occurs more
/// than once, the last occurrence counts, as when decoding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpanHead<'a> {
    /// `trace_id`, empty when absent.
    pub trace_id: &'a [u8],
    /// `span_id`, empty when absent.
    pub span_id: &'a [u8],
    /// `parent_span_id`, empty for a root span.
    pub parent_span_id: &'a [u8],
    /// `start_time_unix_nano`.
    pub start: u64,
    /// `end_time_unix_nano`.
    pub end: u64,
    /// `kind`, as its varint.
    pub kind: u64,
    /// How many `links` the span has ([`span_links`] reads them), so that
    /// the many spans without any are walked once.
    pub links: usize,
}

/// Reads the ids and times of a validated `Span`.
pub fn span_head(span: &[u8]) -> SpanHead<'_> {
    let (mut head, mut fields) = SpanHead::leading(span);
    loop {
        // `flags` (field 16, a fixed32), which recent exporters write last:
        // its two-byte tag would take the general reading's slow path, and
        // the head does not need it.
        if let Some([0x85, 0x01, _, _, _, _, ..]) = fields.buf.get(fields.pos..) {
            fields.pos += 6;
            continue;
        }
        let Some((number, value)) = fields.next_validated() else {
            break;
        };
        head.take(number, value);
        // The head needs none of the attributes and events, which are most
        // of a span's fields and come in runs.
        match number {
            SPAN_ATTRIBUTES => fields.skip_run(SPAN_ATTRIBUTES_TAG),
            SPAN_EVENTS => fields.skip_run(SPAN_EVENTS_TAG),
            _ => {}
        }
    }
    head
}

/// `Span.attributes` and `Span.events`, and their tags as length-delimited
/// fields.
const SPAN_ATTRIBUTES: u32 = 9;
const SPAN_ATTRIBUTES_TAG: u8 = (SPAN_ATTRIBUTES as u8) << 3 | 2;
const SPAN_EVENTS: u32 = 11;
const SPAN_EVENTS_TAG: u8 = (SPAN_EVENTS as u8) << 3 | 2;

impl<'a> SpanHead<'a> {
    /// The head of the fields a validated `Span` begins with in the shape
    /// exporters write them (ids, trace state, name, kind, times, each
    /// compared with the bytes expected next), and a reader of the fields
    /// after them, for a reader that walks the span's fields for its own
    /// purposes and folds each into the head with [`SpanHead::take`].
    #[inline(always)]
    pub fn leading(span: &'a [u8]) -> (SpanHead<'a>, Fields<'a>) {
        let mut head = SpanHead::default();
        let mut fields = Fields::new(span);
        fields.pos = head.take_leading(span);
        (head, fields)
    }

    /// Folds in the fields exporters write first ([`leading_span_fields`])
    /// and returns where they end. These are most of what the head needs,
    /// and reading them field by field cost about 45 instructions a field.
    #[inline(always)]
    fn take_leading(&mut self, span: &'a [u8]) -> usize {
        leading_span_fields(span, |number, value| {
            self.take(number, value);
            true
        })
    }

    /// Folds one field of the span in, for a reader that walks the span's
    /// fields for its own purposes and would otherwise walk them twice.
    #[inline(always)]
    pub fn take(&mut self, number: u32, value: Value<'a>) {
        match (number, value) {
            (1, Value::Bytes(id)) => self.trace_id = id,
            (2, Value::Bytes(id)) => self.span_id = id,
            (4, Value::Bytes(id)) => self.parent_span_id = id,
            (6, Value::Varint(kind)) => self.kind = kind,
            (7, Value::Fixed64(t)) => self.start = t,
            (8, Value::Fixed64(t)) => self.end = t,
            (13, Value::Bytes(_)) => self.links += 1,
            _ => {}
        }
    }
}

/// The `(trace_id, span_id)` of each link of a validated `Span`, in order.
pub fn span_links(span: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    nested(span, 13).map(|link| {
        let (mut trace_id, mut span_id): (&[u8], &[u8]) = (&[], &[]);
        let mut fields = Fields::new(link);
        while let Some(field) = fields.next_validated() {
            match field {
                (1, Value::Bytes(id)) => trace_id = id,
                (2, Value::Bytes(id)) => span_id = id,
                _ => {}
            }
        }
        (trace_id, span_id)
    })
}

/// The string value of the attribute `key` in a validated `Resource` (or any
/// message whose field 1 is its attributes), if it has one. Repeated keys:
/// the first attribute with the key counts, as the conversion to Jaeger
/// spans reads it. `None` as well when an attribute's value occurs twice
/// (decoding would merge them), so a caller takes the decoded path.
pub fn string_attribute<'a>(attributes_holder: &'a [u8], key: &str) -> Option<&'a str> {
    for kv in nested(attributes_holder, 1) {
        match key_value(kv)? {
            (k, AnyRef::Str(text)) if k == key => return Some(text),
            (k, _) if k == key => return None,
            _ => {}
        }
    }
    None
}

/// The value of a validated `AnyValue`, borrowed: the last of its `oneof`
/// fields, as decoding keeps it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AnyRef<'a> {
    /// No value set.
    Empty,
    /// `string_value`.
    Str(&'a str),
    /// `bool_value`.
    Bool(bool),
    /// `int_value`.
    Int(i64),
    /// `double_value`.
    Double(f64),
    /// `bytes_value`.
    Bytes(&'a [u8]),
    /// `array_value` or `kvlist_value`, still encoded.
    Nested(&'a [u8]),
}

/// The value of a validated `AnyValue` with a string still as its bytes:
/// validation has checked them as UTF-8 already, and a reader that only
/// compares keys need not check each value again (twice per attribute was
/// 3 % of the analytics job). [`AnyRaw::to_ref`] gives the `&str`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AnyRaw<'a> {
    /// No value set.
    Empty,
    /// `string_value`, as bytes.
    Str(&'a [u8]),
    /// `bool_value`.
    Bool(bool),
    /// `int_value`.
    Int(i64),
    /// `double_value`.
    Double(f64),
    /// `bytes_value`.
    Bytes(&'a [u8]),
    /// `array_value` or `kvlist_value`, still encoded.
    Nested(&'a [u8]),
}

impl<'a> AnyRaw<'a> {
    /// The value with its string checked; `None` for a string that is not
    /// UTF-8, which a validated message never holds.
    pub fn to_ref(self) -> Option<AnyRef<'a>> {
        Some(match self {
            AnyRaw::Empty => AnyRef::Empty,
            AnyRaw::Str(bytes) => AnyRef::Str(std::str::from_utf8(bytes).ok()?),
            AnyRaw::Bool(flag) => AnyRef::Bool(flag),
            AnyRaw::Int(value) => AnyRef::Int(value),
            AnyRaw::Double(value) => AnyRef::Double(value),
            AnyRaw::Bytes(bytes) => AnyRef::Bytes(bytes),
            AnyRaw::Nested(bytes) => AnyRef::Nested(bytes),
        })
    }
}

/// The key and value of a validated `KeyValue`. `None` when the value field
/// occurs more than once, where decoding would merge the occurrences.
pub fn key_value(kv: &[u8]) -> Option<(&str, AnyRef<'_>)> {
    let (key, value) = key_value_raw(kv)?;
    Some((std::str::from_utf8(key).ok()?, value.to_ref()?))
}

/// [`key_value`] with the key and a string value left as bytes.
pub fn key_value_raw(kv: &[u8]) -> Option<(&[u8], AnyRaw<'_>)> {
    let (key, value) = key_and_value_bytes(kv)?;
    Some((key, value.map_or(AnyRaw::Empty, any_value_raw)))
}

/// The key of a validated `KeyValue` and its `AnyValue` still encoded, so
/// that a reader looking for a few keys reads only their values (with
/// [`any_value_raw`]). `None` when the value field occurs more than once,
/// where decoding would merge the occurrences.
#[inline]
pub fn key_and_value_bytes(kv: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    // The shape exporters write needs no field walk.
    match plain_pair(kv) {
        Some((key, value)) => Some((key, Some(value))),
        None => key_and_value_bytes_framed(kv),
    }
}

/// The next field of a validated message when it is one more attribute
/// under the one-byte `tag`, in the shape exporters write (key, then a
/// string, bool, int or double value, one-byte lengths): its key and
/// `AnyValue` bytes, and `fields` moved
/// past it. `None`, with `fields` unmoved, for anything else. A reader that
/// met a message's first attribute takes the rest of the run with this,
/// sparing each attribute the general reading of a field.
#[inline(always)]
pub fn next_plain_attribute<'a>(fields: &mut Fields<'a>, tag: u8) -> Option<(&'a [u8], &'a [u8])> {
    let [next, len @ 0..0x80, rest @ ..] = fields.buf.get(fields.pos..)? else {
        return None;
    };
    if *next != tag {
        return None;
    }
    let pair = rest.get(..usize::from(*len))?;
    let (key, value) = plain_pair(pair)?;
    fields.pos += 2 + pair.len();
    Some((key, value))
}

/// The key and text of a `KeyValue` holding a `string_value`, in the shape
/// exporters write (key then value, one-byte lengths), for a reader of bytes that
/// were not validated: both checked as UTF-8 in one call. `None` for any
/// other shape and for text that is not UTF-8, which the caller's general
/// reader then reads or refuses.
#[inline]
pub fn plain_string_key_value(kv: &[u8]) -> Option<(&str, &str)> {
    let (key, value) = plain_pair(kv)?;
    let [0x0a, len @ 0..0x80, text @ ..] = value else {
        return None;
    };
    if usize::from(*len) != text.len() {
        return None;
    }
    // Around the two strings stand only tags and one-byte lengths, all
    // ASCII: the pair is UTF-8 exactly when both strings are, and each
    // string begins and ends on a character boundary.
    let pair = std::str::from_utf8(kv).ok()?;
    Some((
        pair.get(2..2 + key.len())?,
        pair.get(kv.len() - text.len()..)?,
    ))
}

/// [`key_and_value_bytes`] for any shape: field by field.
fn key_and_value_bytes_framed(kv: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let mut key: &[u8] = &[];
    let mut value = None;
    let mut fields = Fields::new(kv);
    while let Some((number, field)) = fields.next_validated() {
        match (number, field) {
            (1, Value::Bytes(k)) => key = k,
            (2, Value::Bytes(any)) => {
                if value.is_some() {
                    return None;
                }
                value = Some(any);
            }
            _ => {}
        }
    }
    Some((key, value))
}

/// The value of a validated `AnyValue`: the last of its `oneof` fields, as
/// decoding keeps it.
pub fn any_value_raw(any: &[u8]) -> AnyRaw<'_> {
    let mut value = AnyRaw::Empty;
    let mut fields = Fields::new(any);
    while let Some((number, field)) = fields.next_validated() {
        value = match (number, field) {
            (1, Value::Bytes(s)) => AnyRaw::Str(s),
            (2, Value::Varint(b)) => AnyRaw::Bool(b != 0),
            (3, Value::Varint(i)) => AnyRaw::Int(i as i64),
            (4, Value::Fixed64(d)) => AnyRaw::Double(f64::from_bits(d)),
            (5 | 6, Value::Bytes(nested)) => AnyRaw::Nested(nested),
            (7, Value::Bytes(b)) => AnyRaw::Bytes(b),
            _ => value,
        };
    }
    value
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;
    use crate::proto::otlp;

    #[test]
    fn the_kind_table_holds_every_declared_field_and_nothing_else() {
        let mut declared = 0;
        for (index, message) in Message::ALL.into_iter().enumerate() {
            assert_eq!(message as usize, index, "{} out of order", message.name());
            for number in 0..200 {
                let expected = message.field(number).map(|(_, kind)| kind);
                assert_eq!(
                    message.kind(number),
                    expected,
                    "{}.{number}",
                    message.name()
                );
                declared += usize::from(expected.is_some());
            }
        }
        assert_eq!(declared, 52);
    }

    fn sample() -> otlp::TracesData {
        let span = otlp::Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            parent_span_id: vec![3; 8],
            name: "GET /cart".into(),
            kind: 2,
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            attributes: vec![
                otlp::KeyValue::string("http.route", "/cart"),
                otlp::KeyValue {
                    key: "nested".into(),
                    value: Some(otlp::AnyValue {
                        value: Some(otlp::any_value::Value::ArrayValue(otlp::ArrayValue {
                            values: vec![otlp::AnyValue {
                                value: Some(otlp::any_value::Value::DoubleValue(1.5)),
                            }],
                        })),
                    }),
                },
            ],
            events: vec![otlp::span::Event {
                time_unix_nano: 15,
                name: "exception".into(),
                ..Default::default()
            }],
            links: vec![otlp::span::Link {
                trace_id: vec![4; 16],
                span_id: vec![5; 8],
                flags: 1,
                ..Default::default()
            }],
            status: Some(otlp::Status {
                code: 2,
                message: "boom".into(),
            }),
            flags: 0x100,
            ..Default::default()
        };
        otlp::TracesData {
            resource_spans: vec![otlp::ResourceSpans {
                resource: Some(otlp::Resource {
                    attributes: vec![
                        otlp::KeyValue::string("host.name", "h1"),
                        otlp::KeyValue::string("service.name", "cart"),
                    ],
                    dropped_attributes_count: 0,
                }),
                scope_spans: vec![otlp::ScopeSpans {
                    scope: Some(otlp::InstrumentationScope {
                        name: "lib".into(),
                        ..Default::default()
                    }),
                    spans: vec![span],
                    schema_url: String::new(),
                }],
                schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
            }],
        }
    }

    #[test]
    fn what_prost_encodes_validates_and_reads_back() {
        let bytes = sample().encode_to_vec();
        validate(Message::TracesData, &bytes).unwrap();
        let rs = nested(&bytes, 1).next().unwrap();
        let resource = nested(rs, 1).next().unwrap();
        assert_eq!(string_attribute(resource, "service.name"), Some("cart"));
        assert_eq!(string_attribute(resource, "missing"), None);
        let ss = nested(rs, 2).next().unwrap();
        let span = nested(ss, 2).next().unwrap();
        let head = span_head(span);
        assert_eq!(head.trace_id, &[1; 16]);
        assert_eq!(head.span_id, &[2; 8]);
        assert_eq!(head.parent_span_id, &[3; 8]);
        assert_eq!((head.start, head.end), (10, 20));
        assert_eq!(head.links, 1);
        let links: Vec<_> = span_links(span).collect();
        assert_eq!(links, vec![(&[4u8; 16][..], &[5u8; 8][..])]);
    }

    /// Every byte string the validator accepts must decode with prost, and
    /// every one prost refuses must be refused: checked over single-byte
    /// corruptions and truncations of a real message.
    #[test]
    fn validation_agrees_with_prost_on_corrupted_messages() {
        let bytes = sample().encode_to_vec();
        let (accepted_by_both, checked) = agree_with_prost::<otlp::TracesData>(
            Message::TracesData,
            &bytes,
            &[0x00, 0x01, 0x07, 0x0a, 0x12, 0x7f, 0x80, 0xc3, 0xff],
        );
        assert!(accepted_by_both > 0 && accepted_by_both < checked);
    }

    /// Checks that `validate` and prost's decoding of `M` accept the same
    /// byte strings among every single-byte change of `bytes` to each of
    /// `replacements` and every truncation of it; returns how many of the
    /// changed strings both accepted, and how many there were.
    fn agree_with_prost<M: prost::Message + Default>(
        message: Message,
        bytes: &[u8],
        replacements: &[u8],
    ) -> (usize, usize) {
        let (mut accepted, mut checked) = (0, 0);
        for i in 0..bytes.len() {
            for &replacement in replacements {
                let mut corrupt = bytes.to_vec();
                corrupt[i] = replacement;
                let ours = validate(message, &corrupt).is_ok();
                let prost = M::decode(corrupt.as_slice()).is_ok();
                assert_eq!(ours, prost, "byte {i} set to {replacement:#x}");
                accepted += usize::from(ours);
                checked += 1;
            }
            let ours = validate(message, &bytes[..i]).is_ok();
            let prost = M::decode(&bytes[..i]).is_ok();
            assert_eq!(ours, prost, "truncated to {i} bytes");
        }
        (accepted, checked)
    }

    #[test]
    fn key_value_reads_past_an_unknown_group() {
        let kv = otlp::KeyValue::string("http.route", "/cart").encode_to_vec();
        let plain = key_value(&kv);
        assert_eq!(plain, Some(("http.route", AnyRef::Str("/cart"))));
        // The same group as an unknown field of the pair and of its value.
        let group = [0xa3, 0x01, 0x08, 0x01, 0xa4, 0x01];
        let mut with_group = kv.clone();
        with_group.extend_from_slice(&group);
        validate(Message::KeyValue, &with_group).unwrap();
        assert_eq!(key_value(&with_group), plain);
        let mut any = otlp::AnyValue {
            value: Some(otlp::any_value::Value::IntValue(7)),
        }
        .encode_to_vec();
        any.extend_from_slice(&group);
        let mut kv = Vec::new();
        super::super::put_len_prefix(&mut kv, 1, 1);
        kv.push(b'n');
        super::super::put_len_prefix(&mut kv, 2, any.len());
        kv.extend_from_slice(&any);
        validate(Message::KeyValue, &kv).unwrap();
        assert_eq!(key_value(&kv), Some(("n", AnyRef::Int(7))));
        // A value written twice is merged by decoders: not read here.
        let mut twice = kv.clone();
        twice.extend_from_slice(&kv[3..]);
        assert_eq!(key_value(&twice), None);
    }

    #[test]
    fn key_value_raw_leaves_strings_as_bytes_and_to_ref_checks_them() {
        let kv = otlp::KeyValue::string("peer.service", "billing").encode_to_vec();
        assert_eq!(
            key_value_raw(&kv),
            Some((&b"peer.service"[..], AnyRaw::Str(b"billing")))
        );
        assert_eq!(
            AnyRaw::Str(b"billing").to_ref(),
            Some(AnyRef::Str("billing"))
        );
        assert_eq!(AnyRaw::Str(b"bill\xffing").to_ref(), None);
        assert_eq!(AnyRaw::Int(-3).to_ref(), Some(AnyRef::Int(-3)));
    }

    #[test]
    fn key_and_value_bytes_short_cut_reads_what_the_walk_reads() {
        let long = "k".repeat(200);
        let pairs = [
            otlp::KeyValue::string("http.route", "/cart"),
            otlp::KeyValue::string("", ""),
            otlp::KeyValue::string(long.as_str(), "v"),
            otlp::KeyValue::string("k", long.as_str()),
            otlp::KeyValue::new("n", otlp::any_value::Value::IntValue(-7)),
            otlp::KeyValue::new("b", otlp::any_value::Value::BoolValue(true)),
            otlp::KeyValue {
                key: "no value".into(),
                value: None,
            },
        ];
        let mut shapes: Vec<Vec<u8>> = pairs.iter().map(|kv| kv.encode_to_vec()).collect();
        // Value before key, a second key, an unknown field after, a value
        // given twice: each valid, none in the short shape.
        let plain = pairs[0].encode_to_vec();
        let key_field = &plain[..12];
        let value_field = &plain[12..];
        shapes.push([value_field, key_field].concat());
        shapes.push([key_field, value_field, b"\x0a\x01z"].concat());
        shapes.push([key_field, value_field, b"\x18\x05"].concat());
        shapes.push([key_field, value_field, value_field].concat());
        let mut short = 0;
        for kv in &shapes {
            validate(Message::KeyValue, kv).unwrap();
            let walked = key_and_value_bytes_framed(kv);
            assert_eq!(key_and_value_bytes(kv), walked, "{kv:?}");
            if kv[0] == 0x0a && kv[1] < 0x80 {
                short += 1;
            }
        }
        assert!(short >= 4, "the short shape is covered");
        assert_eq!(key_and_value_bytes(&shapes[shapes.len() - 1]), None);
        assert_eq!(
            key_and_value_bytes(&plain),
            Some((&b"http.route"[..], Some(&plain[14..])))
        );
    }

    /// The one-call reader of string attributes reads what the general one
    /// reads, refuses text that is not UTF-8, and leaves other shapes alone.
    #[test]
    fn plain_string_key_value_reads_what_key_value_reads() {
        let long = "k".repeat(200);
        let pairs = [
            otlp::KeyValue::string("http.route", "/cart"),
            otlp::KeyValue::string("", ""),
            otlp::KeyValue::string("clé", "été 🙂"),
            otlp::KeyValue::string(long.as_str(), "v"),
            otlp::KeyValue::string("k", long.as_str()),
            otlp::KeyValue::new("n", otlp::any_value::Value::IntValue(-7)),
        ];
        let mut read = 0;
        for kv in pairs.iter().map(|kv| kv.encode_to_vec()) {
            let general = match key_value(&kv) {
                Some((key, AnyRef::Str(text))) => Some((key, text)),
                _ => None,
            };
            let plain = plain_string_key_value(&kv);
            if plain.is_some() {
                read += 1;
                assert_eq!(plain, general, "{kv:?}");
            }
        }
        assert_eq!(
            read, 2,
            "the short shapes with string values (an empty key is left out of the encoding)"
        );
        let plain = otlp::KeyValue::string("http.route", "/cart").encode_to_vec();
        let value_field = &plain[12..];
        // Value first, or given twice: not this shape.
        assert_eq!(
            plain_string_key_value(&[value_field, &plain[..12]].concat()),
            None
        );
        assert_eq!(
            plain_string_key_value(&[&plain[..], value_field].concat()),
            None
        );
        // A byte that is not UTF-8 in the key or in the text.
        for at in [3, plain.len() - 1] {
            let mut broken = plain.clone();
            broken[at] = 0xff;
            assert_eq!(plain_string_key_value(&broken), None, "byte {at}");
        }
        // A string value followed by an int value in the same AnyValue
        // (decoders keep the last): not a string attribute here.
        let two = [
            &plain[..12],
            &[0x12, 0x05, 0x0a, 0x01, b'a', 0x18, 0x05][..],
        ]
        .concat();
        assert_eq!(plain_string_key_value(&two), None);
        // A two-byte character cut by the key's end.
        let cut = [
            &[0x0a, 0x02, b'a', 0xc3][..],
            &[0x12, 0x03, 0x0a, 0x01, 0xa9][..],
        ]
        .concat();
        assert_eq!(plain_string_key_value(&cut), None);
    }

    #[test]
    fn span_head_reads_past_an_unknown_group() {
        let span = sample().resource_spans[0].scope_spans[0].spans[0].encode_to_vec();
        let plain = span_head(&span);
        // Unknown field 20 as a group holding a varint, which decoders skip.
        let mut with_group = span.clone();
        with_group.extend_from_slice(&[0xa3, 0x01, 0x08, 0x01, 0xa4, 0x01]);
        validate(Message::Span, &with_group).unwrap();
        assert_eq!(span_head(&with_group), plain);
        assert_eq!(plain.span_id, &[2; 8]);
    }

    /// The head read past runs of attributes and events is the decoded
    /// span's, also where a run holds a long attribute, where the last
    /// occurrence of an id or time comes after a run, and where a run ends
    /// the span.
    #[test]
    fn span_head_past_runs_is_the_decoded_head() {
        let long = "x".repeat(200);
        let mut span = sample().resource_spans[0].scope_spans[0].spans[0].clone();
        span.flags = 0x301;
        span.attributes = vec![
            otlp::KeyValue::string("a", "1"),
            otlp::KeyValue::string("user_agent", &long),
            otlp::KeyValue::string("b", "2"),
            otlp::KeyValue::string("c", "3"),
        ];
        span.events.push(otlp::span::Event {
            name: long.clone(),
            ..Default::default()
        });
        span.events.push(otlp::span::Event::default());
        let base = span.encode_to_vec();
        let tail = |fields: &[&otlp::Span]| {
            let mut bytes = base.clone();
            for f in fields {
                bytes.extend(f.encode_to_vec());
            }
            bytes
        };
        let later = otlp::Span {
            span_id: vec![9; 8],
            end_time_unix_nano: 99,
            flags: 1,
            ..Default::default()
        };
        let more = otlp::Span {
            attributes: vec![otlp::KeyValue::string("d", "4")],
            events: vec![otlp::span::Event::default()],
            ..Default::default()
        };
        let link = otlp::Span {
            links: vec![otlp::span::Link {
                trace_id: vec![6; 16],
                span_id: vec![7; 8],
                ..Default::default()
            }],
            ..Default::default()
        };
        // Fields out of exporters' order, and of lengths the leading read
        // does not expect: the general reading takes them.
        let odd = otlp::Span {
            trace_state: "k=v".into(),
            parent_span_id: vec![8; 4],
            ..later.clone()
        };
        let reversed: Vec<u8> = [
            odd.encode_to_vec(),
            later.encode_to_vec(),
            base.clone(),
            more.encode_to_vec(),
        ]
        .concat();
        let root = otlp::Span {
            parent_span_id: Vec::new(),
            trace_state: "k=v".into(),
            ..span.clone()
        }
        .encode_to_vec();
        let cases = [
            base.clone(),
            tail(&[&more]),
            tail(&[&more, &later]),
            tail(&[&later, &more, &link, &more]),
            tail(&[&odd]),
            reversed,
            root,
        ];
        for bytes in cases {
            validate(Message::Span, &bytes).unwrap();
            let decoded = otlp::Span::decode(bytes.as_slice()).unwrap();
            let head = span_head(&bytes);
            assert_eq!(head.trace_id, decoded.trace_id.as_slice());
            assert_eq!(head.span_id, decoded.span_id.as_slice());
            assert_eq!(head.parent_span_id, decoded.parent_span_id.as_slice());
            assert_eq!(head.start, decoded.start_time_unix_nano);
            assert_eq!(head.end, decoded.end_time_unix_nano);
            assert_eq!(head.links, decoded.links.len());
            assert_eq!(head.kind as i32, decoded.kind);
        }
    }

    fn attribute(key: &str, value: otlp::any_value::Value) -> Vec<u8> {
        otlp::KeyValue {
            key: key.into(),
            value: Some(otlp::AnyValue { value: Some(value) }),
        }
        .encode_to_vec()
    }

    /// The one-pass check of common attributes accepts only what the
    /// general walk accepts, and the validator still agrees with prost on
    /// every corruption and truncation of them.
    #[test]
    fn plain_attributes_take_the_short_check_and_agree_with_the_general_walk() {
        use otlp::any_value::Value as V;
        let plain = [
            attribute("http.route", V::StringValue("/cart".into())),
            attribute("ключ", V::StringValue("значение".into())),
            attribute("k", V::StringValue(String::new())),
            attribute("retry", V::BoolValue(true)),
            attribute("http.status_code", V::IntValue(101)),
            attribute("http.response.status_code", V::IntValue(503)),
            attribute("big", V::IntValue(i64::MAX)),
            attribute("ratio", V::DoubleValue(0.25)),
            attribute(&"k".repeat(127), V::StringValue("v".repeat(100))),
        ];
        let other = [
            // prost leaves an empty key out.
            attribute("", V::StringValue("v".into())),
            attribute("negative", V::IntValue(-1)),
            attribute(&"k".repeat(128), V::StringValue("v".into())),
            attribute("long", V::StringValue("v".repeat(200))),
            attribute("bytes", V::BytesValue(vec![0xff, 0x00])),
            attribute(
                "list",
                V::ArrayValue(otlp::ArrayValue {
                    values: vec![otlp::AnyValue {
                        value: Some(V::IntValue(1)),
                    }],
                }),
            ),
            otlp::KeyValue {
                key: "unset".into(),
                value: None,
            }
            .encode_to_vec(),
        ];
        for bytes in &plain {
            assert!(
                plain_key_value(bytes),
                "{bytes:?} should take the short check"
            );
        }
        for bytes in &other {
            assert!(
                !plain_key_value(bytes),
                "{bytes:?} should take the general walk"
            );
            validate(Message::KeyValue, bytes).unwrap();
        }
        let mut short = 0;
        for bytes in plain.iter().chain(&other) {
            let mut variants: Vec<Vec<u8>> =
                (0..bytes.len()).map(|i| bytes[..i].to_vec()).collect();
            for i in 0..bytes.len() {
                for replacement in [0x00u8, 0x01, 0x0a, 0x12, 0x10, 0x21, 0x7f, 0x80, 0xc3, 0xff] {
                    let mut corrupt = bytes.clone();
                    corrupt[i] = replacement;
                    variants.push(corrupt);
                }
            }
            for variant in variants {
                let general = validate_at(Message::KeyValue, &variant, RECURSION_LIMIT).is_ok();
                if plain_key_value(&variant) {
                    assert!(general, "{variant:?} passed the short check only");
                    short += 1;
                }
                // Inside a span, where the short check applies.
                let mut span = Vec::new();
                super::super::put_len_prefix(&mut span, 9, variant.len());
                span.extend_from_slice(&variant);
                let ours = validate(Message::Span, &span).is_ok();
                let prost = otlp::Span::decode(span.as_slice()).is_ok();
                assert_eq!(ours, prost, "{variant:?}");
            }
        }
        assert!(
            short > plain.len(),
            "corruptions that keep the shape take it too"
        );
    }

    /// The leading fields of a span are taken by their expected bytes:
    /// over every corruption and truncation of a span with all of them
    /// (a trace state and name beyond ASCII, a kind, both times, flags),
    /// the validator still agrees with prost, and a string that is not
    /// UTF-8 is still refused under its field's name.
    #[test]
    fn leading_span_fields_agree_with_prost() {
        let span = otlp::Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            trace_state: "clé=été".into(),
            parent_span_id: vec![3; 8],
            name: "GET /café".into(),
            kind: 2,
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            attributes: vec![otlp::KeyValue::string("http.route", "/cart")],
            flags: 0x301,
            ..Default::default()
        };
        let bytes = span.encode_to_vec();
        validate(Message::Span, &bytes).unwrap();
        let (accepted, checked) = agree_with_prost::<otlp::Span>(
            Message::Span,
            &bytes,
            &[0x00, 0x01, 0x08, 0x0a, 0x12, 0x7f, 0x80, 0xc3, 0xff],
        );
        assert!(accepted > 0 && accepted < checked);
        for (field, text) in [("trace_state", "clé=été"), ("name", "GET /café")] {
            let at = bytes
                .windows(text.len())
                .position(|w| w == text.as_bytes())
                .unwrap();
            let mut broken = bytes.clone();
            broken[at + 2] = 0xff;
            assert_eq!(
                validate(Message::Span, &broken).unwrap_err().to_string(),
                format!("Span.{field}: invalid UTF-8")
            );
        }
    }

    /// A run of attributes is taken in one loop after its first: over
    /// every corruption and truncation of a span whose attributes mix the
    /// short shape and others, the validator still agrees with prost.
    #[test]
    fn runs_of_attributes_agree_with_prost() {
        use otlp::any_value::Value as V;
        let span = otlp::Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "GET /cart".into(),
            attributes: vec![
                otlp::KeyValue::string("http.route", "/cart"),
                otlp::KeyValue::new("http.response.status_code", V::IntValue(200)),
                otlp::KeyValue::new("ratio", V::DoubleValue(0.5)),
                otlp::KeyValue::new("negative", V::IntValue(-1)),
                otlp::KeyValue::string("peer.service", "billing"),
                otlp::KeyValue::new("bytes", V::BytesValue(vec![0xff])),
                otlp::KeyValue::string("clé", "été"),
            ],
            ..Default::default()
        };
        let bytes = span.encode_to_vec();
        validate(Message::Span, &bytes).unwrap();
        let (accepted, checked) = agree_with_prost::<otlp::Span>(
            Message::Span,
            &bytes,
            &[0x00, 0x01, 0x0a, 0x12, 0x4a, 0x21, 0x7f, 0x80, 0xc3, 0xff],
        );
        assert!(accepted > 0 && accepted < checked);
    }

    /// The run reader takes the attributes that follow in the short shape
    /// and stops, leaving the field where it is, at any other.
    #[test]
    fn next_plain_attribute_reads_a_run_and_leaves_the_rest() {
        use otlp::any_value::Value as V;
        let long = "d".repeat(200);
        let span = otlp::Span {
            span_id: vec![2; 8],
            attributes: vec![
                otlp::KeyValue::string("a", "1"),
                otlp::KeyValue::string("b", "2"),
                otlp::KeyValue::new("c", V::IntValue(-3)),
                // A key of two length bytes: not the short shape.
                otlp::KeyValue::string(long.as_str(), "4"),
                otlp::KeyValue::string("e", "5"),
            ],
            name: "n".into(),
            ..Default::default()
        };
        let bytes = span.encode_to_vec();
        let mut fields = Fields::new(&bytes);
        assert!(matches!(fields.next_validated(), Some((2, _))));
        assert_eq!(
            next_plain_attribute(&mut fields, 0x4a),
            None,
            "name is next"
        );
        assert!(matches!(fields.next_validated(), Some((5, _))));
        assert!(matches!(fields.next_validated(), Some((9, _))));
        let mut read = Vec::new();
        while let Some((key, value)) = next_plain_attribute(&mut fields, 0x4a) {
            read.push((key, any_value_raw(value)));
        }
        assert_eq!(
            read,
            [(&b"b"[..], AnyRaw::Str(b"2")), (&b"c"[..], AnyRaw::Int(-3))]
        );
        let Some((9, Value::Bytes(d))) = fields.next_validated() else {
            panic!("the walk goes on at the attribute the run left");
        };
        assert_eq!(key_value(d), Some((long.as_str(), AnyRef::Str("4"))));
        assert_eq!(
            next_plain_attribute(&mut fields, 0x4a).map(|kv| kv.0),
            Some(&b"e"[..])
        );
        assert_eq!(next_plain_attribute(&mut fields, 0x4a), None, "the end");
        assert!(fields.next_validated().is_none());
    }

    #[test]
    fn the_short_check_leaves_the_nesting_limit_to_the_general_walk() {
        let list = otlp::KeyValueList {
            values: vec![otlp::KeyValue::string("k", "v")],
        }
        .encode_to_vec();
        // The list, its pair and the pair's value: three levels.
        assert!(matches!(
            validate_at(Message::KeyValueList, &list, 2),
            Err(WireError::TooDeep)
        ));
        validate_at(Message::KeyValueList, &list, 3).unwrap();
    }

    #[test]
    fn groups_and_long_varints_agree_with_prost() {
        let cases: [&[u8]; 6] = [
            // unknown field 20 as a group holding a varint, in a Span
            &[0xa3, 0x01, 0x08, 0x01, 0xa4, 0x01],
            // the same group, never closed
            &[0xa3, 0x01, 0x08, 0x01],
            // known field (name, 5) as a group
            &[0x2b, 0x2c],
            // kind (6) with a tag written in two bytes, and a long varint
            &[0xb0, 0x00, 0x81, 0x80, 0x80, 0x00],
            // an end-group tag alone
            &[0xa4, 0x01],
            // a ten-byte varint whose last byte overflows
            &[
                0x30, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
            ],
        ];
        for bytes in cases {
            assert_eq!(
                validate(Message::Span, bytes).is_ok(),
                otlp::Span::decode(bytes).is_ok(),
                "{bytes:x?}"
            );
        }
    }

    #[test]
    fn errors_name_the_message_and_field() {
        // Span.name (field 5) as a varint.
        let span = [0x28, 0x01];
        assert_eq!(
            validate(Message::Span, &span).unwrap_err().to_string(),
            "Span.name: invalid wire type 0"
        );
        // KeyValue.key with a byte that is not UTF-8.
        let kv = [0x0a, 0x01, 0xff];
        assert_eq!(
            validate(Message::KeyValue, &kv).unwrap_err().to_string(),
            "KeyValue.key: invalid UTF-8"
        );
    }

    #[test]
    fn unknown_fields_pass_and_nesting_is_bounded() {
        // Field 99 (unknown, length-delimited) in a span.
        let span = [0x9a, 0x06, 0x02, 0xff, 0xff];
        validate(Message::Span, &span).unwrap();
        // ArrayValue inside AnyValue inside ArrayValue ... beyond the limit.
        let mut value: Vec<u8> = Vec::new();
        for _ in 0..RECURSION_LIMIT {
            let mut array = Vec::new();
            super::super::put_len_prefix(&mut array, 1, value.len());
            array.extend_from_slice(&value);
            let mut any = Vec::new();
            super::super::put_len_prefix(&mut any, 5, array.len());
            any.extend_from_slice(&array);
            value = any;
        }
        assert_eq!(validate(Message::AnyValue, &value), Err(WireError::TooDeep));
    }
}
