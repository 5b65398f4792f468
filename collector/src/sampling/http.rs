//! `GET /sampling?service=NAME` and `GET /api/sampling?service=NAME`: the
//! paths Jaeger's agent (port 5778) and collector serve, answered with the
//! JSON Jaeger's SDKs and OpenTelemetry's Jaeger remote samplers parse.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use super::StrategyStore;
use super::strategies::JsonResponse;
use crate::receiver::listener::{self, Endpoint};

/// How long an SDK may take to send a strategy request's head, and how
/// long an idle connection stays open: the receivers' default.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Binds `endpoint` and serves until `shutdown`.
pub async fn serve(
    endpoint: Endpoint,
    store: Arc<StrategyStore>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = Router::new()
        .route("/sampling", get(strategy))
        .route("/api/sampling", get(strategy))
        .with_state(store);
    listener::serve_http(endpoint, app, READ_TIMEOUT, shutdown).await
}

async fn strategy(
    State(store): State<Arc<StrategyStore>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    // As Jaeger: exactly one `service`; an empty name is a name (it gets
    // the default strategy).
    let mut services = params.iter().filter(|(k, _)| k == "service");
    let (Some((_, service)), None) = (services.next(), services.next()) else {
        return (
            StatusCode::BAD_REQUEST,
            "'service' parameter must be provided once",
        )
            .into_response();
    };
    let response = store.lookup(service, "http");
    match serde_json::to_vec(&JsonResponse::from(&response)) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot encode a sampling strategy");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
