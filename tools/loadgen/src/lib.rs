//! Trace generation for demos and load runs.
//!
//! Traces follow a small shop topology: a frontend calls checkout, which
//! calls payments and a database. Each span carries a handful of the
//! attributes real HTTP and database instrumentation sets.

use rand::Rng;
use spanway_schemas::proto::otlp::{self, any_value::Value as Any, span::SpanKind};

fn resource(service: &str, spans: Vec<otlp::Span>) -> otlp::ResourceSpans {
    otlp::ResourceSpans {
        resource: Some(otlp::Resource {
            attributes: vec![
                otlp::KeyValue::new("service.name", Any::StringValue(service.into())),
                otlp::KeyValue::new("service.version", Any::StringValue("1.4.2".into())),
                otlp::KeyValue::new("deployment.environment", Any::StringValue("demo".into())),
            ],
            ..Default::default()
        }),
        scope_spans: vec![otlp::ScopeSpans {
            scope: Some(otlp::InstrumentationScope {
                name: "spanway-loadgen".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                ..Default::default()
            }),
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

struct SpanSpec<'a> {
    id: [u8; 8],
    parent: Option<[u8; 8]>,
    name: &'a str,
    kind: SpanKind,
    start: u64,
    duration_ns: u64,
    attributes: Vec<otlp::KeyValue>,
    error: bool,
}

fn build(trace_id: [u8; 16], spec: SpanSpec<'_>) -> otlp::Span {
    otlp::Span {
        trace_id: trace_id.to_vec(),
        span_id: spec.id.to_vec(),
        parent_span_id: spec.parent.map(|p| p.to_vec()).unwrap_or_default(),
        name: spec.name.into(),
        kind: spec.kind as i32,
        flags: 1,
        start_time_unix_nano: spec.start,
        end_time_unix_nano: spec.start + spec.duration_ns,
        attributes: spec.attributes,
        status: spec.error.then(|| otlp::Status {
            code: otlp::status::StatusCode::Error as i32,
            message: "card declined".into(),
        }),
        ..Default::default()
    }
}

fn nonzero<const N: usize>(rng: &mut impl Rng) -> [u8; N] {
    loop {
        let bytes: [u8; N] = rng.random();
        if bytes.iter().any(|b| *b != 0) {
            return bytes;
        }
    }
}

/// One shop checkout trace starting at `start_ns`; returns its id and request.
pub fn checkout_trace(
    rng: &mut impl Rng,
    start_ns: u64,
) -> ([u8; 16], otlp::ExportTraceServiceRequest) {
    let trace: [u8; 16] = nonzero(rng);
    let ids: Vec<[u8; 8]> = (0..5).map(|_| nonzero(rng)).collect();
    let ms = 1_000_000u64;
    let error = rng.random_bool(0.1);
    let http = |method: &str, route: &str, status: i64| {
        vec![
            otlp::KeyValue::new("http.request.method", Any::StringValue(method.into())),
            otlp::KeyValue::new("http.route", Any::StringValue(route.into())),
            otlp::KeyValue::new("http.response.status_code", Any::IntValue(status)),
            otlp::KeyValue::new("url.scheme", Any::StringValue("http".into())),
            otlp::KeyValue::new("network.protocol.version", Any::StringValue("1.1".into())),
        ]
    };
    let status = if error { 502 } else { 200 };
    let frontend = vec![
        build(
            trace,
            SpanSpec {
                id: ids[0],
                parent: None,
                name: "GET /checkout",
                kind: SpanKind::Server,
                start: start_ns,
                duration_ns: 120 * ms,
                attributes: http("GET", "/checkout", status),
                error,
            },
        ),
        build(
            trace,
            SpanSpec {
                id: ids[1],
                parent: Some(ids[0]),
                name: "POST /orders",
                kind: SpanKind::Client,
                start: start_ns + 2 * ms,
                duration_ns: 110 * ms,
                attributes: [
                    http("POST", "/orders", status),
                    vec![otlp::KeyValue::new(
                        "peer.service",
                        Any::StringValue("checkout".into()),
                    )],
                ]
                .concat(),
                error,
            },
        ),
    ];
    let checkout = vec![
        build(
            trace,
            SpanSpec {
                id: ids[2],
                parent: Some(ids[1]),
                name: "POST /orders",
                kind: SpanKind::Server,
                start: start_ns + 3 * ms,
                duration_ns: 105 * ms,
                attributes: http("POST", "/orders", status),
                error,
            },
        ),
        build(
            trace,
            SpanSpec {
                id: ids[3],
                parent: Some(ids[2]),
                name: "INSERT orders",
                kind: SpanKind::Client,
                start: start_ns + 5 * ms,
                duration_ns: 8 * ms,
                attributes: vec![
                    otlp::KeyValue::new("db.system", Any::StringValue("postgresql".into())),
                    otlp::KeyValue::new("db.name", Any::StringValue("shop".into())),
                    otlp::KeyValue::new("db.operation", Any::StringValue("INSERT".into())),
                ],
                error: false,
            },
        ),
        build(
            trace,
            SpanSpec {
                id: ids[4],
                parent: Some(ids[2]),
                name: "charge card",
                kind: SpanKind::Internal,
                start: start_ns + 15 * ms,
                duration_ns: 80 * ms,
                attributes: vec![otlp::KeyValue::new(
                    "payment.amount",
                    Any::DoubleValue(42.5),
                )],
                error,
            },
        ),
    ];
    let request = otlp::ExportTraceServiceRequest {
        resource_spans: vec![
            resource("frontend", frontend),
            resource("checkout", checkout),
        ],
    };
    (trace, request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_links_up() {
        let (trace, request) = checkout_trace(&mut rand::rng(), 1_000_000_000);
        let spans: Vec<&otlp::Span> = request
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
            .collect();
        assert_eq!(spans.len(), 5);
        assert!(spans.iter().all(|s| s.trace_id == trace));
        let roots = spans.iter().filter(|s| s.parent_span_id.is_empty()).count();
        assert_eq!(roots, 1);
        for span in spans.iter().filter(|s| !s.parent_span_id.is_empty()) {
            assert!(
                spans.iter().any(|p| p.span_id == span.parent_span_id),
                "parent present"
            );
        }
    }
}
