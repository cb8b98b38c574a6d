//! Handlers of the managed configuration (see [`crate::managed`]): sources and
//! connections created, shown, edited, deleted, secrets set or rotated, and
//! `config apply`. Each change takes effect at once ([`crate::follow_catalog`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::{AdminState, ApiError};
use crate::config::ConnectionDecl;
use crate::managed::{
    ApplyReport, ConnectionPatch, ConnectionView, CreatedSource, Declarations, Editor, PluginFacts,
    Refusal, SourcePatch, SourceView,
};

/// An answer of these routes: the API's `{"detail"}`, plus `field` when one
/// input is to blame (the page marks it).
pub struct Refused(StatusCode, String, Option<String>);

impl From<Refusal> for Refused {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NotFound(m) => Self(StatusCode::NOT_FOUND, m, None),
            Refusal::Conflict(m) => Self(StatusCode::CONFLICT, m, None),
            Refusal::Invalid { field, message } => {
                let detail = Refusal::Invalid {
                    field: field.clone(),
                    message,
                }
                .to_string();
                Self(StatusCode::BAD_REQUEST, detail, field)
            }
            Refusal::Internal(e) => ApiError::from(e).into(),
        }
    }
}

impl From<ApiError> for Refused {
    fn from(e: ApiError) -> Self {
        Self(e.0, e.1, None)
    }
}

impl From<anyhow::Error> for Refused {
    fn from(e: anyhow::Error) -> Self {
        ApiError::from(e).into()
    }
}

/// The body of a refusal.
#[derive(Debug, Serialize, ToSchema)]
pub struct ManageError {
    pub detail: String,
    /// The input to blame, when one is (`config`, `filter`, `code`…).
    pub field: Option<String>,
}

