//! Classifies every item of a `_bulk` response.
//!
//! A `200` from `_bulk` says nothing about the documents: each item carries
//! its own status. This module decides, per item, whether the document is
//! stored, should be sent again, or can never be stored.

use serde_json::Value;

/// What to do with one document after a bulk response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Stored now, or already stored (409 on `create`: a redelivery).
    Stored,
    /// Not stored for a passing reason (429, 5xx, missing status): retry.
    Retry(String),
    /// Not storable (a mapping rejection, say): retrying cannot help.
    Rejected(String),
}

/// The response as a whole could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// Not the JSON shape of a bulk response.
    #[error("bulk response is not valid: {0}")]
    Malformed(String),
    /// Fewer or more items than documents sent: no item can be trusted.
    #[error("bulk response has {received} items for {sent} documents")]
    CountMismatch { sent: usize, received: usize },
}

/// Classifies the items of `body`, which answered a request of `sent` documents.
pub fn classify(body: &[u8], sent: usize) -> Result<Vec<ItemOutcome>, ResponseError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ResponseError::Malformed(e.to_string()))?;
    let items = value
        .get("items")
        .and_then(Value::as_array)
        .ok_or_else(|| ResponseError::Malformed("no items array".into()))?;
    if items.len() != sent {
        return Err(ResponseError::CountMismatch {
            sent,
            received: items.len(),
        });
    }
    Ok(items.iter().map(classify_item).collect())
}

fn classify_item(item: &Value) -> ItemOutcome {
    // Each item is an object with one key: the action (`create`, `index`, …).
    let Some((action, result)) = item.as_object().and_then(|o| o.iter().next()) else {
        return ItemOutcome::Retry("bulk item without an action".into());
    };
    let Some(status) = result.get("status").and_then(Value::as_u64) else {
        return ItemOutcome::Retry(format!("{action} item without a status"));
    };
    let reason = || {
        let error = result.get("error");
        let kind = error
            .and_then(|e| e.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        let text = error
            .and_then(|e| e.get("reason"))
            .and_then(Value::as_str)
            .unwrap_or("");
        format!("{status} {kind}: {text}")
    };
    match status {
        200..=299 => ItemOutcome::Stored,
        409 if action == "create" => ItemOutcome::Stored,
        429 | 500..=599 => ItemOutcome::Retry(reason()),
        _ => ItemOutcome::Rejected(reason()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_each_item() {
        let body = br#"{"took":3,"errors":true,"items":[
            {"create":{"_index":"a","_id":"1","status":201}},
            {"create":{"_index":"a","_id":"2","status":409,"error":{"type":"version_conflict_engine_exception","reason":"exists"}}},
            {"create":{"_index":"a","_id":"3","status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}},
            {"create":{"_index":"a","_id":"4","status":400,"error":{"type":"mapper_parsing_exception","reason":"bad field"}}},
            {"index":{"_index":"a","_id":"5","status":409,"error":{"type":"x","reason":"y"}}},
            {"create":{"_index":"a","_id":"6","status":503}},
            {"create":{"_index":"a","_id":"7"}}
        ]}"#;
        let outcomes = classify(body, 7).unwrap();
        assert_eq!(outcomes[0], ItemOutcome::Stored);
        assert_eq!(
            outcomes[1],
            ItemOutcome::Stored,
            "409 on create is a redelivery"
        );
        assert!(matches!(&outcomes[2], ItemOutcome::Retry(r) if r.contains("queue full")));
        assert_eq!(
            outcomes[3],
            ItemOutcome::Rejected("400 mapper_parsing_exception: bad field".into())
        );
        assert!(
            matches!(outcomes[4], ItemOutcome::Rejected(_)),
            "409 on index is a real conflict"
        );
        assert!(matches!(outcomes[5], ItemOutcome::Retry(_)));
        assert!(matches!(outcomes[6], ItemOutcome::Retry(_)));
    }

    #[test]
    fn count_mismatch_and_garbage_are_errors() {
        let body = br#"{"errors":false,"items":[{"create":{"status":201}}]}"#;
        assert_eq!(
            classify(body, 2),
            Err(ResponseError::CountMismatch {
                sent: 2,
                received: 1
            })
        );
        assert!(matches!(
            classify(b"<html>", 1),
            Err(ResponseError::Malformed(_))
        ));
        assert!(matches!(
            classify(b"{}", 1),
            Err(ResponseError::Malformed(_))
        ));
    }
}
