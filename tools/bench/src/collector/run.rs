//! One collector run: start the collector as a child process on loopback
//! ports, writing to a fresh topic; send the load; wait until the topic
//! stops growing; read CPU and peak memory from `/proc`; stop the process;
//! count what the topic holds.
//!
//! The collector's CPU is counted from the moment it reports ready to the
//! moment its topic has been quiet for `drain_quiet`, so start-up is left
//! out and the work of flushing what it accepted is in. Jaeger answers
//! before Kafka has the spans (they go to an in-memory queue), so its
//! flush happens after the last answer; ours answers only after Kafka
//! acknowledged, so it has nothing left to flush.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use spanway_schemas::Encoding;

use super::load::{self, Outcome, Plan, Rate};
use super::topic::{self, Contents};
use super::traffic::Pool;
use crate::measure::{self, MeasuredChild, Meter};

/// Everything the collector benchmark needs to know.
#[derive(Debug, Clone)]
pub struct Options {
    /// Rates to run, each for every collector and repetition.
    pub rates: Vec<Rate>,
    /// How long each run sends, after the warm-up.
    pub duration: Duration,
    /// Load before the measured part (see [`super::load`]).
    pub warmup: Duration,
    /// Calls in flight at most.
    pub concurrency: usize,
    /// gRPC connections per run.
    pub connections: usize,
    /// Runs of each (rate, collector).
    pub repeat: usize,
    /// Also run Jaeger's v1 collector.
    pub with_jaeger: bool,
    /// Also run Jaeger v2.
    pub with_jaeger_v2: bool,
    /// Jaeger v2's binary (`dev/jaeger build v2`).
    pub jaeger_v2_bin: PathBuf,
    /// Kafka bootstrap address.
    pub kafka: String,
    /// Partitions of each run's topic.
    pub partitions: i32,
    /// Our collector's release binary.
    pub collector_bin: PathBuf,
    /// Jaeger's collector binary (`dev/jaeger build collector`).
    pub jaeger_bin: PathBuf,
    /// `.services/`, for the Kafka pid file.
    pub services_dir: PathBuf,
    /// Where the collectors' logs go.
    pub log_dir: PathBuf,
    /// Pause before each run.
    pub settle: Duration,
    /// The topic counts as flushed once its record count has not changed
    /// for this long after the last answer.
    pub drain_quiet: Duration,
    /// A call unanswered after this long fails.
    pub request_timeout: Duration,
    /// gzip the requests.
    pub gzip: bool,
    /// Whole traces per request.
    pub traces_per_request: usize,
    /// Distinct requests generated before the runs.
    pub pool_requests: usize,
    /// `--kafka.producer.protocol-version` for Jaeger.
    pub jaeger_kafka_version: String,
    /// Extra arguments for Jaeger's collector, after the benchmark's own
    /// (the last value of a flag wins).
    pub jaeger_args: Vec<String>,
    /// Extra environment for our collector.
    pub collector_env: Vec<(String, String)>,
    /// Keep the topics afterwards.
    pub keep: bool,
}

/// Which collector a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `spanway-collector`.
    Spanway,
    /// Jaeger v1.76 `cmd/collector` with its Kafka span writer.
    Jaeger,
    /// Jaeger v2 `cmd/jaeger`: OTLP receiver → Kafka exporter.
    JaegerV2,
}

impl Target {
    /// `spanway` or `jaeger`.
    pub fn name(self) -> &'static str {
        match self {
            Target::Spanway => "spanway",
            Target::Jaeger => "jaeger",
            Target::JaegerV2 => "jaeger-v2",
        }
    }

    /// What it writes to Kafka.
    fn encoding(self) -> Encoding {
        match self {
            Target::Spanway | Target::JaegerV2 => Encoding::OtlpProto,
            Target::Jaeger => Encoding::JaegerProto,
        }
    }
}

/// The figures of one run.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Which collector.
    pub target: Target,
    /// The rate asked for.
    pub rate: Rate,
    /// 1-based repetition.
    pub repetition: usize,
    /// What the load generator saw.
    pub load: Outcome,
    /// The collector's CPU from ready to flushed.
    pub cpu: Option<Duration>,
    /// Its peak RSS, KiB.
    pub peak_rss_kib: Option<u64>,
    /// Kafka's CPU over the same span of time.
    pub kafka_cpu: Option<Duration>,
    /// This process's CPU (load generation) over it.
    pub bench_cpu: Duration,
    /// Everybody else's CPU over it.
    pub others_cpu: Option<Duration>,
    /// From ready to flushed.
    pub wall: Duration,
    /// After the last answer, until the topic was quiet.
    pub drain: Duration,
    /// What the topic holds.
    pub topic: Contents,
    /// Load averages at the start and the end.
    pub load_before: [f64; 3],
    /// Load averages at the end.
    pub load_after: [f64; 3],
    /// CPU by thread name over the measured part, most first (empty when
    /// the threads could not be read).
    pub threads: Vec<(String, Duration)>,
    /// Log file, and anything odd.
    pub notes: Vec<String>,
}

