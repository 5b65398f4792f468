//! How soon the ingester's two allocators give freed memory back.
//!
//! Records stream through the ingester at tens of megabytes a second and
//! most of what it allocates lives for one bulk request. Both allocators'
//! defaults keep freed memory resident longer than that flow needs, and
//! the ingester's peak RSS ended up above Jaeger v2's on long loads:
//!
//! - mimalloc (Rust's side, installed in `main`): v3 keeps the pages it has
//!   emptied committed for a second before it purges them; here ten
//!   milliseconds (mimalloc v2's default). A page emptied that briefly is
//!   often faulted in again by the next request, so the bulk writer keeps
//!   its body buffers itself (`spanway_search::bulk::buffers`).
//! - glibc (librdkafka's side): see `spanway_kafka::memory`.
//!
//! On 1,200,000-span loads into the null endpoint, peak RSS fell from
//! 93–106 MiB to 68–81 with both; the purge delay's part may cost about
//! 5 % more CPU per span, inside the spread of the runs (docs/benchmarks.md,
//! "Ingester: peak RSS and the two allocators").
//! An operator's own `MIMALLOC_PURGE_DELAY` or `MALLOC_MMAP_THRESHOLD_`
//! wins.

use std::ffi::{c_int, c_long};

// The allocator `main` installs; named here so that its library is linked
// wherever this module is, its tests included.
use mimalloc as _;

/// How long mimalloc keeps emptied pages committed, in milliseconds.
const PURGE_DELAY_MS: c_long = 10;

/// `mi_option_purge_delay`, by its place in `mi_option_e` (mimalloc.h, v3,
/// which `libmimalloc-sys` builds by default); the crate does not name it.
const MI_OPTION_PURGE_DELAY: c_int = 15;

#[allow(unsafe_code)]
mod ffi {
    use std::ffi::{c_int, c_long};

    // Both only read or write an entry of mimalloc's option table, which
    // mimalloc guards itself; any integer is a valid argument.
    unsafe extern "C" {
        pub safe fn mi_option_get(option: c_int) -> c_long;
        pub safe fn mi_option_set(option: c_int, value: c_long);
    }
}

/// Applies both settings, each unless the environment names its own, and
/// logs what is in force.
pub fn return_freed_memory_promptly() {
    let mmap_threshold_fixed = spanway_kafka::memory::return_large_buffers_promptly();
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        ffi::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
    }
    tracing::debug!(
        purge_delay_ms = ffi::mi_option_get(MI_OPTION_PURGE_DELAY),
        mmap_threshold_fixed,
        "allocators set to give freed memory back"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_set_is_the_option_v3_defaults_to_a_second() {
        assert!(
            std::env::var_os("MIMALLOC_PURGE_DELAY").is_none(),
            "this test reads mimalloc's own default"
        );
        // Only `purge_delay` defaults to 1000 ms in v3's option table, so an
        // index that no longer names it fails here instead of setting
        // another option.
        assert_eq!(ffi::mi_option_get(MI_OPTION_PURGE_DELAY), 1000);
        return_freed_memory_promptly();
        assert_eq!(ffi::mi_option_get(MI_OPTION_PURGE_DELAY), PURGE_DELAY_MS);
    }
}
