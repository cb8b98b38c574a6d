//! Handlers of the admin JSON API, one per route of [`super::router`]. Each
//! answer is a typed struct, so the OpenAPI document (admin/openapi.rs) is
//! derived from what is really sent.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::{ops, AdminState, ApiError};
use crate::filter::Dropped;
use crate::ids::rfc3339;
use crate::outbound::allow;
use crate::queue::jobs::{self, JobFilter, JobView};
use crate::queue::schedules::ScheduleView;
use crate::registry::{manifest::Task, PluginInfo};
use crate::replicas::Listed;
use crate::secrets::redact_config;
use crate::store::keys::Scope;
use crate::store::{attempts, connections, events, events::EventFilter, sources, state};

type ApiResult<T> = Result<Json<T>, ApiError>;

/// The body of every error of this API and of the auth middleware
/// (`ApiError`'s answer in admin.rs).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub detail: String,
}

/// axum's own answer to a query string it cannot read (`limit=abc`).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // documents a response; never built
pub enum BadQuery {
    #[response(
        status = 400,
        description = "a query parameter of the wrong type (axum's plain-text answer)",
        content_type = "text/plain"
    )]
    Text(String),
}

/// axum's own answers to a body that is not the expected JSON.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // documents responses; never built
pub enum BadBody {
    #[response(
        status = 400,
        description = "the body is not JSON (axum's plain-text answer)",
        content_type = "text/plain"
    )]
    Syntax(String),
    #[response(
        status = 415,
        description = "the body is not sent as `application/json` (axum's plain-text answer)",
        content_type = "text/plain"
    )]
    ContentType(String),
    #[response(
        status = 422,
        description = "the JSON lacks a field or has one of the wrong type (axum's plain-text answer)",
        content_type = "text/plain"
    )]
    Data(String),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Overview {
    /// Events by status.
    pub events: BTreeMap<String, i64>,
    /// Jobs by state.
    pub jobs: BTreeMap<String, i64>,
    /// Plugins loaded.
    pub plugins: usize,
    /// Files of the plugins directory that were refused.
    pub refused_plugin_files: usize,
    pub sources: usize,
    pub connections: usize,
}

/// Counts of events, jobs, plugins, sources and connections.
#[utoipa::path(get, path = "/admin/api/overview", tag = "overview",
    responses((status = 200, body = Overview)))]
pub async fn overview(State(s): State<AdminState>) -> ApiResult<Overview> {
    let (plugins, failures) = s.registry.list();
    Ok(Json(Overview {
        events: events::count_by_status(&s.pool)
            .await?
            .into_iter()
            .collect(),
        jobs: jobs::count_by_state(&s.pool).await?.into_iter().collect(),
        plugins: plugins.len(),
        refused_plugin_files: failures.len(),
        sources: s.catalog.get().sources().count(),
        connections: s.catalog.get().connections().count(),
    }))
}

/// A stored event (without its body: see the detail).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventOut {
    pub id: String,
    /// The source's code.
    pub source: String,
    /// queued, processed, failed, ignored, skipped or invalid.
    pub status: String,
    pub topic: Option<String>,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    pub action: Option<String>,
    pub webhook_uuid: Option<String>,
    /// The request's headers (signatures left out).
    pub headers: Value,
    pub remote_addr: Option<String>,
    pub error: Option<String>,
    /// RFC 3339.
    pub received_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// The connection filters that dropped it (absent when none did).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filtered: Vec<Dropped>,
}

impl From<&events::Event> for EventOut {
    fn from(e: &events::Event) -> Self {
        Self {
            id: e.id.clone(),
            source: e.source.clone(),
            status: e.status.clone(),
            topic: e.topic.clone(),
            object_type: e.object_type.clone(),
            object_id: e.object_id.clone(),
            action: e.action.clone(),
            webhook_uuid: e.webhook_uuid.clone(),
            headers: e.headers.clone(),
            remote_addr: e.remote_addr.clone(),
            error: e.error.clone(),
            received_at: rfc3339(e.received_at),
            updated_at: rfc3339(e.updated_at),
            filtered: e.filtered.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    pub events: Vec<EventOut>,
}

/// Events newest first, filtered; page with `before`.
#[utoipa::path(get, path = "/admin/api/events", tag = "events", params(EventFilter),
    responses((status = 200, body = EventList), BadQuery))]
