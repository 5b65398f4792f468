//! OTLP over gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`,
//! gzip accepted.
//!
//! Answers as the OTLP specification asks: an empty response when every
//! span was published, `partial_success` when invalid spans were left out,
//! INVALID_ARGUMENT naming the field when nothing could be taken, and
//! UNAVAILABLE or RESOURCE_EXHAUSTED, both with a `RetryInfo`, when Kafka is
//! down or slow. Exporters treat RESOURCE_EXHAUSTED as retryable only when
//! it carries `RetryInfo` (OTLP spec, "Failures" under OTLP/gRPC).

use std::net::SocketAddr;
use std::sync::Arc;

use prost::Message as _;
use spanway_schemas::prost_types;
use spanway_schemas::proto::grpc::otlp_trace::trace_service_server::{
    TraceService, TraceServiceServer,
};
use spanway_schemas::proto::otlp;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::service::Routes;
use tonic::{Code, Request, Response, Status};

use crate::error::{ErrorClass, RequestError};
use crate::grouping::{FieldNaming, RejectedSpan};
use crate::pipeline::Pipeline;
use crate::receiver::listener::{self, Endpoint};

const RECEIVER: &str = "otlp_grpc";

/// How many rejected spans a message names; the count covers them all.
const NAMED_REJECTIONS: usize = 10;

/// How long clients are asked to wait before retrying, as `Retry-After: 1`
/// does for OTLP/HTTP.
const RETRY_DELAY_SECONDS: i64 = 1;

/// `google.rpc.Status` with its details, the payload of `grpc-status-details-bin`.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<prost_types::Duration>,
}

/// The gRPC status for a refused request: the class decides the code, and
/// retryable classes carry a `RetryInfo`.
pub fn grpc_status(error: &RequestError) -> Status {
    let message = error.to_string();
    let code = match error.class() {
        ErrorClass::BadInput => return Status::invalid_argument(message),
        ErrorClass::Overloaded => Code::ResourceExhausted,
        ErrorClass::Unavailable => Code::Unavailable,
    };
    let retry = RetryInfo {
        retry_delay: Some(prost_types::Duration {
            seconds: RETRY_DELAY_SECONDS,
            nanos: 0,
        }),
    };
    let details = RpcStatus {
        code: code as i32,
        message: message.clone(),
        details: vec![prost_types::Any {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
            value: retry.encode_to_vec(),
        }],
    };
    Status::with_details(code, message, details.encode_to_vec().into())
}

/// `N spans rejected: <the first few>`, with the fields named as in the `.proto`.
fn describe_rejected(rejected: &[RejectedSpan]) -> String {
    let named: Vec<String> = rejected
        .iter()
        .take(NAMED_REJECTIONS)
        .map(|r| r.describe(FieldNaming::Proto))
        .collect();
    let mut message = format!(
        "{} span{} rejected: {}",
        rejected.len(),
        if rejected.len() == 1 { "" } else { "s" },
        named.join("; ")
    );
    if rejected.len() > NAMED_REJECTIONS {
        message.push_str(&format!("; and {} more", rejected.len() - NAMED_REJECTIONS));
    }
    message
}

/// The `TraceService` implementation.
#[derive(Debug, Clone)]
pub struct OtlpGrpc {
    pipeline: Arc<Pipeline>,
}

#[tonic::async_trait]
impl TraceService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<otlp::ExportTraceServiceRequest>,
    ) -> Result<Response<otlp::ExportTraceServiceResponse>, Status> {
        let accepted = self
            .pipeline
            .accept_partial(RECEIVER, request.into_inner())
            .await
            .map_err(|error| grpc_status(&error))?;
        if accepted.spans == 0 && !accepted.rejected.is_empty() {
            let error = RequestError::AllSpansInvalid(describe_rejected(&accepted.rejected));
            return Err(grpc_status(&error));
        }
        let partial_success =
            (!accepted.rejected.is_empty()).then(|| otlp::ExportTracePartialSuccess {
                rejected_spans: accepted.rejected.len() as i64,
                error_message: describe_rejected(&accepted.rejected),
            });
        Ok(Response::new(otlp::ExportTraceServiceResponse {
            partial_success,
        }))
    }
}

/// Binds `endpoint` and serves until `shutdown`; in-flight requests finish
/// first.
pub async fn serve(
    endpoint: Endpoint,
    max_message_bytes: usize,
    pipeline: Arc<Pipeline>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let service = TraceServiceServer::new(OtlpGrpc { pipeline })
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max_message_bytes);
    listener::serve_grpc(endpoint, Routes::new(service), shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details(status: &Status) -> RpcStatus {
        RpcStatus::decode(status.details()).unwrap()
    }

    #[test]
    fn classes_map_to_grpc_codes_with_retry_info_when_retryable() {
        let status = grpc_status(&RequestError::Overloaded);
        assert_eq!(status.code(), Code::ResourceExhausted);
        let retry = &details(&status).details[0];
        assert_eq!(retry.type_url, "type.googleapis.com/google.rpc.RetryInfo");
        let delay = RetryInfo::decode(retry.value.as_slice())
            .unwrap()
            .retry_delay
            .unwrap();
        assert_eq!(delay.seconds, 1);

        let status = grpc_status(&RequestError::Unavailable("timed out".into()));
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.message().contains("timed out"));
        assert_eq!(details(&status).code, Code::Unavailable as i32);

        let status = grpc_status(&RequestError::Malformed("x".into()));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.details().is_empty());
    }
}
