//! `sources`: the portals that send webhooks. Secrets are sealed at rest and
//! opened on load.
//!
//! A source's secrets have a life cycle: each may carry an expiry, and
//! `recoco-sync sources rotate-secret` adds one while setting the others to
//! expire ("retired"). Secrets come from two places, merged when the
//! configuration file is applied: the file's (as declared, plus the retirement
//! a rotation gave them), and the rotations' (kept until they expire), so a
//! restart does not undo a rotation.

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::{AlreadyExists, Owner, Pool, Write};
use crate::config::{Scheme, SourceDecl};
use crate::ids::{now_ms, SourceId};
use crate::secrets::Sealer;

/// Where a stored secret came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretOrigin {
    /// Declared in the configuration file.
    #[default]
    Config,
    /// Added by `sources rotate-secret`.
    Rotation,
}

/// One secret as stored (inside the sealed JSON list). Times are
/// milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSecret {
    pub value: String,
    /// The expiry declared in the configuration file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// The expiry a rotation gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<i64>,
    #[serde(default)]
    pub origin: SecretOrigin,
}

impl StoredSecret {
    /// From then on it validates nothing.
    pub fn effective_expiry(&self) -> Option<i64> {
        match (self.expires_at, self.retired_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn is_live(&self, now_ms: i64) -> bool {
        self.effective_expiry().is_none_or(|t| t > now_ms)
    }
}

/// The stored list: objects, or plain strings (databases written before
/// secrets had expiries).
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredForm {
    Plain(String),
    Full(StoredSecret),
}

/// A secret ready to check signatures with.
#[derive(Debug, Clone)]
pub struct SigningKey {
    pub key: Vec<u8>,
    pub expires_at: Option<i64>,
}

/// A source with its secrets opened.
#[derive(Debug, Clone)]
pub struct Source {
    pub id: SourceId,
    pub code: String,
    pub api_url: Option<String>,
    /// Every secret value, expired ones included (what logs are scrubbed of).
    pub secrets: Vec<String>,
    /// The secrets with their expiry and origin.
    pub secret_entries: Vec<StoredSecret>,
    /// The HMAC keys of the secrets, in the same order.
    pub signing_keys: Vec<SigningKey>,
    pub scheme: Scheme,
    /// Per-source intake rate; `None` = the `[intake]` default.
    pub rate_per_second: Option<f64>,
    pub rate_burst: Option<u32>,
    pub api_username: Option<String>,
    pub api_password: Option<String>,
    pub enabled: bool,
    pub updated_at: i64,
    pub owner: Owner,
    /// What the file last declared for `enabled` (file-owned only).
    pub file_enabled: Option<bool>,
}

impl Source {
    /// The keys that validate a request received at `now_ms`.
    pub fn live_keys(&self, now_ms: i64) -> Vec<&[u8]> {
        self.signing_keys
            .iter()
            .filter(|k| k.expires_at.is_none_or(|t| t > now_ms))
            .map(|k| k.key.as_slice())
            .collect()
    }
}

fn open_secrets(sealer: &Sealer, sealed: &str, code: &str) -> anyhow::Result<Vec<StoredSecret>> {
    let forms: Vec<StoredForm> = serde_json::from_str(&sealer.open(sealed)?)
        .with_context(|| format!("source {code}: stored secrets are not a list"))?;
    Ok(forms
        .into_iter()
        .map(|f| match f {
            StoredForm::Plain(value) => StoredSecret {
                value,
                expires_at: None,
                retired_at: None,
                origin: SecretOrigin::Config,
            },
            StoredForm::Full(s) => s,
        })
        .collect())
}

fn seal_secrets(sealer: &Sealer, secrets: &[StoredSecret]) -> anyhow::Result<String> {
    Ok(sealer.seal(&serde_json::to_string(secrets)?))
}

pub async fn list(pool: &Pool, sealer: &Sealer) -> anyhow::Result<Vec<Source>> {
    let rows = crate::store::sql::query(
        "SELECT id, code, api_url, secrets, scheme, rate_per_second, rate_burst, api_username, api_password, enabled, updated_at,
                owner, file_enabled
         FROM sources WHERE deleted_at IS NULL ORDER BY code",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            let code: String = row.get("code");
            let entries = open_secrets(sealer, row.get("secrets"), &code)?;
            let scheme_name: String = row.get("scheme");
            let scheme = Scheme::parse(&scheme_name).with_context(|| {
                format!("source {code}: unknown signature scheme {scheme_name:?}")
            })?;
            let signing_keys = entries
                .iter()
                .map(|s| {
                    Ok(SigningKey {
                        key: scheme.signing_key(&s.value).map_err(|why| {
                            anyhow::anyhow!("source {code}: a stored secret is unusable: {why}")
                        })?,
                        expires_at: s.effective_expiry(),
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let api_password = row
                .get::<Option<String>, _>("api_password")
                .map(|p| sealer.open(&p))
                .transpose()?;
            Ok(Source {
                id: row.get("id"),
                code,
                api_url: row.get("api_url"),
                secrets: entries.iter().map(|s| s.value.clone()).collect(),
                secret_entries: entries,
                signing_keys,
                scheme,
                rate_per_second: row.get("rate_per_second"),
                rate_burst: row
                    .get::<Option<i64>, _>("rate_burst")
                    .map(|b| b.clamp(0, u32::MAX as i64) as u32),
                api_username: row.get("api_username"),
                api_password,
                enabled: row.get("enabled"),
                updated_at: row.get("updated_at"),
                owner: Owner::parse(row.get("owner")),
                file_enabled: row.get("file_enabled"),
            })
        })
        .collect()
}

/// The file's secrets merged with what is stored (see the module comment).
fn merge_secrets(decl: &SourceDecl, stored: &[StoredSecret], now: i64) -> Vec<StoredSecret> {
    let mut merged: Vec<StoredSecret> = decl
        .secrets
        .iter()
        .map(|d| StoredSecret {
            value: d.value().to_string(),
            expires_at: d.expires_at_ms(),
            retired_at: stored
                .iter()
                .find(|s| s.value == d.value())
                .and_then(|s| s.retired_at),
            origin: SecretOrigin::Config,
        })
        .collect();
    for s in stored {
        if s.origin == SecretOrigin::Rotation
            && s.is_live(now)
            && !merged.iter().any(|m| m.value == s.value)
        {
            merged.push(s.clone());
        }
    }
    merged
}

/// Creates or updates the source `decl.code`, owned by `owner`; does nothing
/// when it already holds the same values (so applying the same file twice
/// changes nothing). For the file, `enabled` follows the file only when the
/// file changed it (an operator's pause stays).
pub async fn upsert(
    pool: &Pool,
    sealer: &Sealer,
    decl: &SourceDecl,
    owner: Owner,
    write: Write,
) -> anyhow::Result<SourceId> {
    let existing = list(pool, sealer)
        .await?
        .into_iter()
        .find(|s| s.code == decl.code);
    let now = now_ms();
    let file_enabled = (owner == Owner::File).then_some(decl.enabled);
    if let Some(s) = existing {
        if write == Write::CreateOnly {
            return Err(AlreadyExists(format!("source {:?}", decl.code)).into());
        }
        let secrets = merge_secrets(decl, &s.secret_entries, now);
        let enabled = match (owner, s.owner, s.file_enabled) {
            (Owner::File, Owner::File, Some(before)) if before == decl.enabled => s.enabled,
            _ => decl.enabled,
        };
        let same = s.api_url == decl.api_url
            && s.secret_entries == secrets
            && s.scheme == decl.scheme
            && s.rate_per_second == decl.rate_limit_per_second
            && s.rate_burst == decl.rate_limit_burst
            && s.api_username == decl.api_username
            && s.api_password == decl.api_password
            && s.enabled == enabled
            && s.owner == owner
            && s.file_enabled == file_enabled;
        if !same {
            crate::store::sql::query(
                "UPDATE sources SET api_url = ?, secrets = ?, scheme = ?, rate_per_second = ?, rate_burst = ?, api_username = ?, api_password = ?,
                     enabled = ?, owner = ?, file_enabled = ?, updated_at = ? WHERE id = ?",
            )
            .bind(&decl.api_url)
            .bind(seal_secrets(sealer, &secrets)?)
            .bind(decl.scheme.as_str())
            .bind(decl.rate_limit_per_second)
            .bind(decl.rate_limit_burst.map(i64::from))
            .bind(&decl.api_username)
            .bind(decl.api_password.as_deref().map(|p| sealer.seal(p)))
            .bind(enabled)
            .bind(owner.as_str())
            .bind(file_enabled)
            .bind(now.max(s.updated_at + 1))
            .bind(s.id)
            .execute(pool)
            .await?;
        }
        return Ok(s.id);
    }
    let secrets = merge_secrets(decl, &[], now);
    let id = crate::store::sql::query(
        "INSERT INTO sources (code, api_url, secrets, scheme, rate_per_second, rate_burst, api_username, api_password, enabled, owner, file_enabled, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&decl.code)
    .bind(&decl.api_url)
    .bind(seal_secrets(sealer, &secrets)?)
    .bind(decl.scheme.as_str())
    .bind(decl.rate_limit_per_second)
    .bind(decl.rate_limit_burst.map(i64::from))
    .bind(&decl.api_username)
    .bind(decl.api_password.as_deref().map(|p| sealer.seal(p)))
    .bind(decl.enabled)
    .bind(owner.as_str())
    .bind(file_enabled)
    .bind(now)
    .bind(now)
    .fetch_one(pool)
    .await
    .map_err(|e| match e.as_database_error() {
        // Created by someone else since the look-up.
        Some(d) if d.is_unique_violation() => {
            anyhow::Error::from(AlreadyExists(format!("source {:?}", decl.code)))
        }
        _ => e.into(),
    })?
    .get("id");
    Ok(id)
}

/// What a rotation did.
#[derive(Debug, Clone, Serialize)]
pub struct Rotation {
    pub source: String,
    /// When the secrets in use before the rotation stop validating (ms).
    pub previous_expire_at: i64,
    /// How many of them there were.
    pub previous: usize,
}

/// Adds `new_secret` to the source `code` and sets every other live secret to
/// expire at `previous_expire_at` (or earlier, if it already did). Expired
/// rotation secrets are dropped. Running services pick it up within seconds.
pub async fn rotate_secret(
    pool: &Pool,
    sealer: &Sealer,
    code: &str,
    new_secret: &str,
    previous_expire_at: i64,
) -> anyhow::Result<Rotation> {
    let source = list(pool, sealer)
        .await?
        .into_iter()
        .find(|s| s.code == code)
        .with_context(|| format!("no source {code:?}"))?;
    crate::config::check_secret(source.scheme, new_secret, "the new secret")?;
    let now = now_ms();
    anyhow::ensure!(
        !source.secrets.iter().any(|s| s == new_secret),
        "source {code:?} already has this secret"
    );
    let mut secrets: Vec<StoredSecret> = source
        .secret_entries
        .into_iter()
        .filter(|s| s.is_live(now) || s.origin == SecretOrigin::Config)
        .collect();
    let mut previous = 0;
    for s in secrets.iter_mut().filter(|s| s.is_live(now)) {
        s.retired_at = Some(
            s.retired_at
                .map_or(previous_expire_at, |t| t.min(previous_expire_at)),
        );
        previous += 1;
    }
    secrets.push(StoredSecret {
        value: new_secret.to_string(),
        expires_at: None,
        retired_at: None,
        origin: SecretOrigin::Rotation,
    });
    crate::store::sql::query("UPDATE sources SET secrets = ?, updated_at = ? WHERE id = ?")
        .bind(seal_secrets(sealer, &secrets)?)
        .bind(now.max(source.updated_at + 1))
        .bind(source.id)
        .execute(pool)
        .await?;
    Ok(Rotation {
        source: code.to_string(),
        previous_expire_at,
        previous,
    })
}

/// A new random secret for `scheme`: 32 bytes, hex for Recoco (whose admin
/// takes a string), `whsec_` + base64 for Standard Webhooks.
pub fn generate_secret(scheme: Scheme) -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    match scheme {
        Scheme::Recoco => hex::encode(bytes),
        Scheme::StandardWebhooks => format!(
            "{}{}",
            crate::intake::standard_webhooks::SECRET_PREFIX,
            base64::engine::general_purpose::STANDARD.encode(bytes)
        ),
    }
}

/// Enables or disables a source; false when no such source exists.
pub async fn set_enabled(pool: &Pool, code: &str, enabled: bool) -> anyhow::Result<bool> {
    let done = crate::store::sql::query(
        "UPDATE sources SET enabled = ?, updated_at = ? WHERE code = ? AND deleted_at IS NULL",
    )
    .bind(enabled)
    .bind(now_ms())
    .bind(code)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes a source: it accepts no more webhooks; its events stay (under the
/// row, renamed so that the code is free again). The caller checks that no
/// connection uses it.
pub async fn delete(pool: &Pool, id: SourceId) -> anyhow::Result<()> {
    crate::store::sql::query(
        "UPDATE sources SET deleted_at = ?1, enabled = FALSE, code = code || '~deleted~' || id,
             updated_at = CASE WHEN ?1 > updated_at THEN ?1 ELSE updated_at + 1 END WHERE id = ?2",
    )
    .bind(now_ms())
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// The declaration that gives back `source` as stored (its file secrets with
/// their declared expiry; rotations are kept by [`upsert`] anyway).
pub fn declaration_of(source: &Source) -> SourceDecl {
    use crate::config::{SecretDecl, SecretEntry};
    SourceDecl {
        code: source.code.clone(),
        api_url: source.api_url.clone(),
        secrets: source
            .secret_entries
            .iter()
            .filter(|s| s.origin == SecretOrigin::Config)
            .map(|s| match s.expires_at {
                None => SecretDecl::Plain(s.value.clone()),
                Some(t) => SecretDecl::Entry(SecretEntry {
                    value: s.value.clone(),
                    expires_at: chrono::DateTime::from_timestamp_millis(t),
                }),
            })
            .collect(),
        scheme: source.scheme,
        rate_limit_per_second: source.rate_per_second,
        rate_limit_burst: source.rate_burst,
        api_username: source.api_username.clone(),
        api_password: source.api_password.clone(),
        enabled: source.enabled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SecretDecl, SecretEntry};

    fn decl(secrets: Vec<SecretDecl>) -> SourceDecl {
        SourceDecl {
            code: "p".into(),
            api_url: None,
            secrets,
            scheme: Scheme::Recoco,
            rate_limit_per_second: None,
            rate_limit_burst: None,
            api_username: None,
            api_password: None,
            enabled: true,
        }
    }

    fn stored(
        value: &str,
        expires_at: Option<i64>,
        retired_at: Option<i64>,
        origin: SecretOrigin,
    ) -> StoredSecret {
        StoredSecret {
            value: value.into(),
            expires_at,
            retired_at,
            origin,
        }
    }

    #[test]
    fn a_restart_keeps_what_a_rotation_did() {
        let file = decl(vec![
            SecretDecl::Plain("file-secret-00001".into()),
            SecretDecl::Entry(SecretEntry {
                value: "file-secret-00002".into(),
                expires_at: Some(chrono::DateTime::from_timestamp_millis(9_000).unwrap()),
            }),
        ]);
        use SecretOrigin::{Config, Rotation};
        let before = vec![
            // A rotation retired the file's secrets at 5000 (the file's own
            // expiry of the second was 20000 then, 9000 now)...
            stored("file-secret-00001", None, Some(5_000), Config),
            stored("file-secret-00002", Some(20_000), Some(5_000), Config),
            // ...and added a secret of its own, kept while live; an expired one is dropped.
            stored("rotated-secret-01", None, None, Rotation),
            stored("rotated-secret-00", None, Some(500), Rotation),
        ];
        let merged = merge_secrets(&file, &before, 1_000);
        assert_eq!(
            merged,
            vec![
                stored("file-secret-00001", None, Some(5_000), Config),
                stored("file-secret-00002", Some(9_000), Some(5_000), Config),
                stored("rotated-secret-01", None, None, Rotation),
            ]
        );
        assert_eq!(merged[1].effective_expiry(), Some(5_000));
        assert!(merged[0].is_live(4_999) && !merged[0].is_live(5_000));
        // Applying it again changes nothing.
        assert_eq!(merge_secrets(&file, &merged, 1_000), merged);
    }

    #[test]
    fn generated_secrets_are_long_and_of_the_scheme() {
        let r = generate_secret(Scheme::Recoco);
        assert_eq!(r.len(), 64);
        assert_ne!(r, generate_secret(Scheme::Recoco));
        let sw = generate_secret(Scheme::StandardWebhooks);
        assert_eq!(Scheme::StandardWebhooks.signing_key(&sw).unwrap().len(), 32);
    }
}
