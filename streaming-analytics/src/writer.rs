//! The writer task: stores the documents of closed windows, one window at a
//! time, retrying until they are stored, and acknowledges each window to
//! the polling thread so its offsets can be committed.

use std::sync::mpsc::Sender;

use spanway_search::document::Document;
use spanway_search::writer::{BulkWriter, WriterError};
use spanway_service_kit::liveness::Heartbeat;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

/// The documents of one closed window of one partition.
#[derive(Debug)]
pub struct WriteJob {
    /// Topic and partition.
    pub key: (String, i32),
    /// Which incarnation of the partition's state closed it.
    pub generation: u64,
    /// Window start, µs.
    pub window_start: i64,
    /// Its documents.
    pub documents: Vec<Document>,
}

/// A window is stored.
#[derive(Debug)]
pub struct Ack {
    /// Topic and partition.
    pub key: (String, i32),
    /// As in the job.
    pub generation: u64,
    /// Window start, µs.
    pub window_start: i64,
    /// Documents the engine refused for good (logged).
    pub rejected: usize,
}

/// Writes jobs until the channel closes or `cancel` fires; a window cut
/// short by `cancel` is not acknowledged, so its offsets stay uncommitted.
///
/// `heartbeat` (the `writer` loop) beats while waiting for a window, which
/// may take as long as the windows do, and inside each write.
pub async fn run(
    writer: BulkWriter,
    mut jobs: UnboundedReceiver<WriteJob>,
    acks: Sender<Ack>,
    cancel: CancellationToken,
    heartbeat: Heartbeat,
) {
    loop {
        let job = heartbeat
            .beat_while(async {
                tokio::select! {
                    _ = cancel.cancelled() => None,
                    job = jobs.recv() => job,
                }
            })
            .await;
        let Some(job) = job else { return };
        match writer.write_all(job.documents, &cancel, &heartbeat).await {
            Ok(rejected) => {
                for r in &rejected {
                    tracing::error!(index = %r.document.index, id = %r.document.id, reason = %r.reason, "aggregate document refused by the engine");
                }
                let ack = Ack {
                    key: job.key,
                    generation: job.generation,
                    window_start: job.window_start,
                    rejected: rejected.len(),
                };
                if acks.send(ack).is_err() {
                    return;
                }
            }
            Err(WriterError::Cancelled) => return,
            Err(error) => {
                tracing::error!(%error, "window write failed");
                return;
            }
        }
    }
}
