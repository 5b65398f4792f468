//! Streaming analytics: service dependencies and service-graph aggregates.
//!
//! This version provides the process shell only: configuration, the
//! operations endpoint and shutdown. It does not consume the topic yet, and
//! `/health/ready` says so by answering 503, so that nothing mistakes it for
//! a working aggregation job.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use serde::Deserialize;
use spanway_service_kit::ops::{self, Readiness};
use tokio_util::sync::CancellationToken;

/// Configuration of the analytics job.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalyticsConfig {
    /// Address of `/health/live`, `/health/ready` and `/metrics`.
    pub ops_listen: SocketAddr,
    /// Default log level (`RUST_LOG` overrides it).
    pub log_level: String,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        AnalyticsConfig {
            ops_listen: SocketAddr::from(([0, 0, 0, 0], 14271)),
            log_level: "info".into(),
        }
    }
}

/// Serves the operations endpoint until `shutdown`; returns its address.
pub async fn start(
    config: &AnalyticsConfig,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let ready = Readiness::default();
    ready.set(false);
    let addr = ops::serve(
        config.ops_listen,
        Arc::new(Registry::default()),
        ready,
        shutdown,
    )
    .await?;
    tracing::warn!(%addr, "dependency aggregation is not available in this version; serving health endpoints only");
    Ok(addr)
}
