//! What happens to a job whose run failed: retried (at which time, using an
//! attempt or not), failed for good, or dead. Pure, so every rule has a test.
//!
//! - A connector error carrying a Retry-After (a 429 or 503 it passed on) is a
//!   throttle: rescheduled at that time without using an attempt, up to
//!   `max_throttles` per job.
//! - A run stopped by the CPU deadline or the wall-clock limit is retried once
//!   at most, and the recorded error says so: a second one fails the job.
//! - Other retryable errors follow the schedule until `max_attempts`.

use std::time::Duration;

use super::jobs::{Claimed, Finish};
use super::policy::RetryPolicy;
use crate::flow::Outcome;
use crate::ids::now_ms;
use crate::runtime::InvokeError;

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Retry {
        error: String,
        delay: Duration,
        throttled: bool,
        time_kill: bool,
    },
    Failed {
        error: String,
    },
    Dead {
        error: String,
    },
}

impl Decision {
    /// What the circuit breaker learns from it.
    pub fn outcome(&self) -> Outcome {
        match self {
            // A throttle means the target is up and asks us to slow down.
            Self::Retry {
                throttled: true, ..
            } => Outcome::Neutral,
            Self::Retry { .. } | Self::Dead { .. } => Outcome::Failure,
            Self::Failed { .. } => Outcome::Neutral,
        }
    }

    /// The attempt's outcome and error, as recorded.
    pub fn recorded(&self) -> (&'static str, String) {
        match self {
            Self::Retry { error, .. } => ("retry", error.clone()),
            Self::Failed { error } => ("failed", error.clone()),
            Self::Dead { error } => ("dead", error.clone()),
        }
    }

    pub fn into_finish(self) -> Finish {
        match self {
            Self::Retry {
                error,
                delay,
                throttled,
                time_kill,
            } => Finish::Retry {
                error,
                run_at: now_ms() + delay.as_millis() as i64,
                throttled,
                time_kill,
            },
            Self::Failed { error } => Finish::Failed { error },
            Self::Dead { error } => Finish::Dead { error },
        }
    }
}

pub fn decide(job: &Claimed, err: &InvokeError, policy: &RetryPolicy) -> Decision {
    let error = err.to_string();
    let time_kill = matches!(err, InvokeError::Deadline(_) | InvokeError::Timeout(_));
    if time_kill {
        if job.time_kills >= 1 {
            return Decision::Failed {
                error: format!(
                    "{error}; stopped by a time limit twice, so it is not retried again"
                ),
            };
        }
        if job.attempt < policy.max_attempts {
            return Decision::Retry {
                error: format!("{error}; a run stopped by a time limit is retried once"),
                delay: policy.delay(job.attempt, None),
                throttled: false,
                time_kill: true,
            };
        }
    }
    if !err.retryable() && !time_kill {
        return Decision::Failed { error };
    }
    if let Some(after) = err.retry_after() {
        if job.throttles < policy.max_throttles {
            return Decision::Retry {
                error: format!("{error} (throttled: retried after {after:?}, no attempt used)"),
                delay: policy.throttle_delay(after),
                throttled: true,
                time_kill: false,
            };
        }
    }
    if job.attempt < policy.max_attempts {
        return Decision::Retry {
            error,
            delay: policy.delay(job.attempt, err.retry_after()),
            throttled: false,
            time_kill: false,
        };
    }
    Decision::Dead {
        error: format!("gave up after {} attempts: {error}", job.attempt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::QueueConfig;
    use crate::queue::JobKind;

    fn job(attempt: u32, throttles: u32, time_kills: u32) -> Claimed {
        Claimed {
            id: crate::ids::JobId::new(),
            connection_id: 1,
            plugin: "p".into(),
            kind: JobKind::Task {
                name: "t".into(),
                payload: "{}".into(),
            },
            attempt,
            max_attempts: 9,
            owner: "me".into(),
            ordering_key: None,
            coalesced_event_id: None,
            coalesced: 0,
            throttles,
            time_kills,
            event: None,
        }
    }

    fn guest(retryable: bool, retry_after: Option<u64>) -> InvokeError {
        InvokeError::Guest {
            retryable,
            message: "HTTP 429".into(),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::new(
            &QueueConfig {
                max_throttles: 2,
                ..Default::default()
            },
            None,
        )
    }

    #[test]
    fn a_throttle_does_not_use_an_attempt_up_to_the_bound() {
        let d = decide(&job(1, 0, 0), &guest(true, Some(5)), &policy());
        let Decision::Retry {
            throttled, delay, ..
        } = d
        else {
            panic!("{d:?}")
        };
        assert!(throttled && delay >= Duration::from_secs(5) && delay <= Duration::from_secs(6));
        // Past the bound it is an ordinary retry, at least as late as asked.
        let d = decide(&job(1, 2, 0), &guest(true, Some(600)), &policy());
        assert!(
            matches!(d, Decision::Retry { throttled: false, delay, .. } if delay == Duration::from_secs(600)),
            "{d:?}"
        );
        // And the last attempt then dies.
        let d = decide(&job(9, 2, 0), &guest(true, Some(5)), &policy());
        assert!(matches!(d, Decision::Dead { .. }), "{d:?}");
    }

    #[test]
    fn a_time_limit_gets_one_retry_and_says_so() {
        let deadline = InvokeError::Deadline(Duration::from_secs(30));
        let d = decide(&job(1, 0, 0), &deadline, &policy());
        let (outcome, error) = d.recorded();
        assert_eq!(outcome, "retry");
        assert!(error.contains("retried once"), "{error}");
        let d = decide(
            &job(2, 0, 1),
            &InvokeError::Timeout(Duration::from_secs(600)),
            &policy(),
        );
        let (outcome, error) = d.recorded();
        assert_eq!(outcome, "failed");
        assert!(error.contains("not retried again"), "{error}");
    }

    #[test]
    fn permanent_errors_fail_at_once() {
        let d = decide(&job(1, 0, 0), &guest(false, None), &policy());
        assert_eq!(d.outcome(), Outcome::Neutral);
        assert!(matches!(d, Decision::Failed { .. }));
        let d = decide(&job(1, 0, 0), &guest(true, None), &policy());
        assert_eq!(d.outcome(), Outcome::Failure);
    }
}
