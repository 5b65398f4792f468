//! Jaeger over gRPC: `jaeger.api_v2.CollectorService/PostSpans`, the
//! protocol of Jaeger agents and of OpenTelemetry Collectors' Jaeger
//! exporters, on port 14250.
//!
//! The batch is converted to OTLP ([`crate::convert::jaeger_model`]) and
//! goes through the shared pipeline. Jaeger's protocol has no partial
//! success, so one invalid span refuses the whole batch with
//! INVALID_ARGUMENT naming it; Kafka trouble is UNAVAILABLE or
//! RESOURCE_EXHAUSTED, as for OTLP.
//!
//! The same server answers `jaeger.api_v2.SamplingManager` when sampling is
//! enabled, as Jaeger's collector does on this port.

use std::net::SocketAddr;
use std::sync::Arc;

use spanway_schemas::proto::grpc::jaeger::collector_service_server::{
    CollectorService, CollectorServiceServer,
};
use spanway_schemas::proto::jaeger::api_v2 as jaeger;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::service::Routes;
use tonic::{Request, Response, Status};
use tower::Layer as _;

use crate::convert::jaeger_model::batch_to_otlp;
use crate::error::RequestError;
use crate::pipeline::Pipeline;
use crate::receiver::body_meter::{BodyLimits, HeldBody, Meter};
use crate::receiver::listener::{self, Endpoint};
use crate::receiver::otlp_grpc::grpc_status;
use crate::sampling::StrategyStore;
use crate::sampling::grpc::SamplingService;

const RECEIVER: &str = "jaeger_grpc";

/// The `CollectorService` implementation.
#[derive(Debug, Clone)]
pub struct JaegerGrpc {
    pipeline: Arc<Pipeline>,
}

#[tonic::async_trait]
impl CollectorService for JaegerGrpc {
    async fn post_spans(
        &self,
        request: Request<jaeger::PostSpansRequest>,
    ) -> Result<Response<jaeger::PostSpansResponse>, Status> {
        let held = HeldBody::take(request.extensions(), self.pipeline.budget());
        let batch = request.into_inner().batch.unwrap_or_default();
        let otlp = match batch_to_otlp(batch) {
            Ok(otlp) => otlp,
            Err(invalid) => {
                let error = RequestError::from(invalid);
                self.pipeline.count_request_refusal(RECEIVER, &error);
                return Err(grpc_status(&error));
            }
        };
        self.pipeline
            .accept(RECEIVER, otlp, held)
            .await
            .map_err(|error| grpc_status(&error))?;
        Ok(Response::new(jaeger::PostSpansResponse {}))
    }
}

/// What the Jaeger gRPC server hosts; at least one of the two is set.
#[derive(Debug, Clone)]
pub struct JaegerGrpcServices {
    /// `CollectorService`, when `jaeger_grpc.enabled`.
    pub collector: Option<Arc<Pipeline>>,
    /// `SamplingManager`, when `sampling.enabled`.
    pub sampling: Option<Arc<StrategyStore>>,
    /// Largest request message, after gzip decompression, and how long it
    /// may take to arrive.
    pub limits: BodyLimits,
}

/// Binds `endpoint` and serves until `shutdown`; in-flight requests finish
/// first.
pub async fn serve(
    endpoint: Endpoint,
    services: JaegerGrpcServices,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let mut routes = Routes::default();
    if let Some(pipeline) = services.collector {
        let meter = Meter::new(pipeline.clone(), RECEIVER, services.limits.timeout).unary_grpc();
        routes = routes.add_service(
            meter.layer(
                CollectorServiceServer::new(JaegerGrpc { pipeline })
                    .accept_compressed(CompressionEncoding::Gzip)
                    .max_decoding_message_size(services.limits.max_bytes),
            ),
        );
    }
    if let Some(store) = services.sampling {
        routes = routes.add_service(SamplingService::server(store));
    }
    listener::serve_grpc(endpoint, routes, services.limits.timeout, shutdown).await
}
