//! Authenticated requests to a source's Recoco API on behalf of connectors, who
//! never see the credentials. A JWT pair is obtained at `/token/` and renewed
//! before the access token expires, as its own `exp` claim says (with a margin;
//! 4 minutes when the token is not a readable JWT), so that short-lived tokens
//! cost no refused request. As a fallback it is renewed again (then the request
//! sent once more) when Recoco refuses it: `401`, or `403` with
//! `"code": "token_not_valid"`, which is what Recoco answers for an expired token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use url::Url;

use crate::ids::SourceId;
use crate::outbound::{OutboundClient, OutboundError, Request, Response};
use crate::store::sources::Source;

/// Access tokens live 5 minutes in production; without a readable `exp`, renew
/// a little before.
const ACCESS_TOKEN_MAX_AGE: Duration = Duration::from_secs(4 * 60);
/// Refresh tokens live one day (same fallback).
const REFRESH_TOKEN_MAX_AGE: Duration = Duration::from_secs(23 * 3600);
/// Renew this long before a token's `exp` at most (a fifth of its life when shorter).
const RENEW_MARGIN: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SourceApiError {
    /// No usable credentials, or Recoco refused them.
    #[error("source API authentication failed: {0}")]
    Auth(String),
    #[error(transparent)]
    Outbound(#[from] OutboundError),
}

#[derive(Clone)]
struct Token {
    access: String,
    refresh: Option<String>,
    /// When to renew the access token.
    renew_at: Instant,
    /// Until when the refresh token may be used.
    refresh_until: Instant,
    /// Bumped at every renewal, so concurrent refusals renew only once.
    generation: u64,
}

struct Session {
    api_url: Url,
    username: String,
    password: String,
    token: tokio::sync::Mutex<Option<Token>>,
}

/// Shared by all invocations; one session (token pair) per source.
#[derive(Clone)]
pub struct SourceApi {
    client: OutboundClient,
    sessions: Arc<Mutex<HashMap<SourceId, Arc<Session>>>>,
}

impl SourceApi {
    pub fn new(client: OutboundClient) -> Self {
        Self {
            client,
            sessions: Default::default(),
        }
    }

    /// Sends `method path` to the source's API. `path` starts with `/` or is an
    /// absolute URL on the API's origin (pagination links).
    pub async fn request(
        &self,
        source: &Source,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> Result<Response, SourceApiError> {
        let session = self.session(source)?;
        let url = resolve(&session.api_url, path)?;
        let token = session.current(&self.client, None).await?;
        let response = self.send(&url, method, &token.access, body.clone()).await?;
        if !token_refused(&response) {
            return Ok(response);
        }
        tracing::debug!(source = %source.code, status = response.status, "source API refused the token; renewing");
        let token = session
            .current(&self.client, Some(token.generation))
            .await?;
        Ok(self.send(&url, method, &token.access, body).await?)
    }

    fn session(&self, source: &Source) -> Result<Arc<Session>, SourceApiError> {
        let (Some(api_url), Some(username), Some(password)) =
            (&source.api_url, &source.api_username, &source.api_password)
        else {
            return Err(SourceApiError::Auth(format!(
                "source {:?} has no api_url, api_username and api_password configured",
                source.code
            )));
        };
        let mut sessions = self.sessions.lock().expect("sessions lock");
        if let Some(s) = sessions.get(&source.id) {
            if s.api_url.as_str().trim_end_matches('/') == api_url.trim_end_matches('/')
                && &s.username == username
                && &s.password == password
            {
                return Ok(s.clone());
            }
        }
        let api_url = Url::parse(api_url.trim_end_matches('/')).map_err(|e| {
            SourceApiError::Auth(format!("source {:?}: bad api_url: {e}", source.code))
        })?;
        let session = Arc::new(Session {
            api_url,
            username: username.clone(),
            password: password.clone(),
            token: Default::default(),
        });
        sessions.insert(source.id, session.clone());
        Ok(session)
    }

    async fn send(
        &self,
        url: &Url,
        method: &str,
        access: &str,
        body: Option<String>,
    ) -> Result<Response, OutboundError> {
        let mut headers = vec![
            ("authorization".to_string(), format!("Bearer {access}")),
            ("accept".to_string(), "application/json".to_string()),
        ];
        if body.is_some() {
            headers.push(("content-type".into(), "application/json".into()));
        }
        self.client
            .send_trusted(Request {
                method: method.to_string(),
                url: url.to_string(),
                headers,
                body: body.map(String::into_bytes),
                timeout: None,
            })
            .await
    }
}

impl Session {
    /// A valid token. With `stale`, the token of that generation was refused:
    /// renew unless another caller already did.
    async fn current(
        &self,
        client: &OutboundClient,
        stale: Option<u64>,
    ) -> Result<Token, SourceApiError> {
        let mut slot = self.token.lock().await;
        if let Some(token) = slot.as_ref() {
            let refused = stale.is_some_and(|g| g == token.generation);
            if !refused && Instant::now() < token.renew_at {
                return Ok(token.clone());
            }
        }
        let generation = slot.as_ref().map_or(0, |t| t.generation) + 1;
        let renewed = match slot.as_ref() {
            Some(t) if t.refresh.is_some() && Instant::now() < t.refresh_until => {
                self.refresh(client, t, generation).await
            }
            _ => None,
        };
        let token = match renewed {
            Some(token) => token,
            None => self.login(client, generation).await?,
        };
        *slot = Some(token.clone());
        Ok(token)
    }

    async fn login(
        &self,
        client: &OutboundClient,
        generation: u64,
    ) -> Result<Token, SourceApiError> {
        let body =
            serde_json::json!({"username": self.username, "password": self.password}).to_string();
        let response = self.post(client, "/token/", body).await?;
        if response.status != 200 {
            return Err(SourceApiError::Auth(format!(
                "POST {}/token/ answered {}{}",
                self.api_url,
                response.status,
                if response.status == 401 {
                    " (wrong api_username or api_password)"
                } else {
                    ""
                }
            )));
        }
        let parsed: serde_json::Value = serde_json::from_slice(&response.body)
            .map_err(|_| SourceApiError::Auth("the token endpoint did not answer JSON".into()))?;
        let access = parsed["access"].as_str().ok_or_else(|| {
            SourceApiError::Auth("the token endpoint answered no access token".into())
        })?;
        let now = Instant::now();
        let refresh = parsed["refresh"].as_str().map(str::to_string);
        Ok(Token {
            renew_at: now + renew_after(access, ACCESS_TOKEN_MAX_AGE),
            refresh_until: now
                + renew_after(refresh.as_deref().unwrap_or(""), REFRESH_TOKEN_MAX_AGE),
            access: access.to_string(),
            refresh,
            generation,
        })
    }

    /// `None` when the refresh token is refused (then we log in again).
    async fn refresh(
        &self,
        client: &OutboundClient,
        old: &Token,
        generation: u64,
    ) -> Option<Token> {
        let body = serde_json::json!({"refresh": old.refresh}).to_string();
        let response = self.post(client, "/token/refresh/", body).await.ok()?;
        if response.status != 200 {
            return None;
        }
        let parsed: serde_json::Value = serde_json::from_slice(&response.body).ok()?;
        let now = Instant::now();
        let access = parsed["access"].as_str()?;
        // A rotated refresh token comes with its own lifetime.
        let (refresh, refresh_until) = match parsed["refresh"].as_str() {
            Some(r) => (
                Some(r.to_string()),
                now + renew_after(r, REFRESH_TOKEN_MAX_AGE),
            ),
            None => (old.refresh.clone(), old.refresh_until),
        };
        Some(Token {
            renew_at: now + renew_after(access, ACCESS_TOKEN_MAX_AGE),
            access: access.to_string(),
            refresh,
            refresh_until,
            generation,
        })
    }

    async fn post(
        &self,
        client: &OutboundClient,
        path: &str,
        body: String,
    ) -> Result<Response, SourceApiError> {
        let url = resolve(&self.api_url, path)?;
        Ok(client
            .send_trusted(Request {
                method: "POST".into(),
                url: url.to_string(),
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("accept".into(), "application/json".into()),
                ],
                body: Some(body.into_bytes()),
                timeout: None,
            })
            .await?)
    }
}

/// How long a token just received may be used before renewing it: its
/// lifetime from its JWT claims (`exp - iat`, which needs no clock agreement
/// with Recoco; `exp - now` without `iat`), less a margin. `fallback` when the
/// token is not a JWT with an `exp`. Claims are read, not verified: the token
/// is Recoco's to check; we only schedule its renewal.
fn renew_after(token: &str, fallback: Duration) -> Duration {
    let Some(lifetime) = jwt_lifetime(token) else {
        return fallback;
    };
    lifetime.saturating_sub(RENEW_MARGIN.min(lifetime / 5))
}

fn jwt_lifetime(token: &str) -> Option<Duration> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_f64()?;
    let start = match claims.get("iat").and_then(serde_json::Value::as_f64) {
        Some(iat) => iat,
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()?
            .as_secs_f64(),
    };
    Some(Duration::from_secs_f64((exp - start).max(0.0)))
}

