//! A Zipkin v2 JSON body, as the Zipkin receiver reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = spanway_collector::receiver::zipkin_v2::decode(data);
});
