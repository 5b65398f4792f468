//! Authentication of the span receivers, bearer tokens and HTTP Basic:
//! the `[auth]` section, what a request presents, the decision on it, and
//! the credentials in force.
//!
//! The token and htpasswd files are re-read when they change; a version
//! that does not parse is refused and the previous one stays in force, so a
//! bad edit never locks every client out or lets a revoked one back in.
//! The layer that applies the decision to requests is
//! [`crate::receiver::auth_layer`].

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;
use serde::Deserialize;
use spanway_service_kit::config::ConfigError;
use spanway_service_kit::secret::Secret;
use tokio::sync::Semaphore;

use crate::receiver::htpasswd::Htpasswd;
use crate::receiver::reload::{FileError, Look, Outcome, Reload, WatchedFiles};
pub use crate::receiver::tokens::{Tokens, TokensError};

/// The `[auth]` section: credentials the span receivers ask for.
/// Authentication is on when at least one file is set.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Bearer tokens, one per line; blank lines and lines starting with `#`
    /// are skipped. Clients send `Authorization: Bearer <token>`.
    pub bearer_tokens_file: Option<PathBuf>,
    /// An Apache htpasswd file for HTTP Basic authentication (bcrypt,
    /// `$apr1$`, `$1$` or `{SHA}` hashes).
    pub htpasswd_file: Option<PathBuf>,
    /// The realm named in `WWW-Authenticate` challenges.
    pub realm: String,
    /// How often the files are looked at for changes. Short, because
    /// revoking a leaked token should not wait: the files are small.
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            bearer_tokens_file: None,
            htpasswd_file: None,
            realm: "spanway".into(),
            reload_interval: Duration::from_secs(5),
        }
    }
}

impl AuthConfig {
    /// Whether any credentials are configured.
    pub fn is_enabled(&self) -> bool {
        self.bearer_tokens_file.is_some() || self.htpasswd_file.is_some()
    }

    /// Checks the section without reading the files.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let files = [
            ("auth.bearer_tokens_file", &self.bearer_tokens_file),
            ("auth.htpasswd_file", &self.htpasswd_file),
        ];
        for (key, path) in files {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                return Err(ConfigError::invalid(
                    key,
                    "must not be empty; leave the key out instead",
                ));
            }
        }
        let realm_ok = !self.realm.is_empty()
            && self
                .realm
                .chars()
                .all(|c| c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\');
        if !realm_ok {
            return Err(ConfigError::invalid(
                "auth.realm",
                format!(
                    "{:?} must be non-empty printable ASCII without quotes or backslashes",
                    self.realm
                ),
            ));
        }
        if self.reload_interval < Duration::from_millis(100) {
            return Err(ConfigError::invalid(
                "auth.reload_interval",
                "must be at least 100ms",
            ));
        }
        Ok(())
    }
}

/// What a request presents in its `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented {
    /// No header.
    Missing,
    /// A header that is not a well-formed `Bearer` or `Basic` credential.
    Malformed,
    /// `Bearer <token>`.
    Bearer(Secret),
    /// `Basic base64(user:password)`.
    Basic { user: String, password: Secret },
}

impl Presented {
    /// Reads the credentials of a request. Scheme names are
    /// case-insensitive (RFC 9110, 11.1).
    pub fn from_headers(headers: &HeaderMap) -> Presented {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return if headers.contains_key(header::AUTHORIZATION) {
                Presented::Malformed
            } else {
                Presented::Missing
            };
        };
        let Ok(value) = value.to_str() else {
            return Presented::Malformed;
        };
        let Some((scheme, rest)) = value.trim().split_once(' ') else {
            return Presented::Malformed;
        };
        let credential = rest.trim();
        if credential.is_empty() {
            return Presented::Malformed;
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            return Presented::Bearer(Secret::new(credential));
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Presented::Malformed;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credential)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        match decoded.as_deref().and_then(|d| d.split_once(':')) {
            Some((user, password)) => Presented::Basic {
                user: user.to_owned(),
                password: Secret::new(password),
            },
            None => Presented::Malformed,
        }
    }
}

