//! The engine client, built from [`EngineClientConfig`].
//!
//! What it guarantees:
//! - no secret reaches a log line or a `Debug` print (the client's own
//!   `Debug` leaves the transport out, since the `elasticsearch` crate
//!   prints credentials in clear);
//! - a password, API key or token kept in a file is re-read when the file
//!   changes and used from the next request on, without a restart
//!   ([`EngineClient::spawn_credential_refresh`]);
//! - switching certificate verification off is logged as a warning at
//!   every start, naming the URLs it applies to.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use elasticsearch::Elasticsearch;
use elasticsearch::auth::{ClientCertificate, Credentials};
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::transport::{
    MultiNodeConnectionPool, SingleNodeConnectionPool, Transport, TransportBuilder,
};
use elasticsearch::http::{StatusCode, Url};
use spanway_service_kit::config::ConfigError;
use spanway_service_kit::secret::{Secret, SecretSource, spawn_refresh};
use tokio_util::sync::CancellationToken;

use crate::config::{
    API_KEY, API_KEY_FILE, BEARER_TOKEN_FILE, CA_FILE, CERT_FILE, EngineClientConfig, KEY_FILE,
    PASSWORD, PASSWORD_FILE, TlsConfig, check_api_key, check_token,
};

/// Which credentials the client sends, by the settings that hold them, for
/// messages that tell an operator what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// No credentials (a client certificate may still be presented).
    None,
    /// Basic auth as `username`, the password from `password_key`.
    Basic {
        /// The user.
        username: String,
        /// `elasticsearch.password` or `elasticsearch.password_file`.
        password_key: &'static str,
    },
    /// An API key from `key`.
    ApiKey {
        /// `elasticsearch.api_key` or `elasticsearch.api_key_file`.
        key: &'static str,
    },
    /// A bearer token from `elasticsearch.bearer_token_file`.
    Bearer,
}

/// The credentials, as a recipe that reads their current value each time.
#[derive(Debug, Clone)]
enum Login {
    None,
    Basic {
        username: String,
        password: SecretSource,
    },
    ApiKey(SecretSource),
    Bearer(SecretSource),
}

impl Login {
    /// Reads the secret files the settings name.
    fn from_config(config: &EngineClientConfig) -> Result<Login, ConfigError> {
        if let Some(username) = &config.username {
            let password = secret(
                PASSWORD,
                config.password.as_ref(),
                PASSWORD_FILE,
                config.password_file.as_deref(),
            )?
            .ok_or_else(|| {
                ConfigError::invalid(PASSWORD, "required with elasticsearch.username")
            })?;
            return Ok(Login::Basic {
                username: username.clone(),
                password,
            });
        }
        if let Some(key) = secret(
            API_KEY,
            config.api_key.as_ref(),
            API_KEY_FILE,
            config.api_key_file.as_deref(),
        )? {
            return Ok(Login::ApiKey(key));
        }
        if let Some(token) = secret(
            BEARER_TOKEN_FILE,
            None,
            BEARER_TOKEN_FILE,
            config.bearer_token_file.as_deref(),
        )? {
            return Ok(Login::Bearer(token));
        }
        Ok(Login::None)
    }

    /// The credentials from the current secret values; an error names the
    /// setting whose value cannot be sent.
    fn credentials(&self) -> Result<Option<Credentials>, ConfigError> {
        Ok(match self {
            Login::None => None,
            Login::Basic { username, password } => {
                let value = password.current();
                if value.is_empty() {
                    return Err(ConfigError::invalid(
                        password.file_key().unwrap_or(PASSWORD),
                        "the password is empty",
                    ));
                }
                Some(Credentials::Basic(
                    username.clone(),
                    value.expose().to_owned(),
                ))
            }
            Login::ApiKey(key) => {
                let value = key.current();
                check_api_key(key.file_key().unwrap_or(API_KEY), &value)?;
                Some(Credentials::EncodedApiKey(value.expose().to_owned()))
            }
            Login::Bearer(token) => {
                let value = token.current();
                check_token(BEARER_TOKEN_FILE, &value)?;
                Some(Credentials::Bearer(value.expose().to_owned()))
            }
        })
    }

