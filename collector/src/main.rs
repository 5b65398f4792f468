use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use spanway_collector::Collector;
use spanway_collector::config::CollectorConfig;
use spanway_service_kit::{config, startup};

/// Each request allocates its body, its records and its per-trace
/// groups, and frees them when Kafka has acknowledged them, from tasks on
/// both runtime threads: glibc's allocator spent about a tenth of the
/// collector's CPU on that (docs/benchmarks.md). Built without transparent
/// huge pages (`no_thp`), as for the ingester, so freed memory does not
/// stay resident in 2 MiB pages.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Receives spans (OTLP over gRPC and HTTP, Jaeger gRPC and Thrift/HTTP,
/// Zipkin) and publishes them to Kafka, one record per trace, keyed by trace
/// id. A request is answered with success only after
/// Kafka acknowledged every span in it; otherwise the client gets a
/// retryable status (429 or 503 with Retry-After).
///
/// Configuration comes from an optional TOML file, then environment
/// variables named SPANWAY_<SECTION>__<KEY>, e.g. SPANWAY_KAFKA__BROKERS=a:9092,b:9092
/// or SPANWAY_OTLP_HTTP__LISTEN=0.0.0.0:4318. Operations endpoint: /health/live,
/// /health/ready (Kafka reachable) and /metrics on ops.listen (default :14269).
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// TOML configuration file (see collector/collector.example.toml).
    #[arg(long, short, env = "SPANWAY_CONFIG_FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the collector (the default).
    Run,
    /// Load and validate the configuration, print it, and exit.
    CheckConfig,
}

fn load(path: Option<&std::path::Path>) -> anyhow::Result<CollectorConfig> {
    let config: CollectorConfig = config::load(path)?;
    config.validate()?;
    Ok(config)
}

fn main() -> ExitCode {
    startup::exit_code(run(Cli::parse()))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = load(cli.config.as_deref())?;
    if let Some(Command::CheckConfig) = cli.command {
        // The strategies file is part of what an operator wants checked.
        if let (true, Some(path)) = (
            config.sampling.enabled,
            config.sampling.strategies_file.as_deref(),
        ) {
            spanway_collector::sampling::load_file(path)?;
        }
        // So are certificates, keys and credentials files.
        spanway_collector::receiver::listener::Security::check_files(&config)?;
        startup::print_valid(&config);
        return Ok(());
    }
    let (log, runtime) = (config.log.clone(), config.runtime);
    startup::serve(&log, &runtime, |token| async move {
        let collector = Collector::start(&config, token).await?;
        collector.wait().await;
        Ok(())
    })
}
