//! The `jobs` table: enqueue, park (waiting, paused) and wake, operator
//! retry, listings. Claiming and finishing under a lease are in
//! [`super::lease`] and [`super::db`].

use crate::store::sql::Tx;
use serde::Serialize;

pub use super::lease::{heartbeat, reclaim_expired, release_owned, Claimed, Finish};
use crate::ids::{now_ms, ConnectionId, JobId};
use crate::store::{events, Pool};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    /// Its plugin is not loaded; resumes when it comes back.
    Waiting,
    Succeeded,
    /// Permanent error, or the plugin trapped: not retried unless an operator asks.
    Failed,
    /// Retryable errors until `max_attempts`.
    Dead,
    /// Its connection is disabled or removed; resumes when it is enabled again.
    Paused,
    /// Folded into a later run of the same key (coalescing): `coalesced_into`.
    Coalesced,
    /// Its plugin, once loaded, does not subscribe to the event.
    Skipped,
    /// Its connection was deleted before it ran.
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Waiting => "waiting",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Dead => "dead",
            Self::Paused => "paused",
            Self::Coalesced => "coalesced",
            Self::Skipped => "skipped",
            Self::Cancelled => "cancelled",
        }
    }
}

/// What a job asks the connector to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobKind {
    Event { event_id: String },
    Task { name: String, payload: String },
}

#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: JobId,
    pub connection_id: ConnectionId,
    pub plugin: String,
    pub kind: JobKind,
    pub dedup_key: Option<String>,
    pub max_attempts: u32,
    pub run_at: i64,
    /// JSON list of ordering keys (see [`crate::routing`]); `None` runs in
    /// parallel with anything.
    pub ordering_key: Option<String>,
}

/// Inserts one queued job. Parameters, in order: id, connection_id, plugin,
/// kind, event_id, task_name, payload, dedup_key, max_attempts, run_at, now,
/// ordering_key. Shared by every writer (intake binds it directly).
pub const INSERT: &str = "INSERT INTO jobs (id, connection_id, plugin, kind, event_id, task_name, payload, dedup_key, state, attempts, max_attempts, run_at, created_at, updated_at, ordering_key)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued', 0, ?9, ?10, ?11, ?11, ?12)";

impl NewJob {
    /// `(kind, event_id, task_name, payload)` columns.
    pub fn kind_columns(&self) -> (&'static str, Option<&str>, Option<&str>, Option<&str>) {
        match &self.kind {
            JobKind::Event { event_id } => ("event", Some(event_id.as_str()), None, None),
            JobKind::Task { name, payload } => {
                ("task", None, Some(name.as_str()), Some(payload.as_str()))
            }
        }
    }
}

pub async fn insert(conn: &mut Tx, job: &NewJob) -> sqlx::Result<()> {
    let (kind, event_id, task_name, payload) = job.kind_columns();
    crate::store::sql::query(INSERT)
        .bind(job.id.as_str())
        .bind(job.connection_id)
        .bind(&job.plugin)
        .bind(kind)
        .bind(event_id)
        .bind(task_name)
        .bind(payload)
        .bind(&job.dedup_key)
        .bind(job.max_attempts)
        .bind(job.run_at)
        .bind(now_ms())
        .bind(&job.ordering_key)
        .execute(conn)
        .await?;
    Ok(())
}

/// Says, once per transaction that inserted jobs, that they are there: on
/// PostgreSQL every replica's idle workers wake when `tx` commits (one
/// statement per transaction, not per job); nothing to do on SQLite, whose
/// replicas share this machine's wake-up.
pub async fn announce(tx: &mut Tx) -> sqlx::Result<()> {
    if tx.engine() == crate::store::Engine::Postgres {
        crate::store::postgres::notify_jobs(tx).await?;
    }
    Ok(())
}

/// Enqueues a task. With a dedup key, a pending task of the same name and key on
/// the same connection is replaced (new payload and time) instead of duplicated.
/// Returns the id of the job that will run.
pub async fn enqueue_task(pool: &Pool, job: &NewJob) -> anyhow::Result<JobId> {
    let mut tx = pool.begin().await?;
    let id = enqueue_task_in(&mut tx, job).await?;
    tx.commit().await?;
    Ok(id)
}

/// [`enqueue_task`] inside the caller's transaction.
pub async fn enqueue_task_in(conn: &mut Tx, job: &NewJob) -> anyhow::Result<JobId> {
    let JobKind::Task { name, payload } = &job.kind else {
        anyhow::bail!("enqueue_task needs a task job");
    };
    if let Some(key) = &job.dedup_key {
        let existing = crate::store::sql::query(
            "UPDATE jobs SET payload = ?, run_at = ?, updated_at = ?
             WHERE connection_id = ? AND task_name = ? AND dedup_key = ? AND state IN ('queued', 'waiting')
             RETURNING id",
        )
        .bind(payload)
        .bind(job.run_at)
        .bind(now_ms())
        .bind(job.connection_id)
        .bind(name)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = existing {
            return Ok(JobId::from(row.get::<String, _>("id")));
        }
    }
    insert(conn, job).await?;
    announce(conn).await?;
    Ok(job.id.clone())
}

