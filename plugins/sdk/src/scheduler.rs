//! Deferred work: asks the host to run one of the connector's tasks later, for
//! the same connection. The host owns the timing and the queue; the task runs
//! through [`Connector::run_task`](crate::Connector::run_task). A connection may
//! have a bounded number of tasks waiting (`max_pending_tasks`, 1000 by
//! default): past it, scheduling fails with a permanent error, unless a dedup
//! key replaces a waiting task.

use std::time::Duration;

use serde::Serialize;

use crate::Error;

/// Runs task `name` with `payload_json` after `delay`. With `dedup_key`, a
/// pending task of the same name and key is replaced instead of adding another
/// (a debounce: schedule `sync-project` with key `1312` on every event).
pub fn schedule(
    name: &str,
    payload_json: &str,
    delay: Duration,
    dedup_key: Option<&str>,
) -> Result<(), Error> {
    let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    crate::host::schedule(name, payload_json, delay_ms, dedup_key)
        .map_err(|err| Error::from(err).context(format_args!("schedule task `{name}`")))
}

/// Like [`schedule`], with the payload serialized from `payload`.
pub fn schedule_json<T: Serialize + ?Sized>(
    name: &str,
    payload: &T,
    delay: Duration,
    dedup_key: Option<&str>,
) -> Result<(), Error> {
    let json = serde_json::to_string(payload).map_err(|err| {
        Error::permanent(format!(
            "schedule task `{name}`: cannot serialize the payload: {err}"
        ))
    })?;
    schedule(name, &json, delay, dedup_key)
}