/// Why a request was refused; also its metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No credentials.
    Missing,
    /// An `Authorization` header that could not be read.
    Malformed,
    /// Credentials that are not accepted: an unknown token, a wrong
    /// password, or a scheme not configured.
    Invalid,
}

impl Refusal {
    /// The fixed metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Malformed => "malformed",
            Refusal::Invalid => "invalid",
        }
    }

    /// What the refusal answer says.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Refusal::Missing => "credentials required",
            Refusal::Malformed => "malformed Authorization header",
            Refusal::Invalid => "invalid credentials",
        }
    }
}

/// The decision on `presented`, against the tokens and users configured
/// (`None` for a scheme that is not). Runs bcrypt for Basic credentials
/// that have not passed before: see [`Htpasswd::is_quick`].
pub fn decide(
    tokens: Option<&Tokens>,
    users: Option<&Htpasswd>,
    presented: &Presented,
) -> Result<(), Refusal> {
    let accepted = match presented {
        Presented::Missing => return Err(Refusal::Missing),
        Presented::Malformed => return Err(Refusal::Malformed),
        Presented::Bearer(token) => tokens.is_some_and(|t| t.accepts(token.expose())),
        Presented::Basic { user, password } => {
            users.is_some_and(|u| u.verify(user, password.expose()))
        }
    };
    if accepted {
        Ok(())
    } else {
        Err(Refusal::Invalid)
    }
}

/// The version of a file in force, swapped whole when the file changes.
type Slot<T> = Arc<RwLock<Arc<T>>>;

/// The credentials in force, shared by every receiver and the reloaders.
#[derive(Debug)]
pub struct Credentials {
    tokens: Option<Slot<Tokens>>,
    users: Option<Slot<Htpasswd>>,
    /// The `WWW-Authenticate` values, one per configured scheme.
    pub(crate) challenges: Vec<HeaderValue>,
    /// Bounds the bcrypt checks running at once to the number of cores, so
    /// a flood of wrong passwords cannot take the blocking pool that
    /// decoding needs.
    slow_checks: Arc<Semaphore>,
}

/// Credentials read at start, with the reloaders that keep them current.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) credentials: Arc<Credentials>,
    pub(crate) reloaders: Vec<FileReloader>,
}

impl Credentials {
    /// Reads the files of `config` (which must have passed
    /// [`AuthConfig::validate`]); `None` when authentication is off.
    pub(crate) fn load(config: &AuthConfig) -> Result<Option<Loaded>, FileError> {
        if !config.is_enabled() {
            return Ok(None);
        }
        let mut reloaders = Vec::new();
        let mut challenges = Vec::new();
        let realm = &config.realm;
        let tokens = match &config.bearer_tokens_file {
            None => None,
            Some(path) => {
                let (slot, reloader) =
                    FileReloader::open("auth.bearer_tokens_file", path, |text| {
                        Tokens::parse(text).map_err(|e| e.to_string())
                    })?;
                reloaders.push(reloader);
                challenges.push(challenge(&format!("Bearer realm=\"{realm}\"")));
                Some(slot)
            }
        };
        let users = match &config.htpasswd_file {
            None => None,
            Some(path) => {
                let (slot, reloader) = FileReloader::open("auth.htpasswd_file", path, |text| {
                    Htpasswd::parse(text).map_err(|e| e.to_string())
                })?;
                reloaders.push(reloader);
                challenges.push(challenge(&format!(
                    "Basic realm=\"{realm}\", charset=\"UTF-8\""
                )));
                Some(slot)
            }
        };
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let credentials = Credentials {
            tokens,
            users,
            challenges,
            slow_checks: Arc::new(Semaphore::new(cores)),
        };
        Ok(Some(Loaded {
            credentials: Arc::new(credentials),
            reloaders,
        }))
    }

    fn snapshot(&self) -> (Option<Arc<Tokens>>, Option<Arc<Htpasswd>>) {
        (
            self.tokens.as_deref().map(current),
            self.users.as_deref().map(current),
        )
    }

