//! The sampling strategies file (Jaeger's format), which the collector
//! reads at start and on every change.
#![no_main]

use libfuzzer_sys::fuzz_target;

spanway_fuzz::capped_allocator!();

fuzz_target!(|data: &[u8]| {
    spanway_fuzz::decoding(data, |data| {
        let _ = spanway_collector::sampling::Strategies::parse(data);
    });
});
