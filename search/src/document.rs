//! A document as the bulk writer sends it: already serialized, with its
//! target index and a deterministic id. What the JSON says is up to the
//! process that built it (a Jaeger span, a dependency window).

/// A document ready for a bulk action.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Which kind of document, which decides the bulk action.
    pub kind: DocumentKind,
    /// Target index (or write alias).
    pub index: String,
    /// Deterministic id: redelivering the same span writes the same id, and
    /// the engine answers 409 instead of storing a duplicate. An
    /// [`DocumentKind::AppendedSpan`] is sent without it; its id then only
    /// names the span in logs.
    pub id: String,
    /// The JSON source.
    pub source: Vec<u8>,
}

/// Which of Jaeger's document kinds a [`Document`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// A span, in `jaeger-span-*`, written with `create` and its id.
    Span,
    /// A span written with `index` and no id: the engine makes one and
    /// skips the lookup each `create` costs, and a redelivered span is
    /// stored again ([`SpanIds::Engine`]).
    AppendedSpan,
    /// A service/operation pair, in `jaeger-service-*`.
    Service,
    /// An aggregate recomputed from spans (a dependency window, say). Written
    /// with `index`, not `create`: a recomputation after a replay replaces
    /// the document under the same deterministic id.
    Aggregate,
    /// An aggregate of other stored aggregates that only grows as they
    /// arrive (a roll-up of windows), rewritten by whoever saw new input.
    /// Written with `index` and an external version that grows with it
    /// (`external_gte`): a computation that read less input never replaces
    /// one that read more, however two writers' requests interleave.
    Rollup {
        /// Grows with the input: a total count, say.
        version: u64,
    },
}

impl DocumentKind {
    /// Whether the document is a span, whichever way it is written.
    pub fn is_span(self) -> bool {
        matches!(self, DocumentKind::Span | DocumentKind::AppendedSpan)
    }
}

/// Who gives span documents their ids, as configured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanIds {
    /// Derived from the span (trace id, span id, a hash of the document)
    /// and written with `create`: a span delivered again, after a restart,
    /// a rebalance or a producer's retry, is refused as already stored.
    /// The engine looks every id up before writing it, which costs it
    /// about a third of its CPU on a large index (docs/benchmarks.md).
    #[default]
    Derived,
    /// Derived as [`SpanIds::Derived`] (the span id and the hash of the
    /// document, without the trace id, which the hash covers) and led by
    /// the span's start time: 36 characters instead of 66, and rising with
    /// time, as live traffic's spans arrive. Written with `create`, so
    /// exactly once holds as with `derived`. A new id then sorts after
    /// every id of the older segments, which the engine's lookup settles
    /// from each segment's bounds without reading its terms, and the id
    /// filter is left off (it would hash every id for every segment).
    #[serde(rename = "time-led")]
    TimeLed,
    /// Made by the engine (`index` without an id), as Jaeger's own writers
    /// do: no lookup, and a span delivered again is stored twice.
    Engine,
}
