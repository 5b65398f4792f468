//! Whether the OpenSearch node is still warming up.
//!
//! The first bulk loads after the node starts run while the JVM compiles
//! its indexing code: a 300,000-span load then cost the engine twice the
//! CPU it cost an invocation later. Those rows compare with nothing, so
//! the report says when the node had indexed little before the run.

use serde_json::Value;

/// Documents the node should have indexed since it started before its
/// CPU figures compare: about two of the benchmark's default loads.
pub const WARM_AFTER_DOCUMENTS: u64 = 500_000;

/// What the node reports about itself before the runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeHistory {
    /// Index operations (one per root document) since the node started.
    pub indexed: u64,
    /// Seconds since the node's JVM started.
    pub uptime_secs: u64,
}

/// Reads every node's indexing total and uptime; `None` when the engine
/// does not answer in the expected shape (the warning is then left out,
/// not guessed).
pub async fn node_history(opensearch: &str) -> Option<NodeHistory> {
    let url = format!(
        "{opensearch}/_nodes/stats/jvm,indices?filter_path=nodes.*.jvm.uptime_in_millis,nodes.*.indices.indexing.index_total"
    );
    let body: Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
    history_of(&body)
}

/// The least warmed node decides: a load may land on any of them.
fn history_of(stats: &Value) -> Option<NodeHistory> {
    stats
        .get("nodes")?
        .as_object()?
        .values()
        .map(|node| {
            Some(NodeHistory {
                indexed: node.pointer("/indices/indexing/index_total")?.as_u64()?,
                uptime_secs: node.pointer("/jvm/uptime_in_millis")?.as_u64()? / 1000,
            })
        })
        .collect::<Option<Vec<_>>>()?
        .into_iter()
        .min_by_key(|h| h.indexed)
}

/// The line the report carries when the node is still cold.
pub fn warning(history: NodeHistory) -> Option<String> {
    (history.indexed < WARM_AFTER_DOCUMENTS).then(|| {
        format!(
            "warning: the OpenSearch node started {} s ago and has indexed {} documents since; \
             its first loads include the JVM's warm-up, so this invocation's OpenSearch CPU \
             figures do not compare with others: run it again",
            history.uptime_secs, history.indexed
        )
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_node_with_little_indexed_is_cold() {
        let cold = NodeHistory {
            indexed: WARM_AFTER_DOCUMENTS - 1,
            uptime_secs: 40,
        };
        let line = warning(cold).expect("a warning");
        assert!(line.contains("40 s ago"), "{line}");
        assert!(
            line.contains(&(WARM_AFTER_DOCUMENTS - 1).to_string()),
            "{line}"
        );
        let warm = NodeHistory {
            indexed: WARM_AFTER_DOCUMENTS,
            uptime_secs: 40,
        };
        assert_eq!(warning(warm), None);
    }

    #[test]
    fn the_least_indexed_node_decides() {
        let stats = json!({"nodes": {
            "a": {"jvm": {"uptime_in_millis": 900_000}, "indices": {"indexing": {"index_total": 2_000_000}}},
            "b": {"jvm": {"uptime_in_millis": 61_500}, "indices": {"indexing": {"index_total": 1_200}}},
        }});
        assert_eq!(
            history_of(&stats),
            Some(NodeHistory {
                indexed: 1_200,
                uptime_secs: 61
            })
        );
    }

    #[test]
    fn an_answer_of_another_shape_gives_no_history() {
        assert_eq!(history_of(&json!({})), None);
        assert_eq!(history_of(&json!({"nodes": {}})), None);
        let no_jvm = json!({"nodes": {"a": {"indices": {"indexing": {"index_total": 5}}}}});
        assert_eq!(history_of(&no_jvm), None);
    }
}
