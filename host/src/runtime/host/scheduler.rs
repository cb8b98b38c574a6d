//! `recoco:connector/scheduler`: tasks a connector asks to run later.

use std::time::Instant;

use crate::ids::{now_ms, JobId};
use crate::queue::{jobs, JobKind, NewJob};
use crate::runtime::bindings::recoco::connector::scheduler::Host;
use crate::runtime::bindings::types::Error;
use crate::runtime::state::{HostFailure, StoreState};

/// Farthest a task may be scheduled: 30 days.
const MAX_DELAY_MS: u64 = 30 * 24 * 3600 * 1000;
const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

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
        let scope = self.scope()?;
        if name.is_empty() || name.len() > 64 {
            return Ok(refused("a task name has 1 to 64 characters".into()));
        }
        if payload.len() > MAX_PAYLOAD_BYTES
            || serde_json::from_str::<serde_json::Value>(&payload).is_err()
        {
            return Ok(refused(format!(
                "the payload of task {name:?} must be JSON of at most {MAX_PAYLOAD_BYTES} bytes"
            )));
        }
        if delay_ms > MAX_DELAY_MS {
            return Ok(refused(format!(
                "a task may be scheduled at most {} days ahead",
                MAX_DELAY_MS / 86_400_000
            )));
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
        let done = jobs::enqueue_task(&self.services.pool, &job).await;
        self.host_time += started.elapsed();
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
