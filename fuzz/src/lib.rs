//! What every fuzz target shares: an allocator that refuses any single
//! allocation out of proportion to the input being decoded.
//!
//! A decoder that trusts a length or count field read from the input (a
//! Thrift list header, a protobuf length prefix) can reserve gigabytes for a
//! few bytes of input. Reserved but untouched memory does not show in the
//! process's RSS, so libFuzzer's `-rss_limit_mb` misses it, and its
//! `-malloc_limit_mb` needs the sanitizer's malloc hooks, which `-s none`
//! builds do not have. This allocator makes such an allocation fail while
//! an input is being decoded, which aborts the process (Rust's allocation
//! error handler) and makes libFuzzer save the input as a crash.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Bytes one allocation may take beyond the input's own multiple: room for
/// fixed-size tables and buffers that do not grow with the input.
pub const BASE_ALLOWANCE: usize = 1 << 20;

/// How many times the input's length one allocation may take: decoded
/// structures are larger than their encoding (a 2-byte protobuf field
/// becomes a 24-byte `String` or a map entry), but by a bounded factor.
pub const INPUT_MULTIPLE: usize = 32;

thread_local! {
    /// Per thread, so that only the decoding thread is held to it (and
    /// tests of this crate can run side by side). A `const` cell without a
    /// destructor: reading it never allocates.
    static CAP: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The system allocator with a per-allocation cap that [`decoding`] sets.
pub struct Capped;

impl Capped {
    fn allowed(size: usize) -> bool {
        size <= CAP.with(Cell::get)
    }
}

// SAFETY: every call is forwarded unchanged to `System`, or refused with a
// null pointer, which `GlobalAlloc` permits for any request.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !Self::allowed(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract is passed through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !Self::allowed(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract is passed through.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed through.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !Self::allowed(new_size) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract is passed through.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `decode` on `input` with the allocation cap for an input of that
/// length in force, and lifts the cap afterwards.
pub fn decoding<T>(input: &[u8], decode: impl FnOnce(&[u8]) -> T) -> T {
    let cap = input
        .len()
        .saturating_mul(INPUT_MULTIPLE)
        .saturating_add(BASE_ALLOWANCE);
    CAP.with(|c| c.set(cap));
    let out = decode(input);
    CAP.with(|c| c.set(usize::MAX));
    out
}

/// Declares [`Capped`] as the target's global allocator.
#[macro_export]
macro_rules! capped_allocator {
    () => {
        #[global_allocator]
        static ALLOCATOR: $crate::Capped = $crate::Capped;
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    capped_allocator!();

    #[test]
    fn an_allocation_out_of_proportion_to_the_input_is_refused() {
        let input = [0u8; 100];
        let too_large = 100 * INPUT_MULTIPLE + BASE_ALLOWANCE + 1;
        let refused = decoding(&input, |_| Vec::<u8>::new().try_reserve_exact(too_large));
        assert!(refused.is_err(), "{too_large} bytes for a 100-byte input");
        let fits = decoding(&input, |_| Vec::<u8>::new().try_reserve_exact(too_large - 1));
        assert!(fits.is_ok());
    }

    #[test]
    fn outside_a_decode_the_cap_is_lifted() {
        let input = [0u8; 100];
        decoding(&input, |_| ());
        assert!(Vec::<u8>::new().try_reserve_exact(64 << 20).is_ok());
    }
}
