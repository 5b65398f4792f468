//! Building and reading the records of the spans topic.

use prost::Message as _;

use crate::contract::{Encoding, SCHEMA_VERSION};
use crate::headers;
use crate::ids::TraceId;
use crate::jaeger_json::{self, JsonError};
use crate::otlp_json::{self, OtlpJsonError};
use crate::proto::jaeger::api_v2 as jaeger;
use crate::proto::otlp;
use crate::to_jaeger::{self, ConvertError};

/// One Kafka record as the contract defines it.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    /// The trace id in 32 lowercase hex characters.
    pub key: String,
    /// The encoded value.
    pub value: Vec<u8>,
    /// Header name/value pairs, in the order they are sent.
    pub headers: [(&'static str, &'static str); 2],
}

impl SpanRecord {
    /// A record of `trace_id` whose value is already in `encoding`.
    pub fn new(trace_id: TraceId, encoding: Encoding, value: Vec<u8>) -> Self {
        SpanRecord {
            key: trace_id.to_hex(),
            value,
            headers: [
                (headers::ENCODING, encoding.as_str()),
                (headers::SCHEMA_VERSION, SCHEMA_VERSION),
            ],
        }
    }
}

/// Why spans could not be encoded into records.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EncodeError {
    /// A span with an invalid id or reference.
    #[error(transparent)]
    Span(#[from] ConvertError),
    /// This encoding is read but not written. Every encoding can be written
    /// by this version; the variant stays for callers that match on it.
    #[error("encoding {0} cannot be produced; use otlp_proto, jaeger_proto or jaeger_json")]
    NotProducible(Encoding),
    /// One span alone encodes to more than the record limit.
    #[error(
        "span {span_id} of trace {trace_id} encodes to {size} bytes, over the record limit of {limit}"
    )]
    SpanTooLarge {
        trace_id: String,
        span_id: String,
        size: usize,
        limit: usize,
    },
}

/// [`encode_trace`], split at span boundaries so that no record value
/// exceeds `max_bytes`. Each piece is a valid record of the same trace
/// (same key); a span that alone exceeds the limit is an error naming it.
pub fn encode_trace_within(
    encoding: Encoding,
    trace_id: TraceId,
    resource_spans: Vec<otlp::ResourceSpans>,
    max_bytes: usize,
) -> Result<Vec<SpanRecord>, EncodeError> {
    let span_count = count_spans(&resource_spans);
    // Encoding borrows the spans: they are needed again only to split.
    let records = encode_trace_ref(encoding, trace_id, &resource_spans)?;
    if records.iter().all(|r| r.value.len() <= max_bytes) {
        return Ok(records);
    }
    let first_span_id = first_span_id(&resource_spans);
    if encoding.one_span_per_record() || span_count <= 1 {
        // Jaeger records hold one span each, so the oversized one is a span;
        // an OTLP record of one span is that span.
        let oversized = records
            .iter()
            .position(|r| r.value.len() > max_bytes)
            .unwrap_or(0);
        let span_id = if encoding.one_span_per_record() {
            all_span_ids(&resource_spans)
                .get(oversized)
                .cloned()
                .unwrap_or_default()
        } else {
            first_span_id
        };
        return Err(EncodeError::SpanTooLarge {
            trace_id: trace_id.to_hex(),
            span_id,
            size: records[oversized].value.len(),
            limit: max_bytes,
        });
    }
    let (left, right) = split_spans(resource_spans, span_count / 2);
    let mut out = encode_trace_within(encoding, trace_id, left, max_bytes)?;
    out.extend(encode_trace_within(encoding, trace_id, right, max_bytes)?);
    Ok(out)
}

fn count_spans(resource_spans: &[otlp::ResourceSpans]) -> usize {
    resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum()
}

fn all_span_ids(resource_spans: &[otlp::ResourceSpans]) -> Vec<String> {
    resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| hex::encode(&s.span_id))
        .collect()
}

fn first_span_id(resource_spans: &[otlp::ResourceSpans]) -> String {
    all_span_ids(resource_spans)
        .into_iter()
        .next()
        .unwrap_or_default()
}

