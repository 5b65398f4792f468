//! Probe spans: sent beside the background load, timed from the collector's
//! answer to the first search that finds them.

use crate::collector::load::{self, Outcome, Plan, Rate};
use crate::collector::traffic::Pool;
use anyhow::Context;
use rand::Rng;
use spanway_schemas::proto::grpc::otlp_trace::trace_service_client::TraceServiceClient;
use spanway_schemas::proto::otlp;
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

use super::Options;

/// What the probes saw.
pub(super) struct Probes {
    pub(super) acked: usize,
    pub(super) refused: usize,
    pub(super) latencies: Vec<Duration>,
    pub(super) trend: Option<f64>,
}

/// The median freshness of the probes acknowledged in the last third of the
/// run over that of the first third, from (acknowledged at, freshness) pairs
/// in any order; `None` with fewer than six probes found.
///
/// A pipeline that keeps up with the background rate answers as fast at
/// the end as at the start: about 1. One that falls behind builds a backlog
/// through the run, and each later probe waits behind more of it, so the
/// ratio grows with the run. That is how a run tells that its rate was
/// above what the machine sustains, which the freshness target (measured at
/// half the sustained maximum) needs to know.
pub(super) fn trend(found: &[(Instant, Duration)]) -> Option<f64> {
    if found.len() < 6 {
        return None;
    }
    let mut by_ack = found.to_vec();
    by_ack.sort_unstable_by_key(|(at, _)| *at);
    let third = by_ack.len() / 3;
    let median = |part: &[(Instant, Duration)]| {
        let mut latencies: Vec<Duration> = part.iter().map(|(_, d)| *d).collect();
        latencies.sort_unstable();
        latencies[latencies.len() / 2]
    };
    let first = median(&by_ack[..third]);
    let last = median(&by_ack[by_ack.len() - third..]);
    (!first.is_zero()).then(|| last.as_secs_f64() / first.as_secs_f64())
}

/// Background load and probes side by side; returns when the load is
/// answered and every probe is found or given up on.
pub(super) async fn measure(
    options: &Options,
    pool: &Pool,
    endpoint: &str,
    rate: f64,
    prefix: &str,
) -> anyhow::Result<(Outcome, Probes)> {
    let plan = Plan {
        rate: Rate::Fixed(rate),
        duration: options.duration,
        warmup: options.warmup,
        concurrency: 64,
        connections: 4,
        request_timeout: Duration::from_secs(30),
        gzip: false,
    };
    let (acked_tx, acked_rx) = mpsc::unbounded_channel();
    let background = load::drive(endpoint, pool, &plan);
    let sender = send_probes(endpoint, options, acked_tx);
    let searcher = find_probes(options, prefix, acked_rx);
    let (load, refused, (acked, found)) = tokio::try_join!(background, sender, searcher)?;
    let trend = trend(&found);
    let mut latencies: Vec<Duration> = found.into_iter().map(|(_, d)| d).collect();
    latencies.sort_unstable();
    Ok((
        load,
        Probes {
            acked,
            refused,
            latencies,
            trend,
        },
    ))
}

/// Sends one probe every 1/probes_per_second after the warm-up, for the
/// run's duration; each acknowledged one goes to the searcher with the
/// instant of its acknowledgement. Returns the number refused.
pub(super) async fn send_probes(
    endpoint: &str,
    options: &Options,
    acked: mpsc::UnboundedSender<(String, Instant)>,
) -> anyhow::Result<usize> {
    let channel = Endpoint::from_shared(endpoint.to_owned())
        .with_context(|| format!("endpoint {endpoint}"))?
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("connecting to {endpoint}"))?;
    let client = TraceServiceClient::new(channel);
    tokio::time::sleep(options.warmup).await;
    let interval = Duration::from_secs_f64(1.0 / options.probes_per_second);
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = Instant::now() + options.duration;
    let mut calls = tokio::task::JoinSet::new();
    while Instant::now() < end {
        ticks.tick().await;
        let (trace_id, request) = probe();
        let mut client: TraceServiceClient<Channel> = client.clone();
        let acked = acked.clone();
        // Each probe on its own task, so a slow answer never delays the
        // next probe.
        calls.spawn(async move {
            let answer = client.export(request).await;
            let at = Instant::now();
            match answer {
                Ok(response)
                    if response
                        .get_ref()
                        .partial_success
                        .as_ref()
                        .is_none_or(|p| p.rejected_spans == 0) =>
                {
                    let _ = acked.send((trace_id, at));
                    false
                }
                _ => true,
            }
        });
    }
    let mut refused = 0;
    while let Some(result) = calls.join_next().await {
        if result.context("a probe's task failed")? {
            refused += 1;
        }
    }
    Ok(refused)
}

