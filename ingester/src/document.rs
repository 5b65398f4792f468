//! Jaeger span → the Elasticsearch documents Jaeger query reads.
//!
//! Field names and value types follow Jaeger's Elasticsearch schema (index
//! names come from `spanway_search::index`), so Jaeger query and the Jaeger
//! UI read our indices unmodified.

mod json;
pub mod learned_keys;
pub mod otlp_wire;
pub mod renest;
mod span_id_hash;
mod tag_keys;

pub use learned_keys::{LearnedKeys, Learning};
use span_id_hash::{HASH_DIGITS, fnv1a64};
pub use span_id_hash::{seal_span_ids, seal_unsealed};
pub use tag_keys::TagKeys;

use serde::Serialize;
use serde_json::Value;
use spanway_schemas::prost_types as wkt;
use spanway_schemas::proto::jaeger::api_v2 as jaeger;
use spanway_search::document::{Document, DocumentKind};
use spanway_search::index::IndexNames;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServiceDoc<'a> {
    service_name: &'a str,
    operation_name: &'a str,
}

/// A timestamp as the microseconds of Jaeger's `startTime`, clamped to
/// the range of `u64`; none is 0.
pub fn micros_of_timestamp(ts: Option<&wkt::Timestamp>) -> u64 {
    ts.map(|t| {
        let micros = i128::from(t.seconds) * 1_000_000 + i128::from(t.nanos) / 1000;
        micros.clamp(0, i128::from(u64::MAX)) as u64
    })
    .unwrap_or(0)
}

fn micros_of_duration(d: Option<&wkt::Duration>) -> u64 {
    d.map(|d| {
        let micros = i128::from(d.seconds) * 1_000_000 + i128::from(d.nanos) / 1000;
        micros.clamp(0, i128::from(u64::MAX)) as u64
    })
    .unwrap_or(0)
}

/// The trace id as Jaeger writes and queries it: 32 hex characters, or 16
/// when the high half is zero. Jaeger query looks a trace up by id with an
/// exact term on this form (its model's `TraceID.String()`), so writing 32
/// characters for such ids would make the trace unreachable by id.
pub fn trace_id_text(bytes: &[u8]) -> String {
    hex_text(trace_id_digits(bytes))
}

/// The bytes of a trace id [`trace_id_text`] writes.
fn trace_id_digits(bytes: &[u8]) -> &[u8] {
    match bytes.split_at_checked(8) {
        Some((high, low)) if bytes.len() == 16 && high.iter().all(|b| *b == 0) => low,
        _ => bytes,
    }
}

/// Lower-case hex, as `hex::encode` writes it.
pub(crate) fn hex_text(bytes: &[u8]) -> String {
    spanway_schemas::hex::text(bytes)
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    spanway_schemas::hex::push(out, bytes);
}

/// `bytes` in hex as a JSON string: hex digits need no escaping.
pub(crate) fn write_hex_str(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() * 2 + 2);
    out.push(b'"');
    spanway_schemas::hex::extend(out, bytes);
    out.push(b'"');
}

/// A trace id as a JSON string, in the form of [`trace_id_text`].
pub(crate) fn write_trace_id_str(out: &mut Vec<u8>, bytes: &[u8]) {
    write_hex_str(out, trace_id_digits(bytes));
}

/// Which tags are stored as plain object fields (`tag.<key>` and
/// `process.tag.<key>`) instead of the nested `tags` list, as Jaeger's
/// `--es.tags-as-fields.*` options do. Object fields are cheaper to store
/// and easy to use in Kibana; Jaeger query must be started with the same
/// options to search them. Binary tags always stay nested.
///
/// [`ALWAYS_AS_FIELDS`] are fields whatever the options say, as Jaeger v2's
/// writer makes them: its query's Monitor tab and OpenSearch Dashboards'
/// Trace Analytics filter on `tag.span@kind` and `tag.error` as fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagsAsFields {
    /// Every non-binary tag.
    pub all: bool,
    /// These keys as well (when `all` is false).
    pub keys: TagKeys,
    /// Replaces `.` in keys, because a dot would nest the object field.
    pub dot_replacement: String,
}

