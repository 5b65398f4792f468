//! Classifies every item of a `_bulk` response.
//!
//! A `200` from `_bulk` says nothing about the documents: each item carries
//! its own status. This module decides, per item, whether the document is
//! stored, should be sent again, or can never be stored. A refusal for
//! credentials or rights, of the whole request or of an item, is a fault
//! of the configuration, not of the document: the document is kept and
//! sent again (see [`crate::auth`]).

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use crate::auth::AuthFailure;

/// What to do with one document after a bulk response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Stored now.
    Stored,
    /// Already stored: a 409 on `create` (a span or service delivered
    /// again), or a roll-up whose stored version already covers it.
    AlreadyStored,
    /// Not stored for a passing reason (429, 5xx, missing status): retry.
    Retry(String),
    /// Not stored for want of credentials or rights (401, or 403 with a
    /// `security_exception`): retry once the setting is fixed.
    Unauthorized(AuthFailure),
    /// The index refuses writes for now (`cluster_block_exception`: a write
    /// or read-only block set by an operator or a lifecycle policy, or the
    /// disk flood-stage watermark): not the document's fault, so retried
    /// until the block is lifted, and said loudly meanwhile.
    Blocked(String),
    /// Not storable (a mapping rejection, say): retrying cannot help.
    Rejected(String),
}

/// What a whole `_bulk` answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkAnswer {
    /// One outcome per document sent, in order.
    Items(Vec<ItemOutcome>),
    /// The request as a whole was refused for credentials or rights
    /// (401 or 403): every document is kept for a retry.
    Unauthorized(AuthFailure),
    /// No item outcome can be trusted (another non-2xx status, an
    /// unreadable body): every document is retried.
    Failed(String),
}

/// Classifies the answer to a bulk request of `sent` documents: its HTTP
/// `status` and `body`.
pub fn classify_answer(status: u16, body: &[u8], sent: usize) -> BulkAnswer {
    match status {
        200..=299 => match classify(body, sent) {
            Ok(items) => BulkAnswer::Items(items),
            Err(error) => BulkAnswer::Failed(error.to_string()),
        },
        401 | 403 => BulkAnswer::Unauthorized(AuthFailure {
            status,
            reason: error_text(body),
        }),
        _ => BulkAnswer::Failed(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(512)])
        )),
    }
}

/// The error of a whole-request answer: `type: reason` from Elasticsearch's
/// JSON error, or the start of the text (OpenSearch's security plugin
/// answers a bare `Unauthorized`).
fn error_text(body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().map(|v| &v["error"]);
    match error {
        Some(Value::String(text)) => text.chars().take(300).collect(),
        Some(error @ Value::Object(_)) => {
            let kind = error["type"].as_str().unwrap_or("unknown");
            let reason = error["reason"].as_str().unwrap_or("");
            format!("{kind}: {}", reason.chars().take(300).collect::<String>())
        }
        _ => String::from_utf8_lossy(&body[..body.len().min(300)])
            .trim()
            .to_owned(),
    }
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
///
/// Read first into borrowed structs that keep only what the decision needs
/// (an answer of a thousand items is otherwise a thousand JSON maps built
/// and dropped per request); an answer of another shape than expected is
/// read again as free JSON, so that it is judged item by item as before.
pub fn classify(body: &[u8], sent: usize) -> Result<Vec<ItemOutcome>, ResponseError> {
    if let Ok(Answer { items: Some(items) }) = serde_json::from_slice::<Answer>(body) {
        if items.len() != sent {
            return Err(ResponseError::CountMismatch {
                sent,
                received: items.len(),
            });
        }
        return Ok(items.iter().map(Item::outcome).collect());
    }
    classify_value(body, sent)
}

/// [`classify`] from free JSON: slower, and tolerant of any item shape.
fn classify_value(body: &[u8], sent: usize) -> Result<Vec<ItemOutcome>, ResponseError> {
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

/// The parts of a bulk answer [`classify`] reads.
#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow)]
    items: Option<Vec<Item<'a>>>,
}

/// One item: an object whose first key is the action (`create`, `index`, …).
struct Item<'a> {
    action: Option<Cow<'a, str>>,
    result: ItemResult<'a>,
}

#[derive(Deserialize, Default)]
struct ItemResult<'a> {
    status: Option<u64>,
    #[serde(borrow)]
    error: Option<ItemError<'a>>,
}

