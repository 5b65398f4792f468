//! The few facts about a span that dependency analysis needs.
//!
//! Spans are reduced to these as soon as they are decoded, so the pairing
//! store holds about a hundred bytes per span instead of the whole span
//! with its tags and logs.

pub mod otlp_wire;

use std::borrow::Cow;
use std::sync::Arc;

use spanway_schemas::prost_types as wkt;
use spanway_schemas::proto::jaeger::api_v2 as jaeger;

/// The role a span plays in a call, from its `span.kind` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The caller's side of a synchronous call.
    Client,
    /// The callee's side.
    Server,
    /// The sender of a message.
    Producer,
    /// The receiver of a message.
    Consumer,
    /// Anything else, or no `span.kind` at all.
    Internal,
}

impl Kind {
    /// Client and producer spans call out.
    pub fn calls_out(self) -> bool {
        matches!(self, Kind::Client | Kind::Producer)
    }

    /// Server and consumer spans are called.
    pub fn is_called(self) -> bool {
        matches!(self, Kind::Server | Kind::Consumer)
    }
}

/// How a virtual peer was named, which sets the edge's connection type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Connection {
    /// A call between two instrumented services.
    Direct,
    /// A database named by `db.*` attributes.
    Database,
    /// A message exchange through a broker.
    Messaging,
    /// A peer known only by name (`peer.service`, `server.address`, or `unknown`).
    Virtual,
}

impl Connection {
    /// The name written into documents and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Connection::Direct => "direct",
            Connection::Database => "database",
            Connection::Messaging => "messaging",
            Connection::Virtual => "virtual",
        }
    }
}

/// An attribute family that can name an uninstrumented peer, in the order
/// `model.peer_attributes` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerSource {
    /// `peer.service`.
    PeerService,
    /// `db.system` and `db.name` (`postgresql/orders`).
    Db,
    /// `messaging.system` and the destination (`kafka/orders`).
    Messaging,
    /// `server.address`, else the older `net.peer.name`.
    ServerAddress,
}

/// The facts about one span.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanFacts {
    /// The trace id as a number (the 16 id bytes, big-endian).
    pub trace_id: u128,
    /// The span id as a number.
    pub span_id: u64,
    /// The span it was called from: its first reference, `CHILD_OF` or
    /// `FOLLOWS_FROM` alike, as spark-dependencies reads it.
    pub parent_id: Option<u64>,
    /// `process.serviceName`.
    pub service: Arc<str>,
    /// From `span.kind`.
    pub kind: Kind,
    /// Start, µs since the epoch: the event time windows are cut on.
    pub start_micros: i64,
    /// Duration in µs.
    pub duration_micros: u64,
    /// Status ERROR (`otel.status_code=ERROR`) or `error=true`.
    pub error: bool,
    /// Who this span calls when no instrumented peer answers, from its attributes.
    pub peer: Option<(Arc<str>, Connection)>,
}

/// Why a span cannot be analysed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FactsError {
    /// A span id or trace id of the wrong length.
    #[error("{field} has {len} bytes, expected {expected}")]
    IdLength {
        field: &'static str,
        len: usize,
        expected: usize,
    },
}

fn id_u128(bytes: &[u8], field: &'static str) -> Result<u128, FactsError> {
    let array: [u8; 16] = bytes.try_into().map_err(|_| FactsError::IdLength {
        field,
        len: bytes.len(),
        expected: 16,
    })?;
    Ok(u128::from_be_bytes(array))
}

fn id_u64(bytes: &[u8], field: &'static str) -> Result<u64, FactsError> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| FactsError::IdLength {
        field,
        len: bytes.len(),
        expected: 8,
    })?;
    Ok(u64::from_be_bytes(array))
}

fn micros_of(ts: Option<&wkt::Timestamp>) -> i64 {
    ts.map_or(0, |t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1000)
}

fn micros_of_duration(d: Option<&wkt::Duration>) -> u64 {
    d.map_or(0, |d| {
        u64::try_from(d.seconds * 1_000_000 + i64::from(d.nanos) / 1000).unwrap_or(0)
    })
}

