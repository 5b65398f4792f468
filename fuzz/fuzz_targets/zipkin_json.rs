//! A Zipkin v2 JSON body, as the Zipkin receiver reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;

spanway_fuzz::capped_allocator!();

fuzz_target!(|data: &[u8]| {
    spanway_fuzz::decoding(data, |data| {
        let _ = spanway_collector::convert::zipkin_v2::decode(data);
    });
});
