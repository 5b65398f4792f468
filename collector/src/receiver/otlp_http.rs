//! OTLP over HTTP: `POST /v1/traces` with a protobuf or JSON body, optionally
//! gzip. The answer uses the request's encoding, as the specification asks:
//! an `ExportTraceServiceResponse` (with `partial_success` when some spans
//! were rejected) on success, a `google.rpc.Status` on failure.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{Extensions, HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use prost::Message;
use spanway_schemas::otlp_json;
use spanway_schemas::proto::otlp;
use tokio_util::sync::CancellationToken;

use crate::error::RequestError;
use crate::grouping::{FieldNaming, RejectedSpan};
use crate::pipeline::Pipeline;
use crate::receiver::body_meter::{BodyLimits, HeldBody, Meter};
use crate::receiver::http_server::{
    self, content_type, decompress, media_type, off_reactor, refused_body, with_retry_after,
};
use crate::receiver::listener::Endpoint;

/// Metric label of this receiver.
pub const RECEIVER: &str = "otlp_http";
const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";
/// How many rejected spans the `partial_success` message names; the count
/// covers them all, the message stays short.
const NAMED_REJECTIONS: usize = 10;

/// `google.rpc.Status`, the body OTLP/HTTP error responses carry.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The two encodings OTLP/HTTP defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => PROTOBUF,
            Format::Json => JSON,
        }
    }

    fn naming(self) -> FieldNaming {
        match self {
            Format::Protobuf => FieldNaming::Proto,
            Format::Json => FieldNaming::Json,
        }
    }
}

#[derive(Clone)]
struct ReceiverState {
    pipeline: Arc<Pipeline>,
    max_request_bytes: usize,
}

/// Binds `endpoint` and serves until `shutdown`; in-flight requests finish
/// first.
pub async fn serve(
    endpoint: Endpoint,
    limits: BodyLimits,
    pipeline: Arc<Pipeline>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let meter = Meter::new(pipeline.clone(), RECEIVER, limits.timeout);
    let app = Router::new()
        .route("/v1/traces", post(export))
        .with_state(ReceiverState {
            pipeline,
            max_request_bytes: limits.max_bytes,
        });
    http_server::serve(endpoint, app, limits, meter, shutdown).await
}

async fn export(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    extensions: Extensions,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // Answer in JSON whenever the client spoke JSON, even to refuse it.
    let format = match media_type(&headers).as_str() {
        JSON => Format::Json,
        _ => Format::Protobuf,
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            return refused_body(&extensions, rejection, |e| error_response(e, format));
        }
    };
    let held = HeldBody::take(&extensions, state.pipeline.budget());
    let limit = state.max_request_bytes;
    let request = match off_reactor(move || decode(&headers, body, limit)).await {
        Ok(request) => request,
        Err(error) => {
            state.pipeline.count_request_refusal(RECEIVER, &error);
            return error_response(&error, format);
        }
    };
    match state.pipeline.accept_partial(RECEIVER, request, held).await {
        Ok(accepted) if accepted.spans == 0 && !accepted.rejected.is_empty() => {
            let error = RequestError::AllSpansInvalid(describe_rejected(
                &accepted.rejected,
                format.naming(),
            ));
            error_response(&error, format)
        }
        Ok(accepted) => success_response(&accepted.rejected, format),
        Err(error) => error_response(&error, format),
    }
}

fn decode(
    headers: &HeaderMap,
    body: Bytes,
    limit: usize,
) -> Result<otlp::ExportTraceServiceRequest, RequestError> {
    let format = match media_type(headers).as_str() {
        PROTOBUF => Format::Protobuf,
        JSON => Format::Json,
        _ => {
            return Err(RequestError::UnsupportedMediaType {
                got: content_type(headers).to_owned(),
                expected: "application/x-protobuf or application/json",
            });
        }
    };
    let bytes = decompress(headers, body, limit)?;
    match format {
        Format::Protobuf => otlp::ExportTraceServiceRequest::decode(bytes)
            .map_err(|e| RequestError::Malformed(e.to_string())),
        // `ExportTraceServiceRequest` and `TracesData` share their JSON form.
        Format::Json => otlp_json::decode(&bytes)
            .map(|data| otlp::ExportTraceServiceRequest {
                resource_spans: data.resource_spans,
            })
            .map_err(|e| RequestError::Malformed(e.to_string())),
    }
}

