//! The ingester process killed with SIGKILL at random moments, then
//! restarted: every span is stored exactly once in the end.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use rand::Rng;
use spanway_e2e::corpus;
use spanway_e2e::{
    Engine, RemoveOnDrop, count, create_topic, log_dir, produce, require_kafka, spawn_logged,
    stop_cleanly, wait_for_count,
};

use common::{Names, env};

fn spawn(names: &Names, url: &str, log: &std::path::Path) -> Child {
    spawn_with(names, url, log, &[])
}

fn spawn_with(names: &Names, url: &str, log: &std::path::Path, extra: &[(&str, &str)]) -> Child {
    spawn_logged(
        env!("CARGO_BIN_EXE_spanway-ingester"),
        env(names, url),
        extra,
        log,
    )
}

/// Services checked, a topic of `partitions` and a log folder for one test.
async fn prepare(label: &str, partitions: i32) -> (String, Names, std::path::PathBuf) {
    require_kafka();
    let url = Engine::OpenSearch.require().await;
    let names = Names::new(label);
    create_topic(&names.topic, partitions).await;
    let logs = log_dir(&names.topic);
    (url, names, logs)
}

/// Every one of `total` spans is stored, and a moment later still none twice.
async fn assert_stored_once(url: &str, names: &Names, total: u64, logs: &std::path::Path) {
    let stored = wait_for_count(url, &names.span_indices(), total, Duration::from_secs(180)).await;
    assert_eq!(stored, total, "logs in {}", logs.display());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count(url, &names.span_indices()).await,
        total,
        "no duplicates"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    require_kafka();
    let url = Engine::OpenSearch.require().await;
    let names = Names::new("crash");
    let _leftovers = RemoveOnDrop::new(&url, &names.prefix);
    create_topic(&names.topic, 6).await;
    let corpus = corpus::generate(23, 4_000, 10);
    let total = corpus.spans.len() as u64;
    produce(&names.topic, &corpus.as_produce_input()).await;
    let logs = std::env::temp_dir().join(&names.topic);
    std::fs::create_dir_all(&logs).unwrap();

    let mut rng = rand::rng();
    let mut kills = 0;
    let mut last = 0;
    while kills < 3 {
        let mut child = spawn(&names, &url, &logs.join(format!("run-{kills}.log")));
        // Kill it while it is writing: after it stored something new, at a
        // random moment shortly after.
        for _ in 0..240 {
            if count(&url, &names.span_indices()).await > last {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..1500))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        let now = count(&url, &names.span_indices()).await;
        eprintln!("kill {kills}: {now} of {total} spans stored");
        assert!(now <= total, "never more documents than spans");
        if now == total {
            break;
        }
        last = now;
    }
    assert!(kills >= 1);

    let child = spawn(&names, &url, &logs.join("final.log"));
    let stored = wait_for_count(&url, &names.span_indices(), total, Duration::from_secs(300)).await;
    assert_eq!(stored, total, "logs in {}", logs.display());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count(&url, &names.span_indices()).await,
        total,
        "no duplicates after {kills} kills"
    );

    // A graceful stop commits and exits.
    stop_cleanly(child);
}

