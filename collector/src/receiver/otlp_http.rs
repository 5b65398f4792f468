//! OTLP over HTTP: `POST /v1/traces` with a protobuf body, optionally gzip.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use prost::Message;
use spanway_schemas::proto::otlp;
use tokio_util::sync::CancellationToken;

use crate::error::{ErrorClass, RequestError};
use crate::pipeline::Pipeline;

const RECEIVER: &str = "otlp_http";
const PROTOBUF: &str = "application/x-protobuf";

/// `google.rpc.Status`, the body OTLP/HTTP error responses carry.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

#[derive(Clone)]
struct ReceiverState {
    pipeline: Arc<Pipeline>,
    max_request_bytes: usize,
}

/// Binds `addr` and serves until `shutdown`; in-flight requests finish first.
pub async fn serve(
    addr: SocketAddr,
    max_request_bytes: usize,
    pipeline: Arc<Pipeline>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/v1/traces", post(export))
        // The compressed body may not exceed the limit either.
        .layer(DefaultBodyLimit::max(max_request_bytes))
        .with_state(ReceiverState {
            pipeline,
            max_request_bytes,
        });
    let task = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(error) = result {
            tracing::error!(%error, "OTLP/HTTP receiver stopped");
        }
    });
    Ok((bound, task))
}

async fn export(State(state): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> Response {
    let request = match decode(&headers, body, state.max_request_bytes) {
        Ok(request) => request,
        Err(error) => {
            state.pipeline.count_request_refusal(RECEIVER, &error);
            return error_response(&error);
        }
    };
    match state.pipeline.accept(RECEIVER, request).await {
        Ok(()) => {
            let body = otlp::ExportTraceServiceResponse::default().encode_to_vec();
            ([(header::CONTENT_TYPE, PROTOBUF)], body).into_response()
        }
        Err(error) => error_response(&error),
    }
}

fn decode(
    headers: &HeaderMap,
    body: Bytes,
    limit: usize,
) -> Result<otlp::ExportTraceServiceRequest, RequestError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case(PROTOBUF) {
        return Err(RequestError::UnsupportedMediaType(content_type.to_owned()));
    }
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let bytes = match encoding.as_str() {
        "" | "identity" => body,
        "gzip" => Bytes::from(gunzip(&body, limit)?),
        other => return Err(RequestError::UnsupportedEncoding(other.to_owned())),
    };
    otlp::ExportTraceServiceRequest::decode(bytes)
        .map_err(|e| RequestError::Malformed(e.to_string()))
}

/// Decompresses at most `limit` bytes, so a small gzip bomb cannot make us
/// allocate more than the configured request size.
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, RequestError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let mut decoder = flate2::read::GzDecoder::new(body).take(limit as u64 + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|e| RequestError::Malformed(format!("gzip: {e}")))?;
    if out.len() > limit {
        return Err(RequestError::TooLarge { limit });
    }
    Ok(out)
}

fn error_response(error: &RequestError) -> Response {
    let status = RpcStatus {
        code: error.grpc_code(),
        message: error.to_string(),
    };
    let mut response = (
        error.http_status(),
        [(header::CONTENT_TYPE, PROTOBUF)],
        status.encode_to_vec(),
    )
        .into_response();
    if error.class() != ErrorClass::BadInput {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if error.http_status() == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(%error, "request failed");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
