//! The streaming-analytics job as a whole process: spans per second read
//! from Kafka through decoding, pairing and aggregation, its CPU per span
//! and peak memory, on a topic filled beforehand with known-topology
//! traffic. The run counts only if the documents it wrote sum to the
//! expected calls.
//!
//! The peer, when asked for, is the OpenTelemetry Collector's servicegraph
//! connector behind its Kafka receiver (`dev/servicegraph-peer`), the way
//! Collector and Tempo users compute service dependencies: it reads the
//! same topic with a fresh group after each of our runs, and its edges'
//! call counts are read back from its Prometheus exporter.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};
use spanway_e2e::topology;
use spanway_search::index::{Family, Prefix};

use crate::measure;
use crate::peers;
use crate::workload;

mod servicegraph;

/// What to run.
#[derive(Debug, Clone)]
pub struct AnalyticsOptions {
    /// Traces in the topic (22 spans each).
    pub traces: usize,
    /// Partitions of the topic.
    pub partitions: i32,
    /// Runs over the same topic, each with a fresh group.
    pub runs: usize,
    /// Kafka bootstrap address.
    pub kafka: String,
    /// OpenSearch base URL.
    pub opensearch: String,
    /// The release binary.
    pub bin: PathBuf,
    /// Instances of the job sharing the consumer group in each run.
    pub instances: usize,
    /// Extra environment for the job, applied last.
    pub job_env: Vec<(String, String)>,
    /// String attributes added to every span, with an int status code,
    /// when not zero (`topology::with_attributes`).
    pub span_attributes: usize,
    /// How the topic is written.
    pub topic: workload::TopicShape,
    /// The servicegraph peer's executable, run after each of our runs.
    pub servicegraph: Option<PathBuf>,
    /// Where the peer's configuration and log go.
    pub log_dir: PathBuf,
    /// `dev/services`' state, where Kafka's and OpenSearch's pid files are:
    /// their CPU is part of a run, not "others".
    pub services_dir: PathBuf,
}

/// The OpenTelemetry Collector's servicegraph connector.
pub const SERVICEGRAPH: &str = "otelcol servicegraph";

/// One run's figures.
#[derive(Debug, Clone)]
pub struct AnalyticsRun {
    /// [`peers::OURS`] or [`SERVICEGRAPH`].
    pub system: &'static str,
    /// Spans read.
    pub spans: u64,
    /// From the first span read to the last.
    pub elapsed: Duration,
    /// The job's CPU time over the same interval.
    pub cpu: Duration,
    /// Of it, librdkafka's threads (fetching, decompressing, parsing the
    /// fetch responses): the part the job's own code does not decide, and
    /// the noisier one (see docs/benchmarks.md on page zeroing). Not known
    /// for the peer, whose Go threads carry no names.
    pub kafka_cpu: Option<Duration>,
    /// Peak resident memory of the job, KiB.
    pub peak_rss_kib: u64,
    /// Calls in the written documents (checked against the traffic), or
    /// in the peer's edge counters (reported, not checked: its rules for
    /// which spans make an edge are its own).
    pub calls: u64,
    /// Failed calls, from the job's edge counters or the peer's.
    pub failed: Option<u64>,
    /// CPU other processes than the job, Kafka, OpenSearch and the
    /// benchmark used over the run ([`measure::disturbed`]).
    pub others_cpu: Option<Duration>,
}

impl AnalyticsRun {
    /// Spans per second.
    pub fn rate(&self) -> f64 {
        self.spans as f64 / self.elapsed.as_secs_f64()
    }

    /// Whether other processes took a noticeable share of the machine.
    pub fn disturbed(&self) -> bool {
        measure::disturbed(self.others_cpu, self.elapsed)
    }

    /// CPU µs per span.
    pub fn cpu_per_span_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.spans as f64
    }

    /// librdkafka's threads' CPU µs per span.
    pub fn kafka_cpu_per_span_us(&self) -> Option<f64> {
        self.kafka_cpu
            .map(|cpu| cpu.as_secs_f64() * 1e6 / self.spans as f64)
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn spawn(options: &AnalyticsOptions, topic: &str, run: &str, port: u16) -> anyhow::Result<Child> {
    Command::new(&options.bin)
        .env("SPANWAY_KAFKA__BROKERS", &options.kafka)
        .env("SPANWAY_KAFKA__TOPICS", topic)
        .env("SPANWAY_KAFKA__GROUP_ID", format!("{run}-group"))
        .env("SPANWAY_ELASTICSEARCH__URL", &options.opensearch)
        .env("SPANWAY_ELASTICSEARCH__INDEX_PREFIX", run)
        .env(
            "SPANWAY_ELASTICSEARCH__SERVICE_GRAPH_INDEX",
            format!("{run}-graph"),
        )
        .env("SPANWAY_ELASTICSEARCH__REPLICAS", "0")
        .env("SPANWAY_WINDOWS__IDLE_FLUSH", "3s")
        .env("SPANWAY_OPS__LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .envs(options.job_env.iter().cloned())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {}", options.bin.display()))
}

