//! The collector: applications send spans here; it publishes them to Kafka
//! as the `schemas` contract says and answers success only once Kafka has
//! acknowledged every record of the request.

pub mod budget;
pub mod config;
pub mod convert;
pub mod error;
pub mod grouping;
pub mod metrics;
pub mod pipeline;
pub mod producer;
pub mod receiver;
pub mod sampling;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use spanway_service_kit::liveness::{DEFAULT_STALL_TIMEOUT, Liveness};
use spanway_service_kit::ops::{self, Readiness};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::budget::Budget;
use crate::config::CollectorConfig;
use crate::metrics::CollectorMetrics;
use crate::pipeline::Pipeline;
use crate::producer::SpanProducer;
use crate::receiver::body_meter::BodyLimits;
use crate::receiver::listener::{Endpoint, GrpcConnections, Listener, ListenerMetrics, Security};
use crate::receiver::reload::FileError;
use crate::sampling::SamplingMetrics;

/// How long the final flush may take on shutdown.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Failures while starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The Kafka client could not be created from the configuration.
    #[error(transparent)]
    Kafka(#[from] producer::ProducerError),
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The sampling strategies file is unreadable or invalid.
    #[error(transparent)]
    Sampling(#[from] sampling::SamplingError),
    /// A certificate, key, CA, tokens or htpasswd file is unreadable or
    /// invalid; names its configuration key.
    #[error(transparent)]
    ReceiverFile(#[from] FileError),
}

/// A started collector.
#[derive(Debug)]
pub struct Collector {
    /// Where the OTLP/HTTP receiver listens, when enabled.
    pub otlp_http_addr: Option<SocketAddr>,
    /// Where the operations endpoint listens.
    pub ops_addr: SocketAddr,
    /// Where the OTLP/gRPC receiver listens, when enabled.
    pub otlp_grpc_addr: Option<SocketAddr>,
    /// Where the Jaeger gRPC server (`PostSpans`, `SamplingManager`)
    /// listens, when either is enabled.
    pub jaeger_grpc_addr: Option<SocketAddr>,
    /// Where the sampling HTTP endpoint listens, when sampling is enabled.
    pub sampling_http_addr: Option<SocketAddr>,
    /// Where the Zipkin receiver listens, when enabled.
    pub zipkin_addr: Option<SocketAddr>,
    /// Where the Jaeger Thrift/HTTP receiver listens, when enabled.
    pub jaeger_thrift_http_addr: Option<SocketAddr>,
    /// The OTLP/HTTP, Zipkin and Jaeger Thrift/HTTP servers.
    http_tasks: Vec<JoinHandle<()>>,
    pipeline: Arc<Pipeline>,
    /// The gRPC servers and the sampling HTTP endpoint.
    grpc_tasks: Vec<JoinHandle<()>>,
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
        let sampling_metrics = SamplingMetrics::default();
        sampling_metrics.register(&mut registry);
        let listener_metrics = ListenerMetrics::default();
        listener_metrics.register(&mut registry);
        // Certificates and credentials first: a bad file stops the start
        // before anything listens.
        let security = Security::start(config, listener_metrics, &shutdown)?;
        let faults = spanway_kafka::FaultReporter::new("producer", &config.kafka.client);
        faults.register(registry.sub_registry_with_prefix("collector"));
        let producer = SpanProducer::new(&config.kafka, &metrics, faults)?;
        producer.spawn_password_refresh(shutdown.clone());
        let budget = Budget::new(
            config.kafka.max_bytes_in_flight,
            metrics.bytes_in_flight.clone(),
        );
        let pipeline = Arc::new(Pipeline::new(producer, budget, metrics));

        let ready = Readiness::default();
        // No loop registers: the collector has no work loop of its own. Its
        // work runs in request handlers, each bounded by the delivery timeout,
        // and in librdkafka's threads, whose faults readiness reports. A
        // wedged runtime fails the probe by not answering it.
        let liveness = Liveness::new(DEFAULT_STALL_TIMEOUT, shutdown.clone());
        let ops_addr = ops::serve(
            config.ops.listen,
            Arc::new(registry),
            ready.clone(),
            liveness,
            shutdown.clone(),
        )
        .await
        .map_err(|source| StartError::Bind {
            addr: config.ops.listen,
            source,
        })?;
        spawn_readiness_probe(pipeline.clone(), ready, shutdown.clone());

        let grpc = start_grpc_and_sampling(
            config,
            &security,
            pipeline.clone(),
            sampling_metrics,
            shutdown.clone(),
        )
        .await?;
        let http = start_http_receivers(config, &security, pipeline.clone(), shutdown).await?;
        let otlp_http_addr = http.otlp_http_addr;
        tracing::info!(
            otlp_http_addr = ?otlp_http_addr,
            otlp_grpc_addr = ?grpc.otlp_grpc_addr,
            jaeger_grpc_addr = ?grpc.jaeger_grpc_addr,
            sampling_http_addr = ?grpc.sampling_http_addr,
            zipkin_addr = ?http.zipkin_addr,
            jaeger_thrift_http_addr = ?http.jaeger_thrift_http_addr,
            %ops_addr,
            topic = %config.kafka.topic,
            "collector started"
        );
        Ok(Collector {
            otlp_http_addr,
            ops_addr,
            otlp_grpc_addr: grpc.otlp_grpc_addr,
            jaeger_grpc_addr: grpc.jaeger_grpc_addr,
            sampling_http_addr: grpc.sampling_http_addr,
            zipkin_addr: http.zipkin_addr,
            jaeger_thrift_http_addr: http.jaeger_thrift_http_addr,
            http_tasks: http.tasks,
            pipeline,
            grpc_tasks: grpc.tasks,
        })
    }

    /// Waits until the receivers have stopped and finished their requests,
    /// then flushes the producer.
    pub async fn wait(self) {
        for task in self.http_tasks.into_iter().chain(self.grpc_tasks) {
            if let Err(error) = task.await {
                tracing::error!(%error, "receiver task failed");
            }
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

/// What [`start_grpc_and_sampling`] started.
#[derive(Debug, Default)]
struct GrpcStarted {
    otlp_grpc_addr: Option<SocketAddr>,
    jaeger_grpc_addr: Option<SocketAddr>,
    sampling_http_addr: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts the OTLP/gRPC receiver, the Jaeger gRPC server and the sampling
/// endpoints that the configuration enables. The strategies file is
/// validated first, so a bad one stops the start before anything listens.
async fn start_grpc_and_sampling(
    config: &CollectorConfig,
    security: &Security,
    pipeline: Arc<Pipeline>,
    sampling_metrics: SamplingMetrics,
    shutdown: CancellationToken,
) -> Result<GrpcStarted, StartError> {
    let bind_error = |addr: SocketAddr| move |source| StartError::Bind { addr, source };
    let mut started = GrpcStarted::default();
    let store = if config.sampling.enabled {
        Some(sampling::start(
            config.sampling.strategies_file.as_deref(),
            config.sampling.reload_interval,
            sampling_metrics,
            shutdown.clone(),
        )?)
    } else {
        None
    };
    if config.otlp_grpc.enabled {
        let endpoint = security
            .endpoint(Listener::OtlpGrpc, config.otlp_grpc.listen)
            .with_grpc_connections(GrpcConnections {
                max_idle: config.otlp_grpc.max_connection_idle,
                max_age: config.otlp_grpc.max_connection_age,
            });
        let (addr, task) = receiver::otlp_grpc::serve(
            endpoint,
            BodyLimits {
                max_bytes: config.otlp_grpc.max_message_bytes,
                timeout: config.otlp_grpc.read_timeout,
            },
            pipeline.clone(),
            shutdown.clone(),
        )
        .await
        .map_err(bind_error(config.otlp_grpc.listen))?;
        started.otlp_grpc_addr = Some(addr);
        started.tasks.push(task);
    }
    if config.jaeger_grpc.enabled || store.is_some() {
        let services = receiver::jaeger_grpc::JaegerGrpcServices {
            collector: config.jaeger_grpc.enabled.then(|| pipeline.clone()),
            sampling: store.clone(),
            limits: BodyLimits {
                max_bytes: config.jaeger_grpc.max_message_bytes,
                timeout: config.jaeger_grpc.read_timeout,
            },
        };
        let endpoint = security
            .endpoint(Listener::JaegerGrpc, config.jaeger_grpc.listen)
            .with_grpc_connections(GrpcConnections {
                max_idle: config.jaeger_grpc.max_connection_idle,
                max_age: config.jaeger_grpc.max_connection_age,
            });
        let (addr, task) = receiver::jaeger_grpc::serve(endpoint, services, shutdown.clone())
            .await
            .map_err(bind_error(config.jaeger_grpc.listen))?;
        started.jaeger_grpc_addr = Some(addr);
        started.tasks.push(task);
    }
    if let Some(store) = store {
        let endpoint = security.endpoint(Listener::SamplingHttp, config.sampling.http_listen);
        let (addr, task) = sampling::http::serve(endpoint, store, shutdown)
            .await
            .map_err(bind_error(config.sampling.http_listen))?;
        started.sampling_http_addr = Some(addr);
        started.tasks.push(task);
    }
    Ok(started)
}

/// What [`start_http_receivers`] started.
#[derive(Debug, Default)]
struct HttpStarted {
    otlp_http_addr: Option<SocketAddr>,
    zipkin_addr: Option<SocketAddr>,
    jaeger_thrift_http_addr: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

/// A whole-body HTTP receiver's `serve`: every one takes its endpoint, its
/// body limits, the pipeline and the shutdown token.
type ServeHttp =
    fn(
        Endpoint,
        BodyLimits,
        Arc<Pipeline>,
        CancellationToken,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<(SocketAddr, JoinHandle<()>)>> + Send>>;

/// The settings of an HTTP receiver's section that starting it needs.
#[derive(Debug, Clone, Copy)]
struct HttpSection {
    enabled: bool,
    listen: SocketAddr,
    limits: BodyLimits,
}

impl HttpSection {
    fn of<R>(section: &config::HttpReceiverConfig<R>) -> Self {
        HttpSection {
            enabled: section.enabled,
            listen: section.listen,
            limits: BodyLimits {
                max_bytes: section.max_request_bytes,
                timeout: section.read_timeout,
            },
        }
    }
}

/// Starts the OTLP/HTTP, Zipkin and Jaeger Thrift/HTTP receivers the
/// configuration enables, each on its own listener, from one table.
async fn start_http_receivers(
    config: &CollectorConfig,
    security: &Security,
    pipeline: Arc<Pipeline>,
    shutdown: CancellationToken,
) -> Result<HttpStarted, StartError> {
    let mut started = HttpStarted::default();
    let receivers = [
        (
            Listener::OtlpHttp,
            HttpSection::of(&config.otlp_http),
            (|e, m, p, s| Box::pin(receiver::otlp_http::serve(e, m, p, s))) as ServeHttp,
        ),
        (
            Listener::Zipkin,
            HttpSection::of(&config.zipkin),
            |e, m, p, s| Box::pin(receiver::zipkin::PROTOCOL.serve(e, m, p, s)),
        ),
        (
            Listener::JaegerThriftHttp,
            HttpSection::of(&config.jaeger_thrift_http),
            |e, m, p, s| Box::pin(receiver::jaeger_thrift::PROTOCOL.serve(e, m, p, s)),
        ),
    ];
    let mut tasks = Vec::new();
    for (listener, section, serve) in receivers {
        if !section.enabled {
            continue;
        }
        let endpoint = security.endpoint(listener, section.listen);
        let (bound, task) = serve(endpoint, section.limits, pipeline.clone(), shutdown.clone())
            .await
            .map_err(|source| StartError::Bind {
                addr: section.listen,
                source,
            })?;
        let addr = match listener {
            Listener::OtlpHttp => &mut started.otlp_http_addr,
            Listener::Zipkin => &mut started.zipkin_addr,
            _ => &mut started.jaeger_thrift_http_addr,
        };
        *addr = Some(bound);
        tasks.push(task);
    }
    started.tasks = tasks;
    Ok(started)
}
