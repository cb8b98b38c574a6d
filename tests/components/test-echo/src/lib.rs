//! `test-echo`: every invocation exercises every host import and answers with a
//! JSON summary of what it saw, for the host's integration tests.
//!
//! Each call, in order:
//! 1. logs one line at every level, and writes one line to stdout and stderr;
//! 2. reads state `echo:count` (0 when absent), stores it plus one, stores
//!    `echo:last` (the event id or task name), and lists the keys under `echo:`;
//! 3. POSTs `{"connector", "invocation", "event_id", "topic", "task", "payload"}`
//!    to the config's `url`, with `x-test-echo: 1` and, when the config has a
//!    `secret`, `x-test-echo-secret: <secret>` (so a test can check decryption);
//! 4. `GET`s the config's `source_path` through the source API, if set;
//! 5. schedules the config's `schedule`, if set (from `run-task` only when the
//!    task payload has `"reschedule": true`, so a scheduled echo does not loop);
//! 6. reports progress twice (1 of 2, 2 of 2);
//! 7. fails with "asked to fail" if the config's `fail` says so, honouring
//!    `retry_after_ms`; otherwise returns the summary.
//!
//! The summary also says how many calls this instance's memory has seen
//! (`calls_in_this_instance`, a static counter): 1 every time, since each
//! invocation must start from the module's clean image.
//!
//! Host-call failures are recorded in the summary (`{"error": …}`), never
//! returned, so one test can look at all of them.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use recoco_connector_sdk::http::{Request, Response};
use recoco_connector_sdk::{
    debug, error, info, progress, schedule, source_api, state, trace, warn, Connector, Context,
    Error, Event, Manifest,
};
use serde::Deserialize;
use serde_json::{json, Value};

/// Longest excerpt of a response body kept in the summary, in characters.
const BODY_EXCERPT_CHARS: usize = 500;

/// The connection's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the HTTP request goes.
    pub url: String,
    /// Source API path to `GET` (`/projects/1312/`).
    #[serde(default)]
    pub source_path: Option<String>,
    /// Task to schedule.
    #[serde(default)]
    pub schedule: Option<ScheduleConfig>,
    /// Makes the invocation fail, after everything else ran.
    #[serde(default)]
    pub fail: Option<FailKind>,
    /// `retry-after-ms` of the failure.
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
    /// A secret (`writeOnly`), sent back in a header so tests see it decrypted.
    #[serde(default)]
    pub secret: Option<String>,
}

/// A task to schedule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Task name.
    pub name: String,
    /// Task payload (any JSON; `{}` when absent).
    #[serde(default)]
    pub payload: Option<Value>,
    /// Delay before it runs.
    #[serde(default)]
    pub delay_ms: u64,
    /// Replace a pending task with the same name and key.
    #[serde(default)]
    pub dedup_key: Option<String>,
}

/// Which error to return.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailKind {
    /// `Error::retryable("asked to fail")`.
    Retryable,
    /// `Error::permanent("asked to fail")`.
    Permanent,
}

fn config_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "url": {"type": "string"},
            "source_path": {"type": "string"},
            "schedule": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "payload": {},
                    "delay_ms": {"type": "integer", "minimum": 0},
                    "dedup_key": {"type": "string"}
                },
                "required": ["name"],
                "additionalProperties": false
            },
            "fail": {"enum": ["retryable", "permanent"]},
            "retry_after_ms": {"type": "integer", "minimum": 0},
            "secret": {"type": "string", "writeOnly": true}
        },
        "required": ["url"],
        "additionalProperties": false
    })
}

/// What one invocation is about.
enum Invocation<'a> {
    Event(&'a Event),
    Task { name: &'a str, payload: &'a str },
}

/// The connector.
pub struct Echo;

impl Connector for Echo {
    fn manifest() -> Manifest {
        Manifest::new("test-echo", env!("CARGO_PKG_VERSION"))
            .description("Test component: exercises every host import and echoes what it saw.")
            .author("recoco-sync tests <tests@example.org>")
            .homepage("https://example.org/test-echo")
            .license("AGPL-3.0-or-later")
            .subscribe("*")
            .allow_host("config:/url")
            .config_schema(config_schema())
            .task(
                "echo",
                "Exercises every host import and echoes what it saw.",
            )
    }

    fn handle_event(ctx: &Context, event: &Event) -> Result<String, Error> {
        echo(ctx, Invocation::Event(event))
    }

    fn run_task(ctx: &Context, name: &str, payload: &str) -> Result<String, Error> {
        echo(ctx, Invocation::Task { name, payload })
    }
}

/// Calls this instance's linear memory has seen (in a data segment).
static CALLS: AtomicU32 = AtomicU32::new(0);

