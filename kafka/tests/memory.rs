//! glibc's mmap threshold, fixed by `memory::return_large_buffers_promptly`,
//! checked on glibc itself: its own binary, so no other test allocates
//! between the counts.
#![cfg(all(target_os = "linux", target_env = "gnu"))]
#![allow(unsafe_code)]

use spanway_kafka::memory::return_large_buffers_promptly;

/// Blocks glibc has mapped on their own (`hblks` of `mallinfo2`).
fn mapped_blocks() -> usize {
    // SAFETY: `mallinfo2` only reads glibc's counters.
    unsafe { libc::mallinfo2() }.hblks
}

/// Whether a block of `bytes` allocated now is mapped on its own.
fn mapped_on_its_own(bytes: usize) -> bool {
    let before = mapped_blocks();
    // SAFETY: a plain allocation, checked for null and freed below. Kept
    // opaque to the optimiser, which would otherwise drop the pair.
    let block = std::hint::black_box(unsafe { libc::malloc(bytes) });
    assert!(!block.is_null(), "malloc({bytes}) failed");
    let mapped = mapped_blocks() > before;
    // SAFETY: `block` came from `malloc` above and is freed once.
    unsafe { libc::free(block) };
    mapped
}

#[test]
fn large_buffers_stay_mapped_on_their_own_once_the_threshold_is_fixed() {
    assert!(
        std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none(),
        "this test needs glibc's default, adjusting threshold"
    );
    // glibc's own behaviour first: freeing a 4 MiB mapped block raises the
    // threshold to 4 MiB, so a 2 MiB block grows the heap instead.
    assert!(
        mapped_on_its_own(4 << 20),
        "4 MiB is above the initial threshold"
    );
    assert!(
        !mapped_on_its_own(2 << 20),
        "the threshold grew past 2 MiB after a 4 MiB block was freed"
    );

    assert!(
        return_large_buffers_promptly(),
        "glibc accepted the threshold"
    );
    // Free space the heap already has is still reused; a block larger than
    // it (the 2 MiB freed above) is mapped, where before it grew the heap.
    assert!(
        mapped_on_its_own(3 << 20),
        "with the threshold fixed, 3 MiB is mapped on its own after a 4 MiB block"
    );
    assert!(
        !mapped_on_its_own(64 << 10),
        "64 KiB stays below the threshold"
    );
}
