//! Sends documents to the engine until each is stored or refused for good.
//!
//! A batch handed to [`BulkWriter::write_all`] comes back only when every
//! document in it has an answer it can keep: stored (or already stored),
//! or refused for a reason retrying cannot cure. Anything passing (an
//! outage, a full queue, a timeout) is retried with backoff for as long as
//! it takes, so the caller never treats an unwritten document as written.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use elasticsearch::http::Method;
use elasticsearch::http::headers::{CONTENT_ENCODING, HeaderMap, HeaderValue};
use elasticsearch::indices::{
    IndicesCreateParts, IndicesExistsAliasParts, IndicesGetMappingParts,
    IndicesPutIndexTemplateParts, IndicesPutTemplateParts,
};
use rand::Rng;
use spanway_service_kit::liveness::Heartbeat;
use tokio_util::sync::CancellationToken;

use crate::auth::{self, AuthFailure};
use crate::bulk::body::{self, Limits, split};
use crate::bulk::buffers::BodyBuffers;
use crate::bulk::log_pace::{LogPace, REPEAT_EVERY};
use crate::bulk::response::{BulkAnswer, ItemOutcome, classify_answer};
use crate::client::EngineClient;
use crate::document::{Document, DocumentKind};
use crate::index::{Family, Prefix};
use crate::metrics::WriterMetrics;
use crate::templates::{self, IdLookupFilter, RefreshInterval, TemplateApi};

/// An error and its causes in one line: a transport error alone says
/// "error sending request", its cause whether that was a refused
/// connection or the request timeout.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = inner.source();
    }
    text
}

/// What [`BulkWriter::install_templates`] installs beside Jaeger's mappings.
#[derive(Debug, Clone)]
pub struct TemplateOptions<'a> {
    /// Primary shards of new indices.
    pub shards: u32,
    /// Replicas of new indices.
    pub replicas: u32,
    /// The template API, or `Auto` to pick it from the server.
    pub api: TemplateApi,
    /// The span indices' Bloom filter over ids.
    pub id_lookup_filter: IdLookupFilter,
    /// How often span and service indices refresh.
    pub refresh_interval: RefreshInterval,
    /// Each template carries the `-read` alias (alias mode), so that an
    /// index any rollover creates (the retention policy's, Jaeger's
    /// rollover job, an operator's) is searched at once.
    pub read_aliases: bool,
    /// The settings that attach the retention policy, when there is one.
    pub lifecycle: Option<&'a crate::retention::Lifecycle>,
    /// Span tag fields with a mapping of their own
    /// ([`templates::add_tag_field_types`]).
    pub tag_fields: &'a [(String, serde_json::Value)],
    /// How span indices map `references`.
    pub references: templates::ReferencesMapping,
    /// Which of a span's own fields span indices index.
    pub span_fields: templates::SpanFieldsMapping,
}

/// What [`BulkWriter::install_templates`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstalledTemplates {
    /// The template API used.
    pub api: templates::Api,
    /// Whether the span template sets the id filter.
    pub id_lookup_filter: bool,
}

/// Failures that stop the writer.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// A template install failed.
    #[error("cannot install index template {name}: {reason}")]
    Template { name: String, reason: String },
    /// Shutdown arrived while documents were still unwritten; their offsets
    /// are not committed, so they will be read again.
    #[error("shutdown before every document was written")]
    Cancelled,
    /// The span indices' mappings could not be read.
    #[error("cannot read the mappings of {pattern}: {reason}")]
    Mapping { pattern: String, reason: String },
}

/// A document the engine will never accept, with its reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// The document.
    pub document: Document,
    /// Its position among the documents given to [`BulkWriter::write_all`],
    /// so a caller can tell where it came from without a map by id.
    pub position: usize,
    /// The engine's status, error type and reason.
    pub reason: String,
}