/// One probe: a single server span of service `freshness-probe` with a
/// random 128-bit trace id (high half non-zero, so every writer renders it
/// as 32 hexadecimal digits).
pub(super) fn probe() -> (String, otlp::ExportTraceServiceRequest) {
    let mut rng = rand::rng();
    let mut trace_id: [u8; 16] = rng.random();
    trace_id[0] |= 0x10;
    let span_id: [u8; 8] = rng.random();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let hex: String = trace_id.iter().map(|b| format!("{b:02x}")).collect();
    let span = otlp::Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        name: "probe".into(),
        kind: otlp::span::SpanKind::Server as i32,
        start_time_unix_nano: now.saturating_sub(1_000_000),
        end_time_unix_nano: now,
        ..Default::default()
    };
    let request = otlp::ExportTraceServiceRequest {
        resource_spans: vec![otlp::ResourceSpans {
            resource: Some(otlp::Resource {
                attributes: vec![otlp::KeyValue::string("service.name", "freshness-probe")],
                ..Default::default()
            }),
            scope_spans: vec![otlp::ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (hex, request)
}

/// Searches for every acknowledged probe not yet found, every poll, until
/// the sender is done and every probe is found or `give_up` has passed.
/// Returns the number of probes acknowledged and, for each found, when it
/// was acknowledged and how long until it was found.
pub(super) async fn find_probes(
    options: &Options,
    prefix: &str,
    mut acked: mpsc::UnboundedReceiver<(String, Instant)>,
) -> anyhow::Result<(usize, Vec<(Instant, Duration)>)> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = format!(
        "{}/{prefix}-jaeger-span-*/_search",
        options.opensearch.trim_end_matches('/')
    );
    let mut waiting: HashMap<String, Instant> = HashMap::new();
    let mut latencies = Vec::new();
    let mut total = 0;
    let mut sender_done = false;
    let mut deadline: Option<Instant> = None;
    loop {
        tokio::time::sleep(options.poll).await;
        loop {
            match acked.try_recv() {
                Ok((id, at)) => {
                    waiting.insert(id, at);
                    total += 1;
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    sender_done = true;
                    break;
                }
            }
        }
        if sender_done {
            let give_up = *deadline.get_or_insert_with(|| Instant::now() + options.give_up);
            if waiting.is_empty() || Instant::now() >= give_up {
                break;
            }
        }
        if waiting.is_empty() {
            continue;
        }
        let ids: Vec<&String> = waiting.keys().collect();
        let body = serde_json::json!({
            "size": ids.len(),
            "_source": ["traceID"],
            "query": {"terms": {"traceID": ids}},
        });
        let Ok(response) = client.post(&url).json(&body).send().await else {
            continue;
        };
        let Ok(found) = response.json::<serde_json::Value>().await else {
            continue;
        };
        let seen = Instant::now();
        for hit in found["hits"]["hits"].as_array().into_iter().flatten() {
            if let Some(id) = hit["_source"]["traceID"].as_str()
                && let Some(at) = waiting.remove(id)
            {
                latencies.push((at, seen.duration_since(at)));
            }
        }
    }
    Ok((total, latencies))
}

/// Waits until the span indices hold `expected` documents (refreshing, as
/// the run is over) or have not grown for 30 s; returns the count.
pub(super) async fn wait_stored(url: &str, prefix: &str, expected: u64) -> u64 {
    let client = reqwest::Client::new();
    let pattern = format!("{prefix}-jaeger-span-*");
    let mut last = (0, Instant::now());
    loop {
        let count = crate::runs::engine_count(&client, url, &pattern).await;
        if count >= expected || last.1.elapsed() > Duration::from_secs(30) {
            return count;
        }
        if count != last.0 {
            last = (count, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(latencies_ms: &[u64]) -> Vec<(Instant, Duration)> {
        let start = Instant::now();
        latencies_ms
            .iter()
            .enumerate()
            .map(|(i, ms)| {
                (
                    start + Duration::from_millis(200 * i as u64),
                    Duration::from_millis(*ms),
                )
            })
            .rev() // the order found in does not matter
            .collect()
    }

    #[test]
    fn a_steady_run_trends_about_one_and_a_run_falling_behind_grows() {
        let steady = trend(&found(&[600, 700, 650, 620, 680, 640, 660, 610, 690])).unwrap();
        assert!((0.9..=1.1).contains(&steady), "{steady}");
        let behind = trend(&found(&[
            500, 900, 1_400, 2_000, 2_600, 3_300, 4_000, 4_600, 5_200,
        ]))
        .unwrap();
        assert!((behind - 4_600.0 / 900.0).abs() < 1e-9, "{behind}");
        assert_eq!(trend(&found(&[500, 600, 700, 800, 900])), None);
    }

    #[test]
    fn probes_have_distinct_32_digit_ids() {
        let (a, request) = probe();
        let (b, _) = probe();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(!a.starts_with('0'));
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        let hex: String = span.trace_id.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, a);
    }
}
