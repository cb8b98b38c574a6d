//! Recoco's webhook signature: lowercase hex HMAC-SHA256 over
//! `"{timestamp}:{raw body}"`, one per secret, comma-separated in
//! `Django-Webhook-Signature-v1`. Valid when any signature matches any secret
//! (rotation), compared in constant time, and when the timestamp is inside the
//! tolerance window (Recoco re-signs every retry; replays inside the window
//! are caught by `intake::dedup`).
//!
//! Self-contained (no `crate::` paths): the fuzz crate compiles this file.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const SIGNATURE_HEADER: &str = "django-webhook-signature-v1";
pub const TIMESTAMP_HEADER: &str = "django-webhook-request-timestamp";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("Missing Django-Webhook-Signature-v1 header")]
    MissingSignature,
    #[error("Missing or malformed Django-Webhook-Request-Timestamp header")]
    BadTimestamp,
    #[error("Invalid signature")]
    Mismatch,
    #[error(
        "Stale timestamp: {skew_secs} s away from the server clock (tolerance {tolerance_secs} s)"
    )]
    Stale { skew_secs: i64, tolerance_secs: u64 },
}

/// `hex(HMAC-SHA256(secret, "{timestamp}:{body}"))`.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    hex::encode(mac(secret.as_bytes(), timestamp, body))
}

/// Whether any provided signature equals any expected MAC. Every pair is
/// compared in constant time (lengths are not secret), so the answer takes
/// the same time whichever secret or signature matched.
pub(crate) fn any_matches(provided: &[Vec<u8>], expected: impl Iterator<Item = [u8; 32]>) -> bool {
    let mut matched = subtle::Choice::from(0u8);
    for expected in expected {
        for candidate in provided {
            if candidate.len() == expected.len() {
                matched |= candidate.as_slice().ct_eq(&expected);
            }
        }
    }
    bool::from(matched)
}

fn mac(key: &[u8], timestamp: &str, body: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// Checks a request against the source's secrets (their bytes); `now_secs` is
/// our clock.
pub fn verify<K: AsRef<[u8]>>(
    secrets: &[K],
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now_secs: i64,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let signatures = signatures
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(SignatureError::MissingSignature)?;
    let timestamp = timestamp
        .map(str::trim)
        .ok_or(SignatureError::BadTimestamp)?;
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let provided: Vec<Vec<u8>> = signatures
        .split(',')
        .filter_map(|s| hex::decode(s.trim()).ok())
        .collect();
    let expected = secrets
        .iter()
        .map(|secret| mac(secret.as_ref(), timestamp, body));
    if !any_matches(&provided, expected) {
        return Err(SignatureError::Mismatch);
    }
    let skew = now_secs.saturating_sub(ts);
    if skew.unsigned_abs() > tolerance.as_secs() {
        return Err(SignatureError::Stale {
            skew_secs: skew,
            tolerance_secs: tolerance.as_secs(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The worked example of the Recoco webhook reference (fixture bytes, 327 bytes).
    const BODY: &str = r#"{"topic": "tasks.Task/update", "object": {"id": 4242, "status": 1, "resource": {"id": 87, "title": "R\u00e9nover l'\u00e9cole", "subtitle": "Aide \u00e0 la r\u00e9novation", "tags": ["les-communs", "batiment"], "status": 2}, "project": 1312}, "object_type": "tasks.Task", "webhook_uuid": "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e"}"#;
    const SIG1: &str = "a7021c4956b79921e808b38786c8120d341eec8bbd6cdc2959c977818be50cdf";
    const SIG2: &str = "c49820a9d8a80a2b153bff5c1e9798aa2aeb9bba42188ed67100318a9a9670f7";
    const TS: i64 = 1767261600;
    const FIVE_MIN: Duration = Duration::from_secs(300);

    fn secrets(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn reference_example() {
        assert_eq!(BODY.len(), 327);
        assert_eq!(
            sign("demo-webhook-secret-42", "1767261600", BODY.as_bytes()),
            SIG1
        );
        assert_eq!(
            sign("rotated-secret-0002", "1767261600", BODY.as_bytes()),
            SIG2
        );
        let ok = verify(
            &secrets(&["demo-webhook-secret-42"]),
            Some("1767261600"),
            Some(SIG1),
            BODY.as_bytes(),
            TS,
            FIVE_MIN,
        );
        assert_eq!(ok, Ok(()));
    }

    #[test]
    fn any_signature_matching_any_secret() {
        let both = format!("{SIG1},{SIG2}");
        // Only the rotated secret configured: the second signature matches.
        assert!(verify(
            &secrets(&["rotated-secret-0002"]),
            Some("1767261600"),
            Some(&both),
            BODY.as_bytes(),
            TS,
            FIVE_MIN
        )
        .is_ok());
        // Two secrets configured, one signature sent.
        assert!(verify(
            &secrets(&["nope-nope-nope", "demo-webhook-secret-42"]),
            Some("1767261600"),
            Some(SIG1),
            BODY.as_bytes(),
            TS,
            FIVE_MIN
        )
        .is_ok());
    }

    #[test]
    fn one_changed_byte_fails() {
        let mut body = BODY.as_bytes().to_vec();
        body[10] ^= 1;
        assert_eq!(
            verify(
                &secrets(&["demo-webhook-secret-42"]),
                Some("1767261600"),
                Some(SIG1),
                &body,
                TS,
                FIVE_MIN
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_or_garbage_headers() {
        let s = secrets(&["demo-webhook-secret-42"]);
        assert_eq!(
            verify(&s, Some("1767261600"), None, BODY.as_bytes(), TS, FIVE_MIN),
            Err(SignatureError::MissingSignature)
        );
        assert_eq!(
            verify(
                &s,
                Some("1767261600"),
                Some(""),
                BODY.as_bytes(),
                TS,
                FIVE_MIN
            ),
            Err(SignatureError::MissingSignature)
        );
        assert_eq!(
            verify(&s, None, Some(SIG1), BODY.as_bytes(), TS, FIVE_MIN),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            verify(&s, Some("soon"), Some(SIG1), BODY.as_bytes(), TS, FIVE_MIN),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            verify(
                &s,
                Some("1767261600"),
                Some("zz,12"),
                BODY.as_bytes(),
                TS,
                FIVE_MIN
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn stale_timestamps_are_refused_both_ways() {
        let s = secrets(&["demo-webhook-secret-42"]);
        assert!(verify(
            &s,
            Some("1767261600"),
            Some(SIG1),
            BODY.as_bytes(),
            TS + 299,
            FIVE_MIN
        )
        .is_ok());
        assert!(matches!(
            verify(
                &s,
                Some("1767261600"),
                Some(SIG1),
                BODY.as_bytes(),
                TS + 301,
                FIVE_MIN
            ),
            Err(SignatureError::Stale { skew_secs: 301, .. })
        ));
        assert!(verify(
            &s,
            Some("1767261600"),
            Some(SIG1),
            BODY.as_bytes(),
            TS - 301,
            FIVE_MIN
        )
        .is_err());
    }
}