fn tag<'a>(tags: &'a [jaeger::KeyValue], key: &str) -> Option<&'a jaeger::KeyValue> {
    tags.iter().find(|t| t.key == key)
}

fn tag_str<'a>(tags: &'a [jaeger::KeyValue], key: &str) -> Option<&'a str> {
    tag(tags, key)
        .map(|t| t.v_str.as_str())
        .filter(|s| !s.is_empty())
}

/// The kind a `span.kind` value names.
pub(crate) fn kind_named(value: Option<&str>) -> Kind {
    match value {
        Some("client") => Kind::Client,
        Some("server") => Kind::Server,
        Some("producer") => Kind::Producer,
        Some("consumer") => Kind::Consumer,
        _ => Kind::Internal,
    }
}

fn is_error(tags: &[jaeger::KeyValue]) -> bool {
    let flagged = tag(tags, "error").is_some_and(|t| t.v_bool || t.v_str == "true");
    flagged || tag_str(tags, "otel.status_code") == Some("ERROR")
}

fn joined<'a>(first: Option<&'a str>, second: Option<&'a str>) -> Option<Cow<'a, str>> {
    match (first, second) {
        (Some(a), Some(b)) => Some(Cow::Owned(format!("{a}/{b}"))),
        (Some(a), None) | (None, Some(a)) => Some(Cow::Borrowed(a)),
        (None, None) => None,
    }
}

/// Names the peer of a calling span from its string attributes (`tag`
/// looks one up by key), trying the sources in `order`. The name borrows
/// from the attributes where it can, so that the caller decides how to
/// keep it (shared names, on the hot path).
pub(crate) fn peer_named<'a>(
    order: &[PeerSource],
    tag: impl Fn(&str) -> Option<&'a str>,
) -> Option<(Cow<'a, str>, Connection)> {
    order.iter().find_map(|source| match source {
        PeerSource::PeerService => {
            tag("peer.service").map(|s| (Cow::Borrowed(s), Connection::Virtual))
        }
        PeerSource::Db => {
            joined(tag("db.system"), tag("db.name")).map(|s| (s, Connection::Database))
        }
        PeerSource::Messaging => {
            let destination =
                tag("messaging.destination.name").or_else(|| tag("messaging.destination"));
            joined(tag("messaging.system"), destination).map(|s| (s, Connection::Messaging))
        }
        PeerSource::ServerAddress => tag("server.address")
            .or_else(|| tag("net.peer.name"))
            .map(|s| (Cow::Borrowed(s), Connection::Virtual)),
    })
}

/// [`peer_named`], the name in an allocation of its own.
pub(crate) fn peer_of<'a>(
    order: &[PeerSource],
    tag: impl Fn(&str) -> Option<&'a str>,
) -> Option<(Arc<str>, Connection)> {
    peer_named(order, tag).map(|(name, connection)| (Arc::from(name.as_ref()), connection))
}

