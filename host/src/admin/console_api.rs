//! Routes the admin console needs beyond the base API: dashboard figures,
//! event search with paging, jobs needing attention with bulk actions and
//! "run now", and alert incidents. Errors answer `{"error", "field"}`.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AdminState;
use crate::alerts::incidents::{self, Incident};
use crate::ids::{now_ms, rfc3339};
use crate::queue::jobs::{self, JobView};
use crate::store::events;

/// Window of the dashboard's chart.
const DAY_MS: i64 = 24 * 3600 * 1000;
/// Most jobs one bulk action touches.
const BULK_MAX: i64 = 10_000;

/// An error of the console API: what went wrong and, for bad input, which field.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsoleError {
    pub error: String,
    pub field: Option<String>,
}

pub struct Failure(StatusCode, ConsoleError);

impl Failure {
    fn bad(field: &str, error: impl Into<String>) -> Self {
        Self(
            StatusCode::BAD_REQUEST,
            ConsoleError {
                error: error.into(),
                field: Some(field.into()),
            },
        )
    }

    fn status(status: StatusCode, error: impl Into<String>) -> Self {
        Self(
            status,
            ConsoleError {
                error: error.into(),
                field: None,
            },
        )
    }
}

impl From<anyhow::Error> for Failure {
    fn from(err: anyhow::Error) -> Self {
        tracing::error!(error = %format!("{err:#}"), "admin console request failed");
        Self::status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the service log",
        )
    }
}

impl From<sqlx::Error> for Failure {
    fn from(err: sqlx::Error) -> Self {
        anyhow::Error::from(err).into()
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

type Answer<T> = Result<Json<T>, Failure>;

/// An RFC 3339 time (or milliseconds since the epoch) given as `field`.
fn parse_time(field: &str, value: &Option<String>) -> Result<Option<i64>, Failure> {
    let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(Some(ms));
    }
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| Some(t.timestamp_millis()))
        .map_err(|_| {
            Failure::bad(
                field,
                format!("{field}: {v:?} is not an RFC 3339 time (2026-01-31T12:00:00Z)"),
            )
        })
}

