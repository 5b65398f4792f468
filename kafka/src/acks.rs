//! Waiting for the acknowledgements of a set of records with a single
//! wake-up.
//!
//! A future per record (rdkafka's `FutureProducer`) allocates a channel for
//! each and wakes the waiting task once per delivery report, or once per
//! batch of them; on two cores those wake-ups and the thread switches they
//! cause were a larger share of the collector's CPU than the work itself.
//! Here every record of a set (the collector's request) carries the same
//! [`Acks`]: each delivery report counts down, the first failure is kept,
//! and only the last report wakes the waiter. A set of one gives a record
//! its own outcome, as the ingester's dead letters need.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use crate::ReportingContext;
use futures::task::AtomicWaker;
use prometheus_client::metrics::counter::Counter;
use rdkafka::ClientContext;
use rdkafka::client::OAuthToken;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, DeliveryResult};
use rdkafka::producer::ProducerContext;
use rdkafka::statistics::Statistics;

/// The outstanding acknowledgements of one request's records.
#[derive(Debug)]
pub struct Acks {
    remaining: AtomicUsize,
    failure: Mutex<Option<KafkaError>>,
    waker: AtomicWaker,
    /// Records settled as written or possibly written, with
    /// [`Acks::REFUSED`] set once the request was answered with a refusal.
    /// One word, so that a record settling as the request gives up is
    /// counted exactly once: by [`Acks::refused`] or by the settling.
    stored: AtomicU64,
}

impl Acks {
    const REFUSED: u64 = 1 << 63;

    /// Acknowledgements for `records` records, each sent with a clone.
    pub fn new(records: usize) -> Arc<Acks> {
        Arc::new(Acks {
            remaining: AtomicUsize::new(records),
            failure: Mutex::new(None),
            waker: AtomicWaker::new(),
            stored: AtomicU64::new(0),
        })
    }

    /// One record's outcome; `maybe_written` says whether a failed record
    /// may have been written all the same (librdkafka's "possibly
    /// persisted": its request timed out or its connection broke). The last
    /// one wakes the waiting request. Returns whether the record was, or
    /// may have been, written after its request was refused.
    pub fn settle(&self, outcome: Result<(), KafkaError>, maybe_written: bool) -> bool {
        let written = outcome.is_ok() || maybe_written;
        if let Err(error) = outcome {
            let mut failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
            failure.get_or_insert(error);
        }
        let after_refusal =
            written && self.stored.fetch_add(1, Ordering::AcqRel) & Self::REFUSED != 0;
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.waker.wake();
        }
        after_refusal
    }

    /// Marks the request refused (a failure, the answer deadline, a full
    /// queue) and returns how many of its records were written, or may have
    /// been, so far: a client that resends the request writes those again.
    /// Records settling later report it from [`Acks::settle`].
    /// A second call returns 0.
    pub fn refused(&self) -> u64 {
        let before = self.stored.fetch_or(Self::REFUSED, Ordering::AcqRel);
        if before & Self::REFUSED != 0 {
            0
        } else {
            before
        }
    }

    /// Resolves once every record is settled: `Ok` when all were
    /// acknowledged, otherwise the first failure reported.
    pub fn all(self: Arc<Self>) -> AllSettled {
        AllSettled(self)
    }
}

/// See [`Acks::all`].
#[derive(Debug)]
pub struct AllSettled(Arc<Acks>);

impl Future for AllSettled {
    type Output = Result<(), KafkaError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let acks = &self.0;
        if acks.remaining.load(Ordering::Acquire) != 0 {
            acks.waker.register(cx.waker());
            // The last report may have come between the check and the
            // registration.
            if acks.remaining.load(Ordering::Acquire) != 0 {
                return Poll::Pending;
            }
        }
        let mut failure = acks.failure.lock().unwrap_or_else(|p| p.into_inner());
        Poll::Ready(match failure.take() {
            Some(error) => Err(error),
            None => Ok(()),
        })
    }
}

/// The producer's context: connection faults and tokens as every client
/// has them ([`ReportingContext`]), delivery reports settled on the
/// record's [`Acks`] (records written after their request was refused
/// counted), and, from librdkafka's statistics when
/// `statistics.interval.ms` turns them on, the batches it sent and the
/// producer epochs it started.
#[derive(Debug, Clone)]
pub struct AckingContext {
    reporting: ReportingContext,
    batches: Counter,
    epochs: Counter,
    written_after_refusal: Counter,
    /// Producer id and epoch at the previous statistics report.
    last_epoch: Arc<Mutex<Option<(i64, i64)>>>,
}

