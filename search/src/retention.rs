//! Optional index retention, enforced by the engine: an Index State
//! Management (ISM) policy on OpenSearch, an Index Lifecycle Management
//! (ILM) policy on Elasticsearch.
//!
//! Both engines ship these as optional parts (the ISM plugin; x-pack ILM),
//! and a node without them answers the policy API with a routing error that
//! reads like any other 4xx. Since the operator asked for data to be
//! deleted on time, running without the policy would be silent
//! non-compliance, so start fails instead, naming the config key and the
//! missing feature.
//!
//! How a policy reaches the indices differs:
//! - ISM attaches itself to new indices through the policy's
//!   `ism_template.index_patterns`; in alias mode the rollover action also
//!   needs `plugins.index_state_management.rollover_alias` on each index.
//! - ILM needs `index.lifecycle.name` on each index, and in alias mode
//!   `index.lifecycle.rollover_alias`.
//!
//! Index settings come from our templates; in alias mode the templates also
//! give every new index the `-read` alias, as Jaeger's ILM templates do, so
//! indices created by a rollover stay visible to Jaeger query. Indices that
//! exist before the policy are not attached (neither engine does that for
//! templates), which is documented for operators.

use std::time::Duration;

use elasticsearch::http::Method;
use elasticsearch::http::headers::HeaderMap;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::bulk::writer::BulkWriter;
use crate::index::{Family, Prefix};

/// Index retention, enforced by the engine itself: an ISM policy on
/// OpenSearch, an ILM policy on Elasticsearch, installed at start as
/// `<prefix>jaeger-retention`. Both are optional engine features (the ISM
/// plugin, x-pack ILM); when the engine lacks them, start fails naming
/// `elasticsearch.retention.enabled` rather than running without the
/// retention the operator asked for.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Install the policy and attach it to the span and service indices.
    /// Off by default: deleting data is the operator's decision.
    pub enabled: bool,
    /// How long an index is kept: counted from its creation for daily
    /// indices, from its rollover with `use_aliases` (an index still written
    /// to is never deleted).
    #[serde(with = "humantime_serde")]
    pub delete_after: Duration,
    /// With `use_aliases`: roll the write alias over to a new index once the
    /// current one is this old...
    #[serde(with = "humantime_serde")]
    pub rollover_max_age: Duration,
    /// ...or once its primary shards hold this much, in the engine's byte
    /// units (`500mb`, `50gb`), whichever comes first.
    pub rollover_max_size: String,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            enabled: false,
            delete_after: Duration::from_secs(7 * 86_400),
            rollover_max_age: Duration::from_secs(86_400),
            rollover_max_size: "50gb".into(),
        }
    }
}

/// ISM templates of higher priority win when several match an index; ours
/// should beat a catch-all policy but leave room above.
const ISM_TEMPLATE_PRIORITY: u32 = 100;

/// Installing the policy failed.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// `GET /` failed, so the engine kind is unknown.
    #[error("elasticsearch.retention.enabled: cannot tell which engine runs at {url}: {reason}")]
    Detect {
        /// Cluster URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The engine has no lifecycle feature.
    #[error(
        "elasticsearch.retention.enabled = true, but {engine} at {url} lacks {feature}: {request} answered {status} ({detail}); install it or set elasticsearch.retention.enabled = false"
    )]
    Unsupported {
        /// Engine and version.
        engine: String,
        /// Cluster URL.
        url: String,
        /// The plugin or feature missing.
        feature: &'static str,
        /// The request that showed it.
        request: String,
        /// Its status.
        status: u16,
        /// The start of its answer.
        detail: String,
    },
    /// The engine refused or could not take the policy.
    #[error("elasticsearch.retention: cannot install lifecycle policy {name}: {reason}")]
    Install {
        /// Policy name.
        name: String,
        /// Status and answer, or the transport error.
        reason: String,
    },
}

/// Which engine answers, from `GET /`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// OpenSearch (any version): ISM.
    OpenSearch,
    /// Elasticsearch: ILM.
    Elasticsearch,
}

