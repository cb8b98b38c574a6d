//! Who is calling the admin surface, and may they do this?
//!
//! Three ways in:
//! - a key (`Authorization: Bearer rsk_…`, or the bootstrap `admin_token`);
//! - a session cookie opened by signing in with a key on the page; state
//!   changes also need its CSRF token in `X-CSRF-Token`;
//! - no credential at all, only while no key was ever created and no `admin_token`
//!   is set,
//!   and only from a loopback socket peer (never `X-Forwarded-For`), with a
//!   `Host` naming a loopback address or an allowed name (DNS rebinding), and,
//!   for state changes, no foreign `Origin`/`Referer` (CSRF).
//!
//! Keys are looked up on every request, so revoking one takes effect at once.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq as _;

use super::{AdminState, ApiError};
use crate::store::keys::{self, Scope};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "recoco_sync_session";
/// Header carrying a session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How the caller got in.
#[derive(Debug, Clone)]
pub enum Via {
    Bearer,
    Session {
        token: String,
        csrf_token: String,
    },
    /// No key configured: a loopback client.
    Loopback,
}

/// The caller of an admin request (also put in the request's extensions).
#[derive(Debug, Clone)]
pub struct Access {
    /// Key name; `admin_token` for the bootstrap token, `loopback` without key.
    pub name: String,
    pub scope: Scope,
    pub via: Via,
}

fn refused(status: StatusCode, why: impl Into<String>) -> ApiError {
    ApiError(status, why.into())
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The key whose hash is `key_hash`: the bootstrap token or an active key.
pub async fn key_by_hash(
    state: &AdminState,
    key_hash: &str,
) -> Result<Option<(String, Scope)>, ApiError> {
    if let Some(token) = &state.token {
        let bootstrap = keys::hash_token(token);
        if bool::from(bootstrap.as_bytes().ct_eq(key_hash.as_bytes())) {
            return Ok(Some(("admin_token".into(), Scope::Admin)));
        }
    }
    match keys::active_by_hash(&state.pool, key_hash).await? {
        Some(key) => {
            keys::touch(&state.pool, &key).await?;
            Ok(Some((key.name, key.scope)))
        }
        None => Ok(None),
    }
}

/// True when the admin surface requires a key.
pub async fn keys_required(state: &AdminState) -> Result<bool, ApiError> {
    Ok(state.token.is_some() || keys::any_created(&state.pool).await?)
}

/// Identifies the caller, or says why not (401: no or bad credential, 403: not
/// allowed from here).
pub async fn identify(
    state: &AdminState,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Access, ApiError> {
    if let Some(given) = bearer(headers) {
        return match key_by_hash(state, &keys::hash_token(given)).await? {
            Some((name, scope)) => Ok(Access {
                name,
                scope,
                via: Via::Bearer,
            }),
            None => Err(refused(
                StatusCode::UNAUTHORIZED,
                "unknown or revoked admin key",
            )),
        };
    }
    if let Some(token) = cookie(headers, SESSION_COOKIE).filter(|t| !t.is_empty()) {
        if let Some(session) = keys::session(&state.pool, token).await? {
            if let Some((name, scope)) = key_by_hash(state, &session.key_hash).await? {
                return Ok(Access {
                    name,
                    scope,
                    via: Via::Session {
                        token: token.to_string(),
                        csrf_token: session.csrf_token,
                    },
                });
            }
        }
        if keys_required(state).await? {
            return Err(refused(
                StatusCode::UNAUTHORIZED,
                "the session has expired or its key was revoked; sign in again",
            ));
        }
    }
    if keys_required(state).await? {
        return Err(refused(
            StatusCode::UNAUTHORIZED,
            "an admin key is required (Authorization: Bearer …, or sign in on /admin)",
        ));
    }
    // No key configured: loopback clients only, by the socket peer alone.
    if !is_loopback(peer.ip()) {
        return Err(refused(
            StatusCode::FORBIDDEN,
            "without an admin key the admin surface answers only loopback clients; create a key with `recoco-sync keys create`",
        ));
    }
    if !host_is_allowed(headers, &state.admin.allowed_hosts) {
        return Err(refused(
            StatusCode::FORBIDDEN,
            "the Host header must name this service by a loopback address, localhost or a name in admin.allowed_hosts",
        ));
    }
    Ok(Access {
        name: "loopback".into(),
        scope: Scope::Admin,
        via: Via::Loopback,
    })
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// The host part of a `Host` header value (`[::1]:80` → `::1`).
fn host_part(value: &str) -> &str {
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match value.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => value,
    }
}

fn host_is_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(value) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = host_part(value.trim())
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if host == "localhost" {
        return true;
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return is_loopback(ip);
    }
    allowed.iter().any(|a| a.eq_ignore_ascii_case(&host))
}

/// For a request a browser may have sent on another site's behalf: refuses a
/// foreign or opaque `Origin`, a foreign `Referer`, or `Sec-Fetch-Site` other
/// than same-origin. A request with none of them (curl, scripts) passes.
pub fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let foreign = |url: &str| {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        match rest {
            Some(rest) => {
                let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
                !authority.eq_ignore_ascii_case(host)
            }
            None => true, // "null", file:, other schemes
        }
    };
    let why = "cross-origin request refused: Origin/Referer is not this service";
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return Err(refused(StatusCode::FORBIDDEN, why));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        if origin.to_str().map_or(true, foreign) {
            return Err(refused(StatusCode::FORBIDDEN, why));
        }
    } else if let Some(referer) = headers.get(header::REFERER) {
        if referer.to_str().map_or(true, foreign) {
            return Err(refused(StatusCode::FORBIDDEN, why));
        }
    }
    Ok(())
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Checks what `access` may do with a request of `method`.
pub fn permit(access: &Access, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    if !changes_state(method) {
        return Ok(());
    }
    if access.scope != Scope::Admin {
        return Err(refused(
            StatusCode::FORBIDDEN,
            format!(
                "key {:?} is read-only: it cannot change anything",
                access.name
            ),
        ));
    }
    match &access.via {
        Via::Bearer => Ok(()),
        Via::Loopback => same_origin(headers),
        Via::Session { csrf_token, .. } => session_change(csrf_token, headers),
    }
}

