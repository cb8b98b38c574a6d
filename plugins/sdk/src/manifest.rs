//! What a connector says about itself ([`Manifest`]), read once by the host when
//! it loads the component: name, version, subscriptions, the JSON Schema of a
//! connection's config, default allowed hosts and tasks.

use crate::bindings::recoco::connector::types as wit;

/// Config schema used until [`Manifest::config_schema`] sets one: any object.
pub const EMPTY_CONFIG_SCHEMA: &str =
    r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object"}"#;

/// A connector's manifest, built with chained calls.
///
/// ```
/// use recoco_connector_sdk::Manifest;
///
/// let manifest = Manifest::new("grist", env!("CARGO_PKG_VERSION"))
///     .description("Mirrors projects into a Grist document.")
///     .subscribe("projects.Project")
///     .subscribe("survey.Answer")
///     .allow_host("config:/grist_url")
///     .config_schema(serde_json::json!({
///         "$schema": "https://json-schema.org/draft/2020-12/schema",
///         "type": "object",
///         "properties": {"grist_url": {"type": "string", "format": "uri"}},
///         "required": ["grist_url"],
///         "additionalProperties": false
///     }))
///     .task("sync-all", "Re-sends every project of the source.");
/// assert_eq!(manifest.tasks[0].name, "sync-all");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Plugin name, unique in a host (`http-forward`); connections refer to it.
    pub name: String,
    /// Semantic version (use `env!("CARGO_PKG_VERSION")`).
    pub version: String,
    /// One-paragraph description.
    pub description: String,
    /// Events wanted: object types (`projects.Project`), topics
    /// (`tasks.Task/update`) or `*` for every event.
    pub subscriptions: Vec<String>,
    /// JSON Schema (draft 2020-12) of a connection's config, as JSON text.
    /// Properties marked `"writeOnly": true` are secrets to the host.
    pub config_schema: String,
    /// Hosts needed when a connection sets no `allowed_hosts`: host patterns
    /// (`*.example.org`) or `config:<json-pointer>` (the host of a config URL).
    pub default_allowed_hosts: Vec<String>,
    /// Tasks an operator may start.
    pub tasks: Vec<TaskInfo>,
    /// Pending events of one ordering key collapse into one run of the latest
    /// (for connectors that reload the whole object anyway).
    pub coalesce: bool,
    /// Ordering rules of the connector's own, tried before the host's.
    pub ordering_keys: Vec<OrderingRule>,
}

/// Where the ordering key of some events is (see [`Manifest::ordering_key`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderingRule {
    /// Events it applies to (the forms of subscriptions).
    pub events: String,
    /// JSON pointer into the webhook body; a list there gives several keys.
    pub pointer: String,
}

/// A task the connector offers (run by [`Connector::run_task`](crate::Connector::run_task)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    /// Name, kebab-case (`sync-all`).
    pub name: String,
    /// One line for the admin listing.
    pub description: String,
}

impl Manifest {
    /// A manifest with no subscriptions, no hosts, no tasks and a config schema
    /// accepting any object.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            description: String::new(),
            subscriptions: Vec::new(),
            config_schema: EMPTY_CONFIG_SCHEMA.to_owned(),
            default_allowed_hosts: Vec::new(),
            tasks: Vec::new(),
            coalesce: false,
            ordering_keys: Vec::new(),
        }
    }

    /// Declares that the connector reloads the whole object on each event: the
    /// host may deliver only the latest of the pending events of one key.
    pub fn coalesce(mut self) -> Self {
        self.coalesce = true;
        self
    }

    /// Orders `events` by the value at the JSON `pointer` of the webhook body
    /// (instead of the Recoco project id the host derives by default).
    pub fn ordering_key(mut self, events: impl Into<String>, pointer: impl Into<String>) -> Self {
        self.ordering_keys.push(OrderingRule {
            events: events.into(),
            pointer: pointer.into(),
        });
        self
    }

    /// Sets the description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Adds a subscription (`*`, an object type or a topic).
    pub fn subscribe(mut self, pattern: impl Into<String>) -> Self {
        self.subscriptions.push(pattern.into());
        self
    }

    /// Sets the JSON Schema of the config.
    pub fn config_schema(mut self, schema: serde_json::Value) -> Self {
        self.config_schema = schema.to_string();
        self
    }

    /// Adds a default allowed host entry.
    pub fn allow_host(mut self, entry: impl Into<String>) -> Self {
        self.default_allowed_hosts.push(entry.into());
        self
    }

    /// Adds a task.
    pub fn task(mut self, name: impl Into<String>, description: impl Into<String>) -> Self {
        self.tasks.push(TaskInfo {
            name: name.into(),
            description: description.into(),
        });
        self
    }
}

impl From<Manifest> for wit::PluginManifest {
    fn from(manifest: Manifest) -> Self {
        Self {
            name: manifest.name,
            version: manifest.version,
            description: manifest.description,
            subscriptions: manifest.subscriptions,
            config_schema: manifest.config_schema,
            default_allowed_hosts: manifest.default_allowed_hosts,
            tasks: manifest
                .tasks
                .into_iter()
                .map(|task| wit::TaskInfo {
                    name: task.name,
                    description: task.description,
                })
                .collect(),
            coalesce: manifest.coalesce,
            ordering_keys: manifest
                .ordering_keys
                .into_iter()
                .map(|rule| wit::OrderingRule {
                    events: rule.events,
                    pointer: rule.pointer,
                })
                .collect(),
        }
    }
}
