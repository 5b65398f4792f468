//! The group scaffolding without a broker: librdkafka creates a consumer
//! without connecting, and the callbacks are called as `poll` would.

#![allow(clippy::unwrap_used)]

use std::sync::Mutex;

use rdkafka::Offset;

use super::*;
use crate::KafkaClientConfig;

#[derive(Debug, Default)]
struct Recorded {
    revoked: Mutex<Vec<(Vec<Partition>, bool)>>,
    assigned: Mutex<Vec<Vec<Partition>>>,
}

impl Policy for Recorded {
    fn revoke(&self, _: &BaseConsumer<GroupContext<Self>>, partitions: &[Partition], lost: bool) {
        self.revoked
            .lock()
            .unwrap()
            .push((partitions.to_vec(), lost));
    }

    fn assign(&self, _: &BaseConsumer<GroupContext<Self>>, list: &TopicPartitionList) {
        self.assigned.lock().unwrap().push(partitions(list));
    }
}

fn client() -> (KafkaClient, FaultReporter) {
    let config = KafkaClientConfig {
        // Nothing listens there; nothing here needs a connection.
        brokers: vec!["127.0.0.1:1".into()],
        ..KafkaClientConfig::default()
    };
    let kafka = KafkaClient::new(&config).unwrap();
    let faults = FaultReporter::new("test", &config);
    (kafka, faults)
}

const TOPICS: &[String] = &[];

fn group() -> Membership<'static> {
    Membership {
        topics: TOPICS,
        group_id: "g",
        start_offset: "earliest",
        session_timeout: Duration::from_secs(45),
        instance_id: Some("member-0"),
    }
}

fn member(lag: &Family<PartitionLabels, Gauge>) -> BaseConsumer<GroupContext<Recorded>> {
    let (kafka, faults) = client();
    let context = GroupContext::new(Recorded::default(), &kafka, faults, lag.clone());
    let topics = ["spans".to_owned()];
    let group = Membership {
        topics: &topics,
        ..group()
    };
    join(&kafka, &group, context, |_| {}).unwrap()
}

fn list(partitions: &[(&str, i32)]) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for (topic, partition) in partitions {
        list.add_partition_offset(topic, *partition, Offset::Invalid)
            .unwrap();
    }
    list
}

#[test]
fn a_revoke_reaches_the_policy_and_forgets_the_lag_of_those_partitions_only() {
    let lag = Family::<PartitionLabels, Gauge>::default();
    let consumer = member(&lag);
    for partition in 0..3 {
        lag.get_or_create(&PartitionLabels::new("spans", partition))
            .set(7);
    }
    let revoked = list(&[("spans", 0), ("spans", 2)]);
    consumer
        .context()
        .pre_rebalance(&consumer, &Rebalance::Revoke(&revoked));

    let seen = consumer.context().policy.revoked.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(
            vec![("spans".to_owned(), 0), ("spans".to_owned(), 2)],
            false
        )]
    );
    assert!(!lag.remove(&PartitionLabels::new("spans", 0)), "gauge kept");
    assert!(!lag.remove(&PartitionLabels::new("spans", 2)), "gauge kept");
    assert!(
        lag.remove(&PartitionLabels::new("spans", 1)),
        "gauge of a kept partition dropped"
    );
}

#[test]
fn an_assignment_reaches_the_policy_and_a_revoke_is_not_mistaken_for_one() {
    let lag = Family::<PartitionLabels, Gauge>::default();
    let consumer = member(&lag);
    let assigned = list(&[("spans", 4)]);
    consumer
        .context()
        .post_rebalance(&consumer, &Rebalance::Assign(&assigned));
    consumer
        .context()
        .post_rebalance(&consumer, &Rebalance::Revoke(&assigned));
    consumer
        .context()
        .pre_rebalance(&consumer, &Rebalance::Assign(&assigned));

    let policy = &consumer.context().policy;
    assert_eq!(
        *policy.assigned.lock().unwrap(),
        vec![vec![("spans".to_owned(), 4)]]
    );
    assert!(policy.revoked.lock().unwrap().is_empty());
}

#[test]
fn the_group_settings_come_before_the_consumer_s_own() {
    let (kafka, _) = client();
    let config = client_config(&kafka, &group(), |role| {
        role.set("enable.auto.commit", "false")
            .set("auto.offset.reset", "latest");
    });
    assert_eq!(config.get("group.id"), Some("g"));
    assert_eq!(config.get("session.timeout.ms"), Some("45000"));
    assert_eq!(config.get("group.instance.id"), Some("member-0"));
    assert_eq!(config.get("statistics.interval.ms"), Some("5000"));
    assert_eq!(config.get("enable.auto.commit"), Some("false"));
    assert_eq!(
        config.get("auto.offset.reset"),
        Some("latest"),
        "a consumer may override a group setting"
    );
    assert_eq!(config.get("bootstrap.servers"), Some("127.0.0.1:1"));
}

#[test]
fn assigned_is_empty_before_the_group_answers() {
    let lag = Family::<PartitionLabels, Gauge>::default();
    let consumer = member(&lag);
    assert!(assigned(&consumer).is_empty());
}
