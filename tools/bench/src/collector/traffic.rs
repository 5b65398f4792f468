//! The collector benchmark's traffic: OTLP export requests that look like
//! what an OpenTelemetry Collector agent forwards from a small shop.
//!
//! Each trace has 5 to 20 spans over several of eight services; each span
//! has about ten attributes of the kinds real HTTP, RPC, database and
//! in-process instrumentation sets, with values that vary (ids, paths,
//! row counts), so compression in Kafka does not see the same bytes over
//! and over. A request holds a fixed number of whole traces, grouped by
//! service as an agent's batch would be.
//!
//! Generating spans with a random generator costs more CPU than the
//! collector spends on them, and this process shares the machine with the
//! collector it measures. So a [`Pool`] generates a few dozen requests once,
//! before the clock starts, and every send clones one of them with new
//! trace ids and timestamps: cheap, and each span still appears on the
//! topic once, under its own (trace id, span id).

use prost::Message as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use spanway_schemas::proto::otlp::{self, any_value::Value as Any, span::SpanKind};

/// Fixed, so every run sends the same shapes.
const SEED: u64 = 0xc011_ec70;

/// The services traces pass through, with the routes their servers answer.
const SERVICES: [(&str, &[&str]); 8] = [
    ("frontend", &["/", "/product/{id}", "/cart", "/checkout"]),
    ("cart", &["/cart/items", "/cart/{user}"]),
    ("checkout", &["/orders", "/orders/{id}"]),
    ("payments", &["/charge", "/refund"]),
    ("inventory", &["/stock/{sku}", "/reserve"]),
    ("shipping", &["/quote", "/ship"]),
    ("recommendations", &["/recommend"]),
    ("auth", &["/token", "/session/{id}"]),
];

/// The database tables spans of each kind of query touch.
const TABLES: [&str; 6] = ["orders", "items", "users", "stock", "sessions", "payments"];

fn text(key: &str, value: impl Into<String>) -> otlp::KeyValue {
    otlp::KeyValue::new(key, Any::StringValue(value.into()))
}

fn int(key: &str, value: i64) -> otlp::KeyValue {
    otlp::KeyValue::new(key, Any::IntValue(value))
}

/// The resource of one service: the attributes an OpenTelemetry SDK sets.
fn resource(service: usize) -> otlp::Resource {
    let name = SERVICES[service].0;
    otlp::Resource {
        attributes: vec![
            text("service.name", name),
            text("service.version", "2.14.1"),
            text("service.namespace", "shop"),
            text(
                "service.instance.id",
                format!("{name}-7d9f8c6b5-x{service}k2"),
            ),
            text("host.name", format!("node-{}", service % 3)),
            text("deployment.environment.name", "production"),
            text("telemetry.sdk.name", "opentelemetry"),
            text("telemetry.sdk.language", "go"),
            text("telemetry.sdk.version", "1.32.0"),
        ],
        ..Default::default()
    }
}

/// What a span does, which decides its attributes.
#[derive(Debug, Clone, Copy)]
enum Role {
    HttpServer { service: usize },
    RpcClient { callee: usize },
    Database,
    Internal,
}

