//! Traces of a known service topology, with the dependency counts they must
//! produce computed from the topology itself (not from any analysis code).
//!
//! Topology (every trace makes every call):
//!
//! ```text
//! user → frontend ─┬→ cart ──→ recommendations (×3, fan-out)
//!                  └→ checkout ─┬→ payments ──→ fraud-api (uninstrumented, peer.service)
//!                               ├→ inventory ──→ warehouse
//!                               ├→ postgresql/orders (database, db.* attributes)
//!                               └→ kafka order-events ──→ notifications ──→ smtp.mail.internal
//! ```
//!
//! Eight instrumented services, a database, a message queue and two
//! uninstrumented peers. `payments` fails every 10th trace (server side),
//! the fraud check every 7th (client side).

use std::collections::BTreeMap;

use prost::Message as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use spanway_schemas::proto::otlp;
use spanway_schemas::{Encoding, SpanRecord, TraceId, encode_trace};

use crate::otlp::string_kv;

/// Instrumented services.
pub const SERVICES: [&str; 8] = [
    "frontend",
    "cart",
    "recommendations",
    "checkout",
    "payments",
    "inventory",
    "warehouse",
    "notifications",
];

const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const PRODUCER: i32 = 4;
const CONSUMER: i32 = 5;

/// Counts per (client, server) edge.
pub type EdgeCounts = BTreeMap<(String, String), u64>;

/// What the traces must produce.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Expected {
    /// Calls per edge, by the default rules: a server span calling out
    /// through its own client span makes no same-service edge (Jaeger's
    /// rule, `model.same_service = "all"`, would count one per call).
    pub calls: EdgeCounts,
    /// Failed calls per edge.
    pub errors: EdgeCounts,
}

/// The generated traffic.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Contract records (otlp_proto), one per service and trace, in send order.
    pub records: Vec<SpanRecord>,
    /// The dependency counts.
    pub expected: Expected,
    /// Earliest and latest span start, µs since the epoch.
    pub span_micros: (u64, u64),
    /// Spans generated.
    pub spans: u64,
}

struct Builder {
    trace_id: [u8; 16],
    next_id: u64,
    /// Spans per service, in creation order.
    by_service: BTreeMap<&'static str, Vec<otlp::Span>>,
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    fn span(
        &mut self,
        service: &'static str,
        name: &str,
        kind: i32,
        parent: Option<u64>,
        start_ns: u64,
        duration_ns: u64,
        error: bool,
        attributes: Vec<otlp::KeyValue>,
    ) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let span = otlp::Span {
            trace_id: self.trace_id.to_vec(),
            span_id: id.to_be_bytes().to_vec(),
            parent_span_id: parent.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
            name: name.into(),
            kind,
            start_time_unix_nano: start_ns,
            end_time_unix_nano: start_ns + duration_ns,
            attributes,
            status: error.then(|| otlp::Status {
                code: 2,
                message: "failed".into(),
            }),
            ..Default::default()
        };
        self.by_service.entry(service).or_default().push(span);
        id
    }

    /// A synchronous call: the caller's client span and the callee's server span.
    #[allow(clippy::too_many_arguments)]
    fn call(
        &mut self,
        from: &'static str,
        from_span: u64,
        to: &'static str,
        start_ns: u64,
        server_ns: u64,
        error: bool,
    ) -> u64 {
        let client = self.span(
            from,
            &format!("call {to}"),
            CLIENT,
            Some(from_span),
            start_ns,
            server_ns + 2_000_000,
            false,
            vec![],
        );
        self.span(
            to,
            &format!("serve {to}"),
            SERVER,
            Some(client),
            start_ns + 1_000_000,
            server_ns,
            error,
            vec![],
        )
    }
}

fn add(counts: &mut EdgeCounts, from: &str, to: &str, n: u64) {
    *counts.entry((from.to_owned(), to.to_owned())).or_default() += n;
}

