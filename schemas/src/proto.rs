//! Types generated from the vendored `.proto` files (see `proto/VENDORED.md`).
// The generated docs are the `.proto` files' comments, which put words
// such as `<version>` in angle brackets.
#![allow(missing_docs, missing_debug_implementations, clippy::all)]
#![allow(rustdoc::invalid_html_tags)]

/// OpenTelemetry protocol (OTLP) types.
pub mod opentelemetry {
    pub mod proto {
        pub mod common {
            pub mod v1 {
                include!(concat!(
                    env!("OUT_DIR"),
                    "/opentelemetry.proto.common.v1.rs"
                ));
            }
        }
        pub mod resource {
            pub mod v1 {
                include!(concat!(
                    env!("OUT_DIR"),
                    "/opentelemetry.proto.resource.v1.rs"
                ));
            }
        }
        pub mod trace {
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/opentelemetry.proto.trace.v1.rs"));
            }
        }
        pub mod collector {
            pub mod trace {
                pub mod v1 {
                    include!(concat!(
                        env!("OUT_DIR"),
                        "/opentelemetry.proto.collector.trace.v1.rs"
                    ));
                }
            }
        }
    }
}

/// Jaeger `api_v2` types (`model.proto`, `collector.proto`, `sampling.proto`).
pub mod jaeger {
    pub mod api_v2 {
        include!(concat!(env!("OUT_DIR"), "/jaeger.api_v2.rs"));
    }
}

/// Short paths to the OTLP types used everywhere.
/// Attributes are built in many places (converters, generators, tests);
/// these say what one is without spelling out the nested options.
impl opentelemetry::proto::common::v1::KeyValue {
    /// The attribute `key` = `value`.
    pub fn new(
        key: impl Into<String>,
        value: opentelemetry::proto::common::v1::any_value::Value,
    ) -> Self {
        opentelemetry::proto::common::v1::KeyValue {
            key: key.into(),
            value: Some(opentelemetry::proto::common::v1::AnyValue { value: Some(value) }),
        }
    }

    /// The string attribute `key` = `value`.
    pub fn string(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self::new(
            key,
            opentelemetry::proto::common::v1::any_value::Value::StringValue(value.into()),
        )
    }
}

pub mod otlp {
    pub use super::opentelemetry::proto::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    pub use super::opentelemetry::proto::common::v1::{
        AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
    };
    pub use super::opentelemetry::proto::resource::v1::Resource;
    pub use super::opentelemetry::proto::trace::v1::{
        ResourceSpans, ScopeSpans, Span, Status, TracesData, span, status,
    };
}

/// gRPC server and client stubs (feature `grpc`), over the message types above.
#[cfg(feature = "grpc")]
pub mod grpc {
    /// `opentelemetry.proto.collector.trace.v1.TraceService`.
    pub mod otlp_trace {
        include!(concat!(
            env!("OUT_DIR"),
            "/grpc/opentelemetry.proto.collector.trace.v1.rs"
        ));
    }
    /// `jaeger.api_v2.CollectorService` and `jaeger.api_v2.SamplingManager`.
    pub mod jaeger {
        include!(concat!(env!("OUT_DIR"), "/grpc/jaeger.api_v2.rs"));
    }
}
