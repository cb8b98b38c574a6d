//! A connection's configuration: where the Grist table is and what to send to
//! it, with its JSON Schema (the host validates configs against it before each
//! job). Checks the schema cannot express (a table id Grist would rename) are
//! here too, so a bad config fails with a message saying what to write instead.

use recoco_connector_sdk::{Context, Error};
use serde::Deserialize;

use crate::ids;

/// Label length limit when the config sets none (the original service's
/// `TABLE_COLUMN_HEADER_MAX_LENGTH`).
pub const DEFAULT_LABEL_MAX_LENGTH: usize = 80;

/// A Grist connection's configuration (see [`schema`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Grist API base, e.g. `https://grist.example.org/api`.
    pub api_url: String,
    /// API key of a Grist user with write access to the document (a secret).
    pub api_key: String,
    /// Document id, as in the document's URL.
    pub doc_id: String,
    /// Table id (case-sensitive), e.g. `Projets`.
    pub table_id: String,
    /// Only these column ids are created and written (`object_id`, the key, always
    /// is); every column when absent.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Longest column label; longer ones are cut and end with `...`.
    #[serde(default)]
    pub label_max_length: Option<usize>,
}

impl Config {
    /// The configuration of `ctx`, checked beyond the schema.
    pub fn from_context(ctx: &Context) -> Result<Self, Error> {
        let config: Self = ctx.config()?;
        config.check()?;
        Ok(config)
    }

    /// Refuses a table id that Grist would not keep as written: creating it would
    /// give another id, and every later request would answer 404.
    pub fn check(&self) -> Result<(), Error> {
        let grist = ids::table_id(&self.table_id);
        if grist != self.table_id {
            return Err(Error::permanent(format!(
                "table_id {:?} is not a Grist table id: Grist would name that table {grist:?}; \
                 set table_id to {grist:?}",
                self.table_id
            )));
        }
        Ok(())
    }

    /// The label length limit in force.
    pub fn label_max_length(&self) -> usize {
        self.label_max_length.unwrap_or(DEFAULT_LABEL_MAX_LENGTH)
    }

    /// The API base without a trailing `/`.
    pub fn api_base(&self) -> &str {
        self.api_url.trim_end_matches('/')
    }

    /// Whether column `id` (wanted or actual) is one to write.
    pub fn selects(&self, ids: &[&str]) -> bool {
        match &self.columns {
            None => true,
            Some(list) => ids.iter().any(|id| list.iter().any(|c| c == id)),
        }
    }
}

/// The JSON Schema of [`Config`].
pub fn schema() -> serde_json::Value {
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "grist connection",
        "type": "object",
        "properties": {
            "api_url": {
                "description": "Grist API base URL, e.g. https://grist.example.org/api (the part before /docs/...).",
                "type": "string",
                "format": "uri",
                // `format` is only an annotation in draft 2020-12; this is checked.
                "pattern": "^https?://[^/?#]+"
            },
            "api_key": {
                "description": "API key of a Grist user with write access to the document (Profile settings → API).",
                "type": "string",
                "minLength": 1,
                "writeOnly": true
            },
            "doc_id": {
                "description": "Id of the Grist document (from its URL or Document settings).",
                "type": "string",
                "minLength": 1,
                "pattern": "^[A-Za-z0-9_-]+$"
            },
            "table_id": {
                "description": "Id of the table holding one row per project, e.g. Projets (case-sensitive; a letter first, then letters, digits or _). The `setup` task creates it.",
                "type": "string",
                "pattern": "^[A-Z][A-Za-z0-9_]*$"
            },
            "columns": {
                "description": "Only these column ids are created by `setup` and written (object_id, the key, always is). Absent: every column.",
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "uniqueItems": true
            },
            "label_max_length": {
                "description": "Longest column label; longer ones are cut to this length, ending with '...'. Default 80.",
                "type": "integer",
                "minimum": 10,
                "maximum": 1000
            }
        },
        "required": ["api_url", "api_key", "doc_id", "table_id"],
        "additionalProperties": false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(table_id: &str) -> Config {
        Config {
            api_url: "https://grist.example.org/api/".into(),
            api_key: "k".into(),
            doc_id: "abc".into(),
            table_id: table_id.into(),
            columns: None,
            label_max_length: None,
        }
    }

    #[test]
    fn refuses_table_ids_grist_would_rename() {
        assert!(config("Projets").check().is_ok());
        let err = config("projets").check().unwrap_err();
        assert!(!err.is_retryable());
        assert!(
            err.message().contains("set table_id to \"Projets\""),
            "{err}"
        );
        assert!(config("Mes projets").check().is_err());
    }

    #[test]
    fn defaults_and_selection() {
        let mut c = config("Projets");
        assert_eq!(c.label_max_length(), 80);
        assert_eq!(c.api_base(), "https://grist.example.org/api");
        assert!(c.selects(&["anything"]));
        c.columns = Some(vec!["name".into(), "city".into()]);
        assert!(c.selects(&["x", "city"]));
        assert!(!c.selects(&["tags"]));
    }

    #[test]
    fn unknown_keys_and_bad_types_are_refused() {
        let ctx = Context {
            config: r#"{"api_url": "https://g.example.org/api", "api_key": "k", "doc_id": "d",
                        "table_id": "Projets", "label_max_length": "80"}"#
                .into(),
            ..Context::default()
        };
        let err = Config::from_context(&ctx).unwrap_err();
        assert!(err.message().contains("label_max_length"), "{err}");
        let ctx = Context {
            config: ctx
                .config
                .replace(r#""label_max_length": "80""#, r#""tabel": 1"#),
            ..Context::default()
        };
        assert!(Config::from_context(&ctx)
            .unwrap_err()
            .message()
            .contains("tabel"));
    }

    #[test]
    fn schema_marks_the_key_secret() {
        let schema = schema();
        assert_eq!(schema["properties"]["api_key"]["writeOnly"], true);
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["properties"]["label_max_length"]["type"], "integer");
    }
}