/// `traces` traces starting `spacing_ms` apart from `start_ms` (µs precision),
/// records shuffled within a small horizon as independent exporters would
/// deliver them.
pub fn generate(seed: u64, traces: usize, start_ms: u64, spacing_ms: u64) -> Traffic {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut traffic = Traffic {
        span_micros: (u64::MAX, 0),
        ..Traffic::default()
    };
    let mut pending: Vec<SpanRecord> = Vec::new();
    for i in 0..traces {
        let mut trace_id = [0u8; 16];
        rng.fill(&mut trace_id);
        trace_id[0] |= 1;
        let t0 =
            (start_ms + i as u64 * spacing_ms) * 1_000_000 + rng.random_range(0..1_000) * 1_000;
        let payments_fails = i % 10 == 0;
        let fraud_fails = i % 7 == 0;
        let mut b = Builder {
            trace_id,
            next_id: 0,
            by_service: BTreeMap::new(),
        };
        let ms = 1_000_000u64;
        let root = b.span(
            "frontend",
            "GET /",
            SERVER,
            None,
            t0,
            400 * ms,
            false,
            vec![],
        );
        let cart = b.call("frontend", root, "cart", t0 + ms, 40 * ms, false);
        for k in 0..3 {
            b.call(
                "cart",
                cart,
                "recommendations",
                t0 + (3 + k) * ms,
                5 * ms,
                false,
            );
        }
        let checkout = b.call("frontend", root, "checkout", t0 + 50 * ms, 300 * ms, false);
        let payments = b.call(
            "checkout",
            checkout,
            "payments",
            t0 + 60 * ms,
            30 * ms,
            payments_fails,
        );
        b.span(
            "payments",
            "POST /score",
            CLIENT,
            Some(payments),
            t0 + 62 * ms,
            15 * ms,
            fraud_fails,
            vec![string_kv("peer.service", "fraud-api")],
        );
        let inventory = b.call(
            "checkout",
            checkout,
            "inventory",
            t0 + 100 * ms,
            20 * ms,
            false,
        );
        b.call(
            "inventory",
            inventory,
            "warehouse",
            t0 + 102 * ms,
            10 * ms,
            false,
        );
        b.span(
            "checkout",
            "INSERT orders",
            CLIENT,
            Some(checkout),
            t0 + 130 * ms,
            8 * ms,
            false,
            vec![
                string_kv("db.system", "postgresql"),
                string_kv("db.name", "orders"),
            ],
        );
        let produce = b.span(
            "checkout",
            "order-events publish",
            PRODUCER,
            Some(checkout),
            t0 + 140 * ms,
            3 * ms,
            false,
            vec![
                string_kv("messaging.system", "kafka"),
                string_kv("messaging.destination.name", "order-events"),
            ],
        );
        let consume = b.span(
            "notifications",
            "order-events process",
            CONSUMER,
            Some(produce),
            t0 + 160 * ms,
            50 * ms,
            false,
            vec![],
        );
        b.span(
            "notifications",
            "send mail",
            CLIENT,
            Some(consume),
            t0 + 165 * ms,
            40 * ms,
            false,
            vec![string_kv("server.address", "smtp.mail.internal")],
        );
        let starts = b
            .by_service
            .values()
            .flatten()
            .map(|s| s.start_time_unix_nano / 1000);
        for start in starts {
            traffic.spans += 1;
            traffic.span_micros.0 = traffic.span_micros.0.min(start);
            traffic.span_micros.1 = traffic.span_micros.1.max(start);
        }
        let id = TraceId::from_bytes(trace_id).expect("non-zero trace id");
        for (service, spans) in b.by_service {
            let resource = crate::otlp::resource_spans(service, spans);
            pending.extend(
                encode_trace(Encoding::OtlpProto, id, vec![resource]).expect("valid spans"),
            );
        }
        while pending.len() > 12 {
            let pick = rng.random_range(0..pending.len());
            traffic.records.push(pending.swap_remove(pick));
        }
        expect_trace(&mut traffic.expected, payments_fails, fraud_fails);
    }
    traffic.records.append(&mut pending);
    traffic
}

/// `traces` two-span traces `spacing_ms` apart from `start_ms`: a root
/// `frontend` CLIENT span answered by a `cart` SERVER span, one record per
/// trace, in order. Each makes one edge, `frontend → cart`. Cheap enough to
/// spread over days of event time.
pub fn single_calls(traces: u64, start_ms: u64, spacing_ms: u64) -> Traffic {
    let mut traffic = Traffic {
        span_micros: (
            start_ms * 1000,
            (start_ms + traces.saturating_sub(1) * spacing_ms) * 1000,
        ),
        ..Traffic::default()
    };
    for i in 0..traces {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&0x5ca1_ab1e_u64.to_be_bytes());
        trace_id[8..].copy_from_slice(&(i + 1).to_be_bytes());
        let mut b = Builder {
            trace_id,
            next_id: 0,
            by_service: BTreeMap::new(),
        };
        let start_ns = (start_ms + i * spacing_ms) * 1_000_000;
        let root = b.span(
            "frontend",
            "GET /cart",
            CLIENT,
            None,
            start_ns,
            5_000_000,
            false,
            vec![],
        );
        b.span(
            "cart",
            "serve cart",
            SERVER,
            Some(root),
            start_ns + 1_000_000,
            3_000_000,
            false,
            vec![],
        );
        let resources = b
            .by_service
            .into_iter()
            .map(|(service, spans)| crate::otlp::resource_spans(service, spans))
            .collect();
        let id = TraceId::from_bytes(trace_id).expect("non-zero trace id");
        traffic
            .records
            .extend(encode_trace(Encoding::OtlpProto, id, resources).expect("valid spans"));
        traffic.spans += 2;
    }
    add(&mut traffic.expected.calls, "frontend", "cart", traces);
    traffic
}

