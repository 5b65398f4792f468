//! The writer task: stores the documents of closed windows, retrying until
//! they are stored, rewrites the Jaeger dependency documents of the periods
//! they fall in ([`crate::rollup`]), and only then acknowledges each window
//! to the polling thread so its offsets can be committed.
//!
//! Windows that queue up while a write is under way are written together,
//! with one roll-up per period for the lot: windows of many partitions
//! close at about the same time.

use std::sync::mpsc::Sender;

use spanway_search::bulk::writer::{BulkWriter, WriterError};
use spanway_search::document::Document;
use spanway_service_kit::liveness::Heartbeat;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use crate::rollup::{Rollup, RollupError};

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

/// Windows written in one go at most.
const MAX_BATCH: usize = 256;

/// Writes jobs until the channel closes or `cancel` fires; a window cut
/// short by `cancel` is not acknowledged, so its offsets stay uncommitted.
///
/// `heartbeat` (the `writer` loop) beats while waiting for a window, which
/// may take as long as the windows do, and inside each write.
pub async fn run(
    writer: BulkWriter,
    rollup: Rollup,
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
        let mut batch = vec![job];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let documents: Vec<Document> = batch
            .iter_mut()
            .flat_map(|job| std::mem::take(&mut job.documents))
            .collect();
        let rejected = match writer.write_all(documents, &cancel, &heartbeat).await {
            Ok(rejected) => rejected,
            Err(WriterError::Cancelled) => return,
            Err(error) => {
                tracing::error!(%error, "window write failed");
                return;
            }
        };
        for r in &rejected {
            tracing::error!(index = %r.document.index, id = %r.document.id, reason = %r.reason, "aggregate document refused by the engine");
        }
        let periods = rollup.periods(batch.iter().map(|job| job.window_start));
        let refused_rollups = match rollup.rewrite(&writer, &periods, &cancel, &heartbeat).await {
            Ok(refused) => refused,
            Err(RollupError::Cancelled | RollupError::Writer(WriterError::Cancelled)) => return,
            Err(error) => {
                tracing::error!(%error, "dependency documents could not be rewritten");
                return;
            }
        };
        // Refusals are counted once, on the first window of the batch.
        let mut rejected = rejected.len() + refused_rollups;
        for job in batch {
            let ack = Ack {
                key: job.key,
                generation: job.generation,
                window_start: job.window_start,
                rejected: std::mem::take(&mut rejected),
            };
            if acks.send(ack).is_err() {
                return;
            }
        }
    }
}
