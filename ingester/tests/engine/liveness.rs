//! Liveness against the real broker while the engine is down. A dependency
//! that does not answer is a readiness matter (a restart would not bring it
//! back), so `/health/live` stays 200 for three stall timeouts while bulk
//! writes retry and reading is paused, and lists the loops doing that
//! waiting; `/health/ready` is 503 meanwhile.
//!
//! The engine is a loopback port nothing listens on, so every bulk request
//! is refused at once and no shared service is touched.
#![allow(clippy::unwrap_used)]

use super::common;

use std::time::Duration;

use spanway_e2e::ops::{LiveWatch, live_loops, live_report, metrics_text, ready_status, sample};
use spanway_e2e::{corpus, create_topic, produce, require_kafka};
use spanway_ingester::Ingester;
use tokio_util::sync::CancellationToken;

use common::{Names, config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_engine_leaves_the_ingester_live_but_not_ready() {
    spanway_service_kit::logging::init("info", false);
    require_kafka();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let names = Names::new("liveness");
    create_topic(&names.topic, 2).await;
    let corpus = corpus::generate(11, 400, 10);
    produce(&names.topic, &corpus.as_produce_input()).await;

    let mut cfg = config(&names, &format!("http://{closed}"));
    // Installing templates would fail the start against the closed port.
    cfg.elasticsearch.create_templates = false;
    cfg.bulk.max_bytes = 16 * 1024;
    cfg.bulk.max_bytes_in_flight = 64 * 1024;
    cfg.bulk.request_timeout = Duration::from_secs(1);
    cfg.bulk.retry_max_backoff = Duration::from_secs(1);
    let stall_timeout = Duration::from_secs(4);
    cfg.ops.stall_timeout = stall_timeout;
    cfg.validate().unwrap();
    let shutdown = CancellationToken::new();
    let ingester = Ingester::start(cfg, shutdown.clone()).await.unwrap();
    let ops = ingester.ops_addr;

    let live = LiveWatch::start(ops);
    tokio::time::sleep(stall_timeout * 3).await;
    let seen = live.stop().await;
    let (status, report) = live_report(ops).await;
    let ready = ready_status(ops).await;
    let metrics = metrics_text(ops).await;
    let paused = ingester.metrics.pauses.get();
    let retried = ingester.metrics.writer.documents_retried.get();
    shutdown.cancel();
    ingester.wait().await.expect("the ingester stops cleanly");

    assert!(retried > 0, "writes were retried against the closed port");
    assert!(paused >= 1, "reading paused once the byte budget filled");
    assert_eq!(ready, 503, "the engine is down: not ready");
    assert!(
        seen.failures.is_empty(),
        "liveness failed while waiting on purpose: {:?}",
        seen.failures
    );
    assert!(seen.probes >= 10, "{} probes", seen.probes);
    assert_eq!(status, 200, "{report}");
    let loops = live_loops(&report);
    for name in ["kafka-poll", "bulk", "bulk-write"] {
        assert!(
            loops.contains(&(name.to_owned(), "running".to_owned())),
            "{name} not running in {report}"
        );
    }
    let age = sample(
        &metrics,
        "ingester_loop_beat_age_seconds{loop=\"bulk-write\"}",
    )
    .unwrap_or_else(|| panic!("no beat age for bulk-write in:\n{metrics}"));
    assert!(
        age < stall_timeout.as_secs_f64(),
        "bulk-write beat {age}s ago"
    );
}
