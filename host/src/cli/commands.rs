//! `events`, `jobs`, `keys`, `task` and `status`: their flags (filters checked
//! against the values the service knows) and what they print.

use clap::{Args, Subcommand};
use serde_json::Value;

use recoco_sync::queue::jobs::{JobFilter, JobState};
use recoco_sync::store::events::{EventFilter, EventStatus};

use super::backend::Backend;
use super::exit;
use super::output::{cell, fields, first_text, table, Out};

/// Every job state, for `--state` (a new state fails to compile here).
pub fn job_states() -> Vec<&'static str> {
    use JobState::*;
    let all = [
        Queued, Running, Waiting, Succeeded, Failed, Dead, Paused, Coalesced, Skipped, Cancelled,
    ];
    // Exhaustive: a new variant must be added above.
    let _ = |s: JobState| match s {
        Queued | Running | Waiting | Succeeded | Failed | Dead | Paused | Coalesced | Skipped
        | Cancelled => {}
    };
    all.iter().map(|s| s.as_str()).collect()
}

/// Every event status, for `--status`.
pub fn event_statuses() -> Vec<&'static str> {
    use EventStatus::*;
    let all = [Queued, Processed, Failed, Ignored, Skipped, Invalid];
    let _ = |s: EventStatus| match s {
        Queued | Processed | Failed | Ignored | Skipped | Invalid => {}
    };
    all.iter().map(|s| s.as_str()).collect()
}

fn job_state_parser() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(job_states())
}

fn event_status_parser() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(event_statuses())
}

/// How many rows a list shows: 1 to 1000.
fn limit_parser() -> impl clap::builder::TypedValueParser<Value = i64> {
    clap::value_parser!(i64).range(1..=1000)
}

#[derive(Subcommand)]
pub enum EventsCmd {
    /// Stored events, newest first.
    List(EventsList),
    /// One event: its headers, body, jobs and every attempt.
    Show { id: String },
    /// Route an event again (new jobs for the connections subscribed now).
    Replay { id: String },
}

#[derive(Args)]
pub struct EventsList {
    #[arg(long, value_parser = event_status_parser())]
    pub status: Option<String>,
    /// Source code.
    #[arg(long)]
    pub source: Option<String>,
    /// e.g. `projects.Project/update`.
    #[arg(long)]
    pub topic: Option<String>,
    /// e.g. `projects.Project`.
    #[arg(long)]
    pub object_type: Option<String>,
    #[arg(long)]
    pub object_id: Option<String>,
    /// Only events older than this id (the next page: the last id shown).
    #[arg(long)]
    pub before: Option<String>,
    #[arg(long, default_value_t = 20, value_parser = limit_parser())]
    pub limit: i64,
}

#[derive(Subcommand)]
pub enum JobsCmd {
    /// Jobs, newest first.
    List(JobsList),
    /// One job with every attempt.
    Show { id: String },
    /// Follow a job until it ends, with a progress bar fed by the connector's
    /// progress reports; exit 4 if it ends failed or dead.
    Watch {
        id: String,
        /// Give up after this long (exit 5), e.g. `10m`.
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<std::time::Duration>,
    },
    /// Retry one failed or dead job.
    Retry { id: String },
    /// Retry every failed or dead job (of one connection).
    RetryFailed {
        #[arg(long)]
        connection: Option<String>,
    },
}

#[derive(Args)]
pub struct JobsList {
    #[arg(long, value_parser = job_state_parser())]
    pub state: Option<String>,
    /// Connection name.
    #[arg(long)]
    pub connection: Option<String>,
    #[arg(long, value_parser = ["event", "task"])]
    pub kind: Option<String>,
    /// Jobs of this event.
    #[arg(long)]
    pub event: Option<String>,
    /// Only jobs older than this id (the next page).
    #[arg(long)]
    pub before: Option<String>,
    #[arg(long, default_value_t = 20, value_parser = limit_parser())]
    pub limit: i64,
}

#[derive(Subcommand)]
pub enum KeysCmd {
    /// Create a key and print it (the only time it is shown; only its hash is
    /// kept). Works on the database only.
    Create {
        #[arg(long)]
        name: String,
        /// `read` (sees everything, changes nothing) or `admin`.
        #[arg(long, default_value = "read", value_parser = ["read", "admin"])]
        scope: String,
    },
    /// Name, scope, creation and last use of every key.
    List,
    /// Revoke a key now (and end its page sessions); no restart needed.
    /// Works on the database only.
    Revoke { name: String },
}

#[derive(Args)]
pub struct TaskArgs {
    /// Connection name.
    pub connection: String,
    /// Task name, e.g. `setup` or `sync-all`.
    pub task: String,
    /// JSON payload.
    #[arg(long, default_value = "{}")]
    pub payload: String,
    /// Follow the job until it ends (progress bar, then its summary); exit 4
    /// if it ends failed or dead.
    #[arg(long)]
    pub follow: bool,
    /// With --follow: give up after this long (exit 5), e.g. `10m`.
    #[arg(long, requires = "follow", value_parser = humantime::parse_duration)]
    pub timeout: Option<std::time::Duration>,
}

