//! Helpers for tests against the secured test services of `dev/services`:
//! `kafka-secure` (TLS, SASL, ACLs), `opensearch-secure` (the OpenSearch
//! security plugin) and `es-proxy` (nginx with TLS and authentication in
//! front of Elasticsearch 7.17). Start them with
//! `dev/services up kafka-secure opensearch-secure es-proxy`;
//! `dev/services help` describes them.
//!
//! Every user, password, key and token below is a throwaway test value, the
//! same as in `dev/services`. A test that cannot reach a service fails with a
//! message saying how to start it; it never skips.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

/// Kafka and OpenSearch super user (SCRAM on `kafka-secure`, basic auth on `opensearch-secure`).
pub const ADMIN_USER: &str = "admin";
/// Password of [`ADMIN_USER`].
pub const ADMIN_PASSWORD: &str = "admin-secret";
/// SCRAM-SHA-512 user with producer and consumer ACLs on `secure-*` topics and groups.
pub const KAFKA_USER: &str = "spanway";
/// Password of [`KAFKA_USER`].
pub const KAFKA_PASSWORD: &str = "spanway-secret";
/// SCRAM-SHA-512 user with consumer ACLs only (topics and groups `secure-*`).
pub const KAFKA_ANALYTICS_USER: &str = "spanway-analytics";
/// Password of [`KAFKA_ANALYTICS_USER`].
pub const KAFKA_ANALYTICS_PASSWORD: &str = "analytics-secret";
/// SCRAM-SHA-512 user without any ACL: authenticates, may do nothing.
pub const KAFKA_NOACL_USER: &str = "noacl";
/// Password of [`KAFKA_NOACL_USER`].
pub const KAFKA_NOACL_PASSWORD: &str = "noacl-secret";
/// Every topic and consumer group the test users may use starts with this.
pub const SECURE_PREFIX: &str = "secure-";
/// How often the secured broker makes SASL clients re-authenticate
/// (`connections.max.reauth.ms` on its SASL_SSL listener).
pub const REAUTH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// OpenSearch internal user with role `spanway_writer` (indices `*jaeger-*`, `*spanway-*`).
pub const OPENSEARCH_USER: &str = "spanway";
/// Password of [`OPENSEARCH_USER`].
pub const OPENSEARCH_PASSWORD: &str = "spanway-secret";
/// OpenSearch internal user that may read the same indices but not write.
pub const OPENSEARCH_READER_USER: &str = "reader";
/// Password of [`OPENSEARCH_READER_USER`].
pub const OPENSEARCH_READER_PASSWORD: &str = "reader-secret";

/// Basic-auth user of `es-proxy`'s basic port.
pub const ES_PROXY_USER: &str = "spanway";
/// Password of [`ES_PROXY_USER`].
pub const ES_PROXY_PASSWORD: &str = "spanway-secret";
/// API key id accepted on `es-proxy`'s token port.
pub const ES_PROXY_API_KEY_ID: &str = "spanway-key-id";
/// API key secret accepted on `es-proxy`'s token port.
pub const ES_PROXY_API_KEY_SECRET: &str = "spanway-key-secret";
/// `base64("spanway-key-id:spanway-key-secret")`, as in `Authorization: ApiKey <this>`.
pub const ES_PROXY_API_KEY_ENCODED: &str = "c3BhbndheS1rZXktaWQ6c3BhbndheS1rZXktc2VjcmV0";
/// Token accepted as `Authorization: Bearer <this>` on `es-proxy`'s token port.
pub const ES_PROXY_BEARER_TOKEN: &str = "spanway-bearer-token";

/// Client certificate (CN) of the ingester: `kafka-secure` principal `User:spanway-ingester`
/// (consumer and producer on `secure-*`), `opensearch-secure` role `spanway_writer`.
pub const INGESTER_CERT: &str = "spanway-ingester";
/// Client certificate (CN) of the collector; no ACLs or roles of its own.
pub const COLLECTOR_CERT: &str = "spanway-collector";
/// Client certificate (CN) of streaming analytics; `opensearch-secure` role `spanway_writer`.
pub const ANALYTICS_CERT: &str = "spanway-analytics";
/// Client certificate with CN=admin: a Kafka super user, the OpenSearch security admin.
pub const ADMIN_CERT: &str = "admin";
/// Client certificate signed by an unrelated CA (`other-ca.crt`): every service refuses it.
pub const UNTRUSTED_CERT: &str = "untrusted";
/// Server certificate for `localhost` and `127.0.0.1`, for the collector's TLS receivers.
pub const RECEIVER_CERT: &str = "receiver";
/// `spanway-ingester-encrypted.key` is the ingester's key as encrypted PKCS#8 with this passphrase.
pub const ENCRYPTED_KEY_PASSPHRASE: &str = "key-secret";

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ has a parent")
        .to_path_buf()
}

