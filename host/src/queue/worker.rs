//! Workers: claim a due job, gather what the connector needs (connection,
//! plugin, grants, event), invoke it, and record the outcome. One attempt per
//! claim; the decision to retry, fail or give up is taken here and logged here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::db::{NextClaim, QueueDb};
use super::decide::{self, Decision};
use super::jobs::{self, Claimed, Finish, JobKind};
use super::policy::RetryPolicy;
use crate::catalog::CatalogHandle;
use crate::config::{QueueConfig, RuntimeConfig};
use crate::connection_check;
use crate::flow::{FlowControl, Outcome, Slot};
use crate::ids::{now_ms, rfc3339, ConnectionId};
use crate::outbound::{allow, AllowList};
use crate::registry::{Plugin, Registry};
use crate::runtime::{types, Call, Runtime, Scope};
use crate::secrets::{secret_values, Scrubber};
use crate::store::attempts::Attempt;
use crate::store::Pool;

/// Everything a worker needs, shared by all of them.
pub struct Workers {
    pub pool: Pool,
    pub catalog: Arc<CatalogHandle>,
    pub registry: Arc<Registry>,
    pub runtime: Arc<Runtime>,
    pub queue: QueueConfig,
    pub limits: RuntimeConfig,
    pub wake: Arc<Notify>,
    pub shutdown: CancellationToken,
    pub flow: Arc<FlowControl>,
    /// Told of each delivery, and whether more jobs were waiting.
    pub pacing: Arc<crate::pacing::Pacing>,
    /// Claims and outcomes, on the queue's thread.
    pub db: QueueDb,
}

impl Workers {
    /// Starts `queue.workers` loops plus the lease reaper.
    pub fn spawn(self: Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut handles: Vec<_> = (0..self.queue.workers)
            .map(|n| {
                let me = self.clone();
                let owner = format!("{}:w{n}", super::recovery::instance());
                tokio::spawn(async move { me.run(owner).await })
            })
            .collect();
        if self.queue.workers > 0 {
            let me = self.clone();
            handles.push(tokio::spawn(async move { me.reap_expired_leases().await }));
        }
        handles
    }

