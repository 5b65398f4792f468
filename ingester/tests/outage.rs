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
    Engine, RemoveOnDrop, count, create_topic, produce, require_kafka, wait_for_count,
};
use spanway_ingester::Ingester;
use tokio_util::sync::CancellationToken;

use common::{Names, config};

/// The tests on the OpenSearch cluster take turns: one kills a node the
/// other writes to.
static CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
    let url = Engine::OpenSearch.require().await;
    let names = Names::new("outage");
    let _leftovers = RemoveOnDrop::new(&url, &names.prefix);
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
}

/// On the two-node OpenSearch cluster (`dev/services up
/// opensearch-cluster`; two shards with one replica each): the data node
/// holding primaries is SIGKILLed while spans stream in. Its replicas on
/// the other node are promoted, the ingester retries through it, and every
/// span is stored exactly once, none dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_node_holding_primaries_killed_under_load_loses_and_duplicates_nothing() {
    use spanway_e2e::cluster;
    spanway_service_kit::logging::init("info", false);
    require_kafka();
    cluster::require_search().await;
    let _cluster = CLUSTER.lock().await;
    let url = cluster::search_url();
    let names = Names::new("node-kill");
    let _leftovers = RemoveOnDrop::new(&url, &names.prefix);
    create_topic(&names.topic, 6).await;
    let waves: Vec<_> = (0..6)
        .map(|i| corpus::generate(80 + i, 300, 10).as_produce_input())
        .collect();
    let total: u64 = waves.iter().map(|w| w.len() as u64 * 10).sum();
    let topic = names.topic.clone();
    let producer = tokio::spawn(async move {
        for wave in waves {
            spanway_e2e::produce(&topic, &wave).await;
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
    });

    let mut config = config(&names, &url);
    config.elasticsearch.shards = 4;
    config.elasticsearch.replicas = 1;
    let shutdown = CancellationToken::new();
    let ingester = Ingester::start(config, shutdown.clone()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&url, &names.span_indices()).await == 0
        || count(&url, &names.service_indices()).await == 0
    {
        assert!(Instant::now() < deadline, "nothing stored before the kill");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Only replicas in sync can be promoted: killing the node while a
    // replica still recovers would lose the engine's own acknowledged
    // writes, which is not the failure this drill is about. That holds for
    // the service index too: a red one holds back every batch (the
    // services ride with each batch's last request), which is how this
    // drill used to stall.
    let health: serde_json::Value = reqwest::get(format!(
        "{url}/_cluster/health/{},{}?wait_for_status=green&timeout=120s",
        names.span_indices(),
        names.service_indices()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(health["status"], "green", "replicas not in sync: {health}");
    let shards: Vec<serde_json::Value> = reqwest::get(format!(
        "{url}/_cat/shards/{}?format=json&h=index,shard,prirep,node",
        names.span_indices()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let primaries_there = shards
        .iter()
        .filter(|s| s["prirep"] == "p" && s["node"] == "opensearch-2")
        .count();
    assert!(
        primaries_there > 0,
        "no primary on opensearch-2 to lose: {shards:?}"
    );
    cluster::kill("opensearch-2");
    let mut restart = cluster::Restart(Some("opensearch-2".into()));
    let at_kill = count(&url, &names.span_indices()).await;
    eprintln!(
        "killed opensearch-2 with {primaries_there} primaries; {at_kill} of {total} spans stored"
    );

    producer.await.unwrap();
    let stored = wait_for_count(&url, &names.span_indices(), total, Duration::from_secs(180)).await;
    if stored != total {
        // What a stall looked like, for whoever reads the failure.
        let health = reqwest::get(format!("{url}/_cluster/health/{}", names.prefix_indices()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let shards = reqwest::get(format!(
            "{url}/_cat/shards/{}?h=index,shard,prirep,state,node,unassigned.reason",
            names.prefix_indices()
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
        let m = &ingester.metrics;
        eprintln!(
            "stalled: health {health}\nshards:\n{shards}records consumed {}, spans indexed {}, \
             bytes in flight {}, pauses {}",
            m.records_consumed.get(),
            m.spans_indexed.get(),
            m.bytes_in_flight.get(),
            m.pauses.get()
        );
    }
    assert_eq!(stored, total, "every span stored through the promotion");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count(&url, &names.span_indices()).await,
        total,
        "none twice"
    );
    assert_eq!(
        ingester.metrics.dead_lettered.get(),
        0,
        "nothing dead-lettered"
    );

    shutdown.cancel();
    ingester.wait().await.expect("the ingester stops cleanly");
    cluster::start("opensearch-2");
    restart.0 = None;
}

/// On the two-node cluster, whose data-only node `opensearch-2` has one
/// write thread and a write queue of one (see `dev/services`): bulk requests
/// that reach several of its shards at once are refused there with 429
/// `es_rejected_execution_exception`, as a busy production node refuses
/// them. The ingester retries the refused items, stores every span exactly
/// once, and dead-letters nothing, since none of it was a document fault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_write_queue_is_retried_and_dead_letters_nothing() {
    use spanway_e2e::cluster;
    require_kafka();
    cluster::require_search().await;
    let _cluster = CLUSTER.lock().await;
    let url = cluster::search_url();
    let rejected_before = write_rejections(&url, "opensearch-2").await;
    let names = Names::new("queue-full");
    let _leftovers = RemoveOnDrop::new(&url, &names.prefix);
    create_topic(&names.topic, 6).await;
    let waves: Vec<_> = (0..4)
        .map(|i| corpus::generate(90 + i, 300, 10).as_produce_input())
        .collect();
    let total: u64 = waves.iter().map(|w| w.len() as u64 * 10).sum();
    for wave in &waves {
        produce(&names.topic, wave).await;
    }

    let mut config = config(&names, &url);
    // Eight primaries, half of them on the node with the small queue: one
    // bulk request becomes four concurrent shard writes there.
    config.elasticsearch.shards = 8;
    config.elasticsearch.replicas = 0;
    let shutdown = CancellationToken::new();
    let ingester = Ingester::start(config, shutdown.clone()).await.unwrap();
    let stored = wait_for_count(&url, &names.span_indices(), total, Duration::from_secs(180)).await;
    assert_eq!(stored, total, "every span stored despite the refusals");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count(&url, &names.span_indices()).await,
        total,
        "none twice"
    );

    let rejected = write_rejections(&url, "opensearch-2").await - rejected_before;
    let retried = ingester.metrics.writer.documents_retried.get();
    eprintln!("opensearch-2 rejected {rejected} shard writes; {retried} document writes retried");
    assert!(
        rejected > 0,
        "the engine refused nothing: the drill did not happen"
    );
    assert!(retried > 0, "refused documents were not retried");
    assert_eq!(
        ingester.metrics.dead_lettered.get(),
        0,
        "nothing dead-lettered"
    );
    assert_eq!(ingester.metrics.documents_rejected.get(), 0);

    shutdown.cancel();
    ingester.wait().await.expect("the ingester stops cleanly");
}

/// Tasks the node's write thread pool has refused since it started.
async fn write_rejections(url: &str, node: &str) -> u64 {
    let stats: serde_json::Value = reqwest::get(format!("{url}/_nodes/{node}/stats/thread_pool"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let nodes = stats["nodes"].as_object().unwrap();
    assert_eq!(nodes.len(), 1, "one node named {node}: {stats}");
    nodes.values().next().unwrap()["thread_pool"]["write"]["rejected"]
        .as_u64()
        .unwrap()
}
