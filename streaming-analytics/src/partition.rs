//! The state of one partition: traces waiting to be paired, open windows,
//! and which offset is safe to commit.
//!
//! All spans of a trace are on one partition (the topic is keyed by trace
//! id), so pairing never needs another partition, and everything here is a
//! function of the partition's records in offset order. Time is event time:
//! the partition's clock is the latest span start it has read; the pairing
//! wait and the closing of windows are measured on that clock, never on the
//! wall clock. That is what lets a replay rebuild what the first run built.
//!
//! # Exactness after a crash
//!
//! The committed offset `c` is the first record that still feeds something
//! not yet written: a waiting trace, an open window, a closed window not yet
//! stored. The commit's metadata ([`Resume`]) carries the clock just before
//! `c` and the windows already written that were fed by records before `c`
//! but closed after it. A replay from `c` with that clock closes every
//! window at the same record as the first run, and it drops whatever it
//! would add to a window on the written list (the stored document already
//! counts it) instead of overwriting that document with a partial count.
//!
//! A trace that straddles `c` is replayed without its earlier spans. Every
//! window such a fragment could add to was fed by the whole trace, so it is
//! on the written list: when a trace is analysed it marks the windows of all
//! its spans, closed ones included. The one case not covered is a full
//! pairing store: which trace is evicted early depends on what the store
//! held, which a replay does not have. Evictions are counted.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::aggregate::{self, WindowEdges};
use crate::model::{self, Edge, Rules};
use crate::span::SpanFacts;

/// The clock before anything has been read.
pub const NO_CLOCK: i64 = i64::MIN;

const METADATA_PREFIX: &str = "spanway-analytics/1";

/// Time rules of the job, in µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Length of a tumbling window.
    pub window_micros: i64,
    /// A window is written once the clock is this far past its end.
    pub lateness_micros: i64,
    /// A trace is analysed once the clock is this far past its latest span.
    pub wait_micros: i64,
    /// Spans held for pairing in this partition; past it the oldest trace is
    /// analysed early (and counted as evicted).
    pub max_spans: usize,
    /// The dependency model's switches.
    pub rules: Rules,
}

/// A place in the partition: an offset and the clock just before the
/// record at that offset was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// Kafka offset.
    pub offset: i64,
    /// Clock, µs, or [`NO_CLOCK`].
    pub clock: i64,
}

/// What a replay needs besides the offset: committed with it as metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// The committed offset and the clock there.
    pub position: Position,
    /// Starts of windows already written that records from the position on
    /// would add to again.
    pub written: Vec<i64>,
}

impl Resume {
    /// The Kafka commit metadata.
    pub fn metadata(&self) -> String {
        let written: Vec<String> = self.written.iter().map(i64::to_string).collect();
        format!(
            "{METADATA_PREFIX} clock={} written={}",
            self.position.clock,
            written.join(",")
        )
    }

    /// Reads what [`Resume::metadata`] wrote for the record at `offset`;
    /// `None` for anything else.
    pub fn from_metadata(offset: i64, metadata: &str) -> Option<Resume> {
        let rest = metadata
            .strip_prefix(METADATA_PREFIX)?
            .strip_prefix(" clock=")?;
        let (clock, written) = rest.split_once(" written=")?;
        let written = if written.is_empty() {
            Vec::new()
        } else {
            written
                .split(',')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?
        };
        Some(Resume {
            position: Position {
                offset,
                clock: clock.parse().ok()?,
            },
            written,
        })
    }
}

/// A window whose time has passed, ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedWindow {
    /// Window start, µs since the epoch.
    pub start_micros: i64,
    /// Every edge counted in it.
    pub edges: WindowEdges,
}

/// Why a trace was analysed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Completion {
    /// Quiet for the pairing wait.
    Expired,
    /// The store was full.
    Evicted,
}

/// What one step produced.
#[derive(Debug, Default)]
pub struct Step {
    /// Windows to write.
    pub closed: Vec<ClosedWindow>,
    /// Edges counted in this step, with whether each was late.
    pub edges: Vec<(Edge, bool)>,
    /// Traces analysed after the pairing wait.
    pub traces_expired: u64,
    /// Traces analysed early because the store was full.
    pub traces_evicted: u64,
    /// Client and producer spans nobody answered (counted towards a
    /// virtual peer, or dropped when virtual nodes are off).
    pub unpaired_calls: u64,
    /// Spans whose parent never arrived within the pairing wait.
    pub orphan_spans: u64,
}

#[derive(Debug)]
struct PendingTrace {
    spans: Vec<SpanFacts>,
    first: Position,
    last_start: i64,
}

#[derive(Debug)]
struct OpenWindow {
    edges: WindowEdges,
    first: Position,
    /// Written before the replay that reopened it: additions are dropped.
    written: bool,
}

