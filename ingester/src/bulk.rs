//! The writing side: turns batches into documents, writes them with several
//! bulk requests in flight, dead-letters what can never be stored, and only
//! then marks the batch's records durable.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use spanway_schemas::Encoding;
use spanway_search::bulk::writer::{BulkWriter, Rejected};
use spanway_search::document::{Document, SpanIds};
use spanway_search::index::IndexNames;
use spanway_service_kit::liveness::{Heartbeat, Liveness};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::consume::{Batch, GroupConsumer, Shared};
use crate::dead_letter::{DeadLetter, DeadLetters, LetterKind, Origin};
use crate::document::renest::{is_field_limit, nest_learned_fields};
use crate::document::{LearnedKeys, TagsAsFields};
use crate::metrics::IngesterMetrics;
use crate::requests::{BatchDocuments, Remainder, Sourced};

/// Written service/operation pairs are remembered up to this many entries,
/// then forgotten all at once (a rewrite is harmless: it is a 409).
const SERVICE_CACHE_LIMIT: usize = 100_000;

/// Everything the writing side needs.
pub struct BulkStage {
    /// Bulk writer.
    pub writer: BulkWriter,
    /// Dead-letter producer.
    pub dead_letters: DeadLetters,
    /// Index naming.
    pub names: IndexNames,
    /// Tags stored as object fields.
    pub tags_as_fields: Arc<TagsAsFields>,
    /// Tag keys learned as fields, when learning is on.
    pub learned_keys: Option<Arc<LearnedKeys>>,
    /// Encoding of records without a header.
    pub default_encoding: Encoding,
    /// Who gives span documents their ids.
    pub span_ids: SpanIds,
    /// Counters.
    pub metrics: IngesterMetrics,
    /// The consumer, to store offsets.
    pub consumer: Arc<GroupConsumer>,
    /// Offset tracking shared with the reading side.
    pub shared: Arc<Shared>,
    /// Service/operation documents already written, keyed by index and id,
    /// so a new daily index gets its own pairs.
    pub written_services: Mutex<HashSet<(String, String)>>,
    /// Where each batch in flight registers as a `bulk-write`, so that one
    /// write stuck among others that progress is still noticed.
    pub liveness: Liveness,
}

