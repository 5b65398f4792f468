//! The ingester benchmark: each run, one after another, measured alone.
//!
//! | run | process measured | destination |
//! |---|---|---|
//! | `spanway → null` | our ingester (child) | [`NullEndpoint`] |
//! | `jaeger → null` | Jaeger's v1 ingester (child) | [`NullEndpoint`] |
//! | `spanway (jaeger_proto) → null` | ours, on Jaeger's topic | [`NullEndpoint`] |
//! | `spanway → OpenSearch` | our ingester | OpenSearch |
//! | `jaeger → OpenSearch` | Jaeger's ingester | OpenSearch |
//! | `raw bulk → OpenSearch` | this process's loader | OpenSearch |
//!
//! Our ingester reads the corpus as `otlp_proto`, one record per trace;
//! Jaeger's v1 ingester cannot read OTLP, so it gets a second topic with the
//! same spans as `jaeger_proto`, one record per span, as Jaeger's collector
//! writes them. The `spanway (jaeger_proto)` run puts ours on that topic
//! too, so one comparison is on identical input.
//!
//! An ingester run starts the binary with a fresh consumer group and index
//! prefix on a topic that already holds the whole corpus, and ends when the
//! destination has every span document: for the null endpoint the moment
//! the last one arrives, for OpenSearch the first poll of the indexing
//! statistics (every 250 ms, no refresh) that counts them all; a refresh and
//! `_count` afterwards, outside the measured window, checks that a search
//! finds every one. CPU and peak memory are read from `/proc` at the end,
//! before the process is stopped.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use spanway_e2e::corpus::Corpus;
use spanway_schemas::Encoding;
use spanway_search::index::{Family, Prefix};

use crate::measure::{self, MeasuredChild, Meter};
use crate::null_endpoint::{NullEndpoint, Snapshot};
use crate::raw_load::{RawVariant, raw_loader_run};

pub mod index_work;
mod ingesters;
mod progress;
pub mod warm_up;

use ingesters::{Case, Ingester};
pub(crate) use ingesters::{jaeger_v2_config, kafka_receiver_yaml, spanway_command};
pub(crate) use progress::engine_count;
use progress::{Progress, span_index_size, wait_engine, wait_null};

/// Everything a benchmark run needs to know.
#[derive(Debug, Clone)]
pub struct Options {
    /// Spans in the corpus (rounded up to whole traces).
    pub spans: u64,
    /// Partitions of the topics.
    pub partitions: i32,
    /// Spans per trace.
    pub spans_per_trace: usize,
    /// Attributes on every span's resource beside `service.name`.
    pub resource_attributes: Vec<(String, String)>,
    /// Traces start in this first part of the corpus's day.
    pub corpus_window: Duration,
    /// Also run Jaeger's v1 ingester.
    pub with_jaeger: bool,
    /// Also run Jaeger v2 as an ingester.
    pub with_jaeger_v2: bool,
    /// Jaeger v2's binary (`dev/jaeger build v2`).
    pub jaeger_v2_bin: PathBuf,
    /// Leave out the OpenSearch and raw-loader runs.
    pub null_only: bool,
    /// Kafka bootstrap address.
    pub kafka: String,
    /// OpenSearch base URL.
    pub opensearch: String,
    /// Our ingester's release binary.
    pub ingester_bin: PathBuf,
    /// Jaeger's ingester binary (`dev/jaeger build ingester`).
    pub jaeger_bin: PathBuf,
    /// `.services/`, for the Kafka and OpenSearch pid files.
    pub services_dir: PathBuf,
    /// Where the child processes' logs go.
    pub log_dir: PathBuf,
    /// A run that has not finished after this long fails.
    pub timeout: Duration,
    /// A run whose destination count has not grown for this long stops and
    /// is reported as incomplete (Jaeger drops documents the engine refuses).
    pub stall: Duration,
    /// Pause before each run, so the previous one's refreshes, merges and
    /// garbage collection are over.
    pub settle: Duration,
    /// Documents per bulk request of the raw loader (the ingester's default).
    pub raw_batch: usize,
    /// Bulk requests in flight in the raw loader (the ingester's default).
    pub raw_concurrency: usize,
    /// Raw loads send documents in their spans' start-time order.
    pub raw_time_order: bool,
    /// With `raw_time_order`, runs of this many documents shuffled.
    pub raw_disorder: usize,
    /// The topics hold the traces in the order they started.
    pub topic_time_order: bool,
    /// With `topic_time_order`, runs of this many records shuffled.
    pub topic_disorder: usize,
    /// The raw loads to run, one run each.
    pub raw_variants: Vec<RawVariant>,
    /// Only the raw loads.
    pub raw_only: bool,
    /// A merge patch for the raw loads' span template.
    pub raw_template_patch: Option<serde_json::Value>,
    /// Instance counts of our ingester's null-endpoint run, one run each.
    pub instances: Vec<usize>,
    /// `--kafka.consumer.protocol-version` for Jaeger: its sarama's default
    /// (1.0.0) uses request versions Kafka 4 no longer accepts.
    pub jaeger_kafka_version: String,
    /// Extra arguments for Jaeger's ingester.
    pub jaeger_args: Vec<String>,
    /// Extra environment for our ingester (`SPANWAY_…=…`).
    pub ingester_env: Vec<(String, String)>,
    /// Primary shards of every writer's span and service indices, and of
    /// the raw loads' (no replica in any).
    pub shards: u32,
    /// Keep topics, indices and templates afterwards.
    pub keep: bool,
    /// How the benchmark topics are written.
    pub topic: crate::workload::TopicShape,
}

