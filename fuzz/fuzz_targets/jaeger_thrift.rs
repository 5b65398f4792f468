//! A Jaeger Thrift batch (binary protocol), as the Thrift/HTTP receiver
//! reads a request body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = spanway_collector::receiver::jaeger_thrift_model::decode_batch(data);
});