/// Splits after the first `at` spans, keeping every span under a copy of
/// its resource and scope.
fn split_spans(
    resource_spans: Vec<otlp::ResourceSpans>,
    at: usize,
) -> (Vec<otlp::ResourceSpans>, Vec<otlp::ResourceSpans>) {
    let mut left = Vec::new();
    let mut right = Vec::new();
    let mut seen = 0usize;
    for rs in resource_spans {
        let mut left_rs = otlp::ResourceSpans {
            resource: rs.resource.clone(),
            scope_spans: Vec::new(),
            schema_url: rs.schema_url.clone(),
        };
        let mut right_rs = left_rs.clone();
        for ss in rs.scope_spans {
            let mut left_ss = otlp::ScopeSpans {
                scope: ss.scope.clone(),
                spans: Vec::new(),
                schema_url: ss.schema_url.clone(),
            };
            let mut right_ss = left_ss.clone();
            for span in ss.spans {
                if seen < at {
                    left_ss.spans.push(span);
                } else {
                    right_ss.spans.push(span);
                }
                seen += 1;
            }
            if !left_ss.spans.is_empty() {
                left_rs.scope_spans.push(left_ss);
            }
            if !right_ss.spans.is_empty() {
                right_rs.scope_spans.push(right_ss);
            }
        }
        if !left_rs.scope_spans.is_empty() {
            left.push(left_rs);
        }
        if !right_rs.scope_spans.is_empty() {
            right.push(right_rs);
        }
    }
    (left, right)
}

/// Encodes the spans of one trace as the contract requires.
///
/// `resource_spans` must hold only spans of `trace_id`; the caller groups
/// them. OTLP (protobuf or JSON) gives one record for the trace, the Jaeger
/// encodings one record per span.
pub fn encode_trace(
    encoding: Encoding,
    trace_id: TraceId,
    resource_spans: Vec<otlp::ResourceSpans>,
) -> Result<Vec<SpanRecord>, EncodeError> {
    encode_trace_ref(encoding, trace_id, &resource_spans)
}

fn encode_trace_ref(
    encoding: Encoding,
    trace_id: TraceId,
    resource_spans: &[otlp::ResourceSpans],
) -> Result<Vec<SpanRecord>, EncodeError> {
    match encoding {
        Encoding::OtlpProto => {
            // `TracesData` is field 1 repeated: each resource as a
            // length-delimited field, without copying the messages.
            let mut value = Vec::with_capacity(
                resource_spans
                    .iter()
                    .map(|rs| prost::encoding::message::encoded_len(1, rs))
                    .sum(),
            );
            for rs in resource_spans {
                prost::encoding::message::encode(1, rs, &mut value);
            }
            Ok(vec![SpanRecord::new(trace_id, encoding, value)])
        }
        Encoding::OtlpJson => {
            let data = otlp::TracesData {
                resource_spans: resource_spans.to_vec(),
            };
            Ok(vec![SpanRecord::new(
                trace_id,
                encoding,
                otlp_json::encode(&data),
            )])
        }
        Encoding::JaegerProto | Encoding::JaegerJson => {
            let mut spans = Vec::new();
            for (i, rs) in resource_spans.iter().enumerate() {
                to_jaeger::convert_resource_spans(i, rs, &mut spans)?;
            }
            Ok(spans
                .iter()
                .map(|span| {
                    let value = if encoding == Encoding::JaegerProto {
                        span.encode_to_vec()
                    } else {
                        jaeger_json::encode(span)
                    };
                    SpanRecord::new(trace_id, encoding, value)
                })
                .collect())
        }
    }
}

/// Why a record value could not be read. The message says what is wrong in
/// terms of the encoding's own fields.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// Bytes that are not a valid protobuf message of the expected type.
    #[error("{encoding}: malformed protobuf: {reason}")]
    Protobuf { encoding: Encoding, reason: String },
    /// JSON that is not a valid Jaeger span (`jaeger_json`).
    #[error("{encoding}: {source}")]
    Json {
        encoding: Encoding,
        source: JsonError,
    },
    /// JSON that is not a valid OTLP/JSON `TracesData` (`otlp_json`); the
    /// source names the field path, e.g.
    /// `otlp_json: resourceSpans[0].scopeSpans[0].spans[2].traceId: "xyz" is not hexadecimal`.
    #[error("{encoding}: {source}")]
    OtlpJson {
        encoding: Encoding,
        source: OtlpJsonError,
    },
    /// A span with an invalid id.
    #[error("{encoding}: {source}")]
    Span {
        encoding: Encoding,
        source: ConvertError,
    },
    /// An encoding this version cannot read. Every encoding can be read by
    /// this version; the variant stays for callers that match on it.
    #[error("{0}: decoding is not supported by this version")]
    Unsupported(Encoding),
    /// The `encoding` header named no known encoding.
    #[error("header encoding: {0:?} is not a known encoding")]
    UnknownHeader(String),
}