/// Recoco answers 403 `token_not_valid` for an expired token (its first
/// authentication class declares no challenge); 401 is accepted for robustness.
fn token_refused(response: &Response) -> bool {
    match response.status {
        401 => true,
        403 => serde_json::from_slice::<serde_json::Value>(&response.body)
            .is_ok_and(|v| v.get("code").and_then(|c| c.as_str()) == Some("token_not_valid")),
        _ => false,
    }
}

/// `path` relative to the API base, or an absolute URL on the same origin.
fn resolve(api_url: &Url, path: &str) -> Result<Url, SourceApiError> {
    let invalid = |why: String| SourceApiError::Outbound(OutboundError::InvalidRequest(why));
    if path.starts_with("http://") || path.starts_with("https://") {
        let url = Url::parse(path).map_err(|e| invalid(format!("bad URL: {e}")))?;
        if url.origin() != api_url.origin() {
            return Err(invalid(format!("{path} is not on the source API's origin")));
        }
        return Ok(url);
    }
    if !path.starts_with('/') {
        return Err(invalid(format!(
            "source API path {path:?} must start with /"
        )));
    }
    Url::parse(&format!("{}{path}", api_url.as_str().trim_end_matches('/')))
        .map_err(|e| invalid(format!("bad path: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_under_the_api_base() {
        let base = Url::parse("https://portal.example/api").unwrap();
        assert_eq!(
            resolve(&base, "/projects/12/").unwrap().as_str(),
            "https://portal.example/api/projects/12/"
        );
        assert_eq!(
            resolve(
                &base,
                "https://portal.example/api/projects/?limit=50&offset=50"
            )
            .unwrap()
            .as_str(),
            "https://portal.example/api/projects/?limit=50&offset=50"
        );
        assert!(resolve(&base, "https://evil.example/api/projects/").is_err());
        assert!(resolve(&base, "projects/").is_err());
    }

    fn jwt(claims: serde_json::Value) -> String {
        let enc = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.c2lnbmF0dXJl",
            enc(&serde_json::json!({"alg": "HS256", "typ": "JWT"})),
            enc(&claims)
        )
    }

    #[test]
    fn tokens_are_renewed_from_their_own_expiry() {
        let fallback = Duration::from_secs(240);
        // Recoco's 5 minutes: renewed 30 s before.
        let five = jwt(
            serde_json::json!({"token_type": "access", "iat": 1_700_000_000, "exp": 1_700_000_300}),
        );
        assert_eq!(renew_after(&five, fallback), Duration::from_secs(270));
        // A short-lived token: a fifth of its life as margin.
        let short = jwt(serde_json::json!({"iat": 1_700_000_000, "exp": 1_700_000_010}));
        assert_eq!(renew_after(&short, fallback), Duration::from_secs(8));
        // A day-long refresh token.
        let day = jwt(serde_json::json!({"iat": 1_700_000_000, "exp": 1_700_086_400}));
        assert_eq!(renew_after(&day, fallback), Duration::from_secs(86_370));
        // Without iat: from now.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let no_iat = jwt(serde_json::json!({"exp": now + 100}));
        let left = renew_after(&no_iat, fallback);
        assert!(
            left <= Duration::from_secs(80) && left >= Duration::from_secs(78),
            "{left:?}"
        );
        // Already expired, opaque, or malformed: the fallback or nothing.
        let old = jwt(serde_json::json!({"iat": 1_700_000_000, "exp": 1_600_000_000}));
        assert_eq!(renew_after(&old, fallback), Duration::ZERO);
        assert_eq!(renew_after("access-1", fallback), fallback);
        assert_eq!(renew_after("a.!!!.c", fallback), fallback);
        assert_eq!(
            renew_after(&jwt(serde_json::json!({"sub": 1})), fallback),
            fallback
        );
    }

    #[test]
    fn refusals_that_renew_the_token() {
        let r = |status, body: &str| Response {
            status,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        };
        assert!(token_refused(&r(401, "")));
        assert!(token_refused(&r(
            403,
            r#"{"detail": "x", "code": "token_not_valid"}"#
        )));
        assert!(!token_refused(&r(
            403,
            r#"{"detail": "permission denied"}"#
        )));
        assert!(!token_refused(&r(404, "")));
    }
}