impl std::fmt::Debug for BulkStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkStage")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl BulkStage {
    /// Takes batches until `stopped`, with at most `max_in_flight` being
    /// written at once; then waits for those to finish.
    ///
    /// `heartbeat` (the `bulk` loop) beats while waiting for a batch or a
    /// free slot: both waits are legitimate for as long as they last, and the
    /// writes holding the slots beat on their own.
    pub async fn run(
        self: Arc<Self>,
        mut batches: mpsc::Receiver<Batch>,
        max_in_flight: usize,
        stopped: CancellationToken,
        abort: CancellationToken,
        heartbeat: Heartbeat,
    ) {
        let permits = Arc::new(Semaphore::new(max_in_flight));
        let tasks = TaskTracker::new();
        loop {
            let permit = heartbeat
                .beat_while(async {
                    tokio::select! {
                        permit = permits.clone().acquire_owned() => permit.ok(),
                        _ = stopped.cancelled() => None,
                    }
                })
                .await;
            let Some(permit) = permit else { break };
            let batch = heartbeat
                .beat_while(async {
                    tokio::select! {
                        batch = batches.recv() => batch,
                        _ = stopped.cancelled() => None,
                    }
                })
                .await;
            let Some(batch) = batch else { break };
            let stage = self.clone();
            let abort = abort.clone();
            let write = self.liveness.register("bulk-write");
            tasks.spawn(async move {
                if stage.process(batch, &abort, &write).await {
                    write.finish();
                }
                // Otherwise the registration is dropped unfinished: `/health/live` reports
                // this write as exited, and the restart rereads the batch it could not store.
                drop(permit);
            });
        }
        tasks.close();
        heartbeat.beat_while(tasks.wait()).await;
    }

    /// Writes one request's documents until each is stored or refused, and
    /// returns the refused ones with their records' positions; `None` when
    /// the batch is abandoned (shutdown), to be reread.
    async fn write(
        &self,
        request: Vec<Sourced>,
        abort: &CancellationToken,
        heartbeat: &Heartbeat,
    ) -> Option<Vec<(Rejected, usize)>> {
        let (documents, records): (Vec<Document>, Vec<usize>) = request.into_iter().unzip();
        heartbeat.beat();
        match self.writer.write_all(documents, abort, heartbeat).await {
            Ok(rejected) => Some(
                rejected
                    .into_iter()
                    .map(|r| {
                        let record = records.get(r.position).copied().unwrap_or(0);
                        (r, record)
                    })
                    .collect(),
            ),
            Err(error) => {
                tracing::info!(%error, "batch abandoned; its records will be reread");
                None
            }
        }
    }

    /// Sends again, with their learned tag fields nested, the span documents
    /// the engine refused for their index's field limit, and stops learning;
    /// returns the refusals that stand, or `None` when the batch is
    /// abandoned.
    async fn renest_refused(
        &self,
        rejected: Vec<(Rejected, usize)>,
        abort: &CancellationToken,
        heartbeat: &Heartbeat,
    ) -> Option<Vec<(Rejected, usize)>> {
        let Some(learned) = &self.learned_keys else {
            return Some(rejected);
        };
        let mut standing = Vec::new();
        let mut again: Vec<Sourced> = Vec::new();
        let mut forgotten: Vec<String> = Vec::new();
        for (refusal, record) in rejected {
            let renested = (refusal.document.kind.is_span() && is_field_limit(&refusal.reason))
                .then(|| nest_learned_fields(&refusal.document.source, &self.tags_as_fields))
                .flatten();
            match renested {
                Some((source, keys)) => {
                    let mut document = refusal.document;
                    document.source = source;
                    again.push((document, record));
                    forgotten.extend(keys);
                }
                None => standing.push((refusal, record)),
            }
        }
        if again.is_empty() {
            return Some(standing);
        }
        forgotten.sort();
        forgotten.dedup();
        learned.close_without(forgotten.iter().map(String::as_str));
        tracing::warn!(
            spans = again.len(),
            keys = ?forgotten,
            "the index has no room for more tag fields: these spans are written again with their learned tag fields nested, and no more keys are learned until restart"
        );
        self.metrics.spans_renested.inc_by(again.len() as u64);
        standing.extend(self.write(again, abort, heartbeat).await?);
        Some(standing)
    }

    /// Stores one batch and completes its records. Returns false when the batch can never be
    /// completed by this process (building its documents panicked): its offsets stay
    /// uncommitted, which would stall its partitions for good, so the caller makes liveness
    /// fail instead.
    async fn process(
        &self,
        batch: Batch,
        abort: &CancellationToken,
        heartbeat: &Heartbeat,
    ) -> bool {
        let origins: Vec<Origin> = batch.records.iter().map(|r| r.origin.clone()).collect();
        let bytes = batch.bytes;
        let mut documents = BatchDocuments::new(
            batch.records,
            self.names.clone(),
            (self.tags_as_fields.clone(), self.learned_keys.clone()),
            self.default_encoding,
            self.writer.limits(),
        )
        .with_span_ids(self.span_ids);
        let mut span_count = 0u64;
        let mut service_count = 0u64;
        let mut new_services: Vec<(Document, usize)> = Vec::new();
        let mut rejected = Vec::new();
        loop {
            // Building is CPU work: on the blocking pool, a request's worth at a time.
            let built = tokio::task::spawn_blocking(move || {
                let request = documents.next_request();
                (documents, request)
            })
            .await;
            let mut request = match built {
                Ok((back, request)) => {
                    documents = back;
                    request
                }
                Err(error) => {
                    tracing::error!(
                        %error,
                        "building documents failed; the batch stays uncommitted and the process reports itself not live, to be restarted and reread it"
                    );
                    return false;
                }
            };
            span_count += request.len() as u64;
            let last = documents.drained();
            if last {
                // Service/operation pairs not written yet ride with the last spans.
                let written = self
                    .written_services
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                new_services = documents
                    .take_services()
                    .into_iter()
                    .filter(|(doc, _)| !written.contains(&(doc.index.clone(), doc.id.clone())))
                    .collect();
                service_count = new_services.len() as u64;
                request.extend(new_services.iter().cloned());
            }
            if !request.is_empty() {
                match self.write(request, abort, heartbeat).await {
                    Some(refused) => rejected.extend(refused),
                    None => return true,
                }
            }
            if last {
                break;
            }
        }
        let Some(rejected) = self.renest_refused(rejected, abort, heartbeat).await else {
            return true;
        };
        let Remainder { mut letters, .. } = documents.finish();
        self.metrics
            .records_undecodable
            .inc_by(letters.len() as u64);

        let mut rejected_spans = 0u64;
        for (r, record) in &rejected {
            if r.document.kind.is_span() {
                rejected_spans += 1;
            }
            tracing::error!(index = %r.document.index, id = %r.document.id, reason = %r.reason, "document refused by the engine; dead-lettered");
            letters.push(DeadLetter {
                origin: origins[*record].clone(),
                key: None,
                value: r.document.source.clone(),
                reason: r.reason.clone(),
                kind: LetterKind::RejectedDocument {
                    index: r.document.index.clone(),
                    id: r.document.id.clone(),
                },
            });
        }
        if self
            .dead_letters
            .send_all(&letters, abort, heartbeat)
            .await
            .is_err()
        {
            tracing::info!(
                "batch abandoned before its dead letters were acknowledged; its records will be reread"
            );
            return true;
        }
        self.metrics.dead_lettered.inc_by(letters.len() as u64);
        self.metrics
            .documents_rejected
            .inc_by(rejected.len() as u64);
        self.metrics
            .spans_indexed
            .inc_by(span_count - rejected_spans);
        self.metrics
            .services_indexed
            .inc_by(service_count - (rejected.len() as u64 - rejected_spans));
        {
            let mut written = self
                .written_services
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if written.len() > SERVICE_CACHE_LIMIT {
                written.clear();
            }
            written.extend(new_services.into_iter().map(|(doc, _)| (doc.index, doc.id)));
        }
        if let Some(learned) = &self.learned_keys {
            let count = i64::try_from(learned.snapshot().len()).unwrap_or(i64::MAX);
            self.metrics.tag_keys_learned.set(count);
        }
        self.shared.complete(&self.consumer, &origins, bytes);
        true
    }
}
