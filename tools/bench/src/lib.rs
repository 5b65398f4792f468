//! On-demand benchmarks of spanway's components against real services.
//! Not part of the test suite: `cargo run --release -p spanway-bench --
//! ingester --help` (or `collector`, `analytics`, `freshness`) says how to run one, and
//! `docs/benchmarks.md` holds the figures, the machine and the commands.

pub mod analytics;
pub mod collector;
pub mod freshness;
pub mod measure;
pub mod null_endpoint;
pub mod peers;
pub mod raw_load;
pub mod report;
pub mod runs;
pub mod workload;
