//! Health answers: `/healthz` is ok only when every enabled connection's config
//! passes its plugin's schema (a connection that cannot run is not healthy).

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::catalog::CatalogHandle;
use crate::registry::Registry;

/// One reason the service is not healthy.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Problem {
    pub connection: String,
    pub error: String,
}

/// Enabled connections whose config fails the schema of their loaded plugin
/// (the message hides only the values the schema marks secret).
pub fn connection_problems(catalog: &CatalogHandle, registry: &Registry) -> Vec<Problem> {
    catalog
        .get()
        .connections()
        .filter(|c| c.enabled)
        .filter_map(|c| {
            let plugin = registry.get(&c.plugin)?;
            let error = plugin.validate_config(&c.config).err()?;
            Some(Problem {
                connection: c.name.clone(),
                error,
            })
        })
        .collect()
}

/// `GET /healthz`: 200 `{"status":"ok"}`, or 503 with the problems.
pub fn router(catalog: Arc<CatalogHandle>, registry: Arc<Registry>) -> Router {
    Router::new().route(
        "/healthz",
        get(move || async move { healthz(&catalog, &registry) }),
    )
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
