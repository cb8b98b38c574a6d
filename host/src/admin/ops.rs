//! Operator actions, shared by the HTTP API and the CLI (which runs them against
//! the database directly, with or without a service running).

use std::collections::HashMap;

use anyhow::{bail, Context as _};
use serde::Serialize;

use crate::catalog::Catalog;
use crate::ids::{now_ms, EventId, JobId};
use crate::queue::{jobs, JobKind, NewJob};
use crate::store::{events, events::EventStatus, plugins, Pool};
use crate::{filter, routing};

/// A plugin's subscriptions and tasks, as last seen (the CLI has no registry).
#[derive(Debug, Clone, Default)]
pub struct KnownPlugins {
    pub subscriptions: HashMap<String, routing::Routing>,
    pub tasks: HashMap<String, Vec<String>>,
    /// Config schema of each plugin.
    pub schemas: HashMap<String, serde_json::Value>,
    /// Plugins whose stored manifest does not parse, with the reason.
    pub unreadable: HashMap<String, String>,
}

impl KnownPlugins {
    pub async fn load(pool: &Pool) -> anyhow::Result<Self> {
        let mut known = Self::default();
        for (name, manifest) in plugins::known(pool).await? {
            match serde_json::from_value::<crate::registry::Manifest>(manifest) {
                Ok(m) => {
                    let routing = routing::Routing::of(&m);
                    known.schemas.insert(name.clone(), m.config_schema.clone());
                    known
                        .tasks
                        .insert(name.clone(), m.tasks.into_iter().map(|t| t.name).collect());
                    known.subscriptions.insert(name, routing);
                }
                Err(err) => {
                    known.unreadable.insert(name, err.to_string());
                }
            }
        }
        Ok(known)
    }

    /// What the stored manifest of `plugin` says of `config` (for changes made
    /// without a running service).
    pub fn check(
        &self,
        plugin: &str,
        config: &serde_json::Value,
    ) -> Option<crate::managed::PluginFacts> {
        let schema = self.schemas.get(plugin)?;
        let verdict = match jsonschema::validator_for(schema) {
            Ok(v) => crate::registry::check_config(plugin, &v, schema, config),
            Err(e) => Err(format!(
                "the stored schema of plugin {plugin} does not compile: {e}"
            )),
        };
        Some(crate::managed::PluginFacts {
            config_schema: schema.clone(),
            verdict,
        })
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Replayed {
    pub event_id: String,
    pub jobs: Vec<String>,
    pub status: String,
}

/// Routes a stored event again, creating fresh jobs for the connections that
/// subscribe to it now (for a skipped event once its source is enabled, or to
/// push an event again after a fix).
pub async fn replay_event(
    pool: &Pool,
    catalog: &Catalog,
    plugins: &(dyn Fn(&str) -> Option<routing::Routing> + Sync),
    event_id: &str,
    max_attempts: u32,
) -> anyhow::Result<Replayed> {
    let event = events::get(pool, event_id)
        .await?
        .with_context(|| format!("no event {event_id}"))?;
    let (Some(topic), Some(object_type)) = (&event.topic, &event.object_type) else {
        bail!(
            "event {event_id} is invalid ({}); there is nothing to replay",
            event.error.as_deref().unwrap_or("no envelope")
        );
    };
    let source = catalog
        .source_by_code(&event.source)
        .with_context(|| format!("source {} no longer exists", event.source))?;
    if !source.enabled {
        bail!(
            "source {} is disabled; enable it before replaying",
            source.code
        );
    }
    let id = EventId::from(event.id.clone());
    let mut filters = filter::Check::new(filter::Subject::new(
        topic,
        object_type,
        event.action.as_deref(),
        event.object_id.as_deref(),
        &event.body,
    ));
    let new_jobs = routing::jobs_for(
        catalog,
        plugins,
        &routing::EventRef::new(source.id, &id, object_type, topic, &event.body),
        max_attempts,
        &mut filters,
    );
    let mut tx = pool.begin().await?;
    events::set_filtered(&mut tx, &event.id, filters.dropped_json().as_deref()).await?;
    for job in &new_jobs {
        jobs::insert(&mut tx, job).await?;
    }
    if new_jobs.is_empty() {
        events::set_status(&mut tx, &event.id, EventStatus::Ignored).await?;
    } else {
        events::refresh_status(&mut tx, &event.id).await?;
        jobs::announce(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(Replayed {
        event_id: event.id,
        jobs: new_jobs.iter().map(|j| j.id.to_string()).collect(),
        status: if new_jobs.is_empty() {
            "ignored".into()
        } else {
            "queued".into()
        },
    })
}

/// Queues task `task` of connection `connection` to run now.
pub async fn run_task(
    pool: &Pool,
    catalog: &Catalog,
    tasks_of: &(dyn Fn(&str) -> Option<Vec<String>> + Sync),
    connection: &str,
    task: &str,
    payload: &serde_json::Value,
    max_attempts: u32,
) -> anyhow::Result<JobId> {
    let conn = catalog
        .connection_by_name(connection)
        .with_context(|| format!("no connection {connection:?}"))?;
    if !conn.enabled {
        bail!("connection {connection:?} is disabled");
    }
    if let Some(tasks) = tasks_of(&conn.plugin) {
        if !tasks.iter().any(|t| t == task) {
            bail!(
                "plugin {} has no task {task:?} (it offers: {})",
                conn.plugin,
                tasks.join(", ")
            );
        }
    }
    let job = NewJob {
        id: JobId::new(),
        connection_id: conn.id,
        plugin: conn.plugin.clone(),
        kind: JobKind::Task {
            name: task.to_string(),
            payload: payload.to_string(),
        },
        dedup_key: None,
        max_attempts,
        run_at: now_ms(),
        ordering_key: None,
    };
    jobs::enqueue_task(pool, &job).await
}

/// Retries every failed or dead job (of one connection, when given).
pub async fn retry_failed(pool: &Pool, connection: Option<&str>) -> anyhow::Result<Vec<String>> {
    let mut retried = Vec::new();
    for state in ["failed", "dead"] {
        let filter = jobs::JobFilter {
            state: Some(state.into()),
            connection: connection.map(str::to_string),
            limit: Some(1000),
            ..Default::default()
        };
        for job in jobs::list(pool, &filter).await? {
            if jobs::retry(pool, &job.id).await? {
                retried.push(job.id);
            }
        }
    }
    Ok(retried)
}
