//! The Kafka side: a dedicated thread polls the consumer group, groups
//! records into batches, pauses the partitions when too many bytes are in
//! flight, and handles rebalances and shutdown.
//!
//! Polling runs on its own thread, not on the async runtime, because
//! librdkafka runs rebalance callbacks inside `poll`, and ours blocks while
//! in-flight writes of revoked partitions drain. Blocking a tokio worker
//! there would stall the very writes it waits for.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use spanway_kafka::fetch;
use spanway_kafka::group::{self, GroupContext, Membership, Partition, Policy};
use spanway_kafka::membership::FatalError;
use spanway_kafka::{FaultReporter, KafkaClient};
use spanway_schemas::headers;
use spanway_service_kit::liveness::Heartbeat;
use spanway_service_kit::shutdown::ShutdownCheck;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::commit::{OffsetTracker, TopicPartition};
use crate::config::IngesterConfig;
use crate::dead_letter::Origin;
use crate::metrics::IngesterMetrics;

/// One record as read from Kafka, owned so it can cross threads.
#[derive(Debug, Clone)]
pub struct RawRecord {
    /// Where it came from.
    pub origin: Origin,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its `encoding` header, if any.
    pub encoding: Option<Vec<u8>>,
    /// Its value.
    pub payload: Vec<u8>,
}

/// Records handed to the writing side together.
#[derive(Debug, Default)]
pub struct Batch {
    /// The records, in the order read.
    pub records: Vec<RawRecord>,
    /// Sum of payload sizes.
    pub bytes: usize,
    started: Option<Instant>,
}

use spanway_kafka::group::PartitionLabels;

/// Failures that stop the consumer.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// The Kafka client failed.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

struct State {
    tracker: OffsetTracker,
    open: Batch,
    /// A full batch the writing side has not taken yet.
    ready: Option<Batch>,
}

