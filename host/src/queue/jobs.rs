//! The `jobs` table as a queue: enqueue, claim with a lease, finish, retry.
//! Claiming is one `UPDATE … RETURNING` on the oldest due job, atomic under
//! SQLite's single writer (PostgreSQL would add `FOR UPDATE SKIP LOCKED`).

use serde::Serialize;
use sqlx::{Row as _, SqliteConnection};

use crate::ids::{now_ms, ConnectionId, JobId};
use crate::store::{attempts, attempts::Attempt, events, Pool};

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
}

/// Inserts one queued job. Parameters, in order: id, connection_id, plugin,
/// kind, event_id, task_name, payload, dedup_key, max_attempts, run_at, now.
/// Shared by every writer (intake binds it directly).
pub const INSERT: &str = "INSERT INTO jobs (id, connection_id, plugin, kind, event_id, task_name, payload, dedup_key, state, attempts, max_attempts, run_at, created_at, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued', 0, ?9, ?10, ?11, ?11)";

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

pub async fn insert(conn: &mut SqliteConnection, job: &NewJob) -> sqlx::Result<()> {
    let (kind, event_id, task_name, payload) = job.kind_columns();
    sqlx::query(INSERT)
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
        .execute(conn)
        .await?;
    Ok(())
}

/// Enqueues a task. With a dedup key, a pending task of the same name and key on
/// the same connection is replaced (new payload and time) instead of duplicated.
/// Returns the id of the job that will run.
pub async fn enqueue_task(pool: &Pool, job: &NewJob) -> anyhow::Result<JobId> {
    let JobKind::Task { name, payload } = &job.kind else {
        anyhow::bail!("enqueue_task needs a task job");
    };
    let mut tx = pool.begin().await?;
    if let Some(key) = &job.dedup_key {
        let existing = sqlx::query(
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
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            tx.commit().await?;
            return Ok(JobId::from(row.get::<String, _>("id")));
        }
    }
    insert(&mut tx, job).await?;
    tx.commit().await?;
    Ok(job.id.clone())
}

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
}

/// Takes the oldest due job, if any, for `lease_ms`.
pub async fn claim(pool: &Pool, owner: &str, lease_ms: i64) -> sqlx::Result<Option<Claimed>> {
    let now = now_ms();
    let row = sqlx::query(
        "UPDATE jobs SET state = 'running', lease_owner = ?, lease_until = ?, attempts = attempts + 1, updated_at = ?
         WHERE id = (SELECT id FROM jobs WHERE state = 'queued' AND run_at <= ? ORDER BY run_at, id LIMIT 1)
         RETURNING id, connection_id, plugin, kind, event_id, task_name, payload, attempts, max_attempts",
    )
    .bind(owner)
    .bind(now + lease_ms)
    .bind(now)
    .bind(now)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|row| {
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
        Claimed {
            id: JobId::from(row.get::<String, _>("id")),
            connection_id: row.get("connection_id"),
            plugin: row.get("plugin"),
            kind,
            attempt: row.get::<i64, _>("attempts") as u32,
            max_attempts: row.get::<i64, _>("max_attempts") as u32,
        }
    }))
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

/// Puts back jobs whose lease expired (their worker died), recording the lost
/// attempt. Returns how many were put back.
pub async fn reclaim_expired(pool: &Pool) -> sqlx::Result<u64> {
    let now = now_ms();
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_until = NULL, run_at = ?1, updated_at = ?1,
             last_error = 'the worker running it stopped before finishing (lease expired)'
         WHERE state = 'running' AND lease_until < ?1
         RETURNING id, plugin, attempts",
    )
    .bind(now)
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
                error: Some("lease expired: the worker stopped before finishing".into()),
                summary: None,
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// How a run ended, as the queue records it.
#[derive(Debug, Clone)]
pub enum Finish {
    Succeeded {
        summary: String,
    },
    /// Try again at `run_at`.
    Retry {
        error: String,
        run_at: i64,
    },
    Failed {
        error: String,
    },
    Dead {
        error: String,
    },
}

/// Records the attempt and moves the job on, in one transaction, then refreshes
/// the event's status.
pub async fn finish(
    pool: &Pool,
    job: &Claimed,
    finish: &Finish,
    attempt: Attempt,
) -> sqlx::Result<()> {
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
        Finish::Retry { error, run_at } => (
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
    sqlx::query(
        "UPDATE jobs SET state = ?, run_at = COALESCE(?, run_at), last_error = ?, summary = COALESCE(?, summary),
             lease_owner = NULL, lease_until = NULL, updated_at = ?, finished_at = ?
         WHERE id = ?",
    )
    .bind(state.as_str())
    .bind(run_at)
    .bind(error)
    .bind(summary)
    .bind(now)
    .bind(finished)
    .bind(job.id.as_str())
    .execute(&mut *tx)
    .await?;
    attempts::insert(&mut tx, &attempt).await?;
    if let JobKind::Event { event_id } = &job.kind {
        events::refresh_status(&mut tx, event_id).await?;
    }
    tx.commit().await
}

/// The job's plugin is absent: park it without counting the attempt.
pub async fn park_waiting(pool: &Pool, job: &Claimed) -> sqlx::Result<()> {
    sqlx::query(
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
    let done = sqlx::query(
        "UPDATE jobs SET state = 'queued', run_at = ?, last_error = NULL, updated_at = ? WHERE state = 'waiting' AND plugin = ?",
    )
    .bind(now)
    .bind(now)
    .bind(plugin)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Stores a running job's progress (JSON `{done, total, message}`).
pub async fn set_progress(
    pool: &Pool,
    id: &JobId,
    progress: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ?")
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
    let row = sqlx::query(
        "UPDATE jobs SET state = 'queued', attempts = 0, run_at = ?1, finished_at = NULL, updated_at = ?1
         WHERE id = ?2 AND state IN ('failed', 'dead') RETURNING event_id",
    )
    .bind(now_ms())
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(false) };
    if let Some(event_id) = row.get::<Option<String>, _>("event_id") {
        events::refresh_status(&mut tx, &event_id).await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// A job as the admin surface shows it.
#[derive(Debug, Clone, Serialize)]
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
    pub progress: Option<serde_json::Value>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

const SELECT_VIEW: &str = "SELECT j.id, c.name AS connection, j.plugin, j.kind, j.event_id, j.task_name, j.payload, j.state, j.attempts, j.max_attempts, j.run_at, j.last_error, j.summary, j.progress, j.created_at, j.updated_at, j.finished_at FROM jobs j JOIN connections c ON c.id = j.connection_id";

fn view(row: sqlx::sqlite::SqliteRow) -> JobView {
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
    }
}

pub async fn get(pool: &Pool, id: &str) -> anyhow::Result<Option<JobView>> {
    let row = sqlx::query(&format!("{SELECT_VIEW} WHERE j.id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(view))
}

#[derive(Debug, Default, Clone, serde::Deserialize)]
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
    let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state ORDER BY state")
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.get("state"), r.get("n")))
        .collect())
}
