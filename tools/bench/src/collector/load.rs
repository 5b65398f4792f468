//! The load generator: OTLP/gRPC `Export` calls at a fixed span rate
//! (open loop) or as fast as the collector answers (closed loop).
//!
//! At a fixed rate each request has a planned send time, set by the spans
//! sent before it, whatever the collector does. Latency is measured from
//! that planned time, not from when the call went out: when every slot of
//! `concurrency` is taken by slow calls, the next request waits, and that
//! wait is part of what a client at this rate would see. Measuring from
//! the actual send would hide exactly the stalls a benchmark should show
//! ("coordinated omission"). Requests that went out more than
//! [`LATE_AFTER`] after their planned time are counted as late.
//!
//! At the maximum rate there is no plan: `concurrency` calls are kept in
//! flight, and latency is measured from each call's send.
//!
//! The first `warmup` of a run is load like the rest but left out of the
//! figures: a fresh process on a fresh topic first has to fetch the
//! topic's metadata and open connections to its partition leaders, and
//! calls that wait for that say nothing about the steady state. Spans
//! accepted during the warm-up still count when the topic is checked.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use spanway_schemas::proto::grpc::otlp_trace::trace_service_client::TraceServiceClient;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Channel, Endpoint};

use super::traffic::Pool;

/// A request that left this much after its planned time counts as late.
pub const LATE_AFTER: Duration = Duration::from_millis(10);

/// How fast to send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// This many spans per second, open loop.
    Fixed(f64),
    /// As fast as the collector answers, `concurrency` calls in flight.
    Max,
}

impl Rate {
    /// `max` or a number of spans per second.
    pub fn parse(text: &str) -> Result<Rate, String> {
        if text.eq_ignore_ascii_case("max") {
            return Ok(Rate::Max);
        }
        match text.replace('_', "").parse::<f64>() {
            Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(Rate::Fixed(rate)),
            _ => Err(format!(
                "{text:?} is neither `max` nor a positive number of spans per second"
            )),
        }
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rate::Fixed(rate) => write!(f, "{rate:.0}"),
            Rate::Max => f.write_str("max"),
        }
    }
}

/// What to send, how fast, for how long.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The span rate.
    pub rate: Rate,
    /// How long requests are started for, after the warm-up.
    pub duration: Duration,
    /// Load before the measured part, left out of the figures.
    pub warmup: Duration,
    /// Calls in flight at most.
    pub concurrency: usize,
    /// HTTP/2 connections the calls are spread over, round robin, as
    /// several exporters would open.
    pub connections: usize,
    /// A call unanswered after this long fails with DEADLINE_EXCEEDED.
    pub request_timeout: Duration,
    /// gzip request bodies, as many OTLP exporters do by default.
    pub gzip: bool,
}

/// One answered call.
#[derive(Debug)]
struct Answer {
    /// The planned send time at a fixed rate; `None` at the maximum rate,
    /// where a call goes out as soon as a slot is free.
    planned: Option<Instant>,
    sent: Instant,
    done: Instant,
    spans: u64,
    /// `Ok(rejected spans)` or the gRPC status code and message.
    result: Result<u64, (tonic::Code, String)>,
}

/// What the warm-up did, for the check of the topic.
#[derive(Debug, Clone, Default)]
pub struct Warmup {
    /// Calls sent during the warm-up.
    pub requests: u64,
    /// Spans accepted in them.
    pub spans_accepted: u64,
    /// Calls that failed.
    pub failed: u64,
}

/// Everything the load generator saw.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The warm-up, apart.
    pub warmup: Warmup,
    /// When the measured part started: the first request planned after the
    /// warm-up.
    pub started: Instant,
    /// When the last answer came.
    pub finished: Instant,
    /// Calls made.
    pub requests: u64,
    /// Calls answered OK.
    pub ok: u64,
    /// Failed calls per gRPC status code.
    pub failed: BTreeMap<String, u64>,
    /// The first failure's message.
    pub first_failure: Option<String>,
    /// Spans in all calls.
    pub spans_sent: u64,
    /// Spans in OK answers, minus those `partial_success` rejected.
    pub spans_accepted: u64,
    /// Spans `partial_success` rejected.
    pub spans_rejected: u64,
    /// Latency of each OK call, sorted.
    pub latencies: Vec<Duration>,
    /// Calls sent more than [`LATE_AFTER`] after their planned time.
    pub late: u64,
}

impl Outcome {
    pub(crate) fn new(started: Instant) -> Outcome {
        Outcome {
            warmup: Warmup::default(),
            started,
            finished: started,
            requests: 0,
            ok: 0,
            failed: BTreeMap::new(),
            first_failure: None,
            spans_sent: 0,
            spans_accepted: 0,
            spans_rejected: 0,
            latencies: Vec::new(),
            late: 0,
        }
    }

    fn add(&mut self, answer: Answer) {
        let planned = answer.planned.unwrap_or(answer.sent);
        if planned < self.started {
            self.warmup.requests += 1;
            match answer.result {
                Ok(rejected) => self.warmup.spans_accepted += answer.spans.saturating_sub(rejected),
                Err(_) => self.warmup.failed += 1,
            }
            return;
        }
        self.requests += 1;
        self.spans_sent += answer.spans;
        self.finished = self.finished.max(answer.done);
        if answer.sent.duration_since(planned) > LATE_AFTER {
            self.late += 1;
        }
        match answer.result {
            Ok(rejected) => {
                self.ok += 1;
                self.spans_rejected += rejected;
                self.spans_accepted += answer.spans.saturating_sub(rejected);
                self.latencies.push(answer.done.duration_since(planned));
            }
            Err((code, message)) => {
                *self.failed.entry(format!("{code:?}")).or_default() += 1;
                self.first_failure
                    .get_or_insert_with(|| format!("{code:?}: {message}"));
            }
        }
    }

