//! OpenSearch stopped for more than 30 seconds while spans stream in: the
//! ingester pauses within its byte budget, retries, resumes when the node
//! is back, and stores every span exactly once.
//!
//! This test stops and restarts the shared OpenSearch node with
//! `dev/services`, so it lives alone in its own test binary (cargo runs test
//! binaries one after another).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use spanway_e2e::corpus;
use spanway_e2e::{
    count, create_topic, delete_indices, opensearch_url, produce, require_engine, require_kafka,
    wait_for_count,
};
use spanway_ingester::Ingester;
use tokio_util::sync::CancellationToken;

use common::{Names, config};

fn services(action: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dev/services");
    let status = Command::new("bash")
        .arg(script)
        .arg(action)
        .arg("opensearch")
        .status()
        .unwrap();
    assert!(status.success(), "dev/services {action} opensearch failed");
}

/// Brings the node back even when an assertion fails, so that later tests
/// find it running.
struct RestartOnDrop(bool);

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        if self.0 {
            services("up");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_outage_pauses_within_budget_and_loses_nothing() {
    spanway_service_kit::logging::init("info", false);
    require_kafka();
    let url = opensearch_url();
    require_engine(&url, "OpenSearch", "opensearch").await;
    let names = Names::new("outage");
    create_topic(&names.topic, 3).await;
    let corpus = corpus::generate(31, 3_000, 10);
    let total = corpus.spans.len() as u64;

    let budget = 2 * 1024 * 1024;
    let mut cfg = config(&names, &url);
    cfg.bulk.max_bytes = 256 * 1024;
    cfg.bulk.max_bytes_in_flight = budget;
    cfg.kafka.fetch_queue_kbytes = 512;
    cfg.bulk.request_timeout = Duration::from_secs(5);
    let shutdown = CancellationToken::new();
    let ingester = Ingester::start(cfg, shutdown.clone()).await.unwrap();

    // First half in, written while the node is up.
    let mut first = corpus.as_produce_input();
    let second = first.split_off(1_500);
    produce(&names.topic, &first).await;
    wait_for_count(&url, &names.span_indices(), 5_000, Duration::from_secs(120)).await;

    services("down");
    let mut restart = RestartOnDrop(true);
    let down_at = Instant::now();
    // The second half arrives while the node is down.
    let topic = names.topic.clone();
    let producing = tokio::spawn(async move { produce(&topic, &second).await });
    let mut peak = 0i64;
    while down_at.elapsed() < Duration::from_secs(32) || !producing.is_finished() {
        peak = peak.max(ingester.metrics.bytes_in_flight.get());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    producing.await.unwrap();
    assert!(
        ingester.metrics.pauses.get() >= 1,
        "reading paused while the node was down"
    );
    assert!(
        ingester.metrics.writer.documents_retried.get() >= 1,
        "writes were retried"
    );
    // The budget is checked before each record is read; at most the records
    // librdkafka had already fetched (fetch_queue_kbytes) land beyond it.
    let bound = (budget + 512 * 1024 + 256 * 1024) as i64;
    assert!(
        peak > 0 && peak <= bound,
        "bytes in flight peaked at {peak}, bound {bound}"
    );

    services("up");
    restart.0 = false;
    let stored = wait_for_count(&url, &names.span_indices(), total, Duration::from_secs(300)).await;
    assert_eq!(stored, total);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count(&url, &names.span_indices()).await,
        total,
        "no duplicates after the outage"
    );

    shutdown.cancel();
    ingester.wait().await.expect("the ingester stops cleanly");
    delete_indices(&url, &format!("{}-*", names.prefix)).await;
}
