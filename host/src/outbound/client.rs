//! The HTTP client connectors reach the network through: reqwest over rustls,
//! the connection's allow-list checked on every hop (redirects are followed here,
//! not by reqwest, so each one is checked), private addresses refused at DNS time
//! unless granted, bounded time and response size.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use url::Url;

use super::allow::{is_private, AllowList, Refusal};
use crate::config::OutboundConfig;

/// Redirect hops followed before giving up.
const MAX_REDIRECTS: usize = 5;
const USER_AGENT: &str = concat!("recoco-sync/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why no response was obtained; mirrors the WIT `http-error`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum OutboundError {
    #[error("host not allowed for this connection: add {0:?} to its allowed_hosts")]
    NotAllowed(String),
    #[error("request timed out")]
    Timeout,
    #[error("connection failed: {0}")]
    Connection(String),
    #[error("response larger than {0} bytes")]
    TooLarge(u64),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

/// Refuses names that resolve only to private addresses.
struct PublicResolver;

impl reqwest::dns::Resolve for PublicResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> =
                addrs.into_iter().filter(|a| !is_private(&a.ip())).collect();
            if public.is_empty() {
                return Err(format!("{host} resolves only to private addresses (set outbound.allow_private_networks to allow)").into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[derive(Clone)]
pub struct OutboundClient {
    /// For host names, when private networks are not allowed.
    public: reqwest::Client,
    /// For explicitly granted IP literals, trusted endpoints and private networks.
    open: reqwest::Client,
    config: OutboundConfig,
}

impl OutboundClient {
    pub fn new(config: &OutboundConfig) -> anyhow::Result<Self> {
        let builder = || {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(USER_AGENT)
                .connect_timeout(Duration::from_secs(10))
                .pool_idle_timeout(Duration::from_secs(60))
                .tls_backend_rustls()
        };
        Ok(Self {
            public: builder().dns_resolver(Arc::new(PublicResolver)).build()?,
            open: builder().build()?,
            config: config.clone(),
        })
    }

    /// Sends on behalf of a connector, checking `allow` on every hop.
    pub async fn send(
        &self,
        allow: &AllowList,
        request: Request,
    ) -> Result<Response, OutboundError> {
        self.send_checked(Some(allow), request).await
    }

    /// Sends to an endpoint the operator configured (a source's API): no allow-list.
    pub async fn send_trusted(&self, request: Request) -> Result<Response, OutboundError> {
        self.send_checked(None, request).await
    }

    async fn send_checked(
        &self,
        allow: Option<&AllowList>,
        request: Request,
    ) -> Result<Response, OutboundError> {
        let timeout = request
            .timeout
            .unwrap_or(self.config.timeout)
            .min(self.config.max_timeout);
        let mut method = reqwest::Method::from_bytes(
            request.method.to_ascii_uppercase().as_bytes(),
        )
        .map_err(|_| OutboundError::InvalidRequest(format!("bad method {:?}", request.method)))?;
        let headers = header_map(&request.headers)?;
        let mut body = request.body;
        let mut url = Url::parse(&request.url)
            .map_err(|e| OutboundError::InvalidRequest(format!("bad URL: {e}")))?;
        let deadline = tokio::time::Instant::now() + timeout;
        for _ in 0..=MAX_REDIRECTS {
            let client = self.client_for(allow, &url)?;
            let mut builder = client
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if let Some(b) = &body {
                builder = builder.body(b.clone());
            }
            let send = async {
                let response = builder.send().await.map_err(classify)?;
                self.read(response).await
            };
            let response = tokio::time::timeout_at(deadline, send)
                .await
                .map_err(|_| OutboundError::Timeout)??;
            crate::metrics::outbound(url.host_str(), response.status);
            let Some(next) = redirect_target(&url, &response) else {
                return Ok(response);
            };
            if response.status == 303
                || ((response.status == 301 || response.status == 302)
                    && method == reqwest::Method::POST)
            {
                method = reqwest::Method::GET;
                body = None;
            }
            url = next;
        }
        Err(OutboundError::Connection(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }

    fn client_for(
        &self,
        allow: Option<&AllowList>,
        url: &Url,
    ) -> Result<&reqwest::Client, OutboundError> {
        let Some(allow) = allow else {
            return Ok(&self.open);
        };
        let grant = allow.check(url).map_err(|r| match r {
            Refusal::NotAllowed(entry) => OutboundError::NotAllowed(entry),
            Refusal::Invalid(why) => OutboundError::InvalidRequest(why),
        })?;
        match grant.ip {
            Some(ip)
                if is_private(&ip) && !grant.explicit_ip && !self.config.allow_private_networks =>
            {
                Err(OutboundError::NotAllowed(format!(
                    "{ip} (a private address must be listed explicitly)"
                )))
            }
            Some(_) => Ok(&self.open),
            None if self.config.allow_private_networks => Ok(&self.open),
            None => Ok(&self.public),
        }
    }

    async fn read(&self, mut response: reqwest::Response) -> Result<Response, OutboundError> {
        let cap = self.config.max_response_bytes as u64;
        if response.content_length().is_some_and(|len| len > cap) {
            return Err(OutboundError::TooLarge(cap));
        }
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len() as u64 + chunk.len() as u64 > cap {
                return Err(OutboundError::TooLarge(cap));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, OutboundError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        // Framing headers are the client's business.
        if matches!(
            lower.as_str(),
            "host" | "content-length" | "transfer-encoding" | "connection"
        ) {
            continue;
        }
        let name = HeaderName::from_bytes(lower.as_bytes())
            .map_err(|_| OutboundError::InvalidRequest(format!("bad header name {name:?}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| OutboundError::InvalidRequest(format!("bad value for header {name}")))?;
        map.append(name, value);
    }
    Ok(map)
}

fn redirect_target(current: &Url, response: &Response) -> Option<Url> {
    if !matches!(response.status, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    current.join(response.header("location")?).ok()
}

fn classify(err: reqwest::Error) -> OutboundError {
    if err.is_timeout() {
        return OutboundError::Timeout;
    }
    // The full chain says which step failed (DNS, connect, TLS).
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    if err.is_builder() {
        OutboundError::InvalidRequest(text)
    } else {
        OutboundError::Connection(text)
    }
}