/// The parts of a `_bulk` answer the writer reads (`filter_path`): each
/// item's status and error, and a whole-request error. The engine then
/// leaves out each item's index, id, version, shard counts and sequence
/// numbers: seven eighths of the bytes of an answer of stored documents,
/// which it would write and the writer parse for nothing. Every item
/// keeps its status, so the answer still has one item per document sent.
pub const ANSWER_FIELDS: &str = "items.*.status,items.*.error.type,items.*.error.reason,error";

/// At most one error line per this long while the engine refuses our
/// writes for credentials or rights: each retry would log one otherwise.
pub const AUTH_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// How the writer cuts and retries requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterOptions {
    /// The most one bulk request carries.
    pub limits: Limits,
    /// First retry delay after a failed bulk request or item; doubles each time.
    pub retry_initial_backoff: Duration,
    /// Ceiling of the retry delay.
    pub retry_max_backoff: Duration,
    /// A bulk request without an answer within this time is retried.
    pub request_timeout: Duration,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            limits: Limits {
                max_documents: 1000,
                max_bytes: 5 * 1024 * 1024,
            },
            retry_initial_backoff: Duration::from_millis(100),
            retry_max_backoff: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// The bulk writer.
#[derive(Debug, Clone)]
pub struct BulkWriter {
    engine: EngineClient,
    initial_backoff: Duration,
    max_backoff: Duration,
    request_timeout: Duration,
    /// The `_bulk` request's own `timeout` parameter: see [`shard_wait`].
    shard_wait: String,
    limits: Limits,
    metrics: WriterMetrics,
    auth: Arc<AuthState>,
    bodies: Arc<BodyBuffers>,
}

/// Body buffers kept for reuse: as many as the ingester's default bulk
/// requests in flight, each of at most one request's byte limit and a
/// quarter more (a single document over the limit is sent alone, above it).
const KEPT_BODIES: usize = 4;

/// How long the engine may wait for a shard to take a bulk request's
/// documents (the `timeout` parameter of `_bulk`), for a given request
/// timeout: half of it, at least a second.
///
/// The engine's default is a minute. A shard without an active primary
/// (an index turned red when a node died before its replicas were in
/// sync) then holds the whole request past the ingester's own timeout, so
/// nothing of it is stored and the retry learns nothing. Waiting less than
/// the request timeout, the engine answers: the documents for healthy
/// shards are stored, those for the missing one come back as 503
/// `unavailable_shards_exception` naming the index and shard, and only
/// they are retried.
pub fn shard_wait(request_timeout: Duration) -> Duration {
    (request_timeout / 2).max(Duration::from_secs(1))
}

impl BulkWriter {
    /// A writer sending through `engine`.
    pub fn new(engine: EngineClient, options: WriterOptions, metrics: WriterMetrics) -> Self {
        BulkWriter {
            engine,
            initial_backoff: options.retry_initial_backoff,
            max_backoff: options.retry_max_backoff,
            request_timeout: options.request_timeout,
            shard_wait: format!("{}ms", shard_wait(options.request_timeout).as_millis()),
            limits: options.limits,
            metrics,
            auth: Arc::default(),
            bodies: Arc::new(BodyBuffers::new(
                KEPT_BODIES,
                options
                    .limits
                    .max_bytes
                    .saturating_add(options.limits.max_bytes / 4),
            )),
        }
    }

    /// The most one request carries, so a caller can build documents a
    /// request at a time.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether writes can go through: the engine answers and accepts the
    /// credentials, and the last bulk answer did not refuse our writes for
    /// credentials or rights (a role without write rights passes the first
    /// check).
    pub async fn ready(&self) -> bool {
        !self.auth.failing.load(Ordering::Relaxed) && self.engine.reachable().await
    }

    /// The client, for the start-up steps kept in their own modules.
    pub fn engine(&self) -> &EngineClient {
        &self.engine
    }

