//! What clients that hold things open cost a collector's memory.
//!
//! - Idle connections (`--idle-connections`), the figure behind the
//!   collector's default `max_connections`: each gets the HTTP/2 preface
//!   and an empty SETTINGS frame, as a gRPC client opens one, and nothing
//!   more; it counts once the server has answered with its own SETTINGS.
//! - Calls held open (`--held-open-calls`): each sends one gzip-compressed
//!   export of a few KiB that inflates to about 4 MB, and never ends its
//!   stream. A server that keeps the inflated message until the stream
//!   ends holds a thousand times what was sent.
//!
//! The resident set is read before and a few seconds after the last
//! connection or call, while they are all open.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use prost::Message as _;
use spanway_schemas::proto::otlp;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::run::{Options, Ports, Target, wait_ready};
use crate::measure::{MeasuredChild, rss_kib};

/// The client preface and an empty SETTINGS frame.
const HELLO: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
/// The inflated size of a held-open call's message: below the 4 MiB both
/// collectors take by default.
const INFLATED: usize = 4_000_000;
/// Calls held open on one connection: below both servers' stream limits.
const CALLS_PER_CONNECTION: usize = 100;
/// How long the held-open calls are given to be answered.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);

/// One target's figures.
#[derive(Debug, Clone)]
pub struct Held {
    /// Which collector.
    pub target: Target,
    /// Connections, or calls, open at the second reading.
    pub count: usize,
    /// Calls answered while held open (none for idle connections).
    pub answered: usize,
    /// Resident set before any, KiB.
    pub before_kib: u64,
    /// Resident set with all of them open, KiB.
    pub after_kib: u64,
}

impl Held {
    /// KiB per connection or call.
    pub fn per_one(&self) -> f64 {
        self.after_kib.saturating_sub(self.before_kib) as f64 / self.count.max(1) as f64
    }
}

