//! Reading a running process's operations endpoint the way an operator's
//! probes and scrapers do: `/health/ready` and `/metrics`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The status of `/health/ready` (0 when nothing answers).
pub async fn ready_status(ops: SocketAddr) -> u16 {
    reqwest::get(format!("http://{ops}/health/ready"))
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// The text of `/metrics` (empty when nothing answers).
pub async fn metrics_text(ops: SocketAddr) -> String {
    match reqwest::get(format!("http://{ops}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The value of the sample written exactly `series` (name and labels).
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Polls readiness and metrics every half second until `check` accepts
/// them or `timeout` passes; returns the last of both.
pub async fn wait_for(
    ops: SocketAddr,
    timeout: Duration,
    check: impl Fn(u16, &str) -> bool,
) -> (u16, String) {
    let deadline = Instant::now() + timeout;
    loop {
        let status = ready_status(ops).await;
        let metrics = metrics_text(ops).await;
        if check(status, &metrics) || Instant::now() > deadline {
            return (status, metrics);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