fn like(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

// ---------------------------------------------------------------- dashboard

/// Events received in one minute, by status.
#[derive(Debug, Serialize, ToSchema)]
pub struct Minute {
    /// Start of the minute, ms since the epoch.
    pub at: i64,
    pub counts: BTreeMap<String, i64>,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct QueueStats {
    /// Queued jobs that are due now.
    pub depth: i64,
    /// Age of the oldest due job, in ms (none when nothing is due).
    pub oldest_due_age_ms: Option<i64>,
    /// Queued jobs waiting for their next attempt (backoff).
    pub backoff: i64,
    pub running: i64,
    /// Waiting for their plugin or a valid config.
    pub waiting: i64,
    pub paused: i64,
    pub failed: i64,
    pub dead: i64,
}

/// A connection that needs attention.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionHealth {
    pub name: String,
    /// `closed`, `open` or `half-open` (this process's breaker).
    pub circuit: String,
    pub consecutive_failures: u32,
    pub failed_jobs: i64,
    pub dead_jobs: i64,
    pub last_error: Option<String>,
    pub open_alert: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PausedConnection {
    pub name: String,
    /// `disabled`, `removed`, or `enabled` (jobs still paused).
    pub why: String,
    pub paused_jobs: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Dashboard {
    pub now: String,
    /// Start of the chart's window (24 h ago, on a minute boundary).
    pub since: i64,
    /// Minutes with events, oldest first (minutes without are left out).
    pub minutes: Vec<Minute>,
    pub events_24h: i64,
    pub queue: QueueStats,
    pub failing: Vec<ConnectionHealth>,
    pub paused: Vec<PausedConnection>,
    pub open_alerts: Vec<Incident>,
}

/// Dashboard figures: events per minute by status over 24 h, queue depth and
/// age, failing and paused connections, open alerts.
#[utoipa::path(get, path = "/admin/api/console/dashboard", tag = "console",
    responses((status = 200, body = Dashboard)))]
pub async fn dashboard(State(s): State<AdminState>) -> Answer<Dashboard> {
    let now = now_ms();
    let since = (now - DAY_MS) / 60_000 * 60_000;
    let rows = crate::store::sql::query(
        "SELECT (received_at / 60000) * 60000 AS m, status, COUNT(*) AS n FROM events
         WHERE received_at >= ? GROUP BY m, status ORDER BY m",
    )
    .bind(since)
    .fetch_all(&s.pool)
    .await?;
    let mut minutes: Vec<Minute> = Vec::new();
    let mut events_24h = 0;
    for r in rows {
        let (at, status, n): (i64, String, i64) = (r.get("m"), r.get("status"), r.get("n"));
        events_24h += n;
        match minutes.last_mut() {
            Some(m) if m.at == at => {
                m.counts.insert(status, n);
            }
            _ => minutes.push(Minute {
                at,
                counts: BTreeMap::from([(status, n)]),
            }),
        }
    }
    let q = crate::store::sql::query(
        "SELECT
           COUNT(*) FILTER (WHERE state = 'queued' AND run_at <= ?1) AS depth,
           MIN(CASE WHEN state = 'queued' AND run_at <= ?1 THEN run_at END) AS oldest,
           COUNT(*) FILTER (WHERE state = 'queued' AND run_at > ?1) AS backoff,
           COUNT(*) FILTER (WHERE state = 'running') AS running,
           COUNT(*) FILTER (WHERE state = 'waiting') AS waiting,
           COUNT(*) FILTER (WHERE state = 'paused') AS paused,
           COUNT(*) FILTER (WHERE state = 'failed') AS failed,
           COUNT(*) FILTER (WHERE state = 'dead') AS dead
         FROM jobs WHERE state IN ('queued', 'running', 'waiting', 'paused', 'failed', 'dead')",
    )
    .bind(now)
    .fetch_one(&s.pool)
    .await?;
    let queue = QueueStats {
        depth: q.get("depth"),
        oldest_due_age_ms: q.get::<Option<i64>, _>("oldest").map(|t| (now - t).max(0)),
        backoff: q.get("backoff"),
        running: q.get("running"),
        waiting: q.get("waiting"),
        paused: q.get("paused"),
        failed: q.get("failed"),
        dead: q.get("dead"),
    };
    let open_alerts = incidents::list(&s.pool, Some("open"), None, 100).await?;
    let failed_counts = crate::store::sql::query(
        "SELECT j.connection_id AS id, COUNT(*) FILTER (WHERE j.state = 'failed') AS failed, COUNT(*) FILTER (WHERE j.state = 'dead') AS dead,
           (SELECT last_error FROM jobs k WHERE k.connection_id = j.connection_id AND k.state IN ('failed', 'dead')
            ORDER BY k.updated_at DESC LIMIT 1) AS last_error
         FROM jobs j WHERE j.state IN ('failed', 'dead') GROUP BY j.connection_id",
    )
    .fetch_all(&s.pool)
    .await?;
    let mut failing: HashMap<i64, ConnectionHealth> = HashMap::new();
    let catalog = s.catalog.get();
    let name_of = |id: i64| {
        catalog
            .connection(id)
            .map(|c| c.name.clone())
            .unwrap_or_else(|| format!("#{id}"))
    };
    let health = |name: String| ConnectionHealth {
        name,
        circuit: "closed".into(),
        consecutive_failures: 0,
        failed_jobs: 0,
        dead_jobs: 0,
        last_error: None,
        open_alert: false,
    };
    for r in failed_counts {
        let id: i64 = r.get("id");
        let h = failing.entry(id).or_insert_with(|| health(name_of(id)));
        h.failed_jobs = r.get("failed");
        h.dead_jobs = r.get("dead");
        h.last_error = r.get("last_error");
    }
    for v in s.flow.views() {
        if v.circuit != "closed" || v.consecutive_failures > 0 {
            let h = failing
                .entry(v.connection_id)
                .or_insert_with(|| health(name_of(v.connection_id)));
            h.circuit = v.circuit.to_string();
            h.consecutive_failures = v.consecutive_failures;
        }
    }
    for id in incidents::open_connections(&s.pool).await? {
        failing
            .entry(id)
            .or_insert_with(|| health(name_of(id)))
            .open_alert = true;
    }
    let mut failing: Vec<ConnectionHealth> = failing.into_values().collect();
    failing.sort_by(|a, b| a.name.cmp(&b.name));
    let paused_jobs: HashMap<i64, i64> = crate::store::sql::query(
        "SELECT connection_id, COUNT(*) AS n FROM jobs WHERE state = 'paused' GROUP BY connection_id",
    )
    .fetch_all(&s.pool)
    .await?
    .into_iter()
    .map(|r| (r.get("connection_id"), r.get("n")))
    .collect();
    let mut paused: Vec<PausedConnection> = catalog
        .connections()
        .filter(|c| !c.enabled || c.removed || paused_jobs.contains_key(&c.id))
        .map(|c| PausedConnection {
            name: c.name.clone(),
            why: if c.removed {
                "removed"
            } else if !c.enabled {
                "disabled"
            } else {
                "enabled"
            }
            .into(),
            paused_jobs: paused_jobs.get(&c.id).copied().unwrap_or(0),
        })
        .collect();
    paused.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(Dashboard {
        now: rfc3339(now),
        since,
        minutes,
        events_24h,
        queue,
        failing,
        paused,
        open_alerts,
    }))
}

