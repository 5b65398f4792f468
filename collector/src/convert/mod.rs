//! Conversions from other span models into OTLP, the form the pipeline and
//! the topic contract speak.

pub mod jaeger_model;
