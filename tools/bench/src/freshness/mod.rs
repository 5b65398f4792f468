//! Freshness: how long after the collector acknowledged a span a search
//! finds it, with the whole pipeline (collector → Kafka → ingester →
//! OpenSearch) under a fixed background load.
//!
//! The background load is the collector benchmark's traffic, open loop at
//! the chosen rate. Beside it, probes: single-span traces with random ids,
//! sent on their own connection a few times a second. A probe's clock
//! starts when the collector answers OK (ours answers once Kafka has the
//! span; Jaeger v2 once its exporter queue has it), and stops when a search
//! of the span indices by trace id returns it. One search asks for every
//! probe not yet found, every `poll` interval, so the figures are upper
//! bounds with a resolution of about one poll plus one search, and the
//! searches add a small, fixed load whatever the rate.
//!
//! Searches go through the engine's normal path: no refresh is forced, so
//! a span becomes visible at the first scheduled refresh after its bulk
//! write, as it would for a user of Jaeger query.
//!
//! A run counts only if every probe was found and the indices hold every
//! span the collector accepted (background and probes) once the run is
//! over: freshness of a pipeline that loses spans, or cannot keep up and
//! falls ever further behind, is not freshness.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::collector::load::{Outcome, quantile};
use crate::collector::run::{free_ports, wait_ready};
use crate::collector::traffic::{Pool, Shape};
use crate::measure::{MeasuredChild, Meter};
use crate::report::thousands;

mod probes;
mod search;

use probes::{measure, wait_stored};
pub use search::{Behind, Found, Search};
use search::{Stepper, judge};

/// Everything a freshness benchmark needs to know.
#[derive(Debug, Clone)]
pub struct Options {
    /// Background span rates, one set of runs each; ignored when
    /// `find_max` is set.
    pub rates: Vec<f64>,
    /// Look for the highest rate our pipeline sustains, then measure at
    /// half of it (the freshness target's load) instead of at `rates`.
    pub find_max: Option<Search>,
    /// How long probes are sent for, after the warm-up.
    pub duration: Duration,
    /// Background load before the probes start (topic metadata, index
    /// creation, the consumer group's first assignment).
    pub warmup: Duration,
    /// Probes sent per second.
    pub probes_per_second: f64,
    /// Interval between searches for the probes not yet found.
    pub poll: Duration,
    /// A probe not found this long after the last one was sent is lost.
    pub give_up: Duration,
    /// Also run Jaeger v2 as collector and ingester.
    pub with_jaeger_v2: bool,
    /// Runs of each (rate, pipeline).
    pub repeat: usize,
    /// Kafka bootstrap address.
    pub kafka: String,
    /// OpenSearch base URL.
    pub opensearch: String,
    /// Partitions of each run's topic.
    pub partitions: i32,
    /// Our collector's release binary.
    pub collector_bin: PathBuf,
    /// Our ingester's release binary.
    pub ingester_bin: PathBuf,
    /// Jaeger v2's binary.
    pub jaeger_v2_bin: PathBuf,
    /// Where the processes' logs go.
    pub log_dir: PathBuf,
    /// Pause before each run.
    pub settle: Duration,
    /// Extra environment for our ingester.
    pub ingester_env: Vec<(String, String)>,
    /// Where `dev/services` keeps its pid files, to read the engine's CPU.
    pub services_dir: PathBuf,
}

/// Which pipeline a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pipeline {
    /// `spanway-collector` and `spanway-ingester`.
    Spanway,
    /// Jaeger v2 twice: OTLP → Kafka, and Kafka → OpenSearch.
    JaegerV2,
}

impl Pipeline {
    /// `spanway` or `jaeger-v2`.
    pub fn name(self) -> &'static str {
        match self {
            Pipeline::Spanway => "spanway",
            Pipeline::JaegerV2 => "jaeger-v2",
        }
    }
}

