//! Group commit for intake: concurrent webhooks are written together by one
//! thread on a plain SQLite connection (shared with the queue's thread, in
//! turns: see [`WriteTurn`]), one transaction per batch, and each request is
//! answered only once its batch is on disk. A batch that fails is retried row
//! by row so one bad event cannot fail the others.
//!
//! Why a thread and a plain connection: the hot path of the service is here, and
//! going through the async pool costs a channel round trip per statement. With
//! cached prepared statements on a plain connection a batch is a few
//! microseconds per row.
//!
//! Durability: the database runs `synchronous=NORMAL` (commits reach the OS in
//! WAL order, checksummed), and after each commit a second thread flushes the
//! WAL file with `fdatasync` before the batch is answered: every WAL frame up to
//! the batch's commit frame is then on disk, which is what SQLite's recovery
//! replays. Flushing on its own thread lets the next batch be written meanwhile,
//! and one flush answers every batch committed before it started. (SQLite's own
//! FULL mode calls `fsync` under its write lock, ten times slower here.)

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::params;
use tokio::sync::{mpsc, oneshot, Notify};

use super::dedup::{self, Claim, Original};
use crate::ids::now_ms;
use crate::queue::{jobs, NewJob};
use crate::store::events::{self, NewEvent};
use crate::store::maintenance;
use crate::store::write_turn::WriteTurn;

/// Pending writes the channel holds before requests wait for room.
const CHANNEL_CAPACITY: usize = 4096;

/// How often the writer forgets expired dedup claims.
pub(super) const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// An event and the jobs it creates, stored together or not at all, unless
/// its dedup keys show it repeats an earlier event.
pub struct Write {
    pub event: NewEvent,
    pub jobs: Vec<NewJob>,
    pub claim: Claim,
}

/// What became of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Stored with its jobs.
    New,
    /// Not stored: it repeats this earlier event.
    Duplicate(Original),
}

pub(super) type Outcome = Result<Stored, String>;
type Reply = oneshot::Sender<Outcome>;

/// Where intake sends what it accepted.
#[derive(Clone)]
pub enum EventSink {
    /// The real path: durable storage.
    Store(EventWriter),
    /// Answers without storing: only for the intake benchmark's baseline.
    Discard,
}

impl EventSink {
    pub async fn write(&self, write: Write) -> Outcome {
        match self {
            Self::Store(writer) => writer.write(write).await,
            Self::Discard => Ok(Stored::New),
        }
    }
}

impl EventSink {
    /// Whether the writer thread still takes events (for `/readyz`).
    pub fn is_running(&self) -> bool {
        match self {
            Self::Store(writer) => !writer.tx.is_closed(),
            Self::Discard => true,
        }
    }
}

#[derive(Clone)]
pub struct EventWriter {
    tx: mpsc::Sender<(Write, Reply)>,
}

/// What the writer receives: a write and where to answer.
pub(super) type Request = (Write, Reply);

/// How the flush thread makes the WAL durable: [`sync`], or a fault a test
/// injects (a failing disk).
pub type FlushFn = fn(&Path) -> std::io::Result<()>;

impl EventWriter {
    /// Opens `database` (a SQLite file, already migrated) and starts the writer
    /// thread. `wake` is notified after a durable batch that queued jobs.
    /// `wal_max_bytes` bounds the log (see [`crate::store::maintenance::bound_wal`]).
    /// Batches are written on the connection of `turn`, in turns with the
    /// queue (see [`WriteTurn`]).
    pub fn start(
        database: &Path,
        max_batch: usize,
        wal_max_bytes: u64,
        wake: Arc<Notify>,
        turn: Arc<WriteTurn>,
    ) -> anyhow::Result<Self> {
        Self::start_with_flush(database, max_batch, wal_max_bytes, wake, turn, sync)
    }

    /// [`EventWriter::start`] with another WAL flush (fault-injection seam).
    pub fn start_with_flush(
        database: &Path,
        max_batch: usize,
        wal_max_bytes: u64,
        wake: Arc<Notify>,
        turn: Arc<WriteTurn>,
        sync: FlushFn,
    ) -> anyhow::Result<Self> {
        let file = database.to_path_buf();
        let wal = PathBuf::from(format!("{}-wal", database.display()));
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let (committed, to_flush) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("intake-writer".into())
            .spawn(move || {
                run(rx, max_batch.max(1), &committed, &turn, |conn| {
                    maintenance::bound_wal(conn, &file, wal_max_bytes)
                })
            })
            .context("cannot start the intake writer thread")?;
        std::thread::Builder::new()
            .name("intake-flush".into())
            .spawn(move || flush(&wal, &to_flush, &wake, sync))
            .context("cannot start the intake flush thread")?;
        Ok(Self { tx })
    }

    /// The writer on PostgreSQL: a task committing each batch in one
    /// transaction through `pool` (see [`super::writer_postgres`]).
    pub fn start_postgres(pool: crate::store::Pool, max_batch: usize, wake: Arc<Notify>) -> Self {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        tokio::spawn(super::writer_postgres::run(
            pool,
            rx,
            max_batch.max(1),
            wake,
        ));
        Self { tx }
    }