impl Engine {
    /// OpenSearch says so in `version.distribution`; Elasticsearch has no
    /// such field.
    pub fn detect(info: &Value) -> Engine {
        if info["version"]["distribution"] == "opensearch" {
            Engine::OpenSearch
        } else {
            Engine::Elasticsearch
        }
    }

    fn feature(self) -> &'static str {
        match self {
            Engine::OpenSearch => "the Index State Management plugin (opensearch-index-management)",
            Engine::Elasticsearch => "index lifecycle management (the x-pack ILM module)",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Engine::OpenSearch => "OpenSearch",
            Engine::Elasticsearch => "Elasticsearch",
        }
    }
}

/// The policy name: one per index prefix, so that several Jaeger
/// installations with different prefixes share a cluster.
pub fn policy_name(prefix: &Prefix) -> String {
    format!("{}jaeger-retention", prefix.as_str())
}

/// A duration in the engines' time-unit syntax, in the largest unit that
/// represents it exactly (`7d`, `36h`, `90m`, `45s`, `1500ms`).
pub fn time_value(duration: Duration) -> String {
    let millis = duration.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if millis >= size && millis.is_multiple_of(size) {
            return format!("{}{unit}", millis / size);
        }
    }
    format!("{millis}ms")
}

/// The one-line summary stored as the ISM policy's description. It names
/// every parameter, so an unchanged description means an unchanged policy
/// and start-up can skip the update.
fn summary(config: &RetentionConfig, prefix: &Prefix, aliases: bool) -> String {
    let delete_after = time_value(config.delete_after);
    let span = prefix.pattern(Family::Span);
    let service = prefix.pattern(Family::Service);
    if aliases {
        format!(
            "spanway-ingester: {span}/{service} roll over at {} or {}, deleted {delete_after} after rollover",
            time_value(config.rollover_max_age),
            config.rollover_max_size
        )
    } else {
        format!("spanway-ingester: {span}/{service} deleted {delete_after} after creation")
    }
}

/// The ISM policy body (`PUT _plugins/_ism/policies/<name>`). One `hot`
/// state, rolling over in alias mode, then `delete`. After a rollover the
/// age that counts is the rollover's (`min_rollover_age`), so an index is
/// kept `delete_after` past its last write, as ILM does.
pub fn ism_policy(config: &RetentionConfig, prefix: &Prefix, aliases: bool) -> Value {
    let delete_after = time_value(config.delete_after);
    let (actions, age_condition) = if aliases {
        (
            json!([{"rollover": {
                "min_index_age": time_value(config.rollover_max_age),
                "min_size": config.rollover_max_size,
            }}]),
            "min_rollover_age",
        )
    } else {
        (json!([]), "min_index_age")
    };
    json!({
        "policy": {
            "description": summary(config, prefix, aliases),
            "default_state": "hot",
            "states": [
                {
                    "name": "hot",
                    "actions": actions,
                    "transitions": [
                        {"state_name": "delete", "conditions": {age_condition: delete_after}}
                    ]
                },
                {
                    "name": "delete",
                    "actions": [{"delete": {}}],
                    "transitions": []
                }
            ],
            "ism_template": [{
                "index_patterns": [
                    prefix.pattern(Family::Span),
                    prefix.pattern(Family::Service)
                ],
                "priority": ISM_TEMPLATE_PRIORITY
            }]
        }
    })
}

/// The ILM policy body (`PUT _ilm/policy/<name>`). ILM counts `min_age`
/// from the rollover when there was one, else from creation, so the delete
/// phase reads the same in both modes.
pub fn ilm_policy(config: &RetentionConfig, aliases: bool) -> Value {
    let mut phases = Map::new();
    if aliases {
        phases.insert(
            "hot".into(),
            json!({
                "min_age": "0ms",
                "actions": {"rollover": {
                    "max_age": time_value(config.rollover_max_age),
                    "max_size": config.rollover_max_size,
                }}
            }),
        );
    }
    phases.insert(
        "delete".into(),
        json!({
            "min_age": time_value(config.delete_after),
            "actions": {"delete": {}}
        }),
    );
    json!({"policy": {"phases": phases}})
}

