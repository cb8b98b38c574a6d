//! What a `Store` holds for one invocation: WASI (no files, no environment, no
//! sockets), the memory limiter, the scope the connector acts in, the CPU
//! meter and the quota counters. A store lives for one invocation and is
//! dropped after it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::cpu::CpuMeter;
use super::limits::Limiter;
use super::quota::{LogBudget, Quotas};
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
    /// The connection's quotas.
    pub quotas: Quotas,
    /// CPU time of the invocation's polls (guest code and the host's own work).
    pub cpu: Arc<CpuMeter>,
    /// Wall time of local host calls (database), charged to the CPU deadline:
    /// the machine works for the guest then, on another thread.
    pub charged: Duration,
    /// The CPU deadline.
    pub deadline: Duration,
    pub deadline_hit: bool,
    /// Host calls made so far, and outbound requests among them.
    pub host_calls: u64,
    pub requests: u64,
    /// Set when the invocation is stopped for exceeding a quota.
    pub quota_hit: Option<String>,
    /// Log lines and bytes left (shared with stdout and stderr).
    pub log: Arc<LogBudget>,
    /// The connection's state usage (entries, bytes), read at its first write.
    pub state_usage: Option<(u64, u64)>,
    pub last_progress_write: Option<Instant>,
}

/// What a store is made of, besides WASI.
pub struct StoreParts {
    pub memory_limit: usize,
    pub services: Arc<HostServices>,
    pub scope: Option<Arc<Scope>>,
    pub quotas: Quotas,
    pub cpu: Arc<CpuMeter>,
    pub deadline: Duration,
    pub log: Arc<LogBudget>,
}

impl StoreState {
    pub fn new(wasi: WasiCtx, parts: StoreParts) -> Self {
        Self {
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter::new(parts.memory_limit),
            services: parts.services,
            scope: parts.scope,
            quotas: parts.quotas,
            cpu: parts.cpu,
            charged: Duration::ZERO,
            deadline: parts.deadline,
            deadline_hit: false,
            host_calls: 0,
            requests: 0,
            quota_hit: None,
            log: parts.log,
            state_usage: None,
            last_progress_write: None,
        }
    }

    /// CPU time charged to the guest so far: what its polls consumed, plus
    /// the time of its local host calls.
    pub fn cpu_time(&self) -> Duration {
        self.cpu.used() + self.charged
    }

    pub fn scope(&self) -> wasmtime::Result<Arc<Scope>> {
        self.scope.clone().ok_or_else(|| {
            wasmtime::Error::msg("host imports cannot be used while the manifest is read")
        })
    }

    /// Entry of every host call: the scope, once the call is counted and the
    /// budgets checked. A spent budget stops the guest (a trap classified as
    /// the deadline or the quota), so a loop of host calls ends.
    pub fn enter(&mut self) -> wasmtime::Result<Arc<Scope>> {
        let scope = self.scope()?;
        self.host_calls += 1;
        if self.host_calls > self.quotas.max_host_calls {
            let why = format!(
                "plugin made more than {} host calls in one invocation and was stopped",
                self.quotas.max_host_calls
            );
            self.quota_hit = Some(why.clone());
            return Err(wasmtime::Error::msg(why));
        }
        if self.cpu_time() >= self.deadline {
            self.deadline_hit = true;
            return Err(wasmtime::Error::msg("CPU deadline reached in a host call"));
        }
        Ok(scope)
    }

    /// Charges the wall time since `started` of a local host call.
    pub fn charge(&mut self, started: Instant) {
        self.charged += started.elapsed();
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