impl SpanFacts {
    /// Reads the facts from a decoded span. `peer_order` is only consulted
    /// for client and producer spans.
    pub fn from_jaeger(span: &jaeger::Span, peer_order: &[PeerSource]) -> Result<Self, FactsError> {
        let trace_id = id_u128(&span.trace_id, "traceId")?;
        let span_id = id_u64(&span.span_id, "spanId")?;
        let parent_id = match span.references.first() {
            Some(r) => Some(id_u64(&r.span_id, "references[0].spanId")?),
            None => None,
        };
        let kind = kind_named(tag_str(&span.tags, "span.kind"));
        let service: Arc<str> = span
            .process
            .as_ref()
            .map_or("", |p| p.service_name.as_str())
            .into();
        let peer = if kind.calls_out() {
            peer_of(peer_order, |key| tag_str(&span.tags, key))
        } else {
            None
        };
        Ok(SpanFacts {
            trace_id,
            span_id,
            parent_id,
            service,
            kind,
            start_micros: micros_of(span.start_time.as_ref()),
            duration_micros: micros_of_duration(span.duration.as_ref()),
            error: is_error(&span.tags),
            peer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str) -> jaeger::KeyValue {
        jaeger::KeyValue {
            key: key.into(),
            v_str: value.into(),
            ..Default::default()
        }
    }

    fn span(tags: Vec<jaeger::KeyValue>) -> jaeger::Span {
        jaeger::Span {
            trace_id: vec![0; 15].into_iter().chain([7]).collect(),
            span_id: vec![0, 0, 0, 0, 0, 0, 0, 9],
            references: vec![jaeger::SpanRef {
                trace_id: vec![0; 16],
                span_id: vec![0, 0, 0, 0, 0, 0, 0, 3],
                ref_type: jaeger::SpanRefType::FollowsFrom as i32,
            }],
            start_time: Some(wkt::Timestamp {
                seconds: 10,
                nanos: 5_000,
            }),
            duration: Some(wkt::Duration {
                seconds: 0,
                nanos: 2_000_000,
            }),
            tags,
            process: Some(jaeger::Process {
                service_name: "cart".into(),
                tags: vec![],
            }),
            ..Default::default()
        }
    }

    const ORDER: [PeerSource; 4] = [
        PeerSource::PeerService,
        PeerSource::Db,
        PeerSource::Messaging,
        PeerSource::ServerAddress,
    ];

    #[test]
    fn reads_ids_times_and_kind() {
        let facts = SpanFacts::from_jaeger(&span(vec![kv("span.kind", "server")]), &ORDER).unwrap();
        assert_eq!(facts.trace_id, 7);
        assert_eq!(facts.span_id, 9);
        assert_eq!(facts.parent_id, Some(3), "FOLLOWS_FROM counts as a parent");
        assert_eq!(facts.start_micros, 10_000_005);
        assert_eq!(facts.duration_micros, 2_000);
        assert_eq!(facts.kind, Kind::Server);
        assert_eq!(&*facts.service, "cart");
        assert!(!facts.error);
        assert_eq!(facts.peer, None, "only calling spans name a peer");
    }

    #[test]
    fn errors_from_either_convention() {
        let mut flagged = kv("error", "");
        flagged.v_bool = true;
        assert!(
            SpanFacts::from_jaeger(&span(vec![flagged]), &ORDER)
                .unwrap()
                .error
        );
        let status = kv("otel.status_code", "ERROR");
        assert!(
            SpanFacts::from_jaeger(&span(vec![status]), &ORDER)
                .unwrap()
                .error
        );
    }

    #[test]
    fn peer_follows_the_configured_order() {
        let tags = vec![
            kv("span.kind", "client"),
            kv("db.system", "postgresql"),
            kv("db.name", "orders"),
            kv("server.address", "db-1.internal"),
        ];
        let facts = SpanFacts::from_jaeger(&span(tags.clone()), &ORDER).unwrap();
        assert_eq!(
            facts.peer,
            Some((Arc::from("postgresql/orders"), Connection::Database))
        );
        let facts =
            SpanFacts::from_jaeger(&span(tags), &[PeerSource::ServerAddress, PeerSource::Db])
                .unwrap();
        assert_eq!(
            facts.peer,
            Some((Arc::from("db-1.internal"), Connection::Virtual))
        );
    }

    #[test]
    fn messaging_peer_names_system_and_destination() {
        let tags = vec![
            kv("span.kind", "producer"),
            kv("messaging.system", "kafka"),
            kv("messaging.destination.name", "payments"),
        ];
        let facts = SpanFacts::from_jaeger(&span(tags), &ORDER).unwrap();
        assert_eq!(
            facts.peer,
            Some((Arc::from("kafka/payments"), Connection::Messaging))
        );
    }

    #[test]
    fn wrong_id_length_names_the_field() {
        let mut bad = span(vec![]);
        bad.span_id = vec![1, 2];
        let error = SpanFacts::from_jaeger(&bad, &ORDER).unwrap_err();
        assert!(error.to_string().contains("spanId"), "{error}");
    }
}
