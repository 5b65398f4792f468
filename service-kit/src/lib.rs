//! Pieces every spanway process needs in the same form, so that operators
//! see one convention: configuration from a TOML file plus `SPANWAY_*`
//! environment overrides, `/health/live` (fed by the work loops'
//! heartbeats), `/health/ready` and `/metrics` on an operations port,
//! SIGTERM/SIGINT handling, and structured logs.

pub mod config;
pub mod http_server;
pub mod liveness;
pub mod logging;
pub mod metric_set;
pub mod open_files;
pub mod ops;
pub mod runtime;
pub mod secret;
pub mod section;
pub mod shutdown;
pub mod startup;
