//! OTLP/JSON, as the collector's OTLP/HTTP receiver and the `otlp_json`
//! topic encoding carry it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanway_schemas::{Encoding, decode_record};

fuzz_target!(|data: &[u8]| {
    let _ = spanway_schemas::otlp_json::decode(data);
    let _ = decode_record(Encoding::OtlpJson, data);
});
