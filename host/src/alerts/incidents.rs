//! The `alert_incidents` table: open (at most one per connection), update,
//! resolve, list.

use serde::Serialize;

use super::Reason;
use crate::ids::{now_ms, rfc3339};
use crate::store::Pool;

/// Longest error kept with an incident, in bytes.
const MAX_ERROR_BYTES: usize = 2048;

/// What opened an incident: the run that crossed the line.
#[derive(Debug, Clone, Default)]
pub struct Trigger {
    pub connection_id: i64,
    pub connection: String,
    pub plugin: Option<String>,
    pub plugin_version: Option<String>,
    pub job_id: Option<String>,
    pub event_id: Option<String>,
    pub attempt: Option<i64>,
    pub error: Option<String>,
    pub failures: u32,
}

/// An incident, as the admin API and the notices show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Incident {
    pub id: i64,
    pub connection: String,
    /// `failures`, `dead` or `circuit_open`.
    pub reason: String,
    pub summary: String,
    /// `open` or `resolved`.
    pub state: String,
    pub plugin: Option<String>,
    pub plugin_version: Option<String>,
    pub job_id: Option<String>,
    pub event_id: Option<String>,
    pub attempt: Option<i64>,
    pub last_error: Option<String>,
    /// Consecutive failed runs when last seen.
    pub failures: i64,
    pub opened_at: String,
    pub updated_at: String,
    pub resolved_at: Option<String>,
    pub opened_notified_at: Option<String>,
    pub resolved_notified_at: Option<String>,
    /// Why the last notice could not be sent.
    pub notify_error: Option<String>,
}

