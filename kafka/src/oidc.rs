//! SASL/OAUTHBEARER tokens from an OpenID Connect provider, by the client
//! credentials grant (RFC 6749 §4.4), as Confluent Cloud, Aiven and
//! Keycloak-fronted clusters expect.
//!
//! librdkafka can fetch such tokens itself only when built with libcurl;
//! fetching them here keeps the build free of it and lets a rotated client
//! secret file be used at the next refresh. librdkafka asks for a token at
//! start and again at 80 % of each token's lifetime, from the thread that
//! polls the client; that thread waits for the request, which runs on the
//! process's runtime.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rdkafka::client::OAuthToken;
use serde::Deserialize;
use spanway_service_kit::config::ConfigError;
use spanway_service_kit::secret::{Secret, SecretSource};

/// Where and how to get tokens.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's token endpoint, e.g.
    /// `https://idp.example.com/realms/kafka/protocol/openid-connect/token`.
    pub token_endpoint_url: String,
    /// The client id registered with the provider.
    pub client_id: String,
    /// The client secret.
    pub client_secret: Option<Secret>,
    /// File holding the client secret (instead of `client_secret`); read
    /// again at each token refresh when it changed.
    pub client_secret_file: Option<PathBuf>,
    /// Scope to ask for, when the provider wants one.
    pub scope: Option<String>,
    /// PEM CA bundle for the token endpoint, when its certificate is not
    /// from a public CA.
    pub ca_file: Option<PathBuf>,
}

impl OidcConfig {
    /// Checks the keys; files are read by [`TokenSource::new`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.token_endpoint_url.starts_with("https://")
            || self.token_endpoint_url.starts_with("http://"))
        {
            return Err(ConfigError::invalid(
                "kafka.sasl.oidc.token_endpoint_url",
                "must be an http:// or https:// URL",
            ));
        }
        if self.client_id.is_empty() {
            return Err(ConfigError::invalid(
                "kafka.sasl.oidc.client_id",
                "must not be empty",
            ));
        }
        match (&self.client_secret, &self.client_secret_file) {
            (None, None) => Err(ConfigError::invalid(
                "kafka.sasl.oidc.client_secret",
                "set kafka.sasl.oidc.client_secret or kafka.sasl.oidc.client_secret_file",
            )),
            (Some(_), Some(_)) => Err(ConfigError::invalid(
                "kafka.sasl.oidc.client_secret_file",
                "set either kafka.sasl.oidc.client_secret or kafka.sasl.oidc.client_secret_file, not both",
            )),
            _ => Ok(()),
        }
    }
}

/// A token could not be had. The message names the key to check; it
/// reaches the log through librdkafka's error callback and [`crate::fault`].
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The endpoint could not be reached or answered with an error.
    #[error("kafka.sasl.oidc.token_endpoint_url: token request failed: {0}")]
    Request(String),
    /// The provider refused the client's credentials.
    #[error(
        "kafka.sasl.oidc.client_secret: the provider refused client {client_id}: {status} {body}"
    )]
    Refused {
        /// The client id used.
        client_id: String,
        /// HTTP status.
        status: u16,
        /// The start of the provider's answer.
        body: String,
    },
    /// The answer was not a token response.
    #[error("kafka.sasl.oidc.token_endpoint_url: not a token response: {0}")]
    Answer(String),
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

