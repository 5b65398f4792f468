//! Refusals for credentials or rights are a configuration fault: the
//! writer keeps the documents and retries them (nothing is rejected, so
//! nothing is dead-lettered), counts the refusals, and reports not ready
//! until a write goes through.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use spanway_search::client::EngineClient;
use spanway_search::config::EngineClientConfig;
use spanway_search::document::{Document, DocumentKind};
use spanway_search::metrics::WriterMetrics;
use spanway_search::writer::{BulkWriter, WriterOptions};
use spanway_service_kit::secret::Secret;
use tokio_util::sync::CancellationToken;

const REFUSE_REQUEST: u8 = 0;
const REFUSE_ITEMS: u8 = 1;
const ACCEPT: u8 = 2;

/// Answers `_bulk` as `mode` says, everything else with `200 {}`.
fn bulk_engine(mode: Arc<AtomicU8>) -> SocketAddr {
    let (addr, _seen) = common::engine(Arc::new(move |seen, body| {
        if !seen.line.starts_with("POST /_bulk") {
            return (200, "{}".to_owned());
        }
        let documents = body
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count()
            / 2;
        let items = |item: &str| vec![item; documents].join(",");
        match mode.load(Ordering::Relaxed) {
            REFUSE_REQUEST => (
                401,
                r#"{"error":{"type":"security_exception","reason":"unable to authenticate user [writer] for REST request [/_bulk]"},"status":401}"#.to_owned(),
            ),
            REFUSE_ITEMS => (
                200,
                format!(
                    r#"{{"errors":true,"items":[{}]}}"#,
                    items(r#"{"create":{"status":403,"error":{"type":"security_exception","reason":"action [indices:data/write/bulk[s]] is unauthorized for user [writer]"}}}"#)
                ),
            ),
            _ => (
                200,
                format!(
                    r#"{{"errors":false,"items":[{}]}}"#,
                    items(r#"{"create":{"status":201}}"#)
                ),
            ),
        }
    }));
    // Keep the listener's reports from piling up unread.
    std::thread::spawn(move || while _seen.recv().is_ok() {});
    addr
}

fn documents() -> Vec<Document> {
    (0..3)
        .map(|i| Document {
            kind: DocumentKind::Span,
            index: "jaeger-span-2026-03-02".into(),
            id: format!("doc-{i}"),
            source: br#"{"a":1}"#.to_vec(),
        })
        .collect()
}

async fn refused_then_accepted(refusal: u8) {
    let mode = Arc::new(AtomicU8::new(refusal));
    let addr = bulk_engine(mode.clone());
    let config = EngineClientConfig {
        username: Some("writer".into()),
        password: Some(Secret::new("wrong")),
        ..EngineClientConfig::for_url(&format!("http://{addr}"))
    };
    let metrics = WriterMetrics::default();
    let options = WriterOptions {
        retry_initial_backoff: Duration::from_millis(10),
        retry_max_backoff: Duration::from_millis(50),
        ..WriterOptions::default()
    };
    let writer = BulkWriter::new(
        EngineClient::new(&config).unwrap(),
        options,
        metrics.clone(),
    );
    assert!(writer.ready().await, "ready before any write");

    let task = tokio::spawn({
        let writer = writer.clone();
        async move {
            writer
                .write_all(documents(), &CancellationToken::new())
                .await
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while metrics.auth_failures.get() < 3 {
        assert!(Instant::now() < deadline, "no refusal counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!task.is_finished(), "the batch is held, not given up");
    assert!(!writer.ready().await, "not ready while writes are refused");
    assert_eq!(metrics.bulk_failures.get(), 0);

    mode.store(ACCEPT, Ordering::Relaxed);
    let rejected = task.await.unwrap().unwrap();
    assert!(
        rejected.is_empty(),
        "nothing refused for good: {rejected:?}"
    );
    assert!(metrics.documents_retried.get() >= 9);
    assert!(writer.ready().await, "ready again once a write succeeds");
}

#[tokio::test]
async fn a_refused_request_is_retried_until_the_credentials_work() {
    refused_then_accepted(REFUSE_REQUEST).await;
}

#[tokio::test]
async fn items_refused_for_rights_are_retried_not_rejected() {
    refused_then_accepted(REFUSE_ITEMS).await;
}
