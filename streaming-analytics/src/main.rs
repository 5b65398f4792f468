use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use spanway_search::index::{Family, Prefix};
use spanway_service_kit::{config, logging, startup};
use spanway_streaming_analytics::{Analytics, AnalyticsConfig, recompute};

/// Computes service dependencies and service-graph aggregates from the spans
/// topic, in real time, and writes them to Elasticsearch or OpenSearch:
/// Jaeger's jaeger-dependencies-YYYY-MM-DD (read by Jaeger query's
/// /api/dependencies and the Jaeger UI) and a service-graph index for Kibana
/// (calls, errors, latency percentiles per edge and window).
///
/// Windows are cut on span start time (event time). A window is written once
/// the partition's clock is windows.allowed_lateness past its end; offsets are
/// committed only up to what written windows cover, with the clock in the
/// commit, so a crash and replay rewrite the same documents with the same
/// numbers.
///
/// Configuration comes from an optional TOML file (see
/// streaming-analytics/analytics.example.toml), then environment variables
/// named SPANWAY_<SECTION>__<KEY>, e.g. SPANWAY_WINDOWS__SIZE=5m. Operations
/// endpoint: /health/live (503 naming the loop when the Kafka poll loop or the
/// writer has not gone round for ops.stall_timeout, default 2m; waiting for
/// records, paused reading and retries against a down engine do not count),
/// /health/ready and /metrics on ops.listen (default :14271).
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, short, env = "SPANWAY_CONFIG_FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the job (the default).
    Run,
    /// Load and validate the configuration (reading the secret and
    /// certificate files it names), print it, and exit.
    CheckConfig,
    /// Recompute the dependency totals of a time range from the span
    /// documents in the engine (the elasticsearch connection settings and
    /// index_prefix), by the same rules, and print them as JSON lines
    /// {parent, child, callCount}. Writes nothing. Use it to check the
    /// streaming totals over a range.
    Recompute {
        /// Range start, RFC 3339 (e.g. 2026-03-02T00:00:00Z).
        #[arg(long)]
        from: String,
        /// Range end (exclusive), RFC 3339.
        #[arg(long)]
        to: String,
    },
}

fn epoch_ms(flag: &str, text: &str) -> anyhow::Result<i64> {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("--{flag} {text:?} is not an RFC 3339 time"))?;
    Ok((at.unix_timestamp_nanos() / 1_000_000) as i64)
}

fn main() -> ExitCode {
    startup::exit_code(run(Cli::parse()))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config: AnalyticsConfig = config::load(cli.config.as_deref())?;
    config.validate()?;
    if let Some(Command::CheckConfig) = cli.command {
        config.elasticsearch.client.check_files()?;
        startup::print_valid(&config);
        return Ok(());
    }
    if let Some(Command::Recompute { from, to }) = &cli.command {
        logging::init(&config.log.level, config.log.json);
        let (from_ms, to_ms) = (epoch_ms("from", from)?, epoch_ms("to", to)?);
        anyhow::ensure!(from_ms < to_ms, "--from must be before --to");
        let pattern = Prefix::new(&config.elasticsearch.index_prefix).pattern(Family::Span);
        let totals = startup::runtime(&config.runtime)?.block_on(recompute::recompute(
            &config.elasticsearch.client,
            &pattern,
            from_ms,
            to_ms,
            config.rules(),
            &config.model.peer_attributes,
            &config.elasticsearch.tags_dot_replacement,
        ))?;
        for ((parent, child), calls) in totals {
            println!(
                "{}",
                serde_json::json!({"parent": parent, "child": child, "callCount": calls})
            );
        }
        return Ok(());
    }
    let (log, runtime) = (config.log.clone(), config.runtime);
    startup::serve(&log, &runtime, |token| async move {
        let analytics = Analytics::start(&config, token).await?;
        analytics.wait().await?;
        Ok(())
    })
}