    pub async fn write(&self, write: Write) -> Outcome {
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

/// A committed batch waiting for the WAL flush: its answers, and whether it
/// queued jobs (workers are woken once it is durable).
struct Committed {
    replies: Vec<(Reply, Outcome)>,
    queued_jobs: bool,
}

/// The writer thread: batch and commit, until every sender is gone.
fn run(
    mut rx: mpsc::Receiver<(Write, Reply)>,
    max_batch: usize,
    committed: &std::sync::mpsc::Sender<Committed>,
    turn: &WriteTurn,
    after_commit: impl Fn(&rusqlite::Connection),
) {
    let mut batch = Vec::with_capacity(max_batch);
    let mut pruned = std::time::Instant::now();
    while let Some(first) = rx.blocking_recv() {
        // What arrived while the turn was the queue's joins this batch.
        let mut conn = turn.take();
        fill(&mut batch, first, &mut rx, max_batch);
        if pruned.elapsed() >= PRUNE_EVERY {
            pruned = std::time::Instant::now();
            let expired_before = batch[0].0.claim.expired_before;
            if let Err(err) = dedup::prune(&conn, expired_before) {
                tracing::warn!(error = %err, "cannot prune expired dedup keys");
            }
        }
        let results: Vec<Outcome> = match write_all(&mut conn, batch.iter().map(|(w, _)| w)) {
            Ok(stored) => stored.into_iter().map(Ok).collect(),
            Err(err) => {
                tracing::warn!(error = %err, size = batch.len(), "batch write failed; writing one by one");
                batch
                    .iter()
                    .map(|(write, _)| {
                        write_all(&mut conn, std::iter::once(write))
                            .map(|mut one| one.remove(0))
                            .map_err(|e| {
                                tracing::error!(event = %write.event.id, error = %e, "cannot store event");
                                "storage failed".to_string()
                            })
                    })
                    .collect()
            }
        };
        after_commit(&conn);
        drop(conn);
        let queued_jobs = batch
            .iter()
            .zip(&results)
            .any(|((w, _), r)| !w.jobs.is_empty() && r == &Ok(Stored::New));
        let replies = batch
            .drain(..)
            .map(|(_, reply)| reply)
            .zip(results)
            .collect();
        if committed
            .send(Committed {
                replies,
                queued_jobs,
            })
            .is_err()
        {
            return;
        }
    }
}

/// `first` and whatever else is waiting, up to `max_batch` requests.
pub(super) fn fill(
    batch: &mut Vec<Request>,
    first: Request,
    rx: &mut mpsc::Receiver<Request>,
    max_batch: usize,
) {
    batch.push(first);
    while batch.len() < max_batch {
        match rx.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
}

/// The flush thread: waits for committed batches, flushes the WAL once for all
/// of them, then answers them.
fn flush(
    wal: &Path,
    committed: &std::sync::mpsc::Receiver<Committed>,
    wake: &Notify,
    sync: FlushFn,
) {
    while let Ok(first) = committed.recv() {
        let mut ready = vec![first];
        ready.extend(committed.try_iter());
        let synced = sync(wal);
        if let Err(err) = &synced {
            tracing::error!(error = %err, "cannot flush the write-ahead log; webhooks are answered as failed");
        }
        let mut queued_jobs = false;
        for batch in ready {
            queued_jobs |= batch.queued_jobs;
            for (reply, result) in batch.replies {
                let result = if synced.is_ok() {
                    result
                } else {
                    Err("storage failed".to_string())
                };
                let _ = reply.send(result);
            }
        }
        if queued_jobs {
            wake.notify_waiters();
        }
    }
}

fn write_all<'a>(
    conn: &mut rusqlite::Connection,
    writes: impl Iterator<Item = &'a Write>,
) -> rusqlite::Result<Vec<Stored>> {
    let tx = conn.transaction()?;
    let mut stored = Vec::new();
    {
        let mut insert_event = tx.prepare_cached(events::INSERT)?;
        let mut insert_job = tx.prepare_cached(jobs::INSERT)?;
        let now = now_ms();
        for Write {
            event: e,
            jobs,
            claim,
        } in writes
        {
            if !claim.keys.is_empty() {
                if let Some(original) = dedup::claim(&tx, e.source_id, e.id.as_str(), now, claim)? {
                    stored.push(Stored::Duplicate(original));
                    continue;
                }
            }
            stored.push(Stored::New);
            insert_event.execute(params![
                e.id.as_str(),
                e.source_id,
                e.status.as_str(),
                e.topic,
                e.object_type,
                e.object_id,
                e.action,
                e.webhook_uuid,
                e.body.as_ref(),
                e.headers.to_string(),
                e.remote_addr,
                e.error,
                e.received_at,
                e.filtered,
            ])?;
            for job in jobs {
                let (kind, event_id, task_name, payload) = job.kind_columns();
                insert_job.execute(params![
                    job.id.as_str(),
                    job.connection_id,
                    job.plugin,
                    kind,
                    event_id,
                    task_name,
                    payload,
                    job.dedup_key,
                    job.max_attempts,
                    job.run_at,
                    now,
                    job.ordering_key,
                ])?;
            }
        }
    }
    tx.commit()?;
    Ok(stored)
}

/// Flushes the WAL file to disk (data and size: it grows as it is written).
fn sync(wal: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(wal)?
        .sync_data()
}
