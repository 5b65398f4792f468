//! What went wrong with a Kafka connection, in the operator's terms.
//!
//! librdkafka reports a refused password, a missing ACL or an untrusted
//! certificate as an error code and a sentence, through an error callback
//! that a client keeps calling while it retries. An operator needs one clear
//! line that names the setting to fix, and a readiness answer that says the
//! process cannot work. [`diagnose`] maps librdkafka's report to the setting
//! at fault (a pure function, unit-tested); [`FaultReporter`] logs each
//! distinct fault at most once a minute and remembers it for readiness.
//! The clients keep retrying with librdkafka's reconnect backoff; nothing is
//! acknowledged or committed meanwhile, because nothing is published or
//! stored.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::config::KafkaClientConfig;

/// A connection fault and the setting an operator should look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    /// Bounded kind, used as a metric label.
    pub kind: FaultKind,
    /// The configuration key (or broker-side setting) at fault.
    pub setting: &'static str,
    /// What to check, in a few words.
    pub hint: &'static str,
}

/// The kinds of fault that stop a client from working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// SASL refused: wrong username, password or mechanism.
    Authentication,
    /// The principal lacks an ACL on a topic, group or the cluster.
    Authorization,
    /// The TLS handshake failed: untrusted broker certificate, refused or
    /// missing client certificate, hostname mismatch.
    Tls,
    /// The client speaks the wrong protocol to the listener.
    Protocol,
}

impl FaultKind {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Authentication => "authentication",
            FaultKind::Authorization => "authorization",
            FaultKind::Tls => "tls",
            FaultKind::Protocol => "protocol",
        }
    }
}

/// Maps a librdkafka error to the setting at fault, or `None` for faults
/// that are not configuration (a broker down, a timeout).
pub fn diagnose(
    code: Option<RDKafkaErrorCode>,
    reason: &str,
    config: &KafkaClientConfig,
) -> Option<Diagnosis> {
    let lower = reason.to_ascii_lowercase();
    let password_key = if config.sasl.password_file.is_some() {
        "kafka.sasl.password_file"
    } else {
        "kafka.sasl.password"
    };
    let diagnosis = |kind, setting, hint| {
        Some(Diagnosis {
            kind,
            setting,
            hint,
        })
    };
    match code {
        Some(RDKafkaErrorCode::TopicAuthorizationFailed) => {
            return diagnosis(
                FaultKind::Authorization,
                "kafka.topic",
                "the principal has no ACL for this topic (Read for consumers; Write and Describe for producers)",
            );
        }
        Some(RDKafkaErrorCode::GroupAuthorizationFailed) => {
            return diagnosis(
                FaultKind::Authorization,
                "kafka.group_id",
                "the principal has no Read ACL for this consumer group",
            );
        }
        Some(RDKafkaErrorCode::ClusterAuthorizationFailed) => {
            return diagnosis(
                FaultKind::Authorization,
                "kafka.sasl.username",
                "the principal lacks a cluster ACL (IdempotentWrite for the idempotent producer)",
            );
        }
        Some(RDKafkaErrorCode::TransactionalIdAuthorizationFailed) => {
            return diagnosis(
                FaultKind::Authorization,
                "kafka.sasl.username",
                "the principal lacks an ACL the producer needs",
            );
        }
        _ => {}
    }
    // Our own token fetcher's errors name their key (see `oidc::OidcError`);
    // librdkafka passes them on as "Failed to acquire SASL OAUTHBEARER token".
    for key in [
        "kafka.sasl.oidc.client_secret",
        "kafka.sasl.oidc.token_endpoint_url",
        "kafka.sasl.oidc",
    ] {
        if reason.contains(key) {
            return diagnosis(
                FaultKind::Authentication,
                key,
                "no OAUTHBEARER token could be had from the OpenID Connect provider",
            );
        }
    }
    if lower.contains("sasl authentication error")
        || lower.contains("invalid credentials")
        || lower.contains("authentication failed")
        || code == Some(RDKafkaErrorCode::SaslAuthenticationFailed)
    {
        if lower.contains("unsupported sasl mechanism")
            || lower.contains("mechanism") && lower.contains("not enabled")
        {
            return diagnosis(
                FaultKind::Authentication,
                "kafka.sasl.mechanism",
                "the broker does not offer this SASL mechanism on this listener",
            );
        }
        return diagnosis(
            FaultKind::Authentication,
            password_key,
            "the broker refused the SASL username or password",
        );
    }
    if lower.contains("unsupported sasl mechanism") {
        return diagnosis(
            FaultKind::Authentication,
            "kafka.sasl.mechanism",
            "the broker does not offer this SASL mechanism on this listener",
        );
    }
    if lower.contains("certificate verify failed") || lower.contains("unable to get local issuer") {
        let setting = if lower.contains("hostname") || lower.contains("ip address mismatch") {
            "kafka.tls.verify_hostname"
        } else {
            "kafka.tls.ca_file"
        };
        return diagnosis(
            FaultKind::Tls,
            setting,
            "the broker's certificate is not trusted: check the CA file (and the name the broker is reached by)",
        );
    }
    if lower.contains("ssl handshake failed")
        || lower.contains("bad certificate")
        || lower.contains("certificate required")
        || lower.contains("unknown ca")
        || lower.contains("sslv3 alert")
        || lower.contains("tlsv1 alert")
        || lower.contains("tlsv13 alert")
    {
        return diagnosis(
            FaultKind::Tls,
            "kafka.tls.cert_file",
            "the TLS handshake failed: the broker refused the client certificate, or it requires one",
        );
    }
    if lower.contains("incorrect security.protocol")
        || lower.contains("connecting to a ssl listener")
        || lower.contains("connecting to a plaintext listener")
    {
        return diagnosis(
            FaultKind::Protocol,
            "kafka.tls.enabled",
            "the client and the listener disagree on TLS or SASL (security.protocol)",
        );
    }
    if code == Some(RDKafkaErrorCode::Authentication) {
        return diagnosis(
            FaultKind::Authentication,
            password_key,
            "the broker refused the client's credentials",
        );
    }
    None
}