/// What the index templates need to attach an installed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycle {
    /// The engine the policy was installed on.
    pub engine: Engine,
    /// The policy name.
    pub policy: String,
    /// Index prefix.
    pub prefix: Prefix,
    /// Rollover mode.
    pub aliases: bool,
}

impl Lifecycle {
    /// Settings for the template of `family` (spans or services).
    pub fn index_settings(&self, family: Family) -> Map<String, Value> {
        let write_alias = self.prefix.write_alias(family);
        let mut settings = Map::new();
        match self.engine {
            Engine::Elasticsearch => {
                settings.insert("index.lifecycle.name".into(), json!(self.policy));
                if self.aliases {
                    settings.insert("index.lifecycle.rollover_alias".into(), json!(write_alias));
                }
            }
            // ISM finds its indices through `ism_template`; only rollover
            // needs to know the alias.
            Engine::OpenSearch => {
                if self.aliases {
                    settings.insert(
                        "plugins.index_state_management.rollover_alias".into(),
                        json!(write_alias),
                    );
                }
            }
        }
        settings
    }

    /// Aliases every new index of `family` gets: in alias mode the `-read`
    /// alias, so that indices a rollover creates are searched too.
    pub fn index_aliases(&self, family: Family) -> Map<String, Value> {
        let mut aliases = Map::new();
        if self.aliases {
            aliases.insert(self.prefix.read_alias(family), json!({}));
        }
        aliases
    }
}

/// Whether an answer means the API route does not exist on this node, as
/// opposed to an error from the API itself. Without the feature the
/// request falls through to core routes: OpenSearch and Elasticsearch say
/// "no handler found" (or "Incorrect HTTP method" when another route shares
/// the path), and Elasticsearch 7 may instead parse `_ilm` as an index name
/// (`invalid_index_name_exception` / `index_not_found_exception` naming it).
pub fn route_missing(status: u16, body: &str, root: &str) -> bool {
    if !matches!(status, 400 | 404 | 405) {
        return false;
    }
    if body.contains("no handler found for uri") || body.contains("Incorrect HTTP method") {
        return true;
    }
    let Ok(parsed) = serde_json::from_str::<Value>(body) else {
        return false;
    };
    let error = &parsed["error"];
    let names_root = |e: &Value| {
        e["index"] == root
            && matches!(
                e["type"].as_str(),
                Some("invalid_index_name_exception" | "index_not_found_exception")
            )
    };
    names_root(error)
        || error["root_cause"]
            .as_array()
            .is_some_and(|causes| causes.iter().any(names_root))
}

/// What to do with the ISM policy, given the one stored (`GET` answer).
#[derive(Debug, PartialEq, Eq)]
pub enum IsmStep {
    /// None stored: create it.
    Create,
    /// Stored with another description: replace that version.
    Update {
        /// `_seq_no` of the stored policy.
        seq_no: i64,
        /// `_primary_term` of the stored policy.
        primary_term: i64,
    },
    /// Stored as we would write it.
    Unchanged,
}

/// Decides from a `GET _plugins/_ism/policies/<name>` answer with status
/// 200. ISM refuses a plain `PUT` over an existing policy; an update must
/// name the version it replaces, which also makes two ingesters starting
/// together safe (the loser gets a 409 and looks again).
pub fn ism_step(stored: &Value, ours: &Value) -> IsmStep {
    if stored["policy"]["description"] == ours["policy"]["description"] {
        return IsmStep::Unchanged;
    }
    match (stored["_seq_no"].as_i64(), stored["_primary_term"].as_i64()) {
        (Some(seq_no), Some(primary_term)) => IsmStep::Update {
            seq_no,
            primary_term,
        },
        _ => IsmStep::Create,
    }
}

/// One HTTP answer: status and body text.
struct Answer {
    status: u16,
    body: String,
}

