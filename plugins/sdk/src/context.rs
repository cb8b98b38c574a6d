//! What an invocation receives: the [`Context`] it runs in (the connection and
//! its configuration) and, for `handle-event`, the [`Event`]. Plain data with
//! public fields, so unit tests build them directly.

use serde::de::DeserializeOwned;

use crate::bindings::recoco::connector::types as wit;
use crate::http::at_path;
use crate::recoco::Envelope;
use crate::Error;

/// Where an invocation runs.
///
/// ```
/// use recoco_connector_sdk::Context;
///
/// #[derive(serde::Deserialize)]
/// struct Config { url: String, timeout_ms: Option<u32> }
///
/// let ctx = Context { config: r#"{"url": "https://example.org"}"#.into(), ..Context::default() };
/// let config: Config = ctx.config().unwrap();
/// assert_eq!(config.url, "https://example.org");
///
/// let bad = Context { config: r#"{"url": 7}"#.into(), ..Context::default() };
/// let err = bad.config::<Config>().err().unwrap();
/// assert!(err.message().contains("`url`"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// The connection's configuration, JSON, already validated by the host
    /// against the manifest's schema (secrets included, decrypted).
    pub config: String,
    /// Name of the connection.
    pub connection: String,
    /// Code of the connection's source (portal).
    pub source: String,
    /// Job id (`job_…`), for log correlation.
    pub job_id: String,
    /// 1 for the first attempt of this job, then 2, 3, …
    pub attempt: u32,
}

impl Context {
    /// The configuration parsed into `T`. A mismatch is a permanent error that
    /// names the bad field, since retrying cannot fix a configuration.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let deserializer = &mut serde_json::Deserializer::from_str(&self.config);
        serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let path = err.path().to_string();
            let field = if path == "." {
                String::new()
            } else {
                format!(" field `{path}`")
            };
            Error::permanent(format!(
                "invalid configuration of connection `{}`{field}: {}",
                self.connection,
                err.inner()
            ))
        })
    }
}

impl From<wit::Context> for Context {
    fn from(ctx: wit::Context) -> Self {
        Self {
            config: ctx.config,
            connection: ctx.connection,
            source: ctx.source,
            job_id: ctx.job_id,
            attempt: ctx.attempt,
        }
    }
}

/// One Recoco webhook event, as stored by the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// Host event id (`evt_…`); stable across retries and replays.
    pub id: String,
    /// Code of the source (portal) that sent it.
    pub source: String,
    /// `<app_label>.<ModelName>/<action>`, e.g. `projects.Project/update`.
    pub topic: String,
    /// `<app_label>.<ModelName>`, e.g. `projects.Project`.
    pub object_type: String,
    /// `create`, `update` or `delete`.
    pub action: String,
    /// `object.id` of the envelope, when present.
    pub object_id: Option<String>,
    /// The webhook body exactly as received (the envelope, JSON).
    pub payload: String,
    /// When the host received it, RFC 3339 (UTC).
    pub received_at: String,
}

impl Event {
    /// Builds an event from a webhook body the way the host does (topic, object
    /// type, action and object id read from the envelope). Meant for tests.
    pub fn from_webhook_body(
        id: impl Into<String>,
        body: impl Into<String>,
    ) -> Result<Self, Error> {
        let mut event = Self {
            id: id.into(),
            payload: body.into(),
            ..Self::default()
        };
        let envelope: Envelope = event.envelope()?;
        event.action = envelope.action().to_owned();
        event.object_id = match envelope.object.get("id") {
            Some(serde_json::Value::String(id)) => Some(id.clone()),
            Some(serde_json::Value::Number(id)) => Some(id.to_string()),
            _ => None,
        };
        event.topic = envelope.topic;
        event.object_type = envelope.object_type;
        Ok(event)
    }

    /// The whole envelope, with `object` parsed into `T` (`serde_json::Value` by
    /// default). A mismatch is a permanent error naming the field.
    pub fn envelope<T: DeserializeOwned>(&self) -> Result<Envelope<T>, Error> {
        let deserializer = &mut serde_json::Deserializer::from_str(&self.payload);
        serde_path_to_error::deserialize(deserializer).map_err(|err| {
            Error::permanent(format!(
                "event {} ({}) does not have the expected shape{}: {}",
                self.id,
                self.topic,
                at_path(err.path()),
                err.inner()
            ))
        })
    }

    /// The changed object (`object` of the envelope) parsed into `T`, e.g.
    /// [`recoco::Project`](crate::recoco::Project) for `projects.Project` events.
    pub fn object<T: DeserializeOwned>(&self) -> Result<T, Error> {
        self.envelope::<T>().map(|envelope| envelope.object)
    }
}

impl From<wit::Event> for Event {
    fn from(event: wit::Event) -> Self {
        Self {
            id: event.id,
            source: event.source,
            topic: event.topic,
            object_type: event.object_type,
            action: event.action,
            object_id: event.object_id,
            payload: event.payload,
            received_at: event.received_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recoco::Task;

    const TASK: &str = r#"{"topic": "tasks.Task/update", "object": {"id": 4242, "status": 1, "resource": null, "project": 1312}, "object_type": "tasks.Task", "webhook_uuid": "6f1c"}"#;

    #[test]
    fn builds_events_like_the_host() {
        let event = Event::from_webhook_body("evt_1", TASK).unwrap();
        assert_eq!(event.topic, "tasks.Task/update");
        assert_eq!(event.object_type, "tasks.Task");
        assert_eq!(event.action, "update");
        assert_eq!(event.object_id.as_deref(), Some("4242"));
        let task: Task = event.object().unwrap();
        assert_eq!((task.id, task.project, task.resource), (4242, 1312, None));
    }

    #[test]
    fn shape_errors_name_the_field() {
        let event = Event::from_webhook_body("evt_2", TASK.replace("1312", "\"x\"")).unwrap();
        let err = event.object::<Task>().unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.message().contains("at `object.project`"), "{err}");
    }

    #[test]
    fn config_errors_name_the_field() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Schedule {
            delay_ms: u64,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Config {
            schedule: Schedule,
        }
        let ctx = Context {
            config: r#"{"schedule": {"delay_ms": "soon"}}"#.into(),
            connection: "grist-main".into(),
            ..Context::default()
        };
        let err = ctx.config::<Config>().unwrap_err();
        assert!(!err.is_retryable());
        assert!(
            err.message().starts_with(
                "invalid configuration of connection `grist-main` field `schedule.delay_ms`"
            ),
            "{err}"
        );
        let missing = Context::default().config::<Config>().unwrap_err();
        assert!(missing.message().contains("EOF"), "{missing}");
    }
}
