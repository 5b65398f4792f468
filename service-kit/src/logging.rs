//! Structured logs through `tracing`.

use serde::Deserialize;
use tracing_subscriber::EnvFilter;

/// The `[log]` section every process shares.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Default level filter (`RUST_LOG` overrides it).
    pub level: String,
    /// JSON lines instead of text.
    pub json: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            json: false,
        }
    }
}

/// Installs the global subscriber: JSON lines when `json` is set (for log
/// collectors), human-readable text otherwise. `RUST_LOG` overrides `level`.
pub fn init(level: &str, json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true);
    // A second call (tests that start several services) keeps the first subscriber.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