/// The figures of one run.
#[derive(Debug)]
pub struct RunResult {
    /// Which pipeline.
    pub pipeline: Pipeline,
    /// The background rate asked for, spans/s.
    pub rate: f64,
    /// 1-based repetition.
    pub repetition: usize,
    /// What the background load saw (warm-up apart).
    pub load: Outcome,
    /// Probes the collector acknowledged.
    pub probes: usize,
    /// Probes refused by the collector.
    pub probes_refused: usize,
    /// Acknowledgement → found, for each probe found, sorted.
    pub latencies: Vec<Duration>,
    /// Span documents a search finds once the run is over.
    pub stored: u64,
    /// Spans the collector accepted: background (with its warm-up) and probes.
    pub accepted: u64,
    /// OpenSearch's CPU while the load ran (warm-up included), when its
    /// pid file was found: what the pipeline's steady writes and the
    /// refreshes they need cost the engine.
    pub engine_cpu: Option<Duration>,
    /// CPU other processes used while the load ran: the machine's busy time
    /// less the pipeline's, the engine's, Kafka's and this process's.
    pub others_cpu: Option<Duration>,
    /// How long the load ran, warm-up included.
    pub elapsed: Duration,
    /// The probes' median freshness in the run's last third over that in
    /// its first third: about 1 when the pipeline keeps up with the rate,
    /// well above when it falls behind (see `probes::trend`).
    pub trend: Option<f64>,
}

impl RunResult {
    /// Probes acknowledged but never found.
    pub fn lost(&self) -> usize {
        self.probes.saturating_sub(self.latencies.len())
    }

    /// Every probe found and every accepted span stored, no call refused.
    pub fn verified(&self) -> bool {
        self.lost() == 0
            && self.probes_refused == 0
            && self.stored == self.accepted
            && self.load.failed_total() == 0
    }

    /// Whether other processes took a noticeable share of the machine.
    pub fn disturbed(&self) -> bool {
        crate::measure::disturbed(self.others_cpu, self.elapsed)
    }

    /// Engine CPU per accepted span while the load ran, in µs.
    pub fn engine_us_per_span(&self) -> Option<f64> {
        let cpu = self.engine_cpu?;
        (self.accepted > 0).then(|| cpu.as_secs_f64() * 1e6 / self.accepted as f64)
    }

    /// The `q` quantile of the probes' freshness, nearest rank.
    pub fn freshness(&self, q: f64) -> Option<Duration> {
        quantile(&self.latencies, q)
    }
}

/// What a benchmark saw.
#[derive(Debug, Default)]
pub struct Report {
    /// The search's runs (our pipeline), each with whether it kept up.
    pub search: Vec<(RunResult, Result<(), Behind>)>,
    /// What the search found, when there was one.
    pub found: Option<Found>,
    /// The runs at the rates asked for, or at half the maximum found.
    pub runs: Vec<RunResult>,
}

/// Runs every rate for each pipeline, one run at a time; with a search,
/// first finds the highest rate our pipeline sustains and then runs each
/// pipeline at half of it.
pub async fn benchmark(options: &Options) -> anyhow::Result<Report> {
    preflight(options)?;
    std::fs::create_dir_all(&options.log_dir)
        .with_context(|| format!("creating {}", options.log_dir.display()))?;
    let pool = Pool::generate(Shape {
        requests: 64,
        traces_per_request: 40,
        min_spans: 5,
        max_spans: 20,
    });
    let mut report = Report::default();
    let rates = match options.find_max {
        None => options.rates.clone(),
        Some(search) => {
            let found = find_max(options, &pool, search, &mut report.search).await?;
            eprintln!("{}", found_line(&found));
            let half = found.half();
            report.found = Some(found);
            match half {
                Some(half) => vec![half],
                None => return Ok(report),
            }
        }
    };
    let mut pipelines = vec![Pipeline::Spanway];
    if options.with_jaeger_v2 {
        pipelines.push(Pipeline::JaegerV2);
    }
    for rate in rates {
        for repetition in 1..=options.repeat.max(1) {
            let mut order = pipelines.clone();
            if repetition % 2 == 0 {
                order.reverse();
            }
            for pipeline in order {
                tokio::time::sleep(options.settle).await;
                let result = run(options, &pool, pipeline, rate, repetition).await?;
                eprintln!("{}", one_line(&result));
                report.runs.push(result);
            }
        }
    }
    Ok(report)
}

