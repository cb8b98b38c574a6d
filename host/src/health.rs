//! Health answers: `/healthz` is ok only when every enabled connection's config
//! passes its plugin's schema (a connection that cannot run is not healthy);
//! `/livez` says the process answers; `/readyz` checks the database, the intake
//! writer, the queue workers and the connections' configs, each reported by name.

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::catalog::CatalogHandle;
use crate::intake::EventSink;
use crate::registry::Registry;
use crate::store::Pool;

/// One reason the service is not healthy.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Problem {
    pub connection: String,
    pub error: String,
}

/// Enabled connections whose config fails the schema of their loaded plugin,
/// each with the failing fields and its non-secret values (see
/// [`crate::connection_check`]).
pub fn connection_problems(catalog: &CatalogHandle, registry: &Registry) -> Vec<Problem> {
    let catalog = catalog.get();
    crate::connection_check::invalid_connections(&catalog, registry)
        .into_iter()
        .filter(|(name, _)| catalog.connections().any(|c| &c.name == name && c.enabled))
        .map(|(connection, error)| Problem { connection, error })
        .collect()
}

/// The queue worker tasks of a service, watched by `/readyz`: a worker that
/// ended (a panic, a bug) leaves the queue without hands while intake still
/// answers.
#[derive(Default)]
pub struct Workers(Mutex<Vec<tokio::task::AbortHandle>>);

impl Workers {
    /// Watches these tasks (the service's workers, once spawned).
    pub fn watch(&self, tasks: &[tokio::task::JoinHandle<()>]) {
        let mut watched = self.0.lock().expect("workers lock");
        watched.extend(tasks.iter().map(|t| t.abort_handle()));
    }

    /// (running, started).
    pub fn alive(&self) -> (usize, usize) {
        let watched = self.0.lock().expect("workers lock");
        let running = watched.iter().filter(|t| !t.is_finished()).count();
        (running, watched.len())
    }
}

/// `GET /healthz`: 200 `{"status":"ok"}`, or 503 with the problems; `/livez`;
/// `/readyz`.
pub fn router(
    catalog: Arc<CatalogHandle>,
    registry: Arc<Registry>,
    pool: Pool,
    sink: EventSink,
    workers: Arc<Workers>,
) -> Router {
    let (c, r) = (catalog.clone(), registry.clone());
    Router::new()
        .route("/healthz", get(move || async move { healthz(&c, &r) }))
        .route(
            "/livez",
            get(|| async { axum::Json(serde_json::json!({"status": "alive"})) }),
        )
        .route(
            "/readyz",
            get(move || async move { readyz(&catalog, &registry, &pool, &sink, &workers).await }),
        )
}

async fn readyz(
    catalog: &CatalogHandle,
    registry: &Registry,
    pool: &Pool,
    sink: &EventSink,
    workers: &Workers,
) -> Response {
    let database = match crate::store::sql::query("SELECT 1").execute(pool).await {
        Ok(_) => serde_json::json!({"ok": true}),
        Err(err) => serde_json::json!({"ok": false, "error": err.to_string()}),
    };
    let writer = sink.is_running();
    let problems = connection_problems(catalog, registry);
    let (running, started) = workers.alive();
    let workers_ok = running == started;
    let ready = database["ok"] == true && writer && workers_ok && problems.is_empty();
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": {
            "database": database,
            "intake_writer": {"ok": writer},
            "workers": {"ok": workers_ok, "running": running, "started": started},
            "connections": {"ok": problems.is_empty(), "problems": problems},
        }
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

fn healthz(catalog: &CatalogHandle, registry: &Registry) -> Response {
    let problems = connection_problems(catalog, registry);
    if problems.is_empty() {
        axum::Json(serde_json::json!({"status": "ok"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "failing", "problems": problems})),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::Workers;

    #[tokio::test]
    async fn a_worker_that_ended_is_reported() {
        let workers = Workers::default();
        assert_eq!(workers.alive(), (0, 0));
        let stays = tokio::spawn(std::future::pending::<()>());
        let ends = tokio::spawn(async { panic!("a worker bug") });
        workers.watch(&[stays, ends]);
        for _ in 0..100 {
            if workers.alive().0 == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(workers.alive(), (1, 2));
    }
}
