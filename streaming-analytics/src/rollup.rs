//! Jaeger's dependency documents: one per period (an hour by default) for
//! all partitions together, summed from the service-graph index.
//!
//! Jaeger query reads at most `max_doc_count` dependency documents per
//! request (10,000 by default, the engine's result window too) and sums
//! their `callCount`s. One document per one-minute window and partition
//! would pass that in a day at a dozen partitions, and the graph would show
//! part of the traffic without saying so. So the windows go to the
//! service-graph index only, and after a batch of windows is stored, the
//! periods they fall in are summed from that index and their Jaeger
//! documents rewritten, before the windows are acknowledged (and their
//! offsets committed). A crash between the two replays the windows, which
//! rewrites the periods again: the totals stay exact.
//!
//! Instances that share the partitions each rewrite the periods they saw
//! change. Each document carries its total as an external version
//! (`external_gte`), so a sum that read fewer windows never replaces one
//! that read more, whichever request lands last.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use elasticsearch::SearchParts;
use elasticsearch::indices::IndicesRefreshParts;
use rand::Rng as _;
use serde_json::{Value, json};
use spanway_search::bulk::writer::{BulkWriter, WriterError};
use spanway_search::document::{Document, DocumentKind};
use spanway_service_kit::liveness::Heartbeat;
use tokio_util::sync::CancellationToken;

use crate::documents::{Indices, LINK_SOURCE, digest, rfc3339};

/// Edges per page of the composite aggregation.
const PAGE: usize = 1000;

/// Calls per (parent, child) service pair over one period.
pub type Links = BTreeMap<(String, String), u64>;

/// Why a period could not be summed.
#[derive(Debug, thiserror::Error)]
pub enum RollupError {
    /// The engine did not answer, or refused.
    #[error("summing the service graph of {index}: {reason}")]
    Engine { index: String, reason: String },
    /// The answer did not have the aggregation's shape.
    #[error("unexpected answer summing the service graph of {index}: {reason}")]
    Answer { index: String, reason: String },
    /// Shutting down.
    #[error("cancelled")]
    Cancelled,
    /// Writing the documents failed for good.
    #[error(transparent)]
    Writer(#[from] WriterError),
}

/// Where the periods are read and written, and how long one is.
#[derive(Debug, Clone)]
pub struct Rollup {
    indices: Indices,
    period_micros: i64,
    retry_initial_backoff: Duration,
    retry_max_backoff: Duration,
    request_timeout: Duration,
}

impl Rollup {
    /// `period` must divide a day (the configuration checks it), so no
    /// period spans two daily indices.
    pub fn new(
        indices: Indices,
        period: Duration,
        retry_initial_backoff: Duration,
        retry_max_backoff: Duration,
        request_timeout: Duration,
    ) -> Self {
        Rollup {
            indices,
            period_micros: i64::try_from(period.as_micros()).unwrap_or(i64::MAX).max(1),
            retry_initial_backoff,
            retry_max_backoff,
            request_timeout,
        }
    }

    /// The starts of the periods that windows starting at `window_starts`
    /// (µs) fall in.
    pub fn periods(&self, window_starts: impl IntoIterator<Item = i64>) -> BTreeSet<i64> {
        window_starts
            .into_iter()
            .map(|start| period_start(start, self.period_micros))
            .collect()
    }

    /// Sums each period from the service-graph index and rewrites its Jaeger
    /// document, retrying until done or `cancel` fires. Returns how many
    /// documents the engine refused for good (logged).
    pub async fn rewrite(
        &self,
        writer: &BulkWriter,
        periods: &BTreeSet<i64>,
        cancel: &CancellationToken,
        heartbeat: &Heartbeat,
    ) -> Result<usize, RollupError> {
        let mut documents = Vec::with_capacity(periods.len());
        for &start in periods {
            let links = self.sum_retrying(writer, start, cancel, heartbeat).await?;
            documents.push(jaeger_document(&self.indices, start, &links));
        }
        let rejected = writer.write_all(documents, cancel, heartbeat).await?;
        for r in &rejected {
            tracing::error!(index = %r.document.index, id = %r.document.id, reason = %r.reason, "dependency document refused by the engine");
        }
        Ok(rejected.len())
    }

    async fn sum_retrying(
        &self,
        writer: &BulkWriter,
        start: i64,
        cancel: &CancellationToken,
        heartbeat: &Heartbeat,
    ) -> Result<Links, RollupError> {
        let mut backoff = self.retry_initial_backoff;
        let mut attempt = 0u32;
        loop {
            heartbeat.beat();
            let answer = tokio::select! {
                _ = cancel.cancelled() => return Err(RollupError::Cancelled),
                answer = self.sum(writer, start) => answer,
            };
            heartbeat.beat();
            match answer {
                Ok(links) => return Ok(links),
                Err(error) => {
                    if attempt.is_multiple_of(20) {
                        tracing::warn!(%error, attempt, "summing a dependency period failed; retrying");
                    }
                }
            }
            let jitter = rand::rng().random_range(0.5..1.0);
            tokio::select! {
                _ = cancel.cancelled() => return Err(RollupError::Cancelled),
                _ = tokio::time::sleep(backoff.mul_f64(jitter)) => {}
            }
            backoff = (backoff * 2).min(self.retry_max_backoff);
            attempt += 1;
        }
    }

