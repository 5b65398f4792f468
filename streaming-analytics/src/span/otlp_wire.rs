//! Span facts read from `otlp_proto` records in place.
//!
//! The decoded path turns each record into Jaeger spans (every attribute,
//! event and resource tag allocated, the resource copied into every span)
//! only to keep a hundred bytes of facts. Here the record is validated as
//! strictly as decoding would, and the facts are read from the bytes under
//! the same rules the conversion to Jaeger spans applies: the first tag of
//! a key counts, attributes come before the tags the conversion adds
//! (`span.kind`, `error`, `otel.status_code`), a resource without a
//! service name is `unknown_service`. Whatever those rules would render in
//! a way this reader does not reproduce (an array or map value, which the
//! conversion writes as JSON text; an id it refuses; a field whose
//! occurrences decoding would merge) sends the record down the decoded
//! path instead, so both give the same facts.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;

use spanway_schemas::id_hashing::IdHashing;
use spanway_schemas::to_jaeger::{UNKNOWN_SERVICE, span_kind_name};
use spanway_schemas::wire::otlp::{self, AnyRaw, AnyRef, Message, SpanHead};
use spanway_schemas::wire::{Fields, Value};
use spanway_schemas::{SpanId, TraceId};

use super::{Kind, PeerSource, SpanFacts, kind_named, peer_named};

/// `Status.code` ERROR.
const STATUS_ERROR: u64 = 2;

/// Service and peer names already read, so that every span of a service
/// (and every call to a peer) shares one allocation.
///
/// A fresh name per record cost an allocation and a free per record, and
/// comparing two spans' services (once per span in the analysis) then read
/// two separate allocations; shared names compare by pointer. Bounded: past
/// [`Names::LIMIT`] distinct names the table starts over (names in use
/// stay valid, they are only no longer shared), so a sender inventing names
/// cannot grow it. Looked up by the name's bytes: checking them as UTF-8
/// once more for every record cost more than the lookup.
///
/// Keyed by the process's id hash ([`IdHashing`], keys secret per map), not
/// std's SipHash, which cost more than the rest of the lookup.
#[derive(Debug, Default)]
pub struct Names {
    names: HashMap<Box<[u8]>, Arc<str>, IdHashing>,
}

impl Names {
    /// Distinct names kept before the table starts over.
    pub const LIMIT: usize = 4096;

    /// The shared allocation of the name whose bytes are `name`; `None`
    /// when they are not UTF-8.
    pub fn get(&mut self, name: &[u8]) -> Option<Arc<str>> {
        if let Some(known) = self.names.get(name) {
            return Some(Arc::clone(known));
        }
        let text = std::str::from_utf8(name).ok()?;
        Some(self.insert(name, text))
    }

    /// The shared allocation of `name`, already text.
    pub fn get_str(&mut self, name: &str) -> Arc<str> {
        match self.names.get(name.as_bytes()) {
            Some(known) => Arc::clone(known),
            None => self.insert(name.as_bytes(), name),
        }
    }

    fn insert(&mut self, name: &[u8], text: &str) -> Arc<str> {
        if self.names.len() >= Self::LIMIT {
            self.names.clear();
        }
        let fresh: Arc<str> = Arc::from(text);
        self.names.insert(name.into(), Arc::clone(&fresh));
        fresh
    }