// ---------------------------------------------------------------- events

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    pub source: Option<String>,
    pub topic: Option<String>,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    pub status: Option<String>,
    /// Received at or after (RFC 3339).
    pub since: Option<String>,
    /// Received before (RFC 3339).
    pub until: Option<String>,
    /// Text searched in the id, object id, webhook uuid, error and body.
    pub q: Option<String>,
    /// Page after this one: events older than this id.
    pub before: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
}

/// An event in a listing (no body, no headers: see `GET /admin/api/events/{id}`).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventRow {
    pub id: String,
    pub source: String,
    pub status: String,
    pub topic: Option<String>,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    pub action: Option<String>,
    pub error: Option<String>,
    pub received_at: String,
    pub jobs: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<EventRow>,
    /// Events matching the filters, all pages.
    pub total: i64,
    /// `before` of the next page; none on the last.
    pub next_before: Option<String>,
}

const EVENT_STATUSES: &[&str] = &[
    "queued",
    "processed",
    "failed",
    "ignored",
    "skipped",
    "invalid",
];

/// The `WHERE` conditions of an event search (after `WHERE 1 = 1`).
fn push_event_filters(
    q: &mut crate::store::sql::Query,
    engine: crate::store::Engine,
    f: &EventQuery,
    since: Option<i64>,
    until: Option<i64>,
) {
    for (column, value) in [
        ("s.code", &f.source),
        ("e.topic", &f.topic),
        ("e.object_type", &f.object_type),
        ("e.object_id", &f.object_id),
        ("e.status", &f.status),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            q.push(format!(" AND {column} = ")).push_bind(v.to_string());
        }
    }
    if let Some(t) = since {
        q.push(" AND e.received_at >= ").push_bind(t);
    }
    if let Some(t) = until {
        q.push(" AND e.received_at < ").push_bind(t);
    }
    if let Some(text) = f.q.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        let pattern = like(text);
        q.push(" AND (e.id = ")
            .push_bind(text.to_string())
            .push(" OR e.object_id = ")
            .push_bind(text.to_string())
            .push(" OR e.webhook_uuid = ")
            .push_bind(text.to_string())
            .push(" OR e.error LIKE ")
            .push_bind(pattern.clone())
            .push(format!(
                " ESCAPE '\\' OR {} LIKE ",
                engine.bytes_as_text("e.body")
            ))
            .push_bind(pattern)
            .push(" ESCAPE '\\')");
    }
}