/// Steps our pipeline's rate up until a rate does not keep up twice.
async fn find_max(
    options: &Options,
    pool: &Pool,
    search: Search,
    runs: &mut Vec<(RunResult, Result<(), Behind>)>,
) -> anyhow::Result<Found> {
    let mut stepper = Stepper::new(search);
    loop {
        let rate = stepper.rate();
        let repetition = 1 + runs.iter().filter(|(r, _)| r.rate == rate).count();
        tokio::time::sleep(options.settle).await;
        let result = run(options, pool, Pipeline::Spanway, rate, repetition).await?;
        let verdict = judge(&result, &search);
        eprintln!(
            "{}; {}",
            one_line(&result),
            verdict.as_ref().map_or_else(
                |why| format!("did not keep up: {why}"),
                |()| "kept up".into()
            )
        );
        runs.push((result, verdict.clone()));
        if let Some(found) = stepper.record(verdict) {
            return Ok(found);
        }
    }
}

/// One sentence on what a search found.
pub fn found_line(found: &Found) -> String {
    match found {
        Found::Max {
            rate,
            stopped: Some((next, why)),
        } => format!(
            "highest rate kept up: {} spans/s ({} did not, twice: {why}); measured at half: {} spans/s",
            thousands(*rate),
            thousands(*next),
            thousands(found.half().unwrap_or_default())
        ),
        Found::Max {
            rate,
            stopped: None,
        } => format!(
            "every rate up to the search's cap kept up: at least {} spans/s; measured at half: {} spans/s",
            thousands(*rate),
            thousands(found.half().unwrap_or_default())
        ),
        Found::BelowFirst(rate, why) => format!(
            "not even the first rate, {} spans/s, kept up ({why}); start lower with --rate",
            thousands(*rate)
        ),
    }
}

