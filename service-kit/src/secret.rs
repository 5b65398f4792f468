//! Secrets in configuration: passwords, tokens, API keys, key passphrases.
//!
//! Two guarantees. A secret's value never reaches a log line, a `Debug`
//! print or `check-config` output: [`Secret`] prints as `<redacted>`
//! whatever holds it. And a secret kept in a file (a mounted Kubernetes
//! Secret, say) is re-read when the file changes, so a rotated password or
//! token is picked up without a restart: [`SecretSource`] is what a client
//! asks for the current value each time it needs one.
//!
//! Every secret setting comes as a pair, `x` and `x_file`; at most one may
//! be set, which [`SecretSource::from_pair`] checks and names.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Deserializer};

use crate::config::ConfigError;

/// A secret value. Its `Debug` and `Display` print `<redacted>`; the value
/// is reachable only through [`Secret::expose`], whose name shows at every
/// place that needs the real thing.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one call that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Accepts a string, or a number or boolean: an environment variable such
/// as `SPANWAY_KAFKA__SASL__PASSWORD=123456` arrives parsed as a number.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret::new(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Secret, E> {
                Ok(Secret::new(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Secret, E> {
                Ok(Secret::new(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Secret, E> {
                Ok(Secret::new(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Secret, E> {
                Ok(Secret::new(v.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A secret file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("configuration key {key}: cannot read {path}: {source}")]
pub struct SecretFileError {
    /// The `*_file` key that names the file.
    pub key: &'static str,
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

#[derive(Debug)]
struct FileState {
    value: Secret,
    modified: Option<SystemTime>,
}

#[derive(Debug)]
enum Source {
    Inline(Secret),
    File {
        key: &'static str,
        path: PathBuf,
        state: RwLock<FileState>,
    },
}

/// Where a secret comes from: the configuration (or environment) once, or a
/// file re-read when it changes. Cheap to clone; clones share the file state.
#[derive(Debug, Clone)]
pub struct SecretSource(Arc<Source>);

impl SecretSource {
    /// A fixed value.
    pub fn inline(value: Secret) -> Self {
        SecretSource(Arc::new(Source::Inline(value)))
    }

    /// A file, read now. `key` names the setting in errors.
    pub fn file(key: &'static str, path: &Path) -> Result<Self, SecretFileError> {
        let (value, modified) = read_file(key, path)?;
        Ok(SecretSource(Arc::new(Source::File {
            key,
            path: path.to_path_buf(),
            state: RwLock::new(FileState { value, modified }),
        })))
    }

    /// The source for a `x` / `x_file` pair of settings: `None` when neither
    /// is set, an error naming `file_key` when both are or the file cannot
    /// be read.
    pub fn from_pair(
        value_key: &'static str,
        value: Option<&Secret>,
        file_key: &'static str,
        file: Option<&Path>,
    ) -> Result<Option<Self>, ConfigError> {
        match (value, file) {
            (None, None) => Ok(None),
            (Some(_), Some(_)) => Err(ConfigError::invalid(
                file_key,
                format!("set either {value_key} or {file_key}, not both"),
            )),
            (Some(value), None) => Ok(Some(SecretSource::inline(value.clone()))),
            (None, Some(path)) => SecretSource::file(file_key, path)
                .map(Some)
                .map_err(|e| ConfigError::invalid(file_key, e.source.to_string())),
        }
    }

    /// The value as last read.
    pub fn current(&self) -> Secret {
        match &*self.0 {
            Source::Inline(value) => value.clone(),
            Source::File { state, .. } => state
                .read()
                .map(|s| s.value.clone())
                .unwrap_or_else(|poisoned| poisoned.into_inner().value.clone()),
        }
    }

    /// The setting that names the file, if the secret comes from one.
    pub fn file_key(&self) -> Option<&'static str> {
        match &*self.0 {
            Source::Inline(_) => None,
            Source::File { key, .. } => Some(key),
        }
    }

    /// Re-reads the file when its modification time changed. Returns true
    /// when the value changed. An unreadable file keeps the last value (a
    /// Kubernetes Secret update swaps a symlink, and a read can fall between
    /// the two steps) and returns the error for the caller to log.
    pub fn refresh(&self) -> Result<bool, SecretFileError> {
        let Source::File { key, path, state } = &*self.0 else {
            return Ok(false);
        };
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let unchanged = state
            .read()
            .map(|s| s.modified.is_some() && s.modified == modified)
            .unwrap_or(false);
        if unchanged {
            return Ok(false);
        }
        let (value, modified) = read_file(key, path)?;
        let mut state = state.write().unwrap_or_else(|p| p.into_inner());
        let changed = state.value != value;
        *state = FileState { value, modified };
        Ok(changed)
    }
}

/// How often secret files are checked for changes, unless a caller says
/// otherwise. Kubernetes propagates a changed Secret to its volume within
/// about a minute, so checking more often than every few seconds buys nothing.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(5);

/// Checks `sources` every `interval` until `token` is cancelled, and calls
/// `on_change` with each source whose value changed. A file that cannot be
/// read is logged (by key and path, never by content) and keeps its last value.
pub fn spawn_refresh<F>(
    sources: Vec<SecretSource>,
    interval: Duration,
    token: tokio_util::sync::CancellationToken,
    on_change: F,
) -> Option<tokio::task::JoinHandle<()>>
where
    F: Fn(&SecretSource) + Send + 'static,
{
    let files: Vec<SecretSource> = sources
        .into_iter()
        .filter(|s| s.file_key().is_some())
        .collect();
    if files.is_empty() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = ticker.tick() => {}
            }
            for source in &files {
                match source.refresh() {
                    Ok(true) => {
                        tracing::info!(
                            key = source.file_key(),
                            "secret file changed; new value in use"
                        );
                        on_change(source);
                    }
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(key = error.key, path = %error.path.display(), error = %error.source, "cannot re-read secret file; keeping the last value")
                    }
                }
            }
        }
    }))
}

/// Reads a secret file; a single trailing newline (as `echo` and most
/// editors write) is not part of the value.
fn read_file(
    key: &'static str,
    path: &Path,
) -> Result<(Secret, Option<SystemTime>), SecretFileError> {
    let error = |source| SecretFileError {
        key,
        path: path.to_path_buf(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(error)?;
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let value = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    Ok((Secret::new(value), modified))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(format!("{secret}"), "<redacted>");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            password: Option<Secret>,
        }
        let printed = format!(
            "{:#?}",
            Holder {
                password: Some(secret.clone())
            }
        );
        assert!(!printed.contains("hunter2"), "{printed}");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn pair_refuses_both_and_names_the_file_key() {
        let err = SecretSource::from_pair(
            "kafka.sasl.password",
            Some(&Secret::new("a")),
            "kafka.sasl.password_file",
            Some(Path::new("/nonexistent")),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("kafka.sasl.password_file"),
            "{err}"
        );
        assert!(
            SecretSource::from_pair("a", None, "a_file", None)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn missing_file_is_an_error_naming_the_key() {
        let err = SecretSource::from_pair(
            "x.password",
            None,
            "x.password_file",
            Some(Path::new("/nonexistent/secret")),
        )
        .unwrap_err();
        assert!(err.to_string().contains("x.password_file"), "{err}");
    }

    #[test]
    fn file_is_reread_when_it_changes_and_kept_when_it_vanishes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password");
        std::fs::write(&path, "first\n").unwrap();
        let source = SecretSource::file("k", &path).unwrap();
        assert_eq!(source.current().expose(), "first");
        assert!(!source.refresh().unwrap());

        // Make sure the modification time moves even on coarse filesystems.
        std::fs::write(&path, "second").unwrap();
        let later = SystemTime::now() + Duration::from_secs(2);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(source.refresh().unwrap());
        assert_eq!(source.current().expose(), "second");

        std::fs::remove_file(&path).unwrap();
        assert!(source.refresh().is_err());
        assert_eq!(source.current().expose(), "second");
    }
}
