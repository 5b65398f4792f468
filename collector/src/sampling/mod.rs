//! Jaeger remote sampling: the strategies SDKs fetch to decide which traces
//! to record, served over HTTP (`GET /sampling?service=NAME`, port 5778) and
//! gRPC (`jaeger.api_v2.SamplingManager`, on the Jaeger gRPC port).
//!
//! The strategies come from a file in Jaeger's format that is re-read every
//! `reload_interval`. A new version replaces the old one only once it has
//! validated as a whole; until then SDKs keep getting the last good one.

pub mod grpc;
pub mod http;
pub mod strategies;

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use spanway_schemas::proto::jaeger::api_v2 as jaeger;
use spanway_service_kit::metric_set::MetricSet;
use tokio_util::sync::CancellationToken;

pub use strategies::{Strategies, StrategiesError};

/// Why the strategies file could not be used. The message carries the
/// reason itself (no error `source`), so a cause chain does not repeat it.
#[derive(Debug, thiserror::Error)]
pub enum SamplingError {
    /// The file could not be read.
    #[error("sampling.strategies_file {path}: {reason}")]
    Read {
        path: PathBuf,
        reason: std::io::Error,
    },
    /// The file was read but does not validate.
    #[error("sampling.strategies_file {path}: {reason}")]
    Invalid {
        path: PathBuf,
        reason: StrategiesError,
    },
}

/// Labels of the sampling request counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    /// `http` or `grpc`.
    pub endpoint: &'static str,
}

spanway_service_kit::metric_set! {
    /// Counters of the sampling endpoints and of the reloads.
    pub struct SamplingMetrics {
        /// Strategy requests answered, by endpoint.
        requests: Family<EndpointLabel, Counter> => "requests",
            "Sampling strategy requests answered, by endpoint";
        /// Changed strategies files taken into use.
        reloads: Counter => "reloads", "Changed strategies files taken into use";
        /// Changed strategies files refused (unreadable or invalid); the
        /// previous strategies stayed in force.
        reload_failures: Counter => "reload_failures",
            "Changed strategies files refused; the previous strategies stay in force";
    }
}

impl SamplingMetrics {
    /// Registers the counters under the `collector_sampling` prefix.
    pub fn register(&self, registry: &mut Registry) {
        self.register_in(registry.sub_registry_with_prefix("collector_sampling"));
    }
}

/// The strategies in force, shared by both endpoints and the reloader.
#[derive(Debug)]
pub struct StrategyStore {
    current: RwLock<Arc<Strategies>>,
    metrics: SamplingMetrics,
}

impl StrategyStore {
    /// A store serving `strategies`.
    pub fn new(strategies: Strategies, metrics: SamplingMetrics) -> Self {
        StrategyStore {
            current: RwLock::new(Arc::new(strategies)),
            metrics,
        }
    }

    /// The strategy for `service` (the default one when it has none), and
    /// counts the request under `endpoint`.
    pub fn lookup(
        &self,
        service: &str,
        endpoint: &'static str,
    ) -> jaeger::SamplingStrategyResponse {
        self.metrics
            .requests
            .get_or_create(&EndpointLabel { endpoint })
            .inc();
        self.snapshot().for_service(service).clone()
    }

    /// The strategies in force now.
    pub fn snapshot(&self) -> Arc<Strategies> {
        // A writer that panicked left a whole `Arc` behind: still usable.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn replace(&self, strategies: Strategies) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(strategies);
    }
}

/// Reads and validates a strategies file.
pub fn load_file(path: &Path) -> Result<(Strategies, Vec<u8>), SamplingError> {
    let content = std::fs::read(path).map_err(|reason| SamplingError::Read {
        path: path.to_owned(),
        reason,
    })?;
    let strategies = Strategies::parse(&content).map_err(|reason| SamplingError::Invalid {
        path: path.to_owned(),
        reason,
    })?;
    Ok((strategies, content))
}

/// Builds the store from `strategies_file` (validated now, so a bad file
/// stops the start) and, with a file, starts re-reading it every
/// `reload_interval` until `shutdown`.
pub fn start(
    strategies_file: Option<&Path>,
    reload_interval: Duration,
    metrics: SamplingMetrics,
    shutdown: CancellationToken,
) -> Result<Arc<StrategyStore>, SamplingError> {
    let Some(path) = strategies_file else {
        tracing::info!("no sampling strategies file: serving the default strategy");
        return Ok(Arc::new(StrategyStore::new(Strategies::default(), metrics)));
    };
    let (strategies, content) = load_file(path)?;
    let store = Arc::new(StrategyStore::new(strategies, metrics));
    let mut reloader = Reloader::new(path.to_owned(), content, store.clone());
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(reload_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await; // the first tick is immediate; the file was just read
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            // File I/O blocks; keep it off the async workers.
            reloader = match tokio::task::spawn_blocking(move || {
                reloader.check();
                reloader
            })
            .await
            {
                Ok(reloader) => reloader,
                Err(error) => {
                    tracing::error!(%error, "sampling strategies reloader failed; reloading stops");
                    return;
                }
            };
        }
    });
    Ok(store)
}

