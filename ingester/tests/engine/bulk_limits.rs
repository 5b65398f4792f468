//! Bulk requests are cut by documents and bytes, not by Kafka records,
//! against the real OpenSearch node.
#![allow(clippy::unwrap_used)]

use super::common;

use std::time::Duration;

use spanway_e2e::corpus;
use spanway_e2e::{
    Engine, RemoveOnDrop, count, create_topic, delete_indices, produce, require_kafka, unique_name,
    wait_for_count,
};
use spanway_ingester::Ingester;
use spanway_ingester::config::BulkConfig;
use spanway_search::bulk::body::{Limits, encoded_len, split};
use spanway_search::bulk::writer::BulkWriter;
use spanway_search::client::EngineClient;
use spanway_search::config::EngineClientConfig;
use spanway_search::document::{Document, DocumentKind};
use spanway_search::metrics::WriterMetrics;
use spanway_service_kit::liveness::{DEFAULT_STALL_TIMEOUT, Liveness};
use tokio_util::sync::CancellationToken;

use common::{Names, config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_write_is_split_by_bytes_and_count() {
    let url = Engine::OpenSearch.require().await;
    // Refused by the engine, in different requests: each rejection must
    // say which of the documents given it was.
    const MALFORMED: [usize; 2] = [17, 203];
    let index = unique_name("bulk-limits");
    let documents: Vec<Document> = (0..250)
        .map(|i| Document {
            kind: DocumentKind::Span,
            index: index.clone(),
            id: format!("doc-{i}"),
            source: if MALFORMED.contains(&i) {
                format!(r#"{{"n":{i},"pad":"#).into_bytes()
            } else {
                format!(r#"{{"n":{i},"pad":"{}"}}"#, "x".repeat(i % 97)).into_bytes()
            },
        })
        .collect();
    let bulk = BulkConfig {
        max_documents: 40,
        max_bytes: 4 * 1024,
        ..BulkConfig::default()
    };
    let limits = Limits {
        max_documents: bulk.max_documents,
        max_bytes: bulk.max_bytes,
    };
    let planned = split(documents.clone(), limits);
    assert!(
        planned
            .iter()
            .all(|r| r.len() <= 40 && r.iter().map(encoded_len).sum::<usize>() <= 4 * 1024),
        "every planned request within both limits"
    );
    let metrics = WriterMetrics::default();
    let engine = EngineClient::new(&EngineClientConfig::for_url(&url)).unwrap();
    let writer = BulkWriter::new(engine, bulk.writer_options(), metrics.clone());
    let liveness = Liveness::new(DEFAULT_STALL_TIMEOUT, CancellationToken::new());
    let heartbeat = liveness.register("bulk-write");
    let rejected = writer
        .write_all(documents, &CancellationToken::new(), &heartbeat)
        .await
        .unwrap();
    let positions: Vec<usize> = rejected.iter().map(|r| r.position).collect();
    assert_eq!(positions, MALFORMED, "{rejected:?}");
    for r in &rejected {
        assert_eq!(r.document.id, format!("doc-{}", r.position));
    }
    assert_eq!(
        metrics.bulk_requests.get(),
        planned.len() as u64,
        "one request per planned chunk"
    );
    assert!(planned.len() > 250 / 40, "bytes cut some requests short");
    assert_eq!(
        wait_for_count(&url, &index, 248, Duration::from_secs(30)).await,
        248
    );
    delete_indices(&url, &index).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_many_spans_are_written_in_document_sized_requests() {
    require_kafka();
    let url = Engine::OpenSearch.require().await;
    let names = Names::new("doclimit");
    let _leftovers = RemoveOnDrop::new(&url, &names.prefix);
    create_topic(&names.topic, 1).await;
    // One record per trace, 50 spans each: 20 records, 1,000 span documents.
    let corpus = corpus::generate(31, 20, 50);
    produce(&names.topic, &corpus.as_produce_input()).await;
    let total = corpus.spans.len() as u64;

    let mut cfg = config(&names, &url);
    cfg.bulk.max_documents = 40;
    cfg.validate().unwrap();
    let shutdown = CancellationToken::new();
    let ingester = Ingester::start(cfg, shutdown.clone()).await.unwrap();
    assert_eq!(
        wait_for_count(&url, &names.span_indices(), total, Duration::from_secs(120)).await,
        total
    );
    // Counted in records, all 20 would have fitted one request.
    let requests = ingester.metrics.writer.bulk_requests.get();
    assert!(
        requests >= total.div_ceil(40),
        "{requests} bulk requests for {total} spans at 40 documents each"
    );
    for _ in 0..40 {
        if ingester.metrics.spans_indexed.get() == total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(ingester.metrics.spans_indexed.get(), total);
    shutdown.cancel();
    ingester.wait().await.expect("the ingester stops cleanly");
    assert_eq!(
        count(&url, &names.span_indices()).await,
        total,
        "no duplicates"
    );
}

/// An index with one of its two primaries unassigned (red), as when a node
/// dies before a replica is in sync. The engine is asked to wait less than
/// the writer's own timeout, so it answers: the documents of the healthy
/// shard are stored, those of the missing one come back refused (503) and
/// are retried, and no request times out. Once the shard is allocated,
/// every document is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_red_shard_holds_back_only_its_own_documents() {
    let url = Engine::OpenSearch.require().await;
    let index = unique_name("red-shard");
    // A red index left behind would turn the node red for every later test.
    let _cleanup = DeleteOnDrop(url.clone(), index.clone());
    let http = reqwest::Client::new();
    let created = http
        // Without waiting for primaries: one of them cannot start.
        .put(format!("{url}/{index}?wait_for_active_shards=0"))
        .json(&serde_json::json!({"settings": {
            "index.number_of_shards": 2,
            "index.number_of_replicas": 0,
            "index.routing.allocation.total_shards_per_node": 1
        }}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{:?}", created.text().await);
    let documents: Vec<Document> = (0..200)
        .map(|i| Document {
            kind: DocumentKind::Span,
            index: index.clone(),
            id: format!("doc-{i}"),
            source: format!(r#"{{"n":{i}}}"#).into_bytes(),
        })
        .collect();
    let bulk = BulkConfig {
        // The engine then waits at most 2 s for the missing shard.
        request_timeout: Duration::from_secs(4),
        retry_max_backoff: Duration::from_millis(500),
        ..BulkConfig::default()
    };
    assert_eq!(
        spanway_search::bulk::writer::shard_wait(bulk.request_timeout),
        Duration::from_secs(2)
    );
    let metrics = WriterMetrics::default();
    let engine = EngineClient::new(&EngineClientConfig::for_url(&url)).unwrap();
    let writer = BulkWriter::new(engine, bulk.writer_options(), metrics.clone());
    let write = tokio::spawn(async move {
        let liveness = Liveness::new(DEFAULT_STALL_TIMEOUT, CancellationToken::new());
        let heartbeat = liveness.register("bulk-write");
        writer
            .write_all(documents, &CancellationToken::new(), &heartbeat)
            .await
    });

    let stored = |http: reqwest::Client, url: String, index: String| async move {
        let stats: serde_json::Value = http
            .get(format!("{url}/{index}/_stats/indexing"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["_all"]["primaries"]["indexing"]["index_total"]
            .as_u64()
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while metrics.documents_retried.get() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no answer naming the missing shard"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let healthy = stored(http.clone(), url.clone(), index.clone()).await;
    assert!(
        healthy > 0 && healthy < 200,
        "the healthy shard's documents are stored, the others wait: {healthy}"
    );
    assert_eq!(
        metrics.bulk_failures.get(),
        0,
        "the engine answered within the writer's timeout"
    );
    assert!(!write.is_finished(), "the missing shard's documents wait");

    let lifted = http
        .put(format!("{url}/{index}/_settings"))
        .json(&serde_json::json!({"index.routing.allocation.total_shards_per_node": null}))
        .send()
        .await
        .unwrap();
    assert!(lifted.status().is_success());
    let rejected = tokio::time::timeout(Duration::from_secs(60), write)
        .await
        .expect("written once the shard is allocated")
        .unwrap()
        .unwrap();
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(
        wait_for_count(&url, &index, 200, Duration::from_secs(30)).await,
        200
    );
}

/// Deletes an index when dropped, a failed assertion included.
struct DeleteOnDrop(String, String);

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        let (url, index) = (self.0.clone(), self.1.clone());
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(delete_indices(&url, &index))
        });
    }
}
