//! `jaeger_proto` records, as Jaeger's collector writes them to Kafka.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanway_schemas::{Encoding, decode_record};

spanway_fuzz::capped_allocator!();

fuzz_target!(|data: &[u8]| {
    spanway_fuzz::decoding(data, |data| {
        let _ = decode_record(Encoding::JaegerProto, data);
    });
});
