//! What a test leaves on the engine: nothing, even when it fails midway.

use reqwest::StatusCode;
use serde_json::json;
use spanway_e2e::{Engine, RemoveOnDrop, unique_name};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_test_leaves_no_index_or_template_behind() {
    let url = Engine::OpenSearch.require().await;
    let prefix = unique_name("leftovers");
    let client = reqwest::Client::new();
    let made = [
        (format!("{url}/{prefix}-jaeger-span-2026-02-01"), json!({})),
        (
            format!("{url}/_template/{prefix}-jaeger-span"),
            json!({"index_patterns": [format!("{prefix}-jaeger-span-*")]}),
        ),
        (
            format!("{url}/_index_template/{prefix}-jaeger-service"),
            json!({"index_patterns": [format!("{prefix}-jaeger-service-*")]}),
        ),
    ];
    for (path, body) in &made {
        let response = client.put(path).json(body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "PUT {path}");
    }

    let (guard_url, guard_prefix) = (url.clone(), prefix.clone());
    let failed = tokio::spawn(async move {
        let _leftovers = RemoveOnDrop::new(&guard_url, &guard_prefix);
        panic!("a test failing midway");
    })
    .await;
    assert!(failed.is_err_and(|e| e.is_panic()));

    for (path, _) in &made {
        let response = client.get(path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "GET {path}");
    }
}
