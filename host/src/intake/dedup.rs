//! Replays and duplicates: each accepted webhook claims keys (digests of what
//! its sender signed) in `intake_dedup`, inside the intake writer's batch
//! transaction, so the check costs no round trip: it is one indexed insert on
//! the writer's connection. A key already claimed inside the window makes
//! the request a duplicate of the event that claimed it.
//!
//! Keys per scheme (see [`recoco_keys`], [`standard_webhooks_keys`]):
//! - Recoco sends no event id (`Django-Webhook-UUID` is the *subscription's*
//!   UUID, the same for every event), so a duplicate is the same signed
//!   content: the same timestamp and body, whichever of the source's secrets
//!   signed it. A signed but malformed body also claims its body digest: the
//!   sender retries a refused request with a fresh timestamp, and one stored
//!   copy of it is enough.
//! - Standard Webhooks: the `webhook-id`, which the sender keeps across retries.

use rusqlite::{params, OptionalExtension as _, Transaction};
use sha2::{Digest as _, Sha256};

/// What the writer needs to tell a first delivery from a repeat.
#[derive(Debug, Clone, Default)]
pub struct Claim {
    /// Keys this request claims; none means it is never a duplicate.
    pub keys: Vec<String>,
    /// Claims seen before this time (ms) have expired.
    pub expired_before: i64,
}

/// The event a duplicate repeats, as it stands now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original {
    pub event_id: String,
    pub status: String,
}

