//! A byte budget for data accepted but not yet acknowledged by Kafka.
//!
//! When Kafka is slow or down, requests wait for acknowledgements and their
//! bodies stay in memory. The budget caps that memory: a request that does
//! not fit is refused at once with a retryable status instead of queueing.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Granularity of the budget; keeps the semaphore's count small.
const UNIT: usize = 1024;

/// The budget.
#[derive(Debug, Clone)]
pub struct Budget {
    semaphore: Arc<Semaphore>,
    units: usize,
}

/// Bytes held until dropped.
#[derive(Debug)]
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
}

impl Budget {
    /// A budget of `bytes` (rounded up to whole KiB).
    pub fn new(bytes: usize) -> Self {
        let units = bytes.div_ceil(UNIT).max(1);
        Budget {
            semaphore: Arc::new(Semaphore::new(units)),
            units,
        }
    }

    /// Reserves `bytes` if they fit now; never waits.
    pub fn try_reserve(&self, bytes: usize) -> Option<Reservation> {
        let wanted = bytes.div_ceil(UNIT).clamp(1, self.units);
        let wanted = u32::try_from(wanted).unwrap_or(u32::MAX);
        self.semaphore
            .clone()
            .try_acquire_many_owned(wanted)
            .ok()
            .map(|permit| Reservation { _permit: permit })
    }

    /// Bytes reserved now.
    pub fn in_use(&self) -> usize {
        (self.units - self.semaphore.available_permits()) * UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_when_spent_and_frees_on_drop() {
        let budget = Budget::new(10 * UNIT);
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
        let budget = Budget::new(4 * UNIT);
        let all = budget
            .try_reserve(100 * UNIT)
            .expect("capped to the whole budget");
        assert!(budget.try_reserve(1).is_none());
        drop(all);
    }
}
