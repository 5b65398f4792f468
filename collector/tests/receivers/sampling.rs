//! Jaeger remote sampling through a started collector: the HTTP endpoints
//! (`/sampling`, `/api/sampling`) and gRPC `SamplingManager` serve the
//! strategies file, pick up a change, and keep the last good strategies
//! when the file turns invalid. A bad file at start stops the start.
#![allow(clippy::unwrap_used)]

use super::grpc_common;

use std::path::Path;
use std::time::{Duration, Instant};

use grpc_common::{config, metric};
use serde_json::{Value, json};
use spanway_collector::{Collector, StartError};
use spanway_schemas::proto::grpc::jaeger::sampling_manager_client::SamplingManagerClient;
use spanway_schemas::proto::jaeger::api_v2 as jaeger;
use tokio_util::sync::CancellationToken;

fn strategies(checkout_rate: f64) -> String {
    json!({
        "default_strategy": {"type": "probabilistic", "param": 0.1},
        "service_strategies": [
            {"service": "checkout", "type": "probabilistic", "param": checkout_rate,
             "operation_strategies": [{"operation": "GET /health", "type": "probabilistic", "param": 0.0}]},
            {"service": "search", "type": "ratelimiting", "param": 25}
        ]
    })
    .to_string()
}

/// Writes through a temporary file and a rename, as configuration
/// management does, so the reloader never reads half a file.
fn write(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn http(base: &str, query: &str) -> (u16, String) {
    let response = reqwest::get(format!("{base}{query}")).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn http_json(base: &str, query: &str) -> Value {
    let (status, body) = http(base, query).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn checkout_rate(base: &str) -> f64 {
    http_json(base, "/sampling?service=checkout").await["probabilisticSampling"]["samplingRate"]
        .as_f64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strategies_are_served_over_http_and_grpc_and_follow_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("strategies.json");
    write(&path, &strategies(0.5));
    let mut config = config("it-sampling-unused");
    config.sampling.strategies_file = Some(path.clone());
    config.sampling.reload_interval = Duration::from_millis(200);
    let shutdown = CancellationToken::new();
    let collector = Collector::start(&config, shutdown.clone()).await.unwrap();
    let base = format!("http://{}", collector.sampling_http_addr.unwrap());

    assert_eq!(
        http_json(&base, "/sampling?service=checkout").await,
        json!({
            "strategyType": "PROBABILISTIC",
            "probabilisticSampling": {"samplingRate": 0.5},
            "operationSampling": {
                "defaultSamplingProbability": 0.5,
                "defaultLowerBoundTracesPerSecond": 0.0,
                "perOperationStrategies": [
                    {"operation": "GET /health", "probabilisticSampling": {"samplingRate": 0.0}}
                ],
                "defaultUpperBoundTracesPerSecond": 0.0
            }
        })
    );
    assert_eq!(
        http_json(&base, "/api/sampling?service=search").await,
        json!({"strategyType": "RATE_LIMITING", "rateLimitingSampling": {"maxTracesPerSecond": 25}})
    );
    assert_eq!(
        http_json(&base, "/sampling?service=someone-else").await,
        json!({"strategyType": "PROBABILISTIC", "probabilisticSampling": {"samplingRate": 0.1}})
    );
    assert_eq!(http(&base, "/sampling").await.0, 400);
    assert_eq!(http(&base, "/sampling?service=a&service=b").await.0, 400);

    let mut grpc =
        SamplingManagerClient::connect(format!("http://{}", collector.jaeger_grpc_addr.unwrap()))
            .await
            .unwrap();
    let mut ask = async |service: &str| {
        grpc.get_sampling_strategy(jaeger::SamplingStrategyParameters {
            service_name: service.into(),
        })
        .await
        .unwrap()
        .into_inner()
    };
    let search = ask("search").await;
    assert_eq!(
        search.strategy_type,
        jaeger::SamplingStrategyType::RateLimiting as i32
    );
    assert_eq!(
        search.rate_limiting_sampling.unwrap().max_traces_per_second,
        25
    );

    // A change is picked up by both endpoints.
    write(&path, &strategies(0.75));
    let deadline = Instant::now() + Duration::from_secs(10);
    while checkout_rate(&base).await != 0.75 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(checkout_rate(&base).await, 0.75);
    let checkout = ask("checkout").await;
    assert_eq!(checkout.probabilistic_sampling.unwrap().sampling_rate, 0.75);
    let operations = checkout
        .operation_sampling
        .unwrap()
        .per_operation_strategies;
    assert_eq!(operations[0].operation, "GET /health");

    // An invalid change is refused and counted; the last good strategies stay.
    write(&path, &strategies(1.5));
    let failures = "collector_sampling_reload_failures_total";
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(collector.ops_addr, failures).await < 1.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(metric(collector.ops_addr, failures).await, 1.0);
    assert_eq!(checkout_rate(&base).await, 0.75);
    assert_eq!(
        ask("checkout")
            .await
            .probabilistic_sampling
            .unwrap()
            .sampling_rate,
        0.75
    );
    assert_eq!(
        metric(collector.ops_addr, "collector_sampling_reloads_total").await,
        1.0
    );
    assert!(
        metric(
            collector.ops_addr,
            "collector_sampling_requests_total{endpoint=\"grpc\"}"
        )
        .await
            >= 3.0
    );

    shutdown.cancel();
    collector.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_file_stops_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("strategies.json");
    write(&path, &strategies(-1.0));
    let mut config = config("it-sampling-unused");
    config.sampling.strategies_file = Some(path);
    let error = Collector::start(&config, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(error, StartError::Sampling(_)), "{error:?}");
    assert!(
        error
            .to_string()
            .ends_with("service_strategies[0].param: -1 is not a probability in [0, 1]"),
        "{error}"
    );
}
