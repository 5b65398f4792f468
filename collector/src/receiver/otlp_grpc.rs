//! OTLP over gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`,
//! gzip accepted.
//!
//! Answers as the OTLP specification asks: an empty response when every
//! span was published, `partial_success` when invalid spans were left out,
//! INVALID_ARGUMENT naming the field when nothing could be taken, and
//! UNAVAILABLE or RESOURCE_EXHAUSTED, both with a `RetryInfo`, when Kafka is
//! down or slow. Exporters treat RESOURCE_EXHAUSTED as retryable only when
//! it carries `RetryInfo` (OTLP spec, "Failures" under OTLP/gRPC).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf as _, Bytes};
use prost::Message as _;
use spanway_schemas::prost_types;
use spanway_schemas::proto::otlp;
use tokio_util::sync::CancellationToken;
use tonic::codec::{
    BufferSettings, Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings,
};
use tonic::codegen::{Body, StdError, http};
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::{Code, Request, Response, Status};
use tower::Layer as _;

use crate::error::{ErrorClass, RequestError};
use crate::grouping::{FieldNaming, RejectedSpan};
use crate::pipeline::Pipeline;
use crate::receiver::body_meter::{BodyLimits, HeldBody, Meter};
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
        ErrorClass::BadInput if error.grpc_code() == Code::DeadlineExceeded as i32 => {
            return Status::deadline_exceeded(message);
        }
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

/// `TraceService/Export`, taking the request's bytes as they arrived.
///
/// The generated server would decode every request into messages before
/// the handler sees it; the pipeline reads the encoded request in place
/// instead ([`Pipeline::accept_encoded_partial`]), validating it as
/// strictly, so this service hands it the bytes. The response and the
/// gRPC framing, compression and size limit are tonic's as before.
#[derive(Debug, Clone)]
pub struct OtlpGrpc {
    pipeline: Arc<Pipeline>,
    max_message_bytes: usize,
}

impl OtlpGrpc {
    async fn export(
        &self,
        request: Request<Bytes>,
    ) -> Result<otlp::ExportTraceServiceResponse, Status> {
        let held = HeldBody::take(request.extensions(), self.pipeline.budget());
        let accepted = self
            .pipeline
            .accept_encoded_partial(RECEIVER, request.into_inner(), held)
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
        Ok(otlp::ExportTraceServiceResponse { partial_success })
    }
}

impl NamedService for OtlpGrpc {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

/// The one method's path.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

impl<B> tower::Service<http::Request<B>> for OtlpGrpc
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let service = self.clone();
        Box::pin(async move {
            if request.uri().path() != EXPORT_PATH {
                return Ok(Status::unimplemented("unknown method").into_http());
            }
            let mut accept = EnabledCompressionEncodings::default();
            accept.enable(CompressionEncoding::Gzip);
            let mut grpc = tonic::server::Grpc::new(ExportCodec)
                .apply_compression_config(accept, EnabledCompressionEncodings::default())
                .apply_max_message_size_config(Some(service.max_message_bytes), None);
            Ok(grpc.unary(ExportMethod(service), request).await)
        })
    }
}

/// The unary method tonic drives.
struct ExportMethod(OtlpGrpc);

impl tonic::server::UnaryService<Bytes> for ExportMethod {
    type Response = otlp::ExportTraceServiceResponse;
    type Future =
        Pin<Box<dyn Future<Output = Result<Response<Self::Response>, Status>> + Send + 'static>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move { service.export(request).await.map(Response::new) })
    }
}

/// Requests as bytes, responses encoded by prost.
#[derive(Debug, Clone, Copy, Default)]
struct ExportCodec;

impl Codec for ExportCodec {
    type Encode = otlp::ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = tonic_prost::ProstEncoder<otlp::ExportTraceServiceResponse>;
    type Decoder = BytesDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        BytesDecoder
    }
}

/// Takes a message's bytes out of tonic's buffer without copying them.
#[derive(Debug, Clone, Copy, Default)]
struct BytesDecoder;

impl Decoder for BytesDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}

/// Binds `endpoint` and serves until `shutdown`; in-flight requests finish
/// first.
pub async fn serve(
    endpoint: Endpoint,
    limits: BodyLimits,
    pipeline: Arc<Pipeline>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let meter = Meter::new(pipeline.clone(), RECEIVER, limits.timeout).unary_grpc();
    let service = OtlpGrpc {
        pipeline,
        max_message_bytes: limits.max_bytes,
    };
    let routes = Routes::new(meter.layer(service));
    listener::serve_grpc(endpoint, routes, limits.timeout, shutdown).await
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