/// Picks the encoding of a record: its `encoding` header when present,
/// else `default` (for producers that set no headers).
pub fn record_encoding(header: Option<&[u8]>, default: Encoding) -> Result<Encoding, DecodeError> {
    match header {
        None => Ok(default),
        Some(raw) => {
            let text = std::str::from_utf8(raw).map_err(|_| {
                DecodeError::UnknownHeader(String::from_utf8_lossy(raw).into_owned())
            })?;
            text.parse()
                .map_err(|_| DecodeError::UnknownHeader(text.to_owned()))
        }
    }
}

/// Decodes a record value into Jaeger spans, each with its process embedded.
pub fn decode_record(encoding: Encoding, value: &[u8]) -> Result<Vec<jaeger::Span>, DecodeError> {
    let mut spans = Vec::new();
    for group in decode_record_grouped(encoding, value)? {
        spans.extend(group.spans.into_iter().map(|mut span| {
            span.process = Some(group.process.clone());
            span
        }));
    }
    Ok(spans)
}

/// Spans of one process: an OTLP resource's, or a Jaeger span's own.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessSpans {
    /// The process (service name and tags) every span here belongs to.
    pub process: jaeger::Process,
    /// The spans, without a process of their own.
    pub spans: Vec<jaeger::Span>,
}

