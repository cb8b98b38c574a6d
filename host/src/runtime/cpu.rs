//! The CPU time an invocation really consumes: the thread CPU clock
//! (`CLOCK_THREAD_CPUTIME_ID`) read around every poll of the invocation's
//! future. Guest code runs inside those polls (wasmtime's fibers switch on the
//! polling thread), and so does the host's own work for the guest's calls;
//! waiting (network, a busy machine's run queue) is not counted, so a loaded
//! machine does not kill a connector early. Unit: CPU nanoseconds.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// CPU time the calling thread has consumed since it started.
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant
    // supported by every Linux and BSD.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU consumed by one invocation so far.
#[derive(Debug, Default)]
pub struct CpuMeter {
    /// Nanoseconds consumed by finished polls.
    spent: AtomicU64,
    /// Thread CPU clock at the start of the running poll, 0 when none runs.
    poll_started: AtomicU64,
}

impl CpuMeter {
    /// Consumed so far, the running poll included. Call it from the polling
    /// thread (the epoch callback and host calls are).
    pub fn used(&self) -> Duration {
        let spent = self.spent.load(Ordering::Relaxed);
        let started = self.poll_started.load(Ordering::Relaxed);
        let running = if started == 0 {
            0
        } else {
            (thread_cpu().as_nanos() as u64).saturating_sub(started)
        };
        Duration::from_nanos(spent + running)
    }
}

/// `future`, with the CPU time of each of its polls added to `meter`.
pub fn metered<F: Future>(meter: Arc<CpuMeter>, future: F) -> Metered<F> {
    Metered {
        meter,
        future: Box::pin(future),
    }
}

pub struct Metered<F> {
    meter: Arc<CpuMeter>,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let start = (thread_cpu().as_nanos() as u64).max(1);
        self.meter.poll_started.store(start, Ordering::Relaxed);
        let out = self.future.as_mut().poll(cx);
        let end = thread_cpu().as_nanos() as u64;
        self.meter.poll_started.store(0, Ordering::Relaxed);
        self.meter
            .spent
            .fetch_add(end.saturating_sub(start), Ordering::Relaxed);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_computation_not_waiting() {
        let meter = Arc::new(CpuMeter::default());
        metered(meter.clone(), async {
            tokio::time::sleep(Duration::from_millis(300)).await;
        })
        .await;
        assert!(
            meter.used() < Duration::from_millis(50),
            "{:?}",
            meter.used()
        );
        metered(meter.clone(), async {
            let start = thread_cpu();
            let mut x = 0u64;
            while thread_cpu() - start < Duration::from_millis(100) {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        })
        .await;
        assert!(
            meter.used() >= Duration::from_millis(100),
            "{:?}",
            meter.used()
        );
    }
}
