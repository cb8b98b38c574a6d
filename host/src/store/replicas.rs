//! `replicas`: the processes serving this database and their heartbeats (see
//! [`crate::replicas`]).

use super::Pool;

/// A plugin as one replica serves it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Served {
    pub name: String,
    pub version: String,
    pub hash: String,
}

/// One replica's latest heartbeat.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Replica {
    /// `host:pid:start`, the prefix of its workers' lease owners.
    pub id: String,
    pub host: String,
    pub pid: i64,
    /// The recoco-sync version it runs.
    pub version: String,
    pub listen: Option<String>,
    pub plugins: Vec<Served>,
    pub started_at: i64,
    pub last_seen_at: i64,
    /// Lost when not seen for this long (its `queue.replica_timeout`).
    pub timeout_ms: i64,
    pub stopped_at: Option<i64>,
}

/// Writes this replica's heartbeat (a restarted row comes back up).
pub async fn beat(pool: &Pool, r: &Replica) -> sqlx::Result<()> {
    crate::store::sql::query(
        "INSERT INTO replicas (id, host, pid, version, listen, plugins, started_at, last_seen_at, timeout_ms, stopped_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL)
         ON CONFLICT (id) DO UPDATE SET listen = excluded.listen, plugins = excluded.plugins,
             last_seen_at = excluded.last_seen_at, timeout_ms = excluded.timeout_ms, stopped_at = NULL",
    )
    .bind(&r.id)
    .bind(&r.host)
    .bind(r.pid)
    .bind(&r.version)
    .bind(&r.listen)
    .bind(serde_json::to_string(&r.plugins).unwrap_or_else(|_| "[]".into()))
    .bind(r.started_at)
    .bind(r.last_seen_at)
    .bind(r.timeout_ms)
    .execute(pool)
    .await?;
    Ok(())
}

/// Marks a replica stopped (a clean stop, or lost and its leases released).
/// False when it was already stopped or unknown.
pub async fn stop(pool: &Pool, id: &str, at: i64) -> sqlx::Result<bool> {
    let done = crate::store::sql::query(
        "UPDATE replicas SET stopped_at = ?2 WHERE id = ?1 AND stopped_at IS NULL",
    )
    .bind(id)
    .bind(at)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Every replica, the most recently seen first.
pub async fn list(pool: &Pool) -> sqlx::Result<Vec<Replica>> {
    let rows = crate::store::sql::query(
        "SELECT id, host, pid, version, listen, plugins, started_at, last_seen_at, timeout_ms, stopped_at
           FROM replicas ORDER BY last_seen_at DESC, id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Replica {
            id: r.get("id"),
            host: r.get("host"),
            pid: r.get("pid"),
            version: r.get("version"),
            listen: r.get("listen"),
            plugins: serde_json::from_str(r.get::<&str, _>("plugins")).unwrap_or_default(),
            started_at: r.get("started_at"),
            last_seen_at: r.get("last_seen_at"),
            timeout_ms: r.get("timeout_ms"),
            stopped_at: r.get("stopped_at"),
        })
        .collect())
}

/// Forgets replicas stopped (or last seen) before `before`.
pub async fn prune(pool: &Pool, before: i64) -> sqlx::Result<u64> {
    let done = crate::store::sql::query(
        "DELETE FROM replicas WHERE COALESCE(stopped_at, last_seen_at) < ?1",
    )
    .bind(before)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
