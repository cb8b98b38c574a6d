//! Periodic tasks of connections (`schedule = [{task = "sync-all", every =
//! "24h"}]`, or `cron = "0 3 * * *"` in UTC through the `croner` crate).
//!
//! Each schedule is a row with its next run. Firing moves `next_run_at` with a
//! compare-and-set in the transaction that queues the task, so one period fires
//! once across processes and restarts; periods missed while the service was
//! down fire once at start, not once each. A still-pending run of the same
//! schedule is replaced rather than doubled (dedup key).

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::policy::ScheduleDecl;
use super::{jobs, JobKind, NewJob};
use crate::config::ConnectionDecl;
use crate::ids::{now_ms, rfc3339, JobId};
use crate::store::Pool;

/// How often due schedules are looked for.
const TICK: Duration = Duration::from_millis(500);
/// Shortest period accepted: a schedule is not a busy loop.
const MIN_EVERY: Duration = Duration::from_secs(1);

/// When a schedule fires.
#[derive(Debug, Clone)]
pub enum Spec {
    Every(Duration),
    Cron(Box<croner::Cron>),
}

impl Spec {
    pub fn of(decl: &ScheduleDecl) -> anyhow::Result<Self> {
        anyhow::ensure!(!decl.task.is_empty(), "a schedule needs a task name");
        match (&decl.every, &decl.cron) {
            (Some(every), None) => {
                anyhow::ensure!(
                    *every >= MIN_EVERY,
                    "task {:?}: `every` must be at least {MIN_EVERY:?}",
                    decl.task
                );
                Ok(Self::Every(*every))
            }
            (None, Some(cron)) => Self::parse(&format!("cron {cron}")),
            _ => anyhow::bail!(
                "task {:?}: give exactly one of `every` (\"24h\") or `cron` (\"0 3 * * *\")",
                decl.task
            ),
        }
    }

    /// Reads the stored form (`every 24h`, `cron 0 3 * * *`).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        if let Some(every) = text.strip_prefix("every ") {
            return Ok(Self::Every(humantime::parse_duration(every)?));
        }
        let cron = text.strip_prefix("cron ").context("unknown schedule")?;
        let parsed = croner::Cron::from_str(cron)
            .map_err(|e| anyhow::anyhow!("invalid cron expression {cron:?}: {e}"))?;
        Ok(Self::Cron(Box::new(parsed)))
    }

    pub fn text(&self) -> String {
        match self {
            Self::Every(d) => format!("every {}", humantime::format_duration(*d)),
            Self::Cron(c) => format!("cron {}", c.pattern),
        }
    }

    /// The first run strictly after `now`, for a schedule last planned at
    /// `planned` (a fixed grid for `every`, so runs do not drift).
    pub fn next_after(&self, planned: i64, now: i64) -> i64 {
        match self {
            Self::Every(d) => {
                let period = (d.as_millis() as i64).max(1);
                if planned > now {
                    return planned;
                }
                planned + ((now - planned) / period + 1) * period
            }
            Self::Cron(cron) => {
                let at = chrono::DateTime::from_timestamp_millis(now).unwrap_or_default();
                cron.find_next_occurrence(&at, false)
                    .map(|t| t.timestamp_millis())
                    // A pattern that never matches again: a year from now.
                    .unwrap_or(now + 365 * 86_400_000)
            }
        }
    }
}

