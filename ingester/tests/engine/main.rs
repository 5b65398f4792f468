//! The ingester against the real engines where no shared service is stopped:
//! bulk limits, documents and templates, liveness with the engine away, and
//! retention; one test binary, so the ingester and librdkafka are linked
//! once. (`crash.rs`, `delivery.rs` and `outage.rs` keep binaries of their
//! own: they kill processes, block indices or stop shared nodes, and cargo
//! runs test binaries one after another.)
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod bulk_limits;
mod documents;
mod leftovers;
mod liveness;
mod retention;
