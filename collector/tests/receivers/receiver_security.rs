//! Receiver TLS and authentication against the real broker: OTLP/HTTP over
//! TLS with bearer tokens (rotated while running), the OpenTelemetry
//! Python SDK over OTLP/gRPC with TLS and a token, mutual TLS refusing
//! clients without a good certificate at the handshake, a certificate
//! replaced on disk and served without a restart, and Basic authentication
//! from an htpasswd file on the Zipkin and Jaeger Thrift receivers. Refused
//! requests are counted and nothing of them reaches the topic.
//!
//! Certificates are made in the test (rcgen): a CA, server certificates for
//! `localhost` and 127.0.0.1, client certificates, and a second CA that the
//! collector does not trust.
#![allow(clippy::unwrap_used)]

use super::grpc_common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use grpc_common::{config, metric, read_topic};
use prost::Message as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use spanway_collector::Collector;
use spanway_collector::config::{CollectorConfig, TlsConfig};
use spanway_e2e::{create_topic, require_kafka, unique_name};
use spanway_schemas::proto::grpc::otlp_trace::trace_service_client::TraceServiceClient;
use spanway_schemas::proto::otlp;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;
use tonic::Code;

/// A CA that signs server and client certificates, writing them as PEM
/// files into a temporary directory.
struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

/// A certificate and its key, as written to disk.
struct Leaf {
    cert: PathBuf,
    key: PathBuf,
    der: CertificateDer<'static>,
    /// Key then certificate, as reqwest's `Identity::from_pem` wants.
    identity_pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            issuer: rcgen::Issuer::new(params, key),
            pem,
        }
    }

    fn leaf(&self, dir: &Path, name: &str, server: bool) -> Leaf {
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![if server {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        }];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let leaf = Leaf {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
            der: cert.der().clone(),
            identity_pem: format!("{}{}", key.serialize_pem(), cert.pem()),
        };
        std::fs::write(&leaf.cert, cert.pem()).unwrap();
        std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
        leaf
    }

    fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, &self.pem).unwrap();
        path
    }
}

fn tls(leaf: &Leaf) -> Option<TlsConfig> {
    Some(TlsConfig {
        cert_file: Some(leaf.cert.clone()),
        key_file: Some(leaf.key.clone()),
        ..TlsConfig::default()
    })
}