    fn sources(&self) -> Vec<SecretSource> {
        match self {
            Login::None => Vec::new(),
            Login::Basic { password, .. } => vec![password.clone()],
            Login::ApiKey(source) | Login::Bearer(source) => vec![source.clone()],
        }
    }

    fn method(&self) -> AuthMethod {
        match self {
            Login::None => AuthMethod::None,
            Login::Basic { username, password } => AuthMethod::Basic {
                username: username.clone(),
                password_key: password.file_key().unwrap_or(PASSWORD),
            },
            Login::ApiKey(key) => AuthMethod::ApiKey {
                key: key.file_key().unwrap_or(API_KEY),
            },
            Login::Bearer(_) => AuthMethod::Bearer,
        }
    }
}

/// The source of an `x` / `x_file` pair of settings, the file read now;
/// errors name the key, and the file when it cannot be read.
fn secret(
    value_key: &'static str,
    value: Option<&Secret>,
    file_key: &'static str,
    file: Option<&Path>,
) -> Result<Option<SecretSource>, ConfigError> {
    match (value, file) {
        (None, Some(path)) => SecretSource::file(file_key, path).map(Some).map_err(|e| {
            ConfigError::invalid(
                file_key,
                format!("cannot read {}: {}", path.display(), e.source),
            )
        }),
        _ => SecretSource::from_pair(value_key, value, file_key, file),
    }
}

/// Reads every file the settings name and checks what it holds, as
/// [`EngineClient::new`] does.
pub(crate) fn check_files(config: &EngineClientConfig) -> Result<(), ConfigError> {
    Login::from_config(config)?.credentials()?;
    read_tls(&config.tls)?;
    Ok(())
}

/// The TLS material the settings name, read and checked.
struct Tls {
    ca: Option<Certificate>,
    identity: Option<ClientCertificate>,
}

fn read_file(key: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path)
        .map_err(|e| ConfigError::invalid(key, format!("cannot read {}: {e}", path.display())))
}

fn read_tls(tls: &TlsConfig) -> Result<Tls, ConfigError> {
    let ca = match &tls.ca_file {
        Some(path) => {
            let pem = read_file(CA_FILE, path)?;
            let certificate = Certificate::from_pem(&pem).map_err(|e| {
                ConfigError::invalid(
                    CA_FILE,
                    format!("{}: no usable PEM certificate: {e}", path.display()),
                )
            })?;
            Some(certificate)
        }
        None => None,
    };
    let identity = match (&tls.cert_file, &tls.key_file) {
        (Some(cert_path), Some(key_path)) => {
            let cert = read_file(CERT_FILE, cert_path)?;
            let key = read_file(KEY_FILE, key_path)?;
            if !contains(&cert, b"-----BEGIN CERTIFICATE-----") {
                return Err(ConfigError::invalid(
                    CERT_FILE,
                    format!("{} holds no PEM certificate", cert_path.display()),
                ));
            }
            if contains(&key, b"ENCRYPTED PRIVATE KEY") || !contains(&key, b"PRIVATE KEY-----") {
                return Err(ConfigError::invalid(
                    KEY_FILE,
                    format!(
                        "{} holds no unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1)",
                        key_path.display()
                    ),
                ));
            }
            // One PEM with the key and the chain, as the TLS stack takes it.
            let mut pem = key;
            pem.push(b'\n');
            pem.extend_from_slice(&cert);
            Some(ClientCertificate::Pem(pem))
        }
        _ => None,
    };
    Ok(Tls { ca, identity })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A setting, or a file it names, is not usable; names the key.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The HTTP client refused the TLS material or options.
    #[error("elasticsearch client: {0}")]
    Build(String),
}

/// A client of one cluster, with the credentials of the settings. Cheap to
/// clone; clones share the connection pool and the credentials, so a
/// credential swap reaches every clone.
#[derive(Clone)]
pub struct EngineClient {
    client: Elasticsearch,
    transport: Transport,
    login: Login,
    client_certificate: bool,
    urls: String,
    gzip_level: Option<u32>,
}

impl fmt::Debug for EngineClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineClient")
            .field("urls", &self.urls)
            .field("auth", &self.login.method())
            .field("client_certificate", &self.client_certificate)
            .finish_non_exhaustive()
    }
}

