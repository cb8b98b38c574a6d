//! What a `Store` holds for one invocation: WASI (no files, no environment, no
//! sockets), the memory limiter, the scope the connector acts in, and the clock
//! that keeps host time out of the guest's CPU deadline. A store lives for one
//! invocation and is dropped after it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limits::Limiter;
use crate::ids::{ConnectionId, JobId};
use crate::outbound::{AllowList, OutboundClient};
use crate::secrets::Scrubber;
use crate::source_api::SourceApi;
use crate::store::sources::Source;
use crate::store::Pool;

/// Services every invocation may use, shared by all of them.
pub struct HostServices {
    pub pool: Pool,
    pub outbound: OutboundClient,
    pub source_api: SourceApi,
    /// Attempts given to tasks a connector schedules.
    pub max_attempts: u32,
    /// Wakes the workers when a task is scheduled to run now.
    pub wake: Arc<tokio::sync::Notify>,
    /// Per-connection outbound rate limits (taken in the `http` import).
    pub flow: Arc<crate::flow::FlowControl>,
}

/// The connection, job and grants an invocation acts for.
pub struct Scope {
    pub connection_id: ConnectionId,
    pub connection: String,
    pub plugin: String,
    pub source: Arc<Source>,
    pub allow: AllowList,
    pub job_id: JobId,
    /// Removes this connection's secrets from whatever the connector logs.
    pub scrubber: Scrubber,
}

/// A host call failed for a reason that is not the guest's (database down…):
/// the guest is trapped and the job retried.
#[derive(Debug, thiserror::Error)]
#[error("host failure: {0}")]
pub struct HostFailure(pub String);

pub struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: Limiter,
    pub services: Arc<HostServices>,
    /// `None` while reading a manifest: host imports are refused then.
    pub scope: Option<Arc<Scope>>,
    pub started: Instant,
    /// Time spent in host calls, not charged to the guest's deadline.
    pub host_time: Duration,
    pub deadline_hit: bool,
    pub last_progress_write: Option<Instant>,
}

impl StoreState {
    pub fn new(
        wasi: WasiCtx,
        memory_limit: usize,
        services: Arc<HostServices>,
        scope: Option<Arc<Scope>>,
    ) -> Self {
        Self {
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter::new(memory_limit),
            services,
            scope,
            started: Instant::now(),
            host_time: Duration::ZERO,
            deadline_hit: false,
            last_progress_write: None,
        }
    }

    /// CPU time the guest used so far (wall time minus host calls).
    pub fn guest_time(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.host_time)
    }

    pub fn scope(&self) -> wasmtime::Result<Arc<Scope>> {
        self.scope.clone().ok_or_else(|| {
            wasmtime::Error::msg("host imports cannot be used while the manifest is read")
        })
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