impl RunResult {
    /// e.g. `spanway @ 20000`, `jaeger @ max`.
    pub fn name(&self) -> String {
        format!("{} @ {}", self.target.name(), self.rate)
    }

    /// CPU seconds per 100,000 accepted spans.
    pub fn cpu_per_100k(&self) -> Option<f64> {
        let cpu = self.cpu?;
        (self.load.spans_accepted > 0)
            .then(|| cpu.as_secs_f64() * 100_000.0 / self.load.spans_accepted as f64)
    }

    /// Accepted spans per second from the first send until the topic
    /// stopped growing: the rate at which spans reached Kafka. Lower than
    /// [`Outcome::accepted_rate`] when a collector answers before Kafka has
    /// the spans and flushes a backlog after the last answer.
    pub fn stored_rate(&self) -> f64 {
        let secs = (self.load.window() + self.drain).as_secs_f64();
        if secs > 0.0 {
            self.load.spans_accepted as f64 / secs
        } else {
            0.0
        }
    }

    /// Spans the topic must hold: those accepted in the warm-up and after.
    pub fn expected_on_topic(&self) -> u64 {
        self.load.warmup.spans_accepted + self.load.spans_accepted
    }

    /// Whether the topic holds exactly the accepted spans, once each.
    pub fn verified(&self) -> bool {
        self.topic.spans == self.expected_on_topic()
            && self.topic.duplicates == 0
            && self.topic.undecodable == 0
    }

    /// Others used over a second and over 5 % of the machine: see
    /// [`crate::runs::RunResult::disturbed`].
    pub fn disturbed(&self) -> bool {
        measure::disturbed(self.others_cpu, self.wall)
    }
}

/// Free loopback ports, all bound at once so they differ. Another process
/// could take one before the collector binds it; the collector then fails
/// to start and the run says so.
pub(crate) fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("finding free loopback ports")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// The ports a collector listens on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ports {
    pub(crate) otlp_grpc: u16,
    /// Ours: the operations endpoint; Jaeger's: its admin server.
    pub(crate) health: u16,
    /// Jaeger's receivers that cannot be switched off.
    pub(crate) others: [u16; 3],
}

impl Ports {
    /// Five free loopback ports.
    pub(crate) fn free() -> anyhow::Result<Ports> {
        let ports = free_ports(5)?;
        Ok(Ports {
            otlp_grpc: ports[0],
            health: ports[1],
            others: [ports[2], ports[3], ports[4]],
        })
    }
}

impl Target {
    pub(crate) fn command(
        self,
        options: &Options,
        topic: &str,
        ports: Ports,
        config_file: &Path,
    ) -> anyhow::Result<Command> {
        let local = |port: u16| format!("127.0.0.1:{port}");
        Ok(match self {
            Target::JaegerV2 => {
                let config = jaeger_v2_config(&options.kafka, topic, ports.otlp_grpc, ports.health);
                std::fs::write(config_file, config)
                    .with_context(|| format!("writing {}", config_file.display()))?;
                let mut command = Command::new(&options.jaeger_v2_bin);
                command
                    .arg(format!("--config={}", config_file.display()))
                    .args(&options.jaeger_args);
                command
            }
            Target::Spanway => {
                let mut command = spanway_command(
                    &options.collector_bin,
                    &options.kafka,
                    topic,
                    ports.otlp_grpc,
                    ports.health,
                );
                command.envs(options.collector_env.iter().cloned());
                command
            }
            Target::Jaeger => {
                let mut command = Command::new(&options.jaeger_bin);
                command
                    .env("SPAN_STORAGE_TYPE", "kafka")
                    .arg(format!("--kafka.producer.brokers={}", options.kafka))
                    .arg(format!("--kafka.producer.topic={topic}"))
                    .arg("--kafka.producer.encoding=protobuf")
                    .arg(format!(
                        "--kafka.producer.protocol-version={}",
                        options.jaeger_kafka_version
                    ))
                    // The producer settings ours uses: every replica's
                    // acknowledgement and zstd. Jaeger's defaults are
                    // `local` and no compression.
                    .arg("--kafka.producer.required-acks=all")
                    .arg("--kafka.producer.compression=zstd")
                    .arg(format!(
                        "--collector.otlp.grpc.host-port={}",
                        local(ports.otlp_grpc)
                    ))
                    .arg(format!("--admin.http.host-port={}", local(ports.health)))
                    .arg(format!(
                        "--collector.otlp.http.host-port={}",
                        local(ports.others[0])
                    ))
                    .arg(format!(
                        "--collector.grpc-server.host-port={}",
                        local(ports.others[1])
                    ))
                    .arg(format!(
                        "--collector.http-server.host-port={}",
                        local(ports.others[2])
                    ))
                    .args(&options.jaeger_args);
                command
            }
        })
    }

