//! What streaming analytics writes, against the real broker and engines:
//! exact totals against the batch recomputation and Jaeger query, the
//! dependency-document limit, dotted dependency index names, and the
//! writer's metrics; one test binary.
//! (`exact_after_crash.rs` keeps its own: it kills processes and cuts the
//! network to the engine.)
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod accuracy;
mod dependency_date_separator;
mod jaeger_dependency_limit;
mod writer_metrics;
