//! Handlers of the admin JSON API, one per route of [`super::router`].

use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::{json, Value};

use super::{ops, AdminState, ApiError};
use crate::ids::rfc3339;
use crate::outbound::allow;
use crate::queue::jobs::{self, JobFilter};
use crate::secrets::redact_config;
use crate::store::{attempts, connections, events, events::EventFilter, sources, state};

type ApiResult = Result<Json<Value>, ApiError>;

pub async fn overview(State(s): State<AdminState>) -> ApiResult {
    let events: serde_json::Map<String, Value> = events::count_by_status(&s.pool)
        .await?
        .into_iter()
        .map(|(k, n)| (k, json!(n)))
        .collect();
    let jobs: serde_json::Map<String, Value> = jobs::count_by_state(&s.pool)
        .await?
        .into_iter()
        .map(|(k, n)| (k, json!(n)))
        .collect();
    let (plugins, failures) = s.registry.list();
    Ok(Json(json!({
        "events": events,
        "jobs": jobs,
        "plugins": plugins.len(),
        "refused_plugin_files": failures.len(),
        "sources": s.catalog.get().sources().count(),
        "connections": s.catalog.get().connections().count(),
    })))
}

fn event_json(e: &events::Event) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or_default();
    v["received_at"] = json!(rfc3339(e.received_at));
    v["updated_at"] = json!(rfc3339(e.updated_at));
    v
}

pub async fn list_events(
    State(s): State<AdminState>,
    Query(filter): Query<EventFilter>,
) -> ApiResult {
    let list = events::list(&s.pool, &filter).await?;
    Ok(Json(
        json!({"events": list.iter().map(event_json).collect::<Vec<_>>()}),
    ))
}

pub async fn get_event(State(s): State<AdminState>, Path(id): Path<String>) -> ApiResult {
    let event = events::get(&s.pool, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no event {id}")))?;
    let mut out = event_json(&event);
    out["body"] = match serde_json::from_slice::<Value>(&event.body) {
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
        let tries = attempts::for_job(&s.pool, &job.id).await?;
        let mut j = serde_json::to_value(&job).unwrap_or_default();
        j["attempts_log"] = json!(tries);
        with_attempts.push(j);
    }
    out["jobs"] = json!(with_attempts);
    Ok(Json(out))
}

pub async fn replay_event(State(s): State<AdminState>, Path(id): Path<String>) -> ApiResult {
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
    Ok(Json(json!(replayed)))
}

pub async fn list_jobs(State(s): State<AdminState>, Query(filter): Query<JobFilter>) -> ApiResult {
    Ok(Json(json!({"jobs": jobs::list(&s.pool, &filter).await?})))
}

pub async fn get_job(State(s): State<AdminState>, Path(id): Path<String>) -> ApiResult {
    let job = jobs::get(&s.pool, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    let mut out = serde_json::to_value(&job).unwrap_or_default();
    out["attempts_log"] = json!(attempts::for_job(&s.pool, &id).await?);
    Ok(Json(out))
}

pub async fn retry_job(State(s): State<AdminState>, Path(id): Path<String>) -> ApiResult {
    if jobs::get(&s.pool, &id).await?.is_none() {
        return Err(ApiError::not_found(format!("no job {id}")));
    }
    if !jobs::retry(&s.pool, &id).await? {
        return Err(ApiError::bad_request(
            "only failed or dead jobs can be retried",
        ));
    }
    s.wake.notify_waiters();
    Ok(Json(json!({"id": id, "state": "queued"})))
}

#[derive(serde::Deserialize)]
pub struct RetryFailed {
    connection: Option<String>,
}

pub async fn retry_failed(State(s): State<AdminState>, Query(q): Query<RetryFailed>) -> ApiResult {
    let retried = ops::retry_failed(&s.pool, q.connection.as_deref()).await?;
    s.wake.notify_waiters();
    Ok(Json(json!({"retried": retried})))
}

pub async fn list_plugins(State(s): State<AdminState>) -> ApiResult {
    let (plugins, failures) = s.registry.list();
    Ok(Json(json!({"plugins": plugins, "refused": failures})))
}

pub async fn list_sources(State(s): State<AdminState>) -> ApiResult {
    let catalog = s.catalog.get();
    let mut list: Vec<Value> = catalog
        .sources()
        .map(|src| {
            json!({
                "code": src.code,
                "webhook_path": format!("/api/webhook/{}", src.code),
                "api_url": src.api_url,
                "api_username": src.api_username,
                "has_api_password": src.api_password.is_some(),
                "secrets": src.secrets.len(),
                "enabled": src.enabled,
                "owner": src.owner,
                "scheme": src.scheme.as_str(),
                "updated_at": rfc3339(src.updated_at),
            })
        })
        .collect();
    list.sort_by(|a, b| a["code"].as_str().cmp(&b["code"].as_str()));
    Ok(Json(json!({"sources": list})))
}

pub async fn list_connections(State(s): State<AdminState>) -> ApiResult {
    let catalog = s.catalog.get();
    let mut list: Vec<Value> = catalog
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
            json!({
                "name": c.name,
                "source": catalog.source(c.source_id).map(|s| s.code.clone()),
                "plugin": c.plugin,
                "plugin_loaded": plugin.is_some(),
                "enabled": c.enabled,
                "owner": c.owner,
                "allowed_hosts": hosts,
                "allowed_hosts_from_plugin": c.allowed_hosts.is_none(),
                "config": redact_config(&c.config, schema),
                "config_problem": plugin.as_ref().and_then(|p| p.validate_config(&c.config).err()),
                // `invalid`: its jobs wait until the config is fixed (`invalid_reason` says why).
                "status": if plugin.is_none() {
                    "plugin_not_loaded"
                } else if invalid.is_some() {
                    "invalid"
                } else if !c.enabled {
                    "disabled"
                } else {
                    "ok"
                },
                "invalid_reason": invalid,
                "tasks": plugin.as_ref().map(|p| p.manifest.tasks.clone()).unwrap_or_default(),
                "updated_at": rfc3339(c.updated_at),
            })
        })
        .collect();
    list.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(Json(json!({"connections": list})))
}

