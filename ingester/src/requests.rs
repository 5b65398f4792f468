//! A batch's records turned into documents one bulk request at a time.
//!
//! Building every document of a batch before writing any kept them all in
//! memory together: a batch of 1,000 ten-span records is about 12 MiB of
//! documents, and several batches are written at once, so most of the
//! ingester's peak memory was documents waiting for their turn. Built a
//! request at a time, a batch holds one request's documents and the records
//! it has not read yet.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use spanway_schemas::{Encoding, decode_record_grouped, record_encoding};
use spanway_search::bulk::body::{Limits, encoded_len};
use spanway_search::document::{Document, DocumentKind, SpanIds};
use spanway_search::index::IndexNames;

use crate::consume::RawRecord;
use crate::dead_letter::{DeadLetter, LetterKind};
use crate::document::{
    LearnedKeys, Learning, ServiceOf, TagsAsFields, Unsealed, otlp_wire, seal_unsealed,
    span_document_unsealed,
};

/// A document and the position, in its batch, of the record it came from.
pub type Sourced = (Document, usize);

/// What remains of a batch once every span document has been taken.
#[derive(Debug, Default)]
pub struct Remainder {
    /// One service/operation document per distinct pair and day in the
    /// batch, in the order first seen, less those already taken with
    /// [`BatchDocuments::take_services`] (the writer takes them all, to send
    /// with the batch's last span request).
    pub services: Vec<Sourced>,
    /// Records that could not be decoded, with their original bytes.
    pub letters: Vec<DeadLetter>,
}

/// The documents of one batch, built as requests are taken.
#[derive(Debug)]
pub struct BatchDocuments {
    records: std::iter::Enumerate<std::vec::IntoIter<RawRecord>>,
    names: IndexNames,
    fields: Arc<TagsAsFields>,
    learned: Option<Arc<LearnedKeys>>,
    default_encoding: Encoding,
    limits: Limits,
    span_ids: SpanIds,
    /// Span documents built and not taken yet, each with the position of
    /// its record and its encoded size.
    spans: VecDeque<(Unsealed, usize, usize)>,
    span_bytes: usize,
    seen_services: HashSet<(u64, u64)>,
    remainder: Remainder,
}

impl BatchDocuments {
    /// Documents of `records`, to be taken in requests within `limits`;
    /// with `learned`, tags whose keys were learned are fields as well.
    pub fn new(
        records: Vec<RawRecord>,
        names: IndexNames,
        (fields, learned): (Arc<TagsAsFields>, Option<Arc<LearnedKeys>>),
        default_encoding: Encoding,
        limits: Limits,
    ) -> Self {
        BatchDocuments {
            records: records.into_iter().enumerate(),
            names,
            fields,
            learned,
            default_encoding,
            limits: Limits {
                max_documents: limits.max_documents.max(1),
                max_bytes: limits.max_bytes.max(1),
            },
            span_ids: SpanIds::default(),
            spans: VecDeque::new(),
            span_bytes: 0,
            seen_services: HashSet::new(),
            remainder: Remainder::default(),
        }
    }

    /// Span documents with ids as `span_ids` says (derived ones unless told).
    #[must_use]
    pub fn with_span_ids(mut self, span_ids: SpanIds) -> Self {
        self.span_ids = span_ids;
        self
    }

    /// The next request's span documents, in record order: a full request
    /// (by `max_documents` or `max_bytes`) while records remain, the rest at
    /// the end, nothing once every span document has been taken. A document
    /// larger than `max_bytes` on its own comes alone, as the writer sends it.
    pub fn next_request(&mut self) -> Vec<Sourced> {
        let learned = self.learned.clone();
        let learning = learned.as_deref().map(LearnedKeys::learning);
        while self.spans.len() < self.limits.max_documents
            && self.span_bytes < self.limits.max_bytes
        {
            let Some((position, record)) = self.records.next() else {
                break;
            };
            self.read(position, record, learning.as_ref());
        }
        let mut request = Vec::new();
        let mut bytes = 0usize;
        while let Some((_, _, size)) = self.spans.front() {
            let size = *size;
            if !request.is_empty()
                && (request.len() >= self.limits.max_documents
                    || bytes + size > self.limits.max_bytes)
            {
                break;
            }
            let Some((document, position, _)) = self.spans.pop_front() else {
                break;
            };
            bytes += size;
            self.span_bytes -= size;
            request.push((document, position));
        }
        seal_unsealed(request.iter_mut().map(|(document, _)| document));
        request
            .into_iter()
            .map(|(unsealed, position)| (unsealed.document, position))
            .collect()
    }