/// A state change made through a page session: same origin, and the session's
/// CSRF token in `X-CSRF-Token`.
pub fn session_change(csrf_token: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    same_origin(headers)?;
    let given = headers
        .get(CSRF_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if given.is_empty() || !bool::from(given.ct_eq(csrf_token.as_bytes())) {
        return Err(refused(
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token (X-CSRF-Token)",
        ));
    }
    Ok(())
}

/// The middleware in front of every API route.
pub async fn authorize(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let access = match identify(&state, request.headers(), peer).await {
        Ok(access) => access,
        Err(err) => return err.into_response(),
    };
    if let Err(err) = permit(&access, request.method(), request.headers()) {
        return err.into_response();
    }
    request.extensions_mut().insert(access);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn host_names_a_loopback_address_or_an_allowed_name() {
        let allowed = vec!["admin.internal".to_string()];
        for ok in [
            "127.0.0.1:8000",
            "localhost:8000",
            "LOCALHOST",
            "[::1]:80",
            "127.1.2.3",
            "admin.internal:8000",
        ] {
            let h = headers(&[("host", ok)]);
            assert!(host_is_allowed(&h, &allowed), "{ok}");
        }
        for bad in [
            "evil.example:8000",
            "10.0.0.1",
            "127.0.0.1.evil.example",
            "[::2]:80",
            "",
        ] {
            let h = headers(&[("host", bad)]);
            assert!(!host_is_allowed(&h, &allowed), "{bad}");
        }
        assert!(!host_is_allowed(&HeaderMap::new(), &allowed));
    }

    #[test]
    fn cross_origin_state_changes_are_refused() {
        let host = ("host", "127.0.0.1:8000");
        assert!(
            same_origin(&headers(&[host])).is_ok(),
            "no browser headers: curl"
        );
        assert!(same_origin(&headers(&[host, ("origin", "http://127.0.0.1:8000")])).is_ok());
        assert!(same_origin(&headers(&[
            host,
            ("referer", "http://127.0.0.1:8000/admin")
        ]))
        .is_ok());
        for origin in [
            "http://evil.example",
            "null",
            "http://127.0.0.1:8001",
            "http://127.0.0.1:8000.evil.example",
        ] {
            let h = headers(&[host, ("origin", origin)]);
            assert!(same_origin(&h).is_err(), "{origin}");
        }
        assert!(same_origin(&headers(&[host, ("referer", "http://evil.example/x")])).is_err());
        assert!(same_origin(&headers(&[host, ("sec-fetch-site", "cross-site")])).is_err());
    }

    #[test]
    fn cookies_are_found_by_name() {
        let h = headers(&[("cookie", "a=1; recoco_sync_session=abc; b=2")]);
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
