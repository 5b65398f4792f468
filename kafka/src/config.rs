//! The Kafka client settings, one type for the collector's producer and both
//! consumer groups, so that TLS, SASL and every other connection setting is
//! spelled and checked the same way in all three processes.
//!
//! The typed settings cover what managed Kafka services ask for (TLS with a
//! private CA or client certificates, SASL PLAIN/SCRAM/OAUTHBEARER);
//! `properties` passes anything else straight to librdkafka (Kerberos, for
//! one), applied last so it can override a typed setting when needed.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use spanway_service_kit::config::ConfigError;
use spanway_service_kit::secret::Secret;
use spanway_service_kit::section::ClientKeys;

use crate::oidc::OidcConfig;

/// Connection settings of a Kafka client.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaClientConfig {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// Transport encryption and client certificates.
    pub tls: KafkaTlsConfig,
    /// SASL authentication.
    pub sasl: KafkaSaslConfig,
    /// librdkafka properties applied after the typed settings, for what
    /// they do not cover (`sasl.kerberos.*`, `client.rack`, ...). Values of
    /// keys that look secret are redacted in every print.
    pub properties: Properties,
}

impl ClientKeys for KafkaClientConfig {
    const KEYS: &'static [&'static str] = &["brokers", "tls", "sasl", "properties"];
}

impl Default for KafkaClientConfig {
    fn default() -> Self {
        KafkaClientConfig {
            brokers: vec!["127.0.0.1:9092".into()],
            tls: KafkaTlsConfig::default(),
            sasl: KafkaSaslConfig::default(),
            properties: Properties::default(),
        }
    }
}

/// TLS to the brokers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaTlsConfig {
    /// Encrypt the connection (`security.protocol` `ssl` or `sasl_ssl`).
    pub enabled: bool,
    /// PEM file of the CA certificates that signed the brokers'
    /// certificates. Without it the system's trust store is used, which is
    /// right for managed services with public certificates.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for brokers that authenticate clients by
    /// certificate (mutual TLS). Needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Passphrase of an encrypted `key_file`.
    pub key_password: Option<Secret>,
    /// File holding the passphrase of `key_file` (instead of `key_password`).
    pub key_password_file: Option<PathBuf>,
    /// Check that the broker's certificate names the host connected to.
    /// Turn off only for brokers reached by an address their certificate
    /// does not list.
    pub verify_hostname: bool,
}

impl Default for KafkaTlsConfig {
    fn default() -> Self {
        KafkaTlsConfig {
            enabled: false,
            ca_file: None,
            cert_file: None,
            key_file: None,
            key_password: None,
            key_password_file: None,
            verify_hostname: true,
        }
    }
}

/// SASL mechanisms librdkafka is built with here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    /// Username and password in the clear; use with TLS only.
    #[serde(rename = "PLAIN")]
    Plain,
    /// Salted challenge-response, SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// Salted challenge-response, SHA-512 (MSK, Confluent Platform, Strimzi).
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
    /// Bearer tokens from an OpenID Connect provider (`kafka.sasl.oidc`).
    #[serde(rename = "OAUTHBEARER")]
    OauthBearer,
}

impl SaslMechanism {
    /// librdkafka's name.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OauthBearer => "OAUTHBEARER",
        }
    }

    fn needs_password(self) -> bool {
        !matches!(self, SaslMechanism::OauthBearer)
    }
}

/// SASL authentication; off unless `mechanism` is set.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSaslConfig {
    /// `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` or `OAUTHBEARER`.
    pub mechanism: Option<SaslMechanism>,
    /// The user (PLAIN and SCRAM).
    pub username: String,
    /// The password (PLAIN and SCRAM).
    pub password: Option<Secret>,
    /// File holding the password, re-read when it changes (instead of
    /// `password`); a rotated password is used from the next
    /// authentication on, without a restart.
    pub password_file: Option<PathBuf>,
    /// With `OAUTHBEARER`: the OpenID Connect provider that issues tokens
    /// by the client credentials grant.
    pub oidc: Option<OidcConfig>,
}

/// Free-form librdkafka properties. `Debug` redacts the values of keys
/// that name a secret (`*password*`, `*secret*`, `*jaas*`, `*.pem`).
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Properties(pub BTreeMap<String, String>);

impl Properties {
    /// Whether a property's value must not be printed.
    pub fn is_secret(key: &str) -> bool {
        let key = key.to_ascii_lowercase();
        ["password", "secret", "jaas", "token"]
            .iter()
            .any(|word| key.contains(word))
            || key.ends_with(".pem")
    }
}

