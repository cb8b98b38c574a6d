//! Progress of long tasks (a full sync), shown to operators while the job runs.
//! Cheap for the connector, but report every few items rather than every one.

/// Reports that `done` items of `total` (when known) are processed, with a short
/// message (`"projects synced"`).
pub fn report(done: u64, total: Option<u64>, message: &str) {
    crate::host::progress(done, total, message);
}
