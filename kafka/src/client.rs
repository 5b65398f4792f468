//! Turns [`KafkaClientConfig`] into librdkafka properties, and keeps a
//! rotated SASL password in use without a restart.
//!
//! Secret files are read here, at start, so that a missing or unreadable
//! file stops the process with the key that names it, before any
//! connection is tried.

use std::path::Path;

use rdkafka::ClientConfig;
use std::sync::Arc;

use rdkafka::client::{Client, ClientContext, OAuthToken};
use spanway_service_kit::config::ConfigError;
use spanway_service_kit::secret::{self, SecretSource};
use tokio_util::sync::CancellationToken;

use crate::config::KafkaClientConfig;
use crate::oidc::TokenSource;

/// A validated client configuration with its secrets resolved.
#[derive(Debug, Clone)]
pub struct KafkaClient {
    config: KafkaClientConfig,
    password: Option<SecretSource>,
    key_password: Option<SecretSource>,
    tokens: Option<Arc<TokenSource>>,
}

impl KafkaClient {
    /// Validates `config` and reads its secret files.
    pub fn new(config: &KafkaClientConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let password = SecretSource::from_pair(
            "kafka.sasl.password",
            config.sasl.password.as_ref(),
            "kafka.sasl.password_file",
            config.sasl.password_file.as_deref(),
        )?;
        let key_password = SecretSource::from_pair(
            "kafka.tls.key_password",
            config.tls.key_password.as_ref(),
            "kafka.tls.key_password_file",
            config.tls.key_password_file.as_deref(),
        )?;
        let tls = &config.tls;
        for (key, path) in [
            ("kafka.tls.ca_file", &tls.ca_file),
            ("kafka.tls.cert_file", &tls.cert_file),
            ("kafka.tls.key_file", &tls.key_file),
        ] {
            if let Some(path) = path {
                readable(key, path)?;
            }
        }
        let tokens = match &config.sasl.oidc {
            Some(oidc) => Some(Arc::new(TokenSource::new(oidc)?)),
            None => None,
        };
        Ok(KafkaClient {
            config: config.clone(),
            password,
            key_password,
            tokens,
        })
    }

    /// A fresh OAUTHBEARER token, for a context's `generate_oauth_token`.
    /// Blocks on the provider; librdkafka calls it from polling threads.
    pub fn oauth_token(&self) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        match &self.tokens {
            Some(tokens) => Ok(tokens.fetch()?),
            None => Err("kafka.sasl.oidc: OAUTHBEARER needs an OpenID Connect provider".into()),
        }
    }

    /// The settings this client was made from.
    pub fn config(&self) -> &KafkaClientConfig {
        &self.config
    }

    /// librdkafka properties for a new producer or consumer: brokers and
    /// security, then what `role` sets (acks, group id, ...), then
    /// `kafka.properties`, which override both. Never print the result:
    /// rust-rdkafka's `Debug` shows every value.
    pub fn client_config(&self, role: impl FnOnce(&mut ClientConfig)) -> ClientConfig {
        let config = &self.config;
        let mut out = ClientConfig::new();
        out.set("bootstrap.servers", config.brokers.join(","));
        out.set("security.protocol", config.security_protocol());
        let tls = &config.tls;
        if tls.enabled {
            if let Some(ca) = &tls.ca_file {
                out.set("ssl.ca.location", ca.to_string_lossy());
            }
            if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
                out.set("ssl.certificate.location", cert.to_string_lossy());
                out.set("ssl.key.location", key.to_string_lossy());
            }
            if let Some(password) = &self.key_password {
                out.set("ssl.key.password", password.current().expose());
            }
            out.set(
                "ssl.endpoint.identification.algorithm",
                if tls.verify_hostname { "https" } else { "none" },
            );
        }
        if let Some(mechanism) = config.sasl.mechanism {
            out.set("sasl.mechanism", mechanism.as_str());
            if !config.sasl.username.is_empty() {
                out.set("sasl.username", &config.sasl.username);
            }
            if let Some(password) = &self.password {
                out.set("sasl.password", password.current().expose());
            }
        }
        role(&mut out);
        for (key, value) in &config.properties.0 {
            out.set(key, value);
        }
        out
    }

    /// Logs, once at start, what a reader of the logs needs to know about
    /// the connection, without a secret in it.
    pub fn log_settings(&self, role: &str) {
        let config = &self.config;
        tracing::info!(
            role,
            brokers = %config.brokers.join(","),
            security_protocol = config.security_protocol(),
            sasl_mechanism = config.sasl.mechanism.map(|m| m.as_str()),
            sasl_username = %config.sasl.username,
            client_certificate = config.tls.cert_file.is_some(),
            extra_properties = ?config.properties.0.keys().collect::<Vec<_>>(),
            "kafka client"
        );
        if config.sasl.mechanism == Some(crate::config::SaslMechanism::Plain) && !config.tls.enabled
        {
            tracing::warn!(
                role,
                "kafka.sasl.mechanism is PLAIN without kafka.tls.enabled: the password crosses the network in the clear"
            );
        }
    }

    /// Watches `kafka.sasl.password_file` and hands a changed password to
    /// `apply` (normally [`set_sasl_credentials`] on the client), which uses
    /// it from its next authentication on: every new connection
    /// authenticates, and brokers with `connections.max.reauth.ms` make
    /// open ones re-authenticate. `None` when there is no file to watch.
    pub fn spawn_password_refresh<F>(
        &self,
        apply: F,
        token: CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>>
    where
        F: Fn(&str, &str) -> Result<(), String> + Send + 'static,
    {
        let password = self.password.clone()?;
        let username = self.config.sasl.username.clone();
        secret::spawn_refresh(
            vec![password],
            secret::DEFAULT_REFRESH_INTERVAL,
            token,
            move |source| {
                if let Err(reason) = apply(&username, source.current().expose()) {
                    tracing::error!(
                        key = "kafka.sasl.password_file",
                        %reason,
                        "the changed Kafka password could not be handed to the client"
                    );
                }
            },
        )
    }
}

