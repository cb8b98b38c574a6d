//! The wasm runtime: compiles connector components, pre-instantiates them, and
//! runs one export per invocation in a fresh `Store` with a CPU deadline, a wall
//! clock limit and a memory cap, classifying every way it can end. Knows nothing
//! of SQL or the queue; host imports reach the rest through [`HostServices`].

pub mod bindings;
mod cpu;
pub mod engine;
mod host;
/// The host's checks of import arguments, shared with the `plugin test` kit.
pub(crate) mod host_checks {
    pub(crate) use super::host::{check_entry as state_entry, check_task as task};
}
mod limits;
pub mod quota;
pub mod state;
mod stdio;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::WasiCtx;

use crate::config::{ConnectionLimits, RuntimeConfig};
use crate::secrets::Scrubber;
pub use bindings::types;
pub use bindings::ConnectorPre;
use cpu::CpuMeter;
use quota::{cut, LogBudget, Quotas};
use state::StoreParts;
pub use state::{HostFailure, HostServices, Scope, StoreState};
use stdio::{GuestOutput, Tail};

/// Longest time a connector may take to describe itself.
const MANIFEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Slice after which a busy guest yields its thread to other tasks.
const YIELD_EVERY: Duration = Duration::from_millis(50);
/// An out-of-bounds trap whose innermost frames (at least this many) are one
/// function is a recursion that ran out of stack: Rust's stack lives in linear
/// memory, so its overflow shows as an out-of-bounds access.
const RECURSION_FRAMES: usize = 16;

/// How an invocation failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum InvokeError {
    /// The connector returned an error value.
    #[error("{message}")]
    Guest {
        retryable: bool,
        message: String,
        retry_after: Option<Duration>,
    },
    /// The connector computed longer than the CPU deadline (a loop?).
    #[error("plugin exceeded its CPU deadline of {0:?} and was stopped")]
    Deadline(Duration),
    /// The invocation, host calls included, outlived its wall-clock limit.
    #[error("invocation took longer than {0:?} and was stopped")]
    Timeout(Duration),
    /// The connector asked for more memory than allowed.
    #[error("plugin exceeded its memory limit of {} MiB and was stopped", .0 / (1024 * 1024))]
    Memory(usize),
    /// The connector crashed (a panic, an `unreachable`, an out-of-bounds access).
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The host failed (database, instance pool): not the connector's fault.
    #[error("{0}")]
    Host(String),
    /// The connector exceeded a quota that stops the invocation (host calls).
    #[error("{0}")]
    Quota(String),
}

