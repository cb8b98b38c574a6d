//! The watcher: every half second, reads the attempts recorded since its last
//! look and the circuit breakers' state, counts consecutive failed runs per
//! connection, and opens or resolves incidents. Notices are sent in the
//! background; their outcome is stored with the incident.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::incidents::{self, Trigger};
use super::notify::{Notice, Notifier};
use super::{AlertsConfig, Reason};
use crate::flow::FlowControl;
use crate::store::Pool;

const EVERY: Duration = Duration::from_millis(500);
/// Attempts read per look (a backlog is read over several looks).
const BATCH: i64 = 1000;

pub struct Watcher {
    pool: Pool,
    flow: Arc<FlowControl>,
    threshold: u32,
    notifier: Arc<Notifier>,
    /// Last attempt seen (attempts ids only grow).
    cursor: i64,
    failures: HashMap<i64, u32>,
    /// Times each circuit had opened when last seen.
    circuits: HashMap<i64, u32>,
    open: HashSet<i64>,
    /// Last run seen per connection, for a circuit incident's details.
    last: HashMap<i64, Trigger>,
}

impl Watcher {
    /// Starts from now: runs recorded before the start open nothing.
    pub async fn new(
        pool: Pool,
        flow: Arc<FlowControl>,
        config: &AlertsConfig,
    ) -> anyhow::Result<Self> {
        let cursor: i64 =
            crate::store::sql::query_scalar("SELECT COALESCE(MAX(id), 0) FROM attempts")
                .fetch_one(&pool)
                .await?;
        let circuits = flow
            .views()
            .into_iter()
            .map(|v| (v.connection_id, v.opened))
            .collect();
        Ok(Self {
            pool,
            flow,
            threshold: config.failure_threshold,
            notifier: Arc::new(Notifier::new(config)?),
            cursor,
            failures: HashMap::new(),
            circuits,
            open: HashSet::new(),
            last: HashMap::new(),
        })
    }

    pub fn spawn(mut self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(EVERY) => {}
                    _ = shutdown.cancelled() => return,
                }
                if let Err(err) = self.look().await {
                    tracing::warn!(error = %format!("{err:#}"), "alerts: cannot check recent job runs");
                }
            }
        })
    }

    /// One look at what happened since the last.
    pub async fn look(&mut self) -> anyhow::Result<()> {
        self.open = incidents::open_connections(&self.pool)
            .await?
            .into_iter()
            .collect();
        let rows = crate::store::sql::query(
            "SELECT a.id, a.job_id, a.number, a.plugin, a.plugin_version, a.outcome, a.error,
                    j.connection_id, j.event_id, c.name AS connection
             FROM attempts a JOIN jobs j ON j.id = a.job_id JOIN connections c ON c.id = j.connection_id
             WHERE a.id > ? ORDER BY a.id LIMIT ?",
        )
        .bind(self.cursor)
        .bind(BATCH)
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            self.cursor = row.get("id");
            let connection_id: i64 = row.get("connection_id");
            let outcome: String = row.get("outcome");
            let error: Option<String> = row.get("error");
            // A throttle (429/503 with Retry-After) says the target is up: neutral.
            if outcome == "retry"
                && error
                    .as_deref()
                    .is_some_and(|e| e.ends_with("no attempt used)"))
            {
                continue;
            }
            let count = self.failures.entry(connection_id).or_default();
            if outcome == "succeeded" {
                *count = 0;
                if self.open.remove(&connection_id) {
                    if let Some(incident) = incidents::resolve(&self.pool, connection_id).await? {
                        tracing::info!(connection = %incident.connection, incident = incident.id, "alert resolved: the connection succeeds again");
                        self.notify(incident, Notice::Resolved);
                    }
                }
                continue;
            }
            *count += 1;
            let trigger = Trigger {
                connection_id,
                connection: row.get("connection"),
                plugin: Some(row.get("plugin")),
                plugin_version: row.get("plugin_version"),
                job_id: Some(row.get("job_id")),
                event_id: row.get("event_id"),
                attempt: Some(row.get("number")),
                error,
                failures: *count,
            };
            let reason = if outcome == "dead" {
                Some(Reason::Dead)
            } else if self.threshold > 0 && *count >= self.threshold {
                Some(Reason::Failures)
            } else {
                None
            };
            if let Some(reason) = reason {
                self.open(reason, &trigger).await?;
            }
            self.last.insert(connection_id, trigger);
        }
        for view in self.flow.views() {
            let seen = self.circuits.insert(view.connection_id, view.opened);
            if view.opened > seen.unwrap_or(0) {
                let mut trigger =
                    self.last
                        .get(&view.connection_id)
                        .cloned()
                        .unwrap_or_else(|| Trigger {
                            connection_id: view.connection_id,
                            connection: format!("#{}", view.connection_id),
                            ..Default::default()
                        });
                trigger.failures = view.consecutive_failures;
                self.open(Reason::CircuitOpen, &trigger).await?;
            }
        }
        Ok(())
    }

    async fn open(&mut self, reason: Reason, trigger: &Trigger) -> anyhow::Result<()> {
        if let Some(incident) = incidents::open(&self.pool, reason, trigger).await? {
            tracing::warn!(connection = %incident.connection, incident = incident.id, reason = reason.as_str(), "alert: {}", incident.summary);
            self.notify(incident, Notice::Opened);
        }
        self.open.insert(trigger.connection_id);
        Ok(())
    }

    fn notify(&self, incident: incidents::Incident, notice: Notice) {
        if !self.notifier.enabled() {
            return;
        }
        let (pool, notifier) = (self.pool.clone(), self.notifier.clone());
        tokio::spawn(async move {
            let result = notifier.send(&incident, notice).await;
            let error = result.as_ref().err().map(String::as_str);
            if let Err(err) = incidents::notified(&pool, incident.id, notice.as_str(), error).await
            {
                tracing::warn!(error = %err, "alerts: cannot record a notice");
            }
        });
    }
}