pub async fn list_events(
    State(s): State<AdminState>,
    Query(filter): Query<EventFilter>,
) -> ApiResult<EventList> {
    let list = events::list(&s.pool, &filter).await?;
    Ok(Json(EventList {
        events: list.iter().map(EventOut::from).collect(),
    }))
}

/// A job with every attempt made.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobDetail {
    #[serde(flatten)]
    pub job: JobView,
    pub attempts_log: Vec<attempts::Attempt>,
}

/// An event with its body and its jobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventDetail {
    #[serde(flatten)]
    pub event: EventOut,
    /// The body as JSON, or as text when it is not JSON.
    pub body: Value,
    pub jobs: Vec<JobDetail>,
}

/// One event with its body, its jobs and their attempts.
#[utoipa::path(get, path = "/admin/api/events/{id}", tag = "events",
    params(("id" = String, Path, description = "event id (`evt_…`)")),
    responses((status = 200, body = EventDetail), (status = 404, body = ErrorDetail)))]
pub async fn get_event(
    State(s): State<AdminState>,
    Path(id): Path<String>,
) -> ApiResult<EventDetail> {
    let event = events::get(&s.pool, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no event {id}")))?;
    let body = match serde_json::from_slice::<Value>(&event.body) {
        Ok(v) => v,
        Err(_) => json!(String::from_utf8_lossy(&event.body)),
    };
    let job_list = jobs::list(
        &s.pool,
        &JobFilter {
            event_id: Some(id),
            limit: Some(1000),
            ..Default::default()
        },
    )
    .await?;
    let mut with_attempts = Vec::new();
    for job in job_list {
        let attempts_log = attempts::for_job(&s.pool, &job.id).await?;
        with_attempts.push(JobDetail { job, attempts_log });
    }
    Ok(Json(EventDetail {
        event: EventOut::from(&event),
        body,
        jobs: with_attempts,
    }))
}

/// Routes the event again: fresh jobs for the connections subscribing now.
#[utoipa::path(post, path = "/admin/api/events/{id}/replay", tag = "events",
    params(("id" = String, Path, description = "event id")),
    responses((status = 200, body = ops::Replayed),
        (status = 400, description = "no such event, or nothing to replay", body = ErrorDetail)))]
pub async fn replay_event(
    State(s): State<AdminState>,
    Path(id): Path<String>,
) -> ApiResult<ops::Replayed> {
    let catalog = s.catalog.get();
    let replayed = ops::replay_event(
        &s.pool,
        &catalog,
        &|p| s.registry.routing(p),
        &id,
        s.max_attempts,
    )
    .await
    .map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
    s.wake.notify_waiters();
    Ok(Json(replayed))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
}

/// Jobs newest first, filtered; page with `before`.
#[utoipa::path(get, path = "/admin/api/jobs", tag = "jobs", params(JobFilter),
    responses((status = 200, body = JobList), BadQuery))]
pub async fn list_jobs(
    State(s): State<AdminState>,
    Query(filter): Query<JobFilter>,
) -> ApiResult<JobList> {
    Ok(Json(JobList {
        jobs: jobs::list(&s.pool, &filter).await?,
    }))
}

/// One job with its attempts.
#[utoipa::path(get, path = "/admin/api/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "job id (`job_…`)")),
    responses((status = 200, body = JobDetail), (status = 404, body = ErrorDetail)))]
