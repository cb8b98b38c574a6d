//! What a connector says about itself ([`Manifest`]), read once by the host when
//! it loads the component: name, version, subscriptions, the JSON Schema of a
//! connection's config, default allowed hosts and tasks; since 0.2.0 also who
//! wrote it, where to read about it and its license.

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
///     .task("sync-all", "Re-sends every project of the source.")
///     .author("Jane Doe <jane@example.org>")
///     .homepage("https://example.org/grist-connector")
///     .license("MIT OR Apache-2.0");
/// assert_eq!(manifest.tasks[0].name, "sync-all");
/// assert_eq!(manifest.authors, ["Jane Doe <jane@example.org>"]);
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
    /// Who wrote the connector (`Name <mail@example.org>`), shown to operators.
    pub authors: Vec<String>,
    /// Where to read about the connector or report a problem (a URL).
    pub homepage: Option<String>,
    /// SPDX license expression (`MIT OR Apache-2.0`).
    pub license: Option<String>,
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
            authors: Vec::new(),
            homepage: None,
            license: None,
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

    /// Adds an author (`Name <mail@example.org>`); call it once per author.
    /// `env!("CARGO_PKG_AUTHORS")` gives Cargo's `authors`, `:`-separated.
    pub fn author(mut self, author: impl Into<String>) -> Self {
        self.authors.push(author.into());
        self
    }

    /// Sets the URL where operators read about the connector or report a problem.
    pub fn homepage(mut self, url: impl Into<String>) -> Self {
        self.homepage = Some(url.into());
        self
    }

    /// Sets the SPDX license expression (`MIT OR Apache-2.0`).
    pub fn license(mut self, spdx: impl Into<String>) -> Self {
        self.license = Some(spdx.into());
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
            authors: manifest.authors,
            homepage: manifest.homepage,
            license: manifest.license,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_leaves_authors_homepage_and_license_unset() {
        let manifest = Manifest::new("x", "0.1.0");
        assert!(manifest.authors.is_empty());
        assert_eq!(manifest.homepage, None);
        assert_eq!(manifest.license, None);
    }

    #[test]
    fn author_adds_in_order_homepage_and_license_replace() {
        let manifest = Manifest::new("x", "0.1.0")
            .author("Ann <ann@example.org>")
            .author("Bob")
            .homepage("https://old.example.org")
            .homepage("https://example.org/x")
            .license("MIT")
            .license("MIT OR Apache-2.0");
        assert_eq!(manifest.authors, ["Ann <ann@example.org>", "Bob"]);
        assert_eq!(manifest.homepage.as_deref(), Some("https://example.org/x"));
        assert_eq!(manifest.license.as_deref(), Some("MIT OR Apache-2.0"));
    }

    #[test]
    fn the_wit_manifest_carries_the_new_fields() {
        let wit: wit::PluginManifest = Manifest::new("x", "0.1.0")
            .author("Ann")
            .homepage("https://example.org/x")
            .license("EUPL-1.2")
            .into();
        assert_eq!(wit.authors, ["Ann"]);
        assert_eq!(wit.homepage.as_deref(), Some("https://example.org/x"));
        assert_eq!(wit.license.as_deref(), Some("EUPL-1.2"));

        let bare: wit::PluginManifest = Manifest::new("x", "0.1.0").into();
        assert!(bare.authors.is_empty());
        assert_eq!((bare.homepage, bare.license), (None, None));
    }
}
