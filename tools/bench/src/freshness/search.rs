//! Finding the highest background rate the pipeline sustains, so that
//! freshness is measured where its target puts it: at half that rate.
//!
//! The machine's speed moves by half between days and within an hour
//! (docs/benchmarks.md), so a fixed rate is sometimes above half of what
//! the pipeline sustains and sometimes far below it. The search steps the
//! rate up geometrically and judges each run by what it saw: a run that
//! lost nothing, got its rate through, whose probes were about as fast at
//! its end as at its start, and not slow from the start, kept up.

use std::fmt;
use std::time::Duration;

use super::RunResult;

/// How the highest sustained rate is looked for.
#[derive(Debug, Clone, Copy)]
pub struct Search {
    /// The first rate tried, spans/s.
    pub from: f64,
    /// Each next rate is the last one times this.
    pub step: f64,
    /// The highest rate tried.
    pub up_to: f64,
    /// A run whose trend (last third's median freshness over the first's)
    /// is above this fell behind; one whose trend is below its inverse was
    /// still working off the backlog of its start, which a rate close to
    /// the pipeline's capacity takes longer than a run to drain.
    pub trend_limit: f64,
    /// A run whose median freshness is above this was behind from its
    /// start. A trend alone misses that: when the warm-up has already
    /// built a backlog larger than what the run adds, the last third waits
    /// little longer than the first.
    pub p50_limit: Duration,
}

impl Search {
    /// Rejects a search that would not move or could not start.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.from.is_finite() && self.from > 0.0) {
            return Err(format!(
                "the first rate must be positive, not {}",
                self.from
            ));
        }
        if !(self.step.is_finite() && self.step >= 1.05) {
            return Err(format!(
                "--step must be at least 1.05 (the next rate over the last), not {}",
                self.step
            ));
        }
        if self.up_to.is_nan() || self.up_to < self.from {
            return Err(format!(
                "--max-rate ({}) is below the first rate ({})",
                self.up_to, self.from
            ));
        }
        if !(self.trend_limit.is_finite() && self.trend_limit > 1.0) {
            return Err(format!(
                "--sustained-trend must be above 1 (a steady run reads about 1), not {}",
                self.trend_limit
            ));
        }
        if self.p50_limit.is_zero() {
            return Err("--sustained-p50 must be above zero".into());
        }
        Ok(())
    }

    /// The rate after `rate`, rounded to 100 spans/s; `None` past `up_to`.
    pub fn next(&self, rate: f64) -> Option<f64> {
        let next = round_rate(rate * self.step).max(rate + 100.0);
        (next <= self.up_to).then_some(next)
    }
}

/// Rounds a rate to the nearest 100 spans/s, at least 100.
pub fn round_rate(rate: f64) -> f64 {
    ((rate / 100.0).round() * 100.0).max(100.0)
}

/// The share of the asked rate a run must get accepted: the load is open
/// loop, so a collector that slows down shows as a lower accepted rate.
pub(super) const RATE_SHARE: f64 = 0.95;

/// Why a run did not keep up.
#[derive(Debug, Clone, PartialEq)]
pub enum Behind {
    /// A probe lost, a call refused or failed, or fewer spans stored than
    /// accepted.
    Unverified,
    /// The collector accepted less than 95 % of the asked rate.
    Rate { accepted: f64 },
    /// The probes got slower through the run.
    Trend(f64),
    /// The probes got much faster through the run: it was still catching
    /// up with the backlog its start built.
    CatchingUp(f64),
    /// Too few probes found to tell.
    NoTrend,
    /// The probes' median freshness was above the search's limit.
    Slow(Duration),
}

impl fmt::Display for Behind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Behind::Unverified => write!(f, "not verified (lost, refused or unstored spans)"),
            Behind::Rate { accepted } => write!(
                f,
                "only {} spans/s accepted",
                crate::report::thousands(*accepted)
            ),
            Behind::Trend(trend) => write!(f, "trend {trend:.2}"),
            Behind::CatchingUp(trend) => write!(f, "still catching up, trend {trend:.2}"),
            Behind::NoTrend => write!(f, "too few probes found for a trend"),
            Behind::Slow(p50) => write!(f, "median freshness {:.0} ms", p50.as_secs_f64() * 1e3),
        }
    }
}

