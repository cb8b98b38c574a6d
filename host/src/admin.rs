//! The admin surface over HTTP: a JSON API under `/admin/api` and a page at
//! `/admin` built on it. Callers are identified by [`auth`] (keys, page
//! sessions, or loopback clients while no key exists); every answer carries a
//! strict Content-Security-Policy and anti-framing headers ([`security_headers`]).
//! Secrets never leave: configs are redacted, sources show how many secrets they
//! have, not which.

mod api;
pub mod auth;
pub mod console_api;
mod manage;
pub mod openapi;
pub mod ops;
mod session;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::Notify;

use crate::catalog::CatalogHandle;
use crate::config::AdminConfig;
use crate::registry::Registry;
use crate::store::Pool;

#[derive(Clone)]
pub struct AdminState {
    pub pool: Pool,
    pub catalog: Arc<CatalogHandle>,
    pub registry: Arc<Registry>,
    pub wake: Arc<Notify>,
    /// The bootstrap key (`admin_token`).
    pub token: Option<String>,
    pub max_attempts: u32,
    /// Circuit breakers and concurrency, shown read-only.
    pub flow: Arc<crate::flow::FlowControl>,
    /// To give edited connections their quotas.
    pub runtime: Arc<crate::runtime::Runtime>,
    pub admin: AdminConfig,
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
const PAGE_JS: &str = include_str!("admin/page.js");
const PAGE_CSS: &str = include_str!("admin/page.css");

/// No inline script or style, nothing from elsewhere, no framing, no forms
/// posting elsewhere: injected markup could neither run nor exfiltrate.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

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
        .route("/admin/api/replicas", get(api::list_replicas))
        .route(
            "/admin/api/sources",
            get(api::list_sources).post(manage::create_source),
        )
        .route(
            "/admin/api/sources/{code}",
            get(manage::show_source)
                .patch(manage::update_source)
                .delete(manage::delete_source),
        )
        .route(
            "/admin/api/sources/{code}/rotate-secret",
            post(manage::rotate_source_secret),
        )
        .route(
            "/admin/api/sources/{code}/{action}",
            post(api::toggle_source),
        )
        .route(
            "/admin/api/connections",
            get(api::list_connections).post(manage::create_connection),
        )
        .route(
            "/admin/api/connections/{name}",
            get(manage::show_connection)
                .patch(manage::update_connection)
                .delete(manage::delete_connection),
        )
        .route(
            "/admin/api/connections/{name}/secret",
            post(manage::set_connection_secret),
        )
        .route("/admin/api/config/apply", post(manage::apply))
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
        .route("/admin/api/keys", get(api::list_keys))
        // The console's own routes (admin/console_api.rs).
        .route("/admin/api/console/dashboard", get(console_api::dashboard))
        .route("/admin/api/console/events", get(console_api::search_events))
        .route("/admin/api/console/jobs", get(console_api::attention_jobs))
        .route("/admin/api/console/jobs/bulk", post(console_api::bulk_jobs))
        .route(
            "/admin/api/console/jobs/{id}/run-now",
            post(console_api::run_now),
        )
        .route("/admin/api/alerts", get(console_api::list_alerts));
    // The page and sign-in hold no data: they are served to anyone.
    let open = Router::new()
        .route(
            "/admin",
            get(|| async { asset("text/html; charset=utf-8", PAGE) }),
        )
        .route(
            "/admin/page.js",
            get(|| async { asset("text/javascript; charset=utf-8", PAGE_JS) }),
        )
        .route(
            "/admin/page.css",
            get(|| async { asset("text/css; charset=utf-8", PAGE_CSS) }),
        )
        .route(
            "/admin/api/session",
            get(session::current)
                .post(session::sign_in)
                .delete(session::sign_out),
        )
        .merge(openapi::router());
    api.route_layer(middleware::from_fn_with_state(
        state.clone(),
        auth::authorize,
    ))
    .merge(open)
    .layer(middleware::from_fn(security_headers))
    .with_state(state)
}

/// Headers on every admin answer, errors included.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        ("cache-control", "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
