//! The engine side against secured servers started by `dev/services`:
//! OpenSearch with its security plugin (`opensearch-secure`: basic auth,
//! client certificates, roles) and Elasticsearch 7.17 behind a TLS proxy
//! that checks basic auth, API keys, bearer tokens or client certificates
//! (`es-proxy`). And the faults operators meet there: a wrong password, a
//! role without write rights, a password rotated while running. A refusal
//! of our credentials is a configuration fault: the ingester waits (not
//! ready, counted), dead-letters nothing, and stores every span exactly
//! once when the credentials work again.

use std::path::Path;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use spanway_e2e::secure::*;
use spanway_e2e::{
    corpus, create_topic, kafka_bootstrap, ops, produce, require_kafka, rewrite_later, unique_name,
};
use spanway_ingester::Ingester;
use spanway_ingester::config::IngesterConfig;
use spanway_search::client::EngineClient;
use spanway_search::config::{EngineClientConfig, TlsConfig};
use spanway_service_kit::secret::Secret;
use tokio_util::sync::CancellationToken;

fn tls(ca: bool, cert: Option<&str>) -> TlsConfig {
    TlsConfig {
        ca_file: ca.then(ca_path),
        cert_file: cert.map(cert_path),
        key_file: cert.map(key_path),
        ..TlsConfig::default()
    }
}

fn engine(url: String, tls: TlsConfig) -> EngineClientConfig {
    EngineClientConfig {
        url: Some(url),
        tls,
        ..EngineClientConfig::default()
    }
}

