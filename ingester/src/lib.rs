//! The ingester: a Kafka consumer group that writes Jaeger-compatible span
//! and service documents to Elasticsearch or OpenSearch, committing a
//! record's offset only once the engine has its documents.

pub mod bulk;
pub mod config;
pub mod consumer;
pub mod document;
pub mod metrics;
pub mod response;
pub mod templates;
pub mod writer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use spanway_service_kit::ops::{self, Readiness};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::IngesterConfig;
use crate::consumer::ConsumeError;
use crate::document::IndexNames;
use crate::metrics::IngesterMetrics;
use crate::writer::{BulkWriter, WriterError};

/// Failures while starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The Kafka consumer could not be created or subscribed.
    #[error(transparent)]
    Kafka(#[from] ConsumeError),
    /// The search engine client or templates failed.
    #[error(transparent)]
    Writer(#[from] WriterError),
    /// The operations endpoint could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A started ingester.
#[derive(Debug)]
pub struct Ingester {
    /// Where the operations endpoint listens.
    pub ops_addr: SocketAddr,
    /// The counters, for tests and embedding.
    pub metrics: IngesterMetrics,
    task: JoinHandle<Result<(), ConsumeError>>,
}

impl Ingester {
    /// Installs templates, joins the consumer group and starts consuming.
    pub async fn start(
        config: IngesterConfig,
        shutdown: CancellationToken,
    ) -> Result<Ingester, StartError> {
        let metrics = IngesterMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let writer = BulkWriter::new(
            &config.elasticsearch.url,
            config.bulk.retry_initial_backoff,
            config.bulk.retry_max_backoff,
            metrics.clone(),
        )?;
        if config.elasticsearch.create_templates {
            let names = IndexNames::new(&config.elasticsearch.index_prefix);
            writer
                .install_templates(
                    names.prefix(),
                    config.elasticsearch.shards,
                    config.elasticsearch.replicas,
                )
                .await?;
        }
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
        spawn_readiness_probe(writer.clone(), ready, shutdown.clone());
        let consumer = consumer::create_consumer(&config)?;
        tracing::info!(%ops_addr, topics = ?config.kafka.topics, group = %config.kafka.group_id, "ingester started");
        let task = tokio::spawn(consumer::run(
            config,
            consumer,
            writer,
            metrics.clone(),
            shutdown,
        ));
        Ok(Ingester {
            ops_addr,
            metrics,
            task,
        })
    }

    /// Waits until the consumer loop has drained and committed.
    pub async fn wait(self) -> Result<(), ConsumeError> {
        match self.task.await {
            Ok(result) => result,
            Err(error) => {
                tracing::error!(%error, "consumer task failed");
                Ok(())
            }
        }
    }
}

/// Ready means the search engine answers.
fn spawn_readiness_probe(writer: BulkWriter, ready: Readiness, shutdown: CancellationToken) {
    ops::spawn_readiness_probe(ready, Duration::from_secs(5), shutdown, move || {
        let writer = writer.clone();
        async move { writer.ping().await }
    });
}