/// Where the documents went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// The [`NullEndpoint`].
    Null,
    /// The real OpenSearch.
    OpenSearch,
}

/// The figures of one run.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// e.g. `spanway → null`.
    pub name: String,
    /// Where the documents went.
    pub destination: Destination,
    /// Span documents the run had to deliver.
    pub expected: u64,
    /// Span documents delivered (below `expected` only for a stalled run).
    pub spans: u64,
    /// From process start (or the loader's first request) to the last document.
    pub wall: Duration,
    /// From the first span document seen to the last, and the spans that
    /// arrived in that window: the rate without start-up (joining the
    /// group, installing templates).
    pub steady: Option<(Duration, u64)>,
    /// CPU time of the measured process.
    pub cpu: Option<Duration>,
    /// Peak RSS of the measured process, KiB.
    pub peak_rss_kib: Option<u64>,
    /// OpenSearch's CPU over the run.
    pub engine_cpu: Option<Duration>,
    /// OpenSearch's CPU from the start of the run until it went quiet
    /// afterwards: with the refreshes and merges the run left behind.
    pub engine_cpu_settled: Option<Duration>,
    /// Kafka's CPU over the run.
    pub kafka_cpu: Option<Duration>,
    /// This process's CPU over the run (null endpoint, polling), when it is
    /// not the measured process.
    pub bench_cpu: Option<Duration>,
    /// CPU used by everything else on the machine over the run: other
    /// people's builds and tests on a shared machine.
    pub others_cpu: Option<Duration>,
    /// Load averages when the run started.
    pub load_before: [f64; 3],
    /// Load averages when it ended.
    pub load_after: [f64; 3],
    /// What else is worth knowing (null endpoint counters, errors).
    pub notes: Vec<String>,
}

impl RunResult {
    /// Spans per second over the whole wall time.
    pub fn rate(&self) -> f64 {
        per_second(self.spans, self.wall)
    }

    /// Spans per second without start-up.
    pub fn steady_rate(&self) -> Option<f64> {
        self.steady.map(|(window, spans)| per_second(spans, window))
    }

    /// Whether other processes disturbed the run ([`measure::disturbed`]).
    pub fn disturbed(&self) -> bool {
        measure::disturbed(self.others_cpu, self.wall)
    }

    /// Microseconds of CPU per span.
    pub fn cpu_per_span_us(&self) -> Option<f64> {
        let cpu = self.cpu?;
        (self.spans > 0).then(|| cpu.as_secs_f64() * 1e6 / self.spans as f64)
    }
}

fn per_second(n: u64, d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        n as f64 / d.as_secs_f64()
    }
}

