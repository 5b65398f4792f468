//! The operations endpoint: liveness, readiness and Prometheus metrics.
//!
//! Liveness answers whether the process's work loops still go round
//! (see [`crate::liveness`]), readiness whether its dependencies answer.
//! They are kept apart because an orchestrator restarts on the first and
//! only stops sending traffic on the second.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::http_server;
use crate::liveness::Liveness;

/// Readiness as the component reports it: set when its dependencies answer.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the process ready or not ready.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    /// Whether `/health/ready` answers 200.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct OpsState {
    registry: Arc<Registry>,
    ready: Readiness,
    liveness: Liveness,
}

/// The router, for mounting or testing.
pub fn router(registry: Arc<Registry>, ready: Readiness, liveness: Liveness) -> Router {
    Router::new()
        .route("/health/live", get(live_handler))
        .route("/health/ready", get(ready_handler))
        .route("/metrics", get(metrics_handler))
        .with_state(OpsState {
            registry,
            ready,
            liveness,
        })
}

/// 200 with every loop and the age of its last beat, or 503 naming the
/// loops that stalled or ended; JSON either way, for people and scripts.
async fn live_handler(State(state): State<OpsState>) -> impl IntoResponse {
    let report = state.liveness.report();
    let status = if report.live {
        StatusCode::OK
    } else {
        // Logged on every probe while it lasts: this line is what explains
        // the restart that follows.
        tracing::error!(
            failing = ?report.failing(),
            stall_timeout = ?state.liveness.stall_timeout(),
            "liveness failing: a work loop stalled or ended"
        );
        StatusCode::SERVICE_UNAVAILABLE
    };
    match serde_json::to_string(&report) {
        Ok(mut body) => {
            body.push('\n');
            (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(error) => {
            tracing::error!(%error, "cannot encode the liveness report");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn ready_handler(State(state): State<OpsState>) -> impl IntoResponse {
    if state.ready.get() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics_handler(State(state): State<OpsState>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Sets `ready` from `check` every `interval` until `shutdown`, then to not ready.
pub fn spawn_readiness_probe<F, Fut>(
    ready: Readiness,
    interval: Duration,
    shutdown: CancellationToken,
    check: F,
) where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    tokio::spawn(async move {
        loop {
            ready.set(check().await);
            tokio::select! {
                _ = shutdown.cancelled() => {
                    ready.set(false);
                    return;
                }
                _ = tokio::time::sleep(interval) => {}
            }
        }
    });
}

/// How long a client of the operations endpoint has to send a request
/// head, and how long a connection may sit idle. Prometheus keeps its
/// scrape connection open between scrapes; one closed in between is
/// reopened at the next.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Binds `addr` and serves the operations endpoint until `shutdown`.
/// Returns the bound address (useful with port 0).
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    ready: Readiness,
    liveness: Liveness,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    serve_with_read_timeout(addr, registry, ready, liveness, READ_TIMEOUT, shutdown).await
}

/// [`serve`] with another [`READ_TIMEOUT`].
pub async fn serve_with_read_timeout(
    addr: SocketAddr,
    registry: Arc<Registry>,
    ready: Readiness,
    liveness: Liveness,
    read_timeout: Duration,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(registry, ready, liveness);
    let connections = http_server::accept_plain(listener, "ops", shutdown.clone());
    // Nothing waits for this server at shutdown: the process exits once
    // its own work has drained.
    let deadlines = http_server::Deadlines::new(read_timeout, read_timeout);
    tokio::spawn(http_server::serve(
        connections,
        app,
        deadlines,
        http_server::Versions::Any,
        http_server::Port::named("ops"),
        shutdown,
    ));
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    use crate::liveness::Liveness;

    async fn live(liveness: &Liveness) -> (StatusCode, serde_json::Value) {
        let app = router(
            Arc::new(Registry::default()),
            Readiness::default(),
            liveness.clone(),
        );
        let response = app
            .oneshot(Request::get("/health/live").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    fn names(body: &serde_json::Value) -> Vec<(&str, &str)> {
        body["loops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (l["name"].as_str().unwrap(), l["state"].as_str().unwrap()))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn live_is_503_naming_a_stale_loop_and_200_once_it_beats() {
        let liveness = Liveness::new(Duration::from_secs(30), CancellationToken::new());
        let poll = liveness.register("kafka-poll");
        let writer = liveness.register("writer");
        tokio::time::advance(Duration::from_secs(31)).await;
        writer.beat();

        let (status, body) = live(&liveness).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["live"], false);
        assert_eq!(
            names(&body),
            [("kafka-poll", "stalled"), ("writer", "running")]
        );
        assert_eq!(body["loops"][0]["last_beat_seconds_ago"], 31.0);

        poll.beat();
        let (status, body) = live(&liveness).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            names(&body),
            [("kafka-poll", "running"), ("writer", "running")]
        );
        assert_eq!(body["stall_timeout_seconds"], 30.0);
    }

    #[tokio::test(start_paused = true)]
    async fn live_stays_200_when_loops_finish_after_shutdown_and_not_before() {
        let shutdown = CancellationToken::new();
        let liveness = Liveness::new(Duration::from_secs(30), shutdown.clone());
        let poll = liveness.register("kafka-poll");
        let sink = liveness.register("sink");
        drop(sink);
        let (status, body) = live(&liveness).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(
            names(&body),
            [("kafka-poll", "running"), ("sink", "exited")]
        );

        let liveness = Liveness::new(Duration::from_secs(30), shutdown.clone());
        let poll_after = liveness.register("kafka-poll");
        let _sink = liveness.register("sink");
        shutdown.cancel();
        drop(poll_after);
        tokio::time::advance(Duration::from_secs(10)).await;
        let (status, body) = live(&liveness).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(names(&body), [("sink", "running")]);
        drop(poll);
    }
}

/// The operations port a process listens on unless told otherwise.
pub trait DefaultPort {
    /// The port.
    const PORT: u16;
}

/// The `[ops]` section of a process with loops that beat (the consumers):
/// the endpoint's address, `P::PORT` by default, and how long a loop may
/// go without beating before `/health/live` fails. (The port is a type
/// parameter because serde cannot derive for const generics.)
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields, bound = "P: DefaultPort")]
pub struct OpsConfig<P> {
    /// Address of `/health/live`, `/health/ready` and `/metrics`.
    pub listen: SocketAddr,
    /// `/health/live` fails (503, naming the loop) when a loop of the
    /// process (the Kafka poll loop, the writer) has not gone round for
    /// this long. Loops beat while they wait on purpose (idle, paused,
    /// backing off from a down engine), so only a stuck loop trips it.
    /// Each process checks that it exceeds its longest legitimate gap
    /// between beats (a write attempt with its backoff, the drain timeout).
    #[serde(with = "humantime_serde")]
    pub stall_timeout: Duration,
    #[serde(skip)]
    port: std::marker::PhantomData<P>,
}

impl<P: DefaultPort> Default for OpsConfig<P> {
    fn default() -> Self {
        OpsConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], P::PORT)),
            stall_timeout: crate::liveness::DEFAULT_STALL_TIMEOUT,
            port: std::marker::PhantomData,
        }
    }
}
