//! Ours beside each peer that ran in the same invocation, as ratios: the
//! figures the speed targets are written in (CPU per span against Jaeger
//! v2's, peak memory against its, spans per search-engine CPU-second
//! against its), so that a run answers them without arithmetic by hand.

use std::fmt::Write as _;

use crate::report::thousands;

/// The system whose figures are the numerators.
pub const OURS: &str = "spanway";

/// Systems compared with ours. Other runs (the raw bulk loader) measure
/// the engine, not a peer, and are left out.
const PEERS: [&str; 3] = ["jaeger-v2", "jaeger", crate::analytics::SERVICEGRAPH];

/// One run, reduced to what the comparison reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// `spanway`, `jaeger-v2`, ...
    pub system: String,
    /// What runs are compared within: a rate, a destination.
    pub setting: String,
    /// CPU per span, µs.
    pub cpu_us: Option<f64>,
    /// Peak RSS, MiB.
    pub rss_mib: Option<f64>,
    /// Spans stored per CPU-second of the search engine.
    pub engine_rate: Option<f64>,
    /// Other processes disturbed the run: it is left out.
    pub disturbed: bool,
}

/// The figures of one system at one setting: means over its runs (the
/// highest for peak memory, which is what a limit must hold).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Summary {
    runs: usize,
    cpu_us: Option<f64>,
    rss_mib: Option<f64>,
    engine_rate: Option<f64>,
}

fn summarise<'a>(runs: impl Iterator<Item = &'a Measured>) -> Option<Summary> {
    let runs: Vec<&Measured> = runs.filter(|r| !r.disturbed).collect();
    if runs.is_empty() {
        return None;
    }
    let mean = |field: fn(&Measured) -> Option<f64>| {
        let values: Vec<f64> = runs.iter().filter_map(|r| field(r)).collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    };
    Some(Summary {
        runs: runs.len(),
        cpu_us: mean(|r| r.cpu_us),
        rss_mib: runs.iter().filter_map(|r| r.rss_mib).reduce(f64::max),
        engine_rate: mean(|r| r.engine_rate),
    })
}

/// `ours / peer` with both figures, or `—` when either is missing.
fn cell(ours: Option<f64>, peer: Option<f64>, show: fn(f64) -> String) -> String {
    match (ours, peer) {
        (Some(ours), Some(peer)) if peer > 0.0 => {
            format!("{} / {} = {:.2}", show(ours), show(peer), ours / peer)
        }
        _ => "—".into(),
    }
}

/// A Markdown table with one row per peer and setting that both ours and
/// the peer ran undisturbed; empty when no peer ran.
pub fn table(runs: &[Measured]) -> String {
    let mut settings: Vec<&str> = Vec::new();
    for run in runs {
        if !settings.contains(&run.setting.as_str()) {
            settings.push(&run.setting);
        }
    }
    let mut rows = String::new();
    for setting in settings {
        let of = |system: &str| {
            summarise(
                runs.iter()
                    .filter(|r| r.setting == setting && r.system == system),
            )
        };
        let Some(ours) = of(OURS) else { continue };
        for peer_name in PEERS {
            let Some(peer) = of(peer_name) else { continue };
            let _ = writeln!(
                rows,
                "| {setting} | {peer_name} | {} / {} | {} | {} | {} |",
                ours.runs,
                peer.runs,
                cell(ours.cpu_us, peer.cpu_us, |v| format!("{v:.2}")),
                cell(ours.rss_mib, peer.rss_mib, |v| format!("{v:.0}")),
                cell(ours.engine_rate, peer.engine_rate, thousands),
            );
        }
    }
    if rows.is_empty() {
        return rows;
    }
    format!(
        "Against peers (ours / peer; means over undisturbed runs, the highest peak RSS):\n\n\
         | setting | peer | runs | µs CPU per span | peak RSS MiB | spans per OpenSearch CPU-s |\n\
         |---|---|--:|--:|--:|--:|\n{rows}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(system: &str, setting: &str, cpu: f64, rss: f64, engine: Option<f64>) -> Measured {
        Measured {
            system: system.into(),
            setting: setting.into(),
            cpu_us: Some(cpu),
            rss_mib: Some(rss),
            engine_rate: engine,
            disturbed: false,
        }
    }

    #[test]
    fn pairs_each_peer_with_ours_at_the_same_setting() {
        let mut disturbed = run("spanway", "50000", 100.0, 999.0, None);
        disturbed.disturbed = true;
        let runs = [
            run("spanway", "50000", 2.0, 40.0, None),
            run("jaeger-v2", "50000", 9.0, 87.0, None),
            run("spanway", "50000", 3.0, 20.0, None),
            run("jaeger-v2", "50000", 10.0, 86.0, None),
            disturbed,
            run("spanway", "OpenSearch", 4.5, 65.0, Some(13_844.0)),
            run("jaeger-v2", "OpenSearch", 35.4, 91.0, Some(15_091.0)),
            run("raw bulk", "OpenSearch", 2.7, 0.0, Some(14_052.0)),
            // A peer alone at a setting has nothing to be compared with.
            run("jaeger-v2", "max", 9.4, 1870.0, None),
        ];
        let table = table(&runs);
        let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| ")).collect();
        assert_eq!(rows.len(), 3, "{table}");
        assert_eq!(
            rows[1],
            "| 50000 | jaeger-v2 | 2 / 2 | 2.50 / 9.50 = 0.26 | 40 / 87 = 0.46 | — |"
        );
        assert_eq!(
            rows[2],
            "| OpenSearch | jaeger-v2 | 1 / 1 | 4.50 / 35.40 = 0.13 | 65 / 91 = 0.71 | 13,844 / 15,091 = 0.92 |"
        );
    }

    #[test]
    fn nothing_when_no_peer_ran() {
        let runs = [
            run("spanway", "50000", 2.0, 40.0, None),
            run("raw bulk", "OpenSearch", 2.7, 0.0, Some(14_052.0)),
        ];
        assert_eq!(table(&runs), "");
    }
}