    /// The decision on a request's credentials, off the async workers when
    /// it takes a bcrypt check.
    pub(crate) async fn check(self: Arc<Self>, presented: Presented) -> Result<(), Refusal> {
        let (tokens, users) = self.snapshot();
        let quick = match (&presented, &users) {
            (Presented::Basic { user, password }, Some(users)) => {
                users.is_quick(user, password.expose())
            }
            _ => true,
        };
        if quick {
            return decide(tokens.as_deref(), users.as_deref(), &presented);
        }
        let Ok(_permit) = self.slow_checks.clone().acquire_owned().await else {
            return Err(Refusal::Invalid);
        };
        tokio::task::spawn_blocking(move || decide(tokens.as_deref(), users.as_deref(), &presented))
            .await
            .unwrap_or(Err(Refusal::Invalid))
    }
}

fn current<T>(slot: &RwLock<Arc<T>>) -> Arc<T> {
    slot.read().unwrap_or_else(PoisonError::into_inner).clone()
}

/// A realm has passed [`AuthConfig::validate`], so this never fails; an
/// empty challenge would still be a valid (if unhelpful) header.
fn challenge(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("Basic"))
}

/// Re-reads one credentials file and swaps in what it parses to.
pub(crate) struct FileReloader {
    key: &'static str,
    files: WatchedFiles,
    apply: Apply,
}

/// Parses a new version of the file and puts it in force.
type Apply = Box<dyn Fn(&str) -> Result<(), String> + Send>;

impl std::fmt::Debug for FileReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReloader")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl FileReloader {
    /// Reads and parses the file of `key` now.
    fn open<T: Send + Sync + 'static>(
        key: &'static str,
        path: &std::path::Path,
        parse: fn(&str) -> Result<T, String>,
    ) -> Result<(Slot<T>, FileReloader), FileError> {
        let (files, contents) = WatchedFiles::open(vec![(key, path.to_path_buf())])?;
        let first = parse_text(&contents[0], parse).map_err(|r| FileError::new(key, path, r))?;
        let slot = Arc::new(RwLock::new(Arc::new(first)));
        let target = slot.clone();
        let apply = Box::new(move |text: &str| {
            let parsed = parse(text)?;
            *target.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(parsed);
            Ok(())
        });
        Ok((slot, FileReloader { key, files, apply }))
    }
}

fn parse_text<T>(bytes: &[u8], parse: fn(&str) -> Result<T, String>) -> Result<T, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())?;
    parse(text)
}

