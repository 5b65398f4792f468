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
//!
//! The topology's spans carry almost no attributes, where spans from real
//! SDKs carry several, each validated and looked at. So everything is
//! counted twice: on the topology's records, and on the same records with
//! eight string attributes and an int status code added to every span (the
//! shape of the ingester benchmark's spans).
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
    let attributed = topology::with_attributes(&traffic.records, 8).unwrap();
    validation(black_box(&traffic.records));
    validation_attributed(black_box(&attributed));
    let (spans, edges, windows) = work(black_box(&traffic.records));
    assert_eq!(
        spans as u64, traffic.spans,
        "every span read on the fast path"
    );
    assert!(edges > 0 && windows > 0);
    let with = work_attributed(black_box(&attributed));
    assert_eq!(
        with,
        (spans, edges, windows),
        "the added attributes change no fact"
    );
    println!("spans {spans} edges {edges} windows {windows}");
}

/// Validation alone, as the collector and the ingester run it on every
/// span they accept: counted separately.
#[inline(never)]
fn validation(records: &[SpanRecord]) {
    // Each counted function marks itself, so that the compiler does not
    // merge it with its twin, whose body is the same.
    black_box("validation");
    validate_all(records);
}

/// [`validation`] on the records with attributes.
#[inline(never)]
fn validation_attributed(records: &[SpanRecord]) {
    black_box("validation_attributed");
    validate_all(records);
}

#[inline(always)]
fn validate_all(records: &[SpanRecord]) {
    for record in records {
        otlp::validate(otlp::Message::TracesData, &record.value).unwrap();
    }
}

/// What is counted: everything the job does with the records. Not inlined,
/// so that callgrind can count this function alone.
#[inline(never)]
fn work(records: &[SpanRecord]) -> (usize, usize, usize) {
    black_box("work");
    work_on(records)
}

/// [`work`] on the records with attributes.
#[inline(never)]
fn work_attributed(records: &[SpanRecord]) -> (usize, usize, usize) {
    black_box("work_attributed");
    work_on(records)
}

#[inline(always)]
fn work_on(records: &[SpanRecord]) -> (usize, usize, usize) {
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
