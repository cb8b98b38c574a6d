//! The admin surface over HTTP: a JSON API under `/admin/api` and a page at
//! `/admin` built on it. Guarded by a bearer token, or served to loopback
//! clients only when no token is configured. Secrets never leave: configs are
//! redacted, sources show how many secrets they have, not which.

mod api;
pub mod ops;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use subtle::ConstantTimeEq;
use tokio::sync::Notify;

use crate::catalog::CatalogHandle;
use crate::registry::Registry;
use crate::store::Pool;

#[derive(Clone)]
pub struct AdminState {
    pub pool: Pool,
    pub catalog: Arc<CatalogHandle>,
    pub registry: Arc<Registry>,
    pub wake: Arc<Notify>,
    pub token: Option<String>,
    pub max_attempts: u32,
    /// Circuit breakers and concurrency, shown read-only.
    pub flow: Arc<crate::flow::FlowControl>,
}

/// An API error: client errors carry their message, server errors are logged
/// and answered without internals.
pub struct ApiError(StatusCode, String);

impl ApiError {
    pub fn not_found(what: impl Into<String>) -> Self {
        Self(StatusCode::NOT_FOUND, what.into())
    }

    pub fn bad_request(why: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, why.into())
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        tracing::error!(error = %format!("{err:#}"), "admin request failed");
        Self(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the service log".into(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({"detail": self.1}))).into_response()
    }
}

const PAGE: &str = include_str!("admin/page.html");

pub fn router(state: AdminState) -> Router {
    let api = Router::new()
        .route("/admin/api/overview", get(api::overview))
        .route("/admin/api/events", get(api::list_events))
        .route("/admin/api/events/{id}", get(api::get_event))
        .route("/admin/api/events/{id}/replay", post(api::replay_event))
        .route("/admin/api/jobs", get(api::list_jobs))
        .route("/admin/api/jobs/retry-failed", post(api::retry_failed))
        .route("/admin/api/jobs/{id}", get(api::get_job))
        .route("/admin/api/jobs/{id}/retry", post(api::retry_job))
        .route("/admin/api/plugins", get(api::list_plugins))
        .route("/admin/api/sources", get(api::list_sources))
        .route(
            "/admin/api/sources/{code}/{action}",
            post(api::toggle_source),
        )
        .route("/admin/api/connections", get(api::list_connections))
        .route("/admin/api/circuits", get(api::list_circuits))
        .route("/admin/api/schedules", get(api::list_schedules))
        .route(
            "/admin/api/connections/{name}/state",
            get(api::connection_state),
        )
        .route(
            "/admin/api/connections/{name}/tasks/{task}",
            post(api::run_task),
        )
        .route(
            "/admin/api/connections/{name}/{action}",
            post(api::toggle_connection),
        )
        .route("/admin", get(|| async { Html(PAGE) }));
    api.route_layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state)
}

async fn authorize(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    // The page itself holds no data; it asks for the token when the API refuses.
    if request.uri().path() == "/admin" {
        return next.run(request).await;
    }
    match &state.token {
        Some(token) => {
            let given = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if given.len() == token.len() && bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
                next.run(request).await
            } else {
                ApiError(
                    StatusCode::UNAUTHORIZED,
                    "admin token required (Authorization: Bearer …)".into(),
                )
                .into_response()
            }
        }
        None if peer.ip().is_loopback() => next.run(request).await,
        None => ApiError(
            StatusCode::FORBIDDEN,
            "the admin API answers only loopback clients unless admin_token is configured".into(),
        )
        .into_response(),
    }
}