/// `N spans rejected: <first problems>`, naming at most [`NAMED_REJECTIONS`].
fn describe_rejected(rejected: &[RejectedSpan], naming: FieldNaming) -> String {
    let mut message = format!(
        "{} span{} rejected: ",
        rejected.len(),
        if rejected.len() == 1 { "" } else { "s" }
    );
    let named: Vec<String> = rejected
        .iter()
        .take(NAMED_REJECTIONS)
        .map(|r| r.describe(naming))
        .collect();
    message.push_str(&named.join("; "));
    if rejected.len() > NAMED_REJECTIONS {
        message.push_str(&format!("; and {} more", rejected.len() - NAMED_REJECTIONS));
    }
    message
}

fn success_response(rejected: &[RejectedSpan], format: Format) -> Response {
    let partial_success = (!rejected.is_empty()).then(|| otlp::ExportTracePartialSuccess {
        rejected_spans: rejected.len() as i64,
        error_message: describe_rejected(rejected, format.naming()),
    });
    let body = match format {
        Format::Protobuf => otlp::ExportTraceServiceResponse { partial_success }.encode_to_vec(),
        Format::Json => json_response(partial_success.as_ref()),
    };
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// `ExportTraceServiceResponse` in OTLP/JSON: `{}` when everything was
/// accepted; `rejectedSpans` is a string, as protobuf's JSON mapping writes
/// 64-bit integers.
fn json_response(partial_success: Option<&otlp::ExportTracePartialSuccess>) -> Vec<u8> {
    let value = match partial_success {
        None => serde_json::json!({}),
        Some(p) => serde_json::json!({
            "partialSuccess": {
                "rejectedSpans": p.rejected_spans.to_string(),
                "errorMessage": p.error_message,
            }
        }),
    };
    value.to_string().into_bytes()
}

fn error_response(error: &RequestError, format: Format) -> Response {
    let status = RpcStatus {
        code: error.grpc_code(),
        message: error.to_string(),
    };
    let body = match format {
        Format::Protobuf => status.encode_to_vec(),
        Format::Json => serde_json::json!({ "code": status.code, "message": status.message })
            .to_string()
            .into_bytes(),
    };
    let response = (
        error.http_status(),
        [(header::CONTENT_TYPE, format.content_type())],
        body,
    )
        .into_response();
    if error.http_status() == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(%error, "request failed");
    }
    with_retry_after(response, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grouping::SpanProblem;
    use axum::http::HeaderValue;
    use std::io::Write;

    fn headers(content_type: &str, encoding: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).unwrap(),
        );
        if let Some(e) = encoding {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_str(e).unwrap());
        }
        h
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn decodes_gzip_protobuf() {
        let request = otlp::ExportTraceServiceRequest {
            resource_spans: vec![otlp::ResourceSpans::default()],
        };
        let body = gzip(&request.encode_to_vec());
        let decoded = decode(
            &headers("application/x-protobuf", Some("gzip")),
            body.into(),
            1024,
        )
        .unwrap();
        assert_eq!(decoded, request);
    }

    #[test]
    fn decodes_json_plain_and_gzip() {
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{
            "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174",
            "name":"x","kind":2,"startTimeUnixNano":"10","endTimeUnixNano":20}]}]}]}"#;
        for (encoding, bytes) in [(None, body.to_vec()), (Some("gzip"), gzip(body))] {
            let decoded = decode(
                &headers("application/json; charset=utf-8", encoding),
                bytes.into(),
                4096,
            )
            .unwrap();
            let span = &decoded.resource_spans[0].scope_spans[0].spans[0];
            assert_eq!(span.trace_id[0], 0x5b);
            assert_eq!(span.span_id.len(), 8);
            assert_eq!(span.kind, 2);
            assert_eq!(span.end_time_unix_nano, 20);
        }
    }

    #[test]
    fn bad_json_names_the_field() {
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#;
        let err = decode(
            &headers("application/json", None),
            Bytes::from_static(body),
            4096,
        )
        .unwrap_err();
        assert_eq!(err.http_status(), StatusCode::BAD_REQUEST);
        assert!(
            err.to_string()
                .contains("resourceSpans[0].scopeSpans[0].spans[0].traceId"),
            "{err}"
        );
        let err = decode(
            &headers("application/json", None),
            Bytes::from_static(b"{"),
            4096,
        )
        .unwrap_err();
        assert!(err.to_string().contains("invalid JSON"), "{err}");
    }

    #[test]
    fn gzip_bomb_is_cut_at_the_limit() {
        let body = gzip(&vec![0u8; 1_000_000]);
        let err = decode(
            &headers("application/x-protobuf", Some("gzip")),
            body.into(),
            4096,
        )
        .unwrap_err();
        assert!(matches!(err, RequestError::TooLarge { limit: 4096 }));
    }

    #[test]
    fn wrong_type_and_garbage_are_refused_with_reason() {
        let err = decode(&headers("text/plain", None), Bytes::new(), 10).unwrap_err();
        assert_eq!(err.http_status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(err.to_string().contains("application/json"), "{err}");
        let err = decode(
            &headers("application/x-protobuf", None),
            Bytes::from_static(&[0x0a, 0xff]),
            10,
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("malformed request body"),
            "{err}"
        );
        let err = decode(
            &headers("application/x-protobuf", Some("br")),
            Bytes::new(),
            10,
        )
        .unwrap_err();
        assert_eq!(err.reason(), "unsupported_encoding");
    }

    fn rejected(n: usize) -> Vec<RejectedSpan> {
        (0..n)
            .map(|i| RejectedSpan {
                resource: 0,
                scope: 0,
                span: i,
                problem: SpanProblem::EndBeforeStart { start: 2, end: 1 },
            })
            .collect()
    }

    #[tokio::test]
    async fn partial_success_in_both_encodings() {
        let response = success_response(&rejected(12), Format::Protobuf);
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let decoded = otlp::ExportTraceServiceResponse::decode(body).unwrap();
        let partial = decoded.partial_success.unwrap();
        assert_eq!(partial.rejected_spans, 12);
        assert!(partial.error_message.starts_with(
            "12 spans rejected: resource_spans[0].scope_spans[0].spans[0].end_time_unix_nano: 1 is before start_time_unix_nano 2; "
        ), "{}", partial.error_message);
        assert!(partial.error_message.ends_with("; and 2 more"));

        let response = success_response(&rejected(1), Format::Json);
        assert_eq!(response.headers()[header::CONTENT_TYPE], JSON);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["partialSuccess"]["rejectedSpans"], "1");
        assert_eq!(
            value["partialSuccess"]["errorMessage"],
            "1 span rejected: resourceSpans[0].scopeSpans[0].spans[0].endTimeUnixNano: 1 is before startTimeUnixNano 2"
        );

        let response = success_response(&[], Format::Json);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        assert_eq!(&body[..], b"{}");
        let response = success_response(&[], Format::Protobuf);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        assert!(body.is_empty(), "an empty ExportTraceServiceResponse");
    }

    #[tokio::test]
    async fn errors_are_rpc_status_in_the_request_encoding() {
        let response = error_response(&RequestError::Overloaded, Format::Json);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["code"], 8);
        assert!(value["message"].as_str().unwrap().contains("overloaded"));

        let response = error_response(&RequestError::Malformed("x".into()), Format::Protobuf);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(!response.headers().contains_key(header::RETRY_AFTER));
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        assert_eq!(RpcStatus::decode(body).unwrap().code, 3);
    }
}
