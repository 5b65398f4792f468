//! The engine client and its connection settings: one type for every
//! process that talks to Elasticsearch or OpenSearch.
//!
//! What it guarantees:
//! - the settings are checked before any I/O, and every error names the
//!   key at fault ([`EngineClientConfig::validate`]);
//! - no secret reaches a log line, a `Debug` print or `check-config`
//!   output (the client's own `Debug` leaves the transport out, since the
//!   `elasticsearch` crate prints credentials in clear);
//! - a password, API key or token kept in a file is re-read when the file
//!   changes and used from the next request on, without a restart
//!   ([`EngineClient::spawn_credential_refresh`]);
//! - switching certificate verification off is logged as a warning at
//!   every start, naming the URLs it applies to.
//!
//! The keys sit in each process's `[elasticsearch]` section beside the
//! keys of its role (see `spanway_service_kit::section`), so messages name
//! them `elasticsearch.<key>` and the environment spells them
//! `SPANWAY_ELASTICSEARCH__<KEY>`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use elasticsearch::Elasticsearch;
use elasticsearch::auth::{ClientCertificate, Credentials};
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::transport::{
    MultiNodeConnectionPool, SingleNodeConnectionPool, Transport, TransportBuilder,
};
use elasticsearch::http::{StatusCode, Url};
use serde::Deserialize;
use spanway_service_kit::config::ConfigError;
use spanway_service_kit::secret::{Secret, SecretSource, spawn_refresh};
use spanway_service_kit::section::ClientKeys;
use tokio_util::sync::CancellationToken;

/// Where the engine is when neither `url` nor `urls` is set.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9200";

const URL: &str = "elasticsearch.url";
const URLS: &str = "elasticsearch.urls";
const USERNAME: &str = "elasticsearch.username";
const PASSWORD: &str = "elasticsearch.password";
const PASSWORD_FILE: &str = "elasticsearch.password_file";
const API_KEY: &str = "elasticsearch.api_key";
const API_KEY_FILE: &str = "elasticsearch.api_key_file";
const BEARER_TOKEN_FILE: &str = "elasticsearch.bearer_token_file";
const CA_FILE: &str = "elasticsearch.tls.ca_file";
const CERT_FILE: &str = "elasticsearch.tls.cert_file";
const KEY_FILE: &str = "elasticsearch.tls.key_file";
const INSECURE_SKIP_VERIFY: &str = "elasticsearch.tls.insecure_skip_verify";

/// How to reach the engine and prove who we are. At most one way of
/// authenticating is set: basic auth, an API key or a bearer token; a
/// client certificate may come on top of any of them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineClientConfig {
    /// Base URL of the cluster, e.g. `https://es.example:9200`; when
    /// neither this nor `urls` is set, `http://127.0.0.1:9200`. A load
    /// balancer or a single coordinating node goes here.
    pub url: Option<String>,
    /// Base URLs of several nodes of one cluster, instead of `url`:
    /// requests go to each in turn, so no single node carries every write.
    /// A node that is down fails its share of requests, which the writers
    /// retry on the next node.
    pub urls: Vec<String>,
    /// User for HTTP basic authentication (the native or file realm of
    /// Elasticsearch, the internal user database of OpenSearch's security
    /// plugin). Needs `password` or `password_file`.
    pub username: Option<String>,
    /// The password of `username`. Prefer `password_file` outside
    /// development: a value here or in `SPANWAY_ELASTICSEARCH__PASSWORD`
    /// lives in the process environment.
    pub password: Option<Secret>,
    /// A file holding the password of `username` (a mounted Kubernetes
    /// Secret, say). Re-read when it changes, so a rotated password is used
    /// without a restart.
    pub password_file: Option<PathBuf>,
    /// An Elasticsearch API key, as the `encoded` value Elasticsearch
    /// returns when it creates one (base64 of `id:api_key`); sent as
    /// `Authorization: ApiKey <value>`. Prefer `api_key_file`.
    pub api_key: Option<Secret>,
    /// A file holding the API key, as for `api_key`; re-read when it
    /// changes.
    pub api_key_file: Option<PathBuf>,
    /// A file holding a bearer token (an OAuth2/OIDC access token, an
    /// Elasticsearch service-account token), sent as `Authorization:
    /// Bearer <token>`. Such tokens expire, so the file is re-read when it
    /// changes and whatever renews it is picked up without a restart.
    pub bearer_token_file: Option<PathBuf>,
    /// TLS for `https://` URLs.
    pub tls: TlsConfig,
    /// Compression of request bodies.
    pub compression: Compression,
}

