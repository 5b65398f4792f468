//! Small builders of OTLP messages the tests assemble by hand.

use spanway_schemas::proto::otlp::{self, any_value::Value as Any};

/// A string attribute.
pub fn string_kv(key: &str, value: &str) -> otlp::KeyValue {
    otlp::KeyValue {
        key: key.into(),
        value: Some(otlp::AnyValue {
            value: Some(Any::StringValue(value.into())),
        }),
    }
}

/// An integer attribute.
pub fn int_kv(key: &str, value: i64) -> otlp::KeyValue {
    otlp::KeyValue {
        key: key.into(),
        value: Some(otlp::AnyValue {
            value: Some(Any::IntValue(value)),
        }),
    }
}

/// The spans of one service: a resource with only `service.name`, one scope.
pub fn resource_spans(service: &str, spans: Vec<otlp::Span>) -> otlp::ResourceSpans {
    otlp::ResourceSpans {
        resource: Some(otlp::Resource {
            attributes: vec![string_kv("service.name", service)],
            ..Default::default()
        }),
        scope_spans: vec![otlp::ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}
