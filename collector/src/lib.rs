//! The collector: applications send spans here; it publishes them to Kafka
//! as the `schemas` contract says and answers success only once Kafka has
//! acknowledged every record of the request.

pub mod budget;
pub mod config;
pub mod error;
pub mod grouping;
pub mod metrics;
pub mod pipeline;
pub mod producer;
pub mod receiver;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use spanway_service_kit::ops::{self, Readiness};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::budget::Budget;
use crate::config::CollectorConfig;
use crate::metrics::CollectorMetrics;
use crate::pipeline::Pipeline;
use crate::producer::SpanProducer;

/// How long the final flush may take on shutdown.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Failures while starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The Kafka client could not be created from the configuration.
    #[error("kafka producer: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A started collector.
#[derive(Debug)]
pub struct Collector {
    /// Where the OTLP/HTTP receiver listens.
    pub otlp_http_addr: SocketAddr,
    /// Where the operations endpoint listens.
    pub ops_addr: SocketAddr,
    pipeline: Arc<Pipeline>,
    receiver: JoinHandle<()>,
}

impl Collector {
    /// Starts every enabled receiver and the operations endpoint. Stops
    /// accepting when `shutdown` is cancelled; [`Collector::wait`] then drains.
    pub async fn start(
        config: &CollectorConfig,
        shutdown: CancellationToken,
    ) -> Result<Collector, StartError> {
        let metrics = CollectorMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let producer = SpanProducer::new(&config.kafka, metrics.traces_split.clone())?;
        let budget = Budget::new(config.kafka.max_bytes_in_flight);
        let pipeline = Arc::new(Pipeline::new(producer, budget, metrics));

        let ready = Readiness::default();
        let ops_addr = ops::serve(
            config.ops.listen,
            Arc::new(registry),
            ready.clone(),
            shutdown.clone(),
        )
        .await
        .map_err(|source| StartError::Bind {
            addr: config.ops.listen,
            source,
        })?;
        spawn_readiness_probe(pipeline.clone(), ready, shutdown.clone());

        let (otlp_http_addr, receiver) = receiver::otlp_http::serve(
            config.otlp_http.listen,
            config.otlp_http.max_request_bytes,
            pipeline.clone(),
            shutdown,
        )
        .await
        .map_err(|source| StartError::Bind {
            addr: config.otlp_http.listen,
            source,
        })?;
        tracing::info!(%otlp_http_addr, %ops_addr, topic = %config.kafka.topic, "collector started");
        Ok(Collector {
            otlp_http_addr,
            ops_addr,
            pipeline,
            receiver,
        })
    }

    /// Waits until the receivers have stopped and finished their requests,
    /// then flushes the producer.
    pub async fn wait(self) {
        if let Err(error) = self.receiver.await {
            tracing::error!(%error, "receiver task failed");
        }
        let pipeline = self.pipeline;
        let flushed =
            tokio::task::spawn_blocking(move || pipeline.producer().flush(FLUSH_TIMEOUT)).await;
        match flushed {
            Ok(Ok(())) => tracing::info!("collector stopped"),
            Ok(Err(error)) => tracing::warn!(%error, "records still in flight at shutdown"),
            Err(error) => tracing::error!(%error, "flush task failed"),
        }
    }
}

/// Ready means Kafka answers a metadata request.
fn spawn_readiness_probe(pipeline: Arc<Pipeline>, ready: Readiness, shutdown: CancellationToken) {
    ops::spawn_readiness_probe(ready, Duration::from_secs(5), shutdown, move || {
        let probe = pipeline.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                probe.producer().check_brokers(Duration::from_secs(2))
            })
            .await
            .map(|r| r.is_ok())
            .unwrap_or(false)
        }
    });
}