/// About ten attributes for a span of `role`.
fn attributes(rng: &mut StdRng, role: Role, error: bool) -> Vec<otlp::KeyValue> {
    match role {
        Role::HttpServer { service } => {
            let routes = SERVICES[service].1;
            let route = routes[rng.random_range(0..routes.len())];
            let path = route.replace("{id}", &rng.random_range(1..100_000u32).to_string());
            vec![
                text(
                    "http.request.method",
                    if rng.random_bool(0.7) { "GET" } else { "POST" },
                ),
                text("http.route", route),
                text("url.path", path),
                text("url.scheme", "http"),
                int("http.response.status_code", if error { 500 } else { 200 }),
                text("server.address", SERVICES[service].0),
                int("server.port", 8080),
                text("network.protocol.version", "1.1"),
                text(
                    "client.address",
                    format!(
                        "10.0.{}.{}",
                        rng.random_range(0..16),
                        rng.random_range(1..255)
                    ),
                ),
                text(
                    "user_agent.original",
                    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
                ),
            ]
        }
        Role::RpcClient { callee } => {
            let name = SERVICES[callee].0;
            vec![
                text("rpc.system", "grpc"),
                text(
                    "rpc.service",
                    format!("shop.{name}.v1.{}Service", capitalised(name)),
                ),
                text("rpc.method", "Handle"),
                int("rpc.grpc.status_code", if error { 14 } else { 0 }),
                text("server.address", name),
                int("server.port", 50051),
                text(
                    "network.peer.address",
                    format!("10.1.{}.{}", callee, rng.random_range(1..255)),
                ),
                text("network.transport", "tcp"),
                text("peer.service", name),
                int("thread.id", rng.random_range(1..64)),
            ]
        }
        Role::Database => {
            let table = TABLES[rng.random_range(0..TABLES.len())];
            let select = rng.random_bool(0.75);
            let operation = if select { "SELECT" } else { "UPDATE" };
            vec![
                text("db.system", "postgresql"),
                text("db.namespace", "shop"),
                text("db.operation.name", operation),
                text("db.collection.name", table),
                text(
                    "db.query.text",
                    if select {
                        format!("SELECT * FROM {table} WHERE id = $1 AND tenant = $2 LIMIT 50")
                    } else {
                        format!("UPDATE {table} SET state = $1, updated_at = now() WHERE id = $2")
                    },
                ),
                text("server.address", "postgres-primary"),
                int("server.port", 5432),
                text(
                    "network.peer.address",
                    format!("10.2.0.{}", rng.random_range(1..8)),
                ),
                int("db.response.returned_rows", rng.random_range(0..50)),
                text("peer.service", "postgres"),
            ]
        }
        Role::Internal => vec![
            text(
                "code.function.name",
                format!("handle_step_{}", rng.random_range(0..12)),
            ),
            text("code.file.path", "src/handlers/request.go"),
            int("code.line.number", rng.random_range(10..900)),
            int("thread.id", rng.random_range(1..64)),
            text("thread.name", "worker"),
            text("app.tenant", format!("tenant-{}", rng.random_range(0..40))),
            text("app.request_id", format!("{:016x}", rng.random::<u64>())),
            int("app.items", rng.random_range(1..20)),
            otlp::KeyValue::new("app.cache_hit", Any::BoolValue(rng.random_bool(0.6))),
            otlp::KeyValue::new("app.cost", Any::DoubleValue(rng.random_range(0.0..5.0))),
        ],
    }
}

