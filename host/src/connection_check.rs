//! Connections whose config fails their plugin's schema. Such a connection is
//! shown `invalid` with the reason (the admin listing, `/healthz`), logged at
//! start, and its jobs *wait*, like the jobs of a plugin that is not loaded,
//! instead of failing one by one: fixing the config (a restart with the
//! corrected file, or a change by another process) wakes them.

use std::sync::Arc;

use crate::catalog::Catalog;
use crate::ids::now_ms;
use crate::queue::jobs::Claimed;
use crate::registry::Registry;
use crate::secrets::redact_config;
use crate::store::connections::Connection;
use crate::store::Pool;

/// How the `last_error` of a job parked for its connection's config starts.
pub const WAITING_PREFIX: &str = "waiting for a valid config of connection";

/// Why `connection` cannot run as configured: the schema's complaints (each
/// naming its field) and the config as given, secrets hidden. `None` when it
/// is valid or its plugin is not loaded (nothing to check against).
pub fn problem(connection: &Connection, registry: &Registry) -> Option<String> {
    let plugin = registry.get(&connection.plugin)?;
    let problem = plugin.validate_config(&connection.config).err()?;
    Some(described(
        connection,
        &plugin.manifest.config_schema,
        &problem,
    ))
}

/// `problem` followed by the connection's non-secret values.
pub fn described(connection: &Connection, schema: &serde_json::Value, problem: &str) -> String {
    let shown = redact_config(&connection.config, Some(schema));
    format!(
        "{problem} (config of connection {:?}, secrets hidden: {shown})",
        connection.name
    )
}

/// The invalid connections of `catalog`, by name, with their reason.
pub fn invalid_connections(catalog: &Catalog, registry: &Registry) -> Vec<(String, String)> {
    let mut list: Vec<(String, String)> = catalog
        .connections()
        .filter_map(|c| Some((c.name.clone(), problem(c, registry)?)))
        .collect();
    list.sort();
    list
}

/// Parks `job` until its connection's config is fixed, without counting the
/// attempt.
pub async fn park(pool: &Pool, job: &Claimed, connection: &Connection, reason: &str) {
    tracing::warn!(connection = %connection.name, "{reason}; the job waits for the config to be fixed");
    let parked = crate::store::sql::query(
        "UPDATE jobs SET state = 'waiting', attempts = attempts - 1, lease_owner = NULL, lease_until = NULL,
             last_error = ?, updated_at = ?
         WHERE id = ?",
    )
    .bind(format!("{WAITING_PREFIX} {:?}: {reason}", connection.name))
    .bind(now_ms())
    .bind(job.id.as_str())
    .execute(pool)
    .await;
    if let Err(err) = parked {
        tracing::warn!(error = %err, "cannot park the job");
    }
}

/// Requeues the jobs parked for a config that is now valid. Returns how many.
pub async fn wake_fixed(pool: &Pool, catalog: &Arc<Catalog>, registry: &Registry) -> u64 {
    let mut woken = 0;
    for c in catalog.connections() {
        if registry.get(&c.plugin).is_none() || problem(c, registry).is_some() {
            continue;
        }
        let now = now_ms();
        let done = crate::store::sql::query(
            "UPDATE jobs SET state = 'queued', run_at = ?, last_error = NULL, updated_at = ?
             WHERE state = 'waiting' AND connection_id = ? AND last_error LIKE ?",
        )
        .bind(now)
        .bind(now)
        .bind(c.id)
        .bind(format!("{WAITING_PREFIX}%"))
        .execute(pool)
        .await;
        match done {
            Ok(done) if done.rows_affected() > 0 => {
                tracing::info!(connection = %c.name, jobs = done.rows_affected(), "config fixed: its waiting jobs run again");
                woken += done.rows_affected();
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "cannot wake the jobs of a fixed connection"),
        }
    }
    woken
}
