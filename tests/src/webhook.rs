//! Recoco's side of a webhook: the body as `json.dumps` writes it and the
//! signature headers.

use recoco_sync::intake::signature;

/// Unix time now, in seconds.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The headers Recoco sends for `body` signed with `secrets` at `timestamp`.
pub fn headers(body: &[u8], secrets: &[&str], timestamp: i64) -> Vec<(String, String)> {
    let ts = timestamp.to_string();
    let signatures: Vec<String> = secrets
        .iter()
        .map(|s| signature::sign(s, &ts, body))
        .collect();
    vec![
        ("content-type".into(), "application/json".into()),
        (signature::TIMESTAMP_HEADER.into(), ts),
        (signature::SIGNATURE_HEADER.into(), signatures.join(",")),
        (
            "django-webhook-uuid".into(),
            "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e".into(),
        ),
    ]
}

/// A Recoco envelope for `object_type`/`action` with `object`, serialised like
/// Python's `json.dumps` (`", "` and `": "` separators, ASCII only).
/// POSTs `body` signed with [`crate::service::SECRET`] to `url`, expects 200,
/// and returns the stored event's id.
pub async fn post_signed(client: &reqwest::Client, url: &str, body: &[u8]) -> String {
    let mut request = client.post(url).body(body.to_vec());
    for (k, v) in headers(body, &[crate::service::SECRET], now_secs()) {
        request = request.header(k, v);
    }
    let response = request.send().await.expect("webhook request");
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.expect("a JSON answer");
    answer["id"].as_str().expect("an event id").to_string()
}

pub fn envelope(object_type: &str, action: &str, object: serde_json::Value) -> Vec<u8> {
    let value = serde_json::json!({
        "topic": format!("{object_type}/{action}"),
        "object": object,
        "object_type": object_type,
        "webhook_uuid": "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e",
    });
    python_dumps(&value).into_bytes()
}

/// `json.dumps(value)` with default options.
pub fn python_dumps(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let mut out = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                        let mut buf = [0u16; 2];
                        for unit in c.encode_utf16(&mut buf) {
                            out.push_str(&format!("\\u{unit:04x}"));
                        }
                    }
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(python_dumps)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!(
                    "{}: {}",
                    python_dumps(&Value::String(k.clone())),
                    python_dumps(v)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