impl axum::response::IntoResponse for Refused {
    fn into_response(self) -> axum::response::Response {
        let body = ManageError {
            detail: self.1,
            field: self.2,
        };
        (self.0, Json(body)).into_response()
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourceDeleted {
    pub source: String,
    pub deleted: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Rotated {
    pub source: String,
    /// How many secrets now expire.
    pub previous: usize,
    /// When they stop validating (RFC 3339).
    pub previous_expire_at: String,
    /// The generated secret, shown only in this answer.
    pub generated_secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionDeleted {
    pub connection: String,
    pub deleted: bool,
    /// Its pending jobs, now `cancelled`.
    pub cancelled_jobs: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecretSet {
    pub connection: String,
    pub field: String,
    pub set: bool,
}

/// What the loaded plugins say of a config.
fn plugin_check(s: &AdminState) -> impl Fn(&str, &Value) -> Option<PluginFacts> + Sync + '_ {
    |plugin, config| {
        s.registry.get(plugin).map(|p| PluginFacts {
            config_schema: p.manifest.config_schema.clone(),
            verdict: p.validate_config(config),
        })
    }
}

/// Runs `change` with an editor on the service's database and plugins, then
/// makes the change take effect.
async fn edit<T, F>(s: &AdminState, change: F) -> Result<T, Refused>
where
    F: AsyncFnOnce(&Editor<'_>) -> Result<T, Refusal>,
{
    let check = plugin_check(s);
    let editor = Editor {
        pool: &s.pool,
        sealer: s.catalog.sealer(),
        check: &check,
    };
    let out = change(&editor).await?;
    s.catalog.reload().await?;
    crate::follow_catalog(&s.catalog, &s.registry, &s.runtime, &s.flow, &s.wake).await;
    Ok(out)
}

/// Reads without changing anything.
async fn read<T, F>(s: &AdminState, look: F) -> Result<T, Refused>
where
    F: AsyncFnOnce(&Editor<'_>) -> Result<T, Refusal>,
{
    let check = plugin_check(s);
    let editor = Editor {
        pool: &s.pool,
        sealer: s.catalog.sealer(),
        check: &check,
    };
    Ok(look(&editor).await?)
}

/// A JSON body parsed into `T`, with serde's message (naming the field) as a 400.
fn parsed<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, Refused> {
    serde_json::from_value(body)
        .map_err(|e| Refused(StatusCode::BAD_REQUEST, format!("invalid body: {e}"), None))
}

/// Creates a source, owned by the database. Without `secrets`, one is
/// generated and answered once.
#[utoipa::path(post, path = "/admin/api/sources", tag = "sources",
    request_body(content = Object, description = "a `[[sources]]` table as JSON (`code`, `secrets`?, `scheme`?, `api_url`?, `api_username`?, `api_password`?, `rate_limit_per_second`?, `rate_limit_burst`?, `enabled`?)"),
    responses((status = 201, body = CreatedSource),
        (status = 409, description = "a source of this code exists", body = ManageError),
        (status = 400, description = "a value is refused (JSON, naming the field), or the body is not JSON (axum's plain text)",
            content((ManageError = "application/json"), (String = "text/plain"))),
        (status = 415, description = "the body is not sent as `application/json` (axum's plain text)",
            content_type = "text/plain", body = String)))]
pub async fn create_source(
    State(s): State<AdminState>,
    Json(mut body): Json<Value>,
) -> Result<(StatusCode, Json<CreatedSource>), Refused> {
    if let Some(map) = body.as_object_mut() {
        map.entry("secrets").or_insert_with(|| json!([]));
    }
    let decl = parsed(body)?;
    let created = edit(&s, async |e| e.create_source(decl).await).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(get, path = "/admin/api/sources/{code}", tag = "sources",
    params(("code" = String, Path, description = "source code")),
    responses((status = 200, body = SourceView), (status = 404, body = ManageError)))]
pub async fn show_source(
    State(s): State<AdminState>,
    Path(code): Path<String>,
) -> Result<Json<SourceView>, Refused> {
    Ok(Json(read(&s, async |e| e.source_view(&code).await).await?))
}

#[utoipa::path(patch, path = "/admin/api/sources/{code}", tag = "sources",
    params(("code" = String, Path, description = "source code")),
    request_body(content = SourcePatch),
    responses((status = 200, body = SourceView), (status = 404, body = ManageError),
        (status = 409, description = "owned by the configuration file", body = ManageError),
        (status = 400, description = "a value is refused (JSON, naming the field), or the body is not JSON (axum's plain text)",
            content((ManageError = "application/json"), (String = "text/plain"))),
        (status = 415, description = "the body is not sent as `application/json` (axum's plain text)",
            content_type = "text/plain", body = String)))]
pub async fn update_source(
    State(s): State<AdminState>,
    Path(code): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<SourceView>, Refused> {
    let patch: SourcePatch = parsed(body)?;
    edit(&s, async |e| e.update_source(&code, patch).await).await?;
    show_source(State(s), Path(code)).await
}

#[utoipa::path(delete, path = "/admin/api/sources/{code}", tag = "sources",
    params(("code" = String, Path, description = "source code")),
    responses((status = 200, body = SourceDeleted), (status = 404, body = ManageError),
        (status = 409, description = "owned by the configuration file, or used by a connection", body = ManageError)))]
pub async fn delete_source(
    State(s): State<AdminState>,
    Path(code): Path<String>,
) -> Result<Json<SourceDeleted>, Refused> {
    edit(&s, async |e| e.delete_source(&code).await).await?;
    Ok(Json(SourceDeleted {
        source: code,
        deleted: true,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotate {
    /// The new secret; generated (and answered once) when absent.
    pub secret: Option<String>,
    /// How long the current secrets keep validating (`24h` by default).
    pub grace: Option<String>,
}

#[utoipa::path(post, path = "/admin/api/sources/{code}/rotate-secret", tag = "sources",
    params(("code" = String, Path, description = "source code")),
    request_body(content = Option<Rotate>),
    responses((status = 200, body = Rotated), (status = 404, body = ManageError),
        (status = 400, description = "a value is refused (JSON, naming the field), or the body is not JSON (axum's plain text)",
            content((ManageError = "application/json"), (String = "text/plain"))),
        (status = 415, description = "the body is not sent as `application/json` (axum's plain text)",
            content_type = "text/plain", body = String)))]
pub async fn rotate_source_secret(
    State(s): State<AdminState>,
    Path(code): Path<String>,
    body: Option<Json<Value>>,
) -> Result<Json<Rotated>, Refused> {
    let rotate: Rotate = parsed(body.map(|Json(v)| v).unwrap_or_else(|| json!({})))?;
    let grace =
        humantime::parse_duration(rotate.grace.as_deref().unwrap_or("24h")).map_err(|e| {
            Refused(
                StatusCode::BAD_REQUEST,
                format!("grace: {e}"),
                Some("grace".into()),
            )
        })?;
    let (rotation, generated) = edit(&s, async |e| {
        e.rotate_source_secret(&code, rotate.secret, grace.as_millis() as i64)
            .await
    })
    .await?;
    Ok(Json(Rotated {
        source: code,
        previous: rotation.previous,
        previous_expire_at: crate::ids::rfc3339(rotation.previous_expire_at),
        generated_secret: generated,
    }))
}

/// Creates a connection, owned by the database; its config is checked
/// against the plugin's schema when the plugin is loaded.
#[utoipa::path(post, path = "/admin/api/connections", tag = "connections",
    request_body(content = Object, description = "a `[[connections]]` table as JSON (`name`, `source`, `plugin`, `config`, `enabled`?, `allowed_hosts`?, `filter`?, `delivery`?, `schedule`?, `limits`?)"),
    responses((status = 201, body = ConnectionView),
        (status = 409, description = "a connection of this name exists", body = ManageError),
        (status = 400, description = "a value is refused (JSON, naming the field), or the body is not JSON (axum's plain text)",
            content((ManageError = "application/json"), (String = "text/plain"))),
        (status = 415, description = "the body is not sent as `application/json` (axum's plain text)",
            content_type = "text/plain", body = String)))]
pub async fn create_connection(
    State(s): State<AdminState>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<ConnectionView>), Refused> {
    let decl: ConnectionDecl = parsed(body)?;
    let name = decl.name.clone();
    edit(&s, async |e| e.create_connection(decl).await).await?;
    let view = read(&s, async |e| e.connection_view(&name).await).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(get, path = "/admin/api/connections/{name}", tag = "connections",
    params(("name" = String, Path, description = "connection name")),
    responses((status = 200, body = ConnectionView), (status = 404, body = ManageError)))]
pub async fn show_connection(
    State(s): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<ConnectionView>, Refused> {
    Ok(Json(
        read(&s, async |e| e.connection_view(&name).await).await?,
    ))
}

#[utoipa::path(patch, path = "/admin/api/connections/{name}", tag = "connections",
    params(("name" = String, Path, description = "connection name")),
    request_body(content = ConnectionPatch),
    responses((status = 200, body = ConnectionView), (status = 404, body = ManageError),
        (status = 409, description = "owned by the configuration file", body = ManageError),
        (status = 400, description = "a value is refused (JSON, naming the field), or the body is not JSON (axum's plain text)",
            content((ManageError = "application/json"), (String = "text/plain"))),
        (status = 415, description = "the body is not sent as `application/json` (axum's plain text)",
            content_type = "text/plain", body = String)))]
