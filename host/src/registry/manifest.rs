//! A plugin's manifest in host terms: the WIT record checked and turned into
//! plain data (the schema parsed), stored and shown as JSON.

use serde::{Deserialize, Serialize};

use crate::runtime::types;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Task {
    pub name: String,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub description: String,
    pub subscriptions: Vec<String>,
    pub config_schema: serde_json::Value,
    pub default_allowed_hosts: Vec<String>,
    pub tasks: Vec<Task>,
    /// Pending events of one key collapse into one run (the latest).
    #[serde(default)]
    pub coalesce: bool,
    /// The connector's own ordering rules, tried before the host's.
    #[serde(default)]
    pub ordering_keys: Vec<crate::routing::OrderingRule>,
}

impl TryFrom<types::PluginManifest> for Manifest {
    type Error = String;

    fn try_from(m: types::PluginManifest) -> Result<Self, String> {
        let valid_name = !m.name.is_empty()
            && m.name.len() <= 64
            && m.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid_name {
            return Err(format!(
                "manifest name {:?} must be 1-64 lowercase letters, digits, - or _",
                m.name
            ));
        }
        let config_schema: serde_json::Value = serde_json::from_str(&m.config_schema)
            .map_err(|e| format!("plugin {}: config schema is not JSON: {e}", m.name))?;
        if !config_schema.is_object() {
            return Err(format!(
                "plugin {}: config schema must be a JSON object",
                m.name
            ));
        }
        for host in &m.default_allowed_hosts {
            if !host.starts_with("config:") {
                crate::outbound::allow::HostPattern::parse(host)
                    .map_err(|e| format!("plugin {}: {e}", m.name))?;
            }
        }
        let mut ordering_keys = Vec::new();
        for rule in m.ordering_keys {
            if !rule.pointer.is_empty() && !rule.pointer.starts_with('/') {
                return Err(format!(
                    "plugin {}: ordering key pointer {:?} must be a JSON pointer (`/object/id`)",
                    m.name, rule.pointer
                ));
            }
            ordering_keys.push(crate::routing::OrderingRule {
                events: rule.events,
                pointer: rule.pointer,
            });
        }
        Ok(Self {
            coalesce: m.coalesce,
            ordering_keys,
            name: m.name,
            version: m.version,
            description: m.description,
            subscriptions: m.subscriptions,
            config_schema,
            default_allowed_hosts: m.default_allowed_hosts,
            tasks: m
                .tasks
                .into_iter()
                .map(|t| Task {
                    name: t.name,
                    description: t.description,
                })
                .collect(),
        })
    }
}