impl EngineClient {
    /// Checks the settings, reads the files they name and builds the
    /// client. Connects to nothing yet.
    pub fn new(config: &EngineClientConfig) -> Result<EngineClient, ClientError> {
        config.validate()?;
        let urls = config.parsed_urls()?;
        let login = Login::from_config(config)?;
        let credentials = login.credentials()?;
        let tls = read_tls(&config.tls)?;
        let shown = urls.iter().map(Url::as_str).collect::<Vec<_>>().join(", ");

        let mut builder = if let [url] = urls.as_slice() {
            TransportBuilder::new(SingleNodeConnectionPool::new(url.clone()))
        } else {
            TransportBuilder::new(MultiNodeConnectionPool::round_robin(urls.clone(), None))
        };
        // Bulk bodies are compressed by the bulk writer, at a level of our
        // choosing; the transport's own compression (level 6, every
        // request) stays off.
        builder = builder.request_body_compression(false);
        if let Some(ca) = tls.ca {
            builder = builder.cert_validation(CertificateValidation::Full(ca));
        } else if config.tls.insecure_skip_verify {
            builder = builder.cert_validation(CertificateValidation::None);
        }
        // The crate takes a client certificate as one kind of credentials,
        // read only when the HTTP client is built; the header credentials
        // are set after that, so both can be used together.
        let client_certificate = tls.identity.is_some();
        if let Some(identity) = tls.identity {
            builder = builder.auth(Credentials::Certificate(identity));
        }
        let transport = builder
            .build()
            .map_err(|e| ClientError::Build(e.to_string()))?;
        if let Some(credentials) = credentials {
            transport.set_auth(credentials);
        }

        if config.tls.insecure_skip_verify {
            tracing::warn!(
                urls = %shown,
                "elasticsearch.tls.insecure_skip_verify = true: the engine's TLS certificate is NOT verified; anyone between this process and the engine can read and change the traffic, credentials included"
            );
        }
        let sends_secrets = !matches!(login, Login::None);
        if sends_secrets && urls.iter().any(|u| u.scheme() == "http") {
            tracing::warn!(urls = %shown, "credentials are sent over plain http://, readable on the network; use https://");
        }
        Ok(EngineClient {
            client: Elasticsearch::new(transport.clone()),
            transport,
            login,
            client_certificate,
            urls: shown,
            gzip_level: config.gzip_level(),
        })
    }

    /// The gzip level for bulk bodies, if they are compressed.
    pub fn gzip_level(&self) -> Option<u32> {
        self.gzip_level
    }

    /// The API client.
    pub fn client(&self) -> &Elasticsearch {
        &self.client
    }

    /// The URLs, for messages.
    pub fn urls(&self) -> &str {
        &self.urls
    }

    /// Which credentials are sent, by setting name.
    pub fn auth_method(&self) -> AuthMethod {
        self.login.method()
    }

    /// Whether a client certificate is presented.
    pub fn client_certificate(&self) -> bool {
        self.client_certificate
    }

    /// Checks the secret files every `interval` until `shutdown`; a changed
    /// one replaces the credentials of every clone of this client from the
    /// next request on. A new value that cannot be sent (an API key that is
    /// not base64, say) is logged and the previous credentials stay. `None`
    /// when no secret comes from a file.
    pub fn spawn_credential_refresh(
        &self,
        interval: Duration,
        shutdown: CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let login = self.login.clone();
        let transport = self.transport.clone();
        spawn_refresh(
            login.sources(),
            interval,
            shutdown,
            move |changed| match login.credentials() {
                Ok(Some(credentials)) => transport.set_auth(credentials),
                Ok(None) => {}
                Err(error) => tracing::error!(
                    key = changed.file_key(),
                    %error,
                    "the new secret cannot be used; the previous credentials stay in use"
                ),
            },
        )
    }

    /// Whether the engine answers and accepts our credentials (`HEAD /`
    /// with them). A 403 counts as an answer: the credentials were accepted,
    /// and a role allowed to write documents need not be allowed to read
    /// cluster information.
    pub async fn reachable(&self) -> bool {
        let ping = self
            .client
            .ping()
            .request_timeout(Duration::from_secs(5))
            .send()
            .await;
        match ping {
            Ok(response) => {
                let status = response.status_code();
                status.is_success() || status == StatusCode::FORBIDDEN
            }
            Err(_) => false,
        }
    }