/// Tag keys stored as fields in every mode.
pub const ALWAYS_AS_FIELDS: [&str; 2] = ["span.kind", "error"];

/// Tags that hold numbers charts need as numbers (ranges, averages): when
/// stored as fields, the index template gives them a `long` sub-field,
/// `tag.<name>.number`, beside the `keyword` every tag field is. The
/// keyword must stay: Jaeger query searches tag fields with `regexp`
/// queries, which fail on numeric fields. A value that is not a number is
/// kept as a keyword and left out of the sub-field (`ignore_malformed`).
pub const NUMERIC_TAGS: [&str; 3] = [
    "http.response.status_code",
    "http.status_code",
    "rpc.grpc.status_code",
];

impl TagsAsFields {
    /// The template mappings of the [`NUMERIC_TAGS`] this setting stores as
    /// fields, by field name under `tag`.
    pub fn numeric_field_types(&self) -> Vec<(String, Value)> {
        NUMERIC_TAGS
            .iter()
            .filter(|key| self.all || self.keys.contains(key))
            .map(|key| {
                (
                    key.replace('.', &self.dot_replacement),
                    serde_json::json!({
                        "type": "keyword",
                        "ignore_above": 256,
                        "fields": {"number": {"type": "long", "ignore_malformed": true}}
                    }),
                )
            })
            .collect()
    }
}

impl Default for TagsAsFields {
    fn default() -> Self {
        TagsAsFields {
            all: false,
            keys: Default::default(),
            dot_replacement: "@".into(),
        }
    }
}

impl TagsAsFields {
    #[cfg(test)]
    fn applies(&self, kv: &jaeger::KeyValue) -> bool {
        self.applies_to(&json::Tag::from(kv))
    }

    fn applies_to(&self, tag: &json::Tag<'_>) -> bool {
        !matches!(tag.value, json::TagValue::Binary(_)) && self.names(tag.key)
    }

    /// Whether tags with `key` are fields (binary values aside).
    pub fn names(&self, key: &str) -> bool {
        self.all || ALWAYS_AS_FIELDS.contains(&key) || self.keys.contains(key)
    }
}

/// The span document, in the span's daily index.
pub fn span_document(span: &jaeger::Span, names: &IndexNames) -> Document {
    span_document_with(span, span.process.as_ref(), names, &TagsAsFields::default())
}

/// [`span_document`] with some tags stored as object fields, and the
/// span's process given apart: spans converted from one OTLP resource share
/// it instead of each carrying a copy.
pub fn span_document_with(
    span: &jaeger::Span,
    process: Option<&jaeger::Process>,
    names: &IndexNames,
    fields: &TagsAsFields,
) -> Document {
    let mut doc = span_document_unsealed(span, process, names, fields, None);
    seal_unsealed([&mut doc]);
    doc.document
}

/// A span document whose id ends in zeros until [`seal_unsealed`] puts the
/// hash there, with the bytes that hash covers when they are not the
/// document's source.
#[derive(Debug, Clone, PartialEq)]
pub struct Unsealed {
    /// The document, as it is sent.
    pub document: Document,
    /// The document as the configured placement writes it, when learned
    /// keys placed some tags elsewhere: what the id's hash covers, so that
    /// the id does not depend on what this process had learned.
    hashed: Option<Vec<u8>>,
    /// The span's start, µs since the epoch: what a time-led id begins with.
    start_micros: u64,
    /// How the hash ends the id.
    hash_text: HashText,
}

/// How a span document's id ends in the hash of its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HashText {
    /// 16 hex digits: `<trace id>_<span id>_<hash>`.
    Hex,
    /// 11 base64url characters: the time-led form.
    Base64,
}

impl Unsealed {
    /// The bytes the id's hash covers.
    fn hashed(&self) -> &[u8] {
        self.hashed.as_deref().unwrap_or(&self.document.source)
    }

    pub(crate) fn hash_text(&self) -> HashText {
        self.hash_text
    }

