use prost::Message as _;
use serde_json::{Value, json};

use super::{OtlpJsonError, decode, encode};
use crate::contract::Encoding;
use crate::proto::otlp;
use crate::record::decode_record;
use otlp::any_value::Value as Any;

/// A document as the OpenTelemetry Collector's Kafka exporter writes it
/// (`encoding: otlp_json`), with the liberties other writers take: ids in
/// upper case, 64-bit integers as numbers, enum names, `null`, unknown fields.
const COLLECTOR_DOCUMENT: &str = r#"{
  "resourceSpans": [
    {
      "resource": {
        "attributes": [
          {"key": "service.name", "value": {"stringValue": "frontend"}},
          {"key": "host.cpu.count", "value": {"intValue": 8}},
          {"key": "process.pid", "value": {"intValue": "4242"}}
        ],
        "droppedAttributesCount": 1,
        "entityRefs": [{"type": "service"}]
      },
      "scopeSpans": [
        {
          "scope": {
            "name": "io.opentelemetry.http",
            "version": "1.2.0",
            "attributes": [{"key": "scope.attr", "value": {"boolValue": true}}],
            "droppedAttributesCount": 2
          },
          "spans": [
            {
              "traceId": "5B8EFFF798038103D269B633813FC60C",
              "spanId": "EEE19B7EC3C1B174",
              "traceState": "vendor=x",
              "parentSpanId": "",
              "flags": 257,
              "name": "GET /checkout",
              "kind": 2,
              "startTimeUnixNano": "1767225600000000000",
              "endTimeUnixNano": "1767225600120500000",
              "attributes": [
                {"key": "http.request.method", "value": {"stringValue": "GET"}},
                {"key": "http.response.status_code", "value": {"intValue": "500"}},
                {"key": "retry", "value": {"boolValue": false}},
                {"key": "load", "value": {"doubleValue": 0.25}},
                {"key": "payload", "value": {"bytesValue": "3q2+7w=="}},
                {"key": "tags", "value": {"arrayValue": {"values": [
                  {"stringValue": "a"}, {"intValue": -3}, {"doubleValue": 1.5}, {}
                ]}}},
                {"key": "user", "value": {"kvlistValue": {"values": [
                  {"key": "id", "value": {"intValue": "-7"}},
                  {"key": "vip", "value": {"boolValue": true}}
                ]}}},
                {"key": "no.value"},
                {"key": "empty.value", "value": {}}
              ],
              "droppedAttributesCount": 3,
              "events": [
                {
                  "timeUnixNano": "1767225600100000000",
                  "name": "exception",
                  "attributes": [{"key": "exception.type", "value": {"stringValue": "Timeout"}}],
                  "droppedAttributesCount": 1
                }
              ],
              "droppedEventsCount": 4,
              "links": [
                {
                  "traceId": "0af7651916cd43dd8448eb211c80319c",
                  "spanId": "B7AD6B7169203331",
                  "traceState": "rojo=00f067aa0ba902b7",
                  "attributes": [{"key": "link.reason", "value": {"stringValue": "batch"}}],
                  "droppedAttributesCount": 1,
                  "flags": 1
                }
              ],
              "droppedLinksCount": 5,
              "status": {"code": 2, "message": "payment timed out"},
              "someFutureField": {"ignored": true}
            },
            {
              "traceId": "5b8efff798038103d269b633813fc60c",
              "spanId": "0102040810204080",
              "parentSpanId": "EEE19B7EC3C1B174",
              "traceState": null,
              "flags": 1,
              "name": "POST /pay",
              "kind": "SPAN_KIND_CLIENT",
              "startTimeUnixNano": 1767225600001000000,
              "endTimeUnixNano": "1767225600101000000",
              "status": {}
            }
          ],
          "schemaUrl": "https://opentelemetry.io/schemas/1.24.0"
        },
        {
          "scope": {"name": "manual"},
          "spans": [
            {
              "traceId": "5b8efff798038103d269b633813fc60c",
              "spanId": "1112131415161718",
              "parentSpanId": "eee19b7ec3c1b174",
              "name": "render",
              "kind": 1,
              "startTimeUnixNano": "1767225600110000000",
              "endTimeUnixNano": "1767225600115000000",
              "status": {"code": "STATUS_CODE_OK"}
            }
          ]
        }
      ],
      "schemaUrl": "https://opentelemetry.io/schemas/1.21.0"
    },
    {
      "resource": {
        "attributes": [{"key": "service.name", "value": {"stringValue": "payments"}}]
      },
      "scopeSpans": [
        {
          "scope": {},
          "spans": [
            {
              "traceId": "5b8efff798038103d269b633813fc60c",
              "spanId": "A1A2A3A4A5A6A7A8",
              "parentSpanId": "0102040810204080",
              "flags": 1,
              "name": "pay",
              "kind": 2,
              "startTimeUnixNano": "1767225600002000000",
              "endTimeUnixNano": "1767225600099000000",
              "status": {"code": 1}
            }
          ]
        }
      ]
    }
  ]
}"#;

