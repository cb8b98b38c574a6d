//! Per-connection flow control, in this process: how many jobs of a connection
//! run at once, how many outbound requests per second it may make (a token
//! bucket from `governor`, taken in the `http` import), and a circuit breaker.
//!
//! The breaker: after `circuit_failures` consecutive retryable failures a
//! connection is `open` (none of its jobs is claimed) for `circuit_cool_down`;
//! then `half-open`: one probe job runs; its success closes the circuit, its
//! failure opens it again. Knows nothing of SQL: the queue asks it which
//! connections to leave alone and reports how runs ended.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Serialize;

use crate::config::QueueConfig;
use crate::ids::{now_ms, ConnectionId};
use crate::queue::policy::DeliveryDecl;

/// How a run ended, for the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// A retryable failure (5xx, timeout, connection refused…).
    Failure,
    /// Says nothing about the target's health (4xx, paused, lease lost…).
    Neutral,
}

/// A running job's place in its connection's count: given back with the
/// run's outcome when dropped, however the run ends. The queue drops it as
/// soon as it has written the outcome, before the claims served with it, so
/// they may take the place.
pub struct Slot {
    flow: Arc<FlowControl>,
    connection: ConnectionId,
    pub outcome: Outcome,
}

impl Slot {
    /// The place of a job [`FlowControl::started`] counted.
    pub fn of_started(flow: Arc<FlowControl>, connection: ConnectionId) -> Self {
        Self {
            flow,
            connection,
            outcome: Outcome::Neutral,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.flow.finished(self.connection, self.outcome);
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Circuit {
    Closed,
    Open { until: Instant, until_ms: i64 },
    HalfOpen { probing: bool },
}

#[derive(Debug)]
struct ConnFlow {
    running: usize,
    failures: u32,
    circuit: Circuit,
    opened: u32,
}

impl Default for ConnFlow {
    fn default() -> Self {
        Self {
            running: 0,
            failures: 0,
            circuit: Circuit::Closed,
            opened: 0,
        }
    }
}

/// A connection's flow state, as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FlowView {
    pub connection_id: ConnectionId,
    /// `closed`, `open` or `half-open`.
    pub circuit: &'static str,
    pub consecutive_failures: u32,
    /// When an open circuit lets a probe through (ms since the epoch).
    pub open_until: Option<i64>,
    /// Times the circuit opened since the start.
    pub opened: u32,
    pub running: usize,
    pub max_concurrency: usize,
    pub rate_limit: Option<f64>,
}

pub struct FlowControl {
    default_concurrency: usize,
    circuit_failures: u32,
    circuit_cool_down: Duration,
    policies: RwLock<HashMap<ConnectionId, DeliveryDecl>>,
    state: Mutex<HashMap<ConnectionId, ConnFlow>>,
    buckets: Mutex<HashMap<ConnectionId, (u64, Arc<DefaultDirectRateLimiter>)>>,
}

impl FlowControl {
    pub fn new(queue: &QueueConfig) -> Self {
        Self {
            default_concurrency: queue.max_concurrency.unwrap_or((queue.workers / 2).max(1)),
            circuit_failures: queue.circuit_failures,
            circuit_cool_down: queue.circuit_cool_down,
            policies: Default::default(),
            state: Default::default(),
            buckets: Default::default(),
        }
    }

    pub fn set_policies(&self, policies: HashMap<ConnectionId, DeliveryDecl>) {
        *self.policies.write().expect("flow lock") = policies;
    }

    pub fn policy(&self, id: ConnectionId) -> Option<DeliveryDecl> {
        self.policies.read().expect("flow lock").get(&id).cloned()
    }

    fn limits(&self, id: ConnectionId) -> (usize, u32, Duration) {
        let p = self.policy(id).unwrap_or_default();
        (
            p.max_concurrency.unwrap_or(self.default_concurrency),
            p.circuit_failures.unwrap_or(self.circuit_failures),
            p.circuit_cool_down.unwrap_or(self.circuit_cool_down),
        )
    }

    /// Connections whose jobs must not be claimed now: at their concurrency
    /// limit, behind an open circuit, or half-open with the probe running.
    pub fn excluded(&self) -> Vec<ConnectionId> {
        let mut state = self.state.lock().expect("flow lock");
        let now = Instant::now();
        state
            .iter_mut()
            .filter_map(|(id, f)| {
                if let Circuit::Open { until, .. } = f.circuit {
                    if now >= until {
                        f.circuit = Circuit::HalfOpen { probing: false };
                    }
                }
                let blocked = match f.circuit {
                    Circuit::Open { .. } | Circuit::HalfOpen { probing: true } => true,
                    Circuit::HalfOpen { probing: false } | Circuit::Closed => {
                        f.running >= self.limits(*id).0
                    }
                };
                blocked.then_some(*id)
            })
            .collect()
    }

    /// A job of `id` was claimed (a half-open circuit's probe, when it is one).
    pub fn started(&self, id: ConnectionId) {
        let mut state = self.state.lock().expect("flow lock");
        let f = state.entry(id).or_default();
        f.running += 1;
        if f.circuit == (Circuit::HalfOpen { probing: false }) {
            f.circuit = Circuit::HalfOpen { probing: true };
            tracing::info!(connection_id = id, "circuit half-open: one probe job runs");
        }
    }

    /// A job of `id` ended with `outcome`.
    pub fn finished(&self, id: ConnectionId, outcome: Outcome) {
        let (_, threshold, cool_down) = self.limits(id);
        let mut state = self.state.lock().expect("flow lock");
        let f = state.entry(id).or_default();
        f.running = f.running.saturating_sub(1);
        match outcome {
            Outcome::Success => {
                if f.circuit != Circuit::Closed {
                    tracing::info!(connection_id = id, "circuit closed: the probe succeeded");
                }
                f.failures = 0;
                f.circuit = Circuit::Closed;
            }
            Outcome::Failure => {
                f.failures += 1;
                let probe_failed = matches!(f.circuit, Circuit::HalfOpen { .. });
                if probe_failed || (f.circuit == Circuit::Closed && f.failures >= threshold) {
                    f.circuit = Circuit::Open {
                        until: Instant::now() + cool_down,
                        until_ms: now_ms() + cool_down.as_millis() as i64,
                    };
                    f.opened += 1;
                    tracing::warn!(
                        connection_id = id,
                        failures = f.failures,
                        cool_down_ms = cool_down.as_millis() as u64,
                        "circuit open: the connection's delivery pauses"
                    );
                }
            }
            Outcome::Neutral => {
                if f.circuit == (Circuit::HalfOpen { probing: true }) {
                    f.circuit = Circuit::HalfOpen { probing: false };
                }
            }
        }
    }

    /// Waits for a token of `id`'s outbound rate limit, if it has one.
    pub async fn acquire_request(&self, id: ConnectionId) {
        let Some(rate) = self.policy(id).and_then(|p| p.rate_limit) else {
            return;
        };
        let limiter = {
            let mut buckets = self.buckets.lock().expect("flow lock");
            let entry = buckets.entry(id).or_insert_with(|| (0, limiter(rate)));
            if entry.0 != rate.to_bits() {
                *entry = (rate.to_bits(), limiter(rate));
            }
            entry.1.clone()
        };
        limiter.until_ready().await;
    }

    /// Flow state of every connection seen since the start.
    pub fn views(&self) -> Vec<FlowView> {
        let _ = self.excluded(); // moves elapsed open circuits to half-open
        let state = self.state.lock().expect("flow lock");
        let mut out: Vec<FlowView> = state
            .iter()
            .map(|(id, f)| {
                let (max_concurrency, ..) = self.limits(*id);
                FlowView {
                    connection_id: *id,
                    circuit: match f.circuit {
                        Circuit::Closed => "closed",
                        Circuit::Open { .. } => "open",
                        Circuit::HalfOpen { .. } => "half-open",
                    },
                    consecutive_failures: f.failures,
                    open_until: match f.circuit {
                        Circuit::Open { until_ms, .. } => Some(until_ms),
                        _ => None,
                    },
                    opened: f.opened,
                    running: f.running,
                    max_concurrency,
                    rate_limit: self.policy(*id).and_then(|p| p.rate_limit),
                }
            })
            .collect();
        out.sort_by_key(|v| v.connection_id);
        out
    }
}

/// One token every `1/rate` seconds, no burst: the rate holds over any window.
fn limiter(rate: f64) -> Arc<DefaultDirectRateLimiter> {
    let period = Duration::from_secs_f64(1.0 / rate).max(Duration::from_micros(1));
    let quota = Quota::with_period(period)
        .expect("a positive period")
        .allow_burst(NonZeroU32::MIN);
    Arc::new(RateLimiter::direct(quota))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(failures: u32, cool_down_ms: u64) -> FlowControl {
        FlowControl::new(&QueueConfig {
            workers: 4,
            circuit_failures: failures,
            circuit_cool_down: Duration::from_millis(cool_down_ms),
            ..Default::default()
        })
    }

    #[test]
    fn concurrency_defaults_to_half_the_workers() {
        let f = flow(3, 100);
        f.started(1);
        assert!(f.excluded().is_empty());
        f.started(1);
        assert_eq!(f.excluded(), vec![1]);
        f.finished(1, Outcome::Neutral);
        assert!(f.excluded().is_empty());
    }

    #[test]
    fn the_breaker_opens_probes_once_and_closes() {
        let f = flow(2, 50);
        for _ in 0..2 {
            f.started(7);
            f.finished(7, Outcome::Failure);
        }
        assert_eq!(f.excluded(), vec![7], "open");
        assert_eq!(f.views()[0].circuit, "open");
        std::thread::sleep(Duration::from_millis(60));
        assert!(f.excluded().is_empty(), "half-open lets one probe");
        f.started(7);
        assert_eq!(f.excluded(), vec![7], "only one probe at a time");
        f.finished(7, Outcome::Failure);
        assert_eq!(f.views()[0].circuit, "open", "a failed probe reopens");
        std::thread::sleep(Duration::from_millis(60));
        assert!(f.excluded().is_empty());
        f.started(7);
        f.finished(7, Outcome::Success);
        let v = &f.views()[0];
        assert_eq!(
            (v.circuit, v.consecutive_failures, v.opened),
            ("closed", 0, 2)
        );
    }
}