#[derive(Deserialize)]
struct ItemError<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reason: Option<Cow<'a, str>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Item<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl<'de> Visitor<'de> for ItemVisitor {
            type Value = Item<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a bulk item")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Item<'de>, M::Error> {
                let Some(action) = map.next_key::<Cow<'de, str>>()? else {
                    return Ok(Item {
                        action: None,
                        result: ItemResult::default(),
                    });
                };
                let result = map.next_value::<ItemResult<'de>>()?;
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Item {
                    action: Some(action),
                    result,
                })
            }
        }
        deserializer.deserialize_map(ItemVisitor)
    }
}

impl Item<'_> {
    fn outcome(&self) -> ItemOutcome {
        let Some(action) = self.action.as_deref() else {
            return ItemOutcome::Retry("bulk item without an action".into());
        };
        let error = self.result.error.as_ref();
        item_outcome(
            action,
            self.result.status,
            error.and_then(|e| e.kind.as_deref()),
            error.and_then(|e| e.reason.as_deref()),
        )
    }
}

fn classify_item(item: &Value) -> ItemOutcome {
    // Each item is an object with one key: the action (`create`, `index`, …).
    let Some((action, result)) = item.as_object().and_then(|o| o.iter().next()) else {
        return ItemOutcome::Retry("bulk item without an action".into());
    };
    let error = result.get("error");
    item_outcome(
        action,
        result.get("status").and_then(Value::as_u64),
        error.and_then(|e| e.get("type")).and_then(Value::as_str),
        error.and_then(|e| e.get("reason")).and_then(Value::as_str),
    )
}

