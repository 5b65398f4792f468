//! How many threads run a process's async tasks (`[runtime]`).
//!
//! One worker per CPU the process may use is the default, as Tokio's. A
//! count is for a process that shares its machine or pod with others and
//! should not spread over all of it; librdkafka's threads run beside the
//! workers either way. On two CPUs, one collector worker instead of two
//! saved nothing measurable (`docs/benchmarks.md`), so no process leaves a
//! CPU aside by default.

use std::fmt;
use std::num::NonZeroUsize;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// The `[runtime]` section every process shares.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Worker threads of the async runtime: `"auto"` or a count.
    pub worker_threads: WorkerThreads,
}

/// `runtime.worker_threads`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WorkerThreads {
    /// One per CPU the process may use (its cgroup's CPU limit counts).
    #[default]
    Auto,
    /// Exactly this many.
    Count(NonZeroUsize),
}

impl WorkerThreads {
    /// The thread count on a machine that gives the process `cpus` CPUs.
    pub fn resolve(self, cpus: usize) -> usize {
        match self {
            WorkerThreads::Auto => cpus.max(1),
            WorkerThreads::Count(count) => count.get(),
        }
    }
}

impl RuntimeConfig {
    /// The worker count on this machine; see [`WorkerThreads::resolve`].
    pub fn worker_threads(&self) -> usize {
        let cpus = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        self.worker_threads.resolve(cpus)
    }
}

const EXPECTED: &str = "\"auto\" or a number of threads, at least 1";

impl<'de> Deserialize<'de> for WorkerThreads {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(WorkerThreadsVisitor)
    }
}

struct WorkerThreadsVisitor;

impl WorkerThreadsVisitor {
    fn count<E: de::Error>(value: u64) -> Result<WorkerThreads, E> {
        usize::try_from(value)
            .ok()
            .and_then(NonZeroUsize::new)
            .map(WorkerThreads::Count)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(value), &EXPECTED))
    }
}

impl Visitor<'_> for WorkerThreadsVisitor {
    type Value = WorkerThreads;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str(EXPECTED)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<WorkerThreads, E> {
        Self::count(value)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<WorkerThreads, E> {
        let unsigned = u64::try_from(value)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(value), &EXPECTED))?;
        Self::count(unsigned)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<WorkerThreads, E> {
        if value.eq_ignore_ascii_case("auto") {
            return Ok(WorkerThreads::Auto);
        }
        match value.parse::<u64>() {
            Ok(count) => Self::count(count),
            Err(_) => Err(E::invalid_value(de::Unexpected::Str(value), &EXPECTED)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_with_env;

    fn from_env(value: &str) -> Result<RuntimeConfig, String> {
        #[derive(Debug, Deserialize)]
        struct Sections {
            runtime: RuntimeConfig,
        }
        let env = [(
            "SPANWAY_RUNTIME__WORKER_THREADS".to_string(),
            value.to_string(),
        )];
        load_with_env::<Sections>(None, env)
            .map(|sections| sections.runtime)
            .map_err(|error| error.to_string())
    }

    #[test]
    fn auto_is_one_per_cpu_and_a_count_is_taken_as_given() {
        assert_eq!(WorkerThreads::Auto.resolve(8), 8);
        assert_eq!(WorkerThreads::Auto.resolve(0), 1);
        let three = WorkerThreads::Count(NonZeroUsize::new(3).expect("3 is not zero"));
        assert_eq!(three.resolve(1), 3);
        assert_eq!(three.resolve(16), 3);
    }

    #[test]
    fn the_setting_reads_auto_or_a_count_from_the_environment() {
        assert_eq!(
            from_env("auto").map(|c| c.worker_threads),
            Ok(WorkerThreads::Auto)
        );
        assert_eq!(
            from_env("2").map(|c| c.worker_threads),
            Ok(WorkerThreads::Count(
                NonZeroUsize::new(2).expect("2 is not zero")
            ))
        );
    }

    #[test]
    fn zero_a_negative_count_or_a_word_is_refused_with_what_is_expected() {
        for bad in ["0", "-1", "many"] {
            let error = from_env(bad).expect_err(bad);
            assert!(error.contains(EXPECTED), "{bad}: {error}");
            assert!(error.contains("runtime.worker_threads"), "{bad}: {error}");
        }
    }
}
