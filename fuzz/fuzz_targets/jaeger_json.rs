//! `jaeger_json` records (Jaeger's JSON span on the topic).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanway_schemas::{Encoding, decode_record};

spanway_fuzz::capped_allocator!();

fuzz_target!(|data: &[u8]| {
    spanway_fuzz::decoding(data, |data| {
        let _ = spanway_schemas::jaeger_json::decode(data);
        let _ = decode_record(Encoding::JaegerJson, data);
    });
});
