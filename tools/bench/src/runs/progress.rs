//! Watching a run: how many span documents have arrived, and when to give up.

use crate::measure::MeasuredChild;
use crate::null_endpoint::NullEndpoint;
use anyhow::bail;
use spanway_search::index::{Family, Prefix};
use std::time::{Duration, Instant};

use super::Options;

/// How far a run got.
#[derive(Debug)]
pub(super) struct Progress {
    /// Span documents delivered.
    pub(super) spans: u64,
    /// When the last one was seen (or when the run gave up).
    pub(super) end: Instant,
    /// When the first ones were seen, and how many there were then.
    pub(super) first: Option<(Instant, u64)>,
}

pub(super) async fn wait_null(
    endpoint: &NullEndpoint,
    child: &mut MeasuredChild,
    options: &Options,
) -> anyhow::Result<Progress> {
    let stats = endpoint.stats();
    let mut watch = Watch::new(options);
    loop {
        if let Some(end) = stats.done_at() {
            return Ok(Progress {
                spans: stats.span_docs(),
                end,
                first: stats.snapshot().first_spans,
            });
        }
        child.check_running()?;
        let count = stats.span_docs();
        if watch.given_up(count)? {
            return Ok(Progress {
                spans: count,
                end: watch.last_progress,
                first: stats.snapshot().first_spans,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(super) async fn wait_engine(
    options: &Options,
    prefix: &str,
    expected: u64,
    child: &mut MeasuredChild,
) -> anyhow::Result<Progress> {
    let pattern = Prefix::new(prefix).pattern(Family::Span);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut watch = Watch::new(options);
    let mut first = None;
    loop {
        child.check_running()?;
        let count = indexed_count(&client, &options.opensearch, &pattern).await;
        let now = Instant::now();
        if count > 0 && first.is_none() {
            first = Some((now, count));
        }
        if count >= expected {
            return Ok(Progress {
                spans: count,
                end: now,
                first,
            });
        }
        if watch.given_up(count)? {
            return Ok(Progress {
                spans: count,
                end: watch.last_progress,
                first,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Documents the primaries of the indices matching `pattern` have indexed,
/// from the indexing statistics; 0 when there are none yet or the engine does
/// not answer. Read without a refresh: a forced refresh every poll makes the
/// engine write and merge many small segments, and that work, which no
/// ingester causes, would be charged to the run.
pub(super) async fn indexed_count(client: &reqwest::Client, url: &str, pattern: &str) -> u64 {
    let stats = format!("{url}/{pattern}/_stats/indexing?filter_path=_all.primaries.indexing");
    let Ok(response) = client.get(stats).send().await else {
        return 0;
    };
    let Ok(body) = response.json::<serde_json::Value>().await else {
        return 0;
    };
    let indexing = &body["_all"]["primaries"]["indexing"];
    let total = indexing["index_total"].as_u64().unwrap_or(0);
    total.saturating_sub(indexing["index_failed"].as_u64().unwrap_or(0))
}

/// Refreshes the indices matching `pattern` and counts their documents; 0
/// when there are none yet or the engine does not answer.
pub(crate) async fn engine_count(client: &reqwest::Client, url: &str, pattern: &str) -> u64 {
    let _ = client
        .post(format!("{url}/{pattern}/_refresh"))
        .send()
        .await;
    let Ok(response) = client.get(format!("{url}/{pattern}/_count")).send().await else {
        return 0;
    };
    let Ok(body) = response.json::<serde_json::Value>().await else {
        return 0;
    };
    body["count"].as_u64().unwrap_or(0)
}

/// Timeout and stall detection for a run.
#[derive(Debug)]
pub(super) struct Watch {
    deadline: Instant,
    stall: Duration,
    count: u64,
    last_progress: Instant,
}

impl Watch {
    pub(super) fn new(options: &Options) -> Watch {
        let now = Instant::now();
        Watch {
            deadline: now + options.timeout,
            stall: options.stall,
            count: 0,
            last_progress: now,
        }
    }

    /// `Ok(true)` when the count has not grown for the stall time (the run
    /// ends incomplete), `Err` past the overall timeout.
    pub(super) fn given_up(&mut self, count: u64) -> anyhow::Result<bool> {
        let now = Instant::now();
        if count > self.count {
            self.count = count;
            self.last_progress = now;
        }
        if now >= self.deadline {
            bail!("timed out with {count} span documents delivered");
        }
        Ok(count > 0 && now.duration_since(self.last_progress) >= self.stall)
    }
}

/// The size of a run's span indices once merged into one segment (so runs
/// compare), in bytes.
pub(super) async fn span_index_size(url: &str, prefix: &str) -> Option<u64> {
    let client = reqwest::Client::new();
    let pattern = format!("{prefix}-jaeger-span-*");
    client
        .post(format!("{url}/{pattern}/_forcemerge?max_num_segments=1"))
        .send()
        .await
        .ok()?;
    // The merged-away segments' files stay on disk, and in the store's
    // size, until a refresh and a flush let the engine delete them; read
    // before that, the size counted the index about twice.
    let mut last = None;
    for _ in 0..20 {
        for action in ["_refresh", "_flush"] {
            let _ = client
                .post(format!("{url}/{pattern}/{action}"))
                .send()
                .await;
        }
        let stats: serde_json::Value = client
            .get(format!("{url}/{pattern}/_stats/store"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let size = stats["_all"]["primaries"]["store"]["size_in_bytes"].as_u64()?;
        if last == Some(size) {
            return last;
        }
        last = Some(size);
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    last
}
