//! `attempts`: one row per run of a job, naming the exact plugin build that ran.

use crate::store::sql::Tx;
use serde::Serialize;

use super::Pool;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub job_id: String,
    pub number: i64,
    pub plugin: String,
    pub plugin_version: Option<String>,
    pub plugin_hash: Option<String>,
    pub started_at: i64,
    pub duration_ms: i64,
    /// `succeeded`, `retry`, `failed` or `dead`.
    pub outcome: String,
    pub error: Option<String>,
    pub summary: Option<String>,
}

/// Inserts one attempt; parameters in the order of [`Attempt`]'s fields.
/// Shared by the pool and the queue's thread.
pub const INSERT: &str = "INSERT INTO attempts (job_id, number, plugin, plugin_version, plugin_hash, started_at, duration_ms, outcome, error, summary)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

pub async fn insert(conn: &mut Tx, a: &Attempt) -> sqlx::Result<()> {
    crate::store::sql::query(INSERT)
        .bind(&a.job_id)
        .bind(a.number)
        .bind(&a.plugin)
        .bind(&a.plugin_version)
        .bind(&a.plugin_hash)
        .bind(a.started_at)
        .bind(a.duration_ms)
        .bind(&a.outcome)
        .bind(&a.error)
        .bind(&a.summary)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn for_job(pool: &Pool, job_id: &str) -> anyhow::Result<Vec<Attempt>> {
    let rows = crate::store::sql::query(
        "SELECT job_id, number, plugin, plugin_version, plugin_hash, started_at, duration_ms, outcome, error, summary
         FROM attempts WHERE job_id = ? ORDER BY id",
    )
    .bind(job_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Attempt {
            job_id: r.get("job_id"),
            number: r.get("number"),
            plugin: r.get("plugin"),
            plugin_version: r.get("plugin_version"),
            plugin_hash: r.get("plugin_hash"),
            started_at: r.get("started_at"),
            duration_ms: r.get("duration_ms"),
            outcome: r.get("outcome"),
            error: r.get("error"),
            summary: r.get("summary"),
        })
        .collect())
}
