//! A connection's configuration: where the hub is and its API key, which
//! recommendations trigger sharing (the tag), which projects may be shared (the
//! selection) and when services are loaded. Owns the JSON Schema the host checks
//! and the rules derived from the settings (selection, retry delays); not the
//! calls themselves.

use std::fmt;
use std::time::Duration;

use recoco_connector_sdk::{Context, Error};
use serde::Deserialize;

/// Tag a recommendation's resource must carry to share its project.
pub const DEFAULT_TAG: &str = "les-communs";
/// Wait before the first services load: the hub qualifies a new projet
/// asynchronously (seconds to minutes), its services list is empty before.
pub const DEFAULT_DELAY_MS: u64 = 60_000;
/// Loads per cycle; the original tried once and retried 3 times.
pub const DEFAULT_ATTEMPTS: u32 = 4;
/// Wait before the second load, doubled before each further one.
pub const DEFAULT_BACKOFF_MS: u64 = 120_000;
/// Longest wait between two loads, whatever the backoff says.
pub const MAX_BACKOFF: Duration = Duration::from_secs(24 * 3600);

/// A connection's configuration (see [`schema`]).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Hub root URL (`https://communs.example.org`), without `/api`.
    pub hub_url: String,
    /// The partner API key (a secret: never logged).
    pub api_key: String,
    /// Tag that makes a recommendation share its project.
    #[serde(default = "default_tag")]
    pub tag: String,
    /// Recoco project ids that may be shared.
    #[serde(default)]
    pub projects: Vec<u64>,
    /// Every project may be shared.
    #[serde(default)]
    pub all_projects: bool,
    /// When the hub's services are loaded.
    #[serde(default)]
    pub load_services: LoadServices,
}

// By hand, so that the API key never reaches a log line or an error message.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("hub_url", &self.hub_url)
            .field("api_key", &"<secret>")
            .field("tag", &self.tag)
            .field("projects", &self.projects)
            .field("all_projects", &self.all_projects)
            .field("load_services", &self.load_services)
            .finish()
    }
}

fn default_tag() -> String {
    DEFAULT_TAG.to_owned()
}

/// Timing of the `load-services` task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadServices {
    /// Wait after sharing before the first load, in milliseconds.
    pub delay_ms: u64,
    /// Loads per cycle while the hub proposes no service (1 = no retry).
    pub attempts: u32,
    /// Wait before the second load, doubled before each further one, in ms.
    pub backoff_ms: u64,
}

impl Default for LoadServices {
    fn default() -> Self {
        Self {
            delay_ms: DEFAULT_DELAY_MS,
            attempts: DEFAULT_ATTEMPTS,
            backoff_ms: DEFAULT_BACKOFF_MS,
        }
    }
}

impl LoadServices {
    /// Wait between sharing and the first load.
    pub fn first_delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms)
    }

    /// Wait before load number `attempt` (2 or more) of a cycle:
    /// `backoff_ms × 2^(attempt − 2)`, at most [`MAX_BACKOFF`].
    pub fn delay_before(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(2).min(32);
        let ms = self.backoff_ms.saturating_mul(1u64 << doublings);
        Duration::from_millis(ms).min(MAX_BACKOFF)
    }
}

/// Whether a project may be shared, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// It may.
    Selected,
    /// The connection selects no project at all.
    Nothing,
    /// The connection selects other projects.
    NotListed,
}

impl Config {
    /// The configuration of the invocation's connection, checked.
    pub fn from_context(ctx: &Context) -> Result<Self, Error> {
        let config: Self = ctx.config()?;
        config.hub_base()?;
        Ok(config)
    }

    /// Whether `project` may be shared with the hub.
    pub fn selection(&self, project: u64) -> Selection {
        if self.all_projects {
            Selection::Selected
        } else if self.projects.is_empty() {
            Selection::Nothing
        } else if self.projects.contains(&project) {
            Selection::Selected
        } else {
            Selection::NotListed
        }
    }

    /// The hub's base URL without trailing slashes. The hub serves its API at
    /// the host root; `…/api` is its Swagger UI, a mistake the original's
    /// settings made, so it is refused with a message saying so.
    pub fn hub_base(&self) -> Result<String, Error> {
        let base = self.hub_url.trim().trim_end_matches('/');
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(Error::permanent(format!(
                "hub_url `{base}` is not an http(s) URL"
            )));
        }
        if base.ends_with("/api") {
            return Err(Error::permanent(format!(
                "hub_url `{base}` ends with /api, the hub's Swagger UI: its API is served at \
                 the host root, use `{}`",
                base.trim_end_matches("/api")
            )));
        }
        Ok(base.to_owned())
    }
}