pub async fn connection_state(State(s): State<AdminState>, Path(name): Path<String>) -> ApiResult {
    let catalog = s.catalog.get();
    let c = catalog
        .connection_by_name(&name)
        .ok_or_else(|| ApiError::not_found(format!("no connection {name}")))?;
    let entries: serde_json::Map<String, Value> = state::all(&s.pool, c.id)
        .await?
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
    Ok(Json(json!({"connection": name, "state": entries})))
}

pub async fn run_task(
    State(s): State<AdminState>,
    Path((name, task)): Path<(String, String)>,
    payload: Option<Json<Value>>,
) -> ApiResult {
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
    Ok(Json(
        json!({"job_id": id, "connection": name, "task": task}),
    ))
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

pub async fn toggle_source(
    State(s): State<AdminState>,
    Path((code, action)): Path<(String, String)>,
) -> ApiResult {
    let enabled = enable_flag(&action)?;
    if !sources::set_enabled(&s.pool, &code, enabled).await? {
        return Err(ApiError::not_found(format!("no source {code}")));
    }
    s.catalog.reload().await?;
    Ok(Json(json!({"source": code, "enabled": enabled})))
}

/// Circuit breaker, concurrency and rate limit of each connection seen.
pub async fn list_circuits(State(s): State<AdminState>) -> ApiResult {
    let catalog = s.catalog.get();
    let list: Vec<Value> = s
        .flow
        .views()
        .into_iter()
        .map(|v| {
            let mut j = serde_json::to_value(&v).unwrap_or_default();
            j["connection"] = json!(catalog.connection(v.connection_id).map(|c| c.name.clone()));
            j["open_until"] = json!(v.open_until.map(rfc3339));
            j
        })
        .collect();
    Ok(Json(json!({"circuits": list})))
}

/// Periodic tasks with their next run.
pub async fn list_schedules(State(s): State<AdminState>) -> ApiResult {
    let list = crate::queue::schedules::list(&s.pool).await?;
    Ok(Json(json!({"schedules": list})))
}

pub async fn toggle_connection(
    State(s): State<AdminState>,
    Path((name, action)): Path<(String, String)>,
) -> ApiResult {
    let enabled = enable_flag(&action)?;
    if !connections::set_enabled(&s.pool, &name, enabled).await? {
        return Err(ApiError::not_found(format!("no connection {name}")));
    }
    s.catalog.reload().await?;
    crate::queue_follow_catalog(&s.pool, &s.flow, &s.wake).await;
    Ok(Json(json!({"connection": name, "enabled": enabled})))
}

/// Admin keys (names, scopes, dates; never the keys).
pub async fn list_keys(State(s): State<AdminState>) -> ApiResult {
    let list: Vec<Value> = crate::store::keys::list(&s.pool)
        .await?
        .into_iter()
        .map(|k| {
            json!({
                "name": k.name,
                "scope": k.scope,
                "created_at": rfc3339(k.created_at),
                "last_used_at": k.last_used_at.map(rfc3339),
                "revoked_at": k.revoked_at.map(rfc3339),
            })
        })
        .collect();
    Ok(Json(json!({"keys": list})))
}
