//! Span documents per second on one core, from `otlp_proto` records as the
//! benchmark topic holds them (the e2e corpus: 10-span traces, one record
//! per trace): decoded with prost and converted, against read in place.
//! Both include the ids' source hashes; the outputs are checked equal.
//!
//! Run: `cargo bench -p spanway-ingester --bench documents`.
#![allow(clippy::unwrap_used, missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spanway_ingester::config::IngesterConfig;
use spanway_ingester::document::{
    TagsAsFields, Unsealed, otlp_wire, seal_unsealed, span_document_unsealed,
};
use spanway_schemas::{Encoding, decode_record_grouped};
use spanway_search::document::Document;
use spanway_search::index::IndexNames;

fn decoded(payload: &[u8], names: &IndexNames, fields: &TagsAsFields) -> Vec<Document> {
    let groups = decode_record_grouped(Encoding::OtlpProto, payload).unwrap();
    let mut docs = Vec::new();
    for group in &groups {
        for span in &group.spans {
            docs.push(span_document_unsealed(
                span,
                Some(&group.process),
                names,
                fields,
                None,
            ));
        }
    }
    sealed(docs)
}

fn sealed(mut docs: Vec<Unsealed>) -> Vec<Document> {
    seal_unsealed(docs.iter_mut());
    docs.into_iter().map(|unsealed| unsealed.document).collect()
}

fn in_place(payload: &[u8], names: &IndexNames, fields: &TagsAsFields) -> Vec<Document> {
    sealed(
        otlp_wire::span_documents(payload, names, fields, None)
            .unwrap()
            .into_iter()
            .map(|(doc, _)| doc)
            .collect(),
    )
}

fn documents(c: &mut Criterion) {
    let corpus = spanway_e2e::corpus::generate(7, 2_000, 10);
    // The ingester's default tag fields, as the whole-process benchmark runs it.
    let config = IngesterConfig::default();
    let fields = config.elasticsearch.tags_as_fields.placement();
    let names = IndexNames::new("");
    let payloads: Vec<&[u8]> = corpus.records.iter().map(|r| r.value.as_slice()).collect();
    for payload in &payloads {
        assert_eq!(
            decoded(payload, &names, &fields),
            in_place(payload, &names, &fields)
        );
    }
    let mut group = c.benchmark_group("documents");
    group.throughput(Throughput::Elements(corpus.spans.len() as u64));
    group.sample_size(20);
    for (name, build) in [
        (
            "decoded",
            decoded as fn(&[u8], &IndexNames, &TagsAsFields) -> Vec<Document>,
        ),
        ("in_place", in_place),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                payloads
                    .iter()
                    .map(|p| build(p, &names, &fields).len())
                    .sum::<usize>()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, documents);
criterion_main!(benches);