fn capitalised(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

fn nonzero<const N: usize>(rng: &mut StdRng) -> [u8; N] {
    loop {
        let bytes: [u8; N] = rng.random();
        if bytes.iter().any(|b| *b != 0) {
            return bytes;
        }
    }
}

/// One span being built, before it is placed under its service.
#[derive(Debug)]
struct Planned {
    service: usize,
    span: otlp::Span,
}

/// One trace of `spans` spans (at least 2) starting at `start_ns`: a
/// frontend request, then calls down a tree. A call to another service is
/// two spans, a client span in the caller and a server span in the callee,
/// as instrumentation on both sides records it.
fn trace(rng: &mut StdRng, spans: usize, start_ns: u64) -> Vec<Planned> {
    let trace_id: [u8; 16] = nonzero(rng);
    let error = rng.random_bool(0.05);
    let mut planned: Vec<Planned> = Vec::with_capacity(spans);
    let push = |rng: &mut StdRng,
                planned: &mut Vec<Planned>,
                service: usize,
                parent: Option<usize>,
                name: String,
                kind: SpanKind,
                role: Role| {
        let (parent_id, parent_start, parent_end) = match parent {
            Some(index) => {
                let p = &planned[index].span;
                (
                    p.span_id.clone(),
                    p.start_time_unix_nano,
                    p.end_time_unix_nano,
                )
            }
            None => (Vec::new(), start_ns, start_ns + 400_000_000),
        };
        let window = parent_end.saturating_sub(parent_start).max(2_000);
        let start = parent_start + rng.random_range(0..window / 2);
        let duration = rng.random_range(window / 8..window / 2).max(1_000);
        let failed = error && rng.random_bool(0.3);
        let mut span = otlp::Span {
            trace_id: trace_id.to_vec(),
            span_id: nonzero::<8>(rng).to_vec(),
            parent_span_id: parent_id,
            name,
            kind: kind as i32,
            flags: 0x101,
            start_time_unix_nano: start,
            end_time_unix_nano: start + duration,
            attributes: attributes(rng, role, failed),
            ..Default::default()
        };
        if failed {
            span.status = Some(otlp::Status {
                code: otlp::status::StatusCode::Error as i32,
                message: "upstream unavailable".into(),
            });
            span.events.push(otlp::span::Event {
                time_unix_nano: start + duration / 2,
                name: "exception".into(),
                attributes: vec![
                    text("exception.type", "UnavailableError"),
                    text("exception.message", "connection refused"),
                ],
                ..Default::default()
            });
        }
        planned.push(Planned { service, span });
        planned.len() - 1
    };
    let root = push(
        rng,
        &mut planned,
        0,
        None,
        "GET /checkout".into(),
        SpanKind::Server,
        Role::HttpServer { service: 0 },
    );
    // Server spans calls can hang under, so a tree grows below them.
    let mut servers = vec![root];
    while planned.len() < spans {
        let parent = servers[rng.random_range(0..servers.len())];
        let service = planned[parent].service;
        let left = spans - planned.len();
        let pick = rng.random_range(0..10);
        if left >= 2 && pick < 4 {
            let callee = rng.random_range(1..SERVICES.len());
            let client = push(
                rng,
                &mut planned,
                service,
                Some(parent),
                format!("shop.{}/Handle", SERVICES[callee].0),
                SpanKind::Client,
                Role::RpcClient { callee },
            );
            let route = SERVICES[callee].1[0];
            let server = push(
                rng,
                &mut planned,
                callee,
                Some(client),
                format!("POST {route}"),
                SpanKind::Server,
                Role::HttpServer { service: callee },
            );
            servers.push(server);
        } else if pick < 7 {
            push(
                rng,
                &mut planned,
                service,
                Some(parent),
                "postgres query".into(),
                SpanKind::Client,
                Role::Database,
            );
        } else {
            push(
                rng,
                &mut planned,
                service,
                Some(parent),
                "process request".into(),
                SpanKind::Internal,
                Role::Internal,
            );
        }
    }
    planned
}

/// One ready request: the spans grouped by service, and how many there are.
#[derive(Debug, Clone)]
struct Template {
    resource_spans: Vec<otlp::ResourceSpans>,
    spans: usize,
}

/// Requests generated once and re-sent with fresh ids (see the module docs).
#[derive(Debug)]
pub struct Pool {
    templates: Vec<Template>,
    /// The start of the pool's timestamps, which each send moves to now.
    base_ns: u64,
}

/// Shape of the generated traffic.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Distinct requests generated.
    pub requests: usize,
    /// Whole traces per request.
    pub traces_per_request: usize,
    /// Fewest spans in a trace (at least 2).
    pub min_spans: usize,
    /// Most spans in a trace.
    pub max_spans: usize,
}

impl Pool {
    /// Generates the pool; deterministic for a given shape.
    pub fn generate(shape: Shape) -> Pool {
        let mut rng = StdRng::seed_from_u64(SEED);
        let base_ns = 1_764_000_000_000_000_000;
        let min = shape.min_spans.max(2);
        let max = shape.max_spans.max(min);
        let resources: Vec<otlp::Resource> = (0..SERVICES.len()).map(resource).collect();
        let scope = otlp::InstrumentationScope {
            name: "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp".into(),
            version: "0.57.0".into(),
            ..Default::default()
        };
        let templates = (0..shape.requests.max(1))
            .map(|_| {
                let mut by_service: Vec<Vec<otlp::Span>> = vec![Vec::new(); SERVICES.len()];
                let mut spans = 0;
                for t in 0..shape.traces_per_request.max(1) {
                    let start = base_ns + t as u64 * 3_000_000;
                    let count = rng.random_range(min..=max);
                    for planned in trace(&mut rng, count, start) {
                        by_service[planned.service].push(planned.span);
                        spans += 1;
                    }
                }
                let resource_spans = by_service
                    .into_iter()
                    .enumerate()
                    .filter(|(_, spans)| !spans.is_empty())
                    .map(|(service, spans)| otlp::ResourceSpans {
                        resource: Some(resources[service].clone()),
                        scope_spans: vec![otlp::ScopeSpans {
                            scope: Some(scope.clone()),
                            spans,
                            ..Default::default()
                        }],
                        ..Default::default()
                    })
                    .collect();
                Template {
                    resource_spans,
                    spans,
                }
            })
            .collect();
        Pool { templates, base_ns }
    }

