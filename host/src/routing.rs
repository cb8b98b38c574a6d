//! Which connections an event goes to, and in which order it must run there.
//! Used by intake and by replays.
//!
//! One job per connection of the event's source that [`wants`] it: connections
//! removed from the configuration get none; a disabled connection gets one that
//! pauses until it is enabled; a plugin never seen (not yet dropped in, or
//! misspelled) gets one too, routed when it loads (a job its subscriptions then
//! refuse ends `skipped`). Nothing is dropped silently.
//!
//! Every job carries its ordering keys: jobs of one connection sharing a key run
//! one at a time, in arrival order (see `queue::lease`). For Recoco events the
//! key is the project: a project's own id, the project of a tagged item (its
//! object is the project), of an answer or a task, and each project of a user
//! profile. A connector may declare rules of its own in its manifest.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalog::{subscription_matches, Catalog};
use crate::filter;
use crate::ids::{now_ms, EventId, JobId, SourceId};
use crate::queue::{JobKind, NewJob};
use crate::store::connections::Connection;

/// Where the ordering key of some events is: a JSON pointer into the webhook
/// body, for events matching `events` (the forms of subscriptions).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrderingRule {
    pub events: String,
    pub pointer: String,
}

/// What routing needs to know of a plugin (loaded, or as last seen).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routing {
    pub subscriptions: Vec<String>,
    pub ordering_keys: Vec<OrderingRule>,
}

impl Routing {
    pub fn of(manifest: &crate::registry::Manifest) -> Self {
        Self {
            subscriptions: manifest.subscriptions.clone(),
            ordering_keys: manifest.ordering_keys.clone(),
        }
    }

    pub fn subscribes(&self, object_type: &str, topic: &str) -> bool {
        self.subscriptions
            .iter()
            .any(|s| subscription_matches(s, object_type, topic))
    }
}

/// Recoco's objects and where their project is.
const RECOCO_RULES: &[(&str, &str)] = &[
    ("projects.Project", "/object/id"),
    // The object of a tagged-item event is the tagged project itself.
    ("taggit.TaggedItem", "/object/id"),
    ("survey.Answer", "/object/project"),
    ("tasks.Task", "/object/project"),
    ("home.UserProfile", "/object/projects"),
];

/// The event being routed. The body is parsed once, on first need.
pub struct EventRef<'a> {
    pub source: SourceId,
    pub id: &'a EventId,
    pub object_type: &'a str,
    pub topic: &'a str,
    /// The webhook body as received.
    pub body: &'a [u8],
    parsed: OnceLock<Option<Value>>,
}

impl<'a> EventRef<'a> {
    pub fn new(
        source: SourceId,
        id: &'a EventId,
        object_type: &'a str,
        topic: &'a str,
        body: &'a [u8],
    ) -> Self {
        Self {
            source,
            id,
            object_type,
            topic,
            body,
            parsed: OnceLock::new(),
        }
    }

    /// The body as JSON (`None` when it is not).
    pub fn json(&self) -> Option<&Value> {
        self.parsed
            .get_or_init(|| serde_json::from_slice(self.body).ok())
            .as_ref()
    }

    /// Ordering keys under `rules` (the connector's), else Recoco's; as the
    /// JSON list stored with the job, or `None` when the event has no key.
    pub fn ordering_key(&self, rules: &[OrderingRule]) -> Option<String> {
        let body = self.json()?;
        let connector = rules
            .iter()
            .filter(|r| subscription_matches(&r.events, self.object_type, self.topic))
            .map(|r| r.pointer.as_str());
        let recoco = RECOCO_RULES
            .iter()
            .filter(|(t, _)| *t == self.object_type)
            .map(|(_, p)| *p);
        let keys = connector
            .chain(recoco)
            .map(|pointer| keys_at(body, pointer))
            .find(|keys| !keys.is_empty())?;
        serde_json::to_string(&keys).ok()
    }
}

