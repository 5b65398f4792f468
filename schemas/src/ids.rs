//! Trace and span identifiers.
//!
//! OTLP carries ids as raw bytes and Jaeger as two (or one) big-endian
//! integers; Elasticsearch documents and Kafka keys carry lowercase hex. The
//! newtypes make the one valid shape explicit: an id is never all zero (the
//! W3C trace-context and OTLP specifications call that invalid) and never of
//! another length.

use std::fmt;
use std::str::FromStr;

/// Why an id was rejected. The `field` names where the id came from so that
/// a client sees which of its values is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The id did not have the number of bytes its kind requires.
    #[error("{field}: expected {expected} bytes, got {actual}")]
    WrongLength {
        field: &'static str,
        expected: usize,
        actual: usize,
    },
    /// The id was all zero, which the specifications reserve for "no id".
    #[error("{field}: all-zero id is invalid")]
    AllZero { field: &'static str },
    /// The hex form had a character outside `0-9a-fA-F`.
    #[error("{field}: {value:?} is not hexadecimal")]
    NotHex { field: &'static str, value: String },
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $len:literal, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; $len]);

        impl $name {
            /// Length of the id in bytes.
            pub const LEN: usize = $len;

            /// Accepts exactly `LEN` bytes that are not all zero.
            pub fn from_bytes(bytes: [u8; $len]) -> Result<Self, IdError> {
                if bytes == [0u8; $len] {
                    return Err(IdError::AllZero { field: $field });
                }
                Ok(Self(bytes))
            }

            /// Accepts a slice, as found in a decoded protobuf message.
            pub fn from_slice(bytes: &[u8]) -> Result<Self, IdError> {
                let array: [u8; $len] = bytes.try_into().map_err(|_| IdError::WrongLength {
                    field: $field,
                    expected: $len,
                    actual: bytes.len(),
                })?;
                Self::from_bytes(array)
            }

            /// Accepts `2 * LEN` hex digits, either case.
            pub fn from_hex(text: &str) -> Result<Self, IdError> {
                if text.len() != 2 * $len {
                    return Err(IdError::WrongLength {
                        field: $field,
                        expected: $len,
                        actual: text.len() / 2,
                    });
                }
                let mut bytes = [0u8; $len];
                hex::decode_to_slice(text, &mut bytes).map_err(|_| IdError::NotHex {
                    field: $field,
                    value: text.to_owned(),
                })?;
                Self::from_bytes(bytes)
            }

            /// The raw big-endian bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Lowercase hex, the form used in keys and documents.
            pub fn to_hex(&self) -> String {
                crate::hex::text(&self.0)
            }

            /// Names this kind of id in error messages (`trace_id`, `span_id`).
            pub fn field_name() -> &'static str {
                $field
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.to_hex())
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(text: &str) -> Result<Self, IdError> {
                Self::from_hex(text)
            }
        }
    };
}

id_type!(
    /// A 16-byte trace id.
    TraceId,
    16,
    "trace_id"
);
id_type!(
    /// An 8-byte span id.
    SpanId,
    8,
    "span_id"
);

impl TraceId {
    /// Jaeger's model splits the trace id into two big-endian halves.
    pub fn from_halves(high: u64, low: u64) -> Result<Self, IdError> {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&high.to_be_bytes());
        bytes[8..].copy_from_slice(&low.to_be_bytes());
        Self::from_bytes(bytes)
    }

    /// The high and low halves, as Jaeger's Thrift model carries them.
    pub fn halves(&self) -> (u64, u64) {
        let mut high = [0u8; 8];
        let mut low = [0u8; 8];
        high.copy_from_slice(&self.0[..8]);
        low.copy_from_slice(&self.0[8..]);
        (u64::from_be_bytes(high), u64::from_be_bytes(low))
    }
}

impl SpanId {
    /// Jaeger's Thrift model carries the span id as one signed 64-bit integer.
    pub fn from_u64(value: u64) -> Result<Self, IdError> {
        Self::from_bytes(value.to_be_bytes())
    }

    /// The id as a big-endian integer.
    pub fn to_u64(&self) -> u64 {
        u64::from_be_bytes(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_is_lowercase() {
        let id = TraceId::from_hex("0AF7651916CD43DD8448EB211C80319C").unwrap();
        assert_eq!(id.to_hex(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(id.as_bytes()[0], 0x0a);
        assert_eq!(id.as_bytes()[15], 0x9c);
    }

    #[test]
    fn wrong_length_names_field_and_lengths() {
        let err = TraceId::from_slice(&[1u8; 8]).unwrap_err();
        assert_eq!(
            err,
            IdError::WrongLength {
                field: "trace_id",
                expected: 16,
                actual: 8
            }
        );
        assert_eq!(err.to_string(), "trace_id: expected 16 bytes, got 8");
        let err = SpanId::from_hex("abc").unwrap_err();
        assert!(err.to_string().starts_with("span_id: expected 8 bytes"));
    }

    #[test]
    fn all_zero_is_rejected() {
        assert_eq!(
            SpanId::from_slice(&[0u8; 8]).unwrap_err(),
            IdError::AllZero { field: "span_id" }
        );
        assert_eq!(
            TraceId::from_hex(&"0".repeat(32)).unwrap_err().to_string(),
            "trace_id: all-zero id is invalid"
        );
    }

    #[test]
    fn non_hex_is_rejected() {
        let err = SpanId::from_hex("zz00000000000001").unwrap_err();
        assert!(matches!(
            err,
            IdError::NotHex {
                field: "span_id",
                ..
            }
        ));
    }

    #[test]
    fn halves_match_big_endian_bytes() {
        let id = TraceId::from_halves(0x0102030405060708, 0x090a0b0c0d0e0f10).unwrap();
        assert_eq!(id.to_hex(), "0102030405060708090a0b0c0d0e0f10");
        assert_eq!(id.halves(), (0x0102030405060708, 0x090a0b0c0d0e0f10));
        let span = SpanId::from_u64(0x00000000000000ff).unwrap();
        assert_eq!(span.to_hex(), "00000000000000ff");
        assert_eq!(span.to_u64(), 255);
    }
}