/// Whether a run kept up with its rate, and if not, the first reason.
pub fn judge(run: &RunResult, search: &Search) -> Result<(), Behind> {
    if !run.verified() {
        return Err(Behind::Unverified);
    }
    let accepted = run.load.accepted_rate();
    if accepted < run.rate * RATE_SHARE {
        return Err(Behind::Rate { accepted });
    }
    if let Some(p50) = run.freshness(0.5).filter(|p50| *p50 > search.p50_limit) {
        return Err(Behind::Slow(p50));
    }
    let trend_limit = search.trend_limit;
    match run.trend {
        None => Err(Behind::NoTrend),
        Some(trend) if trend > trend_limit => Err(Behind::Trend(trend)),
        Some(trend) if trend < 1.0 / trend_limit => Err(Behind::CatchingUp(trend)),
        Some(_) => Ok(()),
    }
}

/// What the search found.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// The highest rate that kept up; `stopped` is the next rate and why
    /// it did not, or `None` when the search reached `up_to`.
    Max {
        rate: f64,
        stopped: Option<(f64, Behind)>,
    },
    /// Even the first rate did not keep up.
    BelowFirst(f64, Behind),
}

impl Found {
    /// The rate freshness is measured at: half the highest rate kept up,
    /// rounded to 100 spans/s; `None` when no rate kept up.
    pub fn half(&self) -> Option<f64> {
        match self {
            Found::Max { rate, .. } => Some(round_rate(rate / 2.0)),
            Found::BelowFirst(..) => None,
        }
    }
}

/// The search's state: which rate to run next, and what was found so far.
///
/// A rate that does not keep up is run once more before the search stops
/// on it, since a single run's trend moves by a fifth on a steady pipeline.
#[derive(Debug)]
pub struct Stepper {
    search: Search,
    rate: f64,
    best: Option<f64>,
    retried: bool,
}

impl Stepper {
    /// Starts at the search's first rate.
    pub fn new(search: Search) -> Stepper {
        Stepper {
            rate: round_rate(search.from),
            search,
            best: None,
            retried: false,
        }
    }

