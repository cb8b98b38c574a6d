//! `recoco:connector/progress`: progress of long tasks, stored on the job (at
//! most once a second, and always when complete) for operators to watch.

use std::time::{Duration, Instant};

use crate::queue::jobs;
use crate::runtime::bindings::recoco::connector::progress::Host;
use crate::runtime::state::StoreState;

const WRITE_INTERVAL: Duration = Duration::from_secs(1);

impl Host for StoreState {
    async fn report(
        &mut self,
        done: u64,
        total: Option<u64>,
        message: String,
    ) -> wasmtime::Result<()> {
        let scope = self.enter()?;
        let finished = total.is_some_and(|t| done >= t);
        if !finished
            && self
                .last_progress_write
                .is_some_and(|t| t.elapsed() < WRITE_INTERVAL)
        {
            return Ok(());
        }
        let started = Instant::now();
        self.last_progress_write = Some(started);
        let progress = serde_json::json!({"done": done, "total": total, "message": scope.scrubber.scrub(&message)});
        if let Err(err) = jobs::set_progress(&self.services.pool, &scope.job_id, &progress).await {
            // Progress is informative: losing one report must not fail the job.
            tracing::warn!(job = %scope.job_id, error = %err, "cannot store progress");
        }
        self.charge(started);
        Ok(())
    }
}