/// TLS settings. Without any, `https://` URLs are verified against the
/// public CAs built into the client (Mozilla's list, not the system store).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// A PEM file of CA certificates (one or several) to trust beside the
    /// built-in ones: the private CA that signed the engine's certificate.
    /// The host name is still checked against the certificate.
    pub ca_file: Option<PathBuf>,
    /// A PEM client certificate (its chain may follow), for engines or
    /// proxies that authenticate clients by certificate. Needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// The unencrypted PEM private key of `cert_file` (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// Accept any certificate the engine presents. For diagnosing a TLS
    /// problem only: anyone on the path can then read and change the
    /// traffic, credentials included. Logged as a warning at every start.
    pub insecure_skip_verify: bool,
}

/// Request body compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Bodies go as they are.
    #[default]
    None,
    /// Bodies are gzipped (`Content-Encoding: gzip`): bulk bodies of JSON
    /// shrink several times, for some CPU, which pays when the network to
    /// the engine is slow or billed.
    Gzip,
}

impl ClientKeys for EngineClientConfig {
    const KEYS: &'static [&'static str] = &[
        "url",
        "urls",
        "username",
        "password",
        "password_file",
        "api_key",
        "api_key_file",
        "bearer_token_file",
        "tls",
        "compression",
    ];
}

impl EngineClientConfig {
    /// A configuration for one URL and nothing else, as tests and tools
    /// want it.
    pub fn for_url(url: &str) -> Self {
        EngineClientConfig {
            url: Some(url.to_owned()),
            ..Default::default()
        }
    }

    /// Checks the rules serde cannot express, without reading any file;
    /// names the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let urls = self.parsed_urls()?;
        self.validate_auth()?;
        self.validate_tls(&urls)
    }

    /// The URLs requests go to, in order.
    fn parsed_urls(&self) -> Result<Vec<Url>, ConfigError> {
        if self.url.is_some() && !self.urls.is_empty() {
            return Err(ConfigError::invalid(
                URLS,
                "set either elasticsearch.url or elasticsearch.urls, not both",
            ));
        }
        if self.urls.is_empty() {
            let url = self.url.as_deref().unwrap_or(DEFAULT_URL);
            return Ok(vec![parse_url(URL, url)?]);
        }
        self.urls.iter().map(|url| parse_url(URLS, url)).collect()
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        let basic =
            self.username.is_some() || self.password.is_some() || self.password_file.is_some();
        let api_key = self.api_key.is_some() || self.api_key_file.is_some();
        let bearer = self.bearer_token_file.is_some();
        let second = match (basic, api_key, bearer) {
            (true, true, _) => Some(self.api_key_key()),
            (true, _, true) | (_, true, true) => Some(BEARER_TOKEN_FILE),
            _ => None,
        };
        if let Some(key) = second {
            return Err(ConfigError::invalid(
                key,
                "set at most one way of authenticating: elasticsearch.username with password or password_file, elasticsearch.api_key or api_key_file, or elasticsearch.bearer_token_file",
            ));
        }
        if self.password.is_some() && self.password_file.is_some() {
            return Err(ConfigError::invalid(
                PASSWORD_FILE,
                "set either elasticsearch.password or elasticsearch.password_file, not both",
            ));
        }
        if self.api_key.is_some() && self.api_key_file.is_some() {
            return Err(ConfigError::invalid(
                API_KEY_FILE,
                "set either elasticsearch.api_key or elasticsearch.api_key_file, not both",
            ));
        }
        if basic {
            match self.username.as_deref() {
                None => {
                    return Err(ConfigError::invalid(
                        USERNAME,
                        "required with elasticsearch.password or password_file",
                    ));
                }
                Some("") => return Err(ConfigError::invalid(USERNAME, "must not be empty")),
                Some(_) => {}
            }
            if self.password.is_none() && self.password_file.is_none() {
                return Err(ConfigError::invalid(
                    PASSWORD,
                    "required with elasticsearch.username (or set elasticsearch.password_file)",
                ));
            }
            if self.password.as_ref().is_some_and(Secret::is_empty) {
                return Err(ConfigError::invalid(PASSWORD, "must not be empty"));
            }
        }
        if let Some(key) = &self.api_key {
            check_api_key(API_KEY, key)?;
        }
        Ok(())
    }

    fn api_key_key(&self) -> &'static str {
        if self.api_key.is_some() {
            API_KEY
        } else {
            API_KEY_FILE
        }
    }

    fn validate_tls(&self, urls: &[Url]) -> Result<(), ConfigError> {
        let tls = &self.tls;
        match (&tls.cert_file, &tls.key_file) {
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    KEY_FILE,
                    "required with elasticsearch.tls.cert_file",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    CERT_FILE,
                    "required with elasticsearch.tls.key_file",
                ));
            }
            _ => {}
        }
        if tls.insecure_skip_verify && tls.ca_file.is_some() {
            return Err(ConfigError::invalid(
                INSECURE_SKIP_VERIFY,
                "set either elasticsearch.tls.ca_file (verify against that CA) or insecure_skip_verify (verify nothing), not both",
            ));
        }
        let first_set = [
            (tls.ca_file.is_some(), CA_FILE),
            (tls.cert_file.is_some(), CERT_FILE),
            (tls.insecure_skip_verify, INSECURE_SKIP_VERIFY),
        ]
        .into_iter()
        .find_map(|(set, key)| set.then_some(key));
        if let Some(key) = first_set
            && !urls.iter().any(|u| u.scheme() == "https")
        {
            return Err(ConfigError::invalid(
                key,
                "has no effect: no URL in elasticsearch.url or urls starts with https://",
            ));
        }
        Ok(())
    }

    /// Reads every file the settings name (secrets, CA, client
    /// certificate) and checks what it holds, as the client does at start;
    /// for `check-config`.
    pub fn check_files(&self) -> Result<(), ConfigError> {
        self.validate()?;
        let login = Login::from_config(self)?;
        login.credentials()?;
        read_tls(&self.tls)?;
        Ok(())
    }
}