fn preflight(options: &Options) -> anyhow::Result<()> {
    for (bin, build) in [
        (
            &options.collector_bin,
            "cargo build --release -p spanway-collector",
        ),
        (
            &options.ingester_bin,
            "cargo build --release -p spanway-ingester",
        ),
    ] {
        if !bin.is_file() {
            bail!("no binary at {}; build it with `{build}`", bin.display());
        }
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
    if let Some(search) = &options.find_max {
        search.validate().map_err(anyhow::Error::msg)?;
    }
    if !options.probes_per_second.is_finite() || options.probes_per_second <= 0.0 {
        bail!("--probes-per-second must be positive");
    }
    Ok(())
}

/// Primary shards of both pipelines' indices: one, as in every freshness
/// figure so far.
const FRESHNESS_SHARDS: u32 = 1;

/// The longest a run waits for OpenSearch to finish what earlier runs left
/// (merges): freshness on a busy engine measures that work too.
const ENGINE_QUIET_LIMIT: Duration = Duration::from_secs(120);

/// Names of one run's topic, group and indices.
struct Names {
    topic: String,
    group: String,
    prefix: String,
}

async fn run(
    options: &Options,
    pool: &Pool,
    pipeline: Pipeline,
    rate: f64,
    repetition: usize,
) -> anyhow::Result<RunResult> {
    eprintln!(
        "run: {} @ {rate:.0} spans/s, repetition {repetition}",
        pipeline.name()
    );
    if let Some(waited) = crate::measure::engine_quiet(&options.services_dir, ENGINE_QUIET_LIMIT)
        .await
        .filter(|waited| *waited > Duration::from_secs(2))
    {
        eprintln!(
            "  waited {:.0} s for OpenSearch to go quiet",
            waited.as_secs_f64()
        );
    }
    let names = Names {
        topic: spanway_e2e::unique_name("bench-fresh"),
        group: spanway_e2e::unique_name("bench-fresh"),
        prefix: spanway_e2e::unique_name("fresh"),
    };
    crate::workload::create_topic(&options.kafka, &names.topic, options.partitions).await?;
    let result = with_processes(options, pool, pipeline, rate, repetition, &names).await;
    let _ = crate::workload::delete_group(&options.kafka, &names.group).await;
    if let Err(error) = crate::workload::delete_topics(
        &options.kafka,
        &[names.topic.clone(), format!("{}-dlq", names.topic)],
    )
    .await
    {
        eprintln!("warning: {error:#}");
    }
    spanway_e2e::delete_prefixed(&options.opensearch, &names.prefix).await;
    result
}

/// Starts the pipeline's two processes, measures, and stops them.
async fn with_processes(
    options: &Options,
    pool: &Pool,
    pipeline: Pipeline,
    rate: f64,
    repetition: usize,
    names: &Names,
) -> anyhow::Result<RunResult> {
    let stem = format!("{}-{rate:.0}-{repetition}", pipeline.name());
    let ports = free_ports(2)?;
    let (otlp_port, health_port) = (ports[0], ports[1]);
    let (mut ingester_command, mut collector_command) = match pipeline {
        Pipeline::Spanway => {
            let mut ingester = crate::runs::spanway_command(
                &options.ingester_bin,
                &options.kafka,
                &names.topic,
                &names.group,
                &options.opensearch,
                &names.prefix,
                FRESHNESS_SHARDS,
            );
            ingester.envs(options.ingester_env.iter().cloned());
            let collector = crate::collector::run::spanway_command(
                &options.collector_bin,
                &options.kafka,
                &names.topic,
                otlp_port,
                health_port,
            );
            (ingester, collector)
        }
        Pipeline::JaegerV2 => {
            let ingester_yaml = options.log_dir.join(format!("{stem}-ingester.yaml"));
            let collector_yaml = options.log_dir.join(format!("{stem}-collector.yaml"));
            let ingester = crate::runs::jaeger_v2_config(
                &options.kafka,
                &names.topic,
                &names.group,
                &options.opensearch,
                &names.prefix,
                FRESHNESS_SHARDS,
            );
            let collector = crate::collector::run::jaeger_v2_config(
                &options.kafka,
                &names.topic,
                otlp_port,
                health_port,
            );
            std::fs::write(&ingester_yaml, ingester)
                .with_context(|| format!("writing {}", ingester_yaml.display()))?;
            std::fs::write(&collector_yaml, collector)
                .with_context(|| format!("writing {}", collector_yaml.display()))?;
            let with_config = |path: &PathBuf| {
                let mut command = std::process::Command::new(&options.jaeger_v2_bin);
                command.arg(format!("--config={}", path.display()));
                command
            };
            (with_config(&ingester_yaml), with_config(&collector_yaml))
        }
    };
    let mut ingester = MeasuredChild::spawn(
        &mut ingester_command,
        &options.log_dir.join(format!("{stem}-ingester.log")),
    )?;
    let collector = MeasuredChild::spawn(
        &mut collector_command,
        &options.log_dir.join(format!("{stem}-collector.log")),
    );
    let mut collector = match collector {
        Ok(child) => child,
        Err(error) => {
            ingester.terminate(Duration::from_secs(20));
            return Err(error);
        }
    };
    let ready_url = match pipeline {
        Pipeline::Spanway => format!("http://127.0.0.1:{health_port}/health/ready"),
        Pipeline::JaegerV2 => format!("http://127.0.0.1:{health_port}/status"),
    };
    let endpoint = format!("http://127.0.0.1:{otlp_port}");
    let measured = async {
        wait_ready(&mut collector, &ready_url).await?;
        let meter = Meter::start(&options.services_dir)?;
        let pipeline_before = cpu_of([&ingester, &collector]);
        let started = Instant::now();
        let outcome = measure(options, pool, &endpoint, rate, &names.prefix).await?;
        let pipeline_cpu = cpu_of([&ingester, &collector]).saturating_sub(pipeline_before);
        let costs = meter.finish(Some(pipeline_cpu));
        let elapsed = started.elapsed();
        ingester.check_running()?;
        collector.check_running()?;
        Ok::<_, anyhow::Error>((outcome, costs, elapsed))
    }
    .await;
    collector.terminate(Duration::from_secs(20));
    let ((load, probes), costs, elapsed) = match measured {
        Ok(measured) => measured,
        Err(error) => {
            ingester.terminate(Duration::from_secs(20));
            return Err(error);
        }
    };
    // Whatever the ingester still had in hand is written before it stops.
    let accepted = load.warmup.spans_accepted + load.spans_accepted + probes.acked as u64;
    let stored = wait_stored(&options.opensearch, &names.prefix, accepted).await;
    ingester.terminate(Duration::from_secs(20));
    Ok(RunResult {
        pipeline,
        rate,
        repetition,
        load,
        probes: probes.acked,
        probes_refused: probes.refused,
        latencies: probes.latencies,
        trend: probes.trend,
        stored,
        accepted,
        engine_cpu: costs.engine,
        others_cpu: costs.others,
        elapsed,
    })
}

/// The CPU the pipeline's processes have used so far; a process that
/// cannot be read (it exited, which the run then reports) counts nothing.
fn cpu_of(children: [&MeasuredChild; 2]) -> Duration {
    children
        .iter()
        .filter_map(|child| child.sample().ok())
        .map(|(cpu, _)| cpu)
        .sum()
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".into(),
        |d| format!("{:.0}", d.as_secs_f64() * 1000.0),
    )
}