    /// The server's `GET /` answer (name, distribution, version).
    pub async fn server_info(&self) -> Result<serde_json::Value, InfoError> {
        let response = self
            .client
            .info()
            .request_timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| InfoError::Unreachable(e.to_string()))?;
        let status = response.status_code();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(InfoError::Refused {
                status: status.as_u16(),
                body: body.chars().take(300).collect(),
            });
        }
        response
            .json()
            .await
            .map_err(|e| InfoError::Unreachable(e.to_string()))
    }
}

/// Why [`EngineClient::server_info`] has no answer.
#[derive(Debug, thiserror::Error)]
pub enum InfoError {
    /// No usable answer: connection, TLS, timeout or an unreadable body.
    #[error("GET / failed: {0}")]
    Unreachable(String),
    /// The server answered with an error status (401 and 403 are the
    /// credentials' or the role's fault).
    #[error("GET / answered {status}: {body}")]
    Refused { status: u16, body: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// base64 of `id:secret`.
    const ENCODED_KEY: &str = "aWQ6c2VjcmV0";

    fn basic() -> EngineClientConfig {
        EngineClientConfig {
            username: Some("writer".into()),
            password: Some(Secret::new("hunter2")),
            ..Default::default()
        }
    }

    #[test]
    fn missing_files_are_named() {
        let config = EngineClientConfig {
            username: Some("writer".into()),
            password_file: Some("/nonexistent/password".into()),
            ..Default::default()
        };
        config.validate().unwrap();
        let error = EngineClient::new(&config).unwrap_err().to_string();
        assert!(error.contains("elasticsearch.password_file"), "{error}");
        let error = config.check_files().unwrap_err().to_string();
        assert!(error.contains("elasticsearch.password_file"), "{error}");

        let config = EngineClientConfig {
            bearer_token_file: Some("/nonexistent/token".into()),
            ..Default::default()
        };
        let error = EngineClient::new(&config).unwrap_err().to_string();
        assert!(error.contains("elasticsearch.bearer_token_file"), "{error}");

        let mut config = EngineClientConfig::for_url("https://es:9200");
        config.tls.ca_file = Some("/nonexistent/ca.pem".into());
        let error = EngineClient::new(&config).unwrap_err().to_string();
        assert!(error.contains("elasticsearch.tls.ca_file"), "{error}");
    }

    #[test]
    fn file_contents_are_checked_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "id:secret\n").unwrap();
        let config = EngineClientConfig {
            api_key_file: Some(key),
            ..Default::default()
        };
        let error = config.check_files().unwrap_err().to_string();
        assert!(error.contains("elasticsearch.api_key_file"), "{error}");

        let token = dir.path().join("token");
        std::fs::write(&token, "two words\n").unwrap();
        let config = EngineClientConfig {
            bearer_token_file: Some(token),
            ..Default::default()
        };
        let error = config.check_files().unwrap_err().to_string();
        assert!(error.contains("elasticsearch.bearer_token_file"), "{error}");

        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let mut config = EngineClientConfig::for_url("https://es:9200");
        config.tls.ca_file = Some(ca);
        let error = config.check_files().unwrap_err().to_string();
        assert!(error.contains("elasticsearch.tls.ca_file"), "{error}");
    }

    #[test]
    fn debug_never_prints_secrets() {
        let config = basic();
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        let client = EngineClient::new(&config).unwrap();
        let printed = format!("{client:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("writer"), "{printed}");
        let config = EngineClientConfig {
            api_key: Some(Secret::new(ENCODED_KEY)),
            ..Default::default()
        };
        let printed = format!("{:?}", EngineClient::new(&config).unwrap());
        assert!(!printed.contains(ENCODED_KEY), "{printed}");
    }

    #[test]
    fn auth_method_names_the_setting() {
        let client = EngineClient::new(&basic()).unwrap();
        assert_eq!(
            client.auth_method(),
            AuthMethod::Basic {
                username: "writer".into(),
                password_key: "elasticsearch.password"
            }
        );
        let client = EngineClient::new(&EngineClientConfig::default()).unwrap();
        assert_eq!(client.auth_method(), AuthMethod::None);
        assert_eq!(client.urls(), "http://127.0.0.1:9200/");
    }
}
