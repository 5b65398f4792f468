//! Which offset may be committed for each partition.
//!
//! Batches complete out of order when several bulk requests are in flight.
//! A partition's committed offset may only move past records whose
//! documents are all durable, so the tracker keeps, per partition, the
//! offsets received but not yet done. The committable offset is the smallest
//! of those (everything below it is done), or one past the highest offset
//! seen when none is pending: Kafka's committed offset is the *next* offset
//! to read, hence the `+ 1`.
//!
//! Offsets need not be contiguous (compaction and transaction markers leave
//! gaps); only offsets actually received are tracked.

use std::collections::{BTreeSet, HashMap};

/// A topic and partition.
pub type TopicPartition = (String, i32);

#[derive(Debug, Default)]
struct PartitionState {
    pending: BTreeSet<i64>,
    highest_seen: Option<i64>,
    /// The last committable offset handed out, to report only advances.
    last_reported: Option<i64>,
}

impl PartitionState {
    fn committable(&self) -> Option<i64> {
        match self.pending.first() {
            Some(&lowest) => Some(lowest),
            None => self.highest_seen.map(|h| h + 1),
        }
    }
}

/// Offsets in flight, per partition.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<TopicPartition, PartitionState>,
}

impl OffsetTracker {
    /// Records that `offset` was received and is being processed.
    pub fn begin(&mut self, topic: &str, partition: i32, offset: i64) {
        let state = self
            .partitions
            .entry((topic.to_owned(), partition))
            .or_default();
        state.pending.insert(offset);
        state.highest_seen = Some(state.highest_seen.map_or(offset, |h| h.max(offset)));
    }

    /// Marks offsets as durable. Returns, for each partition whose
    /// committable offset advanced, the new offset to store. Offsets of a
    /// partition no longer tracked (revoked meanwhile) are ignored.
    pub fn complete<'a>(
        &mut self,
        done: impl IntoIterator<Item = (&'a str, i32, i64)>,
    ) -> Vec<(TopicPartition, i64)> {
        let mut touched: Vec<TopicPartition> = Vec::new();
        for (topic, partition, offset) in done {
            let key = (topic.to_owned(), partition);
            if let Some(state) = self.partitions.get_mut(&key) {
                state.pending.remove(&offset);
                if !touched.contains(&key) {
                    touched.push(key);
                }
            }
        }
        let mut advanced = Vec::new();
        for key in touched {
            if let Some(state) = self.partitions.get_mut(&key)
                && let Some(next) = state.committable()
                && state.last_reported.is_none_or(|last| next > last)
            {
                state.last_reported = Some(next);
                advanced.push((key, next));
            }
        }
        advanced
    }

    /// Records still pending for `partition`.
    pub fn pending(&self, topic: &str, partition: i32) -> usize {
        self.partitions
            .get(&(topic.to_owned(), partition))
            .map_or(0, |s| s.pending.len())
    }

    /// Records pending over all partitions.
    pub fn pending_total(&self) -> usize {
        self.partitions.values().map(|s| s.pending.len()).sum()
    }

    /// The committable offset of `partition`, if anything was received.
    pub fn committable(&self, topic: &str, partition: i32) -> Option<i64> {
        self.partitions
            .get(&(topic.to_owned(), partition))
            .and_then(PartitionState::committable)
    }

    /// Stops tracking a partition (revoked); later completions for it are ignored.
    pub fn forget(&mut self, topic: &str, partition: i32) {
        self.partitions.remove(&(topic.to_owned(), partition));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        ("t".to_owned(), p)
    }

    #[test]
    fn commits_only_the_contiguous_done_prefix() {
        let mut tracker = OffsetTracker::default();
        for offset in 10..15 {
            tracker.begin("t", 0, offset);
        }
        // 12 and 13 finish first: nothing below them is done, so nothing moves
        // except that 10 is still pending.
        assert_eq!(
            tracker.complete([("t", 0, 12), ("t", 0, 13)]),
            vec![(tp(0), 10)]
        );
        assert_eq!(tracker.complete([("t", 0, 10)]), vec![(tp(0), 11)]);
        assert_eq!(tracker.complete([("t", 0, 11)]), vec![(tp(0), 14)]);
        assert_eq!(
            tracker.complete([("t", 0, 14)]),
            vec![(tp(0), 15)],
            "next offset to read"
        );
        assert_eq!(tracker.pending("t", 0), 0);
    }

    #[test]
    fn partitions_are_independent_and_only_advances_are_reported() {
        let mut tracker = OffsetTracker::default();
        tracker.begin("t", 0, 5);
        tracker.begin("t", 1, 7);
        tracker.begin("t", 1, 8);
        assert_eq!(tracker.complete([("t", 1, 8)]), vec![(tp(1), 7)]);
        assert_eq!(
            tracker.complete([("t", 1, 8)]),
            vec![],
            "no advance, nothing reported"
        );
        assert_eq!(tracker.complete([("t", 0, 5), ("t", 1, 7)]).len(), 2);
        assert_eq!(tracker.committable("t", 0), Some(6));
        assert_eq!(tracker.committable("t", 1), Some(9));
    }

    #[test]
    fn gaps_in_offsets_do_not_block() {
        let mut tracker = OffsetTracker::default();
        tracker.begin("t", 0, 100);
        tracker.begin("t", 0, 105); // 101..104 were transaction markers
        assert_eq!(tracker.complete([("t", 0, 100)]), vec![(tp(0), 105)]);
        assert_eq!(tracker.complete([("t", 0, 105)]), vec![(tp(0), 106)]);
    }

    #[test]
    fn forgotten_partitions_ignore_late_completions() {
        let mut tracker = OffsetTracker::default();
        tracker.begin("t", 3, 1);
        tracker.forget("t", 3);
        assert_eq!(tracker.complete([("t", 3, 1)]), vec![]);
        assert_eq!(tracker.pending_total(), 0);
        assert_eq!(tracker.committable("t", 3), None);
    }
}
