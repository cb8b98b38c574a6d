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
use super::guard::SelfGuard;
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
    /// Refused by policy whatever the allow-list says (the service's own
    /// addresses, a trusted endpoint redirecting off its origin).
    #[error("refused: {0}")]
    Refused(String),
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
    /// Keeps requests away from this service itself.
    guard: Arc<SelfGuard>,
}

/// Whose request it is, which decides how redirects are followed.
#[derive(Clone, Copy)]
enum Policy<'a> {
    /// A connector's: every hop is checked against its allow-list, and
    /// credentials are dropped once a hop leaves the first origin.
    Connector {
        allow: &'a AllowList,
        sensitive: &'a [String],
    },
    /// The host's own (the source API): redirects stay on the first origin.
    Trusted,
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
            guard: Arc::default(),
        })
    }

    /// What tells this service's own addresses and requests apart.
    pub fn guard(&self) -> &Arc<SelfGuard> {
        &self.guard
    }

    /// Sends on behalf of a connector, checking `allow` on every hop.
    pub async fn send(
        &self,
        allow: &AllowList,
        request: Request,
    ) -> Result<Response, OutboundError> {
        self.send_marked(allow, request, &[]).await
    }

    /// Like [`send`](Self::send); the headers named in `sensitive` are dropped,
    /// with the usual credential headers, when a redirect leaves the origin.
    pub async fn send_marked(
        &self,
        allow: &AllowList,
        request: Request,
        sensitive: &[String],
    ) -> Result<Response, OutboundError> {
        self.send_checked(Policy::Connector { allow, sensitive }, request)
            .await
    }

    /// Sends to an endpoint the operator configured (a source's API): no
    /// allow-list, and a redirect to another origin is refused, so that the
    /// host's credentials never leave the endpoint they were issued for.
    pub async fn send_trusted(&self, request: Request) -> Result<Response, OutboundError> {
        self.send_checked(Policy::Trusted, request).await
    }

    async fn send_checked(
        &self,
        policy: Policy<'_>,
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
        let mut headers = header_map(&request.headers)?;
        headers.append(
            reqwest::header::VIA,
            HeaderValue::from_str(&self.guard.via()).expect("ASCII pseudonym"),
        );
        let mut body = request.body;
        let mut url = Url::parse(&request.url)
            .map_err(|e| OutboundError::InvalidRequest(format!("bad URL: {e}")))?;
        let origin = url.origin();
        let mut credentials_dropped = false;
        let deadline = tokio::time::Instant::now() + timeout;
        for _ in 0..=MAX_REDIRECTS {
            let client = self.client_for(policy, &url)?;
            let public_only = std::ptr::eq(client, &self.public);
            tokio::time::timeout_at(deadline, self.check_target(&url, public_only))
                .await
                .map_err(|_| OutboundError::Timeout)??;
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
            if next.origin() != origin {
                match policy {
                    Policy::Trusted => {
                        return Err(OutboundError::Refused(format!(
                            "{} redirected to {}, another origin; the source API's credentials stay on {}",
                            without_query(&url),
                            without_query(&next),
                            origin.ascii_serialization()
                        )))
                    }
                    Policy::Connector { sensitive, .. } if !credentials_dropped => {
                        drop_credentials(&mut headers, sensitive);
                        credentials_dropped = true;
                    }
                    Policy::Connector { .. } => {}
                }
            }
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

    /// Refuses `url` when it leads to this service (its listen addresses) or,
    /// with `public_only`, when its name resolves only to private addresses: a
    /// clear, permanent refusal up front. The public client's resolver enforces
    /// the latter again at connection time (a DNS answer may change).
    async fn check_target(&self, url: &Url, public_only: bool) -> Result<(), OutboundError> {
        let (Some(host), Some(port)) = (url.host(), url.port_or_known_default()) else {
            return Ok(());
        };
        let (name, targets): (Option<&str>, Vec<SocketAddr>) = match host {
            url::Host::Ipv4(ip) => (None, vec![SocketAddr::new(ip.into(), port)]),
            url::Host::Ipv6(ip) => (None, vec![SocketAddr::new(ip.into(), port)]),
            // A failed lookup fails the request itself a moment later.
            url::Host::Domain(name) => (
                Some(name),
                tokio::net::lookup_host((name, port))
                    .await
                    .map(Iterator::collect)
                    .unwrap_or_default(),
            ),
        };
        if let Some(own) = targets.iter().find(|t| self.guard.is_own(**t)) {
            return Err(OutboundError::Refused(format!(
                "{own} is an address of this service; a connector may not call the service it runs in"
            )));
        }
        if let Some(name) = name.filter(|_| public_only) {
            if !targets.is_empty() && targets.iter().all(|t| is_private(&t.ip())) {
                return Err(OutboundError::Refused(format!(
                    "{name} resolves only to private addresses ({}); an operator may set outbound.allow_private_networks",
                    targets[0].ip()
                )));
            }
        }
        Ok(())
    }

    fn client_for(&self, policy: Policy<'_>, url: &Url) -> Result<&reqwest::Client, OutboundError> {
        let Policy::Connector { allow, .. } = policy else {
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

/// Whether a header carries a credential: the usual ones, any `*-api-key` or
/// name containing `token`, and those the connector marked.
pub fn is_sensitive(name: &str, marked: &[String]) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        name.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "api-key" | "x-api-key"
    ) || name.ends_with("-api-key")
        || name.contains("token")
        || name.contains("secret")
        || marked.iter().any(|m| m.eq_ignore_ascii_case(&name))
}

/// Removes the credentials from `headers` before a cross-origin hop.
fn drop_credentials(headers: &mut HeaderMap, marked: &[String]) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_sensitive(name.as_str(), marked))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// A URL for messages: query strings may carry tokens.
fn without_query(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
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

#[cfg(test)]
mod tests {
    //! Against small real servers on 127.0.0.1: redirects (same and other
    //! origin), a name resolving to loopback, size and time limits, the
    //! service's own address.

    use std::sync::Mutex;

    use axum::extract::{Query, State};
    use axum::http::{HeaderMap as AxumHeaders, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::get;

    use super::*;

    /// Headers of every request a fake received.
    type Seen = Arc<Mutex<Vec<AxumHeaders>>>;

    struct Fake {
        addr: SocketAddr,
        seen: Seen,
    }

    impl Fake {
        fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr)
        }
        fn last(&self) -> AxumHeaders {
            self.seen
                .lock()
                .unwrap()
                .last()
                .cloned()
                .expect("a request")
        }
        fn hits(&self) -> usize {
            self.seen.lock().unwrap().len()
        }
    }

    #[derive(serde::Deserialize)]
    struct To {
        to: String,
        #[serde(default)]
        status: Option<u16>,
    }

    async fn fake() -> Fake {
        let seen: Seen = Arc::default();
        let app = axum::Router::new()
            .route("/echo", get(|| async { "ok" }).post(|| async { "ok" }))
            .route(
                "/redirect",
                get(|Query(to): Query<To>| async move {
                    let status = StatusCode::from_u16(to.status.unwrap_or(302)).unwrap();
                    (status, [("location", to.to)]).into_response()
                }),
            )
            .route("/big", get(|| async { vec![b'x'; 5000] }))
            .route(
                "/stream",
                get(|| async {
                    let chunks = futures::stream::iter(
                        (0..10)
                            .map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'y'; 500]))),
                    );
                    axum::body::Body::from_stream(chunks)
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    "late"
                }),
            )
            .layer(axum::middleware::from_fn_with_state(
                seen.clone(),
                |State(seen): State<Seen>,
                 req: axum::extract::Request,
                 next: axum::middleware::Next| async move {
                    seen.lock().unwrap().push(req.headers().clone());
                    next.run(req).await
                },
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Fake { addr, seen }
    }

    fn client(edit: impl FnOnce(&mut OutboundConfig)) -> OutboundClient {
        crate::install_crypto_provider();
        let mut config = OutboundConfig::default();
        edit(&mut config);
        OutboundClient::new(&config).unwrap()
    }

    fn get_req(url: String, headers: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            url,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: None,
            timeout: None,
        }
    }

    fn allow(entries: &[String]) -> AllowList {
        AllowList::parse(entries).unwrap()
    }

    const CREDENTIALS: &[(&str, &str)] = &[
        ("Authorization", "Bearer jwt-secret"),
        ("X-Api-Key", "key-secret"),
        ("Grist-Api-Key", "grist-secret"),
        ("X-Refresh-Token", "refresh-secret"),
        ("Cookie", "session=cookie-secret"),
        ("X-Session", "marked-secret"),
        ("X-Trace", "kept"),
    ];

    #[tokio::test]
    async fn credentials_are_dropped_on_a_cross_origin_redirect_only() {
        let (a, b) = (fake().await, fake().await);
        let client = client(|_| {});
        let list = allow(&[a.addr.to_string(), b.addr.to_string()]);
        let marked = vec!["x-session".to_string()];

        // Same origin: everything follows.
        let same = a.url(&format!("/redirect?to={}", a.url("/echo")));
        let response = client
            .send_marked(&list, get_req(same, CREDENTIALS), &marked)
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(a.last()["authorization"], "Bearer jwt-secret");
        assert_eq!(a.last()["x-session"], "marked-secret");

        // Another port is another origin: only the harmless header follows.
        let cross = a.url(&format!("/redirect?to={}&status=307", b.url("/echo")));
        let response = client
            .send_marked(&list, get_req(cross, CREDENTIALS), &marked)
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        let landed = b.last();
        assert_eq!(landed["x-trace"], "kept");
        for (name, _) in &CREDENTIALS[..6] {
            assert!(landed.get(*name).is_none(), "{name} followed the redirect");
        }
        assert!(is_sensitive("Private-Token", &[]));
        assert!(!is_sensitive("Content-Type", &[]));
    }

    #[tokio::test]
    async fn each_redirect_hop_is_checked_against_the_allow_list() {
        let (a, b) = (fake().await, fake().await);
        let client = client(|_| {});
        let only_a = allow(&[a.addr.to_string()]);
        let url = a.url(&format!("/redirect?to={}", b.url("/echo")));
        let err = client.send(&only_a, get_req(url, &[])).await.unwrap_err();
        assert_eq!(err, OutboundError::NotAllowed(b.addr.to_string()));
        assert_eq!(b.hits(), 0, "the unlisted host was never contacted");
    }

    #[tokio::test]
    async fn trusted_requests_never_leave_their_origin() {
        let (a, b) = (fake().await, fake().await);
        let client = client(|_| {});
        let url = a.url(&format!("/redirect?to={}", b.url("/echo?x=1")));
        let err = client
            .send_trusted(get_req(url, &[("authorization", "Bearer jwt-secret")]))
            .await
            .unwrap_err();
        let OutboundError::Refused(why) = &err else {
            panic!("{err:?}")
        };
        assert!(why.contains("another origin"), "{why}");
        assert_eq!(b.hits(), 0);
        // Same origin is followed.
        let same = a.url(&format!("/redirect?to={}", a.url("/echo")));
        assert_eq!(
            client
                .send_trusted(get_req(same, &[]))
                .await
                .unwrap()
                .status,
            200
        );
    }

    #[tokio::test]
    async fn a_name_resolving_to_a_private_address_is_refused() {
        let a = fake().await;
        let list = allow(&["localhost".to_string()]);
        let url = format!("http://localhost:{}/echo", a.addr.port());
        let err = client(|_| {})
            .send(&list, get_req(url.clone(), &[]))
            .await
            .unwrap_err();
        let OutboundError::Refused(why) = &err else {
            panic!("{err:?}")
        };
        assert!(why.contains("resolves only to private addresses"), "{why}");
        assert_eq!(a.hits(), 0);
        // The operator's switch lets it through.
        let open = client(|c| c.allow_private_networks = true);
        assert_eq!(
            open.send(&list, get_req(url, &[])).await.unwrap().status,
            200
        );
        // A wildcard does not grant a private IP literal either.
        let err = client(|_| {})
            .send(&allow(&["*".to_string()]), get_req(a.url("/echo"), &[]))
            .await
            .unwrap_err();
        assert!(matches!(err, OutboundError::NotAllowed(_)), "{err:?}");
    }

    #[tokio::test]
    async fn responses_larger_than_the_cap_are_refused() {
        let a = fake().await;
        let client = client(|c| c.max_response_bytes = 1000);
        let list = allow(&[a.addr.to_string()]);
        for path in ["/big", "/stream"] {
            let err = client
                .send(&list, get_req(a.url(path), &[]))
                .await
                .unwrap_err();
            assert_eq!(err, OutboundError::TooLarge(1000), "{path}");
        }
    }

    #[tokio::test]
    async fn a_connector_cannot_ask_for_more_than_max_timeout() {
        let a = fake().await;
        let client = client(|c| c.max_timeout = Duration::from_millis(300));
        let list = allow(&[a.addr.to_string()]);
        let mut request = get_req(a.url("/slow"), &[]);
        request.timeout = Some(Duration::from_secs(60));
        let started = std::time::Instant::now();
        let err = client.send(&list, request).await.unwrap_err();
        assert_eq!(err, OutboundError::Timeout);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn the_service_itself_is_out_of_reach_and_marks_its_requests() {
        let (own, other) = (fake().await, fake().await);
        let client = client(|c| c.allow_private_networks = true);
        client.guard().add_listen_address(own.addr);
        let list = allow(&[
            "*".to_string(),
            own.addr.to_string(),
            "localhost".to_string(),
        ]);
        for url in [
            own.url("/admin/api/connections"),
            format!("http://localhost:{}/admin/api/connections", own.addr.port()),
            other.url(&format!("/redirect?to={}", own.url("/admin/api/state"))),
        ] {
            let err = client
                .send(&list, get_req(url.clone(), &[]))
                .await
                .unwrap_err();
            assert!(
                matches!(&err, OutboundError::Refused(w) if w.contains("this service")),
                "{url}: {err:?}"
            );
        }
        assert_eq!(own.hits(), 0);
        // Requests elsewhere carry the loop-detection pseudonym.
        client
            .send(&list, get_req(other.url("/echo"), &[]))
            .await
            .unwrap();
        assert!(client.guard().sent_by_us(&other.last()));
    }
}
