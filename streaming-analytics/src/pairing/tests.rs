use std::collections::BTreeMap;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::span::Kind;

const SECOND: i64 = 1_000_000;

fn timing() -> Timing {
    Timing {
        window_micros: 60 * SECOND,
        lateness_micros: 20 * SECOND,
        wait_micros: 10 * SECOND,
        max_spans: 10_000,
        rules: Rules::default(),
    }
}

fn span(
    trace: u128,
    id: u64,
    parent: Option<u64>,
    service: &str,
    kind: Kind,
    start: i64,
) -> SpanFacts {
    SpanFacts {
        trace_id: trace,
        span_id: id,
        parent_id: parent,
        service: Arc::from(service),
        kind,
        start_micros: start,
        duration_micros: 1_000,
        error: false,
        peer: None,
    }
}

/// A call frontend → cart in trace `t` starting at `start`.
fn call(t: u128, start: i64) -> Vec<SpanFacts> {
    vec![
        span(t, 1, None, "frontend", Kind::Client, start),
        span(t, 2, Some(1), "cart", Kind::Server, start + 10),
    ]
}

fn calls(closed: &[ClosedWindow]) -> u64 {
    closed
        .iter()
        .flat_map(|w| w.edges.values())
        .map(|s| s.calls)
        .sum()
}

#[test]
fn windows_close_on_event_time_and_commit_follows() {
    let mut state = PartitionState::new(timing(), None);
    let step = state.process(0, call(1, 0));
    assert!(step.closed.is_empty());
    assert_eq!(state.spans_held(), 2);
    assert_eq!(state.commit_position().unwrap().position.offset, 0);
    // 70 s later: the trace expires (wait 10 s), window [0, 60) stays
    // open until the clock passes 60 + 20 s.
    let step = state.process(1, call(2, 70 * SECOND));
    assert_eq!(step.traces_expired, 1);
    assert!(step.closed.is_empty());
    let step = state.process(2, call(3, 81 * SECOND));
    assert_eq!(step.closed.len(), 1);
    assert_eq!(step.closed[0].start_micros, 0);
    assert_eq!(calls(&step.closed), 1);
    // Closed but not written: offset 0 must stay uncommitted.
    assert_eq!(state.commit_position().unwrap().position.offset, 0);
    state.mark_written(0);
    let commit = state.commit_position().unwrap();
    assert_eq!(commit.position.offset, 1, "trace 2 still waits");
    assert_eq!(commit.position.clock, 10, "clock before offset 1");
    assert_eq!(
        commit.written,
        [0],
        "window 0 was fed before offset 1 and closed after it"
    );
}

#[test]
fn a_replay_drops_what_written_windows_already_count() {
    let resume = Resume {
        position: Position {
            offset: 1,
            clock: 10,
        },
        written: vec![0],
    };
    let mut state = PartitionState::new(timing(), Some(resume));
    state.process(1, call(2, 5 * SECOND));
    let step = state.process(2, call(3, 40 * SECOND));
    assert_eq!(step.traces_expired, 1);
    assert!(step.edges.is_empty(), "window 0 already counts trace 2");
    let step = state.process(3, call(4, 81 * SECOND));
    assert!(step.closed.is_empty(), "window 0 is not written again");
    let commit = state.commit_position().unwrap();
    assert!(commit.written.is_empty() || commit.written == [0]);
}

#[test]
fn late_edges_are_counted_in_the_current_window_and_flagged() {
    let mut state = PartitionState::new(timing(), None);
    state.process(0, call(1, 200 * SECOND));
    // Trace 2 started at 10 s, long after window [0, 60) passed.
    let first = state.process(1, call(2, 10 * SECOND));
    let mut step = state.flush_idle();
    let late: Vec<bool> = first
        .edges
        .iter()
        .chain(&step.edges)
        .map(|(_, late)| *late)
        .collect();
    assert_eq!(late, [true, false]);
    step.closed.extend(first.closed);
    let window = step
        .closed
        .iter()
        .find(|w| w.edges.values().any(|s| s.late == 1))
        .unwrap();
    assert_eq!(window.start_micros, 180 * SECOND, "window of the watermark");
}

#[test]
fn unpaired_calls_and_orphans_are_counted() {
    let mut state = PartitionState::new(timing(), None);
    state.process(
        0,
        vec![
            span(1, 1, None, "a", Kind::Client, 0),
            span(1, 2, Some(7), "a", Kind::Server, 0),
        ],
    );
    let step = state.flush_idle();
    assert_eq!(step.unpaired_calls, 1);
    assert_eq!(step.orphan_spans, 1);
}

