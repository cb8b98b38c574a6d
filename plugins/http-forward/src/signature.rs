//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): the
//! `webhook-signature` header value for a message id, a timestamp and a body.
//! Owns the secret's encoding; not the headers or the sending.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use recoco_connector_sdk::Error;
use sha2::Sha256;

/// Prefix of secrets in the Standard Webhooks format; the rest is base64.
pub const WHSEC_PREFIX: &str = "whsec_";

/// `v1,<base64(HMAC-SHA256(key, "{msg_id}.{timestamp}.{body}"))>`.
///
/// The key is the base64-decoded rest of a `whsec_…` secret, as the spec
/// defines it, or the UTF-8 bytes of any other secret (for receivers that just
/// configure a shared string).
pub fn sign(secret: &str, msg_id: &str, timestamp: u64, body: &[u8]) -> Result<String, Error> {
    let key = key(secret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC accepts keys of any length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

fn key(secret: &str) -> Result<Vec<u8>, Error> {
    match secret.strip_prefix(WHSEC_PREFIX) {
        // The error must not quote the secret.
        Some(encoded) => STANDARD.decode(encoded).map_err(|_| {
            Error::permanent(format!(
                "the connection's `secret` starts with `{WHSEC_PREFIX}` but the rest is not base64"
            ))
        }),
        None => Ok(secret.as_bytes().to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_reference_vector() {
        let signature = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn other_secrets_are_used_as_utf8_bytes() {
        // Expected values computed with Python's hmac module.
        let body = br#"{"a":1}"#;
        assert_eq!(
            sign("demo-webhook-secret-42", "evt_01", 1767261600, body).unwrap(),
            "v1,8nNlOAXSGPV5wnK9AUHy/qhjfrb93wBEM4+DHiGDnBI="
        );
        assert_eq!(
            sign("sécret", "evt_01", 1767261600, body).unwrap(),
            "v1,VP8pn/bJUoTX20l6Qg+nDaj4ZLBJK03I+Ev23LOSOb8="
        );
    }

    #[test]
    fn a_bad_whsec_secret_is_a_permanent_error_that_does_not_leak_it() {
        let err = sign("whsec_not base64!", "evt_01", 1, b"{}").unwrap_err();
        assert!(!err.is_retryable());
        assert!(!err.message().contains("not base64!"), "{err}");
    }
}
