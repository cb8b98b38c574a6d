//! `sources`: the Recoco portals. Secrets are sealed at rest and opened on load.

use anyhow::Context as _;
use sqlx::Row as _;

use super::Pool;
use crate::config::SourceDecl;
use crate::ids::{now_ms, SourceId};
use crate::secrets::Sealer;

/// A source with its secrets opened.
#[derive(Debug, Clone)]
pub struct Source {
    pub id: SourceId,
    pub code: String,
    pub api_url: Option<String>,
    pub secrets: Vec<String>,
    pub api_username: Option<String>,
    pub api_password: Option<String>,
    pub enabled: bool,
    pub updated_at: i64,
}

pub async fn list(pool: &Pool, sealer: &Sealer) -> anyhow::Result<Vec<Source>> {
    let rows = sqlx::query(
        "SELECT id, code, api_url, secrets, api_username, api_password, enabled, updated_at FROM sources ORDER BY code",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            let code: String = row.get("code");
            let secrets: Vec<String> = serde_json::from_str(&sealer.open(row.get("secrets"))?)
                .with_context(|| format!("source {code}: stored secrets are not a list"))?;
            let api_password = row
                .get::<Option<String>, _>("api_password")
                .map(|p| sealer.open(&p))
                .transpose()?;
            Ok(Source {
                id: row.get("id"),
                code,
                api_url: row.get("api_url"),
                secrets,
                api_username: row.get("api_username"),
                api_password,
                enabled: row.get("enabled"),
                updated_at: row.get("updated_at"),
            })
        })
        .collect()
}

/// Creates or updates the source `decl.code`; does nothing when it already holds
/// the same values (so applying the same file twice changes nothing).
pub async fn upsert(pool: &Pool, sealer: &Sealer, decl: &SourceDecl) -> anyhow::Result<SourceId> {
    let existing = list(pool, sealer)
        .await?
        .into_iter()
        .find(|s| s.code == decl.code);
    let now = now_ms();
    if let Some(s) = existing {
        let same = s.api_url == decl.api_url
            && s.secrets == decl.secrets
            && s.api_username == decl.api_username
            && s.api_password == decl.api_password
            && s.enabled == decl.enabled;
        if !same {
            sqlx::query(
                "UPDATE sources SET api_url = ?, secrets = ?, api_username = ?, api_password = ?, enabled = ?, updated_at = ? WHERE id = ?",
            )
            .bind(&decl.api_url)
            .bind(sealer.seal(&serde_json::to_string(&decl.secrets)?))
            .bind(&decl.api_username)
            .bind(decl.api_password.as_deref().map(|p| sealer.seal(p)))
            .bind(decl.enabled)
            .bind(now)
            .bind(s.id)
            .execute(pool)
            .await?;
        }
        return Ok(s.id);
    }
    let id = sqlx::query(
        "INSERT INTO sources (code, api_url, secrets, api_username, api_password, enabled, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&decl.code)
    .bind(&decl.api_url)
    .bind(sealer.seal(&serde_json::to_string(&decl.secrets)?))
    .bind(&decl.api_username)
    .bind(decl.api_password.as_deref().map(|p| sealer.seal(p)))
    .bind(decl.enabled)
    .bind(now)
    .bind(now)
    .execute(pool)
    .await?
    .last_insert_rowid();
    Ok(id)
}

/// Enables or disables a source; false when no such source exists.
pub async fn set_enabled(pool: &Pool, code: &str, enabled: bool) -> anyhow::Result<bool> {
    let done = sqlx::query("UPDATE sources SET enabled = ?, updated_at = ? WHERE code = ?")
        .bind(enabled)
        .bind(now_ms())
        .bind(code)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}
