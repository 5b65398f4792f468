//! `jaeger_json` records (Jaeger's JSON span on the topic).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanway_schemas::{Encoding, decode_record};

fuzz_target!(|data: &[u8]| {
    let _ = spanway_schemas::jaeger_json::decode(data);
    let _ = decode_record(Encoding::JaegerJson, data);
});
