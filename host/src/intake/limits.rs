//! Intake's bounds: total header size (431), a per-source rate limit (429 with
//! `Retry-After`), and a sampled log of refused requests so a flood of bad
//! requests costs one log line per interval, not one per request.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::ids::SourceId;

/// Size of a request's headers as sent: `name: value\r\n` each.
pub fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

/// Middleware: 431 when the headers exceed `max`, before the body is read.
pub async fn limit_headers(
    State((max, refusals)): State<(usize, Arc<RefusalLog>)>,
    request: Request,
    next: Next,
) -> Response {
    let size = header_bytes(request.headers());
    if size > max {
        refusals.record(Refusal::HeadersTooLarge, request.uri().path());
        return (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Json(serde_json::json!({
                "detail": format!("Request headers total {size} bytes; at most {max} are accepted")
            })),
        )
            .into_response();
    }
    next.run(request).await
}

/// A source's rate: webhooks per second (0 = unlimited) and burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

/// One token bucket per source, rebuilt when its rate changes.
#[derive(Default)]
pub struct RateLimits {
    buckets: Mutex<HashMap<SourceId, (Rate, Arc<DefaultDirectRateLimiter>)>>,
}

impl RateLimits {
    /// `Err(wait)` when `source` has spent its budget.
    pub fn check(&self, source: SourceId, rate: Rate) -> Result<(), Duration> {
        if rate.per_second <= 0.0 {
            return Ok(());
        }
        let limiter = {
            let mut buckets = self.buckets.lock().expect("rate limits lock");
            match buckets.get(&source) {
                Some((r, limiter)) if *r == rate => limiter.clone(),
                _ => {
                    let limiter = Arc::new(RateLimiter::direct(quota(rate)));
                    buckets.insert(source, (rate, limiter.clone()));
                    limiter
                }
            }
        };
        limiter.check().map_err(|not_until| {
            not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ))
        })
    }
}

fn quota(rate: Rate) -> Quota {
    // One webhook per `period`; very high rates are capped at one per nanosecond.
    let period = Duration::from_secs_f64(1.0 / rate.per_second).max(Duration::from_nanos(1));
    let burst = NonZeroU32::new(rate.burst.max(1)).expect("at least 1");
    Quota::with_period(period)
        .expect("a positive period")
        .allow_burst(burst)
}

/// Why intake refused a request, for the sampled log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    UnknownSource,
    BadSignature,
    RateLimited,
    BodyTooLarge,
    HeadersTooLarge,
    Duplicate,
}

impl Refusal {
    const ALL: [Refusal; 6] = [
        Refusal::UnknownSource,
        Refusal::BadSignature,
        Refusal::RateLimited,
        Refusal::BodyTooLarge,
        Refusal::HeadersTooLarge,
        Refusal::Duplicate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownSource => "unknown source",
            Self::BadSignature => "bad signature or timestamp",
            Self::RateLimited => "rate limited",
            Self::BodyTooLarge => "body too large",
            Self::HeadersTooLarge => "headers too large",
            Self::Duplicate => "duplicate",
        }
    }
}

/// Counts refusals and logs at most one line per kind and interval, carrying
/// how many were not logged since the previous line.
pub struct RefusalLog {
    interval: Duration,
    kinds: [Mutex<Sampler>; 6],
}

#[derive(Default)]
struct Sampler {
    last_line: Option<Instant>,
    unlogged: u64,
    total: u64,
}

/// What [`RefusalLog::sample`] decided: log this one (with how many were
/// skipped since the previous line), or only count it.
#[derive(Debug, PartialEq, Eq)]
pub enum Sampled {
    Log { skipped: u64 },
    Counted,
}

impl RefusalLog {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            kinds: Default::default(),
        }
    }

    fn index(kind: Refusal) -> usize {
        Refusal::ALL
            .iter()
            .position(|k| *k == kind)
            .expect("listed")
    }

    /// The sampling decision alone, at `now`.
    pub fn sample(&self, kind: Refusal, now: Instant) -> Sampled {
        let mut s = self.kinds[Self::index(kind)].lock().expect("refusal lock");
        s.total += 1;
        let due = s
            .last_line
            .is_none_or(|t| now.duration_since(t) >= self.interval);
        if due {
            s.last_line = Some(now);
            let skipped = std::mem::take(&mut s.unlogged);
            Sampled::Log { skipped }
        } else {
            s.unlogged += 1;
            Sampled::Counted
        }
    }

    /// Refusals of `kind` since start.
    pub fn total(&self, kind: Refusal) -> u64 {
        self.kinds[Self::index(kind)]
            .lock()
            .expect("refusal lock")
            .total
    }

    /// Counts a refusal and logs it if its kind has not logged for an interval.
    pub fn record(&self, kind: Refusal, detail: &str) {
        if let Sampled::Log { skipped } = self.sample(kind, Instant::now()) {
            tracing::warn!(
                reason = kind.as_str(),
                detail,
                not_logged_since_last = skipped,
                "webhook refused (one line per {:?} for each reason)",
                self.interval
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_logs_one_line_per_interval_and_counts_the_rest() {
        let log = RefusalLog::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let mut lines = Vec::new();
        for ms in 0..25_000u64 {
            // 1000 refusals a second for 25 s.
            if let Sampled::Log { skipped } =
                log.sample(Refusal::BadSignature, t0 + Duration::from_millis(ms))
            {
                lines.push((ms, skipped));
            }
        }
        assert_eq!(lines, vec![(0, 0), (10_000, 9_999), (20_000, 9_999)]);
        assert_eq!(log.total(Refusal::BadSignature), 25_000);
        // Kinds are sampled independently.
        assert_eq!(
            log.sample(Refusal::RateLimited, t0 + Duration::from_millis(1)),
            Sampled::Log { skipped: 0 }
        );
    }

    #[test]
    fn the_bucket_refuses_past_the_burst_and_says_how_long_to_wait() {
        let limits = RateLimits::default();
        let rate = Rate {
            per_second: 0.5,
            burst: 3,
        };
        for _ in 0..3 {
            assert_eq!(limits.check(1, rate), Ok(()));
        }
        let wait = limits.check(1, rate).unwrap_err();
        assert!(
            wait > Duration::from_millis(1500) && wait <= Duration::from_secs(2),
            "{wait:?}"
        );
        // Another source has its own bucket; a changed rate starts a new one.
        assert_eq!(limits.check(2, rate), Ok(()));
        let faster = Rate {
            per_second: 0.5,
            burst: 4,
        };
        assert_eq!(limits.check(1, faster), Ok(()));
        // 0 per second: unlimited.
        let off = Rate {
            per_second: 0.0,
            burst: 0,
        };
        assert!((0..10_000).all(|_| limits.check(3, off).is_ok()));
    }
}
