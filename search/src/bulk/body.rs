//! Builds `_bulk` request bodies and cuts documents into requests that
//! respect the size limits.

use std::io::Write as _;

use flate2::write::GzEncoder;

use crate::document::{Document, DocumentKind};
use crate::json::{str_len, write_str};

/// The two NDJSON lines of one bulk action. Spans and services use `create`
/// (not `index`), which makes a redelivered document a 409 instead of a
/// rewrite; aggregates use `index`, so a recomputation replaces them.
pub fn create_lines(doc: &Document) -> [Vec<u8>; 2] {
    [action_line(doc), doc.source.clone()]
}

/// A whole `_bulk` body: each document's action line and source, each
/// line ending in a newline. Built in one buffer, as the client would copy
/// separate lines into one anyway.
pub fn body(docs: &[Document]) -> Vec<u8> {
    let mut out = Vec::new();
    write_body(&mut out, docs);
    out
}

/// [`body`], appended to `out`, which grows once at most: into a buffer
/// kept from an earlier request it usually does not grow at all.
pub fn write_body(out: &mut Vec<u8>, docs: &[Document]) {
    out.reserve(docs.iter().map(encoded_len).sum());
    for doc in docs {
        write_action(out, doc);
        out.push(b'\n');
        out.extend_from_slice(&doc.source);
        out.push(b'\n');
    }
}

/// A body gzipped at `level` (1 to 9), sent with `Content-Encoding: gzip`.
/// The output starts at an eighth of the input, about what span
/// documents compress to at the fastest level, so it rarely regrows.
pub fn gzipped(body: &[u8], level: u32) -> std::io::Result<Vec<u8>> {
    let out = Vec::with_capacity(body.len() / 8);
    let mut encoder = GzEncoder::new(out, flate2::Compression::new(level));
    encoder.write_all(body)?;
    encoder.finish()
}

/// The bulk action of a document kind, and the external version it carries.
fn action(kind: DocumentKind) -> (&'static str, Option<u64>) {
    match kind {
        DocumentKind::Span | DocumentKind::Service => ("create", None),
        DocumentKind::AppendedSpan | DocumentKind::Aggregate => ("index", None),
        DocumentKind::Rollup { version } => ("index", Some(version)),
    }
}

fn action_line(doc: &Document) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + doc.id.len() + doc.index.len());
    write_action(&mut out, doc);
    out
}

/// `{"create":{"_id":…,"_index":…}}` and its `index` forms (without `_id`
/// for an [`DocumentKind::AppendedSpan`]). Written by hand:
/// building a JSON value per document cost a tenth of the ingester's CPU.
fn write_action(out: &mut Vec<u8>, doc: &Document) {
    // Keep in step with `encoded_len`, which counts these bytes.
    let (verb, version) = action(doc.kind);
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(verb.as_bytes());
    out.extend_from_slice(b"\":{");
    if doc.kind != DocumentKind::AppendedSpan {
        out.extend_from_slice(b"\"_id\":");
        write_str(out, &doc.id);
        out.push(b',');
    }
    out.extend_from_slice(b"\"_index\":");
    write_str(out, &doc.index);
    if let Some(version) = version {
        out.extend_from_slice(b",\"version\":");
        out.extend_from_slice(version.to_string().as_bytes());
        out.extend_from_slice(b",\"version_type\":\"external_gte\"");
    }
    out.extend_from_slice(b"}}");
}

/// The most one bulk request may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Documents per request.
    pub max_documents: usize,
    /// Body bytes per request.
    pub max_bytes: usize,
}

/// Bytes `doc` adds to a bulk body: its action line and its source, each
/// followed by the newline the client appends. Counted, not written: every
/// document is measured once to split requests and once to size the body.
pub fn encoded_len(doc: &Document) -> usize {
    // `{"` verb `":{` [`"_id":` id `,`] `"_index":` index [version] `}}`
    let (verb, version) = action(doc.kind);
    let version_len = version.map_or(0, |v| {
        ",\"version\":".len() + v.to_string().len() + ",\"version_type\":\"external_gte\"".len()
    });
    let id_len = if doc.kind == DocumentKind::AppendedSpan {
        0
    } else {
        "\"_id\":".len() + str_len(&doc.id) + 1
    };
    let action = 2
        + verb.len()
        + "\":{".len()
        + id_len
        + "\"_index\":".len()
        + str_len(&doc.index)
        + version_len
        + 2;
    action + 1 + doc.source.len() + 1
}

