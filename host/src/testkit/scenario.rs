//! The scenario file of `recoco-sync plugin test` (TOML): the connection a
//! connector runs for, and steps — an event or a task in, the requests it must
//! send with the answers to give back, the outcome, state and scheduled tasks
//! expected after it. README, "Testing a connector", documents the format.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The component, relative to the scenario file.
    pub component: Option<PathBuf>,
    #[serde(default)]
    pub connection: ConnectionSpec,
    /// The connection's state before the first step.
    #[serde(default)]
    pub state: BTreeMap<String, String>,
    #[serde(default)]
    pub steps: Vec<Step>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSpec {
    pub name: Option<String>,
    pub source: Option<String>,
    /// The connection's config, checked against the plugin's schema.
    pub config: Option<Value>,
    /// Default: the manifest's default allowed hosts, resolved against config.
    pub allowed_hosts: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub name: Option<String>,
    pub event: Option<EventSpec>,
    pub task: Option<String>,
    /// The task's payload (JSON), `{}` when absent.
    pub payload: Option<Value>,
    #[serde(default)]
    pub expect: Expect,
    /// A substring of the summary (ok) or of the error message (retry, fail).
    pub summary: Option<String>,
    /// The attempt number the connector sees (default 1).
    pub attempt: Option<u32>,
    #[serde(default)]
    pub http: Vec<Exchange>,
    #[serde(default)]
    pub source_api: Vec<Exchange>,
    /// State keys and the values they must hold after the step (a string
    /// compares as text, anything else as JSON).
    pub state: Option<BTreeMap<String, Value>>,
    /// Checked when present: exactly these tasks were scheduled.
    pub scheduled: Option<Vec<Scheduled>>,
}

/// A webhook body file (relative to the scenario), or an inline event.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum EventSpec {
    File(PathBuf),
    Inline { topic: String, object: Value },
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    #[default]
    Ok,
    Retry,
    Fail,
}

impl Expect {
    pub fn word(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Retry => "retry",
            Self::Fail => "fail",
        }
    }
}

/// One request the connector must send and the recorded answer it gets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exchange {
    pub method: String,
    /// The absolute URL (`http`), or the path (`source_api`).
    pub url: Option<String>,
    pub path: Option<String>,
    /// Headers the request must carry with these values (`"*"`: present).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body parses as JSON and contains this (objects: these keys).
    pub json: Option<Value>,
    /// The body is exactly this text.
    pub body: Option<String>,
    #[serde(default = "ok_status")]
    pub status: u16,
    /// The answer's body as JSON, or as text.
    pub response: Option<Value>,
    pub response_body: Option<String>,
    #[serde(default)]
    pub response_headers: BTreeMap<String, String>,
}

fn ok_status() -> u16 {
    200
}

impl Exchange {
    /// What the request must be sent to.
    pub fn target(&self) -> &str {
        self.url.as_deref().or(self.path.as_deref()).unwrap_or("")
    }

    pub fn response_bytes(&self) -> Vec<u8> {
        match (&self.response, &self.response_body) {
            (Some(json), _) => json.to_string().into_bytes(),
            (None, Some(text)) => text.clone().into_bytes(),
            (None, None) => Vec::new(),
        }
    }

    pub fn response_header_list(&self) -> Vec<(String, String)> {
        let mut headers: Vec<(String, String)> = self
            .response_headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        if self.response.is_some()
            && !self
                .response_headers
                .keys()
                .any(|k| k.eq_ignore_ascii_case("content-type"))
        {
            headers.push(("content-type".into(), "application/json".into()));
        }
        headers
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scheduled {
    pub name: String,
    /// The payload contains this (JSON subset).
    pub payload: Option<Value>,
    pub dedup_key: Option<String>,
}

impl Scenario {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let scenario: Self = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid scenario", path.display()))?;
        for (i, step) in scenario.steps.iter().enumerate() {
            let which = step
                .name
                .clone()
                .unwrap_or_else(|| format!("step {}", i + 1));
            match (&step.event, &step.task) {
                (Some(_), Some(_)) => {
                    anyhow::bail!("{}: {which} has both `event` and `task`", path.display())
                }
                (None, None) => {
                    anyhow::bail!("{}: {which} needs an `event` or a `task`", path.display())
                }
                _ => {}
            }
            for exchange in step.http.iter() {
                if exchange.url.is_none() {
                    anyhow::bail!(
                        "{}: {which}: every `http` entry needs a `url`",
                        path.display()
                    );
                }
            }
            for exchange in step.source_api.iter() {
                if exchange.path.is_none() {
                    anyhow::bail!(
                        "{}: {which}: every `source_api` entry needs a `path`",
                        path.display()
                    );
                }
            }
        }
        Ok(scenario)
    }
}

/// Whether `actual` contains `expected`: every key of an expected object
/// (recursively), arrays element by element, other values equal.
pub fn contains(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => e
            .iter()
            .all(|(k, ev)| a.get(k).is_some_and(|av| contains(av, ev))),
        (Value::Array(a), Value::Array(e)) => {
            a.len() == e.len() && a.iter().zip(e).all(|(av, ev)| contains(av, ev))
        }
        // TOML has no null; integers and floats compare by value.
        (Value::Number(a), Value::Number(e)) => a.as_f64() == e.as_f64(),
        _ => actual == expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn contains_is_a_recursive_subset_on_objects_only() {
        let actual = json!({"a": 1, "b": {"c": [1, {"d": 2, "e": 3}]}, "f": "x"});
        assert!(contains(&actual, &json!({"a": 1})));
        assert!(contains(&actual, &json!({"b": {"c": [1, {"d": 2}]}})));
        assert!(contains(&actual, &json!({"a": 1.0})));
        assert!(!contains(&actual, &json!({"a": 2})));
        assert!(
            !contains(&actual, &json!({"b": {"c": [1]}})),
            "arrays keep their length"
        );
        assert!(!contains(&actual, &json!({"g": 1})));
    }

    #[test]
    fn a_step_needs_exactly_one_of_event_and_task() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(&path, "[[steps]]\nname = \"x\"\n").unwrap();
        let err = Scenario::load(&path).unwrap_err().to_string();
        assert!(err.contains("x needs an `event` or a `task`"), "{err}");
        std::fs::write(&path, "[[steps]]\ntask = \"a\"\nbogus = 1\n").unwrap();
        let err = format!("{:#}", Scenario::load(&path).unwrap_err());
        assert!(err.contains("unknown field `bogus`"), "{err}");
    }
}
