//! What an idle client connection holds in a collector's memory: the
//! figure behind the collector's default `max_connections`.
//!
//! Each connection gets the HTTP/2 preface and an empty SETTINGS frame,
//! as a gRPC client opens one, and nothing more; it counts once the
//! server has answered with its own SETTINGS. The resident set is read
//! before the connections and two seconds after the last one, while they
//! are all open.

use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::run::{Options, Ports, Target, wait_ready};
use crate::measure::{MeasuredChild, rss_kib};

/// The client preface and an empty SETTINGS frame.
const HELLO: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// One target's figures.
#[derive(Debug, Clone)]
pub struct Held {
    /// Which collector.
    pub target: Target,
    /// Connections open at the second reading.
    pub connections: usize,
    /// Resident set before any, KiB.
    pub before_kib: u64,
    /// Resident set with all of them open, KiB.
    pub after_kib: u64,
}

impl Held {
    /// KiB per connection.
    pub fn per_connection(&self) -> f64 {
        self.after_kib.saturating_sub(self.before_kib) as f64 / self.connections.max(1) as f64
    }
}

/// Starts `target`, opens `count` idle connections to its OTLP/gRPC port
/// and reads its resident set before and with them.
pub async fn idle(options: &Options, target: Target, count: usize) -> anyhow::Result<Held> {
    let topic = spanway_e2e::unique_name(&format!("bench-connections-{}", target.name()));
    crate::workload::create_topic(&options.kafka, &topic, options.partitions).await?;
    let ports = Ports::free()?;
    let log = options
        .log_dir
        .join(format!("{}-idle-connections.log", target.name()));
    let mut command = target.command(options, &topic, ports, &log.with_extension("yaml"))?;
    let mut child = MeasuredChild::spawn(&mut command, &log)?;
    let measured = async {
        wait_ready(&mut child, &target.ready_url(ports)).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let pid = child.child.id();
        let before_kib = rss_kib(pid)?;
        let mut open = Vec::with_capacity(count);
        for n in 0..count {
            open.push(
                connect(ports.otlp_grpc)
                    .await
                    .with_context(|| format!("connection {n}"))?,
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        child.check_running()?;
        let after_kib = rss_kib(pid)?;
        anyhow::Ok(Held {
            target,
            connections: open.len(),
            before_kib,
            after_kib,
        })
    }
    .await;
    child.terminate(Duration::from_secs(20));
    if !options.keep
        && let Err(error) = crate::workload::delete_topics(&options.kafka, &[topic]).await
    {
        eprintln!("warning: {error:#}");
    }
    measured
}

/// A connection the server has answered.
async fn connect(port: u16) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(HELLO).await?;
    let mut header = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut header))
        .await
        .context("no SETTINGS from the server within 10 s")??;
    anyhow::ensure!(header[3] == 4, "the server's first frame is not SETTINGS");
    Ok(stream)
}

/// The Markdown table of the runs.
pub fn markdown(runs: &[Held]) -> String {
    let mut out = String::from(
        "| collector | idle connections | RSS before, KiB | RSS with them, KiB | KiB per connection |\n|---|--:|--:|--:|--:|\n",
    );
    for run in runs {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.1} |\n",
            run.target.name(),
            run.connections,
            run.before_kib,
            run.after_kib,
            run.per_connection()
        ));
    }
    out
}
