//! Where every receiver listens: binding, TLS, authentication, and serving
//! an axum router or tonic routes until shutdown, written once for the
//! HTTP and gRPC receivers and the sampling endpoint alike.
//!
//! One accept loop per listener takes TCP connections and, when the
//! listener has TLS, runs each handshake in its own task with a deadline,
//! so a client that stalls its handshake holds up nobody else. Finished
//! connections go to the server through a short queue. Handshake failures
//! (no client certificate, one from an unknown CA, a client that does not
//! speak TLS) are counted per listener.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use spanway_service_kit::http_server;
use spanway_service_kit::metric_set::MetricSet;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tower::Layer as _;

use crate::config::CollectorConfig;
use crate::metrics::ReceiverLabel;
use crate::receiver::auth::{Credentials, Loaded};
use crate::receiver::auth_layer::{AuthLayer, Protocol, Scope, UnauthenticatedCounter};
use crate::receiver::reload::{self, FileError, ReloadMetrics};
use crate::receiver::tls::{self, ServerTls, TlsConfig, TlsKeys, tls_keys};

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after the delivery timeout the listeners wait for their
/// connections at shutdown. Every request in flight is answered within the
/// delivery timeout and a second; what is open after that is a client
/// that does not close, or a body still arriving, which is cut.
const DRAIN_AFTER_DELIVERY: Duration = Duration::from_secs(5);
/// Connections accepted but not yet taken by the server.
const ACCEPT_QUEUE: usize = 64;
/// Streams one HTTP/2 connection of a gRPC listener may have open at once,
/// hyper's own default. Every open stream holds its headers and a task;
/// exporters keep a few open per connection.
const MAX_STREAMS_PER_CONNECTION: u32 = 200;
/// The gRPC path prefix of `jaeger.api_v2.SamplingManager`, served on the
/// Jaeger gRPC port beside `CollectorService`.
const SAMPLING_GRPC_PREFIX: &str = "/jaeger.api_v2.SamplingManager/";

/// The collector's listeners, named as their configuration sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listener {
    /// `[otlp_http]`.
    OtlpHttp,
    /// `[otlp_grpc]`.
    OtlpGrpc,
    /// `[jaeger_grpc]`: `CollectorService` and `SamplingManager`.
    JaegerGrpc,
    /// `[zipkin]`.
    Zipkin,
    /// `[jaeger_thrift_http]`.
    JaegerThriftHttp,
    /// `[sampling]`: the HTTP endpoint on `http_listen`.
    SamplingHttp,
}

/// What the configuration says about one listener.
#[derive(Debug, Clone, Copy)]
pub struct ListenerSettings<'a> {
    /// Whether it listens at all.
    pub enabled: bool,
    /// Where.
    pub listen: SocketAddr,
    /// Its `tls` table.
    pub tls: Option<&'a TlsConfig>,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Which requests must authenticate when `[auth]` has credentials;
    /// `None` for none.
    pub auth: Option<Scope>,
}

impl Listener {
    /// Every listener.
    pub const ALL: [Listener; 6] = [
        Listener::OtlpHttp,
        Listener::OtlpGrpc,
        Listener::JaegerGrpc,
        Listener::Zipkin,
        Listener::JaegerThriftHttp,
        Listener::SamplingHttp,
    ];

