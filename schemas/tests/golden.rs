//! Golden records of the topic contract.
//!
//! Each vector in `testdata/` is a record (`<name>.value.bin`, key and headers
//! in `<name>.json`) together with what a reader must decode from it: the
//! spans as Jaeger `api_v2` JSON, and the partition the key maps to. Producers
//! in other languages can check their output against the same files.
//!
//! The test rebuilds every vector from the definitions below and compares
//! byte for byte, so an encoder change that alters the wire format fails
//! here. `UPDATE_GOLDEN=1 cargo test -p spanway-schemas --test golden`
//! rewrites the files after an intended change.

use std::path::PathBuf;

use serde_json::{Value, json};
use spanway_schemas::partition::murmur2_partition;
use spanway_schemas::proto::otlp::{self, any_value::Value as Any};
use spanway_schemas::{
    Encoding, TraceId, decode_record, encode_trace, jaeger_json, otlp_json, record_encoding,
};

const PARTITION_COUNTS: [u32; 3] = [1, 6, 12];

fn resource(service: &str) -> Option<otlp::Resource> {
    Some(otlp::Resource {
        attributes: vec![
            otlp::KeyValue::new("service.name", Any::StringValue(service.into())),
            otlp::KeyValue::new("deployment.environment", Any::StringValue("golden".into())),
        ],
        ..Default::default()
    })
}

fn hex16(text: &str) -> Vec<u8> {
    hex::decode(text).expect("hex literal")
}

