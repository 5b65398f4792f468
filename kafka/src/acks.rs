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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use crate::ReportingContext;
use futures::task::AtomicWaker;
use rdkafka::ClientContext;
use rdkafka::client::OAuthToken;
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::ProducerContext;

/// The outstanding acknowledgements of one request's records.
#[derive(Debug)]
pub struct Acks {
    remaining: AtomicUsize,
    failure: Mutex<Option<KafkaError>>,
    waker: AtomicWaker,
}

impl Acks {
    /// Acknowledgements for `records` records, each sent with a clone.
    pub fn new(records: usize) -> Arc<Acks> {
        Arc::new(Acks {
            remaining: AtomicUsize::new(records),
            failure: Mutex::new(None),
            waker: AtomicWaker::new(),
        })
    }

    /// One record's outcome. The last one wakes the waiting request.
    pub fn settle(&self, outcome: Result<(), KafkaError>) {
        if let Err(error) = outcome {
            let mut failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
            failure.get_or_insert(error);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.waker.wake();
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
/// has them ([`ReportingContext`]), and delivery reports settled on the
/// record's [`Acks`].
#[derive(Debug, Clone)]
pub struct AckingContext(pub ReportingContext);

impl ClientContext for AckingContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = ReportingContext::ENABLE_REFRESH_OAUTH_TOKEN;

    fn error(&self, error: KafkaError, reason: &str) {
        self.0.error(error, reason);
    }

    fn generate_oauth_token(
        &self,
        config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        self.0.generate_oauth_token(config)
    }
}

impl ProducerContext for AckingContext {
    type DeliveryOpaque = Arc<Acks>;

    fn delivery(&self, result: &DeliveryResult<'_>, acks: Arc<Acks>) {
        acks.settle(
            result
                .as_ref()
                .map(|_| ())
                .map_err(|(error, _)| error.clone()),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use rdkafka::types::RDKafkaErrorCode;

    use super::*;

    fn poll(future: &mut AllSettled) -> Poll<Result<(), KafkaError>> {
        Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn resolves_only_after_the_last_report_with_the_first_failure() {
        let acks = Acks::new(3);
        let mut all = acks.clone().all();
        assert!(poll(&mut all).is_pending());
        acks.settle(Ok(()));
        acks.settle(Err(KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageTimedOut,
        )));
        assert!(poll(&mut all).is_pending(), "one record still out");
        acks.settle(Err(KafkaError::MessageProduction(
            RDKafkaErrorCode::QueueFull,
        )));
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
                acks.settle(Ok(()));
                acks.settle(Ok(()));
            })
        };
        reporter.join().unwrap();
        assert!(waiter.join().unwrap().is_ok());
    }
}
