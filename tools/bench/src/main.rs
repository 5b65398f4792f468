use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use spanway_bench::collector::load::Rate;
use spanway_bench::measure::{self, Machine};
use spanway_bench::{analytics, collector, freshness, raw_load, report, runs, workload};

/// On-demand benchmarks of spanway against the real services of
/// `dev/services up` (Kafka on 127.0.0.1:9092, OpenSearch on :9200).
/// Figures go to stdout as a Markdown table, progress to stderr.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The ingester: spans/s, CPU per span and peak memory, into a null
    /// bulk endpoint and into OpenSearch, beside OpenSearch's own bulk rate
    /// for the same documents and (with --with-jaeger) Jaeger's v1 ingester.
    ///
    /// Build first: `cargo build --release -p spanway-ingester` and, for
    /// --with-jaeger, `dev/jaeger build ingester`.
    Ingester(IngesterArgs),
    /// The collector: OTLP/gRPC export requests at a chosen span rate (or
    /// as fast as they are answered); accepted spans/s, request latency,
    /// CPU per 100,000 spans and peak memory, checked against what reached
    /// the topic; with --with-jaeger, the same load against Jaeger's v1
    /// collector writing to Kafka.
    ///
    /// Build first: `cargo build --release -p spanway-collector` and, for
    /// --with-jaeger, `dev/jaeger build collector`.
    Collector(CollectorArgs),
    /// Streaming analytics as a whole process: spans/s read from Kafka
    /// through decoding, pairing and aggregation, CPU per span and peak
    /// memory, on a topic filled beforehand with known-topology traffic;
    /// a run counts only if its documents sum to the expected calls.
    ///
    /// Build first: `cargo build --release -p spanway-streaming-analytics`
    /// and, for --with-servicegraph, `dev/servicegraph-peer build`.
    Analytics(AnalyticsArgs),
    /// Freshness of the whole pipeline: time from the collector's
    /// acknowledgement of a probe span to the first search that finds it,
    /// under a fixed background load through collector, Kafka, ingester
    /// and OpenSearch; with --with-jaeger-v2, the same for Jaeger v2 in
    /// both roles.
    ///
    /// Build first: `cargo build --release -p spanway-collector -p
    /// spanway-ingester` and, for --with-jaeger-v2, `dev/jaeger build v2`.
    Freshness(FreshnessArgs),
}

