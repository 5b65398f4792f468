//! The connection settings of the engine client, one type for every
//! process that talks to Elasticsearch or OpenSearch, checked before any
//! I/O with every error naming the key at fault.
//!
//! The keys sit in each process's `[elasticsearch]` section beside the
//! keys of its role (see `spanway_service_kit::section`), so messages name
//! them `elasticsearch.<key>` and the environment spells them
//! `SPANWAY_ELASTICSEARCH__<KEY>`. Secret values are [`Secret`]s, printed
//! as `<redacted>` by `Debug` and so by `check-config`.

use std::path::PathBuf;

use base64::Engine as _;
use elasticsearch::http::Url;
use serde::Deserialize;
use spanway_service_kit::config::ConfigError;
use spanway_service_kit::secret::Secret;
use spanway_service_kit::section::ClientKeys;

/// Where the engine is when neither `url` nor `urls` is set.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9200";

pub(crate) const URL: &str = "elasticsearch.url";
pub(crate) const URLS: &str = "elasticsearch.urls";
pub(crate) const USERNAME: &str = "elasticsearch.username";
pub(crate) const PASSWORD: &str = "elasticsearch.password";
pub(crate) const PASSWORD_FILE: &str = "elasticsearch.password_file";
pub(crate) const API_KEY: &str = "elasticsearch.api_key";
pub(crate) const API_KEY_FILE: &str = "elasticsearch.api_key_file";
pub(crate) const BEARER_TOKEN_FILE: &str = "elasticsearch.bearer_token_file";
pub(crate) const CA_FILE: &str = "elasticsearch.tls.ca_file";
pub(crate) const CERT_FILE: &str = "elasticsearch.tls.cert_file";
pub(crate) const KEY_FILE: &str = "elasticsearch.tls.key_file";
pub(crate) const INSECURE_SKIP_VERIFY: &str = "elasticsearch.tls.insecure_skip_verify";
pub(crate) const COMPRESSION_LEVEL: &str = "elasticsearch.compression_level";

/// The gzip level when `compression = "gzip"` and no level is set: the
/// fastest. Bulk bodies of span documents shrink about tenfold at it,
/// for a fraction of the CPU the default level 6 takes (see
/// `docs/benchmarks.md`).
pub const DEFAULT_GZIP_LEVEL: u32 = 1;

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
    /// Compression of bulk request bodies, where nearly all the bytes
    /// sent to the engine are.
    pub compression: Compression,
    /// With `compression = "gzip"`: the level, 1 (fastest, the default)
    /// to 9 (smallest).
    pub compression_level: Option<u32>,
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
    /// Bulk bodies are gzipped (`Content-Encoding: gzip`): JSON documents
    /// shrink about tenfold, for some CPU, which pays when the network to
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
        "compression_level",
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
        self.validate_tls(&urls)?;
        self.validate_compression()
    }

    /// The gzip level bulk bodies are compressed at; `None` when they go
    /// as they are.
    pub fn gzip_level(&self) -> Option<u32> {
        match self.compression {
            Compression::None => None,
            Compression::Gzip => Some(self.compression_level.unwrap_or(DEFAULT_GZIP_LEVEL)),
        }
    }

    fn validate_compression(&self) -> Result<(), ConfigError> {
        match (self.compression, self.compression_level) {
            (Compression::None, Some(_)) => Err(ConfigError::invalid(
                COMPRESSION_LEVEL,
                "has no effect without elasticsearch.compression = \"gzip\"",
            )),
            (Compression::Gzip, Some(level)) if !(1..=9).contains(&level) => {
                Err(ConfigError::invalid(
                    COMPRESSION_LEVEL,
                    format!("{level} is not a gzip level: 1 (fastest) to 9 (smallest)"),
                ))
            }
            _ => Ok(()),
        }
    }

    /// The URLs requests go to, in order.
    pub(crate) fn parsed_urls(&self) -> Result<Vec<Url>, ConfigError> {
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
        crate::client::check_files(self)
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
pub(crate) fn check_api_key(key: &'static str, value: &Secret) -> Result<(), ConfigError> {
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
pub(crate) fn check_token(key: &'static str, value: &Secret) -> Result<(), ConfigError> {
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
    fn the_gzip_level_needs_gzip_and_a_level_from_1_to_9() {
        let mut config = EngineClientConfig::default();
        assert_eq!(config.gzip_level(), None);
        config.compression_level = Some(5);
        fails_on(&config, "elasticsearch.compression_level");
        config.compression = Compression::Gzip;
        config.validate().unwrap();
        assert_eq!(config.gzip_level(), Some(5));
        config.compression_level = None;
        assert_eq!(config.gzip_level(), Some(DEFAULT_GZIP_LEVEL));
        for bad in [0, 10] {
            config.compression_level = Some(bad);
            let error = fails_on(&config, "elasticsearch.compression_level");
            assert!(error.contains(&bad.to_string()), "{error}");
        }
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
}