fn parse_url(key: &'static str, text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text).map_err(|e| {
        ConfigError::invalid(
            key,
            format!(
                "{text:?} is not a URL ({e}); write it as http://host:9200 or https://host:9200"
            ),
        )
    })?;
    // Checked before the URL is echoed: it may carry a password.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::invalid(
            key,
            "a URL must not carry credentials, which would show in logs and check-config output; use elasticsearch.username with password_file",
        ));
    }
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid(
            key,
            format!("{text:?} must start with http:// or https:// and name a host"),
        ));
    }
    Ok(url)
}

/// An API key as Elasticsearch hands it out: base64 of `id:api_key`.
fn check_api_key(key: &'static str, value: &Secret) -> Result<(), ConfigError> {
    let text = value.expose();
    if text.is_empty() {
        return Err(ConfigError::invalid(key, "must not be empty"));
    }
    if text.contains(':') {
        return Err(ConfigError::invalid(
            key,
            "looks like id:api_key; give its base64 form, the `encoded` value Elasticsearch returns",
        ));
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(text);
    if !decoded.is_ok_and(|bytes| bytes.contains(&b':')) {
        return Err(ConfigError::invalid(
            key,
            "is not the `encoded` value Elasticsearch returns for an API key (base64 of id:api_key)",
        ));
    }
    Ok(())
}

/// A token must fit an HTTP header: visible ASCII, no spaces.
fn check_token(key: &'static str, value: &Secret) -> Result<(), ConfigError> {
    let text = value.expose();
    if text.is_empty() {
        return Err(ConfigError::invalid(key, "the token is empty"));
    }
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::invalid(
            key,
            "the token holds a character an HTTP header cannot carry (a space, a control character or non-ASCII)",
        ));
    }
    Ok(())
}

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
        builder = builder.request_body_compression(config.compression == Compression::Gzip);
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
        })
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
    pub async fn server_info(&self) -> Result<serde_json::Value, String> {
        let response = self
            .client
            .info()
            .request_timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status_code();
        if !status.is_success() {
            return Err(format!("GET / answered {status}"));
        }
        response.json().await.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// base64 of `id:secret`.
    const ENCODED_KEY: &str = "aWQ6c2VjcmV0";

    fn fails_on(config: &EngineClientConfig, key: &str) -> String {
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains(key), "{key} not named in: {error}");
        error
    }

    fn basic() -> EngineClientConfig {
        EngineClientConfig {
            username: Some("writer".into()),
            password: Some(Secret::new("hunter2")),
            ..Default::default()
        }
    }

    #[test]
    fn default_is_valid_and_points_at_localhost() {
        let config = EngineClientConfig::default();
        config.validate().unwrap();
        assert_eq!(
            config.parsed_urls().unwrap(),
            [Url::parse(DEFAULT_URL).unwrap()]
        );
    }

    #[test]
    fn url_and_urls_together_are_refused() {
        let config = EngineClientConfig {
            url: Some("http://a:9200".into()),
            urls: vec!["http://b:9200".into()],
            ..Default::default()
        };
        fails_on(&config, "elasticsearch.urls");
        let config = EngineClientConfig {
            urls: vec!["http://a:9200".into(), "https://b:9200".into()],
            ..Default::default()
        };
        assert_eq!(config.parsed_urls().unwrap().len(), 2);
    }

    #[test]
    fn urls_must_be_http_and_carry_no_credentials() {
        for bad in ["127.0.0.1:9200", "ftp://h:21", "http://", ""] {
            fails_on(&EngineClientConfig::for_url(bad), "elasticsearch.url");
        }
        let config = EngineClientConfig {
            urls: vec!["http://a:9200".into(), "b:9200".into()],
            ..Default::default()
        };
        fails_on(&config, "elasticsearch.urls");
        let error = fails_on(
            &EngineClientConfig::for_url("https://elastic:s3cret@es:9200"),
            "elasticsearch.url",
        );
        assert!(!error.contains("s3cret"), "{error}");
    }

    #[test]
    fn one_way_of_authenticating_at_most() {
        basic().validate().unwrap();
        let mut both = basic();
        both.api_key = Some(Secret::new(ENCODED_KEY));
        fails_on(&both, "elasticsearch.api_key");
        let mut both = basic();
        both.bearer_token_file = Some("/t".into());
        fails_on(&both, "elasticsearch.bearer_token_file");
        let both = EngineClientConfig {
            api_key_file: Some("/k".into()),
            bearer_token_file: Some("/t".into()),
            ..Default::default()
        };
        fails_on(&both, "elasticsearch.bearer_token_file");
    }

    #[test]
    fn password_pairs_are_checked() {
        let mut config = basic();
        config.password_file = Some("/p".into());
        fails_on(&config, "elasticsearch.password_file");
        let mut config = basic();
        config.password = None;
        fails_on(&config, "elasticsearch.password");
        let mut config = basic();
        config.username = None;
        fails_on(&config, "elasticsearch.username");
        let mut config = basic();
        config.password = Some(Secret::new(""));
        fails_on(&config, "elasticsearch.password");
        let config = EngineClientConfig {
            api_key: Some(Secret::new(ENCODED_KEY)),
            api_key_file: Some("/k".into()),
            ..Default::default()
        };
        fails_on(&config, "elasticsearch.api_key_file");
    }

    #[test]
    fn api_keys_must_be_the_encoded_form() {
        let with = |key: &str| EngineClientConfig {
            api_key: Some(Secret::new(key)),
            ..Default::default()
        };
        with(ENCODED_KEY).validate().unwrap();
        let error = fails_on(&with("id:secret"), "elasticsearch.api_key");
        assert!(error.contains("base64"), "{error}");
        assert!(!error.contains("secret\""), "{error}");
        fails_on(&with("not base64!"), "elasticsearch.api_key");
        // Base64, but not of id:secret.
        fails_on(&with("aWRzZWNyZXQ="), "elasticsearch.api_key");
    }

    #[test]
    fn tls_rules_name_the_key() {
        let https = || EngineClientConfig::for_url("https://es:9200");
        let mut config = https();
        config.tls.cert_file = Some("/c.pem".into());
        fails_on(&config, "elasticsearch.tls.key_file");
        let mut config = https();
        config.tls.key_file = Some("/k.pem".into());
        fails_on(&config, "elasticsearch.tls.cert_file");
        let mut config = https();
        config.tls.ca_file = Some("/ca.pem".into());
        config.validate().unwrap();
        config.tls.insecure_skip_verify = true;
        fails_on(&config, "elasticsearch.tls.insecure_skip_verify");
        let mut config = EngineClientConfig::for_url("http://es:9200");
        config.tls.ca_file = Some("/ca.pem".into());
        fails_on(&config, "elasticsearch.tls.ca_file");
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