    /// The configuration section, also the `receiver` metric label.
    pub fn name(self) -> &'static str {
        match self {
            Listener::OtlpHttp => "otlp_http",
            Listener::OtlpGrpc => "otlp_grpc",
            Listener::JaegerGrpc => "jaeger_grpc",
            Listener::Zipkin => "zipkin",
            Listener::JaegerThriftHttp => "jaeger_thrift_http",
            Listener::SamplingHttp => "sampling",
        }
    }

    /// The key of its connection limit.
    pub fn max_connections_key(self) -> &'static str {
        match self {
            Listener::OtlpHttp => "otlp_http.max_connections",
            Listener::OtlpGrpc => "otlp_grpc.max_connections",
            Listener::JaegerGrpc => "jaeger_grpc.max_connections",
            Listener::Zipkin => "zipkin.max_connections",
            Listener::JaegerThriftHttp => "jaeger_thrift_http.max_connections",
            Listener::SamplingHttp => "sampling.max_connections",
        }
    }

    /// The keys of its `tls` table.
    pub fn tls_keys(self) -> TlsKeys {
        match self {
            Listener::OtlpHttp => tls_keys!("otlp_http"),
            Listener::OtlpGrpc => tls_keys!("otlp_grpc"),
            Listener::JaegerGrpc => tls_keys!("jaeger_grpc"),
            Listener::Zipkin => tls_keys!("zipkin"),
            Listener::JaegerThriftHttp => tls_keys!("jaeger_thrift_http"),
            Listener::SamplingHttp => tls_keys!("sampling"),
        }
    }

    fn protocol(self) -> Protocol {
        match self {
            Listener::OtlpGrpc | Listener::JaegerGrpc => Protocol::Grpc,
            _ => Protocol::Http,
        }
    }

    /// Its settings in `config`.
    pub fn settings(self, config: &CollectorConfig) -> ListenerSettings<'_> {
        let all = |required: bool| required.then_some(Scope::All);
        let (enabled, listen, tls, auth, max_connections) = match self {
            Listener::OtlpHttp => {
                let c = &config.otlp_http;
                (
                    c.enabled,
                    c.listen,
                    &c.tls,
                    all(c.require_auth),
                    c.max_connections,
                )
            }
            Listener::OtlpGrpc => {
                let c = &config.otlp_grpc;
                (
                    c.enabled,
                    c.listen,
                    &c.tls,
                    all(c.require_auth),
                    c.max_connections,
                )
            }
            Listener::JaegerGrpc => {
                let c = &config.jaeger_grpc;
                let scope = match (c.require_auth, config.sampling.require_auth) {
                    (true, true) => Some(Scope::All),
                    (true, false) => Some(Scope::Except(SAMPLING_GRPC_PREFIX)),
                    (false, true) => Some(Scope::Only(SAMPLING_GRPC_PREFIX)),
                    (false, false) => None,
                };
                (
                    c.enabled || config.sampling.enabled,
                    c.listen,
                    &c.tls,
                    scope,
                    c.max_connections,
                )
            }
            Listener::Zipkin => {
                let c = &config.zipkin;
                (
                    c.enabled,
                    c.listen,
                    &c.tls,
                    all(c.require_auth),
                    c.max_connections,
                )
            }
            Listener::JaegerThriftHttp => {
                let c = &config.jaeger_thrift_http;
                (
                    c.enabled,
                    c.listen,
                    &c.tls,
                    all(c.require_auth),
                    c.max_connections,
                )
            }
            Listener::SamplingHttp => {
                let c = &config.sampling;
                (
                    c.enabled,
                    c.http_listen,
                    &c.tls,
                    all(c.require_auth),
                    c.max_connections,
                )
            }
        };
        ListenerSettings {
            enabled,
            listen,
            tls: tls.as_ref(),
            auth,
            max_connections,
        }
    }
}

spanway_service_kit::metric_set! {
    /// Counters of the listeners' TLS and authentication.
    pub struct ListenerMetrics {
        /// TLS handshakes that failed or timed out, by listener.
        tls_handshake_failures: Family<ReceiverLabel, Counter> => "tls_handshake_failures",
            "TLS handshakes that failed or timed out, by receiver";
        /// Client connections open, by listener.
        connections_open: Family<ReceiverLabel, Gauge> => "connections_open",
            "Client connections open, TLS handshakes included, by receiver";
        /// Connections closed on accept, the listener at its limit.
        connections_refused: Family<ReceiverLabel, Counter> => "connections_refused",
            "Connections closed as soon as accepted because the receiver had max_connections open, by receiver";
        /// Connections the server ended, or asked to end, that their
        /// clients kept open.
        connections_ended: Family<EndingLabels, Counter> => "connections_ended",
            "Connections the server dropped (reason silent or unresponsive) or asked to close (idle or max_age) while their clients kept them open, by receiver and reason";
        /// Requests refused for want of valid credentials.
        unauthenticated: UnauthenticatedCounter => "requests_unauthenticated",
            "Requests refused for want of valid credentials, by receiver and reason";
        /// Reloads of certificate, token and htpasswd files.
        reloads: ReloadMetrics;
    }
}

impl ListenerMetrics {
    /// Registers the counters under the `collector` prefix.
    pub fn register(&self, registry: &mut Registry) {
        self.register_in(registry.sub_registry_with_prefix("collector"));
    }
}

/// TLS settings and credentials of every enabled listener, kept current,
/// and each listener's connection limit.
#[derive(Debug, Clone)]
pub struct Security {
    tls: HashMap<Listener, Arc<ServerTls>>,
    auth: HashMap<Listener, AuthLayer>,
    max_connections: HashMap<Listener, usize>,
    drain: Duration,
    metrics: ListenerMetrics,
}