    /// The rate of the next run.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Takes the verdict of a run at [`Stepper::rate`]; returns what was
    /// found once the search is over, `None` while there is a next run.
    pub fn record(&mut self, verdict: Result<(), Behind>) -> Option<Found> {
        match verdict {
            Ok(()) => {
                self.best = Some(self.rate);
                self.retried = false;
                match self.search.next(self.rate) {
                    Some(next) => {
                        self.rate = next;
                        None
                    }
                    None => Some(Found::Max {
                        rate: self.rate,
                        stopped: None,
                    }),
                }
            }
            Err(_) if !self.retried => {
                self.retried = true;
                None
            }
            Err(why) => Some(match self.best {
                None => Found::BelowFirst(self.rate, why),
                Some(max) => Found::Max {
                    rate: max,
                    stopped: Some((self.rate, why)),
                },
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::load::Outcome;
    use crate::freshness::Pipeline;
    use std::time::{Duration, Instant};

    const SEARCH: Search = Search {
        from: 5_000.0,
        step: 1.25,
        up_to: 40_000.0,
        trend_limit: 1.3,
        p50_limit: Duration::from_secs(2),
    };

    #[test]
    fn rates_step_up_geometrically_in_hundreds_and_stop_at_the_cap() {
        let mut rates = vec![SEARCH.from];
        while let Some(next) = SEARCH.next(*rates.last().unwrap()) {
            rates.push(next);
        }
        assert_eq!(
            rates,
            [
                5_000.0, 6_300.0, 7_900.0, 9_900.0, 12_400.0, 15_500.0, 19_400.0, 24_300.0,
                30_400.0, 38_000.0
            ]
        );
        // A step too small to move a rounded rate still moves by 100.
        let slow = Search {
            from: 200.0,
            step: 1.05,
            ..SEARCH
        };
        assert_eq!(slow.next(200.0), Some(300.0));
    }

    #[test]
    fn a_search_that_cannot_move_or_start_is_refused() {
        assert!(SEARCH.validate().is_ok());
        for bad in [
            Search {
                step: 1.0,
                ..SEARCH
            },
            Search {
                from: 0.0,
                ..SEARCH
            },
            Search {
                up_to: 4_000.0,
                ..SEARCH
            },
            Search {
                trend_limit: 0.9,
                ..SEARCH
            },
            Search {
                trend_limit: f64::NAN,
                ..SEARCH
            },
            Search {
                p50_limit: Duration::ZERO,
                ..SEARCH
            },
        ] {
            let error = bad.validate().unwrap_err();
            assert!(!error.is_empty());
        }
        assert!(
            Search {
                step: 1.0,
                ..SEARCH
            }
            .validate()
            .unwrap_err()
            .contains("--step")
        );
    }

    fn run(rate: f64, accepted_spans: u64, trend: Option<f64>, stored: u64) -> RunResult {
        let mut load = Outcome::new(Instant::now());
        load.finished = load.started + Duration::from_secs(10);
        load.spans_accepted = accepted_spans;
        RunResult {
            pipeline: Pipeline::Spanway,
            rate,
            repetition: 1,
            load,
            probes: 50,
            probes_refused: 0,
            latencies: vec![Duration::from_millis(700); 50],
            stored,
            accepted: accepted_spans + 50,
            engine_cpu: None,
            others_cpu: None,
            elapsed: Duration::from_secs(20),
            trend,
        }
    }

    #[test]
    fn a_run_keeps_up_only_verified_at_its_rate_and_about_as_fast_at_its_end_as_its_start() {
        let kept = run(10_000.0, 99_000, Some(1.1), 99_050);
        assert_eq!(judge(&kept, &SEARCH), Ok(()));
        assert_eq!(
            judge(&run(10_000.0, 99_000, Some(1.45), 99_050), &SEARCH),
            Err(Behind::Trend(1.45))
        );
        assert_eq!(
            judge(&run(10_000.0, 99_000, None, 99_050), &SEARCH),
            Err(Behind::NoTrend)
        );
        // A first third far slower than the last: still draining the start's backlog.
        assert_eq!(
            judge(&run(10_000.0, 99_000, Some(0.55), 99_050), &SEARCH),
            Err(Behind::CatchingUp(0.55))
        );
        assert_eq!(
            judge(&run(10_000.0, 99_000, Some(0.8), 99_050), &SEARCH),
            Ok(())
        );
        // 90,000 spans in 10 s is 9,000 spans/s: under 95 % of 10,000.
        assert_eq!(
            judge(&run(10_000.0, 90_000, Some(1.0), 90_050), &SEARCH),
            Err(Behind::Rate { accepted: 9_000.0 })
        );
        // Behind from the start: slow throughout, so the trend stays near 1.
        let mut slow = run(10_000.0, 99_000, Some(1.2), 99_050);
        slow.latencies = vec![Duration::from_millis(9_000); 50];
        assert_eq!(
            judge(&slow, &SEARCH),
            Err(Behind::Slow(Duration::from_millis(9_000)))
        );
        // One span short in the indices.
        assert_eq!(
            judge(&run(10_000.0, 99_000, Some(1.0), 99_049), &SEARCH),
            Err(Behind::Unverified)
        );
    }

    /// Runs the search against a pipeline that keeps up to `capacity`,
    /// with the first run at each of the `flaky` rates failing anyway;
    /// returns what it found and the rates it ran.
    fn simulate(capacity: f64, flaky: &[f64], up_to: f64) -> (Found, Vec<f64>) {
        let mut stepper = Stepper::new(Search { up_to, ..SEARCH });
        let mut ran: Vec<f64> = Vec::new();
        loop {
            let rate = stepper.rate();
            let first = !ran.contains(&rate);
            ran.push(rate);
            let verdict = if rate > capacity || (first && flaky.contains(&rate)) {
                Err(Behind::Trend(2.0))
            } else {
                Ok(())
            };
            if let Some(found) = stepper.record(verdict) {
                return (found, ran);
            }
        }
    }

    #[test]
    fn the_search_stops_at_the_first_rate_that_fails_twice() {
        let (found, ran) = simulate(13_000.0, &[7_900.0], 40_000.0);
        assert_eq!(
            found,
            Found::Max {
                rate: 12_400.0,
                stopped: Some((15_500.0, Behind::Trend(2.0)))
            }
        );
        // 7,900 failed once and passed its second run; 15,500 failed both.
        assert_eq!(
            ran,
            [
                5_000.0, 6_300.0, 7_900.0, 7_900.0, 9_900.0, 12_400.0, 15_500.0, 15_500.0
            ]
        );
        let (found, _) = simulate(4_000.0, &[], 40_000.0);
        assert_eq!(found, Found::BelowFirst(5_000.0, Behind::Trend(2.0)));
        let (found, ran) = simulate(1e9, &[], 8_000.0);
        assert_eq!(
            found,
            Found::Max {
                rate: 7_900.0,
                stopped: None
            }
        );
        assert_eq!(ran.len(), 3);
    }
}
