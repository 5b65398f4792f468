//! decode(encode(x)) == x for every encoding on the topic, over random
//! traces: every attribute type nested, unicode and escapes in strings,
//! extreme numbers, events, links, status, optional ids. `otlp_proto` and
//! `otlp_json` give back the OTLP input itself; `jaeger_proto` and
//! `jaeger_json` give back the Jaeger spans the conversion makes of it.
//! Seeded, so a failure names the case that reproduces it.

use prost::Message as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::proto::jaeger::api_v2 as jaeger;
use crate::proto::otlp;
use crate::{Encoding, TraceId, decode_record, encode_trace, otlp_json, to_jaeger};

const CASES: u64 = 400;

fn text(rng: &mut StdRng) -> String {
    const PIECES: [&str; 12] = [
        "a", "Z", "0", " ", "\"", "\\", "/", "\n", "\u{1}", "é", "漢", "🦀",
    ];
    (0..rng.random_range(0..12))
        .map(|_| PIECES[rng.random_range(0..PIECES.len())])
        .collect()
}

fn bytes(rng: &mut StdRng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.random()).collect()
}

fn any_value(rng: &mut StdRng, depth: u32) -> otlp::AnyValue {
    use otlp::any_value::Value;
    let pick = rng.random_range(0..if depth == 0 { 5 } else { 7 });
    let value = match pick {
        0 => Value::StringValue(text(rng)),
        1 => Value::BoolValue(rng.random()),
        2 => Value::IntValue(match rng.random_range(0..4) {
            0 => i64::MIN,
            1 => i64::MAX,
            _ => rng.random(),
        }),
        3 => Value::DoubleValue(match rng.random_range(0..4) {
            0 => 0.1,
            1 => -1e300,
            2 => f64::MIN_POSITIVE,
            _ => rng.random::<f64>() * 1e6,
        }),
        4 => {
            let len = rng.random_range(0..20);
            Value::BytesValue(bytes(rng, len))
        }
        5 => Value::ArrayValue(otlp::ArrayValue {
            values: (0..rng.random_range(0..4))
                .map(|_| any_value(rng, depth - 1))
                .collect(),
        }),
        _ => Value::KvlistValue(otlp::KeyValueList {
            values: attributes(rng, depth - 1),
        }),
    };
    otlp::AnyValue { value: Some(value) }
}

fn attributes(rng: &mut StdRng, depth: u32) -> Vec<otlp::KeyValue> {
    (0..rng.random_range(0..5))
        .map(|i| otlp::KeyValue {
            key: format!("k{i}.{}", text(rng)),
            value: Some(any_value(rng, depth)),
        })
        .collect()
}

fn span_id(rng: &mut StdRng) -> Vec<u8> {
    let mut id = bytes(rng, 8);
    id[7] |= 1;
    id
}

fn span(rng: &mut StdRng, trace_id: &[u8]) -> otlp::Span {
    let start: u64 = rng.random_range(1..u64::MAX / 2);
    otlp::Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id(rng),
        trace_state: text(rng),
        parent_span_id: if rng.random() {
            span_id(rng)
        } else {
            Vec::new()
        },
        flags: rng.random_range(0..0x300),
        name: text(rng),
        kind: rng.random_range(0..6),
        start_time_unix_nano: start,
        end_time_unix_nano: start + rng.random_range(0..1_000_000_000_000),
        attributes: attributes(rng, 2),
        dropped_attributes_count: rng.random_range(0..3),
        events: (0..rng.random_range(0..3))
            .map(|_| otlp::span::Event {
                time_unix_nano: start + rng.random_range(0..1_000_000),
                name: text(rng),
                attributes: attributes(rng, 1),
                dropped_attributes_count: 0,
            })
            .collect(),
        dropped_events_count: rng.random_range(0..2),
        links: (0..rng.random_range(0..3))
            .map(|_| otlp::span::Link {
                trace_id: bytes(rng, 16),
                span_id: span_id(rng),
                trace_state: text(rng),
                attributes: attributes(rng, 1),
                dropped_attributes_count: 0,
                flags: rng.random_range(0..0x300),
            })
            .collect(),
        dropped_links_count: 0,
        status: rng.random::<bool>().then(|| otlp::Status {
            message: text(rng),
            code: rng.random_range(0..3),
        }),
    }
}

