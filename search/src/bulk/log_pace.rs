//! How often a batch that keeps failing says so in the log.

use std::time::{Duration, Instant};

/// Time between two lines about the same batch's lasting failure.
pub(crate) const REPEAT_EVERY: Duration = Duration::from_secs(30);

/// Lets a log line through at most once per period.
///
/// Paced by time rather than by tries: one try may be a refused connection
/// (milliseconds) or a request that runs into its timeout (half a minute),
/// so "every twentieth try" meant anything from a few seconds to ten
/// minutes between lines, and an engine that held requests past their
/// timeout was reported twice an hour.
#[derive(Debug)]
pub(crate) struct LogPace {
    every: Duration,
    last: Option<Instant>,
}

impl LogPace {
    /// Due on the first call, then once per `every`.
    pub(crate) fn from_first(every: Duration) -> Self {
        LogPace { every, last: None }
    }

    /// First due `every` after `start`: for conditions that usually clear
    /// by themselves within a few tries.
    pub(crate) fn after(every: Duration, start: Instant) -> Self {
        LogPace {
            every,
            last: Some(start),
        }
    }

    /// Whether a line is due at `now`; if so, the next is due `every` later.
    pub(crate) fn due(&mut self, now: Instant) -> bool {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.every => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_secs(30);

    #[test]
    fn from_first_lets_the_first_line_through_then_one_per_period() {
        let start = Instant::now();
        let mut pace = LogPace::from_first(PERIOD);
        assert!(pace.due(start));
        assert!(!pace.due(start + Duration::from_millis(5)));
        assert!(!pace.due(start + Duration::from_secs(29)));
        assert!(pace.due(start + Duration::from_secs(30)));
        assert!(!pace.due(start + Duration::from_secs(59)));
        assert!(pace.due(start + Duration::from_secs(75)));
        // The next period counts from the line that went out, not from the schedule.
        assert!(!pace.due(start + Duration::from_secs(104)));
        assert!(pace.due(start + Duration::from_secs(105)));
    }

    #[test]
    fn after_stays_quiet_for_the_first_period() {
        let start = Instant::now();
        let mut pace = LogPace::after(PERIOD, start);
        assert!(!pace.due(start));
        assert!(!pace.due(start + Duration::from_secs(10)));
        assert!(pace.due(start + Duration::from_secs(31)));
        assert!(!pace.due(start + Duration::from_secs(32)));
    }

    #[test]
    fn a_clock_reading_before_the_start_is_not_due() {
        let start = Instant::now() + Duration::from_secs(60);
        let mut pace = LogPace::after(PERIOD, start);
        assert!(!pace.due(start - Duration::from_secs(10)));
    }
}
