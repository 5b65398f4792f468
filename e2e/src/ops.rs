//! Reading a running process's operations endpoint the way an operator's
//! probes and scrapers do: `/health/live`, `/health/ready` and `/metrics`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The status of `/health/ready` (0 when nothing answers).
pub async fn ready_status(ops: SocketAddr) -> u16 {
    reqwest::get(format!("http://{ops}/health/ready"))
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// The status of `/health/live` (0 when nothing answers) and its report
/// (`null` when it is not JSON).
pub async fn live_report(ops: SocketAddr) -> (u16, serde_json::Value) {
    match reqwest::get(format!("http://{ops}/health/live")).await {
        Ok(r) => {
            let status = r.status().as_u16();
            let body = r.json().await.unwrap_or_default();
            (status, body)
        }
        Err(_) => (0, serde_json::Value::Null),
    }
}

/// The names of the loops in a `/health/live` report, with their state.
pub fn live_loops(report: &serde_json::Value) -> Vec<(String, String)> {
    report["loops"]
        .as_array()
        .map(|loops| {
            loops
                .iter()
                .map(|l| {
                    let text = |key: &str| l[key].as_str().unwrap_or_default().to_owned();
                    (text("name"), text("state"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What probing `/health/live` over a while saw.
#[derive(Debug, Default)]
pub struct LiveSeen {
    /// Probes sent.
    pub probes: usize,
    /// Every answer other than 200, with its report.
    pub failures: Vec<(u16, serde_json::Value)>,
    /// Every loop name any answer listed.
    pub loops: BTreeSet<String>,
}

/// Probes `/health/live` every half second, as a kubelet would, until
/// stopped: a liveness failure between two spot checks is still seen.
#[derive(Debug)]
pub struct LiveWatch {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<LiveSeen>,
}

impl LiveWatch {
    /// Starts probing `ops`.
    pub fn start(ops: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut seen = LiveSeen::default();
                while !stop.load(Ordering::Relaxed) {
                    let (status, report) = live_report(ops).await;
                    seen.probes += 1;
                    seen.loops
                        .extend(live_loops(&report).into_iter().map(|(name, _)| name));
                    if status != 200 {
                        seen.failures.push((status, report));
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                seen
            }
        });
        LiveWatch { stop, task }
    }

    /// Stops probing; what the probes saw.
    pub async fn stop(self) -> LiveSeen {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
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
