//! How every binary starts and stops, in one place: the exit status and the
//! one-line error an operator sees, the `check-config` output, and a run
//! (logging, the async runtime, SIGTERM/SIGINT into a cancellation token
//! the service drains on). Each `main.rs` keeps only its command line and
//! what its own subcommands do.
//!
//! This is the binaries' edge, so errors are `anyhow` here, as in `main`.

use std::fmt::Debug;
use std::future::Future;
use std::process::ExitCode;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::logging::{self, LogConfig};
use crate::open_files;
use crate::runtime::RuntimeConfig;
use crate::shutdown;

/// The process's exit status: success, or failure with the whole cause
/// chain on one line (`{:#}`), without a backtrace, on stderr.
pub fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// What `check-config` prints once the configuration and the files it
/// names have been checked.
pub fn print_valid<C: Debug>(config: &C) {
    println!("configuration is valid:\n{config:#?}");
}

/// A multi-threaded runtime sized by the `[runtime]` section, or an error
/// saying it could not start.
pub fn runtime(config: &RuntimeConfig) -> anyhow::Result<tokio::runtime::Runtime> {
    let worker_threads = config.worker_threads();
    tracing::info!(worker_threads, "starting the async runtime");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Runs a service: logging as configured, then `service` on a new runtime
/// sized by `runtime`, with a token that SIGTERM or SIGINT cancels, until
/// it returns.
pub fn serve<F, Fut>(log: &LogConfig, runtime: &RuntimeConfig, service: F) -> anyhow::Result<()>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    logging::init(&log.level, log.json);
    open_files::raise_and_log();
    self::runtime(runtime)?.block_on(async {
        let token = CancellationToken::new();
        shutdown::cancel_on_signal(token.clone());
        service(token).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_fails_the_process_and_success_does_not() {
        assert_eq!(exit_code(Ok(())), ExitCode::SUCCESS);
        let failed = Err(anyhow::anyhow!("kafka.brokers: must not be empty"));
        assert_eq!(exit_code(failed), ExitCode::FAILURE);
    }

    #[test]
    fn a_service_gets_a_live_token_and_its_result_is_returned() {
        let log = LogConfig::default();
        let result = serve(&log, &RuntimeConfig::default(), |token| async move {
            anyhow::ensure!(!token.is_cancelled(), "cancelled before start");
            Err(anyhow::anyhow!("stopped"))
        });
        assert_eq!(result.unwrap_err().to_string(), "stopped");
    }
}
