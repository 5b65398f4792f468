//! The job's bulk writes show on its own `/metrics`, under the same names
//! as the ingester's with the `analytics_` prefix, once it has written
//! windows to the real OpenSearch node. Bulk bodies go gzipped with
//! `Content-Encoding: gzip`, which the engine must take: a body it could
//! not read would fail every request.
#![allow(clippy::unwrap_used)]

use super::common;

use std::time::Duration;

use spanway_e2e::ops::{LiveWatch, live_loops, live_report};
use spanway_e2e::{
    Engine, RemoveOnDrop, count, create_topic, produce, require_kafka, topology, unique_name,
};
use spanway_streaming_analytics::{Analytics, AnalyticsConfig};
use tokio_util::sync::CancellationToken;

use common::{Names, START_MS, env, wait_until_read};

const PARTITIONS: i32 = 2;

/// The value of the sample named exactly `name` (no labels).
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_writes_show_on_the_jobs_metrics() {
    require_kafka();
    let url = Engine::OpenSearch.require().await;
    let topic = unique_name("analytics-writer-metrics");
    create_topic(&topic, PARTITIONS).await;
    // 500 traces 20 ms apart: 10 s of event time, a few 5 s windows.
    let traffic = topology::generate(3, 500, START_MS, 20);
    produce(&topic, &traffic.as_produce_input()).await;
    let names = Names::new(&topic, "writer-metrics");
    let _leftovers = RemoveOnDrop::new(&url, &names.prefix);
    let mut settings = env(&names, &url);
    settings.push(("SPANWAY_ELASTICSEARCH__COMPRESSION".into(), "gzip".into()));
    let config: AnalyticsConfig =
        spanway_service_kit::config::load_with_env(None, settings).unwrap();
    config.validate().unwrap();

    let shutdown = CancellationToken::new();
    let analytics = Analytics::start(&config, shutdown.clone()).await.unwrap();
    let live = LiveWatch::start(analytics.ops_addr);
    wait_until_read(&names.group, &topic, PARTITIONS, Duration::from_secs(180)).await;
    let seen = live.stop().await;
    let (live_status, live) = live_report(analytics.ops_addr).await;
    let ops = format!("http://{}", analytics.ops_addr);
    let text = reqwest::get(format!("{ops}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The readiness probe runs every 5 s; the engine accepts our writes.
    let mut ready = false;
    for _ in 0..40 {
        let status = reqwest::get(format!("{ops}/health/ready"))
            .await
            .unwrap()
            .status();
        if status.is_success() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    shutdown.cancel();
    analytics
        .wait()
        .await
        .expect("streaming analytics stops cleanly");

    let windows = sample(&text, "analytics_windows_written_total").unwrap();
    assert!(windows > 0.0, "no window written:\n{text}");
    let requests = sample(&text, "analytics_bulk_requests_total")
        .unwrap_or_else(|| panic!("no bulk request count in:\n{text}"));
    assert!(
        requests >= windows,
        "each written window took a bulk request: {requests} requests, {windows} windows"
    );
    assert_eq!(
        sample(&text, "analytics_bulk_latency_seconds_count"),
        Some(requests),
        "one latency per request"
    );
    assert_eq!(sample(&text, "analytics_bulk_failures_total"), Some(0.0));
    let bytes = sample(&text, "analytics_bulk_request_bytes_total").unwrap_or_default();
    assert!(bytes > 0.0, "no bulk bytes counted in:\n{text}");
    assert_eq!(
        sample(&text, "analytics_bulk_auth_failures_total"),
        Some(0.0)
    );
    assert!(sample(&text, "analytics_documents_retried_total").is_some());
    assert!(ready, "/health/ready never answered 200");
    assert!(
        seen.failures.is_empty(),
        "liveness failed while reading: {:?}",
        seen.failures
    );
    assert_eq!(live_status, 200, "{live}");
    assert_eq!(
        live_loops(&live),
        [
            ("kafka-poll".to_owned(), "running".to_owned()),
            ("writer".to_owned(), "running".to_owned())
        ],
        "{live}"
    );
    assert!(
        sample(&text, "analytics_loop_beat_age_seconds{loop=\"writer\"}").is_some(),
        "no beat age for the writer in:\n{text}"
    );
    let dependencies = names.dependency_indices();
    assert!(
        count(&url, &dependencies).await > 0,
        "gzipped writes stored"
    );
}
