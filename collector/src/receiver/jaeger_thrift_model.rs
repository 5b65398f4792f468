//! `jaeger.thrift`'s `Batch` in Thrift's binary protocol → Jaeger's
//! `api_v2` model, which [`crate::convert::jaeger_model`] turns into OTLP.
//!
//! Going through the `api_v2` model is what Jaeger's own collector does with
//! Thrift spans, and it keeps one Jaeger→OTLP translation in the crate for
//! both the gRPC and the Thrift receivers. The Thrift-specific steps are:
//! - `traceIdHigh`/`traceIdLow` are the big-endian halves of the 16-byte id;
//!   a 64-bit trace id is a zero high half;
//! - `parentSpanId`, which old clients send instead of a reference, becomes
//!   a leading `CHILD_OF` reference unless a reference to that span exists;
//! - `startTime`, `duration` and log timestamps are microseconds;
//! - tag types map one to one (`LONG` → `INT64`, `DOUBLE` → `FLOAT64`).
//!
//! Errors name the field by its IDL name (`batch.spans[3].spanId`), since
//! that is what a Jaeger client's author can look up.

use spanway_schemas::prost_types::{Duration, Timestamp};
use spanway_schemas::proto::jaeger::api_v2 as jaeger;
use spanway_schemas::{SpanId, TraceId};

use crate::receiver::thrift_binary::{Reader, ThriftError, WireType, expect};

/// Preallocation cap for lists: a declared count is only a claim until the
/// elements have been read.
const PREALLOCATE: usize = 1024;

/// A body that is not a valid `Batch`, with the path of the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {source}")]
pub struct JaegerThriftError {
    /// E.g. `batch.spans[3].tags[0].vType`.
    pub path: String,
    /// What is wrong.
    pub source: ThriftError,
}

type Result<T> = std::result::Result<T, JaegerThriftError>;

fn at(path: &str) -> impl FnOnce(ThriftError) -> JaegerThriftError + '_ {
    move |source| JaegerThriftError {
        path: path.to_owned(),
        source,
    }
}

fn invalid(path: &str, reason: impl Into<String>) -> JaegerThriftError {
    JaegerThriftError {
        path: path.to_owned(),
        source: ThriftError::Invalid(reason.into()),
    }
}

fn required<T>(value: Option<T>, path: &str, field: &str) -> Result<T> {
    value.ok_or_else(|| JaegerThriftError {
        path: format!("{path}.{field}"),
        source: ThriftError::Missing,
    })
}

/// Decodes a whole body: one `Batch`, nothing after it.
pub fn decode_batch(bytes: &[u8]) -> Result<jaeger::Batch> {
    let mut r = Reader::new(bytes);
    let batch = batch(&mut r, "batch")?;
    r.finish().map_err(at("batch"))?;
    Ok(batch)
}

