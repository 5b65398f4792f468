//! Liveness: each long-running work loop beats a heartbeat on every round,
//! and `/health/live` fails when a loop has not beaten within the stall
//! timeout, naming it.
//!
//! An orchestrator answers a failed liveness probe with a restart. A restart
//! cures a loop that stopped going round (a deadlock, a call that never
//! returns, a wedged thread); it does not cure a dependency that is down,
//! which readiness reports. So a loop beats while it waits on purpose: idle
//! with nothing to read, paused for backpressure, backing off from a down
//! engine. Only a loop that stops making its rounds goes stale.
//!
//! A loop that ends after shutdown has begun, or a unit of work that ends
//! with [`Heartbeat::finish`], leaves the report. One that ends before
//! shutdown (it returned early or panicked) stays in it as `exited` or
//! `panicked`: the work it did is no longer done, and the rest of the
//! process may look busy around the hole.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::ConfigError;

/// Default of `ops.stall_timeout`. The longest gap between two beats that
/// the default settings allow is about 75 s: a revoke inside a Kafka poll
/// drains in-flight writes for up to `kafka.drain_timeout` (15 s) and then
/// commits synchronously, which librdkafka bounds by its `socket.timeout.ms`
/// (60 s). A bulk attempt is at most `request_timeout` (30 s) followed by a
/// back-off of at most `retry_max_backoff` (10 s). Two minutes leaves a
/// margin above all of them and still restarts a stuck consumer long before
/// its lag would page anyone.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Checks `ops.stall_timeout` against the longest gaps between two beats a
/// healthy loop may have, each named by the settings it comes from. A
/// timeout at or below one of them would restart a healthy process every
/// time a dependency is slow.
pub fn validate_stall_timeout(
    stall_timeout: Duration,
    longest_waits: &[(&str, Duration)],
) -> Result<(), ConfigError> {
    if stall_timeout.is_zero() {
        return Err(ConfigError::invalid(
            "ops.stall_timeout",
            "must be positive",
        ));
    }
    for (keys, wait) in longest_waits {
        if stall_timeout <= *wait {
            return Err(ConfigError::invalid(
                "ops.stall_timeout",
                format!(
                    "{:?} must exceed {keys} ({:?}), the longest a healthy loop may go without a beat",
                    stall_timeout, wait
                ),
            ));
        }
    }
    Ok(())
}

/// How a registered loop ended, if it did.
const RUNNING: u8 = 0;
const EXITED: u8 = 1;
const PANICKED: u8 = 2;

/// The registry of work loops, shared by the loops and the endpoint.
#[derive(Clone)]
pub struct Liveness {
    inner: Arc<Inner>,
}

struct Inner {
    stall_timeout: Duration,
    /// Beats are stored as nanoseconds since this instant, so that a beat
    /// is one atomic store.
    epoch: Instant,
    shutdown: CancellationToken,
    next_id: AtomicU64,
    loops: Mutex<BTreeMap<u64, Arc<Slot>>>,
}

struct Slot {
    name: &'static str,
    last_beat: AtomicU64,
    end: AtomicU8,
}

impl std::fmt::Debug for Liveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Liveness")
            .field("stall_timeout", &self.inner.stall_timeout)
            .finish_non_exhaustive()
    }
}

