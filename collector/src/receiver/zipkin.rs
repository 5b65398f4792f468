//! Zipkin's HTTP API: `POST /api/v2/spans` with a JSON array of v2 spans,
//! optionally gzip, on its own listener (9411 by default, as Zipkin).
//!
//! Zipkin answers 202 with an empty body once it has the spans; here that
//! means once Kafka acknowledged them. A refusal carries a plain-text message
//! naming the field at fault (`spans[3].traceId: ...`); Zipkin has no partial
//! success, so one bad span refuses the request.

use axum::body::Bytes;
use axum::http::HeaderMap;
use spanway_schemas::proto::otlp;

use crate::convert::zipkin_v2;
use crate::error::RequestError;
use crate::receiver::http_server::{WholeBody, content_type, decompress, media_type};

/// Metric label of this receiver.
pub const RECEIVER: &str = "zipkin";

/// Zipkin v2 JSON: `POST /api/v2/spans`, answered once Kafka has every span.
pub(crate) const PROTOCOL: WholeBody = WholeBody {
    receiver: RECEIVER,
    path: "/api/v2/spans",
    decode,
};

fn decode(
    headers: &HeaderMap,
    body: Bytes,
    limit: usize,
) -> Result<otlp::ExportTraceServiceRequest, RequestError> {
    // Zipkin reads a body without a content type as JSON, and so do we.
    match media_type(headers).as_str() {
        "" | "application/json" => {}
        _ => {
            return Err(RequestError::UnsupportedMediaType {
                got: content_type(headers).to_owned(),
                expected: "application/json (Zipkin v2 JSON)",
            });
        }
    }
    let bytes = decompress(headers, body, limit)?;
    zipkin_v2::decode(&bytes).map_err(|e| RequestError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver::http_server::text_error;
    use axum::http::{HeaderValue, StatusCode, header};

    fn headers(content_type: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(t) = content_type {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(t).unwrap());
        }
        h
    }

    #[test]
    fn reads_json_with_or_without_content_type() {
        let body =
            Bytes::from_static(br#"[{"traceId":"5af7183fb1d4cf5f","id":"352bff9a74ca9ad2"}]"#);
        for t in [
            None,
            Some("application/json"),
            Some("application/json; charset=utf-8"),
        ] {
            let request = decode(&headers(t), body.clone(), 1024).unwrap();
            assert_eq!(request.resource_spans.len(), 1);
        }
        let err = decode(&headers(Some("application/x-protobuf")), body, 1024).unwrap_err();
        assert_eq!(err.http_status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn reads_what_zipkins_java_reporter_sends() {
        // Captured from io.zipkin.reporter2's URLConnectionSender 3.4.3
        // (dev/clients/java/src/ZipkinSend.java, two traces of two spans):
        // gzip, as the sender compresses by default.
        let body = Bytes::from_static(include_bytes!("../../testdata/zipkin-java-spans.json.gz"));
        let mut h = headers(Some("application/json"));
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        let request = decode(&h, body, 1 << 20).unwrap();
        assert_eq!(request.resource_spans.len(), 1, "one local service");
        let spans: Vec<_> = request.resource_spans[0]
            .scope_spans
            .iter()
            .flat_map(|s| &s.spans)
            .collect();
        assert_eq!(spans.len(), 4);
        let client = spans.iter().find(|s| s.name == "call-1").unwrap();
        assert_eq!(client.kind, otlp::span::SpanKind::Client as i32);
        assert_eq!(client.status.as_ref().unwrap().message, "timeout");
        assert_eq!(client.start_time_unix_nano, 1_795_656_115_869_100_000);
    }

    #[test]
    fn bad_span_is_a_400_naming_the_field() {
        let body = Bytes::from_static(br#"[{"traceId":"5af7183fb1d4cf5f","id":"352bff9a74ca9ad2"},{"traceId":"x","id":"352bff9a74ca9ad2"}]"#);
        let err = decode(&headers(None), body, 1024).unwrap_err();
        assert_eq!(err.http_status(), StatusCode::BAD_REQUEST);
        assert!(err.to_string().contains("spans[1].traceId"), "{err}");
    }

    #[tokio::test]
    async fn retryable_refusals_carry_retry_after() {
        let response = text_error(&RequestError::Unavailable("down".into()));
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let response = text_error(&RequestError::Malformed("x".into()));
        assert!(!response.headers().contains_key(header::RETRY_AFTER));
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"malformed request body: x\n");
    }
}
