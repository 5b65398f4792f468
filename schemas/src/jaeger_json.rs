//! `jaeger_json`: a Jaeger `api_v2.Span` in protobuf's JSON mapping, as
//! Jaeger's collector writes it with `--kafka.producer.encoding=json`.
//!
//! The mapping (gogo `jsonpb` with default options): camelCase field names,
//! ids as base64 of their big-endian bytes, enums by name with zero values
//! omitted (`CHILD_OF`, `STRING`), 64-bit integers as strings, timestamps in
//! RFC 3339 and durations as decimal seconds with an `s` suffix. Readers
//! accept what `jsonpb` accepts: original snake_case names too, numbers for
//! enums and 64-bit integers.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::proto::jaeger::api_v2 as jaeger;

/// A JSON document that is not a Jaeger span; names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not JSON at all.
    #[error("invalid JSON: {0}")]
    Syntax(String),
    /// A field with a value of the wrong shape.
    #[error("{field}: {reason}")]
    Field { field: String, reason: String },
}

fn bad(field: &str, reason: impl Into<String>) -> JsonError {
    JsonError::Field {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// Encodes one span.
pub fn encode(span: &jaeger::Span) -> Vec<u8> {
    let mut out = Map::new();
    put_bytes(&mut out, "traceId", &span.trace_id);
    put_bytes(&mut out, "spanId", &span.span_id);
    if !span.operation_name.is_empty() {
        out.insert("operationName".into(), json!(span.operation_name));
    }
    if !span.references.is_empty() {
        let refs = span.references.iter().map(|r| {
            let mut m = Map::new();
            put_bytes(&mut m, "traceId", &r.trace_id);
            put_bytes(&mut m, "spanId", &r.span_id);
            if r.ref_type == jaeger::SpanRefType::FollowsFrom as i32 {
                m.insert("refType".into(), json!("FOLLOWS_FROM"));
            }
            Value::Object(m)
        });
        out.insert("references".into(), Value::Array(refs.collect()));
    }
    if span.flags != 0 {
        out.insert("flags".into(), json!(span.flags));
    }
    if let Some(ts) = &span.start_time {
        out.insert("startTime".into(), json!(format_timestamp(ts)));
    }
    if let Some(d) = &span.duration {
        out.insert("duration".into(), json!(format_duration(d)));
    }
    if !span.tags.is_empty() {
        out.insert("tags".into(), encode_tags(&span.tags));
    }
    if !span.logs.is_empty() {
        let logs = span.logs.iter().map(|log| {
            let mut m = Map::new();
            if let Some(ts) = &log.timestamp {
                m.insert("timestamp".into(), json!(format_timestamp(ts)));
            }
            if !log.fields.is_empty() {
                m.insert("fields".into(), encode_tags(&log.fields));
            }
            Value::Object(m)
        });
        out.insert("logs".into(), Value::Array(logs.collect()));
    }
    if let Some(process) = &span.process {
        let mut m = Map::new();
        if !process.service_name.is_empty() {
            m.insert("serviceName".into(), json!(process.service_name));
        }
        if !process.tags.is_empty() {
            m.insert("tags".into(), encode_tags(&process.tags));
        }
        out.insert("process".into(), Value::Object(m));
    }
    if !span.process_id.is_empty() {
        out.insert("processId".into(), json!(span.process_id));
    }
    if !span.warnings.is_empty() {
        out.insert("warnings".into(), json!(span.warnings));
    }
    Value::Object(out).to_string().into_bytes()
}

fn put_bytes(out: &mut Map<String, Value>, key: &str, bytes: &[u8]) {
    if !bytes.is_empty() {
        out.insert(key.into(), json!(BASE64.encode(bytes)));
    }
}

fn encode_tags(tags: &[jaeger::KeyValue]) -> Value {
    use jaeger::ValueType;
    let items = tags.iter().map(|kv| {
        let mut m = Map::new();
        m.insert("key".into(), json!(kv.key));
        let v_type = ValueType::try_from(kv.v_type).unwrap_or(ValueType::String);
        if v_type != ValueType::String {
            m.insert("vType".into(), json!(v_type.as_str_name()));
        }
        if !kv.v_str.is_empty() {
            m.insert("vStr".into(), json!(kv.v_str));
        }
        if kv.v_bool {
            m.insert("vBool".into(), json!(true));
        }
        if kv.v_int64 != 0 {
            m.insert("vInt64".into(), json!(kv.v_int64.to_string()));
        }
        if kv.v_float64 != 0.0 {
            m.insert("vFloat64".into(), json!(kv.v_float64));
        }
        put_bytes(&mut m, "vBinary", &kv.v_binary);
        Value::Object(m)
    });
    Value::Array(items.collect())
}

fn format_timestamp(ts: &prost_types::Timestamp) -> String {
    let nanos = i128::from(ts.seconds) * 1_000_000_000 + i128::from(ts.nanos);
    match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => t.format(&Rfc3339).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

fn format_duration(d: &prost_types::Duration) -> String {
    let mut text = format!("{}.{:09}", d.seconds, d.nanos.unsigned_abs());
    while text.ends_with('0') {
        text.pop();
    }
    if text.ends_with('.') {
        text.pop();
    }
    text.push('s');
    text
}

/// Decodes one span.
pub fn decode(bytes: &[u8]) -> Result<jaeger::Span, JsonError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| JsonError::Syntax(e.to_string()))?;
    let obj = value
        .as_object()
        .ok_or_else(|| bad("span", "expected an object"))?;
    let mut span = jaeger::Span {
        trace_id: get_bytes(obj, "traceId", "trace_id")?,
        span_id: get_bytes(obj, "spanId", "span_id")?,
        operation_name: get_str(obj, "operationName", "operation_name")?,
        flags: get_u32(obj, "flags", "flags")?,
        start_time: get(obj, "startTime", "start_time")
            .map(|v| parse_timestamp("startTime", v))
            .transpose()?,
        duration: get(obj, "duration", "duration")
            .map(parse_duration)
            .transpose()?,
        process_id: get_str(obj, "processId", "process_id")?,
        ..Default::default()
    };
    for (i, r) in get_array(obj, "references", "references")?
        .iter()
        .enumerate()
    {
        let field = format!("references[{i}]");
        let r = r
            .as_object()
            .ok_or_else(|| bad(&field, "expected an object"))?;
        let ref_type = match get(r, "refType", "ref_type") {
            None => 0,
            Some(v) => parse_enum(&format!("{field}.refType"), v, |name| {
                jaeger::SpanRefType::from_str_name(name).map(|t| t as i32)
            })?,
        };
        span.references.push(jaeger::SpanRef {
            trace_id: get_bytes(r, "traceId", "trace_id")?,
            span_id: get_bytes(r, "spanId", "span_id")?,
            ref_type,
        });
    }
    span.tags = decode_tags("tags", get_array(obj, "tags", "tags")?)?;
    for (i, log) in get_array(obj, "logs", "logs")?.iter().enumerate() {
        let field = format!("logs[{i}]");
        let log = log
            .as_object()
            .ok_or_else(|| bad(&field, "expected an object"))?;
        span.logs.push(jaeger::Log {
            timestamp: get(log, "timestamp", "timestamp")
                .map(|v| parse_timestamp(&format!("{field}.timestamp"), v))
                .transpose()?,
            fields: decode_tags(
                &format!("{field}.fields"),
                get_array(log, "fields", "fields")?,
            )?,
        });
    }
    if let Some(process) = get(obj, "process", "process") {
        let process = process
            .as_object()
            .ok_or_else(|| bad("process", "expected an object"))?;
        span.process = Some(jaeger::Process {
            service_name: get_str(process, "serviceName", "service_name")?,
            tags: decode_tags("process.tags", get_array(process, "tags", "tags")?)?,
        });
    }
    if let Some(warnings) = get(obj, "warnings", "warnings") {
        let warnings = warnings
            .as_array()
            .ok_or_else(|| bad("warnings", "expected an array"))?;
        span.warnings = warnings
            .iter()
            .filter_map(|w| w.as_str().map(str::to_owned))
            .collect();
    }
    Ok(span)
}

fn decode_tags(field: &str, items: &[Value]) -> Result<Vec<jaeger::KeyValue>, JsonError> {
    let mut tags = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let here = format!("{field}[{i}]");
        let kv = item
            .as_object()
            .ok_or_else(|| bad(&here, "expected an object"))?;
        let v_type = match get(kv, "vType", "v_type") {
            None => 0,
            Some(v) => parse_enum(&format!("{here}.vType"), v, |name| {
                jaeger::ValueType::from_str_name(name).map(|t| t as i32)
            })?,
        };
        tags.push(jaeger::KeyValue {
            key: get_str(kv, "key", "key")?,
            v_type,
            v_str: get_str(kv, "vStr", "v_str")?,
            v_bool: match get(kv, "vBool", "v_bool") {
                None => false,
                Some(v) => v
                    .as_bool()
                    .ok_or_else(|| bad(&format!("{here}.vBool"), "expected a boolean"))?,
            },
            v_int64: match get(kv, "vInt64", "v_int64") {
                None => 0,
                Some(v) => parse_i64(v)
                    .ok_or_else(|| bad(&format!("{here}.vInt64"), "expected a 64-bit integer"))?,
            },
            v_float64: match get(kv, "vFloat64", "v_float64") {
                None => 0.0,
                Some(v) => parse_f64(v)
                    .ok_or_else(|| bad(&format!("{here}.vFloat64"), "expected a number"))?,
            },
            v_binary: get_bytes(kv, "vBinary", "v_binary")?,
        });
    }
    Ok(tags)
}

