//! Handlers of the managed configuration (see [`crate::managed`]): sources and
//! connections created, shown, edited, deleted, secrets set or rotated, and
//! `config apply`. Each change takes effect at once ([`crate::follow_catalog`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{AdminState, ApiError};
use crate::config::ConnectionDecl;
use crate::managed::{
    ApplyReport, ConnectionPatch, ConnectionView, CreatedSource, Declarations, Editor,
    PluginFacts, Refusal, SourcePatch, SourceView,
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

impl axum::response::IntoResponse for Refused {
    fn into_response(self) -> axum::response::Response {
        (self.0, Json(json!({"detail": self.1, "field": self.2}))).into_response()
    }
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

pub async fn show_source(
    State(s): State<AdminState>,
    Path(code): Path<String>,
) -> Result<Json<SourceView>, Refused> {
    Ok(Json(read(&s, async |e| e.source_view(&code).await).await?))
}

pub async fn update_source(
    State(s): State<AdminState>,
    Path(code): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<SourceView>, Refused> {
    let patch: SourcePatch = parsed(body)?;
    edit(&s, async |e| e.update_source(&code, patch).await).await?;
    show_source(State(s), Path(code)).await
}

pub async fn delete_source(
    State(s): State<AdminState>,
    Path(code): Path<String>,
) -> Result<Json<Value>, Refused> {
    edit(&s, async |e| e.delete_source(&code).await).await?;
    Ok(Json(json!({"source": code, "deleted": true})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotate {
    /// The new secret; generated (and answered once) when absent.
    pub secret: Option<String>,
    /// How long the current secrets keep validating (`24h` by default).
    pub grace: Option<String>,
}

pub async fn rotate_source_secret(
    State(s): State<AdminState>,
    Path(code): Path<String>,
    body: Option<Json<Value>>,
) -> Result<Json<Value>, Refused> {
    let rotate: Rotate = parsed(body.map(|Json(v)| v).unwrap_or_else(|| json!({})))?;
    let grace = humantime::parse_duration(rotate.grace.as_deref().unwrap_or("24h"))
        .map_err(|e| Refused(StatusCode::BAD_REQUEST, format!("grace: {e}"), Some("grace".into())))?;
    let (rotation, generated) = edit(&s, async |e| {
        e.rotate_source_secret(&code, rotate.secret, grace.as_millis() as i64)
            .await
    })
    .await?;
    Ok(Json(json!({
        "source": code,
        "previous": rotation.previous,
        "previous_expire_at": crate::ids::rfc3339(rotation.previous_expire_at),
        "generated_secret": generated,
    })))
}

/// Creates a connection, owned by the database; its config is checked
/// against the plugin's schema when the plugin is loaded.
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

pub async fn show_connection(
    State(s): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<ConnectionView>, Refused> {
    Ok(Json(read(&s, async |e| e.connection_view(&name).await).await?))
}

pub async fn update_connection(
    State(s): State<AdminState>,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<ConnectionView>, Refused> {
    let patch: ConnectionPatch = parsed(body)?;
    edit(&s, async |e| e.update_connection(&name, patch).await).await?;
    show_connection(State(s), Path(name)).await
}

pub async fn delete_connection(
    State(s): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, Refused> {
    let cancelled = edit(&s, async |e| e.delete_connection(&name).await).await?;
    Ok(Json(
        json!({"connection": name, "deleted": true, "cancelled_jobs": cancelled}),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSecret {
    /// JSON pointer of a `writeOnly` field of the plugin's schema: `/api_key`.
    pub field: String,
    pub value: String,
}

pub async fn set_connection_secret(
    State(s): State<AdminState>,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, Refused> {
    let set: SetSecret = parsed(body)?;
    edit(&s, async |e| {
        e.set_connection_secret(&name, &set.field, &set.value).await
    })
    .await?;
    Ok(Json(json!({"connection": name, "field": set.field, "set": true})))
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
