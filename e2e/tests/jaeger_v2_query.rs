//! Jaeger v2's query (the `jaeger_query` extension of `cmd/jaeger`, built by
//! `dev/jaeger build v2`) over the indices our ingester writes, on OpenSearch and on
//! Elasticsearch 7.17: it lists the services, finds the failed requests by the `error` tag, and
//! its Monitor tab (`/api/metrics/calls|errors|latencies`, computed from the span indices with
//! filters on the fields `tag.span@kind` and `tag.error`) shows the request rate, error rate and
//! latency a known topology implies.
//!
//! The topology: 120 traces within one minute, each a `checkout` SERVER span of 250 ms (every
//! fourth one failed, 30 in all) whose CLIENT child of 40 ms calls a `payments` SERVER span of
//! 30 ms. With one-minute steps and a two-minute rate window, the minute that holds the spans has
//! a rate of 120 / 120 s = 1 call/s for each of the three (service, kind) pairs, and every other
//! minute has no value.

// A failed step is a failed test: panicking on it is the point.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message as _;
use serde_json::Value;
use spanway_e2e::jaeger_v2::{
    JaegerV2, engine_query_config, engine_query_config_for, free_ports, jaeger_v2_bin,
};
use spanway_e2e::otlp::{int_kv, resource_spans};
use spanway_e2e::{Engine, wait_for_count};
use spanway_ingester::config::{DateSeparator, SpanIndexPeriod};
use spanway_schemas::proto::otlp;

mod common;

const TRACES: u64 = 120;
/// Every `FAIL_EVERY`th checkout request fails.
const FAIL_EVERY: u64 = 4;
const CHECKOUT_MS: u64 = 250;
const CHARGE_CLIENT_MS: u64 = 40;
const PAYMENTS_MS: u64 = 30;
const STEP_MS: u64 = 60_000;
const RATE_PER_MS: u64 = 120_000;

/// The topology, every trace starting within the minute that begins at `minute_ms`.
fn topology(minute_ms: u64, run: u64) -> otlp::ExportTraceServiceRequest {
    use otlp::span::SpanKind::{Client, Server};
    let (mut checkout, mut payments) = (Vec::new(), Vec::new());
    for i in 0..TRACES {
        let trace_id = [run.to_be_bytes(), i.to_be_bytes()].concat();
        let id = |n: u64| (i * 4 + n + 1).to_be_bytes().to_vec();
        let start_ns = (minute_ms + 5_000 + i * 200) * 1_000_000;
        let span =
            |span_id: u64, parent: Option<u64>, name: &str, kind, ms: u64, offset_ms: u64| {
                let start = start_ns + offset_ms * 1_000_000;
                otlp::Span {
                    trace_id: trace_id.clone(),
                    span_id: id(span_id),
                    parent_span_id: parent.map(id).unwrap_or_default(),
                    name: name.into(),
                    kind: kind as i32,
                    start_time_unix_nano: start,
                    end_time_unix_nano: start + ms * 1_000_000,
                    ..Default::default()
                }
            };
        let mut request = span(0, None, "POST /checkout", Server, CHECKOUT_MS, 0);
        let failed = i % FAIL_EVERY == 0;
        if failed {
            request.status = Some(otlp::Status {
                code: otlp::status::StatusCode::Error as i32,
                message: "card declined".into(),
            });
        }
        request.attributes.push(int_kv(
            "http.response.status_code",
            if failed { 402 } else { 200 },
        ));
        checkout.push(request);
        checkout.push(span(1, Some(0), "charge", Client, CHARGE_CLIENT_MS, 100));
        payments.push(span(2, Some(1), "POST /charge", Server, PAYMENTS_MS, 105));
    }
    otlp::ExportTraceServiceRequest {
        resource_spans: vec![
            resource_spans("checkout", checkout),
            resource_spans("payments", payments),
        ],
    }
}

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Jaeger v2's query on an HTTP port.
struct Query {
    base: String,
    client: reqwest::Client,
}

