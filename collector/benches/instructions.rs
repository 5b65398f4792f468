//! The collector's own work on export requests, run once, so that
//! `dev/instructions` can count its instructions under callgrind.
//!
//! The whole-process benchmark at 50,000 spans/s spreads by a fifth
//! between hours on this shared machine, more than most single changes to
//! the request path move; an instruction count is the same from run to run.
//! What it leaves out (the gRPC server, librdkafka and its compression,
//! thread switches) the whole-process benchmark still measures.
//!
//! Per request it makes the calls the pipeline makes before handing
//! records to the producer: validation as strict as decoding, grouping the
//! spans by trace from the request's bytes, and one record (key and
//! headers) per group. The requests are the collector benchmark's: forty
//! traces of 5 to 20 spans, about ten attributes a span, 205 KiB each.
//! Encoding them is left out of the count.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use prost::Message as _;
use spanway_bench::collector::traffic::{Pool, Shape};
use spanway_collector::grouping::encoded::group_encoded;
use spanway_schemas::wire::otlp;
use spanway_schemas::{Encoding, SpanRecord};

/// The process's allocator, so that allocating is counted as the
/// collector pays it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Requests counted: enough that every one of the pool's shapes occurs.
const REQUESTS: u64 = 64;

fn main() {
    let pool = Pool::generate(Shape {
        requests: REQUESTS as usize,
        traces_per_request: 40,
        min_spans: 5,
        max_spans: 20,
    });
    let requests: Vec<Vec<u8>> = (0..REQUESTS)
        .map(|seq| pool.request(seq, 1_780_000_000_000_000_000).encode_to_vec())
        .collect();
    let bytes: usize = requests.iter().map(Vec::len).sum();
    let (spans, records, record_bytes) = work(black_box(&requests));
    let expected: usize = (0..REQUESTS).map(|seq| pool.spans(seq)).sum();
    assert_eq!(spans, expected, "every span was grouped");
    assert!(records >= 40 * REQUESTS as usize && record_bytes > spans);
    println!("spans {spans} records {records} request bytes {bytes}");
}

/// What is counted: each request validated, grouped and made into records.
/// Not inlined, so that callgrind can count this function alone.
#[inline(never)]
fn work(requests: &[Vec<u8>]) -> (usize, usize, usize) {
    black_box("work");
    let (mut spans, mut records, mut record_bytes) = (0, 0, 0);
    for request in requests {
        otlp::validate(otlp::Message::TracesData, request).unwrap();
        let grouped = group_encoded(request).unwrap();
        assert!(grouped.rejected.is_empty());
        spans += grouped.span_count();
        for group in grouped.groups {
            let record = SpanRecord::new(group.trace_id, Encoding::OtlpProto, group.value);
            record_bytes += record.key.len() + record.value.len();
            records += 1;
            black_box(&record);
        }
    }
    (spans, records, record_bytes)
}