/// One progress line per run.
pub fn one_line(r: &RunResult) -> String {
    format!(
        "{} @ {:.0}: {} probes, freshness p50 {} ms, p99 {} ms, max {} ms, trend {}; {} lost; stored {} of {} accepted; background {} spans/s, {} calls failed; others CPU {}{}",
        r.pipeline.name(),
        r.rate,
        r.probes,
        ms(r.freshness(0.5)),
        ms(r.freshness(0.99)),
        ms(r.freshness(1.0)),
        trend(r.trend),
        r.lost(),
        r.stored,
        r.accepted,
        thousands(r.load.accepted_rate()),
        r.load.failed_total(),
        others(r.others_cpu),
        if r.disturbed() { " DISTURBED" } else { "" },
    )
}

fn trend(trend: Option<f64>) -> String {
    trend.map_or_else(|| "-".into(), |t| format!("{t:.2}"))
}

fn others(cpu: Option<Duration>) -> String {
    cpu.map_or_else(|| "—".into(), |d| format!("{:.2} s", d.as_secs_f64()))
}

/// The columns of every run table.
const COLUMNS: &str = "| run | background spans/s | probes | freshness p50 / p90 / p99 / max ms | trend, last third / first | OpenSearch µs CPU per span | lost | stored / accepted | verified | others CPU s |";
const ALIGN: &str = "|---|--:|--:|--:|--:|--:|--:|--:|---|--:|";

/// One run's row, without a line end.
fn row(r: &RunResult) -> String {
    format!(
        "| {} @ {:.0} #{} | {} | {} | {} / {} / {} / {} | {} | {} | {} | {} / {} | {} | {}{} |",
        r.pipeline.name(),
        r.rate,
        r.repetition,
        thousands(r.load.accepted_rate()),
        r.probes,
        ms(r.freshness(0.5)),
        ms(r.freshness(0.9)),
        ms(r.freshness(0.99)),
        ms(r.freshness(1.0)),
        trend(r.trend),
        r.engine_us_per_span()
            .map_or_else(|| "-".into(), |us| format!("{us:.1}")),
        r.lost(),
        r.stored,
        r.accepted,
        if r.verified() { "yes" } else { "**no**" },
        r.others_cpu
            .map_or_else(|| "—".into(), |d| format!("{:.2}", d.as_secs_f64())),
        if r.disturbed() { " DISTURBED" } else { "" },
    )
}

/// The results as a Markdown table.
pub fn markdown(results: &[RunResult]) -> String {
    let mut out = format!("{COLUMNS}\n{ALIGN}\n");
    for r in results {
        out.push_str(&row(r));
        out.push('\n');
    }
    out
}

