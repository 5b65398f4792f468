use super::*;
use crate::convert::thrift_binary::write;

const STRING: u8 = 11;
const STRUCT: u8 = 12;
const LIST: u8 = 15;
const I64: u8 = 10;
const I32: u8 = 8;

/// A well-formed span struct's fields with `edit` applied; fields are
/// written in id order, `skip` leaves one out.
fn span_fields(out: &mut Vec<u8>, skip: i16) {
    let i64s: [(i16, i64); 4] = [(1, 0x55), (2, 0x11), (3, 0x77), (4, 0)];
    for (id, v) in i64s {
        if id != skip {
            write::field(out, I64, id);
            write::i64(out, v);
        }
    }
    if skip != 5 {
        write::field(out, STRING, 5);
        write::string(out, "op");
    }
    if skip != 7 {
        write::field(out, I32, 7);
        write::i32(out, 1);
    }
    for (id, v) in [(8i16, 1_700_000_000_123_456i64), (9, 1500)] {
        if id != skip {
            write::field(out, I64, id);
            write::i64(out, v);
        }
    }
}

fn batch_with(span_body: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    write::field(&mut out, STRUCT, 1);
    write::field(&mut out, STRING, 1);
    write::string(&mut out, "svc");
    write::stop(&mut out);
    write::field(&mut out, LIST, 2);
    write::list(&mut out, STRUCT, 1);
    span_body(&mut out);
    write::stop(&mut out);
    write::stop(&mut out);
    out
}

fn err(body: &[u8]) -> String {
    decode_batch(body).unwrap_err().to_string()
}

#[test]
fn decodes_a_minimal_batch() {
    let batch = decode_batch(&batch_with(|o| span_fields(o, 0))).unwrap();
    assert_eq!(batch.process.as_ref().unwrap().service_name, "svc");
    let span = &batch.spans[0];
    assert_eq!(span.trace_id[7], 0x11);
    assert_eq!(span.trace_id[15], 0x55);
    assert_eq!(span.span_id, 0x77i64.to_be_bytes());
    assert!(span.references.is_empty(), "parentSpanId 0 is a root");
    assert_eq!(span.start_time.unwrap().seconds, 1_700_000_000);
    assert_eq!(span.start_time.unwrap().nanos, 123_456_000);
    assert_eq!(span.duration.unwrap().nanos, 1_500_000);
    assert_eq!(span.flags, 1);
}

#[test]
fn parent_span_id_becomes_the_first_reference_once() {
    let body = batch_with(|o| {
        span_fields(o, 4);
        write::field(o, I64, 4);
        write::i64(o, 0x99);
        write::field(o, LIST, 6);
        write::list(o, STRUCT, 1);
        write::field(o, I32, 1);
        write::i32(o, 1);
        write::field(o, I64, 2);
        write::i64(o, 0x55);
        write::field(o, I64, 3);
        write::i64(o, 0x11);
        write::field(o, I64, 4);
        write::i64(o, 0x42);
        write::stop(o);
    });
    let span = &decode_batch(&body).unwrap().spans[0];
    assert_eq!(span.references.len(), 2);
    assert_eq!(span.references[0].span_id, 0x99i64.to_be_bytes());
    assert_eq!(
        span.references[0].ref_type,
        jaeger::SpanRefType::ChildOf as i32
    );
    assert_eq!(
        span.references[1].ref_type,
        jaeger::SpanRefType::FollowsFrom as i32
    );
}

#[test]
fn decodes_what_jaegers_java_client_sends() {
    // Captured from io.jaegertracing:jaeger-client 1.8.1's HttpSender
    // (dev/clients/java/src/JaegerSend.java, one trace of two spans).
    let body = include_bytes!("../../../testdata/jaeger-java-batch.thrift");
    let batch = decode_batch(body).unwrap();
    let process = batch.process.as_ref().unwrap();
    assert_eq!(process.service_name, "java-jaeger-client");
    assert!(process.tags.iter().any(|t| t.key == "hostname"));
    assert!(
        process
            .tags
            .iter()
            .any(|t| t.key == "deployment.environment")
    );
    let sent = include_str!("../../../testdata/jaeger-java-batch.jsonl");
    let sent: Vec<serde_json::Value> = sent
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(batch.spans.len(), sent.len());
    for (span, sent) in batch.spans.iter().zip(&sent) {
        let hex: String = span.trace_id.iter().map(|b| format!("{b:02x}")).collect();
        let expected = format!(
            "{}{}",
            sent["traceIdHigh"].as_str().unwrap(),
            sent["traceIdLow"].as_str().unwrap()
        );
        assert_eq!(hex, expected);
        assert_eq!(span.operation_name, sent["operationName"].as_str().unwrap());
        let start = span.start_time.unwrap();
        assert_eq!(
            start.seconds * 1_000_000 + i64::from(start.nanos) / 1000,
            sent["startMicros"].as_i64().unwrap()
        );
        let tags = sent["tags"].as_object().unwrap();
        assert_eq!(span.tags.len(), tags.len());
    }
}

