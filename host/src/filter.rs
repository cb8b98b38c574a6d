//! Per-connection routing filters: a [CEL](https://cel.dev) expression the host
//! evaluates for each event before creating the connection's job. An event the
//! filter does not accept creates no job for that connection, and the event
//! records which filter dropped it.
//!
//! The expression sees:
//! - `topic` (`projects.Project/update`), `object_type` (`projects.Project`),
//!   `action` (`update`, or `""`), `object_id` (`"1312"`, or `""`);
//! - `object`: the webhook's `object` (the project, the tagged project, the
//!   task…), and `payload`: the whole webhook body.
//!
//! For example, only projects of department 22:
//! `object.commune.department.code == "22"`; only some tags:
//! `object.tags.exists(t, t in ["tiers-lieu", "patrimoine"])`.
//!
//! It must give `true` or `false`. An expression that cannot be evaluated for
//! an event (a field the event lacks, say) drops it, and the recorded reason
//! gives CEL's error; guard with `has(object.commune)` to decide otherwise.
//! Expressions are checked when the connection is saved: a syntax error, an
//! unknown variable or a result that is not a boolean is refused then.

use std::sync::{Arc, LazyLock};

use cel::{Context, Env, ExecutionError, Program, Value};
use serde::Serialize;

use crate::store::connections::Connection;

/// Variables an expression may use.
pub const VARIABLES: [&str; 6] = [
    "topic",
    "object_type",
    "action",
    "object_id",
    "object",
    "payload",
];

/// The standard CEL environment, built once.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// A compiled filter.
pub struct Filter {
    source: String,
    program: Program,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Filter").field(&self.source).finish()
    }
}

impl Filter {
    /// Compiles and checks `source`; the error says what is wrong in words an
    /// operator can act on.
    pub fn compile(source: &str) -> Result<Self, String> {
        if source.trim().is_empty() {
            return Err("the filter is empty; remove it to receive every event".into());
        }
        let program = Program::compile(source)
            .map_err(|e| format!("the filter is not a valid CEL expression: {e}"))?;
        let filter = Self {
            source: source.to_string(),
            program,
        };
        // A dry run on an empty event finds unknown variables and results that
        // are not booleans; a missing field is normal on an empty event.
        let empty = Subject::new("", "", None, None, b"{\"object\": {}}");
        match filter.run(&empty.context()) {
            Ok(_) => {}
            Err(Problem::Error(ExecutionError::UndeclaredReference(name))) => {
                return Err(format!(
                    "the filter uses the unknown variable `{name}` (known: {})",
                    VARIABLES.join(", ")
                ))
            }
            Err(Problem::NotBool(got)) => {
                return Err(format!("the filter must give true or false, not {got}"))
            }
            Err(Problem::Error(_)) => {}
        }
        Ok(filter)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    fn run(&self, context: &Context) -> Result<bool, Problem> {
        match self.program.execute(context) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(Problem::NotBool(describe(&other))),
            Err(e) => Err(Problem::Error(e)),
        }
    }
}

enum Problem {
    Error(ExecutionError),
    NotBool(String),
}

fn describe(value: &Value) -> String {
    let kind = match value {
        Value::List(_) => "a list",
        Value::Map(_) => "a map",
        Value::Int(_) | Value::UInt(_) | Value::Float(_) => "a number",
        Value::String(_) => "a string",
        Value::Bytes(_) => "bytes",
        Value::Null => "null",
        _ => "a value of another type",
    };
    kind.to_string()
}

/// The event a filter looks at. Its body is parsed for CEL only when a
/// connection has a filter, so unfiltered routing costs nothing.
pub struct Subject<'a> {
    topic: &'a str,
    object_type: &'a str,
    action: Option<&'a str>,
    object_id: Option<&'a str>,
    body: &'a [u8],
    context: Option<Context<'static, 'static>>,
}

impl<'a> Subject<'a> {
    pub fn new(
        topic: &'a str,
        object_type: &'a str,
        action: Option<&'a str>,
        object_id: Option<&'a str>,
        body: &'a [u8],
    ) -> Self {
        Self {
            topic,
            object_type,
            action,
            object_id,
            body,
            context: None,
        }
    }

    fn context(&self) -> Context<'static, 'static> {
        let payload: serde_json::Value =
            serde_json::from_slice(self.body).unwrap_or(serde_json::Value::Null);
        let object = payload.get("object").cloned().unwrap_or_default();
        let mut context = Context::with_env(ENV.clone());
        context.add_variable_from_value("topic", self.topic.to_string());
        context.add_variable_from_value("object_type", self.object_type.to_string());
        context.add_variable_from_value("action", self.action.unwrap_or("").to_string());
        context.add_variable_from_value("object_id", self.object_id.unwrap_or("").to_string());
        context.add_variable_from_value("object", json(&object));
        context.add_variable_from_value("payload", json(&payload));
        context
    }
}