fn any(value: Any) -> otlp::AnyValue {
    otlp::AnyValue { value: Some(value) }
}

fn kv(key: &str, value: Any) -> otlp::KeyValue {
    otlp::KeyValue {
        key: key.into(),
        value: Some(any(value)),
    }
}

fn id(text: &str) -> Vec<u8> {
    hex::decode(text).unwrap()
}

/// What [`COLLECTOR_DOCUMENT`] holds, built by hand.
fn expected() -> otlp::TracesData {
    let trace = id("5b8efff798038103d269b633813fc60c");
    let start = 1_767_225_600_000_000_000_u64;
    let checkout = otlp::Span {
        trace_id: trace.clone(),
        span_id: id("eee19b7ec3c1b174"),
        trace_state: "vendor=x".into(),
        parent_span_id: Vec::new(),
        flags: 257,
        name: "GET /checkout".into(),
        kind: otlp::span::SpanKind::Server as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 120_500_000,
        attributes: vec![
            kv("http.request.method", Any::StringValue("GET".into())),
            kv("http.response.status_code", Any::IntValue(500)),
            kv("retry", Any::BoolValue(false)),
            kv("load", Any::DoubleValue(0.25)),
            kv("payload", Any::BytesValue(vec![0xde, 0xad, 0xbe, 0xef])),
            kv(
                "tags",
                Any::ArrayValue(otlp::ArrayValue {
                    values: vec![
                        any(Any::StringValue("a".into())),
                        any(Any::IntValue(-3)),
                        any(Any::DoubleValue(1.5)),
                        otlp::AnyValue { value: None },
                    ],
                }),
            ),
            kv(
                "user",
                Any::KvlistValue(otlp::KeyValueList {
                    values: vec![kv("id", Any::IntValue(-7)), kv("vip", Any::BoolValue(true))],
                }),
            ),
            otlp::KeyValue {
                key: "no.value".into(),
                value: None,
            },
            otlp::KeyValue {
                key: "empty.value".into(),
                value: Some(otlp::AnyValue { value: None }),
            },
        ],
        dropped_attributes_count: 3,
        events: vec![otlp::span::Event {
            time_unix_nano: start + 100_000_000,
            name: "exception".into(),
            attributes: vec![kv("exception.type", Any::StringValue("Timeout".into()))],
            dropped_attributes_count: 1,
        }],
        dropped_events_count: 4,
        links: vec![otlp::span::Link {
            trace_id: id("0af7651916cd43dd8448eb211c80319c"),
            span_id: id("b7ad6b7169203331"),
            trace_state: "rojo=00f067aa0ba902b7".into(),
            attributes: vec![kv("link.reason", Any::StringValue("batch".into()))],
            dropped_attributes_count: 1,
            flags: 1,
        }],
        dropped_links_count: 5,
        status: Some(otlp::Status {
            message: "payment timed out".into(),
            code: otlp::status::StatusCode::Error as i32,
        }),
    };
    let pay_client = otlp::Span {
        trace_id: trace.clone(),
        span_id: id("0102040810204080"),
        parent_span_id: id("eee19b7ec3c1b174"),
        flags: 1,
        name: "POST /pay".into(),
        kind: otlp::span::SpanKind::Client as i32,
        start_time_unix_nano: start + 1_000_000,
        end_time_unix_nano: start + 101_000_000,
        status: Some(otlp::Status::default()),
        ..Default::default()
    };
    let render = otlp::Span {
        trace_id: trace.clone(),
        span_id: id("1112131415161718"),
        parent_span_id: id("eee19b7ec3c1b174"),
        name: "render".into(),
        kind: otlp::span::SpanKind::Internal as i32,
        start_time_unix_nano: start + 110_000_000,
        end_time_unix_nano: start + 115_000_000,
        status: Some(otlp::Status {
            message: String::new(),
            code: otlp::status::StatusCode::Ok as i32,
        }),
        ..Default::default()
    };
    let pay_server = otlp::Span {
        trace_id: trace,
        span_id: id("a1a2a3a4a5a6a7a8"),
        parent_span_id: id("0102040810204080"),
        flags: 1,
        name: "pay".into(),
        kind: otlp::span::SpanKind::Server as i32,
        start_time_unix_nano: start + 2_000_000,
        end_time_unix_nano: start + 99_000_000,
        status: Some(otlp::Status {
            message: String::new(),
            code: otlp::status::StatusCode::Ok as i32,
        }),
        ..Default::default()
    };
    otlp::TracesData {
        resource_spans: vec![
            otlp::ResourceSpans {
                resource: Some(otlp::Resource {
                    attributes: vec![
                        kv("service.name", Any::StringValue("frontend".into())),
                        kv("host.cpu.count", Any::IntValue(8)),
                        kv("process.pid", Any::IntValue(4242)),
                    ],
                    dropped_attributes_count: 1,
                }),
                scope_spans: vec![
                    otlp::ScopeSpans {
                        scope: Some(otlp::InstrumentationScope {
                            name: "io.opentelemetry.http".into(),
                            version: "1.2.0".into(),
                            attributes: vec![kv("scope.attr", Any::BoolValue(true))],
                            dropped_attributes_count: 2,
                        }),
                        spans: vec![checkout, pay_client],
                        schema_url: "https://opentelemetry.io/schemas/1.24.0".into(),
                    },
                    otlp::ScopeSpans {
                        scope: Some(otlp::InstrumentationScope {
                            name: "manual".into(),
                            ..Default::default()
                        }),
                        spans: vec![render],
                        schema_url: String::new(),
                    },
                ],
                schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
            },
            otlp::ResourceSpans {
                resource: Some(otlp::Resource {
                    attributes: vec![kv("service.name", Any::StringValue("payments".into()))],
                    dropped_attributes_count: 0,
                }),
                scope_spans: vec![otlp::ScopeSpans {
                    scope: Some(otlp::InstrumentationScope::default()),
                    spans: vec![pay_server],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            },
        ],
    }
}

/// Renames every object key from lowerCamelCase to snake_case.
fn to_snake_case(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, v)| {
                    let mut snake = String::new();
                    for c in key.chars() {
                        if c.is_ascii_uppercase() {
                            snake.push('_');
                            snake.push(c.to_ascii_lowercase());
                        } else {
                            snake.push(c);
                        }
                    }
                    (snake, to_snake_case(v))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(to_snake_case).collect()),
        other => other,
    }
}

