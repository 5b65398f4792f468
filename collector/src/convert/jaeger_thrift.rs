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

use crate::convert::thrift_binary::{Reader, ThriftError, WireType, expect};

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
mod tests;
