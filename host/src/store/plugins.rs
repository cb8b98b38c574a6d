//! `plugins`: the last manifest seen per plugin, so that events are still routed
//! (and wait) while a plugin is briefly absent.

use super::Pool;
use crate::ids::now_ms;

pub async fn remember(
    pool: &Pool,
    name: &str,
    version: &str,
    hash: &str,
    manifest: &serde_json::Value,
) -> sqlx::Result<()> {
    crate::store::sql::query(
        "INSERT INTO plugins (name, version, hash, manifest, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET version = excluded.version, hash = excluded.hash, manifest = excluded.manifest, updated_at = excluded.updated_at
         WHERE plugins.hash <> excluded.hash",
    )
    .bind(name)
    .bind(version)
    .bind(hash)
    .bind(manifest.to_string())
    .bind(now_ms())
    .execute(pool)
    .await?;
    Ok(())
}

/// `(name, manifest)` of every plugin ever loaded.
pub async fn known(pool: &Pool) -> anyhow::Result<Vec<(String, serde_json::Value)>> {
    let rows = crate::store::sql::query("SELECT name, manifest FROM plugins ORDER BY name")
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let manifest = serde_json::from_str(r.get::<&str, _>("manifest")).ok()?;
            Some((r.get("name"), manifest))
        })
        .collect())
}
