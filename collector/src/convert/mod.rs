//! Conversions from other span models into OTLP, the form the pipeline and
//! the topic contract speak.

pub mod jaeger_model;
pub mod jaeger_thrift;
pub mod thrift_binary;
pub mod zipkin_v2;