    /// The URL that answers 200 once the collector is ready.
    pub(crate) fn ready_url(self, ports: Ports) -> String {
        match self {
            Target::Spanway => format!("http://127.0.0.1:{}/health/ready", ports.health),
            Target::JaegerV2 => format!("http://127.0.0.1:{}/status", ports.health),
            // Jaeger's admin server answers `/` with 503 until it is ready.
            Target::Jaeger => format!("http://127.0.0.1:{}/", ports.health),
        }
    }
}

/// Our collector with only its OTLP/gRPC receiver, on loopback ports,
/// writing to `topic`.
pub(crate) fn spanway_command(
    bin: &Path,
    kafka: &str,
    topic: &str,
    otlp_grpc: u16,
    ops: u16,
) -> Command {
    let mut command = Command::new(bin);
    command
        .env("SPANWAY_KAFKA__BROKERS", kafka)
        .env("SPANWAY_KAFKA__TOPIC", topic)
        .env(
            "SPANWAY_OTLP_GRPC__LISTEN",
            format!("127.0.0.1:{otlp_grpc}"),
        )
        .env("SPANWAY_OPS__LISTEN", format!("127.0.0.1:{ops}"))
        // Only the receiver under test listens.
        .env("SPANWAY_OTLP_HTTP__ENABLED", "false")
        .env("SPANWAY_JAEGER_GRPC__ENABLED", "false")
        .env("SPANWAY_ZIPKIN__ENABLED", "false")
        .env("SPANWAY_JAEGER_THRIFT_HTTP__ENABLED", "false")
        .env("SPANWAY_SAMPLING__ENABLED", "false")
        .env("NO_COLOR", "1");
    command
}

