//! The same input, read once without interruption and once through a fault
//! (the job killed with SIGKILL at random moments, instances added and
//! killed, the engine unreachable for a minute), yields identical
//! dependency and service-graph documents.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use rand::Rng;
use spanway_e2e::{
    Engine, RemoveOnDrop, create_topic, log_dir, produce, require_kafka, spawn_logged,
    stop_cleanly, topology, unique_name,
};
use spanway_streaming_analytics::{Analytics, AnalyticsConfig};
use tokio_util::sync::CancellationToken;

use common::{Names, START_MS, documents, env, progress, wait_until_read};

const PARTITIONS: i32 = 4;

fn spawn(names: &Names, url: &str, log: &std::path::Path) -> Child {
    spawn_with(names, url, log, &[])
}

fn spawn_with(names: &Names, url: &str, log: &std::path::Path, extra: &[(&str, &str)]) -> Child {
    spawn_logged(
        env!("CARGO_BIN_EXE_spanway-streaming-analytics"),
        env(names, url),
        extra,
        log,
    )
}

/// Services checked, a topic of `partitions` and a log folder for one test.
async fn prepare(label: &str, partitions: i32) -> (String, String, std::path::PathBuf) {
    require_kafka();
    let url = Engine::OpenSearch.require().await;
    let topic = unique_name(label);
    create_topic(&topic, partitions).await;
    let logs = log_dir(&topic);
    (url, topic, logs)
}

/// An uninterrupted run over the whole topic, as the reference.
async fn clean_run(url: &str, topic: &str, partitions: i32, logs: &std::path::Path) -> Names {
    let clean = Names::new(topic, "clean");
    let child = spawn(&clean, url, &logs.join("clean.log"));
    wait_until_read(&clean.group, topic, partitions, Duration::from_secs(300)).await;
    stop_cleanly(child);
    clean
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_changes_no_document() {
    let (url, topic, logs) = prepare("analytics-crash", PARTITIONS).await;
    // A minute of event time: a dozen 5 s windows per partition.
    let traffic = topology::generate(11, 6_000, START_MS, 10);
    produce(&topic, &traffic.as_produce_input()).await;
    let clean = clean_run(&url, &topic, PARTITIONS, &logs).await;
    let _clean_leftovers = RemoveOnDrop::new(&url, &clean.prefix);

    let crashed = Names::new(&topic, "crashed");
    let _crashed_leftovers = RemoveOnDrop::new(&url, &crashed.prefix);
    let mut rng = rand::rng();
    let mut mid_stream_kills = 0;
    for kill in 0..3 {
        let mut child = spawn(&crashed, &url, &logs.join(format!("crashed-{kill}.log")));
        // Kill while it works: once its committed position has moved (or
        // after a while on the first run), at a random moment after that.
        let (before, end) = progress(&crashed.group, &topic, PARTITIONS);
        for _ in 0..120 {
            let (now, _) = progress(&crashed.group, &topic, PARTITIONS);
            if now > before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..700))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let (now, _) = progress(&crashed.group, &topic, PARTITIONS);
        eprintln!("kill {}: committed {now} of {end}", kill + 1);
        if now > 0 && now < end {
            mid_stream_kills += 1;
        }
    }
    assert!(
        mid_stream_kills >= 1,
        "at least one kill must land mid-stream for the test to mean anything"
    );
    let child = spawn(&crashed, &url, &logs.join("crashed-final.log"));
    wait_until_read(&crashed.group, &topic, PARTITIONS, Duration::from_secs(300)).await;
    stop_cleanly(child);

    assert_same_documents(&url, &clean, &crashed, &logs).await;
    let totals = common::dependency_totals(&documents(&url, &clean.dependency_indices()).await);
    assert_eq!(
        totals, traffic.expected.calls,
        "the uninterrupted run counts right too"
    );
}

