//! Authenticated requests to a source's Recoco API on behalf of connectors, who
//! never see the credentials. A JWT pair is obtained at `/token/`, renewed before
//! the access token's 5 minutes run out, and renewed again (then the request sent
//! once more) when Recoco refuses it: `401`, or `403` with `"code": "token_not_valid"`,
//! which is what Recoco answers for an expired token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use url::Url;

use crate::ids::SourceId;
use crate::outbound::{OutboundClient, OutboundError, Request, Response};
use crate::store::sources::Source;

/// Access tokens live 5 minutes in production; renew a little before.
const ACCESS_TOKEN_MAX_AGE: Duration = Duration::from_secs(4 * 60);
/// Refresh tokens live one day.
const REFRESH_TOKEN_MAX_AGE: Duration = Duration::from_secs(23 * 3600);

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
    obtained: Instant,
    refreshed: Instant,
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
            if !refused && token.refreshed.elapsed() < ACCESS_TOKEN_MAX_AGE {
                return Ok(token.clone());
            }
        }
        let generation = slot.as_ref().map_or(0, |t| t.generation) + 1;
        let renewed = match slot.as_ref() {
            Some(t) if t.refresh.is_some() && t.obtained.elapsed() < REFRESH_TOKEN_MAX_AGE => {
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
        Ok(Token {
            access: access.to_string(),
            refresh: parsed["refresh"].as_str().map(str::to_string),
            obtained: now,
            refreshed: now,
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
        Some(Token {
            access: parsed["access"].as_str()?.to_string(),
            refresh: parsed["refresh"]
                .as_str()
                .map(str::to_string)
                .or_else(|| old.refresh.clone()),
            obtained: old.obtained,
            refreshed: Instant::now(),
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