/// The Prometheus text a process serves on `port`, if it answers.
async fn metrics_text(client: &reqwest::Client, port: u16) -> Option<String> {
    client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()
}

async fn spans_read(client: &reqwest::Client, port: u16) -> Option<u64> {
    let text = metrics_text(client, port).await?;
    text.lines()
        .find_map(|l| l.strip_prefix("analytics_spans_read_total "))
        .and_then(|v| v.trim().parse().ok())
}

fn committed_all(kafka: &str, group: &str, topic: &str, partitions: i32) -> anyhow::Result<bool> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .set("group.id", group)
        .create()?;
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(10))?;
    for p in 0..partitions {
        let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        let done = committed
            .find_partition(topic, p)
            .map(|e| e.offset())
            .is_some_and(|o| o == Offset::Offset(high));
        if !done {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn written_calls(client: &reqwest::Client, url: &str, run: &str) -> anyhow::Result<u64> {
    let pattern = Prefix::new(run).pattern(Family::Dependencies);
    client
        .post(format!("{url}/{pattern}/_refresh"))
        .send()
        .await?;
    let body: Value = client
        .post(format!("{url}/{pattern}/_search"))
        .json(&json!({"size": 10000}))
        .send()
        .await?
        .json()
        .await?;
    let mut calls = 0;
    for hit in body["hits"]["hits"].as_array().into_iter().flatten() {
        for link in hit["_source"]["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
        {
            calls += link["callCount"].as_u64().unwrap_or(0);
        }
    }
    Ok(calls)
}

/// Fills a topic once, then runs the job over it `runs` times.
pub async fn analytics_benchmark(options: &AnalyticsOptions) -> anyhow::Result<Vec<AnalyticsRun>> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let topic = format!("bench-analytics-{stamp}");
    workload::create_topic(&options.kafka, &topic, options.partitions).await?;
    // Spans 5 ms apart over the day of 2026-03-02, one-minute windows.
    let mut traffic = topology::generate(17, options.traces, 1_772_409_600_000, 5);
    if options.span_attributes > 0 {
        traffic.records = topology::with_attributes(&traffic.records, options.span_attributes)?;
    }
    eprintln!(
        "producing {} records ({} spans) to {topic}",
        traffic.records.len(),
        traffic.spans
    );
    workload::produce(
        &options.kafka,
        &topic,
        &traffic.records,
        true,
        &options.topic,
    )
    .await?;
    let expected: u64 = traffic.total_calls();
    let expected_failed: u64 = traffic.expected.errors.values().sum();
    let client = reqwest::Client::new();
    let mut results = Vec::new();
    for i in 0..options.runs {
        let run = format!("bench-analytics-{stamp}-{i}");
        // Each instance on its own ops port; spans read and CPU are summed
        // over them, peak memory is the largest of one.
        let mut children = Vec::new();
        for _ in 0..options.instances.max(1) {
            let port = free_port()?;
            children.push((spawn(options, &topic, &run, port)?, port));
        }
        // (whole process, librdkafka's threads)
        let cpu = |children: &[(Child, u16)]| -> anyhow::Result<(Duration, Duration)> {
            let mut total = (Duration::ZERO, Duration::ZERO);
            for (child, _) in children {
                total.0 += measure::process_cpu(child.id())?;
                total.1 += measure::threads_cpu_named(child.id(), "rdk:")?;
            }
            Ok(total)
        };
        let deadline = Instant::now() + Duration::from_secs(900);
        let mut first: Option<(Instant, (Duration, Duration), measure::Meter)> = None;
        let last = loop {
            if Instant::now() > deadline {
                for (child, _) in &mut children {
                    let _ = child.kill();
                }
                bail!("run {i}: not all spans read within 15 minutes");
            }
            let mut read = 0;
            for (child, port) in &mut children {
                if let Some(status) = child.try_wait()? {
                    bail!("run {i}: the job exited early ({status})");
                }
                read += spans_read(&client, *port).await.unwrap_or(0);
            }
            if read > 0 && first.is_none() {
                first = Some((
                    Instant::now(),
                    cpu(&children)?,
                    measure::Meter::start(&options.services_dir)?,
                ));
            }
            if read >= traffic.spans {
                break (Instant::now(), cpu(&children)?);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let Some((start, start_cpu, meter)) = first else {
            bail!("run {i}: no progress seen");
        };
        let costs = meter.finish(Some(last.1.0.saturating_sub(start_cpu.0)));
        // The run counts once everything is written and committed.
        while !committed_all(
            &options.kafka,
            &format!("{run}-group"),
            &topic,
            options.partitions,
        )? {
            if Instant::now() > deadline {
                for (child, _) in &mut children {
                    let _ = child.kill();
                }
                bail!("run {i}: windows not all written within 15 minutes");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut peak_rss_kib = 0;
        let mut failed = Some(0);
        for (child, port) in &children {
            peak_rss_kib = peak_rss_kib.max(measure::peak_rss_kib(child.id())?);
            let errors = metrics_text(&client, *port)
                .await
                .map(|text| sum_samples(&text, "analytics_edge_errors_total", "") as u64);
            failed = failed.zip(errors).map(|(a, b)| a + b);
        }
        for (child, _) in &mut children {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
        let calls = written_calls(&client, &options.opensearch, &run).await?;
        if calls != expected {
            bail!("run {i}: documents hold {calls} calls, the traffic made {expected}");
        }
        let result = AnalyticsRun {
            system: peers::OURS,
            spans: traffic.spans,
            elapsed: last.0.duration_since(start),
            cpu: last.1.0.saturating_sub(start_cpu.0),
            kafka_cpu: Some(last.1.1.saturating_sub(start_cpu.1)),
            peak_rss_kib,
            calls,
            failed,
            others_cpu: costs.others,
        };
        eprintln!(
            "run {i}: {:.0} spans/s, {:.2} µs CPU/span (librdkafka's threads {:.2}), peak {} MiB, {calls} calls written, {} failed (the traffic made {expected_failed})",
            result.rate(),
            result.cpu_per_span_us(),
            result.kafka_cpu_per_span_us().unwrap_or_default(),
            result.peak_rss_kib / 1024,
            shown(result.failed),
        );
        results.push(result);
        let _ = client
            .delete(format!("{}/{run}-*", options.opensearch))
            .send()
            .await;
        // The job installs its templates too; left behind, every run added
        // two to the node for good.
        let _ = client
            .delete(format!("{}/_template/{run}-*", options.opensearch))
            .send()
            .await;
        if let Some(bin) = &options.servicegraph {
            let peer = servicegraph::run(
                bin,
                &options.kafka,
                &topic,
                &format!("{run}-servicegraph"),
                traffic.spans,
                &options.log_dir,
                &options.services_dir,
            )
            .await
            .with_context(|| format!("run {i}: the servicegraph peer"))?;
            eprintln!(
                "run {i}, {SERVICEGRAPH}: {:.0} spans/s, {:.2} µs CPU/span, peak {} MiB, {} calls counted (the traffic made {expected}), {} failed ({expected_failed})",
                peer.rate(),
                peer.cpu_per_span_us(),
                peer.peak_rss_kib / 1024,
                peer.calls,
                shown(peer.failed),
            );
            results.push(peer);
        }
    }
    let _ = workload::delete_topics(&options.kafka, std::slice::from_ref(&topic)).await;
    Ok(results)
}

/// A count, or `—` when it could not be read.
fn shown(count: Option<u64>) -> String {
    count.map_or_else(|| "—".to_string(), |n| n.to_string())
}

/// The sum of every sample of the metric family `name` whose labels
/// contain `label` (all when empty), in Prometheus text format.
fn sum_samples(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            // The family itself, not a longer name sharing its prefix.
            if !(rest.starts_with('{') || rest.starts_with(' ')) || !rest.contains(label) {
                return None;
            }
            rest.rsplit(' ').next()?.parse::<f64>().ok()
        })
        .sum()
}

/// The results as a Markdown table.
pub fn markdown(results: &[AnalyticsRun]) -> String {
    let mut out = String::from(
        "| job | run | spans | spans/s | CPU µs/span | of it librdkafka's threads | peak RSS MiB | calls written | failed calls | others CPU s |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut runs: Vec<(&str, usize)> = Vec::new();
    for r in results {
        // Runs numbered per job: ours and the peer's alternate.
        let n = match runs.iter_mut().find(|(system, _)| *system == r.system) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                runs.push((r.system, 0));
                0
            }
        };
        let kafka = r
            .kafka_cpu_per_span_us()
            .map_or_else(|| "—".to_string(), |us| format!("{us:.2}"));
        out.push_str(&format!(
            "| {} | {n} | {} | {:.0} | {:.2} | {kafka} | {} | {} | {} | {}{} |\n",
            r.system,
            r.spans,
            r.rate(),
            r.cpu_per_span_us(),
            r.peak_rss_kib / 1024,
            r.calls,
            shown(r.failed),
            r.others_cpu
                .map_or_else(|| "—".to_string(), |d| format!("{:.2}", d.as_secs_f64())),
            if r.disturbed() { " DISTURBED" } else { "" },
        ));
    }
    let measured: Vec<peers::Measured> = results
        .iter()
        .map(|r| peers::Measured {
            system: r.system.to_string(),
            setting: "the topic".into(),
            cpu_us: Some(r.cpu_per_span_us()),
            rss_mib: Some(r.peak_rss_kib as f64 / 1024.0),
            engine_rate: None,
            disturbed: r.disturbed(),
        })
        .collect();
    let against = peers::table(&measured);
    if !against.is_empty() {
        out.push('\n');
        out.push_str(&against);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(system: &'static str, cpu_ms: u64, rss_mib: u64) -> AnalyticsRun {
        AnalyticsRun {
            system,
            spans: 1_000,
            elapsed: Duration::from_secs(1),
            cpu: Duration::from_millis(cpu_ms),
            kafka_cpu: (system == peers::OURS).then_some(Duration::from_micros(200)),
            peak_rss_kib: rss_mib * 1024,
            calls: 600,
            failed: (system == peers::OURS).then_some(40),
            others_cpu: Some(Duration::from_millis(100)),
        }
    }

    #[test]
    fn numbers_runs_per_job_and_sets_ours_beside_the_peer() {
        let mut disturbed = run(peers::OURS, 50, 999);
        disturbed.others_cpu = Some(Duration::from_secs(5));
        let table = markdown(&[
            run(peers::OURS, 1, 100),
            run(SERVICEGRAPH, 6, 250),
            run(peers::OURS, 1, 110),
            run(SERVICEGRAPH, 8, 260),
            disturbed,
        ]);
        let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| ")).collect();
        assert_eq!(
            rows[2],
            "| otelcol servicegraph | 0 | 1000 | 1000 | 6.00 | — | 250 | 600 | — | 0.10 |"
        );
        assert_eq!(
            rows[3],
            "| spanway | 1 | 1000 | 1000 | 1.00 | 0.20 | 110 | 600 | 40 | 0.10 |"
        );
        assert_eq!(
            rows[5],
            "| spanway | 2 | 1000 | 1000 | 50.00 | 0.20 | 999 | 600 | 40 | 5.00 DISTURBED |"
        );
        // The disturbed run is left out of ours over the peer.
        assert_eq!(
            rows.last().copied(),
            Some(
                "| the topic | otelcol servicegraph | 2 / 2 | 1.00 / 7.00 = 0.14 | 110 / 260 = 0.42 | — |"
            ),
            "{table}"
        );
    }

    #[test]
    fn sums_one_family_and_not_its_longer_namesakes() {
        let text = "# HELP traces_service_graph_request_total x\n\
            traces_service_graph_request_total{client=\"a\",server=\"b\"} 12\n\
            traces_service_graph_request_total{client=\"a\",server=\"c\"} 3.0\n\
            traces_service_graph_request_total_extra{client=\"a\"} 100\n\
            traces_service_graph_request_failed_total{client=\"a\"} 7\n";
        assert_eq!(
            sum_samples(text, "traces_service_graph_request_total", ""),
            15.0
        );
        assert_eq!(
            sum_samples(text, "traces_service_graph_request_total", "server=\"c\""),
            3.0
        );
        assert_eq!(
            sum_samples(text, "traces_service_graph_request_failed_total", ""),
            7.0
        );
    }
}