/// A reqwest client that trusts only `ca`, optionally presenting `identity`.
fn https_client(ca: &Ca, identity: Option<&Leaf>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap());
    if let Some(leaf) = identity {
        builder =
            builder.identity(reqwest::Identity::from_pem(leaf.identity_pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

/// A rustls client config that trusts only `ca`, optionally with a client
/// certificate.
fn rustls_client(ca: &Ca, identity: Option<&Leaf>, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![leaf.der.clone()],
                PrivateKeyDer::from_pem_file(&leaf.key).unwrap(),
            )
            .unwrap(),
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

/// Connects with TLS and returns the certificate the server presented.
async fn served_certificate(
    addr: SocketAddr,
    client: Arc<rustls::ClientConfig>,
) -> CertificateDer<'static> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let stream = tokio_rustls::TlsConnector::from(client)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// Sends a small HTTP/1.1 request over TLS and returns what the server
/// answered, or the TLS error that ended the connection.
async fn raw_https(addr: SocketAddr, client: Arc<rustls::ClientConfig>) -> Result<String, String> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(client)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    // TLS 1.3 clients finish their side of the handshake before the server
    // has looked at their certificate: the refusal arrives on the first read.
    let request = "GET /nothing HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n";
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// A tonic client over TLS trusting `ca` (without tonic's TLS features: the
/// connection is made with tokio-rustls, as the collector's is).
async fn grpc_client(addr: SocketAddr, ca: &Ca) -> TraceServiceClient<tonic::transport::Channel> {
    let connector = tokio_rustls::TlsConnector::from(rustls_client(ca, None, b"h2"));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .unwrap();
    TraceServiceClient::new(channel)
}

fn export_request(trace: u8) -> otlp::ExportTraceServiceRequest {
    otlp::ExportTraceServiceRequest {
        resource_spans: vec![otlp::ResourceSpans {
            scope_spans: vec![otlp::ScopeSpans {
                spans: vec![otlp::Span {
                    trace_id: vec![trace; 16],
                    span_id: vec![trace; 8],
                    name: "op".into(),
                    start_time_unix_nano: 1_700_000_000_000_000_000,
                    end_time_unix_nano: 1_700_000_000_001_000_000,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn trace_ids(records: &[grpc_common::Record]) -> Vec<u8> {
    let mut ids: Vec<u8> = records
        .iter()
        .flat_map(|r| r.spans().map(|s| s.trace_id[0]).collect::<Vec<_>>())
        .collect();
    ids.sort_unstable();
    ids
}

/// Replaces `path` at once, as a mounted Secret changes: write aside, rename.
fn replace_file(path: &Path, content: &[u8]) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, content).unwrap();
    std::fs::rename(&aside, path).unwrap();
}

async fn start(config: &CollectorConfig) -> (Collector, CancellationToken) {
    config.validate().unwrap();
    let shutdown = CancellationToken::new();
    let collector = Collector::start(config, shutdown.clone()).await.unwrap();
    (collector, shutdown)
}

async fn new_topic(prefix: &str) -> String {
    require_kafka();
    let topic = unique_name(prefix);
    create_topic(&topic, 3).await;
    topic
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_over_tls_takes_bearer_tokens_and_refuses_the_rest() {
    let topic = new_topic("it-auth-http").await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("spanway-test-ca");
    let server = ca.leaf(dir.path(), "server", true);
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "# ingest tokens\ntoken-a\n\ntoken-b\n").unwrap();
    let mut config = config(&topic);
    config.otlp_http.tls = tls(&server);
    config.auth.bearer_tokens_file = Some(tokens.clone());
    config.auth.reload_interval = Duration::from_millis(200);
    let (collector, shutdown) = start(&config).await;
    let url = format!(
        "https://localhost:{}/v1/traces",
        collector.otlp_http_addr.unwrap().port()
    );
    let client = https_client(&ca, None);
    let post = |trace: u8, token: Option<&str>| {
        let mut request = client
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .body(export_request(trace).encode_to_vec());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };

    let response = post(1, Some("token-b")).await.unwrap();
    assert_eq!(response.status(), 200);
    let response = post(2, None).await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"spanway\""
    );
    let response = post(3, Some("token-c")).await.unwrap();
    assert_eq!(response.status(), 401);
    let response = post(4, Some("token-a")).await.unwrap();
    assert_eq!(response.status(), 200);

    // The tokens file changes: token-c comes in, token-a and token-b go.
    replace_file(&tokens, b"token-c\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = post(5, Some("token-c")).await.unwrap().status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 401);
        assert!(Instant::now() < deadline, "the new token was never taken");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(post(6, Some("token-a")).await.unwrap().status(), 401);

    let records = read_topic(&topic, 3, Duration::from_secs(20)).await;
    assert_eq!(
        trace_ids(&records),
        vec![1, 4, 5],
        "only the authenticated requests reach Kafka"
    );
    let ops = collector.ops_addr;
    let series = |reason: &str| {
        format!(
            "collector_requests_unauthenticated_total{{receiver=\"otlp_http\",reason=\"{reason}\"}}"
        )
    };
    assert_eq!(metric(ops, &series("missing")).await, 1.0);
    // token-c before the change, token-a after, and any 401 while waiting.
    assert!(metric(ops, &series("invalid")).await >= 2.0);
    assert_eq!(
        metric(
            ops,
            "collector_spans_received_total{receiver=\"otlp_http\"}"
        )
        .await,
        3.0,
        "refused requests were not decoded"
    );
    assert_eq!(
        metric(
            ops,
            "collector_security_file_reloads_total{key=\"auth.bearer_tokens_file\"}"
        )
        .await,
        1.0
    );

    shutdown.cancel();
    collector.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_sends_over_grpc_with_tls_and_a_token() {
    let topic = new_topic("it-auth-grpc").await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("spanway-test-ca");
    let server = ca.leaf(dir.path(), "server", true);
    let ca_file = ca.write(dir.path(), "ca.crt");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "python-token\n").unwrap();
    let mut config = config(&topic);
    config.otlp_grpc.tls = tls(&server);
    config.auth.bearer_tokens_file = Some(tokens);
    let (collector, shutdown) = start(&config).await;
    let addr = collector.otlp_grpc_addr.unwrap();

    let mut client = grpc_client(addr, &ca).await;
    let status = client.export(export_request(9)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let mut request = tonic::Request::new(export_request(9));
    request
        .metadata_mut()
        .insert("authorization", "Bearer wrong".parse().unwrap());
    let status = client.export(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    let out = dir.path().join("sent.binpb");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dev/clients/otel-python");
    let endpoint = addr.to_string();
    let run = {
        let out = out.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("bash")
                .arg(script)
                .args(["--endpoint", &endpoint, "--protocol", "grpc"])
                .arg("--ca-file")
                .arg(ca_file)
                .args(["--header", "authorization=Bearer python-token"])
                .arg("--out")
                .arg(out)
                .output()
                .unwrap()
        })
    };
    let output = run.await.unwrap();
    assert!(
        output.status.success(),
        "dev/clients/otel-python failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let sent =
        otlp::ExportTraceServiceRequest::decode(std::fs::read(&out).unwrap().as_slice()).unwrap();
    let sent_ids: std::collections::HashSet<Vec<u8>> = sent
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| s.span_id.clone())
        .collect();
    assert_eq!(sent_ids.len(), 31);

    let records = read_topic(&topic, 31, Duration::from_secs(30)).await;
    let received: std::collections::HashSet<Vec<u8>> = records
        .iter()
        .flat_map(|r| r.spans().map(|s| s.span_id.clone()).collect::<Vec<_>>())
        .collect();
    assert_eq!(
        received, sent_ids,
        "every span of the SDK, and nothing else"
    );
    assert_eq!(
        metric(
            collector.ops_addr,
            "collector_requests_unauthenticated_total{receiver=\"otlp_grpc\",reason=\"missing\"}"
        )
        .await,
        1.0
    );

    shutdown.cancel();
    collector.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_clients_without_a_certificate_from_the_ca() {
    let topic = new_topic("it-mtls").await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("spanway-test-ca");
    let stranger = Ca::new("someone-else");
    let server = ca.leaf(dir.path(), "server", true);
    let good = ca.leaf(dir.path(), "good-client", false);
    let foreign = stranger.leaf(dir.path(), "foreign-client", false);
    let mut config = config(&topic);
    config.zipkin.tls = tls(&server);
    if let Some(tls) = config.zipkin.tls.as_mut() {
        tls.client_ca_file = Some(ca.write(dir.path(), "ca.crt"));
    }
    let (collector, shutdown) = start(&config).await;
    let addr = collector.zipkin_addr.unwrap();

    let error = raw_https(addr, rustls_client(&ca, None, b"http/1.1"))
        .await
        .unwrap_err();
    assert!(error.contains("CertificateRequired"), "{error}");
    let error = raw_https(addr, rustls_client(&ca, Some(&foreign), b"http/1.1"))
        .await
        .unwrap_err();
    assert!(
        error.contains("UnknownCA") || error.contains("BadCertificate"),
        "{error}"
    );
    let answer = raw_https(addr, rustls_client(&ca, Some(&good), b"http/1.1"))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 404"), "served: {answer}");

    let response = https_client(&ca, Some(&good))
        .post(format!("https://localhost:{}/api/v2/spans", addr.port()))
        .header("content-type", "application/json")
        .body(r#"[{"traceId":"0707070707070707","id":"0707070707070707","name":"op","timestamp":1700000000000000,"duration":10}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert!(
        https_client(&ca, None)
            .post(format!("https://localhost:{}/api/v2/spans", addr.port()))
            .body("[]")
            .send()
            .await
            .is_err(),
        "no answer at all without a client certificate"
    );
    let records = read_topic(&topic, 1, Duration::from_secs(20)).await;
    assert_eq!(records.iter().map(|r| r.spans().count()).sum::<usize>(), 1);
    assert_eq!(
        metric(
            collector.ops_addr,
            "collector_tls_handshake_failures_total{receiver=\"zipkin\"}"
        )
        .await,
        3.0
    );

    shutdown.cancel();
    collector.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_replaced_on_disk_is_served_without_a_restart() {
    let topic = new_topic("it-tls-reload").await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("spanway-test-ca");
    let first = ca.leaf(dir.path(), "first", true);
    let live = Leaf {
        cert: dir.path().join("tls.crt"),
        key: dir.path().join("tls.key"),
        der: first.der.clone(),
        identity_pem: String::new(),
    };
    std::fs::copy(&first.cert, &live.cert).unwrap();
    std::fs::copy(&first.key, &live.key).unwrap();
    let mut config = config(&topic);
    config.otlp_http.tls = tls(&live);
    if let Some(tls) = config.otlp_http.tls.as_mut() {
        tls.reload_interval = Duration::from_millis(200);
    }
    let (collector, shutdown) = start(&config).await;
    let addr = collector.otlp_http_addr.unwrap();
    let client = rustls_client(&ca, None, b"http/1.1");
    assert_eq!(served_certificate(addr, client.clone()).await, first.der);
    let https = https_client(&ca, None);
    let url = format!("https://localhost:{}/v1/traces", addr.port());
    let send = |trace: u8| {
        https
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .body(export_request(trace).encode_to_vec())
            .send()
    };
    assert_eq!(send(1).await.unwrap().status(), 200);
    // HTTP listeners speak h2 too when the client offers it by ALPN: a gRPC
    // client (h2 only) reaches the router, which has no gRPC route (404 is
    // UNIMPLEMENTED to gRPC).
    let status = grpc_client(addr, &ca)
        .await
        .export(export_request(3))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");

    let second = ca.leaf(dir.path(), "second", true);
    assert_ne!(first.der, second.der);
    replace_file(&live.key, &std::fs::read(&second.key).unwrap());
    replace_file(&live.cert, &std::fs::read(&second.cert).unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_certificate(addr, client.clone()).await != second.der {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(send(2).await.unwrap().status(), 200);

    // A broken file is refused; the second certificate stays in force.
    replace_file(&live.cert, b"-----BEGIN CERTIFICATE-----\nnot base64\n");
    let refused = "collector_security_file_reload_failures_total{key=\"otlp_http.tls\"}";
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(collector.ops_addr, refused).await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the broken file was never looked at"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served_certificate(addr, client.clone()).await, second.der);
    assert!(
        metric(
            collector.ops_addr,
            "collector_security_file_reloads_total{key=\"otlp_http.tls\"}"
        )
        .await
            >= 1.0
    );
    let records = read_topic(&topic, 2, Duration::from_secs(20)).await;
    assert_eq!(trace_ids(&records), vec![1, 2]);

    shutdown.cancel();
    collector.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_from_htpasswd_on_zipkin_and_jaeger_thrift() {
    let topic = new_topic("it-basic-auth").await;
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    // zed: bcrypt as `htpasswd -B` writes it ($2y$); jay: `openssl passwd
    // -apr1 -salt Ab3.x/yZ pw`, `htpasswd`'s default format.
    let bcrypt = bcrypt::hash("zed-secret", 5)
        .unwrap()
        .replacen("$2b$", "$2y$", 1);
    std::fs::write(
        &htpasswd,
        format!("zed:{bcrypt}\njay:$apr1$Ab3.x/yZ$22gtj8F7eNfTj1pko6Ll/1\n"),
    )
    .unwrap();
    let mut config = config(&topic);
    config.auth.htpasswd_file = Some(htpasswd);
    let (collector, shutdown) = start(&config).await;
    let client = reqwest::Client::new();

    let zipkin = format!("http://{}/api/v2/spans", collector.zipkin_addr.unwrap());
    let span = r#"[{"traceId":"0808080808080808","id":"0808080808080808","name":"op","timestamp":1700000000000000,"duration":10}]"#;
    let post_zipkin = |user: &str, password: &str| {
        client
            .post(&zipkin)
            .header("content-type", "application/json")
            .basic_auth(user, Some(password))
            .body(span)
            .send()
    };
    let response = post_zipkin("zed", "wrong").await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Basic realm=\"spanway\", charset=\"UTF-8\""
    );
    assert_eq!(
        post_zipkin("nobody", "zed-secret").await.unwrap().status(),
        401
    );
    assert_eq!(
        post_zipkin("zed", "zed-secret").await.unwrap().status(),
        202
    );
    // Again, now from what the first bcrypt check remembered.
    assert_eq!(
        post_zipkin("zed", "zed-secret").await.unwrap().status(),
        202
    );

    let thrift = format!(
        "http://{}/api/traces",
        collector.jaeger_thrift_http_addr.unwrap()
    );
    let batch = include_bytes!("../../testdata/jaeger-java-batch.thrift").to_vec();
    let post_thrift = |authorization: &str| {
        client
            .post(&thrift)
            .header("content-type", "application/x-thrift")
            .header("authorization", authorization)
            .body(batch.clone())
            .send()
    };
    let basic = |credentials: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
    };
    assert_eq!(post_thrift(&basic("jay:px")).await.unwrap().status(), 401);
    assert_eq!(
        post_thrift("Bearer zed-secret").await.unwrap().status(),
        401
    );
    assert_eq!(post_thrift(&basic("jay:pw")).await.unwrap().status(), 202);

    // Sampling strategies stay open (sampling.require_auth = false), and so
    // does the operations endpoint.
    let sampling = reqwest::get(format!(
        "http://{}/sampling?service=x",
        collector.sampling_http_addr.unwrap()
    ))
    .await
    .unwrap();
    assert_eq!(sampling.status(), 200);

    let ops = collector.ops_addr;
    let series = |receiver: &str, reason: &str| {
        format!(
            "collector_requests_unauthenticated_total{{receiver=\"{receiver}\",reason=\"{reason}\"}}"
        )
    };
    assert_eq!(metric(ops, &series("zipkin", "invalid")).await, 2.0);
    assert_eq!(
        metric(ops, &series("jaeger_thrift_http", "invalid")).await,
        2.0
    );
    assert_eq!(
        metric(ops, "collector_spans_accepted_total{receiver=\"zipkin\"}").await,
        2.0
    );
    let accepted = "collector_spans_accepted_total{receiver=\"jaeger_thrift_http\"}";
    let java_spans = metric(ops, accepted).await as usize;
    assert!(java_spans > 0);
    let records = read_topic(&topic, 2 + java_spans, Duration::from_secs(20)).await;
    let spans: usize = records.iter().map(|r| r.spans().count()).sum();
    assert_eq!(spans, 2 + java_spans, "the accepted spans and no others");

    shutdown.cancel();
    collector.wait().await;
}
