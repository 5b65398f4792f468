//! Spans per second through pairing and aggregation on one core: the
//! partition state fed with the known-topology traffic, already reduced to
//! span facts (decoding is measured separately, as it is the ingester's
//! cost too).
//!
//! Run: `cargo bench -p spanway-streaming-analytics --bench pairing`.
#![allow(clippy::unwrap_used, missing_docs)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use spanway_e2e::topology;
use spanway_schemas::Encoding;
use spanway_schemas::record::decode_record;
use spanway_schemas::wire::otlp;
use spanway_streaming_analytics::pairing::PartitionState;
use spanway_streaming_analytics::span::SpanFacts;
use spanway_streaming_analytics::span::otlp_wire::{Names, facts_of_otlp};

mod common;
use common::{ORDER, timing};

/// 5,000 traces (110,000 spans) 10 ms apart, as records of span facts read
/// as the job reads them (names shared across records).
fn records() -> (Vec<Vec<SpanFacts>>, u64) {
    let traffic = topology::generate(3, 5_000, 1_772_409_600_000, 10);
    let mut names = Names::default();
    let records = traffic
        .records
        .iter()
        .map(|r| {
            let mut facts = Vec::new();
            facts_of_otlp(&r.value, &ORDER, &mut names, &mut facts).unwrap();
            facts
        })
        .collect();
    (records, traffic.spans)
}

fn pairing(c: &mut Criterion) {
    let (records, spans) = records();
    let mut group = c.benchmark_group("partition");
    group.throughput(Throughput::Elements(spans));
    group.sample_size(20);
    group.bench_function("process_and_flush", |b| {
        b.iter_batched(
            || records.clone(),
            |records| {
                let mut state = PartitionState::new(timing(), None);
                let mut windows = 0;
                for (offset, facts) in records.into_iter().enumerate() {
                    windows += state.process(offset as i64, facts).closed.len();
                }
                windows += state.flush_idle().closed.len();
                assert!(windows > 0);
                windows
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();

    let traffic = topology::generate(3, 1_000, 1_772_409_600_000, 10);
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(traffic.spans));
    group.sample_size(20);
    group.bench_function("otlp_proto_to_facts", |b| {
        b.iter(|| {
            let mut n = 0;
            for record in &traffic.records {
                for span in decode_record(Encoding::OtlpProto, &record.value).unwrap() {
                    n += usize::from(SpanFacts::from_jaeger(&span, &ORDER).is_ok());
                }
            }
            n
        });
    });
    group.bench_function("validate_only", |b| {
        b.iter(|| {
            for record in &traffic.records {
                otlp::validate(otlp::Message::TracesData, &record.value).unwrap();
            }
        });
    });
    group.bench_function("otlp_wire_to_facts", |b| {
        b.iter(|| {
            let mut facts = Vec::new();
            let mut names = Names::default();
            for record in &traffic.records {
                facts_of_otlp(&record.value, &ORDER, &mut names, &mut facts).unwrap();
            }
            facts.len()
        });
    });
    group.finish();
}

criterion_group!(benches, pairing);
criterion_main!(benches);
