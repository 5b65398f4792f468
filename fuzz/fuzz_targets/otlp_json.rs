//! OTLP/JSON, as the collector's OTLP/HTTP receiver and the `otlp_json`
//! topic encoding carry it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanway_schemas::{Encoding, decode_record};

spanway_fuzz::capped_allocator!();

fuzz_target!(|data: &[u8]| {
    spanway_fuzz::decoding(data, |data| {
        let _ = spanway_schemas::otlp_json::decode(data);
        let _ = decode_record(Encoding::OtlpJson, data);
    });
});
