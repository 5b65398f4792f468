//! Retention against the real engines. The nodes `dev/services` runs are
//! built from Maven Central jars, without the OpenSearch ISM plugin and
//! without x-pack ILM, so what can be checked here is the refusal: asking
//! for retention on such an engine must stop the start with an error that
//! names the config key and the missing feature, before any template,
//! alias or consumer exists, while the same configuration without
//! retention starts and writes. The policy bodies and template settings
//! themselves are unit-tested in `src/retention.rs`.
#![allow(clippy::unwrap_used)]

use super::common;

use std::time::Duration;

use serde_json::Value;
use spanway_e2e::corpus;
use spanway_e2e::{Engine, RemoveOnDrop, create_topic, produce, require_kafka, wait_for_count};
use spanway_ingester::{Ingester, StartError};
use spanway_search::retention::RetentionError;
use tokio_util::sync::CancellationToken;

use common::{Names, config};

async fn status_of(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Enabling retention fails at start, in both index modes, with an error
/// naming `elasticsearch.retention.enabled` and `feature`; nothing is
/// installed.
async fn refused(url: &str, label: &str, feature: &str, engine: &str) {
    for aliases in [false, true] {
        let names = Names::new(label);
        let mut cfg = config(&names, url);
        cfg.elasticsearch.use_aliases = aliases;
        cfg.elasticsearch.retention.enabled = true;
        cfg.validate().unwrap();
        let error = Ingester::start(cfg, CancellationToken::new())
            .await
            .expect_err("retention without the engine's lifecycle feature must not start");
        let text = error.to_string();
        assert!(
            matches!(
                error,
                StartError::Retention(RetentionError::Unsupported { .. })
            ),
            "classified as a missing feature, not a generic failure: {text}"
        );
        for part in ["elasticsearch.retention.enabled", feature, engine] {
            assert!(text.contains(part), "{part:?} missing from: {text}");
        }
        let (status, _) = status_of(&format!("{url}/_template/{}-jaeger-span", names.prefix)).await;
        assert_eq!(status, 404, "no template installed before the refusal");
        let (status, _) = status_of(&format!("{url}/{}-jaeger-span-000001", names.prefix)).await;
        assert_eq!(status, 404, "no rollover index created before the refusal");
    }
}

/// The same configuration without retention starts, installs templates
/// without lifecycle settings and stores spans.
async fn starts_without_retention(url: &str, label: &str) {
    require_kafka();
    let names = Names::new(label);
    let _leftovers = RemoveOnDrop::new(url, &names.prefix);
    create_topic(&names.topic, 1).await;
    let corpus = corpus::generate(21, 4, 3);
    produce(&names.topic, &corpus.as_produce_input()).await;
    let cfg = config(&names, url);
    assert!(!cfg.elasticsearch.retention.enabled, "off by default");
    let shutdown = CancellationToken::new();
    let ingester = Ingester::start(cfg, shutdown.clone()).await.unwrap();
    let total = corpus.spans.len() as u64;
    assert_eq!(
        wait_for_count(url, &names.span_indices(), total, Duration::from_secs(120)).await,
        total
    );
    let template = format!("{}-jaeger-span", names.prefix);
    let (status, body) = status_of(&format!("{url}/_template/{template}")).await;
    assert_eq!(status, 200);
    let settings = &body[&template]["settings"]["index"];
    assert!(settings.get("lifecycle").is_none(), "{settings}");
    assert!(settings.get("plugins").is_none(), "{settings}");
    shutdown.cancel();
    ingester.wait().await.expect("the ingester stops cleanly");
    let client = reqwest::Client::new();
    for kind in ["span", "service"] {
        let _ = client
            .delete(format!("{url}/_template/{}-jaeger-{kind}", names.prefix))
            .send()
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opensearch_without_ism_refuses_retention_and_starts_without_it() {
    let url = Engine::OpenSearch.require().await;
    refused(
        &url,
        "retention-os",
        "Index State Management plugin",
        "OpenSearch 2.",
    )
    .await;
    starts_without_retention(&url, "retention-os-off").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_without_ilm_refuses_retention_and_starts_without_it() {
    let url = Engine::Elasticsearch7.require().await;
    refused(
        &url,
        "retention-es",
        "index lifecycle management",
        "Elasticsearch 7.",
    )
    .await;
    starts_without_retention(&url, "retention-es-off").await;
}
