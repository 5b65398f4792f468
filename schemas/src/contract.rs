//! Constants and the encoding enum of the topic contract (see `schemas/README.md`).

use std::fmt;
use std::str::FromStr;

/// Topic the collector writes and the consumers read unless configured
/// otherwise; the same name Jaeger uses, so existing topics keep working.
pub const DEFAULT_TOPIC: &str = "jaeger-spans";

/// Version of this contract, carried in the [`crate::headers::SCHEMA_VERSION`] header.
pub const SCHEMA_VERSION: &str = "1";

/// Largest record value a producer may write, in bytes before compression.
/// Kafka's default `message.max.bytes` is 1,048,588; staying under 1,000,000
/// leaves room for the key, headers and batch overhead.
pub const MAX_RECORD_BYTES: usize = 1_000_000;

/// How a record value is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Protobuf `opentelemetry.proto.trace.v1.TracesData` holding spans of one trace.
    OtlpProto,
    /// The same message in OTLP/JSON (lowerCamelCase names, hex ids, integer
    /// enums, 64-bit integers as strings), as the OpenTelemetry Collector's
    /// Kafka exporter writes with `encoding: otlp_json`; one record per trace
    /// like [`Encoding::OtlpProto`]. Read and written: see [`crate::otlp_json`].
    OtlpJson,
    /// Protobuf `jaeger.api_v2.Span` with its `process` embedded; one span per record.
    JaegerProto,
    /// The same message as protobuf JSON, as Jaeger's collector writes with `json`.
    JaegerJson,
}

impl Encoding {
    /// Every encoding, in the order the README lists them.
    pub const ALL: [Encoding; 4] = [
        Encoding::OtlpProto,
        Encoding::OtlpJson,
        Encoding::JaegerProto,
        Encoding::JaegerJson,
    ];

    /// The name used in the `encoding` header and in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::OtlpProto => "otlp_proto",
            Encoding::OtlpJson => "otlp_json",
            Encoding::JaegerProto => "jaeger_proto",
            Encoding::JaegerJson => "jaeger_json",
        }
    }

    /// Whether a record holds one span (Jaeger) or a whole trace (OTLP).
    pub fn one_span_per_record(self) -> bool {
        matches!(self, Encoding::JaegerProto | Encoding::JaegerJson)
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An encoding name that is not one of [`Encoding::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown encoding {0:?}: expected one of otlp_proto, otlp_json, jaeger_proto, jaeger_json")]
pub struct UnknownEncoding(pub String);

impl FromStr for Encoding {
    type Err = UnknownEncoding;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Encoding::ALL
            .into_iter()
            .find(|e| e.as_str() == text)
            .ok_or_else(|| UnknownEncoding(text.to_owned()))
    }
}

impl serde::Serialize for Encoding {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Encoding {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for encoding in Encoding::ALL {
            assert_eq!(encoding.as_str().parse::<Encoding>().unwrap(), encoding);
        }
        let err = "protobuf".parse::<Encoding>().unwrap_err();
        assert!(err.to_string().contains("\"protobuf\""));
    }
}