    /// Gives the document its time-led id (`span_ids = "time-led"`):
    /// 13 hex digits of the span's start in µs (the width holds until
    /// 2112, so text order is time order), `_`, then the span id and the
    /// hash, each in base64url. 36 characters for an 8-byte span id. The
    /// trace id is left out: the hash covers the source, which holds it.
    /// A span id that is not hex (never, from the decoders) stays as text.
    pub fn lead_with_start_time(&mut self) {
        if self.hash_text == HashText::Base64 {
            return;
        }
        let id = &self.document.id;
        let span_text = id
            .strip_suffix(&"0".repeat(HASH_DIGITS))
            .and_then(|rest| rest.strip_suffix('_'))
            .and_then(|rest| rest.rsplit_once('_'))
            .map_or("", |(_, span)| span);
        let mut led = String::with_capacity(13 + 1 + 11 + span_id_hash::BASE64_HASH_CHARS);
        use std::fmt::Write as _;
        let _ = write!(led, "{:013x}_", self.start_micros);
        match hex::decode(span_text) {
            Ok(bytes) => span_id_hash::push_base64url(&mut led, &bytes),
            Err(_) => led.push_str(span_text),
        }
        span_id_hash::push_base64url(&mut led, &[0; 8]);
        self.document.id = led;
        self.hash_text = HashText::Base64;
    }
}

/// [`span_document_with`] with the id's last part, the hash of the source,
/// left as zeros for [`seal_unsealed`] to fill in, many documents at once
/// (hashing them together is several times faster). The id already has
/// its final length, so the document's size in a request is known.
/// With `learning`, tags with learned keys are fields too.
pub fn span_document_unsealed(
    span: &jaeger::Span,
    process: Option<&jaeger::Process>,
    names: &IndexNames,
    fields: &TagsAsFields,
    learning: Option<&Learning<'_>>,
) -> Unsealed {
    unsealed_document(
        &json::SpanParts::of_jaeger(span),
        &json::ProcessParts::of_jaeger(process),
        names,
        (fields, learning),
        (&span.trace_id, &span.span_id),
        (
            micros_of_timestamp(span.start_time.as_ref()),
            micros_of_duration(span.duration.as_ref()),
        ),
    )
}