/// Starts `target` on a fresh topic, runs `probe` with its pid and ports
/// once it is ready and settled, checks it survived, and stops it.
async fn probing<F, Fut>(
    options: &Options,
    target: Target,
    what: &str,
    probe: F,
) -> anyhow::Result<Held>
where
    F: FnOnce(u32, Ports) -> Fut,
    Fut: Future<Output = anyhow::Result<Held>>,
{
    let topic = spanway_e2e::unique_name(&format!("bench-{what}-{}", target.name()));
    crate::workload::create_topic(&options.kafka, &topic, options.partitions).await?;
    let ports = Ports::free()?;
    let log = options
        .log_dir
        .join(format!("{}-{what}.log", target.name()));
    let mut command = target.command(options, &topic, ports, &log.with_extension("yaml"))?;
    let mut child = MeasuredChild::spawn(&mut command, &log)?;
    let measured = async {
        wait_ready(&mut child, &target.ready_url(ports)).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let held = probe(child.child.id(), ports).await?;
        child.check_running()?;
        anyhow::Ok(held)
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

/// Starts `target`, opens `count` idle connections to its OTLP/gRPC port
/// and reads its resident set before and with them.
pub async fn idle(options: &Options, target: Target, count: usize) -> anyhow::Result<Held> {
    probing(
        options,
        target,
        "idle-connections",
        |pid, ports| async move {
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
            let after_kib = rss_kib(pid)?;
            Ok(Held {
                target,
                count: open.len(),
                answered: 0,
                before_kib,
                after_kib,
            })
        },
    )
    .await
}

/// Starts `target`, makes `calls` OTLP/gRPC exports to it that send their
/// compressed message and never end their streams, and reads its resident
/// set before and with them.
pub async fn held_open(options: &Options, target: Target, calls: usize) -> anyhow::Result<Held> {
    let framed = inflating_export();
    probing(
        options,
        target,
        "held-open-calls",
        |pid, ports| async move {
            let before_kib = rss_kib(pid)?;
            let answered = Arc::new(AtomicUsize::new(0));
            let mut open = Vec::with_capacity(calls);
            let mut left = calls;
            while left > 0 {
                let here = left.min(CALLS_PER_CONNECTION);
                open.extend(hold_calls(ports.otlp_grpc, here, &framed, &answered).await?);
                left -= here;
            }
            tokio::time::sleep(ANSWER_WITHIN).await;
            let after_kib = rss_kib(pid)?;
            Ok(Held {
                target,
                count: open.len(),
                answered: answered.load(Ordering::Relaxed),
                before_kib,
                after_kib,
            })
        },
    )
    .await
}

/// An export of one span with an attribute of [`INFLATED`] bytes,
/// gzip-compressed and framed as a gRPC message.
fn inflating_export() -> Bytes {
    let span = otlp::Span {
        trace_id: vec![7; 16],
        span_id: vec![1; 8],
        name: "held".into(),
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_001_000_000,
        attributes: vec![otlp::KeyValue::new(
            "payload",
            otlp::any_value::Value::StringValue("x".repeat(INFLATED)),
        )],
        ..Default::default()
    };
    let request = otlp::ExportTraceServiceRequest {
        resource_spans: vec![otlp::ResourceSpans {
            resource: Some(otlp::Resource {
                attributes: vec![otlp::KeyValue::new(
                    "service.name",
                    otlp::any_value::Value::StringValue("bench".into()),
                )],
                ..Default::default()
            }),
            scope_spans: vec![otlp::ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = std::io::Write::write_all(&mut gzip, &request.encode_to_vec());
    let compressed = gzip.finish().unwrap_or_default();
    let mut framed = Vec::with_capacity(5 + compressed.len());
    framed.push(1);
    framed.extend_from_slice(
        &u32::try_from(compressed.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    framed.extend_from_slice(&compressed);
    Bytes::from(framed)
}

/// `calls` exports on one new connection, each sending `framed` without
/// ending its stream; `answered` counts those the server answers.
async fn hold_calls(
    port: u16,
    calls: usize,
    framed: &Bytes,
    answered: &Arc<AtomicUsize>,
) -> anyhow::Result<Vec<h2::SendStream<Bytes>>> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let (client, connection) = h2::client::handshake(tcp).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await?;
    let mut open = Vec::with_capacity(calls + 1);
    for _ in 0..calls {
        let call = tonic::codegen::http::Request::post(format!(
            "http://127.0.0.1:{port}/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        ))
        .header("content-type", "application/grpc")
        .header("grpc-encoding", "gzip")
        .header("te", "trailers")
        .body(())?;
        client = client.ready().await?;
        let (response, mut stream) = client.send_request(call, false)?;
        stream.send_data(framed.clone(), false)?;
        open.push(stream);
        let answered = answered.clone();
        tokio::spawn(async move {
            if response.await.is_ok() {
                answered.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    Ok(open)
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

/// The Markdown table of idle-connection runs.
pub fn markdown(runs: &[Held]) -> String {
    let mut out = String::from(
        "| collector | idle connections | RSS before, KiB | RSS with them, KiB | KiB per connection |\n|---|--:|--:|--:|--:|\n",
    );
    for run in runs {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.1} |\n",
            run.target.name(),
            run.count,
            run.before_kib,
            run.after_kib,
            run.per_one()
        ));
    }
    out
}

/// The Markdown table of held-open-call runs.
pub fn held_open_markdown(runs: &[Held]) -> String {
    let mut out = format!(
        "| collector | calls held open | answered within {} s | RSS before, KiB | RSS with them, KiB | KiB per call |\n|---|--:|--:|--:|--:|--:|\n",
        ANSWER_WITHIN.as_secs()
    );
    for run in runs {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.1} |\n",
            run.target.name(),
            run.count,
            run.answered,
            run.before_kib,
            run.after_kib,
            run.per_one()
        ));
    }
    out
}