/// State shared by the polling thread, its rebalance callbacks and the
/// writing side.
pub struct Shared {
    state: Mutex<State>,
    completed: Condvar,
    bytes_in_flight: AtomicUsize,
    paused: AtomicBool,
    batches: mpsc::Sender<Batch>,
    metrics: IngesterMetrics,
    drain_timeout: Duration,
    /// A batch is sealed at this many records. The limit is in documents
    /// (`bulk.max_documents`): every decodable record yields at least one
    /// document, so a sealed batch fills at least one bulk request, and the
    /// writer splits the rest into further requests.
    max_records: usize,
    /// A batch is sealed at this many record bytes (`bulk.max_bytes`);
    /// documents are larger than their encoded records, so again a sealed
    /// batch fills at least one request.
    max_bytes: usize,
    flush_interval: Duration,
    max_bytes_in_flight: usize,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("bytes_in_flight", &self.bytes_in_flight)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every
        // method finishes its updates before anything can panic).
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Marks records durable and stores the offsets that advanced.
    /// Offsets are stored under the lock so that two completions cannot
    /// store out of order.
    pub fn complete<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        origins: &[Origin],
        bytes: usize,
    ) {
        let mut state = self.lock();
        let advanced = state.tracker.complete(
            origins
                .iter()
                .map(|o| (o.topic.as_str(), o.partition, o.offset)),
        );
        if !advanced.is_empty() {
            let list = offsets_list(&advanced);
            if let Err(error) = consumer.store_offsets(&list) {
                // Only a partition revoked meanwhile refuses a store; its new
                // owner rereads these records, and their writes are 409s.
                tracing::warn!(%error, "cannot store offsets");
            } else {
                self.metrics.offsets_stored.inc();
            }
        }
        self.bytes_in_flight.fetch_sub(bytes, Ordering::AcqRel);
        self.metrics
            .bytes_in_flight
            .set(self.bytes_in_flight.load(Ordering::Acquire) as i64);
        drop(state);
        self.completed.notify_all();
    }

    fn add(&self, record: RawRecord) {
        let mut state = self.lock();
        let origin = &record.origin;
        state
            .tracker
            .begin(&origin.topic, origin.partition, origin.offset);
        let size = record.payload.len();
        self.bytes_in_flight.fetch_add(size, Ordering::AcqRel);
        self.publish_bytes();
        let open = &mut state.open;
        open.started.get_or_insert_with(Instant::now);
        open.bytes += size;
        open.records.push(record);
        if open.records.len() >= self.max_records || open.bytes >= self.max_bytes {
            self.seal(&mut state);
        }
    }

    fn publish_bytes(&self) {
        self.metrics
            .bytes_in_flight
            .set(self.bytes_in_flight.load(Ordering::Acquire) as i64);
    }

    /// Moves the open batch to `ready` if the ready slot is free.
    fn seal(&self, state: &mut State) {
        if state.ready.is_none() && !state.open.records.is_empty() {
            state.ready = Some(std::mem::take(&mut state.open));
        }
    }

    /// Seals a batch that has waited long enough and offers the ready batch
    /// to the writing side without blocking.
    fn flush(&self, now: Instant) {
        let mut state = self.lock();
        if state
            .open
            .started
            .is_some_and(|t| now.duration_since(t) >= self.flush_interval)
        {
            self.seal(&mut state);
        }
        if let Some(batch) = state.ready.take() {
            match self.batches.try_send(batch) {
                Ok(()) => {}
                Err(
                    mpsc::error::TrySendError::Full(batch)
                    | mpsc::error::TrySendError::Closed(batch),
                ) => {
                    state.ready = Some(batch);
                }
            }
        }
    }

    /// Whether reading must stop until writes catch up.
    fn over_budget(&self) -> bool {
        self.bytes_in_flight.load(Ordering::Acquire) >= self.max_bytes_in_flight
    }

    fn under_resume_mark(&self) -> bool {
        self.bytes_in_flight.load(Ordering::Acquire) < self.max_bytes_in_flight / 4 * 3
    }

    /// Drops unsent records of `partitions` (their offsets are not committed,
    /// so the next owner reads them), waits for in-flight ones up to the
    /// drain timeout, then returns the committable offsets and forgets the
    /// partitions.
    fn release(&self, partitions: &HashSet<TopicPartition>) -> Vec<(TopicPartition, i64)> {
        let deadline = Instant::now() + self.drain_timeout;
        let mut guard = self.lock();
        let state = &mut *guard;
        let keep =
            |r: &RawRecord| !partitions.contains(&(r.origin.topic.clone(), r.origin.partition));
        let mut unsent = Vec::new();
        for batch in std::iter::once(&mut state.open).chain(state.ready.as_mut()) {
            let (kept, dropped): (Vec<_>, Vec<_>) = std::mem::take(&mut batch.records)
                .into_iter()
                .partition(keep);
            batch.records = kept;
            batch.bytes = batch.records.iter().map(|r| r.payload.len()).sum();
            unsent.extend(dropped);
        }
        if state.ready.as_ref().is_some_and(|b| b.records.is_empty()) {
            state.ready = None;
        }
        let unsent_bytes: usize = unsent.iter().map(|r| r.payload.len()).sum();
        self.bytes_in_flight
            .fetch_sub(unsent_bytes, Ordering::AcqRel);
        // Unsent records stay pending in the tracker, so the committable
        // offset stops below them; only the in-flight ones are waited for.
        let mut unsent_per_partition: std::collections::HashMap<TopicPartition, usize> =
            Default::default();
        for record in &unsent {
            *unsent_per_partition
                .entry((record.origin.topic.clone(), record.origin.partition))
                .or_default() += 1;
        }
        loop {
            let in_flight: usize = partitions
                .iter()
                .map(|tp| {
                    let unsent = unsent_per_partition.get(tp).copied().unwrap_or(0);
                    guard.tracker.pending(&tp.0, tp.1).saturating_sub(unsent)
                })
                .sum();
            let now = Instant::now();
            if in_flight == 0 || now >= deadline {
                if in_flight > 0 {
                    tracing::warn!(
                        in_flight,
                        "drain timeout: letting go of partitions with writes in flight; they will be reread"
                    );
                }
                break;
            }
            guard = match self.completed.wait_timeout(guard, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        let mut committable = Vec::new();
        for (topic, partition) in partitions {
            if let Some(offset) = guard.tracker.committable(topic, *partition) {
                committable.push(((topic.clone(), *partition), offset));
            }
            guard.tracker.forget(topic, *partition);
        }
        committable
    }
}

fn offsets_list(offsets: &[(TopicPartition, i64)]) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in offsets {
        if let Err(error) = list.add_partition_offset(topic, *partition, Offset::Offset(*offset)) {
            tracing::error!(%error, topic, partition, "invalid offset");
        }
    }
    list
}

