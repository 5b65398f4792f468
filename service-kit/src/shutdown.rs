//! Turns SIGTERM and SIGINT into a cancellation every task can watch.

use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first SIGTERM or SIGINT. A second signal is left
/// to the default handler, so an operator can still force an exit.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received; draining");
        token.cancel();
    });
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the process");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A shutdown token as a polling loop that turns once per record looks at
/// it: each look at the token takes a lock, which per record was a cost
/// the loop could measure, so this looks no more often than every
/// [`ShutdownCheck::EVERY`], on the clock reading the loop takes anyway.
#[derive(Debug)]
pub struct ShutdownCheck {
    token: CancellationToken,
    looked: Option<std::time::Instant>,
    seen: bool,
}

impl ShutdownCheck {
    /// The longest a cancellation waits unseen, beyond the loop's own turn.
    pub const EVERY: std::time::Duration = std::time::Duration::from_millis(10);

    /// Watches `token`; the first call to [`ShutdownCheck::cancelled_at`]
    /// looks at it.
    pub fn new(token: CancellationToken) -> Self {
        ShutdownCheck {
            token,
            looked: None,
            seen: false,
        }
    }

    /// Whether the token was cancelled, looked at if the last look was
    /// [`ShutdownCheck::EVERY`] before `now` or longer. Once seen, a
    /// cancellation stays seen.
    pub fn cancelled_at(&mut self, now: std::time::Instant) -> bool {
        let recent = self
            .looked
            .is_some_and(|t| now.saturating_duration_since(t) < Self::EVERY);
        if !self.seen && !recent {
            self.looked = Some(now);
            self.seen = self.token.is_cancelled();
        }
        self.seen
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn a_cancellation_is_seen_within_the_interval() {
        let token = CancellationToken::new();
        let mut check = ShutdownCheck::new(token.clone());
        let start = Instant::now();
        assert!(!check.cancelled_at(start));
        token.cancel();
        assert!(
            !check.cancelled_at(start + Duration::from_millis(9)),
            "not looked at again so soon"
        );
        assert!(check.cancelled_at(start + ShutdownCheck::EVERY));
        assert!(
            check.cancelled_at(start + ShutdownCheck::EVERY),
            "and stays seen"
        );
    }

    #[test]
    fn the_first_look_sees_an_earlier_cancellation() {
        let token = CancellationToken::new();
        token.cancel();
        assert!(ShutdownCheck::new(token).cancelled_at(Instant::now()));
    }
}
