//! The polling thread: reads records, feeds the partition states, hands
//! closed windows to the writer, commits what is safe.
//!
//! Everything that touches partition state runs on this one thread, in
//! offset order per partition, including librdkafka's rebalance callbacks
//! (they run inside `poll`). Writes happen on the async writer task; their
//! acknowledgements come back through a channel and are applied here.

use std::cell::RefCell;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use spanway_kafka::group::{self, GroupContext, Membership, Partition, PartitionLabels, Policy};
use spanway_kafka::membership::FatalError;
use spanway_kafka::{FaultReporter, KafkaClient};
use spanway_schemas::record::{decode_record, record_encoding};
use spanway_schemas::{Encoding, headers};
use spanway_service_kit::liveness::Heartbeat;
use spanway_service_kit::ops::Readiness;
use spanway_service_kit::shutdown::ShutdownCheck;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::config::AnalyticsConfig;
use crate::documents::{Indices, window_documents};
use crate::metrics::{AnalyticsMetrics, EdgeSeries};
use crate::pairing::{NO_CLOCK, PartitionState, Position, Resume, Step, Timing};
use crate::span::otlp_wire::{Names, facts_of_otlp};
use crate::span::{PeerSource, SpanFacts};
use crate::writer::{Ack, WriteJob};
use spanway_schemas::id_hashing::{IdMap, id_map};

type Key = Partition;

/// Kafka brokers refuse commit metadata over `offset.metadata.max.bytes`
/// (4096 by default).
const MAX_METADATA_BYTES: usize = 4000;

struct Slot {
    state: PartitionState,
    generation: u64,
    last_record: Instant,
    committed: Option<Position>,
}

/// State shared by the loop and the rebalance callbacks (same thread; the
/// mutex only satisfies the `Sync` bound librdkafka's context needs).
struct Shared {
    /// Looked up once per record: keyed hashing of a few words instead of
    /// SipHash over the topic name (SipHash, this lookup's and the service
    /// names' together, was 2 % of the job's CPU). Topics and partitions
    /// come from the configuration, not from senders.
    slots: IdMap<Key, Slot>,
    acks: Receiver<Ack>,
    /// Closed windows handed to the writer and not yet acknowledged.
    unwritten: usize,
    next_generation: u64,
}

/// The job's rebalance decisions: before letting partitions go, wait for
/// the writer within the drain timeout and commit what is written (unless
/// the group already gave them away), then forget their state; the next
/// owner rebuilds it from the committed position.
struct Commits {
    shared: Arc<Mutex<Shared>>,
    metrics: AnalyticsMetrics,
    drain_timeout: Duration,
}

type JobConsumer = BaseConsumer<GroupContext<Commits>>;