/// Directory of the test certificates (`SPANWAY_TEST_CERTS`, default `<repo>/.services/certs`).
pub fn certs_dir() -> PathBuf {
    std::env::var_os("SPANWAY_TEST_CERTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".services").join("certs"))
}

/// The test CA's certificate, `ca.crt`, which signed every server and client certificate
/// except [`UNTRUSTED_CERT`].
pub fn ca_path() -> PathBuf {
    certs_dir().join("ca.crt")
}

/// `<certs_dir>/<name>.crt`, e.g. `cert_path(INGESTER_CERT)`.
pub fn cert_path(name: &str) -> PathBuf {
    certs_dir().join(format!("{name}.crt"))
}

/// `<certs_dir>/<name>.key` (unencrypted PKCS#8).
pub fn key_path(name: &str) -> PathBuf {
    certs_dir().join(format!("{name}.key"))
}

/// `spanway-ingester-encrypted.key`, the ingester's key encrypted with
/// [`ENCRYPTED_KEY_PASSPHRASE`].
pub fn encrypted_key_path() -> PathBuf {
    certs_dir().join("spanway-ingester-encrypted.key")
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

/// `kafka-secure`'s SASL_SSL listener (`KAFKA_SECURE_SASL`, default `127.0.0.1:9094`).
pub fn kafka_sasl_bootstrap() -> String {
    env_or("KAFKA_SECURE_SASL", "127.0.0.1:9094")
}

/// `kafka-secure`'s mutual-TLS listener (`KAFKA_SECURE_MTLS`, default `127.0.0.1:9095`).
pub fn kafka_mtls_bootstrap() -> String {
    env_or("KAFKA_SECURE_MTLS", "127.0.0.1:9095")
}

/// `opensearch-secure` (`OPENSEARCH_SECURE_URL`, default `https://127.0.0.1:9210`).
pub fn opensearch_secure_url() -> String {
    env_or("OPENSEARCH_SECURE_URL", "https://127.0.0.1:9210")
}

/// `es-proxy`'s basic-auth port (`ES_PROXY_BASIC_URL`, default `https://127.0.0.1:9211`).
pub fn es_proxy_basic_url() -> String {
    env_or("ES_PROXY_BASIC_URL", "https://127.0.0.1:9211")
}

/// `es-proxy`'s API key / bearer token port (`ES_PROXY_TOKEN_URL`, default `https://127.0.0.1:9212`).
pub fn es_proxy_token_url() -> String {
    env_or("ES_PROXY_TOKEN_URL", "https://127.0.0.1:9212")
}

/// `es-proxy`'s client-certificate port (`ES_PROXY_MTLS_URL`, default `https://127.0.0.1:9213`).
pub fn es_proxy_mtls_url() -> String {
    env_or("ES_PROXY_MTLS_URL", "https://127.0.0.1:9213")
}

fn path_str(path: &Path) -> String {
    path.to_str()
        .unwrap_or_else(|| panic!("{} is not UTF-8", path.display()))
        .to_owned()
}

/// A librdkafka configuration for `user`/`password` with SCRAM-SHA-512 on the SASL_SSL listener,
/// trusting the test CA.
pub fn scram_client_config(user: &str, password: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", kafka_sasl_bootstrap())
        .set("security.protocol", "sasl_ssl")
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", user)
        .set("sasl.password", password)
        .set("ssl.ca.location", path_str(&ca_path()));
    config
}

/// A librdkafka configuration with OAUTHBEARER on the SASL_SSL listener, using librdkafka's
/// unsecured JWT for `principal` (the broker's test-only validator accepts it).
pub fn oauthbearer_client_config(principal: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", kafka_sasl_bootstrap())
        .set("security.protocol", "sasl_ssl")
        .set("sasl.mechanism", "OAUTHBEARER")
        .set("enable.sasl.oauthbearer.unsecure.jwt", "true")
        .set("sasl.oauthbearer.config", format!("principal={principal}"))
        .set("ssl.ca.location", path_str(&ca_path()));
    config
}

/// A librdkafka configuration for the mutual-TLS listener with client certificate `cert`
/// (e.g. [`INGESTER_CERT`]; principal `User:<cert>`).
pub fn mtls_client_config(cert: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", kafka_mtls_bootstrap())
        .set("security.protocol", "ssl")
        .set("ssl.ca.location", path_str(&ca_path()))
        .set("ssl.certificate.location", path_str(&cert_path(cert)))
        .set("ssl.key.location", path_str(&key_path(cert)));
    config
}

/// The super user admin: SASL_SSL with SCRAM-SHA-512, `ssl.ca.location` = the test CA.
pub fn admin_client_config() -> ClientConfig {
    scram_client_config(ADMIN_USER, ADMIN_PASSWORD)
}

/// Panics with instructions unless `kafka-secure` answers a metadata request from admin.
pub fn require_secure_kafka() {
    let bootstrap = kafka_sasl_bootstrap();
    if !ca_path().is_file() {
        panic!(
            "no test CA at {} (set SPANWAY_TEST_CERTS?). Start the service with \
             `dev/services up kafka-secure`.",
            ca_path().display()
        );
    }
    let consumer: BaseConsumer = admin_client_config().create().expect("kafka client");
    if let Err(error) = consumer.fetch_metadata(None, Duration::from_secs(10)) {
        panic!(
            "kafka-secure is not reachable at {bootstrap} as {ADMIN_USER} ({error}). Start it \
             with `dev/services up kafka-secure` (or set KAFKA_SECURE_SASL)."
        );
    }
}

/// The test CA as a reqwest root certificate.
pub fn ca_certificate() -> reqwest::Certificate {
    let pem = std::fs::read(ca_path()).unwrap_or_else(|error| {
        panic!(
            "cannot read the test CA {} ({error}). Start the secured services with \
             `dev/services up kafka-secure opensearch-secure es-proxy`.",
            ca_path().display()
        )
    });
    reqwest::Certificate::from_pem(&pem).expect("test CA certificate")
}

/// The client certificate and key `name` (e.g. [`INGESTER_CERT`]) as a reqwest identity.
pub fn client_identity(name: &str) -> reqwest::Identity {
    let mut pem = std::fs::read(key_path(name))
        .unwrap_or_else(|error| panic!("cannot read {} ({error})", key_path(name).display()));
    pem.extend(
        std::fs::read(cert_path(name))
            .unwrap_or_else(|error| panic!("cannot read {} ({error})", cert_path(name).display())),
    );
    reqwest::Identity::from_pem(&pem).expect("client identity")
}

fn https_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca_certificate())
        .timeout(Duration::from_secs(30))
}

