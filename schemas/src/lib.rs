//! The contract between span producers and the consumers of the spans topic.
//!
//! Anyone who publishes spans to Kafka for the ingester and the streaming
//! analytics job, in any language, follows what this crate encodes: which
//! protobuf messages a record holds ([`Encoding`]), how it is keyed
//! ([`TraceId`] as 32 lowercase hex characters), which partition that key
//! maps to ([`partition::murmur2_partition`]) and which headers it carries
//! ([`headers`]). `README.md` beside this crate states the same in prose and
//! `testdata/` holds golden records that other languages can check against.

pub mod contract;
pub mod headers;
pub mod hex;
pub mod id_hashing;
pub mod ids;
pub mod jaeger_json;
pub mod otlp_json;
pub mod partition;
pub mod proto;
pub mod record;
pub mod to_jaeger;
pub mod wire;

/// The well-known types (`Timestamp`, `Duration`) the generated Jaeger model uses.
pub use prost_types;

pub use contract::{DEFAULT_TOPIC, Encoding, MAX_RECORD_BYTES, SCHEMA_VERSION};
pub use ids::{IdError, SpanId, TraceId};
pub use record::{
    DecodeError, EncodeError, ProcessSpans, SpanRecord, decode_record, decode_record_grouped,
    encode_trace, encode_trace_within, record_encoding,
};