#[derive(Debug, Args)]
struct FreshnessArgs {
    /// Background spans per second, open loop. Repeatable; each rate is a
    /// set of runs. With --find-max, the one rate the search starts from.
    #[arg(long = "rate", default_value = "5000")]
    rates: Vec<f64>,
    /// Find the highest rate our pipeline keeps up with (stepping up from
    /// --rate until a rate falls behind in two runs), then measure each
    /// pipeline at half of it: the load the freshness target names. A run
    /// keeps up when it loses nothing, gets 95 % of its rate accepted and
    /// its probes are about as fast at its end as at its start
    /// (--sustained-trend) and not slow from its start (--sustained-p50).
    #[arg(long)]
    find_max: bool,
    /// With --find-max: each rate is the last one times this.
    #[arg(long, default_value_t = 1.25, requires = "find_max")]
    step: f64,
    /// With --find-max: the highest rate tried, spans/s.
    #[arg(long, default_value_t = 100_000.0, requires = "find_max")]
    max_rate: f64,
    /// With --find-max: the largest trend (median freshness in a run's
    /// last third over its first third) of a run that kept up; its inverse
    /// is the smallest. Steady runs read 0.8-1.25 on this machine; runs
    /// falling behind grow with their length, and runs still draining the
    /// backlog of their start read far below 1.
    #[arg(long, default_value_t = 1.3, requires = "find_max")]
    sustained_trend: f64,
    /// With --find-max: the largest median freshness of a run that kept
    /// up. Runs that keep up read 0.5-0.7 s on this machine whatever the
    /// rate (the refresh interval and the bulk batches set it); a run
    /// behind from its start can read a steady trend at many seconds.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration, requires = "find_max")]
    sustained_p50: Duration,
    /// Seconds probes are sent for, after the warm-up.
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// Seconds of background load before the first probe.
    #[arg(long, default_value_t = 10.0)]
    warmup: f64,
    /// Probes per second.
    #[arg(long, default_value_t = 5.0)]
    probes_per_second: f64,
    /// Interval between searches for the probes not yet found.
    #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
    poll: Duration,
    /// Runs of each rate and pipeline.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Also run Jaeger v2 (`cmd/jaeger`) as collector and as ingester.
    #[arg(long)]
    with_jaeger_v2: bool,
    /// Partitions of each run's topic.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Kafka bootstrap address.
    #[arg(long, env = "KAFKA_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    kafka: String,
    /// OpenSearch base URL.
    #[arg(long, env = "OPENSEARCH_URL", default_value = "http://127.0.0.1:9200")]
    opensearch: String,
    /// Pause before each run.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    settle: Duration,
    /// An extra KEY=VALUE environment variable for our ingester
    /// (repeatable), e.g. --ingester-env SPANWAY_BULK__FLUSH_INTERVAL=100ms.
    #[arg(long = "ingester-env", value_parser = parse_key_value)]
    ingester_env: Vec<(String, String)>,
    /// Our ingester binary [default: target/release/spanway-ingester], to set
    /// another build's freshness and engine cost beside this one's. A wrapper
    /// script here must `exec` the ingester, as for the ingester subcommand.
    #[arg(long)]
    ingester_bin: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct AnalyticsArgs {
    /// Traces in the topic (22 spans each, 5 ms apart in event time).
    #[arg(long, default_value_t = 20_000)]
    traces: usize,
    /// Partitions of the topic.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Runs over the same topic, each with a fresh consumer group.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Kafka bootstrap address.
    #[arg(long, env = "KAFKA_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    kafka: String,
    /// OpenSearch base URL (the job writes its windows there).
    #[arg(long, env = "OPENSEARCH_URL", default_value = "http://127.0.0.1:9200")]
    opensearch: String,
    /// The job's binary [default: target/release/spanway-streaming-analytics].
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Instances of the job in the one consumer group, for the scaling
    /// figures (CPU summed over them, peak memory of the largest).
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// An extra KEY=VALUE environment variable for the job (repeatable),
    /// set after the benchmark's own, e.g.
    /// --job-env SPANWAY_KAFKA__FETCH_QUEUE_KBYTES=16384 or an allocator's
    /// tuning variable.
    #[arg(long = "job-env", value_parser = parse_key_value)]
    job_env: Vec<(String, String)>,
    /// String attributes to add to every span (`attr.0`, …), with an int
    /// `http.response.status_code`: the topology's spans carry almost none,
    /// where spans from SDKs carry several. 0 sends them as generated.
    #[arg(long, default_value_t = 0)]
    span_attributes: usize,
    #[command(flatten)]
    topic: workload::TopicShape,
    /// Also run the OpenTelemetry Collector's servicegraph connector behind
    /// its Kafka receiver over the same topic after each run (fresh group):
    /// the Collector's and Tempo's way of computing service dependencies.
    /// Build it first: `dev/servicegraph-peer build`.
    #[arg(long)]
    with_servicegraph: bool,
    /// The servicegraph peer's binary [default:
    /// .services/servicegraph-peer/bin/servicegraph-peer].
    #[arg(long)]
    servicegraph_bin: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct CollectorArgs {
    /// Spans per second, sent open loop, or `max`: as fast as answered,
    /// --concurrency calls in flight. Repeatable; each rate is a set of runs.
    #[arg(long = "rate", value_parser = Rate::parse, default_value = "20000")]
    rates: Vec<Rate>,
    /// Seconds each run is measured for, after the warm-up.
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// Seconds of load before the measured part of each run (fresh topic
    /// metadata, connections); its spans are checked on the topic too.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Calls in flight at most.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// gRPC (HTTP/2) connections the calls are spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Runs of each rate and collector.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Also run Jaeger's v1 collector with its Kafka span writer.
    #[arg(long)]
    with_jaeger: bool,
    /// Also run Jaeger v2 (`cmd/jaeger`): its OTLP receiver and Kafka
    /// exporter (otlp_proto, one record per trace, required_acks -1, zstd).
    #[arg(long)]
    with_jaeger_v2: bool,
    /// Instead of load: open this many idle OTLP/gRPC connections (the
    /// HTTP/2 preface and SETTINGS, nothing more) to each collector, our
    /// own and with --with-jaeger-v2 Jaeger v2, --repeat times alternating,
    /// and report the memory each connection holds.
    #[arg(long)]
    idle_connections: Option<usize>,
    /// Instead of load: make this many OTLP/gRPC exports to each collector
    /// that send a gzip-compressed message of a few KiB (about 4 MB
    /// inflated) and never end their streams, --repeat times alternating,
    /// and report how many were answered and the memory each holds.
    #[arg(long, conflicts_with = "idle_connections")]
    held_open_calls: Option<usize>,
    /// Jaeger v2's binary [default: .services/jaeger/bin/jaeger].
    #[arg(long)]
    jaeger_v2_bin: Option<PathBuf>,
    /// Whole traces per request (5 to 20 spans each).
    #[arg(long, default_value_t = 40)]
    traces_per_request: usize,
    /// Distinct requests generated before the runs and re-sent with new ids.
    #[arg(long, default_value_t = 64)]
    pool_requests: usize,
    /// gzip the requests.
    #[arg(long)]
    gzip: bool,
    /// Partitions of each run's topic.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Kafka bootstrap address.
    #[arg(long, env = "KAFKA_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    kafka: String,
    /// Our collector binary [default: target/release/spanway-collector]. A wrapper script
    /// here must `exec` the collector: CPU and memory are read from the process started.
    #[arg(long)]
    collector_bin: Option<PathBuf>,
    /// Jaeger's collector binary [default: .services/jaeger/bin/jaeger-collector].
    #[arg(long)]
    jaeger_bin: Option<PathBuf>,
    /// The services' state directory, for Kafka's pid file [default: .services].
    #[arg(long)]
    services_dir: Option<PathBuf>,
    /// Where the collectors' logs go [default: target/bench/collector-<id>].
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// Pause before each run.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    settle: Duration,
    /// After the last answer, the topic counts as flushed once it has not
    /// grown for this long.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    drain_quiet: Duration,
    /// A call unanswered after this long fails (DEADLINE_EXCEEDED).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    request_timeout: Duration,
    /// Kafka protocol version Jaeger's producer speaks (sarama); zstd needs
    /// 2.1.0 or later, and Kafka 4 has dropped the oldest request versions.
    #[arg(long, default_value = "2.8.0")]
    jaeger_kafka_version: String,
    /// An extra argument for Jaeger's collector (repeatable), e.g.
    /// --jaeger-arg=--collector.queue-size=100000.
    #[arg(long = "jaeger-arg", allow_hyphen_values = true)]
    jaeger_args: Vec<String>,
    /// An extra KEY=VALUE environment variable for our collector
    /// (repeatable), e.g. --collector-env SPANWAY_KAFKA__LINGER=20ms.
    #[arg(long = "collector-env", value_parser = parse_key_value)]
    collector_env: Vec<(String, String)>,
    /// Keep the topics afterwards.
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, Args)]
struct IngesterArgs {
    /// Spans in the corpus (rounded up to whole traces).
    #[arg(long, default_value_t = 200_000)]
    spans: u64,
    /// Partitions of the benchmark topics.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Spans per trace.
    #[arg(long, default_value_t = 10)]
    spans_per_trace: usize,
    /// An attribute KEY=VALUE on every span's resource beside service.name
    /// (repeatable), e.g. the three an OpenTelemetry SDK adds by default:
    /// --resource-attribute telemetry.sdk.name=opentelemetry
    /// --resource-attribute telemetry.sdk.language=go
    /// --resource-attribute telemetry.sdk.version=1.38.0. Each becomes a
    /// process tag of every stored span.
    #[arg(long = "resource-attribute", value_parser = parse_key_value)]
    resource_attributes: Vec<(String, String)>,
    /// Traces start at random times in this first part of the corpus's UTC
    /// day (at most 23h53m20s). The default spreads them over most of the
    /// day, so the load passes through an hour of span time in a second or
    /// two; "2h" puts the same spans into two hours, each written for a
    /// good part of the run, as with hourly span indices in real traffic.
    /// [default: 22h 13m 20s]
    #[arg(long, value_parser = parse_corpus_window)]
    corpus_window: Option<Duration>,
    /// Also run Jaeger's v1 ingester on a jaeger_proto copy of the corpus.
    #[arg(long)]
    with_jaeger: bool,
    /// Also run Jaeger v2 (`cmd/jaeger`) as an ingester on the same
    /// otlp_proto topic: its Kafka receiver and storage exporter, defaults
    /// otherwise.
    #[arg(long)]
    with_jaeger_v2: bool,
    /// Jaeger v2's binary [default: .services/jaeger/bin/jaeger].
    #[arg(long)]
    jaeger_v2_bin: Option<PathBuf>,
    /// Only the null-endpoint runs (no OpenSearch needed).
    #[arg(long)]
    null_only: bool,
    /// Kafka bootstrap address.
    #[arg(long, env = "KAFKA_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    kafka: String,
    /// OpenSearch base URL.
    #[arg(long, env = "OPENSEARCH_URL", default_value = "http://127.0.0.1:9200")]
    opensearch: String,
    /// Our ingester binary [default: target/release/spanway-ingester]. A wrapper script
    /// here must `exec` the ingester: CPU and memory are read from the process started
    /// (stopping it stops whatever it started, too).
    #[arg(long)]
    ingester_bin: Option<PathBuf>,
    /// Jaeger's ingester binary [default: .services/jaeger/bin/jaeger-ingester].
    #[arg(long)]
    jaeger_bin: Option<PathBuf>,
    /// The services' state directory, for the Kafka and OpenSearch pid files
    /// [default: .services].
    #[arg(long)]
    services_dir: Option<PathBuf>,
    /// Where the ingesters' logs go [default: target/bench/ingester-<id>].
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// A run not finished after this long fails.
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// A run whose count has not grown for this long ends as incomplete.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    stall: Duration,
    /// Pause before each run.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    settle: Duration,
    /// Documents per request of the raw bulk loader.
    #[arg(long, default_value_t = 1000)]
    raw_batch: usize,
    /// Requests in flight in the raw bulk loader.
    #[arg(long, default_value_t = 4)]
    raw_concurrency: usize,
    /// Send the raw loads' documents in the order of their spans' start
    /// times, as live traffic reaches the engine, instead of the corpus's
    /// order (traces at random times of one day).
    #[arg(long)]
    raw_time_order: bool,
    /// With --raw-time-order, shuffle each run of this many documents, as
    /// spans reach the engine seconds after they start: 75,000 documents
    /// are about three seconds of a raw load here.
    #[arg(long, default_value_t = 0)]
    raw_disorder: usize,
    /// Produce the topics' traces in the order they started, as live
    /// traffic reaches the topic, instead of the corpus's order (traces at
    /// random times of one day). Both writers read the same order.
    #[arg(long)]
    topic_time_order: bool,
    /// With --topic-time-order, shuffle each run of this many records
    /// (traces), as spans reach a topic seconds after they start: 10,000
    /// records of 10 spans are about three seconds of the ingester's load.
    #[arg(long, default_value_t = 0)]
    topic_disorder: usize,
    /// A raw bulk load to run (repeatable; one run each): the ingester's
    /// documents as they are, or changed in one way, to measure what that
    /// costs the engine.
    #[arg(long = "raw-variant", value_enum, default_values_t = [raw_load::RawVariant::AsIngester])]
    raw_variants: Vec<raw_load::RawVariant>,
    /// A JSON merge patch (RFC 7396) applied to the span index template of
    /// the raw loads, to measure a mapping or setting, e.g.
    /// '{"settings":{"index.refresh_interval":"5s"}}'.
    #[arg(long, value_parser = parse_json)]
    raw_template_patch: Option<serde_json::Value>,
    /// Our ingester's null-endpoint run with this many instances in one
    /// consumer group (repeatable: one run per count), for the scaling
    /// figures; with `--null-only`, e.g. `--partitions 12 --instances 1
    /// --instances 2 --instances 4`.
    #[arg(long = "instances", default_values_t = [1usize])]
    instances: Vec<usize>,
    /// Only the raw bulk loads: no ingester runs, no Kafka needed.
    #[arg(long, conflicts_with = "null_only")]
    raw_only: bool,
    /// Kafka protocol version Jaeger's ingester speaks; its default (1.0.0)
    /// uses request versions Kafka 4 has dropped, and it then consumes nothing.
    #[arg(long, default_value = "2.8.0")]
    jaeger_kafka_version: String,
    /// An extra argument for Jaeger's ingester (repeatable), e.g.
    /// --jaeger-arg=--es.bulk.workers=4.
    #[arg(long = "jaeger-arg", allow_hyphen_values = true)]
    jaeger_args: Vec<String>,
    /// An extra KEY=VALUE environment variable for our ingester (repeatable),
    /// e.g. --ingester-env SPANWAY_BULK__MAX_IN_FLIGHT=8.
    #[arg(long = "ingester-env", value_parser = parse_key_value)]
    ingester_env: Vec<(String, String)>,
    /// Primary shards of the span and service indices, for every writer
    /// and the raw loads (no replica in any). Both ingesters default to 5;
    /// 1 keeps runs comparable with the figures measured before it existed.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    shards: u32,
    /// Keep the topics, indices and templates afterwards.
    #[arg(long)]
    keep: bool,
    #[command(flatten)]
    topic: workload::TopicShape,
}

fn parse_corpus_window(text: &str) -> Result<Duration, String> {
    let window = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    let most = Duration::from_nanos(spanway_e2e::corpus::MAX_WINDOW_NS);
    if window.is_zero() || window > most {
        return Err(format!(
            "must be more than zero and at most {}, to stay within one UTC day",
            humantime::format_duration(most)
        ));
    }
    Ok(window)
}

fn parse_json(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))
}