/// JSON to CEL (numbers without a fraction become integers, so `id == 1312`).
fn json(value: &serde_json::Value) -> Value {
    cel::to_value(value).unwrap_or(Value::Null)
}

/// A connection's filter that dropped an event, as the event records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Dropped {
    pub connection: String,
    pub filter: String,
    /// `false`, or why the filter could not be evaluated.
    pub reason: String,
}

/// The routing check: one call per candidate connection, remembering which
/// filters dropped the event.
pub struct Check<'a> {
    subject: Subject<'a>,
    dropped: Vec<Dropped>,
}

impl<'a> Check<'a> {
    pub fn new(subject: Subject<'a>) -> Self {
        Self {
            subject,
            dropped: Vec::new(),
        }
    }

    /// Whether `connection` takes the event (always, without a filter).
    pub fn accepts(&mut self, connection: &Connection) -> bool {
        let Some(filter) = &connection.filter else {
            return true;
        };
        if self.subject.context.is_none() {
            self.subject.context = Some(self.subject.context());
        }
        let context = self.subject.context.as_ref().expect("context just built");
        let reason = match filter.run(context) {
            Ok(true) => return true,
            Ok(false) => "false".to_string(),
            Err(Problem::Error(e)) => format!("cannot be evaluated for this event: {e}"),
            Err(Problem::NotBool(got)) => format!("gave {got}, not true or false"),
        };
        self.dropped.push(Dropped {
            connection: connection.name.clone(),
            filter: filter.source().to_string(),
            reason,
        });
        false
    }

    /// What the event stores: the filters that dropped it, as JSON, if any.
    pub fn dropped_json(&self) -> Option<String> {
        (!self.dropped.is_empty())
            .then(|| serde_json::to_string(&self.dropped).expect("plain strings serialize"))
    }

    pub fn dropped(&self) -> &[Dropped] {
        &self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROJECT: &[u8] = include_bytes!("../../tests/fixtures/webhook-project-update.json");
    const TAGGED: &[u8] = include_bytes!("../../tests/fixtures/webhook-tagged-item.json");

    fn eval(source: &str, body: &[u8]) -> Result<bool, String> {
        let filter = Filter::compile(source)?;
        let envelope: serde_json::Value = serde_json::from_slice(body).unwrap();
        let topic = envelope["topic"].as_str().unwrap();
        let object_type = envelope["object_type"].as_str().unwrap();
        let subject = Subject::new(topic, object_type, None, Some("1312"), body);
        match filter.run(&subject.context()) {
            Ok(b) => Ok(b),
            Err(Problem::Error(e)) => Err(e.to_string()),
            Err(Problem::NotBool(got)) => Err(got),
        }
    }

    #[test]
    fn the_documented_examples() {
        // The fixture's project is in department 79 and tagged tiers-lieu.
        assert_eq!(
            eval(r#"object.commune.department.code == "79""#, PROJECT),
            Ok(true)
        );
        assert_eq!(
            eval(r#"object.commune.department.code == "22""#, PROJECT),
            Ok(false)
        );
        assert_eq!(
            eval(
                r#"object.tags.exists(t, t in ["tiers-lieu", "ecole"])"#,
                TAGGED
            ),
            Ok(true)
        );
        assert_eq!(
            eval(r#"object.tags.exists(t, t in ["ecole"])"#, TAGGED),
            Ok(false)
        );
        assert_eq!(
            eval(
                r#"topic == "projects.Project/update" && object_id == "1312""#,
                PROJECT
            ),
            Ok(true)
        );
        assert_eq!(
            eval(r#"object_type.startsWith("taggit.")"#, TAGGED),
            Ok(true)
        );
        assert_eq!(eval("payload.object.id == 1312", PROJECT), Ok(true));
        // A missing field is an evaluation error (the event is dropped, with why).
        let missing = eval("object.nope == 1", PROJECT).unwrap_err();
        assert!(missing.contains("nope"), "{missing}");
        assert_eq!(
            eval("has(object.nope) && object.nope == 1", PROJECT),
            Ok(false)
        );
    }

    #[test]
    fn invalid_expressions_are_refused_with_a_reason() {
        let syntax = Filter::compile("object.commune.department.code ==").unwrap_err();
        assert!(syntax.contains("not a valid CEL expression"), "{syntax}");
        let unknown = Filter::compile(r#"departement == "22""#).unwrap_err();
        assert!(
            unknown.contains("unknown variable `departement`") && unknown.contains("object_type"),
            "{unknown}"
        );
        let not_bool = Filter::compile("topic").unwrap_err();
        assert!(
            not_bool.contains("true or false, not a string"),
            "{not_bool}"
        );
        assert!(Filter::compile("  ").unwrap_err().contains("empty"));
        // Fields the dry run cannot know are fine.
        assert!(Filter::compile(r#"object.commune.department.code == "22""#).is_ok());
    }
}
