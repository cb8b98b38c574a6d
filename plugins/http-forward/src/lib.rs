//! `http-forward`: POSTs each Recoco event of a connection to an HTTP endpoint,
//! signed the Standard Webhooks way, so any web application can react to Recoco
//! without speaking django-webhook's signature scheme.
//!
//! The request body is JSON:
//!
//! ```json
//! {"id": "evt_…", "source": "portal-code", "topic": "projects.Project/update",
//!  "object_type": "projects.Project", "action": "update", "object_id": "1312",
//!  "received_at": "2026-01-01T10:00:00Z", "payload": {"topic": …, "object": …,
//!  "object_type": …, "webhook_uuid": …}}
//! ```
//!
//! where `payload` is the webhook body Recoco sent, byte for byte. Headers:
//! `webhook-id` (the event id, stable across retries: receivers deduplicate on
//! it), `webhook-timestamp` (Unix seconds at sending), `webhook-signature`
//! (`v1,<base64 HMAC-SHA256>`, see [`signature`]) and `content-type`.
//!
//! A 2xx answer succeeds; 429 and 5xx are retried (honouring `Retry-After`), as
//! are timeouts and connection failures; other statuses fail the job with the
//! status and the start of the answer.

pub mod filter;
pub mod signature;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use recoco_connector_sdk::http::Request;
use recoco_connector_sdk::{Connector, Context, Error, Event, Manifest};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A connection's configuration (see [`config_schema`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Endpoint receiving the events.
    pub url: String,
    /// Signing secret: `whsec_<base64>` or any string.
    pub secret: String,
    /// Events to forward; `None` forwards every event (see [`filter::matches`]).
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// Per-request time limit; the host's default when absent.
    #[serde(default)]
    pub timeout_ms: Option<u32>,
}

/// The JSON Schema of [`Config`].
pub fn config_schema() -> serde_json::Value {
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "http-forward connection",
        "type": "object",
        "properties": {
            "url": {
                "description": "Endpoint that receives one signed POST per event.",
                "type": "string",
                "format": "uri",
                // `format` is only an annotation in draft 2020-12; this is checked.
                "pattern": "^https?://"
            },
            "secret": {
                "description": "Signing secret: `whsec_` followed by base64 (Standard Webhooks), or any other string, used as its UTF-8 bytes.",
                "type": "string",
                "minLength": 1,
                "writeOnly": true
            },
            "events": {
                "description": "Events to forward: object types (`projects.Project`), topics (`tasks.Task/update`) or prefixes ending in `*` (`projects.*`). Absent: every event.",
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "minItems": 1
            },
            "timeout_ms": {
                "description": "Time limit of one request, in milliseconds (the host caps it).",
                "type": "integer",
                "minimum": 1,
                "maximum": 600000
            }
        },
        "required": ["url", "secret"],
        "additionalProperties": false
    })
}

/// The body sent for an event.
#[derive(Serialize)]
struct Forwarded<'a> {
    id: &'a str,
    source: &'a str,
    topic: &'a str,
    object_type: &'a str,
    action: &'a str,
    object_id: Option<&'a str>,
    received_at: &'a str,
    payload: &'a RawValue,
}

/// Builds the signed request for `event`, at Unix time `timestamp`.
pub fn build_request(config: &Config, event: &Event, timestamp: u64) -> Result<Request, Error> {
    let payload = serde_json::from_str::<&RawValue>(&event.payload).map_err(|err| {
        Error::permanent(format!(
            "event {} has a body that is not JSON: {err}",
            event.id
        ))
    })?;
    let body = serde_json::to_vec(&Forwarded {
        id: &event.id,
        source: &event.source,
        topic: &event.topic,
        object_type: &event.object_type,
        action: &event.action,
        object_id: event.object_id.as_deref(),
        received_at: &event.received_at,
        payload,
    })
    .map_err(|err| Error::permanent(format!("cannot serialize event {}: {err}", event.id)))?;
    let signature = signature::sign(&config.secret, &event.id, timestamp, &body)?;

    let mut request = Request::post(&config.url)
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("recoco-sync-http-forward/", env!("CARGO_PKG_VERSION")),
        )
        .header("webhook-id", &event.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body);
    if let Some(ms) = config.timeout_ms {
        request = request.timeout(Duration::from_millis(ms.into()));
    }
    Ok(request)
}

/// The connector.
pub struct HttpForward;