/// The workspace root, for the default paths: the benchmark is run from a
/// checkout with `cargo run`.
fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Ingester(args) => ingester(args).await,
        Command::Collector(args) => collector(args).await,
        Command::Analytics(args) => analytics_bench(args).await,
        Command::Freshness(args) => freshness_bench(args).await,
    }
}

async fn freshness_bench(args: FreshnessArgs) -> anyhow::Result<()> {
    let root = workspace_root();
    let seconds = |value: f64, name: &str| {
        Duration::try_from_secs_f64(value)
            .ok()
            .filter(|d| !d.is_zero())
            .with_context(|| format!("--{name} must be a positive number of seconds"))
    };
    anyhow::ensure!(
        args.rates.iter().all(|r| r.is_finite() && *r > 0.0),
        "--rate must be a positive number of spans per second"
    );
    let find_max = if args.find_max {
        anyhow::ensure!(
            args.rates.len() == 1,
            "--find-max starts from one --rate, not {}",
            args.rates.len()
        );
        Some(freshness::Search {
            from: args.rates[0],
            step: args.step,
            up_to: args.max_rate,
            trend_limit: args.sustained_trend,
            p50_limit: args.sustained_p50,
        })
    } else {
        None
    };
    let options = freshness::Options {
        rates: args.rates,
        find_max,
        duration: seconds(args.seconds, "seconds")?,
        warmup: seconds(args.warmup, "warmup")?,
        probes_per_second: args.probes_per_second,
        poll: args.poll,
        give_up: Duration::from_secs(60),
        with_jaeger_v2: args.with_jaeger_v2,
        repeat: args.repeat.max(1),
        kafka: args.kafka,
        opensearch: args.opensearch.trim_end_matches('/').to_owned(),
        partitions: args.partitions,
        collector_bin: root.join("target/release/spanway-collector"),
        ingester_bin: args
            .ingester_bin
            .unwrap_or_else(|| root.join("target/release/spanway-ingester")),
        jaeger_v2_bin: root.join(".services/jaeger/bin/jaeger"),
        log_dir: root
            .join("target/bench")
            .join(spanway_e2e::unique_name("freshness")),
        settle: args.settle,
        ingester_env: args.ingester_env,
        services_dir: root.join(".services"),
    };
    eprintln!("machine: {}", report::machine(&Machine::describe()));
    let report = freshness::benchmark(&options).await?;
    println!("machine: {}", report::machine(&Machine::describe()));
    println!(
        "{} s of probes per run after {} s of warm-up, {} probes/s, a search every {} ms; logs in {}",
        options.duration.as_secs_f64(),
        options.warmup.as_secs_f64(),
        options.probes_per_second,
        options.poll.as_millis(),
        options.log_dir.display()
    );
    println!();
    print!(
        "{}",
        freshness::report_markdown(&report, options.find_max.as_ref())
    );
    // No rate kept up, so there is no half to measure at: the target was
    // not measured, which a caller such as dev/bench-targets must see.
    if let Some(found @ freshness::Found::BelowFirst(..)) = &report.found {
        anyhow::bail!("{}", freshness::found_line(found));
    }
    Ok(())
}