fn echo(ctx: &Context, invocation: Invocation<'_>) -> Result<String, Error> {
    let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    let config: Config = ctx.config()?;
    let (kind, label, details) = match &invocation {
        Invocation::Event(event) => ("handle-event", event.id.as_str(), event_json(event)),
        Invocation::Task { name, payload } => (
            "run-task",
            *name,
            json!({"name": name, "payload": parse_or_string(payload)}),
        ),
    };

    trace!("test-echo: trace ({kind} {label})");
    debug!("test-echo: debug ({kind} {label})");
    info!("test-echo: info ({kind} {label})");
    warn!("test-echo: warn ({kind} {label})");
    error!("test-echo: error ({kind} {label})");
    println!("test-echo stdout: {kind} {label}");
    eprintln!("test-echo stderr: {kind} {label}");

    let state = exercise_state(label);
    let http = exercise_http(&config, kind, &details);
    let source_api = config
        .source_path
        .as_deref()
        .map(|path| outcome(source_api::get(path)));
    let scheduled = match (&config.schedule, &invocation) {
        (Some(task), Invocation::Event(_)) => Some(exercise_schedule(task)),
        (Some(task), Invocation::Task { payload, .. })
            if parse_or_string(payload)["reschedule"] == json!(true) =>
        {
            Some(exercise_schedule(task))
        }
        _ => None,
    };
    progress::report(1, Some(2), "test-echo: halfway");
    progress::report(2, Some(2), "test-echo: done");

    if let Some(fail) = config.fail {
        let error = match fail {
            FailKind::Retryable => Error::retryable("asked to fail"),
            FailKind::Permanent => Error::permanent("asked to fail"),
        };
        return Err(match config.retry_after_ms {
            Some(ms) => error.with_retry_after(Duration::from_millis(ms)),
            None => error,
        });
    }

    let detail_key = if kind == "handle-event" {
        "event"
    } else {
        "task"
    };
    let summary = json!({
        "connector": "test-echo",
        "invocation": kind,
        "calls_in_this_instance": calls,
        "context": {
            "connection": ctx.connection,
            "source": ctx.source,
            "job_id": ctx.job_id,
            "attempt": ctx.attempt,
        },
        detail_key: details,
        "state": state,
        "http": http,
        "source_api": source_api,
        "scheduled": scheduled,
        "secret": if config.secret.is_some() { "present" } else { "absent" },
    });
    Ok(summary.to_string())
}

fn event_json(event: &Event) -> Value {
    json!({
        "id": event.id,
        "source": event.source,
        "topic": event.topic,
        "object_type": event.object_type,
        "action": event.action,
        "object_id": event.object_id,
        "received_at": event.received_at,
        "payload_bytes": event.payload.len(),
    })
}

fn exercise_state(label: &str) -> Value {
    let count_before = match state::get_json::<u64>("echo:count") {
        Ok(count) => json!(count.unwrap_or(0)),
        Err(err) => json!({"error": err.message()}),
    };
    let next = count_before.as_u64().unwrap_or(0) + 1;
    let set = [
        state::set_json("echo:count", &next),
        state::set("echo:last", label),
    ];
    let set_errors: Vec<&str> = set
        .iter()
        .filter_map(|result| result.as_ref().err().map(Error::message))
        .collect();
    json!({
        "count_before": count_before,
        // Read back through the host, so a test sees what was stored.
        "count": state::get_json::<u64>("echo:count").ok().flatten(),
        "last": state::get("echo:last"),
        "keys": state::keys("echo:"),
        "set_errors": set_errors,
    })
}

fn exercise_http(config: &Config, kind: &str, details: &Value) -> Value {
    let mut request = Request::post(&config.url)
        .header("x-test-echo", "1")
        .json(&json!({
            "connector": "test-echo",
            "invocation": kind,
            "event_id": details.get("id"),
            "topic": details.get("topic"),
            "task": details.get("name"),
            "payload": details.get("payload"),
        }));
    if let Some(secret) = &config.secret {
        request = request.header("x-test-echo-secret", secret);
    }
    outcome(request.send())
}

fn exercise_schedule(task: &ScheduleConfig) -> Value {
    let payload = task.payload.clone().unwrap_or_else(|| json!({}));
    let result = schedule(
        &task.name,
        &payload.to_string(),
        Duration::from_millis(task.delay_ms),
        task.dedup_key.as_deref(),
    );
    match result {
        Ok(()) => {
            json!({"name": task.name, "delay_ms": task.delay_ms, "dedup_key": task.dedup_key})
        }
        Err(err) => {
            json!({"name": task.name, "error": err.message(), "retryable": err.is_retryable()})
        }
    }
}

/// `{"status", "body"}` of a response, or `{"error", "retryable"}`.
fn outcome(result: Result<Response, Error>) -> Value {
    match result {
        Ok(response) => json!({
            "status": response.status,
            "body": response.text().chars().take(BODY_EXCERPT_CHARS).collect::<String>(),
        }),
        Err(err) => json!({"error": err.message(), "retryable": err.is_retryable()}),
    }
}

fn parse_or_string(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

recoco_connector_sdk::export_connector!(Echo);
