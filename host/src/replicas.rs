//! Replicas: every process serving the database writes a heartbeat (its
//! version, address and the plugins it serves), so the plugin listing shows
//! which version each replica runs, and the leases of a replica that stopped
//! beating (killed, its machine gone) are released by the others after its
//! `queue.replica_timeout` instead of after the whole lease. A replica that
//! comes back beats again; its workers find their leases taken and record
//! nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ids::now_ms;
use crate::queue::{lease, recovery};
use crate::registry::Registry;
use crate::store::replicas::{self, Replica, Served};
use crate::store::Pool;

/// How often the served plugins are compared with the last heartbeat (a
/// change is written at once).
const CHECK: Duration = Duration::from_secs(1);
/// Stopped replicas are forgotten after a week.
const FORGET_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// What a replica's row says of it at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = ReplicaState)]
pub enum State {
    Up,
    Stopped,
    /// No heartbeat for its timeout: its running jobs are queued again.
    Lost,
}

pub fn state(r: &Replica, now: i64) -> State {
    if r.stopped_at.is_some() {
        State::Stopped
    } else if now - r.last_seen_at > r.timeout_ms {
        State::Lost
    } else {
        State::Up
    }
}

/// A replica as listings show it: its heartbeat, its state now, and whether
/// it is the process answering.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(as = ReplicaOut)]
pub struct Listed {
    #[serde(flatten)]
    pub replica: Replica,
    pub state: State,
    /// This replica is the one answering.
    pub this: bool,
}

/// Every replica, the most recently seen first, with its state now.
pub async fn listed(pool: &Pool) -> sqlx::Result<Vec<Listed>> {
    let now = now_ms();
    let me = recovery::instance();
    Ok(replicas::list(pool)
        .await?
        .into_iter()
        .map(|r| Listed {
            state: state(&r, now),
            this: r.id == me,
            replica: r,
        })
        .collect())
}

/// The plugins `registry` serves, by name.
fn served(registry: &Registry) -> Vec<Served> {
    let mut plugins: Vec<Served> = registry
        .list()
        .0
        .into_iter()
        .map(|p| Served {
            name: p.name,
            version: p.version,
            hash: p.hash,
        })
        .collect();
    plugins.sort_by(|a, b| a.name.cmp(&b.name));
    plugins
}