/// The whole report: with a search, its runs and what it found before the
/// runs at half the maximum.
pub fn report_markdown(report: &Report, search: Option<&Search>) -> String {
    let mut out = String::new();
    if let Some(search) = search {
        out.push_str(&format!(
            "Search for the highest rate our pipeline keeps up with: from {} spans/s, times {} each step. \
             A run kept up when it was verified, at least {:.0} % of its rate was accepted, its median freshness \
             was at most {} ms and its trend was between {:.2} and {:.2}; a rate that did not keep up was run once more \
             before the search stopped on it.\n\n",
            thousands(search.from),
            search.step,
            search::RATE_SHARE * 100.0,
            search.p50_limit.as_millis(),
            1.0 / search.trend_limit,
            search.trend_limit,
        ));
        out.push_str(&format!("{COLUMNS} kept up |\n{ALIGN}---|\n"));
        for (r, verdict) in &report.search {
            out.push_str(&row(r));
            match verdict {
                Ok(()) => out.push_str(" yes |\n"),
                Err(why) => out.push_str(&format!(" **no**: {why} |\n")),
            }
        }
        if let Some(found) = &report.found {
            out.push_str(&format!("\n{}\n", found_line(found)));
        }
        if report.runs.is_empty() {
            return out;
        }
        out.push('\n');
    }
    out.push_str(&markdown(&report.runs));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(others_cpu: Option<Duration>) -> RunResult {
        RunResult {
            pipeline: Pipeline::Spanway,
            rate: 10_000.0,
            repetition: 1,
            load: Outcome::new(Instant::now()),
            probes: 2,
            probes_refused: 0,
            latencies: vec![Duration::from_millis(600), Duration::from_millis(900)],
            stored: 0,
            accepted: 0,
            engine_cpu: None,
            others_cpu,
            elapsed: Duration::from_secs(40),
            trend: Some(1.234),
        }
    }

    #[test]
    fn the_table_shows_others_cpu_and_marks_a_disturbed_run() {
        // 60 s of others in 40 s is over 5 % of any machine up to 30 cores.
        let results = [
            result(Some(Duration::from_millis(300))),
            result(Some(Duration::from_secs(60))),
            result(None),
        ];
        let table = markdown(&results);
        let rows: Vec<&str> = table.lines().skip(2).collect();
        assert!(rows[0].ends_with("| yes | 0.30 |"), "{}", rows[0]);
        assert!(
            rows[0].contains("| 600 / 900 / 900 / 900 | 1.23 |"),
            "{}",
            rows[0]
        );
        assert!(rows[1].ends_with("| 60.00 DISTURBED |"), "{}", rows[1]);
        assert!(rows[2].ends_with("| — |"), "{}", rows[2]);
        assert!(!results[0].disturbed() && results[1].disturbed());
        assert!(one_line(&results[1]).ends_with("others CPU 60.00 s DISTURBED"));
    }

    #[test]
    fn a_search_report_shows_each_verdict_what_was_found_and_the_runs_at_half() {
        let search = Search {
            from: 10_000.0,
            step: 1.25,
            up_to: 100_000.0,
            trend_limit: 1.3,
            p50_limit: Duration::from_secs(2),
        };
        let report = Report {
            search: vec![
                (result(None), Ok(())),
                (result(None), Err(Behind::Trend(1.234))),
            ],
            found: Some(Found::Max {
                rate: 10_000.0,
                stopped: Some((12_500.0, Behind::Trend(1.234))),
            }),
            runs: vec![result(None)],
        };
        let text = report_markdown(&report, Some(&search));
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].contains(
                "median freshness was at most 2000 ms and its trend was between 0.77 and 1.30"
            ),
            "{}",
            lines[0]
        );
        assert!(
            lines[2].ends_with("| others CPU s | kept up |"),
            "{}",
            lines[2]
        );
        assert!(lines[4].ends_with("| — | yes |"), "{}", lines[4]);
        assert!(
            lines[5].ends_with("| — | **no**: trend 1.23 |"),
            "{}",
            lines[5]
        );
        assert_eq!(
            lines[7],
            "highest rate kept up: 10,000 spans/s (12,500 did not, twice: trend 1.23); measured at half: 5,000 spans/s"
        );
        assert_eq!(lines[9], COLUMNS);
        assert_eq!(lines.len(), 12);
        // Without a search, only the runs.
        assert_eq!(report_markdown(&report, None), markdown(&report.runs));
    }
}