/// The keys found at `pointer`: a string or number, or each of a list's.
fn keys_at(body: &Value, pointer: &str) -> Vec<String> {
    let scalar = |v: &Value| match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let mut keys: Vec<String> = match body.pointer(pointer) {
        Some(Value::Array(items)) => items.iter().filter_map(scalar).collect(),
        Some(v) => scalar(v).into_iter().collect(),
        None => Vec::new(),
    };
    keys.sort();
    keys.dedup();
    keys
}

/// The one place that decides whether `connection` receives `event`.
fn wants(connection: &Connection, plugin: Option<&Routing>, event: &EventRef) -> bool {
    if connection.removed {
        return false;
    }
    // A plugin never seen: its subscriptions are unknown, so the job is made
    // and the worker routes it once the plugin loads.
    plugin.is_none_or(|p| p.subscribes(event.object_type, event.topic))
}

/// `plugins` gives a plugin's routing (loaded or last seen; `None`: never seen).
pub fn jobs_for(
    catalog: &Catalog,
    plugins: &(dyn Fn(&str) -> Option<Routing> + Sync),
    event: &EventRef,
    max_attempts: u32,
    filters: &mut filter::Check<'_>,
) -> Vec<NewJob> {
    let now = now_ms();
    catalog
        .connections_of(event.source)
        .filter_map(|c| {
            let plugin = plugins(&c.plugin);
            (wants(c, plugin.as_ref(), event) && filters.accepts(c)).then(|| NewJob {
                id: JobId::new(),
                connection_id: c.id,
                plugin: c.plugin.clone(),
                kind: JobKind::Event {
                    event_id: event.id.to_string(),
                },
                dedup_key: None,
                max_attempts,
                run_at: now,
                ordering_key: event
                    .ordering_key(plugin.as_ref().map_or(&[][..], |p| &p.ordering_keys)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(object_type: &str, body: Value, rules: &[OrderingRule]) -> Option<String> {
        let id = EventId::new();
        let bytes = serde_json::to_vec(&body).unwrap();
        let topic = format!("{object_type}/update");
        EventRef::new(1, &id, object_type, &topic, &bytes).ordering_key(rules)
    }

    #[test]
    fn recoco_events_are_keyed_by_project() {
        let k = |t, object| key(t, serde_json::json!({"object": object}), &[]);
        assert_eq!(
            k("projects.Project", serde_json::json!({"id": 1312})).as_deref(),
            Some(r#"["1312"]"#)
        );
        assert_eq!(
            k("taggit.TaggedItem", serde_json::json!({"id": 7})).as_deref(),
            Some(r#"["7"]"#)
        );
        assert_eq!(
            k(
                "survey.Answer",
                serde_json::json!({"id": 88002, "project": 1312})
            )
            .as_deref(),
            Some(r#"["1312"]"#)
        );
        assert_eq!(
            k(
                "tasks.Task",
                serde_json::json!({"id": 4242, "project": 1312})
            )
            .as_deref(),
            Some(r#"["1312"]"#)
        );
        assert_eq!(
            k(
                "home.UserProfile",
                serde_json::json!({"id": 9031, "projects": [1312, 1288]})
            )
            .as_deref(),
            Some(r#"["1288","1312"]"#)
        );
        // Unknown objects, or no project: no key (runs in parallel).
        assert_eq!(
            k(
                "home.UserProfile",
                serde_json::json!({"id": 1, "projects": []})
            ),
            None
        );
        assert_eq!(k("other.Thing", serde_json::json!({"id": 1})), None);
    }

    #[test]
    fn a_connector_rule_comes_first_then_recoco_s() {
        let rules = [OrderingRule {
            events: "projects.*".into(),
            pointer: "/object/org".into(),
        }];
        let body = serde_json::json!({"object": {"id": 5, "org": "acme"}});
        assert_eq!(
            key("projects.Project", body, &rules).as_deref(),
            Some(r#"["acme"]"#)
        );
        let body = serde_json::json!({"object": {"id": 5}});
        assert_eq!(
            key("projects.Project", body, &rules).as_deref(),
            Some(r#"["5"]"#)
        );
    }
}
