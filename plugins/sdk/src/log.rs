//! Logging into the host's log, which tags each line with the connector and the
//! connection. Use the macros ([`info!`](crate::info), [`warn!`](crate::warn), …)
//! like `format!`. Never log secrets or whole payloads (known secrets are
//! redacted anyway). An invocation may write a bounded number of lines and
//! bytes (`max_log_lines` / `max_log_bytes`, shared with stdout and stderr);
//! the host drops the rest and logs once how many it dropped. Compiled natively
//! (unit tests), lines go to stderr.

/// Severity of a log line (the WIT `level`).
pub use crate::bindings::recoco::connector::log::Level;

/// Logs `message` at `level`.
pub fn log(level: Level, message: &str) {
    crate::host::log(level, message);
}

/// Logs at `trace` level.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Trace, &::std::format!($($arg)*)) };
}

/// Logs at `debug` level.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Debug, &::std::format!($($arg)*)) };
}

/// Logs at `info` level.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Info, &::std::format!($($arg)*)) };
}

/// Logs at `warn` level.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Warn, &::std::format!($($arg)*)) };
}

/// Logs at `error` level.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Error, &::std::format!($($arg)*)) };
}