    /// Failed calls.
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    /// From the first planned send to the last answer.
    pub fn window(&self) -> Duration {
        self.finished.duration_since(self.started)
    }

    /// Accepted spans per second over [`Outcome::window`].
    pub fn accepted_rate(&self) -> f64 {
        let secs = self.window().as_secs_f64();
        if secs > 0.0 {
            self.spans_accepted as f64 / secs
        } else {
            0.0
        }
    }

    /// The `q` quantile (0 < q ≤ 1) of OK calls' latency, nearest rank.
    pub fn latency(&self, q: f64) -> Option<Duration> {
        quantile(&self.latencies, q)
    }
}

/// Nearest-rank quantile of sorted values.
pub(crate) fn quantile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Opens `plan.connections` connections to `endpoint` (`http://host:port`).
async fn connect(endpoint: &str, plan: &Plan) -> anyhow::Result<Vec<TraceServiceClient<Channel>>> {
    let mut clients = Vec::with_capacity(plan.connections.max(1));
    for _ in 0..plan.connections.max(1) {
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .with_context(|| format!("endpoint {endpoint}"))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("connecting to {endpoint}"))?;
        let mut client = TraceServiceClient::new(channel)
            .max_encoding_message_size(64 * 1024 * 1024)
            .accept_compressed(CompressionEncoding::Gzip);
        if plan.gzip {
            client = client.send_compressed(CompressionEncoding::Gzip);
        }
        clients.push(client);
    }
    Ok(clients)
}

fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Sends the plan's load to `endpoint` and returns what came back, once
/// every call is answered or has timed out.
pub async fn drive(endpoint: &str, pool: &Pool, plan: &Plan) -> anyhow::Result<Outcome> {
    let clients = connect(endpoint, plan).await?;
    let slots = Arc::new(Semaphore::new(plan.concurrency.max(1)));
    let mut calls = JoinSet::new();
    let started = Instant::now();
    let end = started + plan.warmup + plan.duration;
    let mut outcome = Outcome::new(started + plan.warmup);
    let mut planned_spans = 0u64;
    let mut seq = 0u64;
    loop {
        // Built before the wait, so building never delays a send.
        let spans = pool.spans(seq) as u64;
        let request = pool.request(seq, unix_now_ns());
        let (planned, slot) = match plan.rate {
            Rate::Fixed(rate) => {
                let planned = started + Duration::from_secs_f64(planned_spans as f64 / rate);
                if planned >= end {
                    break;
                }
                tokio::time::sleep_until(planned.into()).await;
                (Some(planned), slots.clone().acquire_owned().await?)
            }
            Rate::Max => {
                let slot = slots.clone().acquire_owned().await?;
                if Instant::now() >= end {
                    break;
                }
                (None, slot)
            }
        };
        let index = usize::try_from(seq % clients.len() as u64).unwrap_or(0);
        let mut client = clients[index].clone();
        let timeout = plan.request_timeout;
        calls.spawn(async move {
            let mut call = tonic::Request::new(request);
            call.set_timeout(timeout);
            let sent = Instant::now();
            let result = client
                .export(call)
                .await
                .map(|response| {
                    response
                        .into_inner()
                        .partial_success
                        .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0))
                })
                .map_err(|status| (status.code(), status.message().to_owned()));
            let done = Instant::now();
            drop(slot);
            Answer {
                planned,
                sent,
                done,
                spans,
                result,
            }
        });
        planned_spans += spans;
        seq += 1;
        while let Some(answer) = calls.try_join_next() {
            outcome.add(answer.context("a call's task failed")?);
        }
    }
    while let Some(answer) = calls.join_next().await {
        outcome.add(answer.context("a call's task failed")?);
    }
    outcome.latencies.sort_unstable();
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates() {
        assert_eq!(Rate::parse("max"), Ok(Rate::Max));
        assert_eq!(Rate::parse("20_000"), Ok(Rate::Fixed(20_000.0)));
        assert!(Rate::parse("0").is_err());
        assert!(Rate::parse("fast").is_err());
    }

    #[test]
    fn nearest_rank_quantiles() {
        let ms: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&ms, 0.5), Some(Duration::from_millis(50)));
        assert_eq!(quantile(&ms, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(quantile(&ms, 1.0), Some(Duration::from_millis(100)));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&ms[..1], 0.99), Some(Duration::from_millis(1)));
    }

    #[test]
    fn counts_answers() {
        let t = Instant::now();
        let mut outcome = Outcome::new(t);
        outcome.add(Answer {
            planned: Some(t - Duration::from_millis(1)),
            sent: t,
            done: t,
            spans: 3,
            result: Ok(0),
        });
        assert_eq!(outcome.warmup.spans_accepted, 3);
        assert_eq!(outcome.requests, 0);
        outcome.add(Answer {
            planned: Some(t),
            sent: t + Duration::from_millis(20),
            done: t + Duration::from_millis(30),
            spans: 10,
            result: Ok(2),
        });
        outcome.add(Answer {
            planned: None,
            sent: t,
            done: t + Duration::from_millis(5),
            spans: 7,
            result: Err((tonic::Code::Unavailable, "kafka down".into())),
        });
        assert_eq!(outcome.requests, 2);
        assert_eq!(outcome.spans_sent, 17);
        assert_eq!(outcome.spans_accepted, 8);
        assert_eq!(outcome.spans_rejected, 2);
        assert_eq!(outcome.late, 1);
        assert_eq!(outcome.failed_total(), 1);
        assert_eq!(outcome.latencies, vec![Duration::from_millis(30)]);
        assert_eq!(outcome.window(), Duration::from_millis(30));
    }
}