/// The decision for one item, from its action, status and error.
fn item_outcome(
    action: &str,
    status: Option<u64>,
    kind: Option<&str>,
    text: Option<&str>,
) -> ItemOutcome {
    let Some(status) = status else {
        return ItemOutcome::Retry(format!("{action} item without a status"));
    };
    let kind = kind.unwrap_or("unknown");
    let text = text.unwrap_or("");
    let reason = || format!("{status} {kind}: {text}");
    let unauthorized = |status| {
        ItemOutcome::Unauthorized(AuthFailure {
            status,
            reason: format!("{kind}: {text}"),
        })
    };
    if kind == "cluster_block_exception" {
        return ItemOutcome::Blocked(reason());
    }
    match status {
        200..=299 => ItemOutcome::Stored,
        // A redelivered span or service, or a roll-up computed from less
        // input than the stored one: what is stored already covers it.
        409 if action == "create" || kind == "version_conflict_engine_exception" => {
            ItemOutcome::AlreadyStored
        }
        429 | 500..=599 => ItemOutcome::Retry(reason()),
        401 => unauthorized(401),
        // Blocks are told apart above; a 403 of another kind is about the
        // index, not about who asks.
        403 if kind == "security_exception" => unauthorized(403),
        _ => ItemOutcome::Rejected(reason()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The borrowed reading and the free-JSON one decide alike, and an
    /// item of an unexpected shape is judged on its own, not the answer.
    #[test]
    fn both_readings_agree_and_odd_items_stay_per_item() {
        let bodies: [&[u8]; 3] = [
            br#"{"took":3,"errors":true,"items":[
                {"create":{"_index":"a","_id":"1","status":201}},
                {"create":{"_id":"2","status":409,"error":{"type":"version_conflict_engine_exception","reason":"exists \"x\""}}},
                {"create":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full","caused_by":{"type":"x"}}}},
                {"index":{"status":403,"error":{"type":"cluster_block_exception","reason":"blocked"}}},
                {"create":{"status":401,"error":{"type":"security_exception","reason":"no"}}},
                {}
            ]}"#,
            br#"{"errors":false,"items":[{"create":{"status":201}},{"delete":{"status":200}}]}"#,
            br#"{"items":[{"create":{"status":"201"}},{"create":{"status":201,"error":"plain"}},null]}"#,
        ];
        for body in bodies {
            let sent = serde_json::from_slice::<Value>(body).unwrap()["items"]
                .as_array()
                .unwrap()
                .len();
            assert_eq!(
                classify(body, sent),
                classify_value(body, sent),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let odd = classify(bodies[2], 3).unwrap();
        assert_eq!(
            odd[0],
            ItemOutcome::Retry("create item without a status".into())
        );
        assert_eq!(odd[1], ItemOutcome::Stored);
        assert!(matches!(odd[2], ItemOutcome::Retry(_)));
        let mixed = classify(bodies[0], 6).unwrap();
        assert!(matches!(&mixed[1], ItemOutcome::AlreadyStored));
        assert!(matches!(&mixed[3], ItemOutcome::Blocked(r) if r.contains("blocked")));
        assert!(matches!(&mixed[4], ItemOutcome::Unauthorized(_)));
        assert!(matches!(&mixed[5], ItemOutcome::Retry(_)));
    }

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
            ItemOutcome::AlreadyStored,
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
    fn an_older_rollup_is_covered_by_the_stored_one() {
        let body = br#"{"errors":true,"items":[
            {"index":{"_index":"a","_id":"1","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[1]: version conflict, current version [12] is higher than the one provided [9]"}}}
        ]}"#;
        assert_eq!(classify(body, 1).unwrap(), [ItemOutcome::AlreadyStored]);
    }

    #[test]
    fn refusals_for_rights_are_kept_not_rejected() {
        let body = br#"{"took":1,"errors":true,"items":[
            {"create":{"_index":"a","_id":"1","status":403,"error":{"type":"security_exception","reason":"action [indices:data/write/bulk[s]] is unauthorized for user [writer]"}}},
            {"index":{"_index":"a","_id":"2","status":401,"error":{"type":"security_exception","reason":"unable to authenticate"}}},
            {"create":{"_index":"a","_id":"3","status":403,"error":{"type":"cluster_block_exception","reason":"index [a] blocked by: [FORBIDDEN/8/index write (api)]"}}}
        ]}"#;
        let outcomes = classify(body, 3).unwrap();
        assert_eq!(
            outcomes[0],
            ItemOutcome::Unauthorized(AuthFailure {
                status: 403,
                reason: "security_exception: action [indices:data/write/bulk[s]] is unauthorized for user [writer]".into()
            })
        );
        assert!(matches!(&outcomes[1], ItemOutcome::Unauthorized(f) if f.status == 401));
        assert!(
            matches!(&outcomes[2], ItemOutcome::Blocked(r) if r.contains("index write (api)")),
            "an index block is neither about credentials nor the document's fault"
        );
    }

    #[test]
    fn the_flood_stage_block_is_a_block_too() {
        let body = br#"{"errors":true,"items":[
            {"create":{"_index":"a","_id":"1","status":429,"error":{"type":"cluster_block_exception","reason":"index [a] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block];"}}}
        ]}"#;
        assert!(matches!(
            &classify(body, 1).unwrap()[0],
            ItemOutcome::Blocked(r) if r.contains("flood-stage")
        ));
    }

    #[test]
    fn whole_request_refusals_are_told_apart() {
        let es_401 = br#"{"error":{"root_cause":[{"type":"security_exception","reason":"unable to authenticate user [writer] for REST request [/_bulk]"}],"type":"security_exception","reason":"unable to authenticate user [writer] for REST request [/_bulk]"},"status":401}"#;
        assert_eq!(
            classify_answer(401, es_401, 5),
            BulkAnswer::Unauthorized(AuthFailure {
                status: 401,
                reason: "security_exception: unable to authenticate user [writer] for REST request [/_bulk]".into()
            })
        );
        // OpenSearch's security plugin answers a 401 in plain text.
        assert_eq!(
            classify_answer(401, b"Unauthorized", 5),
            BulkAnswer::Unauthorized(AuthFailure {
                status: 401,
                reason: "Unauthorized".into()
            })
        );
        let os_403 = br#"{"error":{"root_cause":[{"type":"security_exception","reason":"no permissions for [indices:data/write/bulk] and User [name=writer, backend_roles=[], requestedTenant=null]"}],"type":"security_exception","reason":"no permissions for [indices:data/write/bulk] and User [name=writer, backend_roles=[], requestedTenant=null]"},"status":403}"#;
        assert!(matches!(
            classify_answer(403, os_403, 5),
            BulkAnswer::Unauthorized(f) if f.status == 403 && f.reason.starts_with("security_exception: no permissions")
        ));
        assert!(matches!(
            classify_answer(503, b"busy", 5),
            BulkAnswer::Failed(r) if r == "HTTP 503: busy"
        ));
        assert!(matches!(
            classify_answer(200, b"<html>", 5),
            BulkAnswer::Failed(_)
        ));
        let ok = br#"{"errors":false,"items":[{"create":{"status":201}}]}"#;
        assert_eq!(
            classify_answer(200, ok, 1),
            BulkAnswer::Items(vec![ItemOutcome::Stored])
        );
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
