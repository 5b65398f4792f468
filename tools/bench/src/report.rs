//! The results as text: one line per run while the benchmark goes, and a
//! Markdown table at the end, ready for `docs/benchmarks.md`.

use std::fmt::Write as _;
use std::time::Duration;

use crate::measure::Machine;
use crate::peers::{self, Measured};
use crate::runs::RunResult;

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "—".into(), |d| format!("{:.2}", d.as_secs_f64()))
}

/// `n` rounded, with thousands separated by commas.
pub fn thousands(n: f64) -> String {
    let n = n.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A one-line summary, printed as each run ends.
pub fn one_line(r: &RunResult) -> String {
    let mut line = format!(
        "  {}: {} spans in {:.2} s = {} spans/s (steady {}), CPU {} s = {} µs/span, peak RSS {} MiB, load {:.2}",
        r.name,
        r.spans,
        r.wall.as_secs_f64(),
        thousands(r.rate()),
        r.steady_rate().map_or_else(|| "—".into(), thousands),
        secs(r.cpu),
        r.cpu_per_span_us()
            .map_or_else(|| "—".into(), |us| format!("{us:.1}")),
        r.peak_rss_kib
            .map_or_else(|| "—".into(), |k| format!("{:.0}", k as f64 / 1024.0)),
        r.load_before[0],
    );
    if r.disturbed() {
        line.push_str(&format!(
            " [DISTURBED: others used {} s CPU]",
            secs(r.others_cpu)
        ));
    }
    line
}

/// The results table and the notes under it, in Markdown.
pub fn markdown(results: &[RunResult]) -> String {
    let mut out = String::new();
    out.push_str(
        "| run | spans | wall s | spans/s | steady spans/s | CPU s | µs CPU/span | peak RSS MiB \
         | OpenSearch CPU s | OpenSearch CPU s until quiet | spans per OpenSearch CPU-s \
         | Kafka CPU s | bench CPU s | others CPU s | load 1m before → after |\n",
    );
    out.push_str("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for r in results {
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} → {:.2} |",
            r.name,
            thousands(r.spans as f64),
            r.wall.as_secs_f64(),
            thousands(r.rate()),
            r.steady_rate().map_or_else(|| "—".into(), thousands),
            secs(r.cpu),
            r.cpu_per_span_us()
                .map_or_else(|| "—".into(), |us| format!("{us:.1}")),
            r.peak_rss_kib
                .map_or_else(|| "—".into(), |k| format!("{:.0}", k as f64 / 1024.0)),
            secs(r.engine_cpu),
            secs(r.engine_cpu_settled),
            r.engine_cpu_settled
                .filter(|cpu| !cpu.is_zero())
                .map_or_else(
                    || "—".into(),
                    |cpu| thousands(r.spans as f64 / cpu.as_secs_f64())
                ),
            secs(r.kafka_cpu),
            secs(r.bench_cpu),
            secs(r.others_cpu),
            r.load_before[0],
            r.load_after[0],
        );
    }
    out.push('\n');
    for r in results {
        if r.disturbed() {
            let _ = writeln!(
                out,
                "- {}: DISTURBED: other processes used {} s of CPU during the run; repeat it",
                r.name,
                secs(r.others_cpu)
            );
        }
        for note in &r.notes {
            let _ = writeln!(out, "- {}: {note}", r.name);
        }
    }
    out
}

/// Ours beside each peer at the same destination ([`peers::table`]).
pub fn against_peers(results: &[RunResult]) -> String {
    let runs: Vec<Measured> = results
        .iter()
        .map(|r| {
            // Names are `<system> → <destination>`.
            let (system, setting) = r.name.split_once(" → ").unwrap_or((&r.name, ""));
            Measured {
                system: system.into(),
                setting: setting.into(),
                cpu_us: r.cpu_per_span_us(),
                rss_mib: r.peak_rss_kib.map(|k| k as f64 / 1024.0),
                engine_rate: r
                    .engine_cpu_settled
                    .filter(|cpu| !cpu.is_zero())
                    .map(|cpu| r.spans as f64 / cpu.as_secs_f64()),
                disturbed: r.disturbed(),
            }
        })
        .collect();
    peers::table(&runs)
}

/// The machine, in one line.
pub fn machine(m: &Machine) -> String {
    format!(
        "{} CPUs ({}), {:.1} GiB RAM, Linux {}",
        m.cpus,
        m.cpu_model,
        m.memory_mib as f64 / 1024.0,
        m.kernel
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1234567.0), "1,234,567");
    }
}