#[derive(Debug)]
struct FlushedWindow {
    first: Position,
    /// Offset of the record after which the window closed.
    closed_after: i64,
    written: bool,
}

/// One partition's pairing store, windows and commit bookkeeping.
#[derive(Debug)]
pub struct PartitionState {
    timing: Timing,
    clock: i64,
    next: Option<Position>,
    traces: HashMap<u128, PendingTrace>,
    by_age: BTreeSet<(i64, u128)>,
    spans_held: usize,
    open: BTreeMap<i64, OpenWindow>,
    flushed: BTreeMap<i64, FlushedWindow>,
}

impl PartitionState {
    /// A partition read from its committed position, or from wherever the
    /// group starts when there is none.
    pub fn new(timing: Timing, resume: Option<Resume>) -> Self {
        let mut state = PartitionState {
            timing,
            clock: NO_CLOCK,
            next: None,
            traces: HashMap::new(),
            by_age: BTreeSet::new(),
            spans_held: 0,
            open: BTreeMap::new(),
            flushed: BTreeMap::new(),
        };
        if let Some(resume) = resume {
            let position = resume.position;
            state.clock = position.clock;
            state.next = Some(position);
            // Fed before the position: any position from here on is after
            // their first record.
            let before = Position {
                offset: position.offset - 1,
                clock: position.clock,
            };
            let watermark = state.watermark();
            for start in resume.written {
                if start.saturating_add(timing.window_micros) > watermark {
                    state.open.insert(
                        start,
                        OpenWindow {
                            edges: WindowEdges::new(),
                            first: before,
                            written: true,
                        },
                    );
                }
            }
        }
        state
    }

    /// Spans waiting for pairing.
    pub fn spans_held(&self) -> usize {
        self.spans_held
    }

    /// Windows open or closed but not yet written.
    pub fn windows_pending(&self) -> usize {
        self.open.values().filter(|w| !w.written).count()
            + self.flushed.values().filter(|f| !f.written).count()
    }

    /// The latest span start read, µs.
    pub fn clock(&self) -> i64 {
        self.clock
    }

    fn watermark(&self) -> i64 {
        self.clock.saturating_sub(self.timing.lateness_micros)
    }

    fn window_of(&self, micros: i64) -> i64 {
        micros.div_euclid(self.timing.window_micros) * self.timing.window_micros
    }

    fn is_closed(&self, window: i64, watermark: i64) -> bool {
        window.saturating_add(self.timing.window_micros) <= watermark
    }

    /// Reads the spans of the record at `offset`. Records before the
    /// position already read are ignored (a redelivery).
    pub fn process(&mut self, offset: i64, spans: Vec<SpanFacts>) -> Step {
        let mut step = Step::default();
        if let Some(next) = self.next
            && offset < next.offset
        {
            return step;
        }
        let position = Position {
            offset,
            clock: self.clock,
        };
        for span in &spans {
            self.clock = self.clock.max(span.start_micros);
        }
        for span in spans {
            let trace_id = span.trace_id;
            let start = span.start_micros;
            let trace = self.traces.entry(trace_id).or_insert_with(|| PendingTrace {
                spans: Vec::new(),
                first: position,
                last_start: NO_CLOCK,
            });
            if trace.last_start != NO_CLOCK {
                self.by_age.remove(&(trace.last_start, trace_id));
            }
            trace.last_start = trace.last_start.max(start);
            trace.spans.push(span);
            self.by_age.insert((trace.last_start, trace_id));
            self.spans_held += 1;
        }
        while self.spans_held > self.timing.max_spans {
            let Some(&(_, oldest)) = self.by_age.first() else {
                break;
            };
            self.complete(oldest, Completion::Evicted, &mut step);
        }
        while let Some(&(last_start, trace_id)) = self.by_age.first()
            && last_start.saturating_add(self.timing.wait_micros) < self.clock
        {
            self.complete(trace_id, Completion::Expired, &mut step);
        }
        self.close(offset, &mut step);
        self.next = Some(Position {
            offset: offset + 1,
            clock: self.clock,
        });
        step
    }

    /// The partition has been quiet (on the wall clock): analyse every
    /// waiting trace and close every window, moving the clock past them so
    /// that a replay from the resulting commit sees them closed too.
    pub fn flush_idle(&mut self) -> Step {
        let mut step = Step::default();
        let Some(next) = self.next else {
            return step;
        };
        if self.traces.is_empty() && self.open.is_empty() {
            return step;
        }
        while let Some(&(_, trace_id)) = self.by_age.first() {
            self.complete(trace_id, Completion::Expired, &mut step);
        }
        let last_window = self.open.keys().next_back().copied().unwrap_or(0);
        self.clock = self.clock.max(
            last_window
                .saturating_add(self.timing.window_micros)
                .saturating_add(self.timing.lateness_micros),
        );
        self.close(next.offset - 1, &mut step);
        self.next = Some(Position {
            offset: next.offset,
            clock: self.clock,
        });
        step
    }