/// The dependency and service-graph documents of two runs are identical.
async fn assert_same_documents(url: &str, clean: &Names, crashed: &Names, logs: &std::path::Path) {
    // The traffic spans a minute: one hourly Jaeger document (two if the
    // minute straddles an hour), and many service-graph documents.
    for (a, b, at_least) in [
        (clean.dependency_indices(), crashed.dependency_indices(), 1),
        (clean.graph_indices(), crashed.graph_indices(), 10),
    ] {
        let expected = documents(url, &a).await;
        let got = documents(url, &b).await;
        assert!(
            expected.len() >= at_least,
            "{a}: {} documents",
            expected.len()
        );
        assert_eq!(
            expected.keys().collect::<Vec<_>>(),
            got.keys().collect::<Vec<_>>(),
            "same document ids in {a} and {b} (logs in {})",
            logs.display()
        );
        for (id, doc) in &expected {
            assert_eq!(doc, &got[id], "document {id}");
        }
    }
}

/// A static member (`kafka.instance_id`) killed mid-stream and restarted
/// under its id commits again long before its old session (60 s) could
/// have expired, and its documents equal an uninterrupted run's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_member_resumes_after_sigkill_and_changes_no_document() {
    let (url, topic, logs) = prepare("analytics-static", PARTITIONS).await;
    let traffic = topology::generate(12, 3_000, START_MS, 10);
    produce(&topic, &traffic.as_produce_input()).await;
    let clean = clean_run(&url, &topic, PARTITIONS, &logs).await;
    let _clean_leftovers = RemoveOnDrop::new(&url, &clean.prefix);

    let session = Duration::from_secs(60);
    let extra = [
        ("SPANWAY_KAFKA__INSTANCE_ID", "analytics-0"),
        ("SPANWAY_KAFKA__SESSION_TIMEOUT", "60s"),
    ];
    let killed = Names::new(&topic, "static");
    let _killed_leftovers = RemoveOnDrop::new(&url, &killed.prefix);
    let mut child = spawn_with(&killed, &url, &logs.join("first.log"), &extra);
    let deadline = Instant::now() + Duration::from_secs(120);
    let at_kill = loop {
        let (now, end) = progress(&killed.group, &topic, PARTITIONS);
        if now > 0 {
            assert!(now < end, "killed before the end of the input");
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "nothing committed; logs in {}",
            logs.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let restarted = Instant::now();
    let child = spawn_with(&killed, &url, &logs.join("second.log"), &extra);
    let resumed = loop {
        let (now, _) = progress(&killed.group, &topic, PARTITIONS);
        if now > at_kill {
            break restarted.elapsed();
        }
        assert!(
            restarted.elapsed() < session + Duration::from_secs(30),
            "the restarted job committed nothing; logs in {}",
            logs.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("first new commit {resumed:?} after the restart");
    // Not a speed figure: a dynamic member would wait for the old session
    // to expire before the group could hand its partitions out.
    assert!(
        resumed < session / 2,
        "the restarted member waited {resumed:?}, as if its old session had to expire; logs in {}",
        logs.display()
    );
    wait_until_read(&killed.group, &topic, PARTITIONS, Duration::from_secs(300)).await;
    stop_cleanly(child);

    assert_same_documents(&url, &clean, &killed, &logs).await;
}

/// Scale-out and scale-in while the topic fills: one job, then two, the
/// second SIGKILLed at a random moment, on a 12-partition topic. The
/// documents equal those of an undisturbed run over the same topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_out_and_in_with_a_kill_changes_no_document() {
    let partitions = 12;
    let (url, topic, logs) = prepare("analytics-scale", partitions).await;
    let traffic = topology::generate(13, 6_000, START_MS, 10);
    let records = traffic.as_produce_input();
    let wave = records.len().div_ceil(6);
    let (producing, waves) = (
        topic.clone(),
        records.chunks(wave).map(<[_]>::to_vec).collect::<Vec<_>>(),
    );
    let producer = tokio::spawn(async move {
        for records in waves {
            produce(&producing, &records).await;
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    });

    let scaled = Names::new(&topic, "scaled");
    let _scaled_leftovers = RemoveOnDrop::new(&url, &scaled.prefix);
    let first = spawn(&scaled, &url, &logs.join("a.log"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut second = spawn(&scaled, &url, &logs.join("b.log"));
    let mut rng = rand::rng();
    tokio::time::sleep(Duration::from_millis(rng.random_range(1500..5000))).await;
    second.kill().unwrap(); // SIGKILL
    second.wait().unwrap();
    producer.await.unwrap();
    wait_until_read(&scaled.group, &topic, partitions, Duration::from_secs(300)).await;
    stop_cleanly(first);

    let clean = clean_run(&url, &topic, partitions, &logs).await;
    let _clean_leftovers = RemoveOnDrop::new(&url, &clean.prefix);

    assert_same_documents(&url, &clean, &scaled, &logs).await;
    let totals = common::dependency_totals(&documents(&url, &clean.dependency_indices()).await);
    assert_eq!(
        totals, traffic.expected.calls,
        "the undisturbed run counts right"
    );
}

/// The network to the search engine cut for a minute while the job reads
/// (a relay in front of the real node, so other tests keep it): the job
/// keeps closed windows within `elasticsearch.max_pending_windows`, pauses
/// reading, commits nothing it has not written, and once the engine is
/// reachable again its documents equal an undisturbed run's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_unreachable_for_a_minute_pauses_reading_and_changes_no_document() {
    let (url, topic, logs) = prepare("analytics-engine-down", PARTITIONS).await;
    let traffic = topology::generate(14, 6_000, START_MS, 10);
    // A quarter of the traces before the cut, the rest after; a trace's
    // records (one per service) stay together, as its services send them
    // within moments of each other.
    let records = traffic.as_produce_input();
    let first_keys: std::collections::HashSet<_> = records[..records.len() / 4]
        .iter()
        .map(|r| r.0.clone())
        .collect();
    let (early, late): (Vec<_>, Vec<_>) =
        records.into_iter().partition(|r| first_keys.contains(&r.0));
    produce(&topic, &early).await;

    let engine = url.trim_start_matches("http://").trim_end_matches('/');
    let relay = spanway_e2e::relay::Relay::start(engine).await;
    let cut = Names::new(&topic, "cut");
    let _cut_leftovers = RemoveOnDrop::new(&url, &cut.prefix);
    let mut settings = env(&cut, &relay.http_url());
    settings.push((
        "SPANWAY_ELASTICSEARCH__MAX_PENDING_WINDOWS".into(),
        "4".into(),
    ));
    let config: AnalyticsConfig =
        spanway_service_kit::config::load_with_env(None, settings).unwrap();
    config.validate().unwrap();
    let shutdown = CancellationToken::new();
    let analytics = Analytics::start(&config, shutdown.clone()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while progress(&cut.group, &topic, PARTITIONS).0 == 0 {
        assert!(
            Instant::now() < deadline,
            "nothing committed before the cut"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    relay.cut();
    produce(&topic, &late).await;
    let (at_cut, end) = progress(&cut.group, &topic, PARTITIONS);
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (during, _) = progress(&cut.group, &topic, PARTITIONS);
    eprintln!(
        "committed {at_cut} of {end} at the cut, {during} after a minute; {} pauses",
        analytics.metrics.pauses.get()
    );
    assert!(during < end, "offsets of unwritten windows were committed");
    assert!(
        analytics.metrics.pauses.get() > 0,
        "reading paused while windows could not be written"
    );

    relay.restore();
    wait_until_read(&cut.group, &topic, PARTITIONS, Duration::from_secs(300)).await;
    shutdown.cancel();
    analytics
        .wait()
        .await
        .expect("streaming analytics stops cleanly");

    let clean = clean_run(&url, &topic, PARTITIONS, &logs).await;
    let _clean_leftovers = RemoveOnDrop::new(&url, &clean.prefix);
    assert_same_documents(&url, &clean, &cut, &logs).await;
}