/// The document of the span `span` and `process` describe; `ids` are its
/// trace and span id bytes, `times` its start and duration in µs.
fn unsealed_document(
    span: &json::SpanParts<'_>,
    process: &json::ProcessParts<'_>,
    names: &IndexNames,
    (fields, learning): (&TagsAsFields, Option<&Learning<'_>>),
    ids: (&[u8], &[u8]),
    times: (u64, u64),
) -> Unsealed {
    let trace_id = trace_id_text(ids.0);
    let span_id = hex_text(ids.1);
    let mut source = Vec::with_capacity(1024);
    // Where the values went, so that a second writing copies them.
    let mut noted = learning.map(|_| [[json::Spot::default(); json::NOTED_TAGS]; 2]);
    let sections = json::write_parts(
        &mut source,
        span,
        process,
        fields,
        ((&trace_id, &span_id), times),
        noted.as_mut(),
    );
    let hashed = learning
        .and_then(|learning| {
            let (span_mask, span_learned) = field_mask(fields, learning, &span.tags)?;
            let (process_mask, process_learned) = field_mask(fields, learning, &process.tags)?;
            // Nothing learned in either list: the configured document is the one sent.
            (span_learned || process_learned).then_some([span_mask, process_mask])
        })
        .zip(noted.as_ref())
        .map(|(masks, noted)| {
            let mut shown = Vec::with_capacity(source.len() + source.len() / 8);
            json::write_replacing_tags(
                &mut shown,
                (&source, &sections, noted),
                (&span.tags, &process.tags),
                &fields.dot_replacement,
                masks,
            );
            std::mem::replace(&mut source, shown)
        });
    // `{trace_id}_{span_id}_{hash:016x}`, without the formatting machinery.
    let mut id = String::with_capacity(trace_id.len() + span_id.len() + 2 + HASH_DIGITS);
    id.push_str(&trace_id);
    id.push('_');
    id.push_str(&span_id);
    id.push('_');
    id.extend(std::iter::repeat_n('0', HASH_DIGITS));
    Unsealed {
        document: Document {
            kind: DocumentKind::Span,
            index: names.span_index(times.0),
            id,
            source,
        },
        hashed,
        start_micros: times.0,
        hash_text: HashText::Hex,
    }
}

/// A bit for each of `tags` that is a field with the learned keys, learning
/// keys not seen before on the way, and whether any is a field only because
/// it was learned; `None` for more than 64 tags, which are written as
/// configured.
fn field_mask(
    fields: &TagsAsFields,
    learning: &Learning<'_>,
    tags: &[json::Tag<'_>],
) -> Option<(u64, bool)> {
    if tags.len() > 64 {
        return None;
    }
    let mut mask = 0;
    let mut learned = false;
    for (i, tag) in tags.iter().enumerate() {
        let field = fields.applies_to(tag)
            || (!matches!(tag.value, json::TagValue::Binary(_)) && {
                let check = learning.check(tag.key);
                learned |= check;
                check
            });
        mask |= u64::from(field) << i;
    }
    Some((mask, learned))
}

/// What makes two spans' service documents the same document within one
/// batch: the UTC day of the span's start (daily indices) and the
/// document's id (FNV-1a of service and operation, as Jaeger computes it).
/// Checked before the document is built, so that a batch of a thousand
/// spans of a few operations builds a few documents, not a thousand.
pub fn service_key(span: &jaeger::Span, process: Option<&jaeger::Process>) -> (u64, u64) {
    ServiceOf::new(span, process).key()
}

/// The service/operation document Jaeger query lists services and
/// operations from; its id is FNV-1a of the two names, as in Jaeger.
/// `process` is the span's (see [`span_document_with`]).
pub fn service_document(
    span: &jaeger::Span,
    process: Option<&jaeger::Process>,
    names: &IndexNames,
) -> Result<Document, serde_json::Error> {
    ServiceOf::new(span, process).document(names)
}

/// What a span's service document is made of, from a decoded span or from
/// one read in place.
#[derive(Debug, Clone, Copy)]
pub struct ServiceOf<'a> {
    /// Start of the span, µs since the epoch.
    pub start_micros: u64,
    /// The span's service name.
    pub service: &'a str,
    /// The span's name.
    pub operation: &'a str,
}

impl<'a> ServiceOf<'a> {
    /// The service document parts of a decoded span.
    pub fn new(span: &'a jaeger::Span, process: Option<&'a jaeger::Process>) -> Self {
        ServiceOf {
            start_micros: micros_of_timestamp(span.start_time.as_ref()),
            service: process.map(|p| p.service_name.as_str()).unwrap_or(""),
            operation: &span.operation_name,
        }
    }

    /// See [`service_key`].
    pub fn key(&self) -> (u64, u64) {
        const DAY_MICROS: u64 = 86_400_000_000;
        (self.start_micros / DAY_MICROS, self.id_hash())
    }

    fn id_hash(&self) -> u64 {
        fnv1a64(&[self.service.as_bytes(), self.operation.as_bytes()])
    }

    /// See [`service_document`].
    pub fn document(&self, names: &IndexNames) -> Result<Document, serde_json::Error> {
        let doc = ServiceDoc {
            service_name: self.service,
            operation_name: self.operation,
        };
        Ok(Document {
            kind: DocumentKind::Service,
            index: names.service_index(self.start_micros),
            id: format!("{:x}", self.id_hash()),
            source: serde_json::to_vec(&doc)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span() -> jaeger::Span {
        jaeger::Span {
            trace_id: vec![0xab; 16],
            span_id: vec![0xcd; 8],
            operation_name: "GET /".into(),
            references: vec![jaeger::SpanRef {
                trace_id: vec![0xab; 16],
                span_id: vec![0xef; 8],
                ref_type: 0,
            }],
            flags: 1,
            start_time: Some(wkt::Timestamp {
                seconds: 1_767_225_599,
                nanos: 999_999_999,
            }),
            duration: Some(wkt::Duration {
                seconds: 1,
                nanos: 2_000,
            }),
            tags: vec![
                jaeger::KeyValue {
                    key: "n".into(),
                    v_type: 2,
                    v_int64: 7,
                    ..Default::default()
                },
                jaeger::KeyValue {
                    key: "b".into(),
                    v_type: 4,
                    v_binary: vec![1, 255],
                    ..Default::default()
                },
                jaeger::KeyValue {
                    key: "f".into(),
                    v_type: 3,
                    v_float64: f64::NAN,
                    ..Default::default()
                },
            ],
            process: Some(jaeger::Process {
                service_name: "svc".into(),
                tags: vec![],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn span_document_has_jaeger_shape() {
        let doc = span_document(&span(), &IndexNames::new(""));
        assert_eq!(
            doc.index, "jaeger-span-2025-12-31",
            "UTC day of the start time"
        );
        let v: Value = serde_json::from_slice(&doc.source).unwrap();
        assert_eq!(v["traceID"], "abababababababababababababababab");
        assert_eq!(v["spanID"], "cdcdcdcdcdcdcdcd");
        assert_eq!(v["startTime"], 1_767_225_599_999_999_u64);
        assert_eq!(v["startTimeMillis"], 1_767_225_599_999_u64);
        assert_eq!(v["duration"], 1_000_002);
        assert_eq!(v["references"][0]["refType"], "CHILD_OF");
        assert_eq!(v["references"][0]["spanID"], "efefefefefefefef");
        assert_eq!(
            v["tags"][0],
            serde_json::json!({"key": "n", "type": "int64", "value": 7})
        );
        assert_eq!(v["tags"][1]["value"], "01ff");
        assert_eq!(v["tags"][2]["value"], "NaN");
        assert_eq!(v["process"]["serviceName"], "svc");
        assert!(
            doc.id
                .starts_with("abababababababababababababababab_cdcdcdcdcdcdcdcd_")
        );
    }

    #[test]
    fn tags_as_fields_move_out_of_the_nested_list() {
        let mut s = span();
        s.tags.push(jaeger::KeyValue {
            key: "http.method".into(),
            v_str: "GET".into(),
            ..Default::default()
        });
        s.process.as_mut().unwrap().tags.push(jaeger::KeyValue {
            key: "host.name".into(),
            v_str: "h1".into(),
            ..Default::default()
        });
        let some = TagsAsFields {
            all: false,
            keys: ["http.method", "host.name"].into_iter().collect(),
            dot_replacement: "@".into(),
        };
        let doc = span_document_with(&s, s.process.as_ref(), &IndexNames::new(""), &some);
        let v: Value = serde_json::from_slice(&doc.source).unwrap();
        assert_eq!(v["tag"], serde_json::json!({"http@method": "GET"}));
        assert_eq!(v["process"]["tag"], serde_json::json!({"host@name": "h1"}));
        assert_eq!(
            v["tags"].as_array().unwrap().len(),
            3,
            "the others stay nested"
        );
        assert_eq!(v["process"]["tags"], serde_json::json!([]));

        let all = TagsAsFields {
            all: true,
            dot_replacement: "@".into(),
            ..Default::default()
        };
        let v: Value = serde_json::from_slice(
            &span_document_with(&s, s.process.as_ref(), &IndexNames::new(""), &all).source,
        )
        .unwrap();
        assert_eq!(v["tag"]["n"], 7);
        assert_eq!(
            v["tags"].as_array().unwrap().len(),
            1,
            "binary stays nested"
        );
        assert_eq!(v["tags"][0]["type"], "binary");

        let none = serde_json::from_slice::<Value>(&span_document(&s, &IndexNames::new("")).source)
            .unwrap();
        assert!(none.get("tag").is_none(), "no tag object unless needed");
        assert!(none["process"].get("tag").is_none());
    }

    #[test]
    fn kind_and_error_are_fields_in_every_mode() {
        let mut s = span();
        s.tags.push(jaeger::KeyValue {
            key: "span.kind".into(),
            v_str: "server".into(),
            ..Default::default()
        });
        s.tags.push(jaeger::KeyValue {
            key: "error".into(),
            v_type: jaeger::ValueType::Bool as i32,
            v_bool: true,
            ..Default::default()
        });
        let v: Value =
            serde_json::from_slice(&span_document(&s, &IndexNames::new("")).source).unwrap();
        assert_eq!(
            v["tag"],
            serde_json::json!({"span@kind": "server", "error": true})
        );
        let nested: Vec<&str> = v["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["key"].as_str().unwrap())
            .collect();
        assert_eq!(nested, ["n", "b", "f"]);

        let underscore = TagsAsFields {
            keys: ["n"].into_iter().collect(),
            dot_replacement: "_".into(),
            ..Default::default()
        };
        let v: Value = serde_json::from_slice(
            &span_document_with(&s, s.process.as_ref(), &IndexNames::new(""), &underscore).source,
        )
        .unwrap();
        assert_eq!(
            v["tag"],
            serde_json::json!({"n": 7, "span_kind": "server", "error": true})
        );
    }

    /// Document ids hash the source and name the span: a change in how they
    /// are written would give a redelivered span a second document.
    #[test]
    fn hex_and_ids_are_written_as_before() {
        // The digits themselves are checked in `spanway_schemas::hex`.
        let bytes: Vec<u8> = (0..=255u8).collect();
        let mut json = Vec::new();
        write_hex_str(&mut json, &bytes);
        assert_eq!(json, serde_json::to_vec(&hex::encode(&bytes)).unwrap());
        let mut json = Vec::new();
        write_trace_id_str(&mut json, &[[0u8; 8], [0xab; 8]].concat());
        assert_eq!(json, b"\"abababababababab\"");
        let s = span();
        let doc = span_document(&s, &IndexNames::new(""));
        let expected = format!(
            "{}_{}_{:016x}",
            trace_id_text(&s.trace_id),
            hex::encode(&s.span_id),
            fnv1a64(&[&doc.source])
        );
        assert_eq!(doc.id, expected);
    }

    #[test]
    fn trace_ids_with_zero_high_half_use_jaegers_short_form() {
        let mut short = [0u8; 16];
        short[8..].copy_from_slice(&[0x8c; 8]);
        assert_eq!(trace_id_text(&short), "8c8c8c8c8c8c8c8c");
        let mut full = short;
        full[7] = 1;
        assert_eq!(trace_id_text(&full), "00000000000000018c8c8c8c8c8c8c8c");
        let mut s = span();
        s.trace_id = short.to_vec();
        s.references[0].trace_id = short.to_vec();
        let doc = span_document(&s, &IndexNames::new(""));
        let v: Value = serde_json::from_slice(&doc.source).unwrap();
        assert_eq!(v["traceID"], "8c8c8c8c8c8c8c8c");
        assert_eq!(v["references"][0]["traceID"], "8c8c8c8c8c8c8c8c");
    }

    #[test]
    fn ids_are_deterministic_and_content_sensitive() {
        let names = IndexNames::new("prod");
        let a = span_document(&span(), &names);
        assert_eq!(a, span_document(&span(), &names));
        assert!(a.index.starts_with("prod-jaeger-span-"));
        let mut changed = span();
        changed.operation_name = "POST /".into();
        assert_ne!(a.id, span_document(&changed, &names).id);
    }

    /// The time-led id of `span`, sealed with its neighbours' ids as
    /// `seal_unsealed` seals a batch.
    fn time_led(span: &jaeger::Span) -> Document {
        let names = IndexNames::new("");
        let mut doc = span_document_unsealed(
            span,
            span.process.as_ref(),
            &names,
            &TagsAsFields::default(),
            None,
        );
        doc.lead_with_start_time();
        seal_unsealed([&mut doc]);
        doc.document
    }

    #[test]
    fn time_led_ids_hold_start_span_id_and_the_derived_hash() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let derived = span_document(&span(), &IndexNames::new(""));
        let led = time_led(&span());
        assert_eq!(led.id.len(), 36, "{}", led.id);
        assert_eq!(led.source, derived.source, "only the id differs");
        assert_eq!(led.index, derived.index);
        let (start, rest) = led.id.split_at(13);
        assert_eq!(
            u64::from_str_radix(start, 16).unwrap(),
            1_767_225_599_999_999
        );
        let (span_id, hash) = rest.strip_prefix('_').unwrap().split_at(11);
        assert_eq!(b64.decode(span_id).unwrap(), vec![0xcd; 8]);
        // The hash is the one the derived id ends in, in other letters.
        let derived_hash = &derived.id[derived.id.len() - 16..];
        assert_eq!(hex::encode(b64.decode(hash).unwrap()), derived_hash);
        assert_ne!(derived_hash, "0000000000000000", "sealed");
        // Leading twice changes nothing.
        let names = IndexNames::new("");
        let mut twice =
            span_document_unsealed(&span(), None, &names, &TagsAsFields::default(), None);
        twice.lead_with_start_time();
        let once = twice.document.id.clone();
        twice.lead_with_start_time();
        assert_eq!(twice.document.id, once);
    }

    #[test]
    fn time_led_ids_sort_by_start_and_follow_the_content() {
        let base = time_led(&span());
        assert_eq!(base, time_led(&span()), "the same span, the same id");
        let mut later = span();
        later.start_time.as_mut().unwrap().nanos = 0;
        later.start_time.as_mut().unwrap().seconds += 1;
        assert!(time_led(&later).id > base.id, "a later start sorts after");
        let mut earlier = span();
        earlier.start_time.as_mut().unwrap().seconds -= 86_400 * 365;
        assert!(time_led(&earlier).id < base.id);
        let mut other_trace = span();
        other_trace.trace_id = vec![0x12; 16];
        assert_ne!(
            time_led(&other_trace).id,
            base.id,
            "the trace id is in the hash"
        );
        let mut changed = span();
        changed.operation_name = "POST /".into();
        assert_ne!(time_led(&changed).id, base.id);
    }

    #[test]
    /// Spans whose service documents are one document (same index, same
    /// id) share a key, and spans whose documents differ do not.
    fn service_key_follows_the_document() {
        let names = IndexNames::new("");
        let base = span();
        let mut later_same_day = span();
        later_same_day.start_time.as_mut().unwrap().seconds -= 3600;
        later_same_day.span_id = vec![9; 8];
        let mut next_day = span();
        next_day.start_time.as_mut().unwrap().seconds += 86_400;
        let mut other_op = span();
        other_op.operation_name.push('x');
        let doc = |s: &jaeger::Span| {
            let d = service_document(s, s.process.as_ref(), &names).unwrap();
            (d.index, d.id)
        };
        let key = |s: &jaeger::Span| service_key(s, s.process.as_ref());
        assert_eq!(doc(&base), doc(&later_same_day));
        assert_eq!(key(&base), key(&later_same_day));
        for other in [&next_day, &other_op] {
            assert_ne!(doc(&base), doc(other));
            assert_ne!(key(&base), key(other));
        }
    }

    #[test]
    fn service_id_is_jaegers_fnv() {
        // FNV-1a 64 of "svcGET /" computed independently.
        let expected = {
            let mut h: u64 = 0xcbf29ce484222325;
            for b in b"svcGET /" {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x100000001b3);
            }
            format!("{h:x}")
        };
        let doc = service_document(&span(), span().process.as_ref(), &IndexNames::new("")).unwrap();
        assert_eq!(doc.id, expected);
        assert_eq!(doc.index, "jaeger-service-2025-12-31");
        assert_eq!(
            serde_json::from_slice::<Value>(&doc.source).unwrap(),
            serde_json::json!({"serviceName": "svc", "operationName": "GET /"})
        );
    }
}
