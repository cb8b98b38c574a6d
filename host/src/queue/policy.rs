//! Delivery policy: when to try a failed job again, and the per-connection
//! settings (`[connections.delivery]`) that override the `[queue]` defaults.
//!
//! The default schedule suits third-party APIs: about a day of retries (30 s,
//! 2 m, 10 m, 30 m, 1 h, 3 h, 6 h, 12 h), each delay ±20 % so retries of many
//! jobs spread out. A 429 or 503 whose Retry-After the connector passes on
//! reschedules without using an attempt (up to `max_throttles` times), at the
//! asked time plus up to 20 %; Retry-After is honoured up to `retry_after_max`.

use std::collections::HashMap;
use std::time::Duration;

use rand::Rng as _;
use serde::{Deserialize, Deserializer, Serialize};

use crate::config::{ConnectionDecl, QueueConfig};
use crate::ids::{now_ms, ConnectionId};
use crate::store::Pool;

/// The default retry delays after attempts 1, 2, …
pub const DEFAULT_SCHEDULE: &[Duration] = &[
    Duration::from_secs(30),
    Duration::from_secs(2 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(3600),
    Duration::from_secs(3 * 3600),
    Duration::from_secs(6 * 3600),
    Duration::from_secs(12 * 3600),
];

/// Per-connection delivery settings; every field falls back to `[queue]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryDecl {
    /// Retry delays after attempts 1, 2, … (`["1m", "10m", "1h"]`).
    #[serde(
        default,
        deserialize_with = "opt_durations",
        serialize_with = "ser_opt_durations"
    )]
    pub retry_schedule: Option<Vec<Duration>>,
    /// Attempts before a job that keeps failing is dead.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Jobs of this connection running at once in this process.
    #[serde(default)]
    pub max_concurrency: Option<usize>,
    /// Outbound requests per second the connector may make (token bucket).
    #[serde(default)]
    pub rate_limit: Option<f64>,
    /// Consecutive failures that open the circuit breaker.
    #[serde(default)]
    pub circuit_failures: Option<u32>,
    /// How long an open circuit waits before one probe job.
    #[serde(default, with = "humantime_serde")]
    pub circuit_cool_down: Option<Duration>,
}

/// A periodic task of a connection: `{task = "sync-all", every = "24h"}` or
/// `{task = "sync-all", cron = "0 3 * * *"}` (UTC), with an optional payload.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDecl {
    pub task: String,
    #[serde(default, with = "humantime_serde")]
    pub every: Option<Duration>,
    #[serde(default)]
    pub cron: Option<String>,
    #[serde(default)]
    pub payload: Option<serde_json::Value>,
}

impl DeliveryDecl {
    pub fn validate(&self, connection: &str) -> anyhow::Result<()> {
        if let Some(rate) = self.rate_limit {
            anyhow::ensure!(
                rate.is_finite() && rate > 0.0,
                "connection {connection:?}: delivery.rate_limit must be a positive number of requests per second"
            );
        }
        anyhow::ensure!(
            self.max_concurrency != Some(0),
            "connection {connection:?}: delivery.max_concurrency must be at least 1"
        );
        anyhow::ensure!(
            self.max_attempts != Some(0),
            "connection {connection:?}: delivery.max_attempts must be at least 1"
        );
        Ok(())
    }
}

fn parse_durations(items: Vec<String>) -> Result<Vec<Duration>, String> {
    items
        .iter()
        .map(|s| humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}")))
        .collect()
}

/// `["30s", "2m"]` as durations.
pub fn durations<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
    parse_durations(Vec::<String>::deserialize(d)?).map_err(serde::de::Error::custom)
}

fn opt_durations<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Duration>>, D::Error> {
    Option::<Vec<String>>::deserialize(d)?
        .map(parse_durations)
        .transpose()
        .map_err(serde::de::Error::custom)
}

fn ser_opt_durations<S: serde::Serializer>(
    v: &Option<Vec<Duration>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    v.as_ref()
        .map(|list| {
            list.iter()
                .map(|d| humantime::format_duration(*d).to_string())
                .collect::<Vec<_>>()
        })
        .serialize(s)
}

/// How one connection's failed jobs are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub schedule: Vec<Duration>,
    /// `(base, max)`: doubling from `base` instead of the schedule.
    pub exponential: Option<(Duration, Duration)>,
    pub max_attempts: u32,
    pub retry_after_max: Duration,
    pub max_throttles: u32,
}

impl RetryPolicy {
    pub fn new(queue: &QueueConfig, delivery: Option<&DeliveryDecl>) -> Self {
        let own_schedule = delivery.and_then(|d| d.retry_schedule.clone());
        Self {
            exponential: match (&own_schedule, queue.backoff_base) {
                (None, Some(base)) => Some((base, queue.backoff_max)),
                _ => None,
            },
            schedule: own_schedule.unwrap_or_else(|| queue.retry_schedule.clone()),
            max_attempts: delivery
                .and_then(|d| d.max_attempts)
                .unwrap_or(queue.max_attempts),
            retry_after_max: queue.retry_after_max,
            max_throttles: queue.max_throttles,
        }
    }

