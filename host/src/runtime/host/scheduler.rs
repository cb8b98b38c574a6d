//! `recoco:connector/scheduler`: tasks a connector asks to run later.

use std::time::Instant;

use crate::ids::{now_ms, JobId};
use crate::queue::{jobs, JobKind, NewJob};
use crate::runtime::bindings::recoco::connector::scheduler::Host;
use crate::runtime::bindings::types::Error;
use crate::runtime::state::{HostFailure, StoreState};
use crate::store::Pool;

/// Farthest a task may be scheduled: 30 days.
const MAX_DELAY_MS: u64 = 30 * 24 * 3600 * 1000;
const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// What a scheduled task may be (shared with the `plugin test` kit).
pub(crate) fn check_task(name: &str, payload: &str, delay_ms: u64) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("a task name has 1 to 64 characters".into());
    }
    if payload.len() > MAX_PAYLOAD_BYTES
        || serde_json::from_str::<serde_json::Value>(payload).is_err()
    {
        return Err(format!(
            "the payload of task {name:?} must be JSON of at most {MAX_PAYLOAD_BYTES} bytes"
        ));
    }
    if delay_ms > MAX_DELAY_MS {
        return Err(format!(
            "a task may be scheduled at most {} days ahead",
            MAX_DELAY_MS / 86_400_000
        ));
    }
    Ok(())
}

fn refused(message: String) -> Result<(), Error> {
    Err(Error {
        retryable: false,
        message,
        retry_after_ms: None,
    })
}

impl Host for StoreState {
    async fn schedule(
        &mut self,
        name: String,
        payload: String,
        delay_ms: u64,
        dedup_key: Option<String>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let scope = self.enter()?;
        if let Err(why) = check_task(&name, &payload, delay_ms) {
            return Ok(refused(why));
        }
        let job = NewJob {
            id: JobId::new(),
            connection_id: scope.connection_id,
            plugin: scope.plugin.clone(),
            kind: JobKind::Task {
                name: name.clone(),
                payload,
            },
            dedup_key,
            max_attempts: self.services.max_attempts,
            run_at: now_ms() + delay_ms as i64,
            ordering_key: None,
        };
        let started = Instant::now();
        let pending = pending_tasks(&self.services.pool, &job).await;
        let max = self.quotas.max_pending_tasks;
        let done = match pending {
            Ok(Some(n)) if n >= max => {
                self.charge(started);
                return Ok(refused(format!(
                    "task quota exceeded: a connection may have {max} scheduled tasks waiting (it has {n}); \
                     use a dedup key to replace a pending task instead of adding one"
                )));
            }
            Ok(_) => jobs::enqueue_task(&self.services.pool, &job).await,
            Err(err) => Err(err.into()),
        };
        self.charge(started);
        let id = done.map_err(|e| {
            wasmtime::Error::new(HostFailure(format!("cannot schedule a task: {e}")))
        })?;
        tracing::info!(connection = %scope.connection, task = %name, job_id = %id, delay_ms, "task scheduled");
        if delay_ms == 0 {
            self.services.wake.notify_waiters();
        }
        Ok(Ok(()))
    }
}

/// Tasks of the connection waiting to run, or `None` when `job` replaces a
/// pending one (same name and dedup key) and so adds nothing.
async fn pending_tasks(pool: &Pool, job: &NewJob) -> sqlx::Result<Option<u64>> {
    let JobKind::Task { name, .. } = &job.kind else {
        return Ok(None);
    };
    if let Some(key) = &job.dedup_key {
        let replaces: Option<i64> = crate::store::sql::query_scalar(
            "SELECT 1 FROM jobs WHERE connection_id = ? AND task_name = ? AND dedup_key = ?
             AND state IN ('queued', 'waiting', 'paused')",
        )
        .bind(job.connection_id)
        .bind(name)
        .bind(key)
        .fetch_optional(pool)
        .await?;
        if replaces.is_some() {
            return Ok(None);
        }
    }
    let n: i64 = crate::store::sql::query_scalar(
        "SELECT count(*) FROM jobs WHERE connection_id = ? AND kind = 'task'
         AND state IN ('queued', 'waiting', 'paused')",
    )
    .bind(job.connection_id)
    .fetch_one(pool)
    .await?;
    Ok(Some(n as u64))
}
