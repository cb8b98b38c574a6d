//! Memory and table caps of one invocation. Unlike `StoreLimits`, this limiter
//! remembers that the cap was hit, so the trap that follows (the guest's
//! allocator aborts) is reported as "memory limit exceeded", not as a crash.

/// Table elements a connector may have; generous for Rust components.
const MAX_TABLE_ELEMENTS: usize = 100_000;

#[derive(Debug)]
pub struct Limiter {
    memory_limit: usize,
    pub memory_exceeded: bool,
    pub peak_memory: usize,
}

impl Limiter {
    pub fn new(memory_limit: usize) -> Self {
        Self {
            memory_limit,
            memory_exceeded: false,
            peak_memory: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.memory_exceeded = true;
            return Ok(false);
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