async fn analytics_bench(args: AnalyticsArgs) -> anyhow::Result<()> {
    let bin = match args.bin {
        Some(bin) => {
            anyhow::ensure!(
                bin.is_file(),
                "--bin {}: not a file (it names the job's executable)",
                bin.display()
            );
            bin
        }
        None => {
            let bin = workspace_root().join("target/release/spanway-streaming-analytics");
            anyhow::ensure!(
                bin.is_file(),
                "{} is missing: cargo build --release -p spanway-streaming-analytics",
                bin.display()
            );
            bin
        }
    };
    let servicegraph = if args.with_servicegraph {
        let bin = args.servicegraph_bin.unwrap_or_else(|| {
            workspace_root().join(".services/servicegraph-peer/bin/servicegraph-peer")
        });
        anyhow::ensure!(
            bin.is_file(),
            "{} is missing: dev/servicegraph-peer build",
            bin.display()
        );
        Some(bin)
    } else {
        None
    };
    let options = analytics::AnalyticsOptions {
        traces: args.traces,
        partitions: args.partitions,
        runs: args.runs.max(1),
        kafka: args.kafka,
        opensearch: args.opensearch,
        bin,
        instances: args.instances.max(1),
        job_env: args.job_env,
        span_attributes: args.span_attributes,
        topic: args.topic,
        servicegraph,
        log_dir: workspace_root().join("target/bench/analytics"),
        services_dir: workspace_root().join(".services"),
    };
    let results = analytics::analytics_benchmark(&options).await?;
    println!("{}", analytics::markdown(&results));
    Ok(())
}

