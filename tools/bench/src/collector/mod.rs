//! The collector benchmark: OTLP/gRPC load at a chosen span rate (or as
//! fast as it is answered) against our collector and, beside it, Jaeger v2
//! (OTLP receiver, Kafka exporter) or Jaeger's v1 collector with its Kafka
//! span writer, all on the same broker.
//!
//! | module | role |
//! |---|---|
//! | [`traffic`] | realistic export requests, generated once |
//! | [`load`] | pacing, calls in flight, latency |
//! | [`run`] | the collector as a child process, `/proc` figures |
//! | [`topic`] | what the topic holds afterwards |
//! | [`connections`] | memory held by idle client connections |
//! | [`report`] | lines and the Markdown table |
//!
//! Runs go one after another, never side by side: for each rate and
//! repetition, both collectors, the order alternating between repetitions
//! so neither always runs on a machine the other has just warmed up.

pub mod connections;
pub mod load;
pub mod report;
pub mod run;
pub mod topic;
pub mod traffic;

use anyhow::bail;

use self::run::{Options, RunResult, Target};
use self::traffic::{Pool, Shape};

/// Fails early, with the command that fixes it, when something is missing.
fn preflight(options: &Options) -> anyhow::Result<()> {
    if !options.collector_bin.is_file() {
        bail!(
            "no collector binary at {}; build it with `cargo build --release -p spanway-collector`",
            options.collector_bin.display()
        );
    }
    if options.with_jaeger && !options.jaeger_bin.is_file() {
        bail!(
            "no Jaeger collector at {}; build it with `dev/jaeger build collector`",
            options.jaeger_bin.display()
        );
    }
    if options.with_jaeger_v2 && !options.jaeger_v2_bin.is_file() {
        bail!(
            "no Jaeger v2 at {}; build it with `dev/jaeger build v2`",
            options.jaeger_v2_bin.display()
        );
    }
    if options.rates.is_empty() {
        bail!("no --rate given");
    }
    Ok(())
}

/// The whole benchmark.
pub async fn benchmark(options: &Options) -> anyhow::Result<Vec<RunResult>> {
    preflight(options)?;
    std::fs::create_dir_all(&options.log_dir)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", options.log_dir.display()))?;
    let pool = Pool::generate(Shape {
        requests: options.pool_requests,
        traces_per_request: options.traces_per_request,
        min_spans: 5,
        max_spans: 20,
    });
    eprintln!(
        "traffic: {} distinct requests of {} traces, {:.0} spans and {:.0} KiB per request on average",
        options.pool_requests,
        options.traces_per_request,
        pool.mean_spans(),
        pool.mean_bytes() / 1024.0
    );
    let mut targets = vec![Target::Spanway];
    if options.with_jaeger {
        targets.push(Target::Jaeger);
    }
    if options.with_jaeger_v2 {
        targets.push(Target::JaegerV2);
    }
    let mut results = Vec::new();
    for &rate in &options.rates {
        for repetition in 1..=options.repeat.max(1) {
            let mut order = targets.clone();
            if repetition % 2 == 0 {
                order.reverse();
            }
            for target in order {
                let result = run::run(options, &pool, target, rate, repetition).await?;
                eprintln!("{}", report::one_line(&result));
                results.push(result);
            }
        }
    }
    Ok(results)
}
