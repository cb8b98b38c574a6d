//! Claiming and finishing jobs under a lease.
//!
//! The claim and the outcome are written by the queue's own thread
//! ([`super::db`]); heartbeats and recovery go through the pool.
//!
//! A claim is one `UPDATE … RETURNING` on the oldest due job that is at the
//! head of each of its ordering keys (no live job of the same connection and
//! key arrived before it), atomic under SQLite's single writer (PostgreSQL
//! would add `FOR UPDATE SKIP LOCKED`). Every later write of a run checks that
//! the lease is still the worker's: a worker whose lease was taken over
//! records nothing.

use super::jobs::JobKind;
use crate::ids::{now_ms, ConnectionId, JobId};
use crate::store::{attempts, attempts::Attempt, Pool};

/// A job a worker holds the lease of.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: JobId,
    pub connection_id: ConnectionId,
    pub plugin: String,
    pub kind: JobKind,
    /// This run's number, 1-based.
    pub attempt: u32,
    pub max_attempts: u32,
    /// The lease owner (`host:pid:start:wN`).
    pub owner: String,
    /// JSON list of ordering keys.
    pub ordering_key: Option<String>,
    /// The event to deliver when later ones were folded into this job.
    pub coalesced_event_id: Option<String>,
    /// Pending jobs folded into this one so far.
    pub coalesced: i64,
    pub throttles: u32,
    pub time_kills: u32,
    /// The event to deliver, read with the claim (event jobs).
    pub event: Option<super::db::EventToDeliver>,
}

impl Claimed {
    /// The job's own event (whose status follows the job's outcome).
    pub fn own_event_id(&self) -> Option<String> {
        match &self.kind {
            JobKind::Event { event_id } => Some(event_id.clone()),
            JobKind::Task { .. } => None,
        }
    }

    /// The event the connector receives: the latest one folded in, else the job's own.
    pub fn event_to_deliver(&self) -> Option<&str> {
        match &self.kind {
            JobKind::Event { event_id } => {
                Some(self.coalesced_event_id.as_deref().unwrap_or(event_id))
            }
            JobKind::Task { .. } => None,
        }
    }
}

/// Claims the oldest due job at the head of each of its keys, outside the
/// connections listed in `?4` (JSON). Run by [`super::db`].
pub(super) const CLAIM: &str = "UPDATE jobs SET state = 'running', lease_owner = ?1, lease_until = ?2, attempts = attempts + 1, updated_at = ?3
 WHERE rowid = (
   SELECT j.rowid FROM jobs j
   WHERE j.state = 'queued' AND j.run_at <= ?3
     AND j.connection_id NOT IN (SELECT value FROM json_each(?4))
     AND NOT EXISTS (
       SELECT 1 FROM job_keys mine JOIN job_keys other
         ON other.connection_id = mine.connection_id AND other.key = mine.key AND other.seq < mine.seq
       WHERE mine.job_id = j.id)
   ORDER BY j.run_at, j.rowid LIMIT 1)
 RETURNING rowid AS seq, id, connection_id, plugin, kind, event_id, task_name, payload, attempts, max_attempts,
           ordering_key, coalesced_event_id, coalesced, throttles, time_kills";

/// Extends the lease of a running job; false if the job is no longer ours.
pub async fn heartbeat(pool: &Pool, id: &JobId, owner: &str, lease_ms: i64) -> sqlx::Result<bool> {
    let done = crate::store::sql::query(
        "UPDATE jobs SET lease_until = ? WHERE id = ? AND lease_owner = ? AND state = 'running'",
    )
    .bind(now_ms() + lease_ms)
    .bind(id.as_str())
    .bind(owner)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Puts back running jobs matching `condition` (bound to `?2`), recording the
/// lost attempt with `why`. Returns how many.
async fn requeue_running(pool: &Pool, condition: &str, bind: &str, why: &str) -> sqlx::Result<u64> {
    let now = now_ms();
    let mut tx = pool.begin().await?;
    let rows = crate::store::sql::query(format!(
        "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_until = NULL, run_at = ?1, updated_at = ?1,
             last_error = ?3
         WHERE state = 'running' AND {condition}
         RETURNING id, plugin, attempts"
    ))
    .bind(now)
    .bind(bind)
    .bind(why)
    .fetch_all(&mut tx)
    .await?;
    for row in &rows {
        attempts::insert(
            &mut tx,
            &Attempt {
                job_id: row.get("id"),
                number: row.get("attempts"),
                plugin: row.get("plugin"),
                plugin_version: None,
                plugin_hash: None,
                started_at: now,
                duration_ms: 0,
                outcome: "retry".into(),
                error: Some(why.to_string()),
                summary: None,
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// Puts back jobs whose lease expired (their worker died).
pub async fn reclaim_expired(pool: &Pool) -> sqlx::Result<u64> {
    requeue_running(
        pool,
        "lease_until < ?1 AND ?2 = ?2",
        "",
        "lease expired: the worker stopped before finishing",
    )
    .await
}

/// Puts back at once the running jobs whose owner starts with `prefix`: this
/// process's at shutdown, or a dead predecessor's at start.
pub async fn release_owned(pool: &Pool, prefix: &str, why: &str) -> sqlx::Result<u64> {
    requeue_running(pool, "substr(lease_owner, 1, length(?2)) = ?2", prefix, why).await
}

/// Owners of running jobs, to find a dead predecessor's leases.
pub async fn lease_owners(pool: &Pool) -> sqlx::Result<Vec<String>> {
    crate::store::sql::query_scalar(
        "SELECT DISTINCT lease_owner FROM jobs WHERE state = 'running' AND lease_owner IS NOT NULL",
    )
    .fetch_all(pool)
    .await
}

/// How a run ended, as the queue records it.
#[derive(Debug, Clone)]
pub enum Finish {
    Succeeded {
        summary: String,
    },
    /// Try again at `run_at`. `throttled`: a 429/503 with Retry-After, which
    /// gives the attempt back; `time_kill`: the run hit a time limit.
    Retry {
        error: String,
        run_at: i64,
        throttled: bool,
        time_kill: bool,
    },
    Failed {
        error: String,
    },
    Dead {
        error: String,
    },
}