/// Events newest first, filtered, searched and paged.
#[utoipa::path(get, path = "/admin/api/console/events", tag = "console", params(EventQuery),
    responses((status = 200, body = EventPage),
        (status = 400, description = "a bad filter (JSON, naming the field), or a query parameter of the wrong type (axum's plain text)",
        content((ConsoleError = "application/json"), (String = "text/plain")))))]
pub async fn search_events(
    State(s): State<AdminState>,
    Query(f): Query<EventQuery>,
) -> Answer<EventPage> {
    if let Some(status) = f.status.as_deref().filter(|v| !v.is_empty()) {
        if !EVENT_STATUSES.contains(&status) {
            return Err(Failure::bad(
                "status",
                format!(
                    "status {status:?} is not one of {}",
                    EVENT_STATUSES.join(", ")
                ),
            ));
        }
    }
    let since = parse_time("since", &f.since)?;
    let until = parse_time("until", &f.until)?;
    let limit = f.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Failure::bad("limit", "limit must be between 1 and 200"));
    }
    let mut count = crate::store::sql::Query::new(
        "SELECT COUNT(*) FROM events e JOIN sources s ON s.id = e.source_id WHERE 1 = 1",
    );
    push_event_filters(&mut count, s.pool.engine(), &f, since, until);
    let total: i64 = count.build_query_scalar::<i64>().fetch_one(&s.pool).await?;
    let mut page = crate::store::sql::Query::new(
        "SELECT e.id, s.code AS source, e.status, e.topic, e.object_type, e.object_id, e.action, e.error, e.received_at,
           (SELECT COUNT(*) FROM jobs j WHERE j.event_id = e.id) AS jobs
         FROM events e JOIN sources s ON s.id = e.source_id WHERE 1 = 1",
    );
    push_event_filters(&mut page, s.pool.engine(), &f, since, until);
    if let Some(before) = f.before.as_deref().filter(|v| !v.is_empty()) {
        page.push(" AND e.id < ").push_bind(before.to_string());
    }
    page.push(" ORDER BY e.id DESC LIMIT ").push_bind(limit + 1);
    let mut rows: Vec<EventRow> = page
        .build()
        .fetch_all(&s.pool)
        .await?
        .into_iter()
        .map(|r| EventRow {
            id: r.get("id"),
            source: r.get("source"),
            status: r.get("status"),
            topic: r.get("topic"),
            object_type: r.get("object_type"),
            object_id: r.get("object_id"),
            action: r.get("action"),
            error: r.get("error"),
            received_at: rfc3339(r.get("received_at")),
            jobs: r.get("jobs"),
        })
        .collect();
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok(Json(EventPage {
        next_before: more.then(|| rows.last().map(|e| e.id.clone())).flatten(),
        events: rows,
        total,
    }))
}

// ---------------------------------------------------------------- jobs

const ATTENTION_STATES: &[&str] = &["failed", "dead", "paused", "waiting", "backoff"];

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// Comma-separated among failed, dead, paused, waiting, backoff (queued for
    /// a later attempt); default `failed,dead`.
    pub state: Option<String>,
    pub connection: Option<String>,
    /// Last changed at or after (RFC 3339).
    pub since: Option<String>,
    /// Last changed before (RFC 3339).
    pub until: Option<String>,
    /// Text found in the last error.
    pub error: Option<String>,
    /// Page after this one: jobs older than this id.
    pub before: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    /// Jobs as `GET /admin/api/jobs` shows them.
    pub jobs: Vec<JobView>,
    pub total: i64,
    pub next_before: Option<String>,
}

/// The SQL condition selecting jobs of `states` (see [`JobQuery::state`]).
fn state_condition(states: &[String], now: i64) -> String {
    let mut parts: Vec<String> = Vec::new();
    let plain: Vec<String> = states
        .iter()
        .filter(|s| s.as_str() != "backoff")
        .map(|s| format!("'{s}'"))
        .collect();
    if !plain.is_empty() {
        parts.push(format!("j.state IN ({})", plain.join(", ")));
    }
    if states.iter().any(|s| s == "backoff") {
        parts.push(format!(
            "(j.state = 'queued' AND j.run_at > {now} AND j.attempts > 0)"
        ));
    }
    format!("({})", parts.join(" OR "))
}