/// The whole benchmark: prepares the workload, then runs each case.
pub async fn ingester_benchmark(options: &Options) -> anyhow::Result<Vec<RunResult>> {
    preflight(options).await?;
    std::fs::create_dir_all(&options.log_dir)
        .with_context(|| format!("creating {}", options.log_dir.display()))?;

    let mut corpus = crate::workload::corpus(
        options.spans,
        options.spans_per_trace,
        &options.resource_attributes,
        options.corpus_window,
    );
    if options.topic_time_order {
        crate::workload::order_by_start(&mut corpus, options.topic_disorder);
    }
    let expected = corpus.spans.len() as u64;
    let otlp_topic = spanway_e2e::unique_name("bench-otlp");
    let jaeger_topic = spanway_e2e::unique_name("bench-jaeger");
    let mut topics = Vec::new();
    let outcome = produce_and_run(
        options,
        &corpus,
        expected,
        &otlp_topic,
        &jaeger_topic,
        &mut topics,
    )
    .await;
    if !options.keep && !topics.is_empty() {
        let dead_letters: Vec<String> = topics.iter().map(|t| format!("{t}-dlq")).collect();
        topics.extend(dead_letters);
        if let Err(error) = crate::workload::delete_topics(&options.kafka, &topics).await {
            eprintln!("warning: {error:#}");
        }
    }
    outcome
}

/// Produces the corpus to the topics (recording each one created in
/// `topics`, for the clean-up), then runs every case.
async fn produce_and_run(
    options: &Options,
    corpus: &Corpus,
    expected: u64,
    otlp_topic: &str,
    jaeger_topic: &str,
    topics: &mut Vec<String>,
) -> anyhow::Result<Vec<RunResult>> {
    eprintln!(
        "producing {expected} spans ({} otlp_proto records) to {otlp_topic}",
        corpus.records.len()
    );
    let started = Instant::now();
    crate::workload::create_topic(&options.kafka, otlp_topic, options.partitions).await?;
    topics.push(otlp_topic.to_owned());
    crate::workload::produce(
        &options.kafka,
        otlp_topic,
        &corpus.records,
        true,
        &options.topic,
    )
    .await?;
    let otlp_bytes: usize = corpus.records.iter().map(|r| r.value.len()).sum();
    eprintln!(
        "  {:.1} s, {:.1} MiB of record values",
        started.elapsed().as_secs_f64(),
        otlp_bytes as f64 / 1048576.0
    );
    if options.with_jaeger {
        let records = crate::workload::jaeger_records(corpus)?;
        let bytes: usize = records.iter().map(|r| r.value.len()).sum();
        eprintln!(
            "producing the same spans as {} jaeger_proto records to {jaeger_topic}",
            records.len()
        );
        let started = Instant::now();
        crate::workload::create_topic(&options.kafka, jaeger_topic, options.partitions).await?;
        topics.push(jaeger_topic.to_owned());
        crate::workload::produce(
            &options.kafka,
            jaeger_topic,
            &records,
            false,
            &options.topic,
        )
        .await?;
        eprintln!(
            "  {:.1} s, {:.1} MiB of record values",
            started.elapsed().as_secs_f64(),
            bytes as f64 / 1048576.0
        );
    }

    run_all(options, corpus, expected, otlp_topic, jaeger_topic).await
}

async fn run_all(
    options: &Options,
    corpus: &Corpus,
    expected: u64,
    otlp_topic: &str,
    jaeger_topic: &str,
) -> anyhow::Result<Vec<RunResult>> {
    let spanway = |destination| Case {
        ingester: Ingester::Spanway,
        destination,
        topic: otlp_topic,
        encoding: Encoding::OtlpProto,
        instances: 1,
    };
    let jaeger = |destination| Case {
        ingester: Ingester::Jaeger,
        destination,
        topic: jaeger_topic,
        encoding: Encoding::JaegerProto,
        instances: 1,
    };
    let jaeger_v2 = |destination| Case {
        ingester: Ingester::JaegerV2,
        destination,
        topic: otlp_topic,
        encoding: Encoding::OtlpProto,
        instances: 1,
    };
    let mut cases: Vec<Case> = options
        .instances
        .iter()
        .map(|&instances| Case {
            instances,
            ..spanway(Destination::Null)
        })
        .collect();
    if options.raw_only {
        cases.clear();
    }
    if options.with_jaeger_v2 {
        cases.push(jaeger_v2(Destination::Null));
    }
    if options.with_jaeger {
        cases.push(jaeger(Destination::Null));
        // Ours on Jaeger's topic: one record per span instead of one per
        // trace, so the comparison with Jaeger is also made on equal input.
        cases.push(Case {
            ingester: Ingester::Spanway,
            ..jaeger(Destination::Null)
        });
    }
    if !options.null_only && !options.raw_only {
        cases.push(spanway(Destination::OpenSearch));
        if options.with_jaeger {
            cases.push(jaeger(Destination::OpenSearch));
        }
        if options.with_jaeger_v2 {
            cases.push(jaeger_v2(Destination::OpenSearch));
        }
    }
    let mut results = Vec::new();
    for case in cases {
        let result = ingester_run(options, &case, expected).await?;
        eprintln!("{}", crate::report::one_line(&result));
        results.push(result);
    }
    if !options.null_only {
        for &variant in &options.raw_variants {
            let result = raw_loader_run(options, corpus, expected, variant).await?;
            eprintln!("{}", crate::report::one_line(&result));
            results.push(result);
        }
    }
    Ok(results)
}

