//! Record headers of the topic contract.
//!
//! Both are optional for readers: a record without `encoding` is decoded with
//! the consumer's configured default, so topics written by producers that set
//! no headers (Jaeger's collector, the OpenTelemetry Collector) stay readable.

/// Names the value encoding: one of [`crate::Encoding::as_str`].
pub const ENCODING: &str = "encoding";

/// The contract version the producer followed: [`crate::SCHEMA_VERSION`].
pub const SCHEMA_VERSION: &str = "schema-version";