    async fn run(&self, owner: String) {
        let lease_ms = self.queue.lease.as_millis() as i64;
        // The job claimed with the last outcome, if any.
        let mut next: Option<Claimed> = None;
        loop {
            if let Some(job) = next.take() {
                next = self.process(job, &owner).await;
                continue;
            }
            if self.shutdown.is_cancelled() {
                return;
            }
            // Registered before claiming, so a wake-up between the claim and the
            // wait is not lost.
            let notified = self.wake.notified();
            match self.claim(&owner, lease_ms).await {
                Ok(Some(job)) => next = Some(job),
                Ok(None) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep(self.queue.poll_interval) => {}
                        _ = self.shutdown.cancelled() => return,
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot claim a job; retrying");
                    tokio::time::sleep(self.queue.poll_interval).await;
                }
            }
        }
    }

    /// Claims under flow control (connections at their limit or behind an
    /// open circuit are left alone, see [`super::db`]); coalescing follows
    /// the plugins' manifests.
    async fn claim(&self, owner: &str, lease_ms: i64) -> anyhow::Result<Option<Claimed>> {
        self.db.claim(owner, lease_ms, self.coalescing()).await
    }

    /// Connections whose plugin declares `coalesce`.
    fn coalescing(&self) -> Vec<ConnectionId> {
        self.catalog
            .get()
            .connections()
            .filter(|c| {
                self.registry
                    .get(&c.plugin)
                    .is_some_and(|p| p.manifest.coalesce)
            })
            .map(|c| c.id)
            .collect()
    }

    /// The claim sent with an outcome: none once the service is stopping.
    fn next_claim(&self, owner: &str) -> Option<NextClaim> {
        (!self.shutdown.is_cancelled()).then(|| NextClaim {
            owner: owner.to_string(),
            lease_ms: self.queue.lease.as_millis() as i64,
            coalescing: self.coalescing(),
        })
    }

    async fn reap_expired_leases(&self) {
        let every = (self.queue.lease / 2).max(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.shutdown.cancelled() => return,
            }
            match jobs::reclaim_expired(&self.pool).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::warn!(jobs = n, "requeued jobs whose worker stopped");
                    self.wake.notify_waiters();
                }
                Err(err) => tracing::warn!(error = %err, "cannot requeue expired jobs"),
            }
        }
    }

    /// Runs `job` and records its outcome; the job claimed with the outcome,
    /// if any, comes back. (`owner`: this worker, for that claim.)
    async fn process(&self, job: Claimed, owner: &str) -> Option<Claimed> {
        let slot = Slot::of_started(self.flow.clone(), job.connection_id);
        let span = tracing::info_span!(
            "queue.job",
            job_id = %job.id,
            connection = tracing::field::Empty,
            plugin = %job.plugin,
            attempt = job.attempt,
            coalesced = job.coalesced,
        );
        self.process_inner(job, slot, owner).instrument(span).await
    }

    async fn process_inner(&self, job: Claimed, mut slot: Slot, owner: &str) -> Option<Claimed> {
        let started_at = now_ms();
        let clock = Instant::now();
        let prepared = match self.prepare(&job).await {
            Ok(Some(p)) => p,
            Ok(None) => return None, // parked (waiting, paused) or skipped
            Err(error) => {
                let attempt =
                    self.attempt(&job, None, started_at, clock, "failed", Some(&error), None);
                tracing::error!(error = %error, "job failed before running");
                return self
                    .record(&job, Finish::Failed { error }, attempt, slot, owner)
                    .await;
            }
        };
        tracing::Span::current().record("connection", prepared.scope.connection.as_str());
        let (heartbeat, lost) = self.keep_lease(&job);
        let wall = match job.kind {
            JobKind::Event { .. } => self.limits.event_timeout,
            JobKind::Task { .. } => self.limits.task_timeout,
        };
        let invocation = self.runtime.invoke(
            &prepared.plugin.pre,
            prepared.scope.clone(),
            prepared.ctx,
            prepared.call,
            wall,
        );
        let result = tokio::select! {
            result = invocation => result,
            _ = lost.cancelled() => {
                // Another worker runs the job now: stop, and record nothing.
                tracing::warn!("the job's lease was taken over; stopped without recording");
                return None;
            }
        };
        heartbeat.cancel();
        let plugin = Some(&*prepared.plugin);
        let (finish, attempt) = match result {
            Ok(summary) => {
                tracing::info!(summary = %summary, elapsed_ms = clock.elapsed().as_millis() as u64, "job succeeded");
                slot.outcome = Outcome::Success;
                let attempt = self.attempt(
                    &job,
                    plugin,
                    started_at,
                    clock,
                    "succeeded",
                    None,
                    Some(&summary),
                );
                (Finish::Succeeded { summary }, attempt)
            }
            Err(err) => {
                let policy =
                    RetryPolicy::new(&self.queue, self.flow.policy(job.connection_id).as_ref());
                let decision = decide::decide(&job, &err, &policy);
                slot.outcome = decision.outcome();
                self.log_decision(&decision);
                let (outcome, error) = decision.recorded();
                let attempt =
                    self.attempt(&job, plugin, started_at, clock, outcome, Some(&error), None);
                (decision.into_finish(), attempt)
            }
        };
        crate::metrics::attempt(
            &prepared.scope.connection,
            &attempt.outcome,
            attempt.duration_ms,
        );
        self.record(&job, finish, attempt, slot, owner).await
    }

    /// Says once in the log what happens to a failed job.
    fn log_decision(&self, decision: &Decision) {
        match decision {
            Decision::Retry { error, delay, .. } => {
                tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "job will be retried")
            }
            Decision::Dead { error } => tracing::error!(error = %error, "job is dead"),
            Decision::Failed { error } => tracing::error!(error = %error, "job failed"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn attempt(
        &self,
        job: &Claimed,
        plugin: Option<&Plugin>,
        started_at: i64,
        clock: Instant,
        outcome: &str,
        error: Option<&str>,
        summary: Option<&str>,
    ) -> Attempt {
        Attempt {
            job_id: job.id.to_string(),
            number: job.attempt as i64,
            plugin: plugin.map_or_else(|| job.plugin.clone(), |p| p.name().to_string()),
            plugin_version: plugin.map(|p| p.manifest.version.clone()),
            plugin_hash: plugin.map(|p| p.hash.clone()),
            started_at,
            duration_ms: clock.elapsed().as_millis() as i64,
            outcome: outcome.to_string(),
            error: error.map(str::to_string),
            summary: summary.map(str::to_string),
        }
    }

    /// Records the outcome and claims this worker's next job in the same
    /// round trip; returns that job.
    async fn record(
        &self,
        job: &Claimed,
        finish: Finish,
        attempt: Attempt,
        slot: Slot,
        owner: &str,
    ) -> Option<Claimed> {
        let answer = self
            .db
            .finish_and_claim(job, &finish, attempt.clone(), slot, self.next_claim(owner))
            .await;
        let next = answer
            .next
            .inspect_err(|err| tracing::warn!(error = %err, "cannot claim a job"))
            .ok()
            .flatten();
        self.pacing.delivered(next.is_some());
        let mut result = answer.finished;
        // The outcome must not be lost to a busy database: retry a few times.
        for wait in [100u64, 500, 2000, 5000, 0] {
            match result {
                Ok(true) => return next,
                Ok(false) => {
                    tracing::warn!("the job's lease was taken over; its outcome is not recorded");
                    return next;
                }
                Err(err) if wait > 0 => {
                    tracing::warn!(error = %err, "cannot record the job's outcome; retrying")
                }
                Err(_) => break,
            }
            tokio::time::sleep(Duration::from_millis(wait)).await;
            result = self.db.finish(job, &finish, attempt.clone()).await;
        }
        tracing::error!(
            "giving up recording the job's outcome; its lease will expire and it will run again"
        );
        next
    }

    /// Renews the lease while the invocation runs. The second token fires when
    /// the lease turns out to be someone else's.
    fn keep_lease(&self, job: &Claimed) -> (CancellationToken, CancellationToken) {
        let stop = CancellationToken::new();
        let lost = CancellationToken::new();
        let (pool, id, owner, lease) = (
            self.pool.clone(),
            job.id.clone(),
            job.owner.clone(),
            self.queue.lease,
        );
        let (token, lost_token) = (stop.clone(), lost.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(lease / 3) => {}
                    _ = token.cancelled() => return,
                }
                match jobs::heartbeat(&pool, &id, &owner, lease.as_millis() as i64).await {
                    Ok(true) => {}
                    Ok(false) => {
                        lost_token.cancel();
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(job_id = %id, error = %err, "cannot renew the job's lease")
                    }
                }
            }
        });
        (stop, lost)
    }

    /// Gathers the invocation's inputs. `Ok(None)`: the plugin is absent and the
    /// job now waits for it. `Err`: a permanent problem to record.
    async fn prepare(&self, job: &Claimed) -> Result<Option<Prepared>, String> {
        let mut catalog = self.catalog.get();
        if catalog.connection(job.connection_id).is_none() {
            // Created by another process since our last refresh.
            let _ = self.catalog.refresh_if_changed().await;
            catalog = self.catalog.get();
        }
        let connection = catalog
            .connection(job.connection_id)
            .cloned()
            .ok_or("its connection no longer exists")?;
        if !connection.enabled || connection.removed {
            let why = if connection.removed {
                format!("connection {:?} was removed from the configuration; declare it again to resume", connection.name)
            } else {
                format!(
                    "connection {:?} is disabled; enable it to resume",
                    connection.name
                )
            };
            tracing::info!("{why}");
            if let Err(err) = jobs::park_paused(&self.pool, job, &why).await {
                tracing::warn!(error = %err, "cannot pause the job");
            }
            return Ok(None);
        }
        let source = catalog
            .source(connection.source_id)
            .cloned()
            .ok_or("its source no longer exists")?;
        let Some(plugin) = self.registry.get(&connection.plugin) else {
            tracing::info!(plugin = %connection.plugin, "plugin not loaded; the job waits for it");
            if let Err(err) = self.registry.park_until_loaded(job).await {
                tracing::warn!(error = %err, "cannot park the job");
            }
            return Ok(None);
        };
        if let JobKind::Event { .. } = &job.kind {
            if let Some(skipped) = self.unsubscribed(job, &plugin).await {
                return skipped;
            }
        }
        if let Err(problem) = plugin.validate_config(&connection.config) {
            // Like a missing plugin: the job waits until the config is fixed.
            let reason =
                connection_check::described(&connection, &plugin.manifest.config_schema, &problem);
            connection_check::park(&self.pool, job, &connection, &reason).await;
            return Ok(None);
        }
        let hosts = match &connection.allowed_hosts {
            Some(hosts) => hosts.clone(),
            None => {
                allow::resolve_defaults(&plugin.manifest.default_allowed_hosts, &connection.config)
            }
        };
        let allow = AllowList::parse(&hosts)
            .map_err(|e| format!("connection {:?}: {e}", connection.name))?;
        let mut secrets = source.secrets.clone();
        secrets.extend(source.api_password.clone());
        secrets.extend(secret_values(
            &connection.config,
            &plugin.manifest.config_schema,
        ));
        let scope = Arc::new(Scope {
            connection_id: connection.id,
            connection: connection.name.clone(),
            plugin: plugin.name().to_string(),
            source: source.clone(),
            allow,
            job_id: job.id.clone(),
            scrubber: Scrubber::new(secrets),
        });
        let call = match &job.kind {
            JobKind::Task { name, payload } => Call::Task {
                name: name.clone(),
                payload: payload.clone(),
            },
            JobKind::Event { .. } => {
                let event = job.event.clone().ok_or_else(|| {
                    format!(
                        "event {} no longer exists",
                        job.event_to_deliver().unwrap_or_default()
                    )
                })?;
                Call::Event(types::Event {
                    id: event.id,
                    source: event.source,
                    topic: event.topic,
                    object_type: event.object_type,
                    action: event.action,
                    object_id: event.object_id,
                    payload: String::from_utf8_lossy(&event.body).into_owned(),
                    received_at: rfc3339(event.received_at),
                })
            }
        };
        let ctx = types::Context {
            config: connection.config.to_string(),
            connection: connection.name.clone(),
            source: source.code.clone(),
            job_id: job.id.to_string(),
            attempt: job.attempt,
        };
        Ok(Some(Prepared {
            plugin,
            scope,
            call,
            ctx,
        }))
    }
}

impl Workers {
    /// A job made while its plugin was unknown, for an event the plugin (now
    /// loaded) does not subscribe to, ends `skipped`.
    async fn unsubscribed(
        &self,
        job: &Claimed,
        plugin: &Plugin,
    ) -> Option<Result<Option<Prepared>, String>> {
        // The event read with the claim (the latest one when others were
        // folded in: they share the job's key and connection).
        let event = job.event.as_ref()?;
        let (object_type, topic) = (&event.object_type, &event.topic);
        if crate::routing::Routing::of(&plugin.manifest).subscribes(object_type, topic) {
            return None;
        }
        let why = format!("plugin {} does not subscribe to {topic}", plugin.name());
        tracing::info!("{why}; job skipped");
        if let Err(err) = jobs::skip(&self.pool, job, &why).await {
            tracing::warn!(error = %err, "cannot skip the job");
        }
        Some(Ok(None))
    }
}

struct Prepared {
    plugin: Arc<Plugin>,
    scope: Arc<Scope>,
    call: Call,
    ctx: types::Context,
}