impl KafkaClient {
    /// For clients owned by a polling thread, which check on their own
    /// schedule instead of [`KafkaClient::spawn_password_refresh`]: re-reads
    /// `kafka.sasl.password_file` and, when it changed, hands the new
    /// password to `client`. Returns true when it did.
    pub fn refresh_password<C: ClientContext>(&self, client: &Client<C>) -> bool {
        let Some(password) = &self.password else {
            return false;
        };
        match password.refresh() {
            Ok(true) => {
                tracing::info!(
                    key = "kafka.sasl.password_file",
                    "secret file changed; new value in use"
                );
                if let Err(reason) = set_sasl_credentials(
                    client,
                    &self.config.sasl.username,
                    password.current().expose(),
                ) {
                    tracing::error!(key = "kafka.sasl.password_file", %reason, "the changed Kafka password could not be handed to the client");
                    return false;
                }
                true
            }
            Ok(false) => false,
            Err(error) => {
                tracing::warn!(key = error.key, path = %error.path.display(), error = %error.source, "cannot re-read secret file; keeping the last value");
                false
            }
        }
    }
}

fn readable(key: &'static str, path: &Path) -> Result<(), ConfigError> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| ConfigError::invalid(key, format!("cannot read {}: {e}", path.display())))
}

/// Replaces the SASL username and password librdkafka uses for its next
/// authentications. rust-rdkafka does not wrap this call.
#[allow(unsafe_code)]
pub fn set_sasl_credentials<C: ClientContext>(
    client: &Client<C>,
    username: &str,
    password: &str,
) -> Result<(), String> {
    use std::ffi::{CStr, CString};
    let username = CString::new(username).map_err(|_| "username contains a NUL byte")?;
    let password = CString::new(password).map_err(|_| "password contains a NUL byte")?;
    // SAFETY: the client pointer is valid for as long as `client` is
    // borrowed; librdkafka copies both strings before returning; a non-null
    // error is owned by us and destroyed after its message is copied.
    unsafe {
        let error = rdkafka_sys::rd_kafka_sasl_set_credentials(
            client.native_ptr(),
            username.as_ptr(),
            password.as_ptr(),
        );
        if error.is_null() {
            return Ok(());
        }
        let message = CStr::from_ptr(rdkafka_sys::rd_kafka_error_string(error))
            .to_string_lossy()
            .into_owned();
        rdkafka_sys::rd_kafka_error_destroy(error);
        Err(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{KafkaSaslConfig, SaslMechanism};
    use spanway_service_kit::secret::Secret;

    #[test]
    fn properties_follow_the_typed_settings_and_extras_come_last() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.crt");
        std::fs::write(&ca, "pem").unwrap();
        let password = dir.path().join("password");
        std::fs::write(&password, "from-file\n").unwrap();
        let mut config = KafkaClientConfig::default();
        config.tls.enabled = true;
        config.tls.ca_file = Some(ca.clone());
        config.tls.verify_hostname = false;
        config.sasl = KafkaSaslConfig {
            mechanism: Some(SaslMechanism::ScramSha512),
            username: "spanway".into(),
            password: None,
            password_file: Some(password),
            oidc: None,
        };
        config.properties.0.insert(
            "ssl.endpoint.identification.algorithm".into(),
            "https".into(),
        );
        let client = KafkaClient::new(&config).unwrap();
        let props = client.client_config(|role| {
            role.set("acks", "all");
        });
        assert_eq!(props.get("acks"), Some("all"));
        assert_eq!(props.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(props.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(props.get("sasl.username"), Some("spanway"));
        assert_eq!(props.get("sasl.password"), Some("from-file"));
        assert_eq!(props.get("ssl.ca.location"), ca.to_str());
        // `properties` overrides the typed `verify_hostname = false`.
        assert_eq!(
            props.get("ssl.endpoint.identification.algorithm"),
            Some("https")
        );
    }

    #[test]
    fn unreadable_files_are_named_at_start() {
        let mut config = KafkaClientConfig::default();
        config.tls.enabled = true;
        config.tls.ca_file = Some("/nonexistent/ca.crt".into());
        let err = KafkaClient::new(&config).unwrap_err();
        assert!(err.to_string().contains("kafka.tls.ca_file"), "{err}");

        let config = KafkaClientConfig {
            sasl: KafkaSaslConfig {
                mechanism: Some(SaslMechanism::Plain),
                username: "u".into(),
                password: None,
                password_file: Some("/nonexistent/password".into()),
                oidc: None,
            },
            ..KafkaClientConfig::default()
        };
        let err = KafkaClient::new(&config).unwrap_err();
        assert!(
            err.to_string().contains("kafka.sasl.password_file"),
            "{err}"
        );

        let mut config = KafkaClientConfig::default();
        config.sasl.mechanism = Some(SaslMechanism::Plain);
        config.sasl.username = "u".into();
        config.sasl.password = Some(Secret::new("p"));
        assert!(KafkaClient::new(&config).is_ok());
    }
}