fn digest(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

/// Keys of a Recoco request: its signed content, and its body when the body
/// is not a valid envelope.
pub fn recoco_keys(timestamp: &str, body: &[u8], valid_envelope: bool) -> Vec<String> {
    let mut keys = vec![format!(
        "signed:{}",
        digest(&[timestamp.as_bytes(), b":", body])
    )];
    if !valid_envelope {
        keys.push(format!("invalid-body:{}", digest(&[body])));
    }
    keys
}

/// Longest `webhook-id` kept as is; longer ones are kept as a digest.
const MAX_ID_KEY: usize = 200;

/// Key of a Standard Webhooks request: its message id.
pub fn standard_webhooks_keys(message_id: &str) -> Vec<String> {
    if message_id.len() <= MAX_ID_KEY {
        vec![format!("id:{message_id}")]
    } else {
        vec![format!("id-sha256:{}", digest(&[message_id.as_bytes()]))]
    }
}

const CLAIM: &str = "INSERT INTO intake_dedup (source_id, key, event_id, seen_at) VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (source_id, key) DO UPDATE SET event_id = excluded.event_id, seen_at = excluded.seen_at
     WHERE intake_dedup.seen_at < ?5";

const ORIGINAL: &str = "SELECT d.event_id, COALESCE(e.status, 'queued') FROM intake_dedup d
     LEFT JOIN events e ON e.id = d.event_id WHERE d.source_id = ?1 AND d.key = ?2";

const RELEASE: &str =
    "DELETE FROM intake_dedup WHERE source_id = ?1 AND key = ?2 AND event_id = ?3";

/// Claims `claim.keys` for `event_id`; `Some(original)` when one of them is
/// held by an earlier event inside the window (then nothing stays claimed).
pub fn claim(
    tx: &Transaction<'_>,
    source_id: i64,
    event_id: &str,
    now: i64,
    claim: &Claim,
) -> rusqlite::Result<Option<Original>> {
    let mut insert = tx.prepare_cached(CLAIM)?;
    for (n, key) in claim.keys.iter().enumerate() {
        let claimed =
            insert.execute(params![source_id, key, event_id, now, claim.expired_before])?;
        if claimed == 1 {
            continue;
        }
        // A repeat (rare): release what this request claimed before, report the first.
        let mut release = tx.prepare_cached(RELEASE)?;
        for earlier in &claim.keys[..n] {
            release.execute(params![source_id, earlier, event_id])?;
        }
        let original = tx
            .prepare_cached(ORIGINAL)?
            .query_row(params![source_id, key], |row| {
                Ok(Original {
                    event_id: row.get(0)?,
                    status: row.get(1)?,
                })
            })
            .optional()?;
        return Ok(original);
    }
    Ok(None)
}

/// [`claim`] on the pool's engine (the PostgreSQL writer's path).
pub async fn claim_in(
    tx: &mut crate::store::sql::Tx,
    source_id: i64,
    event_id: &str,
    now: i64,
    claim: &Claim,
) -> sqlx::Result<Option<Original>> {
    use crate::store::sql::query;
    for (n, key) in claim.keys.iter().enumerate() {
        let claimed = query(CLAIM)
            .bind(source_id)
            .bind(key)
            .bind(event_id)
            .bind(now)
            .bind(claim.expired_before)
            .execute(&mut *tx)
            .await?;
        if claimed.rows_affected() == 1 {
            continue;
        }
        for earlier in &claim.keys[..n] {
            query(RELEASE)
                .bind(source_id)
                .bind(earlier)
                .bind(event_id)
                .execute(&mut *tx)
                .await?;
        }
        let original = query(ORIGINAL)
            .bind(source_id)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
        return original
            .map(|row| {
                Ok(Original {
                    event_id: row.try_get(0usize)?,
                    status: row.try_get(1usize)?,
                })
            })
            .transpose();
    }
    Ok(None)
}

/// Forgets claims older than `expired_before` on the pool's engine.
pub async fn prune_in(pool: &crate::store::Pool, expired_before: i64) -> sqlx::Result<u64> {
    crate::store::sql::query("DELETE FROM intake_dedup WHERE seen_at < ?1")
        .bind(expired_before)
        .execute(pool)
        .await
        .map(|d| d.rows_affected())
}

/// Forgets claims older than `expired_before`; returns how many.
pub fn prune(conn: &rusqlite::Connection, expired_before: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM intake_dedup WHERE seen_at < ?1")?
        .execute(params![expired_before])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_what_was_signed() {
        let a = recoco_keys("1767261600", b"{}", true);
        assert_eq!(a.len(), 1);
        assert_eq!(a, recoco_keys("1767261600", b"{}", true));
        assert_ne!(
            a,
            recoco_keys("1767261601", b"{}", true),
            "a re-signed retry"
        );
        // A malformed body also claims the body itself, whatever its timestamp.
        let b1 = recoco_keys("1", b"nope", false);
        let b2 = recoco_keys("2", b"nope", false);
        assert_eq!(b1.len(), 2);
        assert_eq!(b1[1], b2[1]);
        assert_eq!(standard_webhooks_keys("msg_1"), vec!["id:msg_1"]);
        let long = "x".repeat(500);
        assert!(standard_webhooks_keys(&long)[0].starts_with("id-sha256:"));
    }

    fn db() -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE sources (id INTEGER PRIMARY KEY);
             INSERT INTO sources (id) VALUES (1), (2);
             CREATE TABLE events (id TEXT PRIMARY KEY, status TEXT);
             INSERT INTO events VALUES ('evt_1', 'processed');",
        )
        .unwrap();
        conn.execute_batch(
            "CREATE TABLE intake_dedup (source_id INTEGER NOT NULL, key TEXT NOT NULL, event_id TEXT NOT NULL, seen_at INTEGER NOT NULL, PRIMARY KEY (source_id, key)) WITHOUT ROWID;",
        )
        .unwrap();
        conn
    }

    #[test]
    fn a_second_claim_inside_the_window_is_a_duplicate_outside_it_is_not() {
        let mut conn = db();
        let keys = Claim {
            keys: vec!["a".into(), "b".into()],
            expired_before: 0,
        };
        let tx = conn.transaction().unwrap();
        assert_eq!(claim(&tx, 1, "evt_1", 1000, &keys).unwrap(), None);
        // Same keys, other source: independent.
        assert_eq!(claim(&tx, 2, "evt_2", 1000, &keys).unwrap(), None);
        // Only the second key repeats: a duplicate, and its first key is released.
        let partial = Claim {
            keys: vec!["c".into(), "b".into()],
            expired_before: 0,
        };
        let original = claim(&tx, 1, "evt_3", 1001, &partial).unwrap().unwrap();
        assert_eq!(
            original,
            Original {
                event_id: "evt_1".into(),
                status: "processed".into()
            }
        );
        let c_held: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM intake_dedup WHERE key = 'c'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(c_held, 0);
        // After the window the keys are free again.
        let later = Claim {
            keys: vec!["a".into()],
            expired_before: 5000,
        };
        assert_eq!(claim(&tx, 1, "evt_4", 6000, &later).unwrap(), None);
        tx.commit().unwrap();
        assert_eq!(
            prune(&conn, 5000).unwrap(),
            3,
            "b of source 1, a and b of source 2"
        );
    }
}
