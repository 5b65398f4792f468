//! Jaeger query reads at most 10,000 dependency documents per request and sums what it read.
//! Three days of calls on a 4-partition topic make more than 10,000 one-minute windows of
//! partitions (the service-graph documents); the Jaeger dependency documents are one per hour
//! (72), and the real Jaeger query's `/api/dependencies` over the three days returns every call,
//! in v1.76 and in Jaeger v2.
#![allow(clippy::unwrap_used)]

use super::common;

use std::time::Duration;

use serde_json::{Value, json};
use spanway_e2e::jaeger_query::{JaegerQuery, jaeger_query_bin};
use spanway_e2e::jaeger_v2::{engine_query_config, free_ports};
use spanway_e2e::{Engine, RemoveOnDrop, require_kafka};

use common::{START_MS, jaeger_v2_links, run_until_read, single_calls_topic};

const PARTITIONS: i32 = 4;
const DAYS: u64 = 3;
/// One call every 5 s: 12 a minute, so nearly every partition has some in every minute.
const SPACING_MS: u64 = 5_000;
/// What Jaeger query reads per request (`max_doc_count`, and the engine's result window).
const JAEGER_READ_LIMIT: u64 = 10_000;

/// Documents of `pattern`, once what was written is searchable.
async fn count(url: &str, pattern: &str) -> u64 {
    reqwest::Client::new()
        .post(format!("{url}/{pattern}/_refresh"))
        .send()
        .await
        .unwrap();
    spanway_e2e::count(url, pattern).await
}

async fn sum_calls(url: &str, pattern: &str) -> u64 {
    let body: Value = reqwest::Client::new()
        .post(format!("{url}/{pattern}/_search"))
        .json(&json!({"size": 0, "aggs": {"calls": {"sum": {"field": "calls"}}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["aggregations"]["calls"]["value"].as_f64().unwrap() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jaeger_query_counts_every_call_of_days_of_partition_windows() {
    require_kafka();
    jaeger_query_bin();
    let url = Engine::OpenSearch.require().await;

    let traces = DAYS * 86_400_000 / SPACING_MS;
    let names = single_calls_topic("limit", PARTITIONS, traces, SPACING_MS).await;
    let _leftovers = RemoveOnDrop::new(&url, &names.prefix);

    let config = names.job_config(&url);
    assert_eq!(config.windows.size, Duration::from_secs(60));
    assert_eq!(config.dependencies.period, Duration::from_secs(3600));
    run_until_read(&config, &names, PARTITIONS, Duration::from_secs(300)).await;

    // The fine-grained record: one document per minute and partition with calls, more than
    // Jaeger query would read.
    let windows = count(&url, &names.graph_indices()).await;
    assert!(
        windows > JAEGER_READ_LIMIT,
        "{windows} service-graph documents: the traffic must cross Jaeger's read limit"
    );
    assert_eq!(sum_calls(&url, &names.graph_indices()).await, traces);

    // Jaeger's documents: one per hour.
    let hours = count(&url, &names.dependency_indices()).await;
    assert_eq!(hours, DAYS * 24, "one Jaeger dependency document per hour");

    let mut jaeger = JaegerQuery::start("opensearch", &url, &names.prefix);
    jaeger.wait_ready().await;
    let end_ms = START_MS + DAYS * 86_400_000 + 3_600_000;
    let body = jaeger
        .get(
            "/dependencies",
            &[
                ("endTs", &end_ms.to_string()),
                ("lookback", &((DAYS + 1) * 86_400_000).to_string()),
            ],
        )
        .await;
    let links = body["data"].as_array().unwrap();
    assert_eq!(links.len(), 1, "{body}");
    assert_eq!(links[0]["parent"], "frontend");
    assert_eq!(links[0]["child"], "cart");
    assert_eq!(
        links[0]["callCount"].as_u64().unwrap(),
        traces,
        "every call, through Jaeger query"
    );

    // A lookback of one day ending at the second midnight reads that day's hours only: the
    // calls of that day's windows (a late call is counted in the window it arrived in, so
    // this is not exactly one day of traffic).
    let day_start_ms = START_MS + 86_400_000;
    let day: Value = reqwest::Client::new()
        .post(format!("{url}/{}/_search", names.graph_indices()))
        .json(&json!({
            "size": 0,
            "query": {"range": {"@timestamp": {
                "gte": day_start_ms, "lt": day_start_ms + 86_400_000, "format": "epoch_millis"
            }}},
            "aggs": {"calls": {"sum": {"field": "calls"}}}
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let day_calls = day["aggregations"]["calls"]["value"].as_f64().unwrap() as u64;
    assert!(day_calls > 0, "{day}");
    let body = jaeger
        .get(
            "/dependencies",
            &[
                ("endTs", &(START_MS + 2 * 86_400_000 - 1).to_string()),
                ("lookback", &(86_400_000 - 1).to_string()),
            ],
        )
        .await;
    assert_eq!(
        body["data"][0]["callCount"].as_u64().unwrap(),
        day_calls,
        "one day: {body}"
    );
    drop(jaeger);

    // Jaeger v2's query reads the same documents the same way.
    let [http_port, grpc_port] = free_ports::<2>();
    let config = engine_query_config("opensearch", &url, &names.prefix, http_port, grpc_port);
    assert_eq!(
        jaeger_v2_links(&config, http_port, end_ms, (DAYS + 1) * 86_400_000).await,
        vec![("frontend".to_owned(), "cart".to_owned(), traces)],
        "every call, through Jaeger v2's query"
    );
}