fn cut(text: &str) -> String {
    if text.len() <= MAX_ERROR_BYTES {
        return text.to_string();
    }
    let mut end = MAX_ERROR_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The one line people read.
pub fn summary(reason: Reason, t: &Trigger) -> String {
    match reason {
        Reason::Failures => format!(
            "connection {}: {} consecutive job runs failed",
            t.connection, t.failures
        ),
        Reason::Dead => format!(
            "connection {}: job {} is dead after {} attempt(s)",
            t.connection,
            t.job_id.as_deref().unwrap_or("?"),
            t.attempt.unwrap_or(0)
        ),
        Reason::CircuitOpen => format!(
            "connection {}: circuit open after {} consecutive failures; delivery paused",
            t.connection, t.failures
        ),
    }
}

const SELECT: &str = "SELECT id, connection, reason, summary, plugin, plugin_version, job_id, event_id, attempt, last_error, failures, opened_at, updated_at, resolved_at, opened_notified_at, resolved_notified_at, notify_error FROM alert_incidents";

fn from_row(r: crate::store::sql::Row) -> Incident {
    let time = |col: &str| r.get::<Option<i64>, _>(col).map(rfc3339);
    let resolved_at = time("resolved_at");
    Incident {
        id: r.get("id"),
        connection: r.get("connection"),
        reason: r.get("reason"),
        summary: r.get("summary"),
        state: if resolved_at.is_some() {
            "resolved"
        } else {
            "open"
        }
        .into(),
        plugin: r.get("plugin"),
        plugin_version: r.get("plugin_version"),
        job_id: r.get("job_id"),
        event_id: r.get("event_id"),
        attempt: r.get("attempt"),
        last_error: r.get("last_error"),
        failures: r.get("failures"),
        opened_at: rfc3339(r.get("opened_at")),
        updated_at: rfc3339(r.get("updated_at")),
        resolved_at,
        opened_notified_at: time("opened_notified_at"),
        resolved_notified_at: time("resolved_notified_at"),
        notify_error: r.get("notify_error"),
    }
}

/// Opens an incident for the trigger's connection, unless one is open: then
/// it is brought up to date and `None` returned (one notice per incident).
pub async fn open(pool: &Pool, reason: Reason, t: &Trigger) -> anyhow::Result<Option<Incident>> {
    let now = now_ms();
    let error = t.error.as_deref().map(cut);
    let id: Option<i64> = crate::store::sql::query_scalar(
        "INSERT INTO alert_incidents (connection_id, connection, reason, summary, plugin, plugin_version, job_id, event_id, attempt, last_error, failures, opened_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(t.connection_id)
    .bind(&t.connection)
    .bind(reason.as_str())
    .bind(summary(reason, t))
    .bind(&t.plugin)
    .bind(&t.plugin_version)
    .bind(&t.job_id)
    .bind(&t.event_id)
    .bind(t.attempt)
    .bind(&error)
    .bind(t.failures as i64)
    .bind(now)
    .bind(now)
    .fetch_optional(pool)
    .await?;
    match id {
        Some(id) => get(pool, id).await,
        None => {
            crate::store::sql::query(
                "UPDATE alert_incidents SET failures = CASE WHEN failures > ?1 THEN failures ELSE ?1 END,
                     last_error = COALESCE(?2, last_error), updated_at = ?3
                 WHERE connection_id = ?4 AND resolved_at IS NULL",
            )
            .bind(t.failures as i64)
            .bind(&error)
            .bind(now)
            .bind(t.connection_id)
            .execute(pool)
            .await?;
            Ok(None)
        }
    }
}

/// Resolves the connection's open incident, if any; returns it.
pub async fn resolve(pool: &Pool, connection_id: i64) -> anyhow::Result<Option<Incident>> {
    let now = now_ms();
    let id: Option<i64> = crate::store::sql::query_scalar(
        "UPDATE alert_incidents SET resolved_at = ?1, updated_at = ?1
         WHERE connection_id = ?2 AND resolved_at IS NULL RETURNING id",
    )
    .bind(now)
    .bind(connection_id)
    .fetch_optional(pool)
    .await?;
    match id {
        Some(id) => get(pool, id).await,
        None => Ok(None),
    }
}

/// Connections with an open incident.
pub async fn open_connections(pool: &Pool) -> anyhow::Result<Vec<i64>> {
    Ok(crate::store::sql::query_scalar(
        "SELECT connection_id FROM alert_incidents WHERE resolved_at IS NULL",
    )
    .fetch_all(pool)
    .await?)
}

pub async fn get(pool: &Pool, id: i64) -> anyhow::Result<Option<Incident>> {
    Ok(crate::store::sql::query(format!("{SELECT} WHERE id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .map(from_row))
}

/// Newest first; `state` is `open`, `resolved` or none (all).
pub async fn list(
    pool: &Pool,
    state: Option<&str>,
    connection: Option<&str>,
    limit: i64,
) -> anyhow::Result<Vec<Incident>> {
    let mut q = crate::store::sql::Query::new(SELECT);
    q.push(" WHERE 1 = 1");
    match state {
        Some("open") => {
            q.push(" AND resolved_at IS NULL");
        }
        Some("resolved") => {
            q.push(" AND resolved_at IS NOT NULL");
        }
        _ => {}
    }
    if let Some(c) = connection {
        q.push(" AND connection = ").push_bind(c.to_string());
    }
    q.push(" ORDER BY id DESC LIMIT ")
        .push_bind(limit.clamp(1, 1000));
    Ok(q.build()
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(from_row)
        .collect())
}

/// Records that a notice (`opened` or `resolved`) went out, or why it did not.
pub async fn notified(
    pool: &Pool,
    id: i64,
    which: &str,
    error: Option<&str>,
) -> anyhow::Result<()> {
    let column = if which == "resolved" {
        "resolved_notified_at"
    } else {
        "opened_notified_at"
    };
    let sent = error.is_none().then(now_ms);
    crate::store::sql::query(format!(
        "UPDATE alert_incidents SET {column} = COALESCE(?, {column}), notify_error = ? WHERE id = ?"
    ))
    .bind(sent)
    .bind(error)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}