impl Policy for Commits {
    fn revoke(&self, consumer: &JobConsumer, partitions: &[Partition], lost: bool) {
        let mut shared = lock(&self.shared);
        if !lost {
            drain(&mut shared, &self.metrics, self.drain_timeout);
            commit(
                consumer,
                &mut shared,
                &self.metrics,
                Some(partitions),
                CommitMode::Sync,
            );
        }
        for key in partitions {
            shared.slots.remove(key);
            self.metrics
                .clock_seconds
                .remove(&PartitionLabels::new(&key.0, key.1));
        }
        tracing::info!(
            partitions = partitions.len(),
            "partitions revoked; their state is rebuilt by the next owner from the committed position"
        );
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Applies every acknowledgement already received.
fn apply_acks(shared: &mut Shared, metrics: &AnalyticsMetrics) {
    while let Ok(ack) = shared.acks.try_recv() {
        apply_ack(shared, metrics, ack);
    }
}

fn apply_ack(shared: &mut Shared, metrics: &AnalyticsMetrics, ack: Ack) {
    shared.unwritten = shared.unwritten.saturating_sub(1);
    metrics.windows_written.inc();
    metrics.documents_rejected.inc_by(ack.rejected as u64);
    if let Some(slot) = shared.slots.get_mut(&ack.key)
        && slot.generation == ack.generation
    {
        slot.state.mark_written(ack.window_start);
    }
}

/// Waits up to `timeout` for the writer to acknowledge what it holds.
fn drain(shared: &mut Shared, metrics: &AnalyticsMetrics, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while shared.unwritten > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            tracing::warn!(
                windows = shared.unwritten,
                "windows still unwritten at the drain deadline; they will be rebuilt from the committed position"
            );
            return;
        }
        match shared
            .acks
            .recv_timeout(left.min(Duration::from_millis(100)))
        {
            Ok(ack) => apply_ack(shared, metrics, ack),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Commits the safe position of `only` (or every) partition, with the
/// clock in the metadata.
fn commit(
    consumer: &JobConsumer,
    shared: &mut Shared,
    metrics: &AnalyticsMetrics,
    only: Option<&[Key]>,
    mode: CommitMode,
) {
    let mut list = TopicPartitionList::new();
    let mut advanced = Vec::new();
    for (key, slot) in &shared.slots {
        if only.is_some_and(|keys| !keys.contains(key)) {
            continue;
        }
        let Some(resume) = slot.state.commit_position() else {
            continue;
        };
        let position = resume.position;
        if slot.committed == Some(position) {
            continue;
        }
        let metadata = resume.metadata();
        if metadata.len() > MAX_METADATA_BYTES {
            tracing::warn!(topic = %key.0, partition = key.1, windows = resume.written.len(), "commit metadata too large; commit deferred (shorten windows.allowed_lateness or lengthen windows.size)");
            continue;
        }
        if list
            .add_partition_offset(&key.0, key.1, Offset::Offset(position.offset))
            .is_err()
        {
            continue;
        }
        if let Some(mut element) = list.find_partition(&key.0, key.1) {
            element.set_metadata(metadata);
        }
        advanced.push((key.clone(), position));
    }
    if advanced.is_empty() {
        return;
    }
    match consumer.commit(&list, mode) {
        Ok(()) => {
            metrics.commits.inc();
            for (key, position) in advanced {
                if let Some(slot) = shared.slots.get_mut(&key) {
                    slot.committed = Some(position);
                    slot.state.prune(position);
                }
            }
        }
        Err(error) => tracing::warn!(%error, "offset commit failed; retried at the next interval"),
    }
}

/// Span facts whose buffer is kept between records; a larger record's
/// buffer is released after it.
const MAX_KEPT_FACTS: usize = 4096;

/// The job's consumer and everything the loop needs.
pub struct Job {
    consumer: JobConsumer,
    shared: Arc<Mutex<Shared>>,
    metrics: AnalyticsMetrics,
    edge_series: Option<EdgeSeries>,
    writes: UnboundedSender<WriteJob>,
    timing: Timing,
    indices: Indices,
    peer_order: Vec<PeerSource>,
    /// Only the polling thread reads records.
    names: RefCell<Names>,
    record_key: RefCell<Key>,
    /// A record's span facts, the buffer kept between records.
    facts: RefCell<Vec<SpanFacts>>,
    /// What a record's step produced, its vectors kept between records.
    step: RefCell<Step>,
    default_encoding: Encoding,
    commit_interval: Duration,
    idle_flush: Duration,
    drain_timeout: Duration,
    max_pending_windows: usize,
    kafka_ready: Readiness,
    kafka: KafkaClient,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").finish_non_exhaustive()
    }
}

impl Job {
    /// Creates the consumer and subscribes.
    pub fn new(
        config: &AnalyticsConfig,
        metrics: AnalyticsMetrics,
        edge_series: Option<EdgeSeries>,
        writes: UnboundedSender<WriteJob>,
        acks: Receiver<Ack>,
        kafka_ready: Readiness,
        (kafka, faults): (KafkaClient, FaultReporter),
    ) -> KafkaResult<Job> {
        let shared = Arc::new(Mutex::new(Shared {
            slots: id_map(),
            acks,
            unwritten: 0,
            next_generation: 0,
        }));
        let context = GroupContext::new(
            Commits {
                shared: shared.clone(),
                metrics: metrics.clone(),
                drain_timeout: config.kafka.drain_timeout,
            },
            &kafka,
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
        let consumer = group::join(&kafka, &group, context, |role| {
            // Only positions whose windows are written are committed, by us.
            role.set("enable.auto.commit", "false");
            spanway_kafka::fetch::apply(
                role,
                config.kafka.fetch_queue_kbytes,
                config.kafka.fetch_partition_kbytes,
            );
        })?;
        Ok(Job {
            consumer,
            shared,
            metrics,
            edge_series,
            writes,
            timing: config.timing(),
            indices: config.elasticsearch.indices(),
            peer_order: config.model.peer_attributes.clone(),
            names: RefCell::new(Names::default()),
            record_key: RefCell::new((String::new(), 0)),
            facts: RefCell::new(Vec::new()),
            step: RefCell::new(Step::default()),
            default_encoding: config.kafka.default_encoding,
            commit_interval: config.kafka.commit_interval,
            idle_flush: config.windows.idle_flush,
            drain_timeout: config.kafka.drain_timeout,
            max_pending_windows: config.elasticsearch.max_pending_windows,
            kafka_ready,
            kafka,
        })
    }

    /// Runs until `shutdown`, then drains the writer, commits and leaves
    /// the group.
    ///
    /// `heartbeat` beats once per poll, paused or not. The longest gap is a
    /// poll with a revoke in it, which waits up to `kafka.drain_timeout`
    /// for the writer and then commits synchronously.
    pub fn run(self, shutdown: &CancellationToken, heartbeat: Heartbeat) -> Result<(), FatalError> {
        let mut fatal = None;
        let mut last_tick = Instant::now();
        let mut last_probe: Option<Instant> = None;
        let mut shutdown = ShutdownCheck::new(shutdown.clone());
        let mut now = Instant::now();
        let mut paused = false;
        while !shutdown.cancelled_at(now) {
            let polled = self.consumer.poll(Duration::from_millis(100));
            // One clock reading per poll, for everything this iteration
            // times, the heartbeat and the shutdown check included: three
            // readings per record were 4 % of the job's CPU.
            now = Instant::now();
            heartbeat.beat_at(now.into());
            // One lock per iteration, taken after the poll: the rebalance
            // callbacks that share this state run inside `poll`, on this
            // thread, and would wait for it forever.
            let mut shared = match polled {
                Some(Ok(message)) => {
                    let mut shared = lock(&self.shared);
                    self.handle(&mut shared, &message, now);
                    shared
                }
                Some(Err(error)) => {
                    fatal = group::poll_error(&self.consumer, &error);
                    if fatal.is_some() {
                        break;
                    }
                    lock(&self.shared)
                }
                None => lock(&self.shared),
            };
            apply_acks(&mut shared, &self.metrics);
            let was_paused = paused;
            paused = self.apply_backpressure(&shared, paused);
            if was_paused && !paused {
                // Nothing was read while paused because we stopped reading,
                // not because the partitions went quiet: the idle clock
                // starts again now.
                for slot in shared.slots.values_mut() {
                    slot.last_record = now;
                }
            }
            if now.saturating_duration_since(last_tick) >= self.commit_interval {
                last_tick = now;
                // A paused partition is not idle: flushing it would analyse
                // traces whose other spans are waiting unread in Kafka.
                if !paused {
                    self.flush_idle(&mut shared);
                }
                commit(
                    &self.consumer,
                    &mut shared,
                    &self.metrics,
                    None,
                    CommitMode::Async,
                );
                self.update_gauges(&shared);
            }
            drop(shared);
            if last_probe.is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(5))
            {
                last_probe = Some(now);
                self.kafka.refresh_password(self.consumer.client());
                let reachable = self.consumer.context().faults().current().is_none()
                    && self
                        .consumer
                        .fetch_metadata(None, Duration::from_secs(2))
                        .is_ok();
                self.kafka_ready.set(reachable);
            }
        }
        let mut shared = lock(&self.shared);
        drain(&mut shared, &self.metrics, self.drain_timeout);
        heartbeat.beat();
        commit(
            &self.consumer,
            &mut shared,
            &self.metrics,
            None,
            CommitMode::Sync,
        );
        drop(shared);
        self.consumer.unsubscribe();
        tracing::info!("analytics consumer stopped");
        fatal.map_or(Ok(()), Err)
    }

    fn apply_backpressure(&self, shared: &Shared, paused: bool) -> bool {
        let over = shared.unwritten >= self.max_pending_windows;
        let under = shared.unwritten <= self.max_pending_windows / 2;
        if over == paused || (paused && !under) {
            return paused;
        }
        let Ok(assignment) = self.consumer.assignment() else {
            return paused;
        };
        if over {
            if self.consumer.pause(&assignment).is_ok() {
                self.metrics.pauses.inc();
                tracing::warn!(windows = shared.unwritten, "writer behind; reading paused");
                return true;
            }
        } else if self.consumer.resume(&assignment).is_ok() {
            tracing::info!("writer caught up; reading resumed");
            return false;
        }
        paused
    }

    fn update_gauges(&self, shared: &Shared) {
        let held: usize = shared.slots.values().map(|s| s.state.spans_held()).sum();
        let pending: usize = shared
            .slots
            .values()
            .map(|s| s.state.windows_pending())
            .sum();
        self.metrics.spans_held.set(held as i64);
        self.metrics.windows_pending.set(pending as i64);
        for (key, slot) in &shared.slots {
            if slot.state.clock() != NO_CLOCK {
                self.metrics
                    .clock_seconds
                    .get_or_create(&PartitionLabels {
                        topic: key.0.clone(),
                        partition: key.1,
                    })
                    .set(slot.state.clock() / 1_000_000);
            }
        }
    }

    fn flush_idle(&self, shared: &mut Shared) {
        let idle: Vec<Key> = shared
            .slots
            .iter()
            .filter(|(_, slot)| slot.last_record.elapsed() >= self.idle_flush)
            .map(|(key, _)| key.clone())
            .collect();
        for key in idle {
            let Some(slot) = shared.slots.get_mut(&key) else {
                continue;
            };
            let mut step = slot.state.flush_idle();
            let generation = slot.generation;
            if !step.closed.is_empty() {
                tracing::debug!(topic = %key.0, partition = key.1, windows = step.closed.len(), "idle partition flushed");
            }
            self.apply_step(shared, &key, generation, &mut step);
        }
    }

    /// The committed position of a partition this consumer just received.
    fn resume_position(&self, topic: &str, partition: i32) -> Option<Resume> {
        let mut list = TopicPartitionList::new();
        list.add_partition(topic, partition);
        let committed = match self
            .consumer
            .committed_offsets(list, Duration::from_secs(10))
        {
            Ok(committed) => committed,
            Err(error) => {
                tracing::warn!(%error, topic, partition, "cannot read the committed position; starting without a clock");
                return None;
            }
        };
        let element = committed.find_partition(topic, partition)?;
        let Offset::Offset(offset) = element.offset() else {
            return None;
        };
        Some(
            Resume::from_metadata(offset, element.metadata()).unwrap_or_else(|| {
                tracing::warn!(topic, partition, offset, "committed offset without this job's metadata; windows around it may be counted partially");
                Resume {
                    position: Position {
                        offset,
                        clock: NO_CLOCK,
                    },
                    written: Vec::new(),
                }
            }),
        )
    }

    fn handle(&self, shared: &mut Shared, message: &BorrowedMessage<'_>, now: Instant) {
        self.metrics.records_consumed.inc();
        // The key of the record's partition, kept between records so that
        // the topic name is not copied for each one.
        let mut key = self.record_key.borrow_mut();
        if key.0 != message.topic() {
            key.0 = message.topic().to_owned();
        }
        key.1 = message.partition();
        let key = &*key;
        let offset = message.offset();
        let mut facts = self.facts.borrow_mut();
        if facts.capacity() > MAX_KEPT_FACTS {
            // One huge record does not hold its buffer for good.
            *facts = Vec::new();
        }
        self.read(message, &mut facts);
        let facts = facts.drain(..);
        // Reading the committed position with the lock held is safe: the
        // only other holder is the rebalance callback, which runs inside
        // `poll` on this same thread.
        if let Some(slot) = shared.slots.get_mut(key) {
            slot.last_record = now;
            let generation = slot.generation;
            let mut step = self.step.borrow_mut();
            step.clear();
            slot.state.process_into(offset, facts, &mut step);
            self.apply_step(shared, key, generation, &mut step);
            return;
        }
        let resume = self.resume_position(&key.0, key.1);
        let generation = shared.next_generation;
        shared.next_generation += 1;
        tracing::info!(topic = %key.0, partition = key.1, ?resume, "partition state created");
        let mut slot = Slot {
            committed: resume.as_ref().map(|r| r.position),
            state: PartitionState::new(self.timing, resume),
            generation,
            last_record: now,
        };
        let mut step = self.step.borrow_mut();
        step.clear();
        slot.state.process_into(offset, facts, &mut step);
        shared.slots.insert(key.clone(), slot);
        self.apply_step(shared, key, generation, &mut step);
    }

    /// Decodes a record's span facts into `out`; an undecodable record
    /// yields none (and is counted), so that its offset is still passed.
    fn read(&self, message: &BorrowedMessage<'_>, out: &mut Vec<SpanFacts>) {
        let header = message.headers().and_then(|h| {
            h.iter()
                .find(|h| h.key == headers::ENCODING)
                .and_then(|h| h.value)
        });
        let payload = message.payload().unwrap_or_default();
        let encoding = record_encoding(header, self.default_encoding);
        if encoding == Ok(Encoding::OtlpProto) {
            let names = &mut self.names.borrow_mut();
            if facts_of_otlp(payload, &self.peer_order, names, out).is_some() {
                self.metrics.spans_read.inc_by(out.len() as u64);
                return;
            }
        }
        let decoded = encoding.and_then(|encoding| decode_record(encoding, payload));
        let spans = match decoded {
            Ok(spans) => spans,
            Err(error) => {
                self.metrics.records_undecodable.inc();
                tracing::warn!(topic = message.topic(), partition = message.partition(), offset = message.offset(), %error, "undecodable record skipped");
                return;
            }
        };
        self.metrics.spans_read.inc_by(spans.len() as u64);
        out.extend(spans.iter().filter_map(|span| {
            match SpanFacts::from_jaeger(span, &self.peer_order) {
                Ok(facts) => Some(facts),
                Err(error) => {
                    self.metrics.spans_unreadable.inc();
                    tracing::warn!(topic = message.topic(), partition = message.partition(), offset = message.offset(), %error, "span skipped");
                    None
                }
            }
        }));
    }

    fn apply_step(&self, shared: &mut Shared, key: &Key, generation: u64, step: &mut Step) {
        // Most records complete no trace: adding nothing would still be an
        // atomic add per counter, five per record.
        let counted = [
            (&self.metrics.traces_expired, step.traces_expired),
            (&self.metrics.traces_evicted, step.traces_evicted),
            (&self.metrics.unpaired_calls, step.unpaired_calls),
            (&self.metrics.orphan_spans, step.orphan_spans),
            (&self.metrics.edges_counted, step.edges.len() as u64),
        ];
        for (counter, n) in counted {
            if n > 0 {
                counter.inc_by(n);
            }
        }
        for (edge, late) in &step.edges {
            if *late {
                self.metrics.edges_late.inc();
            }
            if let Some(series) = &self.edge_series {
                series.observe(edge);
            }
        }
        for window in step.closed.drain(..) {
            let documents = window_documents(
                &self.indices,
                &key.0,
                key.1,
                &window,
                self.timing.window_micros,
            );
            let job = WriteJob {
                key: key.clone(),
                generation,
                window_start: window.start_micros,
                documents,
            };
            if self.writes.send(job).is_err() {
                tracing::error!("writer stopped; window left unwritten and uncommitted");
                continue;
            }
            shared.unwritten += 1;
        }
    }
}