impl Security {
    /// Reads every certificate, key, CA, token and htpasswd file that the
    /// enabled listeners need, then starts their reloaders. A file that
    /// cannot be used stops the start, named by its key, before anything
    /// listens. `config` must have passed validation.
    pub fn start(
        config: &CollectorConfig,
        metrics: ListenerMetrics,
        shutdown: &CancellationToken,
    ) -> Result<Security, FileError> {
        let files = read_files(config)?;
        let mut auth = HashMap::new();
        if let Some(Loaded {
            credentials,
            reloaders,
        }) = files.credentials
        {
            for listener in Listener::ALL {
                if let Some(scope) = listener.settings(config).auth {
                    let layer = AuthLayer::new(
                        credentials.clone(),
                        listener.name(),
                        listener.protocol(),
                        scope,
                        metrics.unauthenticated.clone(),
                    );
                    auth.insert(listener, layer);
                }
            }
            for reloader in reloaders {
                let interval = config.auth.reload_interval;
                reload::spawn(
                    reloader,
                    interval,
                    metrics.reloads.clone(),
                    shutdown.clone(),
                );
            }
        }
        for (reloader, interval) in files.tls_reloaders {
            reload::spawn(
                reloader,
                interval,
                metrics.reloads.clone(),
                shutdown.clone(),
            );
        }
        let max_connections = Listener::ALL
            .iter()
            .map(|&listener| (listener, listener.settings(config).max_connections))
            .collect();
        Ok(Security {
            tls: files.tls,
            auth,
            max_connections,
            drain: config.kafka.delivery_timeout + DRAIN_AFTER_DELIVERY,
            metrics,
        })
    }

    /// Reads the same files as [`Security::start`] and drops them: what
    /// `check-config` runs, without a runtime.
    pub fn check_files(config: &CollectorConfig) -> Result<(), FileError> {
        read_files(config).map(drop)
    }

    /// What `listener` serves with, listening on `listen`.
    pub fn endpoint(&self, listener: Listener, listen: SocketAddr) -> Endpoint {
        let label = ReceiverLabel {
            receiver: listener.name(),
        };
        let limit = self
            .max_connections
            .get(&listener)
            .copied()
            .unwrap_or(Semaphore::MAX_PERMITS)
            .min(Semaphore::MAX_PERMITS);
        Endpoint {
            listener,
            listen,
            tls: self.tls.get(&listener).cloned(),
            auth: self.auth.get(&listener).cloned().unwrap_or_default(),
            handshake_failures: self
                .metrics
                .tls_handshake_failures
                .get_or_create(&label)
                .clone(),
            slots: Slots {
                free: Arc::new(Semaphore::new(limit)),
                open: self.metrics.connections_open.get_or_create(&label).clone(),
                refused: self
                    .metrics
                    .connections_refused
                    .get_or_create(&label)
                    .clone(),
            },
            grpc_connections: None,
            drain: self.drain,
            ended: self.metrics.connections_ended.clone(),
        }
    }
}

/// What [`read_files`] read.
#[derive(Debug)]
struct Files {
    tls: HashMap<Listener, Arc<ServerTls>>,
    tls_reloaders: Vec<(tls::TlsReloader, Duration)>,
    credentials: Option<Loaded>,
}

fn read_files(config: &CollectorConfig) -> Result<Files, FileError> {
    let mut tls = HashMap::new();
    let mut tls_reloaders = Vec::new();
    for listener in Listener::ALL {
        let settings = listener.settings(config);
        let (true, Some(tls_config)) = (settings.enabled, settings.tls) else {
            continue;
        };
        let alpn = match listener.protocol() {
            Protocol::Grpc => tls::ALPN_GRPC,
            Protocol::Http => tls::ALPN_HTTP,
        };
        let (server_tls, reloader) = tls::load(tls_config, listener.tls_keys(), alpn)?;
        tls.insert(listener, server_tls);
        tls_reloaders.push((reloader, tls_config.reload_interval));
    }
    let credentials = Credentials::load(&config.auth)?;
    Ok(Files {
        tls,
        tls_reloaders,
        credentials,
    })
}

/// One listener, ready to bind: its address, TLS and authentication.
#[derive(Debug, Clone)]
pub struct Endpoint {
    listener: Listener,
    listen: SocketAddr,
    tls: Option<Arc<ServerTls>>,
    auth: AuthLayer,
    handshake_failures: Counter,
    /// Room for more connections.
    slots: Slots,
    /// How long connections may take to close after shutdown.
    drain: Duration,
    /// For gRPC listeners: how long a connection lives, and stays idle.
    grpc_connections: Option<GrpcConnections>,
    /// Connections ended by the server, by listener and reason.
    ended: Family<EndingLabels, Counter>,
}