/// Stores the declared schedules: new ones start one period from now, kept
/// ones keep their next run, undeclared ones are removed.
pub async fn apply(pool: &Pool, connections: &[ConnectionDecl]) -> anyhow::Result<()> {
    let now = now_ms();
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
        let mut kept = Vec::new();
        for s in &decl.schedule {
            let spec = Spec::of(s)?;
            let text = spec.text();
            let payload = s
                .payload
                .clone()
                .unwrap_or_else(|| serde_json::json!({}))
                .to_string();
            crate::store::sql::query(
                "INSERT INTO schedules (connection_id, task, spec, payload, next_run_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (connection_id, task, spec) DO UPDATE SET payload = ?4, updated_at = ?6",
            )
            .bind(id)
            .bind(&s.task)
            .bind(&text)
            .bind(payload)
            .bind(spec.next_after(now, now))
            .bind(now)
            .execute(&mut tx)
            .await?;
            kept.push(format!("{}\u{1f}{text}", s.task));
        }
        let engine = tx.engine();
        crate::store::sql::query(format!(
            "DELETE FROM schedules WHERE connection_id = ?1
               AND task || {}(31) || spec NOT IN {}",
            engine.char_fn(),
            engine.json_texts("?2")
        ))
        .bind(id)
        .bind(serde_json::to_string(&kept)?)
        .execute(&mut tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Queues the task of every due schedule once; returns how many fired.
pub async fn fire_due(pool: &Pool, max_attempts: u32) -> anyhow::Result<usize> {
    let now = now_ms();
    let due = crate::store::sql::query(
        "SELECT s.connection_id, s.task, s.spec, s.payload, s.next_run_at, c.plugin
         FROM schedules s JOIN connections c ON c.id = s.connection_id
         WHERE s.next_run_at <= ? AND c.removed_at IS NULL",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    let mut fired = 0;
    for row in due {
        let spec_text: String = row.get("spec");
        let planned: i64 = row.get("next_run_at");
        let Ok(spec) = Spec::parse(&spec_text) else {
            continue;
        };
        let next = spec.next_after(planned, now);
        let connection_id: i64 = row.get("connection_id");
        let task: String = row.get("task");
        let job = NewJob {
            id: JobId::new(),
            connection_id,
            plugin: row.get("plugin"),
            kind: JobKind::Task {
                name: task.clone(),
                payload: row.get("payload"),
            },
            dedup_key: Some(format!("schedule:{spec_text}")),
            max_attempts,
            run_at: now,
            ordering_key: None,
        };
        let mut tx = pool.begin().await?;
        let moved = crate::store::sql::query(
            "UPDATE schedules SET next_run_at = ?1, last_run_at = ?2, last_job_id = ?3, updated_at = ?2
             WHERE connection_id = ?4 AND task = ?5 AND spec = ?6 AND next_run_at = ?7",
        )
        .bind(next)
        .bind(now)
        .bind(job.id.as_str())
        .bind(connection_id)
        .bind(&task)
        .bind(&spec_text)
        .bind(planned)
        .execute(&mut tx)
        .await?;
        if moved.rows_affected() == 0 {
            continue; // another process fired it
        }
        let id = jobs::enqueue_task_in(&mut tx, &job).await?;
        if id != job.id {
            crate::store::sql::query("UPDATE schedules SET last_job_id = ? WHERE connection_id = ? AND task = ? AND spec = ?")
                .bind(id.as_str())
                .bind(connection_id)
                .bind(&task)
                .bind(&spec_text)
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await?;
        tracing::info!(connection_id, task = %task, schedule = %spec_text, job_id = %id, "scheduled task queued");
        fired += 1;
    }
    Ok(fired)
}

/// Fires due schedules until `shutdown`.
pub fn spawn(
    pool: Pool,
    wake: Arc<Notify>,
    max_attempts: u32,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match fire_due(&pool, max_attempts).await {
                Ok(0) => {}
                Ok(_) => wake.notify_waiters(),
                Err(err) => tracing::warn!(error = %format!("{err:#}"), "cannot fire schedules"),
            }
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    })
}

/// A schedule as the admin API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScheduleView {
    pub connection: String,
    pub task: String,
    pub schedule: String,
    pub next_run_at: String,
    pub last_run_at: Option<String>,
    pub last_job_id: Option<String>,
}

pub async fn list(pool: &Pool) -> anyhow::Result<Vec<ScheduleView>> {
    let rows = crate::store::sql::query(
        "SELECT c.name, s.task, s.spec, s.next_run_at, s.last_run_at, s.last_job_id
         FROM schedules s JOIN connections c ON c.id = s.connection_id ORDER BY c.name, s.task",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| ScheduleView {
            connection: r.get("name"),
            task: r.get("task"),
            schedule: r.get("spec"),
            next_run_at: rfc3339(r.get("next_run_at")),
            last_run_at: r.get::<Option<i64>, _>("last_run_at").map(rfc3339),
            last_job_id: r.get("last_job_id"),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(every: Option<&str>, cron: Option<&str>) -> ScheduleDecl {
        ScheduleDecl {
            task: "sync-all".into(),
            every: every.map(|e| humantime::parse_duration(e).unwrap()),
            cron: cron.map(str::to_string),
            payload: None,
        }
    }

    #[test]
    fn every_keeps_a_grid_and_fires_missed_periods_once() {
        let spec = Spec::of(&decl(Some("24h"), None)).unwrap();
        assert_eq!(spec.text(), "every 1day");
        let day = 86_400_000;
        assert_eq!(spec.next_after(1_000, 1_000), 1_000 + day);
        // Down for three days: the next run is the next grid point, once.
        assert_eq!(spec.next_after(1_000, 1_000 + 3 * day + 5), 1_000 + 4 * day);
        assert_eq!(Spec::parse(&spec.text()).unwrap().text(), spec.text());
    }

    #[test]
    fn cron_expressions_use_croner() {
        let spec = Spec::of(&decl(None, Some("0 3 * * *"))).unwrap();
        // 2026-01-01T00:00:00Z → 03:00 the same day.
        let midnight = 1_767_225_600_000;
        assert_eq!(
            spec.next_after(midnight, midnight),
            midnight + 3 * 3_600_000
        );
        assert!(Spec::of(&decl(None, Some("61 * * * *"))).is_err());
        assert!(Spec::of(&decl(Some("24h"), Some("0 3 * * *"))).is_err());
        assert!(Spec::of(&decl(None, None)).is_err());
        assert!(Spec::of(&decl(Some("10ms"), None)).is_err());
    }
}