/// What `GET /` gives with `config`: `Ok` with the server's answer, or the error.
async fn info(config: &EngineClientConfig) -> Result<serde_json::Value, String> {
    config.validate().map_err(|e| e.to_string())?;
    let client = EngineClient::new(config).map_err(|e| e.to_string())?;
    client.server_info().await.map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_way_of_authenticating_against_real_servers() {
    require_secure_opensearch().await;
    require_es_proxy().await;
    let dir = tempfile::tempdir().expect("temp dir");

    // Basic auth, through the proxy and against the security plugin.
    let mut basic = engine(es_proxy_basic_url(), tls(true, None));
    basic.username = Some(ES_PROXY_USER.into());
    basic.password = Some(Secret::new(ES_PROXY_PASSWORD));
    let answer = info(&basic).await.expect("basic auth through the proxy");
    assert_eq!(answer["version"]["number"], "7.17.29", "{answer}");
    basic.password = Some(Secret::new("wrong"));
    let refused = info(&basic).await.expect_err("a wrong password is refused");
    assert!(refused.contains("401"), "{refused}");

    let mut plugin = engine(opensearch_secure_url(), tls(true, None));
    plugin.username = Some(OPENSEARCH_USER.into());
    plugin.password = Some(Secret::new(OPENSEARCH_PASSWORD));
    let answer = info(&plugin)
        .await
        .expect("basic auth against the security plugin");
    assert_eq!(answer["version"]["distribution"], "opensearch", "{answer}");

    // Several nodes of one cluster: requests go to each in turn.
    let mut nodes = plugin.clone();
    nodes.url = None;
    nodes.urls = vec![
        opensearch_secure_url(),
        opensearch_secure_url().replace("127.0.0.1", "localhost"),
    ];
    for _ in 0..2 {
        info(&nodes).await.expect("each node answers");
    }

    // The private CA is what makes the certificate trusted.
    plugin.tls.ca_file = None;
    info(&plugin)
        .await
        .expect_err("without the private CA the server certificate is not trusted");

    // An API key and a bearer token from a file.
    let mut key = engine(es_proxy_token_url(), tls(true, None));
    key.api_key = Some(Secret::new(ES_PROXY_API_KEY_ENCODED));
    info(&key).await.expect("API key");
    key.api_key = Some(Secret::new("d3Jvbmc6a2V5"));
    assert!(info(&key).await.expect_err("a wrong key").contains("401"));
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{ES_PROXY_BEARER_TOKEN}\n")).expect("write token");
    let mut bearer = engine(es_proxy_token_url(), tls(true, None));
    bearer.bearer_token_file = Some(token_file);
    info(&bearer).await.expect("bearer token from a file");

    // Client certificates: the proxy's mutual TLS port, and the security
    // plugin logging the certificate's subject in as a user.
    info(&engine(es_proxy_mtls_url(), tls(true, Some(INGESTER_CERT))))
        .await
        .expect("client certificate through the proxy");
    info(&engine(es_proxy_mtls_url(), tls(true, None)))
        .await
        .expect_err("the mutual TLS port wants a certificate");
    info(&engine(
        opensearch_secure_url(),
        tls(true, Some(INGESTER_CERT)),
    ))
    .await
    .expect("certificate login to the security plugin");
}

fn dead_letters_on(topic: &str) -> i64 {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .expect("consumer");
    match consumer.fetch_watermarks(topic, 0, Duration::from_secs(5)) {
        Ok((_, high)) => high,
        Err(_) => 0,
    }
}

fn auth_failures(metrics: &str) -> f64 {
    ops::sample(metrics, "ingester_bulk_auth_failures_total").unwrap_or(0.0)
}

struct Run {
    topic: String,
    prefix: String,
    dead_letters: String,
    shutdown: CancellationToken,
    ingester: Ingester,
}

/// An ingester reading a fresh plain topic and writing to `opensearch-secure`
/// as `user`, its password in `password_file`.
async fn start_ingester(user: &str, password_file: &Path) -> Run {
    let topic = unique_name("secure-engine");
    create_topic(&topic, 2).await;
    let prefix = unique_name("secure");
    let dead_letters = format!("{topic}-dlq");
    let mut config = IngesterConfig::default();
    config.kafka.client.brokers = vec![kafka_bootstrap()];
    config.kafka.topics = vec![topic.clone()];
    config.kafka.group_id = unique_name("secure-engine");
    config.dead_letter.topic = dead_letters.clone();
    config.elasticsearch.client = EngineClientConfig {
        url: Some(opensearch_secure_url()),
        username: Some(user.into()),
        password_file: Some(password_file.to_path_buf()),
        tls: tls(true, None),
        ..EngineClientConfig::default()
    };
    config.elasticsearch.index_prefix = prefix.clone();
    config.elasticsearch.shards = 1;
    config.elasticsearch.replicas = 0;
    config.bulk.flush_interval = Duration::from_millis(100);
    config.bulk.retry_max_backoff = Duration::from_secs(1);
    config.ops.listen = "127.0.0.1:0".parse().expect("address");
    config.validate().expect("valid ingester config");
    let shutdown = CancellationToken::new();
    let ingester = Ingester::start(config, shutdown.clone())
        .await
        .expect("ingester starts");
    Run {
        topic,
        prefix,
        dead_letters,
        shutdown,
        ingester,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_waits_and_a_rotated_file_recovers_every_span_once() {
    spanway_e2e::logs::capture();
    require_kafka();
    require_secure_opensearch().await;
    let user = unique_name("rotate");
    put_opensearch_user(&user, "first-Passw0rd!", "spanway_writer").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "first-Passw0rd!\n").expect("write password");
    let run = start_ingester(&user, &password_file).await;
    let spans = format!("{}-jaeger-span-*", run.prefix);

    let first = corpus::generate(21, 20, 4);
    produce(&run.topic, &first.as_produce_input()).await;
    let stored = wait_for_secure_count(&spans, 80, Duration::from_secs(60)).await;
    assert_eq!(stored, 80);

    // The password changes on the engine; the file lags behind.
    put_opensearch_user(&user, "second-Passw0rd!", "spanway_writer").await;
    let second = corpus::generate(22, 30, 4);
    produce(&run.topic, &second.as_produce_input()).await;
    let (status, metrics) =
        ops::wait_for(run.ingester.ops_addr, Duration::from_secs(60), |s, m| {
            s == 503 && auth_failures(m) > 0.0
        })
        .await;
    assert!(
        auth_failures(&metrics) > 0.0,
        "refusals counted:\n{metrics}"
    );
    assert_eq!(status, 503, "not ready while the engine refuses");
    let named = spanway_e2e::logs::lines_with(&[
        "setting=\"elasticsearch.password_file\"",
        &format!("user \"{user}\""),
    ]);
    assert!(
        !named.is_empty(),
        "one error line names the password file and the user"
    );
    assert_eq!(secure_count(&spans).await, 80, "nothing written meanwhile");
    assert_eq!(
        dead_letters_on(&run.dead_letters),
        0,
        "nothing dead-lettered"
    );

    // The file catches up: no restart, every span once.
    rewrite_later(&password_file, "second-Passw0rd!\n");
    let stored = wait_for_secure_count(&spans, 200, Duration::from_secs(90)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(secure_count(&spans).await, 200, "every span exactly once");
    assert_eq!(stored, 200);
    let (status, _) = ops::wait_for(run.ingester.ops_addr, Duration::from_secs(30), |s, _| {
        s == 200
    })
    .await;
    assert_eq!(status, 200, "ready again");
    assert_eq!(dead_letters_on(&run.dead_letters), 0);
    run.shutdown.cancel();
    run.ingester
        .wait()
        .await
        .expect("the ingester stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_write_rights_is_a_configuration_fault() {
    spanway_e2e::logs::capture();
    require_kafka();
    require_secure_opensearch().await;
    let user = unique_name("readonly");
    put_opensearch_user(&user, "reader-Passw0rd!", "spanway_writer").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "reader-Passw0rd!").expect("write password");
    // Templates are installed while the user may still write; then its role
    // loses the write rights, as when an operator maps it to the wrong role.
    let run = start_ingester(&user, &password_file).await;
    put_opensearch_user(&user, "reader-Passw0rd!", "spanway_reader").await;
    let spans = format!("{}-jaeger-span-*", run.prefix);

    let traces = corpus::generate(23, 25, 4);
    produce(&run.topic, &traces.as_produce_input()).await;
    let (status, metrics) =
        ops::wait_for(run.ingester.ops_addr, Duration::from_secs(60), |s, m| {
            s == 503 && auth_failures(m) > 0.0
        })
        .await;
    assert!(
        auth_failures(&metrics) > 0.0,
        "refusals counted:\n{metrics}"
    );
    assert_eq!(status, 503);
    assert_eq!(secure_count(&spans).await, 0);
    assert_eq!(
        dead_letters_on(&run.dead_letters),
        0,
        "a missing right is not a document fault"
    );
    let named = spanway_e2e::logs::lines_with(&["may not write to", &format!("user \"{user}\"")]);
    assert!(
        !named.is_empty(),
        "one error line says the user's role lacks write rights"
    );

    // The role is fixed on the engine: everything arrives, once.
    put_opensearch_user(&user, "reader-Passw0rd!", "spanway_writer").await;
    let stored = wait_for_secure_count(&spans, 100, Duration::from_secs(90)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stored, 100);
    assert_eq!(secure_count(&spans).await, 100, "every span exactly once");
    assert_eq!(dead_letters_on(&run.dead_letters), 0);
    run.shutdown.cancel();
    run.ingester
        .wait()
        .await
        .expect("the ingester stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_at_start_names_the_setting() {
    require_secure_opensearch().await;
    let mut config = IngesterConfig::default();
    config.kafka.client.brokers = vec![kafka_bootstrap()];
    config.elasticsearch.client = EngineClientConfig {
        url: Some(opensearch_secure_url()),
        username: Some(OPENSEARCH_USER.into()),
        password: Some(Secret::new("not-the-password")),
        tls: tls(true, None),
        ..EngineClientConfig::default()
    };
    config.elasticsearch.index_prefix = unique_name("secure");
    config.elasticsearch.template_api = spanway_search::templates::TemplateApi::Legacy;
    config.ops.listen = "127.0.0.1:0".parse().expect("address");
    config.validate().expect("valid config");
    let error = Ingester::start(config, CancellationToken::new())
        .await
        .expect_err("templates cannot be installed with a wrong password");
    let text = error.to_string();
    assert!(text.contains("401"), "{text}");
    assert!(text.contains("elasticsearch.password"), "{text}");
}