/// Fetches tokens for librdkafka.
#[derive(Debug)]
pub struct TokenSource {
    config: OidcConfig,
    secret: SecretSource,
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl TokenSource {
    /// Reads the secret and CA files, naming the key of one that cannot be
    /// read. Call within the runtime that will carry the token requests.
    pub fn new(config: &OidcConfig) -> Result<Self, ConfigError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            ConfigError::invalid("kafka.sasl.oidc", "needs an async runtime to fetch tokens")
        })?;
        config.validate()?;
        let secret = SecretSource::from_pair(
            "kafka.sasl.oidc.client_secret",
            config.client_secret.as_ref(),
            "kafka.sasl.oidc.client_secret_file",
            config.client_secret_file.as_deref(),
        )?
        .ok_or_else(|| ConfigError::invalid("kafka.sasl.oidc.client_secret", "missing"))?;
        let mut http = reqwest::Client::builder().timeout(Duration::from_secs(10));
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                ConfigError::invalid(
                    "kafka.sasl.oidc.ca_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ConfigError::invalid("kafka.sasl.oidc.ca_file", format!("not PEM: {e}"))
            })?;
            for cert in certs {
                http = http.add_root_certificate(cert);
            }
        }
        let http = http.build().map_err(|e| {
            ConfigError::invalid("kafka.sasl.oidc.ca_file", format!("HTTP client: {e}"))
        })?;
        Ok(TokenSource {
            config: config.clone(),
            secret,
            http,
            runtime,
        })
    }

    /// Asks the provider for a token, waiting for the answer. The request
    /// runs on the runtime from a thread of its own, so waiting is safe
    /// whatever thread librdkafka calls from.
    pub fn fetch(&self) -> Result<OAuthToken, OidcError> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| self.runtime.block_on(self.request()))
                .join()
                .unwrap_or_else(|_| Err(OidcError::Request("token request panicked".into())))
        })
    }

    async fn request(&self) -> Result<OAuthToken, OidcError> {
        if let Err(error) = self.secret.refresh() {
            tracing::warn!(key = error.key, error = %error.source, "cannot re-read secret file; keeping the last value");
        }
        let mut form = vec![("grant_type", "client_credentials".to_string())];
        if let Some(scope) = &self.config.scope {
            form.push(("scope", scope.clone()));
        }
        let response = self
            .http
            .post(&self.config.token_endpoint_url)
            .basic_auth(&self.config.client_id, Some(self.secret.current().expose()))
            .form(&form)
            .send()
            .await
            .map_err(|e| OidcError::Request(e.to_string()))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| OidcError::Request(e.to_string()))?;
        if !status.is_success() {
            return Err(OidcError::Refused {
                client_id: self.config.client_id.clone(),
                status: status.as_u16(),
                body: body.chars().take(200).collect(),
            });
        }
        let token: TokenResponse =
            serde_json::from_str(&body).map_err(|e| OidcError::Answer(e.to_string()))?;
        token_for_librdkafka(
            &token.access_token,
            token.expires_in,
            &self.config.client_id,
        )
    }
}

/// The principal and expiry librdkafka wants, from the token's own claims
/// (`sub`, `exp`) when it is a JWT, else from `expires_in` and the client id.
fn token_for_librdkafka(
    access_token: &str,
    expires_in: Option<u64>,
    client_id: &str,
) -> Result<OAuthToken, OidcError> {
    #[derive(Deserialize, Default)]
    struct Claims {
        sub: Option<String>,
        exp: Option<i64>,
    }
    let claims: Claims = access_token
        .split('.')
        .nth(1)
        .and_then(|payload| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload.trim_end_matches('='))
                .ok()
        })
        .and_then(|json| serde_json::from_slice(&json).ok())
        .unwrap_or_default();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let lifetime_ms = match (claims.exp, expires_in) {
        (Some(exp), _) => exp * 1000,
        (None, Some(seconds)) => now_ms + seconds as i64 * 1000,
        (None, None) => {
            return Err(OidcError::Answer(
                "the token has neither an exp claim nor expires_in".into(),
            ));
        }
    };
    if lifetime_ms <= now_ms {
        return Err(OidcError::Answer("the token has already expired".into()));
    }
    Ok(OAuthToken {
        token: access_token.to_string(),
        principal_name: claims.sub.unwrap_or_else(|| client_id.to_string()),
        lifetime_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.", enc(r#"{"alg":"none"}"#), enc(claims))
    }

    #[test]
    fn principal_and_expiry_come_from_the_claims() {
        let token = jwt(r#"{"sub":"spanway","exp":4102444800}"#);
        let out = token_for_librdkafka(&token, Some(60), "client").unwrap();
        assert_eq!(out.principal_name, "spanway");
        assert_eq!(out.lifetime_ms, 4_102_444_800_000);
        assert_eq!(out.token, token);
    }

    #[test]
    fn opaque_tokens_use_expires_in_and_the_client_id() {
        let out = token_for_librdkafka("opaque", Some(300), "client").unwrap();
        assert_eq!(out.principal_name, "client");
        assert!(out.lifetime_ms > 0);
        assert!(token_for_librdkafka("opaque", None, "client").is_err());
        let expired = jwt(r#"{"sub":"s","exp":1000}"#);
        assert!(token_for_librdkafka(&expired, None, "client").is_err());
    }

    #[test]
    fn validation_names_the_key() {
        let mut config = OidcConfig {
            token_endpoint_url: "https://idp/token".into(),
            client_id: "c".into(),
            client_secret: Some(Secret::new("s")),
            ..OidcConfig::default()
        };
        config.validate().unwrap();
        config.client_secret_file = Some("/run/secret".into());
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("client_secret_file")
        );
        config.client_secret_file = None;
        config.token_endpoint_url = "idp/token".into();
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("token_endpoint_url")
        );
    }
}
