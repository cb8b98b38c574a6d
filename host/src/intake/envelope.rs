//! The webhook body: `{topic, object, object_type, webhook_uuid}`. Parsed from the
//! verified raw bytes; key order is irrelevant, extra keys are tolerated.
//! Standard Webhooks sources send `{type, timestamp, data}` instead
//! ([`parse_standard`]).
//!
//! Self-contained (no `crate::` paths): the fuzz crate compiles this file.

use serde_json::Value;

/// What we index an event by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub topic: String,
    pub object_type: String,
    /// `create`, `update`, `delete` (after the `/` of the topic).
    pub action: Option<String>,
    /// `object.id`, as text.
    pub object_id: Option<String>,
    pub webhook_uuid: String,
}

/// Longest topic or object type kept (Recoco's are far shorter).
const MAX_NAME_LEN: usize = 128;

pub fn parse(body: &[u8]) -> Result<Envelope, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not valid JSON: {e}"))?;
    let map = value.as_object().ok_or("body must be a JSON object")?;
    let text = |key: &str| -> Result<String, String> {
        match map.get(key) {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_NAME_LEN => Ok(s.clone()),
            Some(Value::String(_)) => Err(format!(
                "`{key}` must be a non-empty string of at most {MAX_NAME_LEN} characters"
            )),
            Some(_) => Err(format!("`{key}` must be a string")),
            None => Err(format!("missing field `{key}`")),
        }
    };
    let topic = text("topic")?;
    let object_type = text("object_type")?;
    let webhook_uuid = text("webhook_uuid")?;
    let object = match map.get("object") {
        Some(Value::Object(o)) => o,
        Some(_) => return Err("`object` must be a JSON object".into()),
        None => return Err("missing field `object`".into()),
    };
    let object_id = match object.get("id") {
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let action = topic
        .split_once('/')
        .map(|(_, a)| a.to_string())
        .filter(|a| !a.is_empty());
    Ok(Envelope {
        topic,
        object_type,
        action,
        object_id,
        webhook_uuid,
    })
}

/// A Standard Webhooks payload, `{type, timestamp, data}`: `type` (e.g.
/// `invoice.paid`) is the topic, what precedes its last `.` the object type and
/// what follows it the action; `data.id` the object id. The body another
/// recoco-sync forwards (http-forward: `topic`, `object_type`, `action`,
/// `object_id`) is understood too. The `webhook-id` stands for `webhook_uuid`.
pub fn parse_standard(body: &[u8], message_id: &str) -> Result<Envelope, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not valid JSON: {e}"))?;
    let map = value.as_object().ok_or("body must be a JSON object")?;
    let name = |key: &str| -> Result<Option<String>, String> {
        match map.get(key) {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_NAME_LEN => {
                Ok(Some(s.clone()))
            }
            None | Some(Value::Null) => Ok(None),
            Some(_) => Err(format!(
                "`{key}` must be a non-empty string of at most {MAX_NAME_LEN} characters"
            )),
        }
    };
    let topic = match (name("type")?, name("topic")?) {
        (Some(t), _) | (None, Some(t)) => t,
        (None, None) => return Err("missing field `type`".into()),
    };
    let (derived_type, derived_action) = match topic.rsplit_once(['.', '/']) {
        Some((kind, action)) if !kind.is_empty() && !action.is_empty() => {
            (kind.to_string(), Some(action.to_string()))
        }
        _ => (topic.clone(), None),
    };
    let object_type = name("object_type")?.unwrap_or(derived_type);
    let action = name("action")?.or(derived_action);
    let id_of = |v: &Value| match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.chars().take(MAX_NAME_LEN).collect()),
        _ => None,
    };
    let object_id = map
        .get("data")
        .and_then(|d| d.get("id"))
        .and_then(id_of)
        .or_else(|| map.get("object_id").and_then(id_of));
    Ok(Envelope {
        topic,
        object_type,
        action,
        object_id,
        webhook_uuid: message_id.chars().take(MAX_NAME_LEN).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_standard_webhooks_payload() {
        let e = parse_standard(
            br#"{"type": "invoice.paid", "timestamp": "2026-12-01T10:00:00Z", "data": {"id": "in_1", "total": 3}}"#,
            "msg_1",
        )
        .unwrap();
        assert_eq!(
            (
                e.topic.as_str(),
                e.object_type.as_str(),
                e.action.as_deref()
            ),
            ("invoice.paid", "invoice", Some("paid"))
        );
        assert_eq!(e.object_id.as_deref(), Some("in_1"));
        assert_eq!(e.webhook_uuid, "msg_1");
        let plain = parse_standard(br#"{"type": "ping"}"#, "m").unwrap();
        assert_eq!((plain.object_type.as_str(), plain.action), ("ping", None));
        assert_eq!(
            parse_standard(br#"{"data": {}}"#, "m").unwrap_err(),
            "missing field `type`"
        );
        // What http-forward sends.
        let fwd = parse_standard(
            br#"{"id": "evt_1", "topic": "projects.Project/update", "object_type": "projects.Project", "action": "update", "object_id": "1312", "payload": {}}"#,
            "evt_1",
        )
        .unwrap();
        assert_eq!(
            (
                fwd.topic.as_str(),
                fwd.object_type.as_str(),
                fwd.action.as_deref(),
                fwd.object_id.as_deref()
            ),
            (
                "projects.Project/update",
                "projects.Project",
                Some("update"),
                Some("1312")
            )
        );
    }

    #[test]
    fn parses_the_recoco_envelope() {
        let body = br#"{"topic": "tasks.Task/update", "object": {"id": 4242, "project": 1312}, "object_type": "tasks.Task", "webhook_uuid": "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e"}"#;
        let e = parse(body).unwrap();
        assert_eq!(e.topic, "tasks.Task/update");
        assert_eq!(e.object_type, "tasks.Task");
        assert_eq!(e.action.as_deref(), Some("update"));
        assert_eq!(e.object_id.as_deref(), Some("4242"));
    }

    #[test]
    fn explains_what_is_wrong() {
        assert!(parse(b"not json").unwrap_err().contains("not valid JSON"));
        assert!(parse(b"[1]").unwrap_err().contains("JSON object"));
        let missing =
            parse(br#"{"object": {}, "object_type": "a", "webhook_uuid": "u"}"#).unwrap_err();
        assert_eq!(missing, "missing field `topic`");
        let bad_object =
            parse(br#"{"topic": "a/b", "object": 3, "object_type": "a", "webhook_uuid": "u"}"#)
                .unwrap_err();
        assert!(bad_object.contains("`object` must be"));
    }

    #[test]
    fn object_without_id_is_accepted() {
        let e = parse(
            br#"{"topic": "x.Y/delete", "object": {}, "object_type": "x.Y", "webhook_uuid": "u"}"#,
        )
        .unwrap();
        assert_eq!(e.object_id, None);
    }
}
