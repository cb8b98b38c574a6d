//! Signing in on the admin page: a key exchanged for an `HttpOnly`,
//! `SameSite=Strict` session cookie (the key never stays in the browser) and a
//! CSRF token the page sends with every state change.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::{self, Access, Via, SESSION_COOKIE};
use super::{AdminState, ApiError};
use crate::ids::now_ms;
use crate::store::keys::{self, Scope};

#[derive(serde::Deserialize, ToSchema)]
pub struct SignIn {
    /// An admin key (`rsk_…`) or the bootstrap `admin_token`.
    key: String,
}

/// How the caller is let in.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The page's session cookie.
    Session,
    /// `Authorization: Bearer`.
    Bearer,
    /// No key exists yet: a loopback client.
    Loopback,
}

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionInfo {
    pub mode: Mode,
    /// Key name (`admin_token` for the bootstrap token, `loopback` without key).
    pub name: String,
    pub scope: Scope,
    /// Sent back in `X-CSRF-Token` with every state change (sessions only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
    /// When the session ends, ms since the epoch (on sign-in only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

fn cookie(value: &str, max_age_secs: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    ))
    .expect("cookie value is base64url")
}

/// Over HTTPS (as the browser saw it) the cookie is also `Secure`.
fn served_over_https(headers: &HeaderMap) -> bool {
    headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|o| o.starts_with("https://"))
}

/// `POST /admin/api/session` `{"key": "rsk_…"}`: signs in.
#[utoipa::path(post, path = "/admin/api/session", tag = "session", security(()),
    description = "Exchanges a key for an `HttpOnly` session cookie (`Set-Cookie`) and a CSRF token.",
    request_body = SignIn,
    responses((status = 200, body = SessionInfo,
            headers(("set-cookie" = String, description = "the session cookie"))),
        (status = 401, description = "unknown or revoked key", body = super::api::ErrorDetail),
        (status = 403, description = "a cross-origin request", body = super::api::ErrorDetail),
        super::api::BadBody))]
pub async fn sign_in(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Json(body): Json<SignIn>,
) -> Result<Response, ApiError> {
    // A foreign page must not sign the browser in under its own key either.
    auth::same_origin(&headers)?;
    let key_hash = keys::hash_token(body.key.trim());
    let Some((name, scope)) = auth::key_by_hash(&s, &key_hash).await? else {
        tracing::info!("admin sign-in refused: unknown or revoked key");
        return Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "unknown or revoked admin key".into(),
        ));
    };
    let ttl = s.admin.session_ttl;
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let session = keys::open_session(&s.pool, &key_hash, ttl_ms).await?;
    tracing::info!(key = %name, "admin sign-in");
    let mut response = Json(SessionInfo {
        mode: Mode::Session,
        name,
        scope,
        csrf_token: Some(session.csrf_token),
        expires_at: Some(now_ms().saturating_add(ttl_ms)),
    })
    .into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie(&session.token, ttl.as_secs(), served_over_https(&headers)),
    );
    Ok(response)
}

/// `GET /admin/api/session`: who the page is signed in as (and its CSRF token);
/// 401 when it must sign in.
#[utoipa::path(get, path = "/admin/api/session", tag = "session",
    security((), ("bearer" = []), ("session" = [])),
    responses((status = 200, body = SessionInfo),
        (status = 401, description = "no or a bad credential while keys exist", body = super::api::ErrorDetail),
        (status = 403, description = "no key exists and the client is not on loopback, or names another host",
            body = super::api::ErrorDetail)))]
pub async fn current(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<SessionInfo>, ApiError> {
    let access = auth::identify(&s, &headers, peer).await?;
    Ok(Json(describe(&access)))
}

fn describe(access: &Access) -> SessionInfo {
    let (mode, csrf_token) = match &access.via {
        Via::Session { csrf_token, .. } => (Mode::Session, Some(csrf_token.clone())),
        Via::Bearer => (Mode::Bearer, None),
        Via::Loopback => (Mode::Loopback, None),
    };
    SessionInfo {
        mode,
        name: access.name.clone(),
        scope: access.scope,
        csrf_token,
        expires_at: None,
    }
}

/// `DELETE /admin/api/session`: signs out (with the session's CSRF token).
#[utoipa::path(delete, path = "/admin/api/session", tag = "session",
    security((), ("session" = [])),
    responses((status = 204, description = "signed out; the cookie is cleared",
            headers(("set-cookie" = String, description = "the emptied session cookie"))),
        (status = 403, description = "a session without its CSRF token, or a cross-origin request",
            body = super::api::ErrorDetail)))]
pub async fn sign_out(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Ok(access) = auth::identify(&s, &headers, peer).await {
        if let Via::Session { token, csrf_token } = &access.via {
            // Any scope may sign out; the CSRF token is still required.
            auth::session_change(csrf_token, &headers)?;
            keys::close_session(&s.pool, token).await?;
            tracing::info!(key = %access.name, "admin sign-out");
        }
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie("", 0, served_over_https(&headers)),
    );
    Ok(response)
}
