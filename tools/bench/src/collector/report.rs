//! The collector runs as text: one line per run while the benchmark goes,
//! and a Markdown table at the end, ready for `docs/benchmarks.md`.

use std::fmt::Write as _;
use std::time::Duration;

use super::run::RunResult;
use crate::peers::{self, Measured};
use crate::report::thousands;

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "—".into(), |d| format!("{:.2}", d.as_secs_f64()))
}

fn millis(d: Option<Duration>) -> String {
    d.map_or_else(
        || "—".into(),
        |d| format!("{:.1}", d.as_secs_f64() * 1000.0),
    )
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "—".into(), |k| format!("{:.0}", k as f64 / 1024.0))
}

/// `exact`, or what differs between the topic and the accepted spans.
pub fn check(r: &RunResult) -> String {
    if r.verified() {
        return "exact".into();
    }
    let mut parts = Vec::new();
    let accepted = r.expected_on_topic();
    if r.topic.spans < accepted {
        parts.push(format!(
            "LOST {}",
            thousands((accepted - r.topic.spans) as f64)
        ));
    }
    if r.topic.spans > accepted {
        parts.push(format!(
            "EXTRA {}",
            thousands((r.topic.spans - accepted) as f64)
        ));
    }
    if r.topic.duplicates > 0 {
        parts.push(format!(
            "{} duplicates",
            thousands(r.topic.duplicates as f64)
        ));
    }
    if r.topic.undecodable > 0 {
        parts.push(format!("{} undecodable records", r.topic.undecodable));
    }
    parts.join(", ")
}

fn failed(r: &RunResult) -> String {
    if r.load.failed.is_empty() {
        return "0".into();
    }
    r.load
        .failed
        .iter()
        .map(|(code, n)| format!("{n} {code}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A one-line summary, printed as each run ends.
pub fn one_line(r: &RunResult) -> String {
    let mut line = format!(
        "  {} #{}: {} of {} spans accepted = {} spans/s ({} spans/s to Kafka); {} requests, failed {}, late {}; \
         latency p50 {} p99 {} max {} ms; CPU {} s = {} s/100k spans; peak RSS {} MiB; \
         drain {} s; topic {} spans in {} records: {}",
        r.name(),
        r.repetition,
        r.load.spans_accepted,
        r.load.spans_sent,
        thousands(r.load.accepted_rate()),
        thousands(r.stored_rate()),
        r.load.requests,
        failed(r),
        r.load.late,
        millis(r.load.latency(0.5)),
        millis(r.load.latency(0.99)),
        millis(r.load.latency(1.0)),
        secs(r.cpu),
        r.cpu_per_100k()
            .map_or_else(|| "—".into(), |s| format!("{s:.2}")),
        mib(r.peak_rss_kib),
        secs(Some(r.drain)),
        r.topic.spans,
        r.topic.records,
        check(r),
    );
    if r.disturbed() {
        let _ = write!(
            line,
            " [DISTURBED: others used {} s CPU]",
            secs(r.others_cpu)
        );
    }
    line
}

/// The results table and the notes under it, in Markdown.
pub fn markdown(results: &[RunResult]) -> String {
    let mut out = String::new();
    out.push_str(
        "| run | # | requests | failed | late | accepted spans | accepted spans/s | to Kafka spans/s \
         | p50 ms | p99 ms | max ms | CPU s | CPU s / 100k spans | peak RSS MiB | drain s \
         | Kafka CPU s | bench CPU s | others CPU s | topic | load 1m before → after |\n",
    );
    out.push_str(
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|\n",
    );
    for r in results {
        let mut others = secs(r.others_cpu);
        if r.disturbed() {
            others.push_str(" DISTURBED");
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} → {:.2} |",
            r.name(),
            r.repetition,
            thousands(r.load.requests as f64),
            failed(r),
            r.load.late,
            thousands(r.load.spans_accepted as f64),
            thousands(r.load.accepted_rate()),
            thousands(r.stored_rate()),
            millis(r.load.latency(0.5)),
            millis(r.load.latency(0.99)),
            millis(r.load.latency(1.0)),
            secs(r.cpu),
            r.cpu_per_100k()
                .map_or_else(|| "—".into(), |s| format!("{s:.2}")),
            mib(r.peak_rss_kib),
            secs(Some(r.drain)),
            secs(r.kafka_cpu),
            secs(Some(r.bench_cpu)),
            others,
            check(r),
            r.load_before[0],
            r.load_after[0],
        );
    }
    out.push('\n');
    for r in results {
        if r.disturbed() {
            let _ = writeln!(
                out,
                "- {} #{}: DISTURBED: other processes used {} s of CPU during the run; repeat it",
                r.name(),
                r.repetition,
                secs(r.others_cpu)
            );
        }
        if !r.threads.is_empty() {
            let threads: Vec<String> = r
                .threads
                .iter()
                .map(|(name, cpu)| format!("{name} {:.2}", cpu.as_secs_f64()))
                .collect();
            let _ = writeln!(
                out,
                "- {} #{}: CPU s by thread: {}",
                r.name(),
                r.repetition,
                threads.join(", ")
            );
        }
        for note in &r.notes {
            let _ = writeln!(out, "- {} #{}: {note}", r.name(), r.repetition);
        }
    }
    out
}

/// Ours beside each peer at the same rate ([`peers::table`]).
pub fn against_peers(results: &[RunResult]) -> String {
    let runs: Vec<Measured> = results
        .iter()
        .map(|r| Measured {
            system: r.target.name().into(),
            setting: format!("{} spans/s", r.rate),
            // Seconds per 100,000 spans are tens of µs per span.
            cpu_us: r.cpu_per_100k().map(|s| s * 10.0),
            rss_mib: r.peak_rss_kib.map(|k| k as f64 / 1024.0),
            engine_rate: None,
            disturbed: r.disturbed(),
        })
        .collect();
    peers::table(&runs)
}
