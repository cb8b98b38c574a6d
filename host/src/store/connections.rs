//! `connections`: one plugin fed by one source. The config is sealed as a whole,
//! since which of its fields are secrets depends on a plugin that may be absent.

use anyhow::Context as _;

use std::sync::Arc;

use super::{AlreadyExists, Owner, Pool, Write};
use crate::config::{ConnectionDecl, ConnectionLimits};
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
    pub owner: Owner,
    /// Overrides of the `[runtime]` quotas.
    pub limits: ConnectionLimits,
    /// What the file last declared for `enabled` (file-owned only).
    pub file_enabled: Option<bool>,
}

pub async fn list(pool: &Pool, sealer: &Sealer) -> anyhow::Result<Vec<Connection>> {
    let rows = crate::store::sql::query(
        "SELECT id, name, source_id, plugin, enabled, allowed_hosts, config, filter, updated_at,
                removed_at IS NOT NULL AS removed, owner, limits, file_enabled
         FROM connections WHERE deleted_at IS NULL ORDER BY name",
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
            let limits = row
                .get::<Option<String>, _>("limits")
                .map(|l| serde_json::from_str(&l))
                .transpose()
                .with_context(|| format!("connection {name}: stored limits"))?
                .unwrap_or_default();
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
                owner: Owner::parse(row.get("owner")),
                limits,
                file_enabled: row.get("file_enabled"),
            })
        })
        .collect()
}