/// The error code inside a rust-rdkafka error, when there is one.
pub fn error_code(error: &KafkaError) -> Option<RDKafkaErrorCode> {
    error.rdkafka_error_code()
}

/// How long a fault keeps a process not ready after it was last seen;
/// librdkafka repeats the fault each time it retries, well within this.
const FAULT_MEMORY: Duration = Duration::from_secs(30);

/// How often the same fault is logged again while it persists.
const LOG_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Seen {
    last: Option<(Diagnosis, Instant)>,
    logged: Vec<(Diagnosis, Instant)>,
}

/// Shared by a client's context and its readiness probe.
#[derive(Debug, Clone)]
pub struct FaultReporter {
    role: &'static str,
    config: Arc<KafkaClientConfig>,
    seen: Arc<Mutex<Seen>>,
    faults: Family<FaultLabels, Counter>,
}

/// Labels of the fault counter; bounded by the kinds and the settings
/// [`diagnose`] can name.
#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct FaultLabels {
    /// A [`FaultKind`] name.
    pub kind: &'static str,
    /// The setting at fault.
    pub setting: &'static str,
}

impl FaultReporter {
    /// A reporter for the client `role` (`producer`, `consumer`) built from `config`.
    pub fn new(role: &'static str, config: &KafkaClientConfig) -> Self {
        FaultReporter {
            role,
            config: Arc::new(config.clone()),
            seen: Arc::new(Mutex::new(Seen::default())),
            faults: Family::default(),
        }
    }