/// Reads the fields of a struct, handing each known one to `field` and
/// skipping the others; `path` names the struct in errors.
fn fields(
    r: &mut Reader<'_>,
    path: &str,
    mut field: impl FnMut(&mut Reader<'_>, WireType, i16) -> Result<bool>,
) -> Result<()> {
    r.enter().map_err(at(path))?;
    while let Some((ty, id)) = r.field_header().map_err(at(path))? {
        if !field(r, ty, id)? {
            r.skip(ty).map_err(at(path))?;
        }
    }
    r.leave();
    Ok(())
}

/// A `list<struct>` field: each element read by `element` with its path.
fn list<T>(
    r: &mut Reader<'_>,
    ty: WireType,
    path: &str,
    mut element: impl FnMut(&mut Reader<'_>, &str) -> Result<T>,
) -> Result<Vec<T>> {
    expect(ty, WireType::List).map_err(at(path))?;
    r.enter().map_err(at(path))?;
    let count = r.list_of(WireType::Struct).map_err(at(path))?;
    let mut out = Vec::with_capacity(count.min(PREALLOCATE));
    for i in 0..count {
        out.push(element(r, &format!("{path}[{i}]"))?);
    }
    r.leave();
    Ok(out)
}

fn i64_field(r: &mut Reader<'_>, ty: WireType, path: &str) -> Result<i64> {
    expect(ty, WireType::I64).map_err(at(path))?;
    r.i64().map_err(at(path))
}

fn i32_field(r: &mut Reader<'_>, ty: WireType, path: &str) -> Result<i32> {
    expect(ty, WireType::I32).map_err(at(path))?;
    r.i32().map_err(at(path))
}

fn string_field(r: &mut Reader<'_>, ty: WireType, path: &str) -> Result<String> {
    expect(ty, WireType::Binary).map_err(at(path))?;
    r.string().map_err(at(path))
}

fn batch(r: &mut Reader<'_>, path: &str) -> Result<jaeger::Batch> {
    let mut process = None;
    let mut spans = None;
    fields(r, path, |r, ty, id| {
        match id {
            1 => {
                let here = format!("{path}.process");
                expect(ty, WireType::Struct).map_err(at(&here))?;
                process = Some(process_struct(r, &here)?);
            }
            2 => spans = Some(list(r, ty, &format!("{path}.spans"), span)?),
            // seqNo and stats are the client's bookkeeping.
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(jaeger::Batch {
        process: Some(required(process, path, "process")?),
        spans: required(spans, path, "spans")?,
    })
}

fn process_struct(r: &mut Reader<'_>, path: &str) -> Result<jaeger::Process> {
    let mut service_name = None;
    let mut tags = Vec::new();
    fields(r, path, |r, ty, id| {
        match id {
            1 => service_name = Some(string_field(r, ty, &format!("{path}.serviceName"))?),
            2 => tags = list(r, ty, &format!("{path}.tags"), tag)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(jaeger::Process {
        service_name: required(service_name, path, "serviceName")?,
        tags,
    })
}

fn tag(r: &mut Reader<'_>, path: &str) -> Result<jaeger::KeyValue> {
    let mut key = None;
    let mut v_type = None;
    let mut kv = jaeger::KeyValue::default();
    fields(r, path, |r, ty, id| {
        match id {
            1 => key = Some(string_field(r, ty, &format!("{path}.key"))?),
            2 => v_type = Some(i32_field(r, ty, &format!("{path}.vType"))?),
            3 => kv.v_str = string_field(r, ty, &format!("{path}.vStr"))?,
            4 => {
                let here = format!("{path}.vDouble");
                expect(ty, WireType::Double).map_err(at(&here))?;
                kv.v_float64 = r.double().map_err(at(&here))?;
            }
            5 => {
                let here = format!("{path}.vBool");
                expect(ty, WireType::Bool).map_err(at(&here))?;
                kv.v_bool = r.bool().map_err(at(&here))?;
            }
            6 => kv.v_int64 = i64_field(r, ty, &format!("{path}.vLong"))?,
            7 => {
                let here = format!("{path}.vBinary");
                expect(ty, WireType::Binary).map_err(at(&here))?;
                kv.v_binary = r.binary().map_err(at(&here))?.to_vec();
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    kv.key = required(key, path, "key")?;
    // TagType: STRING, DOUBLE, BOOL, LONG, BINARY.
    let v_type = match required(v_type, path, "vType")? {
        0 => jaeger::ValueType::String,
        1 => jaeger::ValueType::Float64,
        2 => jaeger::ValueType::Bool,
        3 => jaeger::ValueType::Int64,
        4 => jaeger::ValueType::Binary,
        other => {
            return Err(invalid(
                &format!("{path}.vType"),
                format!("{other} is not a TagType (0 to 4)"),
            ));
        }
    };
    kv.v_type = v_type as i32;
    Ok(kv)
}

fn log(r: &mut Reader<'_>, path: &str) -> Result<jaeger::Log> {
    let mut timestamp = None;
    let mut log_fields = None;
    fields(r, path, |r, ty, id| {
        match id {
            1 => timestamp = Some(i64_field(r, ty, &format!("{path}.timestamp"))?),
            2 => log_fields = Some(list(r, ty, &format!("{path}.fields"), tag)?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    let micros = required(timestamp, path, "timestamp")?;
    Ok(jaeger::Log {
        timestamp: Some(timestamp_of(micros, &format!("{path}.timestamp"))?),
        fields: required(log_fields, path, "fields")?,
    })
}

/// `SpanRef` as read: the ids stay raw for the model conversion to check.
fn reference(r: &mut Reader<'_>, path: &str) -> Result<jaeger::SpanRef> {
    let (mut ref_type, mut low, mut high, mut span_id) = (None, None, None, None);
    fields(r, path, |r, ty, id| {
        match id {
            1 => ref_type = Some(i32_field(r, ty, &format!("{path}.refType"))?),
            2 => low = Some(i64_field(r, ty, &format!("{path}.traceIdLow"))?),
            3 => high = Some(i64_field(r, ty, &format!("{path}.traceIdHigh"))?),
            4 => span_id = Some(i64_field(r, ty, &format!("{path}.spanId"))?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    let ref_type = match required(ref_type, path, "refType")? {
        0 => jaeger::SpanRefType::ChildOf,
        1 => jaeger::SpanRefType::FollowsFrom,
        other => {
            return Err(invalid(
                &format!("{path}.refType"),
                format!("{other} is not a SpanRefType (0 or 1)"),
            ));
        }
    };
    let low = required(low, path, "traceIdLow")?;
    let high = required(high, path, "traceIdHigh")?;
    let span_id = required(span_id, path, "spanId")?;
    Ok(jaeger::SpanRef {
        trace_id: trace_bytes(high, low).to_vec(),
        span_id: span_id.to_be_bytes().to_vec(),
        ref_type: ref_type as i32,
    })
}

fn trace_bytes(high: i64, low: i64) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&high.to_be_bytes());
    bytes[8..].copy_from_slice(&low.to_be_bytes());
    bytes
}

fn span(r: &mut Reader<'_>, path: &str) -> Result<jaeger::Span> {
    let (mut low, mut high, mut span_id, mut parent) = (None, None, None, None);
    let (mut operation, mut flags, mut start, mut duration) = (None, None, None, None);
    let mut references = Vec::new();
    let mut tags = Vec::new();
    let mut logs = Vec::new();
    fields(r, path, |r, ty, id| {
        let here = |field: &str| format!("{path}.{field}");
        match id {
            1 => low = Some(i64_field(r, ty, &here("traceIdLow"))?),
            2 => high = Some(i64_field(r, ty, &here("traceIdHigh"))?),
            3 => span_id = Some(i64_field(r, ty, &here("spanId"))?),
            4 => parent = Some(i64_field(r, ty, &here("parentSpanId"))?),
            5 => operation = Some(string_field(r, ty, &here("operationName"))?),
            6 => references = list(r, ty, &here("references"), reference)?,
            7 => flags = Some(i32_field(r, ty, &here("flags"))?),
            8 => start = Some(i64_field(r, ty, &here("startTime"))?),
            9 => duration = Some(i64_field(r, ty, &here("duration"))?),
            10 => tags = list(r, ty, &here("tags"), tag)?,
            11 => logs = list(r, ty, &here("logs"), log)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    let low = required(low, path, "traceIdLow")?;
    let high = required(high, path, "traceIdHigh")?;
    let trace_id = TraceId::from_bytes(trace_bytes(high, low)).map_err(|_| {
        invalid(
            &format!("{path}.traceIdLow"),
            "trace id is all zero (traceIdHigh and traceIdLow)",
        )
    })?;
    let span_id = SpanId::from_u64(required(span_id, path, "spanId")? as u64)
        .map_err(|_| invalid(&format!("{path}.spanId"), "all-zero id is invalid"))?;
    let parent = required(parent, path, "parentSpanId")?;
    let operation_name = required(operation, path, "operationName")?;
    let flags = required(flags, path, "flags")?;
    let start = required(start, path, "startTime")?;
    let duration = required(duration, path, "duration")?;
    if duration < 0 {
        return Err(invalid(
            &format!("{path}.duration"),
            format!("{duration} is negative: the span would end before it starts"),
        ));
    }
    // Old clients name the parent only here; newer ones also as a reference.
    if parent != 0 {
        let parent_bytes = parent.to_be_bytes();
        let named = references
            .iter()
            .any(|r| r.span_id == parent_bytes && r.trace_id == trace_id.as_bytes());
        if !named {
            references.insert(
                0,
                jaeger::SpanRef {
                    trace_id: trace_id.as_bytes().to_vec(),
                    span_id: parent_bytes.to_vec(),
                    ref_type: jaeger::SpanRefType::ChildOf as i32,
                },
            );
        }
    }
    Ok(jaeger::Span {
        trace_id: trace_id.as_bytes().to_vec(),
        span_id: span_id.as_bytes().to_vec(),
        operation_name,
        references,
        flags: flags as u32,
        start_time: Some(timestamp_of(start, &format!("{path}.startTime"))?),
        duration: Some(Duration {
            seconds: duration / 1_000_000,
            nanos: ((duration % 1_000_000) * 1000) as i32,
        }),
        tags,
        logs,
        ..Default::default()
    })
}

/// Microseconds since the epoch; before 1970 is refused, as OTLP's unsigned
/// nanoseconds cannot hold it.
fn timestamp_of(micros: i64, path: &str) -> Result<Timestamp> {
    if micros < 0 {
        return Err(invalid(path, format!("{micros} is before 1970")));
    }
    Ok(Timestamp {
        seconds: micros / 1_000_000,
        nanos: ((micros % 1_000_000) * 1000) as i32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver::thrift_binary::write;

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
        let body = include_bytes!("../../testdata/jaeger-java-batch.thrift");
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
        let sent = include_str!("../../testdata/jaeger-java-batch.jsonl");
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
}