pub async fn get_job(State(s): State<AdminState>, Path(id): Path<String>) -> ApiResult<JobDetail> {
    let job = jobs::get(&s.pool, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    let attempts_log = attempts::for_job(&s.pool, &id).await?;
    Ok(Json(JobDetail { job, attempts_log }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Retried {
    pub id: String,
    /// Always `queued`.
    pub state: String,
}

/// Queues a failed or dead job again.
#[utoipa::path(post, path = "/admin/api/jobs/{id}/retry", tag = "jobs",
    params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = Retried), (status = 404, body = ErrorDetail),
        (status = 400, description = "the job is neither failed nor dead", body = ErrorDetail)))]
pub async fn retry_job(State(s): State<AdminState>, Path(id): Path<String>) -> ApiResult<Retried> {
    if jobs::get(&s.pool, &id).await?.is_none() {
        return Err(ApiError::not_found(format!("no job {id}")));
    }
    if !jobs::retry(&s.pool, &id).await? {
        return Err(ApiError::bad_request(
            "only failed or dead jobs can be retried",
        ));
    }
    s.wake.notify_waiters();
    Ok(Json(Retried {
        id,
        state: "queued".into(),
    }))
}

#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RetryFailed {
    /// Only this connection's jobs (default: all).
    connection: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RetriedAll {
    /// Ids of the jobs queued again.
    pub retried: Vec<String>,
}

/// Queues every failed job again.
#[utoipa::path(post, path = "/admin/api/jobs/retry-failed", tag = "jobs", params(RetryFailed),
    responses((status = 200, body = RetriedAll), BadQuery))]
pub async fn retry_failed(
    State(s): State<AdminState>,
    Query(q): Query<RetryFailed>,
) -> ApiResult<RetriedAll> {
    let retried = ops::retry_failed(&s.pool, q.connection.as_deref()).await?;
    s.wake.notify_waiters();
    Ok(Json(RetriedAll { retried }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PluginList {
    /// The plugins this replica serves.
    pub plugins: Vec<PluginInfo>,
    /// Files of the plugins directory that were refused, and why.
    pub refused: Vec<crate::registry::Failure>,
    /// Every replica serving the database and the plugins each serves.
    pub replicas: Vec<Listed>,
    /// Per plugin name, which version the up replicas serve
    /// (`1.2.0 (ab12cd34ef56) on 2, absent on 1`).
    pub served_by: std::collections::BTreeMap<String, String>,
}

async fn replicas_out(s: &AdminState) -> Result<Vec<Listed>, ApiError> {
    Ok(crate::replicas::listed(&s.pool)
        .await
        .map_err(anyhow::Error::from)?)
}

/// Plugins loaded (version, hash, origin, tasks), files refused, and which
/// version each replica serves.
#[utoipa::path(get, path = "/admin/api/plugins", tag = "plugins",
    responses((status = 200, body = PluginList)))]
pub async fn list_plugins(State(s): State<AdminState>) -> ApiResult<PluginList> {
    let (plugins, refused) = s.registry.list();
    let replicas = replicas_out(&s).await?;
    let heartbeats: Vec<_> = replicas.iter().map(|l| l.replica.clone()).collect();
    let now = crate::ids::now_ms();
    let served_by = plugins
        .iter()
        .map(|p| {
            let summary = crate::replicas::served_by(&p.name, &heartbeats, now);
            (p.name.clone(), summary)
        })
        .collect();
    Ok(Json(PluginList {
        plugins,
        refused,
        replicas,
        served_by,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplicaList {
    pub replicas: Vec<Listed>,
}

/// The processes serving this database (up, stopped, or lost: no heartbeat
/// for their `queue.replica_timeout`, their running jobs queued again), the
/// most recently seen first.
#[utoipa::path(get, path = "/admin/api/replicas", tag = "plugins",
    responses((status = 200, body = ReplicaList)))]
pub async fn list_replicas(State(s): State<AdminState>) -> ApiResult<ReplicaList> {
    Ok(Json(ReplicaList {
        replicas: replicas_out(&s).await?,
    }))
}

/// A source; its secrets are counted, never shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceOut {
    pub code: String,
    pub webhook_path: String,
    pub api_url: Option<String>,
    pub api_username: Option<String>,
    pub has_api_password: bool,
    /// How many secrets it has.
    pub secrets: usize,
    pub enabled: bool,
    pub owner: crate::store::Owner,
    /// `recoco` or `standard-webhooks`.
    pub scheme: String,
    /// RFC 3339.
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourceList {
    pub sources: Vec<SourceOut>,
}

/// Sources by code.
#[utoipa::path(get, path = "/admin/api/sources", tag = "sources",
    responses((status = 200, body = SourceList)))]
pub async fn list_sources(State(s): State<AdminState>) -> ApiResult<SourceList> {
    let catalog = s.catalog.get();
    let mut list: Vec<SourceOut> = catalog
        .sources()
        .map(|src| SourceOut {
            code: src.code.clone(),
            webhook_path: format!("/api/webhook/{}", src.code),
            api_url: src.api_url.clone(),
            api_username: src.api_username.clone(),
            has_api_password: src.api_password.is_some(),
            secrets: src.secrets.len(),
            enabled: src.enabled,
            owner: src.owner,
            scheme: src.scheme.as_str().to_string(),
            updated_at: rfc3339(src.updated_at),
        })
        .collect();
    list.sort_by(|a, b| a.code.cmp(&b.code));
    Ok(Json(SourceList { sources: list }))
}

/// Whether a connection runs, and if not why.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    Ok,
    Disabled,
    /// Its config fails the plugin's schema: its jobs wait.
    Invalid,
    PluginNotLoaded,
}