    /// Whether every record has been read and every span document taken:
    /// the request just taken was the batch's last.
    pub fn drained(&self) -> bool {
        self.spans.is_empty() && self.records.len() == 0
    }

    /// The batch's service documents so far; all of them once
    /// [`Self::drained`]. They go with the batch's last span request, so
    /// that a search that finds the spans finds their services too.
    pub fn take_services(&mut self) -> Vec<Sourced> {
        std::mem::take(&mut self.remainder.services)
    }

    /// Service documents and dead letters, once [`Self::next_request`] has
    /// come back empty (called earlier, records not read yet are read now
    /// and their span documents dropped).
    pub fn finish(mut self) -> Remainder {
        while let Some((position, record)) = self.records.next() {
            self.read(position, record, None);
        }
        self.remainder
    }

    fn read(&mut self, position: usize, record: RawRecord, learning: Option<&Learning<'_>>) {
        let encoding = record_encoding(record.encoding.as_deref(), self.default_encoding);
        if let Ok(Encoding::OtlpProto) = encoding
            && let Some(spans) =
                otlp_wire::span_documents(&record.payload, &self.names, &self.fields, learning)
        {
            for (document, service) in spans {
                self.push_span(position, document, service);
            }
            return;
        }
        let decoded =
            encoding.and_then(|encoding| decode_record_grouped(encoding, &record.payload));
        let groups = match decoded {
            Ok(groups) => groups,
            Err(error) => {
                self.remainder.letters.push(DeadLetter {
                    reason: error.to_string(),
                    origin: record.origin,
                    key: record.key,
                    value: record.payload,
                    kind: LetterKind::UndecodableRecord,
                });
                return;
            }
        };
        for group in &groups {
            let process = Some(&group.process);
            for span in &group.spans {
                let document =
                    span_document_unsealed(span, process, &self.names, &self.fields, learning);
                self.push_span(position, document, ServiceOf::new(span, process));
            }
        }
    }