/// The edges one trace makes, written out from the topology.
fn expect_trace(expected: &mut Expected, payments_fails: bool, fraud_fails: bool) {
    let calls = &mut expected.calls;
    add(calls, "user", "frontend", 1);
    // Each outgoing call: client → callee. (The caller's server or consumer
    // span → its own client span is in one service and not a call to
    // itself, so it makes no edge.)
    for (from, to, n) in [
        ("frontend", "cart", 1),
        ("cart", "recommendations", 3),
        ("frontend", "checkout", 1),
        ("checkout", "payments", 1),
        ("payments", "fraud-api", 1),
        ("checkout", "inventory", 1),
        ("inventory", "warehouse", 1),
        ("checkout", "postgresql/orders", 1),
        ("checkout", "notifications", 1),
        ("notifications", "smtp.mail.internal", 1),
    ] {
        add(calls, from, to, n);
    }
    if payments_fails {
        add(&mut expected.errors, "checkout", "payments", 1);
    }
    if fraud_fails {
        // The failing span is payments' client span: the call to the
        // unanswered peer fails.
        add(&mut expected.errors, "payments", "fraud-api", 1);
    }
}

impl Traffic {
    /// The records as `(key, value, headers)` for [`crate::produce`].
    pub fn as_produce_input(&self) -> Vec<crate::TestRecord> {
        self.records
            .iter()
            .map(|r| {
                (
                    r.key.as_bytes().to_vec(),
                    r.value.clone(),
                    r.headers.to_vec(),
                )
            })
            .collect()
    }

    /// Total calls over every edge.
    pub fn total_calls(&self) -> u64 {
        self.expected.calls.values().sum()
    }
}

/// `records` with `attributes` string attributes (`attr.0`, `attr.1`, …)
/// and an int `http.response.status_code` added to every span, none of
/// which changes a dependency count. The topology's own spans carry
/// almost no attributes, where spans from real SDKs carry several, each
/// of which a reader validates and looks at; this gives the benchmarks
/// that shape (eight is the ingester benchmark's).
pub fn with_attributes(
    records: &[SpanRecord],
    attributes: usize,
) -> Result<Vec<SpanRecord>, prost::DecodeError> {
    records
        .iter()
        .map(|record| {
            let mut data = otlp::TracesData::decode(record.value.as_slice())?;
            let spans = data
                .resource_spans
                .iter_mut()
                .flat_map(|r| &mut r.scope_spans)
                .flat_map(|s| &mut s.spans);
            for (n, span) in spans.enumerate() {
                for a in 0..attributes {
                    let value = format!("value-{}", (n * 7 + a * 13) % 100);
                    span.attributes
                        .push(string_kv(&format!("attr.{a}"), &value));
                }
                span.attributes.push(otlp::KeyValue::new(
                    "http.response.status_code",
                    otlp::any_value::Value::IntValue(200),
                ));
            }
            Ok(SpanRecord {
                value: data.encode_to_vec(),
                ..record.clone()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_attributes_reach_every_span_and_nothing_else_changes() {
        let traffic = generate(2, 20, 1_000, 10);
        let attributed = with_attributes(&traffic.records, 3).unwrap();
        assert_eq!(attributed.len(), traffic.records.len());
        let mut spans = 0;
        for (before, after) in traffic.records.iter().zip(&attributed) {
            assert_eq!((&before.key, before.headers), (&after.key, after.headers));
            let mut after = otlp::TracesData::decode(after.value.as_slice()).unwrap();
            for span in after
                .resource_spans
                .iter_mut()
                .flat_map(|r| &mut r.scope_spans)
                .flat_map(|s| &mut s.spans)
            {
                spans += 1;
                let added = span.attributes.split_off(span.attributes.len() - 4);
                let keys: Vec<&str> = added.iter().map(|kv| kv.key.as_str()).collect();
                assert_eq!(
                    keys,
                    ["attr.0", "attr.1", "attr.2", "http.response.status_code"]
                );
            }
            // With the added ones taken off, the record is what it was.
            let before = otlp::TracesData::decode(before.value.as_slice()).unwrap();
            assert_eq!(after, before);
        }
        assert!(spans > 100, "{spans}");
    }

    #[test]
    fn counts_scale_with_traces_and_errors_follow_the_rates() {
        let traffic = generate(1, 70, 1_000, 10);
        assert_eq!(
            traffic.expected.calls[&("cart".into(), "recommendations".into())],
            210
        );
        assert_eq!(
            traffic.expected.calls[&("user".into(), "frontend".into())],
            70
        );
        assert_eq!(
            traffic.expected.errors[&("checkout".into(), "payments".into())],
            7
        );
        assert_eq!(
            traffic.expected.errors[&("payments".into(), "fraud-api".into())],
            10
        );
        // One record per service per trace.
        assert_eq!(traffic.records.len(), 70 * SERVICES.len());
        assert!(traffic.span_micros.0 >= 1_000_000);
        assert_eq!(traffic.spans, 70 * 22, "22 spans per trace");
    }
}
