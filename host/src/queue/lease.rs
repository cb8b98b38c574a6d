//! Claiming and finishing jobs under a lease.
//!
//! A claim is one `UPDATE … RETURNING` on the oldest due job that is at the
//! head of each of its ordering keys (no live job of the same connection and
//! key arrived before it), atomic under SQLite's single writer (PostgreSQL
//! would add `FOR UPDATE SKIP LOCKED`). Every later write of a run checks that
//! the lease is still the worker's: a worker whose lease was taken over
//! records nothing.

use sqlx::Row as _;

use super::jobs::{JobKind, JobState};
use crate::ids::{now_ms, ConnectionId, JobId};
use crate::store::{attempts, attempts::Attempt, events, Pool};

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
}

impl Claimed {
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

/// Which connections a claim must leave alone, decided by flow control.
#[derive(Debug, Default, Clone)]
pub struct ClaimPolicy {
    /// At their concurrency limit, or behind an open circuit.
    pub excluded: Vec<ConnectionId>,
    /// Connections whose plugin declares `coalesce`.
    pub coalescing: Vec<ConnectionId>,
}

const CLAIM: &str = "UPDATE jobs SET state = 'running', lease_owner = ?1, lease_until = ?2, attempts = attempts + 1, updated_at = ?3
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

/// Takes the oldest due job that may run now, if any, for `lease_ms`; folds
/// the later pending jobs of its key into it when its connection coalesces.
pub async fn claim(
    pool: &Pool,
    owner: &str,
    lease_ms: i64,
    policy: &ClaimPolicy,
) -> sqlx::Result<Option<Claimed>> {
    let now = now_ms();
    let excluded = serde_json::to_string(&policy.excluded).unwrap_or_else(|_| "[]".into());
    let Some(row) = sqlx::query(CLAIM)
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .bind(excluded)
        .fetch_optional(pool)
        .await?
    else {
        return Ok(None);
    };
    let kind = if row.get::<String, _>("kind") == "event" {
        JobKind::Event {
            event_id: row.get("event_id"),
        }
    } else {
        JobKind::Task {
            name: row.get("task_name"),
            payload: row
                .get::<Option<String>, _>("payload")
                .unwrap_or_else(|| "{}".into()),
        }
    };
    let mut job = Claimed {
        id: JobId::from(row.get::<String, _>("id")),
        connection_id: row.get("connection_id"),
        plugin: row.get("plugin"),
        kind,
        attempt: row.get::<i64, _>("attempts") as u32,
        max_attempts: row.get::<i64, _>("max_attempts") as u32,
        owner: owner.to_string(),
        ordering_key: row.get("ordering_key"),
        coalesced_event_id: row.get("coalesced_event_id"),
        coalesced: row.get("coalesced"),
        throttles: row.get::<i64, _>("throttles") as u32,
        time_kills: row.get::<i64, _>("time_kills") as u32,
    };
    let seq: i64 = row.get("seq");
    if policy.coalescing.contains(&job.connection_id) && job.ordering_key.is_some() {
        if let JobKind::Event { .. } = job.kind {
            coalesce(pool, &mut job, seq).await?;
        }
    }
    Ok(Some(job))
}

/// Folds the queued event jobs that follow `job` on exactly its keys (up to
/// the next job of those keys that is something else) into it: they end as
/// `coalesced`, and `job` delivers the latest of their events.
async fn coalesce(pool: &Pool, job: &mut Claimed, seq: i64) -> sqlx::Result<()> {
    let now = now_ms();
    let mut tx = pool.begin().await?;
    // Folds everything before the first later job on one of our keys that
    // cannot be folded in. One statement, so the transaction starts by writing
    // (a deferred read-then-write transaction can fail with SQLITE_BUSY).
    let folded = sqlx::query(
        "UPDATE jobs SET state = 'coalesced', coalesced_into = ?1, updated_at = ?2, finished_at = ?2,
             summary = 'coalesced into ' || ?1
         WHERE connection_id = ?3 AND ordering_key = ?4 AND kind = 'event' AND state = 'queued'
           AND run_at <= ?2 AND rowid > ?5
           AND rowid < COALESCE((
               SELECT MIN(other.seq) FROM job_keys mine
                 JOIN job_keys other ON other.connection_id = mine.connection_id AND other.key = mine.key AND other.seq > mine.seq
                 JOIN jobs o ON o.id = other.job_id
               WHERE mine.job_id = ?1
                 AND (o.ordering_key IS NOT ?4 OR o.kind != 'event' OR o.state != 'queued' OR o.run_at > ?2)
             ), 9223372036854775807)
         RETURNING rowid AS seq, event_id",
    )
    .bind(job.id.as_str())
    .bind(now)
    .bind(job.connection_id)
    .bind(&job.ordering_key)
    .bind(seq)
    .fetch_all(&mut *tx)
    .await?;
    if folded.is_empty() {
        return Ok(());
    }
    let latest = folded
        .iter()
        .max_by_key(|r| r.get::<i64, _>("seq"))
        .map(|r| r.get::<String, _>("event_id"));
    for row in &folded {
        events::refresh_status(&mut tx, &row.get::<String, _>("event_id")).await?;
    }
    sqlx::query(
        "UPDATE jobs SET coalesced = coalesced + ?1, coalesced_event_id = ?2 WHERE id = ?3 AND lease_owner = ?4",
    )
    .bind(folded.len() as i64)
    .bind(&latest)
    .bind(job.id.as_str())
    .bind(&job.owner)
    .execute(&mut *tx)
    .await?;
    // Named like the other metrics (only when something was folded: rare).
    let connection: Option<String> =
        sqlx::query_scalar("SELECT name FROM connections WHERE id = ?")
            .bind(job.connection_id)
            .fetch_optional(&mut *tx)
            .await?;
    tx.commit().await?;
    crate::metrics::coalesced(connection.as_deref().unwrap_or("-"), folded.len() as u64);
    job.coalesced += folded.len() as i64;
    job.coalesced_event_id = latest;
    Ok(())
}

/// Extends the lease of a running job; false if the job is no longer ours.
pub async fn heartbeat(pool: &Pool, id: &JobId, owner: &str, lease_ms: i64) -> sqlx::Result<bool> {
    let done = sqlx::query(
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
    let rows = sqlx::query(&format!(
        "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_until = NULL, run_at = ?1, updated_at = ?1,
             last_error = ?3
         WHERE state = 'running' AND {condition}
         RETURNING id, plugin, attempts"
    ))
    .bind(now)
    .bind(bind)
    .bind(why)
    .fetch_all(&mut *tx)
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
    sqlx::query_scalar(
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

/// Records the attempt and moves the job on, in one transaction, then
/// refreshes the event's status. `Ok(false)`: the lease is no longer ours
/// (another worker took the job over); nothing was recorded.
pub async fn finish(
    pool: &Pool,
    job: &Claimed,
    finish: &Finish,
    attempt: Attempt,
) -> sqlx::Result<bool> {
    let now = now_ms();
    let mut tx = pool.begin().await?;
    let (state, run_at, error, summary, finished) = match finish {
        Finish::Succeeded { summary } => (
            JobState::Succeeded,
            None,
            None,
            Some(summary.as_str()),
            Some(now),
        ),
        Finish::Retry { error, run_at, .. } => (
            JobState::Queued,
            Some(*run_at),
            Some(error.as_str()),
            None,
            None,
        ),
        Finish::Failed { error } => (
            JobState::Failed,
            None,
            Some(error.as_str()),
            None,
            Some(now),
        ),
        Finish::Dead { error } => (JobState::Dead, None, Some(error.as_str()), None, Some(now)),
    };
    let (throttled, time_kill) = match finish {
        Finish::Retry {
            throttled,
            time_kill,
            ..
        } => (*throttled as i64, *time_kill as i64),
        _ => (0, 0),
    };
    let done = sqlx::query(
        "UPDATE jobs SET state = ?, run_at = COALESCE(?, run_at), last_error = ?, summary = COALESCE(?, summary),
             lease_owner = NULL, lease_until = NULL, updated_at = ?, finished_at = ?,
             attempts = attempts - ?, throttles = throttles + ?, time_kills = time_kills + ?
         WHERE id = ? AND lease_owner = ? AND state = 'running'",
    )
    .bind(state.as_str())
    .bind(run_at)
    .bind(error)
    .bind(summary)
    .bind(now)
    .bind(finished)
    .bind(throttled)
    .bind(throttled)
    .bind(time_kill)
    .bind(job.id.as_str())
    .bind(&job.owner)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    attempts::insert(&mut tx, &attempt).await?;
    if let JobKind::Event { event_id } = &job.kind {
        events::refresh_status(&mut tx, event_id).await?;
    }
    tx.commit().await?;
    Ok(true)
}
