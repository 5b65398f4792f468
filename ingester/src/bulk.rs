//! Builds `_bulk` request bodies.

use serde_json::json;

use crate::document::Document;

/// The two NDJSON lines of one `create` action. `create` (not `index`) makes
/// a redelivered document a 409 instead of a rewrite.
pub fn create_lines(doc: &Document) -> [Vec<u8>; 2] {
    let action = json!({"create": {"_index": doc.index, "_id": doc.id}});
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
}
