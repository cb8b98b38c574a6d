//! Fast recovery: lease owners name their process (`host:pid:start`), so a
//! restarted service releases at once the jobs its dead predecessor on this
//! host was running, instead of waiting for their leases to expire; and a
//! stopping service puts its unfinished jobs back itself.

use std::sync::OnceLock;

use super::lease;
use crate::ids::now_ms;
use crate::store::Pool;

/// This process, as lease owners name it: `host:pid:start_ms`.
pub fn instance() -> &'static str {
    static INSTANCE: OnceLock<String> = OnceLock::new();
    INSTANCE.get_or_init(|| format!("{}:{}:{}", host(), std::process::id(), now_ms()))
}

fn host() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
        // `:` separates the parts of an owner.
        .replace(':', "_")
}

/// Whether process `pid` still runs on this host. Unknown (not Linux): yes,
/// so its jobs wait for their leases as before.
fn alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

/// The `host:pid:start:` prefix of `owner` when it is a dead process of this
/// host other than this one.
fn dead_predecessor(owner: &str, me: &str) -> Option<String> {
    let mut parts = owner.splitn(4, ':');
    let (host, pid, start) = (parts.next()?, parts.next()?, parts.next()?);
    let mut mine = me.splitn(3, ':');
    let (my_host, my_pid, my_start) = (mine.next()?, mine.next()?, mine.next()?);
    if host != my_host || (pid == my_pid && start == my_start) {
        return None;
    }
    // The same pid with another start is a predecessor (containers reuse pid 1).
    let gone = pid == my_pid || !alive(pid.parse().ok()?);
    gone.then(|| format!("{host}:{pid}:{start}:"))
}

/// Releases the running jobs of dead processes of this host. Returns how many.
pub async fn release_predecessors(pool: &Pool) -> sqlx::Result<u64> {
    let mut released = 0;
    let mut seen = std::collections::HashSet::new();
    for owner in lease::lease_owners(pool).await? {
        if let Some(prefix) = dead_predecessor(&owner, instance()) {
            if seen.insert(prefix.clone()) {
                released += lease::release_owned(
                    pool,
                    &prefix,
                    "the process running it stopped (released at restart)",
                )
                .await?;
            }
        }
    }
    if released > 0 {
        tracing::warn!(
            jobs = released,
            "released the jobs a previous process was running"
        );
    }
    Ok(released)
}

/// Puts back this process's running jobs (at shutdown, once their grace ended).
pub async fn release_own(pool: &Pool) -> sqlx::Result<u64> {
    lease::release_owned(
        pool,
        &format!("{}:", instance()),
        "the service stopped before the job finished (shutdown)",
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::dead_predecessor;

    #[test]
    fn only_dead_processes_of_this_host_are_predecessors() {
        let me = "box:100:5000";
        // Myself: never.
        assert_eq!(dead_predecessor("box:100:5000:w1", me), None);
        // Another host: never (it may be alive).
        assert_eq!(dead_predecessor("other:1:1:w0", me), None);
        // Same pid, other start: a restarted container.
        assert_eq!(
            dead_predecessor("box:100:4000:w2", me).as_deref(),
            Some("box:100:4000:")
        );
        // A pid that cannot exist.
        assert_eq!(
            dead_predecessor("box:4294967:1:w0", me).as_deref(),
            Some("box:4294967:1:")
        );
        // A live process (this test's own pid, another start).
        let pid = std::process::id();
        let live = format!("box:{pid}:1:w0");
        assert_eq!(dead_predecessor(&live, me), None);
        // Old-style owners (`pid-wN`) are left to their leases.
        assert_eq!(dead_predecessor("123-w0", me), None);
    }
}
