//! One loaded plugin version: its manifest, its content hash, where it came from
//! and its pre-instantiated component, plus the check of a connection config
//! against its schema. How a `Plugin` is built is in [`super::load`].

use std::path::PathBuf;

use serde::Serialize;

use super::Manifest;
use crate::runtime::{ConnectorPre, StoreState};

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "path")]
pub enum Origin {
    /// Compiled into the service binary.
    Shipped,
    /// A file of the plugins directory.
    File(PathBuf),
}

// Written by hand: utoipa's derive cannot give a tuple variant's `PathBuf` a
// string schema. tests/it/openapi.rs checks real listings against it.
impl utoipa::PartialSchema for Origin {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        serde_json::from_value(serde_json::json!({
            "description": "Where a plugin came from.",
            "oneOf": [
                {
                    "type": "object",
                    "description": "Compiled into the service binary.",
                    "properties": {"kind": {"type": "string", "enum": ["shipped"]}},
                    "required": ["kind"]
                },
                {
                    "type": "object",
                    "description": "A file of the plugins directory.",
                    "properties": {
                        "kind": {"type": "string", "enum": ["file"]},
                        "path": {"type": "string"}
                    },
                    "required": ["kind", "path"]
                }
            ]
        }))
        .expect("a valid schema")
    }
}

impl utoipa::ToSchema for Origin {
    fn name() -> std::borrow::Cow<'static, str> {
        "Origin".into()
    }
}

/// A loaded, ready-to-run plugin version.
pub struct Plugin {
    pub manifest: Manifest,
    /// SHA-256 of the component bytes, hex: the exact version that runs.
    pub hash: String,
    pub origin: Origin,
    /// When this version was loaded (ms since the epoch).
    pub loaded_at: i64,
    /// Whether its compiled code came from the disk cache (else Cranelift ran).
    pub from_cache: bool,
    pub pre: ConnectorPre<StoreState>,
    pub(super) validator: jsonschema::Validator,
}

impl Plugin {
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Short hash shown next to the version.
    pub fn short_hash(&self) -> &str {
        &self.hash[..12]
    }

    /// Checks a connection config against the plugin's schema; the error lists
    /// each failing place.
    pub fn validate_config(&self, config: &serde_json::Value) -> Result<(), String> {
        check_config(
            self.name(),
            &self.validator,
            &self.manifest.config_schema,
            config,
        )
    }
}

/// A config against a plugin's schema (`validator` compiled from `schema`):
/// the error lists each failing place.
pub fn check_config(
    plugin: &str,
    validator: &jsonschema::Validator,
    schema: &serde_json::Value,
    config: &serde_json::Value,
) -> Result<(), String> {
    // Only the values the schema marks `writeOnly` are hidden: the others
    // help the operator see what is wrong.
    let secrets = crate::secrets::secret_values(config, schema);
    let problems: Vec<String> = validator
        .iter_errors(config)
        .map(|e| {
            let at = e.instance_path().to_string();
            format!(
                "{}: {}",
                if at.is_empty() { "/" } else { &at },
                without_secrets(&e.to_string(), &secrets)
            )
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "config does not match the schema of plugin {plugin}: {}",
            problems.join("; ")
        ))
    }
}

/// The validator's message with the secret values (as JSON strings) removed.
fn without_secrets(message: &str, secrets: &[String]) -> String {
    let mut out = message.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(&serde_json::Value::String(s.clone()).to_string(), "\"…\"");
    }
    out
}
