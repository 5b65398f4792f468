//! Creating the topics the pipeline needs, for an install step (the Helm
//! chart's hook Job runs `spanway-ingester create-topics`). Idempotent: a
//! topic that exists is left as it is and reported with its partition count,
//! since adding partitions moves trace ids to other partitions and changing
//! replication is a reassignment, both decisions for an operator.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::{FaultReporter, KafkaClient, ReportingContext};

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Partition count; each consumer replica owns whole partitions.
    pub partitions: i32,
    /// Replication factor; `None` leaves it to the broker's `default.replication.factor`.
    pub replication: Option<i32>,
    /// Topic configs (`retention.ms`, `compression.type`, ...).
    pub configs: Vec<(String, String)>,
}

/// What happened to one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicOutcome {
    /// Created with the requested partitions.
    Created { name: String, partitions: i32 },
    /// Already there; its partition count may differ from the request.
    Exists {
        name: String,
        partitions: i32,
        requested: i32,
    },
}

/// Why topics could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// The admin client could not be made from the configuration.
    #[error("cannot create the Kafka admin client: {0}")]
    Client(#[source] KafkaError),
    /// A spec is unusable before asking the broker.
    #[error("topic {topic:?}: {reason}")]
    Invalid { topic: String, reason: String },
    /// No answer from the cluster (unreachable, or a refused connection; the setting is named
    /// when the client diagnosed one).
    #[error("no answer from Kafka within {timeout:?}{hint}: {source}")]
    Unreachable {
        timeout: Duration,
        hint: String,
        #[source]
        source: KafkaError,
    },
    /// The broker refused to create a topic.
    #[error("Kafka refused to create topic {topic:?}: {code} ({hint})")]
    Refused {
        topic: String,
        code: RDKafkaErrorCode,
        hint: &'static str,
    },
    /// The topic was created but its metadata did not show it in time.
    #[error(
        "topic {topic:?} was created but the cluster's metadata did not show it within {timeout:?}"
    )]
    NotVisible { topic: String, timeout: Duration },
}

/// Creates each topic of `specs` that does not exist yet, waiting for the cluster to serve
/// its metadata. `timeout` bounds each request to the cluster.
pub async fn ensure_topics(
    client: &KafkaClient,
    specs: &[TopicSpec],
    timeout: Duration,
) -> Result<Vec<TopicOutcome>, TopicError> {
    for spec in specs {
        validate(spec)?;
    }
    let faults = FaultReporter::new("admin client", client.config());
    let admin: AdminClient<ReportingContext> = client
        .client_config(|_| {})
        .create_with_context(ReportingContext::new(client, faults.clone()))
        .map_err(TopicError::Client)?;
    let unreachable = |source: KafkaError| TopicError::Unreachable {
        timeout,
        hint: faults
            .current()
            .map(|d| format!(" ({}: check {})", d.hint, d.setting))
            .unwrap_or_default(),
        source,
    };

    let configs: Vec<Vec<(&str, &str)>> = specs
        .iter()
        .map(|s| {
            s.configs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect()
        })
        .collect();
    let new_topics: Vec<NewTopic<'_>> = specs
        .iter()
        .zip(&configs)
        .map(|(spec, configs)| {
            let replication = match spec.replication {
                Some(factor) => TopicReplication::Fixed(factor),
                // -1: the broker's default.replication.factor (KIP-464).
                None => TopicReplication::Fixed(-1),
            };
            configs.iter().fold(
                NewTopic::new(&spec.name, spec.partitions, replication),
                |topic, (key, value)| topic.set(key, value),
            )
        })
        .collect();
    let options = AdminOptions::new()
        .request_timeout(Some(timeout))
        .operation_timeout(Some(timeout));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(unreachable)?;

    let mut created = Vec::new();
    for result in results {
        match result {
            Ok(name) => created.push(name),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((
                _,
                code @ (RDKafkaErrorCode::RequestTimedOut | RDKafkaErrorCode::OperationTimedOut),
            )) => {
                return Err(unreachable(KafkaError::AdminOp(code)));
            }
            Err((topic, code)) => {
                return Err(TopicError::Refused {
                    topic,
                    hint: refusal_hint(code),
                    code,
                });
            }
        }
    }

    let mut outcomes = Vec::new();
    for spec in specs {
        let partitions = wait_for_partitions(&admin, &spec.name, timeout)
            .await
            .map_err(unreachable)?
            .ok_or_else(|| TopicError::NotVisible {
                topic: spec.name.clone(),
                timeout,
            })?;
        outcomes.push(if created.contains(&spec.name) {
            TopicOutcome::Created {
                name: spec.name.clone(),
                partitions,
            }
        } else {
            TopicOutcome::Exists {
                name: spec.name.clone(),
                partitions,
                requested: spec.partitions,
            }
        });
    }
    Ok(outcomes)
}