/// Fails early, with the command that fixes it, when something is missing.
async fn preflight(options: &Options) -> anyhow::Result<()> {
    if !options.ingester_bin.is_file() {
        bail!(
            "no ingester binary at {}; build it with `cargo build --release -p spanway-ingester`",
            options.ingester_bin.display()
        );
    }
    if options.with_jaeger && !options.jaeger_bin.is_file() {
        bail!(
            "no Jaeger ingester at {}; build it with `dev/jaeger build ingester`",
            options.jaeger_bin.display()
        );
    }
    if options.with_jaeger_v2 && !options.jaeger_v2_bin.is_file() {
        bail!(
            "no Jaeger v2 at {}; build it with `dev/jaeger build v2`",
            options.jaeger_v2_bin.display()
        );
    }
    if !options.null_only {
        let health = format!(
            "{}/_cluster/health?wait_for_status=yellow&timeout=10s",
            options.opensearch
        );
        match reqwest::get(&health).await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => bail!(
                "OpenSearch at {} answered {}",
                options.opensearch,
                r.status()
            ),
            Err(error) => bail!(
                "OpenSearch is not reachable at {} ({error}); start it with `dev/services up opensearch`",
                options.opensearch
            ),
        }
    }
    Ok(())
}

async fn ingester_run(
    options: &Options,
    case: &Case<'_>,
    expected: u64,
) -> anyhow::Result<RunResult> {
    let name = case.name();
    let destination = case.destination;
    tokio::time::sleep(options.settle).await;
    eprintln!("run: {name}");
    let prefix = spanway_e2e::unique_name("bench");
    let null = match destination {
        Destination::Null => Some(
            NullEndpoint::start(expected)
                .await
                .context("starting the null endpoint")?,
        ),
        Destination::OpenSearch => None,
    };
    let url = null
        .as_ref()
        .map_or_else(|| options.opensearch.clone(), NullEndpoint::url);
    let group = spanway_e2e::unique_name(&format!("bench-{}", case.ingester.name()));
    let mut command = case
        .ingester
        .command(options, case.topic, &group, &url, &prefix)?;
    match case.ingester {
        Ingester::Jaeger => {
            crate::workload::commit_start_offsets(
                &options.kafka,
                &group,
                case.topic,
                options.partitions,
            )?;
        }
        Ingester::Spanway => {
            // Jaeger's topic carries no encoding headers, as Jaeger's
            // collector writes it.
            command.env("SPANWAY_KAFKA__DEFAULT_ENCODING", case.encoding.as_str());
        }
        // Its receiver's `initial_offset: earliest` starts a new group at 0.
        Ingester::JaegerV2 => {}
    }
    let log = options.log_dir.join(case.log_name());

    // The other instances of a scaling run: the same command, one log each.
    let mut others = Vec::new();
    for i in 1..case.instances {
        let mut command = case
            .ingester
            .command(options, case.topic, &group, &url, &prefix)?;
        command.env("SPANWAY_KAFKA__DEFAULT_ENCODING", case.encoding.as_str());
        others.push((command, log.with_extension(format!("{i}.log"))));
    }
    let meter = Meter::start(&options.services_dir)?;
    let mut child = MeasuredChild::spawn(&mut command, &log)?;
    let mut others = others
        .iter_mut()
        .map(|(command, log)| MeasuredChild::spawn(command, log))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let progress = match &null {
        Some(endpoint) => wait_null(endpoint, &mut child, options).await,
        None => wait_engine(options, &prefix, expected, &mut child).await,
    };
    // Read the children's figures before anything else happens to them:
    // CPU summed over the instances, the largest peak RSS of one.
    let sample = others.iter().fold(child.sample(), |total, other| {
        let (cpu, peak) = total?;
        let (other_cpu, other_peak) = other.sample()?;
        Ok((cpu + other_cpu, peak.max(other_peak)))
    });
    let costs = meter.finish(sample.as_ref().ok().map(|s| s.0));
    child.terminate(Duration::from_secs(20));
    for other in &mut others {
        other.terminate(Duration::from_secs(20));
    }
    let engine_cpu_settled = match destination {
        Destination::OpenSearch => meter.engine_settled().await,
        Destination::Null => None,
    };
    // The run ended on the indexing statistics; what counts is what a search
    // finds, read once the meter has stopped.
    let progress = match (destination, progress) {
        (Destination::OpenSearch, Ok(progress)) => {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?;
            let pattern = Prefix::new(&prefix).pattern(Family::Span);
            let stored = engine_count(&client, &options.opensearch, &pattern).await;
            Ok(Progress {
                spans: stored.min(progress.spans),
                ..progress
            })
        }
        (_, progress) => progress,
    };
    if !options.keep {
        // Empty once the ingester has left; a killed one leaves it behind.
        let _ = crate::workload::delete_group(&options.kafka, &group).await;
    }
    let snapshot = match null {
        Some(endpoint) => Some(endpoint.stop().await),
        None => None,
    };
    let (work, index_size) = match destination {
        Destination::OpenSearch => (
            index_work::read(&options.opensearch, &prefix).await,
            span_index_size(&options.opensearch, &prefix).await,
        ),
        Destination::Null => (None, None),
    };
    if destination == Destination::OpenSearch && !options.keep {
        spanway_e2e::delete_prefixed(&options.opensearch, &prefix).await;
    }
    let progress = progress?;
    let (cpu, peak) = sample.with_context(|| format!("measuring {name}"))?;

    let mut notes = Vec::new();
    if let Some(snapshot) = &snapshot {
        notes.push(null_notes(snapshot));
    }
    if let Some(work) = &work {
        notes.push(work.describe());
    }
    // Per span, not per Lucene document: each nested tag, log and reference
    // is a document of its own.
    if let Some(bytes) = index_size {
        notes.push(format!(
            "span index after force-merge: {:.1} MiB, {:.0} bytes per span",
            bytes as f64 / 1_048_576.0,
            bytes as f64 / progress.spans.max(1) as f64
        ));
    }
    if progress.spans < expected {
        notes.push(format!(
            "INCOMPLETE: {} of {expected} span documents, no progress for {} s",
            progress.spans,
            options.stall.as_secs()
        ));
    }
    notes.push(format!("log: {}", log.display()));
    Ok(RunResult {
        name,
        destination,
        expected,
        spans: progress.spans,
        wall: progress.end.duration_since(child.started),
        steady: progress
            .first
            .map(|(at, count)| {
                (
                    progress.end.duration_since(at),
                    progress.spans.saturating_sub(count),
                )
            })
            // One request, or one poll, holds no rate.
            .filter(|(window, spans)| !window.is_zero() && *spans > 0),
        cpu: Some(cpu),
        peak_rss_kib: Some(peak),
        engine_cpu: costs.engine,
        engine_cpu_settled,
        kafka_cpu: costs.kafka,
        bench_cpu: Some(costs.own),
        others_cpu: costs.others,
        load_before: meter.load,
        load_after: costs.load,
        notes,
    })
}

fn null_notes(s: &Snapshot) -> String {
    let mut text = format!(
        "null endpoint: {} bulk requests, {} documents ({} spans), {:.1} MiB on the wire",
        s.bulk_requests,
        s.docs,
        s.span_docs,
        s.body_bytes as f64 / 1048576.0
    );
    if s.gzip_requests > 0 {
        text.push_str(&format!(", {} gzipped", s.gzip_requests));
    }
    if !s.other_requests.is_empty() {
        text.push_str(&format!(
            "; other requests: {}",
            s.other_requests.join(", ")
        ));
    }
    text
}