    fn push_span(&mut self, position: usize, mut document: Unsealed, service: ServiceOf<'_>) {
        match self.span_ids {
            SpanIds::Derived => {}
            SpanIds::TimeLed => document.lead_with_start_time(),
            SpanIds::Engine => {
                // Sealing passes it by: no hash is computed for an id never
                // sent. What is left of the id names the span in logs.
                let document = &mut document.document;
                document.kind = DocumentKind::AppendedSpan;
                if let Some(at) = document.id.rfind('_') {
                    document.id.truncate(at);
                }
            }
        }
        let size = encoded_len(&document.document);
        self.span_bytes += size;
        self.spans.push_back((document, position, size));
        if self.seen_services.insert(service.key())
            && let Ok(document) = service.document(&self.names)
        {
            self.remainder.services.push((document, position));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::span_document_with;
    use prost::Message as _;
    use spanway_schemas::proto::otlp;

    fn record(offset: i64, payload: Vec<u8>, encoding: Option<&str>) -> RawRecord {
        RawRecord {
            origin: crate::dead_letter::Origin {
                topic: "t".into(),
                partition: 0,
                offset,
            },
            key: Some(b"k".to_vec()),
            encoding: encoding.map(|e| e.as_bytes().to_vec()),
            payload,
        }
    }

    /// One trace of `spans` spans, operation names `op0`, `op1`, ...
    fn trace(trace: u8, spans: u8) -> Vec<u8> {
        otlp::TracesData {
            resource_spans: vec![otlp::ResourceSpans {
                scope_spans: vec![otlp::ScopeSpans {
                    spans: (0..spans)
                        .map(|i| otlp::Span {
                            trace_id: vec![trace; 16],
                            span_id: vec![trace, i, 1, 1, 1, 1, 1, 1],
                            name: format!("op{i}"),
                            start_time_unix_nano: 1_700_000_000_000_000_000,
                            end_time_unix_nano: 1_700_000_000_100_000_000,
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

    fn documents(records: Vec<RawRecord>, limits: Limits) -> BatchDocuments {
        BatchDocuments::new(
            records,
            IndexNames::new(""),
            (Arc::default(), None),
            Encoding::OtlpProto,
            limits,
        )
    }

    fn drain(documents: &mut BatchDocuments) -> Vec<Vec<Sourced>> {
        let mut requests = Vec::new();
        loop {
            let request = documents.next_request();
            if request.is_empty() {
                return requests;
            }
            requests.push(request);
        }
    }

    #[test]
    fn requests_are_full_until_the_records_run_out() {
        let records: Vec<RawRecord> = (0..7u8)
            .map(|t| record(i64::from(t), trace(t + 1, 3), None))
            .collect();
        let limits = Limits {
            max_documents: 4,
            max_bytes: usize::MAX,
        };
        let mut batch = documents(records, limits);
        assert!(!batch.drained());
        let requests = drain(&mut batch);
        assert!(batch.drained());
        let sizes: Vec<usize> = requests.iter().map(Vec::len).collect();
        assert_eq!(sizes, [4, 4, 4, 4, 4, 1], "21 spans in requests of 4");
        let positions: Vec<usize> = requests.iter().flatten().map(|(_, p)| *p).collect();
        let expected: Vec<usize> = (0..7).flat_map(|p| [p, p, p]).collect();
        assert_eq!(positions, expected, "record order kept, each span once");
        let remainder = batch.finish();
        assert_eq!(remainder.services.len(), 3, "op0..op2 of one service");
        assert!(remainder.letters.is_empty());
    }

    #[test]
    fn requests_stay_within_the_byte_limit() {
        let records: Vec<RawRecord> = (0..5u8)
            .map(|t| record(i64::from(t), trace(t + 1, 4), None))
            .collect();
        let one = {
            let mut single = documents(
                vec![record(0, trace(9, 1), None)],
                Limits {
                    max_documents: 1,
                    max_bytes: 1,
                },
            );
            encoded_len(&single.next_request()[0].0)
        };
        let limits = Limits {
            max_documents: 1000,
            max_bytes: one * 3 + one / 2,
        };
        let mut batch = documents(records, limits);
        let requests = drain(&mut batch);
        assert_eq!(requests.iter().map(Vec::len).sum::<usize>(), 20);
        for request in &requests {
            let bytes: usize = request.iter().map(|(d, _)| encoded_len(d)).sum();
            assert!(bytes <= limits.max_bytes, "{bytes} > {}", limits.max_bytes);
        }
        let full = requests.len() - 1;
        assert!(
            requests[..full].iter().all(|r| r.len() == 3),
            "{:?}",
            requests.iter().map(Vec::len).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_batch_holds_at_most_one_request_and_one_record_ahead() {
        let records: Vec<RawRecord> = (0..50u8)
            .map(|t| record(i64::from(t), trace(t + 1, 10), None))
            .collect();
        let limits = Limits {
            max_documents: 25,
            max_bytes: usize::MAX,
        };
        let mut batch = documents(records, limits);
        let mut taken = 0;
        loop {
            let request = batch.next_request();
            if request.is_empty() {
                break;
            }
            taken += request.len();
            assert!(
                batch.spans.len() < limits.max_documents,
                "{} documents kept after a request",
                batch.spans.len()
            );
        }
        assert_eq!(taken, 500);
    }

    #[test]
    fn undecodable_records_become_dead_letters_with_their_bytes() {
        let records = vec![
            record(1, trace(1, 2), Some("otlp_proto")),
            record(2, vec![0xff, 0x00, 0x13], None),
            record(3, trace(2, 1), Some("avro")),
        ];
        let mut batch = documents(
            records,
            Limits {
                max_documents: 1000,
                max_bytes: usize::MAX,
            },
        );
        let requests = drain(&mut batch);
        assert_eq!(requests.len(), 1);
        assert!(requests[0].iter().all(|(_, p)| *p == 0));
        let remainder = batch.finish();
        assert_eq!(remainder.services.len(), 2);
        assert_eq!(remainder.letters.len(), 2);
        assert_eq!(remainder.letters[0].origin.offset, 2);
        assert_eq!(remainder.letters[0].value, vec![0xff, 0x00, 0x13]);
        assert!(
            remainder.letters[0]
                .reason
                .starts_with("otlp_proto: malformed protobuf"),
            "{}",
            remainder.letters[0].reason
        );
        assert_eq!(remainder.letters[1].origin.offset, 3);
        assert!(remainder.letters[1].reason.contains("\"avro\""));
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
            let mut batch = BatchDocuments::new(
                records.clone(),
                names.clone(),
                (Arc::new(fields.clone()), None),
                Encoding::OtlpProto,
                Limits {
                    max_documents: 4,
                    max_bytes: usize::MAX,
                },
            );
            let got: Vec<Document> = drain(&mut batch)
                .into_iter()
                .flatten()
                .map(|(d, _)| d)
                .collect();
            let remainder = batch.finish();
            let expected: Vec<Document> = embedded
                .iter()
                .chain(std::iter::once(&embedded[4]))
                .map(|s| span_document_with(s, s.process.as_ref(), &names, &fields))
                .collect();
            assert_eq!(got, expected);
            let services: Vec<String> = remainder
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

    #[test]
    fn span_ids_change_the_id_and_leave_the_document_as_it_was() {
        let records: Vec<RawRecord> = (0..3u8)
            .map(|t| record(i64::from(t), tagged_trace(t + 1, 4), None))
            .collect();
        let limits = Limits {
            max_documents: 5,
            max_bytes: usize::MAX,
        };
        let batch = |span_ids| {
            let mut batch = BatchDocuments::new(
                records.clone(),
                IndexNames::new(""),
                (Arc::new(TagsAsFields::default()), None),
                Encoding::OtlpProto,
                limits,
            )
            .with_span_ids(span_ids);
            let requests = drain(&mut batch);
            let services = batch.finish().services;
            (requests, services)
        };
        let (derived, derived_services) = batch(SpanIds::Derived);
        let (engine, engine_services) = batch(SpanIds::Engine);
        assert_eq!(engine.len(), derived.len(), "the same requests");
        assert_eq!(engine.iter().flatten().count(), 12);
        for (e, d) in engine.iter().flatten().zip(derived.iter().flatten()) {
            let ((e, e_at), (d, d_at)) = (e, d);
            assert_eq!(d.kind, DocumentKind::Span);
            assert_eq!(e.kind, DocumentKind::AppendedSpan);
            assert_eq!((&e.source, &e.index, e_at), (&d.source, &d.index, d_at));
            let (trace_and_span, hash) = d.id.rsplit_once('_').unwrap();
            assert_ne!(hash, "0000000000000000", "a derived id is sealed");
            assert_eq!(e.id, trace_and_span, "the span named without a hash");
            let action = spanway_search::bulk::body::create_lines(e)[0].clone();
            assert!(!String::from_utf8(action).unwrap().contains("_id"));
        }
        assert_eq!(engine_services, derived_services, "services keep their ids");

        let (led, led_services) = batch(SpanIds::TimeLed);
        assert_eq!(led.len(), derived.len(), "the same requests");
        for ((l, l_at), (d, d_at)) in led.iter().flatten().zip(derived.iter().flatten()) {
            assert_eq!(l.kind, DocumentKind::Span, "written with create");
            assert_eq!((&l.source, &l.index, l_at), (&d.source, &d.index, d_at));
            assert_eq!(l.id.len(), 36, "{}", l.id);
            assert_eq!(l.id.as_bytes()[13], b'_', "{}", l.id);
            let hash = &l.id[25..];
            assert_ne!(hash, "AAAAAAAAAAA", "a time-led id is sealed");
        }
        assert_eq!(led_services, derived_services, "services keep their ids");
    }

    /// Spans of one trace per record, each with a tag no list configures.
    fn tagged_trace(trace: u8, spans: u8) -> Vec<u8> {
        use otlp::any_value::Value as V;
        let mut data = otlp::TracesData::decode(&self::trace(trace, spans)[..]).unwrap();
        for span in &mut data.resource_spans[0].scope_spans[0].spans {
            span.attributes.push(otlp::KeyValue {
                key: "team.name".into(),
                value: Some(otlp::AnyValue {
                    value: Some(V::StringValue("core".into())),
                }),
            });
        }
        data.encode_to_vec()
    }

    #[test]
    fn learned_keys_are_fields_and_ids_do_not_change() {
        let records: Vec<RawRecord> = (0..4u8)
            .map(|t| record(i64::from(t), tagged_trace(t + 1, 2), None))
            .collect();
        let fields = Arc::new(TagsAsFields::default());
        let learned = Arc::new(LearnedKeys::new(10, "@"));
        let limits = Limits {
            max_documents: 2,
            max_bytes: usize::MAX,
        };
        let mut batch = BatchDocuments::new(
            records.clone(),
            IndexNames::new(""),
            (fields.clone(), Some(learned.clone())),
            Encoding::OtlpProto,
            limits,
        );
        let learning = drain(&mut batch);
        let mut plain = BatchDocuments::new(
            records,
            IndexNames::new(""),
            (fields, None),
            Encoding::OtlpProto,
            limits,
        );
        let configured = drain(&mut plain);
        assert_eq!(learning.len(), 4);
        let placed: Vec<bool> = learning
            .iter()
            .map(|request| {
                let doc: serde_json::Value = serde_json::from_slice(&request[0].0.source).unwrap();
                doc["tag"].get("team@name").is_some()
            })
            .collect();
        assert_eq!(
            placed, [true; 4],
            "a field from the first span that carries it"
        );
        assert!(learned.snapshot().contains("team.name"));
        let ids = |requests: &[Vec<Sourced>]| -> Vec<String> {
            requests
                .iter()
                .flatten()
                .map(|(d, _)| d.id.clone())
                .collect()
        };
        assert_eq!(
            ids(&learning),
            ids(&configured),
            "ids as the configured placement gives them"
        );
        assert_ne!(learning[0][0].0.source, configured[0][0].0.source);
    }
}