/// The job's plugin is absent: park it without counting the attempt.
pub async fn park_waiting(pool: &Pool, job: &Claimed) -> sqlx::Result<()> {
    crate::store::sql::query(
        "UPDATE jobs SET state = 'waiting', attempts = attempts - 1, lease_owner = NULL, lease_until = NULL,
             last_error = ?, updated_at = ?
         WHERE id = ?",
    )
    .bind(format!("waiting for plugin {:?} to be loaded", job.plugin))
    .bind(now_ms())
    .bind(job.id.as_str())
    .execute(pool)
    .await?;
    Ok(())
}

/// Requeues every job waiting for `plugin`. Returns how many.
pub async fn wake_waiting(pool: &Pool, plugin: &str) -> sqlx::Result<u64> {
    let now = now_ms();
    let done = crate::store::sql::query(
        "UPDATE jobs SET state = 'queued', run_at = ?, last_error = NULL, updated_at = ? WHERE state = 'waiting' AND plugin = ?",
    )
    .bind(now)
    .bind(now)
    .bind(plugin)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// The job's connection is disabled (or removed): park it without counting
/// the attempt, until [`reconcile`] resumes it.
pub async fn park_paused(pool: &Pool, job: &Claimed, why: &str) -> sqlx::Result<()> {
    crate::store::sql::query(
        "UPDATE jobs SET state = 'paused', attempts = attempts - 1, lease_owner = NULL, lease_until = NULL,
             last_error = ?, updated_at = ?
         WHERE id = ? AND lease_owner = ? AND state = 'running'",
    )
    .bind(why)
    .bind(now_ms())
    .bind(job.id.as_str())
    .bind(&job.owner)
    .execute(pool)
    .await?;
    // The connection's other queued jobs pause with it (they would wait behind
    // this one anyway, and an operator should see why).
    crate::store::sql::query(
        "UPDATE jobs SET state = 'paused', last_error = ?, updated_at = ? WHERE connection_id = ? AND state = 'queued'",
    )
    .bind(why)
    .bind(now_ms())
    .bind(job.connection_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// The plugin, once loaded, does not subscribe to the job's event (it was
/// created while the plugin was unknown): the job ends as `skipped`.
pub async fn skip(pool: &Pool, job: &Claimed, why: &str) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    crate::store::sql::query(
        "UPDATE jobs SET state = 'skipped', attempts = attempts - 1, lease_owner = NULL, lease_until = NULL,
             summary = ?, updated_at = ?2, finished_at = ?2
         WHERE id = ?3 AND lease_owner = ?4 AND state = 'running'",
    )
    .bind(why)
    .bind(now_ms())
    .bind(job.id.as_str())
    .bind(&job.owner)
    .execute(&mut tx)
    .await?;
    if let JobKind::Event { event_id } = &job.kind {
        events::refresh_status(&mut tx, event_id).await?;
    }
    tx.commit().await
}

/// Brings pending jobs in line with the connections: jobs of disabled or
/// removed connections pause, paused jobs of enabled ones resume, and jobs
/// waiting for a plugin follow a connection whose plugin name was changed
/// (a misspelling fixed). Returns how many jobs were resumed.
pub async fn reconcile(pool: &Pool) -> sqlx::Result<u64> {
    let now = now_ms();
    let mut tx = pool.begin().await?;
    crate::store::sql::query(
        "UPDATE jobs SET state = 'paused', updated_at = ?1,
             last_error = 'its connection is disabled; enable it to resume'
         WHERE state IN ('queued', 'waiting')
           AND connection_id IN (SELECT id FROM connections WHERE NOT enabled OR removed_at IS NOT NULL)",
    )
    .bind(now)
    .execute(&mut tx)
    .await?;
    let resumed = crate::store::sql::query(
        "UPDATE jobs SET state = 'queued', run_at = CASE WHEN run_at < ?1 THEN run_at ELSE ?1 END, last_error = NULL, updated_at = ?1
         WHERE state = 'paused'
           AND connection_id IN (SELECT id FROM connections WHERE enabled AND removed_at IS NULL)",
    )
    .bind(now)
    .execute(&mut tx)
    .await?
    .rows_affected();
    let renamed = crate::store::sql::query(
        "UPDATE jobs SET plugin = (SELECT c.plugin FROM connections c WHERE c.id = jobs.connection_id),
             state = CASE state WHEN 'waiting' THEN 'queued' ELSE state END, updated_at = ?1
         WHERE state IN ('queued', 'waiting', 'paused')
           AND plugin != (SELECT c.plugin FROM connections c WHERE c.id = jobs.connection_id)",
    )
    .bind(now)
    .execute(&mut tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(resumed + renamed)
}

/// Stores a running job's progress (JSON `{done, total, message}`).
pub async fn set_progress(
    pool: &Pool,
    id: &JobId,
    progress: &serde_json::Value,
) -> sqlx::Result<()> {
    crate::store::sql::query("UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ?")
        .bind(progress.to_string())
        .bind(now_ms())
        .bind(id.as_str())
        .execute(pool)
        .await?;
    Ok(())
}

/// Operator retry of a failed or dead job: queued now, with a fresh attempt budget.
/// False if the job is not failed or dead.
pub async fn retry(pool: &Pool, id: &str) -> anyhow::Result<bool> {
    let mut tx = pool.begin().await?;
    let row = crate::store::sql::query(
        "UPDATE jobs SET state = 'queued', attempts = 0, run_at = ?1, finished_at = NULL, updated_at = ?1
         WHERE id = ?2 AND state IN ('failed', 'dead') RETURNING event_id",
    )
    .bind(now_ms())
    .bind(id)
    .fetch_optional(&mut tx)
    .await?;
    let Some(row) = row else { return Ok(false) };
    if let Some(event_id) = row.get::<Option<String>, _>("event_id") {
        events::refresh_status(&mut tx, &event_id).await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// A job as the admin surface shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: String,
    pub connection: String,
    pub plugin: String,
    pub kind: String,
    pub event_id: Option<String>,
    pub task_name: Option<String>,
    pub payload: Option<String>,
    pub state: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at: i64,
    pub last_error: Option<String>,
    pub summary: Option<String>,
    /// The connector's last progress report (any JSON).
    pub progress: Option<serde_json::Value>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    /// Ordering keys (JSON list), when the job has any.
    pub ordering_key: Option<String>,
    /// Pending jobs folded into this run.
    pub coalesced: i64,
    /// The job this one was folded into.
    pub coalesced_into: Option<String>,
    /// Reschedules after 429/503 with Retry-After (no attempt used).
    pub throttles: i64,
}

const SELECT_VIEW: &str = "SELECT j.id, c.name AS connection, j.plugin, j.kind, j.event_id, j.task_name, j.payload, j.state, j.attempts, j.max_attempts, j.run_at, j.last_error, j.summary, j.progress, j.created_at, j.updated_at, j.finished_at, j.ordering_key, j.coalesced, j.coalesced_into, j.throttles FROM jobs j JOIN connections c ON c.id = j.connection_id";

fn view(row: crate::store::sql::Row) -> JobView {
    JobView {
        id: row.get("id"),
        connection: row.get("connection"),
        plugin: row.get("plugin"),
        kind: row.get("kind"),
        event_id: row.get("event_id"),
        task_name: row.get("task_name"),
        payload: row.get("payload"),
        state: row.get("state"),
        attempts: row.get("attempts"),
        max_attempts: row.get("max_attempts"),
        run_at: row.get("run_at"),
        last_error: row.get("last_error"),
        summary: row.get("summary"),
        progress: row
            .get::<Option<String>, _>("progress")
            .and_then(|p| serde_json::from_str(&p).ok()),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        finished_at: row.get("finished_at"),
        ordering_key: row.get("ordering_key"),
        coalesced: row.get("coalesced"),
        coalesced_into: row.get("coalesced_into"),
        throttles: row.get("throttles"),
    }
}

pub async fn get(pool: &Pool, id: &str) -> anyhow::Result<Option<JobView>> {
    let row = crate::store::sql::query(format!("{SELECT_VIEW} WHERE j.id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(view))
}

#[derive(Debug, Default, Clone, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobFilter {
    pub state: Option<String>,
    pub connection: Option<String>,
    pub event_id: Option<String>,
    pub kind: Option<String>,
    pub before: Option<String>,
    pub limit: Option<i64>,
}

pub async fn list(pool: &Pool, f: &JobFilter) -> anyhow::Result<Vec<JobView>> {
    let equals = [
        ("j.state", &f.state),
        ("c.name", &f.connection),
        ("j.event_id", &f.event_id),
        ("j.kind", &f.kind),
    ];
    let rows = crate::store::newest_first(SELECT_VIEW, "j.id", &equals, &f.before, f.limit)
        .build()
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(view).collect())
}

/// Number of jobs per state.
pub async fn count_by_state(pool: &Pool) -> anyhow::Result<Vec<(String, i64)>> {
    let rows = crate::store::sql::query(
        "SELECT state, COUNT(*) AS n FROM jobs GROUP BY state ORDER BY state",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.get("state"), r.get("n")))
        .collect())
}
