//! The operations endpoint: liveness, readiness and Prometheus metrics.

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
}

/// The router, for mounting or testing.
pub fn router(registry: Arc<Registry>, ready: Readiness) -> Router {
    Router::new()
        .route("/health/live", get(|| async { "ok\n" }))
        .route("/health/ready", get(ready_handler))
        .route("/metrics", get(metrics_handler))
        .with_state(OpsState { registry, ready })
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

/// Binds `addr` and serves the operations endpoint until `shutdown`.
/// Returns the bound address (useful with port 0).
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    ready: Readiness,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(registry, ready);
    tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(error) = result {
            tracing::error!(%error, "operations endpoint stopped");
        }
    });
    Ok(bound)
}
