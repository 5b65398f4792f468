//! The ingester's own work on a batch of records, run once, so that
//! `dev/instructions` can count its instructions under callgrind.
//!
//! The whole-process benchmark spreads by ±15 % on this shared machine;
//! an instruction count repeats exactly, so it compares two builds of the
//! code that turns records into bulk bodies. What it leaves out
//! (librdkafka, the HTTP client, allocator contention across threads) the
//! whole-process benchmark still measures.
//!
//! Per batch it makes the calls the bulk stage makes: documents taken a
//! request at a time from [`BatchDocuments`], each request's ids sealed
//! and its `_bulk` body written, then the batch's service documents and
//! dead letters. The records are the whole-process benchmark's: ten-span
//! traces, one `otlp_proto` record each, eight string attributes, a status
//! code and the kind per span. Building them is left out of the count.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use spanway_ingester::config::IngesterConfig;
use spanway_ingester::consume::RawRecord;
use spanway_ingester::dead_letter::Origin;
use spanway_ingester::requests::BatchDocuments;
use spanway_schemas::Encoding;
use spanway_search::bulk::body;
use spanway_search::index::IndexNames;

/// The process's allocator, so that what allocating costs is counted as the
/// ingester pays it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Records per batch: a full batch at the default `bulk.max_documents`
/// holds this many ten-span records before it is sealed by bytes or count.
const BATCH_RECORDS: usize = 100;

fn main() {
    let corpus = spanway_e2e::corpus::generate(7, 4_000, 10);
    let records: Vec<RawRecord> = corpus
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| RawRecord {
            origin: Origin {
                topic: "spans".into(),
                partition: 0,
                offset: i as i64,
            },
            key: Some(r.key.as_bytes().to_vec()),
            encoding: Some(Encoding::OtlpProto.as_str().as_bytes().to_vec()),
            payload: r.value.clone(),
        })
        .collect();
    let batches: Vec<Vec<RawRecord>> = records
        .chunks(BATCH_RECORDS)
        .map(<[RawRecord]>::to_vec)
        .collect();
    let (spans, services, bytes) = work(black_box(batches));
    assert_eq!(spans, corpus.spans.len(), "every span became a document");
    assert!(services > 0 && bytes > spans);
    println!("spans {spans} services {services} body bytes {bytes}");
}

/// What is counted: the batches turned into bulk bodies. Not inlined, so
/// that callgrind can count this function alone.
#[inline(never)]
fn work(batches: Vec<Vec<RawRecord>>) -> (usize, usize, usize) {
    black_box("work");
    let config = IngesterConfig::default();
    let tags = &config.elasticsearch.tags_as_fields;
    let fields = Arc::new(tags.placement());
    let learned = tags.learned_keys().map(Arc::new);
    let limits = config.bulk.writer_options().limits;
    let names = IndexNames::new("");
    let (mut spans, mut services, mut bytes) = (0, 0, 0);
    for batch in batches {
        let mut documents = BatchDocuments::new(
            batch,
            names.clone(),
            (fields.clone(), learned.clone()),
            Encoding::OtlpProto,
            limits,
        );
        loop {
            let mut request: Vec<_> = documents
                .next_request()
                .into_iter()
                .map(|(document, _)| document)
                .collect();
            spans += request.len();
            let last = documents.drained();
            if last {
                let taken = documents.take_services();
                services += taken.len();
                request.extend(taken.into_iter().map(|(document, _)| document));
            }
            if !request.is_empty() {
                bytes += black_box(body::body(&request)).len();
            }
            if last {
                break;
            }
        }
        assert!(documents.finish().letters.is_empty());
    }
    (spans, services, bytes)
}
