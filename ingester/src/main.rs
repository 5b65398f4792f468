use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use spanway_ingester::Ingester;
use spanway_ingester::config::IngesterConfig;
use spanway_service_kit::{config, logging, shutdown};
use tokio_util::sync::CancellationToken;

/// Consumes spans from Kafka and bulk-writes them to Elasticsearch or
/// OpenSearch as Jaeger-compatible documents (jaeger-span-YYYY-MM-DD and
/// jaeger-service-YYYY-MM-DD), so Jaeger query and the Jaeger UI read them
/// unmodified. A record's offset is committed only after the engine has
/// stored its documents; document ids are deterministic, so a redelivered
/// record never creates a duplicate.
///
/// Configuration comes from an optional TOML file, then environment
/// variables named SPANWAY_<SECTION>__<KEY>, e.g. SPANWAY_KAFKA__BROKERS=a:9092,
/// SPANWAY_ELASTICSEARCH__URL=http://es:9200. Operations endpoint: /health/live
/// (503 naming the loop when the Kafka poll loop, the sink or a bulk write has
/// not gone round for ops.stall_timeout, default 2m; waiting for records,
/// paused reading and retries against a down engine do not count),
/// /health/ready (Kafka answers; the search engine answers, accepts the
/// credentials and did not refuse the last writes) and /metrics on ops.listen
/// (default :14270).
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// TOML configuration file (see ingester/ingester.example.toml).
    #[arg(long, short, env = "SPANWAY_CONFIG_FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the ingester (the default).
    Run,
    /// Load and validate the configuration (reading the secret and
    /// certificate files it names), print it, and exit.
    CheckConfig,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` prints the whole cause chain on one line, without a backtrace.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config: IngesterConfig = config::load(cli.config.as_deref())?;
    config.validate()?;
    if let Some(Command::CheckConfig) = cli.command {
        config.elasticsearch.client.check_files()?;
        println!("configuration is valid:\n{config:#?}");
        return Ok(());
    }
    logging::init(&config.log.level, config.log.json);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let token = CancellationToken::new();
        shutdown::cancel_on_signal(token.clone());
        let ingester = Ingester::start(config, token).await?;
        ingester.wait().await;
        Ok(())
    })
}