/// A connection; its config is redacted (values the schema marks `writeOnly`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionOut {
    pub name: String,
    /// The source's code.
    pub source: Option<String>,
    pub plugin: String,
    pub plugin_loaded: bool,
    pub enabled: bool,
    /// Who may change it: the configuration file, or the database.
    pub owner: crate::store::Owner,
    pub allowed_hosts: Vec<String>,
    /// True when the hosts are the plugin's defaults.
    pub allowed_hosts_from_plugin: bool,
    /// The config, secrets redacted.
    pub config: Value,
    pub config_problem: Option<String>,
    pub status: ConnectionStatus,
    /// Why it is `invalid`: the failing fields and non-secret values.
    pub invalid_reason: Option<String>,
    pub tasks: Vec<Task>,
    /// RFC 3339.
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionList {
    pub connections: Vec<ConnectionOut>,
}

/// Connections by name, with their status and redacted config.
#[utoipa::path(get, path = "/admin/api/connections", tag = "connections",
    responses((status = 200, body = ConnectionList)))]
pub async fn list_connections(State(s): State<AdminState>) -> ApiResult<ConnectionList> {
    let catalog = s.catalog.get();
    let mut list: Vec<ConnectionOut> = catalog
        .connections()
        .map(|c| {
            let plugin = s.registry.get(&c.plugin);
            let invalid = crate::connection_check::problem(c, &s.registry);
            let schema = plugin.as_ref().map(|p| &p.manifest.config_schema);
            let hosts = match (&c.allowed_hosts, &plugin) {
                (Some(h), _) => h.clone(),
                (None, Some(p)) => {
                    allow::resolve_defaults(&p.manifest.default_allowed_hosts, &c.config)
                }
                (None, None) => vec![],
            };
            ConnectionOut {
                name: c.name.clone(),
                source: catalog.source(c.source_id).map(|s| s.code.clone()),
                plugin: c.plugin.clone(),
                plugin_loaded: plugin.is_some(),
                enabled: c.enabled,
                owner: c.owner,
                allowed_hosts: hosts,
                allowed_hosts_from_plugin: c.allowed_hosts.is_none(),
                config: redact_config(&c.config, schema),
                config_problem: plugin
                    .as_ref()
                    .and_then(|p| p.validate_config(&c.config).err()),
                status: if plugin.is_none() {
                    ConnectionStatus::PluginNotLoaded
                } else if invalid.is_some() {
                    ConnectionStatus::Invalid
                } else if !c.enabled {
                    ConnectionStatus::Disabled
                } else {
                    ConnectionStatus::Ok
                },
                invalid_reason: invalid,
                tasks: plugin
                    .as_ref()
                    .map(|p| p.manifest.tasks.clone())
                    .unwrap_or_default(),
                updated_at: rfc3339(c.updated_at),
            }
        })
        .collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(ConnectionList { connections: list }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionState {
    pub connection: String,
    /// The connector's stored state, by key.
    pub state: BTreeMap<String, String>,
}

/// The state a connection's connector stored.
#[utoipa::path(get, path = "/admin/api/connections/{name}/state", tag = "connections",
    params(("name" = String, Path, description = "connection name")),
    responses((status = 200, body = ConnectionState), (status = 404, body = ErrorDetail)))]
