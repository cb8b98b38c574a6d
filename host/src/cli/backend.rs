//! Where the CLI's commands act: the running service's admin API (`--url`),
//! or the database directly. Both give the admin API's JSON shapes, so the
//! commands print the same whichever is used.

use anyhow::Context as _;
use serde_json::{json, Value};

use recoco_sync::admin::ops;
use recoco_sync::catalog::CatalogHandle;
use recoco_sync::queue::jobs::{self, JobFilter};
use recoco_sync::secrets::redact_config;
use recoco_sync::store::{self, attempts, events, events::EventFilter};

use super::client::AdminClient;
use super::exit;

/// The database side: what `operate` opened.
pub struct Db {
    pub pool: store::Pool,
    pub catalog: CatalogHandle,
    pub max_attempts: u32,
}

pub enum Backend {
    Api(AdminClient),
    Db(Db),
}

fn query_of(
    pairs: &[(&'static str, &Option<String>)],
    limit: Option<i64>,
) -> Vec<(&'static str, String)> {
    let mut q: Vec<(&'static str, String)> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (*k, v.clone())))
        .collect();
    if let Some(limit) = limit {
        q.push(("limit", limit.to_string()));
    }
    q
}

fn list_of(mut value: Value, key: &str) -> Vec<Value> {
    match value.get_mut(key).map(Value::take) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    }
}

impl Backend {
    pub async fn list_events(&self, f: &EventFilter) -> anyhow::Result<Vec<Value>> {
        match self {
            Self::Api(api) => {
                let q = query_of(
                    &[
                        ("status", &f.status),
                        ("source", &f.source),
                        ("topic", &f.topic),
                        ("object_type", &f.object_type),
                        ("object_id", &f.object_id),
                        ("before", &f.before),
                    ],
                    f.limit,
                );
                Ok(list_of(api.get(&["events"], &q).await?, "events"))
            }
            Self::Db(db) => Ok(events::list(&db.pool, f)
                .await?
                .iter()
                .map(|e| serde_json::to_value(e).unwrap_or_default())
                .collect()),
        }
    }

    /// An event with its body, its jobs and each job's attempts.
    pub async fn get_event(&self, id: &str) -> anyhow::Result<Value> {
        match self {
            Self::Api(api) => api.get(&["events", id], &[]).await,
            Self::Db(db) => {
                let e = events::get(&db.pool, id)
                    .await?
                    .ok_or_else(|| exit::not_found(format!("no event {id}")))?;
                let mut out = serde_json::to_value(&e)?;
                out["body"] = serde_json::from_slice(&e.body).unwrap_or_else(|_| {
                    Value::String(String::from_utf8_lossy(&e.body).into_owned())
                });
                let filter = JobFilter {
                    event_id: Some(id.to_string()),
                    limit: Some(1000),
                    ..Default::default()
                };
                let mut list = Vec::new();
                for job in jobs::list(&db.pool, &filter).await? {
                    let mut j = serde_json::to_value(&job)?;
                    j["attempts_log"] = json!(attempts::for_job(&db.pool, &job.id).await?);
                    list.push(j);
                }
                out["jobs"] = Value::Array(list);
                Ok(out)
            }
        }
    }

    pub async fn replay_event(&self, id: &str) -> anyhow::Result<Value> {
        match self {
            Self::Api(api) => api.post(&["events", id, "replay"], &[], None).await,
            Self::Db(db) => {
                if events::get(&db.pool, id).await?.is_none() {
                    return Err(exit::not_found(format!("no event {id}")));
                }
                let known = ops::KnownPlugins::load(&db.pool).await?;
                let replayed = ops::replay_event(
                    &db.pool,
                    &db.catalog.get(),
                    &|p| known.subscriptions.get(p).cloned(),
                    id,
                    db.max_attempts,
                )
                .await?;
                Ok(json!(replayed))
            }
        }
    }

    pub async fn list_jobs(&self, f: &JobFilter) -> anyhow::Result<Vec<Value>> {
        match self {
            Self::Api(api) => {
                let q = query_of(
                    &[
                        ("state", &f.state),
                        ("connection", &f.connection),
                        ("event_id", &f.event_id),
                        ("kind", &f.kind),
                        ("before", &f.before),
                    ],
                    f.limit,
                );
                Ok(list_of(api.get(&["jobs"], &q).await?, "jobs"))
            }
            Self::Db(db) => Ok(jobs::list(&db.pool, f)
                .await?
                .iter()
                .map(|j| serde_json::to_value(j).unwrap_or_default())
                .collect()),
        }
    }

    /// A job with its attempts (`attempts_log`).
    pub async fn get_job(&self, id: &str) -> anyhow::Result<Value> {
        match self {
            Self::Api(api) => api.get(&["jobs", id], &[]).await,
            Self::Db(db) => {
                let job = jobs::get(&db.pool, id)
                    .await?
                    .ok_or_else(|| exit::not_found(format!("no job {id}")))?;
                let mut out = serde_json::to_value(&job)?;
                out["attempts_log"] = json!(attempts::for_job(&db.pool, id).await?);
                Ok(out)
            }
        }
    }

    pub async fn retry_job(&self, id: &str) -> anyhow::Result<()> {
        match self {
            Self::Api(api) => api.post(&["jobs", id, "retry"], &[], None).await.map(drop),
            Self::Db(db) => {
                let job = jobs::get(&db.pool, id)
                    .await?
                    .ok_or_else(|| exit::not_found(format!("no job {id}")))?;
                anyhow::ensure!(
                    jobs::retry(&db.pool, id).await?,
                    "job {id} is {}: only failed or dead jobs can be retried",
                    job.state
                );
                Ok(())
            }
        }
    }

    /// Ids of the jobs queued again.
    pub async fn retry_failed(&self, connection: Option<&str>) -> anyhow::Result<Vec<String>> {
        match self {
            Self::Api(api) => {
                let q: Vec<(&str, String)> = connection
                    .map(|c| vec![("connection", c.to_string())])
                    .unwrap_or_default();
                let answer = api.post(&["jobs", "retry-failed"], &q, None).await?;
                Ok(list_of(answer, "retried")
                    .into_iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect())
            }
            Self::Db(db) => ops::retry_failed(&db.pool, connection).await,
        }
    }

    /// Queues a task; the new job's id.
    pub async fn run_task(
        &self,
        connection: &str,
        task: &str,
        payload: &Value,
    ) -> anyhow::Result<String> {
        match self {
            Self::Api(api) => {
                let known = list_of(api.get(&["connections"], &[]).await?, "connections");
                if !known.iter().any(|c| c["name"] == connection) {
                    return Err(exit::not_found(format!("no connection {connection:?}")));
                }
                let answer = api
                    .post(
                        &["connections", connection, "tasks", task],
                        &[],
                        Some(payload),
                    )
                    .await?;
                answer["job_id"]
                    .as_str()
                    .map(String::from)
                    .context("the service did not answer a job id")
            }
            Self::Db(db) => {
                let catalog = db.catalog.get();
                let Some(conn) = catalog.connection_by_name(connection) else {
                    return Err(exit::not_found(format!("no connection {connection:?}")));
                };
                let known = ops::KnownPlugins::load(&db.pool).await?;
                if let Some(problem) = known.unreadable.get(&conn.plugin) {
                    anyhow::bail!(
                        "the stored manifest of plugin {} does not parse ({problem}); \
                         its tasks cannot be checked: load a valid version of the plugin",
                        conn.plugin
                    );
                }
                let id = ops::run_task(
                    &db.pool,
                    &catalog,
                    &|p| known.tasks.get(p).cloned(),
                    connection,
                    task,
                    payload,
                    db.max_attempts,
                )
                .await?;
                Ok(id.to_string())
            }
        }
    }

    /// Sources, connections (configs redacted), events by status, jobs by
    /// state, replicas and their state.
    pub async fn status(&self) -> anyhow::Result<Value> {
        match self {
            Self::Api(api) => {
                let overview = api.get(&["overview"], &[]).await?;
                let sources = list_of(api.get(&["sources"], &[]).await?, "sources");
                let connections = list_of(api.get(&["connections"], &[]).await?, "connections");
                let replicas = list_of(api.get(&["replicas"], &[]).await?, "replicas");
                Ok(json!({
                    "sources": sources,
                    "connections": connections,
                    "events": overview["events"],
                    "jobs": overview["jobs"],
                    "replicas": replicas,
                }))
            }
            Self::Db(db) => {
                let snapshot = db.catalog.get();
                let sources: Vec<_> = snapshot
                    .sources()
                    .map(|s| json!({"code": s.code, "api_url": s.api_url, "enabled": s.enabled, "secrets": s.secrets.len(), "updated_at": s.updated_at}))
                    .collect();
                let connections: Vec<_> = snapshot
                    .connections()
                    .map(|c| {
                        json!({"name": c.name, "plugin": c.plugin, "enabled": c.enabled,
                            "source": snapshot.source(c.source_id).map(|s| s.code.clone()),
                            "allowed_hosts": c.allowed_hosts, "config": redact_config(&c.config, None),
                            "updated_at": c.updated_at})
                    })
                    .collect();
                let counts = |rows: Vec<(String, i64)>| {
                    rows.into_iter()
                        .map(|(k, n)| (k, json!(n)))
                        .collect::<serde_json::Map<_, _>>()
                };
                let replicas = recoco_sync::replicas::listed(&db.pool).await?;
                Ok(json!({
                    "sources": sources,
                    "connections": connections,
                    "events": counts(events::count_by_status(&db.pool).await?),
                    "jobs": counts(jobs::count_by_state(&db.pool).await?),
                    "replicas": replicas,
                }))
            }
        }
    }

    pub async fn list_keys(&self) -> anyhow::Result<Vec<Value>> {
        match self {
            Self::Api(api) => Ok(list_of(api.get(&["keys"], &[]).await?, "keys")),
            Self::Db(db) => Ok(store::keys::list(&db.pool)
                .await?
                .into_iter()
                .map(|k| {
                    json!({"name": k.name, "scope": k.scope.as_str(), "created_at": k.created_at,
                        "last_used_at": k.last_used_at, "revoked_at": k.revoked_at})
                })
                .collect()),
        }
    }
}