    /// Installs the span and service templates with the API `options.api`
    /// asks for, and the span indices' id filter as `options.id_lookup_filter`
    /// asks for; both are decided from one `GET /` when either is `Auto`.
    /// See [`TemplateOptions`] for the rest.
    pub async fn install_templates(
        &self,
        prefix: &Prefix,
        options: &TemplateOptions<'_>,
    ) -> Result<InstalledTemplates, WriterError> {
        let info = if options.api == TemplateApi::Auto
            || options.id_lookup_filter.needs_server_info()
            || options.span_fields == templates::SpanFieldsMapping::Searched
        {
            Some(self.server_info().await?)
        } else {
            None
        };
        let api = match options.api {
            TemplateApi::Legacy => templates::Api::Legacy,
            TemplateApi::Composable => templates::Api::Composable,
            TemplateApi::Auto => info
                .as_ref()
                .map_or(templates::Api::Legacy, templates::detect),
        };
        let id_lookup_filter = options.id_lookup_filter.wanted(info.as_ref());
        let mut span = templates::span_template(prefix, options.shards, options.replicas);
        templates::add_tag_field_types(&mut span, options.tag_fields);
        if options.references == templates::ReferencesMapping::Stored {
            templates::store_references_only(&mut span);
        }
        if options.span_fields == templates::SpanFieldsMapping::Searched {
            let doc_values_search = info
                .as_ref()
                .is_some_and(templates::doc_values_search_supported);
            templates::index_searched_fields_only(&mut span, doc_values_search);
        }
        if id_lookup_filter {
            let filter = serde_json::Map::from_iter([(
                templates::ID_LOOKUP_FILTER_SETTING.to_owned(),
                serde_json::Value::Bool(true),
            )]);
            templates::add_settings(&mut span, filter);
        }
        let mut service = templates::service_template(prefix, options.shards, options.replicas);
        for body in [&mut span, &mut service] {
            templates::add_settings(body, options.refresh_interval.index_settings());
        }
        if let Some(lifecycle) = options.lifecycle {
            for (body, kind) in [(&mut span, Family::Span), (&mut service, Family::Service)] {
                templates::add_settings(body, lifecycle.index_settings(kind));
                templates::add_aliases(body, lifecycle.index_aliases(kind));
            }
        }
        if options.read_aliases {
            for (body, kind) in [(&mut span, Family::Span), (&mut service, Family::Service)] {
                let read =
                    serde_json::Map::from_iter([(prefix.read_alias(kind), serde_json::json!({}))]);
                templates::add_aliases(body, read);
            }
        }
        let all = vec![
            (prefix.base(Family::Span), span),
            (prefix.base(Family::Service), service),
        ];
        self.put_templates(all, api).await?;
        Ok(InstalledTemplates {
            api,
            id_lookup_filter,
        })
    }

    async fn server_info(&self) -> Result<serde_json::Value, WriterError> {
        self.engine.server_info().await.map_err(|error| {
            let reason = match &error {
                crate::client::InfoError::Refused { status, body } => {
                    format!("GET / answered {}", self.explain(*status, body, "GET /"))
                }
                crate::client::InfoError::Unreachable(_) => error.to_string(),
            };
            WriterError::Template {
                name: "(server detection)".into(),
                reason,
            }
        })
    }

    /// The template API to use: `choice`, or the one the server understands
    /// best when `Auto`.
    pub async fn template_api(&self, choice: TemplateApi) -> Result<templates::Api, WriterError> {
        Ok(match choice {
            TemplateApi::Legacy => templates::Api::Legacy,
            TemplateApi::Composable => templates::Api::Composable,
            TemplateApi::Auto => templates::detect(&self.server_info().await?),
        })
    }

    /// Installs `(name, legacy template body)` pairs with `api`; composable
    /// bodies are derived from the legacy ones.
    pub async fn put_templates(
        &self,
        all: Vec<(String, serde_json::Value)>,
        api: templates::Api,
    ) -> Result<(), WriterError> {
        for (name, body) in all {
            let failure = |reason: String| WriterError::Template {
                name: name.clone(),
                reason,
            };
            let sent = match api {
                templates::Api::Legacy => {
                    self.engine
                        .client()
                        .indices()
                        .put_template(IndicesPutTemplateParts::Name(&name))
                        .body(body)
                        .send()
                        .await
                }
                templates::Api::Composable => {
                    self.engine
                        .client()
                        .indices()
                        .put_index_template(IndicesPutIndexTemplateParts::Name(&name))
                        .body(templates::composable(body))
                        .send()
                        .await
                }
            };
            let response = sent.map_err(|e| failure(e.to_string()))?;
            if !response.status_code().is_success() {
                let status = response.status_code();
                let text = response.text().await.unwrap_or_default();
                return Err(failure(self.explain(status.as_u16(), &text, &name)));
            }
        }
        Ok(())
    }

