//! Health answers: `/healthz` is ok only when every enabled connection's config
//! passes its plugin's schema (a connection that cannot run is not healthy);
//! `/livez` says the process answers; `/readyz` checks the database, the intake
//! writer and the connections' configs, each reported by name.

use std::sync::Arc;

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

/// `GET /healthz`: 200 `{"status":"ok"}`, or 503 with the problems; `/livez`;
/// `/readyz`.
pub fn router(
    catalog: Arc<CatalogHandle>,
    registry: Arc<Registry>,
    pool: Pool,
    sink: EventSink,
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
            get(move || async move { readyz(&catalog, &registry, &pool, &sink).await }),
        )
}

async fn readyz(
    catalog: &CatalogHandle,
    registry: &Registry,
    pool: &Pool,
    sink: &EventSink,
) -> Response {
    let database = match sqlx::query("SELECT 1").execute(pool).await {
        Ok(_) => serde_json::json!({"ok": true}),
        Err(err) => serde_json::json!({"ok": false, "error": err.to_string()}),
    };
    let writer = sink.is_running();
    let problems = connection_problems(catalog, registry);
    let ready = database["ok"] == true && writer && problems.is_empty();
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": {
            "database": database,
            "intake_writer": {"ok": writer},
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
