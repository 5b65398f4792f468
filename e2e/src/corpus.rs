//! A deterministic corpus of traces for volume tests, with what each span
//! must look like once stored.

use std::collections::{BTreeSet, HashMap};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use spanway_schemas::proto::otlp::{self, any_value::Value as Any};
use spanway_schemas::{Encoding, SpanRecord, TraceId, encode_trace};

/// Services spans are spread over.
pub const SERVICES: [&str; 5] = ["frontend", "checkout", "payments", "inventory", "shipping"];
/// 2026-02-01T00:00:00Z in nanoseconds: every span starts on that UTC day.
pub const DAY_START_NS: u64 = 1_769_904_000_000_000_000;
/// How long after [`DAY_START_NS`] traces start by default: most of the
/// day, leaving room for the longest trace to end before midnight.
pub const DEFAULT_WINDOW_NS: u64 = 80_000_000_000_000;
/// The longest window [`generate_over`] accepts: a trace of 10,000 spans
/// started at its end still ends on the same UTC day.
pub const MAX_WINDOW_NS: u64 = 86_000_000_000_000;

/// What a stored span document must say.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedSpan {
    /// Trace id, hex.
    pub trace_id: String,
    /// Parent span id, hex, if any.
    pub parent: Option<String>,
    /// Service name.
    pub service: String,
    /// Operation name.
    pub operation: String,
    /// Start, µs since the epoch.
    pub start_us: u64,
    /// Duration, µs.
    pub duration_us: u64,
}

/// The corpus: records to produce and the expectation per span id.
#[derive(Debug, Default)]
pub struct Corpus {
    /// Contract records (otlp_proto, one per trace).
    pub records: Vec<SpanRecord>,
    /// Expected document per span id (hex).
    pub spans: HashMap<String, ExpectedSpan>,
    /// Every (service, operation) pair.
    pub pairs: BTreeSet<(String, String)>,
}

/// `traces` traces of `spans_per_trace` spans each, from `seed`.
pub fn generate(seed: u64, traces: usize, spans_per_trace: usize) -> Corpus {
    generate_with_resource(seed, traces, spans_per_trace, &[])
}

/// [`generate`] with `resource` (key, string value) on every span's
/// resource beside `service.name`, as SDKs add their own name, language and
/// version. The spans are the same for the same seed either way.
pub fn generate_with_resource(
    seed: u64,
    traces: usize,
    spans_per_trace: usize,
    resource: &[(String, String)],
) -> Corpus {
    generate_over(seed, traces, spans_per_trace, resource, DEFAULT_WINDOW_NS)
}