/// What `collector --idle-connections` or `--held-open-calls` holds open.
#[derive(Debug, Clone, Copy)]
enum Holding {
    IdleConnections(usize),
    HeldOpenCalls(usize),
}

/// `collector --idle-connections` and `collector --held-open-calls`.
async fn holding(options: &collector::run::Options, holding: Holding) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.log_dir)
        .with_context(|| format!("creating {}", options.log_dir.display()))?;
    let mut targets = vec![collector::run::Target::Spanway];
    if options.with_jaeger_v2 {
        targets.push(collector::run::Target::JaegerV2);
    }
    let mut runs = Vec::new();
    for repetition in 0..options.repeat {
        if repetition % 2 == 1 {
            targets.reverse();
        }
        for &target in &targets {
            runs.push(match holding {
                Holding::IdleConnections(count) => {
                    eprintln!("run: {} with {count} idle connections", target.name());
                    collector::connections::idle(options, target, count).await?
                }
                Holding::HeldOpenCalls(calls) => {
                    eprintln!("run: {} with {calls} calls held open", target.name());
                    collector::connections::held_open(options, target, calls).await?
                }
            });
        }
    }
    println!("machine: {}", report::machine(&Machine::describe()));
    println!();
    match holding {
        Holding::IdleConnections(_) => print!("{}", collector::connections::markdown(&runs)),
        Holding::HeldOpenCalls(_) => {
            print!("{}", collector::connections::held_open_markdown(&runs));
        }
    }
    Ok(())
}

