//! What every consumer-group member does the same way: joining the group
//! (client settings, membership, subscription), the librdkafka callbacks
//! (OAuth tokens, faults, lag statistics, rebalances) and the handling of
//! poll errors.
//!
//! What differs between consumers is what must happen before partitions
//! are let go and when an offset may be committed: the ingester commits a
//! record once its documents are durable, the analytics job once the
//! windows it fed are written. Each supplies that as a [`Policy`]; the
//! callbacks here run it on the polling thread, inside `poll`, which is the
//! only place librdkafka lets a member finish its work before the group
//! moves the partitions.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, TopicPartitionList};

use crate::membership::{self, FatalError};
use crate::{FaultReporter, KafkaClient};

/// A topic and partition number.
pub type Partition = (String, i32);

/// Labels of per-partition gauges; bounded by the partition count.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
}

impl PartitionLabels {
    /// The labels of `partition` of `topic`.
    pub fn new(topic: &str, partition: i32) -> Self {
        PartitionLabels {
            topic: topic.to_owned(),
            partition,
        }
    }
}

/// A consumer's own decisions at a rebalance.
pub trait Policy: Sized + Send + Sync + 'static {
    /// `partitions` are about to be taken away. Finish or give up what was
    /// read from them and commit what may be committed; the next owner
    /// starts from the committed offsets. `lost` says the group has already
    /// given them to another member (a session that timed out), so a commit
    /// would be refused.
    fn revoke(
        &self,
        consumer: &BaseConsumer<GroupContext<Self>>,
        partitions: &[Partition],
        lost: bool,
    );

    /// `partitions` were assigned. Nothing by default.
    fn assign(&self, consumer: &BaseConsumer<GroupContext<Self>>, partitions: &TopicPartitionList) {
        let _ = (consumer, partitions);
    }
}

/// librdkafka's callbacks for a group member: the client's OAuth tokens
/// and faults, per-partition lag from the statistics, and rebalances handed
/// to the consumer's [`Policy`].
#[derive(Debug)]
pub struct GroupContext<P> {
    /// The consumer's rebalance decisions.
    pub policy: P,
    faults: FaultReporter,
    kafka: KafkaClient,
    lag_records: Family<PartitionLabels, Gauge>,
}

impl<P> GroupContext<P> {
    /// Callbacks for a member made from `kafka`, reporting faults to
    /// `faults` and lag to `lag_records`.
    pub fn new(
        policy: P,
        kafka: &KafkaClient,
        faults: FaultReporter,
        lag_records: Family<PartitionLabels, Gauge>,
    ) -> Self {
        GroupContext {
            policy,
            faults,
            kafka: kafka.clone(),
            lag_records,
        }
    }

    /// Where this member's connection and permission faults are reported.
    pub fn faults(&self) -> &FaultReporter {
        &self.faults
    }
}

impl<P: Policy> ClientContext for GroupContext<P> {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
        self.kafka.oauth_token()
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if self.faults.report(&error, reason).is_none() {
            tracing::warn!(%error, reason, "kafka client error");
        }
    }

    fn stats(&self, statistics: Statistics) {
        for (topic, stats) in &statistics.topics {
            for (partition, p) in &stats.partitions {
                // librdkafka reports the internal partition -1 and a lag of
                // -1 where it does not know one yet.
                if *partition < 0 || p.consumer_lag < 0 {
                    continue;
                }
                self.lag_records
                    .get_or_create(&PartitionLabels::new(topic, *partition))
                    .set(p.consumer_lag);
            }
        }
    }
}

impl<P: Policy> ConsumerContext for GroupContext<P> {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        let revoked = partitions(list);
        self.policy
            .revoke(consumer, &revoked, consumer.assignment_lost());
        for (topic, partition) in &revoked {
            self.lag_records
                .remove(&PartitionLabels::new(topic, *partition));
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            tracing::info!(partitions = list.count(), "partitions assigned");
            self.policy.assign(consumer, list);
        }
    }
}

/// The group settings every member states the same way.
#[derive(Debug, Clone, Copy)]
pub struct Membership<'a> {
    /// Topics to read.
    pub topics: &'a [String],
    /// The consumer group.
    pub group_id: &'a str,
    /// Where a new group starts: `earliest` or `latest`.
    pub start_offset: &'a str,
    /// How long the coordinator waits for a silent member.
    pub session_timeout: Duration,
    /// Static membership id, if any (see [`membership`]).
    pub instance_id: Option<&'a str>,
}

/// Creates a member with `context`, the shared settings of `membership`
/// and the consumer's own `settings` (commit mode, fetch limits), and
/// subscribes it.
pub fn join<P: Policy>(
    kafka: &KafkaClient,
    group: &Membership<'_>,
    context: GroupContext<P>,
    settings: impl FnOnce(&mut ClientConfig),
) -> KafkaResult<BaseConsumer<GroupContext<P>>> {
    let consumer: BaseConsumer<GroupContext<P>> =
        client_config(kafka, group, settings).create_with_context(context)?;
    let topics: Vec<&str> = group.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    Ok(consumer)
}

/// The librdkafka settings of a member: the client's, the group's, then
/// the consumer's own.
fn client_config(
    kafka: &KafkaClient,
    group: &Membership<'_>,
    settings: impl FnOnce(&mut ClientConfig),
) -> ClientConfig {
    kafka.client_config(|role| {
        role.set("group.id", group.group_id)
            .set("auto.offset.reset", group.start_offset)
            .set(
                "session.timeout.ms",
                group.session_timeout.as_millis().to_string(),
            )
            // Per-partition lag for the `lag_records` gauges.
            .set("statistics.interval.ms", "5000");
        membership::apply(role, group.instance_id);
        settings(role);
    })
}

/// Reports an error `poll` returned (a missing ACL arrives here once per
/// poll while it lasts) and says whether the member must stop: fenced by
/// a newer member with its instance id, or otherwise fatally failed.
pub fn poll_error<P: Policy>(
    consumer: &BaseConsumer<GroupContext<P>>,
    error: &KafkaError,
) -> Option<FatalError> {
    let reason = error.to_string();
    if consumer.context().faults.report(error, &reason).is_none() {
        tracing::warn!(%error, "kafka consumer error");
    }
    let fatal = membership::fatal_error(consumer.client());
    if let Some(error) = &fatal {
        tracing::error!(%error, "stopping: the consumer cannot go on");
    }
    fatal
}

/// The partitions of `list`.
pub fn partitions(list: &TopicPartitionList) -> Vec<Partition> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

/// The partitions currently assigned to `consumer` (none if it cannot say).
pub fn assigned<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> Vec<Partition> {
    consumer
        .assignment()
        .map(|list| partitions(&list))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
