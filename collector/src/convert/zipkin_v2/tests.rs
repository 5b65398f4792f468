use super::*;
use otlp::any_value::Value as V;

fn attrs(span: &otlp::Span) -> std::collections::BTreeMap<String, V> {
    span.attributes
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone().unwrap().value.unwrap()))
        .collect()
}

fn hexs(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn err(body: &str) -> String {
    decode(body.as_bytes()).unwrap_err().to_string()
}

const FULL: &str = r#"[{
    "traceId": "5af7183fb1d4cf5f", "id": "352bff9a74ca9ad2", "parentId": "6b221d5bc9e6496c",
    "name": "get /api", "kind": "CLIENT", "timestamp": 1556604172355737, "duration": 1431,
    "localEndpoint": {"serviceName": "frontend", "ipv4": "192.168.99.1", "port": 8080},
    "remoteEndpoint": {"serviceName": "backend", "ipv6": "::1", "port": 9000},
    "annotations": [{"timestamp": 1556604172355800, "value": "wire send"}],
    "tags": {"http.method": "GET", "error": "connection refused", "otel.library.name": "brave", "count": 3},
    "shared": true, "debug": false
}, {
    "traceId": "00000000000000015af7183fb1d4cf5f", "id": "0000000000000001",
    "localEndpoint": {"serviceName": "frontend"}, "tags": {"span.kind": "internal"}
}, {
    "traceId": "5af7183fb1d4cf5f", "id": "6b221d5bc9e6496c", "kind": "SERVER",
    "timestamp": 1556604172355000, "tags": {"otel.status_code": "STATUS_CODE_OK"}
}]"#;

#[test]
fn converts_like_the_opentelemetry_collector() {
    let request = decode(FULL.as_bytes()).unwrap();
    assert_eq!(request.resource_spans.len(), 2, "frontend, then no service");
    let frontend = &request.resource_spans[0];
    assert_eq!(
        spanway_schemas::to_jaeger::service_name(frontend.resource.as_ref()),
        "frontend"
    );
    assert_eq!(frontend.scope_spans.len(), 2, "brave, then no scope");
    assert_eq!(
        frontend.scope_spans[0].scope.as_ref().unwrap().name,
        "brave"
    );
    let client = &frontend.scope_spans[0].spans[0];
    assert_eq!(
        hexs(&client.trace_id),
        "00000000000000005af7183fb1d4cf5f",
        "64-bit ids are left-padded"
    );
    assert_eq!(hexs(&client.span_id), "352bff9a74ca9ad2");
    assert_eq!(hexs(&client.parent_span_id), "6b221d5bc9e6496c");
    assert_eq!(client.name, "get /api");
    assert_eq!(client.kind, otlp::span::SpanKind::Client as i32);
    assert_eq!(client.start_time_unix_nano, 1_556_604_172_355_737_000);
    assert_eq!(client.end_time_unix_nano, 1_556_604_172_357_168_000);
    let status = client.status.as_ref().unwrap();
    assert_eq!(status.code, otlp::status::StatusCode::Error as i32);
    assert_eq!(status.message, "connection refused");
    let a = attrs(client);
    assert_eq!(a["http.method"], V::StringValue("GET".into()));
    assert_eq!(a["count"], V::StringValue("3".into()));
    assert_eq!(a["net.host.ip"], V::StringValue("192.168.99.1".into()));
    assert_eq!(a["net.host.port"], V::IntValue(8080));
    assert_eq!(a["peer.service"], V::StringValue("backend".into()));
    assert_eq!(a["net.peer.ip"], V::StringValue("::1".into()));
    assert_eq!(a["net.peer.port"], V::IntValue(9000));
    assert_eq!(a[SHARED], V::BoolValue(true));
    assert!(!a.contains_key("error") && !a.contains_key("otel.library.name"));
    assert_eq!(client.events.len(), 1);
    assert_eq!(client.events[0].name, "wire send");
    assert_eq!(client.events[0].time_unix_nano, 1_556_604_172_355_800_000);

    let internal = &frontend.scope_spans[1].spans[0];
    assert_eq!(hexs(&internal.trace_id), "00000000000000015af7183fb1d4cf5f");
    assert_eq!(internal.kind, otlp::span::SpanKind::Internal as i32);
    assert_eq!(internal.start_time_unix_nano, 0);
    assert_eq!(attrs(internal)[START_TIME_ABSENT], V::BoolValue(true));
    assert!(internal.parent_span_id.is_empty());

    let anonymous = &request.resource_spans[1];
    assert!(anonymous.resource.as_ref().unwrap().attributes.is_empty());
    let server = &anonymous.scope_spans[0].spans[0];
    assert_eq!(server.kind, otlp::span::SpanKind::Server as i32);
    assert_eq!(
        server.status.as_ref().unwrap().code,
        otlp::status::StatusCode::Ok as i32
    );
    assert_eq!(server.start_time_unix_nano, server.end_time_unix_nano);
}

