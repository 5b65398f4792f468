use std::path::PathBuf;

use clap::Parser;
use spanway_service_kit::{config, logging, shutdown};
use spanway_streaming_analytics::AnalyticsConfig;
use tokio_util::sync::CancellationToken;

/// Streaming service-dependency analytics. This version serves its health
/// and metrics endpoints only (ops_listen, default :14271); /health/ready
/// answers 503 because no aggregation runs yet.
///
/// Configuration: optional TOML file, then SPANWAY_<KEY> environment variables.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, short, env = "SPANWAY_CONFIG_FILE")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config: AnalyticsConfig = config::load(cli.config.as_deref())?;
    logging::init(&config.log_level, false);
    let token = CancellationToken::new();
    shutdown::cancel_on_signal(token.clone());
    start_and_wait(&config, token).await
}

async fn start_and_wait(config: &AnalyticsConfig, token: CancellationToken) -> anyhow::Result<()> {
    spanway_streaming_analytics::start(config, token.clone()).await?;
    token.cancelled().await;
    Ok(())
}
