//! The job's own work on a partition's records, run once, so that
//! `dev/instructions` can count its instructions under cachegrind.
//!
//! Whole-process runs on a shared 2-core machine spread by ±15 % and
//! criterion's timings by ±10 %, more than most single changes to this
//! code move; an instruction count is the same from run to run. What it
//! leaves out (librdkafka, cache misses, locks, metrics) the whole-process
//! benchmark still measures.
//!
//! Per record it makes the calls `consume::Job::handle` makes: span facts
//! read from the record's bytes into a buffer kept between records, then
//! pairing, analysis and windows. Building the records is left out of the
//! count. Validation alone, the part the collector and the ingester share,
//! is counted on its own as well.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use spanway_e2e::topology;
use spanway_schemas::SpanRecord;
use spanway_schemas::wire::otlp;
use spanway_streaming_analytics::pairing::{PartitionState, Step};
use spanway_streaming_analytics::span::otlp_wire::{Names, facts_of_otlp};

mod common;
use common::{ORDER, timing};

fn main() {
    // 5,000 traces (110,000 spans, 40,000 records) 10 ms apart.
    let traffic = topology::generate(3, 5_000, 1_772_409_600_000, 10);
    validation(black_box(&traffic.records));
    let (spans, edges, windows) = work(black_box(&traffic.records));
    assert_eq!(
        spans as u64, traffic.spans,
        "every span read on the fast path"
    );
    assert!(edges > 0 && windows > 0);
    println!("spans {spans} edges {edges} windows {windows}");
}

/// Validation alone, as the collector and the ingester run it on every
/// span they accept: counted separately.
#[inline(never)]
fn validation(records: &[SpanRecord]) {
    for record in records {
        otlp::validate(otlp::Message::TracesData, &record.value).unwrap();
    }
}

/// What is counted: everything the job does with the records. Not inlined,
/// so that callgrind can count this function alone.
#[inline(never)]
fn work(records: &[SpanRecord]) -> (usize, usize, usize) {
    let mut names = Names::default();
    let mut state = PartitionState::new(timing(), None);
    let mut facts = Vec::new();
    let mut step = Step::default();
    let (mut spans, mut edges, mut windows) = (0, 0, 0);
    for (offset, record) in records.iter().enumerate() {
        facts_of_otlp(&record.value, &ORDER, &mut names, &mut facts).unwrap();
        spans += facts.len();
        step.clear();
        state.process_into(offset as i64, facts.drain(..), &mut step);
        edges += step.edges.len();
        windows += step.closed.len();
    }
    let step = state.flush_idle();
    edges += step.edges.len();
    windows += step.closed.len();
    (spans, edges, windows)
}