/// Creates or updates the connection `decl.name` for `source_id`, owned by
/// `owner`; unchanged values leave the row untouched. For the file, `enabled`
/// follows the file only when the file changed it (an operator's pause stays).
pub async fn upsert(
    pool: &Pool,
    sealer: &Sealer,
    decl: &ConnectionDecl,
    source_id: SourceId,
    owner: Owner,
    write: Write,
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
    let limits = (decl.limits != ConnectionLimits::default())
        .then(|| serde_json::to_string(&decl.limits))
        .transpose()?;
    let file_enabled = (owner == Owner::File).then_some(decl.enabled);
    let now = now_ms();
    if let Some(c) = existing {
        if write == Write::CreateOnly {
            return Err(AlreadyExists(format!("connection {:?}", decl.name)).into());
        }
        let enabled = match (owner, c.owner, c.file_enabled) {
            (Owner::File, Owner::File, Some(before)) if before == decl.enabled => c.enabled,
            _ => decl.enabled,
        };
        let same = c.source_id == source_id
            && c.plugin == decl.plugin
            && c.enabled == enabled
            && c.allowed_hosts == decl.allowed_hosts
            && c.config == decl.config
            && c.filter.as_ref().map(|f| f.source()) == decl.filter.as_deref()
            && c.limits == decl.limits
            && c.owner == owner
            && c.file_enabled == file_enabled
            && !c.removed;
        if !same {
            crate::store::sql::query(
                "UPDATE connections SET source_id = ?, plugin = ?, enabled = ?, allowed_hosts = ?, config = ?, filter = ?,
                     limits = ?, owner = ?, file_enabled = ?, updated_at = ?, removed_at = NULL WHERE id = ?",
            )
            .bind(source_id)
            .bind(&decl.plugin)
            .bind(enabled)
            .bind(&hosts)
            .bind(sealer.seal(&decl.config.to_string()))
            .bind(&decl.filter)
            .bind(&limits)
            .bind(owner.as_str())
            .bind(file_enabled)
            .bind(now.max(c.updated_at + 1))
            .bind(c.id)
            .execute(pool)
            .await?;
        }
        return Ok(c.id);
    }
    let id = crate::store::sql::query(
        "INSERT INTO connections (name, source_id, plugin, enabled, allowed_hosts, config, filter, limits, owner, file_enabled, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&decl.name)
    .bind(source_id)
    .bind(&decl.plugin)
    .bind(decl.enabled)
    .bind(&hosts)
    .bind(sealer.seal(&decl.config.to_string()))
    .bind(&decl.filter)
    .bind(&limits)
    .bind(owner.as_str())
    .bind(file_enabled)
    .bind(now)
    .bind(now)
    .fetch_one(pool)
    .await
    .map_err(|e| match e.as_database_error() {
        // Created by someone else since the look-up.
        Some(d) if d.is_unique_violation() => {
            anyhow::Error::from(AlreadyExists(format!("connection {:?}", decl.name)))
        }
        _ => e.into(),
    })?
    .get("id");
    Ok(id)
}

/// Deletes a connection: its pending jobs are cancelled (a running one
/// finishes), its schedules and policy go, its events, jobs and attempts stay
/// (under the row, renamed so that the name is free again). The cancelled
/// jobs' ids.
pub async fn delete(pool: &Pool, id: ConnectionId) -> anyhow::Result<Vec<String>> {
    let now = now_ms();
    let mut tx = pool.begin().await?;
    let cancelled: Vec<String> = crate::store::sql::query_scalar(
        "UPDATE jobs SET state = 'cancelled', finished_at = ?1, updated_at = ?1,
             last_error = 'its connection was deleted'
         WHERE connection_id = ?2 AND state IN ('queued', 'waiting', 'paused') RETURNING id",
    )
    .bind(now)
    .bind(id)
    .fetch_all(&mut tx)
    .await?;
    for event in crate::store::sql::query_scalar::<String>(
        "SELECT DISTINCT event_id FROM jobs WHERE connection_id = ? AND state = 'cancelled' AND finished_at = ? AND event_id IS NOT NULL",
    )
    .bind(id)
    .bind(now)
    .fetch_all(&mut tx)
    .await?
    {
        crate::store::events::refresh_status(&mut tx, &event).await?;
    }
    crate::store::sql::query("DELETE FROM schedules WHERE connection_id = ?")
        .bind(id)
        .execute(&mut tx)
        .await?;
    crate::store::sql::query("DELETE FROM connection_policies WHERE connection_id = ?")
        .bind(id)
        .execute(&mut tx)
        .await?;
    crate::store::sql::query(
        "UPDATE connections SET deleted_at = ?1, removed_at = COALESCE(removed_at, ?1), enabled = FALSE,
             name = name || '~deleted~' || id, updated_at = CASE WHEN ?1 > updated_at THEN ?1 ELSE updated_at + 1 END WHERE id = ?2",
    )
    .bind(now)
    .bind(id)
    .execute(&mut tx)
    .await?;
    tx.commit().await?;
    Ok(cancelled)
}

/// Enables or disables a connection; false when no such connection exists.
pub async fn set_enabled(pool: &Pool, name: &str, enabled: bool) -> anyhow::Result<bool> {
    let done = crate::store::sql::query(
        "UPDATE connections SET enabled = ?, updated_at = ? WHERE name = ? AND deleted_at IS NULL",
    )
    .bind(enabled)
    .bind(now_ms())
    .bind(name)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks removed the file-owned connections the file no longer declares (their
/// pending jobs pause; nothing is deleted). Returns their names.
pub async fn mark_removed(pool: &Pool, declared: &[String]) -> anyhow::Result<Vec<String>> {
    let names = serde_json::to_string(declared)?;
    let rows: Vec<String> = crate::store::sql::query_scalar(format!(
        "UPDATE connections SET removed_at = ?1, updated_at = ?1
         WHERE removed_at IS NULL AND owner = 'file' AND name NOT IN {} RETURNING name",
        pool.engine().json_texts("?2")
    ))
    .bind(now_ms())
    .bind(names)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// Latest change of any source or connection, to notice edits by other processes.
pub async fn catalog_version(pool: &Pool) -> anyhow::Result<(i64, i64)> {
    let row = crate::store::sql::query(
        "SELECT (SELECT COALESCE(MAX(updated_at), 0) + COUNT(*) FROM sources) AS s, (SELECT COALESCE(MAX(updated_at), 0) + COUNT(*) FROM connections) AS c",
    )
    .fetch_one(pool)
    .await?;
    Ok((row.get("s"), row.get("c")))
}
