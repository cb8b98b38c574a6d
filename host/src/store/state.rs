//! `connection_state`: the key-value store behind the WIT `state` interface.

use super::Pool;
use crate::ids::{now_ms, ConnectionId};

pub async fn get(pool: &Pool, connection: ConnectionId, key: &str) -> sqlx::Result<Option<String>> {
    let row = crate::store::sql::query(
        "SELECT value FROM connection_state WHERE connection_id = ? AND key = ?",
    )
    .bind(connection)
    .bind(key)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| r.get("value")))
}

pub async fn set(
    pool: &Pool,
    connection: ConnectionId,
    key: &str,
    value: &str,
) -> sqlx::Result<()> {
    crate::store::sql::query(
        "INSERT INTO connection_state (connection_id, key, value, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (connection_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(connection)
    .bind(key)
    .bind(value)
    .bind(now_ms())
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn delete(pool: &Pool, connection: ConnectionId, key: &str) -> sqlx::Result<()> {
    crate::store::sql::query("DELETE FROM connection_state WHERE connection_id = ? AND key = ?")
        .bind(connection)
        .bind(key)
        .execute(pool)
        .await?;
    Ok(())
}

/// Keys starting with `prefix`, sorted. The range scan avoids LIKE's wildcards.
pub async fn keys(
    pool: &Pool,
    connection: ConnectionId,
    prefix: &str,
) -> sqlx::Result<Vec<String>> {
    let rows = crate::store::sql::query(
        "SELECT key FROM connection_state WHERE connection_id = ? AND key >= ? AND substr(key, 1, length(?)) = ? ORDER BY key",
    )
    .bind(connection)
    .bind(prefix)
    .bind(prefix)
    .bind(prefix)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| r.get("key")).collect())
}

/// Every entry of a connection, for the admin API.
pub async fn all(pool: &Pool, connection: ConnectionId) -> anyhow::Result<Vec<(String, String)>> {
    let rows = crate::store::sql::query(
        "SELECT key, value FROM connection_state WHERE connection_id = ? ORDER BY key",
    )
    .bind(connection)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.get("key"), r.get("value")))
        .collect())
}

/// A connection's state usage: entries, and bytes of keys and values.
pub async fn usage(pool: &Pool, connection: ConnectionId) -> sqlx::Result<(u64, u64)> {
    let row = crate::store::sql::query(
        "SELECT count(*) AS n, coalesce(sum(octet_length(key) + octet_length(value)), 0) AS bytes
         FROM connection_state WHERE connection_id = ?",
    )
    .bind(connection)
    .fetch_one(pool)
    .await?;
    Ok((
        row.get::<i64, _>("n") as u64,
        row.get::<i64, _>("bytes") as u64,
    ))
}

/// Bytes (key and value) of one entry, if it exists.
pub async fn entry_bytes(
    pool: &Pool,
    connection: ConnectionId,
    key: &str,
) -> sqlx::Result<Option<u64>> {
    let row = crate::store::sql::query(
        "SELECT octet_length(key) + octet_length(value) AS bytes
         FROM connection_state WHERE connection_id = ? AND key = ?",
    )
    .bind(connection)
    .bind(key)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| r.get::<i64, _>("bytes") as u64))
}