fn get<'a>(obj: &'a Map<String, Value>, camel: &str, snake: &str) -> Option<&'a Value> {
    obj.get(camel)
        .or_else(|| obj.get(snake))
        .filter(|v| !v.is_null())
}

fn get_str(obj: &Map<String, Value>, camel: &str, snake: &str) -> Result<String, JsonError> {
    match get(obj, camel, snake) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(bad(camel, "expected a string")),
    }
}

fn get_bytes(obj: &Map<String, Value>, camel: &str, snake: &str) -> Result<Vec<u8>, JsonError> {
    match get(obj, camel, snake) {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => BASE64
            .decode(s)
            .map_err(|e| bad(camel, format!("expected base64: {e}"))),
        Some(_) => Err(bad(camel, "expected a base64 string")),
    }
}

fn get_u32(obj: &Map<String, Value>, camel: &str, snake: &str) -> Result<u32, JsonError> {
    match get(obj, camel, snake) {
        None => Ok(0),
        Some(v) => parse_i64(v)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| bad(camel, "expected an unsigned 32-bit integer")),
    }
}

fn get_array<'a>(
    obj: &'a Map<String, Value>,
    camel: &str,
    snake: &str,
) -> Result<&'a [Value], JsonError> {
    match get(obj, camel, snake) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(bad(camel, "expected an array")),
    }
}

