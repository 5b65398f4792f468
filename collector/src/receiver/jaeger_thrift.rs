//! Jaeger's collector HTTP API: `POST /api/traces` with a Thrift
//! binary-protocol `Batch` (what Jaeger clients' `HttpSender` posts), on its
//! own listener (14268 by default, as Jaeger's collector).
//!
//! The batch is decoded into Jaeger's `api_v2` model
//! ([`crate::convert::jaeger_thrift`]), converted into OTLP like the
//! Jaeger gRPC receiver's batches, and handed to the shared pipeline. The
//! answer is 202 once Kafka acknowledged every span, as Jaeger's collector
//! answers; refusals are plain text, 400 naming the field at fault, or
//! 429/503 with `Retry-After` when Kafka is slow or down. Jaeger has no
//! partial success: one invalid span refuses the batch.

use axum::body::Bytes;
use axum::http::HeaderMap;
use spanway_schemas::proto::otlp;

use crate::convert::jaeger_model;
use crate::convert::jaeger_thrift;
use crate::error::RequestError;
use crate::receiver::http_server::{WholeBody, content_type, decompress, media_type};

/// Metric label of this receiver.
pub const RECEIVER: &str = "jaeger_thrift_http";
/// The media types Jaeger's collector reads as a binary-protocol batch.
const THRIFT_TYPES: [&str; 2] = [
    "application/x-thrift",
    "application/vnd.apache.thrift.binary",
];

/// Jaeger Thrift/HTTP: `POST /api/traces`, answered once Kafka has every span.
pub(crate) const PROTOCOL: WholeBody = WholeBody {
    receiver: RECEIVER,
    path: "/api/traces",
    decode,
};

fn decode(
    headers: &HeaderMap,
    body: Bytes,
    limit: usize,
) -> Result<otlp::ExportTraceServiceRequest, RequestError> {
    if !THRIFT_TYPES.contains(&media_type(headers).as_str()) {
        return Err(RequestError::UnsupportedMediaType {
            got: content_type(headers).to_owned(),
            expected: "application/x-thrift or application/vnd.apache.thrift.binary",
        });
    }
    let bytes = decompress(headers, body, limit)?;
    let batch =
        jaeger_thrift::decode_batch(&bytes).map_err(|e| RequestError::Malformed(e.to_string()))?;
    // An id the model conversion refuses (a reference's) is a bad span.
    jaeger_model::batch_to_otlp(batch).map_err(RequestError::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, StatusCode, header};

    fn headers(content_type: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).unwrap(),
        );
        h
    }

    #[test]
    fn converts_the_java_clients_batch() {
        let body = Bytes::from_static(include_bytes!("../../testdata/jaeger-java-batch.thrift"));
        for t in THRIFT_TYPES {
            let request = decode(&headers(t), body.clone(), 1 << 20).unwrap();
            let resource = &request.resource_spans[0];
            assert_eq!(
                spanway_schemas::to_jaeger::service_name(resource.resource.as_ref()),
                "java-jaeger-client"
            );
            let spans: Vec<_> = resource.scope_spans.iter().flat_map(|s| &s.spans).collect();
            let child = spans.iter().find(|s| s.name == "child-0-1").unwrap();
            assert_eq!(child.kind, otlp::span::SpanKind::Client as i32);
            assert_eq!(
                child.status.as_ref().map(|s| s.code),
                Some(otlp::status::StatusCode::Error as i32)
            );
            assert_eq!(child.events.len(), 1);
            assert_eq!(child.parent_span_id.len(), 8);
        }
    }

    #[test]
    fn refusals() {
        let err = decode(&headers("application/json"), Bytes::new(), 10).unwrap_err();
        assert_eq!(err.http_status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let err = decode(
            &headers("application/x-thrift"),
            Bytes::from_static(&[0]),
            10,
        )
        .unwrap_err();
        assert_eq!(err.http_status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            err.to_string(),
            "malformed request body: batch.process: missing (required)"
        );
    }
}
