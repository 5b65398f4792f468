//! Body buffers kept from one bulk request for the next.
//!
//! A bulk body (about 0.7 MiB for 1,000 span documents) is allocated, filled,
//! sent and freed dozens of times a second. Freed, its pages go back to the
//! system after the allocator's purge delay, and the next body faults them
//! in again. A few buffers kept here spare those faults; a buffer grown past
//! the usual request is not kept, so what stays resident is bounded.

use std::sync::Mutex;

use bytes::Bytes;

/// Buffers kept for reuse.
#[derive(Debug)]
pub struct BodyBuffers {
    free: Mutex<Vec<Vec<u8>>>,
    keep: usize,
    max_capacity: usize,
}

impl BodyBuffers {
    /// Keeps up to `keep` buffers of at most `max_capacity` bytes each.
    pub fn new(keep: usize, max_capacity: usize) -> Self {
        BodyBuffers {
            free: Mutex::new(Vec::with_capacity(keep)),
            keep,
            max_capacity,
        }
    }

    /// An empty buffer, with the capacity of an earlier body when one is kept.
    pub fn take(&self) -> Vec<u8> {
        self.lock().pop().unwrap_or_default()
    }

    /// Keeps `buffer` for a later [`Self::take`], emptied, unless enough are
    /// kept or it grew too large.
    pub fn give(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() == 0 || buffer.capacity() > self.max_capacity {
            return;
        }
        buffer.clear();
        let mut free = self.lock();
        if free.len() < self.keep {
            free.push(buffer);
        }
    }

    /// Takes back a body sent as [`Bytes`], if nothing else holds it any
    /// more (the HTTP client has let go of its copy): the same allocation,
    /// not a copy of it.
    pub fn reclaim(&self, body: Bytes) {
        if let Ok(unique) = body.try_into_mut() {
            self.give(Vec::from(unique));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        // Only pushes and pops happen under the lock; a poisoned list is whole.
        self.free
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_the_next_taken_empty_with_its_capacity() {
        let buffers = BodyBuffers::new(2, 1 << 20);
        assert_eq!(buffers.take().capacity(), 0, "nothing kept yet");
        let mut body = Vec::with_capacity(4096);
        body.extend_from_slice(b"{\"create\":{}}\n");
        let address = body.as_ptr();
        buffers.give(body);
        let again = buffers.take();
        assert!(again.is_empty());
        assert_eq!(again.capacity(), 4096);
        assert_eq!(again.as_ptr(), address, "the same allocation");
    }

    #[test]
    fn at_most_keep_buffers_none_too_large() {
        let buffers = BodyBuffers::new(2, 1024);
        buffers.give(Vec::with_capacity(2048));
        assert_eq!(buffers.take().capacity(), 0, "over max_capacity: dropped");
        for _ in 0..3 {
            buffers.give(Vec::with_capacity(512));
        }
        assert_eq!(buffers.take().capacity(), 512);
        assert_eq!(buffers.take().capacity(), 512);
        assert_eq!(buffers.take().capacity(), 0, "the third was not kept");
    }

    #[test]
    fn a_sent_body_comes_back_without_a_copy_once_unshared() {
        let buffers = BodyBuffers::new(1, 1 << 20);
        for capacity in [100, 4096] {
            // Exactly full and partly full bodies take different paths in `Bytes`.
            let mut body = Vec::with_capacity(capacity);
            body.resize(100, b'x');
            let address = body.as_ptr();
            let sent = Bytes::from(body);
            let held_by_client = sent.clone();
            buffers.reclaim(sent);
            assert_eq!(buffers.take().capacity(), 0, "still shared: not kept");
            buffers.reclaim(held_by_client);
            let again = buffers.take();
            assert_eq!(
                again.as_ptr(),
                address,
                "capacity {capacity}: same allocation"
            );
            assert!(again.capacity() >= 100 && again.is_empty());
        }
    }
}
