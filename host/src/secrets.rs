//! Secrets at rest and in text: sealing with XChaCha20-Poly1305 under a key the
//! operator provides (or one generated once on disk), and scrubbing known secret
//! values out of anything we log, record or answer.

use std::path::Path;

use anyhow::{bail, Context as _};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

mod rekey;
pub use rekey::{open_checked, rekey, reseal, KeySource, Rekeyed};

const SEALED_PREFIX: &str = "sealed:v1:";
const NONCE_LEN: usize = 24;
/// What a secret is replaced with in logs, errors and API answers.
pub const REDACTED: &str = "[redacted]";
/// Shorter values are not scrubbed: they would mangle ordinary text.
const MIN_SCRUB_LEN: usize = 4;

/// Seals and opens stored secrets.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl Sealer {
    pub fn from_key(key: &[u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// Uses `hex_key` when given, else reads `key_file`, creating it (0600) with a
    /// random key the first time.
    pub fn load(hex_key: Option<&str>, key_file: &Path) -> anyhow::Result<Self> {
        let bytes = match hex_key {
            Some(hex_key) => hex::decode(hex_key.trim()).context("secret_key is not hex")?,
            None if key_file.exists() => {
                let text = std::fs::read_to_string(key_file)
                    .with_context(|| format!("cannot read {}", key_file.display()))?;
                hex::decode(text.trim())
                    .with_context(|| format!("{} is not hex", key_file.display()))?
            }
            None => {
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                write_private(key_file, &hex::encode(key))?;
                tracing::info!(path = %key_file.display(), "generated the key that encrypts secrets at rest");
                key.to_vec()
            }
        };
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("the secret key must be 32 bytes (64 hex characters)"))?;
        Ok(Self::from_key(&key))
    }

    pub fn seal(&self, plain: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), plain.as_bytes())
            .expect("XChaCha20-Poly1305 encryption does not fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        format!(
            "{SEALED_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        )
    }

    pub fn open(&self, sealed: &str) -> anyhow::Result<String> {
        let Some(b64) = sealed.strip_prefix(SEALED_PREFIX) else {
            bail!("value is not sealed");
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .context("sealed value is not base64")?;
        if raw.len() < NONCE_LEN {
            bail!("sealed value is truncated");
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map_err(|_| anyhow::anyhow!("cannot decrypt a stored secret: wrong secret key?"))?;
        String::from_utf8(plain).context("decrypted secret is not UTF-8")
    }
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::store::private::create_private_dir(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

/// Known secret values, to be removed from free text.
#[derive(Debug, Clone, Default)]
pub struct Scrubber {
    secrets: Vec<String>,
}

impl Scrubber {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .filter(|s| s.len() >= MIN_SCRUB_LEN)
            .collect();
        // Longest first, so a secret containing another is removed whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    pub fn extend(&self, more: &Scrubber) -> Scrubber {
        Scrubber::new(self.secrets.iter().chain(&more.secrets).cloned())
    }

    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }
}

/// Paths of the properties a JSON schema marks `"writeOnly": true` (secrets),
/// following nested `properties`.
pub fn secret_paths(schema: &serde_json::Value) -> Vec<Vec<String>> {
    fn walk(schema: &serde_json::Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        let Some(props) = schema.get("properties").and_then(|p| p.as_object()) else {
            return;
        };
        for (name, prop) in props {
            prefix.push(name.clone());
            if prop.get("writeOnly").and_then(|w| w.as_bool()) == Some(true) {
                out.push(prefix.clone());
            } else {
                walk(prop, prefix, out);
            }
            prefix.pop();
        }
    }
    let mut out = Vec::new();
    walk(schema, &mut Vec::new(), &mut out);
    out
}

/// The secret string values of `config` according to `schema`.
pub fn secret_values(config: &serde_json::Value, schema: &serde_json::Value) -> Vec<String> {
    secret_paths(schema)
        .iter()
        .filter_map(|path| path.iter().try_fold(config, |v, key| v.get(key)))
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// `config` with every secret replaced by [`REDACTED`]. Without a schema (the
/// plugin is not loaded) every string is redacted, to be safe.
pub fn redact_config(
    config: &serde_json::Value,
    schema: Option<&serde_json::Value>,
) -> serde_json::Value {
    fn redact_all(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => *s = REDACTED.into(),
            serde_json::Value::Array(items) => items.iter_mut().for_each(redact_all),
            serde_json::Value::Object(map) => map.values_mut().for_each(redact_all),
            _ => {}
        }
    }
    let mut out = config.clone();
    match schema {
        None => redact_all(&mut out),
        Some(schema) => {
            for path in secret_paths(schema) {
                let mut cursor = Some(&mut out);
                for key in &path {
                    cursor = cursor.and_then(|v| v.get_mut(key));
                }
                if let Some(v) = cursor {
                    *v = serde_json::Value::String(REDACTED.into());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seal_round_trip_and_wrong_key() {
        let a = Sealer::from_key(&[7; 32]);
        let sealed = a.seal("hunter2-secret");
        assert!(sealed.starts_with(SEALED_PREFIX));
        assert!(!sealed.contains("hunter2"));
        assert_eq!(a.open(&sealed).unwrap(), "hunter2-secret");
        assert_ne!(a.seal("x"), a.seal("x"), "random nonce");
        let b = Sealer::from_key(&[8; 32]);
        let err = b.open(&sealed).unwrap_err().to_string();
        assert!(err.contains("wrong secret key") && !err.contains("hunter2"));
    }

    #[test]
    fn key_file_is_created_once() {
        let dir = std::env::temp_dir().join(format!("rs-key-{}", uuid::Uuid::new_v4()));
        let path = dir.join("secret.key");
        let sealed = Sealer::load(None, &path).unwrap().seal("v");
        assert_eq!(
            Sealer::load(None, &path).unwrap().open(&sealed).unwrap(),
            "v"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn scrubber_removes_every_occurrence() {
        let s = Scrubber::new([
            "topsecret".to_string(),
            "abc".to_string(),
            "topsecret-long".to_string(),
        ]);
        assert_eq!(
            s.scrub("a topsecret-long and topsecret, abc"),
            "a [redacted] and [redacted], abc"
        );
    }

    #[test]
    fn schema_driven_redaction() {
        let schema = json!({"properties": {
            "url": {"type": "string"},
            "secret": {"type": "string", "writeOnly": true},
            "auth": {"properties": {"key": {"type": "string", "writeOnly": true}}}
        }});
        let config = json!({"url": "https://x", "secret": "s1-value", "auth": {"key": "k1-value"}});
        assert_eq!(
            secret_values(&config, &schema),
            vec!["k1-value", "s1-value"]
        );
        let shown = redact_config(&config, Some(&schema));
        assert_eq!(
            shown,
            json!({"url": "https://x", "secret": REDACTED, "auth": {"key": REDACTED}})
        );
        assert_eq!(redact_config(&config, None)["url"], REDACTED);
    }
}
