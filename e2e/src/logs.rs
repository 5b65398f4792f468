//! What the processes started in a test log, kept in memory so a test can
//! assert that an operator would read the right line (the setting at
//! fault, say). One capture per test binary: the first call installs it,
//! and every test of the binary writes into it, so assertions look for a
//! value unique to their own test.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static CAPTURE: OnceLock<Buffer> = OnceLock::new();

/// Starts capturing log lines at `info` and above (idempotent).
pub fn capture() {
    CAPTURE.get_or_init(|| {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_env_filter("info")
            .with_writer(move || writer.clone())
            .try_init();
        buffer
    });
}

/// The captured lines that contain every one of `needles`.
pub fn lines_with(needles: &[&str]) -> Vec<String> {
    let Some(buffer) = CAPTURE.get() else {
        return Vec::new();
    };
    let bytes = buffer.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|line| needles.iter().all(|n| line.contains(n)))
        .map(str::to_owned)
        .collect()
}
