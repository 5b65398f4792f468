//! `jaeger_proto` records, as Jaeger's collector writes them to Kafka.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanway_schemas::{Encoding, decode_record};

fuzz_target!(|data: &[u8]| {
    let _ = decode_record(Encoding::JaegerProto, data);
});