    /// An engine refusal at start, with the setting to fix when it refused
    /// our credentials (401) or rights (403): the same advice bulk writes
    /// log, so an operator reads one vocabulary.
    fn explain(&self, status: u16, text: &str, target: &str) -> String {
        if status != 401 && status != 403 {
            return format!("{status}: {text}");
        }
        let failure = AuthFailure {
            status,
            reason: text.chars().take(300).collect(),
        };
        let method = self.engine.auth_method();
        format!(
            "{status}: {}; check {}: {}",
            failure.reason,
            auth::setting_at_fault(&method),
            auth::advice(&method, self.engine.client_certificate(), &failure, target)
        )
    }

    /// The names of the fields in the `tag` and `process.tag` objects of
    /// the span indices of `prefix` (dots replaced, as the engine has
    /// them): the newest index's first (by name: the latest day, or the
    /// latest rollover), each index's span fields before its process
    /// fields, in name order. Empty where there is no span index yet.
    pub async fn tag_field_names(&self, prefix: &Prefix) -> Result<Vec<String>, WriterError> {
        let pattern = prefix.pattern(Family::Span);
        let failure = |reason: String| WriterError::Mapping {
            pattern: pattern.clone(),
            reason,
        };
        let response = self
            .engine
            .client()
            .indices()
            .get_mapping(IndicesGetMappingParts::Index(&[pattern.as_str()]))
            .allow_no_indices(true)
            .ignore_unavailable(true)
            // Names and types only: an index of hundreds of fields, read for
            // each of a month of days, stays small.
            .filter_path(&[
                "*.mappings.properties.tag.properties.*.type",
                "*.mappings.properties.process.properties.tag.properties.*.type",
            ])
            .request_timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| failure(e.to_string()))?;
        let status = response.status_code();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(failure(self.explain(status.as_u16(), &text, &pattern)));
        }
        let mappings: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| failure(format!("unreadable answer: {e}")))?;
        Ok(tag_fields_of(&mappings))
    }

    /// In rollover mode, creates `<prefix>jaeger-{span,service}-000001`
    /// carrying the `-write` (write index) and `-read` aliases, unless the
    /// write alias exists already. This is what Jaeger's rollover `init`
    /// step does; later rollovers are the lifecycle policy's job.
    pub async fn ensure_aliases(&self, prefix: &Prefix) -> Result<(), WriterError> {
        for family in [Family::Span, Family::Service] {
            let write = prefix.write_alias(family);
            let read = prefix.read_alias(family);
            let failure = |reason: String| WriterError::Template {
                name: write.clone(),
                reason,
            };
            let exists = self
                .engine
                .client()
                .indices()
                .exists_alias(IndicesExistsAliasParts::Name(&[write.as_str()]))
                .send()
                .await
                .map_err(|e| failure(e.to_string()))?;
            if exists.status_code().is_success() {
                continue;
            }
            let first = prefix.first_rollover_index(family);
            let response = self
                .engine
                .client()
                .indices()
                .create(IndicesCreateParts::Index(&first))
                .body(serde_json::json!({
                    "aliases": {write.as_str(): {"is_write_index": true}, read.as_str(): {}}
                }))
                .send()
                .await
                .map_err(|e| failure(e.to_string()))?;
            let status = response.status_code();
            let text = response.text().await.unwrap_or_default();
            // Another ingester may have created it a moment ago.
            if !status.is_success() && !text.contains("resource_already_exists_exception") {
                return Err(failure(self.explain(status.as_u16(), &text, &first)));
            }
        }
        Ok(())
    }

    /// Writes every document, in as many bulk requests as `bulk.max_documents`
    /// and `bulk.max_bytes` require, one after the other: the caller's
    /// concurrency (`bulk.max_in_flight` batches) stays the number of
    /// requests in flight. Passing failures, and refusals for credentials
    /// or rights, are retried with exponential backoff and jitter for as
    /// long as it takes; the result lists the documents refused for good. Returns [`WriterError::Cancelled`] if
    /// `cancel` fires while documents remain unwritten; then nothing may be
    /// treated as durable, even the requests already answered, since the
    /// caller's unit of durability is the whole call.
    ///
    /// `heartbeat` beats after every answer and every back-off, so a write
    /// that retries against a down engine looks alive for as long as it
    /// retries, and one stuck past its request timeout does not: the gap
    /// between two beats is at most `request_timeout` or `retry_max_backoff`.
    pub async fn write_all(
        &self,
        documents: Vec<Document>,
        cancel: &CancellationToken,
        heartbeat: &Heartbeat,
    ) -> Result<Vec<Rejected>, WriterError> {
        let mut rejected = Vec::new();
        let mut first = 0;
        for request in split(documents, self.limits) {
            let count = request.len();
            rejected.extend(
                self.write_request(request, first, cancel, heartbeat)
                    .await?,
            );
            first += count;
        }
        Ok(rejected)
    }

    /// Writes documents that fit one request until each is stored or
    /// refused; retries only ever send a subset, so they fit as well.
    async fn write_request(
        &self,
        mut pending: Vec<Document>,
        first: usize,
        cancel: &CancellationToken,
        heartbeat: &Heartbeat,
    ) -> Result<Vec<Rejected>, WriterError> {
        let mut rejected = Vec::new();
        // Where each pending document stands in `write_all`'s input.
        let mut positions: Vec<usize> = (first..first + pending.len()).collect();
        let mut backoff = self.initial_backoff;
        let mut attempt = 0u32;
        let mut failed_log = LogPace::from_first(REPEAT_EVERY);
        let mut blocked_log = LogPace::from_first(REPEAT_EVERY);
        let mut passing_log = LogPace::after(REPEAT_EVERY, Instant::now());
        while !pending.is_empty() {
            heartbeat.beat();
            let answer = self.send(&pending).await;
            heartbeat.beat();
            let mut retry = Vec::new();
            let mut retry_positions = Vec::new();
            match answer {
                BulkAnswer::Items(outcomes) => {
                    let mut refused = None;
                    let mut blocked = None;
                    let mut passing = None;
                    for ((doc, position), outcome) in
                        pending.into_iter().zip(positions).zip(outcomes)
                    {
                        match outcome {
                            ItemOutcome::Stored => {}
                            ItemOutcome::AlreadyStored => {
                                if doc.kind == DocumentKind::Span {
                                    self.metrics.spans_already_stored.inc();
                                }
                            }
                            ItemOutcome::Retry(reason) => {
                                tracing::debug!(index = %doc.index, id = %doc.id, %reason, "document will be retried");
                                if passing.is_none() {
                                    passing = Some((reason, doc.index.clone()));
                                }
                                retry.push(doc);
                                retry_positions.push(position);
                            }
                            ItemOutcome::Blocked(reason) => {
                                self.metrics.documents_blocked.inc();
                                if blocked.is_none() {
                                    blocked = Some((reason, doc.index.clone()));
                                }
                                retry.push(doc);
                                retry_positions.push(position);
                            }
                            ItemOutcome::Unauthorized(failure) => {
                                if refused.is_none() {
                                    refused = Some((failure, doc.index.clone()));
                                }
                                retry.push(doc);
                                retry_positions.push(position);
                            }
                            ItemOutcome::Rejected(reason) => rejected.push(Rejected {
                                document: doc,
                                position,
                                reason,
                            }),
                        }
                    }
                    match refused {
                        Some((failure, index)) => self.auth_refused(&failure, &index),
                        None => self.auth_accepted(),
                    }
                    // A passing refusal (a full queue, a shard moving) usually
                    // clears in a few tries; one that lasts is worth a line
                    // with its reason.
                    if let Some((reason, index)) = passing
                        && passing_log.due(Instant::now())
                    {
                        tracing::warn!(%index, %reason, attempt, documents = retry.len(), "documents still refused for a passing reason; retrying");
                    }
                    // One line per block and batch at first, then one per period.
                    if let Some((reason, index)) = blocked
                        && blocked_log.due(Instant::now())
                    {
                        tracing::warn!(%index, %reason, attempt, "the index refuses writes; retrying until the block is lifted");
                    }
                }
                BulkAnswer::Unauthorized(failure) => {
                    if let Some(doc) = pending.first() {
                        self.auth_refused(&failure, &doc.index);
                    }
                    retry = pending;
                    retry_positions = positions;
                }
                BulkAnswer::Failed(reason) => {
                    // One line per outage and batch at first, then one per period.
                    if failed_log.due(Instant::now()) {
                        tracing::warn!(%reason, documents = pending.len(), attempt, "bulk request failed; retrying");
                    }
                    retry = pending;
                    retry_positions = positions;
                }
            }
            pending = retry;
            positions = retry_positions;
            if pending.is_empty() {
                break;
            }
            self.metrics.documents_retried.inc_by(pending.len() as u64);
            let jitter = rand::rng().random_range(0.5..1.0);
            tokio::select! {
                _ = cancel.cancelled() => return Err(WriterError::Cancelled),
                _ = tokio::time::sleep(backoff.mul_f64(jitter)) => {}
            }
            backoff = (backoff * 2).min(self.max_backoff);
            attempt += 1;
        }
        Ok(rejected)
    }

    /// One bulk request and what its answer says.
    async fn send(&self, docs: &[Document]) -> BulkAnswer {
        let mut body = self.bodies.take();
        body::write_body(&mut body, docs);
        self.metrics.bulk_requests.inc();
        let started = std::time::Instant::now();
        let response = self.send_body(body).await;
        self.metrics
            .bulk_latency
            .observe(started.elapsed().as_secs_f64());
        let answer = match response {
            Ok((status, body)) => classify_answer(status, &body, docs.len()),
            Err(reason) => BulkAnswer::Failed(reason),
        };
        if matches!(answer, BulkAnswer::Failed(_)) {
            self.metrics.bulk_failures.inc();
        }
        answer
    }

    /// Sends one `_bulk` body; the answer's status and bytes.
    /// The uncompressed body's buffer is kept for the next request once the
    /// client has let go of it.
    async fn send_body(&self, body: Vec<u8>) -> Result<(u16, bytes::Bytes), String> {
        let mut headers = HeaderMap::new();
        let (payload, reusable) = match self.engine.gzip_level() {
            Some(level) => {
                headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                let compressed = body::gzipped(&body, level)
                    .map_err(|e| format!("compressing the body: {e}"))?;
                self.bodies.give(body);
                (compressed, false)
            }
            None => (body, true),
        };
        self.metrics.bulk_request_bytes.inc_by(payload.len() as u64);
        // Sent as `Bytes` through the transport, not as the typed bulk call's
        // body: that one copies every body into a fresh buffer of its own,
        // a megabyte or so per request for nothing.
        let payload = bytes::Bytes::from(payload);
        let sent = self
            .engine
            .client()
            .send(
                Method::Post,
                "/_bulk",
                headers,
                Some(&[
                    ("timeout", self.shard_wait.as_str()),
                    ("filter_path", ANSWER_FIELDS),
                ]),
                Some(payload.clone()),
                Some(self.request_timeout),
            )
            .await;
        let answer = match sent {
            Ok(response) => {
                let status = response.status_code().as_u16();
                response
                    .bytes()
                    .await
                    .map(|answer| (status, answer))
                    .map_err(|e| with_causes(&e))
            }
            Err(e) => Err(with_causes(&e)),
        };
        if reusable {
            self.bodies.reclaim(payload);
        }
        answer
    }

    /// A write was refused for credentials or rights: counted, readiness
    /// withdrawn, and one error line per [`AUTH_LOG_INTERVAL`] naming the
    /// setting to fix.
    fn auth_refused(&self, failure: &AuthFailure, index: &str) {
        self.metrics.auth_failures.inc();
        self.auth.failing.store(true, Ordering::Relaxed);
        let now = Instant::now();
        let due = {
            let mut last = self
                .auth
                .last_logged
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let due = last.is_none_or(|at| now.duration_since(at) >= AUTH_LOG_INTERVAL);
            if due {
                *last = Some(now);
            }
            due
        };
        if due {
            let method = self.engine.auth_method();
            tracing::error!(
                status = failure.status,
                setting = auth::setting_at_fault(&method),
                %index,
                engine_reason = %failure.reason,
                fix = %auth::advice(&method, self.engine.client_certificate(), failure, index),
                "the engine refuses our writes for credentials or rights; the documents are kept and retried, and the process reports not ready until a write succeeds"
            );
        }
    }

    /// A write got item answers with no refusal for rights.
    fn auth_accepted(&self) {
        if self.auth.failing.swap(false, Ordering::Relaxed) {
            tracing::info!("the engine accepts our writes again");
            if let Ok(mut last) = self.auth.last_logged.lock() {
                *last = None;
            }
        }
    }
}

