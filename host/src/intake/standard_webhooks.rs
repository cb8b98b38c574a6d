//! The Standard Webhooks signature (<https://www.standardwebhooks.com>), the
//! second inbound scheme: `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature`, a space-separated list of `v1,<base64 HMAC-SHA256>`
//! over `"{id}.{timestamp}.{body}"`. Secrets are `whsec_<base64 key>`; any
//! other string is used as its UTF-8 bytes (as the http-forward connector
//! signs). Valid when any `v1` signature matches any key, compared in constant
//! time, and the timestamp is inside the tolerance.
//!
//! Self-contained (no `crate::` paths): the fuzz crate compiles this file.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// Prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("Missing webhook-id header")]
    MissingId,
    #[error("Missing webhook-signature header")]
    MissingSignature,
    #[error("Missing or malformed webhook-timestamp header")]
    BadTimestamp,
    #[error("Invalid signature")]
    Mismatch,
    #[error(
        "Stale timestamp: {skew_secs} s away from the server clock (tolerance {tolerance_secs} s)"
    )]
    Stale { skew_secs: i64, tolerance_secs: u64 },
}

/// The HMAC key of a secret: the base64 after `whsec_`, else the string's bytes.
pub fn key_from_secret(secret: &str) -> Result<Vec<u8>, String> {
    match secret.strip_prefix(SECRET_PREFIX) {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| format!("the part after `{SECRET_PREFIX}` is not base64 ({e})")),
        None => Ok(secret.as_bytes().to_vec()),
    }
}

fn mac(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// `v1,<base64>` for one key.
pub fn sign(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac(key, id, timestamp, body))
    )
}

/// Checks a request against `keys`; `now_secs` is our clock.
pub fn verify<K: AsRef<[u8]>>(
    keys: &[K],
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now_secs: i64,
    tolerance: Duration,
) -> Result<(), Error> {
    let id = id
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(Error::MissingId)?;
    let signatures = signatures
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(Error::MissingSignature)?;
    let timestamp = timestamp.map(str::trim).ok_or(Error::BadTimestamp)?;
    let ts: i64 = timestamp.parse().map_err(|_| Error::BadTimestamp)?;
    // Other versions (`v1a,` asymmetric, future ones) are skipped, not errors.
    let provided: Vec<Vec<u8>> = signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .collect();
    let expected = keys
        .iter()
        .map(|key| mac(key.as_ref(), id, timestamp, body));
    if !super::signature::any_matches(&provided, expected) {
        return Err(Error::Mismatch);
    }
    let skew = now_secs.saturating_sub(ts);
    if skew.unsigned_abs() > tolerance.as_secs() {
        return Err(Error::Stale {
            skew_secs: skew,
            tolerance_secs: tolerance.as_secs(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The specification's published test vector (its reference libraries'
    // `TestWebhookSign`, the same in every language).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const PAYLOAD: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    /// A well-formed signature that matches nothing (from the same test suite).
    const WRONG: &str = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
    const FIVE_MIN: Duration = Duration::from_secs(300);

    fn key() -> Vec<u8> {
        key_from_secret(SECRET).unwrap()
    }

    fn check(sigs: &str, now: i64) -> Result<(), Error> {
        verify(
            &[key()],
            Some(MSG_ID),
            Some(&TS.to_string()),
            Some(sigs),
            PAYLOAD,
            now,
            FIVE_MIN,
        )
    }

    #[test]
    fn the_published_vector_signs_and_verifies() {
        assert_eq!(key().len(), 24);
        assert_eq!(sign(&key(), MSG_ID, &TS.to_string(), PAYLOAD), EXPECTED);
        assert_eq!(check(EXPECTED, TS), Ok(()));
        // The prefix is optional in the reference libraries; without it our
        // convention is "the string's bytes", so the base64 must be decoded
        // only when prefixed: the bare string is another key.
        assert_ne!(
            key_from_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap(),
            key()
        );
    }

    #[test]
    fn the_published_negative_cases() {
        assert_eq!(check(WRONG, TS), Err(Error::Mismatch));
        // Several signatures, other versions among them: the valid one counts.
        let multi = format!("{WRONG} v2,{} {EXPECTED} {WRONG}", &WRONG[3..]);
        assert_eq!(check(&multi, TS), Ok(()));
        // A v2 signature with the right bytes is not a v1 signature.
        assert_eq!(
            check(&format!("v2,{}", &EXPECTED[3..]), TS),
            Err(Error::Mismatch)
        );
        // Too old, too new (tolerance 5 min).
        assert!(matches!(
            check(EXPECTED, TS + 301),
            Err(Error::Stale { .. })
        ));
        assert!(matches!(
            check(EXPECTED, TS - 301),
            Err(Error::Stale { .. })
        ));
        assert_eq!(check(EXPECTED, TS + 300), Ok(()));
        // Missing headers.
        let k = [key()];
        let ts = TS.to_string();
        assert_eq!(
            verify(&k, None, Some(&ts), Some(EXPECTED), PAYLOAD, TS, FIVE_MIN),
            Err(Error::MissingId)
        );
        assert_eq!(
            verify(
                &k,
                Some(MSG_ID),
                None,
                Some(EXPECTED),
                PAYLOAD,
                TS,
                FIVE_MIN
            ),
            Err(Error::BadTimestamp)
        );
        assert_eq!(
            verify(&k, Some(MSG_ID), Some(&ts), None, PAYLOAD, TS, FIVE_MIN),
            Err(Error::MissingSignature)
        );
        // The id is signed: another id fails.
        assert_eq!(
            verify(
                &k,
                Some("msg_other"),
                Some(&ts),
                Some(EXPECTED),
                PAYLOAD,
                TS,
                FIVE_MIN
            ),
            Err(Error::Mismatch)
        );
        // Garbage never panics.
        assert_eq!(check("v1,%%% v1, ,,, v1", TS), Err(Error::Mismatch));
        assert_eq!(
            verify(
                &k,
                Some(MSG_ID),
                Some("-9223372036854775808"),
                Some(EXPECTED),
                PAYLOAD,
                i64::MAX,
                FIVE_MIN
            ),
            Err(Error::Mismatch)
        );
    }

    #[test]
    fn secrets_decode_or_say_why() {
        assert!(key_from_secret("whsec_***").unwrap_err().contains("base64"));
        assert_eq!(key_from_secret("plain-secret").unwrap(), b"plain-secret");
    }
}