fn trace(rng: &mut StdRng) -> (TraceId, Vec<otlp::ResourceSpans>) {
    let mut id = [0u8; 16];
    rng.fill(&mut id);
    id[15] |= 1;
    let resources = (0..rng.random_range(1..3))
        .map(|r| {
            let mut resource_attributes = attributes(rng, 2);
            resource_attributes.push(otlp::KeyValue {
                key: "service.name".into(),
                value: Some(otlp::AnyValue {
                    value: Some(otlp::any_value::Value::StringValue(format!("svc-{r}"))),
                }),
            });
            otlp::ResourceSpans {
                resource: Some(otlp::Resource {
                    attributes: resource_attributes,
                    dropped_attributes_count: 0,
                }),
                scope_spans: (0..rng.random_range(1..3))
                    .map(|_| otlp::ScopeSpans {
                        scope: rng.random::<bool>().then(|| otlp::InstrumentationScope {
                            name: text(rng),
                            version: text(rng),
                            attributes: attributes(rng, 1),
                            dropped_attributes_count: 0,
                        }),
                        spans: (0..rng.random_range(1..4))
                            .map(|_| span(rng, &id))
                            .collect(),
                        schema_url: text(rng),
                    })
                    .collect(),
                schema_url: text(rng),
            }
        })
        .collect();
    let trace_id = TraceId::from_bytes(id).expect("not zero");
    (trace_id, resources)
}

fn cases() -> impl Iterator<Item = (u64, TraceId, Vec<otlp::ResourceSpans>)> {
    (0..CASES).map(|seed| {
        let (id, resources) = trace(&mut StdRng::seed_from_u64(seed));
        (seed, id, resources)
    })
}

/// Fails with the neighbourhood of the first difference: whole traces
/// are too long to read in an assertion message.
fn assert_same<T: std::fmt::Debug + PartialEq>(got: &T, want: &T, what: &str) {
    if got == want {
        return;
    }
    let (got, want) = (format!("{got:?}"), format!("{want:?}"));
    let at = got
        .char_indices()
        .zip(want.chars())
        .find(|((_, a), b)| a != b)
        .map_or(got.len().min(want.len()), |((i, _), _)| i);
    let window = |text: &str| {
        let start = text.floor_char_boundary(at.saturating_sub(120));
        let end = text.ceil_char_boundary((at + 120).min(text.len()));
        text[start..end].to_owned()
    };
    panic!(
        "{what}: first difference\n got: …{}…\nwant: …{}…",
        window(&got),
        window(&want)
    );
}

fn jaeger_spans(resources: &[otlp::ResourceSpans]) -> Vec<jaeger::Span> {
    let mut out = Vec::new();
    for (i, rs) in resources.iter().enumerate() {
        to_jaeger::convert_resource_spans(i, rs, &mut out).expect("generated spans convert");
    }
    out
}

#[test]
fn otlp_proto_gives_back_the_otlp_it_was_given() {
    for (seed, id, resources) in cases() {
        let records = encode_trace(Encoding::OtlpProto, id, resources.clone()).unwrap();
        let back: Vec<_> = records
            .iter()
            .flat_map(|r| {
                otlp::TracesData::decode(&r.value[..])
                    .unwrap()
                    .resource_spans
            })
            .collect();
        assert_same(&back, &resources, &format!("case {seed}"));
    }
}

#[test]
fn otlp_json_gives_back_the_otlp_it_was_given() {
    for (seed, id, resources) in cases() {
        let records = encode_trace(Encoding::OtlpJson, id, resources.clone()).unwrap();
        let back: Vec<_> = records
            .iter()
            .flat_map(|r| otlp_json::decode(&r.value).unwrap().resource_spans)
            .collect();
        assert_same(&back, &resources, &format!("case {seed}"));
    }
}

#[test]
fn jaeger_encodings_give_back_the_converted_spans() {
    for encoding in [Encoding::JaegerProto, Encoding::JaegerJson] {
        for (seed, id, resources) in cases() {
            let expected = jaeger_spans(&resources);
            let records = encode_trace(encoding, id, resources).unwrap();
            let back: Vec<_> = records
                .iter()
                .flat_map(|r| decode_record(encoding, &r.value).unwrap())
                .collect();
            assert_same(&back, &expected, &format!("{encoding:?} case {seed}"));
        }
    }
}