/// A state with room for `max_spans`, after two calls (traces 1 and 2, a
/// second apart, two spans each), and the step of the second.
fn after_two_calls(max_spans: usize) -> (PartitionState, Step) {
    let mut t = timing();
    t.max_spans = max_spans;
    let mut state = PartitionState::new(t, None);
    state.process(0, call(1, 0));
    let step = state.process(1, call(2, SECOND));
    (state, step)
}

#[test]
fn a_full_store_analyses_the_oldest_trace_early() {
    let (state, step) = after_two_calls(3);
    assert_eq!(step.traces_evicted, 1);
    assert_eq!(state.spans_held(), 2);
}

#[test]
fn the_store_evicts_by_latest_start_after_a_trace_moves() {
    let (mut state, _) = after_two_calls(4);
    // Trace 1's latest start moves past trace 2's: trace 2 is now the oldest.
    let step = state.process(2, vec![span(1, 3, Some(2), "db", Kind::Client, 2 * SECOND)]);
    assert_eq!(step.traces_evicted, 1);
    assert_eq!(state.spans_held(), 3, "trace 1 (three spans) stays");
    let step = state.flush_idle();
    assert_eq!(step.traces_expired, 1);
    assert_eq!(state.spans_held(), 0);
}

fn pending(last_start: i64) -> PendingTrace {
    PendingTrace {
        spans: Vec::new(),
        first: Position {
            offset: 0,
            clock: NO_CLOCK,
        },
        last_start,
    }
}

#[test]
fn age_order_follows_moved_and_completed_traces() {
    let mut traces = id_map();
    let mut order = AgeOrder::default();
    traces.insert(1, pending(5));
    order.push(5, 1);
    traces.insert(2, pending(3));
    order.push(3, 2);
    assert_eq!(order.oldest(&traces), Some((3, 2)));
    // Trace 2 moves past trace 1 without a push of its own.
    traces.get_mut(&2).unwrap().last_start = 7;
    assert_eq!(order.oldest(&traces), Some((5, 1)));
    assert_eq!(order.heap.len(), 2, "one entry per waiting trace");
    traces.remove(&1);
    assert_eq!(order.oldest(&traces), Some((7, 2)));
    assert_eq!(
        order.heap.len(),
        1,
        "a completed trace's entry leaves on top"
    );
    // A trace id seen again after its trace completed is a new trace, here
    // with an earlier start than the old entry's key.
    traces.remove(&2);
    traces.insert(2, pending(4));
    order.push(4, 2);
    assert_eq!(order.oldest(&traces), Some((4, 2)));
    traces.remove(&2);
    assert_eq!(order.oldest(&traces), None);
    assert!(order.heap.is_empty());
}

/// Whatever the moves, completions and reused ids, the order names the
/// waiting trace with the smallest (latest start, trace id), as a search
/// of every waiting trace would: that order decides which traces complete
/// first, and replays depend on it being the same.
#[test]
fn age_order_always_names_the_smallest_waiting_trace() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut traces: IdMap<u128, PendingTrace> = id_map();
    let mut order = AgeOrder::default();
    for _ in 0..20_000 {
        match rng.random_range(0..10) {
            0..4 => {
                let id = rng.random_range(0..200u128);
                let start = rng.random_range(0..1_000i64);
                match traces.get_mut(&id) {
                    Some(trace) => trace.last_start = trace.last_start.max(start),
                    None => {
                        traces.insert(id, pending(start));
                        order.push(start, id);
                    }
                }
            }
            4..7 => {
                if let Some((_, id)) = order.oldest(&traces) {
                    traces.remove(&id);
                }
            }
            _ => {}
        }
        let expected = traces
            .iter()
            .map(|(&id, trace)| (trace.last_start, id))
            .min();
        assert_eq!(order.oldest(&traces), expected);
        assert!(order.heap.len() <= 2 * traces.len().max(1));
    }
}

#[test]
fn metadata_round_trips() {
    for written in [vec![], vec![60_000_000, -60_000_000]] {
        let resume = Resume {
            position: Position {
                offset: 5,
                clock: -3,
            },
            written,
        };
        assert_eq!(Resume::from_metadata(5, &resume.metadata()), Some(resume));
    }
    assert_eq!(Resume::from_metadata(5, "something else"), None);
    assert_eq!(
        Resume::from_metadata(5, "spanway-analytics/1 clock=x written="),
        None
    );
}

