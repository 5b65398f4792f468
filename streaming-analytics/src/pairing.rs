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

use std::cmp::Reverse;
use std::collections::binary_heap::PeekMut;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use crate::aggregate::{self, WindowEdges};
use crate::edges::{self, Edge, Rules, Scratch};
use crate::span::SpanFacts;
use spanway_schemas::id_hashing::{IdMap, id_map};

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

impl Step {
    /// Edges' room kept between records.
    pub const KEEP_EDGES: usize = 4096;

    /// Empties the step for the next record, keeping its vectors' room
    /// (up to [`Step::KEEP_EDGES`] edges: one huge trace does not pin its
    /// memory).
    pub fn clear(&mut self) {
        self.closed.clear();
        if self.edges.capacity() > Self::KEEP_EDGES {
            self.edges = Vec::new();
        } else {
            self.edges.clear();
        }
        self.traces_expired = 0;
        self.traces_evicted = 0;
        self.unpaired_calls = 0;
        self.orphan_spans = 0;
    }
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

/// Waiting traces, oldest latest-start first (ties by trace id).
///
/// A heap with one entry per waiting trace, pushed when the trace is
/// created and keyed by its latest start then. A trace's latest start only
/// grows, so an entry's key is never above its trace's: an entry found on
/// top with a key behind its trace's is given the trace's key there and
/// sinks, and the first entry found current is the oldest trace. Pushing at
/// every move instead cost about six pushes and six pops per trace on the
/// topology's traffic (a trace's spans arrive service by service, each
/// later start moving it), and those pops' sift-downs were 4–5 % of the
/// job's perf samples. A completed trace's entry leaves when it reaches
/// the top.
#[derive(Debug, Default)]
struct AgeOrder {
    heap: BinaryHeap<Reverse<(i64, u128)>>,
}

impl AgeOrder {
    /// A new waiting trace, with its first latest start.
    fn push(&mut self, last_start: i64, trace_id: u128) {
        self.heap.push(Reverse((last_start, trace_id)));
    }

