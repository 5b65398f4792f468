//! Protocol receivers. Each decodes its wire format into OTLP and hands the
//! request to the shared [`crate::pipeline::Pipeline`].

pub mod auth;
pub mod auth_layer;
pub mod body_meter;
pub mod htpasswd;
pub(crate) mod http_server;
pub mod jaeger_grpc;
pub mod jaeger_thrift;
pub mod listener;
pub mod otlp_grpc;
pub mod otlp_http;
pub mod reload;
pub mod tls;
pub mod tokens;
pub mod zipkin;
