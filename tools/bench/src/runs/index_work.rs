//! What the engine says it did for a run's span indices: time indexing,
//! refreshing, flushing and merging, and the segments left. Read from the
//! indices' own statistics before they are force-merged or deleted, so a
//! change in engine CPU between two runs can be traced to one of them.

use serde_json::Value;

/// The engine's own accounting for a run's span indices (primaries).
#[derive(Debug, Clone, PartialEq)]
pub struct IndexWork {
    /// Span indices written.
    pub indices: usize,
    /// Documents indexed (Lucene's count: nested documents are their own).
    pub indexed: u64,
    /// Milliseconds spent indexing, the id lookup of each `create` included.
    pub index_ms: u64,
    /// Refreshes, and their milliseconds.
    pub refreshes: u64,
    pub refresh_ms: u64,
    /// Flushes, and their milliseconds.
    pub flushes: u64,
    pub flush_ms: u64,
    /// Merges, their milliseconds and the documents they rewrote.
    pub merges: u64,
    pub merge_ms: u64,
    pub merged_docs: u64,
    /// Segments at the end of the run.
    pub segments: u64,
}

impl IndexWork {
    /// Reads an `_stats` answer for `indexing,refresh,flush,merge,segments`;
    /// `None` when it lacks the totals (no index matched, or an error).
    pub fn from_stats(stats: &Value) -> Option<IndexWork> {
        let all = &stats["_all"]["primaries"];
        let number = |section: &str, field: &str| all[section][field].as_u64();
        Some(IndexWork {
            indices: stats["indices"]
                .as_object()
                .map_or(0, |indices| indices.len()),
            indexed: number("indexing", "index_total")?,
            index_ms: number("indexing", "index_time_in_millis")?,
            refreshes: number("refresh", "total")?,
            refresh_ms: number("refresh", "total_time_in_millis")?,
            flushes: number("flush", "total")?,
            flush_ms: number("flush", "total_time_in_millis")?,
            merges: number("merges", "total")?,
            merge_ms: number("merges", "total_time_in_millis")?,
            merged_docs: number("merges", "total_docs")?,
            segments: number("segments", "count")?,
        })
    }

    /// One line for a run's notes.
    pub fn describe(&self) -> String {
        let s = |ms: u64| ms as f64 / 1000.0;
        format!(
            "engine's span-index work: {} indices; indexing {:.1} s ({} Lucene documents); \
             {} refreshes {:.1} s; {} flushes {:.1} s; {} merges {:.1} s ({} documents); \
             {} segments at the end",
            self.indices,
            s(self.index_ms),
            self.indexed,
            self.refreshes,
            s(self.refresh_ms),
            self.flushes,
            s(self.flush_ms),
            self.merges,
            s(self.merge_ms),
            self.merged_docs,
            self.segments
        )
    }
}

/// The span indices' work for a run's `prefix`, or `None` if the engine
/// would not say.
pub async fn read(url: &str, prefix: &str) -> Option<IndexWork> {
    let stats: Value = reqwest::Client::new()
        .get(format!(
            "{url}/{prefix}-jaeger-span-*/_stats/indexing,refresh,flush,merge,segments?level=indices"
        ))
        .send()
        .await
        .ok()?
        .error_for_status()
        .ok()?
        .json()
        .await
        .ok()?;
    IndexWork::from_stats(&stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_primaries_totals_and_counts_the_indices() {
        let stats = serde_json::json!({
            "_all": {"primaries": {
                "indexing": {"index_total": 2_400_000, "index_time_in_millis": 41_300},
                "refresh": {"total": 31, "total_time_in_millis": 4_100},
                "flush": {"total": 2, "total_time_in_millis": 900},
                "merges": {"total": 12, "total_time_in_millis": 6_300, "total_docs": 800_000},
                "segments": {"count": 24}
            }},
            "indices": {"p-jaeger-span-2026-02-01-00": {}, "p-jaeger-span-2026-02-01-01": {}}
        });
        let work = IndexWork::from_stats(&stats).expect("complete stats");
        assert_eq!(work.indices, 2);
        assert_eq!(work.index_ms, 41_300);
        assert_eq!(work.merged_docs, 800_000);
        let line = work.describe();
        assert!(line.contains("2 indices; indexing 41.3 s"), "{line}");
        assert!(
            line.contains("12 merges 6.3 s (800000 documents)"),
            "{line}"
        );
        assert!(line.contains("24 segments"), "{line}");
    }

    #[test]
    fn an_answer_without_totals_gives_nothing() {
        let empty = serde_json::json!({"_all": {"primaries": {}}, "indices": {}});
        assert_eq!(IndexWork::from_stats(&empty), None);
    }
}