#[test]
fn bad_input_names_the_field() {
    assert_eq!(err(&[]), "batch: truncated: needed 1 more bytes, 0 left");
    assert_eq!(err(&[0]), "batch.process: missing (required)");
    assert_eq!(
        err(&batch_with(|o| span_fields(o, 3))),
        "batch.spans[0].spanId: missing (required)"
    );
    assert_eq!(
        err(&batch_with(|o| span_fields(o, 5))),
        "batch.spans[0].operationName: missing (required)"
    );
    assert_eq!(
        err(&batch_with(|o| {
            span_fields(o, 1);
            write::field(o, STRING, 1);
            write::string(o, "x");
        })),
        "batch.spans[0].traceIdLow: expected i64, got string"
    );
    assert_eq!(
        err(&batch_with(|o| {
            span_fields(o, 1);
            write::field(o, I64, 1);
            write::i64(o, 0);
            write::field(o, I64, 2);
            write::i64(o, 0);
        })),
        "batch.spans[0].traceIdLow: trace id is all zero (traceIdHigh and traceIdLow)"
    );
    assert_eq!(
        err(&batch_with(|o| {
            span_fields(o, 3);
            write::field(o, I64, 3);
            write::i64(o, 0);
        })),
        "batch.spans[0].spanId: all-zero id is invalid"
    );
    assert_eq!(
        err(&batch_with(|o| {
            span_fields(o, 9);
            write::field(o, I64, 9);
            write::i64(o, -5);
        })),
        "batch.spans[0].duration: -5 is negative: the span would end before it starts"
    );
    assert_eq!(
        err(&batch_with(|o| {
            span_fields(o, 8);
            write::field(o, I64, 8);
            write::i64(o, -5);
        })),
        "batch.spans[0].startTime: -5 is before 1970"
    );
    assert_eq!(
        err(&batch_with(|o| {
            span_fields(o, 0);
            write::field(o, LIST, 10);
            write::list(o, STRUCT, 1);
            write::field(o, STRING, 1);
            write::string(o, "k");
            write::field(o, I32, 2);
            write::i32(o, 9);
            write::stop(o);
        })),
        "batch.spans[0].tags[0].vType: 9 is not a TagType (0 to 4)"
    );
    assert_eq!(
        err(&batch_with(|o| {
            span_fields(o, 0);
            write::field(o, LIST, 10);
            write::list(o, STRUCT, 1);
            write::field(o, I32, 2);
            write::i32(o, 0);
            write::stop(o);
        })),
        "batch.spans[0].tags[0].key: missing (required)"
    );
    assert_eq!(
        err(&batch_with(|o| {
            span_fields(o, 0);
            write::field(o, LIST, 11);
            write::list(o, I64, 1);
            write::i64(o, 1);
        })),
        "batch.spans[0].logs: expected a list of struct, got a list of i64"
    );
    // A list claiming more spans than the body could hold.
    let mut body = Vec::new();
    write::field(&mut body, LIST, 2);
    write::list(&mut body, STRUCT, i32::MAX);
    assert_eq!(
        err(&body),
        format!(
            "batch.spans: length {} cannot fit in the 0 bytes left",
            i32::MAX
        )
    );
    // Garbage after the batch.
    let mut body = batch_with(|o| span_fields(o, 0));
    body.push(1);
    assert_eq!(err(&body), "batch: 1 unexpected bytes after the end");
    // Truncated in the middle of a span.
    let body = batch_with(|o| span_fields(o, 0));
    let cut = &body[..body.len() - 12];
    assert!(err(cut).starts_with("batch.spans[0]"), "{}", err(cut));
}

#[test]
fn unknown_fields_are_skipped() {
    let body = batch_with(|o| {
        span_fields(o, 0);
        write::field(o, STRING, 99);
        write::string(o, "from a newer IDL");
    });
    assert_eq!(decode_batch(&body).unwrap().spans.len(), 1);
}