/// The topic's partition count once its metadata shows every partition, or `None` when it
/// does not within `timeout`.
async fn wait_for_partitions(
    admin: &AdminClient<ReportingContext>,
    topic: &str,
    timeout: Duration,
) -> Result<Option<i32>, KafkaError> {
    let deadline = Instant::now() + timeout;
    loop {
        let metadata = admin
            .inner()
            .fetch_metadata(Some(topic), timeout.min(Duration::from_secs(10)))?;
        let found = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().len() as i32)
            .filter(|n| *n > 0);
        if found.is_some() || Instant::now() >= deadline {
            return Ok(found);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn validate(spec: &TopicSpec) -> Result<(), TopicError> {
    let invalid = |reason: String| TopicError::Invalid {
        topic: spec.name.clone(),
        reason,
    };
    if spec.name.is_empty() || spec.name.len() > 249 {
        return Err(invalid("a topic name has 1 to 249 characters".into()));
    }
    if let Some(bad) = spec
        .name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(invalid(format!(
            "{bad:?} is not allowed in a topic name (letters, digits, '.', '_', '-')"
        )));
    }
    if spec.partitions < 1 {
        return Err(invalid(format!(
            "partitions must be at least 1, not {}",
            spec.partitions
        )));
    }
    if let Some(factor) = spec.replication.filter(|f| *f < 1) {
        return Err(invalid(format!(
            "the replication factor must be at least 1, not {factor}"
        )));
    }
    Ok(())
}

/// What an operator should change for a refusal.
fn refusal_hint(code: RDKafkaErrorCode) -> &'static str {
    match code {
        RDKafkaErrorCode::TopicAuthorizationFailed
        | RDKafkaErrorCode::ClusterAuthorizationFailed => {
            "the principal needs the Create ACL on the topic or the cluster; create the topics with an administrator's credentials otherwise"
        }
        RDKafkaErrorCode::InvalidReplicationFactor => {
            "the replication factor exceeds the number of brokers"
        }
        RDKafkaErrorCode::InvalidPartitions => "the partition count is not accepted",
        RDKafkaErrorCode::InvalidConfig => "a topic config key or value is not accepted",
        RDKafkaErrorCode::PolicyViolation => "the cluster's create-topic policy refused it",
        RDKafkaErrorCode::InvalidTopic => "the name is not a valid topic name",
        _ => "see the broker's log",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, partitions: i32, replication: Option<i32>) -> TopicSpec {
        TopicSpec {
            name: name.into(),
            partitions,
            replication,
            configs: Vec::new(),
        }
    }

    #[test]
    fn specs_are_checked_before_asking_the_broker() {
        assert!(validate(&spec("jaeger-spans", 12, Some(3))).is_ok());
        assert!(validate(&spec("jaeger.spans_v2", 1, None)).is_ok());
        let message = |s: TopicSpec| validate(&s).expect_err("invalid").to_string();
        assert!(message(spec("", 1, None)).contains("1 to 249"));
        assert!(message(spec("spans/eu", 1, None)).contains("'/'"));
        assert!(message(spec("spans", 0, None)).contains("partitions must be at least 1"));
        assert!(message(spec("spans", 3, Some(0))).contains("replication factor"));
        assert!(validate(&spec(&"a".repeat(250), 1, None)).is_err());
    }

    #[test]
    fn refusals_say_what_to_change() {
        assert!(refusal_hint(RDKafkaErrorCode::TopicAuthorizationFailed).contains("Create ACL"));
        assert!(refusal_hint(RDKafkaErrorCode::InvalidReplicationFactor).contains("brokers"));
    }
}
