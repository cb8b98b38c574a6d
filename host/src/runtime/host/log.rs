//! `recoco:connector/log`: the connector's messages in the host log, tagged with
//! plugin, connection and job, secrets scrubbed, within the invocation's log
//! quota (lines past it are dropped and counted; see `runtime::quota`).

use crate::runtime::bindings::recoco::connector::log::{Host, Level};
use crate::runtime::state::StoreState;

/// Longest message kept; the rest is cut.
const MAX_MESSAGE_BYTES: usize = 8 * 1024;

impl Host for StoreState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let scope = self.enter()?;
        if !self.log.admit(message.len()) {
            return Ok(());
        }
        let mut message = scope.scrubber.scrub(&message);
        if message.len() > MAX_MESSAGE_BYTES {
            let mut cut = MAX_MESSAGE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let (plugin, connection, job) = (&scope.plugin, &scope.connection, scope.job_id.as_str());
        match level {
            Level::Trace => {
                tracing::trace!(target: "connector", plugin, connection, job, "{message}")
            }
            Level::Debug => {
                tracing::debug!(target: "connector", plugin, connection, job, "{message}")
            }
            Level::Info => {
                tracing::info!(target: "connector", plugin, connection, job, "{message}")
            }
            Level::Warn => {
                tracing::warn!(target: "connector", plugin, connection, job, "{message}")
            }
            Level::Error => {
                tracing::error!(target: "connector", plugin, connection, job, "{message}")
            }
        }
        Ok(())
    }
}
