//! `otlp_json`: `opentelemetry.proto.trace.v1.TracesData` in OTLP/JSON, as
//! the OpenTelemetry Collector's Kafka exporter writes it with
//! `encoding: otlp_json`.
//!
//! The mapping is protobuf's JSON mapping with the changes the OTLP
//! specification makes ("JSON Protobuf Encoding"): trace and span ids are
//! hex strings (either case; an empty string means no id) rather than
//! base64, and enums are integers. Names are lowerCamelCase, 64-bit integers
//! are strings, and `AnyValue` is an object holding one of `stringValue`,
//! `boolValue`, `intValue`, `doubleValue`, `bytesValue` (base64),
//! `arrayValue` or `kvlistValue`.
//!
//! [`decode`](fn@decode) accepts what a protobuf JSON reader must: the
//! original snake_case names too, numbers or strings for 64-bit integers, enum
//! names (`"SPAN_KIND_SERVER"`) as well as numbers, `"NaN"`/`"Infinity"`/
//! `"-Infinity"` for doubles, `null` for an absent field; unknown fields are
//! ignored. Ids of the wrong length are accepted here and rejected by the
//! conversion to Jaeger spans ([`crate::to_jaeger`]), like the protobuf form.
//!
//! [`encode`](fn@encode) writes the canonical form: camelCase names in the
//! order of the `.proto` declarations, lowercase hex ids, integer enums, 64-bit
//! integers as strings, and no fields holding their default value.

mod decode;
mod encode;
#[cfg(test)]
mod tests;

use crate::proto::otlp;

/// A document that is not OTLP/JSON `TracesData`; names the field at fault,
/// e.g. `resourceSpans[0].scopeSpans[1].spans[2].traceId`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtlpJsonError {
    /// Not JSON at all.
    #[error("invalid JSON: {0}")]
    Syntax(String),
    /// A field with a value of the wrong shape.
    #[error("{path}: {reason}")]
    Field {
        /// Where the field sits, in the names the document used.
        path: String,
        /// What is wrong with its value.
        reason: String,
    },
}

type Result<T> = std::result::Result<T, OtlpJsonError>;

/// Decodes an OTLP/JSON `TracesData` (or `ExportTraceServiceRequest`, which
/// has the same JSON form).
pub fn decode(bytes: &[u8]) -> Result<otlp::TracesData> {
    decode::traces_data(bytes)
}

/// Encodes `data` in canonical OTLP/JSON.
pub fn encode(data: &otlp::TracesData) -> Vec<u8> {
    encode::traces_data(data)
}
