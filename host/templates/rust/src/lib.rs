//! The {{name}} connector: forwards every event it receives, as signed JSON, to one URL.
//!
//! `make` builds it into a WebAssembly component of the `connector` world
//! (wit/connector.wit) through the recoco-connector-sdk crate. The host calls the
//! three functions of [`Connector`] below; everything the connector does outside
//! its own memory goes through the host's imports (`http` here).
//!
//! The body building, the signature and the reading of the answer are plain
//! functions, unit-tested natively by `cargo test` (host imports are only called
//! in `handle_event`).

use hmac::{Hmac, Mac};
use recoco_connector_sdk::error::parse_retry_after;
use recoco_connector_sdk::http::{HttpError, Request, Response};
use recoco_connector_sdk::serde::{Deserialize, Serialize};
use recoco_connector_sdk::serde_json::{self, json, value::RawValue};
use recoco_connector_sdk::{export_connector, Connector, Context, Error, Event, Manifest};
use sha2::Sha256;

/// The header carrying `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "x-recoco-signature";

pub struct Forwarder;

/// A connection's configuration (the host has checked it against the schema).
#[derive(Debug, Deserialize)]
#[serde(crate = "recoco_connector_sdk::serde")]
pub struct Config {
    /// Where every event is POSTed.
    pub url: String,
    /// Key of the signature.
    pub secret: String,
}

impl Connector for Forwarder {
    fn manifest() -> Manifest {
        Manifest::new("{{name}}", env!("CARGO_PKG_VERSION"))
            .description("Forwards Recoco project and tag events, signed, to one URL.")
            .subscribe("projects.Project")
            .subscribe("taggit.TaggedItem")
            // Requests may only go to the host of the connection's `url`.
            .allow_host("config:/url")
            .config_schema(json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "required": ["url", "secret"],
                "properties": {
                    "url": {
                        "type": "string",
                        "format": "uri",
                        "description": "Where every event is POSTed."
                    },
                    "secret": {
                        "type": "string",
                        "writeOnly": true,
                        "minLength": 16,
                        "description": "Key of the HMAC-SHA256 signature sent in x-recoco-signature."
                    }
                },
                "additionalProperties": false
            }))
        // Tell operators who you are:
        // .author("Jane Doe <jane@example.org>")
        // .homepage("https://example.org/{{name}}")
        // .license("MIT OR Apache-2.0")
    }

    fn handle_event(ctx: &Context, event: &Event) -> Result<String, Error> {
        let config: Config = ctx.config()?;
        let body = body(event)?;
        let response = Request::post(&config.url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, signature(&config.secret, &body))
            .body(body)
            .send_raw()
            .map_err(|err| refused(&config.url, err))?;
        outcome(&event.topic, &response)
    }

    fn run_task(_ctx: &Context, name: &str, _payload: &str) -> Result<String, Error> {
        Err(Error::permanent(format!("no task named {name}")))
    }
}

export_connector!(Forwarder);

/// What is sent: the event's identity and the webhook's `object`, kept byte for
/// byte as Recoco sent it.
#[derive(Serialize)]
#[serde(crate = "recoco_connector_sdk::serde")]
struct Forwarded<'a> {
    event: &'a str,
    topic: &'a str,
    object_type: &'a str,
    object_id: Option<&'a str>,
    object: Option<&'a RawValue>,
}

/// The part of the webhook body (`{"topic","object","object_type","webhook_uuid"}`) we use.
#[derive(Deserialize)]
#[serde(crate = "recoco_connector_sdk::serde")]
struct Envelope<'a> {
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
}

/// The JSON body for `event`.
pub fn body(event: &Event) -> Result<Vec<u8>, Error> {
    let envelope: Envelope = serde_json::from_str(&event.payload).map_err(|err| {
        Error::permanent(format!("event {} is not a webhook body: {err}", event.id))
    })?;
    let forwarded = Forwarded {
        event: &event.id,
        topic: &event.topic,
        object_type: &event.object_type,
        object_id: event.object_id.as_deref(),
        object: envelope.object,
    };
    serde_json::to_vec(&forwarded).map_err(|err| Error::permanent(err.to_string()))
}

/// `sha256=<lowercase hex of HMAC-SHA256(key = secret, message = body)>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The summary, or the error, that the target's answer makes.
pub fn outcome(topic: &str, response: &Response) -> Result<String, Error> {
    let status = response.status;
    match status {
        200..=299 => Ok(format!("delivered {topic}: {status}")),
        // The target is busy or broken: the host tries again later.
        429 | 500..=599 => {
            let error = Error::retryable(format!("target answered {status}"));
            let retry_after = response.header("retry-after").and_then(parse_retry_after);
            Err(match retry_after {
                Some(after) => error.with_retry_after(after),
                None => error,
            })
        }
        // Our request was refused: sending it again would not help.
        _ => Err(Error::permanent(format!("target answered {status}"))),
    }
}

