//! How soon librdkafka's freed buffers go back to the system.
//!
//! librdkafka allocates with glibc's malloc, whatever allocator Rust's side
//! uses. glibc maps a block of 128 KiB or more on its own, but each time
//! such a block is freed it raises that threshold to the block's size. After
//! the first few fetch responses and decompressed message sets, the next ones
//! come from glibc's heap arenas instead, where freed space stays resident
//! between bursts. Setting the threshold turns that adjustment off: each large
//! buffer is mapped on its own and unmapped when freed. On 1,200,000-span loads
//! this lowered the ingester's peak RSS by about a tenth at no measurable CPU
//! cost (docs/benchmarks.md, "Ingester: peak RSS and the two allocators").
//!
//! An operator's own `MALLOC_MMAP_THRESHOLD_` in the environment wins.

/// glibc's initial mmap threshold, kept fixed instead of growing.
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
const MMAP_THRESHOLD_BYTES: i32 = 128 * 1024;

/// Fixes glibc's mmap threshold unless the environment sets one; returns
/// whether this call set it.
pub fn return_large_buffers_promptly() -> bool {
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() {
        return false;
    }
    fix_mmap_threshold()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn fix_mmap_threshold() -> bool {
    // SAFETY: `mallopt` only changes glibc's allocation parameters, under
    // glibc's own lock; any thread may call it at any time.
    let accepted = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) };
    if accepted == 0 {
        tracing::warn!(
            "glibc refused a fixed mmap threshold; librdkafka's freed buffers may stay resident"
        );
    }
    accepted != 0
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fix_mmap_threshold() -> bool {
    false
}