    fn complete(&mut self, trace_id: u128, why: Completion, step: &mut Step) {
        let Some(trace) = self.traces.remove(&trace_id) else {
            return;
        };
        self.by_age.remove(&(trace.last_start, trace_id));
        self.spans_held -= trace.spans.len();
        match why {
            Completion::Expired => step.traces_expired += 1,
            Completion::Evicted => step.traces_evicted += 1,
        }
        let watermark = self.watermark();
        let current = self.window_of(watermark.max(i64::MIN / 2));
        // Mark every window this trace (or any part of it) could feed.
        let mut marked_current = false;
        let windows: BTreeSet<i64> = trace
            .spans
            .iter()
            .map(|s| self.window_of(s.start_micros))
            .collect();
        for window in windows {
            if self.is_closed(window, watermark) {
                if let Some(flushed) = self.flushed.get_mut(&window) {
                    flushed.first = flushed.first.min(trace.first);
                }
                marked_current = true;
            } else {
                self.window_mut(window, trace.first);
            }
        }
        if marked_current {
            self.window_mut(current, trace.first);
        }
        let analysis = model::analyse(&trace.spans, self.timing.rules);
        step.orphan_spans += analysis.orphan_spans;
        step.unpaired_calls += analysis.unpaired_calls;
        for edge in analysis.edges {
            let own = self.window_of(edge.time_micros);
            let late = self.is_closed(own, watermark);
            let window = self.window_mut(if late { current } else { own }, trace.first);
            if !window.written {
                aggregate::add(&mut window.edges, &edge, late);
                step.edges.push((edge, late));
            }
        }
    }

    fn window_mut(&mut self, start: i64, first: Position) -> &mut OpenWindow {
        let window = self.open.entry(start).or_insert_with(|| OpenWindow {
            edges: WindowEdges::new(),
            first,
            written: false,
        });
        window.first = window.first.min(first);
        window
    }

    fn close(&mut self, after_offset: i64, step: &mut Step) {
        let watermark = self.watermark();
        while let Some((&start, _)) = self.open.first_key_value()
            && self.is_closed(start, watermark)
        {
            let Some((start, window)) = self.open.pop_first() else {
                break;
            };
            let written = window.written || window.edges.is_empty();
            self.flushed.insert(
                start,
                FlushedWindow {
                    first: window.first,
                    closed_after: after_offset,
                    written,
                },
            );
            if !written {
                step.closed.push(ClosedWindow {
                    start_micros: start,
                    edges: window.edges,
                });
            }
        }
    }

    /// The documents of the window starting at `start_micros` are stored.
    pub fn mark_written(&mut self, start_micros: i64) {
        if let Some(window) = self.flushed.get_mut(&start_micros) {
            window.written = true;
        }
    }

    /// The position to commit, with what a replay from it must know;
    /// `None` before the first record.
    pub fn commit_position(&self) -> Option<Resume> {
        let mut commit = self.next?;
        let unfinished = self
            .traces
            .values()
            .map(|t| t.first)
            .chain(self.open.values().filter(|w| !w.written).map(|w| w.first))
            .chain(
                self.flushed
                    .values()
                    .filter(|f| !f.written)
                    .map(|f| f.first),
            );
        for first in unfinished {
            commit = commit.min(first);
        }
        let written = self
            .open
            .iter()
            .filter(|(_, w)| w.written && w.first.offset < commit.offset)
            .map(|(start, _)| *start)
            .chain(
                self.flushed
                    .iter()
                    .filter(|(_, f)| {
                        f.written
                            && f.first.offset < commit.offset
                            && commit.offset <= f.closed_after
                    })
                    .map(|(start, _)| *start),
            )
            .collect::<BTreeSet<i64>>()
            .into_iter()
            .collect();
        Some(Resume {
            position: commit,
            written,
        })
    }

    /// Forgets written windows that no commit at or after `committed` can
    /// concern.
    pub fn prune(&mut self, committed: Position) {
        self.flushed
            .retain(|_, f| !(f.written && f.closed_after < committed.offset));
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn a_full_store_analyses_the_oldest_trace_early() {
        let mut t = timing();
        t.max_spans = 3;
        let mut state = PartitionState::new(t, None);
        state.process(0, call(1, 0));
        let step = state.process(1, call(2, SECOND));
        assert_eq!(step.traces_evicted, 1);
        assert_eq!(state.spans_held(), 2);
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
            let mut crashes: Vec<usize> =
                (0..4).map(|_| rng.random_range(0..records.len())).collect();
            crashes.sort_unstable();
            crashes.dedup();
            let crashed = run(&records, &crashes, seed + 7, &mut Vec::new());
            assert_eq!(clean, crashed, "seed {seed}, crashes at {crashes:?}");
        }
    }
}