fn parse_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn parse_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn parse_enum(
    field: &str,
    v: &Value,
    by_name: impl Fn(&str) -> Option<i32>,
) -> Result<i32, JsonError> {
    match v {
        Value::String(name) => {
            by_name(name).ok_or_else(|| bad(field, format!("unknown value {name:?}")))
        }
        Value::Number(n) => n
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| bad(field, "expected an enum value")),
        _ => Err(bad(field, "expected an enum name")),
    }
}

fn parse_timestamp(field: &str, v: &Value) -> Result<prost_types::Timestamp, JsonError> {
    let text = v
        .as_str()
        .ok_or_else(|| bad(field, "expected an RFC 3339 string"))?;
    let t =
        OffsetDateTime::parse(text, &Rfc3339).map_err(|e| bad(field, format!("{text:?}: {e}")))?;
    let nanos = t.unix_timestamp_nanos();
    Ok(prost_types::Timestamp {
        seconds: nanos.div_euclid(1_000_000_000) as i64,
        nanos: nanos.rem_euclid(1_000_000_000) as i32,
    })
}

fn parse_duration(v: &Value) -> Result<prost_types::Duration, JsonError> {
    let text = v
        .as_str()
        .and_then(|s| s.strip_suffix('s'))
        .ok_or_else(|| bad("duration", "expected a string like \"0.000123s\""))?;
    let negative = text.starts_with('-');
    let (whole, frac) = text
        .trim_start_matches('-')
        .split_once('.')
        .unwrap_or((text.trim_start_matches('-'), ""));
    let invalid = || {
        bad(
            "duration",
            format!("{text:?} is not a decimal number of seconds"),
        )
    };
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let seconds: i64 = whole.parse().map_err(|_| invalid())?;
    let nanos: i32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| invalid())?
    };
    Ok(if negative {
        prost_types::Duration {
            seconds: -seconds,
            nanos: -nanos,
        }
    } else {
        prost_types::Duration { seconds, nanos }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span() -> jaeger::Span {
        jaeger::Span {
            trace_id: vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x2a],
            span_id: vec![0, 0, 0, 0, 0, 0, 0, 0x2b],
            operation_name: "op".into(),
            references: vec![jaeger::SpanRef {
                trace_id: vec![1; 16],
                span_id: vec![2; 8],
                ref_type: jaeger::SpanRefType::FollowsFrom as i32,
            }],
            flags: 1,
            start_time: Some(prost_types::Timestamp {
                seconds: 1_485_449_191,
                nanos: 639_875_000,
            }),
            duration: Some(prost_types::Duration {
                seconds: 0,
                nanos: 123_000,
            }),
            tags: vec![
                jaeger::KeyValue {
                    key: "s".into(),
                    v_str: "x".into(),
                    ..Default::default()
                },
                jaeger::KeyValue {
                    key: "i".into(),
                    v_type: 2,
                    v_int64: 9_007_199_254_740_993,
                    ..Default::default()
                },
            ],
            process: Some(jaeger::Process {
                service_name: "svc".into(),
                tags: vec![],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn encodes_like_jsonpb() {
        let text = String::from_utf8(encode(&span())).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["traceId"], "AAAAAAAAAAAAAAAAAAAAKg==");
        assert_eq!(v["spanId"], "AAAAAAAAACs=");
        assert_eq!(v["startTime"], "2017-01-26T16:46:31.639875Z");
        assert_eq!(v["duration"], "0.000123s");
        assert_eq!(v["references"][0]["refType"], "FOLLOWS_FROM");
        assert_eq!(v["tags"][0].get("vType"), None);
        assert_eq!(v["tags"][1]["vType"], "INT64");
        assert_eq!(v["tags"][1]["vInt64"], "9007199254740993");
        assert_eq!(v["process"]["serviceName"], "svc");
    }

    #[test]
    fn round_trips() {
        assert_eq!(decode(&encode(&span())).unwrap(), span());
    }

    #[test]
    fn accepts_snake_case_and_numbers() {
        let text = br#"{"trace_id":"AAAAAAAAAAAAAAAAAAAAKg==","span_id":"AAAAAAAAACs=",
            "duration":"1.5s","tags":[{"key":"n","v_type":2,"v_int64":7}]}"#;
        let s = decode(text).unwrap();
        assert_eq!(
            s.duration,
            Some(prost_types::Duration {
                seconds: 1,
                nanos: 500_000_000
            })
        );
        assert_eq!(s.tags[0].v_int64, 7);
    }

    #[test]
    fn errors_name_the_field() {
        let err = decode(br#"{"tags":[{"key":"n","vInt64":"x"}]}"#).unwrap_err();
        assert_eq!(err.to_string(), "tags[0].vInt64: expected a 64-bit integer");
        let err = decode(br#"{"startTime":"yesterday"}"#).unwrap_err();
        assert!(
            err.to_string().starts_with("startTime: \"yesterday\""),
            "{err}"
        );
        assert!(matches!(decode(b"{"), Err(JsonError::Syntax(_))));
    }
}
