//! Keeping the disk bounded: the write-ahead log is checkpointed in the
//! background and truncated when it grows past its limit, and finished work
//! older than the retention period is deleted in small batches.
//!
//! Why both checkpoint kinds: a PASSIVE checkpoint never blocks anyone, but
//! under sustained load some reader always holds a snapshot, the log is never
//! restarted and the file grows without end (4.6 GB in two minutes at 17k
//! webhooks/s). A TRUNCATE checkpoint waits for readers to move on, copies the
//! log back and cuts the file to zero; it briefly holds writers, so it runs
//! only when the log passes half its limit.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Pool;
use crate::ids::now_ms;

/// How often the WAL is copied back into the database (PASSIVE).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// How often the WAL's size is looked at.
const WATCH_EVERY: Duration = Duration::from_millis(10);
/// How often the retention pass runs (also once at start).
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Rows deleted per transaction, so a pass never holds the writer long.
pub const PRUNE_BATCH: i64 = 500;

/// What [`spawn`] needs: the SQLite file and the two limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The database file (its log is `<file>-wal`); `None`: no size watch.
    pub database: Option<PathBuf>,
    /// The log is truncated once it passes half of this.
    pub wal_max_bytes: u64,
    /// Finished work older than this is deleted; `None` keeps everything.
    pub retention: Option<Duration>,
}

/// Starts the checkpointer and the retention pass; both stop with `stop`
/// (the checkpointer after a last checkpoint).
pub fn spawn(
    pool: Pool,
    limits: Limits,
    stop: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut handles = Vec::new();
    // PostgreSQL manages its own log.
    if pool.engine() == crate::store::Engine::Sqlite {
        handles.push(tokio::spawn(checkpointer(
            pool.clone(),
            limits.clone(),
            stop.clone(),
        )));
    }
    if let Some(retention) = limits.retention {
        handles.push(tokio::spawn(pruner(pool, retention, stop)));
    }
    handles
}

fn wal_path(database: &Path) -> PathBuf {
    PathBuf::from(format!("{}-wal", database.display()))
}

/// Size of the WAL file (0 when absent).
pub fn wal_size(database: &Path) -> u64 {
    std::fs::metadata(wal_path(database)).map_or(0, |m| m.len())
}

/// The hard bound, for the threads that write on a connection of their own
/// (intake's writer, the queue's): called after a commit, it truncates the log
/// right there once it has passed three quarters of `wal_max_bytes`. The
/// writer waits meanwhile, so the log cannot outgrow its limit when the
/// background checkpointer (which acts at half) falls behind a sustained
/// load or finds a reader in its way. Committed data stays durable: a
/// checkpoint syncs the log, then the database file, before cutting the log.
pub fn bound_wal(conn: &rusqlite::Connection, database: &Path, wal_max_bytes: u64) {
    let size = wal_size(database);
    if size <= wal_max_bytes / 4 * 3 {
        return;
    }
    match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
        row.get::<_, i64>(0)
    }) {
        Ok(busy) => tracing::debug!(
            wal_bytes = size,
            busy,
            after = wal_size(database),
            "WAL truncated by a writer"
        ),
        Err(err) => tracing::warn!(error = %err, wal_bytes = size, "WAL truncation failed"),
    }
}

async fn checkpointer(pool: Pool, limits: Limits, stop: CancellationToken) {
    let threshold = limits.wal_max_bytes / 2;
    let mut last_passive = tokio::time::Instant::now();
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(WATCH_EVERY) => false,
            _ = stop.cancelled() => true,
        };
        let size = limits.database.as_deref().map_or(0, wal_size);
        if size > threshold {
            let started = std::time::Instant::now();
            match checkpoint(&pool, "TRUNCATE").await {
                Ok(busy) => tracing::debug!(
                    wal_bytes = size,
                    busy,
                    after = limits.database.as_deref().map_or(0, wal_size),
                    took_ms = started.elapsed().as_millis() as u64,
                    "WAL truncated"
                ),
                Err(err) => tracing::warn!(error = %err, wal_bytes = size, "WAL truncation failed"),
            }
            last_passive = tokio::time::Instant::now();
        } else if stopping || last_passive.elapsed() >= CHECKPOINT_EVERY {
            if let Err(err) = checkpoint(&pool, "PASSIVE").await {
                tracing::warn!(error = %err, "WAL checkpoint failed");
            }
            last_passive = tokio::time::Instant::now();
        }
        if stopping {
            return;
        }
    }
}

/// Runs one checkpoint; true when it could not complete (a reader or writer
/// was busy), in which case the next round tries again.
async fn checkpoint(pool: &Pool, mode: &str) -> sqlx::Result<bool> {
    let row = crate::store::sql::query(format!("PRAGMA wal_checkpoint({mode})"))
        .fetch_one(pool)
        .await?;
    Ok(row.get::<i64, _>(0) != 0)
}

async fn pruner(pool: Pool, retention: Duration, stop: CancellationToken) {
    loop {
        let cutoff = now_ms() - retention.as_millis() as i64;
        match prune(&pool, cutoff, PRUNE_BATCH, &stop).await {
            Ok(p) if p.jobs + p.events > 0 => {
                tracing::info!(
                    events = p.events,
                    jobs = p.jobs,
                    attempts = p.attempts,
                    "pruned finished work past its retention"
                )
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "retention pass failed; next pass retries"),
        }
        tokio::select! {
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Rows a retention pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub events: u64,
    pub jobs: u64,
    pub attempts: u64,
}

/// Deletes what finished well before `cutoff_ms`: succeeded, coalesced and
/// skipped jobs (with their attempts), then processed or ignored events no job refers to any more.
/// Failed, dead, paused, waiting, queued and running jobs are never touched,
/// nor the events they belong to, nor skipped or invalid events (an operator
/// may still replay or inspect them). `batch` rows per transaction.
pub async fn prune(
    pool: &Pool,
    cutoff_ms: i64,
    batch: i64,
    stop: &CancellationToken,
) -> sqlx::Result<Pruned> {
    let mut total = Pruned::default();
    // The same ordered subquery twice in one transaction names the same jobs.
    const OLD_JOBS: &str = "SELECT id FROM jobs WHERE state IN ('succeeded', 'coalesced', 'skipped', 'cancelled') AND finished_at < ?1 ORDER BY finished_at, id LIMIT ?2";
    loop {
        let mut tx = pool.begin().await?;
        let attempts =
            crate::store::sql::query(format!("DELETE FROM attempts WHERE job_id IN ({OLD_JOBS})"))
                .bind(cutoff_ms)
                .bind(batch)
                .execute(&mut tx)
                .await?
                .rows_affected();
        let jobs = crate::store::sql::query(format!("DELETE FROM jobs WHERE id IN ({OLD_JOBS})"))
            .bind(cutoff_ms)
            .bind(batch)
            .execute(&mut tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        total.attempts += attempts;
        total.jobs += jobs;
        if (jobs as i64) < batch || stop.is_cancelled() {
            break;
        }
        tokio::task::yield_now().await;
    }
    loop {
        let events = crate::store::sql::query(
            "DELETE FROM events WHERE id IN (
                 SELECT e.id FROM events e
                 WHERE e.status IN ('processed', 'ignored') AND e.received_at < ?1 AND e.updated_at < ?1
                   AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.event_id = e.id)
                 ORDER BY e.received_at LIMIT ?2)",
        )
        .bind(cutoff_ms)
        .bind(batch)
        .execute(pool)
        .await?
        .rows_affected();
        total.events += events;
        if (events as i64) < batch || stop.is_cancelled() {
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(total)
}