async fn call(
    writer: &BulkWriter,
    method: Method,
    path: &str,
    query: &[(&str, String)],
    body: Option<&Value>,
) -> Result<Answer, String> {
    let body = body.map(|b| b.to_string().into_bytes());
    let response = writer
        .engine()
        .client()
        .send(
            method,
            path,
            HeaderMap::new(),
            Some(query),
            body,
            Some(Duration::from_secs(30)),
        )
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status_code().as_u16();
    let body = response.text().await.map_err(|e| e.to_string())?;
    Ok(Answer { status, body })
}

fn excerpt(body: &str) -> String {
    body.chars().take(300).collect()
}

/// Detects the engine, installs (or updates) the policy and returns what
/// the templates need to attach it.
pub async fn install(
    writer: &BulkWriter,
    config: &RetentionConfig,
    prefix: &Prefix,
    aliases: bool,
) -> Result<Lifecycle, RetentionError> {
    let url = writer.engine().urls();
    let info = writer
        .engine()
        .server_info()
        .await
        .map_err(|error| RetentionError::Detect {
            url: url.to_owned(),
            reason: error.to_string(),
        })?;
    let engine = Engine::detect(&info);
    let version = info["version"]["number"].as_str().unwrap_or("?");
    let name = policy_name(prefix);
    let unsupported = |request: String, answer: &Answer| RetentionError::Unsupported {
        engine: format!("{} {version}", engine.name()),
        url: url.to_owned(),
        feature: engine.feature(),
        request,
        status: answer.status,
        detail: excerpt(&answer.body),
    };
    let failed = |reason: String| RetentionError::Install {
        name: name.clone(),
        reason,
    };
    match engine {
        Engine::Elasticsearch => {
            let path = format!("/_ilm/policy/{name}");
            let body = ilm_policy(config, aliases);
            let answer = call(writer, Method::Put, &path, &[], Some(&body))
                .await
                .map_err(failed)?;
            if route_missing(answer.status, &answer.body, "_ilm") {
                return Err(unsupported(format!("PUT {path}"), &answer));
            }
            if !(200..300).contains(&answer.status) {
                return Err(failed(format!(
                    "{}: {}",
                    answer.status,
                    excerpt(&answer.body)
                )));
            }
        }
        Engine::OpenSearch => {
            let path = format!("/_plugins/_ism/policies/{name}");
            let body = ism_policy(config, prefix, aliases);
            // A 409 means another ingester wrote it meanwhile: look again.
            let mut attempts = 0;
            loop {
                attempts += 1;
                let stored = call(writer, Method::Get, &path, &[], None)
                    .await
                    .map_err(failed)?;
                if route_missing(stored.status, &stored.body, "_plugins") {
                    return Err(unsupported(format!("GET {path}"), &stored));
                }
                let step = match stored.status {
                    404 => IsmStep::Create,
                    200 => {
                        let parsed: Value = serde_json::from_str(&stored.body)
                            .map_err(|e| failed(format!("unreadable stored policy: {e}")))?;
                        ism_step(&parsed, &body)
                    }
                    status => {
                        return Err(failed(format!("GET: {status}: {}", excerpt(&stored.body))));
                    }
                };
                let query = match step {
                    IsmStep::Unchanged => break,
                    IsmStep::Create => Vec::new(),
                    IsmStep::Update {
                        seq_no,
                        primary_term,
                    } => vec![
                        ("if_seq_no", seq_no.to_string()),
                        ("if_primary_term", primary_term.to_string()),
                    ],
                };
                let answer = call(writer, Method::Put, &path, &query, Some(&body))
                    .await
                    .map_err(failed)?;
                if (200..300).contains(&answer.status) {
                    break;
                }
                if answer.status != 409 || attempts >= 3 {
                    return Err(failed(format!(
                        "PUT: {}: {}",
                        answer.status,
                        excerpt(&answer.body)
                    )));
                }
            }
        }
    }
    tracing::info!(policy = %name, engine = engine.name(), "retention policy installed");
    Ok(Lifecycle {
        engine,
        policy: name,
        prefix: prefix.clone(),
        aliases,
    })
}

#[cfg(test)]
mod tests;
