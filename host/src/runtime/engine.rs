//! The one wasmtime `Engine`: component model, epoch interruption ticked by a
//! background thread, copy-on-write memory images and the pooling allocator so a
//! fresh instance per invocation costs microseconds.

use std::time::Duration;

use anyhow::Context as _;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::config::RuntimeConfig;

/// Granularity of deadlines: the epoch is bumped this often.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Core instances, memories and tables a connector component may hold. Rust
/// components built for wasm32-wasip2 use one memory and a handful of shims.
/// Measured on the Python and JavaScript templates (recoco:connector 0.2.0), which
/// fit as they are: componentize-py 0.25.1 instantiates 14 core modules (CPython
/// and libc as shared libraries), 1 memory of 200 pages (12.5 MiB) at start,
/// 2 tables (largest 5,680 elements); componentize-js 0.23.0 instantiates 4 core
/// modules, 1 memory of 145 pages (9 MiB), 2 tables (largest 7,697 elements).
/// With a 1 MiB webhook, one invocation peaks at 15 MiB (Python) and 21 MiB (JS)
/// of the 64 MiB default `memory_limit`. The pool's total of core instances
/// (8 per slot) is what Python uses up first: 1,024 slots hold 73 live Python
/// instances (the default 256 slots proportionally fewer: raise
/// `max_instances` for Python connectors).
const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 50;
const MAX_MEMORIES_PER_COMPONENT: u32 = 4;
const MAX_TABLES_PER_COMPONENT: u32 = 8;
/// Memory and table bytes a freed slot keeps mapped, reset by copying the
/// module's image back over the pages the guest dirtied (found with Linux's
/// `PAGEMAP_SCAN`) instead of `madvise`. Why: unmapping pages after every
/// invocation flushed every core's TLB (IPIs) and the next invocation took a
/// copy-on-write fault per page it touched again: a quarter of the delivery
/// benchmark's CPU samples. A Rust connector's working set fits; a larger
/// one (Python's 12.5 MiB) has the rest decommitted as before. Warm slots are
/// reused first, so about as many stay resident as ran at once: some
/// `workers` × these bytes of RSS.
const MEMORY_KEEP_RESIDENT: usize = 2 << 20;
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

pub fn build(config: &RuntimeConfig) -> anyhow::Result<Engine> {
    let mut base = Config::new();
    base.wasm_component_model(true)
        .epoch_interruption(true)
        .memory_init_cow(true)
        .parallel_compilation(true);

    let n = config.max_instances.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        .total_core_instances(n * 8)
        .total_memories(n * 2)
        .total_tables(n * 4)
        .total_stacks(n)
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
        .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
        .max_memory_size(config.memory_limit)
        .max_component_instance_size(4 << 20)
        .max_core_instance_size(4 << 20)
        .table_elements(100_000)
        .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
        .table_keep_resident(TABLE_KEEP_RESIDENT)
        .pagemap_scan(Enabled::Auto);
    let mut pooled = base.clone();
    pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    // The pool reserves virtual address space up front; where that is restricted
    // (ulimit -v, some sandboxes) fall back to allocating on demand.
    match Engine::new(&pooled) {
        Ok(engine) => Ok(engine),
        Err(err) => {
            tracing::warn!(error = %err, "pooling allocator unavailable; instances will be allocated on demand");
            base.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            Engine::new(&base)
                .map_err(anyhow::Error::from)
                .context("cannot create the wasm engine")
        }
    }
}

/// Bumps the engine's epoch every [`EPOCH_TICK`] for as long as the engine lives.
pub fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => break,
            }
        })
        .expect("spawn the epoch thread");
}

/// Epoch ticks in `d`, at least one.
pub fn ticks(d: Duration) -> u64 {
    (d.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
}