    /// Nominal delay after attempt `attempt` (1-based) failed.
    fn nominal(&self, attempt: u32) -> Duration {
        if let Some((base, max)) = self.exponential {
            return base
                .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
                .min(max);
        }
        let i = (attempt.max(1) - 1) as usize;
        self.schedule
            .get(i)
            .or(self.schedule.last())
            .copied()
            .unwrap_or(Duration::from_secs(60))
    }

    /// Delay before the next attempt after `attempt` failed: the schedule ±20 %,
    /// or the connector's Retry-After when longer (up to `retry_after_max`).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let scheduled = self
            .nominal(attempt)
            .mul_f64(rand::rng().random_range(0.8..=1.2));
        match retry_after {
            Some(after) => scheduled.max(after.min(self.retry_after_max)),
            None => scheduled,
        }
    }

    /// Delay of a throttled retry: what the target asked (up to the maximum),
    /// plus up to 20 % so a herd of throttled jobs does not come back at once.
    pub fn throttle_delay(&self, retry_after: Duration) -> Duration {
        retry_after
            .min(self.retry_after_max)
            .mul_f64(rand::rng().random_range(1.0..=1.2))
    }
}

/// Stores the `[connections.delivery]` of the declared connections (by name).
pub async fn apply(pool: &Pool, connections: &[ConnectionDecl]) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    for decl in connections {
        let Some(id) =
            crate::store::sql::query_scalar::<i64>("SELECT id FROM connections WHERE name = ?")
                .bind(&decl.name)
                .fetch_optional(&mut tx)
                .await?
        else {
            continue;
        };
        if decl.delivery == DeliveryDecl::default() {
            crate::store::sql::query("DELETE FROM connection_policies WHERE connection_id = ?")
                .bind(id)
                .execute(&mut tx)
                .await?;
            continue;
        }
        crate::store::sql::query(
            "INSERT INTO connection_policies (connection_id, policy, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (connection_id) DO UPDATE SET policy = ?2, updated_at = ?3",
        )
        .bind(id)
        .bind(serde_json::to_string(&decl.delivery)?)
        .bind(now_ms())
        .execute(&mut tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Every stored per-connection policy.
pub async fn load(pool: &Pool) -> anyhow::Result<HashMap<ConnectionId, DeliveryDecl>> {
    let rows = crate::store::sql::query("SELECT connection_id, policy FROM connection_policies")
        .fetch_all(pool)
        .await?;
    let mut out = HashMap::new();
    for row in rows {
        let policy: String = row.get("policy");
        out.insert(row.get("connection_id"), serde_json::from_str(&policy)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::new(&QueueConfig::default(), None)
    }

    #[test]
    fn the_default_schedule_spans_about_a_day_with_jitter() {
        let p = policy();
        assert_eq!(p.max_attempts, 9);
        let total: Duration = DEFAULT_SCHEDULE.iter().sum();
        assert!(total > Duration::from_secs(22 * 3600) && total < Duration::from_secs(26 * 3600));
        for (i, nominal) in DEFAULT_SCHEDULE.iter().enumerate() {
            let d = p.delay(i as u32 + 1, None).as_secs_f64();
            let n = nominal.as_secs_f64();
            assert!(
                d >= n * 0.8 - 1e-6 && d <= n * 1.2 + 1e-6,
                "attempt {}: {d}",
                i + 1
            );
        }
        // Past the end, the last delay repeats.
        assert!(p.delay(30, None) >= Duration::from_secs(12 * 3600).mul_f64(0.8));
        // Jitter really varies.
        let samples: std::collections::HashSet<u128> =
            (0..20).map(|_| p.delay(1, None).as_millis()).collect();
        assert!(samples.len() > 5, "{samples:?}");
    }

    #[test]
    fn retry_after_above_the_schedule_is_honoured_up_to_the_maximum() {
        let p = policy();
        let d = p.delay(1, Some(Duration::from_secs(600)));
        assert_eq!(d, Duration::from_secs(600));
        let d = p.delay(1, Some(Duration::from_secs(5 * 3600)));
        assert_eq!(d, Duration::from_secs(3600), "capped by retry_after_max");
        // Shorter than the schedule: the schedule wins (the attempt is used).
        assert!(p.delay(1, Some(Duration::from_secs(1))) >= Duration::from_secs(24));
        let t = p.throttle_delay(Duration::from_secs(10));
        assert!(
            t >= Duration::from_secs(10) && t <= Duration::from_secs(12),
            "{t:?}"
        );
        assert!(p.throttle_delay(Duration::from_secs(99_999)) <= Duration::from_secs(4320));
    }

    #[test]
    fn a_connection_overrides_the_schedule_and_attempts() {
        let delivery = DeliveryDecl {
            retry_schedule: Some(vec![Duration::from_secs(5)]),
            max_attempts: Some(2),
            ..Default::default()
        };
        let queue = QueueConfig {
            backoff_base: Some(Duration::from_millis(100)),
            ..Default::default()
        };
        let p = RetryPolicy::new(&queue, Some(&delivery));
        assert_eq!(p.max_attempts, 2);
        assert_eq!(p.exponential, None, "its own schedule beats backoff_base");
        assert!(p.delay(3, None) <= Duration::from_secs(6));
        // Without its own schedule, backoff_base doubles.
        let p = RetryPolicy::new(&queue, None);
        let d = p.delay(3, None);
        assert!(
            d >= Duration::from_millis(320) && d <= Duration::from_millis(480),
            "{d:?}"
        );
    }
}
