//! The real Jaeger query service (v1.76, built by `dev/jaeger build`),
//! started on free loopback ports against our indices.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::unique_name;

/// Where `dev/jaeger build` puts the binary, unless `JAEGER_QUERY_BIN` says otherwise.
pub fn jaeger_query_bin() -> PathBuf {
    let path = std::env::var_os("JAEGER_QUERY_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.services/jaeger/bin/jaeger-query"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "Jaeger query is not built: no binary at {}. Build it with `dev/jaeger build` \
         (needs Go 1.24.6 or newer), or set JAEGER_QUERY_BIN.",
        path.display()
    );
    path
}

/// Three distinct free loopback ports (all held until chosen, then released).
fn free_ports() -> [u16; 3] {
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    [ports[0], ports[1], ports[2]]
}

/// A running `jaeger-query`: killed when dropped, even when the test panics,
/// and its log is printed then.
#[derive(Debug)]
pub struct JaegerQuery {
    child: Child,
    log: PathBuf,
    /// Base URL of the HTTP API, `http://127.0.0.1:PORT/api`.
    pub api: String,
}

impl JaegerQuery {
    pub fn start(storage_type: &str, engine: &str, index_prefix: &str) -> Self {
        let bin = jaeger_query_bin();
        let [http, grpc, admin] = free_ports();
        let log = std::env::temp_dir().join(format!("{}.log", unique_name("jaeger-query")));
        let out = File::create(&log).unwrap();
        let child = Command::new(&bin)
            .env("SPAN_STORAGE_TYPE", storage_type)
            .args([
                format!("--es.server-urls={engine}"),
                format!("--es.index-prefix={index_prefix}"),
                // The ingester owns the index templates; Jaeger must not replace them.
                "--es.create-index-templates=false".into(),
                format!("--query.http-server.host-port=127.0.0.1:{http}"),
                format!("--query.grpc-server.host-port=127.0.0.1:{grpc}"),
                format!("--admin.http.host-port=127.0.0.1:{admin}"),
                "--log-level=debug".into(),
            ])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        Self {
            child,
            log,
            api: format!("http://127.0.0.1:{http}/api"),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the HTTP API answers `/api/services`.
    pub async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        for _ in 0..240 {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("jaeger-query exited ({status}):\n{}", self.log_text());
            }
            if let Ok(r) = client.get(format!("{}/services", self.api)).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!(
            "jaeger-query did not answer on {} within 60 s:\n{}",
            self.api,
            self.log_text()
        );
    }

    /// GET `{api}{path}` with `query`, expecting 200 and a JSON body without errors.
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.api))
            .query(query)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let url = response.url().clone();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "GET {url}: {body}");
        assert!(body["errors"].is_null(), "GET {url}: {body}");
        body
    }
}

impl Drop for JaegerQuery {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- jaeger-query log ----\n{}", self.log_text());
        }
        let _ = std::fs::remove_file(&self.log);
    }
}
