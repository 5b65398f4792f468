//! A Jaeger Thrift batch (binary protocol), as the Thrift/HTTP receiver
//! reads a request body.
#![no_main]

use libfuzzer_sys::fuzz_target;

spanway_fuzz::capped_allocator!();

fuzz_target!(|data: &[u8]| {
    spanway_fuzz::decoding(data, |data| {
        let _ = spanway_collector::convert::jaeger_thrift::decode_batch(data);
    });
});
