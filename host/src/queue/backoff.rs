//! When to try a failed job again: exponential backoff with ±20 % jitter, or the
//! connector's `retry-after`, never beyond the configured maximum.

use std::time::Duration;

use rand::Rng as _;

/// Delay before attempt `attempt + 1`, after `attempt` (1-based) failed.
pub fn delay(
    attempt: u32,
    base: Duration,
    max: Duration,
    retry_after: Option<Duration>,
) -> Duration {
    if let Some(after) = retry_after {
        return after.min(max);
    }
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(max);
    let jitter = rand::rng().random_range(0.8..=1.2);
    capped.mul_f64(jitter).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_within_jitter_and_caps() {
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(300);
        for (attempt, nominal) in [(1, 10.0), (2, 20.0), (3, 40.0), (4, 80.0)] {
            let d = delay(attempt, base, max, None).as_secs_f64();
            assert!(
                d >= nominal * 0.8 - 1e-9 && d <= nominal * 1.2 + 1e-9,
                "attempt {attempt}: {d}"
            );
        }
        // At the cap, jitter only shortens (spreading retries of many jobs).
        let capped = delay(30, base, max, None);
        assert!(capped <= max && capped >= max.mul_f64(0.8), "{capped:?}");
    }

    #[test]
    fn retry_after_wins_but_is_capped() {
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(300);
        assert_eq!(
            delay(1, base, max, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(delay(1, base, max, Some(Duration::from_secs(9999))), max);
    }
}