    /// One attempt: make the period's windows searchable, then page
    /// through the (client, server) pairs.
    async fn sum(&self, writer: &BulkWriter, start: i64) -> Result<Links, RollupError> {
        let index = self.indices.service_graph(start);
        let engine = |reason: String| RollupError::Engine {
            index: index.clone(),
            reason,
        };
        let client = writer.engine().client();
        client
            .indices()
            .refresh(IndicesRefreshParts::Index(&[&index]))
            .ignore_unavailable(true)
            .request_timeout(self.request_timeout)
            .send()
            .await
            .and_then(|r| r.error_for_status_code())
            .map_err(|e| engine(e.to_string()))?;
        let end = start.saturating_add(self.period_micros);
        let mut links = Links::new();
        let mut after = None;
        loop {
            let page: Value = client
                .search(SearchParts::Index(&[&index]))
                .ignore_unavailable(true)
                .request_timeout(self.request_timeout)
                .body(sum_query(start, end, after.as_ref()))
                .send()
                .await
                .and_then(|r| r.error_for_status_code())
                .map_err(|e| engine(e.to_string()))?
                .json()
                .await
                .map_err(|e| engine(e.to_string()))?;
            let (rows, next) = read_page(&page).map_err(|reason| RollupError::Answer {
                index: index.clone(),
                reason,
            })?;
            for (pair, calls) in rows {
                *links.entry(pair).or_default() += calls;
            }
            match next {
                Some(key) => after = Some(key),
                None => return Ok(links),
            }
        }
    }
}

/// The start of the period `micros` falls in (periods are aligned to the
/// epoch, so to the day when they divide it).
pub fn period_start(micros: i64, period_micros: i64) -> i64 {
    micros - micros.rem_euclid(period_micros)
}

/// Calls per (client, server) in `[start, end)` µs, one page of pairs after
/// `after`.
pub fn sum_query(start: i64, end: i64, after: Option<&Value>) -> Value {
    let mut composite = json!({
        "size": PAGE,
        "sources": [
            {"client": {"terms": {"field": "client"}}},
            {"server": {"terms": {"field": "server"}}}
        ]
    });
    if let Some(after) = after {
        composite["after"] = after.clone();
    }
    json!({
        "size": 0,
        "track_total_hits": false,
        "query": {"range": {"@timestamp": {
            "gte": start / 1000,
            "lt": end / 1000,
            "format": "epoch_millis"
        }}},
        "aggs": {"pairs": {
            "composite": composite,
            "aggs": {"calls": {"sum": {"field": "calls"}}}
        }}
    })
}

/// The (pair, calls) rows of one page, and the key to ask after for the
/// next page (none when this page is the last).
pub type Page = (Vec<((String, String), u64)>, Option<Value>);

/// One answer to [`sum_query`] as a [`Page`].
pub fn read_page(page: &Value) -> Result<Page, String> {
    let Some(buckets) = page["aggregations"]["pairs"]["buckets"].as_array() else {
        // No index for that day yet: nothing to sum.
        if page["aggregations"].is_null() && page["hits"].is_object() {
            return Ok((Vec::new(), None));
        }
        return Err(format!("no aggregations.pairs.buckets in {page}"));
    };
    let mut rows = Vec::with_capacity(buckets.len());
    for bucket in buckets {
        let key = &bucket["key"];
        let (Some(client), Some(server)) = (key["client"].as_str(), key["server"].as_str()) else {
            return Err(format!("bucket without client and server: {bucket}"));
        };
        let Some(calls) = bucket["calls"]["value"].as_f64() else {
            return Err(format!("bucket without a calls sum: {bucket}"));
        };
        // Sums of longs come back as doubles: exact below 2^53.
        rows.push(((client.to_owned(), server.to_owned()), calls.round() as u64));
    }
    let next = if buckets.len() < PAGE {
        None
    } else {
        page["aggregations"]["pairs"]["after_key"]
            .as_object()
            .map(|k| Value::Object(k.clone()))
    };
    Ok((rows, next))
}

/// The Jaeger dependency document of the period starting at `start` (µs):
/// one link per pair, versioned by the period's total calls.
pub fn jaeger_document(indices: &Indices, start: i64, links: &Links) -> Document {
    let total: u64 = links.values().sum();
    let dependencies: Vec<Value> = links
        .iter()
        .map(|((parent, child), calls)| {
            json!({"parent": parent, "child": child, "callCount": calls, "source": LINK_SOURCE})
        })
        .collect();
    Document {
        kind: DocumentKind::Rollup { version: total },
        index: indices.dependencies(start),
        id: digest(&["dependencies-period", &start.to_string()]),
        // `calls` and `edges` are plain fields beside Jaeger's nested links (which Jaeger
        // reads and dashboards cannot aggregate), for charts of the graph over time.
        source: json!({
            "timestamp": rfc3339(start),
            "dependencies": dependencies,
            "calls": total,
            "edges": links.len(),
        })
        .to_string()
        .into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000;

    #[test]
    fn periods_are_aligned_and_deduplicated() {
        let rollup = Rollup::new(
            Indices::new("", "graph"),
            Duration::from_secs(3600),
            Duration::from_millis(1),
            Duration::from_millis(1),
            Duration::from_secs(1),
        );
        // 2026-11-26T01:02:00Z and 01:59:00Z share a period; 02:00 starts the next.
        let base = 1_795_654_920_000_000;
        let periods = rollup.periods([base, base + 57 * 60_000_000, base + 58 * 60_000_000]);
        let first = period_start(base, HOUR);
        assert_eq!(first % HOUR, 0);
        assert!(first <= base && base < first + HOUR);
        assert_eq!(periods, BTreeSet::from([first, first + HOUR]));
        assert_eq!(period_start(-1, HOUR), -HOUR);
    }

    #[test]
    fn document_sums_links_and_is_versioned_by_its_total() {
        let indices = Indices::new("prod", "graph");
        let start = period_start(1_795_654_920_000_000, HOUR);
        let links = Links::from([
            (("frontend".into(), "cart".into()), 7),
            (("cart".into(), "redis".into()), 5),
        ]);
        let doc = jaeger_document(&indices, start, &links);
        assert_eq!(doc.kind, DocumentKind::Rollup { version: 12 });
        assert_eq!(doc.index, "prod-jaeger-dependencies-2026-11-26");
        let source: Value = serde_json::from_slice(&doc.source).unwrap();
        assert_eq!(source["timestamp"], "2026-11-26T01:00:00Z");
        assert_eq!(
            (source["calls"].as_u64(), source["edges"].as_u64()),
            (Some(12), Some(2))
        );
        assert_eq!(
            source["dependencies"],
            json!([
                {"parent": "cart", "child": "redis", "callCount": 5, "source": "spanway"},
                {"parent": "frontend", "child": "cart", "callCount": 7, "source": "spanway"}
            ])
        );
        let again = jaeger_document(&indices, start, &Links::new());
        assert_eq!(again.id, doc.id, "one id per period, whatever it holds");
        assert_ne!(jaeger_document(&indices, start + HOUR, &links).id, doc.id);
    }

    #[test]
    fn query_covers_the_period_and_pages_after_a_key() {
        let q = sum_query(HOUR, 2 * HOUR, None);
        assert_eq!(q["query"]["range"]["@timestamp"]["gte"], 3_600_000);
        assert_eq!(q["query"]["range"]["@timestamp"]["lt"], 7_200_000);
        assert!(q["aggs"]["pairs"]["composite"].get("after").is_none());
        let key = json!({"client": "a", "server": "b"});
        let q = sum_query(HOUR, 2 * HOUR, Some(&key));
        assert_eq!(q["aggs"]["pairs"]["composite"]["after"], key);
    }

    #[test]
    fn pages_are_read_until_a_short_one() {
        let bucket = |c: &str, s: &str, calls: f64| json!({"key": {"client": c, "server": s}, "doc_count": 3, "calls": {"value": calls}});
        let short = json!({"aggregations": {"pairs": {
            "after_key": {"client": "b", "server": "c"},
            "buckets": [bucket("a", "b", 4.0), bucket("b", "c", 9.0)]
        }}});
        let (rows, next) = read_page(&short).unwrap();
        assert_eq!(
            rows,
            [(("a".into(), "b".into()), 4), (("b".into(), "c".into()), 9)]
        );
        assert_eq!(next, None);

        let full: Vec<Value> = (0..PAGE)
            .map(|i| bucket("a", &i.to_string(), 1.0))
            .collect();
        let page = json!({"aggregations": {"pairs": {
            "after_key": {"client": "a", "server": "999"},
            "buckets": full
        }}});
        let (rows, next) = read_page(&page).unwrap();
        assert_eq!(rows.len(), PAGE);
        assert_eq!(next, Some(json!({"client": "a", "server": "999"})));

        let missing_index = json!({"hits": {"hits": []}});
        assert_eq!(read_page(&missing_index).unwrap(), (Vec::new(), None));
        let error =
            read_page(&json!({"aggregations": {"pairs": {"buckets": [{"key": {}}]}}})).unwrap_err();
        assert!(error.contains("client and server"), "{error}");
    }
}