/// States from a comma list, each checked (they are put into SQL as literals).
fn parse_states(
    field: &str,
    given: Option<&str>,
    allowed: &[&str],
) -> Result<Vec<String>, Failure> {
    let list: Vec<String> = given
        .unwrap_or("failed,dead")
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if list.is_empty() {
        return Err(Failure::bad(field, format!("{field} is empty")));
    }
    for s in &list {
        if !allowed.contains(&s.as_str()) {
            return Err(Failure::bad(
                field,
                format!("{field} {s:?} is not one of {}", allowed.join(", ")),
            ));
        }
    }
    Ok(list)
}

struct JobSelection {
    states: Vec<String>,
    connection: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    error: Option<String>,
}

impl JobSelection {
    fn push(&self, q: &mut crate::store::sql::Query, now: i64) {
        q.push(" AND ").push(state_condition(&self.states, now));
        if let Some(c) = &self.connection {
            q.push(" AND c.name = ").push_bind(c.clone());
        }
        if let Some(t) = self.since {
            q.push(" AND j.updated_at >= ").push_bind(t);
        }
        if let Some(t) = self.until {
            q.push(" AND j.updated_at < ").push_bind(t);
        }
        if let Some(e) = &self.error {
            q.push(" AND j.last_error LIKE ")
                .push_bind(like(e))
                .push(" ESCAPE '\\'");
        }
    }
}

const JOB_VIEW: &str = "SELECT j.id, c.name AS connection FROM jobs j JOIN connections c ON c.id = j.connection_id WHERE 1 = 1";

/// Jobs needing attention (failed, dead, paused, waiting, or in backoff),
/// newest first.
#[utoipa::path(get, path = "/admin/api/console/jobs", tag = "console", params(JobQuery),
    responses((status = 200, body = JobPage),
        (status = 400, description = "a bad filter (JSON, naming the field), or a query parameter of the wrong type (axum's plain text)",
        content((ConsoleError = "application/json"), (String = "text/plain")))))]
