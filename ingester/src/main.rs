use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use spanway_ingester::Ingester;
use spanway_ingester::config::IngesterConfig;
use spanway_kafka::KafkaClient;
use spanway_kafka::admin::{TopicOutcome, TopicSpec, ensure_topics};
use spanway_service_kit::{config, logging, startup};

/// Decoding a record and writing its documents allocate and free many small
/// strings per span; glibc's allocator spent about a quarter of the
/// ingester's CPU on them (docs/benchmarks.md). It is built without
/// transparent huge pages (`no_thp`): with them, memory it had freed stayed
/// resident in 2 MiB pages and peak RSS was a third higher, at no CPU gain.
/// On hosts whose THP mode is `always` rather than `madvise`, setting
/// `MIMALLOC_ALLOW_THP=0` in the environment turns them off for the process.
/// How soon it gives freed pages back is set in `allocator`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Consumes spans from Kafka and bulk-writes them to Elasticsearch or
/// OpenSearch as Jaeger-compatible documents (jaeger-span-YYYY-MM-DD and
/// jaeger-service-YYYY-MM-DD), so Jaeger query and the Jaeger UI read them
/// unmodified. A record's offset is committed only after the engine has
/// stored its documents; document ids are deterministic, so a redelivered
/// record never creates a duplicate.
///
/// Configuration comes from an optional TOML file, then environment
/// variables named SPANWAY_<SECTION>__<KEY>, e.g. SPANWAY_KAFKA__BROKERS=a:9092,
/// SPANWAY_ELASTICSEARCH__URL=http://es:9200. Operations endpoint: /health/live
/// (503 naming the loop when the Kafka poll loop, the bulk stage or a write has
/// not gone round for ops.stall_timeout, default 2m; waiting for records,
/// paused reading and retries against a down engine do not count),
/// /health/ready (Kafka answers; the search engine answers, accepts the
/// credentials and did not refuse the last writes) and /metrics on ops.listen
/// (default :14270).
///
/// Freed memory goes back to the system within about 10 ms (mimalloc's purge
/// delay); MIMALLOC_PURGE_DELAY=1000 keeps it for a second instead, for about
/// 5% less CPU and a higher peak RSS.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// TOML configuration file (see ingester/ingester.example.toml).
    #[arg(long, short, env = "SPANWAY_CONFIG_FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the ingester (the default).
    Run,
    /// Load and validate the configuration (reading the secret and
    /// certificate files it names), print it, and exit.
    CheckConfig,
    /// Create the span topics (kafka.topics) and the dead-letter topic
    /// (dead_letter.topic) where they do not exist yet, with the Kafka
    /// settings of the configuration, then exit; the Helm chart's install
    /// hook runs this. Existing topics are left unchanged and reported with
    /// their partition count. Needs the Create ACL on the topics (or the
    /// cluster) for the configured principal.
    CreateTopics(CreateTopics),
}

#[derive(Debug, clap::Args)]
struct CreateTopics {
    /// Partitions of each span topic: the most ingester (and streaming
    /// analytics) replicas that can share the work.
    #[arg(long)]
    partitions: i32,
    /// Replication factor of every topic created; without it, the
    /// broker's default.replication.factor.
    #[arg(long)]
    replication_factor: Option<i32>,
    /// Partitions of the dead-letter topic.
    #[arg(long, default_value_t = 1)]
    dead_letter_partitions: i32,
    /// A topic config for every topic created, KEY=VALUE (repeatable), e.g.
    /// retention.ms=172800000 or min.insync.replicas=2.
    #[arg(long = "topic-config", value_name = "KEY=VALUE", value_parser = key_value)]
    topic_configs: Vec<(String, String)>,
    /// How long to wait for each answer from the cluster, e.g. 30s or 2m.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

fn main() -> ExitCode {
    startup::exit_code(run(Cli::parse()))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config: IngesterConfig = config::load(cli.config.as_deref())?;
    if let Some(Command::CreateTopics(args)) = &cli.command {
        // Only the Kafka settings matter here: the chart runs this before the engine is needed.
        config.kafka.client.validate()?;
        logging::init(&config.log.level, config.log.json);
        return startup::runtime(&config.runtime)?.block_on(create_topics(&config, args));
    }
    config.validate()?;
    if let Some(Command::CheckConfig) = cli.command {
        config.elasticsearch.client.check_files()?;
        startup::print_valid(&config);
        return Ok(());
    }
    let (log, runtime) = (config.log.clone(), config.runtime);
    startup::serve(&log, &runtime, |token| async move {
        spanway_ingester::allocator::return_freed_memory_promptly();
        let ingester = Ingester::start(config, token).await?;
        ingester.wait().await?;
        Ok(())
    })
}

async fn create_topics(config: &IngesterConfig, args: &CreateTopics) -> anyhow::Result<()> {
    let client = KafkaClient::new(&config.kafka.client)?;
    let spec = |name: &str, partitions: i32| TopicSpec {
        name: name.to_owned(),
        partitions,
        replication: args.replication_factor,
        configs: args.topic_configs.clone(),
    };
    let mut specs: Vec<TopicSpec> = config
        .kafka
        .topics
        .iter()
        .map(|topic| spec(topic, args.partitions))
        .collect();
    if specs.is_empty() {
        anyhow::bail!("kafka.topics names no topic to create");
    }
    if !config.dead_letter.topic.is_empty() {
        specs.push(spec(&config.dead_letter.topic, args.dead_letter_partitions));
    }
    for outcome in ensure_topics(&client, &specs, args.timeout).await? {
        match outcome {
            TopicOutcome::Created { name, partitions } => {
                println!("created topic {name} with {}", partitions_text(partitions));
            }
            TopicOutcome::Exists {
                name,
                partitions,
                requested,
            } if partitions != requested => {
                println!(
                    "topic {name} exists with {}, not {requested}: left unchanged \
                     (adding partitions moves trace ids to other partitions; do it with kafka-topics.sh if you mean to)",
                    partitions_text(partitions)
                );
            }
            TopicOutcome::Exists {
                name, partitions, ..
            } => println!("topic {name} exists with {}", partitions_text(partitions)),
        }
    }
    Ok(())
}

fn partitions_text(partitions: i32) -> String {
    match partitions {
        1 => "1 partition".to_owned(),
        n => format!("{n} partitions"),
    }
}
