//! Streaming analytics: service dependencies and service-graph aggregates,
//! computed from the spans topic in event-time windows and written to
//! Elasticsearch/OpenSearch, identical after a crash and replay.
//!
//! Layout: [`span`] reduces records' spans to the facts analysis needs;
//! [`edges`] turns the spans of a trace into edges; [`aggregate`] counts
//! edges per window; [`pairing`] holds a partition's pairing store,
//! windows and commit bookkeeping; [`documents`] renders closed windows;
//! [`consume`] is the polling thread and [`writer`] the task that stores
//! windows; [`rollup`] sums them into Jaeger's dependency documents, one per
//! period; [`recompute`] computes the same edges again from stored span
//! documents; [`metrics`] counts it all.

pub mod aggregate;
pub mod config;
pub mod consume;
pub mod documents;
pub mod edges;
pub mod metrics;
pub mod pairing;
pub mod recompute;
pub mod rollup;
pub mod span;
pub mod writer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use spanway_kafka::membership::FatalError;
use spanway_search::bulk::writer::{BulkWriter, WriterError, WriterOptions};
use spanway_search::client::{ClientError, EngineClient};
use spanway_service_kit::liveness::Liveness;
use spanway_service_kit::ops::{self, Readiness};
use spanway_service_kit::secret::DEFAULT_REFRESH_INTERVAL;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use crate::config::AnalyticsConfig;
use crate::consume::Job;
use crate::metrics::{AnalyticsMetrics, EdgeSeries};
use crate::rollup::Rollup;

/// Failures while starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The engine client could not be built from its settings.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A template could not be installed.
    #[error(transparent)]
    Writer(#[from] WriterError),
    /// The Kafka consumer could not be created.
    #[error("kafka consumer: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A Kafka setting is invalid or a file it names cannot be read.
    #[error(transparent)]
    KafkaConfig(#[from] spanway_service_kit::config::ConfigError),
    /// A listener could not bind, or the polling thread could not start.
    #[error("cannot start {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// A running job.
#[derive(Debug)]
pub struct Analytics {
    /// Where the operations endpoint listens.
    pub ops_addr: SocketAddr,
    /// The job's counters.
    pub metrics: AnalyticsMetrics,
    poller: std::thread::JoinHandle<Result<(), FatalError>>,
    writer: JoinHandle<()>,
    writer_cancel: CancellationToken,
}

impl Analytics {
    /// Installs the templates, joins the consumer group and starts reading.
    pub async fn start(
        config: &AnalyticsConfig,
        shutdown: CancellationToken,
    ) -> Result<Analytics, StartError> {
        let metrics = AnalyticsMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let kafka = spanway_kafka::KafkaClient::new(&config.kafka.client)?;
        kafka.log_settings("consumer");
        let faults = spanway_kafka::FaultReporter::new("consumer", &config.kafka.client);
        faults.register(registry.sub_registry_with_prefix("analytics"));
        let edge_series = config
            .edge_metrics
            .enabled
            .then(|| EdgeSeries::new(&mut registry, config.edge_metrics.max_edges));
        let out = &config.elasticsearch;
        let options = WriterOptions {
            retry_initial_backoff: out.retry_initial_backoff,
            retry_max_backoff: out.retry_max_backoff,
            request_timeout: out.request_timeout,
            ..WriterOptions::default()
        };
        let engine = EngineClient::new(&out.client)?;
        engine.spawn_credential_refresh(DEFAULT_REFRESH_INTERVAL, shutdown.clone());
        let writer = BulkWriter::new(engine, options, metrics.writer.clone());
        if out.create_templates {
            let api = writer.template_api(out.template_api).await?;
            let indices = out.indices();
            writer
                .put_templates(indices.templates(out.shards, out.replicas), api)
                .await?;
            tracing::info!(?api, "index templates installed");
        }

        let ready = Readiness::default();
        let liveness = Liveness::new(config.ops.stall_timeout, shutdown.clone());
        liveness.register_metrics(registry.sub_registry_with_prefix("analytics"));
        let ops_addr = ops::serve(
            config.ops.listen,
            Arc::new(registry),
            ready.clone(),
            liveness.clone(),
            shutdown.clone(),
        )
        .await
        .map_err(|source| StartError::Io {
            what: format!("the operations endpoint on {}", config.ops.listen),
            source,
        })?;
        let kafka_ready = Readiness::default();
        spawn_readiness_probe(writer.clone(), kafka_ready.clone(), ready, shutdown.clone());

        let (write_tx, write_rx) = tokio::sync::mpsc::unbounded_channel();
        let (ack_tx, ack_rx) = std::sync::mpsc::channel();
        let job = Job::new(
            config,
            metrics.clone(),
            edge_series,
            write_tx,
            ack_rx,
            kafka_ready,
            (kafka, faults),
        )?;
        let writer_cancel = CancellationToken::new();
        let rollup = Rollup::new(
            out.indices(),
            config.dependencies.period,
            out.retry_initial_backoff,
            out.retry_max_backoff,
            out.request_timeout,
        );
        let writer = tokio::spawn(writer::run(
            writer,
            rollup,
            write_rx,
            ack_tx,
            writer_cancel.clone(),
            liveness.register("writer"),
        ));
        let poll_heartbeat = liveness.register("kafka-poll");
        let poller = std::thread::Builder::new()
            .name("kafka-poll".into())
            .spawn(move || job.run(&shutdown, poll_heartbeat))
            .map_err(|source| StartError::Io {
                what: "the polling thread".into(),
                source,
            })?;
        tracing::info!(%ops_addr, topics = ?config.kafka.topics, group = %config.kafka.group_id, "streaming analytics started");
        Ok(Analytics {
            ops_addr,
            metrics,
            poller,
            writer,
            writer_cancel,
        })
    }

    /// Waits until the polling thread has drained, committed and left the
    /// group, then stops the writer. An error when the consumer failed for
    /// good (its instance id taken by another process) rather than being
    /// asked to stop.
    pub async fn wait(self) -> Result<(), FatalError> {
        let poller = self.poller;
        let outcome = match tokio::task::spawn_blocking(move || poller.join()).await {
            Ok(Ok(outcome)) => outcome,
            _ => {
                tracing::error!("polling thread failed");
                Ok(())
            }
        };
        self.writer_cancel.cancel();
        if let Err(error) = self.writer.await {
            tracing::error!(%error, "writer task failed");
        }
        tracing::info!("streaming analytics stopped");
        outcome
    }
}

/// Ready means the engine answers and accepts our credentials, and the poll
/// loop reached Kafka lately.
fn spawn_readiness_probe(
    writer: BulkWriter,
    kafka: Readiness,
    ready: Readiness,
    shutdown: CancellationToken,
) {
    ops::spawn_readiness_probe(ready, Duration::from_secs(5), shutdown, move || {
        let writer = writer.clone();
        let kafka = kafka.clone();
        async move { kafka.get() && writer.ready().await }
    });
}