    /// Spans in the request of sequence number `seq`.
    pub fn spans(&self, seq: u64) -> usize {
        self.template(seq).spans
    }

    /// Mean spans per request.
    pub fn mean_spans(&self) -> f64 {
        let total: usize = self.templates.iter().map(|t| t.spans).sum();
        total as f64 / self.templates.len() as f64
    }

    /// Mean size of an encoded request, bytes.
    pub fn mean_bytes(&self) -> f64 {
        let total: usize = (0..self.templates.len() as u64)
            .map(|seq| self.request(seq, self.base_ns).encoded_len())
            .sum();
        total as f64 / self.templates.len() as f64
    }

    fn template(&self, seq: u64) -> &Template {
        let index = (seq % self.templates.len() as u64) as usize;
        &self.templates[index]
    }

    /// The request of sequence number `seq`, timestamped as if its traces
    /// started at `now_ns`. Its trace ids are the template's with the last
    /// eight bytes XORed with the number of times the pool has wrapped, so
    /// no two sends share a trace id (the templates' ids are random, so a
    /// collision needs two random 64-bit values to differ by exactly that).
    pub fn request(&self, seq: u64, now_ns: u64) -> otlp::ExportTraceServiceRequest {
        let round = seq / self.templates.len() as u64;
        let shift = now_ns.saturating_sub(self.base_ns);
        let mut resource_spans = self.template(seq).resource_spans.clone();
        for span in resource_spans
            .iter_mut()
            .flat_map(|rs| &mut rs.scope_spans)
            .flat_map(|ss| &mut ss.spans)
        {
            if let Some(tail) = span.trace_id.get_mut(8..16) {
                let mixed =
                    u64::from_be_bytes(<[u8; 8]>::try_from(&*tail).unwrap_or([0; 8])) ^ round;
                tail.copy_from_slice(&mixed.to_be_bytes());
            }
            span.start_time_unix_nano += shift;
            span.end_time_unix_nano += shift;
            for event in &mut span.events {
                event.time_unix_nano += shift;
            }
        }
        otlp::ExportTraceServiceRequest { resource_spans }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn spans(request: &otlp::ExportTraceServiceRequest) -> Vec<&otlp::Span> {
        request
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
            .collect()
    }

    #[test]
    fn traces_have_the_asked_shape() {
        let pool = Pool::generate(Shape {
            requests: 4,
            traces_per_request: 10,
            min_spans: 5,
            max_spans: 20,
        });
        let request = pool.request(0, 2_000_000_000_000_000_000);
        let all = spans(&request);
        assert_eq!(all.len(), pool.spans(0));
        let mut per_trace = std::collections::HashMap::<&[u8], usize>::new();
        for span in &all {
            *per_trace.entry(&span.trace_id).or_default() += 1;
            assert_eq!(span.attributes.len(), 10);
            assert!(span.start_time_unix_nano >= 2_000_000_000_000_000_000);
            assert!(span.end_time_unix_nano > span.start_time_unix_nano);
        }
        assert_eq!(per_trace.len(), 10);
        assert!(per_trace.values().all(|n| (5..=20).contains(n)));
        assert!(request.resource_spans.len() >= 3, "several services");
        for rs in &request.resource_spans {
            let resource = rs.resource.as_ref().unwrap();
            assert_eq!(resource.attributes[0].key, "service.name");
        }
        // One root per trace.
        let roots = all.iter().filter(|s| s.parent_span_id.is_empty()).count();
        assert_eq!(roots, 10);
    }

    #[test]
    fn every_send_has_new_trace_ids() {
        let pool = Pool::generate(Shape {
            requests: 3,
            traces_per_request: 5,
            min_spans: 5,
            max_spans: 20,
        });
        let mut seen = HashSet::new();
        let mut total = 0;
        for seq in 0..9 {
            let request = pool.request(seq, 0);
            for span in spans(&request) {
                total += 1;
                let mut id = span.trace_id.clone();
                id.extend_from_slice(&span.span_id);
                assert!(seen.insert(id), "span sent twice");
            }
        }
        assert_eq!(total, (0..9).map(|s| pool.spans(s)).sum::<usize>());
    }
}
