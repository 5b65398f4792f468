//! A byte budget for request bytes held in memory: bodies being read, and
//! data accepted but not yet acknowledged by Kafka.
//!
//! When Kafka is slow or down, requests wait for acknowledgements and their
//! bodies stay in memory; when clients send faster than the collector
//! reads, bodies pile up while they arrive. The budget caps both: a body
//! reserves its bytes as they arrive, the reservation passes with the
//! request to the pipeline, and a request that does not fit is refused at
//! once with a retryable status instead of queueing.

use std::sync::Arc;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Granularity of the budget; keeps the semaphore's count small.
const UNIT: usize = 1024;

/// The budget.
#[derive(Debug, Clone)]
pub struct Budget {
    semaphore: Arc<Semaphore>,
    units: usize,
    /// Bytes reserved, for the `bytes_in_flight` metric.
    gauge: Gauge,
}

/// Bytes held until dropped; it can grow while a body arrives.
#[derive(Debug)]
pub struct Reservation {
    budget: Budget,
    permit: Option<OwnedSemaphorePermit>,
    /// Bytes asked for so far; the permit covers them in whole units,
    /// capped at the whole budget.
    bytes: usize,
}

impl Budget {
    /// A budget of `bytes` (rounded up to whole KiB) whose use `gauge` shows.
    pub fn new(bytes: usize, gauge: Gauge) -> Self {
        let units = bytes.div_ceil(UNIT).max(1);
        Budget {
            semaphore: Arc::new(Semaphore::new(units)),
            units,
            gauge,
        }
    }

    /// A reservation of nothing yet, to grow as bytes arrive.
    pub fn empty(&self) -> Reservation {
        Reservation {
            budget: self.clone(),
            permit: None,
            bytes: 0,
        }
    }

    /// Reserves `bytes` if they fit now; never waits.
    pub fn try_reserve(&self, bytes: usize) -> Option<Reservation> {
        let mut reservation = self.empty();
        reservation.try_grow_to(bytes).then_some(reservation)
    }

    /// Bytes reserved now.
    pub fn in_use(&self) -> usize {
        (self.units - self.semaphore.available_permits()) * UNIT
    }

    /// The units that cover `bytes`: at least one, at most the whole budget,
    /// so a request larger than the budget takes all of it rather than
    /// never fitting (the configuration keeps requests within the budget).
    fn units_for(&self, bytes: usize) -> usize {
        bytes.div_ceil(UNIT).clamp(1, self.units)
    }
}

impl Reservation {
    /// Grows the reservation by `bytes` if they fit now; never waits. On
    /// refusal it keeps what it held.
    pub fn try_grow(&mut self, bytes: usize) -> bool {
        self.try_grow_to(self.bytes.saturating_add(bytes))
    }

    /// Grows the reservation to cover `bytes` in all if that fits now; one
    /// that covers them already stays as it is.
    pub fn try_grow_to(&mut self, bytes: usize) -> bool {
        if bytes <= self.bytes {
            return true;
        }
        let held = self.units();
        let wanted = self.budget.units_for(bytes);
        if wanted > held {
            let extra = u32::try_from(wanted - held).unwrap_or(u32::MAX);
            let Ok(permit) = self.budget.semaphore.clone().try_acquire_many_owned(extra) else {
                return false;
            };
            match &mut self.permit {
                Some(held) => held.merge(permit),
                None => self.permit = Some(permit),
            }
            self.budget.gauge.inc_by(((wanted - held) * UNIT) as i64);
        }
        self.bytes = bytes;
        true
    }

    /// Bytes this reservation asked for.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn units(&self) -> usize {
        self.permit.as_ref().map_or(0, |p| p.num_permits())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let held = self.units();
        if held > 0 {
            self.budget.gauge.dec_by((held * UNIT) as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(units: usize) -> Budget {
        Budget::new(units * UNIT, Gauge::default())
    }

    #[test]
    fn refuses_when_spent_and_frees_on_drop() {
        let budget = budget(10);
        let a = budget.try_reserve(6 * UNIT).expect("fits");
        assert_eq!(budget.in_use(), 6 * UNIT);
        assert!(budget.try_reserve(5 * UNIT).is_none(), "over budget");
        let b = budget.try_reserve(4 * UNIT).expect("exactly fits");
        assert!(budget.try_reserve(1).is_none());
        drop(a);
        assert!(budget.try_reserve(5 * UNIT).is_some());
        drop(b);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn a_request_larger_than_the_budget_takes_all_of_it() {
        let budget = budget(4);
        let all = budget
            .try_reserve(100 * UNIT)
            .expect("capped to the whole budget");
        assert!(budget.try_reserve(1).is_none());
        drop(all);
    }

    #[test]
    fn a_growing_reservation_counts_bytes_not_pieces() {
        let budget = budget(10);
        let mut body = budget.empty();
        assert_eq!(budget.in_use(), 0, "an empty reservation holds nothing");
        // Ten pieces of 300 bytes are 3,000 bytes: three units, not ten.
        for _ in 0..10 {
            assert!(body.try_grow(300));
        }
        assert_eq!(body.bytes(), 3000);
        assert_eq!(budget.in_use(), 3 * UNIT);
        assert_eq!(budget.gauge.get(), (3 * UNIT) as i64);
        // Covering fewer bytes than it holds changes nothing.
        assert!(body.try_grow_to(1000));
        assert_eq!(budget.in_use(), 3 * UNIT);
        drop(body);
        assert_eq!(budget.in_use(), 0);
        assert_eq!(budget.gauge.get(), 0);
    }

    #[test]
    fn a_refused_growth_keeps_what_was_held() {
        let budget = budget(4);
        let other = budget.try_reserve(2 * UNIT).expect("fits");
        let mut body = budget.empty();
        assert!(body.try_grow(UNIT));
        assert!(!body.try_grow(2 * UNIT), "would need five units of four");
        assert_eq!(body.bytes(), UNIT);
        assert_eq!(budget.in_use(), 3 * UNIT);
        drop(other);
        assert!(body.try_grow_to(3 * UNIT), "fits once the other is gone");
        assert_eq!(budget.gauge.get(), (3 * UNIT) as i64);
    }
}
