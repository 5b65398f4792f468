//! The secured test services answer as `dev/services help` says: `kafka-secure`
//! (SCRAM, OAUTHBEARER, mutual TLS, ACLs), `opensearch-secure` (basic auth,
//! client certificates, roles) and `es-proxy` (basic auth, API key, bearer
//! token, client certificates in front of Elasticsearch 7.17). Tests of
//! spanway's own TLS and authentication settings build on these.

// A failed step is a failed test: panicking on it is the point.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use reqwest::StatusCode;
use spanway_e2e::secure::*;
use spanway_e2e::unique_name;

/// Records the errors librdkafka reports through its error callback, where
/// authentication and TLS failures arrive (they are no request's error).
#[derive(Debug, Clone, Default)]
struct ErrorLog(Arc<Mutex<Vec<Reported>>>);

/// An error from librdkafka's error callback: its code and reason.
type Reported = (Option<RDKafkaErrorCode>, String);

impl ClientContext for ErrorLog {
    fn error(&self, error: KafkaError, reason: &str) {
        self.0
            .lock()
            .unwrap()
            .push((error.rdkafka_error_code(), reason.to_owned()));
    }
}

impl ConsumerContext for ErrorLog {}

/// Connects with `config` and returns the errors reported within `timeout`
/// (stops at the first one), after checking that metadata cannot be fetched.
fn connection_errors(mut config: ClientConfig, timeout: Duration) -> Vec<Reported> {
    let log = ErrorLog::default();
    let consumer: BaseConsumer<ErrorLog> = config
        .set("group.id", unique_name("secure-probe"))
        .create_with_context(log.clone())
        .unwrap();
    assert!(
        consumer
            .fetch_metadata(None, Duration::from_secs(5))
            .is_err(),
        "metadata was fetched although the client should be refused"
    );
    let deadline = Instant::now() + timeout;
    while log.0.lock().unwrap().is_empty() && Instant::now() < deadline {
        consumer.poll(Duration::from_millis(200));
    }
    log.0.lock().unwrap().clone()
}

fn producer(mut config: ClientConfig) -> FutureProducer {
    config.set("message.timeout.ms", "15000").create().unwrap()
}

async fn produce_one(producer: &FutureProducer, topic: &str, payload: &str) {
    producer
        .send(
            FutureRecord::<str, str>::to(topic).payload(payload),
            Duration::from_secs(15),
        )
        .await
        .map_err(|(error, _)| error)
        .unwrap_or_else(|error| panic!("producing to {topic} failed: {error}"));
}

/// Producing to `topic` with `config` is refused by the broker's ACLs
/// (`TopicAuthorizationFailed`), not by anything else; `why` names the case.
async fn assert_refused_by_acls(config: ClientConfig, topic: &str, why: &str) {
    let result = producer(config)
        .send(
            FutureRecord::<str, str>::to(topic).payload("refused"),
            Duration::from_secs(15),
        )
        .await;
    assert!(
        matches!(
            result,
            Err((
                KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed),
                _
            ))
        ),
        "expected TopicAuthorizationFailed {why}, got {result:?}"
    );
}

/// Consumes `topic` from the start in a new `secure-` group until `payload` arrives.
fn consume_until(mut config: ClientConfig, topic: &str, payload: &str) {
    let consumer: BaseConsumer = config
        .set("group.id", unique_name("secure-group"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(message)) if message.payload() == Some(payload.as_bytes()) => return,
            Some(Ok(_)) | None => {}
            Some(Err(error)) => panic!("consuming {topic} failed: {error}"),
        }
    }
    panic!("{payload:?} did not arrive on {topic} within 60 s");
}

#[tokio::test]
async fn scram_user_produces_and_consumes_on_secure_topics() {
    require_secure_kafka();
    let topic = unique_name("secure-e2e");
    create_secure_topic(&topic, 2).await;
    let mut config = scram_client_config(KAFKA_USER, KAFKA_PASSWORD);
    // Idempotence needs IdempotentWrite on the cluster, which spanway has.
    config.set("enable.idempotence", "true").set("acks", "all");
    produce_one(&producer(config), &topic, "over scram").await;
    consume_until(
        scram_client_config(KAFKA_USER, KAFKA_PASSWORD),
        &topic,
        "over scram",
    );
    // spanway-analytics may read too.
    consume_until(
        scram_client_config(KAFKA_ANALYTICS_USER, KAFKA_ANALYTICS_PASSWORD),
        &topic,
        "over scram",
    );
}