/// An HTTPS client that trusts only the test CA, without a client certificate.
pub fn https_client() -> reqwest::Client {
    https_builder().build().expect("https client")
}

/// An HTTPS client that trusts only the test CA and presents client certificate `name`.
pub fn https_client_with_cert(name: &str) -> reqwest::Client {
    https_builder()
        .identity(client_identity(name))
        .build()
        .expect("https client")
}

/// Panics with instructions unless `opensearch-secure` answers `GET /` for admin.
pub async fn require_secure_opensearch() {
    let url = opensearch_secure_url();
    let answer = https_client()
        .get(format!("{url}/"))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .send()
        .await;
    match answer {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => panic!(
            "opensearch-secure at {url} answered {} to admin; check \
             `dev/services status opensearch-secure`",
            r.status()
        ),
        Err(error) => panic!(
            "opensearch-secure is not reachable at {url} ({error:?}). Start it with \
             `dev/services up opensearch-secure` (or set OPENSEARCH_SECURE_URL)."
        ),
    }
}

/// Panics with instructions unless `es-proxy` and the Elasticsearch behind it answer.
pub async fn require_es_proxy() {
    let url = es_proxy_basic_url();
    let answer = https_client()
        .get(format!("{url}/"))
        .basic_auth(ES_PROXY_USER, Some(ES_PROXY_PASSWORD))
        .send()
        .await;
    match answer {
        Ok(r) if r.status().is_success() => {}
        Ok(r) if r.status().as_u16() == 502 || r.status().as_u16() == 504 => panic!(
            "es-proxy at {url} runs but its Elasticsearch does not answer ({}). Start it with \
             `dev/services up elasticsearch`.",
            r.status()
        ),
        Ok(r) => panic!(
            "es-proxy at {url} answered {}; check `dev/services status es-proxy`",
            r.status()
        ),
        Err(error) => panic!(
            "es-proxy is not reachable at {url} ({error:?}). Start it with \
             `dev/services up es-proxy` (or set ES_PROXY_BASIC_URL)."
        ),
    }
}

