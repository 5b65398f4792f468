//! A dependency index date separator (`elasticsearch.index_date_separator = "."`, Jaeger's
//! `--es.index-date-separator`): two days of calls are written to one Jaeger dependency index a
//! day, named `…-jaeger-dependencies-YYYY.MM.DD`, while the service-graph indices keep
//! `…-YYYY-MM-DD`. Jaeger v2's query given the matching `date_layout` on dependencies returns
//! every call; with its default layout it finds no index and returns none.
#![allow(clippy::unwrap_used)]

use super::common;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use spanway_e2e::jaeger_v2::{
    engine_query_config, engine_query_config_for, free_ports, jaeger_v2_bin,
};
use spanway_e2e::{Engine, RemoveOnDrop, require_kafka};
use spanway_search::index::DateSeparator;

use common::{START_MS, jaeger_v2_links, run_until_read, single_calls_topic};

const PARTITIONS: i32 = 2;
const DAYS: u64 = 2;
/// One call a minute: 2,880 calls over the two days.
const SPACING_MS: u64 = 60_000;
/// `START_MS`'s day and the next, as Jaeger's `2006.01.02` layout writes them.
const DAY_NAMES: [&str; 2] = ["2026.03.02", "2026.03.03"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jaeger_v2_reads_dependency_indices_with_a_date_separator() {
    require_kafka();
    jaeger_v2_bin();
    let url = Engine::OpenSearch.require().await;

    let traces = DAYS * 86_400_000 / SPACING_MS;
    let names = single_calls_topic("datesep", PARTITIONS, traces, SPACING_MS).await;
    let _leftovers = RemoveOnDrop::new(&url, &names.prefix);

    let mut config = names.job_config(&url);
    config.elasticsearch.index_date_separator = DateSeparator::new(".").unwrap();
    run_until_read(&config, &names, PARTITIONS, Duration::from_secs(180)).await;

    let listed: Value = reqwest::get(format!(
        "{url}/_cat/indices/{}-*?format=json&h=index",
        names.prefix
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let indices: BTreeSet<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["index"].as_str().unwrap().to_owned())
        .collect();
    // The service-graph indices (named `<prefix>-graph` here) are ours, not Jaeger's: they
    // keep `-`.
    let expected: BTreeSet<String> = DAY_NAMES
        .iter()
        .flat_map(|day| {
            [
                format!("{}-jaeger-dependencies-{day}", names.prefix),
                format!("{}-{}", names.graph, day.replace('.', "-")),
            ]
        })
        .collect();
    assert_eq!(
        indices, expected,
        "one dotted dependency index and one dashed service-graph index a day"
    );

    let (end_ms, lookback_ms) = (START_MS + DAYS * 86_400_000, (DAYS + 1) * 86_400_000);
    let [http_port, grpc_port] = free_ports::<2>();
    let dotted = engine_query_config_for(
        "opensearch",
        &url,
        &names.prefix,
        http_port,
        grpc_port,
        &[("dependencies", "2006.01.02", "day")],
    );
    assert_eq!(
        jaeger_v2_links(&dotted, http_port, end_ms, lookback_ms).await,
        vec![("frontend".to_owned(), "cart".to_owned(), traces)],
        "every call, through Jaeger v2 told the layout"
    );

    let [http_port, grpc_port] = free_ports::<2>();
    let default = engine_query_config("opensearch", &url, &names.prefix, http_port, grpc_port);
    assert_eq!(
        jaeger_v2_links(&default, http_port, end_ms, lookback_ms).await,
        Vec::new(),
        "Jaeger v2's default layout names no dotted index"
    );
}