#[test]
fn wrong_scram_password_is_an_authentication_error() {
    require_secure_kafka();
    let errors = connection_errors(
        scram_client_config(KAFKA_USER, "not-the-password"),
        Duration::from_secs(20),
    );
    assert!(
        errors
            .iter()
            .any(|(code, _)| *code == Some(RDKafkaErrorCode::Authentication)),
        "expected an authentication error, got {errors:?}"
    );
}

#[tokio::test]
async fn user_without_acls_gets_topic_authorization_failed() {
    require_secure_kafka();
    let topic = unique_name("secure-e2e");
    create_secure_topic(&topic, 1).await;
    assert_refused_by_acls(
        scram_client_config(KAFKA_NOACL_USER, KAFKA_NOACL_PASSWORD),
        &topic,
        "for a user without ACLs",
    )
    .await;
}

#[tokio::test]
async fn oauthbearer_unsecured_jwt_principal_is_subject_to_acls() {
    require_secure_kafka();
    let topic = unique_name("secure-e2e");
    create_secure_topic(&topic, 1).await;
    produce_one(
        &producer(oauthbearer_client_config(KAFKA_USER)),
        &topic,
        "over oauthbearer",
    )
    .await;
    assert_refused_by_acls(
        oauthbearer_client_config("nobody"),
        &topic,
        "for principal nobody",
    )
    .await;
}

#[tokio::test]
async fn ingester_certificate_consumes_and_produces_over_mtls() {
    require_secure_kafka();
    let topic = unique_name("secure-e2e");
    create_secure_topic(&topic, 1).await;
    // The encrypted copy of the ingester's key, with its passphrase.
    let mut config = mtls_client_config(INGESTER_CERT);
    config
        .set("ssl.key.location", encrypted_key_path().to_str().unwrap())
        .set("ssl.key.password", ENCRYPTED_KEY_PASSPHRASE);
    produce_one(&producer(config), &topic, "over mtls").await;
    consume_until(mtls_client_config(INGESTER_CERT), &topic, "over mtls");
}

/// The broker ends the handshake with TLS alert 42 "bad certificate", which
/// librdkafka reports as a transport failure ("Receive failed: ... SSL alert
/// number 42").
fn assert_refused_handshake(errors: &[Reported], what: &str) {
    assert!(
        errors.iter().any(|(code, _)| matches!(
            code,
            Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::SSL)
        )),
        "{what}: expected a TLS failure, got {errors:?}"
    );
}

#[test]
fn untrusted_or_missing_client_certificate_is_refused() {
    require_secure_kafka();
    let errors = connection_errors(mtls_client_config(UNTRUSTED_CERT), Duration::from_secs(20));
    assert_refused_handshake(&errors, "client certificate from another CA");

    let mut config = mtls_client_config(INGESTER_CERT);
    config
        .remove("ssl.certificate.location")
        .remove("ssl.key.location");
    let errors = connection_errors(config, Duration::from_secs(20));
    assert_refused_handshake(&errors, "no client certificate");
}

/// `set_scram_password`, `add_prefixed_acl` and `remove_acls_for` on a user of
/// this test's own, so that the standard users stay as they are.
#[tokio::test]
async fn helpers_change_passwords_and_acls() {
    require_secure_kafka();
    let user = unique_name("rotation");
    let prefix = format!("{}-", unique_name("secure-rotation"));
    let topic = format!("{prefix}t");
    create_secure_topic(&topic, 1).await;

    set_scram_password(&user, "first-secret");
    add_prefixed_acl(&user, "topic", &prefix, &["Write", "Describe"]);
    produce_one(
        &producer(scram_client_config(&user, "first-secret")),
        &topic,
        "allowed",
    )
    .await;

    set_scram_password(&user, "second-secret");
    let errors = connection_errors(
        scram_client_config(&user, "first-secret"),
        Duration::from_secs(20),
    );
    assert!(
        errors
            .iter()
            .any(|(code, _)| *code == Some(RDKafkaErrorCode::Authentication)),
        "the old password still works: {errors:?}"
    );

    remove_acls_for(&user);
    assert_refused_by_acls(
        scram_client_config(&user, "second-secret"),
        &topic,
        "after remove_acls_for",
    )
    .await;
    kafka_secure_admin(&[
        "configs",
        "--alter",
        "--entity-type",
        "users",
        "--entity-name",
        &user,
        "--delete-config",
        "SCRAM-SHA-512",
    ]);
}