/// The ingester's rebalance decisions: before letting partitions go, drop
/// their unsent records, let in-flight writes finish within the drain
/// timeout and commit what is durable; keep the pause state on assignment.
#[derive(Debug)]
pub struct Commits {
    shared: Arc<Shared>,
}

impl Policy for Commits {
    fn revoke(&self, consumer: &GroupConsumer, partitions: &[Partition], _lost: bool) {
        // A lost assignment is released too: its records must not be
        // written after another member has started on them; the commit is
        // then refused and the next owner rereads.
        let partitions: HashSet<TopicPartition> = partitions.iter().cloned().collect();
        tracing::info!(
            partitions = partitions.len(),
            "partitions revoked; draining in-flight writes"
        );
        let committable = self.shared.release(&partitions);
        if !committable.is_empty() {
            match consumer.commit(&offsets_list(&committable), CommitMode::Sync) {
                Ok(()) => tracing::info!(
                    partitions = committable.len(),
                    "offsets committed before letting go"
                ),
                Err(error) => {
                    tracing::warn!(%error, "commit on revoke failed; the next owner rereads")
                }
            }
        }
    }

    fn assign(&self, consumer: &GroupConsumer, list: &TopicPartitionList) {
        // librdkafka keeps a partition's application pause across
        // rebalances, so a partition paused before a revoke would come
        // back paused even though reading has resumed since. Set the
        // state explicitly on every assignment.
        let result = if self.shared.paused.load(Ordering::Acquire) {
            consumer.pause(list)
        } else {
            consumer.resume(list)
        };
        if let Err(error) = result {
            tracing::warn!(%error, "cannot set the pause state of newly assigned partitions");
        }
    }
}

/// A consumer group member with its shared state.
pub type GroupConsumer = BaseConsumer<GroupContext<Commits>>;

/// A subscribed consumer, its shared state and the batches it produces.
#[allow(missing_debug_implementations)] // librdkafka's consumer has no Debug
pub struct Started {
    /// The consumer group member.
    pub consumer: Arc<GroupConsumer>,
    /// State shared with the writing side.
    pub shared: Arc<Shared>,
    /// Batches ready to be written.
    pub batches: mpsc::Receiver<Batch>,
}

/// Creates the consumer and subscribes it.
pub fn create(
    config: &IngesterConfig,
    client: &KafkaClient,
    faults: FaultReporter,
    metrics: &IngesterMetrics,
) -> Result<Started, ConsumeError> {
    // One batch waits in the channel; the writer's semaphore bounds the rest.
    let (tx, rx) = mpsc::channel(1);
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            tracker: OffsetTracker::default(),
            open: Batch::default(),
            ready: None,
        }),
        completed: Condvar::new(),
        bytes_in_flight: AtomicUsize::new(0),
        paused: AtomicBool::new(false),
        batches: tx,
        metrics: metrics.clone(),
        drain_timeout: config.kafka.drain_timeout,
        max_records: config.bulk.max_documents,
        max_bytes: config.bulk.max_bytes,
        flush_interval: config.bulk.flush_interval,
        max_bytes_in_flight: config.bulk.max_bytes_in_flight,
    });
    let context = GroupContext::new(
        Commits {
            shared: shared.clone(),
        },
        client,
        faults,
        metrics.lag_records.clone(),
    );
    let group = Membership {
        topics: &config.kafka.topics,
        group_id: &config.kafka.group_id,
        start_offset: &config.kafka.start_offset,
        session_timeout: config.kafka.session_timeout,
        instance_id: config.kafka.instance_id.as_deref(),
    };
    let consumer = group::join(client, &group, context, |role| {
        // Offsets are stored by us once durable; librdkafka commits what is
        // stored every second, on revoke and on close.
        role.set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.commit.interval.ms", "1000");
        fetch::apply(
            role,
            config.kafka.fetch_queue_kbytes,
            config.kafka.fetch_partition_kbytes,
        );
    })?;
    Ok(Started {
        consumer: Arc::new(consumer),
        shared,
        batches: rx,
    })
}