/// Cuts `docs` into consecutive requests, in order, each within `limits`.
/// A document larger than `max_bytes` on its own cannot be cut, so it goes
/// alone in a request and the engine decides (its refusal is an ordinary
/// per-item or request error). Limits of zero are treated as one.
pub fn split(docs: Vec<Document>, limits: Limits) -> Vec<Vec<Document>> {
    let max_documents = limits.max_documents.max(1);
    let max_bytes = limits.max_bytes.max(1);
    let mut requests = Vec::new();
    let mut current: Vec<Document> = Vec::new();
    let mut current_bytes = 0usize;
    for doc in docs {
        let size = encoded_len(&doc);
        if !current.is_empty()
            && (current.len() >= max_documents || current_bytes + size > max_bytes)
        {
            requests.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current_bytes += size;
        current.push(doc);
    }
    if !current.is_empty() {
        requests.push(current);
    }
    requests
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[test]
    fn gzipped_bodies_decompress_to_the_body_at_every_level() {
        let docs: Vec<Document> = (0..200)
            .map(|n| Document {
                kind: DocumentKind::Span,
                index: "jaeger-span-2026-01-01".into(),
                id: format!("t{n}_s_h"),
                source: format!(r#"{{"operationName":"GET /items/{n}","duration":{n}}}"#)
                    .into_bytes(),
            })
            .collect();
        let plain = body(&docs);
        for level in 1..=9 {
            let packed = gzipped(&plain, level).unwrap();
            assert!(
                packed.len() * 4 < plain.len(),
                "level {level}: {} of {}",
                packed.len(),
                plain.len()
            );
            let mut unpacked = Vec::new();
            flate2::read::GzDecoder::new(packed.as_slice())
                .read_to_end(&mut unpacked)
                .unwrap();
            assert_eq!(unpacked, plain, "level {level}");
        }
        assert_eq!(
            gzipped(&[], 1).map(|g| g.is_empty()).ok(),
            Some(false),
            "an empty body is still a gzip stream"
        );
    }

    #[test]
    fn action_names_index_and_id() {
        let doc = Document {
            kind: crate::document::DocumentKind::Span,
            index: "jaeger-span-2026-01-01".into(),
            id: "t_s_h".into(),
            source: br#"{"a":1}"#.to_vec(),
        };
        let [action, source] = create_lines(&doc);
        let action: serde_json::Value = serde_json::from_slice(&action).unwrap();
        assert_eq!(action["create"]["_index"], "jaeger-span-2026-01-01");
        assert_eq!(action["create"]["_id"], "t_s_h");
        assert_eq!(source, br#"{"a":1}"#);
    }

    #[test]
    fn an_appended_span_is_indexed_without_an_id() {
        let doc = Document {
            kind: DocumentKind::AppendedSpan,
            index: "jaeger-span-2026-01-01".into(),
            id: "t_s".into(),
            source: br#"{"a":1}"#.to_vec(),
        };
        let [action, _] = create_lines(&doc);
        assert_eq!(action, br#"{"index":{"_index":"jaeger-span-2026-01-01"}}"#);
    }

    fn doc(id: usize, source_len: usize) -> Document {
        Document {
            kind: DocumentKind::Span,
            index: "i".into(),
            id: format!("{id:04}"),
            source: vec![b'x'; source_len],
        }
    }

    fn ids(requests: &[Vec<Document>]) -> Vec<Vec<String>> {
        requests
            .iter()
            .map(|r| r.iter().map(|d| d.id.clone()).collect())
            .collect()
    }

    #[test]
    fn encoded_len_is_the_body_the_client_sends() {
        let d = doc(1, 10);
        let [action, source] = create_lines(&d);
        assert_eq!(encoded_len(&d), action.len() + source.len() + 2);
        let docs = [doc(1, 10), doc(2, 3)];
        let body = body(&docs);
        assert_eq!(body.len(), docs.iter().map(encoded_len).sum::<usize>());
        let lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
        assert_eq!(lines.len(), 5, "four lines, each ending in a newline");
        assert_eq!(lines[0], create_lines(&docs[0])[0].as_slice());
        assert_eq!(lines[3], b"xxx");
        assert!(lines[4].is_empty());
        // Counted, not written: the count matches for every kind of
        // action, escaped names and ids included.
        for kind in [
            DocumentKind::Span,
            DocumentKind::AppendedSpan,
            DocumentKind::Service,
            DocumentKind::Aggregate,
            DocumentKind::Rollup { version: 0 },
            DocumentKind::Rollup {
                version: 1_700_000_000_123,
            },
        ] {
            for (index, id) in [("i", "1"), ("p-\"q\"", "a\\b\n\u{1}é")] {
                let d = Document {
                    kind,
                    index: index.into(),
                    id: id.into(),
                    source: b"{}".to_vec(),
                };
                let [action, source] = create_lines(&d);
                assert_eq!(encoded_len(&d), action.len() + source.len() + 2, "{d:?}");
            }
        }
    }

    #[test]
    fn action_lines_escape_what_json_must() {
        let mut d = doc(1, 1);
        d.id = "a\"b\\c\u{1}".into();
        let [action, _] = create_lines(&d);
        let action: serde_json::Value = serde_json::from_slice(&action).unwrap();
        assert_eq!(action["create"]["_id"], "a\"b\\c\u{1}");
    }

    #[test]
    fn split_by_document_count_keeps_order() {
        let docs: Vec<_> = (0..2_500).map(|i| doc(i, 10)).collect();
        let limits = Limits {
            max_documents: 1_000,
            max_bytes: usize::MAX,
        };
        let requests = split(docs.clone(), limits);
        assert_eq!(
            requests.iter().map(Vec::len).collect::<Vec<_>>(),
            [1_000, 1_000, 500]
        );
        assert_eq!(requests.concat(), docs, "every document once, in order");
    }

    #[test]
    fn split_by_bytes_never_exceeds_the_limit() {
        // Sizes vary so that boundaries fall in different places.
        let docs: Vec<_> = (0..300).map(|i| doc(i, 50 + (i * 37) % 400)).collect();
        let limits = Limits {
            max_documents: 1_000,
            max_bytes: 4_096,
        };
        let requests = split(docs.clone(), limits);
        for request in &requests {
            let bytes: usize = request.iter().map(encoded_len).sum();
            assert!(bytes <= 4_096, "{bytes} bytes in one request");
        }
        // Greedy: a request is only closed when the next document does not fit.
        for pair in requests.windows(2) {
            let bytes: usize = pair[0].iter().map(encoded_len).sum();
            assert!(bytes + encoded_len(&pair[1][0]) > 4_096);
        }
        assert_eq!(requests.concat(), docs);
    }

    #[test]
    fn both_limits_apply_together() {
        let size = encoded_len(&doc(0, 100));
        let docs: Vec<_> = (0..10).map(|i| doc(i, 100)).collect();
        let by_bytes = split(
            docs.clone(),
            Limits {
                max_documents: 4,
                max_bytes: size * 3,
            },
        );
        assert_eq!(
            by_bytes.iter().map(Vec::len).collect::<Vec<_>>(),
            [3, 3, 3, 1]
        );
        let by_count = split(
            docs,
            Limits {
                max_documents: 2,
                max_bytes: size * 3,
            },
        );
        assert_eq!(
            by_count.iter().map(Vec::len).collect::<Vec<_>>(),
            [2, 2, 2, 2, 2]
        );
    }

    #[test]
    fn an_oversized_document_goes_alone() {
        let docs = vec![doc(0, 10), doc(1, 10_000), doc(2, 10), doc(3, 10)];
        let requests = split(
            docs,
            Limits {
                max_documents: 100,
                max_bytes: 1_000,
            },
        );
        assert_eq!(
            ids(&requests),
            [vec!["0000"], vec!["0001"], vec!["0002", "0003"]]
        );
    }

    #[test]
    fn nothing_to_split_gives_no_request() {
        let limits = Limits {
            max_documents: 1,
            max_bytes: 1,
        };
        assert!(split(Vec::new(), limits).is_empty());
        assert_eq!(split(vec![doc(0, 5), doc(1, 5)], limits).len(), 2);
    }

    #[test]
    fn rollups_carry_a_growing_external_version() {
        let doc = Document {
            kind: crate::document::DocumentKind::Rollup { version: 42 },
            index: "jaeger-dependencies-2026-01-01".into(),
            id: "h".into(),
            source: b"{}".to_vec(),
        };
        let [action, _] = create_lines(&doc);
        let action: serde_json::Value = serde_json::from_slice(&action).unwrap();
        assert_eq!(
            action,
            serde_json::json!({"index": {
                "_index": "jaeger-dependencies-2026-01-01",
                "_id": "h",
                "version": 42,
                "version_type": "external_gte"
            }})
        );
        assert_eq!(encoded_len(&doc), action.to_string().len() + 1 + 2 + 1);
    }

    #[test]
    fn aggregates_are_overwritten() {
        let doc = Document {
            kind: crate::document::DocumentKind::Aggregate,
            index: "jaeger-dependencies-2026-01-01".into(),
            id: "w".into(),
            source: b"{}".to_vec(),
        };
        let [action, _] = create_lines(&doc);
        let action: serde_json::Value = serde_json::from_slice(&action).unwrap();
        assert_eq!(action["index"]["_id"], "w");
        assert!(action.get("create").is_none());
    }
}
