//! Protocol receivers. Each decodes its wire format into OTLP and hands the
//! request to the shared [`crate::pipeline::Pipeline`].

pub mod otlp_http;