/// The polling loop; runs on its own thread until `shutdown`, then drains,
/// commits and, past the drain timeout, cancels `abort` so that writes still
/// retrying give up (their records stay uncommitted).
///
/// `heartbeat` beats once per poll, paused or not: the longest gap is one
/// poll with a revoke in it (`kafka.drain_timeout` plus a synchronous commit).
pub fn poll_loop(
    consumer: Arc<GroupConsumer>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    abort: CancellationToken,
    heartbeat: Heartbeat,
) -> Result<(), FatalError> {
    let mut fatal = None;
    let mut check = ShutdownCheck::new(shutdown.clone());
    loop {
        let now = Instant::now();
        if check.cancelled_at(now) {
            break;
        }
        heartbeat.beat();
        shared.flush(now);
        manage_pause(&consumer, &shared);
        match consumer.poll(Duration::from_millis(50)) {
            None => {}
            Some(Err(error)) => {
                fatal = group::poll_error(&consumer, &error);
                if fatal.is_some() {
                    break;
                }
            }
            Some(Ok(message)) => {
                shared.metrics.records_consumed.inc();
                if let Some(ms) = message.timestamp().to_millis() {
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_millis() as i64)
                        .unwrap_or(ms);
                    let labels = PartitionLabels::new(message.topic(), message.partition());
                    shared
                        .metrics
                        .lag_seconds
                        .get_or_create(&labels)
                        .set((now - ms).max(0) / 1000);
                }
                let encoding = message
                    .headers()
                    .and_then(|h| {
                        h.iter()
                            .find(|h| h.key == headers::ENCODING)
                            .and_then(|h| h.value)
                    })
                    .map(<[u8]>::to_vec);
                shared.add(RawRecord {
                    origin: Origin {
                        topic: message.topic().to_owned(),
                        partition: message.partition(),
                        offset: message.offset(),
                    },
                    key: message.key().map(<[u8]>::to_vec),
                    encoding,
                    payload: message.payload().unwrap_or_default().to_vec(),
                });
            }
        }
    }
    tracing::info!("stopped reading; draining in-flight writes");
    // Everything assigned is released as on a revoke: unsent records are
    // dropped (uncommitted), in-flight ones get the drain timeout.
    let assigned: HashSet<TopicPartition> = group::assigned(&consumer).into_iter().collect();
    let committable = shared.release(&assigned);
    heartbeat.beat();
    abort.cancel();
    if !committable.is_empty() {
        match consumer.commit(&offsets_list(&committable), CommitMode::Sync) {
            Ok(()) => tracing::info!(partitions = committable.len(), "offsets committed"),
            Err(error) => {
                tracing::warn!(%error, "final commit failed; uncommitted records will be reread")
            }
        }
    }
    consumer.unsubscribe();
    fatal.map_or(Ok(()), Err)
}

fn manage_pause(consumer: &GroupConsumer, shared: &Shared) {
    let paused = shared.paused.load(Ordering::Acquire);
    // Both batch slots full: the writers are saturated, so stop growing the
    // open batch past its size limit.
    let backlog = {
        let state = shared.lock();
        state.ready.is_some()
            && (state.open.records.len() >= shared.max_records
                || state.open.bytes >= shared.max_bytes)
    };
    let want_pause = !paused && (shared.over_budget() || backlog);
    let want_resume = paused && shared.under_resume_mark() && !backlog;
    if !want_pause && !want_resume {
        return;
    }
    // Between a revoke and the next assignment there is nothing to pause or
    // resume; flipping the flag then would leave it out of step with the
    // partitions librdkafka still holds paused.
    let Ok(assignment) = consumer.assignment() else {
        return;
    };
    if assignment.count() == 0 {
        return;
    }
    if want_pause && consumer.pause(&assignment).is_ok() {
        shared.paused.store(true, Ordering::Release);
        shared.metrics.pauses.inc();
        tracing::info!(
            bytes_in_flight = shared.bytes_in_flight.load(Ordering::Acquire),
            "paused reading: writes are behind"
        );
    } else if want_resume && consumer.resume(&assignment).is_ok() {
        shared.paused.store(false, Ordering::Release);
        tracing::info!("resumed reading");
    }
}