impl Liveness {
    /// A registry whose loops are stalled after `stall_timeout` without a
    /// beat. `shutdown` is the process's: a loop ending after it fired ended
    /// normally.
    pub fn new(stall_timeout: Duration, shutdown: CancellationToken) -> Self {
        Liveness {
            inner: Arc::new(Inner {
                stall_timeout,
                epoch: Instant::now(),
                shutdown,
                next_id: AtomicU64::new(0),
                loops: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// The configured stall timeout.
    pub fn stall_timeout(&self) -> Duration {
        self.inner.stall_timeout
    }

    /// Registers a loop (or one unit of work, several of which may share a
    /// name) that has just beaten.
    pub fn register(&self, name: &'static str) -> Heartbeat {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            name,
            last_beat: AtomicU64::new(self.inner.now_nanos()),
            end: AtomicU8::new(RUNNING),
        });
        self.inner.lock().insert(id, slot.clone());
        Heartbeat {
            inner: self.inner.clone(),
            id,
            slot,
            finished: false,
        }
    }

    /// Every registered name with its worst instance, by name.
    pub fn report(&self) -> Report {
        let now = self.inner.now_nanos();
        let timeout = self.inner.stall_timeout;
        let mut by_name: BTreeMap<&'static str, LoopStatus> = BTreeMap::new();
        for slot in self.inner.lock().values() {
            let age =
                Duration::from_nanos(now.saturating_sub(slot.last_beat.load(Ordering::Relaxed)));
            let state = LoopState::of(slot.end.load(Ordering::Relaxed), age, timeout);
            let status = by_name.entry(slot.name).or_insert_with(|| LoopStatus {
                name: slot.name,
                instances: 0,
                last_beat_seconds_ago: 0.0,
                state: LoopState::Running,
            });
            status.instances += 1;
            status.last_beat_seconds_ago = status.last_beat_seconds_ago.max(age.as_secs_f64());
            status.state = status.state.max(state);
        }
        let loops: Vec<LoopStatus> = by_name.into_values().collect();
        Report {
            live: loops.iter().all(|l| l.state == LoopState::Running),
            stall_timeout_seconds: timeout.as_secs_f64(),
            loops,
        }
    }

    /// Exports `loop_beat_age_seconds{loop}`, the seconds since each loop's
    /// oldest instance last beat, so that an alert can fire before the
    /// probe restarts the process.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(BeatAges(self.clone())));
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<Slot>>> {
        // Every update is a single insert or remove: a panic cannot leave
        // the map half-changed.
        self.loops
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now_nanos(&self) -> u64 {
        self.nanos_at(Instant::now())
    }

    fn nanos_at(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }
}

/// One loop's registration. Dropping it ends the loop: normally once
/// shutdown has begun, as `exited` (or `panicked`) before.
pub struct Heartbeat {
    inner: Arc<Inner>,
    id: u64,
    slot: Arc<Slot>,
    finished: bool,
}

impl std::fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heartbeat")
            .field("name", &self.slot.name)
            .finish_non_exhaustive()
    }
}

impl Heartbeat {
    /// Records a round of the loop.
    pub fn beat(&self) {
        self.slot
            .last_beat
            .store(self.inner.now_nanos(), Ordering::Relaxed);
    }

    /// Records a round of the loop at `now`, for a loop that reads the clock
    /// each round anyway: at one round per record, a second clock reading
    /// was a measurable share of the analytics job's polling thread.
    pub fn beat_at(&self, now: Instant) {
        self.slot
            .last_beat
            .store(self.inner.nanos_at(now), Ordering::Relaxed);
    }

    /// Awaits `wait`, beating meanwhile: for waits that may last as long as
    /// they like without the loop being stuck, such as the next batch when
    /// there is nothing to read. The beats come from the same task, so a
    /// wedged runtime still goes stale.
    pub async fn beat_while<F: Future>(&self, wait: F) -> F::Output {
        let mut wait = std::pin::pin!(wait);
        let period = (self.inner.stall_timeout / 4).max(Duration::from_millis(10));
        loop {
            self.beat();
            tokio::select! {
                output = &mut wait => {
                    self.beat();
                    return output;
                }
                _ = tokio::time::sleep(period) => {}
            }
        }
    }

    /// Ends a unit of work that finished normally, whether or not shutdown
    /// has begun.
    pub fn finish(mut self) {
        self.finished = true;
        self.inner.lock().remove(&self.id);
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if std::thread::panicking() {
            self.slot.end.store(PANICKED, Ordering::Relaxed);
        } else if self.inner.shutdown.is_cancelled() {
            self.inner.lock().remove(&self.id);
        } else {
            self.slot.end.store(EXITED, Ordering::Relaxed);
        }
    }
}

/// What `/health/live` answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Whether every loop is running and beat within the stall timeout.
    pub live: bool,
    /// `ops.stall_timeout`.
    pub stall_timeout_seconds: f64,
    /// The loops, by name.
    pub loops: Vec<LoopStatus>,
}