pub async fn connection_state(
    State(s): State<AdminState>,
    Path(name): Path<String>,
) -> ApiResult<ConnectionState> {
    let catalog = s.catalog.get();
    let c = catalog
        .connection_by_name(&name)
        .ok_or_else(|| ApiError::not_found(format!("no connection {name}")))?;
    Ok(Json(ConnectionState {
        state: state::all(&s.pool, c.id).await?.into_iter().collect(),
        connection: name,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskQueued {
    pub job_id: String,
    pub connection: String,
    pub task: String,
}

/// Queues a task of the connection's plugin; the body is its payload.
#[utoipa::path(post, path = "/admin/api/connections/{name}/tasks/{task}", tag = "connections",
    params(("name" = String, Path, description = "connection name"),
        ("task" = String, Path, description = "a task the plugin declares")),
    request_body(content = Option<Value>, description = "the task's payload (default `{}`)"),
    responses((status = 200, body = TaskQueued),
        (status = 400, description = "no such connection or task, the connection is disabled \
            (JSON), or the body is not JSON (axum's plain text)",
            content((ErrorDetail = "application/json"), (String = "text/plain"))),
        (status = 415, description = "a body not sent as `application/json` (axum's plain text)",
            content_type = "text/plain", body = String)))]
pub async fn run_task(
    State(s): State<AdminState>,
    Path((name, task)): Path<(String, String)>,
    payload: Option<Json<Value>>,
) -> ApiResult<TaskQueued> {
    let payload = payload.map(|Json(v)| v).unwrap_or_else(|| json!({}));
    let catalog = s.catalog.get();
    let tasks_of = |p: &str| {
        s.registry
            .get(p)
            .map(|p| p.manifest.tasks.iter().map(|t| t.name.clone()).collect())
    };
    let id = ops::run_task(
        &s.pool,
        &catalog,
        &tasks_of,
        &name,
        &task,
        &payload,
        s.max_attempts,
    )
    .await
    .map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
    s.wake.notify_waiters();
    Ok(Json(TaskQueued {
        job_id: id.to_string(),
        connection: name,
        task,
    }))
}

fn enable_flag(action: &str) -> Result<bool, ApiError> {
    match action {
        "enable" => Ok(true),
        "disable" => Ok(false),
        other => Err(ApiError::not_found(format!(
            "unknown action {other:?} (enable or disable)"
        ))),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourceToggled {
    pub source: String,
    pub enabled: bool,
}

/// Enables or disables a source (a disabled source's webhooks are stored as skipped).
#[utoipa::path(post, path = "/admin/api/sources/{code}/{action}", tag = "sources",
    params(("code" = String, Path, description = "source code"),
        ("action" = String, Path, description = "`enable` or `disable`")),
    responses((status = 200, body = SourceToggled),
        (status = 404, description = "no such source, or an unknown action", body = ErrorDetail)))]
pub async fn toggle_source(
    State(s): State<AdminState>,
    Path((code, action)): Path<(String, String)>,
) -> ApiResult<SourceToggled> {
    let enabled = enable_flag(&action)?;
    if !sources::set_enabled(&s.pool, &code, enabled).await? {
        return Err(ApiError::not_found(format!("no source {code}")));
    }
    s.catalog.reload().await?;
    Ok(Json(SourceToggled {
        source: code,
        enabled,
    }))
}

/// A connection's circuit breaker, concurrency and rate limit in this process.
#[derive(Debug, Serialize, ToSchema)]
pub struct Circuit {
    pub connection_id: i64,
    /// Its name; none once removed.
    pub connection: Option<String>,
    /// `closed`, `open` or `half-open`.
    pub circuit: String,
    pub consecutive_failures: u32,
    /// When an open circuit lets a probe through (RFC 3339).
    pub open_until: Option<String>,
    /// Times the circuit opened since the start.
    pub opened: u32,
    pub running: usize,
    pub max_concurrency: usize,
    /// Runs per second allowed, when limited.
    pub rate_limit: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CircuitList {
    pub circuits: Vec<Circuit>,
}

/// Circuit breaker, concurrency and rate limit of each connection seen.
#[utoipa::path(get, path = "/admin/api/circuits", tag = "connections",
    responses((status = 200, body = CircuitList)))]
pub async fn list_circuits(State(s): State<AdminState>) -> ApiResult<CircuitList> {
    let catalog = s.catalog.get();
    let circuits = s
        .flow
        .views()
        .into_iter()
        .map(|v| Circuit {
            connection_id: v.connection_id,
            connection: catalog.connection(v.connection_id).map(|c| c.name.clone()),
            circuit: v.circuit.to_string(),
            consecutive_failures: v.consecutive_failures,
            open_until: v.open_until.map(rfc3339),
            opened: v.opened,
            running: v.running,
            max_concurrency: v.max_concurrency,
            rate_limit: v.rate_limit,
        })
        .collect();
    Ok(Json(CircuitList { circuits }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleList {
    pub schedules: Vec<ScheduleView>,
}

/// Periodic tasks with their next run.
#[utoipa::path(get, path = "/admin/api/schedules", tag = "connections",
    responses((status = 200, body = ScheduleList)))]
pub async fn list_schedules(State(s): State<AdminState>) -> ApiResult<ScheduleList> {
    let schedules = crate::queue::schedules::list(&s.pool).await?;
    Ok(Json(ScheduleList { schedules }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionToggled {
    pub connection: String,
    pub enabled: bool,
}

/// Enables or disables a connection (a disabled connection's jobs are paused).
#[utoipa::path(post, path = "/admin/api/connections/{name}/{action}", tag = "connections",
    params(("name" = String, Path, description = "connection name"),
        ("action" = String, Path, description = "`enable` or `disable`")),
    responses((status = 200, body = ConnectionToggled),
        (status = 404, description = "no such connection, or an unknown action", body = ErrorDetail)))]
pub async fn toggle_connection(
    State(s): State<AdminState>,
    Path((name, action)): Path<(String, String)>,
) -> ApiResult<ConnectionToggled> {
    let enabled = enable_flag(&action)?;
    if !connections::set_enabled(&s.pool, &name, enabled).await? {
        return Err(ApiError::not_found(format!("no connection {name}")));
    }
    s.catalog.reload().await?;
    crate::follow_catalog(&s.catalog, &s.registry, &s.runtime, &s.flow, &s.wake).await;
    Ok(Json(ConnectionToggled {
        connection: name,
        enabled,
    }))
}

/// An admin key: never the key itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyOut {
    pub name: String,
    pub scope: Scope,
    /// RFC 3339.
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyOut>,
}

/// Admin keys (names, scopes, dates; never the keys).
#[utoipa::path(get, path = "/admin/api/keys", tag = "keys",
    responses((status = 200, body = KeyList)))]
pub async fn list_keys(State(s): State<AdminState>) -> ApiResult<KeyList> {
    let keys = crate::store::keys::list(&s.pool)
        .await?
        .into_iter()
        .map(|k| KeyOut {
            name: k.name,
            scope: k.scope,
            created_at: rfc3339(k.created_at),
            last_used_at: k.last_used_at.map(rfc3339),
            revoked_at: k.revoked_at.map(rfc3339),
        })
        .collect();
    Ok(Json(KeyList { keys }))
}
