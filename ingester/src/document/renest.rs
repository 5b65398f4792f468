//! A span document's learned tag fields put back into the nested lists, for
//! an index that refused new fields.
//!
//! The engine refuses a whole document when one of its fields would take
//! the index past `index.mapping.total_fields.limit`. Several ingesters
//! learn keys each on their own, so their learned keys together can pass
//! it. Such a document is sent again with every tag that is a field only
//! because it was learned moved back to `tags` (or `process.tags`), where
//! no field is added; its id stays, so a later redelivery still finds it.
//! This is the rare path: the document is parsed, not written anew.

use serde_json::{Map, Value};

use super::TagsAsFields;
use super::json::{Tag, TagValue};

/// Whether an engine's refusal reason is the index's field limit.
pub fn is_field_limit(reason: &str) -> bool {
    reason.contains("Limit of total fields")
}

/// `source` with its learned tag fields nested, and their keys; `None` when
/// it has none (or is not a span document this ingester wrote).
pub fn nest_learned_fields(source: &[u8], fields: &TagsAsFields) -> Option<(Vec<u8>, Vec<String>)> {
    let mut doc: Value = serde_json::from_slice(source).ok()?;
    let mut moved = Vec::new();
    nest_in(doc.as_object_mut()?, fields, &mut moved);
    if let Some(process) = doc.get_mut("process").and_then(Value::as_object_mut) {
        nest_in(process, fields, &mut moved);
    }
    if moved.is_empty() {
        return None;
    }
    let bytes = serde_json::to_vec(&doc).ok()?;
    moved.sort();
    moved.dedup();
    Some((bytes, moved))
}

/// Moves the learned entries of `object["tag"]` to `object["tags"]`.
fn nest_in(object: &mut Map<String, Value>, fields: &TagsAsFields, moved: &mut Vec<String>) {
    let Some(Value::Object(tag)) = object.get_mut("tag") else {
        return;
    };
    let mut nested = Vec::new();
    tag.retain(|name, value| {
        // Learned keys never contain the dot replacement, so this is their key.
        let key = name.replace(&*fields.dot_replacement, ".");
        let Some((kind, tag_value)) = typed(value) else {
            return true;
        };
        if fields.applies_to(&Tag {
            key: &key,
            value: tag_value,
        }) {
            return true;
        }
        nested.push(serde_json::json!({"key": key, "type": kind, "value": value.take()}));
        moved.push(key);
        false
    });
    if tag.is_empty() {
        object.remove("tag");
    }
    if nested.is_empty() {
        return;
    }
    match object
        .entry("tags")
        .or_insert_with(|| Value::Array(Vec::new()))
    {
        Value::Array(tags) => tags.extend(nested),
        other => *other = Value::Array(nested),
    }
}