async fn collector(args: CollectorArgs) -> anyhow::Result<()> {
    let root = workspace_root();
    let options = collector::run::Options {
        rates: args.rates,
        duration: Duration::try_from_secs_f64(args.seconds)
            .ok()
            .filter(|d| !d.is_zero())
            .context("--seconds must be a positive number")?,
        warmup: Duration::try_from_secs_f64(args.warmup)
            .ok()
            .context("--warmup must be a number of seconds")?,
        concurrency: args.concurrency.max(1),
        connections: args.connections.max(1),
        repeat: args.repeat.max(1),
        with_jaeger: args.with_jaeger,
        with_jaeger_v2: args.with_jaeger_v2,
        jaeger_v2_bin: args
            .jaeger_v2_bin
            .unwrap_or_else(|| root.join(".services/jaeger/bin/jaeger")),
        kafka: args.kafka,
        partitions: args.partitions,
        collector_bin: args
            .collector_bin
            .unwrap_or_else(|| root.join("target/release/spanway-collector")),
        jaeger_bin: args
            .jaeger_bin
            .unwrap_or_else(|| root.join(".services/jaeger/bin/jaeger-collector")),
        services_dir: args.services_dir.unwrap_or_else(|| root.join(".services")),
        log_dir: args.log_dir.unwrap_or_else(|| {
            root.join("target/bench")
                .join(spanway_e2e::unique_name("collector"))
        }),
        settle: args.settle,
        drain_quiet: args.drain_quiet,
        request_timeout: args.request_timeout,
        gzip: args.gzip,
        traces_per_request: args.traces_per_request.max(1),
        pool_requests: args.pool_requests.max(1),
        jaeger_kafka_version: args.jaeger_kafka_version,
        jaeger_args: args.jaeger_args,
        collector_env: args.collector_env,
        keep: args.keep,
    };
    let load = measure::load_average().context("reading the load average")?;
    eprintln!(
        "machine: {}; load average {:.2} {:.2} {:.2}",
        report::machine(&Machine::describe()),
        load[0],
        load[1],
        load[2]
    );
    if let Some(count) = args.idle_connections {
        return holding(&options, Holding::IdleConnections(count)).await;
    }
    if let Some(calls) = args.held_open_calls {
        return holding(&options, Holding::HeldOpenCalls(calls)).await;
    }
    let results = collector::benchmark(&options).await?;
    let load_end = measure::load_average().context("reading the load average")?;
    println!("machine: {}", report::machine(&Machine::describe()));
    println!(
        "load average at start {:.2} {:.2} {:.2}, at end {:.2} {:.2} {:.2}; {} s per run after {} s of warm-up, \
         {} calls in flight at most over {} connections, {} traces per request{}; logs in {}",
        load[0],
        load[1],
        load[2],
        load_end[0],
        load_end[1],
        load_end[2],
        options.duration.as_secs_f64(),
        options.warmup.as_secs_f64(),
        options.concurrency,
        options.connections,
        options.traces_per_request,
        if options.gzip { ", gzip" } else { "" },
        options.log_dir.display()
    );
    println!();
    print!("{}", collector::report::markdown(&results));
    print!("{}", collector::report::against_peers(&results));
    Ok(())
}

