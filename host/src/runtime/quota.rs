//! Quotas of one connection, and the bookkeeping of one invocation against
//! them. Exceeding one fails the host call with an error the connector sees
//! (or, for logs, drops the lines and says how many once); nothing outside the
//! connection is affected.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::{ConnectionLimits, RuntimeConfig};

/// The limits that apply to one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quotas {
    /// Host calls of any kind per invocation.
    pub max_host_calls: u64,
    /// Summary and error text kept (stored and logged), in bytes.
    pub max_summary_bytes: usize,
    /// Log lines (log import, stdout, stderr) per invocation.
    pub max_log_lines: u64,
    /// Log bytes per invocation.
    pub max_log_bytes: u64,
    /// State entries per connection.
    pub max_state_keys: u64,
    /// Bytes of state (keys and values) per connection.
    pub max_state_bytes: u64,
    /// Scheduled tasks waiting to run, per connection.
    pub max_pending_tasks: u64,
    /// Outbound requests (http and source-api) per invocation.
    pub max_requests: u64,
}

impl Quotas {
    /// `[runtime]` values, overridden by the connection's `limits`.
    pub fn resolve(runtime: &RuntimeConfig, limits: &ConnectionLimits) -> Self {
        Self {
            max_host_calls: limits.max_host_calls.unwrap_or(runtime.max_host_calls),
            max_summary_bytes: limits
                .max_summary_bytes
                .unwrap_or(runtime.max_summary_bytes),
            max_log_lines: limits.max_log_lines.unwrap_or(runtime.max_log_lines),
            max_log_bytes: limits.max_log_bytes.unwrap_or(runtime.max_log_bytes),
            max_state_keys: limits.max_state_keys.unwrap_or(runtime.max_state_keys),
            max_state_bytes: limits.max_state_bytes.unwrap_or(runtime.max_state_bytes),
            max_pending_tasks: limits
                .max_pending_tasks
                .unwrap_or(runtime.max_pending_tasks),
            max_requests: limits.max_requests.unwrap_or(runtime.max_requests),
        }
    }
}

/// `text` cut to at most `max` bytes (on a character boundary) followed by a
/// marker saying how much was cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [cut: {} more bytes]", &text[..end], text.len() - end)
}

/// Log lines and bytes an invocation may still write, shared by the `log`
/// import and the guest's stdout and stderr.
#[derive(Debug)]
pub struct LogBudget {
    max_lines: u64,
    max_bytes: u64,
    lines: AtomicU64,
    bytes: AtomicU64,
    dropped: AtomicU64,
}

impl LogBudget {
    pub fn new(max_lines: u64, max_bytes: u64) -> Self {
        Self {
            max_lines,
            max_bytes,
            lines: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Whether a line of `len` bytes may be written (else it is counted as dropped).
    pub fn admit(&self, len: usize) -> bool {
        let lines = self.lines.fetch_add(1, Ordering::Relaxed) + 1;
        let bytes = self.bytes.fetch_add(len as u64, Ordering::Relaxed) + len as u64;
        if lines > self.max_lines || bytes > self.max_bytes {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Lines dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The one line that replaces the dropped ones.
    pub fn dropped_message(&self) -> Option<String> {
        let n = self.dropped();
        (n > 0).then(|| {
            format!(
                "{n} lines dropped: a connector may log {} lines and {} bytes per invocation",
                self.max_lines, self.max_bytes
            )
        })
    }
}

impl Default for LogBudget {
    fn default() -> Self {
        let runtime = RuntimeConfig::default();
        Self::new(runtime.max_log_lines, runtime.max_log_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_marks_what_it_removed() {
        assert_eq!(cut("short", 16), "short");
        let long = "é".repeat(20); // 40 bytes
        let out = cut(&long, 11);
        assert!(out.starts_with(&"é".repeat(5)), "{out}");
        assert!(out.ends_with("… [cut: 30 more bytes]"), "{out}");
    }

    #[test]
    fn log_budget_counts_lines_and_bytes() {
        let by_lines = LogBudget::new(3, 1000);
        assert_eq!((0..5).filter(|_| by_lines.admit(10)).count(), 3);
        assert_eq!(by_lines.dropped(), 2);
        assert!(by_lines
            .dropped_message()
            .unwrap()
            .starts_with("2 lines dropped"));
        let by_bytes = LogBudget::new(100, 25);
        assert_eq!((0..5).filter(|_| by_bytes.admit(10)).count(), 2);
        assert_eq!(LogBudget::new(1, 1).dropped_message(), None);
    }

    #[test]
    fn connection_limits_override_the_runtime_ones() {
        let runtime = RuntimeConfig::default();
        let limits = ConnectionLimits {
            max_state_keys: Some(5),
            ..Default::default()
        };
        let q = Quotas::resolve(&runtime, &limits);
        assert_eq!(q.max_state_keys, 5);
        assert_eq!(q.max_requests, runtime.max_requests);
    }
}