    /// Registers `<prefix>_kafka_faults_total{kind, setting}` on `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "kafka_faults",
            "Kafka connection faults that need an operator: authentication, authorization, TLS, protocol",
            self.faults.clone(),
        );
    }

    /// Takes an error librdkafka reported. Configuration faults are logged
    /// (once a minute each, naming the setting and the broker's reason) and
    /// remembered for [`FaultReporter::current`]; returns the diagnosis.
    pub fn report(&self, error: &KafkaError, reason: &str) -> Option<Diagnosis> {
        let mut diagnosis = diagnose(error_code(error), reason, &self.config)?;
        // Consumers name their topics in a list.
        if self.role == "consumer" && diagnosis.setting == "kafka.topic" {
            diagnosis.setting = "kafka.topics";
        }
        self.faults
            .get_or_create(&FaultLabels {
                kind: diagnosis.kind.as_str(),
                setting: diagnosis.setting,
            })
            .inc();
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.last = Some((diagnosis.clone(), now));
        seen.logged
            .retain(|(_, at)| now.duration_since(*at) < LOG_EVERY);
        if !seen.logged.iter().any(|(d, _)| *d == diagnosis) {
            seen.logged.push((diagnosis.clone(), now));
            tracing::error!(
                role = self.role,
                setting = diagnosis.setting,
                fault = diagnosis.kind.as_str(),
                broker_reason = %reason,
                "kafka refused the {}: {}; check {}",
                self.role,
                diagnosis.hint,
                diagnosis.setting
            );
        }
        Some(diagnosis)
    }

    /// The fault seen within the last 30 seconds, if any: while there is
    /// one, the process reports not ready.
    pub fn current(&self) -> Option<Diagnosis> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.last
            .as_ref()
            .filter(|(_, at)| at.elapsed() < FAULT_MEMORY)
            .map(|(d, _)| d.clone())
    }

    /// Forgets the fault, once the client has shown it works (a record
    /// acknowledged or read).
    pub fn clear(&self) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SaslMechanism;

    fn scram(file: bool) -> KafkaClientConfig {
        let mut config = KafkaClientConfig::default();
        config.tls.enabled = true;
        config.sasl.mechanism = Some(SaslMechanism::ScramSha512);
        config.sasl.username = "spanway".into();
        if file {
            config.sasl.password_file = Some("/run/secrets/p".into());
        }
        config
    }

    #[test]
    fn refused_password_names_the_password_key_in_use() {
        // As librdkafka 2.12 words it when SCRAM credentials are wrong.
        let reason = "sasl_ssl://127.0.0.1:9094/bootstrap: SASL authentication error: \
                      Authentication failed during authentication due to invalid credentials \
                      with SASL mechanism SCRAM-SHA-512 (after 7ms in state AUTH_REQ)";
        let d = diagnose(
            Some(RDKafkaErrorCode::Authentication),
            reason,
            &scram(false),
        )
        .unwrap();
        assert_eq!(d.kind, FaultKind::Authentication);
        assert_eq!(d.setting, "kafka.sasl.password");
        let d = diagnose(Some(RDKafkaErrorCode::Authentication), reason, &scram(true)).unwrap();
        assert_eq!(d.setting, "kafka.sasl.password_file");
    }

    #[test]
    fn acls_name_topic_group_or_cluster() {
        let cfg = scram(false);
        let topic = diagnose(Some(RDKafkaErrorCode::TopicAuthorizationFailed), "", &cfg).unwrap();
        assert_eq!(
            (topic.kind, topic.setting),
            (FaultKind::Authorization, "kafka.topic")
        );
        let group = diagnose(Some(RDKafkaErrorCode::GroupAuthorizationFailed), "", &cfg).unwrap();
        assert_eq!(group.setting, "kafka.group_id");
        let cluster =
            diagnose(Some(RDKafkaErrorCode::ClusterAuthorizationFailed), "", &cfg).unwrap();
        assert_eq!(cluster.setting, "kafka.sasl.username");
    }

    #[test]
    fn tls_faults_point_at_the_ca_or_the_client_certificate() {
        let cfg = scram(false);
        let untrusted = "ssl://127.0.0.1:9095/bootstrap: SSL handshake failed: \
                         error:0A000086:SSL routines::certificate verify failed: \
                         broker certificate could not be verified";
        assert_eq!(
            diagnose(Some(RDKafkaErrorCode::SSL), untrusted, &cfg)
                .unwrap()
                .setting,
            "kafka.tls.ca_file"
        );
        let refused = "ssl://127.0.0.1:9095/bootstrap: SSL handshake failed: \
                       ssl/record/rec_layer_s3.c:1605: error:0A000412:SSL routines::sslv3 alert bad certificate";
        assert_eq!(
            diagnose(Some(RDKafkaErrorCode::SSL), refused, &cfg)
                .unwrap()
                .setting,
            "kafka.tls.cert_file"
        );
        let plaintext = "127.0.0.1:9095/bootstrap: Disconnected while requesting ApiVersion: \
                         might be caused by incorrect security.protocol configuration \
                         (connecting to a SSL listener?) or broker version is < 0.10";
        assert_eq!(
            diagnose(
                Some(RDKafkaErrorCode::BrokerTransportFailure),
                plaintext,
                &cfg
            )
            .unwrap()
            .setting,
            "kafka.tls.enabled"
        );
    }

    #[test]
    fn token_fetch_failures_name_the_oidc_key() {
        let reason = "Failed to acquire SASL OAUTHBEARER token: kafka.sasl.oidc.client_secret: \
                      the provider refused client spanway: 401 unauthorized";
        let d = diagnose(
            Some(RDKafkaErrorCode::Authentication),
            reason,
            &scram(false),
        )
        .unwrap();
        assert_eq!(d.setting, "kafka.sasl.oidc.client_secret");
    }

    #[test]
    fn an_absent_broker_is_not_a_configuration_fault() {
        let reason =
            "127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused";
        assert!(
            diagnose(
                Some(RDKafkaErrorCode::BrokerTransportFailure),
                reason,
                &scram(false)
            )
            .is_none()
        );
        assert!(
            diagnose(
                Some(RDKafkaErrorCode::AllBrokersDown),
                "1/1 brokers are down",
                &scram(false)
            )
            .is_none()
        );
    }

    #[test]
    fn reporter_remembers_until_cleared_and_counts() {
        let reporter = FaultReporter::new("producer", &scram(false));
        assert!(reporter.current().is_none());
        let error = KafkaError::Global(RDKafkaErrorCode::TopicAuthorizationFailed);
        reporter.report(&error, "Topic authorization failed");
        reporter.report(&error, "Topic authorization failed");
        assert_eq!(reporter.current().unwrap().setting, "kafka.topic");
        let count = reporter
            .faults
            .get_or_create(&FaultLabels {
                kind: "authorization",
                setting: "kafka.topic",
            })
            .get();
        assert_eq!(count, 2);
        reporter.clear();
        assert!(reporter.current().is_none());
        // Not a configuration fault: nothing remembered.
        reporter.report(
            &KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
            "1/1 brokers are down",
        );
        assert!(reporter.current().is_none());
    }
}
