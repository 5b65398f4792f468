//! At-least-once delivery with no duplicates, against the real broker and
//! the real OpenSearch node: volume, rebalance, and dead letters.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use serde_json::json;
use spanway_e2e::corpus::{self, DAY_START_NS};
use spanway_e2e::ops::{LiveWatch, live_loops, live_report};
use spanway_e2e::{
    Engine, RemoveOnDrop, count, create_topic, kafka_bootstrap, produce, require_kafka, search,
    wait_for_count,
};
use spanway_ingester::Ingester;
use spanway_ingester::config::SpanIds;
use tokio_util::sync::CancellationToken;

use common::{Names, config};

async fn ready() -> String {
    spanway_service_kit::logging::init("info", false);
    require_kafka();
    Engine::OpenSearch.require().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_spans_are_stored_exactly_once() {
    let url = ready().await;
    let names = Names::new("volume");
    let _leftovers = RemoveOnDrop::new(&url, &names.prefix);
    create_topic(&names.topic, 6).await;
    let corpus = corpus::generate(7, 5_000, 10);
    assert_eq!(corpus.spans.len(), 50_000);
    produce(&names.topic, &corpus.as_produce_input()).await;

    let shutdown = CancellationToken::new();
    let ingester = Ingester::start(config(&names, &url), shutdown.clone())
        .await
        .unwrap();
    let live = LiveWatch::start(ingester.ops_addr);
    let stored = wait_for_count(
        &url,
        &names.span_indices(),
        50_000,
        Duration::from_secs(600),
    )
    .await;
    assert_eq!(stored, 50_000, "every span stored");
    // Idle now: the loops still beat.
    let (status, report) = live_report(ingester.ops_addr).await;
    assert_eq!(status, 200, "{report}");
    let loops = live_loops(&report);
    for name in ["kafka-poll", "bulk"] {
        assert!(
            loops.contains(&(name.to_owned(), "running".to_owned())),
            "{name} not running in {report}"
        );
    }
    let seen = live.stop().await;
    assert!(
        seen.failures.is_empty(),
        "liveness failed while writing: {:?}",
        seen.failures
    );
    assert!(
        ["kafka-poll", "bulk"]
            .iter()
            .all(|name| seen.loops.contains(*name)),
        "loops seen over {} probes: {:?}",
        seen.probes,
        seen.loops
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count(&url, &names.span_indices()).await,
        50_000,
        "and none twice"
    );
    assert_eq!(ingester.metrics.spans_indexed.get(), 50_000);
    assert_eq!(ingester.metrics.dead_lettered.get(), 0);

    // Field-by-field check of a few thousand documents against their source spans.
    let sample = search(
        &url,
        &names.span_indices(),
        json!({"size": 5000, "query": {"match_all": {}}}),
    )
    .await;
    assert_eq!(corpus.check_documents(&sample), 5000);

    let services = search(&url, &names.service_indices(), json!({"size": 1000})).await;
    let pairs: BTreeSet<(String, String)> = services
        .iter()
        .map(|d| {
            (
                d["serviceName"].as_str().unwrap().into(),
                d["operationName"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(pairs, corpus.pairs, "service index complete");
    assert_eq!(services.len(), corpus.pairs.len(), "one document per pair");

    shutdown.cancel();
    ingester.wait().await.expect("the ingester stops cleanly");
}

/// Records on the topic twice, as a producer's retry under a new epoch or a
/// client resending a request it was refused after a timeout leaves them:
/// some copies right behind the original (in the same bulk request), some
/// long after (once the original is stored). Each span is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_on_the_topic_twice_is_stored_once() {
    record_on_the_topic_twice(SpanIds::Derived).await;
}

/// Time-led ids are derived from the span as the default's are, so a copy
/// is refused as already stored, with no id filter on the indices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_on_the_topic_twice_is_stored_once_with_time_led_ids() {
    record_on_the_topic_twice(SpanIds::TimeLed).await;
}

async fn record_on_the_topic_twice(span_ids: SpanIds) {
    let url = ready().await;
    let names = Names::new("twice");
    let _leftovers = RemoveOnDrop::new(&url, &names.prefix);
    create_topic(&names.topic, 3).await;
    let corpus = corpus::generate(11, 500, 10);
    let originals = corpus.as_produce_input();
    let mut records = Vec::new();
    for (i, record) in originals.iter().enumerate() {
        records.push(record.clone());
        if i % 7 == 0 {
            records.push(record.clone());
        }
    }
    records.extend(originals.iter().step_by(3).cloned());
    let copies = records.len() - originals.len();
    assert!(copies > originals.len() / 3, "{copies} copies");
    let spans_in = |records: &[spanway_e2e::TestRecord]| -> u64 {
        records
            .iter()
            .map(|(_, value, _)| {
                spanway_schemas::decode_record(spanway_schemas::Encoding::OtlpProto, value)
                    .unwrap()
                    .len() as u64
            })
            .sum()
    };
    let copied_spans = spans_in(&records) - spans_in(&originals);
    produce(&names.topic, &records).await;

    let mut config = config(&names, &url);
    config.elasticsearch.span_ids = span_ids;
    let shutdown = CancellationToken::new();
    let ingester = Ingester::start(config, shutdown.clone()).await.unwrap();
    let spans = corpus.spans.len() as u64;
    let stored = wait_for_count(&url, &names.span_indices(), spans, Duration::from_secs(300)).await;
    assert_eq!(stored, spans, "every span stored");
    // Every record read, the copies too, before counting again.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while ingester.metrics.records_consumed.get() < records.len() as u64
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        ingester.metrics.records_consumed.get(),
        records.len() as u64,
        "every record read, {copies} of them copies"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count(&url, &names.span_indices()).await,
        spans,
        "and none twice"
    );
    let already = ingester.metrics.writer.spans_already_stored.get();
    assert!(
        already >= copied_spans,
        "each copied span counted as already stored: {already} of {copied_spans}"
    );
    assert_eq!(ingester.metrics.dead_lettered.get(), 0);
    assert_eq!(ingester.metrics.documents_rejected.get(), 0);

    // The ids are of the configured form, and the filter on as it says.
    let hits = spanway_e2e::search_hits(
        &url,
        &names.span_indices(),
        json!({"size": 200, "_source": ["spanID", "startTime"]}),
    )
    .await;
    assert_eq!(hits.len(), 200);
    for hit in &hits {
        let id = hit["_id"].as_str().unwrap();
        let span_id = hit["_source"]["spanID"].as_str().unwrap();
        match span_ids {
            SpanIds::TimeLed => {
                assert_eq!(id.len(), 36, "{id}");
                let start = u64::from_str_radix(&id[..13], 16).unwrap();
                assert_eq!(json!(start), hit["_source"]["startTime"], "{id}");
            }
            _ => assert!(id.contains(&format!("_{span_id}_")), "{id} names {span_id}"),
        }
    }
    let filters = id_filters(&url, &names.span_indices()).await;
    assert!(!filters.is_empty());
    for (index, filter) in filters {
        let on = filter == "true";
        assert_eq!(
            on,
            span_ids == SpanIds::Derived,
            "{index}: the id filter only for derived ids, {filter}"
        );
    }

    shutdown.cancel();
    ingester.wait().await.expect("the ingester stops cleanly");
}

/// Each span index matching `indices` with its id filter setting (null
/// when unset).
async fn id_filters(url: &str, indices: &str) -> Vec<(String, serde_json::Value)> {
    let settings: serde_json::Value =
        reqwest::get(format!("{url}/{indices}/_settings?flat_settings=true"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    settings
        .as_object()
        .unwrap()
        .iter()
        .map(|(index, body)| {
            (
                index.clone(),
                body["settings"]["index.optimize_doc_id_lookup.fuzzy_set.enabled"].clone(),
            )
        })
        .collect()
}

/// With `span_ids = "engine"` the engine makes the ids: the spans are the
/// same documents, the span indices get no id filter, and what the default
/// refuses as already stored is stored again: the trade this setting makes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_engine_ids_a_record_on_the_topic_twice_is_stored_twice() {
    let url = ready().await;
    let names = Names::new("engine-ids");
    let _leftovers = RemoveOnDrop::new(&url, &names.prefix);
    create_topic(&names.topic, 3).await;
    let corpus = corpus::generate(17, 400, 10);
    let mut records = corpus.as_produce_input();
    let copies: Vec<_> = records.iter().step_by(4).cloned().collect();
    let copied_spans: usize = copies
        .iter()
        .map(|(_, value, _)| {
            spanway_schemas::decode_record(spanway_schemas::Encoding::OtlpProto, value)
                .unwrap()
                .len()
        })
        .sum();
    assert!(copied_spans > 500, "{copied_spans} spans copied");
    records.extend(copies);
    produce(&names.topic, &records).await;

    let mut engine_ids = config(&names, &url);
    engine_ids.elasticsearch.span_ids = SpanIds::Engine;
    let shutdown = CancellationToken::new();
    let ingester = Ingester::start(engine_ids, shutdown.clone()).await.unwrap();
    let spans = corpus.spans.len() as u64;
    let expected = spans + copied_spans as u64;
    let stored = wait_for_count(
        &url,
        &names.span_indices(),
        expected,
        Duration::from_secs(300),
    )
    .await;
    assert_eq!(stored, expected, "every span, the copies once more");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&url, &names.span_indices()).await, expected);
    assert_eq!(ingester.metrics.spans_indexed.get(), expected);
    assert_eq!(ingester.metrics.documents_rejected.get(), 0);
    assert_eq!(
        ingester.metrics.writer.spans_already_stored.get(),
        0,
        "nothing to refuse without ids"
    );

    let sample = search(
        &url,
        &names.span_indices(),
        json!({"size": 2000, "query": {"match_all": {}}}),
    )
    .await;
    assert_eq!(corpus.check_documents(&sample), 2000);
    let filters = id_filters(&url, &names.span_indices()).await;
    assert!(!filters.is_empty());
    for (index, filter) in filters {
        assert!(
            filter.is_null() || filter == "false",
            "{index}: no id filter when nothing looks ids up: {filter}"
        );
    }

    shutdown.cancel();
    ingester.wait().await.expect("the ingester stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_leaving_mid_stream_loses_and_duplicates_nothing() {
    member_leaving_mid_stream(SpanIds::Derived).await;
}

/// Without ids nothing hides a record read twice: the leaving member hands
/// its partitions over at the offsets it has stored, so no span is written
/// twice even where the engine would store a second copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_leaving_mid_stream_writes_nothing_twice_with_engine_ids() {
    member_leaving_mid_stream(SpanIds::Engine).await;
}

async fn member_leaving_mid_stream(span_ids: SpanIds) {
    let url = ready().await;
    let names = Names::new("rebalance");
    let _leftovers = RemoveOnDrop::new(&url, &names.prefix);
    create_topic(&names.topic, 6).await;
    let corpus = corpus::generate(11, 3_000, 10);
    produce(&names.topic, &corpus.as_produce_input()).await;
    let total = corpus.spans.len() as u64;

    // Small batches and a tiny byte budget keep the members pausing and
    // resuming all the time, so the rebalance finds partitions paused.
    let mut small_batches = config(&names, &url);
    small_batches.bulk.max_documents = 100;
    small_batches.bulk.max_bytes = 32 * 1024;
    small_batches.bulk.max_bytes_in_flight = 64 * 1024;
    small_batches.elasticsearch.span_ids = span_ids;
    // The leaving member stops cleanly: time enough to store what it read
    // before it lets go, also on a loaded machine (past the drain timeout
    // its records are read again, which engine-made ids would store twice).
    small_batches.kafka.drain_timeout = Duration::from_secs(30);
    let first_stop = CancellationToken::new();
    let first = Ingester::start(small_batches.clone(), first_stop.clone())
        .await
        .unwrap();
    wait_for_count(&url, &names.span_indices(), 2_000, Duration::from_secs(120)).await;

    let second_stop = CancellationToken::new();
    let second = Ingester::start(small_batches, second_stop.clone())
        .await
        .unwrap();
    // Let the second member take partitions and write some of them.
    for _ in 0..120 {
        if second.metrics.spans_indexed.get() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        second.metrics.spans_indexed.get() > 0,
        "the second member got partitions"
    );
    second_stop.cancel();
    let second_metrics = second.metrics.clone();
    second.wait().await.expect("the ingester stops cleanly");

    let stored = wait_for_count(&url, &names.span_indices(), total, Duration::from_secs(300)).await;
    assert_eq!(stored, total);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count(&url, &names.span_indices()).await,
        total,
        "no duplicate after the rebalance"
    );
    assert_eq!(
        first.metrics.writer.spans_already_stored.get()
            + second_metrics.writer.spans_already_stored.get(),
        0,
        "no span written twice, not even one the engine refused"
    );

    first_stop.cancel();
    first.wait().await.expect("the ingester stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_and_refused_documents_go_to_the_dead_letter_topic() {
    let url = ready().await;
    let names = Names::new("deadletter");
    let _leftovers = RemoveOnDrop::new(&url, &names.prefix);
    create_topic(&names.topic, 1).await;
    create_topic(&names.dead_letter, 1).await;

    // One day's index maps operationName as a number, so the engine refuses
    // a span of that day whose operation name is text.
    let refused_day = format!("{}-jaeger-span-2026-02-02", names.prefix);
    let response = reqwest::Client::new()
        .put(format!("{url}/{refused_day}"))
        .json(&json!({"mappings": {"properties": {"operationName": {"type": "long"}}}}))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );

    let good = corpus::generate(3, 20, 5);
    let mut records = good.as_produce_input();
    records.insert(
        5,
        (
            b"0123456789abcdef0123456789abcdef".to_vec(),
            vec![0x0a, 0xff, 0xff, 0x01],
            vec![("encoding", "otlp_proto")],
        ),
    );
    let mut refused = corpus::generate(4, 1, 1);
    let refused_value = {
        use prost::Message as _;
        let mut data =
            spanway_schemas::proto::otlp::TracesData::decode(&refused.records[0].value[..])
                .unwrap();
        let span = &mut data.resource_spans[0].scope_spans[0].spans[0];
        let day = 86_400_000_000_000;
        span.start_time_unix_nano = DAY_START_NS + day + 1_000;
        span.end_time_unix_nano = DAY_START_NS + day + 2_000;
        data.encode_to_vec()
    };
    refused.records[0].value = refused_value;
    records.extend(refused.as_produce_input());
    produce(&names.topic, &records).await;

    let shutdown = CancellationToken::new();
    let ingester = Ingester::start(config(&names, &url), shutdown.clone())
        .await
        .unwrap();
    let good_count = good.spans.len() as u64;
    let stored = wait_for_count(
        &url,
        &format!("{}-jaeger-span-2026-02-01", names.prefix),
        good_count,
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(stored, good_count, "every valid span stored");

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("group.id", spanway_e2e::unique_name("dlq-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&names.dead_letter]).unwrap();
    let mut letters = Vec::new();
    for _ in 0..120 {
        if let Some(message) = consumer.poll(Duration::from_millis(500)) {
            letters.push(message.unwrap().detach());
            if letters.len() == 2 {
                break;
            }
        }
    }
    assert_eq!(
        letters.len(),
        2,
        "one poison record and one refused document"
    );
    let header = |m: &rdkafka::message::OwnedMessage, name: &str| -> String {
        let value = m
            .headers()
            .unwrap()
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .unwrap();
        String::from_utf8(value.to_vec()).unwrap()
    };
    let poison = letters
        .iter()
        .find(|m| header(m, "dlq.kind") == "undecodable_record")
        .expect("poison letter");
    assert_eq!(
        poison.payload(),
        Some(&[0x0a, 0xff, 0xff, 0x01][..]),
        "original bytes"
    );
    assert_eq!(header(poison, "dlq.source.topic"), names.topic);
    assert_eq!(header(poison, "dlq.source.offset"), "5");
    assert!(
        header(poison, "dlq.reason").contains("malformed protobuf"),
        "{}",
        header(poison, "dlq.reason")
    );

    let document = letters
        .iter()
        .find(|m| header(m, "dlq.kind") == "rejected_document")
        .expect("refused letter");
    assert_eq!(header(document, "dlq.document.index"), refused_day);
    assert!(
        header(document, "dlq.reason").starts_with("400 "),
        "{}",
        header(document, "dlq.reason")
    );
    let source: serde_json::Value = serde_json::from_slice(document.payload().unwrap()).unwrap();
    assert!(source["spanID"].is_string(), "the refused document itself");
    assert_eq!(
        header(document, "dlq.source.offset"),
        records.len().saturating_sub(1).to_string()
    );

    assert_eq!(ingester.metrics.dead_lettered.get(), 2);
    shutdown.cancel();
    ingester.wait().await.expect("the ingester stops cleanly");
}

/// The span index blocked for writes (`index.blocks.write`, as an operator
/// or a lifecycle policy sets it) while spans arrive: the ingester holds
/// them and retries, dead-letters nothing, and stores every span once the
/// block is lifted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_write_block_holds_spans_back_and_dead_letters_none() {
    let url = ready().await;
    let names = Names::new("blocked");
    let _leftovers = RemoveOnDrop::new(&url, &names.prefix);
    create_topic(&names.topic, 3).await;
    create_topic(&names.dead_letter, 1).await;
    let before = corpus::generate(51, 200, 10);
    let first = before.spans.len() as u64;
    produce(&names.topic, &before.as_produce_input()).await;
    let shutdown = CancellationToken::new();
    let ingester = Ingester::start(config(&names, &url), shutdown.clone())
        .await
        .unwrap();
    let stored = wait_for_count(&url, &names.span_indices(), first, Duration::from_secs(120)).await;
    assert_eq!(stored, first);

    let client = reqwest::Client::new();
    let block = |on: bool| {
        client
            .put(format!("{url}/{}/_settings", names.span_indices()))
            .json(&json!({"index.blocks.write": on}))
            .send()
    };
    assert!(block(true).await.unwrap().status().is_success());
    let after = corpus::generate(52, 200, 10);
    let total = first + after.spans.len() as u64;
    produce(&names.topic, &after.as_produce_input()).await;
    // Held back, retried, and counted as blocked.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while ingester.metrics.writer.documents_blocked.get() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no write met the block"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        count(&url, &names.span_indices()).await,
        first,
        "nothing written through the block"
    );
    assert_eq!(
        ingester.metrics.dead_lettered.get(),
        0,
        "a block is not the documents' fault"
    );

    assert!(block(false).await.unwrap().status().is_success());
    let stored = wait_for_count(&url, &names.span_indices(), total, Duration::from_secs(120)).await;
    assert_eq!(stored, total, "every span stored once the block is lifted");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count(&url, &names.span_indices()).await,
        total,
        "and none twice"
    );
    assert_eq!(ingester.metrics.dead_lettered.get(), 0);

    shutdown.cancel();
    ingester.wait().await.expect("the ingester stops cleanly");
}
