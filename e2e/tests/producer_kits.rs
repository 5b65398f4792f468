//! The producer kits of `schemas/producers/` (OpenTelemetry exporters that
//! publish straight to the topic), each driven through its `run` script
//! against the real broker:
//! - golden: the kit exports the contract's golden traces into topics of 1, 6
//!   and 12 partitions; every record has the golden key, headers and
//!   partition, and decodes to the golden spans;
//! - end to end: a program instrumented with the language's real SDK exports
//!   through the kit (one trace larger than the record limit included); the
//!   ingester stores every span once, each document equal to the one stored
//!   when the same spans go through the Rust collector, and streaming
//!   analytics counts the same edges on both topics;
//! - a broker that is down makes the export fail visibly, and nothing is
//!   reported as exported.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use prost::Message as _;
use serde_json::Value;
use spanway_collector::Collector;
use spanway_collector::config::CollectorConfig;
use spanway_e2e::secure::repo_root;
use spanway_e2e::{
    Edges, Engine, TopicRecord as Record, create_topic, dependency_edges, kafka_bootstrap,
    opensearch_url, read_topic, require_kafka, span_documents, unique_name,
};
use spanway_ingester::Ingester;
use spanway_schemas::proto::otlp;
use spanway_schemas::{Encoding, decode_record, jaeger_json};
use spanway_streaming_analytics::Analytics;
use tokio_util::sync::CancellationToken;

mod common;

/// The contract's record limit (value bytes before compression).
const RECORD_LIMIT: usize = 1_000_000;

fn kit(language: &str) -> PathBuf {
    repo_root()
        .join("schemas/producers")
        .join(language)
        .join("run")
}

/// `schemas/producers/<language>/run ARGS...`, off the async runtime.
async fn run_kit(language: &str, args: Vec<String>) -> Output {
    let script = kit(language);
    assert!(script.is_file(), "{} is missing", script.display());
    let shown = format!("{} {}", script.display(), args.join(" "));
    tokio::task::spawn_blocking(move || std::process::Command::new(script).args(args).output())
        .await
        .expect("join")
        .unwrap_or_else(|error| panic!("cannot run {shown}: {error}"))
}

fn text(output: &Output) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The spans of `records`, as Jaeger JSON objects keyed by span id.
fn decoded_spans(records: &[&Record]) -> BTreeMap<String, Value> {
    let mut spans = BTreeMap::new();
    for record in records {
        for span in decode_record(Encoding::OtlpProto, &record.value).expect("the value decodes") {
            let json: Value = serde_json::from_slice(&jaeger_json::encode(&span)).expect("json");
            let id = json["spanId"].as_str().expect("span id").to_owned();
            assert!(spans.insert(id.clone(), json).is_none(), "span {id} twice");
        }
    }
    spans
}

/// The golden traces through the kit into topics of 1, 6 and 12 partitions.
async fn golden(language: &str) {
    require_kafka();
    let testdata = repo_root().join("schemas/testdata");
    let manifests: Vec<Value> = std::fs::read_dir(&testdata)
        .expect("schemas/testdata")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_name()?.to_str()?;
            name.ends_with(".otlp_proto.json").then_some(path)
        })
        .map(|path| serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json"))
        .collect();
    assert!(
        manifests.len() >= 2,
        "golden otlp_proto manifests in {}",
        testdata.display()
    );

    for partitions in [1, 6, 12] {
        let topic = unique_name(&format!("kit-{language}-golden-{partitions}"));
        create_topic(&topic, partitions).await;
        let output = run_kit(
            language,
            vec![
                "golden".into(),
                "--brokers".into(),
                kafka_bootstrap(),
                "--topic".into(),
                topic.clone(),
                "--testdata".into(),
                testdata.display().to_string(),
            ],
        )
        .await;
        assert!(
            output.status.success(),
            "{language} golden:\n{}",
            text(&output)
        );

        let records = read_topic(&topic, partitions, manifests.len());
        for manifest in &manifests {
            let key = manifest["key"].as_str().expect("key");
            let mine: Vec<&Record> = records.iter().filter(|r| r.key == key.as_bytes()).collect();
            assert!(
                !mine.is_empty(),
                "{language}: no record keyed {key} in {topic}"
            );
            let partition = manifest["partition_for_partition_count"][partitions.to_string()]
                .as_i64()
                .expect("partition in the manifest");
            for record in &mine {
                assert_eq!(
                    i64::from(record.partition),
                    partition,
                    "{language}: key {key} with {partitions} partitions"
                );
                for header in manifest["headers"].as_array().expect("headers") {
                    let name = header["name"].as_str().expect("name");
                    assert_eq!(
                        record.headers.get(name).map(String::as_str),
                        header["value"].as_str(),
                        "{language}: header {name} of the record keyed {key}"
                    );
                }
                assert!(record.value.len() <= RECORD_LIMIT);
            }
            let actual = decoded_spans(&mine);
            let expected: BTreeMap<String, Value> = manifest["spans"]
                .as_array()
                .expect("spans")
                .iter()
                .map(|s| (s["spanId"].as_str().expect("span id").to_owned(), s.clone()))
                .collect();
            assert_eq!(
                actual.keys().collect::<Vec<_>>(),
                expected.keys().collect::<Vec<_>>(),
                "{language}: the spans of trace {key}"
            );
            for (id, span) in &expected {
                assert_eq!(
                    unordered_attributes(&actual[id]),
                    unordered_attributes(span),
                    "{language}: span {id} of trace {key}"
                );
            }
        }
        let keys: BTreeSet<&[u8]> = records.iter().map(|r| r.key.as_slice()).collect();
        assert_eq!(
            keys.len(),
            manifests.len(),
            "{language}: records of other traces in {topic}"
        );
    }
}