impl AckingContext {
    /// A context that counts no batches.
    pub fn new(reporting: ReportingContext) -> Self {
        AckingContext {
            reporting,
            batches: Counter::default(),
            epochs: Counter::default(),
            written_after_refusal: Counter::default(),
            last_epoch: Arc::default(),
        }
    }

    /// Adds the message sets (batches) each statistics report counts to
    /// `batches`. Records per batch is what the linger and the partition
    /// count decide, and what the producer's CPU per record follows.
    pub fn counting_batches(mut self, batches: Counter) -> Self {
        self.batches = batches;
        self
    }

    /// Adds the producer epochs started after the first to `epochs`, and
    /// warns when one starts.
    ///
    /// The idempotent producer deduplicates its retries only within an
    /// epoch. librdkafka starts a new one when records time out
    /// (`message.timeout.ms`) or a request fails out of sequence; a retried
    /// batch whose first attempt may have been written (its request timed
    /// out, or the connection broke) is then sent again under the new
    /// epoch, where the broker cannot recognise it, and can be on the topic
    /// twice. A new epoch is the only way the producer duplicates, so this
    /// counter is how an operator tells that a duplicate was possible
    /// (confluentinc/librdkafka#4953 discusses it).
    pub fn counting_epochs(mut self, epochs: Counter) -> Self {
        self.epochs = epochs;
        self
    }

    /// Adds to `written` the records written, or possibly written, after
    /// their request was refused (see [`Acks::refused`], whose count the
    /// caller adds).
    pub fn counting_written_after_refusal(mut self, written: Counter) -> Self {
        self.written_after_refusal = written;
        self
    }

    /// Epochs started since the previous report: the difference in epoch
    /// under the same producer id, or, under a new id, its epoch plus one.
    fn epochs_started(&self, id: i64, epoch: i64) -> u64 {
        if id < 0 || epoch < 0 {
            return 0;
        }
        let mut last = self.last_epoch.lock().unwrap_or_else(|p| p.into_inner());
        let started = match *last {
            None => 0,
            Some((last_id, last_epoch)) if last_id == id => epoch.saturating_sub(last_epoch),
            Some(_) => epoch.saturating_add(1),
        };
        *last = Some((id, epoch));
        u64::try_from(started).unwrap_or(0)
    }
}

impl ClientContext for AckingContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = ReportingContext::ENABLE_REFRESH_OAUTH_TOKEN;

    fn error(&self, error: KafkaError, reason: &str) {
        self.reporting.error(error, reason);
    }

    fn generate_oauth_token(
        &self,
        config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        self.reporting.generate_oauth_token(config)
    }

    fn stats(&self, statistics: Statistics) {
        // Each topic's batch-count window holds the batches made since the
        // previous report, so the reports' counts add up to the total.
        let made: i64 = statistics.topics.values().map(|t| t.batchcnt.cnt).sum();
        if let Ok(made @ 1..) = u64::try_from(made) {
            self.batches.inc_by(made);
        }
        if let Some(eos) = &statistics.eos {
            let started = self.epochs_started(eos.producer_id, eos.producer_epoch);
            if started > 0 {
                self.epochs.inc_by(started);
                tracing::warn!(
                    producer_id = eos.producer_id,
                    epoch = eos.producer_epoch,
                    started,
                    "the Kafka producer started a new epoch (records timed out, or a \
                     request failed out of sequence); records it sent again under \
                     it may be on the topic twice"
                );
            }
        }
    }
}

impl ProducerContext for AckingContext {
    type DeliveryOpaque = Arc<Acks>;

    fn delivery(&self, result: &DeliveryResult<'_>, acks: Arc<Acks>) {
        let after_refusal = match result {
            Ok(_) => acks.settle(Ok(()), true),
            Err((error, message)) => acks.settle(Err(error.clone()), possibly_written(message)),
        };
        if after_refusal {
            self.written_after_refusal.inc();
        }
    }
}

