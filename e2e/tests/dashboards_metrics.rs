//! The Grafana dashboard (`helm/spanway/files/grafana-dashboard.json`) and the alert rules
//! (`helm/spanway/files/prometheus-rules.yaml`) name only metrics the real processes export,
//! with the labels they group by. The collector, ingester and streaming analytics run on the
//! real broker and OpenSearch and see traffic that makes every family appear (a good request,
//! a request with one invalid span, a malformed request); then each expression's metric names
//! must be on one of the three `/metrics` pages, and each `by (…)` label on a series of a metric
//! of that expression.

// A failed step is a failed test: panicking on it is the point.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use prost::Message as _;
use serde_json::Value;
use spanway_e2e::otlp::resource_spans;
use spanway_e2e::{Engine, wait_for_count};
use spanway_schemas::Encoding;
use spanway_schemas::proto::otlp;
use spanway_streaming_analytics::Analytics;

mod common;

/// Our metric names start with the process they come from.
const PREFIXES: [&str; 3] = ["collector_", "ingester_", "analytics_"];

fn chart_file(name: &str) -> String {
    let path = spanway_e2e::secure::repo_root()
        .join("helm/spanway/files")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every PromQL expression of the dashboard's panels.
fn dashboard_expressions() -> Vec<(String, String)> {
    let dashboard: Value = serde_json::from_str(&chart_file("grafana-dashboard.json")).unwrap();
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap();
            out.push((
                format!("panel {title:?}"),
                target["expr"].as_str().unwrap().to_owned(),
            ));
        }
    }
    out
}

/// Every alert's expression.
fn rule_expressions() -> Vec<(String, String)> {
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&chart_file("prometheus-rules.yaml")).unwrap();
    let mut out = Vec::new();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let alert = rule["alert"].as_str().unwrap();
            out.push((
                format!("alert {alert}"),
                rule["expr"].as_str().unwrap().to_owned(),
            ));
        }
    }
    out
}

/// The metric names of an expression, and the labels it groups by.
fn names_and_groupings(expr: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut tokens = Vec::new();
    let mut current = String::new();
    for c in expr.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            current.push(c);
        } else {
            if !current.is_empty() {
                tokens.push(std::mem::take(&mut current));
            }
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    let mut names = BTreeSet::new();
    let mut labels = BTreeSet::new();
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        if PREFIXES.iter().any(|p| token.starts_with(p)) {
            names.insert(token.clone());
        }
        if (token == "by" || token == "without") && tokens.get(i + 1).is_some_and(|t| t == "(") {
            i += 2;
            while i < tokens.len() && tokens[i] != ")" {
                if tokens[i] != "," {
                    labels.insert(tokens[i].clone());
                }
                i += 1;
            }
        }
        i += 1;
    }
    (names, labels)
}

/// Sample names on a `/metrics` page, each with the label names its series carry.
fn exposition(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = out.entry(line[..name_end].to_owned()).or_default();
        if line[name_end..].starts_with('{')
            && let Some(close) = line.find('}')
        {
            for pair in line[name_end + 1..close].split(',') {
                if let Some((name, _)) = pair.split_once('=') {
                    labels.insert(name.to_owned());
                }
            }
        }
    }
    out
}

async fn scrape(addrs: &[SocketAddr]) -> BTreeMap<String, BTreeSet<String>> {
    let mut all = BTreeMap::new();
    for addr in addrs {
        let text = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        all.extend(exposition(&text));
    }
    all
}

/// What an expression names that the pages lack.
fn missing(
    expressions: &[(String, String)],
    exported: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (what, expr) in expressions {
        let (names, groupings) = names_and_groupings(expr);
        assert!(
            !names.is_empty(),
            "{what} names none of our metrics: {expr}"
        );
        for name in &names {
            if !exported.contains_key(name) {
                out.push(format!("{what}: metric {name}"));
            }
        }
        for label in groupings.iter().filter(|l| *l != "le") {
            let carried = names
                .iter()
                .filter_map(|n| exported.get(n))
                .any(|labels| labels.contains(label));
            if !carried {
                out.push(format!("{what}: label {label} on none of {names:?}"));
            }
        }
    }
    out
}