/// Shared by the clones of a writer: whether the last answer refused our
/// writes for credentials or rights, and when that was last logged.
#[derive(Debug, Default)]
struct AuthState {
    failing: AtomicBool,
    last_logged: Mutex<Option<Instant>>,
}

/// The `tag` and `process.tag` field names of a `_mapping` answer, newest
/// index (greatest name) first.
fn tag_fields_of(mappings: &serde_json::Value) -> Vec<String> {
    let Some(indices) = mappings.as_object() else {
        return Vec::new();
    };
    let mut names: Vec<&String> = indices.keys().collect();
    names.sort_unstable_by(|a, b| b.cmp(a));
    let mut fields = Vec::new();
    for name in names {
        let properties = &indices[name.as_str()]["mappings"]["properties"];
        for object in [
            &properties["tag"],
            &properties["process"]["properties"]["tag"],
        ] {
            if let Some(tags) = object["properties"].as_object() {
                let mut keys: Vec<&String> = tags.keys().collect();
                keys.sort_unstable();
                fields.extend(keys.into_iter().cloned());
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("error sending request")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("operation timed out")]
    struct Inner;

    #[test]
    fn tag_fields_come_newest_index_first_span_before_process() {
        let mappings = serde_json::json!({
            "p-jaeger-span-2026-12-04": {"mappings": {"properties": {
                "tag": {"properties": {"old@key": {"type": "keyword"}}}
            }}},
            "p-jaeger-span-2026-12-05": {"mappings": {"properties": {
                "tag": {"properties": {
                    "b": {"type": "keyword"}, "a@x": {"type": "keyword"}
                }},
                "process": {"properties": {"tag": {"properties": {"host@name": {"type": "keyword"}}}}}
            }}},
            // An index with no tag field yet: the filter leaves nothing of it.
            "p-jaeger-span-2026-12-06": {}
        });
        assert_eq!(
            tag_fields_of(&mappings),
            ["a@x", "b", "host@name", "old@key"]
        );
        assert!(tag_fields_of(&serde_json::json!({})).is_empty());
    }

    #[test]
    fn errors_carry_their_causes() {
        assert_eq!(
            with_causes(&Outer(Inner)),
            "error sending request: operation timed out"
        );
        assert_eq!(with_causes(&Inner), "operation timed out");
    }

    #[test]
    fn the_engine_waits_half_the_request_timeout_at_least_a_second() {
        assert_eq!(shard_wait(Duration::from_secs(30)), Duration::from_secs(15));
        assert_eq!(
            shard_wait(Duration::from_millis(800)),
            Duration::from_secs(1)
        );
    }
}