pub async fn events(backend: &Backend, cmd: EventsCmd, out: Out) -> anyhow::Result<()> {
    match cmd {
        EventsCmd::List(a) => {
            let filter = EventFilter {
                status: a.status,
                source: a.source,
                topic: a.topic,
                object_type: a.object_type,
                object_id: a.object_id,
                before: a.before,
                limit: Some(a.limit),
            };
            let list = backend.list_events(&filter).await?;
            out.print(&Value::Array(list.clone()), || {
                let rows = list
                    .iter()
                    .map(|e| {
                        vec![
                            cell(e, "id"),
                            cell(e, "received_at"),
                            cell(e, "source"),
                            cell(e, "status"),
                            cell(e, "topic"),
                            cell(e, "object_id"),
                            first_text(e, &["error"]),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "id", "received", "source", "status", "topic", "object", "error",
                    ],
                    rows,
                    "events",
                )
            })
        }
        EventsCmd::Show { id } => {
            let e = backend.get_event(&id).await?;
            out.print(&e, || {
                let mut text = fields(&[
                    ("id", cell(&e, "id")),
                    ("source", cell(&e, "source")),
                    ("status", cell(&e, "status")),
                    ("topic", cell(&e, "topic")),
                    (
                        "object",
                        format!("{} {}", cell(&e, "object_type"), cell(&e, "object_id")),
                    ),
                    ("webhook uuid", cell(&e, "webhook_uuid")),
                    ("received", cell(&e, "received_at")),
                    ("updated", cell(&e, "updated_at")),
                    ("from", cell(&e, "remote_addr")),
                    ("error", cell(&e, "error")),
                    ("headers", pretty(&e["headers"])),
                    ("body", pretty(&e["body"])),
                ]);
                let jobs = e["jobs"].as_array().cloned().unwrap_or_default();
                text.push('\n');
                text.push_str(&jobs_table(&jobs));
                for job in &jobs {
                    text.push_str(&format!("\nattempts of job {}:\n", cell(job, "id")));
                    text.push_str(&attempts_table(job));
                }
                text
            })
        }
        EventsCmd::Replay { id } => {
            let replayed = backend.replay_event(&id).await?;
            out.print(&replayed, || {
                let jobs: Vec<String> = replayed["jobs"]
                    .as_array()
                    .map(|j| {
                        j.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                format!(
                    "event {id} routed again: {} new job(s) {}; status {}\n",
                    jobs.len(),
                    jobs.join(" "),
                    cell(&replayed, "status")
                )
            })
        }
    }
}

pub async fn jobs(backend: &Backend, cmd: JobsCmd, out: Out) -> anyhow::Result<()> {
    match cmd {
        JobsCmd::List(a) => {
            let filter = JobFilter {
                state: a.state,
                connection: a.connection,
                event_id: a.event,
                kind: a.kind,
                before: a.before,
                limit: Some(a.limit),
            };
            let list = backend.list_jobs(&filter).await?;
            out.print(&Value::Array(list.clone()), || jobs_table(&list))
        }
        JobsCmd::Show { id } => {
            let job = backend.get_job(&id).await?;
            out.print(&job, || {
                let mut text = fields(&job_fields(&job));
                text.push_str("\nattempts:\n");
                text.push_str(&attempts_table(&job));
                text
            })
        }
        JobsCmd::Watch { id, timeout } => super::follow::follow(backend, &id, timeout, out).await,
        JobsCmd::Retry { id } => {
            backend.retry_job(&id).await?;
            out.print(&serde_json::json!({"id": id, "state": "queued"}), || {
                format!("job {id} queued again\n")
            })
        }
        JobsCmd::RetryFailed { connection } => {
            let retried = backend.retry_failed(connection.as_deref()).await?;
            out.print(&serde_json::json!({"retried": retried}), || {
                format!("{} job(s) queued again\n", retried.len())
            })
        }
    }
}

pub async fn task(backend: &Backend, a: TaskArgs, out: Out) -> anyhow::Result<()> {
    let payload: Value = serde_json::from_str(&a.payload)
        .map_err(|e| exit::usage(format!("--payload must be JSON: {e}")))?;
    let id = backend.run_task(&a.connection, &a.task, &payload).await?;
    if a.follow {
        eprintln!("task {} of {} queued as {id}", a.task, a.connection);
        return super::follow::follow(backend, &id, a.timeout, out).await;
    }
    let answer = serde_json::json!({"job_id": id, "connection": a.connection, "task": a.task});
    out.print(&answer, || format!("{id}\n"))?;
    eprintln!(
        "task {} of {} queued as {id}; follow it with `recoco-sync jobs watch {id}`",
        a.task, a.connection
    );
    Ok(())
}

pub async fn status(backend: &Backend, out: Out) -> anyhow::Result<()> {
    let status = backend.status().await?;
    out.print(&status, || {
        let list = |key: &str| status[key].as_array().cloned().unwrap_or_default();
        let sources = list("sources")
            .iter()
            .map(|s| {
                vec![
                    cell(s, "code"),
                    cell(s, "enabled"),
                    cell(s, "secrets"),
                    cell(s, "api_url"),
                ]
            })
            .collect();
        let connections = list("connections")
            .iter()
            .map(|c| {
                vec![
                    cell(c, "name"),
                    cell(c, "source"),
                    cell(c, "plugin"),
                    cell(c, "enabled"),
                    first_text(c, &["status"]),
                ]
            })
            .collect();
        let counts = |key: &str| {
            let parts: Vec<String> = status[key]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect())
                .unwrap_or_default();
            if parts.is_empty() {
                "none".to_string()
            } else {
                parts.join(", ")
            }
        };
        let replicas = list("replicas");
        let up: Vec<String> = replicas
            .iter()
            .filter(|r| r["state"] == "up")
            .map(|r| cell(r, "id"))
            .collect();
        let replicas = format!(
            "{} up{}{}",
            up.len(),
            if up.is_empty() { "" } else { ": " },
            up.join(", ")
        );
        format!(
            "{}\n{}\nevents: {}\njobs: {}\nreplicas: {replicas}\n",
            table(
                &["source", "enabled", "secrets", "api url"],
                sources,
                "sources"
            ),
            table(
                &["connection", "source", "plugin", "enabled", "status"],
                connections,
                "connections"
            ),
            counts("events"),
            counts("jobs"),
        )
    })
}

/// `keys list` (API or database); `create` and `revoke` are in main.
pub async fn keys_list(backend: &Backend, out: Out) -> anyhow::Result<()> {
    let list = backend.list_keys().await?;
    out.print(&Value::Array(list.clone()), || {
        let rows = list
            .iter()
            .map(|k| {
                let last = match cell(k, "last_used_at").as_str() {
                    "-" => "never".to_string(),
                    t => t.to_string(),
                };
                let status = match cell(k, "revoked_at").as_str() {
                    "-" => "active".to_string(),
                    t => format!("revoked {t}"),
                };
                vec![
                    cell(k, "name"),
                    cell(k, "scope"),
                    cell(k, "created_at"),
                    last,
                    status,
                ]
            })
            .collect();
        table(
            &["name", "scope", "created", "last used", "status"],
            rows,
            "keys",
        )
    })
}

fn pretty(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// What a job does: its task, else its event.
fn job_target(j: &Value) -> String {
    match j["task_name"].as_str() {
        Some(task) => format!("task {task}"),
        None => format!("event {}", cell(j, "event_id")),
    }
}

pub fn job_fields(j: &Value) -> Vec<(&'static str, String)> {
    let progress = match &j["progress"] {
        Value::Null => "-".to_string(),
        p => format!(
            "{}/{} {}",
            p["done"],
            p.get("total")
                .filter(|t| !t.is_null())
                .map_or("?".into(), |t| t.to_string()),
            p["message"].as_str().unwrap_or_default()
        ),
    };
    vec![
        ("id", cell(j, "id")),
        ("state", cell(j, "state")),
        ("connection", cell(j, "connection")),
        ("plugin", cell(j, "plugin")),
        ("does", job_target(j)),
        ("payload", cell(j, "payload")),
        (
            "attempts",
            format!("{}/{}", cell(j, "attempts"), cell(j, "max_attempts")),
        ),
        ("run at", cell(j, "run_at")),
        ("created", cell(j, "created_at")),
        ("updated", cell(j, "updated_at")),
        ("finished", cell(j, "finished_at")),
        ("progress", progress),
        ("summary", cell(j, "summary")),
        ("last error", cell(j, "last_error")),
        ("coalesced", cell(j, "coalesced")),
        ("coalesced into", cell(j, "coalesced_into")),
    ]
}

fn jobs_table(list: &[Value]) -> String {
    let rows = list
        .iter()
        .map(|j| {
            vec![
                cell(j, "id"),
                cell(j, "state"),
                cell(j, "connection"),
                job_target(j),
                format!("{}/{}", cell(j, "attempts"), cell(j, "max_attempts")),
                cell(j, "updated_at"),
                first_text(j, &["last_error", "summary"]),
            ]
        })
        .collect();
    table(
        &[
            "id",
            "state",
            "connection",
            "does",
            "attempts",
            "updated",
            "note",
        ],
        rows,
        "jobs",
    )
}

fn attempts_table(job: &Value) -> String {
    let list = job["attempts_log"].as_array().cloned().unwrap_or_default();
    let rows = list
        .iter()
        .map(|a| {
            vec![
                cell(a, "number"),
                cell(a, "outcome"),
                cell(a, "started_at"),
                format!("{} ms", cell(a, "duration_ms")),
                format!("{}@{}", cell(a, "plugin"), cell(a, "plugin_version")),
                first_text(a, &["error", "summary"]),
            ]
        })
        .collect();
    table(
        &["#", "outcome", "started", "duration", "plugin", "result"],
        rows,
        "attempts",
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_state_and_status_is_offered() {
        assert_eq!(super::job_states().len(), 10);
        assert!(super::job_states().contains(&"dead"));
        assert_eq!(super::event_statuses().len(), 6);
    }
}
