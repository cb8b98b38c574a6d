//! `events`: every webhook that passed the signature check, stored byte for byte
//! with what we parsed from it and where its processing stands.

use crate::store::sql::Tx;
use serde::Serialize;

use super::Pool;
use crate::ids::{now_ms, EventId, SourceId};

/// Where an event stands. Derived from its jobs once it has some.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    /// Jobs are pending or running.
    Queued,
    /// Every job succeeded (or was coalesced into a later run).
    Processed,
    /// At least one job failed or is dead.
    Failed,
    /// No enabled connection subscribes to it, or every job it had was
    /// cancelled (its connection deleted) or skipped.
    Ignored,
    /// The source was disabled when it arrived; replay it once enabled.
    Skipped,
    /// Signed correctly but not a valid envelope; kept as received.
    Invalid,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Processed => "processed",
            Self::Failed => "failed",
            Self::Ignored => "ignored",
            Self::Skipped => "skipped",
            Self::Invalid => "invalid",
        }
    }
}

/// What intake stores.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: EventId,
    pub source_id: SourceId,
    pub status: EventStatus,
    pub topic: Option<String>,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    pub action: Option<String>,
    pub webhook_uuid: Option<String>,
    pub body: bytes::Bytes,
    pub headers: serde_json::Value,
    pub remote_addr: Option<String>,
    pub error: Option<String>,
    pub received_at: i64,
    /// Connections whose filter dropped it (JSON, see [`crate::filter::Dropped`]).
    pub filtered: Option<String>,
}

/// Inserts one event. Parameters, in order: id, source_id, status, topic,
/// object_type, object_id, action, webhook_uuid, body, headers, remote_addr,
/// error, received_at, filtered. Shared by every writer (intake binds it directly).
pub const INSERT: &str = "INSERT INTO events (id, source_id, status, topic, object_type, object_id, action, webhook_uuid, body, headers, remote_addr, error, received_at, updated_at, filtered)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13, ?14)";

/// A stored event as operators and workers see it.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub id: String,
    pub source: String,
    pub status: String,
    pub topic: Option<String>,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    pub action: Option<String>,
    pub webhook_uuid: Option<String>,
    #[serde(skip)]
    pub body: Vec<u8>,
    pub headers: serde_json::Value,
    pub remote_addr: Option<String>,
    pub error: Option<String>,
    pub received_at: i64,
    pub updated_at: i64,
    /// The connection filters that dropped it: `[{connection, filter, reason}]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filtered: Vec<crate::filter::Dropped>,
}

const SELECT: &str = "SELECT e.id, s.code AS source, e.status, e.topic, e.object_type, e.object_id, e.action, e.webhook_uuid, e.body, e.headers, e.remote_addr, e.error, e.received_at, e.updated_at, e.filtered FROM events e JOIN sources s ON s.id = e.source_id";

fn from_row(row: crate::store::sql::Row) -> Event {
    Event {
        id: row.get("id"),
        source: row.get("source"),
        status: row.get("status"),
        topic: row.get("topic"),
        object_type: row.get("object_type"),
        object_id: row.get("object_id"),
        action: row.get("action"),
        webhook_uuid: row.get("webhook_uuid"),
        body: row.get("body"),
        headers: serde_json::from_str(row.get("headers")).unwrap_or_default(),
        remote_addr: row.get("remote_addr"),
        error: row.get("error"),
        received_at: row.get("received_at"),
        updated_at: row.get("updated_at"),
        filtered: row
            .get::<Option<String>, _>("filtered")
            .and_then(|f| serde_json::from_str(&f).ok())
            .unwrap_or_default(),
    }
}

pub async fn get(pool: &Pool, id: &str) -> anyhow::Result<Option<Event>> {
    let row = crate::store::sql::query(format!("{SELECT} WHERE e.id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(from_row))
}

/// Filters of the event listing; all optional.
#[derive(Debug, Default, Clone, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventFilter {
    /// queued, processed, failed, ignored, skipped or invalid.
    pub status: Option<String>,
    /// The source's code.
    pub source: Option<String>,
    pub topic: Option<String>,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    /// Only events older than this id (pagination, newest first).
    pub before: Option<String>,
    /// Page size (default 50, at most 1000).
    pub limit: Option<i64>,
}

pub async fn list(pool: &Pool, f: &EventFilter) -> anyhow::Result<Vec<Event>> {
    let equals = [
        ("e.status", &f.status),
        ("s.code", &f.source),
        ("e.topic", &f.topic),
        ("e.object_type", &f.object_type),
        ("e.object_id", &f.object_id),
    ];
    let rows = super::newest_first(SELECT, "e.id", &equals, &f.before, f.limit)
        .build()
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// Recomputes the status of an event from its jobs: queued while any is
/// pending, failed when any failed, processed when the others succeeded (or
/// were coalesced into a later run), ignored when every job was cancelled or
/// skipped (nothing delivered it). Parameters: event id, now. Shared by the
/// pool and the queue's thread.
pub const REFRESH_STATUS: &str = "UPDATE events SET status = CASE
         WHEN EXISTS (SELECT 1 FROM jobs WHERE event_id = ?1 AND state IN ('queued', 'running', 'waiting', 'paused')) THEN 'queued'
         WHEN EXISTS (SELECT 1 FROM jobs WHERE event_id = ?1 AND state IN ('failed', 'dead')) THEN 'failed'
         WHEN EXISTS (SELECT 1 FROM jobs WHERE event_id = ?1 AND state IN ('succeeded', 'coalesced')) THEN 'processed'
         WHEN EXISTS (SELECT 1 FROM jobs WHERE event_id = ?1) THEN 'ignored'
         ELSE status END,
       updated_at = ?2
     WHERE id = ?1";

/// [`REFRESH_STATUS`] through the pool.
pub async fn refresh_status(conn: &mut Tx, id: &str) -> sqlx::Result<()> {
    crate::store::sql::query(REFRESH_STATUS)
        .bind(id)
        .bind(now_ms())
        .execute(conn)
        .await?;
    Ok(())
}

/// Sets an event's status directly (replay of a skipped event that finds no
/// subscriber, for instance).
pub async fn set_status(conn: &mut Tx, id: &str, status: EventStatus) -> sqlx::Result<()> {
    crate::store::sql::query("UPDATE events SET status = ?, updated_at = ? WHERE id = ?")
        .bind(status.as_str())
        .bind(now_ms())
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records which connection filters dropped an event (after a replay).
pub async fn set_filtered(conn: &mut Tx, id: &str, filtered: Option<&str>) -> sqlx::Result<()> {
    crate::store::sql::query("UPDATE events SET filtered = ? WHERE id = ?")
        .bind(filtered)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Number of events per status, for the admin overview.
pub async fn count_by_status(pool: &Pool) -> anyhow::Result<Vec<(String, i64)>> {
    let rows = crate::store::sql::query(
        "SELECT status, COUNT(*) AS n FROM events GROUP BY status ORDER BY status",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.get("status"), r.get("n")))
        .collect())
}
