//! Everything a spanway process needs to write to Elasticsearch or
//! OpenSearch, shared by the ingester and streaming analytics so that both
//! name indices, install templates, retry and count the same way.
//!
//! Layout, in the order a document travels: [`config`] holds the
//! connection settings and [`client`] the client built from them, [`index`]
//! names the target, [`document`] is what gets sent, [`bulk`] builds and
//! cuts `_bulk` requests, [`bulk::response`] classifies every item of the
//! answer, [`bulk::writer`] sends and retries until each document has a
//! final answer, keeping documents the engine refuses for credentials or
//! rights ([`auth`]). [`templates`] and [`retention`] are installed at
//! start; [`metrics`] counts the writes.
//!
//! Metrics: each process registers [`metrics::WriterMetrics`] under its own
//! prefix, with the same names after it: `ingester_bulk_requests_total` and
//! `analytics_bulk_requests_total`, `…_bulk_failures_total`,
//! `…_documents_retried_total`, `…_bulk_auth_failures_total` and the
//! `…_bulk_latency_seconds` histogram.

pub mod auth;
pub mod bulk;
pub mod client;
pub mod config;
pub mod document;
pub mod index;
pub mod json;
pub mod metrics;
pub mod retention;
pub mod templates;