/// A frontend request calling cart, and (when `bad_span`) a span with an all-zero trace id
/// beside it, which the collector leaves out and counts as refused.
fn request(run: u64, bad_span: bool) -> otlp::ExportTraceServiceRequest {
    use otlp::span::SpanKind::{Client, Server};
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        - 10_000_000_000;
    let trace_id = [run.to_be_bytes(), 7u64.to_be_bytes()].concat();
    let span = |id: u64, parent: Option<u64>, name: &str, kind: otlp::span::SpanKind| otlp::Span {
        trace_id: trace_id.clone(),
        span_id: id.to_be_bytes().to_vec(),
        parent_span_id: parent.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: start + id * 1_000_000,
        end_time_unix_nano: start + 50_000_000,
        ..Default::default()
    };
    let mut frontend = vec![
        span(1, None, "GET /", Server),
        span(2, Some(1), "call cart", Client),
    ];
    if bad_span {
        let mut bad = span(9, None, "bad", Server);
        bad.trace_id = vec![0; 16];
        frontend.push(bad);
    }
    otlp::ExportTraceServiceRequest {
        resource_spans: vec![
            resource_spans("frontend", frontend),
            resource_spans("cart", vec![span(3, Some(2), "GET /cart", Server)]),
        ],
    }
}

#[test]
fn expressions_are_read_from_both_files() {
    let dashboard = dashboard_expressions();
    let rules = rule_expressions();
    assert!(dashboard.len() > 20 && rules.len() > 5);
    let (names, labels) = names_and_groupings(
        "histogram_quantile(0.99, sum by (le) (rate(collector_kafka_produce_latency_seconds_bucket[5m]))) \
         / time() - min by (topic, partition) (analytics_clock_seconds{topic=\"t\"})",
    );
    assert_eq!(
        names,
        BTreeSet::from([
            "analytics_clock_seconds".to_owned(),
            "collector_kafka_produce_latency_seconds_bucket".to_owned()
        ])
    );
    assert_eq!(
        labels,
        BTreeSet::from(["le".to_owned(), "topic".to_owned(), "partition".to_owned()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_alerts_use_is_exported() {
    let url = Engine::OpenSearch.require().await;
    let pipeline = common::Pipeline::start("e2e-dash", &url).await;
    let prefix = pipeline.prefix.clone();
    let analytics = Analytics::start(
        &common::analytics(&pipeline.topic, &prefix, Encoding::OtlpProto),
        pipeline.shutdown.clone(),
    )
    .await
    .unwrap();

    let http = reqwest::Client::new();
    let endpoint = pipeline.otlp_http_traces();
    let run = u64::from(std::process::id());
    for (body, expected) in [
        (request(run, false).encode_to_vec(), 200),
        (request(run + 1, true).encode_to_vec(), 200),
        (b"not protobuf".to_vec(), 400),
    ] {
        let response = http
            .post(&endpoint)
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected);
    }
    let stored = wait_for_count(
        &url,
        &format!("{prefix}-jaeger-span-*"),
        6,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(stored, 6, "both good traces stored");

    let addrs = [
        pipeline.collector.ops_addr,
        pipeline.ingester.ops_addr,
        analytics.ops_addr,
    ];
    let expressions: Vec<(String, String)> = dashboard_expressions()
        .into_iter()
        .chain(rule_expressions())
        .collect();
    // Lag gauges appear with the consumers' statistics, a few seconds after the first read.
    let mut gaps = Vec::new();
    for _ in 0..60 {
        gaps = missing(&expressions, &scrape(&addrs).await);
        if gaps.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        gaps.is_empty(),
        "named by the dashboard or the alerts but not exported:\n{}",
        gaps.join("\n")
    );

    pipeline.stop().await;
    analytics
        .wait()
        .await
        .expect("streaming analytics stops cleanly");
    spanway_e2e::delete_prefixed(&url, &prefix).await;
}
