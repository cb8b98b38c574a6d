//! The wasm runtime: compiles connector components, pre-instantiates them, and
//! runs one export per invocation in a fresh `Store` with a CPU deadline, a wall
//! clock limit and a memory cap, classifying every way it can end. Knows nothing
//! of SQL or the queue; host imports reach the rest through [`HostServices`].

pub mod bindings;
pub mod engine;
mod host;
mod limits;
pub mod state;
mod stdio;

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::WasiCtx;

use crate::config::RuntimeConfig;
use crate::secrets::Scrubber;
pub use bindings::types;
pub use bindings::ConnectorPre;
pub use state::{HostFailure, HostServices, Scope, StoreState};
use stdio::{GuestOutput, Tail};

/// Longest time a connector may take to describe itself.
const MANIFEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Slice after which a busy guest yields its thread to other tasks.
const YIELD_EVERY: Duration = Duration::from_millis(50);

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
}

impl InvokeError {
    /// Whether running the job again later may help.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Guest { retryable, .. } => *retryable,
            Self::Host(_) | Self::Timeout(_) => true,
            Self::Deadline(_) | Self::Memory(_) | Self::Trap(_) => false,
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
}

impl Runtime {
    pub fn new(config: &RuntimeConfig, services: Arc<HostServices>) -> anyhow::Result<Self> {
        let engine = engine::build(config)?;
        engine::start_epoch_ticker(&engine);
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        bindings::Connector::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |s| s,
        )
        .map_err(anyhow::Error::from)?;
        Ok(Self {
            engine,
            linker,
            services,
            config: config.clone(),
        })
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
        ConnectorPre::new(pre).map_err(anyhow::Error::from)
    }

    /// Calls `manifest()` with no host imports available.
    pub async fn read_manifest(
        &self,
        pre: &ConnectorPre<StoreState>,
        label: &Label,
    ) -> Result<types::PluginManifest, InvokeError> {
        let (mut store, tail) = self.new_store(None, label, Scrubber::default());
        let result = tokio::time::timeout(MANIFEST_TIMEOUT, async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance
                .recoco_connector_handler()
                .call_manifest(&mut store)
                .await
        })
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
        let (mut store, tail) = self.new_store(Some(scope), &label, scrubber.clone());
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(wall, async {
            let instance = pre.instantiate_async(&mut store).await?;
            let handler = instance.recoco_connector_handler();
            match &call {
                Call::Event(event) => handler.call_handle_event(&mut store, &ctx, event).await,
                Call::Task { name, payload } => {
                    handler.call_run_task(&mut store, &ctx, name, payload).await
                }
            }
        })
        .await;
        crate::metrics::plugin_invocation(&label.plugin, started);
        match self.settle(result, wall, &store, &tail)? {
            Ok(summary) => Ok(scrubber.scrub(&summary)),
            Err(e) => Err(InvokeError::Guest {
                retryable: e.retryable,
                message: scrubber.scrub(&e.message),
                retry_after: e.retry_after_ms.map(Duration::from_millis),
            }),
        }
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
    ) -> (Store<StoreState>, Tail) {
        let tail = Tail::default();
        let wasi = WasiCtx::builder()
            .stdout(GuestOutput::new(
                &label.plugin,
                &label.connection,
                "stdout",
                scrubber.clone(),
            ))
            .stderr(
                GuestOutput::new(&label.plugin, &label.connection, "stderr", scrubber)
                    .with_tail(tail.clone()),
            )
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = StoreState::new(wasi, self.config.memory_limit, self.services.clone(), scope);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        let deadline = self.config.deadline;
        store.set_epoch_deadline(engine::ticks(YIELD_EVERY.min(deadline)));
        // Called each time the epoch deadline passes while guest code runs: stop
        // the guest once its own CPU time is spent, else let other tasks run.
        store.epoch_deadline_callback(move |mut ctx| {
            let state = ctx.data_mut();
            let used = state.guest_time();
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
    if state.limiter.memory_exceeded {
        return InvokeError::Memory(memory_limit);
    }
    if let Some(host) = err.downcast_ref::<HostFailure>() {
        return InvokeError::Host(host.to_string());
    }
    if let Some(limit) = err.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
        return InvokeError::Host(format!("no free instance slot: {limit}"));
    }
    let mut text = match err.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{err:#}"),
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
