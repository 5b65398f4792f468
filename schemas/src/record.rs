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
    fn new(trace_id: TraceId, encoding: Encoding, value: Vec<u8>) -> Self {
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
    match encoding {
        Encoding::OtlpProto | Encoding::OtlpJson => {
            let data = otlp::TracesData { resource_spans };
            let value = if encoding == Encoding::OtlpProto {
                data.encode_to_vec()
            } else {
                otlp_json::encode(&data)
            };
            Ok(vec![SpanRecord::new(trace_id, encoding, value)])
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
    let protobuf = |e: prost::DecodeError| DecodeError::Protobuf {
        encoding,
        reason: e.to_string(),
    };
    let otlp_spans = |data: otlp::TracesData| {
        let mut spans = Vec::new();
        for (i, rs) in data.resource_spans.iter().enumerate() {
            to_jaeger::convert_resource_spans(i, rs, &mut spans)
                .map_err(|source| DecodeError::Span { encoding, source })?;
        }
        Ok(spans)
    };
    match encoding {
        Encoding::OtlpProto => otlp_spans(otlp::TracesData::decode(value).map_err(protobuf)?),
        Encoding::OtlpJson => otlp_spans(
            otlp_json::decode(value)
                .map_err(|source| DecodeError::OtlpJson { encoding, source })?,
        ),
        Encoding::JaegerProto => Ok(vec![jaeger::Span::decode(value).map_err(protobuf)?]),
        Encoding::JaegerJson => jaeger_json::decode(value)
            .map(|span| vec![span])
            .map_err(|source| DecodeError::Json { encoding, source }),
    }
}

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