    /// Distinct names held.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no name is held.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Appends the facts of every span of `value`, an `otlp_proto` record.
/// `None` (and nothing appended) when the record must take the decoded
/// path.
pub fn facts_of_otlp(
    value: &[u8],
    peer_order: &[PeerSource],
    names: &mut Names,
    out: &mut Vec<SpanFacts>,
) -> Option<()> {
    otlp::validate(Message::TracesData, value).ok()?;
    let start = out.len();
    let read = read_record(value, peer_order, names, out);
    if read.is_none() {
        out.truncate(start);
    }
    read
}

fn read_record(
    value: &[u8],
    peer_order: &[PeerSource],
    names: &mut Names,
    out: &mut Vec<SpanFacts>,
) -> Option<()> {
    for resource_spans in otlp::nested(value, 1) {
        let service = names.get(service(resource_spans)?)?;
        for scope_spans in otlp::nested(resource_spans, 2) {
            for span in otlp::nested(scope_spans, 2) {
                out.push(span_facts(span, &service, peer_order, names)?);
            }
        }
    }
    Some(())
}

/// The resource's service name, as the conversion names the process, still
/// as bytes ([`Names::get`] checks a name it has not seen).
fn service(resource_spans: &[u8]) -> Option<&[u8]> {
    let mut resources = otlp::nested(resource_spans, 1);
    let resource = resources.next();
    if resources.next().is_some() {
        return None; // decoding merges them
    }
    let mut name = UNKNOWN_SERVICE.as_bytes();
    for kv in resource.into_iter().flat_map(|r| otlp::nested(r, 1)) {
        // Key and name as bytes: validation has checked both as UTF-8,
        // and each check cost more than the rest of reading the resource.
        let (key, value) = otlp::key_value_raw(kv)?;
        if key == b"service.name" {
            if let AnyRaw::Str(text) = value
                && !text.is_empty()
            {
                name = text;
            }
            break;
        }
    }
    Some(name)
}

/// The attribute keys facts are read from: `span.kind`, `error`,
/// `otel.status_code` and every key [`peer_named`](super::peer_named) may
/// ask for.
const KEYS: [&str; 11] = [
    "span.kind",
    "error",
    "otel.status_code",
    "peer.service",
    "db.system",
    "db.name",
    "messaging.destination.name",
    "messaging.destination",
    "messaging.system",
    "server.address",
    "net.peer.name",
];

/// `Span.attributes` (field 9, length-delimited) as a one-byte tag.
const SPAN_ATTRIBUTES_TAG: u8 = 9 << 3 | 2;

/// Where `key` is in [`KEYS`].
#[inline]
fn key_slot(key: &[u8]) -> Option<usize> {
    KEYS.iter().position(|k| k.as_bytes() == key)
}

fn span_facts<'a>(
    span: &'a [u8],
    service: &Arc<str>,
    peer_order: &[PeerSource],
    names: &mut Names,
) -> Option<SpanFacts> {
    // One walk over the span's fields for its head and what the facts
    // need besides. Of the attributes, only the first of each key in
    // `KEYS` is kept, and only its value read: most spans carry several
    // others, and reading every value (then looking each key up among
    // them) was most of what an attribute cost.
    let mut found: [Option<AnyRaw>; KEYS.len()] = [None; KEYS.len()];
    let mut status: Option<&[u8]> = None;
    let mut keep = |key: &[u8], value: Option<&'a [u8]>| {
        if let Some(slot) = key_slot(key)
            && found[slot].is_none()
        {
            found[slot] = Some(value.map_or(AnyRaw::Empty, otlp::any_value_raw));
        }
    };
    let (mut head, mut fields) = SpanHead::leading(span);
    while let Some(field) = fields.next_validated() {
        head.take(field.0, field.1);
        match field {
            (9, Value::Bytes(kv)) => {
                let (key, value) = otlp::key_and_value_bytes(kv)?;
                keep(key, value);
                // The attributes that follow it, read as a run: none is
                // any of the span head's fields.
                while let Some((key, value)) =
                    otlp::next_plain_attribute(&mut fields, SPAN_ATTRIBUTES_TAG)
                {
                    keep(key, Some(value));
                }
            }
            (15, Value::Bytes(bytes)) => {
                if status.is_some() {
                    return None; // decoding merges them
                }
                status = Some(bytes);
            }
            _ => {}
        }
    }
    let trace_id = TraceId::from_slice(head.trace_id).ok()?;
    let span_id = SpanId::from_slice(head.span_id).ok()?;
    let mut parent_id = None;
    if !head.parent_span_id.is_empty() {
        parent_id = Some(SpanId::from_slice(head.parent_span_id).ok()?);
    }
    for (link_trace, link_span) in otlp::span_links(span).take(head.links) {
        TraceId::from_slice(link_trace).ok()?;
        let link_span = SpanId::from_slice(link_span).ok()?;
        // Without a parent, the first link is the first reference.
        parent_id.get_or_insert(link_span);
    }

    let status_code = status.map(|s| {
        let mut code = 0;
        let mut fields = Fields::new(s);
        while let Some(field) = fields.next_validated() {
            if let (3, Value::Varint(value)) = field {
                code = value;
            }
        }
        code
    });

    // Only the values used turned into text: validation has checked every
    // string as UTF-8, so `to_ref` fails on none of them.
    let first = |key: &str| {
        key_slot(key.as_bytes())
            .and_then(|slot| found[slot])
            .and_then(AnyRaw::to_ref)
    };
    let kind = match first("span.kind") {
        Some(AnyRef::Nested(_)) => return None,
        Some(AnyRef::Str(text)) if !text.is_empty() => kind_named(Some(text)),
        Some(_) => Kind::Internal,
        None => kind_named(span_kind_name(head.kind as i32)),
    };
    let error_tag = match first("error") {
        Some(AnyRef::Bool(flag)) => flag,
        Some(AnyRef::Str(text)) => text == "true",
        Some(_) => false,
        None => status_code == Some(STATUS_ERROR),
    };
    let status_tag_error = matches!(first("otel.status_code"), Some(AnyRef::Str("ERROR")));

    let peer = if kind.calls_out() {
        let nested = Cell::new(false);
        // Shared like service names: a peer's name is one of few, and a
        // fresh copy for every calling span was an allocation and a free.
        let peer = peer_named(peer_order, |key| match first(key) {
            Some(AnyRef::Str(text)) if !text.is_empty() => Some(text),
            Some(AnyRef::Nested(_)) => {
                nested.set(true);
                None
            }
            _ => None,
        });
        if nested.get() {
            return None;
        }
        peer.map(|(name, connection)| (names.get_str(&name), connection))
    } else {
        None
    };

    // As the conversion does: whole seconds and nanoseconds, then µs.
    let micros = |nanos: u64| {
        (nanos / 1_000_000_000) as i64 * 1_000_000 + ((nanos % 1_000_000_000) as i64) / 1000
    };
    let duration = head.end.saturating_sub(head.start);
    Some(SpanFacts {
        trace_id: u128::from_be_bytes(*trace_id.as_bytes()),
        span_id: u64::from_be_bytes(*span_id.as_bytes()),
        parent_id: parent_id.map(|p| u64::from_be_bytes(*p.as_bytes())),
        service: Arc::clone(service),
        kind,
        start_micros: micros(head.start),
        duration_micros: u64::try_from(micros(duration)).unwrap_or(0),
        error: error_tag || status_tag_error,
        peer,
    })
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use spanway_schemas::proto::otlp as pb;
    use spanway_schemas::{Encoding, decode_record};

    use super::*;

    const ORDER: [PeerSource; 4] = [
        PeerSource::PeerService,
        PeerSource::Db,
        PeerSource::Messaging,
        PeerSource::ServerAddress,
    ];

    /// What the decoded path reads from the same record.
    fn decoded(value: &[u8]) -> Vec<SpanFacts> {
        decode_record(Encoding::OtlpProto, value)
            .unwrap()
            .iter()
            .map(|span| SpanFacts::from_jaeger(span, &ORDER).unwrap())
            .collect()
    }

    fn wire(value: &[u8]) -> Option<Vec<SpanFacts>> {
        let mut out = Vec::new();
        facts_of_otlp(value, &ORDER, &mut Names::default(), &mut out).map(|()| out)
    }

    #[test]
    fn topology_traffic_gives_the_decoded_facts() {
        let traffic = spanway_e2e::topology::generate(7, 200, 1_767_225_600_000, 10);
        let mut spans = 0;
        for record in &traffic.records {
            let ours = wire(&record.value).expect("plain records take the wire path");
            assert_eq!(ours, decoded(&record.value));
            spans += ours.len();
        }
        assert!(spans > 1_000, "{spans}");
    }

    #[test]
    fn services_and_peers_share_their_names_and_the_table_is_bounded() {
        let traffic = spanway_e2e::topology::generate(7, 50, 1_767_225_600_000, 10);
        let mut names = Names::default();
        let mut facts = Vec::new();
        for record in &traffic.records {
            facts_of_otlp(&record.value, &ORDER, &mut names, &mut facts).unwrap();
        }
        let mut distinct: Vec<&Arc<str>> = Vec::new();
        let read = facts.iter().flat_map(|span| {
            let peer = span.peer.as_ref().map(|(name, _)| name);
            std::iter::once(&span.service).chain(peer)
        });
        for name in read {
            match distinct.iter().find(|n| ***n == *name) {
                Some(known) => assert!(Arc::ptr_eq(known, name), "{name}"),
                None => distinct.push(name),
            }
        }
        let peers = facts.iter().filter(|span| span.peer.is_some()).count();
        assert!(peers > 10, "{peers}");
        assert!(distinct.len() > 2, "{distinct:?}");
        assert_eq!(names.len(), distinct.len());

        let mut names = Names::default();
        for n in 0..Names::LIMIT {
            names.get(format!("service-{n}").as_bytes());
        }
        assert_eq!(names.len(), Names::LIMIT);
        let kept = names.get(b"service-0").unwrap();
        assert_eq!(names.len(), Names::LIMIT, "a known name is not added again");
        let fresh = names.get(b"one more").unwrap();
        assert_eq!(names.len(), 1, "past the limit the table starts over");
        assert_eq!(&*kept, "service-0");
        assert!(Arc::ptr_eq(&fresh, &names.get(b"one more").unwrap()));
        assert_eq!(names.get(b"caf\xe9"), None, "not UTF-8");
        assert_eq!(names.len(), 1, "and not kept");
    }

    #[test]
    fn every_key_the_peer_rules_ask_for_is_kept() {
        let asked = std::cell::RefCell::new(Vec::new());
        for source in ORDER {
            super::super::peer_named(&[source], |key| {
                asked.borrow_mut().push(key.to_owned());
                None
            });
        }
        let asked = asked.into_inner();
        assert!(asked.len() >= 8, "{asked:?}");
        for key in asked {
            assert!(key_slot(key.as_bytes()).is_some(), "{key} is not in KEYS");
        }
        for key in ["span.kind", "error", "otel.status_code"] {
            assert!(key_slot(key.as_bytes()).is_some(), "{key}");
        }
    }

    fn text(s: &str) -> pb::any_value::Value {
        pb::any_value::Value::StringValue(s.into())
    }

    fn record(resource: Vec<pb::KeyValue>, span: pb::Span) -> Vec<u8> {
        pb::TracesData {
            resource_spans: vec![pb::ResourceSpans {
                resource: Some(pb::Resource {
                    attributes: resource,
                    ..Default::default()
                }),
                scope_spans: vec![pb::ScopeSpans {
                    spans: vec![span],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    fn span(kind: i32, attributes: Vec<pb::KeyValue>, status: Option<i32>) -> pb::Span {
        pb::Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            kind,
            start_time_unix_nano: 1_767_225_600_123_456_789,
            end_time_unix_nano: 1_767_225_600_223_456_000,
            attributes,
            status: status.map(|code| pb::Status {
                code,
                message: String::new(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_conversions_rules_hold_on_edge_cases() {
        use pb::any_value::Value as V;
        let client = 3;
        let cases = vec![
            // An attribute named span.kind comes first; a number there is no kind.
            record(
                vec![pb::KeyValue::new("service.name", text("a"))],
                span(
                    client,
                    vec![pb::KeyValue::new("span.kind", V::IntValue(1))],
                    None,
                ),
            ),
            record(
                vec![pb::KeyValue::new("service.name", text("a"))],
                span(
                    2,
                    vec![pb::KeyValue::new("span.kind", text("client"))],
                    None,
                ),
            ),
            // error=false as an attribute hides status ERROR; otel.status_code=ERROR counts.
            record(
                vec![],
                span(
                    client,
                    vec![pb::KeyValue::new("error", V::BoolValue(false))],
                    Some(2),
                ),
            ),
            record(
                vec![],
                span(
                    client,
                    vec![pb::KeyValue::new("error", text("true"))],
                    Some(1),
                ),
            ),
            record(
                vec![],
                span(
                    client,
                    vec![pb::KeyValue::new("otel.status_code", text("ERROR"))],
                    Some(1),
                ),
            ),
            record(vec![], span(client, vec![], Some(2))),
            // Peers, an empty one skipped by the order, the first of a repeated key.
            record(
                vec![pb::KeyValue::new("service.name", text(""))],
                span(
                    client,
                    vec![
                        pb::KeyValue::new("peer.service", text("")),
                        pb::KeyValue::new("db.system", text("pg")),
                        pb::KeyValue::new("db.name", text("x")),
                        pb::KeyValue::new("db.system", text("mysql")),
                    ],
                    None,
                ),
            ),
            record(
                vec![pb::KeyValue::new("service.name", V::IntValue(3))],
                span(
                    client,
                    vec![
                        pb::KeyValue::new("server.address", text("h")),
                        pb::KeyValue::new("peer.service", V::BoolValue(true)),
                    ],
                    None,
                ),
            ),
            // Links: the first one is the parent when there is none.
            {
                let mut s = span(2, vec![], None);
                s.links = vec![
                    pb::span::Link {
                        trace_id: vec![3; 16],
                        span_id: vec![4; 8],
                        ..Default::default()
                    },
                    pb::span::Link {
                        trace_id: vec![5; 16],
                        span_id: vec![6; 8],
                        ..Default::default()
                    },
                ];
                record(vec![], s)
            },
            {
                let mut s = span(2, vec![], None);
                s.parent_span_id = vec![9; 8];
                s.links = vec![pb::span::Link {
                    trace_id: vec![3; 16],
                    span_id: vec![4; 8],
                    ..Default::default()
                }];
                s.end_time_unix_nano = 1; // before the start: duration 0
                record(vec![], s)
            },
        ];
        for (i, value) in cases.iter().enumerate() {
            assert_eq!(
                wire(value).as_deref(),
                Some(decoded(value).as_slice()),
                "case {i}"
            );
        }
    }

    #[test]
    fn what_the_reader_does_not_render_takes_the_decoded_path() {
        use pb::any_value::Value as V;
        let array = V::ArrayValue(pb::ArrayValue { values: vec![] });
        let cases = [
            record(
                vec![],
                span(
                    3,
                    vec![pb::KeyValue::new("peer.service", array.clone())],
                    None,
                ),
            ),
            record(
                vec![],
                span(3, vec![pb::KeyValue::new("span.kind", array)], None),
            ),
            {
                let mut s = span(3, vec![], None);
                s.links = vec![pb::span::Link {
                    trace_id: vec![3; 4],
                    span_id: vec![4; 8],
                    ..Default::default()
                }];
                record(vec![], s)
            },
            b"\x0a\x02\x0a".to_vec(),
        ];
        for (i, value) in cases.iter().enumerate() {
            assert_eq!(wire(value), None, "case {i}");
        }
    }
}
