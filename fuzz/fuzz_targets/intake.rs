//! One input drives every intake check that reads attacker bytes: the Recoco
//! and Standard Webhooks signature checks (headers and body) and both envelope
//! parsers. Properties: nothing panics; a forged request never verifies; a
//! request signed with the key always does; parsing a body twice agrees.
//!
//! Input layout: `timestamp \n signature header \n webhook-id \n body`.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use recoco_sync_fuzz::{envelope, signature, standard_webhooks as sw};

const KEY: &[u8] = b"fuzzing-secret-0123456789";
const NOW: i64 = 1_767_261_600;
const TOLERANCE: Duration = Duration::from_secs(300);

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == b'\n');
    let ts = parts
        .next()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let sig = parts
        .next()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let id = parts
        .next()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let body = parts.next().unwrap_or_default();

    // Whatever the headers say, without the key nothing verifies...
    let forged = signature::verify(&[KEY], Some(&ts), Some(&sig), body, NOW, TOLERANCE);
    let forged_sw = sw::verify(
        &[KEY],
        Some(&id),
        Some(&ts),
        Some(&sig),
        body,
        NOW,
        TOLERANCE,
    );
    // (a fuzzer cannot guess an HMAC: a success means the check is broken)
    assert!(
        forged.is_err()
            || sig.contains(&signature::sign(
                std::str::from_utf8(KEY).unwrap(),
                ts.trim(),
                body
            ))
    );
    assert!(forged_sw.is_err() || sig.contains(&sw::sign(KEY, id.trim(), ts.trim(), body)));

    // ...and with it, everything does when the timestamp is in the window.
    let good = signature::sign(std::str::from_utf8(KEY).unwrap(), &ts, body);
    let verdict = signature::verify(&[KEY], Some(&ts), Some(&good), body, NOW, TOLERANCE);
    match ts.trim().parse::<i64>() {
        Ok(t) if ts.trim() == ts && (NOW.saturating_sub(t)).unsigned_abs() <= 300 => {
            assert_eq!(verdict, Ok(()))
        }
        _ => assert!(verdict.is_err()),
    }
    let good_sw = format!("{sig} {}", sw::sign(KEY, &id, &ts, body));
    let verdict = sw::verify(
        &[KEY],
        Some(&id),
        Some(&ts),
        Some(&good_sw),
        body,
        NOW,
        TOLERANCE,
    );
    if !id.trim().is_empty() && id.trim() == id && ts.trim() == ts && !good_sw.trim().is_empty() {
        match ts.parse::<i64>() {
            Ok(t) if (NOW.saturating_sub(t)).unsigned_abs() <= 300 => assert_eq!(verdict, Ok(())),
            _ => assert!(verdict.is_err()),
        }
    }

    // Secrets from the configuration are attacker-free, but decoding must not panic.
    let _ = sw::key_from_secret(&sig);

    // Envelopes: no panic, deterministic, bounded names.
    let a = envelope::parse(body);
    assert_eq!(a, envelope::parse(body));
    if let Ok(e) = &a {
        assert!(e.topic.len() <= 128 && e.object_type.len() <= 128);
    }
    let b = envelope::parse_standard(body, &id);
    assert_eq!(b, envelope::parse_standard(body, &id));
    if let Ok(e) = &b {
        assert!(e.topic.len() <= 128 && e.object_type.len() <= 128);
        assert!(e.webhook_uuid.chars().count() <= 128);
    }
});