/// Whether librdkafka reports a failed record as possibly written: its
/// request timed out or its connection broke after it was sent.
#[allow(unsafe_code)]
fn possibly_written(message: &BorrowedMessage<'_>) -> bool {
    // SAFETY: the message pointer is valid while `message` is borrowed, and
    // the call only reads the message's status.
    let status = unsafe { rdkafka_sys::rd_kafka_message_status(message.ptr()) };
    status != rdkafka_sys::rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_NOT_PERSISTED
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use rdkafka::types::RDKafkaErrorCode;

    use super::*;

    fn poll(future: &mut AllSettled) -> Poll<Result<(), KafkaError>> {
        Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
    }

    /// A context whose statistics are fed by hand.
    fn unconnected_context() -> AckingContext {
        let config = crate::KafkaClientConfig {
            // Nothing listens there; nothing here needs a connection.
            brokers: vec!["127.0.0.1:1".into()],
            ..crate::KafkaClientConfig::default()
        };
        let client = crate::KafkaClient::new(&config).unwrap();
        AckingContext::new(ReportingContext::new(
            &client,
            crate::FaultReporter::new("test", &config),
        ))
    }

    #[test]
    fn statistics_reports_add_their_batch_counts_up() {
        let batches = Counter::default();
        let context = unconnected_context().counting_batches(batches.clone());
        let report = |counts: &[i64]| {
            let mut statistics = Statistics::default();
            for (i, cnt) in counts.iter().enumerate() {
                let mut topic = rdkafka::statistics::Topic::default();
                topic.batchcnt.cnt = *cnt;
                statistics.topics.insert(format!("t{i}"), topic);
            }
            statistics
        };
        context.stats(report(&[3, 4]));
        assert_eq!(batches.get(), 7);
        context.stats(report(&[]));
        context.stats(report(&[0]));
        assert_eq!(batches.get(), 7);
        context.stats(report(&[5]));
        assert_eq!(batches.get(), 12);
    }

    #[test]
    fn epochs_started_after_the_first_are_counted_across_reports() {
        let epochs = Counter::default();
        let context = unconnected_context().counting_epochs(epochs.clone());
        let report = |eos: Option<(i64, i64)>| {
            let mut statistics = Statistics::default();
            statistics.eos = eos.map(|(id, epoch)| rdkafka::statistics::ExactlyOnceSemantics {
                producer_id: id,
                producer_epoch: epoch,
                ..Default::default()
            });
            statistics
        };
        // No id yet, then the first one: nothing started beyond the first.
        context.stats(report(Some((-1, -1))));
        context.stats(report(Some((7, 0))));
        context.stats(report(None));
        context.stats(report(Some((7, 0))));
        assert_eq!(epochs.get(), 0);
        // Three bumps between two reports.
        context.stats(report(Some((7, 3))));
        assert_eq!(epochs.get(), 3);
        // A new id at epoch 0 is one more.
        context.stats(report(Some((9, 0))));
        assert_eq!(epochs.get(), 4);
        context.stats(report(Some((9, 0))));
        assert_eq!(epochs.get(), 4);
    }

    #[test]
    fn records_written_around_a_refusal_are_counted_once() {
        let timed_out = || KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        let acks = Acks::new(6);
        // Before the refusal: written, possibly written, not written.
        assert!(!acks.settle(Ok(()), true));
        assert!(!acks.settle(Err(timed_out()), true));
        assert!(!acks.settle(Err(timed_out()), false));
        assert_eq!(acks.refused(), 2, "written so far");
        // After it, each written one reports itself.
        assert!(acks.settle(Ok(()), true));
        assert!(acks.settle(Err(timed_out()), true));
        assert!(!acks.settle(Err(timed_out()), false));
        // A second refusal counts nothing again.
        assert_eq!(acks.refused(), 0);
    }

    #[test]
    fn resolves_only_after_the_last_report_with_the_first_failure() {
        let acks = Acks::new(3);
        let mut all = acks.clone().all();
        assert!(poll(&mut all).is_pending());
        acks.settle(Ok(()), true);
        acks.settle(
            Err(KafkaError::MessageProduction(
                RDKafkaErrorCode::MessageTimedOut,
            )),
            true,
        );
        assert!(poll(&mut all).is_pending(), "one record still out");
        acks.settle(
            Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)),
            false,
        );
        match poll(&mut all) {
            Poll::Ready(Err(KafkaError::MessageProduction(code))) => {
                assert_eq!(code, RDKafkaErrorCode::MessageTimedOut, "the first failure")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wakes_the_waiting_task_once_all_are_in() {
        let acks = Acks::new(2);
        let all = acks.clone().all();
        let waiter = std::thread::spawn(move || futures::executor::block_on(all));
        let reporter = {
            let acks = acks.clone();
            std::thread::spawn(move || {
                acks.settle(Ok(()), true);
                acks.settle(Ok(()), true);
            })
        };
        reporter.join().unwrap();
        assert!(waiter.join().unwrap().is_ok());
    }
}
