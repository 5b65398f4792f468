//! The ingester: a Kafka consumer group that writes Jaeger-compatible span
//! and service documents to Elasticsearch or OpenSearch, committing a
//! record's offset only once the engine has its documents.

pub mod allocator;
pub mod bulk;
pub mod commit;
pub mod config;
pub mod consume;
pub mod dead_letter;
pub mod document;
pub mod metrics;
pub mod requests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use spanway_search::bulk::writer::{BulkWriter, TemplateOptions, WriterError};
use spanway_search::client::{ClientError, EngineClient};
use spanway_search::index::IndexNames;
use spanway_search::retention::{self, RetentionError};
use spanway_service_kit::liveness::Liveness;
use spanway_service_kit::ops::{self, Readiness};
use spanway_service_kit::secret::DEFAULT_REFRESH_INTERVAL;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use spanway_kafka::membership::FatalError;
use spanway_kafka::{FaultReporter, KafkaClient};

use crate::bulk::BulkStage;
use crate::config::IngesterConfig;
use crate::consume::ConsumeError;
use crate::dead_letter::DeadLetters;
use crate::metrics::IngesterMetrics;

/// Failures while starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The Kafka consumer could not be created or subscribed.
    #[error(transparent)]
    Kafka(#[from] ConsumeError),
    /// A Kafka setting is invalid or a file it names cannot be read.
    #[error(transparent)]
    KafkaConfig(#[from] spanway_service_kit::config::ConfigError),
    /// The dead-letter producer could not be created.
    #[error("dead-letter producer: {0}")]
    DeadLetter(#[from] rdkafka::error::KafkaError),
    /// The search engine client could not be built from its settings.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The index templates or aliases could not be installed.
    #[error(transparent)]
    Writer(#[from] WriterError),
    /// Retention was asked for and could not be installed.
    #[error(transparent)]
    Retention(#[from] RetentionError),
    /// The operations endpoint could not bind, or a thread could not start.
    #[error("cannot start at {addr}: {source}")]
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
    bulk: JoinHandle<()>,
    poller: std::thread::JoinHandle<Result<(), FatalError>>,
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
        let kafka = KafkaClient::new(&config.kafka.client)?;
        kafka.log_settings("consumer");
        let faults = FaultReporter::new("consumer", &config.kafka.client);
        faults.register(registry.sub_registry_with_prefix("ingester"));
        let engine = EngineClient::new(&config.elasticsearch.client)?;
        engine.spawn_credential_refresh(DEFAULT_REFRESH_INTERVAL, shutdown.clone());
        let writer = BulkWriter::new(engine, config.bulk.writer_options(), metrics.writer.clone());
        let es = &config.elasticsearch;
        let names = if es.use_aliases {
            IndexNames::with_aliases(&es.index_prefix)
        } else {
            IndexNames::new(&es.index_prefix)
                .with_span_period(es.index_rollover_frequency_spans)
                .with_date_separator(es.index_date_separator.clone())
        };
        // The policy goes first: the templates refer to it, and Elasticsearch
        // refuses settings naming a lifecycle feature it does not have.
        let lifecycle = if es.retention.enabled {
            Some(
                retention::install(&writer, &es.retention, names.prefix(), names.uses_aliases())
                    .await?,
            )
        } else {
            None
        };
        let tags_as_fields = Arc::new(es.tags_as_fields.placement());
        let learned_keys = es.tags_as_fields.learned_keys().map(Arc::new);
        if es.create_templates {
            let tag_fields = tags_as_fields.numeric_field_types();
            let installed = writer
                .install_templates(
                    names.prefix(),
                    &TemplateOptions {
                        shards: es.shards,
                        replicas: es.replicas,
                        api: es.template_api,
                        id_lookup_filter: es.effective_id_lookup_filter(),
                        refresh_interval: es.refresh_interval,
                        read_aliases: names.uses_aliases(),
                        lifecycle: lifecycle.as_ref(),
                        tag_fields: &tag_fields,
                        references: es.references,
                        span_fields: es.span_fields,
                    },
                )
                .await?;
            tracing::info!(
                api = ?installed.api,
                id_lookup_filter = installed.id_lookup_filter,
                span_ids = ?es.span_ids,
                references = ?es.references,
                span_fields = ?es.span_fields,
                "index templates installed"
            );
        }
        if names.uses_aliases() {
            writer.ensure_aliases(names.prefix()).await?;
        }
        if let Some(learned) = &learned_keys {
            adopt_mapped_keys(&writer, names.prefix(), learned, &tags_as_fields).await;
        }
        let ready = Readiness::default();
        let liveness = Liveness::new(config.ops.stall_timeout, shutdown.clone());
        liveness.register_metrics(registry.sub_registry_with_prefix("ingester"));
        let ops_addr = ops::serve(
            config.ops.listen,
            Arc::new(registry),
            ready.clone(),
            liveness.clone(),
            shutdown.clone(),
        )
        .await
        .map_err(|source| StartError::Bind {
            addr: config.ops.listen,
            source,
        })?;
        let dead_letters = DeadLetters::new(
            &kafka,
            &config.dead_letter.topic,
            faults.clone(),
            metrics.dead_letter_producer_epochs.clone(),
        )?;
        let consume::Started {
            consumer,
            shared,
            batches,
        } = consume::create(&config, &kafka, faults.clone(), &metrics)?;
        {
            let consumer = consumer.clone();
            kafka.spawn_password_refresh(
                move |username, password| {
                    spanway_kafka::set_sasl_credentials(
                        rdkafka::consumer::Consumer::client(&*consumer),
                        username,
                        password,
                    )
                },
                shutdown.clone(),
            );
            let producer = dead_letters.clone();
            kafka.spawn_password_refresh(
                move |username, password| producer.set_sasl_credentials(username, password),
                shutdown.clone(),
            );
        }
        spawn_readiness_probe(
            writer.clone(),
            consumer.clone(),
            faults,
            ready,
            shutdown.clone(),
        );
        tracing::info!(%ops_addr, topics = ?config.kafka.topics, group = %config.kafka.group_id, "ingester started");

        // `abort` fires when the drain timeout has passed on shutdown;
        // `stopped` when the polling thread has let go of its partitions.
        let abort = CancellationToken::new();
        let stopped = CancellationToken::new();
        let stage = Arc::new(BulkStage {
            writer,
            dead_letters,
            names,
            tags_as_fields,
            learned_keys,
            default_encoding: config.kafka.default_encoding,
            span_ids: config.elasticsearch.span_ids,
            metrics: metrics.clone(),
            consumer: consumer.clone(),
            shared: shared.clone(),
            written_services: Default::default(),
            liveness: liveness.clone(),
        });
        let bulk = tokio::spawn(stage.run(
            batches,
            config.bulk.max_in_flight,
            stopped.clone(),
            abort.clone(),
            liveness.register("bulk"),
        ));
        let poll_heartbeat = liveness.register("kafka-poll");
        let poller = std::thread::Builder::new()
            .name("kafka-poll".into())
            .spawn(move || {
                let outcome = consume::poll_loop(consumer, shared, shutdown, abort, poll_heartbeat);
                stopped.cancel();
                outcome
            })
            .map_err(|source| StartError::Bind {
                addr: config.ops.listen,
                source,
            })?;
        Ok(Ingester {
            ops_addr,
            metrics,
            bulk,
            poller,
        })
    }

    /// Waits until reading has stopped, in-flight writes have drained and
    /// the offsets are committed. An error when the consumer failed for good
    /// (its instance id taken by another process) rather than being asked
    /// to stop.
    pub async fn wait(self) -> Result<(), FatalError> {
        let poller = self.poller;
        let outcome = match tokio::task::spawn_blocking(move || poller.join()).await {
            Ok(Ok(outcome)) => outcome,
            _ => {
                tracing::error!("polling thread failed");
                Ok(())
            }
        };
        if let Err(error) = self.bulk.await {
            tracing::error!(%error, "writing task failed");
        }
        tracing::info!("ingester stopped");
        outcome
    }
}

/// Learns the tag keys the span indices already store as fields, so that
/// this instance places them as the instances before it did. Best effort:
/// without the mappings it learns from the spans alone, as it would on a
/// new deployment.
async fn adopt_mapped_keys(
    writer: &BulkWriter,
    prefix: &spanway_search::index::Prefix,
    learned: &document::LearnedKeys,
    fields: &document::TagsAsFields,
) {
    match writer.tag_field_names(prefix).await {
        Ok(names) => {
            let adopted = learned.adopt(names.iter().map(String::as_str), |key| fields.names(key));
            tracing::info!(
                adopted,
                learned = learned.snapshot().len(),
                "tag keys the span indices store as fields learned"
            );
        }
        Err(error) => {
            tracing::warn!(%error, "tag keys learned from spans only: the span indices' fields are unknown");
        }
    }
}

/// Ready means the search engine answers and accepts our credentials, and
/// the Kafka brokers answer and reported no fault (credentials, ACL,
/// certificate) lately.
fn spawn_readiness_probe(
    writer: BulkWriter,
    consumer: Arc<consume::GroupConsumer>,
    faults: FaultReporter,
    ready: Readiness,
    shutdown: CancellationToken,
) {
    use rdkafka::consumer::Consumer as _;
    ops::spawn_readiness_probe(ready, Duration::from_secs(5), shutdown, move || {
        let writer = writer.clone();
        let consumer = consumer.clone();
        let faults = faults.clone();
        async move {
            let kafka = tokio::task::spawn_blocking(move || {
                faults.current().is_none()
                    && consumer
                        .fetch_metadata(None, Duration::from_secs(2))
                        .is_ok()
            });
            writer.ready().await && kafka.await.unwrap_or(false)
        }
    });
}
