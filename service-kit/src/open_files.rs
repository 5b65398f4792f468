//! The open-file limit, raised at start to what the system allows.
//!
//! Every client connection, Kafka broker connection and search-engine
//! connection is a file descriptor. Container runtimes commonly start
//! processes with a soft limit of 1,024 and a far higher hard limit (the
//! soft one is kept low for old programs that use `select`). Go programs,
//! Jaeger v2 and the OpenTelemetry Collector among them, raise the soft
//! limit to the hard one when they start; without the same, a collector
//! would refuse connections past about a thousand clients while the
//! system would allow many more. Nothing here uses `select`.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Used when the hard limit is unlimited: Linux's default ceiling for
/// open files (`fs.nr_open`), which a higher value would exceed.
const CEILING_WHEN_UNLIMITED: u64 = 1 << 20;

/// What [`raise`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The soft limit already was as high as allowed (`None`: unlimited).
    Unchanged(Option<u64>),
    /// Raised from the first value to the second.
    Raised(u64, u64),
    /// The system refused; the limit stays at the first value.
    Refused(u64, rustix::io::Errno),
}

/// Raises the soft limit on open files to the hard limit.
pub fn raise() -> Outcome {
    let limit = getrlimit(Resource::Nofile);
    let Some(current) = limit.current else {
        return Outcome::Unchanged(None);
    };
    let target = limit.maximum.unwrap_or(CEILING_WHEN_UNLIMITED);
    if current >= target {
        return Outcome::Unchanged(Some(current));
    }
    let raised = Rlimit {
        current: Some(target),
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => Outcome::Raised(current, target),
        Err(error) => Outcome::Refused(current, error),
    }
}

/// [`raise`], logged: the limit at info, a refusal as a warning.
pub fn raise_and_log() {
    match raise() {
        Outcome::Unchanged(Some(limit)) => tracing::info!(limit, "open files limit"),
        Outcome::Unchanged(None) => tracing::info!("open files limit: unlimited"),
        Outcome::Raised(from, to) => tracing::info!(from, to, "open files limit raised"),
        Outcome::Refused(limit, error) => {
            tracing::warn!(limit, %error, "cannot raise the open files limit; connections past it will be refused")
        }
    }
}