fn error(doc: &Value) -> String {
    decode(doc.to_string().as_bytes()).unwrap_err().to_string()
}

/// One span at `resourceSpans[0].scopeSpans[0].spans[0]`.
fn one_span(span: Value) -> Value {
    json!({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
}

#[test]
fn decodes_every_field_of_a_collector_document() {
    assert_eq!(decode(COLLECTOR_DOCUMENT.as_bytes()).unwrap(), expected());
}

#[test]
fn accepts_snake_case_names() {
    let camel: Value = serde_json::from_slice(&encode(&expected())).unwrap();
    let snake = to_snake_case(camel).to_string();
    for name in [
        "\"resource_spans\"",
        "\"scope_spans\"",
        "\"schema_url\"",
        "\"trace_id\"",
        "\"span_id\"",
        "\"parent_span_id\"",
        "\"trace_state\"",
        "\"start_time_unix_nano\"",
        "\"end_time_unix_nano\"",
        "\"time_unix_nano\"",
        "\"dropped_attributes_count\"",
        "\"dropped_events_count\"",
        "\"dropped_links_count\"",
        "\"string_value\"",
        "\"bool_value\"",
        "\"int_value\"",
        "\"double_value\"",
        "\"bytes_value\"",
        "\"array_value\"",
        "\"kvlist_value\"",
    ] {
        assert!(snake.contains(name), "{name} missing from {snake}");
    }
    assert!(!snake.contains("Id\""), "{snake}");
    assert_eq!(decode(snake.as_bytes()).unwrap(), expected());
}

#[test]
fn encode_then_decode_gives_the_original_message() {
    let original = expected();
    let text = encode(&original);
    assert_eq!(decode(&text).unwrap(), original);
    assert_eq!(encode(&decode(&text).unwrap()), text, "encoding is stable");
    let empty = otlp::TracesData::default();
    assert_eq!(encode(&empty), b"{}");
    assert_eq!(decode(&encode(&empty)).unwrap(), empty);
}

#[test]
fn encodes_the_canonical_form() {
    let v: Value = serde_json::from_slice(&encode(&expected())).unwrap();
    let spans = &v["resourceSpans"][0]["scopeSpans"][0]["spans"];
    let checkout = &spans[0];
    assert_eq!(checkout["traceId"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(checkout["spanId"], "eee19b7ec3c1b174");
    assert_eq!(checkout.get("parentSpanId"), None, "empty id omitted");
    assert_eq!(checkout["kind"], 2);
    assert_eq!(checkout["flags"], 257);
    assert_eq!(checkout["startTimeUnixNano"], "1767225600000000000");
    assert_eq!(
        checkout["status"],
        json!({"message": "payment timed out", "code": 2})
    );
    assert_eq!(
        checkout["attributes"][1]["value"],
        json!({"intValue": "500"})
    );
    assert_eq!(
        checkout["attributes"][2]["value"],
        json!({"boolValue": false})
    );
    assert_eq!(
        checkout["attributes"][3]["value"],
        json!({"doubleValue": 0.25})
    );
    assert_eq!(
        checkout["attributes"][4]["value"],
        json!({"bytesValue": "3q2+7w=="})
    );
    assert_eq!(checkout["attributes"][7], json!({"key": "no.value"}));
    assert_eq!(
        checkout["attributes"][8],
        json!({"key": "empty.value", "value": {}})
    );
    assert_eq!(checkout["events"][0]["timeUnixNano"], "1767225600100000000");
    assert_eq!(checkout["links"][0]["spanId"], "b7ad6b7169203331");
    assert_eq!(spans[1]["status"], json!({}));
    assert_eq!(spans[1].get("traceState"), None);
    assert_eq!(spans[1].get("droppedAttributesCount"), None);
    assert_eq!(v["resourceSpans"][1]["scopeSpans"][0]["scope"], json!({}));
    // Field order follows the .proto declarations.
    let text = String::from_utf8(encode(&expected())).unwrap();
    assert!(text.starts_with(r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"frontend"}}"#), "{text}");
    assert!(text.contains(r#""traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","traceState":"vendor=x","flags":257,"name":"GET /checkout","kind":2,"startTimeUnixNano":"#), "{text}");
}

#[test]
fn special_doubles_and_lenient_scalars() {
    let doc = one_span(json!({
        "attributes": [
            {"key": "nan", "value": {"doubleValue": "NaN"}},
            {"key": "inf", "value": {"doubleValue": "Infinity"}},
            {"key": "-inf", "value": {"doubleValue": "-Infinity"}},
            {"key": "text", "value": {"doubleValue": "2.5"}},
            {"key": "whole", "value": {"doubleValue": 3}},
            {"key": "exp", "value": {"intValue": 1e3}},
            {"key": "url", "value": {"bytesValue": "3q2-7w"}},
            {"key": "max", "value": {"intValue": "9223372036854775807"}}
        ],
        "startTimeUnixNano": 18446744073709551615_u64,
        "status": {"code": "STATUS_CODE_ERROR"}
    }));
    let data = decode(doc.to_string().as_bytes()).unwrap();
    let span = &data.resource_spans[0].scope_spans[0].spans[0];
    let value = |i: usize| span.attributes[i].value.clone().unwrap().value.unwrap();
    assert!(matches!(value(0), Any::DoubleValue(d) if d.is_nan()));
    assert_eq!(value(1), Any::DoubleValue(f64::INFINITY));
    assert_eq!(value(2), Any::DoubleValue(f64::NEG_INFINITY));
    assert_eq!(value(3), Any::DoubleValue(2.5));
    assert_eq!(value(4), Any::DoubleValue(3.0));
    assert_eq!(value(5), Any::IntValue(1000));
    assert_eq!(value(6), Any::BytesValue(vec![0xde, 0xad, 0xbe, 0xef]));
    assert_eq!(value(7), Any::IntValue(i64::MAX));
    assert_eq!(span.start_time_unix_nano, u64::MAX);
    assert_eq!(span.status.as_ref().unwrap().code, 2);

    let v: Value = serde_json::from_slice(&encode(&data)).unwrap();
    let attributes = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"];
    assert_eq!(attributes[0]["value"]["doubleValue"], "NaN");
    assert_eq!(attributes[1]["value"]["doubleValue"], "Infinity");
    assert_eq!(attributes[2]["value"]["doubleValue"], "-Infinity");
    assert_eq!(attributes[6]["value"]["bytesValue"], "3q2+7w==");
}

#[test]
fn json_and_protobuf_decode_to_the_same_jaeger_spans() {
    let from_json = decode_record(Encoding::OtlpJson, COLLECTOR_DOCUMENT.as_bytes()).unwrap();
    let from_proto = decode_record(Encoding::OtlpProto, &expected().encode_to_vec()).unwrap();
    assert_eq!(from_json.len(), 4);
    assert_eq!(from_json, from_proto);
    let from_encoded = decode_record(Encoding::OtlpJson, &encode(&expected())).unwrap();
    assert_eq!(from_encoded, from_proto);
}

#[test]
fn errors_name_the_path() {
    // A bad hex id, deep in the document.
    let doc = json!({"resourceSpans": [{"scopeSpans": [
        {"spans": []},
        {"spans": [{}, {}, {"traceId": "xyz"}]}
    ]}]});
    assert_eq!(
        error(&doc),
        r#"resourceSpans[0].scopeSpans[1].spans[2].traceId: "xyz" is not hexadecimal"#
    );
    assert_eq!(
        error(&one_span(json!({"spanId": "abc"}))),
        r#"resourceSpans[0].scopeSpans[0].spans[0].spanId: "abc" is not hexadecimal (odd number of digits)"#
    );
    assert_eq!(
        error(&one_span(json!({"spanId": "7u3v95gDgQM="}))),
        r#"resourceSpans[0].scopeSpans[0].spans[0].spanId: "7u3v95gDgQM=" is not hexadecimal (OTLP/JSON ids are hex, not base64)"#
    );
    // The snake_case name the document used is the one reported.
    let doc = json!({"resource_spans": [{"scope_spans": [{"spans": [{"parent_span_id": 5}]}]}]});
    assert_eq!(
        error(&doc),
        "resource_spans[0].scope_spans[0].spans[0].parent_span_id: expected a hex string, got 5"
    );
    // A span that is not an object.
    let doc = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{}, "oops"]}]}]});
    assert_eq!(
        error(&doc),
        r#"resourceSpans[0].scopeSpans[0].spans[1]: expected an object, got "oops""#
    );
    // An intValue that is no integer.
    let doc = one_span(json!({"attributes": [
        {"key": "ok", "value": {"intValue": "1"}},
        {"key": "bad", "value": {"arrayValue": {"values": [{"intValue": "abc"}]}}}
    ]}));
    assert_eq!(
        error(&doc),
        r#"resourceSpans[0].scopeSpans[0].spans[0].attributes[1].value.arrayValue.values[0].intValue: "abc" is not a 64-bit integer"#
    );
    assert_eq!(
        error(&one_span(json!({"startTimeUnixNano": "-1"}))),
        r#"resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano: "-1" is not an unsigned 64-bit integer"#
    );
    assert_eq!(
        error(&one_span(json!({"kind": "SERVER"}))),
        r#"resourceSpans[0].scopeSpans[0].spans[0].kind: "SERVER" is not a known enum name"#
    );
    assert_eq!(
        error(&one_span(
            json!({"events": [{"attributes": [{"key": "k", "value": {"stringValue": "a", "intValue": 1}}]}]})
        )),
        "resourceSpans[0].scopeSpans[0].spans[0].events[0].attributes[0].value: holds both stringValue and intValue; an AnyValue holds one value"
    );
    assert_eq!(
        error(&json!({"resourceSpans": {}})),
        "resourceSpans: expected an array, got {}"
    );
    assert_eq!(error(&json!([])), "TracesData: expected an object, got []");
    // Not JSON.
    assert!(matches!(
        decode(b"{\"resourceSpans\": [}"),
        Err(OtlpJsonError::Syntax(_))
    ));
}

#[test]
fn record_errors_carry_encoding_and_path() {
    // A well-formed hex id of the wrong length is reported by the conversion.
    let doc = one_span(json!({
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "0102"
    }));
    let err = decode_record(Encoding::OtlpJson, doc.to_string().as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "otlp_json: resource_spans[0].scope_spans[0].spans[0].span_id: expected 8 bytes, got 2"
    );
    let doc = one_span(json!({"traceId": "xyz"}));
    let err = decode_record(Encoding::OtlpJson, doc.to_string().as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"otlp_json: resourceSpans[0].scopeSpans[0].spans[0].traceId: "xyz" is not hexadecimal"#
    );
    assert!(matches!(
        err,
        crate::DecodeError::OtlpJson {
            encoding: Encoding::OtlpJson,
            source: OtlpJsonError::Field { ref path, .. },
        } if path == "resourceSpans[0].scopeSpans[0].spans[0].traceId"
    ));
    let err = decode_record(Encoding::OtlpJson, b"not json").unwrap_err();
    assert!(
        err.to_string().starts_with("otlp_json: invalid JSON: "),
        "{err}"
    );
}
