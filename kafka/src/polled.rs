//! A producer with a thread of its own serving its delivery reports, as
//! rdkafka's `ThreadedProducer` has, without that one's idle spinning.
//!
//! `ThreadedProducer` polls in windows of 100 ms. rdkafka's poll loop
//! hands librdkafka the time left in whole milliseconds, rounded down, so
//! the last fraction of a millisecond of every window becomes a loop of
//! non-blocking polls: up to a millisecond of CPU per window, 1 % of a core
//! with nothing to do (an idle collector spent 9 ms a second on it). The
//! same loop with a window of [`POLL_WINDOW`] spins once per window, a
//! tenth as often.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::KafkaResult;
use rdkafka::producer::{BaseProducer, ProducerContext};

/// How long one poll call serves reports before the thread checks
/// whether the producer was dropped: also the longest the thread outlives
/// its last handle.
pub const POLL_WINDOW: Duration = Duration::from_secs(1);

/// A [`BaseProducer`] whose delivery reports a dedicated thread serves.
/// Clones share the producer; when the last is dropped the thread stops
/// within [`POLL_WINDOW`], and the producer is destroyed there (rdkafka
/// purges what is still queued then, so flush before dropping).
pub struct PolledProducer<C: ProducerContext + 'static> {
    producer: Arc<BaseProducer<C>>,
    _stop: Arc<StopOnDrop>,
}

impl<C: ProducerContext + 'static> std::fmt::Debug for PolledProducer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolledProducer").finish_non_exhaustive()
    }
}

impl<C: ProducerContext + 'static> Clone for PolledProducer<C> {
    fn clone(&self) -> Self {
        PolledProducer {
            producer: Arc::clone(&self.producer),
            _stop: Arc::clone(&self._stop),
        }
    }
}

/// Raises the flag the polling thread checks, once the last handle goes.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl<C: ProducerContext + 'static> PolledProducer<C> {
    /// Creates the producer from `config` and `context` and starts its
    /// polling thread, named `name` (at most 15 bytes show in `top`).
    pub fn new(config: &ClientConfig, context: C, name: &str) -> KafkaResult<Self> {
        let producer: Arc<BaseProducer<C>> = Arc::new(config.create_with_context(context)?);
        let stop = Arc::new(AtomicBool::new(false));
        let polled = Arc::clone(&producer);
        let flag = Arc::clone(&stop);
        thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    polled.poll(POLL_WINDOW);
                }
            })
            .map_err(|e| {
                rdkafka::error::KafkaError::ClientCreation(format!(
                    "starting the producer's polling thread: {e}"
                ))
            })?;
        Ok(PolledProducer {
            producer,
            _stop: Arc::new(StopOnDrop(stop)),
        })
    }
}

impl<C: ProducerContext + 'static> Deref for PolledProducer<C> {
    type Target = BaseProducer<C>;

    fn deref(&self) -> &BaseProducer<C> {
        &self.producer
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Instant;

    use rdkafka::ClientContext;
    use rdkafka::message::DeliveryResult;
    use rdkafka::producer::BaseRecord;

    use super::*;

    /// Passes each delivery outcome on, and tells when the producer that
    /// owns it is destroyed.
    struct Watched {
        delivered: mpsc::Sender<bool>,
        destroyed: Arc<AtomicBool>,
    }

    impl ClientContext for Watched {}

    impl ProducerContext for Watched {
        type DeliveryOpaque = ();

        fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
            let _ = self.delivered.send(result.is_ok());
        }
    }

    impl Drop for Watched {
        fn drop(&mut self) {
            self.destroyed.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_thread_serves_reports_and_ends_after_the_last_handle() {
        let (delivered, reports) = mpsc::channel();
        let destroyed = Arc::new(AtomicBool::new(false));
        let mut config = ClientConfig::new();
        // Nothing listens on port 1: the record times out, and that
        // report reaches the context only through a poll.
        config
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("message.timeout.ms", "300")
            .set("log_level", "0");
        let context = Watched {
            delivered,
            destroyed: Arc::clone(&destroyed),
        };
        let producer = PolledProducer::new(&config, context, "test-polled").unwrap();
        let copy = producer.clone();
        producer
            .send(BaseRecord::<(), [u8]>::to("polled").payload(b"x"))
            .unwrap();
        let ok = reports
            .recv_timeout(Duration::from_secs(20))
            .expect("a delivery report served by the polling thread");
        assert!(!ok, "no broker, so the record cannot have been delivered");

        drop(producer);
        std::thread::sleep(POLL_WINDOW * 2);
        assert!(
            !destroyed.load(Ordering::SeqCst),
            "a clone is alive, so the producer must be too"
        );
        drop(copy);
        let deadline = Instant::now() + POLL_WINDOW + Duration::from_secs(20);
        while !destroyed.load(Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline,
                "the producer outlived its last handle"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
