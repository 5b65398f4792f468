//! `jaeger.api_v2.SamplingManager/GetSamplingStrategy`, served beside
//! `CollectorService` on the Jaeger gRPC port as Jaeger's collector does.

use std::sync::Arc;

use spanway_schemas::proto::grpc::jaeger::sampling_manager_server::{
    SamplingManager, SamplingManagerServer,
};
use spanway_schemas::proto::jaeger::api_v2 as jaeger;
use tonic::{Request, Response, Status};

use super::StrategyStore;

/// The gRPC face of a [`StrategyStore`].
#[derive(Debug, Clone)]
pub struct SamplingService {
    store: Arc<StrategyStore>,
}

impl SamplingService {
    /// The tonic service for `store`.
    pub fn server(store: Arc<StrategyStore>) -> SamplingManagerServer<SamplingService> {
        SamplingManagerServer::new(SamplingService { store })
    }
}

#[tonic::async_trait]
impl SamplingManager for SamplingService {
    async fn get_sampling_strategy(
        &self,
        request: Request<jaeger::SamplingStrategyParameters>,
    ) -> Result<Response<jaeger::SamplingStrategyResponse>, Status> {
        let service = request.into_inner().service_name;
        Ok(Response::new(self.store.lookup(&service, "grpc")))
    }
}