impl InvokeError {
    /// Whether running the job again later may help.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Guest { retryable, .. } => *retryable,
            Self::Host(_) | Self::Timeout(_) => true,
            Self::Deadline(_) | Self::Memory(_) | Self::Trap(_) | Self::Quota(_) => false,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Guest { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Which export to call.
#[derive(Debug, Clone)]
pub enum Call {
    Event(types::Event),
    Task { name: String, payload: String },
}

/// Who is running, for logs and captured output.
#[derive(Debug, Clone)]
pub struct Label {
    pub plugin: String,
    pub connection: String,
}

pub struct Runtime {
    engine: Engine,
    linker: Linker<StoreState>,
    services: Arc<HostServices>,
    config: RuntimeConfig,
    /// Per-connection quota overrides, by connection name.
    limits: RwLock<HashMap<String, ConnectionLimits>>,
}

/// The engine (its epoch ticking) and a linker with WASI and the imports of
/// every supported `recoco:connector` version, for any store data that
/// implements them (the service's [`StoreState`], the test kit's own).
pub fn engine_and_linker<T>(config: &RuntimeConfig) -> anyhow::Result<(Engine, Linker<T>)>
where
    T: bindings::Imports + wasmtime_wasi::WasiView,
{
    let engine = engine::build(config)?;
    engine::start_epoch_ticker(&engine);
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
    bindings::add_to_linker(&mut linker)?;
    Ok((engine, linker))
}

impl Runtime {
    pub fn new(config: &RuntimeConfig, services: Arc<HostServices>) -> anyhow::Result<Self> {
        let (engine, linker) = engine_and_linker(config)?;
        Ok(Self {
            engine,
            linker,
            services,
            config: config.clone(),
            limits: RwLock::default(),
        })
    }

    /// Sets the connections' own quotas (`[connections.limits]`), by name.
    pub fn set_connection_limits(&self, limits: HashMap<String, ConnectionLimits>) {
        *self.limits.write().expect("limits lock") = limits;
    }

    /// The quotas that apply to `connection`.
    pub fn quotas(&self, connection: &str) -> Quotas {
        let limits = self.limits.read().expect("limits lock");
        Quotas::resolve(
            &self.config,
            limits
                .get(connection)
                .unwrap_or(&ConnectionLimits::default()),
        )
    }

    /// The outbound client connectors' requests go through.
    pub fn outbound(&self) -> &crate::outbound::OutboundClient {
        &self.services.outbound
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles `bytes` (CPU-heavy: call it off the async threads) and checks it
    /// is a component of our world.
    pub fn compile(&self, bytes: &[u8]) -> anyhow::Result<Component> {
        Component::from_binary(&self.engine, bytes).map_err(anyhow::Error::from)
    }

    /// Resolves a component's imports once, so each invocation only instantiates.
    pub fn pre_instantiate(
        &self,
        component: &Component,
    ) -> anyhow::Result<ConnectorPre<StoreState>> {
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(anyhow::Error::from)?;
        ConnectorPre::new(pre)
    }

    /// Calls `manifest()` with no host imports available.
    pub async fn read_manifest(
        &self,
        pre: &ConnectorPre<StoreState>,
        label: &Label,
    ) -> Result<types::PluginManifest, InvokeError> {
        let quotas = Quotas::resolve(&self.config, &ConnectionLimits::default());
        let (mut store, tail) = self.new_store(None, label, Scrubber::default(), quotas);
        let cpu = store.data().cpu.clone();
        let result = tokio::time::timeout(
            MANIFEST_TIMEOUT,
            cpu::metered(cpu, pre.manifest(&mut store)),
        )
        .await;
        self.settle(result, MANIFEST_TIMEOUT, &store, &tail)
    }

    /// Runs `call` in a fresh store acting for `scope`.
    pub async fn invoke(
        &self,
        pre: &ConnectorPre<StoreState>,
        scope: Arc<Scope>,
        ctx: types::Context,
        call: Call,
        wall: Duration,
    ) -> Result<String, InvokeError> {
        let label = Label {
            plugin: scope.plugin.clone(),
            connection: scope.connection.clone(),
        };
        let scrubber = scope.scrubber.clone();
        let quotas = self.quotas(&scope.connection);
        let max_text = quotas.max_summary_bytes;
        let (mut store, tail) = self.new_store(Some(scope), &label, scrubber.clone(), quotas);
        let cpu = store.data().cpu.clone();
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(
            wall,
            cpu::metered(cpu, async {
                match &call {
                    Call::Event(event) => pre.handle_event(&mut store, &ctx, event).await,
                    Call::Task { name, payload } => {
                        pre.run_task(&mut store, &ctx, name, payload).await
                    }
                }
            }),
        )
        .await;
        crate::metrics::plugin_invocation(&label.plugin, started);
        if let Some(dropped) = store.data().log.dropped_message() {
            tracing::warn!(target: "connector", plugin = %label.plugin, connection = %label.connection, "{dropped}");
        }
        // Scrubbed, then cut: what is stored and logged is bounded.
        let outcome = match self.settle(result, wall, &store, &tail) {
            Err(err) => Err(cut_error(err, max_text)),
            Ok(Ok(summary)) => Ok(cut(&scrubber.scrub(&summary), max_text)),
            Ok(Err(e)) => Err(InvokeError::Guest {
                retryable: e.retryable,
                message: cut(&scrubber.scrub(&e.message), max_text),
                retry_after: e.retry_after_ms.map(Duration::from_millis),
            }),
        };
        tracing::debug!(plugin = %label.plugin, connection = %label.connection, cpu_us = store.data().cpu_time().as_micros() as u64, host_calls = store.data().host_calls, "invocation finished");
        outcome
    }

    /// The value of a call bounded by `limit`, or why there is none.
    fn settle<T>(
        &self,
        result: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
        limit: Duration,
        store: &Store<StoreState>,
        tail: &Tail,
    ) -> Result<T, InvokeError> {
        match result {
            Err(_) => Err(InvokeError::Timeout(limit)),
            Ok(Err(err)) => Err(classify(
                store,
                tail,
                err,
                self.config.deadline,
                self.config.memory_limit,
            )),
            Ok(Ok(value)) => Ok(value),
        }
    }

    fn new_store(
        &self,
        scope: Option<Arc<Scope>>,
        label: &Label,
        scrubber: Scrubber,
        quotas: Quotas,
    ) -> (Store<StoreState>, Tail) {
        let tail = Tail::default();
        let log = Arc::new(LogBudget::new(quotas.max_log_lines, quotas.max_log_bytes));
        let wasi = WasiCtx::builder()
            .stdout(GuestOutput::new(
                &label.plugin,
                &label.connection,
                "stdout",
                scrubber.clone(),
                log.clone(),
            ))
            .stderr(
                GuestOutput::new(
                    &label.plugin,
                    &label.connection,
                    "stderr",
                    scrubber,
                    log.clone(),
                )
                .with_tail(tail.clone()),
            )
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let deadline = self.config.deadline;
        let state = StoreState::new(
            wasi,
            StoreParts {
                memory_limit: self.config.memory_limit,
                services: self.services.clone(),
                scope,
                quotas,
                cpu: Arc::new(CpuMeter::default()),
                deadline,
                log,
            },
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(engine::ticks(YIELD_EVERY.min(deadline)));
        // Called each time the epoch deadline passes while guest code runs: stop
        // the guest once its CPU time is spent, else let other tasks run. The
        // epoch only paces the checks; what is compared is CPU time measured.
        store.epoch_deadline_callback(move |mut ctx| {
            let state = ctx.data_mut();
            let used = state.cpu_time();
            if used >= deadline {
                state.deadline_hit = true;
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(UpdateDeadline::Yield(engine::ticks(
                (deadline - used).min(YIELD_EVERY),
            )))
        });
        (store, tail)
    }
}

/// Turns a trap into the reason an operator needs to read.
fn classify(
    store: &Store<StoreState>,
    tail: &Tail,
    err: wasmtime::Error,
    deadline: Duration,
    memory_limit: usize,
) -> InvokeError {
    let state = store.data();
    if state.deadline_hit {
        return InvokeError::Deadline(deadline);
    }
    if let Some(why) = &state.quota_hit {
        return InvokeError::Quota(why.clone());
    }
    if state.limiter.memory_exceeded {
        return InvokeError::Memory(memory_limit);
    }
    if let Some(host) = err.downcast_ref::<HostFailure>() {
        return InvokeError::Host(host.to_string());
    }
    if let Some(limit) = err.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
        return InvokeError::Host(format!("no free instance slot: {limit}"));
    }
    let trap = err.downcast_ref::<wasmtime::Trap>().copied();
    let recursion = err
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .and_then(deep_recursion);
    let mut text = match (trap, &recursion) {
        (Some(wasmtime::Trap::StackOverflow), _) => "stack overflow".to_string(),
        (Some(wasmtime::Trap::MemoryOutOfBounds), Some(function)) => {
            format!("stack overflow (deep recursion in {function})")
        }
        (Some(trap), _) => trap.to_string(),
        (None, _) => format!("{err:#}"),
    };
    if let Some(frames) = err.downcast_ref::<wasmtime::WasmBacktrace>() {
        let names: Vec<String> = frames
            .frames()
            .iter()
            .take(4)
            .filter_map(|f| f.func_name().map(str::to_string))
            .collect();
        if !names.is_empty() {
            text.push_str(&format!(" (in {})", names.join(" < ")));
        }
    }
    if let Some(stderr) = tail.text() {
        text.push_str(&format!("; stderr: {stderr}"));
    }
    let scrubbed = state
        .scope
        .as_ref()
        .map(|s| s.scrubber.scrub(&text))
        .unwrap_or(text);
    InvokeError::Trap(scrubbed)
}

/// The function that recursed, when a backtrace is a deep recursion: (nearly)
/// every captured frame is the same function. Wasmtime keeps the innermost
/// frames only, so this looks at those.
fn deep_recursion(backtrace: &wasmtime::WasmBacktrace) -> Option<String> {
    let frames = backtrace.frames();
    if frames.len() < RECURSION_FRAMES {
        return None;
    }
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for frame in frames {
        *counts.entry(frame.func_index()).or_default() += 1;
    }
    let (index, n) = counts.into_iter().max_by_key(|(_, n)| *n)?;
    if n * 10 < frames.len() * 9 {
        return None;
    }
    let name = frames
        .iter()
        .find(|f| f.func_index() == index)
        .and_then(|f| f.func_name().map(str::to_string));
    Some(name.unwrap_or_else(|| format!("wasm function {index}")))
}

/// `err` with its text cut to `max` bytes.
fn cut_error(err: InvokeError, max: usize) -> InvokeError {
    match err {
        InvokeError::Trap(text) => InvokeError::Trap(cut(&text, max)),
        InvokeError::Host(text) => InvokeError::Host(cut(&text, max)),
        other => other,
    }
}
