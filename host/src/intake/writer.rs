//! Group commit for intake: concurrent webhooks are written together, one
//! transaction (one fsync) per batch, and each request is answered only once its
//! batch is durable. A batch that fails is retried row by row so one bad event
//! cannot fail the others.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Notify};

use crate::queue::{jobs, NewJob};
use crate::store::{events, events::NewEvent, Pool};

/// Pending writes the channel holds before requests wait for room.
const CHANNEL_CAPACITY: usize = 4096;

/// An event and the jobs it creates, stored together or not at all.
pub struct Write {
    pub event: NewEvent,
    pub jobs: Vec<NewJob>,
}

type Reply = oneshot::Sender<Result<(), String>>;

/// Where intake sends what it accepted.
#[derive(Clone)]
pub enum EventSink {
    /// The real path: durable storage.
    Store(EventWriter),
    /// Answers without storing: only for the intake benchmark's baseline.
    Discard,
}

impl EventSink {
    pub async fn write(&self, write: Write) -> Result<(), String> {
        match self {
            Self::Store(writer) => writer.write(write).await,
            Self::Discard => Ok(()),
        }
    }
}

#[derive(Clone)]
pub struct EventWriter {
    tx: mpsc::Sender<(Write, Reply)>,
}

impl EventWriter {
    /// Starts the writer task. `wake` is notified after a batch that queued jobs.
    pub fn start(pool: Pool, max_batch: usize, wake: Arc<Notify>) -> Self {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        tokio::spawn(run(pool, rx, max_batch.max(1), wake));
        Self { tx }
    }

    pub async fn write(&self, write: Write) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((write, reply))
            .await
            .map_err(|_| "event writer stopped".to_string())?;
        answer
            .await
            .map_err(|_| "event writer stopped".to_string())?
    }
}

async fn run(
    pool: Pool,
    mut rx: mpsc::Receiver<(Write, Reply)>,
    max_batch: usize,
    wake: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        let queued_jobs = batch.iter().any(|(w, _)| !w.jobs.is_empty());
        match write_all(&pool, batch.iter().map(|(w, _)| w)).await {
            Ok(()) => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, size = batch.len(), "batch write failed; writing one by one");
                for (write, reply) in batch.drain(..) {
                    let result = write_all(&pool, std::iter::once(&write)).await.map_err(|e| {
                        tracing::error!(event = %write.event.id, error = %e, "cannot store event");
                        "storage failed".to_string()
                    });
                    let _ = reply.send(result);
                }
            }
        }
        if queued_jobs {
            wake.notify_waiters();
        }
    }
}

/// Rows per statement, under SQLite's limit of bound parameters (14 per row).
const ROWS_PER_STATEMENT: usize = 500;

async fn write_all<'a>(pool: &Pool, writes: impl Iterator<Item = &'a Write>) -> sqlx::Result<()> {
    let writes: Vec<&Write> = writes.collect();
    let new_events: Vec<&NewEvent> = writes.iter().map(|w| &w.event).collect();
    let new_jobs: Vec<&NewJob> = writes.iter().flat_map(|w| &w.jobs).collect();
    let mut tx = pool.begin().await?;
    for chunk in new_events.chunks(ROWS_PER_STATEMENT) {
        events::insert_many(&mut tx, chunk).await?;
    }
    for chunk in new_jobs.chunks(ROWS_PER_STATEMENT) {
        jobs::insert_many(&mut tx, chunk).await?;
    }
    tx.commit().await
}
