//! The admin API's OpenAPI 3.1 document, generated from the handlers'
//! `#[utoipa::path]` annotations and their answer types, served at
//! `/admin/api/openapi.json` with a page that renders it at `/admin/api/docs`.
//! Neither holds data, so both are served without a key.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::auth::SESSION_COOKIE;
use super::{api, console_api, manage, ops, session, AdminState};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "recoco-sync admin API",
        description = "The operators' API of recoco-sync. Every route but the session, this \
            document and its page needs an admin key (`Authorization: Bearer rsk_…`) or a page \
            session (cookie, with `X-CSRF-Token` on state changes); a read-only key may only read. \
            While no key exists and no `admin_token` is set, loopback clients are let in \
            without one. Errors of the base API answer `{\"detail\"}`, the console's \
            `{\"error\", \"field\"}`."
    ),
    paths(
        api::overview,
        api::list_events,
        api::get_event,
        api::replay_event,
        api::list_jobs,
        api::retry_failed,
        api::get_job,
        api::retry_job,
        api::list_plugins,
        api::list_replicas,
        api::list_sources,
        api::toggle_source,
        api::list_connections,
        api::list_circuits,
        api::list_schedules,
        api::connection_state,
        api::run_task,
        api::toggle_connection,
        api::list_keys,
        manage::create_source,
        manage::show_source,
        manage::update_source,
        manage::delete_source,
        manage::rotate_source_secret,
        manage::create_connection,
        manage::show_connection,
        manage::update_connection,
        manage::delete_connection,
        manage::set_connection_secret,
        manage::apply,
        console_api::dashboard,
        console_api::search_events,
        console_api::attention_jobs,
        console_api::bulk_jobs,
        console_api::run_now,
        console_api::list_alerts,
        session::current,
        session::sign_in,
        session::sign_out,
        document,
        docs_page,
    ),
    components(schemas(
        api::ErrorDetail,
        api::Overview,
        api::EventOut,
        api::EventList,
        api::EventDetail,
        api::JobDetail,
        api::JobList,
        api::Retried,
        api::RetriedAll,
        api::PluginList,
        crate::replicas::Listed,
        api::ReplicaList,
        crate::store::replicas::Replica,
        crate::store::replicas::Served,
        crate::replicas::State,
        api::SourceOut,
        api::SourceList,
        api::ConnectionStatus,
        api::ConnectionOut,
        api::ConnectionList,
        api::ConnectionState,
        api::TaskQueued,
        api::SourceToggled,
        api::Circuit,
        api::CircuitList,
        api::ScheduleList,
        api::ConnectionToggled,
        api::KeyOut,
        api::KeyList,
        ops::Replayed,
        manage::ManageError,
        manage::SourceDeleted,
        manage::Rotated,
        manage::ConnectionDeleted,
        manage::SecretSet,
        manage::Rotate,
        manage::SetSecret,
        manage::ApplyRequest,
        crate::managed::CreatedSource,
        crate::managed::SourceView,
        crate::managed::SecretView,
        crate::managed::ConnectionView,
        crate::managed::SourcePatch,
        crate::managed::ConnectionPatch,
        crate::managed::PlannedChange,
        crate::managed::ApplyReport,
        crate::store::Owner,
        crate::queue::jobs::JobView,
        crate::store::attempts::Attempt,
        crate::queue::schedules::ScheduleView,
        crate::registry::PluginInfo,
        crate::registry::Failure,
        crate::registry::Origin,
        crate::registry::manifest::Task,
        crate::filter::Dropped,
        crate::store::keys::Scope,
        crate::alerts::incidents::Incident,
        console_api::ConsoleError,
        console_api::Minute,
        console_api::QueueStats,
        console_api::ConnectionHealth,
        console_api::PausedConnection,
        console_api::Dashboard,
        console_api::EventRow,
        console_api::EventPage,
        console_api::JobPage,
        console_api::BulkAction,
        console_api::BulkResult,
        console_api::RunNow,
        console_api::AlertList,
        session::SignIn,
        session::Mode,
        session::SessionInfo,
    )),
    modifiers(&Guarded),
    security(("bearer" = []), ("session" = [])),
    tags(
        (name = "overview"), (name = "events"), (name = "jobs"), (name = "plugins"),
        (name = "sources"), (name = "connections"), (name = "keys"),
        (name = "config", description = "`config apply`: the database-owned entries made to match a file"),
        (name = "console", description = "the admin page's own routes; errors are `{error, field}`"),
        (name = "session", description = "signing in on the page"),
        (name = "docs", description = "this document and its page"),
    )
)]
pub struct AdminApi;

