//! The ingester process killed with SIGKILL at random moments, then
//! restarted: every span is stored exactly once in the end.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rand::Rng;
use spanway_e2e::corpus;
use spanway_e2e::{
    count, create_topic, delete_indices, opensearch_url, produce, require_engine, require_kafka,
    wait_for_count,
};

use common::{Names, env};

fn spawn(names: &Names, url: &str, log: &std::path::Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_spanway-ingester"))
        .envs(env(names, url))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    require_kafka();
    let url = opensearch_url();
    require_engine(&url, "OpenSearch", "opensearch").await;
    let names = Names::new("crash");
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

    let mut child = spawn(&names, &url, &logs.join("final.log"));
    let stored = wait_for_count(&url, &names.span_indices(), total, Duration::from_secs(300)).await;
    assert_eq!(stored, total, "logs in {}", logs.display());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count(&url, &names.span_indices()).await,
        total,
        "no duplicates after {kills} kills"
    );

    // A graceful stop commits and exits.
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    delete_indices(&url, &format!("{}-*", names.prefix)).await;
}
