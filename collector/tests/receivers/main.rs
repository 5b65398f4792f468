//! The collector's receivers against the real broker: every protocol, the
//! sampling endpoints and the listeners' security, in one test binary, so
//! that librdkafka and the collector are linked once rather than seven
//! times. (`broker_outage.rs` stops the shared broker and keeps a binary of
//! its own: cargo runs test binaries one after another.)
#![allow(clippy::unwrap_used)]

mod grpc_common;
mod http_common;

mod body_budget;
mod connection_limit;
mod jaeger_grpc;
mod jaeger_thrift;
mod otlp_grpc;
mod otlp_json;
mod receiver_security;
mod sampling;
mod zipkin;
