use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use spanway_bench::measure::{self, Machine};
use spanway_bench::{report, runs};

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
    /// Also run Jaeger's v1 ingester on a jaeger_proto copy of the corpus.
    #[arg(long)]
    with_jaeger: bool,
    /// Only the null-endpoint runs (no OpenSearch needed).
    #[arg(long)]
    null_only: bool,
    /// Kafka bootstrap address.
    #[arg(long, env = "KAFKA_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    kafka: String,
    /// OpenSearch base URL.
    #[arg(long, env = "OPENSEARCH_URL", default_value = "http://127.0.0.1:9200")]
    opensearch: String,
    /// Our ingester binary [default: target/release/spanway-ingester].
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
    #[arg(long = "ingester-env", value_parser = parse_env)]
    ingester_env: Vec<(String, String)>,
    /// Keep the topics, indices and templates afterwards.
    #[arg(long)]
    keep: bool,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))
}

/// The workspace root, for the default paths: the benchmark is run from a
/// checkout with `cargo run`.
fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
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
    }
}

async fn ingester(args: IngesterArgs) -> anyhow::Result<()> {
    let root = workspace_root();
    let options = runs::Options {
        spans: args.spans,
        partitions: args.partitions,
        spans_per_trace: args.spans_per_trace,
        with_jaeger: args.with_jaeger,
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
        jaeger_kafka_version: args.jaeger_kafka_version,
        jaeger_args: args.jaeger_args,
        ingester_env: args.ingester_env,
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
    println!();
    print!("{}", report::markdown(&results));
    Ok(())
}
