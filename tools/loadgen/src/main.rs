use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use prost::Message;

/// Sends generated traces to a collector over OTLP/HTTP (protobuf).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send a few shop checkout traces and print their ids.
    Demo {
        /// Collector OTLP/HTTP base URL.
        #[arg(long, default_value = "http://127.0.0.1:4318")]
        endpoint: String,
        /// Number of traces to send.
        #[arg(long, default_value_t = 5)]
        traces: usize,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let Command::Demo { endpoint, traces } = Cli::parse().command;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let mut rng = rand::rng();
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
    for i in 0..traces {
        let start = now - (traces - i) as u64 * 1_000_000_000;
        let (trace_id, request) = spanway_loadgen::checkout_trace(&mut rng, start);
        let response = client
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .body(request.encode_to_vec())
            .send()
            .await
            .with_context(|| format!("cannot reach the collector at {url}"))?;
        if !response.status().is_success() {
            bail!(
                "collector answered {} for trace {}",
                response.status(),
                hex(&trace_id)
            );
        }
        println!("sent trace {}", hex(&trace_id));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