/// Labels of `collector_connections_ended_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct EndingLabels {
    /// The listener, as its configuration section.
    pub receiver: &'static str,
    /// [`http_server::Ending::as_str`]: a fixed set.
    pub reason: &'static str,
}

/// How long a gRPC listener keeps a client's connection.
#[derive(Debug, Clone, Copy)]
pub struct GrpcConnections {
    /// With no call in flight for this long, a connection is asked to
    /// close.
    pub max_idle: Duration,
    /// A connection this old is asked to close. Clients that keep one
    /// connection for good would otherwise stay on the replica they first
    /// reached, and replicas added by an autoscaler would get none of
    /// their calls.
    pub max_age: Duration,
}

impl Endpoint {
    /// The port as the shared server knows it: named, and counting the
    /// connections it ends.
    fn port(&self) -> http_server::Port {
        let receiver = self.listener.name();
        let ended = self.ended.clone();
        // Every series from the start, so that rates over them need no
        // first event.
        for ending in http_server::Ending::ALL {
            let _series = ended.get_or_create(&EndingLabels {
                receiver,
                reason: ending.as_str(),
            });
        }
        http_server::Port {
            name: receiver,
            on_ending: Some(Arc::new(move |ending: http_server::Ending| {
                ended
                    .get_or_create(&EndingLabels {
                        receiver,
                        reason: ending.as_str(),
                    })
                    .inc();
            })),
        }
    }

    /// The endpoint with its gRPC connections asked to close (HTTP/2
    /// GOAWAY; the calls in flight finish, and the client opens a new
    /// connection for its next calls) when idle or old.
    pub fn with_grpc_connections(mut self, connections: GrpcConnections) -> Self {
        self.grpc_connections = Some(connections);
        self
    }
}

/// Binds `endpoint` and serves `app` until `shutdown`; in-flight requests
/// finish first.
///
/// `read_timeout` bounds a silent client, each HTTP/1 request head and an
/// idle connection ([`spanway_service_kit::http_server`]): without it a
/// client that opens connections and stalls would hold them, and their
/// buffers, for good. (The body's own deadline is the receivers' body
/// meter's.)
pub(crate) async fn serve_http(
    endpoint: Endpoint,
    app: Router,
    read_timeout: Duration,
    shutdown: CancellationToken,
) -> io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let (bound, incoming) = bind(&endpoint, shutdown.clone()).await?;
    let service = endpoint.auth.layer(app);
    let deadlines = http_server::Deadlines::new(read_timeout, endpoint.drain);
    let task = tokio::spawn(http_server::serve(
        incoming.connections,
        service,
        deadlines,
        http_server::Versions::Any,
        endpoint.port(),
        shutdown,
    ));
    Ok((bound, task))
}

/// Binds `endpoint` and serves `routes` over HTTP/2 until `shutdown`;
/// in-flight requests finish first.
///
/// The same server as the HTTP receivers', not tonic's: tonic's bounds a
/// connection's age but not a client that connects and stays silent, nor
/// one that never completes a close, and each of those would hold one of
/// the listener's `max_connections` slots for good. `read_timeout` bounds
/// both ([`spanway_service_kit::http_server`]). A client's `grpc-timeout`
/// is its own to keep: when it passes, the client cancels the call, which
/// drops the handler.
pub(crate) async fn serve_grpc(
    endpoint: Endpoint,
    routes: Routes,
    read_timeout: Duration,
    shutdown: CancellationToken,
) -> io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let (bound, incoming) = bind(&endpoint, shutdown.clone()).await?;
    let service = endpoint.auth.layer(routes.prepare().into_axum_router());
    let mut deadlines = http_server::Deadlines::new(read_timeout, endpoint.drain);
    if let Some(connections) = endpoint.grpc_connections {
        deadlines.idle = connections.max_idle;
        deadlines.max_age = Some(connections.max_age);
    }
    let versions = http_server::Versions::Http2 {
        max_streams: MAX_STREAMS_PER_CONNECTION,
    };
    let task = tokio::spawn(http_server::serve(
        incoming.connections,
        service,
        deadlines,
        versions,
        endpoint.port(),
        shutdown,
    ));
    Ok((bound, task))
}

async fn bind(
    endpoint: &Endpoint,
    shutdown: CancellationToken,
) -> io::Result<(SocketAddr, Incoming)> {
    let listener = TcpListener::bind(endpoint.listen).await?;
    let local = listener.local_addr()?;
    let (sender, connections) = mpsc::channel(ACCEPT_QUEUE);
    tokio::spawn(accept(listener, endpoint.clone(), sender, shutdown));
    Ok((local, Incoming { connections }))
}