/// Declares the two ways in, and the auth middleware's 401/403 on every
/// operation that keeps the document's default security (the guarded ones):
/// the middleware answers them before any handler, so no handler lists them.
struct Guarded;

impl Modify for Guarded {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "an admin key (`rsk_…`) or the bootstrap `admin_token`",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "the page's session (POST /admin/api/session); state changes also need \
                 its CSRF token in `X-CSRF-Token`",
            ))),
        );
        let refusal = |why: &str| {
            ResponseBuilder::new()
                .description(why)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorDetail")))
                        .build(),
                )
                .build()
        };
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                if op.security.is_some() {
                    continue;
                }
                let responses = &mut op.responses.responses;
                responses.entry("401".into()).or_insert(RefOr::T(refusal(
                    "no key, or an unknown or revoked key or session",
                )));
                responses.entry("403".into()).or_insert(RefOr::T(refusal(
                    "a read-only key changing something, a session without its CSRF token, \
                     a cross-origin request, or (no key yet) a client not on loopback",
                )));
            }
        }
    }
}

/// The document as JSON, built once.
pub fn document_json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        AdminApi::openapi()
            .to_json()
            .expect("the document serialises")
    })
}

/// This document.
#[utoipa::path(get, path = "/admin/api/openapi.json", tag = "docs", security(()),
    responses((status = 200, description = "the OpenAPI 3.1 document of this API", body = Object)))]
pub async fn document() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
        .into_response()
}

/// A page rendering this document (its script reads `openapi.json`).
#[utoipa::path(get, path = "/admin/api/docs", tag = "docs", security(()),
    responses((status = 200, description = "an HTML page", content_type = "text/html", body = String)))]
pub async fn docs_page() -> Response {
    asset("text/html; charset=utf-8", DOCS_HTML)
}

const DOCS_HTML: &str = include_str!("docs.html");
const DOCS_JS: &str = include_str!("docs.js");
const DOCS_CSS: &str = include_str!("docs.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The document, its page and the page's own script and style (the policy
/// allows no inline code and nothing from elsewhere).
pub fn router() -> Router<AdminState> {
    Router::new()
        .route("/admin/api/openapi.json", get(document))
        .route("/admin/api/docs", get(docs_page))
        .route(
            "/admin/docs.js",
            get(|| async { asset("text/javascript; charset=utf-8", DOCS_JS) }),
        )
        .route(
            "/admin/docs.css",
            get(|| async { asset("text/css; charset=utf-8", DOCS_CSS) }),
        )
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    #[test]
    fn every_operation_has_an_answer_and_the_guarded_ones_their_refusals() {
        let doc: Value = serde_json::from_str(super::document_json()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let what = format!("{method} {path}");
                assert!(
                    ids.insert(op["operationId"].to_string()),
                    "{what}: operationId"
                );
                let statuses: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
                assert!(
                    statuses.iter().any(|s| s.starts_with('2')),
                    "{what}: no success"
                );
                let open = op.get("security").is_some();
                for refusal in ["401", "403"] {
                    assert!(
                        open || statuses.contains(&&refusal.to_string()),
                        "{what}: guarded but no {refusal}"
                    );
                }
            }
        }
        assert!(ids.len() > 25, "{ids:?}");
    }
}