#[tokio::test]
async fn opensearch_secure_checks_users_certificates_and_roles() {
    require_secure_opensearch().await;
    let url = opensearch_secure_url();
    let client = https_client();

    let status = |r: reqwest::Response| r.status();
    let get_root = |user: &'static str, password: &'static str| {
        client
            .get(format!("{url}/"))
            .basic_auth(user, Some(password))
            .send()
    };
    assert_eq!(
        status(
            get_root(OPENSEARCH_USER, OPENSEARCH_PASSWORD)
                .await
                .unwrap()
        ),
        StatusCode::OK
    );
    assert_eq!(
        status(get_root(OPENSEARCH_USER, "wrong").await.unwrap()),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        client.get(format!("{url}/")).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let health = client
        .get(format!("{url}/_cluster/health"))
        .basic_auth(OPENSEARCH_USER, Some(OPENSEARCH_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    // A client certificate alone authenticates (user = CN).
    let by_cert = https_client_with_cert(INGESTER_CERT);
    let authinfo: serde_json::Value = by_cert
        .get(format!("{url}/_plugins/_security/authinfo"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(authinfo["user_name"], INGESTER_CERT, "{authinfo}");

    // Writers may index into *jaeger-* indices, readers may not.
    let index = format!("{}-jaeger-span-2026-12-02", unique_name("t"));
    let doc = serde_json::json!({"traceID": "1"});
    let put = |user: &'static str, password: &'static str, id: u32| {
        client
            .put(format!("{url}/{index}/_doc/{id}?refresh=true"))
            .basic_auth(user, Some(password))
            .json(&doc)
            .send()
    };
    assert_eq!(
        put(OPENSEARCH_USER, OPENSEARCH_PASSWORD, 1)
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        put(OPENSEARCH_READER_USER, OPENSEARCH_READER_PASSWORD, 2)
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    let read = client
        .get(format!("{url}/{index}/_doc/1"))
        .basic_auth(OPENSEARCH_READER_USER, Some(OPENSEARCH_READER_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let other = client
        .put(format!("{url}/{}/_doc/1", unique_name("not-ours")))
        .basic_auth(OPENSEARCH_USER, Some(OPENSEARCH_PASSWORD))
        .json(&doc)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    let deleted = by_cert
        .delete(format!("{url}/{index}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);

    // A certificate from another CA does not get through the TLS handshake.
    assert!(
        https_client_with_cert(UNTRUSTED_CERT)
            .get(format!("{url}/"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn es_proxy_accepts_each_way_of_authenticating() {
    require_es_proxy().await;
    let client = https_client();

    let basic = es_proxy_basic_url();
    let ok = client
        .get(format!("{basic}/"))
        .basic_auth(ES_PROXY_USER, Some(ES_PROXY_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let body: serde_json::Value = ok.json().await.unwrap();
    assert!(
        body["version"]["number"]
            .as_str()
            .unwrap()
            .starts_with("7.17."),
        "{body}"
    );
    let refused = client.get(format!("{basic}/")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.headers().contains_key("www-authenticate"));
    let wrong = client
        .get(format!("{basic}/"))
        .basic_auth(ES_PROXY_USER, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let token = es_proxy_token_url();
    for header in [
        format!("ApiKey {ES_PROXY_API_KEY_ENCODED}"),
        format!("Bearer {ES_PROXY_BEARER_TOKEN}"),
    ] {
        let answer = client
            .get(format!("{token}/"))
            .header("authorization", &header)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{header}");
    }
    for header in [None, Some("Bearer wrong"), Some("ApiKey d3Jvbmc=")] {
        let mut request = client.get(format!("{token}/"));
        if let Some(header) = header {
            request = request.header("authorization", header);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{header:?}");
        assert!(answer.headers().contains_key("www-authenticate"));
    }

    let mtls = es_proxy_mtls_url();
    let with_cert = https_client_with_cert(INGESTER_CERT)
        .get(format!("{mtls}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(with_cert.status(), StatusCode::OK);
    let without = client.get(format!("{mtls}/")).send().await.unwrap();
    assert_eq!(without.status(), StatusCode::BAD_REQUEST);
}