impl fmt::Debug for Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(key, value)| {
                let shown: &dyn fmt::Debug = if Properties::is_secret(key) {
                    &REDACTED
                } else {
                    value
                };
                (key, shown)
            }))
            .finish()
    }
}

/// Printed in place of a secret property's value.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

static REDACTED: Redacted = Redacted;

/// Properties the typed settings own; setting them in `properties` would
/// only confuse, so validation points at the typed key instead.
const TYPED: [(&str, &str); 6] = [
    ("bootstrap.servers", "kafka.brokers"),
    (
        "security.protocol",
        "kafka.tls.enabled and kafka.sasl.mechanism",
    ),
    ("sasl.mechanism", "kafka.sasl.mechanism"),
    ("sasl.mechanisms", "kafka.sasl.mechanism"),
    ("sasl.username", "kafka.sasl.username"),
    (
        "sasl.password",
        "kafka.sasl.password or kafka.sasl.password_file",
    ),
];

impl KafkaClientConfig {
    /// `security.protocol` from the two switches, as Kafka names it.
    pub fn security_protocol(&self) -> &'static str {
        match (self.tls.enabled, self.sasl.mechanism.is_some()) {
            (false, false) => "plaintext",
            (true, false) => "ssl",
            (false, true) => "sasl_plaintext",
            (true, true) => "sasl_ssl",
        }
    }

    /// Checks the rules that span several keys; files are read at start.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.brokers.is_empty() || self.brokers.iter().any(|b| b.trim().is_empty()) {
            return Err(ConfigError::invalid(
                "kafka.brokers",
                "at least one non-empty host:port is required",
            ));
        }
        let tls = &self.tls;
        let tls_files = [
            ("kafka.tls.ca_file", tls.ca_file.is_some()),
            ("kafka.tls.cert_file", tls.cert_file.is_some()),
            ("kafka.tls.key_file", tls.key_file.is_some()),
        ];
        if !tls.enabled
            && let Some((key, _)) = tls_files.iter().find(|(_, set)| *set)
        {
            return Err(ConfigError::invalid(
                key,
                "is set but kafka.tls.enabled is false; enable TLS or remove it",
            ));
        }
        match (tls.cert_file.is_some(), tls.key_file.is_some()) {
            (true, false) => {
                return Err(ConfigError::invalid(
                    "kafka.tls.key_file",
                    "kafka.tls.cert_file needs its private key",
                ));
            }
            (false, true) => {
                return Err(ConfigError::invalid(
                    "kafka.tls.cert_file",
                    "kafka.tls.key_file is set without a certificate",
                ));
            }
            _ => {}
        }
        if tls.key_password.is_some() && tls.key_password_file.is_some() {
            return Err(ConfigError::invalid(
                "kafka.tls.key_password_file",
                "set either kafka.tls.key_password or kafka.tls.key_password_file, not both",
            ));
        }
        self.validate_sasl()?;
        for (property, key) in TYPED {
            if self.properties.0.contains_key(property) {
                return Err(ConfigError::invalid(
                    "kafka.properties",
                    format!("{property:?} is set by {key}; use that instead"),
                ));
            }
        }
        Ok(())
    }

    fn validate_sasl(&self) -> Result<(), ConfigError> {
        let sasl = &self.sasl;
        let has_password = sasl.password.is_some() || sasl.password_file.is_some();
        if sasl.password.is_some() && sasl.password_file.is_some() {
            return Err(ConfigError::invalid(
                "kafka.sasl.password_file",
                "set either kafka.sasl.password or kafka.sasl.password_file, not both",
            ));
        }
        let Some(mechanism) = sasl.mechanism else {
            if !sasl.username.is_empty() || has_password {
                return Err(ConfigError::invalid(
                    "kafka.sasl.mechanism",
                    "a SASL username or password is set but no mechanism \
                     (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER)",
                ));
            }
            return Ok(());
        };
        if mechanism.needs_password() {
            if sasl.username.is_empty() {
                return Err(ConfigError::invalid(
                    "kafka.sasl.username",
                    format!("{} needs a username", mechanism.as_str()),
                ));
            }
            if !has_password {
                return Err(ConfigError::invalid(
                    "kafka.sasl.password",
                    format!(
                        "{} needs kafka.sasl.password or kafka.sasl.password_file",
                        mechanism.as_str()
                    ),
                ));
            }
        } else {
            if has_password || !sasl.username.is_empty() {
                return Err(ConfigError::invalid(
                    "kafka.sasl.username",
                    "OAUTHBEARER takes no username or password; its tokens come from kafka.sasl.oidc",
                ));
            }
            let Some(oidc) = &sasl.oidc else {
                return Err(ConfigError::invalid(
                    "kafka.sasl.oidc",
                    "OAUTHBEARER needs kafka.sasl.oidc (token_endpoint_url, client_id, client_secret)",
                ));
            };
            oidc.validate()?;
        }
        if sasl.oidc.is_some() && mechanism != SaslMechanism::OauthBearer {
            return Err(ConfigError::invalid(
                "kafka.sasl.oidc",
                format!("is only used with OAUTHBEARER, not {}", mechanism.as_str()),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scram() -> KafkaClientConfig {
        let mut cfg = KafkaClientConfig::default();
        cfg.tls.enabled = true;
        cfg.sasl = KafkaSaslConfig {
            mechanism: Some(SaslMechanism::ScramSha512),
            username: "spanway".into(),
            password: Some(Secret::new("hunter2")),
            password_file: None,
            oidc: None,
        };
        cfg
    }

    fn key_of(cfg: &KafkaClientConfig) -> String {
        match cfg.validate().unwrap_err() {
            ConfigError::Invalid { key, .. } => key.to_string(),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn protocol_follows_the_two_switches() {
        let mut cfg = KafkaClientConfig::default();
        assert_eq!(cfg.security_protocol(), "plaintext");
        cfg.tls.enabled = true;
        assert_eq!(cfg.security_protocol(), "ssl");
        assert_eq!(scram().security_protocol(), "sasl_ssl");
        let mut plain = scram();
        plain.tls.enabled = false;
        assert_eq!(plain.security_protocol(), "sasl_plaintext");
    }

    #[test]
    fn defaults_and_a_full_scram_setup_are_valid() {
        KafkaClientConfig::default().validate().unwrap();
        scram().validate().unwrap();
    }

    #[test]
    fn each_broken_rule_names_its_key() {
        let mut cfg = scram();
        cfg.sasl.password_file = Some("/run/secrets/kafka".into());
        assert_eq!(key_of(&cfg), "kafka.sasl.password_file");

        let mut cfg = scram();
        cfg.sasl.password = None;
        assert_eq!(key_of(&cfg), "kafka.sasl.password");

        let mut cfg = scram();
        cfg.sasl.username.clear();
        assert_eq!(key_of(&cfg), "kafka.sasl.username");

        let mut cfg = KafkaClientConfig::default();
        cfg.sasl.username = "u".into();
        assert_eq!(key_of(&cfg), "kafka.sasl.mechanism");

        let mut cfg = scram();
        cfg.tls.cert_file = Some("c.pem".into());
        assert_eq!(key_of(&cfg), "kafka.tls.key_file");

        let mut cfg = KafkaClientConfig::default();
        cfg.tls.ca_file = Some("ca.pem".into());
        assert_eq!(key_of(&cfg), "kafka.tls.ca_file");

        let mut cfg = scram();
        cfg.properties.0.insert("sasl.password".into(), "x".into());
        assert_eq!(key_of(&cfg), "kafka.properties");

        let mut cfg = KafkaClientConfig::default();
        cfg.brokers.clear();
        assert_eq!(key_of(&cfg), "kafka.brokers");
    }

    #[test]
    fn secrets_never_print() {
        let mut cfg = scram();
        cfg.tls.key_password = Some(Secret::new("keypass"));
        cfg.properties.0.insert(
            "sasl.oauthbearer.client.secret".into(),
            "oidc-secret".into(),
        );
        cfg.properties
            .0
            .insert("client.rack".into(), "eu-west-1a".into());
        let printed = format!("{cfg:#?}");
        for secret in ["hunter2", "keypass", "oidc-secret"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        assert!(printed.contains("eu-west-1a"), "{printed}");
    }

    #[test]
    fn mechanisms_read_as_kafka_spells_them() {
        #[derive(Deserialize)]
        struct M {
            m: SaslMechanism,
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        for (text, want) in [
            ("PLAIN", SaslMechanism::Plain),
            ("SCRAM-SHA-256", SaslMechanism::ScramSha256),
            ("SCRAM-SHA-512", SaslMechanism::ScramSha512),
            ("OAUTHBEARER", SaslMechanism::OauthBearer),
        ] {
            std::fs::write(&path, format!("m = \"{text}\"\n")).unwrap();
            let parsed: M = spanway_service_kit::config::load_with_env(Some(&path), []).unwrap();
            assert_eq!(parsed.m, want);
            assert_eq!(want.as_str(), text);
        }
    }
}