pub async fn attention_jobs(
    State(s): State<AdminState>,
    Query(f): Query<JobQuery>,
) -> Answer<JobPage> {
    let limit = f.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Failure::bad("limit", "limit must be between 1 and 200"));
    }
    let sel = JobSelection {
        states: parse_states("state", f.state.as_deref(), ATTENTION_STATES)?,
        connection: f.connection.clone().filter(|c| !c.is_empty()),
        since: parse_time("since", &f.since)?,
        until: parse_time("until", &f.until)?,
        error: f.error.clone().filter(|e| !e.is_empty()),
    };
    let now = now_ms();
    let mut count = crate::store::sql::Query::new(
        "SELECT COUNT(*) FROM jobs j JOIN connections c ON c.id = j.connection_id WHERE 1 = 1",
    );
    sel.push(&mut count, now);
    let total: i64 = count.build_query_scalar::<i64>().fetch_one(&s.pool).await?;
    let mut page = crate::store::sql::Query::new(JOB_VIEW);
    sel.push(&mut page, now);
    if let Some(before) = f.before.as_deref().filter(|v| !v.is_empty()) {
        page.push(" AND j.id < ").push_bind(before.to_string());
    }
    page.push(" ORDER BY j.id DESC LIMIT ").push_bind(limit + 1);
    let ids: Vec<String> = page
        .build()
        .fetch_all(&s.pool)
        .await?
        .into_iter()
        .map(|r| r.get("id"))
        .collect();
    let more = ids.len() as i64 > limit;
    let mut list = Vec::new();
    for id in ids.iter().take(limit as usize) {
        if let Some(job) = jobs::get(&s.pool, id).await? {
            list.push(job);
        }
    }
    Ok(Json(JobPage {
        next_before: more.then(|| list.last().map(|j| j.id.clone())).flatten(),
        jobs: list,
        total,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct BulkAction {
    /// `retry` (queued now with a fresh attempt budget) or `discard` (given
    /// up: state `discarded`, kept for the record).
    pub action: String,
    /// Among failed, dead (default both).
    #[serde(default)]
    pub states: Option<Vec<String>>,
    pub connection: Option<String>,
    /// Last changed at or after (RFC 3339).
    pub since: Option<String>,
    pub until: Option<String>,
    /// Text found in the last error.
    pub error: Option<String>,
    /// False (default): only count what would change, for the confirmation.
    #[serde(default)]
    pub confirm: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResult {
    pub action: String,
    /// Jobs the selection matches now.
    pub matched: i64,
    /// Jobs changed (0 without `confirm`).
    pub changed: i64,
    pub confirmed: bool,
}

/// Retries or discards every failed or dead job a selection matches; without
/// `confirm`, only counts them.
#[utoipa::path(post, path = "/admin/api/console/jobs/bulk", tag = "console", request_body = BulkAction,
    responses((status = 200, body = BulkResult),
        (status = 400, description = "a bad selection (JSON, naming the field), or a body that is not JSON (axum's plain text)",
            content((ConsoleError = "application/json"), (String = "text/plain"))),
        (status = 415, description = "a body not sent as `application/json` (axum's plain text)",
            content_type = "text/plain", body = String),
        (status = 422, description = "a body lacking `action` or with a field of the wrong type (axum's plain text)",
            content_type = "text/plain", body = String)))]
pub async fn bulk_jobs(
    State(s): State<AdminState>,
    Json(b): Json<BulkAction>,
) -> Answer<BulkResult> {
    let new_state = match b.action.as_str() {
        "retry" => "queued",
        "discard" => "discarded",
        other => {
            return Err(Failure::bad(
                "action",
                format!("action {other:?} is not retry or discard"),
            ))
        }
    };
    let joined = b.states.as_ref().map(|v| v.join(","));
    let sel = JobSelection {
        states: parse_states("states", joined.as_deref(), &["failed", "dead"])?,
        connection: b.connection.clone().filter(|c| !c.is_empty()),
        since: parse_time("since", &b.since)?,
        until: parse_time("until", &b.until)?,
        error: b.error.clone().filter(|e| !e.is_empty()),
    };
    if let Some(c) = &sel.connection {
        if s.catalog.get().connection_by_name(c).is_none() {
            return Err(Failure::bad("connection", format!("no connection {c:?}")));
        }
    }
    let now = now_ms();
    let mut count = crate::store::sql::Query::new(
        "SELECT COUNT(*) FROM jobs j JOIN connections c ON c.id = j.connection_id WHERE 1 = 1",
    );
    sel.push(&mut count, now);
    let matched: i64 = count.build_query_scalar::<i64>().fetch_one(&s.pool).await?;
    if !b.confirm || matched == 0 {
        return Ok(Json(BulkResult {
            action: b.action,
            matched,
            changed: 0,
            confirmed: b.confirm,
        }));
    }
    let mut tx = s.pool.begin().await?;
    let mut update = crate::store::sql::Query::new("UPDATE jobs SET state = ");
    update.push_bind(new_state);
    if new_state == "queued" {
        update
            .push(", attempts = 0, finished_at = NULL, run_at = ")
            .push_bind(now);
    } else {
        update.push(", finished_at = ").push_bind(now);
    }
    update
        .push(", updated_at = ")
        .push_bind(now)
        .push(" WHERE id IN (SELECT j.id FROM jobs j JOIN connections c ON c.id = j.connection_id WHERE 1 = 1");
    sel.push(&mut update, now);
    update
        .push(" LIMIT ")
        .push_bind(BULK_MAX)
        .push(") RETURNING event_id");
    let rows = update.build().fetch_all(&mut tx).await?;
    let changed = rows.len() as i64;
    let mut event_ids: Vec<String> = rows
        .into_iter()
        .filter_map(|r| r.get::<Option<String>, _>("event_id"))
        .collect();
    event_ids.sort();
    event_ids.dedup();
    for id in &event_ids {
        events::refresh_status(&mut tx, id).await?;
    }
    tx.commit().await?;
    if new_state == "queued" {
        s.wake.notify_waiters();
    }
    tracing::info!(action = %b.action, jobs = changed, "bulk job action");
    Ok(Json(BulkResult {
        action: b.action,
        matched,
        changed,
        confirmed: true,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunNow {
    pub id: String,
    /// The state it was in.
    pub was: String,
    pub state: String,
}

/// Runs a job now: a failed or dead one is queued with a fresh attempt
/// budget; one waiting in backoff is moved to now (its attempts kept).
#[utoipa::path(post, path = "/admin/api/console/jobs/{id}/run-now", tag = "console",
    params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = RunNow), (status = 404, body = ConsoleError),
        (status = 409, description = "the job is paused, waiting, running or finished", body = ConsoleError)))]
pub async fn run_now(State(s): State<AdminState>, Path(id): Path<String>) -> Answer<RunNow> {
    let job = jobs::get(&s.pool, &id)
        .await?
        .ok_or_else(|| Failure::status(StatusCode::NOT_FOUND, format!("no job {id}")))?;
    let now = now_ms();
    let done =
        match job.state.as_str() {
            "failed" | "dead" => jobs::retry(&s.pool, &id).await?,
            "queued" => crate::store::sql::query(
                "UPDATE jobs SET run_at = ?1, updated_at = ?1 WHERE id = ?2 AND state = 'queued'",
            )
            .bind(now)
            .bind(&id)
            .execute(&s.pool)
            .await?
            .rows_affected()
                == 1,
            "paused" => {
                return Err(Failure::status(
                    StatusCode::CONFLICT,
                    format!(
                        "job {id} is paused: enable connection {} to resume it",
                        job.connection
                    ),
                ))
            }
            "waiting" => {
                return Err(Failure::status(
                    StatusCode::CONFLICT,
                    format!(
                        "job {id} waits for its plugin or a valid config: {}",
                        job.last_error.as_deref().unwrap_or("see the connection")
                    ),
                ))
            }
            other => {
                return Err(Failure::status(
                    StatusCode::CONFLICT,
                    format!("job {id} is {other}: there is nothing to run"),
                ))
            }
        };
    if !done {
        return Err(Failure::status(
            StatusCode::CONFLICT,
            format!("job {id} changed meanwhile; reload"),
        ));
    }
    s.wake.notify_waiters();
    Ok(Json(RunNow {
        id,
        was: job.state,
        state: "queued".into(),
    }))
}

// ---------------------------------------------------------------- alerts

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// `open`, `resolved` or absent (all).
    pub state: Option<String>,
    pub connection: Option<String>,
    /// 1 to 1000 (default 100).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertList {
    pub alerts: Vec<Incident>,
    /// Open incidents, all connections.
    pub open: i64,
}

/// Alert incidents, newest first.
#[utoipa::path(get, path = "/admin/api/alerts", tag = "console", params(AlertQuery),
    responses((status = 200, body = AlertList),
        (status = 400, description = "a bad filter (JSON, naming the field), or a query parameter of the wrong type (axum's plain text)",
        content((ConsoleError = "application/json"), (String = "text/plain")))))]
pub async fn list_alerts(
    State(s): State<AdminState>,
    Query(f): Query<AlertQuery>,
) -> Answer<AlertList> {
    let state = f.state.as_deref().filter(|v| !v.is_empty());
    if let Some(st) = state {
        if !["open", "resolved"].contains(&st) {
            return Err(Failure::bad("state", "state must be open or resolved"));
        }
    }
    let limit = f.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Failure::bad("limit", "limit must be between 1 and 1000"));
    }
    let alerts = incidents::list(&s.pool, state, f.connection.as_deref(), limit).await?;
    let open = incidents::open_connections(&s.pool).await?.len() as i64;
    Ok(Json(AlertList { alerts, open }))
}
