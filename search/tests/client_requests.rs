//! What the client puts on the wire: credentials of each kind, a password
//! file rotated while running, gzip bodies, several nodes in turn. A small
//! HTTP listener stands in for the engine and records each request.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use elasticsearch::http::Method;
use elasticsearch::http::headers::HeaderMap;
use spanway_search::client::EngineClient;
use spanway_search::config::{Compression, EngineClientConfig};
use spanway_service_kit::secret::Secret;
use tokio_util::sync::CancellationToken;

use common::{engine, next, ok, pki, tls_engine};

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// Rewrites a file so that its modification time surely moves.
fn rewrite(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    let later = SystemTime::now() + Duration::from_secs(2);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(later)
        .unwrap();
}

#[tokio::test]
async fn a_rotated_password_file_is_used_without_restart() {
    let (addr, rx) = engine(ok());
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "first\n").unwrap();
    let config = EngineClientConfig {
        username: Some("writer".into()),
        password_file: Some(password.clone()),
        ..EngineClientConfig::for_url(&format!("http://{addr}"))
    };
    let client = EngineClient::new(&config).unwrap();
    let shutdown = CancellationToken::new();
    let refresh = client
        .spawn_credential_refresh(Duration::from_millis(50), shutdown.clone())
        .expect("a file to watch");

    assert!(client.reachable().await);
    let seen = next(&rx);
    assert_eq!(seen.line, "HEAD / HTTP/1.1");
    assert_eq!(
        seen.header("authorization"),
        Some(basic("writer", "first").as_str())
    );

    rewrite(&password, "second\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(client.reachable().await);
        if next(&rx).header("authorization") == Some(basic("writer", "second").as_str()) {
            break;
        }
        assert!(Instant::now() < deadline, "new password never used");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    refresh.await.unwrap();
}

#[tokio::test]
async fn api_keys_and_bearer_tokens_go_in_the_authorization_header() {
    let (addr, rx) = engine(ok());
    let url = format!("http://{addr}");
    let config = EngineClientConfig {
        api_key: Some(Secret::new("aWQ6c2VjcmV0")),
        ..EngineClientConfig::for_url(&url)
    };
    assert!(EngineClient::new(&config).unwrap().reachable().await);
    assert_eq!(
        next(&rx).header("authorization"),
        Some("ApiKey aWQ6c2VjcmV0")
    );

    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "eyJhbGciOi.payload.sig\n").unwrap();
    let config = EngineClientConfig {
        bearer_token_file: Some(token),
        ..EngineClientConfig::for_url(&url)
    };
    assert!(EngineClient::new(&config).unwrap().reachable().await);
    assert_eq!(
        next(&rx).header("authorization"),
        Some("Bearer eyJhbGciOi.payload.sig")
    );

    assert!(
        EngineClient::new(&EngineClientConfig::for_url(&url))
            .unwrap()
            .reachable()
            .await
    );
    assert_eq!(next(&rx).header("authorization"), None);
}

#[tokio::test]
async fn gzip_compresses_request_bodies() {
    let (addr, rx) = engine(ok());
    let config = EngineClientConfig {
        compression: Compression::Gzip,
        ..EngineClientConfig::for_url(&format!("http://{addr}"))
    };
    let client = EngineClient::new(&config).unwrap();
    let body = br#"{"create":{"_index":"i","_id":"1"}}
{"a":1}
"#
    .repeat(100);
    client
        .client()
        .send(
            Method::Post,
            "/_bulk",
            HeaderMap::new(),
            None::<&()>,
            Some(body.clone()),
            None,
        )
        .await
        .unwrap();
    let seen = next(&rx);
    assert_eq!(seen.header("content-encoding"), Some("gzip"));
    let sent: usize = seen.header("content-length").unwrap().parse().unwrap();
    assert!(sent < body.len() / 5, "{sent} bytes for {}", body.len());
}

#[tokio::test]
async fn several_urls_take_requests_in_turn() {
    let (a, rx_a) = engine(ok());
    let (b, rx_b) = engine(ok());
    let config = EngineClientConfig {
        urls: vec![format!("http://{a}"), format!("http://{b}")],
        ..Default::default()
    };
    let client = EngineClient::new(&config).unwrap();
    for _ in 0..4 {
        assert!(client.reachable().await);
    }
    for rx in [&rx_a, &rx_b] {
        next(rx);
        next(rx);
        assert!(rx.try_recv().is_err(), "more than half on one node");
    }
}

fn https(addr: SocketAddr) -> EngineClientConfig {
    EngineClientConfig::for_url(&format!("https://{addr}"))
}

#[tokio::test]
async fn a_private_ca_is_trusted_and_nothing_else_by_default() {
    let (addr, rx) = tls_engine(false);
    let unknown_ca = EngineClient::new(&https(addr)).unwrap();
    assert!(
        !unknown_ca.reachable().await,
        "a certificate from an unknown CA must be refused"
    );

    let mut config = https(addr);
    config.tls.ca_file = Some(pki("ca.pem"));
    assert!(EngineClient::new(&config).unwrap().reachable().await);
    assert_eq!(next(&rx).line, "HEAD / HTTP/1.1");

    let mut config = https(addr);
    config.tls.insecure_skip_verify = true;
    assert!(EngineClient::new(&config).unwrap().reachable().await);
    next(&rx);
}

#[tokio::test]
async fn a_client_certificate_is_presented_beside_basic_auth() {
    let (addr, rx) = tls_engine(true);
    let mut config = https(addr);
    config.tls.ca_file = Some(pki("ca.pem"));
    assert!(
        !EngineClient::new(&config).unwrap().reachable().await,
        "no certificate, no connection"
    );

    config.tls.cert_file = Some(pki("client.pem"));
    config.tls.key_file = Some(pki("client-key.pem"));
    config.username = Some("writer".into());
    config.password = Some(Secret::new("pw"));
    let client = EngineClient::new(&config).unwrap();
    assert!(client.client_certificate());
    assert!(client.reachable().await);
    let seen = next(&rx);
    assert!(seen.client_certificate);
    assert_eq!(
        seen.header("authorization"),
        Some(basic("writer", "pw").as_str())
    );
}