/// Decodes a record value into Jaeger spans grouped by process, so that a
/// reader that writes each span out (the ingester) neither copies the
/// resource into every span nor the strings out of the decoded message.
pub fn decode_record_grouped(
    encoding: Encoding,
    value: &[u8],
) -> Result<Vec<ProcessSpans>, DecodeError> {
    let protobuf = |e: prost::DecodeError| DecodeError::Protobuf {
        encoding,
        reason: e.to_string(),
    };
    let otlp_spans = |data: otlp::TracesData| {
        let mut groups = Vec::with_capacity(data.resource_spans.len());
        for (i, rs) in data.resource_spans.into_iter().enumerate() {
            let mut spans = Vec::new();
            let process = to_jaeger::take_resource_spans(i, rs, &mut spans)
                .map_err(|source| DecodeError::Span { encoding, source })?;
            groups.push(ProcessSpans { process, spans });
        }
        Ok(groups)
    };
    let jaeger_span = |mut span: jaeger::Span| {
        vec![ProcessSpans {
            process: span.process.take().unwrap_or_default(),
            spans: vec![span],
        }]
    };
    match encoding {
        Encoding::OtlpProto => otlp_spans(otlp::TracesData::decode(value).map_err(protobuf)?),
        Encoding::OtlpJson => otlp_spans(
            otlp_json::decode(value)
                .map_err(|source| DecodeError::OtlpJson { encoding, source })?,
        ),
        Encoding::JaegerProto => Ok(jaeger_span(jaeger::Span::decode(value).map_err(protobuf)?)),
        Encoding::JaegerJson => jaeger_json::decode(value)
            .map(jaeger_span)
            .map_err(|source| DecodeError::Json { encoding, source }),
    }
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(trace_byte: u8, spans: u8) -> Vec<otlp::ResourceSpans> {
        vec![otlp::ResourceSpans {
            scope_spans: vec![otlp::ScopeSpans {
                spans: (1..=spans)
                    .map(|i| otlp::Span {
                        trace_id: vec![trace_byte; 16],
                        span_id: vec![i; 8],
                        name: format!("op{i}"),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }]
    }

    #[test]
    fn otlp_is_one_record_per_trace_jaeger_one_per_span() {
        let id = TraceId::from_bytes([7; 16]).unwrap();
        for encoding in [Encoding::OtlpProto, Encoding::OtlpJson] {
            let otlp_records = encode_trace(encoding, id, trace(7, 3)).unwrap();
            assert_eq!(otlp_records.len(), 1);
            assert_eq!(otlp_records[0].key, "07070707070707070707070707070707");
            assert_eq!(otlp_records[0].headers[0], ("encoding", encoding.as_str()));
            let decoded = decode_record(encoding, &otlp_records[0].value).unwrap();
            assert_eq!(decoded.len(), 3);
        }
        for encoding in [Encoding::JaegerProto, Encoding::JaegerJson] {
            let records = encode_trace(encoding, id, trace(7, 3)).unwrap();
            assert_eq!(records.len(), 3);
            let decoded = decode_record(encoding, &records[2].value).unwrap();
            assert_eq!(decoded[0].operation_name, "op3");
        }
    }

    #[test]
    fn every_encoding_decodes_to_the_same_spans() {
        let id = TraceId::from_bytes([7; 16]).unwrap();
        let from_otlp = decode_record(
            Encoding::OtlpProto,
            &encode_trace(Encoding::OtlpProto, id, trace(7, 2)).unwrap()[0].value,
        )
        .unwrap();
        for encoding in [
            Encoding::OtlpJson,
            Encoding::JaegerProto,
            Encoding::JaegerJson,
        ] {
            let spans: Vec<_> = encode_trace(encoding, id, trace(7, 2))
                .unwrap()
                .iter()
                .flat_map(|r| decode_record(encoding, &r.value).unwrap())
                .collect();
            assert_eq!(spans, from_otlp, "{encoding}");
        }
    }

    #[test]
    fn oversized_traces_split_at_span_boundaries() {
        let id = TraceId::from_bytes([7; 16]).unwrap();
        let mut spans = trace(7, 40);
        for span in &mut spans[0].scope_spans[0].spans {
            span.attributes = vec![otlp::KeyValue {
                key: "payload".into(),
                value: Some(otlp::AnyValue {
                    value: Some(otlp::any_value::Value::StringValue("x".repeat(1000))),
                }),
            }];
        }
        let whole = encode_trace(Encoding::OtlpProto, id, spans.clone()).unwrap();
        assert!(whole[0].value.len() > 10_000);
        let records = encode_trace_within(Encoding::OtlpProto, id, spans.clone(), 10_000).unwrap();
        assert!(records.len() >= 5, "{} records", records.len());
        assert!(
            records
                .iter()
                .all(|r| r.value.len() <= 10_000 && r.key == whole[0].key)
        );
        let decoded: Vec<_> = records
            .iter()
            .flat_map(|r| decode_record(Encoding::OtlpProto, &r.value).unwrap())
            .collect();
        let expected = decode_record(Encoding::OtlpProto, &whole[0].value).unwrap();
        assert_eq!(decoded, expected, "same spans, same order, nothing lost");

        let err = encode_trace_within(Encoding::OtlpProto, id, spans.clone(), 500).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "span 0101010101010101 of trace 07070707070707070707070707070707 encodes to"
            ),
            "{err}"
        );
        let err = encode_trace_within(Encoding::JaegerProto, id, spans, 500).unwrap_err();
        assert!(
            matches!(err, EncodeError::SpanTooLarge { limit: 500, .. }),
            "{err}"
        );
    }

    #[test]
    fn malformed_input_says_why() {
        let err = decode_record(Encoding::OtlpProto, &[0xff, 0xff, 0xff]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("otlp_proto: malformed protobuf"),
            "{err}"
        );
        let mut bad = trace(7, 1);
        bad[0].scope_spans[0].spans[0].span_id = vec![1, 2];
        let value = otlp::TracesData {
            resource_spans: bad,
        }
        .encode_to_vec();
        let err = decode_record(Encoding::OtlpProto, &value).unwrap_err();
        assert_eq!(
            err.to_string(),
            "otlp_proto: resource_spans[0].scope_spans[0].spans[0].span_id: expected 8 bytes, got 2"
        );
        let err = decode_record(Encoding::OtlpJson, b"{\"resourceSpans\":").unwrap_err();
        assert!(
            err.to_string().starts_with("otlp_json: invalid JSON: "),
            "{err}"
        );
        let err = decode_record(Encoding::OtlpJson, br#"{"resourceSpans":[7]}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "otlp_json: resourceSpans[0]: expected an object, got 7"
        );
    }

    #[test]
    fn header_selects_encoding_else_default() {
        assert_eq!(
            record_encoding(None, Encoding::JaegerProto).unwrap(),
            Encoding::JaegerProto
        );
        assert_eq!(
            record_encoding(Some(b"jaeger_json"), Encoding::OtlpProto).unwrap(),
            Encoding::JaegerJson
        );
        assert!(matches!(
            record_encoding(Some(b"avro"), Encoding::OtlpProto),
            Err(DecodeError::UnknownHeader(h)) if h == "avro"
        ));
    }
}
