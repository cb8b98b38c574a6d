//! Signing in on the admin page: a key exchanged for an `HttpOnly`,
//! `SameSite=Strict` session cookie (the key never stays in the browser) and a
//! CSRF token the page sends with every state change.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::auth::{self, Access, Via, SESSION_COOKIE};
use super::{AdminState, ApiError};
use crate::ids::now_ms;
use crate::store::keys;

#[derive(serde::Deserialize)]
pub struct SignIn {
    key: String,
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
    let mut response = Json(json!({
        "mode": "session",
        "name": name,
        "scope": scope,
        "csrf_token": session.csrf_token,
        "expires_at": now_ms().saturating_add(ttl_ms),
    }))
    .into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie(&session.token, ttl.as_secs(), served_over_https(&headers)),
    );
    Ok(response)
}

/// `GET /admin/api/session`: who the page is signed in as (and its CSRF token);
/// 401 when it must sign in.
pub async fn current(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let access = auth::identify(&s, &headers, peer).await?;
    Ok(Json(describe(&access)))
}

fn describe(access: &Access) -> serde_json::Value {
    match &access.via {
        Via::Session { csrf_token, .. } => json!({
            "mode": "session", "name": access.name, "scope": access.scope, "csrf_token": csrf_token,
        }),
        Via::Bearer => json!({"mode": "bearer", "name": access.name, "scope": access.scope}),
        Via::Loopback => json!({"mode": "loopback", "name": access.name, "scope": access.scope}),
    }
}

/// `DELETE /admin/api/session`: signs out (with the session's CSRF token).
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
