//! What the HTTP receivers share: the server with its size limit and
//! graceful shutdown, reading the media type, undoing gzip within the size
//! limit, running the decoder off the reactor, and the handler of protocols
//! that accept or refuse a request as a whole.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use spanway_schemas::proto::otlp;
use tokio_util::sync::CancellationToken;

use crate::error::{ErrorClass, RequestError};
use crate::pipeline::Pipeline;
use crate::receiver::body_meter::{BodyLimits, HeldBody, Meter};
use crate::receiver::listener::{self, Endpoint};

/// Binds `endpoint` and serves `app` until `shutdown`, with bodies
/// (compressed or not) within `limits` and reserving the byte budget as
/// they arrive; in-flight requests finish first.
pub(crate) async fn serve(
    endpoint: Endpoint,
    app: Router,
    limits: BodyLimits,
    meter: Meter,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = app
        .layer(DefaultBodyLimit::max(limits.max_bytes))
        .layer(meter);
    listener::serve_http(endpoint, app, limits.timeout, shutdown).await
}

/// Turns a request's headers and body into OTLP, within a size limit.
pub(crate) type Decoder =
    fn(&HeaderMap, Bytes, usize) -> Result<otlp::ExportTraceServiceRequest, RequestError>;

/// A protocol without partial success (Zipkin, Jaeger Thrift): one path,
/// 202 once Kafka has every span, a plain-text error otherwise.
#[derive(Clone, Copy)]
pub(crate) struct WholeBody {
    /// The metric label.
    pub receiver: &'static str,
    /// The one path requests are posted to.
    pub path: &'static str,
    /// The receiver's decoder.
    pub decode: Decoder,
}

impl WholeBody {
    /// Binds `endpoint` and serves the protocol until `shutdown`; in-flight
    /// requests finish first.
    pub(crate) async fn serve(
        self,
        endpoint: Endpoint,
        limits: BodyLimits,
        pipeline: Arc<Pipeline>,
        shutdown: CancellationToken,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let meter = Meter::new(pipeline.clone(), self.receiver, limits.timeout);
        let state = WholeRequest {
            receiver: self.receiver,
            decode: self.decode,
            max_request_bytes: limits.max_bytes,
            pipeline,
        };
        let app = Router::new()
            .route(self.path, post(accept_whole))
            .with_state(state);
        serve(endpoint, app, limits, meter, shutdown).await
    }
}

/// What a request handler of a [`WholeBody`] protocol needs.
#[derive(Clone)]
struct WholeRequest {
    /// The metric label.
    pub receiver: &'static str,
    /// The receiver's decoder.
    pub decode: Decoder,
    /// Largest body, after decompression.
    pub max_request_bytes: usize,
    /// Where decoded requests go.
    pub pipeline: Arc<Pipeline>,
}

async fn accept_whole(
    State(state): State<WholeRequest>,
    headers: HeaderMap,
    extensions: Extensions,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return refused_body(&extensions, rejection, text_error),
    };
    let held = HeldBody::take(&extensions, state.pipeline.budget());
    let (limit, decode) = (state.max_request_bytes, state.decode);
    let request = match off_reactor(move || decode(&headers, body, limit)).await {
        Ok(request) => request,
        Err(error) => {
            state.pipeline.count_request_refusal(state.receiver, &error);
            return text_error(&error);
        }
    };
    match state.pipeline.accept(state.receiver, request, held).await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(error) => text_error(&error),
    }
}

/// The answer to a body that could not be read: `refuse`'s answer when the
/// meter cut it short (the byte budget was spent or the body timeout
/// passed; the meter counted it), axum's own otherwise (413 for a body over
/// the size limit).
pub(crate) fn refused_body(
    extensions: &Extensions,
    rejection: BytesRejection,
    refuse: impl FnOnce(&RequestError) -> Response,
) -> Response {
    match HeldBody::refusal(extensions) {
        Some(error) => refuse(&error),
        None => rejection.into_response(),
    }
}

/// The media type of the request, lowercased, without parameters
/// (`application/json; charset=utf-8` → `application/json`).
pub(crate) fn media_type(headers: &HeaderMap) -> String {
    content_type(headers)
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The raw `Content-Type` header, for error messages.
pub(crate) fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The body with its `Content-Encoding` undone; `gzip` and none are read.
pub(crate) fn decompress(
    headers: &HeaderMap,
    body: Bytes,
    limit: usize,
) -> Result<Bytes, RequestError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "" | "identity" => Ok(body),
        "gzip" => Ok(Bytes::from(gunzip(&body, limit)?)),
        other => Err(RequestError::UnsupportedEncoding(other.to_owned())),
    }
}

/// Decompresses at most `limit` bytes, so a small gzip bomb cannot make us
/// allocate more than the configured request size.
pub(crate) fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, RequestError> {
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

/// Runs a decoder on the blocking pool: a request of several megabytes takes
/// milliseconds to decode, which a tokio worker must not spend.
pub(crate) async fn off_reactor<T, F>(decode: F) -> Result<T, RequestError>
where
    F: FnOnce() -> Result<T, RequestError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(decode)
        .await
        .unwrap_or_else(|e| Err(RequestError::Malformed(format!("decoder failed: {e}"))))
}

/// Adds `Retry-After` to the answer of a retryable refusal.
pub(crate) fn with_retry_after(mut response: Response, error: &RequestError) -> Response {
    if error.class() != ErrorClass::BadInput {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// A refusal as Zipkin and Jaeger give it: the status and a one-line
/// message, plus `Retry-After` when retrying later can help.
pub(crate) fn text_error(error: &RequestError) -> Response {
    let response = (
        error.http_status(),
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{error}\n"),
    )
        .into_response();
    with_retry_after(response, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn media_type_drops_parameters_and_case() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Application/JSON; charset=utf-8"),
        );
        assert_eq!(media_type(&h), "application/json");
        assert_eq!(media_type(&HeaderMap::new()), "");
    }

    #[test]
    fn gzip_is_undone_within_the_limit() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        let out = decompress(&h, Bytes::from(gzip(b"hello")), 10).unwrap();
        assert_eq!(&out[..], b"hello");
        let err = decompress(&h, Bytes::from(gzip(&[0u8; 100])), 10).unwrap_err();
        assert!(matches!(err, RequestError::TooLarge { limit: 10 }));
        let err = decompress(&h, Bytes::from_static(b"not gzip"), 10).unwrap_err();
        assert!(err.to_string().contains("gzip"), "{err}");
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
        let err = decompress(&h, Bytes::new(), 10).unwrap_err();
        assert_eq!(err.reason(), "unsupported_encoding");
    }
}
