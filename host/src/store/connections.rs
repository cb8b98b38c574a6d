//! `connections`: one plugin fed by one source. The config is sealed as a whole,
//! since which of its fields are secrets depends on a plugin that may be absent.

use anyhow::Context as _;
use sqlx::Row as _;

use std::sync::Arc;

use super::Pool;
use crate::config::ConnectionDecl;
use crate::filter::Filter;
use crate::ids::{now_ms, ConnectionId, SourceId};
use crate::secrets::Sealer;

#[derive(Debug, Clone)]
pub struct Connection {
    pub id: ConnectionId,
    pub name: String,
    pub source_id: SourceId,
    pub plugin: String,
    pub enabled: bool,
    /// `None`: the plugin's default hosts.
    pub allowed_hosts: Option<Vec<String>>,
    pub config: serde_json::Value,
    /// Routing filter (CEL); `None`: every event it subscribes to.
    pub filter: Option<Arc<Filter>>,
    pub updated_at: i64,
    /// No longer declared in the configuration: receives no new events.
    pub removed: bool,
}

pub async fn list(pool: &Pool, sealer: &Sealer) -> anyhow::Result<Vec<Connection>> {
    let rows = sqlx::query(
        "SELECT id, name, source_id, plugin, enabled, allowed_hosts, config, filter, updated_at, removed_at IS NOT NULL AS removed FROM connections ORDER BY name",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            let name: String = row.get("name");
            let config = serde_json::from_str(&sealer.open(row.get("config"))?)
                .with_context(|| format!("connection {name}: stored config is not JSON"))?;
            let allowed_hosts = row
                .get::<Option<String>, _>("allowed_hosts")
                .map(|h| serde_json::from_str(&h))
                .transpose()?;
            // Checked when saved; one that no longer compiles is an error to fix,
            // not a reason to deliver everything.
            let filter = row
                .get::<Option<String>, _>("filter")
                .map(|f| Filter::compile(&f).map(Arc::new))
                .transpose()
                .map_err(|e| anyhow::anyhow!("connection {name}: stored filter: {e}"))?;
            Ok(Connection {
                id: row.get("id"),
                name,
                source_id: row.get("source_id"),
                plugin: row.get("plugin"),
                enabled: row.get("enabled"),
                allowed_hosts,
                config,
                filter,
                updated_at: row.get("updated_at"),
                removed: row.get("removed"),
            })
        })
        .collect()
}

/// Creates or updates the connection `decl.name` for `source_id`; unchanged
/// values leave the row untouched.
pub async fn upsert(
    pool: &Pool,
    sealer: &Sealer,
    decl: &ConnectionDecl,
    source_id: SourceId,
) -> anyhow::Result<ConnectionId> {
    if let Some(filter) = &decl.filter {
        Filter::compile(filter).map_err(|e| anyhow::anyhow!("connection {:?}: {e}", decl.name))?;
    }
    let existing = list(pool, sealer)
        .await?
        .into_iter()
        .find(|c| c.name == decl.name);
    let hosts = decl
        .allowed_hosts
        .as_ref()
        .map(serde_json::to_string)
        .transpose()?;
    let now = now_ms();
    if let Some(c) = existing {
        let same = c.source_id == source_id
            && c.plugin == decl.plugin
            && c.enabled == decl.enabled
            && c.allowed_hosts == decl.allowed_hosts
            && c.config == decl.config
            && c.filter.as_ref().map(|f| f.source()) == decl.filter.as_deref()
            && !c.removed;
        if !same {
            sqlx::query(
                "UPDATE connections SET source_id = ?, plugin = ?, enabled = ?, allowed_hosts = ?, config = ?, filter = ?, updated_at = ?, removed_at = NULL WHERE id = ?",
            )
            .bind(source_id)
            .bind(&decl.plugin)
            .bind(decl.enabled)
            .bind(&hosts)
            .bind(sealer.seal(&decl.config.to_string()))
            .bind(&decl.filter)
            .bind(now)
            .bind(c.id)
            .execute(pool)
            .await?;
        }
        return Ok(c.id);
    }
    let id = sqlx::query(
        "INSERT INTO connections (name, source_id, plugin, enabled, allowed_hosts, config, filter, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&decl.name)
    .bind(source_id)
    .bind(&decl.plugin)
    .bind(decl.enabled)
    .bind(&hosts)
    .bind(sealer.seal(&decl.config.to_string()))
    .bind(&decl.filter)
    .bind(now)
    .bind(now)
    .execute(pool)
    .await?
    .last_insert_rowid();
    Ok(id)
}

/// Enables or disables a connection; false when no such connection exists.
pub async fn set_enabled(pool: &Pool, name: &str, enabled: bool) -> anyhow::Result<bool> {
    let done = sqlx::query("UPDATE connections SET enabled = ?, updated_at = ? WHERE name = ?")
        .bind(enabled)
        .bind(now_ms())
        .bind(name)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks removed the connections the configuration no longer declares (their
/// pending jobs pause; nothing is deleted). Returns their names.
pub async fn mark_removed(pool: &Pool, declared: &[String]) -> anyhow::Result<Vec<String>> {
    let names = serde_json::to_string(declared)?;
    let rows: Vec<String> = sqlx::query_scalar(
        "UPDATE connections SET removed_at = ?1, updated_at = ?1
         WHERE removed_at IS NULL AND name NOT IN (SELECT value FROM json_each(?2)) RETURNING name",
    )
    .bind(now_ms())
    .bind(names)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// Latest change of any source or connection, to notice edits by other processes.
pub async fn catalog_version(pool: &Pool) -> anyhow::Result<(i64, i64)> {
    let row = sqlx::query(
        "SELECT (SELECT COALESCE(MAX(updated_at), 0) + COUNT(*) FROM sources) AS s, (SELECT COALESCE(MAX(updated_at), 0) + COUNT(*) FROM connections) AS c",
    )
    .fetch_one(pool)
    .await?;
    Ok((row.get("s"), row.get("c")))
}