pub async fn update_connection(
    State(s): State<AdminState>,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<ConnectionView>, Refused> {
    let patch: ConnectionPatch = parsed(body)?;
    edit(&s, async |e| e.update_connection(&name, patch).await).await?;
    show_connection(State(s), Path(name)).await
}

#[utoipa::path(delete, path = "/admin/api/connections/{name}", tag = "connections",
    params(("name" = String, Path, description = "connection name")),
    responses((status = 200, body = ConnectionDeleted), (status = 404, body = ManageError),
        (status = 409, description = "owned by the configuration file", body = ManageError)))]
pub async fn delete_connection(
    State(s): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<ConnectionDeleted>, Refused> {
    let cancelled = edit(&s, async |e| e.delete_connection(&name).await).await?;
    Ok(Json(ConnectionDeleted {
        connection: name,
        deleted: true,
        cancelled_jobs: cancelled,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSecret {
    /// JSON pointer of a `writeOnly` field of the plugin's schema: `/api_key`.
    pub field: String,
    pub value: String,
}

#[utoipa::path(post, path = "/admin/api/connections/{name}/secret", tag = "connections",
    params(("name" = String, Path, description = "connection name")),
    request_body(content = SetSecret),
    responses((status = 200, body = SecretSet), (status = 404, body = ManageError),
        (status = 409, description = "owned by the configuration file", body = ManageError),
        (status = 400, description = "a value is refused (JSON, naming the field), or the body is not JSON (axum's plain text)",
            content((ManageError = "application/json"), (String = "text/plain"))),
        (status = 415, description = "the body is not sent as `application/json` (axum's plain text)",
            content_type = "text/plain", body = String)))]
pub async fn set_connection_secret(
    State(s): State<AdminState>,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<SecretSet>, Refused> {
    let set: SetSecret = parsed(body)?;
    edit(&s, async |e| {
        e.set_connection_secret(&name, &set.field, &set.value).await
    })
    .await?;
    Ok(Json(SecretSet {
        connection: name,
        field: set.field,
        set: true,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    /// `[[sources]]` of the file, as JSON.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub sources: Vec<Value>,
    /// `[[connections]]` of the file, as JSON.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub connections: Vec<Value>,
    /// Also delete the database-owned entries the file does not declare.
    #[serde(default)]
    pub prune: bool,
    /// Only answer the plan.
    #[serde(default)]
    pub dry_run: bool,
}

/// `config apply`: the database-owned entries made to match a file. A plan
/// with a conflict is answered 409 and nothing changes.
#[utoipa::path(post, path = "/admin/api/config/apply", tag = "config",
    request_body(content = ApplyRequest),
    responses((status = 200, body = ApplyReport),
        (status = 409, description = "a conflict: the plan, nothing applied", body = ApplyReport),
        (status = 400, description = "a value is refused (JSON, naming the field), or the body is not JSON (axum's plain text)",
            content((ManageError = "application/json"), (String = "text/plain"))),
        (status = 415, description = "the body is not sent as `application/json` (axum's plain text)",
            content_type = "text/plain", body = String)))]
pub async fn apply(
    State(s): State<AdminState>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<ApplyReport>), Refused> {
    let request: ApplyRequest = parsed(body)?;
    let declarations = Declarations {
        sources: parsed(Value::Array(request.sources))?,
        connections: parsed(Value::Array(request.connections))?,
    };
    let report = edit(&s, async |e| {
        e.apply(&declarations, request.prune, request.dry_run).await
    })
    .await?;
    let conflict = report.changes.iter().any(|c| c.action == "conflict");
    let status = if conflict {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    Ok((status, Json(report)))
}
