use super::*;
use otlp::any_value::Value;
use spanway_schemas::to_jaeger;

const T1: [u8; 16] = [0x11; 16];
const T2: [u8; 16] = [0x22; 16];

fn val(value: Value) -> otlp::AnyValue {
    otlp::AnyValue { value: Some(value) }
}

fn attr(key: &str, value: Value) -> otlp::KeyValue {
    kv(key, val(value))
}

fn text(key: &str, value: &str) -> otlp::KeyValue {
    attr(key, Value::StringValue(value.into()))
}

fn ref_type(kind: &str) -> Vec<otlp::KeyValue> {
    vec![text("opentracing.ref_type", kind)]
}

fn link(trace: [u8; 16], span: u8, kind: &str) -> otlp::span::Link {
    otlp::span::Link {
        trace_id: trace.to_vec(),
        span_id: vec![span; 8],
        attributes: ref_type(kind),
        ..Default::default()
    }
}

/// An OTLP request that uses every field the Jaeger model can carry, in the
/// shapes the Jaeger model can carry them.
fn otlp_request() -> otlp::ExportTraceServiceRequest {
    let start = 1_700_000_000_123_456_789;
    let server = otlp::Span {
        trace_id: T1.to_vec(),
        span_id: vec![0xa1; 8],
        parent_span_id: vec![0xa0; 8],
        trace_state: "vendor=x".into(),
        flags: 1,
        name: "GET /cart".into(),
        kind: otlp::span::SpanKind::Server as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 2_500_000,
        attributes: vec![
            text("http.method", "GET"),
            attr("http.status_code", Value::IntValue(500)),
            attr("ratio", Value::DoubleValue(0.25)),
            attr("cached", Value::BoolValue(false)),
            attr("blob", Value::BytesValue(vec![0, 1, 2])),
        ],
        events: vec![
            otlp::span::Event {
                time_unix_nano: start + 1_000,
                name: "retry".into(),
                attributes: vec![attr("attempt", Value::IntValue(2))],
                ..Default::default()
            },
            otlp::span::Event {
                time_unix_nano: start + 2_000,
                name: String::new(),
                attributes: vec![text("message", "no name")],
                ..Default::default()
            },
        ],
        links: vec![link(T2, 0xb1, "follows_from"), link(T2, 0xb2, "child_of")],
        status: Some(otlp::Status {
            message: "boom".into(),
            code: otlp::status::StatusCode::Error as i32,
        }),
        ..Default::default()
    };
    let root = otlp::Span {
        trace_id: T1.to_vec(),
        span_id: vec![0xa0; 8],
        name: "checkout".into(),
        kind: otlp::span::SpanKind::Client as i32,
        start_time_unix_nano: start - 1_000_000,
        end_time_unix_nano: start + 5_000_000,
        status: Some(otlp::Status {
            message: String::new(),
            code: otlp::status::StatusCode::Ok as i32,
        }),
        ..Default::default()
    };
    let other_scope = otlp::Span {
        trace_id: T1.to_vec(),
        span_id: vec![0xa2; 8],
        parent_span_id: vec![0xa1; 8],
        name: "query".into(),
        start_time_unix_nano: start + 100,
        end_time_unix_nano: start + 200,
        ..Default::default()
    };
    // Follows from its parent: the parent reference is FOLLOWS_FROM, which
    // comes back as the parent plus a link saying so.
    let follower = otlp::Span {
        trace_id: T2.to_vec(),
        span_id: vec![0xb3; 8],
        parent_span_id: vec![0xb2; 8],
        name: "consume".into(),
        kind: otlp::span::SpanKind::Consumer as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 7,
        links: vec![link(T2, 0xb2, "follows_from")],
        ..Default::default()
    };
    let scope = |name: &str, version: &str| {
        Some(otlp::InstrumentationScope {
            name: name.into(),
            version: version.into(),
            ..Default::default()
        })
    };
    otlp::ExportTraceServiceRequest {
        resource_spans: vec![
            otlp::ResourceSpans {
                resource: Some(otlp::Resource {
                    attributes: vec![
                        text("service.name", "checkout"),
                        text("host.name", "node-1"),
                        attr("process.pid", Value::IntValue(42)),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![
                    otlp::ScopeSpans {
                        scope: scope("lib", "1.2"),
                        spans: vec![server, root],
                        ..Default::default()
                    },
                    otlp::ScopeSpans {
                        scope: scope("db", ""),
                        spans: vec![other_scope],
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
            otlp::ResourceSpans {
                resource: Some(otlp::Resource {
                    attributes: vec![text("service.name", "worker")],
                    ..Default::default()
                }),
                scope_spans: vec![otlp::ScopeSpans {
                    scope: scope("", ""),
                    spans: vec![follower],
                    ..Default::default()
                }],
                ..Default::default()
            },
        ],
    }
}

fn to_jaeger_spans(request: &otlp::ExportTraceServiceRequest) -> Vec<jaeger::Span> {
    let mut spans = Vec::new();
    for (i, rs) in request.resource_spans.iter().enumerate() {
        to_jaeger::convert_resource_spans(i, rs, &mut spans).unwrap();
    }
    spans
}

#[test]
fn otlp_to_jaeger_and_back_is_the_identity() {
    let original = otlp_request();
    // Every span carries its own process, as schemas' converter writes them.
    let batch = jaeger::Batch {
        spans: to_jaeger_spans(&original),
        process: None,
    };
    assert_eq!(batch_to_otlp(batch).unwrap(), original);
}

#[test]
fn batch_process_applies_to_spans_without_their_own() {
    let original = otlp_request();
    let mut spans = to_jaeger_spans(&original);
    let process = spans[0].process.clone();
    for span in spans.iter_mut().take(3) {
        span.process = None;
    }
    let batch = jaeger::Batch { spans, process };
    assert_eq!(batch_to_otlp(batch).unwrap(), original);
}

#[test]
fn jaeger_to_otlp_and_back_keeps_the_jaeger_span() {
    let spans = to_jaeger_spans(&otlp_request());
    let batch = jaeger::Batch {
        spans: spans.clone(),
        process: None,
    };
    let back = to_jaeger_spans(&batch_to_otlp(batch).unwrap());
    assert_eq!(back, spans);
}

fn tag(key: &str, value: &str) -> jaeger::KeyValue {
    jaeger::KeyValue {
        key: key.into(),
        v_str: value.into(),
        ..Default::default()
    }
}

fn bool_tag(key: &str, value: bool) -> jaeger::KeyValue {
    jaeger::KeyValue {
        key: key.into(),
        v_type: jaeger::ValueType::Bool as i32,
        v_bool: value,
        ..Default::default()
    }
}

fn int_tag(key: &str, value: i64) -> jaeger::KeyValue {
    jaeger::KeyValue {
        key: key.into(),
        v_type: jaeger::ValueType::Int64 as i32,
        v_int64: value,
        ..Default::default()
    }
}

fn jaeger_span(tags: Vec<jaeger::KeyValue>) -> jaeger::Span {
    jaeger::Span {
        trace_id: T1.to_vec(),
        span_id: vec![1; 8],
        operation_name: "op".into(),
        tags,
        ..Default::default()
    }
}

fn one_span(span: jaeger::Span) -> otlp::Span {
    let batch = jaeger::Batch {
        spans: vec![span],
        process: None,
    };
    let mut request = batch_to_otlp(batch).unwrap();
    request
        .resource_spans
        .remove(0)
        .scope_spans
        .remove(0)
        .spans
        .remove(0)
}

fn status(span: &otlp::Span) -> (otlp::status::StatusCode, &str) {
    let status = span.status.as_ref().unwrap();
    (
        otlp::status::StatusCode::try_from(status.code).unwrap(),
        status.message.as_str(),
    )
}

#[test]
fn error_tag_wins_over_the_status_code_tag() {
    use otlp::status::StatusCode;
    let span = one_span(jaeger_span(vec![
        bool_tag("error", true),
        tag("otel.status_code", "OK"),
        tag("otel.status_description", "timeout"),
    ]));
    assert_eq!(status(&span), (StatusCode::Error, "timeout"));
    assert!(span.attributes.is_empty(), "{:?}", span.attributes);

    let span = one_span(jaeger_span(vec![bool_tag("error", false)]));
    assert!(span.status.is_none());
    assert_eq!(span.attributes.len(), 1, "error=false stays an attribute");

    let span = one_span(jaeger_span(vec![tag("otel.status_code", "ok")]));
    assert_eq!(status(&span), (StatusCode::Ok, ""));
}

#[test]
fn http_status_code_decides_only_without_other_status() {
    use otlp::status::StatusCode;
    let mut client = jaeger_span(vec![
        tag("span.kind", "client"),
        int_tag("http.status_code", 404),
        tag("http.status_message", "not found"),
    ]);
    let span = one_span(client.clone());
    assert_eq!(span.kind, otlp::span::SpanKind::Client as i32);
    assert_eq!(status(&span), (StatusCode::Error, "not found"));
    assert_eq!(span.attributes.len(), 2, "the http tags stay");

    client.tags[0] = tag("span.kind", "server");
    assert!(
        one_span(client).status.is_none(),
        "4xx is fine for a server"
    );

    let span = one_span(jaeger_span(vec![tag("http.status_code", "503")]));
    assert_eq!(status(&span).0, StatusCode::Error);
    let span = one_span(jaeger_span(vec![int_tag("http.status_code", 200)]));
    assert!(span.status.is_none());
}

#[test]
fn process_special_tags_are_renamed() {
    let batch = jaeger::Batch {
        spans: vec![jaeger_span(Vec::new())],
        process: Some(jaeger::Process {
            service_name: "svc".into(),
            tags: vec![tag("hostname", "h1"), tag("jaeger.version", "Go-2.30.0")],
        }),
    };
    let request = batch_to_otlp(batch).unwrap();
    let resource = request.resource_spans[0].resource.as_ref().unwrap();
    assert_eq!(
        resource.attributes,
        vec![
            text("service.name", "svc"),
            text("host.name", "h1"),
            text("opencensus.exporterversion", "Jaeger-Go-2.30.0"),
        ]
    );

    let batch = jaeger::Batch {
        spans: vec![jaeger_span(Vec::new())],
        process: Some(jaeger::Process {
            service_name: NO_SERVICE_NAME.into(),
            tags: vec![tag("a", "b")],
        }),
    };
    let request = batch_to_otlp(batch).unwrap();
    assert!(
        request.resource_spans[0]
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .is_empty()
    );
}

#[test]
fn scope_kind_and_tracestate_tags_become_fields() {
    let span = jaeger_span(vec![
        tag("otel.library.name", "old-sdk"),
        tag("otel.library.version", "0.9"),
        tag("span.kind", "producer"),
        tag("w3c.tracestate", "a=b"),
        tag("k", "first"),
        tag("k", "second"),
    ]);
    let batch = jaeger::Batch {
        spans: vec![span],
        process: None,
    };
    let request = batch_to_otlp(batch).unwrap();
    let scope_spans = &request.resource_spans[0].scope_spans[0];
    let scope = scope_spans.scope.as_ref().unwrap();
    assert_eq!(
        (scope.name.as_str(), scope.version.as_str()),
        ("old-sdk", "0.9")
    );
    let span = &scope_spans.spans[0];
    assert_eq!(span.kind, otlp::span::SpanKind::Producer as i32);
    assert_eq!(span.trace_state, "a=b");
    assert_eq!(
        span.attributes,
        vec![text("k", "second")],
        "last value wins"
    );
}

#[test]
fn references_make_parent_and_links() {
    let reference = |trace: [u8; 16], span: u8, kind: jaeger::SpanRefType| jaeger::SpanRef {
        trace_id: trace.to_vec(),
        span_id: vec![span; 8],
        ref_type: kind as i32,
    };
    let mut span = jaeger_span(Vec::new());
    span.references = vec![
        reference(T1, 7, jaeger::SpanRefType::FollowsFrom),
        reference(T2, 8, jaeger::SpanRefType::ChildOf),
        reference(T1, 9, jaeger::SpanRefType::ChildOf),
    ];
    let span = one_span(span);
    assert_eq!(
        span.parent_span_id,
        vec![9; 8],
        "CHILD_OF in the same trace"
    );
    assert_eq!(
        span.links,
        vec![link(T1, 7, "follows_from"), link(T2, 8, "child_of")]
    );
}

#[test]
fn logs_become_events_named_by_their_event_field() {
    let mut span = jaeger_span(Vec::new());
    span.logs = vec![jaeger::Log {
        timestamp: Some(spanway_schemas::prost_types::Timestamp {
            seconds: 2,
            nanos: 5,
        }),
        fields: vec![tag("level", "info"), tag("event", "cache miss")],
    }];
    let span = one_span(span);
    assert_eq!(span.events.len(), 1);
    assert_eq!(span.events[0].name, "cache miss");
    assert_eq!(span.events[0].time_unix_nano, 2_000_000_005);
    assert_eq!(span.events[0].attributes, vec![text("level", "info")]);
}

#[test]
fn times_never_wrap() {
    let mut span = jaeger_span(Vec::new());
    span.start_time = Some(spanway_schemas::prost_types::Timestamp {
        seconds: -5,
        nanos: 0,
    });
    span.duration = Some(spanway_schemas::prost_types::Duration {
        seconds: 1,
        nanos: 0,
    });
    let span = one_span(span);
    assert_eq!(span.start_time_unix_nano, 0);
    assert_eq!(span.end_time_unix_nano, 1_000_000_000);
}

#[test]
fn bad_ids_name_the_jaeger_field() {
    let mut bad = jaeger_span(Vec::new());
    bad.trace_id = vec![1; 8];
    let batch = jaeger::Batch {
        spans: vec![jaeger_span(Vec::new()), bad],
        process: None,
    };
    assert_eq!(
        batch_to_otlp(batch).unwrap_err().to_string(),
        "batch.spans[1].trace_id: expected 16 bytes, got 8"
    );
    let mut bad = jaeger_span(Vec::new());
    bad.references = vec![jaeger::SpanRef {
        trace_id: T1.to_vec(),
        span_id: vec![0; 8],
        ref_type: 0,
    }];
    let batch = jaeger::Batch {
        spans: vec![bad],
        process: None,
    };
    assert_eq!(
        batch_to_otlp(batch).unwrap_err().to_string(),
        "batch.spans[0].references[0].span_id: all-zero id is invalid"
    );
}

#[test]
fn blank_spans_are_skipped() {
    let batch = jaeger::Batch {
        spans: vec![jaeger::Span::default()],
        process: Some(jaeger::Process {
            service_name: "svc".into(),
            tags: Vec::new(),
        }),
    };
    assert!(batch_to_otlp(batch).unwrap().resource_spans.is_empty());
}