#[test]
fn error_true_sets_status_without_message() {
    let request = decode(
        br#"[{"traceId":"5af7183fb1d4cf5f","id":"352bff9a74ca9ad2","tags":{"error":"true"}}]"#,
    )
    .unwrap();
    let span = &request.resource_spans[0].scope_spans[0].spans[0];
    let status = span.status.as_ref().unwrap();
    assert_eq!(status.code, otlp::status::StatusCode::Error as i32);
    assert_eq!(status.message, "");
    assert!(!attrs(span).contains_key("error"));
}

#[test]
fn empty_array_is_an_empty_request() {
    assert!(decode(b"[]").unwrap().resource_spans.is_empty());
}

#[test]
fn bad_input_names_the_field() {
    let ok = r#""traceId":"5af7183fb1d4cf5f","id":"352bff9a74ca9ad2""#;
    assert!(err("{").starts_with("invalid JSON"));
    assert_eq!(err("{}"), "spans: expected a JSON array of spans");
    assert_eq!(err("[1]"), "spans[0]: expected a span object");
    assert_eq!(
        err(&format!(r#"[{{{ok}}},{{"id":"352bff9a74ca9ad2"}}]"#)),
        "spans[1].traceId: missing"
    );
    assert_eq!(
        err(r#"[{"traceId":"abc","id":"352bff9a74ca9ad2"}]"#),
        "spans[0].traceId: expected 16 or 32 hex characters, got 3"
    );
    assert_eq!(
        err(r#"[{"traceId":"0000000000000000","id":"352bff9a74ca9ad2"}]"#),
        "spans[0].traceId: all-zero id is invalid"
    );
    assert_eq!(
        err(r#"[{"traceId":"5af7183fb1d4cf5g","id":"352bff9a74ca9ad2"}]"#),
        "spans[0].traceId: \"5af7183fb1d4cf5g\" is not hexadecimal"
    );
    assert_eq!(
        err(r#"[{"traceId":5,"id":"352bff9a74ca9ad2"}]"#),
        "spans[0].traceId: expected a string, got 5"
    );
    assert_eq!(
        err(r#"[{"traceId":"5af7183fb1d4cf5f","id":"0000000000000000"}]"#),
        "spans[0].id: all-zero id is invalid"
    );
    assert_eq!(
        err(&format!(r#"[{{{ok},"parentId":"12"}}]"#)),
        "spans[0].parentId: expected 16 hex characters, got 2"
    );
    assert_eq!(
        err(&format!(r#"[{{{ok},"kind":"client"}}]"#)),
        "spans[0].kind: \"client\" is not one of CLIENT, SERVER, PRODUCER, CONSUMER"
    );
    assert_eq!(
        err(&format!(r#"[{{{ok},"timestamp":-1}}]"#)),
        "spans[0].timestamp: expected a non-negative integer, got -1"
    );
    assert_eq!(
        err(&format!(r#"[{{{ok},"timestamp":1.5}}]"#)),
        "spans[0].timestamp: expected a non-negative integer, got 1.5"
    );
    assert_eq!(
        err(&format!(r#"[{{{ok},"timestamp":18446744073709552}}]"#)),
        "spans[0].timestamp: 18446744073709552 microseconds overflow nanoseconds"
    );
    assert_eq!(
        err(&format!(
            r#"[{{{ok},"timestamp":18446744073709000,"duration":1000}}]"#
        )),
        "spans[0].duration: timestamp + duration overflows"
    );
    assert_eq!(
        err(&format!(r#"[{{{ok},"localEndpoint":{{"ipv4":"1.2.3"}}}}]"#)),
        "spans[0].localEndpoint.ipv4: \"1.2.3\" is not an IPv4 address"
    );
    assert_eq!(
        err(&format!(r#"[{{{ok},"remoteEndpoint":{{"port":70000}}}}]"#)),
        "spans[0].remoteEndpoint.port: 70000 is not a port"
    );
    assert_eq!(
        err(&format!(r#"[{{{ok},"remoteEndpoint":"x"}}]"#)),
        "spans[0].remoteEndpoint: expected an endpoint object"
    );
    assert_eq!(
        err(&format!(r#"[{{{ok},"annotations":[{{"value":"x"}}]}}]"#)),
        "spans[0].annotations[0].timestamp: missing"
    );
    assert_eq!(
        err(&format!(r#"[{{{ok},"annotations":[{{"timestamp":1}}]}}]"#)),
        "spans[0].annotations[0].value: missing"
    );
    assert_eq!(
        err(&format!(r#"[{{{ok},"tags":{{"a":[1]}}}}]"#)),
        "spans[0].tags.a: expected a string, number or boolean"
    );
    assert_eq!(
        err(&format!(r#"[{{{ok},"shared":"yes"}}]"#)),
        "spans[0].shared: expected a boolean, got \"yes\""
    );
}