/// A trace of three spans across two services: a server span with an error,
/// a client span calling out, and the downstream server span.
fn checkout_trace() -> (TraceId, Vec<otlp::ResourceSpans>) {
    let trace = hex16("5b8efff798038103d269b633813fc60c");
    let start = 1_767_225_600_000_000_000_u64; // 2026-01-01T00:00:00Z
    let frontend = otlp::ResourceSpans {
        resource: resource("frontend"),
        scope_spans: vec![otlp::ScopeSpans {
            scope: Some(otlp::InstrumentationScope {
                name: "io.opentelemetry.http".into(),
                version: "1.0.0".into(),
                ..Default::default()
            }),
            spans: vec![
                otlp::Span {
                    trace_id: trace.clone(),
                    span_id: hex16("eee19b7ec3c1b174"),
                    name: "GET /checkout".into(),
                    kind: otlp::span::SpanKind::Server as i32,
                    flags: 1,
                    start_time_unix_nano: start,
                    end_time_unix_nano: start + 120_500_000,
                    attributes: vec![
                        otlp::KeyValue::new("http.request.method", Any::StringValue("GET".into())),
                        otlp::KeyValue::new("http.response.status_code", Any::IntValue(500)),
                        otlp::KeyValue::new("retry", Any::BoolValue(false)),
                        otlp::KeyValue::new("load", Any::DoubleValue(0.25)),
                    ],
                    events: vec![otlp::span::Event {
                        time_unix_nano: start + 100_000_000,
                        name: "exception".into(),
                        attributes: vec![otlp::KeyValue::new(
                            "exception.type",
                            Any::StringValue("Timeout".into()),
                        )],
                        ..Default::default()
                    }],
                    status: Some(otlp::Status {
                        code: otlp::status::StatusCode::Error as i32,
                        message: "payment timed out".into(),
                    }),
                    ..Default::default()
                },
                otlp::Span {
                    trace_id: trace.clone(),
                    span_id: hex16("0102040810204080"),
                    parent_span_id: hex16("eee19b7ec3c1b174"),
                    name: "POST /pay".into(),
                    kind: otlp::span::SpanKind::Client as i32,
                    flags: 1,
                    start_time_unix_nano: start + 1_000_000,
                    end_time_unix_nano: start + 101_000_000,
                    attributes: vec![
                        otlp::KeyValue::new("peer.service", Any::StringValue("payments".into())),
                        otlp::KeyValue::new(
                            "payload",
                            Any::BytesValue(vec![0xde, 0xad, 0xbe, 0xef]),
                        ),
                    ],
                    ..Default::default()
                },
            ],
            ..Default::default()
        }],
        ..Default::default()
    };
    let payments = otlp::ResourceSpans {
        resource: resource("payments"),
        scope_spans: vec![otlp::ScopeSpans {
            spans: vec![otlp::Span {
                trace_id: trace.clone(),
                span_id: hex16("a1a2a3a4a5a6a7a8"),
                parent_span_id: hex16("0102040810204080"),
                name: "pay".into(),
                kind: otlp::span::SpanKind::Server as i32,
                flags: 1,
                start_time_unix_nano: start + 2_000_000,
                end_time_unix_nano: start + 99_000_000,
                status: Some(otlp::Status {
                    code: otlp::status::StatusCode::Ok as i32,
                    message: String::new(),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    (
        TraceId::from_slice(&trace).expect("valid id"),
        vec![frontend, payments],
    )
}

/// A trace id whose high half is zero: the key is still 32 characters,
/// unlike Jaeger's `%016x` key for such ids.
fn short_id_trace() -> (TraceId, Vec<otlp::ResourceSpans>) {
    let trace = hex16("0000000000000000000000000000abcd");
    let rs = otlp::ResourceSpans {
        resource: resource("batch-job"),
        scope_spans: vec![otlp::ScopeSpans {
            spans: vec![otlp::Span {
                trace_id: trace.clone(),
                span_id: hex16("00000000000000ef"),
                name: "nightly".into(),
                kind: otlp::span::SpanKind::Internal as i32,
                start_time_unix_nano: 1_767_225_600_000_001_000,
                end_time_unix_nano: 1_767_225_660_000_001_000,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    (TraceId::from_slice(&trace).expect("valid id"), vec![rs])
}

struct Vector {
    name: String,
    encoding: Encoding,
    key: String,
    headers: Vec<(String, String)>,
    value: Vec<u8>,
}

fn vectors() -> Vec<Vector> {
    let mut out = Vec::new();
    let sources = [
        ("checkout", checkout_trace()),
        ("short_id", short_id_trace()),
    ];
    for (label, (trace_id, spans)) in sources {
        for encoding in [
            Encoding::OtlpProto,
            Encoding::OtlpJson,
            Encoding::JaegerProto,
            Encoding::JaegerJson,
        ] {
            let records = encode_trace(encoding, trace_id, spans.clone()).expect("encodes");
            for (i, record) in records.into_iter().enumerate() {
                let name = if encoding.one_span_per_record() {
                    format!("{label}.{encoding}.{i}")
                } else {
                    format!("{label}.{encoding}")
                };
                out.push(Vector {
                    name,
                    encoding,
                    key: record.key,
                    headers: record
                        .headers
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                    value: record.value,
                });
            }
        }
    }
    out
}

fn manifest(vector: &Vector) -> Value {
    let spans = decode_record(vector.encoding, &vector.value).expect("decodes");
    let expected: Vec<Value> = spans
        .iter()
        .map(|s| serde_json::from_slice(&jaeger_json::encode(s)).expect("valid json"))
        .collect();
    let partitions: serde_json::Map<String, Value> = PARTITION_COUNTS
        .iter()
        .map(|&n| {
            (
                n.to_string(),
                json!(murmur2_partition(vector.key.as_bytes(), n)),
            )
        })
        .collect();
    json!({
        "encoding": vector.encoding.as_str(),
        "key": vector.key,
        "headers": vector.headers.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
        "value_file": format!("{}.value.bin", vector.name),
        "partition_for_partition_count": partitions,
        "spans": expected,
    })
}

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

#[test]
fn golden_vectors_match() {
    let dir = testdata();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let vectors = vectors();
    assert!(vectors.len() >= 6);
    for vector in &vectors {
        let value_path = dir.join(format!("{}.value.bin", vector.name));
        let manifest_path = dir.join(format!("{}.json", vector.name));
        let manifest = manifest(vector);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&value_path, &vector.value).unwrap();
            let text = serde_json::to_string_pretty(&manifest).unwrap() + "\n";
            std::fs::write(&manifest_path, text).unwrap();
            continue;
        }
        let stored = std::fs::read(&value_path)
            .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_GOLDEN=1", value_path.display()));
        assert_eq!(
            stored, vector.value,
            "{}: encoder output changed",
            vector.name
        );
        let stored: Value =
            serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
        assert_eq!(stored, manifest, "{}: manifest changed", vector.name);
    }
}

/// The OTLP/JSON vectors hold the same message as the protobuf ones: both
/// decode to the same spans, and the JSON is the canonical encoding of the
/// stored protobuf value.
#[test]
fn otlp_json_vectors_match_otlp_proto() {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        return; // the files are being rewritten concurrently by golden_vectors_match
    }
    let dir = testdata();
    for label in ["checkout", "short_id"] {
        let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
        let proto = read(&format!("{label}.otlp_proto.value.bin"));
        let json = read(&format!("{label}.otlp_json.value.bin"));
        assert_eq!(
            decode_record(Encoding::OtlpJson, &json).unwrap(),
            decode_record(Encoding::OtlpProto, &proto).unwrap(),
            "{label}"
        );
        let message = <otlp::TracesData as prost::Message>::decode(proto.as_slice()).unwrap();
        assert_eq!(otlp_json::decode(&json).unwrap(), message, "{label}");
        assert_eq!(otlp_json::encode(&message), json, "{label}");
    }
}

/// Reads the stored files only, as a consumer in another language would.
#[test]
fn stored_records_decode_to_their_expectation() {
    let dir = testdata();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        seen += 1;
        let manifest: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let header = manifest["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == "encoding")
            .map(|h| h["value"].as_str().unwrap().as_bytes().to_vec());
        let encoding = record_encoding(header.as_deref(), Encoding::OtlpProto).unwrap();
        let value = std::fs::read(dir.join(manifest["value_file"].as_str().unwrap())).unwrap();
        let spans = decode_record(encoding, &value).unwrap();
        let key = manifest["key"].as_str().unwrap();
        assert_eq!(key.len(), 32, "{}", path.display());
        assert_eq!(spans.len(), manifest["spans"].as_array().unwrap().len());
        for (span, expected) in spans.iter().zip(manifest["spans"].as_array().unwrap()) {
            assert_eq!(
                hex::encode(&span.trace_id),
                key,
                "key is the span's trace id"
            );
            let actual: Value = serde_json::from_slice(&jaeger_json::encode(span)).unwrap();
            assert_eq!(&actual, expected, "{}", path.display());
        }
        for (count, partition) in manifest["partition_for_partition_count"]
            .as_object()
            .unwrap()
        {
            let count: u32 = count.parse().unwrap();
            assert_eq!(
                u64::from(murmur2_partition(key.as_bytes(), count)),
                partition.as_u64().unwrap()
            );
        }
    }
    assert!(seen >= 6, "expected golden vectors in {}", dir.display());
}