/// A static member (`kafka.instance_id`) killed with SIGKILL and restarted
/// under the same id gets its partitions back without waiting for its old
/// session to expire, and still stores every span exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_member_resumes_after_sigkill_without_waiting_for_its_session() {
    let (url, names, logs) = prepare("static", 3).await;
    let _leftovers = RemoveOnDrop::new(&url, &names.prefix);
    // A session far longer than a restart: a member that had to wait for
    // it would show.
    let session = Duration::from_secs(60);
    let extra = [
        ("SPANWAY_KAFKA__INSTANCE_ID", "ingester-0"),
        ("SPANWAY_KAFKA__SESSION_TIMEOUT", "60s"),
    ];

    let before = corpus::generate(31, 300, 10);
    let first = before.spans.len() as u64;
    produce(&names.topic, &before.as_produce_input()).await;
    let mut child = spawn_with(&names, &url, &logs.join("first.log"), &extra);
    let stored = wait_for_count(&url, &names.span_indices(), first, Duration::from_secs(120)).await;
    assert_eq!(stored, first, "logs in {}", logs.display());
    child.kill().unwrap(); // SIGKILL: no LeaveGroup, no final commit
    child.wait().unwrap();

    let after = corpus::generate(32, 300, 10);
    let total = first + after.spans.len() as u64;
    produce(&names.topic, &after.as_produce_input()).await;
    let restarted = Instant::now();
    let child = spawn_with(&names, &url, &logs.join("second.log"), &extra);
    let mut resumed = None;
    while restarted.elapsed() < session + Duration::from_secs(30) {
        if count(&url, &names.span_indices()).await > first {
            resumed = Some(restarted.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resumed = resumed.expect("the restarted ingester stored nothing new");
    eprintln!("first new document {resumed:?} after the restart");
    // Not a speed figure: a dynamic member would wait for the old session
    // (60 s) to expire before the group could hand its partitions out.
    assert!(
        resumed < session / 2,
        "the restarted member waited {resumed:?}, as if its old session had to expire; logs in {}",
        logs.display()
    );
    assert_stored_once(&url, &names, total, &logs).await;

    stop_cleanly(child);
}

/// Two processes given the same `kafka.instance_id`: the group fences the
/// older one, which stops with an error that names the setting, while the
/// newer one stores every span exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_instance_id_stops_the_fenced_process_with_a_clear_error() {
    let (url, names, logs) = prepare("fenced", 3).await;
    let _leftovers = RemoveOnDrop::new(&url, &names.prefix);
    let extra = [("SPANWAY_KAFKA__INSTANCE_ID", "same-id")];

    let before = corpus::generate(41, 200, 10);
    let first = before.spans.len() as u64;
    produce(&names.topic, &before.as_produce_input()).await;
    let mut older = spawn_with(&names, &url, &logs.join("older.log"), &extra);
    let stored = wait_for_count(&url, &names.span_indices(), first, Duration::from_secs(120)).await;
    assert_eq!(stored, first, "logs in {}", logs.display());

    let newer = spawn_with(&names, &url, &logs.join("newer.log"), &extra);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = older.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the fenced process kept running; logs in {}",
            logs.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        !status.success(),
        "the fenced process reports failure: {status}"
    );
    let log = std::fs::read_to_string(logs.join("older.log")).unwrap();
    assert!(
        log.contains("kafka.instance_id"),
        "the error names the setting to fix:\n{log}"
    );

    let after = corpus::generate(42, 200, 10);
    let total = first + after.spans.len() as u64;
    produce(&names.topic, &after.as_produce_input()).await;
    assert_stored_once(&url, &names, total, &logs).await;
    stop_cleanly(newer);
}

/// Scale-out and scale-in while spans stream in: one ingester, then three,
/// then two of them SIGKILLed at random moments, on a 12-partition topic.
/// Every span is stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_out_and_in_under_load_with_kills_stores_every_span_once() {
    let (url, names, logs) = prepare("scale", 12).await;
    let _leftovers = RemoveOnDrop::new(&url, &names.prefix);
    // Six waves of 4,000 spans, 1.5 s apart: the group changes while they arrive.
    let waves: Vec<_> = (0..6)
        .map(|i| corpus::generate(60 + i, 400, 10).as_produce_input())
        .collect();
    let total: u64 = waves.iter().map(|w| w.len() as u64 * 10).sum();
    let topic = names.topic.clone();
    let producer = tokio::spawn(async move {
        for wave in waves {
            produce(&topic, &wave).await;
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    });

    let mut rng = rand::rng();
    let mut first = spawn(&names, &url, &logs.join("a.log"));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut joined: Vec<Child> = ["b", "c"]
        .iter()
        .map(|n| spawn(&names, &url, &logs.join(format!("{n}.log"))))
        .collect();
    for child in &mut joined {
        tokio::time::sleep(Duration::from_millis(rng.random_range(1000..4000))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    producer.await.unwrap();
    assert_stored_once(&url, &names, total, &logs).await;
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first ingester ran throughout"
    );
    stop_cleanly(first);
}