/// Jaeger v2 in the collector's role: OTLP/gRPC in, the Kafka exporter
/// out with the producer settings ours uses (every replica's
/// acknowledgement, zstd) and ours' record layout (`otlp_proto`, one record
/// per trace keyed by trace id). The exporter's in-memory queue keeps its
/// default (on): Jaeger v2 answers once spans are queued. Its own metrics
/// are off, as ours are only scraped on demand.
pub(crate) fn jaeger_v2_config(kafka: &str, topic: &str, otlp: u16, health: u16) -> String {
    format!(
        "service:
  extensions: [healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [kafka]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:{health}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{otlp}
exporters:
  kafka:
    brokers: [{kafka}]
    traces:
      topic: {topic}
      encoding: otlp_proto
    partition_traces_by_id: true
    producer:
      required_acks: -1
      compression: zstd
"
    )
}

/// Polls the ready URL for up to 30 s.
pub(crate) async fn wait_ready(child: &mut MeasuredChild, url: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        child.check_running()?;
        if let Ok(response) = client.get(url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("not ready after 30 s ({url})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One run of `target` at `rate`.
pub async fn run(
    options: &Options,
    pool: &Pool,
    target: Target,
    rate: Rate,
    repetition: usize,
) -> anyhow::Result<RunResult> {
    tokio::time::sleep(options.settle).await;
    let topic = spanway_e2e::unique_name(&format!("bench-collector-{}", target.name()));
    crate::workload::create_topic(&options.kafka, &topic, options.partitions).await?;
    let outcome = measured(options, pool, target, rate, repetition, &topic).await;
    if !options.keep
        && let Err(error) = crate::workload::delete_topics(&options.kafka, &[topic]).await
    {
        eprintln!("warning: {error:#}");
    }
    outcome
}

async fn measured(
    options: &Options,
    pool: &Pool,
    target: Target,
    rate: Rate,
    repetition: usize,
    topic: &str,
) -> anyhow::Result<RunResult> {
    let ports = Ports::free()?;
    let log = options.log_dir.join(format!(
        "{}-{}-{repetition}.log",
        target.name(),
        rate.to_string().replace('.', "_")
    ));
    eprintln!(
        "run: {} @ {rate} spans/s, repetition {repetition}",
        target.name()
    );
    let config_file = log.with_extension("yaml");
    let mut command = target.command(options, topic, ports, &config_file)?;
    let mut child = MeasuredChild::spawn(&mut command, &log)?;
    let result = measure_child(options, pool, target, rate, topic, ports, &mut child).await;
    child.terminate(Duration::from_secs(20));
    let Sampled {
        load,
        cpu,
        peak,
        costs,
        meter,
        threads,
        wall,
        drain,
    } = result?;

    // Read after the process has stopped: whatever it flushed on the way
    // out is on the topic too, so a loss is a loss and not a slow flush.
    let contents = topic::count(&options.kafka, topic, options.partitions, target.encoding())
        .await
        .with_context(|| format!("counting the spans on {topic}"))?;
    let mut notes = vec![format!(
        "warm-up: {} requests, {} spans accepted, {} failed",
        load.warmup.requests, load.warmup.spans_accepted, load.warmup.failed
    )];
    if let Some(failure) = &load.first_failure {
        notes.push(format!("first failure: {failure}"));
    }
    notes.push(format!("log: {}", log.display()));
    Ok(RunResult {
        target,
        rate,
        repetition,
        load,
        cpu,
        peak_rss_kib: peak,
        kafka_cpu: costs.kafka,
        bench_cpu: costs.own,
        others_cpu: costs.others,
        wall,
        drain,
        topic: contents,
        load_before: meter.load,
        load_after: costs.load,
        threads,
        notes,
    })
}

/// What [`measure_child`] read before the process was stopped.
#[derive(Debug)]
struct Sampled {
    load: Outcome,
    /// The collector's CPU from ready to flushed.
    cpu: Option<Duration>,
    /// Its peak RSS, KiB.
    peak: Option<u64>,
    costs: crate::measure::Costs,
    meter: Meter,
    threads: Vec<(String, Duration)>,
    /// From ready to the end of the quiet period.
    wall: Duration,
    /// From the last answer to the topic's last growth.
    drain: Duration,
}

async fn measure_child(
    options: &Options,
    pool: &Pool,
    target: Target,
    rate: Rate,
    topic: &str,
    ports: Ports,
    child: &mut MeasuredChild,
) -> anyhow::Result<Sampled> {
    wait_ready(child, &target.ready_url(ports)).await?;
    // The figures start when the warm-up ends, while the load goes on.
    let pid = child.child.id();
    let services_dir = options.services_dir.clone();
    let warmup = options.warmup;
    let boundary = tokio::spawn(async move {
        tokio::time::sleep(warmup).await;
        let meter = Meter::start(&services_dir)?;
        let cpu = crate::measure::process_cpu(pid)?;
        let threads = crate::measure::thread_cpu(pid).unwrap_or_default();
        anyhow::Ok((meter, cpu, threads, Instant::now()))
    });
    let plan = Plan {
        rate,
        duration: options.duration,
        warmup: options.warmup,
        concurrency: options.concurrency,
        connections: options.connections,
        request_timeout: options.request_timeout,
        gzip: options.gzip,
    };
    let outcome = load::drive(
        &format!("http://127.0.0.1:{}", ports.otlp_grpc),
        pool,
        &plan,
    )
    .await?;
    let answered = Instant::now();
    let (meter, cpu_before, threads_before, started) = boundary.await.context("warm-up task")??;
    child.check_running()?;
    let (_, flushed) = topic::wait_quiet(
        &options.kafka,
        topic,
        options.partitions,
        options.drain_quiet,
        Duration::from_secs(120),
    )
    .await?;
    let threads = crate::measure::thread_cpu(pid)
        .map(|after| crate::measure::thread_cpu_between(&threads_before, &after))
        .unwrap_or_default();
    let sample = child.sample();
    let cpu = sample
        .as_ref()
        .ok()
        .map(|(cpu, _)| cpu.saturating_sub(cpu_before));
    let costs = meter.finish(cpu);
    Ok(Sampled {
        load: outcome,
        cpu,
        peak: sample.ok().map(|(_, peak)| peak),
        costs,
        meter,
        threads,
        wall: Instant::now().duration_since(started),
        drain: flushed.saturating_duration_since(answered),
    })
}