/// The error for a request the host could not complete.
pub fn refused(url: &str, error: HttpError) -> Error {
    match error {
        // Only an operator can fix this, by allowing the host.
        HttpError::NotAllowed(entry) => Error::permanent(format!(
            "{url} is not allowed: add {entry} to the connection's allowed_hosts"
        )),
        // Timeouts, connection failures…: may work next time.
        other => Error::retryable(format!("request failed: {}", Error::from(other).message())),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use recoco_connector_sdk::serde_json::Value;

    use super::*;

    const PROJECT_UPDATE: &str = include_str!("../tests/events/project-update.json");

    fn event() -> Event {
        Event::from_webhook_body("evt_1", PROJECT_UPDATE).unwrap()
    }

    #[test]
    fn the_body_names_the_event_and_carries_the_object_as_received() {
        let body = body(&event()).unwrap();
        let sent: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(sent["event"], "evt_1");
        assert_eq!(sent["topic"], "projects.Project/update");
        assert_eq!(sent["object_type"], "projects.Project");
        assert_eq!(sent["object_id"], "1312");
        let received: Value = serde_json::from_str(PROJECT_UPDATE).unwrap();
        assert_eq!(sent["object"], received["object"]);
        // Byte for byte: the object's text is in the body unchanged.
        let text = String::from_utf8(body).unwrap();
        let object = &PROJECT_UPDATE[PROJECT_UPDATE.find("{\n    \"id\": 1312").unwrap()..];
        assert!(text.contains(&object[..200]));
    }

    #[test]
    fn an_event_without_object_id_or_object_sends_nulls() {
        let event = Event {
            id: "evt_2".into(),
            topic: "projects.Project/delete".into(),
            payload: r#"{"topic":"projects.Project/delete"}"#.into(),
            ..Event::default()
        };
        let sent: Value = serde_json::from_slice(&body(&event).unwrap()).unwrap();
        assert_eq!(sent["object_id"], Value::Null);
        assert_eq!(sent["object"], Value::Null);
    }

    #[test]
    fn a_body_that_is_not_json_is_a_permanent_error() {
        let event = Event {
            payload: "not json".into(),
            ..Event::default()
        };
        assert!(!body(&event).unwrap_err().is_retryable());
    }

    #[test]
    fn the_signature_is_hmac_sha256_in_lowercase_hex() {
        // python3 -c "import hmac,hashlib; print(hmac.new(b'0123456789abcdef-secret',
        //   b'{\"a\":1}', hashlib.sha256).hexdigest())"
        assert_eq!(
            signature("0123456789abcdef-secret", br#"{"a":1}"#),
            "sha256=f1de0b1f536cd482111880e061b09812d21bc2ba2051cee7add407db82395ae9"
        );
    }

    #[test]
    fn a_2xx_is_delivered() {
        let summary = outcome("projects.Project/update", &Response::new(204, &[], "")).unwrap();
        assert_eq!(summary, "delivered projects.Project/update: 204");
    }

    #[test]
    fn a_429_or_5xx_is_retried_after_retry_after() {
        let err = outcome("t", &Response::new(429, &[("retry-after", "3")], "")).unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(err.message(), "target answered 429");
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));

        let err = outcome("t", &Response::new(502, &[], "")).unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), None);
    }

    #[test]
    fn another_status_is_permanent() {
        for status in [301, 400, 401, 404, 422] {
            let err = outcome("t", &Response::new(status, &[], "")).unwrap_err();
            assert!(!err.is_retryable(), "{status}");
            assert_eq!(err.message(), format!("target answered {status}"));
        }
    }

    #[test]
    fn a_host_not_allowed_is_permanent_and_names_the_entry() {
        let err = refused("https://x.org/", HttpError::NotAllowed("x.org".into()));
        assert!(!err.is_retryable());
        assert!(err
            .message()
            .contains("add x.org to the connection's allowed_hosts"));
        assert!(refused("https://x.org/", HttpError::Timeout).is_retryable());
        assert!(refused("https://x.org/", HttpError::TooLarge(10)).is_retryable());
    }

    #[test]
    fn tasks_are_refused() {
        let err = Forwarder::run_task(&Context::default(), "sync-all", "{}").unwrap_err();
        assert!(!err.is_retryable());
        assert_eq!(err.message(), "no task named sync-all");
    }

    #[test]
    fn the_manifest_is_the_scaffold_one() {
        let manifest = Forwarder::manifest();
        assert_eq!(
            manifest.subscriptions,
            ["projects.Project", "taggit.TaggedItem"]
        );
        assert_eq!(manifest.default_allowed_hosts, ["config:/url"]);
        assert!(manifest.tasks.is_empty());
        let schema: Value = serde_json::from_str(&manifest.config_schema).unwrap();
        assert_eq!(schema["required"], json!(["url", "secret"]));
        assert_eq!(schema["properties"]["secret"]["writeOnly"], true);
    }
}
