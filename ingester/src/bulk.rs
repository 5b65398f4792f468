//! Builds `_bulk` request bodies.

use serde_json::json;

use crate::document::{Document, DocumentKind};

/// The two NDJSON lines of one bulk action. Spans and services use `create`
/// (not `index`), which makes a redelivered document a 409 instead of a
/// rewrite; aggregates use `index`, so a recomputation replaces them.
pub fn create_lines(doc: &Document) -> [Vec<u8>; 2] {
    let op = match doc.kind {
        DocumentKind::Span | DocumentKind::Service => "create",
        DocumentKind::Aggregate => "index",
    };
    let action = json!({op: {"_index": doc.index, "_id": doc.id}});
    [action.to_string().into_bytes(), doc.source.clone()]
}

#[cfg(test)]
mod tests {
    use super::*;

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