/// A field value's type as Jaeger names it, read as Jaeger's reader reads a
/// tag field: whole numbers are `int64`, other numbers `float64`.
fn typed(value: &Value) -> Option<(&'static str, TagValue<'static>)> {
    Some(match value {
        Value::String(_) => ("string", TagValue::Str("".into())),
        Value::Bool(b) => ("bool", TagValue::Bool(*b)),
        Value::Number(n) if n.is_i64() || n.is_u64() => ("int64", TagValue::Int(0)),
        Value::Number(_) => ("float64", TagValue::Float(0.0)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use spanway_schemas::proto::jaeger::api_v2 as jaeger;
    use spanway_search::index::IndexNames;

    use super::*;
    use crate::document::{LearnedKeys, seal_unsealed, span_document_unsealed};

    fn kv(key: &str, set: impl FnOnce(&mut jaeger::KeyValue)) -> jaeger::KeyValue {
        let mut kv = jaeger::KeyValue {
            key: key.into(),
            ..Default::default()
        };
        set(&mut kv);
        kv
    }

    fn span() -> jaeger::Span {
        jaeger::Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            operation_name: "op".into(),
            tags: vec![
                kv("span.kind", |k| k.v_str = "server".into()),
                kv("http.route", |k| k.v_str = "/a".into()),
                kv("custom.name", |k| k.v_str = "x".into()),
                kv("custom.count", |k| {
                    k.v_type = jaeger::ValueType::Int64 as i32;
                    k.v_int64 = 3;
                }),
                kv("custom.ratio", |k| {
                    k.v_type = jaeger::ValueType::Float64 as i32;
                    k.v_float64 = 2.0;
                }),
                kv("custom.flag", |k| {
                    k.v_type = jaeger::ValueType::Bool as i32;
                    k.v_bool = true;
                }),
            ],
            process: Some(jaeger::Process {
                service_name: "svc".into(),
                tags: vec![kv("host.name", |k| k.v_str = "h".into())],
            }),
            ..Default::default()
        }
    }

    /// Nested tags by key, whatever their order.
    fn nested(list: &Value) -> Vec<Value> {
        let mut tags = list.as_array().cloned().unwrap_or_default();
        tags.sort_by_key(|t| t["key"].as_str().unwrap_or_default().to_owned());
        tags
    }

    #[test]
    fn learned_fields_go_back_to_where_the_configured_placement_puts_them() {
        let fields = TagsAsFields {
            keys: ["http.route"].into_iter().collect(),
            ..Default::default()
        };
        let s = span();
        let names = IndexNames::new("");
        let keys = LearnedKeys::new(100, "@");
        let configured = span_document_unsealed(&s, s.process.as_ref(), &names, &fields, None);
        let learning = keys.learning();
        let learned =
            span_document_unsealed(&s, s.process.as_ref(), &names, &fields, Some(&learning));
        let (mut sealed_configured, mut sealed_learned) = (configured.clone(), learned.clone());
        seal_unsealed([&mut sealed_configured, &mut sealed_learned]);
        assert_ne!(
            sealed_learned.document.source,
            sealed_configured.document.source
        );
        assert_eq!(
            sealed_learned.document.id, sealed_configured.document.id,
            "the id does not depend on what was learned"
        );
        let learned_doc: Value = serde_json::from_slice(&learned.document.source).unwrap();
        assert_eq!(learned_doc["tag"]["custom@count"], 3, "{learned_doc}");
        assert_eq!(learned_doc["process"]["tag"]["host@name"], "h");

        let (renested, moved) =
            nest_learned_fields(&learned.document.source, &fields).expect("has learned fields");
        assert_eq!(
            moved,
            [
                "custom.count",
                "custom.flag",
                "custom.name",
                "custom.ratio",
                "host.name"
            ]
        );
        let renested: Value = serde_json::from_slice(&renested).unwrap();
        let expected: Value = serde_json::from_slice(&configured.document.source).unwrap();
        assert_eq!(renested["tag"], expected["tag"], "configured fields stay");
        assert_eq!(nested(&renested["tags"]), nested(&expected["tags"]));
        assert_eq!(
            nested(&renested["process"]["tags"]),
            nested(&expected["process"]["tags"])
        );
        assert!(renested["process"].get("tag").is_none());
        for field in ["traceID", "spanID", "operationName", "references", "logs"] {
            assert_eq!(renested[field], expected[field], "{field}");
        }
    }

    #[test]
    fn documents_without_learned_fields_are_left_alone() {
        let fields = TagsAsFields::default();
        let source = json!({"tags": [], "tag": {"span@kind": "server", "error": true}});
        assert_eq!(
            nest_learned_fields(&serde_json::to_vec(&source).unwrap(), &fields),
            None
        );
        assert_eq!(nest_learned_fields(b"not json", &fields), None);
    }

    #[test]
    fn the_field_limit_is_told_from_other_refusals() {
        assert!(is_field_limit(
            "400 illegal_argument_exception: Limit of total fields [1000] has been exceeded"
        ));
        assert!(!is_field_limit(
            "400 mapper_parsing_exception: failed to parse"
        ));
    }
}