async fn ingester(args: IngesterArgs) -> anyhow::Result<()> {
    let root = workspace_root();
    let options = runs::Options {
        spans: args.spans,
        partitions: args.partitions,
        spans_per_trace: args.spans_per_trace,
        resource_attributes: args.resource_attributes,
        corpus_window: args.corpus_window.unwrap_or(workload::DEFAULT_WINDOW),
        with_jaeger: args.with_jaeger,
        with_jaeger_v2: args.with_jaeger_v2,
        jaeger_v2_bin: args
            .jaeger_v2_bin
            .unwrap_or_else(|| root.join(".services/jaeger/bin/jaeger")),
        null_only: args.null_only,
        kafka: args.kafka,
        opensearch: args.opensearch.trim_end_matches('/').to_owned(),
        ingester_bin: args
            .ingester_bin
            .unwrap_or_else(|| root.join("target/release/spanway-ingester")),
        jaeger_bin: args
            .jaeger_bin
            .unwrap_or_else(|| root.join(".services/jaeger/bin/jaeger-ingester")),
        services_dir: args.services_dir.unwrap_or_else(|| root.join(".services")),
        log_dir: args.log_dir.unwrap_or_else(|| {
            root.join("target/bench")
                .join(spanway_e2e::unique_name("ingester"))
        }),
        timeout: args.timeout,
        stall: args.stall,
        settle: args.settle,
        raw_batch: args.raw_batch.max(1),
        raw_concurrency: args.raw_concurrency.max(1),
        raw_time_order: args.raw_time_order,
        raw_disorder: args.raw_disorder,
        topic_time_order: args.topic_time_order,
        topic_disorder: args.topic_disorder,
        raw_variants: args.raw_variants,
        raw_only: args.raw_only,
        raw_template_patch: args.raw_template_patch,
        instances: args.instances.into_iter().map(|n| n.max(1)).collect(),
        jaeger_kafka_version: args.jaeger_kafka_version,
        jaeger_args: args.jaeger_args,
        ingester_env: args.ingester_env,
        shards: args.shards,
        keep: args.keep,
        topic: args.topic,
    };
    let load = measure::load_average().context("reading the load average")?;
    eprintln!(
        "machine: {}; load average {:.2} {:.2} {:.2}",
        report::machine(&Machine::describe()),
        load[0],
        load[1],
        load[2]
    );
    let cold = if options.null_only {
        None
    } else {
        runs::warm_up::node_history(&options.opensearch)
            .await
            .and_then(runs::warm_up::warning)
    };
    if let Some(line) = &cold {
        eprintln!("{line}");
    }
    let results = runs::ingester_benchmark(&options).await?;
    let load_end = measure::load_average().context("reading the load average")?;
    println!("machine: {}", report::machine(&Machine::describe()));
    println!(
        "load average at start {:.2} {:.2} {:.2}, at end {:.2} {:.2} {:.2}; ingester logs in {}",
        load[0],
        load[1],
        load[2],
        load_end[0],
        load_end[1],
        load_end[2],
        options.log_dir.display()
    );
    println!(
        "corpus: traces start within the first {} of its UTC day",
        humantime::format_duration(options.corpus_window)
    );
    println!();
    print!("{}", report::markdown(&results));
    print!("{}", report::against_peers(&results));
    if let Some(line) = cold {
        println!("\n{line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_window_stays_within_one_day() {
        assert_eq!(
            parse_corpus_window("2h"),
            Ok(Duration::from_secs(7200)),
            "a window of hours is taken"
        );
        for refused in ["0s", "24h", "1d"] {
            let error = parse_corpus_window(refused).expect_err(refused);
            assert!(error.contains("one UTC day"), "{refused}: {error}");
        }
        assert!(parse_corpus_window("two hours").is_err());
    }
}
