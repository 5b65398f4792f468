//! Why a request was refused, and how each class maps to a status.

use axum::http::StatusCode;

use crate::grouping::InvalidSpan;

/// A refused export request. Each variant belongs to one class that decides
/// the status code and whether the client should retry.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The body is not a valid message; names what is wrong.
    #[error("malformed request body: {0}")]
    Malformed(String),
    /// A span with an invalid id.
    #[error("invalid span: {0}")]
    InvalidSpan(#[from] InvalidSpan),
    /// A Jaeger span whose id cannot become an OTLP id; names the Jaeger field.
    #[error("invalid span: {0}")]
    InvalidJaegerSpan(#[from] crate::convert::jaeger_model::ConvertError),
    /// The body is larger than `otlp_http.max_request_bytes`.
    #[error("request body exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    /// A content type this receiver does not read; `expected` lists the
    /// ones it does.
    #[error("unsupported content type {got:?}: expected {expected}")]
    UnsupportedMediaType { got: String, expected: &'static str },
    /// Every span of an OTLP request was invalid, so there is nothing to
    /// accept partially; lists the spans and their problems.
    #[error("every span is invalid: {0}")]
    AllSpansInvalid(String),
    /// A content encoding this receiver does not read.
    #[error("unsupported content encoding {0:?}: expected gzip or none")]
    UnsupportedEncoding(String),
    /// One span alone is larger than a record may be; traces larger than
    /// that are split, but a span cannot be.
    #[error("{0}")]
    SpanTooLarge(String),
    /// The body did not arrive in full within the receiver's `read_timeout`;
    /// its bytes were let go.
    #[error("request body not received in full within {0:?}")]
    BodyTimeout(std::time::Duration),
    /// The byte budget or the producer queue is full: Kafka is slower than
    /// the incoming load.
    #[error("overloaded: too much data is waiting for Kafka; retry later")]
    Overloaded,
    /// Kafka did not acknowledge every record in time.
    #[error("Kafka did not acknowledge the spans: {0}; retry later")]
    Unavailable(String),
}

/// What the client should make of a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request itself is wrong; retrying it cannot help.
    BadInput,
    /// We are at capacity; retry after a pause.
    Overloaded,
    /// A dependency is down; retry after a pause.
    Unavailable,
}

impl RequestError {
    /// The class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            RequestError::Overloaded => ErrorClass::Overloaded,
            RequestError::Unavailable(_) => ErrorClass::Unavailable,
            _ => ErrorClass::BadInput,
        }
    }

    /// A fixed label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            RequestError::Malformed(_) => "malformed",
            RequestError::InvalidSpan(_) => "invalid_span",
            RequestError::InvalidJaegerSpan(_) => "invalid_span",
            RequestError::TooLarge { .. } => "too_large",
            RequestError::AllSpansInvalid(_) => "invalid_span",
            RequestError::UnsupportedMediaType { .. } => "unsupported_media_type",
            RequestError::UnsupportedEncoding(_) => "unsupported_encoding",
            RequestError::SpanTooLarge(_) => "span_too_large",
            RequestError::BodyTimeout(_) => "body_timeout",
            RequestError::Overloaded => "overloaded",
            RequestError::Unavailable(_) => "kafka_unavailable",
        }
    }

    /// The HTTP status of this error, as the OTLP/HTTP specification asks:
    /// 400 for bad data, 429 and 503 (retryable) for load and outages.
    pub fn http_status(&self) -> StatusCode {
        match self {
            RequestError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RequestError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            RequestError::UnsupportedMediaType { .. } | RequestError::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            _ => match self.class() {
                ErrorClass::BadInput => StatusCode::BAD_REQUEST,
                ErrorClass::Overloaded => StatusCode::TOO_MANY_REQUESTS,
                ErrorClass::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            },
        }
    }

    /// The gRPC code carried in the `google.rpc.Status` body.
    pub fn grpc_code(&self) -> i32 {
        if let RequestError::BodyTimeout(_) = self {
            return 4; // DEADLINE_EXCEEDED
        }
        match self.class() {
            ErrorClass::BadInput => 3,     // INVALID_ARGUMENT
            ErrorClass::Overloaded => 8,   // RESOURCE_EXHAUSTED
            ErrorClass::Unavailable => 14, // UNAVAILABLE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_map_to_retryable_statuses() {
        assert_eq!(
            RequestError::Overloaded.http_status(),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            RequestError::Unavailable("x".into()).http_status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            RequestError::Malformed("x".into()).http_status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            RequestError::TooLarge { limit: 1 }.http_status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(RequestError::Unavailable("x".into()).grpc_code(), 14);
        let slow = RequestError::BodyTimeout(std::time::Duration::from_secs(30));
        assert_eq!(slow.http_status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(slow.grpc_code(), 4);
        assert_eq!(slow.class(), ErrorClass::BadInput, "no Retry-After");
        assert_eq!(
            slow.to_string(),
            "request body not received in full within 30s"
        );
    }
}
