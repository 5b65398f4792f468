//! The peer: the OpenTelemetry Collector's servicegraph connector behind
//! its Kafka receiver, over the topic our job has just read.
//!
//! Its store is given room for every edge waiting for its other half
//! (`max_items`): with the default 1,000, a topic read at full speed
//! overflows it and the connector drops edges, which would make it cheaper
//! and wrong. Everything else keeps the connector's defaults, except that
//! edges are exported every second instead of every minute, so the counts
//! can be read back soon after the last span.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::{AnalyticsRun, SERVICEGRAPH, free_port, metrics_text, sum_samples};
use crate::measure;
use crate::runs::kafka_receiver_yaml;

/// Edges waiting for their other half, at most.
const STORE_ITEMS: usize = 1_000_000;

/// The peer's configuration: read `topic` from the start as `group`,
/// pair spans into edges, export them to Prometheus on `metrics_port`;
/// its own counters (spans accepted) on `telemetry_port`.
fn config(kafka: &str, topic: &str, group: &str, telemetry_port: u16, metrics_port: u16) -> String {
    let receivers = kafka_receiver_yaml(kafka, topic, group);
    format!(
        "{receivers}connectors:
  servicegraph:
    store:
      max_items: {STORE_ITEMS}
    metrics_flush_interval: 1s
exporters:
  prometheus:
    endpoint: 127.0.0.1:{metrics_port}
service:
  pipelines:
    traces:
      receivers: [kafka]
      exporters: [servicegraph]
    metrics:
      receivers: [servicegraph]
      exporters: [prometheus]
  telemetry:
    logs:
      level: warn
    metrics:
      level: basic
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: {telemetry_port}
"
    )
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}

/// One run of the peer over `topic`, which holds `spans` spans: CPU from
/// the first span accepted to the last, then the calls its edges count
/// once they stop growing.
pub(super) async fn run(
    bin: &Path,
    kafka: &str,
    topic: &str,
    group: &str,
    spans: u64,
    log_dir: &Path,
    services_dir: &Path,
) -> anyhow::Result<AnalyticsRun> {
    let (telemetry_port, metrics_port) = (free_port()?, free_port()?);
    std::fs::create_dir_all(log_dir)
        .with_context(|| format!("cannot create {}", log_dir.display()))?;
    let config_path = log_dir.join(format!("{group}.yaml"));
    std::fs::write(
        &config_path,
        config(kafka, topic, group, telemetry_port, metrics_port),
    )
    .with_context(|| format!("cannot write {}", config_path.display()))?;
    let log_path = log_dir.join(format!("{group}.log"));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let result = measure_run(
        &mut child,
        telemetry_port,
        metrics_port,
        spans,
        services_dir,
    )
    .await;
    stop(&mut child);
    result.with_context(|| format!("its log: {}", log_path.display()))
}

async fn measure_run(
    child: &mut Child,
    telemetry_port: u16,
    metrics_port: u16,
    spans: u64,
    services_dir: &Path,
) -> anyhow::Result<AnalyticsRun> {
    let client = reqwest::Client::new();
    let accepted = |text: &str| {
        sum_samples(text, "otelcol_receiver_accepted_spans_total", "") as u64
            + sum_samples(text, "otelcol_receiver_accepted_spans", "") as u64
    };
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut first: Option<(Instant, Duration, measure::Meter)> = None;
    let last = loop {
        if Instant::now() > deadline {
            bail!("not all spans accepted within 15 minutes");
        }
        if let Some(status) = child.try_wait()? {
            bail!("the peer exited early ({status})");
        }
        let read = match metrics_text(&client, telemetry_port).await {
            Some(text) => accepted(&text),
            None => 0,
        };
        if read > 0 && first.is_none() {
            first = Some((
                Instant::now(),
                measure::process_cpu(child.id())?,
                measure::Meter::start(services_dir)?,
            ));
        }
        if read >= spans {
            break (Instant::now(), measure::process_cpu(child.id())?);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let Some((start, start_cpu, meter)) = first else {
        bail!("no progress seen");
    };
    let costs = meter.finish(Some(last.1.saturating_sub(start_cpu)));
    let peak_rss_kib = measure::peak_rss_kib(child.id())?;
    // Edges whose other half never comes (uninstrumented peers, the
    // callers of root spans) are counted when they expire from the store:
    // wait until the counts stop growing.
    let mut calls = 0.0;
    let mut failed = None;
    let mut unchanged = 0;
    while unchanged < 3 {
        if Instant::now() > deadline {
            bail!("edge counts still growing after 15 minutes");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let text = metrics_text(&client, metrics_port)
            .await
            .unwrap_or_default();
        let now = sum_samples(&text, "traces_service_graph_request_total", "");
        failed = Some(sum_samples(&text, "traces_service_graph_request_failed_total", "") as u64);
        if now > 0.0 && now == calls {
            unchanged += 1;
        } else {
            unchanged = 0;
        }
        calls = now;
    }
    Ok(AnalyticsRun {
        system: SERVICEGRAPH,
        spans,
        elapsed: last.0.duration_since(start),
        cpu: last.1.saturating_sub(start_cpu),
        kafka_cpu: None,
        peak_rss_kib,
        calls: calls as u64,
        failed,
        others_cpu: costs.others,
    })
}