/// Accepts until `shutdown`, handing each connection, once its TLS
/// handshake (if any) is done, to the server.
async fn accept(
    listener: TcpListener,
    endpoint: Endpoint,
    sender: mpsc::Sender<(Connection, SocketAddr)>,
    shutdown: CancellationToken,
) {
    let name = endpoint.listener.name();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, say: wait instead of spinning.
                tracing::warn!(receiver = name, %error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(slot) = endpoint.slots.take() else {
            tracing::debug!(receiver = name, %remote, "connection refused: max_connections open");
            continue;
        };
        // Small responses should not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let Some(tls) = &endpoint.tls else {
            if sender
                .send((
                    Connection::Plain {
                        stream,
                        _slot: slot,
                    },
                    remote,
                ))
                .await
                .is_err()
            {
                return;
            }
            continue;
        };
        let acceptor = tls.acceptor();
        let sender = sender.clone();
        let failures = endpoint.handshake_failures.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let _ = sender
                        .send((
                            Connection::Tls {
                                stream: Box::new(stream),
                                _slot: slot,
                            },
                            remote,
                        ))
                        .await;
                }
                Ok(Err(error)) => {
                    failures.inc();
                    tracing::debug!(receiver = name, %remote, %error, "TLS handshake failed");
                }
                Err(_) => {
                    failures.inc();
                    tracing::debug!(receiver = name, %remote, "TLS handshake timed out");
                }
            }
        });
    }
}

/// Connections ready to serve.
#[derive(Debug)]
pub(crate) struct Incoming {
    connections: mpsc::Receiver<(Connection, SocketAddr)>,
}

/// An accepted connection, with or without TLS, holding its slot.
#[derive(Debug)]
pub(crate) enum Connection {
    Plain {
        stream: TcpStream,
        _slot: Slot,
    },
    Tls {
        stream: Box<tokio_rustls::server::TlsStream<TcpStream>>,
        _slot: Slot,
    },
}

/// A listener's room for connections, and its counts.
#[derive(Debug, Clone)]
struct Slots {
    free: Arc<Semaphore>,
    open: Gauge,
    refused: Counter,
}

impl Slots {
    /// A slot for one more connection, or `None` (counted) at the limit.
    fn take(&self) -> Option<Slot> {
        match self.free.clone().try_acquire_owned() {
            Ok(permit) => {
                self.open.inc();
                Some(Slot {
                    _permit: permit,
                    open: self.open.clone(),
                })
            }
            Err(_) => {
                self.refused.inc();
                None
            }
        }
    }
}

/// One connection's place under its listener's limit, given back when
/// the connection is dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    open: Gauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain { stream, .. } => Pin::new(stream).poll_read(cx, buf),
            Connection::Tls { stream, .. } => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain { stream, .. } => Pin::new(stream).poll_write(cx, buf),
            Connection::Tls { stream, .. } => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain { stream, .. } => Pin::new(stream).poll_write_vectored(cx, bufs),
            Connection::Tls { stream, .. } => Pin::new(stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Connection::Plain { stream, .. } => stream.is_write_vectored(),
            Connection::Tls { stream, .. } => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain { stream, .. } => Pin::new(stream).poll_flush(cx),
            Connection::Tls { stream, .. } => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain { stream, .. } => Pin::new(stream).poll_shutdown(cx),
            Connection::Tls { stream, .. } => Pin::new(stream).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_on_the_jaeger_grpc_port_follows_sampling_require_auth() {
        let mut config = CollectorConfig::default();
        let scope = |c: &CollectorConfig| Listener::JaegerGrpc.settings(c).auth;
        assert_eq!(scope(&config), Some(Scope::Except(SAMPLING_GRPC_PREFIX)));
        config.sampling.require_auth = true;
        assert_eq!(scope(&config), Some(Scope::All));
        config.jaeger_grpc.require_auth = false;
        assert_eq!(scope(&config), Some(Scope::Only(SAMPLING_GRPC_PREFIX)));
        config.sampling.require_auth = false;
        assert_eq!(scope(&config), None);
        assert_eq!(Listener::SamplingHttp.settings(&config).auth, None);
        assert_eq!(Listener::Zipkin.settings(&config).auth, Some(Scope::All));

        let post_spans = "/jaeger.api_v2.CollectorService/PostSpans";
        let strategy = "/jaeger.api_v2.SamplingManager/GetSamplingStrategy";
        let except = Scope::Except(SAMPLING_GRPC_PREFIX);
        assert!(except.covers(post_spans) && !except.covers(strategy));
        let only = Scope::Only(SAMPLING_GRPC_PREFIX);
        assert!(!only.covers(post_spans) && only.covers(strategy));
    }
}