/// Creates `name` (which must start with `secure-`) on `kafka-secure` as admin and waits until
/// its partitions have leaders.
pub async fn create_secure_topic(name: &str, partitions: i32) {
    assert!(
        name.starts_with(SECURE_PREFIX),
        "secure test topics must start with {SECURE_PREFIX:?} (the ACLs' prefix): {name}"
    );
    let admin: AdminClient<DefaultClientContext> =
        admin_client_config().create().expect("admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create topic request");
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => panic!("creating {topic} on kafka-secure failed: {code}"),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = admin
            .inner()
            .fetch_metadata(Some(name), Duration::from_secs(5))
            .ok()
            .and_then(|metadata| {
                metadata.topics().first().map(|topic| {
                    topic.error().is_none()
                        && topic.partitions().len() == partitions as usize
                        && topic.partitions().iter().all(|p| p.leader() >= 0)
                })
            })
            .unwrap_or(false);
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "topic {name} not ready on kafka-secure after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `dev/services kafka-secure-admin ARGS...` from the repository root and returns its
/// standard output; panics when it fails.
pub fn kafka_secure_admin(args: &[&str]) -> String {
    let root = repo_root();
    let output = Command::new(root.join("dev").join("services"))
        .arg("kafka-secure-admin")
        .args(args)
        .current_dir(&root)
        .output()
        .unwrap_or_else(|error| panic!("cannot run dev/services kafka-secure-admin ({error})"));
    if !output.status.success() {
        panic!(
            "dev/services kafka-secure-admin {} failed ({}):\n{}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Sets (or creates) the SCRAM-SHA-512 credential of `user` on `kafka-secure`, then waits until
/// the new password authenticates. The change lasts until `dev/services reset kafka-secure`, so
/// a test that changes one of the standard users' passwords should set it back.
pub fn set_scram_password(user: &str, password: &str) {
    kafka_secure_admin(&[
        "configs",
        "--alter",
        "--entity-type",
        "users",
        "--entity-name",
        user,
        "--add-config",
        &format!("SCRAM-SHA-512=[password={password}]"),
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let consumer: BaseConsumer = scram_client_config(user, password)
            .create()
            .expect("kafka client");
        if consumer
            .fetch_metadata(None, Duration::from_secs(5))
            .is_ok()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the new SCRAM password of {user} is not accepted after 30 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Allows `operations` (e.g. `["Read", "Describe"]`) to `User:<user>` on every `resource_type`
/// (`"topic"`, `"group"` or `"transactional-id"`) whose name starts with `prefix`.
pub fn add_prefixed_acl(user: &str, resource_type: &str, prefix: &str, operations: &[&str]) {
    let principal = format!("User:{user}");
    let mut args = vec![
        "acls",
        "--add",
        "--allow-principal",
        &principal,
        "--resource-pattern-type",
        "prefixed",
    ];
    let resource_flag = format!("--{resource_type}");
    args.extend([resource_flag.as_str(), prefix]);
    for operation in operations {
        args.extend(["--operation", operation]);
    }
    kafka_secure_admin(&args);
}

/// Removes every ACL of `User:<user>` on `kafka-secure` (one tool run per resource pattern).
/// The standard users' ACLs come back only with `dev/services reset kafka-secure`.
pub fn remove_acls_for(user: &str) {
    let principal = format!("User:{user}");
    let listing = kafka_secure_admin(&["acls", "--list", "--principal", &principal]);
    for acl in parse_acl_listing(&listing, &principal) {
        let (principal_flag, host_flag) = if acl.allow {
            ("--allow-principal", "--allow-host")
        } else {
            ("--deny-principal", "--deny-host")
        };
        let resource_flag = match acl.resource_type.as_str() {
            "TOPIC" => "--topic",
            "GROUP" => "--group",
            "CLUSTER" => "--cluster",
            "TRANSACTIONAL_ID" => "--transactional-id",
            "DELEGATION_TOKEN" => "--delegation-token",
            "USER" => "--user-principal",
            other => panic!("remove_acls_for: unknown resource type {other}"),
        };
        let mut args = vec![
            "acls",
            "--remove",
            "--force",
            principal_flag,
            &principal,
            host_flag,
            acl.host.as_str(),
        ];
        if resource_flag == "--cluster" {
            args.push(resource_flag);
        } else {
            args.extend([
                resource_flag,
                acl.name.as_str(),
                "--resource-pattern-type",
                acl.pattern_type.as_str(),
            ]);
        }
        for operation in &acl.operations {
            args.extend(["--operation", operation.as_str()]);
        }
        kafka_secure_admin(&args);
    }
}

/// ACLs of one principal on one resource pattern, from one host, with one permission type.
#[derive(Debug, PartialEq)]
struct ListedAcl {
    resource_type: String,
    name: String,
    pattern_type: String,
    host: String,
    allow: bool,
    operations: Vec<String>,
}

/// Parses `kafka-acls --list` output:
/// ``Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=x, patternType=PREFIXED)`:``
/// followed by `(principal=User:u, host=*, operation=READ, permissionType=ALLOW)` lines.
fn parse_acl_listing(listing: &str, principal: &str) -> Vec<ListedAcl> {
    fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
        let start = text.find(key)? + key.len();
        let rest = &text[start..];
        let end = rest.find([',', ')']).unwrap_or(rest.len());
        Some(rest[..end].trim())
    }
    let mut acls: Vec<ListedAcl> = Vec::new();
    let mut resource: Option<(String, String, String)> = None;
    for line in listing.lines() {
        if line.contains("ResourcePattern(") {
            resource = match (
                field(line, "resourceType="),
                field(line, "name="),
                field(line, "patternType="),
            ) {
                (Some(t), Some(n), Some(p)) => Some((t.into(), n.into(), p.into())),
                _ => None,
            };
        } else if let (Some((t, n, p)), Some(who)) = (&resource, field(line, "(principal=")) {
            if who != principal {
                continue;
            }
            let (Some(host), Some(operation), Some(permission)) = (
                field(line, "host="),
                field(line, "operation="),
                field(line, "permissionType="),
            ) else {
                continue;
            };
            // AclCommand spells operations like IdempotentWrite; the listing says IDEMPOTENT_WRITE.
            let operation: String = operation
                .split('_')
                .map(|word| {
                    let lower = word.to_ascii_lowercase();
                    let mut chars = lower.chars();
                    chars
                        .next()
                        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                        .unwrap_or_default()
                })
                .collect();
            let allow = permission == "ALLOW";
            let pattern_type = p.to_ascii_lowercase();
            match acls.iter_mut().find(|a| {
                a.resource_type == *t
                    && a.name == *n
                    && a.pattern_type == pattern_type
                    && a.host == host
                    && a.allow == allow
            }) {
                Some(acl) => acl.operations.push(operation),
                None => acls.push(ListedAcl {
                    resource_type: t.clone(),
                    name: n.clone(),
                    pattern_type,
                    host: host.into(),
                    allow,
                    operations: vec![operation],
                }),
            }
        }
    }
    acls
}

/// Kafka client settings: TLS to `brokers`, trusting the test CA.
pub fn kafka_over_tls(brokers: String) -> spanway_kafka::KafkaClientConfig {
    spanway_kafka::KafkaClientConfig {
        brokers: vec![brokers],
        tls: spanway_kafka::KafkaTlsConfig {
            enabled: true,
            ca_file: Some(ca_path()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Kafka client settings: SASL_SSL with SCRAM-SHA-512 as `user`.
pub fn kafka_scram(user: &str, password: &str) -> spanway_kafka::KafkaClientConfig {
    let mut client = kafka_over_tls(kafka_sasl_bootstrap());
    client.sasl.mechanism = Some(spanway_kafka::SaslMechanism::ScramSha512);
    client.sasl.username = user.into();
    client.sasl.password = Some(spanway_service_kit::secret::Secret::new(password));
    client
}

/// Kafka client settings: mutual TLS with client certificate `cert`.
pub fn kafka_mtls(cert: &str) -> spanway_kafka::KafkaClientConfig {
    let mut client = kafka_over_tls(kafka_mtls_bootstrap());
    client.tls.cert_file = Some(cert_path(cert));
    client.tls.key_file = Some(key_path(cert));
    client
}

/// Creates or replaces the `opensearch-secure` internal user `name` with
/// `password` and the single role `role` (`spanway_writer`, `spanway_reader`),
/// through the security plugin's REST API as admin.
pub async fn put_opensearch_user(name: &str, password: &str, role: &str) {
    let url = opensearch_secure_url();
    let client = https_client();
    // The plugin keeps its users in one configuration document: two tests
    // changing users at the same moment can see a conflict, which a retry
    // resolves.
    let mut last = String::new();
    for _ in 0..20 {
        let answer = client
            .put(format!("{url}/_plugins/_security/api/internalusers/{name}"))
            .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
            .json(&serde_json::json!({
                "password": password,
                "opendistro_security_roles": [role],
            }))
            .send()
            .await
            .expect("security REST API answers");
        let status = answer.status();
        if status.is_success() {
            return;
        }
        last = format!("{status} {}", answer.text().await.unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("cannot put user {name}: {last}");
}

/// Makes what was written to `index` (a pattern) on `opensearch-secure`
/// searchable now, as admin; a missing index is not an error here.
pub async fn secure_refresh(index: &str) {
    let url = opensearch_secure_url();
    let _ = https_client()
        .post(format!("{url}/{index}/_refresh"))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .send()
        .await;
}

/// Counts the documents of `index` (a pattern) on `opensearch-secure`, as admin.
pub async fn secure_count(index: &str) -> u64 {
    let url = opensearch_secure_url();
    let client = https_client();
    secure_refresh(index).await;
    let answer = client
        .get(format!("{url}/{index}/_count"))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .send()
        .await
        .expect("count");
    if !answer.status().is_success() {
        return 0;
    }
    let body: serde_json::Value = answer.json().await.expect("count body");
    body["count"].as_u64().unwrap_or(0)
}

/// Waits until `index` on `opensearch-secure` holds `expected` documents or
/// `timeout` passes; returns the last count.
pub async fn wait_for_secure_count(index: &str, expected: u64, timeout: Duration) -> u64 {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let count = secure_count(index).await;
        if count >= expected || std::time::Instant::now() > deadline {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `(parent, child, callCount)` of every link in the dependency documents of
/// `index` on `opensearch-secure` (read as admin).
pub async fn dependency_links(index: &str) -> Vec<(String, String, u64)> {
    let url = opensearch_secure_url();
    let client = https_client();
    secure_refresh(index).await;
    let Ok(answer) = client
        .get(format!("{url}/{index}/_search?size=100"))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .send()
        .await
    else {
        return Vec::new();
    };
    let Ok(body) = answer.json::<serde_json::Value>().await else {
        return Vec::new();
    };
    let mut links = Vec::new();
    for hit in body["hits"]["hits"].as_array().into_iter().flatten() {
        for link in hit["_source"]["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
        {
            links.push((
                link["parent"].as_str().unwrap_or_default().to_string(),
                link["child"].as_str().unwrap_or_default().to_string(),
                link["callCount"].as_u64().unwrap_or(0),
            ));
        }
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_acl_listings() {
        let listing = "ACLs for principal `User:u`\n\
            Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=secure-, patternType=PREFIXED)`:\n\
            \t(principal=User:u, host=*, operation=READ, permissionType=ALLOW)\n\
            \t(principal=User:u, host=*, operation=DESCRIBE, permissionType=ALLOW)\n\
            \t(principal=User:other, host=*, operation=WRITE, permissionType=ALLOW)\n\
            \n\
            Current ACLs for resource `ResourcePattern(resourceType=CLUSTER, name=kafka-cluster, patternType=LITERAL)`:\n\
            \t(principal=User:u, host=*, operation=IDEMPOTENT_WRITE, permissionType=DENY)\n";
        assert_eq!(
            parse_acl_listing(listing, "User:u"),
            vec![
                ListedAcl {
                    resource_type: "TOPIC".into(),
                    name: "secure-".into(),
                    pattern_type: "prefixed".into(),
                    host: "*".into(),
                    allow: true,
                    operations: vec!["Read".into(), "Describe".into()],
                },
                ListedAcl {
                    resource_type: "CLUSTER".into(),
                    name: "kafka-cluster".into(),
                    pattern_type: "literal".into(),
                    host: "*".into(),
                    allow: false,
                    operations: vec!["IdempotentWrite".into()],
                },
            ]
        );
    }
}