    /// The oldest waiting trace and its latest start, after bringing the
    /// entries above it up to date.
    fn oldest(&mut self, traces: &IdMap<u128, PendingTrace>) -> Option<(i64, u128)> {
        while let Some(mut top) = self.heap.peek_mut() {
            let Reverse((key, trace_id)) = *top;
            match traces.get(&trace_id).map(|trace| trace.last_start) {
                Some(last_start) if last_start == key => return Some((key, trace_id)),
                // The trace moved since its entry was keyed: the entry
                // takes the trace's latest start and sinks (on drop).
                Some(last_start) if last_start > key => top.0.0 = last_start,
                // Completed, or completed and begun again with an earlier
                // start: the new trace has an entry of its own.
                _ => {
                    PeekMut::pop(top);
                }
            }
        }
        None
    }
}

/// One partition's pairing store, windows and commit bookkeeping.
#[derive(Debug)]
pub struct PartitionState {
    timing: Timing,
    clock: i64,
    next: Option<Position>,
    traces: IdMap<u128, PendingTrace>,
    by_age: AgeOrder,
    spans_held: usize,
    open: BTreeMap<i64, OpenWindow>,
    flushed: BTreeMap<i64, FlushedWindow>,
    /// Buffers reused between traces: every trace is collected and
    /// analysed once, so allocating for each was a steady share of the
    /// job's CPU.
    scratch: Scratch,
    spare: Vec<Vec<SpanFacts>>,
    /// The windows a trace's spans fall in.
    trace_windows: Vec<i64>,
}

/// Span vectors of analysed traces kept for the next traces, and the
/// largest capacity kept: at most 256 × 64 spans' room (under 2 MiB).
const SPARE_VECTORS: usize = 256;
const SPARE_CAPACITY: usize = 64;

impl PartitionState {
    /// A partition read from its committed position, or from wherever the
    /// group starts when there is none.
    pub fn new(timing: Timing, resume: Option<Resume>) -> Self {
        let mut state = PartitionState {
            timing,
            clock: NO_CLOCK,
            next: None,
            traces: id_map(),
            by_age: AgeOrder::default(),
            spans_held: 0,
            open: BTreeMap::new(),
            flushed: BTreeMap::new(),
            scratch: Scratch::default(),
            spare: Vec::new(),
            trace_windows: Vec::new(),
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
                            edges: WindowEdges::default(),
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
    pub fn process(&mut self, offset: i64, spans: impl IntoIterator<Item = SpanFacts>) -> Step {
        let mut step = Step::default();
        self.process_into(offset, spans, &mut step);
        step
    }

    /// [`PartitionState::process`] into a step the caller keeps between
    /// records (and empties with [`Step::clear`]), so that the vectors of
    /// edges and windows are not allocated again for every record.
    pub fn process_into(
        &mut self,
        offset: i64,
        spans: impl IntoIterator<Item = SpanFacts>,
        step: &mut Step,
    ) {
        if let Some(next) = self.next
            && offset < next.offset
        {
            return;
        }
        let position = Position {
            offset,
            clock: self.clock,
        };
        // One pass: the record's position keeps the clock from before it,
        // and nothing below reads the clock until every span is held.
        for span in spans {
            let trace_id = span.trace_id;
            let start = span.start_micros;
            self.clock = self.clock.max(start);
            let spare = &mut self.spare;
            let trace = self.traces.entry(trace_id).or_insert_with(|| PendingTrace {
                spans: spare.pop().unwrap_or_default(),
                first: position,
                last_start: NO_CLOCK,
            });
            // A new trace enters the age order; a later start only moves
            // the trace's own latest start, which the order reads when the
            // trace's entry comes up (see `AgeOrder`).
            if trace.spans.is_empty() {
                trace.last_start = start;
                self.by_age.push(start, trace_id);
            } else {
                trace.last_start = trace.last_start.max(start);
            }
            trace.spans.push(span);
            self.spans_held += 1;
        }
        while self.spans_held > self.timing.max_spans {
            let Some((_, oldest)) = self.by_age.oldest(&self.traces) else {
                break;
            };
            self.complete(oldest, Completion::Evicted, step);
        }
        while let Some((last_start, trace_id)) = self.by_age.oldest(&self.traces)
            && last_start.saturating_add(self.timing.wait_micros) < self.clock
        {
            self.complete(trace_id, Completion::Expired, step);
        }
        self.close(offset, step);
        self.next = Some(Position {
            offset: offset + 1,
            clock: self.clock,
        });
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
        while let Some((_, trace_id)) = self.by_age.oldest(&self.traces) {
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
        self.spans_held -= trace.spans.len();
        match why {
            Completion::Expired => step.traces_expired += 1,
            Completion::Evicted => step.traces_evicted += 1,
        }
        let watermark = self.watermark();
        let current = self.window_of(watermark.max(i64::MIN / 2));
        // Mark every window this trace (or any part of it) could feed.
        let mut marked_current = false;
        let mut windows = std::mem::take(&mut self.trace_windows);
        windows.clear();
        windows.extend(trace.spans.iter().map(|s| self.window_of(s.start_micros)));
        windows.sort_unstable();
        windows.dedup();
        for &window in &windows {
            if self.is_closed(window, watermark) {
                if let Some(flushed) = self.flushed.get_mut(&window) {
                    flushed.first = flushed.first.min(trace.first);
                }
                marked_current = true;
            } else {
                self.window_mut(window, trace.first);
            }
        }
        if windows.capacity() <= SPARE_CAPACITY {
            self.trace_windows = windows;
        }
        if marked_current {
            self.window_mut(current, trace.first);
        }
        let mut analysis = edges::analyse_in(&trace.spans, self.timing.rules, &mut self.scratch);
        step.orphan_spans += analysis.orphan_spans;
        step.unpaired_calls += analysis.unpaired_calls;
        for edge in analysis.edges.drain(..) {
            let own = self.window_of(edge.time_micros);
            let late = self.is_closed(own, watermark);
            let window = self.window_mut(if late { current } else { own }, trace.first);
            if !window.written {
                aggregate::add(&mut window.edges, &edge, late);
                step.edges.push((edge, late));
            }
        }
        self.scratch.recycle(analysis.edges);
        let mut spans = trace.spans;
        if spans.capacity() <= SPARE_CAPACITY && self.spare.len() < SPARE_VECTORS {
            spans.clear();
            self.spare.push(spans);
        }
    }

    fn window_mut(&mut self, start: i64, first: Position) -> &mut OpenWindow {
        let window = self.open.entry(start).or_insert_with(|| OpenWindow {
            edges: WindowEdges::default(),
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
mod tests;
