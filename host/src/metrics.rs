//! Prometheus metrics: counters and histograms fed by one-line calls at the
//! call sites (intake, queue worker, runtime, outbound), and gauges read from
//! the database at each scrape (jobs by state and connection, queue depth, age
//! of the oldest due job), served as text at `GET /metrics`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::ids::now_ms;
use crate::store::Pool;

/// Bucket bounds (seconds) shared by every histogram: from a fast intake
/// commit to a long task.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 1800.0,
];

/// The process-wide recorder (installed once; every service of the process
/// shares it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .expect("non-empty buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (an embedding program):
        // then this one still renders what is recorded through it.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// A webhook answered: by source and HTTP status, with its latency.
pub fn webhook(source: &str, status: u16, elapsed: Duration) {
    let labels = [
        ("source", source.to_string()),
        ("status", status.to_string()),
    ];
    metrics::counter!("recoco_webhooks_received_total", &labels).increment(1);
    metrics::histogram!("recoco_intake_duration_seconds", "source" => source.to_string())
        .record(elapsed.as_secs_f64());
}

/// One job attempt finished (`outcome`: succeeded, retry, failed, dead).
pub fn attempt(connection: &str, outcome: &str, duration_ms: i64) {
    let labels = [
        ("connection", connection.to_string()),
        ("outcome", outcome.to_string()),
    ];
    metrics::counter!("recoco_attempts_total", &labels).increment(1);
    metrics::histogram!("recoco_attempt_duration_seconds", &labels)
        .record(duration_ms.max(0) as f64 / 1000.0);
    if outcome == "dead" {
        metrics::counter!("recoco_jobs_dead_total", "connection" => connection.to_string())
            .increment(1);
    }
}

/// Pending event jobs folded into a later run of the same keys (coalescing).
pub fn coalesced(connection: &str, jobs: u64) {
    metrics::counter!("recoco_jobs_coalesced_total", "connection" => connection.to_string())
        .increment(jobs);
}

/// Time spent in one plugin invocation (instantiation and call).
pub fn plugin_invocation(plugin: &str, started: Instant) {
    metrics::histogram!("recoco_plugin_invocation_seconds", "plugin" => plugin.to_string())
        .record(started.elapsed().as_secs_f64());
}

/// A webhook whose answer pacing delayed (`overdue`: accepted after the
/// longest wait, without credit), and for how long.
pub fn paced(admission: crate::pacing::Admission) {
    let (how, waited) = match admission {
        crate::pacing::Admission::Free => return,
        crate::pacing::Admission::Paced(waited) => ("paced", waited),
        crate::pacing::Admission::Overdue(waited) => ("overdue", waited),
    };
    metrics::counter!("recoco_intake_paced_total", "how" => how).increment(1);
    metrics::counter!("recoco_intake_pacing_wait_milliseconds_total")
        .increment(waited.as_millis() as u64);
}

/// An outbound HTTP request answered, by host and status.
pub fn outbound(host: Option<&str>, status: u16) {
    let labels = [
        ("host", host.unwrap_or("-").to_string()),
        ("status", status.to_string()),
    ];
    metrics::counter!("recoco_outbound_requests_total", &labels).increment(1);
}

/// Middleware for the intake routes: counts and times every answer. The
/// source label is the code of the URL only when the source exists (a 404
/// is counted as `unknown`, so random codes cannot grow the label set).
pub async fn track_intake(request: Request, next: Next) -> Response {
    let is_webhook = request
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|p| p.as_str() == "/api/webhook/{code}");
    let code = request
        .uri()
        .path()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    if is_webhook {
        let status = response.status();
        let source = if status == StatusCode::NOT_FOUND {
            "unknown"
        } else {
            &code
        };
        webhook(source, status.as_u16(), started.elapsed());
    }
    response
}

#[derive(Clone)]
struct Scrape {
    pool: Pool,
    /// Label sets of the job gauges seen so far, set back to 0 when they go.
    seen: Arc<Mutex<HashSet<(String, String)>>>,
}

/// `GET /metrics` (Prometheus text format).
pub fn router(pool: Pool) -> Router {
    handle();
    Router::new()
        .route("/metrics", get(render))
        .with_state(Scrape {
            pool,
            seen: Arc::default(),
        })
}

async fn render(State(scrape): State<Scrape>) -> Response {
    if let Err(err) = queue_gauges(&scrape).await {
        tracing::warn!(error = %err, "metrics: cannot read the queue");
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle().render(),
    )
        .into_response()
}

/// Jobs by state and connection, queue depth and the oldest due job's age.
async fn queue_gauges(scrape: &Scrape) -> sqlx::Result<()> {
    let rows = crate::store::sql::query(
        "SELECT c.name AS connection, j.state AS state, COUNT(*) AS n
         FROM jobs j JOIN connections c ON c.id = j.connection_id GROUP BY 1, 2",
    )
    .fetch_all(&scrape.pool)
    .await?;
    let mut now_seen = HashSet::new();
    for row in rows {
        let key: (String, String) = (row.get("connection"), row.get("state"));
        metrics::gauge!("recoco_jobs", "connection" => key.0.clone(), "state" => key.1.clone())
            .set(row.get::<i64, _>("n") as f64);
        now_seen.insert(key);
    }
    {
        let mut seen = scrape.seen.lock().expect("metrics lock");
        for (connection, state) in seen.difference(&now_seen) {
            metrics::gauge!("recoco_jobs", "connection" => connection.clone(), "state" => state.clone())
                .set(0.0);
        }
        seen.extend(now_seen);
    }
    let now = now_ms();
    let due = crate::store::sql::query(
        "SELECT COUNT(*) AS n, MIN(run_at) AS oldest FROM jobs WHERE state = 'queued' AND run_at <= ?",
    )
    .bind(now)
    .fetch_one(&scrape.pool)
    .await?;
    metrics::gauge!("recoco_queue_depth").set(due.get::<i64, _>("n") as f64);
    let age = due
        .get::<Option<i64>, _>("oldest")
        .map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0);
    metrics::gauge!("recoco_queue_oldest_due_age_seconds").set(age);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacing::Admission;

    fn counter(text: &str, series: &str) -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn paced_webhooks_are_counted_by_how_with_their_wait() {
        let before = handle().render();
        paced(Admission::Free);
        paced(Admission::Paced(Duration::from_millis(7)));
        paced(Admission::Overdue(Duration::from_millis(1000)));
        let after = handle().render();
        let grew = |series: &str| counter(&after, series) - counter(&before, series);
        // Other tests of this process may pace webhooks too: at least ours.
        assert!(
            grew(r#"recoco_intake_paced_total{how="paced"} "#) >= 1,
            "{after}"
        );
        assert!(
            grew(r#"recoco_intake_paced_total{how="overdue"} "#) >= 1,
            "{after}"
        );
        assert!(
            grew("recoco_intake_pacing_wait_milliseconds_total ") >= 1007,
            "{after}"
        );
    }
}