impl Query {
    async fn get(&self, path: &str, params: &[(&str, String)]) -> Value {
        let response = self
            .client
            .get(format!("{}/api{path}", self.base))
            .query(params)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert!(
            status.is_success(),
            "GET {path} {params:?}: {status} {body}"
        );
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    /// The values of the one series a Monitor tab query for `service` returns that are
    /// numbers (minutes with no spans have none), with the series' labels.
    async fn monitor(
        &self,
        metric: &str,
        service: &str,
        extra: &[(&str, &str)],
        end_ms: u64,
    ) -> Vec<(Vec<(String, String)>, Vec<f64>)> {
        let mut params = vec![
            ("service", service.to_owned()),
            ("endTs", end_ms.to_string()),
            ("lookback", (15 * STEP_MS).to_string()),
            ("step", STEP_MS.to_string()),
            ("ratePer", RATE_PER_MS.to_string()),
        ];
        params.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let family = self.get(&format!("/metrics/{metric}"), &params).await;
        family["metrics"]
            .as_array()
            .unwrap_or_else(|| panic!("{metric} {service}: no metrics in {family}"))
            .iter()
            .map(|series| {
                let labels = series["labels"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| {
                        (
                            l["name"].as_str().unwrap().to_owned(),
                            l["value"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect();
                let values = series["metricPoints"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|p| p["gaugeValue"]["doubleValue"].as_f64())
                    .collect();
                (labels, values)
            })
            .collect()
    }

    /// [`Query::monitor`] for a query that returns one series: its numeric values.
    async fn values(
        &self,
        metric: &str,
        service: &str,
        extra: &[(&str, &str)],
        end_ms: u64,
    ) -> Vec<f64> {
        let mut series = self.monitor(metric, service, extra, end_ms).await;
        assert_eq!(series.len(), 1, "{metric} {service} {extra:?}: {series:?}");
        let (labels, values) = series.remove(0);
        assert_eq!(
            labels,
            [("service_name".to_owned(), service.to_owned())],
            "{metric} {service}"
        );
        values
    }
}

spanway_e2e::per_engine!(
    monitor_tab_reads:
    jaeger_v2_query_and_monitor_tab_read_opensearch => OpenSearch,
    jaeger_v2_query_and_monitor_tab_read_elasticsearch => Elasticsearch7,
    jaeger_v2_query_and_monitor_tab_read_elasticsearch_8 => Elasticsearch8,
);

/// Sends `requests` (each a minute of the topology: its start and its run number) through the
/// pipeline's OTLP/HTTP endpoint and waits until the engine holds all their spans.
async fn send_and_store(pipeline: &common::Pipeline, engine: &str, requests: &[(u64, u64)]) {
    for (n, &(minute_ms, run)) in requests.iter().enumerate() {
        let status = pipeline
            .post_otlp(topology(minute_ms, run).encode_to_vec())
            .await;
        assert_eq!(status, 200, "collector accepted request {n}");
    }
    let span_pattern = format!("{}-jaeger-span-*", pipeline.prefix);
    let want = 3 * TRACES * requests.len() as u64;
    let stored = wait_for_count(engine, &span_pattern, want, Duration::from_secs(120)).await;
    assert_eq!(stored, want, "span documents in {span_pattern}");
}

async fn monitor_tab_reads(kind: Engine) {
    jaeger_v2_bin();
    let engine = &kind.require().await;
    let backend = kind.jaeger_kind();
    let pipeline = common::Pipeline::start("e2e-mon", engine).await;
    let prefix = pipeline.prefix.clone();

    // Three minutes back, so the minute is whole and inside the default lookbacks.
    let minute_ms = (now_ms() / STEP_MS - 3) * STEP_MS;
    let run = now_ms();
    send_and_store(&pipeline, engine, &[(minute_ms, run)]).await;
    // Services and operations are read from the service index: three pairs.
    let service_pattern = format!("{prefix}-jaeger-service-*");
    let pairs = wait_for_count(engine, &service_pattern, 3, Duration::from_secs(60)).await;
    assert_eq!(pairs, 3, "service documents in {service_pattern}");

    let [http_port, grpc_port] = free_ports::<2>();
    let mut jaeger = JaegerV2::start(&engine_query_config(
        backend, engine, &prefix, http_port, grpc_port,
    ));
    jaeger.wait_ready().await;
    let query = Query {
        base: format!("http://127.0.0.1:{http_port}"),
        client: reqwest::Client::new(),
    };

    let services = query.get("/services", &[]).await;
    let names: BTreeSet<&str> = services["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["checkout", "payments"]),
        "{services}"
    );

    // The failed requests, found by the tag Jaeger v2 also stores as a field.
    let failed = query
        .get(
            "/traces",
            &[
                ("service", "checkout".to_owned()),
                ("tags", r#"{"error":"true"}"#.to_owned()),
                ("start", ((minute_ms - STEP_MS) * 1_000).to_string()),
                ("end", (now_ms() * 1_000).to_string()),
                ("limit", "1000".to_owned()),
            ],
        )
        .await;
    let failed = failed["data"].as_array().unwrap();
    assert_eq!(
        failed.len() as u64,
        TRACES / FAIL_EVERY,
        "traces with error=true"
    );
    for trace in failed {
        let spans = trace["spans"].as_array().unwrap();
        assert_eq!(spans.len(), 3, "whole trace: {trace}");
        let request = spans
            .iter()
            .find(|s| s["operationName"] == "POST /checkout")
            .unwrap();
        let tags: BTreeSet<(String, String)> = request["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["key"].as_str().unwrap().to_owned(),
                    t["value"].to_string(),
                )
            })
            .collect();
        assert!(
            tags.contains(&("error".to_owned(), "true".to_owned()))
                && tags.contains(&("span.kind".to_owned(), "\"server\"".to_owned())),
            "error and span.kind read back as tags: {tags:?}"
        );
    }

    // And by the HTTP status code, a tag field with a numeric sub-field: Jaeger's regexp
    // search needs the field itself to stay a keyword.
    let declined = query
        .get(
            "/traces",
            &[
                ("service", "checkout".to_owned()),
                ("tags", r#"{"http.response.status_code":"402"}"#.to_owned()),
                ("start", ((minute_ms - STEP_MS) * 1_000).to_string()),
                ("end", (now_ms() * 1_000).to_string()),
                ("limit", "1000".to_owned()),
            ],
        )
        .await;
    assert_eq!(
        declined["data"].as_array().unwrap().len() as u64,
        TRACES / FAIL_EVERY,
        "traces with http.response.status_code=402"
    );

    let end_ms = now_ms();
    // Request rate: 120 spans in one minute over a two-minute rate window.
    for (service, kind) in [
        ("checkout", "server"),
        ("checkout", "client"),
        ("payments", "server"),
    ] {
        let calls = query
            .values("calls", service, &[("spanKind", kind)], end_ms)
            .await;
        assert_eq!(calls, [1.0], "{service} {kind} calls/s");
    }
    let no_client_spans = query
        .values("calls", "payments", &[("spanKind", "client")], end_ms)
        .await;
    assert!(no_client_spans.is_empty(), "{no_client_spans:?}");

    // Error rate: a quarter of checkout's requests, none of payments'.
    let errors = query.values("errors", "checkout", &[], end_ms).await;
    assert_eq!(errors, [0.25], "checkout error rate");
    let errors = query.values("errors", "payments", &[], end_ms).await;
    assert_eq!(errors, [0.0], "payments error rate");

    // Latency: every span of a (service, kind) lasts as long, so each quantile is it.
    for (service, kind, ms) in [
        ("checkout", "server", CHECKOUT_MS),
        ("checkout", "client", CHARGE_CLIENT_MS),
        ("payments", "server", PAYMENTS_MS),
    ] {
        let latencies = query
            .values(
                "latencies",
                service,
                &[("spanKind", kind), ("quantile", "0.95")],
                end_ms,
            )
            .await;
        assert_eq!(latencies, [ms as f64], "{service} {kind} p95 (ms)");
    }

    // Per operation, as the Monitor tab's operations table asks.
    let by_operation = query
        .monitor("calls", "checkout", &[("groupByOperation", "true")], end_ms)
        .await;
    assert_eq!(
        by_operation,
        [(
            vec![
                ("service_name".to_owned(), "checkout".to_owned()),
                ("operation".to_owned(), "POST /checkout".to_owned()),
            ],
            vec![1.0]
        )],
        "checkout calls by operation"
    );

    jaeger.assert_running();
    drop(jaeger);
    pipeline.stop_and_remove(engine).await;
}

const HOUR_MS: u64 = 3_600_000;

/// The engine's `_cat/indices` rows for `pattern`, with the columns `h` names.
async fn cat_indices(engine: &str, pattern: &str, h: &str) -> Vec<Value> {
    let rows: Value = reqwest::get(format!("{engine}/_cat/indices/{pattern}?format=json&h={h}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    rows.as_array().unwrap().clone()
}

/// Checkout's traces between `start_ms` and now, as Jaeger v2 configured by `config` (with
/// its HTTP endpoint on `http_port`) finds them: their ids.
async fn checkout_traces(config: &str, http_port: u16, start_ms: u64) -> BTreeSet<String> {
    found_by(config, http_port, start_ms, false).await.1
}

/// Jaeger v2 with its default index names (daily, dashed) finds none of checkout's traces
/// since `start_ms` under `prefix`: the indices the test wrote are named otherwise, so a
/// deployment that chose their naming must tell Jaeger v2 too.
async fn default_layout_finds_nothing(engine: &str, prefix: &str, start_ms: u64) {
    let [http_port, grpc_port] = free_ports::<2>();
    let default = engine_query_config("opensearch", engine, prefix, http_port, grpc_port);
    let found = checkout_traces(&default, http_port, start_ms).await;
    assert!(
        found.is_empty(),
        "the default layout names none of these indices, yet found {found:?}"
    );
}

/// What Jaeger v2 configured by `config` finds: the services it lists (when `services`,
/// else none) and checkout's traces between `start_ms` and now.
async fn found_by(
    config: &str,
    http_port: u16,
    start_ms: u64,
    services: bool,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut jaeger = JaegerV2::start(config);
    jaeger.wait_ready().await;
    let query = Query {
        base: format!("http://127.0.0.1:{http_port}"),
        client: reqwest::Client::new(),
    };
    let listed = if services {
        let listed = query.get("/services", &[]).await;
        listed["data"]
            .as_array()
            .map(|names| {
                names
                    .iter()
                    .map(|name| name.as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    } else {
        BTreeSet::new()
    };
    let params = [
        ("service", "checkout".to_owned()),
        ("start", (start_ms * 1_000).to_string()),
        ("end", (now_ms() * 1_000).to_string()),
        ("limit", "1000".to_owned()),
    ];
    let found = query.get("/traces", &params).await;
    jaeger.assert_running();
    let traces = found["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data: {found}"))
        .iter()
        .map(|trace| {
            assert_eq!(trace["spans"].as_array().unwrap().len(), 3, "whole trace");
            trace["traceID"].as_str().unwrap().to_owned()
        })
        .collect();
    (listed, traces)
}

/// Hourly span indices (`index_rollover_frequency_spans = "hour"`): spans of two hours land in
/// two indices named as Jaeger names them, and Jaeger v2 told the same finds every trace of
/// both hours in one search; with its daily default it finds none, which is why the setting's
/// documentation names the flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jaeger_v2_query_reads_hourly_span_indices() {
    jaeger_v2_bin();
    let engine = &Engine::OpenSearch.require().await;
    let pipeline = common::Pipeline::start_with("e2e-hourly", engine, |config| {
        config.elasticsearch.index_rollover_frequency_spans = SpanIndexPeriod::Hour;
    })
    .await;
    let prefix = pipeline.prefix.clone();

    // Two whole hours back and one: both hours are over, and inside every lookback.
    let first_hour_ms = (now_ms() / HOUR_MS - 2) * HOUR_MS;
    let run = now_ms();
    send_and_store(
        &pipeline,
        engine,
        &[
            (first_hour_ms + 5 * STEP_MS, run),
            (first_hour_ms + HOUR_MS + 5 * STEP_MS, run + 1),
        ],
    )
    .await;
    let span_pattern = format!("{prefix}-jaeger-span-*");

    let hour_name = |ms: u64| {
        let t = time::OffsetDateTime::from_unix_timestamp((ms / 1_000) as i64).unwrap();
        format!(
            "{prefix}-jaeger-span-{:04}-{:02}-{:02}-{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour()
        )
    };
    let indices: BTreeSet<(String, String)> =
        cat_indices(engine, &span_pattern, "index,docs.count")
            .await
            .iter()
            .map(|i| {
                (
                    i["index"].as_str().unwrap().to_owned(),
                    i["docs.count"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
    let per_hour = (3 * TRACES).to_string();
    assert_eq!(
        indices,
        BTreeSet::from([
            (hour_name(first_hour_ms), per_hour.clone()),
            (hour_name(first_hour_ms + HOUR_MS), per_hour),
        ]),
        "one span index per hour"
    );

    let [http_port, grpc_port] = free_ports::<2>();
    let hourly = engine_query_config_for(
        "opensearch",
        engine,
        &prefix,
        http_port,
        grpc_port,
        &[("spans", "2006-01-02-15", "hour")],
    );
    let found = checkout_traces(&hourly, http_port, first_hour_ms).await;
    assert_eq!(
        found.len() as u64,
        2 * TRACES,
        "traces of both hours: {found:?}"
    );

    default_layout_finds_nothing(engine, &prefix, first_hour_ms).await;

    pipeline.stop_and_remove(engine).await;
}

/// An index date separator (`index_date_separator = "."`, Jaeger's
/// `--es.index-date-separator`): span and service indices are named `…-YYYY.MM.DD`, and
/// Jaeger v2 given the matching `date_layout` lists the services and finds every trace; with its
/// default layout it finds no trace, which is why a deployment that chose a separator needs the
/// setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jaeger_v2_query_reads_indices_with_a_date_separator() {
    jaeger_v2_bin();
    let engine = &Engine::OpenSearch.require().await;
    let pipeline = common::Pipeline::start_with("e2e-datesep", engine, |config| {
        config.elasticsearch.index_date_separator = DateSeparator::new(".").unwrap();
    })
    .await;
    let prefix = pipeline.prefix.clone();

    // The last whole minute: every span of it starts on one UTC day.
    let minute_ms = (now_ms() / STEP_MS - 1) * STEP_MS;
    send_and_store(&pipeline, engine, &[(minute_ms, now_ms())]).await;

    let day = {
        let t = time::OffsetDateTime::from_unix_timestamp((minute_ms / 1_000) as i64).unwrap();
        format!("{:04}.{:02}.{:02}", t.year(), u8::from(t.month()), t.day())
    };
    // Service documents are written beside the spans; wait for them before listing.
    let service_pattern = format!("{prefix}-jaeger-service-*");
    wait_for_count(engine, &service_pattern, 1, Duration::from_secs(60)).await;
    let names: BTreeSet<String> = cat_indices(engine, &format!("{prefix}-jaeger-*"), "index")
        .await
        .iter()
        .map(|i| i["index"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            format!("{prefix}-jaeger-span-{day}"),
            format!("{prefix}-jaeger-service-{day}"),
        ]),
        "dotted day names"
    );

    let [http_port, grpc_port] = free_ports::<2>();
    let dotted = engine_query_config_for(
        "opensearch",
        engine,
        &prefix,
        http_port,
        grpc_port,
        &[
            ("spans", "2006.01.02", "day"),
            ("services", "2006.01.02", "day"),
        ],
    );
    let (services, traces) = found_by(&dotted, http_port, minute_ms, true).await;
    assert_eq!(
        services,
        BTreeSet::from(["checkout".to_owned(), "payments".to_owned()])
    );
    assert_eq!(traces.len() as u64, TRACES, "every trace: {traces:?}");

    default_layout_finds_nothing(engine, &prefix, minute_ms).await;

    pipeline.stop_and_remove(engine).await;
}