/// The JSON Schema of [`Config`].
pub fn schema() -> serde_json::Value {
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "lescommuns connection",
        "type": "object",
        "properties": {
            "hub_url": {
                "description": "Root URL of the Les Communs hub API (its routes are at the host root: https://<hub-host>, not …/api).",
                "type": "string",
                "format": "uri",
                // `format` is only an annotation in draft 2020-12; these are checked.
                "pattern": "^https?://",
                "not": {"pattern": "/api/*$"}
            },
            "api_key": {
                "description": "The partner API key the hub issued to Recoco (sent as a Bearer token).",
                "type": "string",
                "minLength": 1,
                "writeOnly": true
            },
            "tag": {
                "description": "Resource tag that makes a recommendation share its project with the hub.",
                "type": "string",
                "minLength": 1,
                "default": DEFAULT_TAG
            },
            "projects": {
                "description": "Recoco project ids that may be shared. Without it (and without all_projects) nothing is shared.",
                "type": "array",
                "items": {"type": "integer", "minimum": 1},
                "uniqueItems": true
            },
            "all_projects": {
                "description": "Every project may be shared (instead of a `projects` list).",
                "type": "boolean",
                "default": false
            },
            "load_services": {
                "description": "When the hub's services are read after sharing, and how often while it proposes none.",
                "type": "object",
                "properties": {
                    "delay_ms": {
                        "description": "Wait after sharing before the first load, in milliseconds.",
                        "type": "integer", "minimum": 0, "maximum": 86_400_000,
                        "default": DEFAULT_DELAY_MS
                    },
                    "attempts": {
                        "description": "Loads while the hub proposes no service (1 = no retry).",
                        "type": "integer", "minimum": 1, "maximum": 20,
                        "default": DEFAULT_ATTEMPTS
                    },
                    "backoff_ms": {
                        "description": "Wait before the second load, doubled before each further one, in milliseconds.",
                        "type": "integer", "minimum": 0, "maximum": 86_400_000,
                        "default": DEFAULT_BACKOFF_MS
                    }
                },
                "additionalProperties": false
            }
        },
        "required": ["hub_url", "api_key"],
        "additionalProperties": false,
        // A list and "all" together would leave the reader guessing which wins.
        "if": {"properties": {"all_projects": {"const": true}}, "required": ["all_projects"]},
        "then": {"not": {"required": ["projects"]}}
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: serde_json::Value) -> Config {
        serde_json::from_value(value).unwrap()
    }

    fn schema_errors(value: &serde_json::Value) -> Vec<String> {
        let validator = jsonschema::validator_for(&schema()).unwrap();
        validator
            .iter_errors(value)
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn defaults_apply() {
        let config = parse(json!({"hub_url": "https://hub.example.org", "api_key": "k"}));
        assert_eq!(config.tag, "les-communs");
        assert!(!config.all_projects && config.projects.is_empty());
        assert_eq!(config.load_services, LoadServices::default());
        assert_eq!(config.load_services.first_delay(), Duration::from_secs(60));
    }

    #[test]
    fn selection_needs_a_list_or_all() {
        let mut config = parse(json!({"hub_url": "https://h", "api_key": "k"}));
        assert_eq!(config.selection(1312), Selection::Nothing);
        config.projects = vec![7, 1312];
        assert_eq!(config.selection(1312), Selection::Selected);
        assert_eq!(config.selection(8), Selection::NotListed);
        config.projects.clear();
        config.all_projects = true;
        assert_eq!(config.selection(8), Selection::Selected);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let load = LoadServices {
            delay_ms: 0,
            attempts: 5,
            backoff_ms: 1000,
        };
        let delays: Vec<u64> = (2..=5)
            .map(|n| load.delay_before(n).as_millis() as u64)
            .collect();
        assert_eq!(delays, [1000, 2000, 4000, 8000]);
        assert_eq!(load.delay_before(60), MAX_BACKOFF);
        let huge = LoadServices {
            backoff_ms: u64::MAX,
            ..load
        };
        assert_eq!(huge.delay_before(3), MAX_BACKOFF);
    }

    #[test]
    fn the_hub_url_is_the_host_root() {
        let mut config = parse(json!({"hub_url": "https://hub.example.org//", "api_key": "k"}));
        assert_eq!(config.hub_base().unwrap(), "https://hub.example.org");
        config.hub_url = "https://hub.example.org/api/".into();
        let err = config.hub_base().unwrap_err();
        assert!(!err.is_retryable());
        assert!(
            err.message().contains("use `https://hub.example.org`"),
            "{err}"
        );
        config.hub_url = "hub.example.org".into();
        assert!(config.hub_base().is_err());
    }

    #[test]
    fn the_api_key_stays_out_of_debug_output() {
        let config = parse(json!({"hub_url": "https://h", "api_key": "very-secret-key"}));
        let shown = format!("{config:?}");
        assert!(!shown.contains("very-secret-key") && shown.contains("<secret>"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = serde_json::from_value::<Config>(
            json!({"hub_url": "https://h", "api_key": "k", "selection_enabled": true}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("selection_enabled"), "{err}");
    }

    #[test]
    fn the_schema_accepts_what_the_type_reads_and_refuses_mistakes() {
        let full = json!({
            "hub_url": "https://communs.example.org",
            "api_key": "k",
            "tag": "les-communs",
            "projects": [1312, 7],
            "load_services": {"delay_ms": 200, "attempts": 3, "backoff_ms": 100}
        });
        assert_eq!(schema_errors(&full), Vec::<String>::new());
        let config = parse(full);
        assert_eq!(config.load_services.attempts, 3);

        for bad in [
            json!({"hub_url": "https://communs.example.org/api", "api_key": "k"}),
            json!({"hub_url": "https://h", "api_key": ""}),
            json!({"hub_url": "https://h"}),
            json!({"hub_url": "https://h", "api_key": "k", "all_projects": true, "projects": [1]}),
            json!({"hub_url": "https://h", "api_key": "k", "projects": [0]}),
            json!({"hub_url": "https://h", "api_key": "k", "load_services": {"attempts": 0}}),
            json!({"hub_url": "https://h", "api_key": "k", "load_services": {"delay": 1}}),
            json!({"hub_url": "https://h", "api_key": "k", "extra": 1}),
        ] {
            assert!(!schema_errors(&bad).is_empty(), "accepted {bad}");
        }
        let all = json!({"hub_url": "https://h", "api_key": "k", "all_projects": true});
        assert_eq!(schema_errors(&all), Vec::<String>::new());
        assert_eq!(schema()["properties"]["api_key"]["writeOnly"], true);
    }
}
