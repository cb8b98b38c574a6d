//! `admin_keys` and `admin_sessions`: who may use the admin surface. Keys are
//! random 256-bit values shown once; only their SHA-256 is stored, and every
//! request looks its key up again, so a revocation takes effect at once.

use anyhow::{bail, Context as _};
use base64::Engine as _;
use rand::RngCore as _;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::Pool;
use crate::ids::now_ms;

/// Prefix of generated keys, so a leaked one is recognisable (secret scanners).
pub const KEY_PREFIX: &str = "rsk_";
/// Longest key name.
const MAX_NAME_LEN: usize = 64;
/// `last_used_at` is written at most this often per key (not on every request).
const TOUCH_EVERY_MS: i64 = 60_000;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Reads everything an operator sees, changes nothing.
    Read,
    /// Everything.
    Admin,
}

impl Scope {
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "read" => Ok(Self::Read),
            "admin" => Ok(Self::Admin),
            other => bail!("unknown scope {other:?} (read or admin)"),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Admin => "admin",
        }
    }
}

/// A key as listed (never the key itself).
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub name: String,
    pub scope: Scope,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// An active key found by its hash.
#[derive(Debug, Clone)]
pub struct ActiveKey {
    pub id: i64,
    pub name: String,
    pub scope: Scope,
    pub last_used_at: Option<i64>,
}

/// 32 random bytes, URL-safe base64.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Hex SHA-256: a 256-bit random value needs no slow hash.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if !ok {
        bail!("key name {name:?} must be 1-{MAX_NAME_LEN} letters, digits, '-', '_', '.' or '@'");
    }
    Ok(())
}

/// Creates a key; returns it (the only time it is seen).
pub async fn create(pool: &Pool, name: &str, scope: Scope) -> anyhow::Result<String> {
    check_name(name)?;
    let key = format!("{KEY_PREFIX}{}", random_token());
    let inserted = crate::store::sql::query(
        "INSERT INTO admin_keys (name, scope, key_hash, created_at) VALUES (?, ?, ?, ?)
         ON CONFLICT DO NOTHING",
    )
    .bind(name)
    .bind(scope.as_str())
    .bind(hash_token(&key))
    .bind(now_ms())
    .execute(pool)
    .await?
    .rows_affected();
    if inserted == 0 {
        bail!("a key named {name:?} already exists; revoke it first or choose another name");
    }
    Ok(key)
}

fn scope_of(row: &crate::store::sql::Row) -> Scope {
    // The table's CHECK allows nothing else; anything unknown is the lesser scope.
    Scope::parse(row.get("scope")).unwrap_or(Scope::Read)
}

/// Every key, active first, then by name.
pub async fn list(pool: &Pool) -> anyhow::Result<Vec<KeyInfo>> {
    let rows = crate::store::sql::query(
        "SELECT name, scope, created_at, last_used_at, revoked_at FROM admin_keys
         ORDER BY revoked_at IS NOT NULL, name, created_at",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| KeyInfo {
            name: r.get("name"),
            scope: scope_of(r),
            created_at: r.get("created_at"),
            last_used_at: r.get("last_used_at"),
            revoked_at: r.get("revoked_at"),
        })
        .collect())
}

/// Revokes the active key `name`, and ends its sessions. False when there is none.
pub async fn revoke(pool: &Pool, name: &str) -> anyhow::Result<bool> {
    let mut tx = pool.begin().await?;
    let hash: Option<String> = crate::store::sql::query_scalar(
        "SELECT key_hash FROM admin_keys WHERE name = ? AND revoked_at IS NULL",
    )
    .bind(name)
    .fetch_optional(&mut tx)
    .await?;
    let Some(hash) = hash else {
        return Ok(false);
    };
    crate::store::sql::query("UPDATE admin_keys SET revoked_at = ? WHERE key_hash = ?")
        .bind(now_ms())
        .bind(&hash)
        .execute(&mut tx)
        .await?;
    crate::store::sql::query("DELETE FROM admin_sessions WHERE key_hash = ?")
        .bind(&hash)
        .execute(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// True once any key was ever created: the admin surface then always requires
/// one (revoking the last key does not reopen the keyless loopback mode).
pub async fn any_created(pool: &Pool) -> anyhow::Result<bool> {
    Ok(
        crate::store::sql::query_scalar("SELECT EXISTS (SELECT 1 FROM admin_keys)")
            .fetch_one(pool)
            .await?,
    )
}

/// The active key whose hash is `key_hash`.
pub async fn active_by_hash(pool: &Pool, key_hash: &str) -> anyhow::Result<Option<ActiveKey>> {
    let row = crate::store::sql::query(
        "SELECT id, name, scope, last_used_at FROM admin_keys WHERE key_hash = ? AND revoked_at IS NULL",
    )
    .bind(key_hash)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| ActiveKey {
        id: r.get("id"),
        name: r.get("name"),
        scope: scope_of(&r),
        last_used_at: r.get("last_used_at"),
    }))
}

/// Records that `key` was used (at most once a minute).
pub async fn touch(pool: &Pool, key: &ActiveKey) -> anyhow::Result<()> {
    let now = now_ms();
    if key.last_used_at.is_some_and(|t| now - t < TOUCH_EVERY_MS) {
        return Ok(());
    }
    crate::store::sql::query("UPDATE admin_keys SET last_used_at = ? WHERE id = ?")
        .bind(now)
        .bind(key.id)
        .execute(pool)
        .await
        .context("cannot record the key's last use")?;
    Ok(())
}

/// A new session's cookie value and CSRF token.
pub struct NewSession {
    pub token: String,
    pub csrf_token: String,
}

/// Opens a session for the key whose hash is `key_hash`, valid `ttl_ms`.
pub async fn open_session(pool: &Pool, key_hash: &str, ttl_ms: i64) -> anyhow::Result<NewSession> {
    let now = now_ms();
    crate::store::sql::query("DELETE FROM admin_sessions WHERE expires_at <= ?")
        .bind(now)
        .execute(pool)
        .await?;
    let session = NewSession {
        token: random_token(),
        csrf_token: random_token(),
    };
    crate::store::sql::query(
        "INSERT INTO admin_sessions (token_hash, key_hash, csrf_token, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(hash_token(&session.token))
    .bind(key_hash)
    .bind(&session.csrf_token)
    .bind(now)
    .bind(now.saturating_add(ttl_ms))
    .execute(pool)
    .await?;
    Ok(session)
}

/// A live session: the hash of its key and its CSRF token.
pub struct Session {
    pub key_hash: String,
    pub csrf_token: String,
}

/// The unexpired session whose cookie value is `token`.
pub async fn session(pool: &Pool, token: &str) -> anyhow::Result<Option<Session>> {
    let row = crate::store::sql::query(
        "SELECT key_hash, csrf_token FROM admin_sessions WHERE token_hash = ? AND expires_at > ?",
    )
    .bind(hash_token(token))
    .bind(now_ms())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| Session {
        key_hash: r.get("key_hash"),
        csrf_token: r.get("csrf_token"),
    }))
}

/// Ends the session whose cookie value is `token`.
pub async fn close_session(pool: &Pool, token: &str) -> anyhow::Result<()> {
    crate::store::sql::query("DELETE FROM admin_sessions WHERE token_hash = ?")
        .bind(hash_token(token))
        .execute(pool)
        .await?;
    Ok(())
}