impl Connector for HttpForward {
    fn manifest() -> Manifest {
        Manifest::new("http-forward", env!("CARGO_PKG_VERSION"))
            .description(
                "Forwards each Recoco event to an HTTP endpoint as a JSON POST signed the \
                 Standard Webhooks way (webhook-id, webhook-timestamp, webhook-signature).",
            )
            .subscribe("*")
            .allow_host("config:/url")
            .config_schema(config_schema())
    }

    fn handle_event(ctx: &Context, event: &Event) -> Result<String, Error> {
        let config: Config = ctx.config()?;
        if !filter::matches(config.events.as_deref(), &event.object_type, &event.topic) {
            return Ok(format!(
                "skipped: {} is not in the connection's events",
                event.topic
            ));
        }
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| Error::retryable("the clock is before 1970"))?
            .as_secs();
        let request = build_request(&config, event, timestamp)?;
        let what = request.describe();
        let response = request.send()?.ensure_success(&what)?;
        Ok(format!(
            "forwarded: {what} answered HTTP {}",
            response.status
        ))
    }
}

recoco_connector_sdk::export_connector!(HttpForward);

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"{"topic": "tasks.Task/update", "object": {"id": 4242, "status": 1, "resource": null, "project": 1312}, "object_type": "tasks.Task", "webhook_uuid": "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e"}"#;

    fn config(secret: &str) -> Config {
        Config {
            url: "https://hooks.example.org/recoco?token=t".into(),
            secret: secret.into(),
            events: None,
            timeout_ms: Some(2500),
        }
    }

    fn event() -> Event {
        let mut event = Event::from_webhook_body("evt_01", BODY).unwrap();
        event.source = "portail".into();
        event.received_at = "2026-01-01T10:00:00Z".into();
        event
    }

    #[test]
    fn signs_the_exact_body_sent() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let request = build_request(&config(secret), &event(), 1767261600).unwrap();
        assert_eq!(request.method(), "POST");
        assert_eq!(request.url(), "https://hooks.example.org/recoco?token=t");
        assert_eq!(request.header_value("webhook-id"), Some("evt_01"));
        assert_eq!(
            request.header_value("webhook-timestamp"),
            Some("1767261600")
        );
        assert_eq!(
            request.header_value("content-type"),
            Some("application/json")
        );
        let body = request.body_bytes().unwrap();
        let expected = signature::sign(secret, "evt_01", 1767261600, body).unwrap();
        assert_eq!(
            request.header_value("webhook-signature"),
            Some(expected.as_str())
        );
    }

    #[test]
    fn the_body_wraps_the_envelope_byte_for_byte() {
        let request = build_request(&config("s3cret"), &event(), 1).unwrap();
        let body = std::str::from_utf8(request.body_bytes().unwrap()).unwrap();
        assert!(body.ends_with(&format!(r#","payload":{BODY}}}"#)), "{body}");
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["id"], "evt_01");
        assert_eq!(json["source"], "portail");
        assert_eq!(json["topic"], "tasks.Task/update");
        assert_eq!(json["object_type"], "tasks.Task");
        assert_eq!(json["action"], "update");
        assert_eq!(json["object_id"], "4242");
        assert_eq!(json["received_at"], "2026-01-01T10:00:00Z");
        assert_eq!(json["payload"]["object"]["project"], 1312);
    }

    #[test]
    fn skips_events_outside_the_filter_without_sending() {
        let ctx = Context {
            config: r#"{"url": "https://x.example.org", "secret": "s", "events": ["projects.*"]}"#
                .into(),
            ..Context::default()
        };
        // Sending would panic natively: reaching the skip proves no request left.
        let summary = HttpForward::handle_event(&ctx, &event()).unwrap();
        assert_eq!(
            summary,
            "skipped: tasks.Task/update is not in the connection's events"
        );
    }

    #[test]
    fn rejects_unknown_config_keys() {
        let ctx = Context {
            config: r#"{"url": "https://x.example.org", "secret": "s", "sekret": "t"}"#.into(),
            ..Context::default()
        };
        let err = HttpForward::handle_event(&ctx, &event()).unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.message().contains("sekret"), "{err}");
    }

    #[test]
    fn manifest_declares_the_schema() {
        let manifest = HttpForward::manifest();
        assert_eq!(manifest.name, "http-forward");
        assert_eq!(manifest.subscriptions, ["*"]);
        assert_eq!(manifest.default_allowed_hosts, ["config:/url"]);
        let schema: serde_json::Value = serde_json::from_str(&manifest.config_schema).unwrap();
        assert_eq!(schema["properties"]["secret"]["writeOnly"], true);
        assert_eq!(schema["required"], serde_json::json!(["url", "secret"]));
        assert_eq!(schema["additionalProperties"], false);
    }
}