/// `span` with its tags, process tags and log fields sorted by key. OTLP attributes are a map
/// (unique keys, order not significant), and SDKs differ in the order they keep: Java's sorts
/// them, Python's and Go's keep insertion order.
fn unordered_attributes(span: &Value) -> Value {
    fn sort(list: &mut Value) {
        if let Some(items) = list.as_array_mut() {
            items.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
        }
    }
    let mut span = span.clone();
    sort(&mut span["tags"]);
    sort(&mut span["process"]["tags"]);
    if let Some(logs) = span["logs"].as_array_mut() {
        for log in logs {
            sort(&mut log["fields"]);
        }
    }
    span
}

/// Every stored span document of `prefix`, by span id.
async fn stored(prefix: &str) -> BTreeMap<String, Value> {
    span_documents(&opensearch_url(), prefix).await
}

/// `(parent, child) → (calls, errors)` summed over the dependency documents of `prefix`.
async fn edges(prefix: &str) -> Edges {
    dependency_edges(&opensearch_url(), prefix).await
}

/// A run of the kit's example program, with the same spans sent through the Rust collector.
async fn end_to_end(language: &str) {
    require_kafka();
    Engine::OpenSearch.require().await;
    let run_id = unique_name(&format!("kit-{language}"));
    let kit_topic = unique_name(&format!("kit-{language}-spans"));
    let reference_topic = unique_name(&format!("kit-{language}-reference"));
    for topic in [&kit_topic, &reference_topic] {
        create_topic(topic, 3).await;
    }
    let kit_prefix = unique_name("kit");
    let reference_prefix = unique_name("kit-ref");
    let shutdown = CancellationToken::new();
    let mut started = Vec::new();
    for (topic, prefix) in [
        (&kit_topic, &kit_prefix),
        (&reference_topic, &reference_prefix),
    ] {
        let ingester = Ingester::start(
            common::ingester(topic, prefix, Encoding::OtlpProto),
            shutdown.clone(),
        )
        .await
        .expect("ingester starts");
        let analytics = Analytics::start(
            &common::analytics(topic, prefix, Encoding::OtlpProto),
            shutdown.clone(),
        )
        .await
        .expect("analytics starts");
        started.push((ingester, analytics));
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("exported.binpb");
    let output = run_kit(
        language,
        vec![
            "example".into(),
            "--brokers".into(),
            kafka_bootstrap(),
            "--topic".into(),
            kit_topic.clone(),
            "--run-id".into(),
            run_id.clone(),
            "--out".into(),
            out.display().to_string(),
            "--traces".into(),
            "10".into(),
            "--big-trace".into(),
        ],
    )
    .await;
    assert!(
        output.status.success(),
        "{language} example:\n{}",
        text(&output)
    );
    let exported = otlp::ExportTraceServiceRequest::decode(
        std::fs::read(&out).expect("the exported spans").as_slice(),
    )
    .expect("the exported spans decode");
    let span_count = exported
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len() as u64)
        .sum::<u64>();
    assert!(
        span_count > 2_000,
        "{language}: the big trace is among the {span_count} spans"
    );

    // The big trace was split: several records with its key, each under the limit.
    let records = read_topic(&kit_topic, 3, 12);
    let mut per_key: BTreeMap<&[u8], usize> = BTreeMap::new();
    for record in &records {
        assert!(
            record.value.len() <= RECORD_LIMIT,
            "{language}: a record of {} bytes",
            record.value.len()
        );
        assert_eq!(
            record.key.len(),
            32,
            "{language}: key {:?}",
            String::from_utf8_lossy(&record.key)
        );
        *per_key.entry(record.key.as_slice()).or_default() += 1;
    }
    assert!(
        per_key.values().any(|n| *n > 1),
        "{language}: no trace was split: {per_key:?}"
    );

    // The same spans through the Rust collector.
    let mut collector_config = CollectorConfig::default();
    collector_config.kafka.client.brokers = vec![kafka_bootstrap()];
    collector_config.kafka.topic = reference_topic.clone();
    collector_config.on_ephemeral_loopback_ports();
    collector_config.validate().expect("valid collector config");
    let collector = Collector::start(&collector_config, shutdown.clone())
        .await
        .expect("collector starts");
    let answer = reqwest::Client::new()
        .post(format!(
            "http://{}/v1/traces",
            collector.otlp_http_addr.expect("otlp http")
        ))
        .header("content-type", "application/x-protobuf")
        .body(exported.encode_to_vec())
        .send()
        .await
        .expect("send to the collector");
    assert_eq!(
        answer.status(),
        200,
        "the collector took the reference spans"
    );

    common::wait_for_stored(language, [&kit_prefix, &reference_prefix], span_count).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let kit_docs = stored(&kit_prefix).await;
    let reference_docs = stored(&reference_prefix).await;
    assert_eq!(
        kit_docs.len() as u64,
        span_count,
        "{language}: each span stored once"
    );
    assert_eq!(
        kit_docs.keys().collect::<Vec<_>>(),
        reference_docs.keys().collect::<Vec<_>>(),
        "{language}: the same spans on both paths"
    );
    for (id, doc) in &kit_docs {
        assert_eq!(
            doc, &reference_docs[id],
            "{language}: span {id} stored as the collector stores it"
        );
    }

    // Streaming analytics counts the same edges from both topics.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut kit_edges, mut reference_edges) = (BTreeMap::new(), BTreeMap::new());
    while Instant::now() < deadline {
        kit_edges = edges(&kit_prefix).await;
        reference_edges = edges(&reference_prefix).await;
        let calls = |e: &BTreeMap<(String, String), (u64, u64)>| {
            e.get(&("frontend".to_owned(), "payments".to_owned()))
                .map_or(0, |c| c.0)
        };
        if calls(&kit_edges) >= 10 && kit_edges == reference_edges {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        kit_edges
            .get(&("frontend".to_owned(), "payments".to_owned()))
            .is_some_and(|(calls, _)| *calls >= 10),
        "{language}: frontend -> payments among {kit_edges:?}"
    );
    assert_eq!(
        kit_edges, reference_edges,
        "{language}: the same edges on both paths"
    );

    shutdown.cancel();
    collector.wait().await;
    for (ingester, analytics) in started {
        ingester.wait().await.expect("the ingester stops cleanly");
        analytics
            .wait()
            .await
            .expect("streaming analytics stops cleanly");
    }
}

/// Nothing listens on the broker address: the export fails, visibly and in bounded time, and
/// nothing is reported as exported.
async fn broker_down(language: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("exported.binpb");
    let output = run_kit(
        language,
        vec![
            "example".into(),
            "--brokers".into(),
            "127.0.0.1:1".into(),
            "--topic".into(),
            "kit-nowhere".into(),
            "--run-id".into(),
            unique_name("kit-down"),
            "--out".into(),
            out.display().to_string(),
            "--traces".into(),
            "2".into(),
            "--timeout-ms".into(),
            "5000".into(),
        ],
    )
    .await;
    assert!(
        !output.status.success(),
        "{language}: exported with no broker:\n{}",
        text(&output)
    );
    assert!(
        !output.stderr.is_empty(),
        "{language}: the failure is reported:\n{}",
        text(&output)
    );
    let reported = exported_spans(&out);
    assert_eq!(
        reported, 0,
        "{language}: spans reported exported with no broker"
    );
}

fn exported_spans(path: &Path) -> usize {
    let bytes = std::fs::read(path).unwrap_or_default();
    otlp::ExportTraceServiceRequest::decode(bytes.as_slice())
        .map(|r| {
            r.resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .map(|ss| ss.spans.len())
                .sum()
        })
        .unwrap_or(0)
}

macro_rules! kit_tests {
    ($language:ident) => {
        mod $language {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn golden_records_match_the_contract() {
                super::golden(stringify!($language)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sdk_spans_are_stored_once_as_the_collector_stores_them() {
                super::end_to_end(stringify!($language)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn export_fails_visibly_when_the_broker_is_down() {
                super::broker_down(stringify!($language)).await;
            }
        }
    };
}

kit_tests!(python);
kit_tests!(node);
kit_tests!(java);
kit_tests!(go);