/// [`generate_with_resource`] with traces starting in the first
/// `window_ns` of the day (at most [`MAX_WINDOW_NS`]) instead of most of
/// it: a shorter window puts as many spans into fewer hours, as a busier
/// hour of real traffic does, for what hourly indices cost.
pub fn generate_over(
    seed: u64,
    traces: usize,
    spans_per_trace: usize,
    resource: &[(String, String)],
    window_ns: u64,
) -> Corpus {
    let window_ns = window_ns.clamp(1, MAX_WINDOW_NS);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut corpus = Corpus::default();
    for _ in 0..traces {
        let mut trace_bytes = [0u8; 16];
        rng.fill(&mut trace_bytes);
        trace_bytes[0] |= 1;
        let trace_id = TraceId::from_bytes(trace_bytes).expect("non-zero");
        let trace_start = DAY_START_NS + rng.random_range(0..window_ns);
        let mut by_service: HashMap<&str, Vec<otlp::Span>> = HashMap::new();
        let mut ids: Vec<[u8; 8]> = Vec::new();
        for i in 0..spans_per_trace {
            let mut span_id = [0u8; 8];
            rng.fill(&mut span_id);
            span_id[7] |= 1;
            let parent = if i == 0 {
                None
            } else {
                Some(ids[rng.random_range(0..ids.len())])
            };
            ids.push(span_id);
            let service = SERVICES[rng.random_range(0..SERVICES.len())];
            let operation = format!("{service}-op-{}", rng.random_range(0..4));
            let start = trace_start + (i as u64) * 1_000_000 + rng.random_range(0..1_000u64);
            let duration_ns = rng.random_range(1_000..50_000_000u64);
            corpus.spans.insert(
                hex(&span_id),
                ExpectedSpan {
                    trace_id: trace_id.to_hex(),
                    parent: parent.map(|p| hex(&p)),
                    service: service.into(),
                    operation: operation.clone(),
                    start_us: start / 1000,
                    duration_us: duration_ns / 1000,
                },
            );
            corpus.pairs.insert((service.into(), operation.clone()));
            let attributes = (0..8)
                .map(|a| {
                    otlp::KeyValue::new(
                        format!("attr.{a}"),
                        Any::StringValue(format!("value-{}", rng.random_range(0..100))),
                    )
                })
                .chain([otlp::KeyValue::new(
                    "http.response.status_code",
                    Any::IntValue(200),
                )])
                .collect();
            by_service.entry(service).or_default().push(otlp::Span {
                trace_id: trace_bytes.to_vec(),
                span_id: span_id.to_vec(),
                parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
                name: operation,
                kind: otlp::span::SpanKind::Server as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: start + duration_ns,
                attributes,
                ..Default::default()
            });
        }
        let resource_spans = by_service
            .into_iter()
            .map(|(service, spans)| otlp::ResourceSpans {
                resource: Some(otlp::Resource {
                    attributes: std::iter::once(otlp::KeyValue::new(
                        "service.name",
                        Any::StringValue(service.into()),
                    ))
                    .chain(resource.iter().map(|(key, value)| {
                        otlp::KeyValue::new(key.clone(), Any::StringValue(value.clone()))
                    }))
                    .collect(),
                    ..Default::default()
                }),
                scope_spans: vec![otlp::ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        let records =
            encode_trace(Encoding::OtlpProto, trace_id, resource_spans).expect("valid spans");
        corpus.records.extend(records);
    }
    corpus
}

impl Corpus {
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

    /// Checks stored span documents against the expectation; returns the
    /// number checked. Panics on the first mismatch.
    pub fn check_documents(&self, documents: &[serde_json::Value]) -> usize {
        for doc in documents {
            let id = doc["spanID"].as_str().expect("spanID");
            let expected = self
                .spans
                .get(id)
                .unwrap_or_else(|| panic!("unexpected span {id}"));
            assert_eq!(doc["traceID"], expected.trace_id.as_str(), "{id}");
            assert_eq!(
                doc["process"]["serviceName"],
                expected.service.as_str(),
                "{id}"
            );
            assert_eq!(doc["operationName"], expected.operation.as_str(), "{id}");
            assert_eq!(doc["startTime"], expected.start_us, "{id}");
            assert_eq!(doc["duration"], expected.duration_us, "{id}");
            match &expected.parent {
                Some(parent) => assert_eq!(doc["references"][0]["spanID"], parent.as_str(), "{id}"),
                None => assert_eq!(doc["references"], serde_json::json!([]), "{id}"),
            }
        }
        documents.len()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    fn resources(corpus: &Corpus) -> Vec<Vec<(String, String)>> {
        let mut out = Vec::new();
        for record in &corpus.records {
            let data = otlp::TracesData::decode(&record.value[..]).expect("OTLP record");
            for resource_spans in data.resource_spans {
                let attributes = resource_spans.resource.expect("resource").attributes;
                out.push(
                    attributes
                        .into_iter()
                        .map(|kv| match kv.value.and_then(|v| v.value) {
                            Some(Any::StringValue(s)) => (kv.key, s),
                            other => panic!("{}: not a string: {other:?}", kv.key),
                        })
                        .collect(),
                );
            }
        }
        out
    }

    #[test]
    fn resource_attributes_follow_the_service_name_and_leave_the_spans_alone() {
        let extra = [
            ("telemetry.sdk.name".to_owned(), "opentelemetry".to_owned()),
            ("telemetry.sdk.language".to_owned(), "go".to_owned()),
        ];
        let plain = generate(3, 20, 4);
        let with = generate_with_resource(3, 20, 4, &extra);

        assert_eq!(plain.spans, with.spans, "same spans from the same seed");
        // A trace's resources come in no fixed order, so compare the
        // service names as sorted lists.
        let services = |resources: &[Vec<(String, String)>]| {
            let mut names: Vec<String> = resources.iter().map(|r| r[0].1.clone()).collect();
            names.sort();
            names
        };
        let (plain_resources, with_resources) = (resources(&plain), resources(&with));
        assert!(!plain_resources.is_empty());
        assert_eq!(services(&plain_resources), services(&with_resources));
        for resource in &plain_resources {
            assert_eq!(resource.len(), 1);
            assert_eq!(resource[0].0, "service.name");
        }
        for resource in &with_resources {
            assert_eq!(resource[0].0, "service.name", "service.name stays first");
            assert_eq!(resource[1..], extra[..]);
        }
    }

    #[test]
    fn a_short_window_puts_every_trace_in_its_first_hours() {
        const HOUR_NS: u64 = 3_600_000_000_000;
        let corpus = generate_over(5, 400, 3, &[], 2 * HOUR_NS);
        let hours: BTreeSet<u64> = corpus
            .spans
            .values()
            .map(|span| (span.start_us * 1000 - DAY_START_NS) / HOUR_NS)
            .collect();
        assert_eq!(hours, BTreeSet::from([0, 1]), "two hours, both used");

        let day = generate(5, 400, 3);
        let day_hours: BTreeSet<u64> = day
            .spans
            .values()
            .map(|span| (span.start_us * 1000 - DAY_START_NS) / HOUR_NS)
            .collect();
        assert!(
            day_hours.len() > 20,
            "the default spreads over the day: {day_hours:?}"
        );
        assert!(day_hours.iter().all(|hour| *hour < 24));
    }
}