/// What a reload compares against. The content decides: a strategies file is
/// a few kilobytes, and comparing it avoids trusting mtime granularity
/// (a second on some filesystems); the mtime only goes into the log.
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    /// The content last examined, taken into use or refused: a refused file
    /// is reported once, not at every interval.
    last_content: Vec<u8>,
    /// Whether the last read failed, for the same reason.
    read_failing: bool,
    store: Arc<StrategyStore>,
}

/// What one check did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// Same content as last time.
    Unchanged,
    /// New strategies are in force.
    Reloaded,
    /// The file could not be read or did not validate; the previous
    /// strategies stay in force.
    Refused,
}

impl Reloader {
    /// A reloader for `path`, whose current `content` the store serves.
    pub fn new(path: PathBuf, content: Vec<u8>, store: Arc<StrategyStore>) -> Self {
        Reloader {
            path,
            last_content: content,
            read_failing: false,
            store,
        }
    }

    /// Re-reads the file and swaps the strategies if it changed and validates.
    pub fn check(&mut self) -> ReloadOutcome {
        let metrics = &self.store.metrics;
        let content = match std::fs::read(&self.path) {
            Ok(content) => content,
            Err(reason) => {
                if !self.read_failing {
                    self.read_failing = true;
                    metrics.reload_failures.inc();
                    let error = SamplingError::Read {
                        path: self.path.clone(),
                        reason,
                    };
                    tracing::error!(%error, "cannot re-read the sampling strategies; the previous ones stay in force");
                }
                return ReloadOutcome::Refused;
            }
        };
        self.read_failing = false;
        if content == self.last_content {
            return ReloadOutcome::Unchanged;
        }
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        let outcome = match Strategies::parse(&content) {
            Ok(strategies) => {
                self.store.replace(strategies);
                metrics.reloads.inc();
                tracing::info!(path = %self.path.display(), ?modified, "sampling strategies reloaded");
                ReloadOutcome::Reloaded
            }
            Err(reason) => {
                metrics.reload_failures.inc();
                let error = SamplingError::Invalid {
                    path: self.path.clone(),
                    reason,
                };
                tracing::error!(%error, ?modified, "changed sampling strategies refused; the previous ones stay in force");
                ReloadOutcome::Refused
            }
        };
        self.last_content = content;
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(store: &StrategyStore, service: &str) -> f64 {
        store
            .lookup(service, "http")
            .probabilistic_sampling
            .unwrap()
            .sampling_rate
    }

    fn file(param: f64) -> String {
        format!(
            r#"{{"service_strategies": [{{"service": "a", "type": "probabilistic", "param": {param}}}]}}"#
        )
    }

    #[test]
    fn reload_takes_good_files_and_keeps_the_last_good_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strategies.json");
        std::fs::write(&path, file(0.5)).unwrap();
        let (strategies, content) = load_file(&path).unwrap();
        let metrics = SamplingMetrics::default();
        let store = Arc::new(StrategyStore::new(strategies, metrics.clone()));
        let mut reloader = Reloader::new(path.clone(), content, store.clone());
        assert_eq!(rate(&store, "a"), 0.5);
        assert_eq!(reloader.check(), ReloadOutcome::Unchanged);

        std::fs::write(&path, file(0.25)).unwrap();
        assert_eq!(reloader.check(), ReloadOutcome::Reloaded);
        assert_eq!(rate(&store, "a"), 0.25);

        // Invalid: refused once, counted once, the last good one stays.
        std::fs::write(&path, file(7.0)).unwrap();
        assert_eq!(reloader.check(), ReloadOutcome::Refused);
        assert_eq!(reloader.check(), ReloadOutcome::Unchanged);
        assert_eq!(rate(&store, "a"), 0.25);
        assert_eq!(metrics.reload_failures.get(), 1);

        // Gone: refused and counted once.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(reloader.check(), ReloadOutcome::Refused);
        assert_eq!(reloader.check(), ReloadOutcome::Refused);
        assert_eq!(metrics.reload_failures.get(), 2);
        assert_eq!(rate(&store, "a"), 0.25);

        std::fs::write(&path, file(1.0)).unwrap();
        assert_eq!(reloader.check(), ReloadOutcome::Reloaded);
        assert_eq!(rate(&store, "a"), 1.0);
        assert_eq!(metrics.reloads.get(), 2);
        assert_eq!(
            rate(&store, "other"),
            strategies::DEFAULT_SAMPLING_PROBABILITY
        );
    }

    #[test]
    fn a_bad_file_at_start_names_the_file_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        std::fs::write(&path, file(2.0)).unwrap();
        let error = load_file(&path).unwrap_err().to_string();
        assert!(error.starts_with("sampling.strategies_file "), "{error}");
        assert!(
            error.ends_with("service_strategies[0].param: 2 is not a probability in [0, 1]"),
            "{error}"
        );
        let error = load_file(&dir.path().join("missing.json"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("missing.json"), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_reloader_polls_at_the_interval_until_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strategies.json");
        std::fs::write(&path, file(0.5)).unwrap();
        let shutdown = CancellationToken::new();
        let store = start(
            Some(&path),
            Duration::from_secs(30),
            SamplingMetrics::default(),
            shutdown.clone(),
        )
        .unwrap();
        std::fs::write(&path, file(0.75)).unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(rate(&store, "a"), 0.5, "not before the interval");
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if rate(&store, "a") == 0.75 {
                break;
            }
        }
        assert_eq!(rate(&store, "a"), 0.75);
        shutdown.cancel();
    }
}
