//! Re-reading the files that receiver TLS and authentication come from, so
//! that a rotated certificate, token or password file takes effect without
//! a restart.
//!
//! The content decides whether a file changed, not its modification time:
//! the files are a few kilobytes, a copy that keeps the mtime (`cp -p`, an
//! image layer) still counts, and a Kubernetes Secret update (a symlink
//! swap) is seen like any other write. What was last examined is kept as a
//! digest, so a tokens file is not held in memory once parsed.
//!
//! A change is taken into use only once it loads as a whole; until then the
//! previous version stays in force. A refused version, and a file that can
//! no longer be read, are logged and counted once, not at every interval.

use std::path::{Path, PathBuf};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use ring::digest::{Context, SHA256};
use tokio_util::sync::CancellationToken;

/// A file named by a configuration key that could not be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{key} {path}: {reason}")]
pub struct FileError {
    /// The key that names the file, such as `otlp_grpc.tls.cert_file`.
    pub key: &'static str,
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it; never its content.
    pub reason: String,
}

impl FileError {
    /// An error about the file of `key` at `path`.
    pub fn new(key: &'static str, path: &Path, reason: impl Into<String>) -> Self {
        FileError {
            key,
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// Labels of the reload counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabel {
    /// What was reloaded, as its configuration key: `otlp_grpc.tls`,
    /// `auth.bearer_tokens_file`, … A fixed set.
    pub key: &'static str,
}

spanway_service_kit::metric_set! {
    /// Counters of file reloads.
    pub struct ReloadMetrics {
        /// Changed files taken into use.
        reloads: Family<ReloadLabel, Counter> => "security_file_reloads",
            "Changed certificate, token or htpasswd files taken into use";
        /// Changed files refused, or files that could no longer be read; the
        /// previous version stayed in force.
        failures: Family<ReloadLabel, Counter> => "security_file_reload_failures",
            "Changed certificate, token or htpasswd files refused; the previous version stays in force";
    }
}

/// A set of files read together, with what was last read from them.
#[derive(Debug)]
pub(crate) struct WatchedFiles {
    files: Vec<(&'static str, PathBuf)>,
    digest: [u8; 32],
    read_failing: bool,
}

/// What a look at the files found.
#[derive(Debug)]
pub(crate) enum Look {
    /// The same content as last time.
    Unchanged,
    /// New content, one entry per file in the order given.
    Changed(Vec<Vec<u8>>),
    /// A file could not be read; reported once until reads succeed again.
    Unreadable(FileError),
    /// Still unreadable, as already reported.
    StillUnreadable,
}

impl WatchedFiles {
    /// Reads every file now. `files` pairs each path with the key that
    /// names it in errors.
    pub(crate) fn open(
        files: Vec<(&'static str, PathBuf)>,
    ) -> Result<(WatchedFiles, Vec<Vec<u8>>), FileError> {
        let contents = read_all(&files)?;
        let digest = digest(&contents);
        let watched = WatchedFiles {
            files,
            digest,
            read_failing: false,
        };
        Ok((watched, contents))
    }

    /// The files, with the keys that name them.
    pub(crate) fn files(&self) -> &[(&'static str, PathBuf)] {
        &self.files
    }

    /// Reads the files again and compares them with the last read. New
    /// content becomes the reference whether or not the caller can use it,
    /// so that a bad version is reported once.
    pub(crate) fn look(&mut self) -> Look {
        let contents = match read_all(&self.files) {
            Ok(contents) => contents,
            Err(_) if self.read_failing => return Look::StillUnreadable,
            Err(error) => {
                self.read_failing = true;
                return Look::Unreadable(error);
            }
        };
        self.read_failing = false;
        let digest = digest(&contents);
        if digest == self.digest {
            return Look::Unchanged;
        }
        self.digest = digest;
        Look::Changed(contents)
    }
}

fn read_all(files: &[(&'static str, PathBuf)]) -> Result<Vec<Vec<u8>>, FileError> {
    files
        .iter()
        .map(|(key, path)| {
            std::fs::read(path).map_err(|e| FileError::new(key, path, format!("cannot read: {e}")))
        })
        .collect()
}

/// SHA-256 over every file, each prefixed by its length so that content
/// moving from one file to the next still counts as a change.
fn digest(contents: &[Vec<u8>]) -> [u8; 32] {
    let mut context = Context::new(&SHA256);
    for content in contents {
        context.update(&(content.len() as u64).to_be_bytes());
        context.update(content);
    }
    let mut out = [0; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

/// Something that re-reads its files when asked.
pub(crate) trait Reload: Send + 'static {
    /// The configuration key of what is reloaded, for logs and metrics.
    fn key(&self) -> &'static str;

    /// Looks at the files and takes a changed version into use if it loads.
    /// Blocking: called on the blocking pool.
    fn check(&mut self) -> Outcome;
}

/// What one [`Reload::check`] did.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Nothing changed, or a failure already reported.
    Unchanged,
    /// A new version is in force.
    Reloaded,
    /// A change could not be used; the previous version stays in force.
    Refused(FileError),
}

/// Checks `reloader` every `interval` until `shutdown`.
pub(crate) fn spawn<R: Reload>(
    mut reloader: R,
    interval: Duration,
    metrics: ReloadMetrics,
    shutdown: CancellationToken,
) {
    let key = reloader.key();
    let label = ReloadLabel { key };
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await; // immediate; the files were just read
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let checked = tokio::task::spawn_blocking(move || {
                let outcome = reloader.check();
                (reloader, outcome)
            })
            .await;
            let outcome;
            (reloader, outcome) = match checked {
                Ok(checked) => checked,
                Err(error) => {
                    tracing::error!(key, %error, "reloader failed; reloading stops");
                    return;
                }
            };
            match outcome {
                Outcome::Unchanged => {}
                Outcome::Reloaded => {
                    metrics.reloads.get_or_create(&label).inc();
                    tracing::info!(key, "changed files taken into use");
                }
                Outcome::Refused(error) => {
                    metrics.failures.get_or_create(&label).inc();
                    tracing::error!(key, %error, "changed files refused; the previous version stays in force");
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_decides_and_failures_are_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, "one").unwrap();
        std::fs::write(&b, "two").unwrap();
        let (mut watched, contents) =
            WatchedFiles::open(vec![("x.a", a.clone()), ("x.b", b.clone())]).unwrap();
        assert_eq!(contents, vec![b"one".to_vec(), b"two".to_vec()]);
        assert!(matches!(watched.look(), Look::Unchanged));

        // Content moving between files is a change.
        std::fs::write(&a, "onet").unwrap();
        std::fs::write(&b, "wo").unwrap();
        assert!(matches!(watched.look(), Look::Changed(c) if c[0] == b"onet"));
        assert!(matches!(watched.look(), Look::Unchanged));

        std::fs::remove_file(&b).unwrap();
        match watched.look() {
            Look::Unreadable(error) => {
                assert_eq!(error.key, "x.b");
                assert!(error.to_string().starts_with("x.b "), "{error}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(watched.look(), Look::StillUnreadable));
        std::fs::write(&b, "wo").unwrap();
        assert!(matches!(watched.look(), Look::Unchanged), "back as it was");
    }

    #[test]
    fn open_names_the_key_of_a_missing_file() {
        let err =
            WatchedFiles::open(vec![("auth.htpasswd_file", "/nonexistent/h".into())]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("auth.htpasswd_file /nonexistent/h: cannot read"),
            "{err}"
        );
    }
}
