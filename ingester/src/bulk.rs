//! The writing side: turns batches into documents, writes them with several
//! bulk requests in flight, dead-letters what can never be stored, and only
//! then marks the batch's records durable.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use spanway_schemas::{Encoding, decode_record_grouped, record_encoding};
use spanway_search::bulk::writer::BulkWriter;
use spanway_search::document::{Document, DocumentKind};
use spanway_search::index::IndexNames;
use spanway_service_kit::liveness::{Heartbeat, Liveness};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::consume::{Batch, GroupConsumer, RawRecord, Shared};
use crate::dead_letter::{DeadLetter, DeadLetters, LetterKind, Origin};
use crate::document::{TagsAsFields, service_document, service_key, span_document_with};
use crate::metrics::IngesterMetrics;

/// Written service/operation pairs are remembered up to this many entries,
/// then forgotten all at once (a rewrite is harmless: it is a 409).
const SERVICE_CACHE_LIMIT: usize = 100_000;

/// Documents built from one batch.
#[derive(Debug, Default)]
struct Built {
    spans: Vec<(Document, usize)>,
    services: Vec<(Document, usize)>,
    letters: Vec<DeadLetter>,
}

/// Decodes records and builds their documents. CPU work: runs on the
/// blocking pool. The `usize` beside each document is its record's index.
fn build(
    records: &[RawRecord],
    names: &IndexNames,
    fields: &TagsAsFields,
    default_encoding: Encoding,
) -> Built {
    let mut built = Built::default();
    let mut seen_services = HashSet::new();
    for (index, record) in records.iter().enumerate() {
        let decoded = record_encoding(record.encoding.as_deref(), default_encoding)
            .and_then(|encoding| decode_record_grouped(encoding, &record.payload));
        let groups = match decoded {
            Ok(groups) => groups,
            Err(error) => {
                built.letters.push(DeadLetter {
                    origin: record.origin.clone(),
                    key: record.key.clone(),
                    value: record.payload.clone(),
                    reason: error.to_string(),
                    kind: LetterKind::UndecodableRecord,
                });
                continue;
            }
        };
        for group in &groups {
            let process = Some(&group.process);
            for span in &group.spans {
                built
                    .spans
                    .push((span_document_with(span, process, names, fields), index));
                if seen_services.insert(service_key(span, process))
                    && let Ok(doc) = service_document(span, process, names)
                {
                    built.services.push((doc, index));
                }
            }
        }
    }
    built
}

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
    /// Encoding of records without a header.
    pub default_encoding: Encoding,
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
        let names = self.names.clone();
        let fields = self.tags_as_fields.clone();
        let encoding = self.default_encoding;
        let records = batch.records;
        let built = match tokio::task::spawn_blocking(move || {
            build(&records, &names, &fields, encoding)
        })
        .await
        {
            Ok(built) => built,
            Err(error) => {
                tracing::error!(
                    %error,
                    "building documents failed; the batch stays uncommitted and the process reports itself not live, to be restarted and reread it"
                );
                return false;
            }
        };
        let Built {
            spans,
            services,
            mut letters,
        } = built;
        self.metrics
            .records_undecodable
            .inc_by(letters.len() as u64);

        let new_services: Vec<(Document, usize)> = {
            let written = self
                .written_services
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            services
                .into_iter()
                .filter(|(doc, _)| !written.contains(&(doc.index.clone(), doc.id.clone())))
                .collect()
        };
        let span_count = spans.len() as u64;
        let service_count = new_services.len() as u64;
        let mut origin_of: HashMap<String, usize> =
            HashMap::with_capacity(spans.len() + new_services.len());
        let mut documents = Vec::with_capacity(spans.len() + new_services.len());
        for (doc, record) in spans.into_iter().chain(new_services.iter().cloned()) {
            origin_of.insert(doc.id.clone(), record);
            documents.push(doc);
        }

        // A record's documents may land in different bulk requests when the
        // writer splits the batch (`bulk.max_documents`, `bulk.max_bytes`);
        // the records are completed below only after every request has
        // answered, so no offset moves past a record with a document unsent.
        heartbeat.beat();
        let rejected = match self.writer.write_all(documents, abort, heartbeat).await {
            Ok(rejected) => rejected,
            Err(error) => {
                tracing::info!(%error, "batch abandoned; its records will be reread");
                return true;
            }
        };
        let mut rejected_spans = 0u64;
        for r in &rejected {
            if r.document.kind == DocumentKind::Span {
                rejected_spans += 1;
            }
            let record = origin_of.get(&r.document.id).copied().unwrap_or(0);
            tracing::error!(index = %r.document.index, id = %r.document.id, reason = %r.reason, "document refused by the engine; dead-lettered");
            letters.push(DeadLetter {
                origin: origins[record].clone(),
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
        self.shared.complete(&self.consumer, &origins, bytes);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;
    use spanway_schemas::proto::otlp;

    fn record(offset: i64, payload: Vec<u8>, encoding: Option<&str>) -> RawRecord {
        RawRecord {
            origin: Origin {
                topic: "t".into(),
                partition: 0,
                offset,
            },
            key: Some(b"k".to_vec()),
            encoding: encoding.map(|e| e.as_bytes().to_vec()),
            payload,
        }
    }

    fn trace(span_ids: &[u8]) -> Vec<u8> {
        otlp::TracesData {
            resource_spans: vec![otlp::ResourceSpans {
                scope_spans: vec![otlp::ScopeSpans {
                    spans: span_ids
                        .iter()
                        .map(|i| otlp::Span {
                            trace_id: vec![1; 16],
                            span_id: vec![*i; 8],
                            name: "op".into(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn poison_records_become_dead_letters_with_their_origin() {
        let records = vec![
            record(1, trace(&[1, 2]), Some("otlp_proto")),
            record(2, vec![0xff, 0x00, 0x13], None),
            record(3, trace(&[3]), Some("avro")),
        ];
        let built = build(
            &records,
            &IndexNames::new(""),
            &TagsAsFields::default(),
            Encoding::OtlpProto,
        );
        assert_eq!(built.spans.len(), 2);
        assert!(built.spans.iter().all(|(_, i)| *i == 0));
        assert_eq!(built.services.len(), 1, "one service/operation pair");
        assert_eq!(built.letters.len(), 2);
        assert_eq!(built.letters[0].origin.offset, 2);
        assert_eq!(
            built.letters[0].value,
            vec![0xff, 0x00, 0x13],
            "original bytes kept"
        );
        assert!(
            built.letters[0]
                .reason
                .starts_with("otlp_proto: malformed protobuf"),
            "{}",
            built.letters[0].reason
        );
        assert_eq!(built.letters[1].origin.offset, 3);
        assert!(built.letters[1].reason.contains("\"avro\""));
    }

    /// Documents built from spans grouped by process are byte for byte the
    /// ones built from spans that each carry their process (ids included:
    /// they hash the source), for OTLP records with several resources and
    /// for Jaeger records.
    #[test]
    fn documents_from_shared_processes_equal_those_from_embedded_ones() {
        use otlp::any_value::Value;
        let resource = |service: &str, host: &str| otlp::Resource {
            attributes: vec![
                otlp::KeyValue::new("service.name", Value::StringValue(service.into())),
                otlp::KeyValue::new("host.name", Value::StringValue(host.into())),
            ],
            ..Default::default()
        };
        let span = |id: u8, name: &str| otlp::Span {
            trace_id: vec![7; 16],
            span_id: vec![id; 8],
            name: name.into(),
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_500_000_000,
            attributes: vec![otlp::KeyValue::new("k", Value::IntValue(i64::from(id)))],
            ..Default::default()
        };
        let data = otlp::TracesData {
            resource_spans: ["web", "db"]
                .iter()
                .enumerate()
                .map(|(r, service)| otlp::ResourceSpans {
                    resource: Some(resource(service, &format!("h{r}"))),
                    scope_spans: vec![otlp::ScopeSpans {
                        spans: (0..3u8)
                            .map(|i| span(10 * (r as u8 + 1) + i, &format!("op{i}")))
                            .collect(),
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
        };
        let otlp_bytes = data.encode_to_vec();
        let embedded = spanway_schemas::decode_record(Encoding::OtlpProto, &otlp_bytes).unwrap();
        let jaeger_bytes = embedded[4].encode_to_vec();
        let records = vec![
            record(1, otlp_bytes, Some("otlp_proto")),
            record(2, jaeger_bytes, Some("jaeger_proto")),
        ];
        let names = IndexNames::new("p");
        let all = TagsAsFields {
            all: true,
            ..TagsAsFields::default()
        };
        for fields in [TagsAsFields::default(), all] {
            let built = build(&records, &names, &fields, Encoding::OtlpProto);
            let expected: Vec<Document> = embedded
                .iter()
                .chain(std::iter::once(&embedded[4]))
                .map(|s| span_document_with(s, s.process.as_ref(), &names, &fields))
                .collect();
            let got: Vec<Document> = built.spans.into_iter().map(|(d, _)| d).collect();
            assert_eq!(got, expected);
            let services: Vec<String> = built
                .services
                .iter()
                .map(|(d, _)| String::from_utf8(d.source.clone()).unwrap())
                .collect();
            assert_eq!(services.len(), 6, "{services:?}");
            assert!(
                services[3].contains("\"serviceName\":\"db\""),
                "{services:?}"
            );
        }
    }
}