/// Beats (every third of `timeout`, and at once when the served plugins
/// change) until `shutdown`, then marks this replica stopped.
pub fn spawn(
    pool: Pool,
    registry: Arc<Registry>,
    listen: Option<String>,
    timeout: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let heartbeat = timeout / 3;
    tokio::spawn(async move {
        let id = recovery::instance().to_string();
        let mut me = Replica {
            id: id.clone(),
            host: id.split(':').next().unwrap_or_default().to_string(),
            pid: std::process::id() as i64,
            version: env!("CARGO_PKG_VERSION").to_string(),
            listen,
            plugins: Vec::new(),
            started_at: now_ms(),
            last_seen_at: 0,
            timeout_ms: timeout.as_millis() as i64,
            stopped_at: None,
        };
        let mut beaten: Option<(Vec<Served>, tokio::time::Instant)> = None;
        loop {
            let plugins = served(&registry);
            let due = match &beaten {
                None => true,
                Some((last, at)) => *last != plugins || at.elapsed() >= heartbeat,
            };
            if due {
                me.plugins = plugins.clone();
                me.last_seen_at = now_ms();
                match replicas::beat(&pool, &me).await {
                    Ok(()) => beaten = Some((plugins, tokio::time::Instant::now())),
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot write this replica's heartbeat")
                    }
                }
                if let Err(err) = release_lost(&pool, &id).await {
                    tracing::warn!(error = %err, "cannot release the leases of lost replicas");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(CHECK) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        if let Err(err) = replicas::stop(&pool, &id, now_ms()).await {
            tracing::warn!(error = %err, "cannot mark this replica stopped");
        }
    })
}

/// Releases the running jobs of every lost replica but `me`, marks them
/// stopped, and forgets long-stopped ones. Returns how many jobs.
pub async fn release_lost(pool: &Pool, me: &str) -> sqlx::Result<u64> {
    let now = now_ms();
    let mut released = 0;
    for r in replicas::list(pool).await? {
        if r.id == me || state(&r, now) != State::Lost {
            continue;
        }
        // Whoever marks it stopped first releases its jobs; the others skip.
        if !replicas::stop(pool, &r.id, now).await? {
            continue;
        }
        let n = lease::release_owned(
            pool,
            &format!("{}:", r.id),
            &format!(
                "replica {} stopped sending heartbeats (released by {me})",
                r.id
            ),
        )
        .await?;
        tracing::warn!(replica = %r.id, jobs = n, "a replica is lost: its running jobs are queued again");
        released += n;
    }
    replicas::prune(pool, now - FORGET_AFTER.as_millis() as i64).await?;
    Ok(released)
}

/// How the up replicas serve plugin `name`: `1.2.0 on 2, 1.1.0 on 1, absent on 1`
/// (empty when no replica is up).
pub fn served_by(name: &str, replicas: &[Replica], now: i64) -> String {
    let up: Vec<&Replica> = replicas
        .iter()
        .filter(|r| state(r, now) == State::Up)
        .collect();
    let mut versions: Vec<(String, usize)> = Vec::new();
    let mut absent = 0;
    for r in &up {
        match r.plugins.iter().find(|p| p.name == name) {
            Some(p) => {
                let hash = p.hash.trim_start_matches("sha256:");
                let label = format!(
                    "{} ({})",
                    p.version,
                    hash.chars().take(12).collect::<String>()
                );
                match versions.iter_mut().find(|(v, _)| *v == label) {
                    Some((_, n)) => *n += 1,
                    None => versions.push((label, 1)),
                }
            }
            None => absent += 1,
        }
    }
    let mut parts: Vec<String> = versions
        .into_iter()
        .map(|(v, n)| format!("{v} on {n}"))
        .collect();
    if absent > 0 {
        parts.push(format!("absent on {absent}"));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(
        id: &str,
        last_seen_at: i64,
        stopped_at: Option<i64>,
        plugins: &[(&str, &str)],
    ) -> Replica {
        Replica {
            id: id.into(),
            host: "h".into(),
            pid: 1,
            version: "0".into(),
            listen: None,
            plugins: plugins
                .iter()
                .map(|(n, v)| Served {
                    name: n.to_string(),
                    version: v.to_string(),
                    hash: format!("sha256:{}0123456789abcdef", v.replace('.', "")),
                })
                .collect(),
            started_at: 0,
            last_seen_at,
            timeout_ms: 30_000,
            stopped_at,
        }
    }

    #[test]
    fn up_replicas_say_which_version_they_serve() {
        let now = 100_000;
        let rs = [
            replica("a", now - 1_000, None, &[("grist", "1.2.0")]),
            replica("b", now - 2_000, None, &[("grist", "1.2.0")]),
            replica("c", now - 3_000, None, &[("grist", "1.1.0")]),
            replica("d", now - 3_000, None, &[]),
            // Neither a stopped nor a lost replica counts.
            replica("e", now - 1_000, Some(now - 500), &[("grist", "0.9.0")]),
            replica("f", now - 31_000, None, &[("grist", "0.9.0")]),
        ];
        assert_eq!(state(&rs[4], now), State::Stopped);
        assert_eq!(state(&rs[5], now), State::Lost);
        assert_eq!(
            served_by("grist", &rs, now),
            "1.2.0 (120012345678) on 2, 1.1.0 (110012345678) on 1, absent on 1"
        );
        assert_eq!(served_by("grist", &rs[4..], now), "");
    }
}