impl Reload for FileReloader {
    fn key(&self) -> &'static str {
        self.key
    }

    fn check(&mut self) -> Outcome {
        let contents = match self.files.look() {
            Look::Unchanged | Look::StillUnreadable => return Outcome::Unchanged,
            Look::Unreadable(error) => return Outcome::Refused(error),
            Look::Changed(contents) => contents,
        };
        let path = &self.files.files()[0].1;
        let applied = std::str::from_utf8(&contents[0])
            .map_err(|_| "not UTF-8 text".to_owned())
            .and_then(|text| (self.apply)(text));
        match applied {
            Ok(()) => Outcome::Reloaded,
            Err(reason) => Outcome::Refused(FileError::new(self.key, path, reason)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for value in authorization {
            h.append(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        h
    }

    fn basic(user_password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_password)
        )
    }

    #[test]
    fn authorization_header_is_read_as_rfc_9110_says() {
        assert_eq!(Presented::from_headers(&headers(&[])), Presented::Missing);
        assert_eq!(
            Presented::from_headers(&headers(&["bearer  abc "])),
            Presented::Bearer(Secret::new("abc"))
        );
        assert_eq!(
            Presented::from_headers(&headers(&[&basic("u:p:q")])),
            Presented::Basic {
                user: "u".into(),
                password: Secret::new("p:q")
            }
        );
        for bad in [
            vec!["Bearer"],
            vec!["Bearer "],
            vec!["Token abc"],
            vec!["Basic !!!"],
            vec![basic("no-colon").as_str()],
            vec!["Bearer a", "Bearer b"],
        ] {
            assert_eq!(
                Presented::from_headers(&headers(&bad)),
                Presented::Malformed,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn decisions() {
        let tokens = Tokens::parse("good\n").unwrap();
        let users = Htpasswd::parse("ann:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\n").unwrap();
        let bearer = |t: &str| Presented::Bearer(Secret::new(t));
        let basic = |u: &str, p: &str| Presented::Basic {
            user: u.into(),
            password: Secret::new(p),
        };
        let both = (Some(&tokens), Some(&users));
        assert_eq!(decide(both.0, both.1, &bearer("good")), Ok(()));
        assert_eq!(decide(both.0, both.1, &basic("ann", "pw")), Ok(()));
        assert_eq!(
            decide(both.0, both.1, &bearer("bad")),
            Err(Refusal::Invalid)
        );
        assert_eq!(
            decide(both.0, both.1, &basic("ann", "px")),
            Err(Refusal::Invalid)
        );
        assert_eq!(
            decide(both.0, both.1, &Presented::Missing),
            Err(Refusal::Missing)
        );
        assert_eq!(
            decide(both.0, both.1, &Presented::Malformed),
            Err(Refusal::Malformed)
        );
        // A scheme that is not configured is refused, whatever it carries.
        assert_eq!(
            decide(Some(&tokens), None, &basic("ann", "pw")),
            Err(Refusal::Invalid)
        );
        assert_eq!(
            decide(None, Some(&users), &bearer("good")),
            Err(Refusal::Invalid)
        );
    }

    #[test]
    fn config_rules_name_the_key() {
        AuthConfig::default().validate().unwrap();
        assert!(!AuthConfig::default().is_enabled());
        let mut config = AuthConfig {
            realm: "a \"b\"".into(),
            ..AuthConfig::default()
        };
        let err = config.validate().unwrap_err();
        assert!(err.to_string().contains("auth.realm"), "{err}");
        config.realm = "ok".into();
        config.htpasswd_file = Some(PathBuf::new());
        let err = config.validate().unwrap_err();
        assert!(err.to_string().contains("auth.htpasswd_file"), "{err}");
        config.htpasswd_file = None;
        config.reload_interval = Duration::from_millis(1);
        let err = config.validate().unwrap_err();
        assert!(err.to_string().contains("auth.reload_interval"), "{err}");
    }

    #[test]
    fn files_are_checked_at_load_and_a_bad_change_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::write(&tokens, "first\n").unwrap();
        let config = AuthConfig {
            bearer_tokens_file: Some(tokens.clone()),
            ..AuthConfig::default()
        };
        let Loaded {
            credentials,
            mut reloaders,
        } = Credentials::load(&config).unwrap().unwrap();
        let accepts = |t: &str| credentials.snapshot().0.unwrap().accepts(t);
        assert!(accepts("first"));
        assert_eq!(credentials.challenges, vec!["Bearer realm=\"spanway\""]);

        std::fs::write(&tokens, "# emptied by mistake\n").unwrap();
        match reloaders[0].check() {
            Outcome::Refused(error) => {
                assert_eq!(error.key, "auth.bearer_tokens_file");
                assert!(error.reason.contains("no token"), "{error}");
            }
            other => panic!("{other:?}"),
        }
        assert!(accepts("first"), "the previous tokens stay in force");
        std::fs::write(&tokens, "second\n").unwrap();
        assert!(matches!(reloaders[0].check(), Outcome::Reloaded));
        assert!(accepts("second"));
        assert!(!accepts("first"));

        let users = dir.path().join("htpasswd");
        std::fs::write(&users, "alice:plain\n").unwrap();
        let config = AuthConfig {
            htpasswd_file: Some(users),
            ..AuthConfig::default()
        };
        let err = Credentials::load(&config).unwrap_err();
        assert_eq!(err.key, "auth.htpasswd_file");
        assert!(err.reason.contains("alice"), "{err}");
    }
}