impl Report {
    /// The names of the loops that make the process look dead.
    pub fn failing(&self) -> Vec<&'static str> {
        self.loops
            .iter()
            .filter(|l| l.state != LoopState::Running)
            .map(|l| l.name)
            .collect()
    }
}

/// The instances registered under one name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoopStatus {
    /// The loop's name.
    pub name: &'static str,
    /// How many are registered (several for per-request work).
    pub instances: usize,
    /// Age of the oldest instance's last beat.
    pub last_beat_seconds_ago: f64,
    /// The worst instance's state.
    pub state: LoopState,
}

/// A loop's state, ordered from healthy to dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoopState {
    /// Beat within the stall timeout.
    Running,
    /// No beat for longer than the stall timeout.
    Stalled,
    /// Returned before shutdown.
    Exited,
    /// Panicked.
    Panicked,
}

impl LoopState {
    fn of(end: u8, age: Duration, stall_timeout: Duration) -> Self {
        match end {
            PANICKED => LoopState::Panicked,
            EXITED => LoopState::Exited,
            _ if age > stall_timeout => LoopState::Stalled,
            _ => LoopState::Running,
        }
    }
}

#[derive(Debug)]
struct BeatAges(Liveness);

impl Collector for BeatAges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let report = self.0.report();
        let gauge_type = ConstGauge::new(0.0f64).metric_type();
        let mut family = encoder.encode_descriptor(
            "loop_beat_age",
            "Seconds since the work loop (its oldest instance) last beat; /health/live fails past ops.stall_timeout",
            Some(&Unit::Seconds),
            gauge_type,
        )?;
        for status in &report.loops {
            let labels = [("loop", status.name)];
            ConstGauge::new(status.last_beat_seconds_ago).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(60);

    fn states(liveness: &Liveness) -> Vec<(&'static str, usize, LoopState)> {
        liveness
            .report()
            .loops
            .iter()
            .map(|l| (l.name, l.instances, l.state))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_loop_that_stops_beating_is_stalled_past_the_timeout_only() {
        let liveness = Liveness::new(TIMEOUT, CancellationToken::new());
        let poll = liveness.register("kafka-poll");
        let _write = liveness.register("writer");
        tokio::time::advance(TIMEOUT).await;
        poll.beat();
        let report = liveness.report();
        assert!(
            report.live,
            "exactly the timeout is not past it: {report:?}"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        let report = liveness.report();
        assert!(!report.live);
        assert_eq!(report.failing(), ["writer"]);
        assert_eq!(
            states(&liveness),
            [
                ("kafka-poll", 1, LoopState::Running),
                ("writer", 1, LoopState::Stalled)
            ]
        );
        assert_eq!(report.loops[1].last_beat_seconds_ago, 61.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_beat_counts_from_the_instant_given() {
        let liveness = Liveness::new(TIMEOUT, CancellationToken::new());
        let poll = liveness.register("kafka-poll");
        let read = Instant::now();
        tokio::time::advance(TIMEOUT + Duration::from_secs(1)).await;
        poll.beat_at(read);
        assert_eq!(liveness.report().failing(), ["kafka-poll"]);
        poll.beat_at(Instant::now());
        assert!(liveness.report().live);
    }

    #[tokio::test(start_paused = true)]
    async fn a_name_shared_by_several_instances_reports_the_oldest() {
        let liveness = Liveness::new(TIMEOUT, CancellationToken::new());
        let stuck = liveness.register("bulk-write");
        tokio::time::advance(Duration::from_secs(50)).await;
        let busy = liveness.register("bulk-write");
        tokio::time::advance(Duration::from_secs(20)).await;
        busy.beat();
        let report = liveness.report();
        assert_eq!(report.failing(), ["bulk-write"]);
        assert_eq!(report.loops[0].instances, 2);
        assert_eq!(report.loops[0].last_beat_seconds_ago, 70.0);
        stuck.finish();
        assert!(liveness.report().live);
        busy.finish();
        assert!(liveness.report().loops.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_with_beat_while_never_goes_stale() {
        let liveness = Liveness::new(TIMEOUT, CancellationToken::new());
        let heartbeat = liveness.register("sink");
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let watcher = {
            let liveness = liveness.clone();
            async move {
                let mut worst = 0.0f64;
                for _ in 0..100 {
                    tokio::time::sleep(Duration::from_secs(7)).await;
                    worst = worst.max(liveness.report().loops[0].last_beat_seconds_ago);
                }
                tx.send(7).ok();
                worst
            }
        };
        let (got, worst) = tokio::join!(heartbeat.beat_while(rx), watcher);
        assert_eq!(got.ok(), Some(7));
        assert!(worst <= TIMEOUT.as_secs_f64() / 4.0, "{worst}");
        assert!(liveness.report().live);
    }

    #[test]
    fn a_loop_ending_before_shutdown_is_exited_and_after_it_is_gone() {
        let shutdown = CancellationToken::new();
        let liveness = Liveness::new(TIMEOUT, shutdown.clone());
        drop(liveness.register("kafka-poll"));
        assert_eq!(states(&liveness), [("kafka-poll", 1, LoopState::Exited)]);
        assert!(!liveness.report().live);

        let liveness = Liveness::new(TIMEOUT, shutdown.clone());
        let poll = liveness.register("kafka-poll");
        let writer = liveness.register("writer");
        shutdown.cancel();
        drop(poll);
        assert_eq!(states(&liveness), [("writer", 1, LoopState::Running)]);
        drop(writer);
        let report = liveness.report();
        assert!(report.live && report.loops.is_empty(), "{report:?}");
    }

    #[test]
    fn finished_work_leaves_without_shutdown() {
        let liveness = Liveness::new(TIMEOUT, CancellationToken::new());
        liveness.register("bulk-write").finish();
        assert!(liveness.report().loops.is_empty());
    }

    #[test]
    fn a_loop_that_panics_is_reported_even_after_shutdown() {
        let shutdown = CancellationToken::new();
        let liveness = Liveness::new(TIMEOUT, shutdown.clone());
        let heartbeat = liveness.register("kafka-poll");
        let thread = std::thread::spawn(move || {
            let _heartbeat = heartbeat;
            panic!("poll loop bug");
        });
        assert!(thread.join().is_err());
        shutdown.cancel();
        assert_eq!(states(&liveness), [("kafka-poll", 1, LoopState::Panicked)]);
    }

    #[test]
    fn the_stall_timeout_must_be_positive_and_above_every_wait() {
        let waits = [("a.request_timeout", Duration::from_secs(30))];
        for bad in [Duration::ZERO, Duration::from_secs(30)] {
            let error = validate_stall_timeout(bad, &waits).unwrap_err().to_string();
            assert!(error.contains("ops.stall_timeout"), "{error}");
        }
        let error = validate_stall_timeout(Duration::from_secs(30), &waits)
            .unwrap_err()
            .to_string();
        assert!(error.contains("a.request_timeout (30s)"), "{error}");
        validate_stall_timeout(Duration::from_secs(31), &waits).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_metric_shows_each_loop_age() {
        let liveness = Liveness::new(TIMEOUT, CancellationToken::new());
        let mut registry = Registry::default();
        liveness.register_metrics(registry.sub_registry_with_prefix("ingester"));
        let _poll = liveness.register("kafka-poll");
        tokio::time::advance(Duration::from_millis(2500)).await;
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("ingester_loop_beat_age_seconds{loop=\"kafka-poll\"} 2.5"),
            "{text}"
        );
    }
}
