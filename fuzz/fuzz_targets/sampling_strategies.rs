//! The sampling strategies file (Jaeger's format), which the collector
//! reads at start and on every change.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = spanway_collector::sampling::Strategies::parse(data);
});