/// A record stream with traces spread over several minutes, spans of
/// one trace spread over several records, out of order in time.
fn stream(seed: u64) -> Vec<Vec<SpanFacts>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let services = ["a", "b", "c", "d"];
    let mut records = Vec::new();
    let mut pending: Vec<Vec<SpanFacts>> = Vec::new();
    for t in 0..400u128 {
        let start = (t as i64) * SECOND + rng.random_range(0..30) * SECOND;
        let mut spans = Vec::new();
        let root = span(t, 1, None, "a", Kind::Server, start);
        spans.push(root);
        for i in 0..rng.random_range(1..6u64) {
            let client = span(t, 10 + i, Some(1), "a", Kind::Client, start + 100);
            let service = services[rng.random_range(0..services.len())];
            spans.push(client);
            if rng.random_bool(0.8) {
                spans.push(span(
                    t,
                    100 + i,
                    Some(10 + i),
                    service,
                    Kind::Server,
                    start + 200,
                ));
            }
        }
        // Split the trace over one to three records, emitted later.
        let parts = rng.random_range(1..4);
        let size = spans.len().div_ceil(parts);
        for chunk in spans.chunks(size) {
            pending.push(chunk.to_vec());
        }
        while pending.len() > 5 {
            let i = rng.random_range(0..pending.len());
            records.push(pending.swap_remove(i));
        }
    }
    records.extend(pending);
    records
}

/// Runs `records`; "crashes" at each offset in `crashes` (state lost,
/// resumed from the last commit, with a random subset of closed windows
/// written). Returns the last version of each written window.
fn run(
    records: &[Vec<SpanFacts>],
    crashes: &[usize],
    seed: u64,
    commits: &mut Vec<i64>,
) -> BTreeMap<i64, WindowEdges> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut written = BTreeMap::new();
    let mut state = PartitionState::new(timing(), None);
    let mut committed: Option<Resume> = None;
    let mut offset = 0usize;
    let mut crashes = crashes.iter().peekable();
    let mut unwritten: Vec<ClosedWindow> = Vec::new();
    loop {
        if crashes.peek().is_some_and(|c| **c == offset) {
            crashes.next();
            // Windows closed but not yet written are lost with the process.
            unwritten.clear();
            state = PartitionState::new(timing(), committed.clone());
            offset = committed.as_ref().map_or(0, |c| c.position.offset as usize);
            continue;
        }
        let step = if offset < records.len() {
            state.process(offset as i64, records[offset].clone())
        } else {
            state.flush_idle()
        };
        unwritten.extend(step.closed);
        // Write some of what is waiting, in order.
        let n = rng.random_range(0..=unwritten.len());
        for window in unwritten.drain(..n) {
            state.mark_written(window.start_micros);
            written.insert(window.start_micros, window.edges);
        }
        if rng.random_bool(0.3)
            && let Some(c) = state.commit_position()
        {
            assert!(
                committed
                    .as_ref()
                    .is_none_or(|old| old.position.offset <= c.position.offset),
                "commit went back"
            );
            state.prune(c.position);
            commits.push(c.position.offset);
            committed = Some(c);
        }
        if offset >= records.len() {
            for window in unwritten.drain(..) {
                state.mark_written(window.start_micros);
                written.insert(window.start_micros, window.edges);
            }
            if crashes.peek().is_none() {
                break;
            }
            crashes.next();
            continue;
        }
        offset += 1;
    }
    written
}

#[test]
fn replay_after_crashes_rebuilds_every_window_exactly() {
    for seed in 0..20 {
        let records = stream(seed);
        let mut commits = Vec::new();
        let clean = run(&records, &[], seed, &mut commits);
        // Commits must advance while records stream, not only at the end.
        let middle = records.len() as i64 / 2;
        assert!(
            commits
                .iter()
                .any(|c| (middle..records.len() as i64).contains(c)),
            "seed {seed}: no commit in the second half before the end: {commits:?}"
        );
        let total: u64 = clean
            .values()
            .flat_map(|w| w.values())
            .map(|s| s.calls)
            .sum();
        assert!(total > 400, "the stream makes edges ({total})");
        let mut rng = StdRng::seed_from_u64(seed + 1000);
        let mut crashes: Vec<usize> = (0..4).map(|_| rng.random_range(0..records.len())).collect();
        crashes.sort_unstable();
        crashes.dedup();
        let crashed = run(&records, &crashes, seed + 7, &mut Vec::new());
        assert_eq!(clean, crashed, "seed {seed}, crashes at {crashes:?}");
    }
}
