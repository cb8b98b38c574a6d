//! Outbound HTTP through the host's `http` import: a small request builder and
//! the response it returns. The host checks each URL against the connection's
//! allowed hosts and applies its own time and size limits; a refusal comes back
//! as an [`HttpError`], not a trap.
//!
//! ```no_run
//! use std::time::Duration;
//! use recoco_connector_sdk::http::Request;
//!
//! # fn main() -> Result<(), recoco_connector_sdk::Error> {
//! let response = Request::post("https://grist.example.org/api/docs/abc/tables")
//!     .bearer_auth("api-key")
//!     .json(&serde_json::json!({"tables": []}))
//!     .timeout(Duration::from_secs(10))
//!     .send()?
//!     .ensure_success("create the Grist tables")?;
//! let created: serde_json::Value = response.json()?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::bindings::recoco::connector::types as wit;
use crate::Error;

/// Why the host did not obtain a response (the WIT `http-error`).
pub use wit::HttpError;

/// An outbound request, built step by step and sent with [`Request::send`].
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    timeout: Option<Duration>,
    /// Further header names dropped on a cross-origin redirect.
    sensitive: Vec<String>,
    /// A failure while building (a body that does not serialize), reported by `send`.
    error: Option<String>,
}

impl Request {
    /// A request with any method (`GET`, `POST`, `PUT`, `PATCH`, `DELETE`, `HEAD`).
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
            timeout: None,
            sensitive: Vec::new(),
            error: None,
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// A `POST` request.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }

    /// A `PUT` request.
    pub fn put(url: impl Into<String>) -> Self {
        Self::new("PUT", url)
    }

    /// A `PATCH` request.
    pub fn patch(url: impl Into<String>) -> Self {
        Self::new("PATCH", url)
    }

    /// A `DELETE` request.
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new("DELETE", url)
    }

    /// Adds a header (`Host` and `Content-Length` are the host's business).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds a header that carries a credential under a name the host would not
    /// recognise as one (`authorization`, `cookie`, `x-api-key`, `*-api-key` and
    /// names containing `token` already are): the host drops it if a redirect
    /// leads to another origin, so a credential never follows a redirect off
    /// the server it was meant for.
    pub fn sensitive_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.sensitive.push(name.clone());
        self.header(name, value)
    }

    /// Names of the headers marked with [`sensitive_header`](Self::sensitive_header).
    pub fn sensitive_headers(&self) -> &[String] {
        &self.sensitive
    }

    /// Adds `Authorization: Bearer <token>`.
    pub fn bearer_auth(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// Sets the raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Sets a JSON body and, unless already set, `content-type: application/json`.
    /// A value that cannot be serialized makes [`send`](Self::send) fail.
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => self.body = Some(body),
            Err(err) => self.error = Some(format!("cannot serialize the JSON body: {err}")),
        }
        if self.header_value("content-type").is_none() {
            self = self.header("content-type", "application/json");
        }
        self
    }

    /// Per-request time limit (the host applies its own default and maximum).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The method.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The headers, in the order added.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body, if any.
    pub fn body_bytes(&self) -> Option<&[u8]> {
        self.body.as_deref()
    }

    /// `"POST https://example.org/path"`, without the query string (which may hold
    /// credentials), for messages.
    pub fn describe(&self) -> String {
        let url = self.url.split(['?', '#']).next().unwrap_or_default();
        format!("{} {url}", self.method)
    }

    /// Sends the request. Any status is a response; timeouts, connection failures
    /// and refusals are errors classified by [`Error::from_http_error`].
    pub fn send(self) -> Result<Response, Error> {
        let what = self.describe();
        self.send_raw()
            .map_err(|err| Error::from_http_error(&what, err))
    }

    /// Like [`send`](Self::send), but returns the host's `http-error` unchanged,
    /// for connectors that treat its cases differently.
    pub fn send_raw(self) -> Result<Response, HttpError> {
        if let Some(error) = self.error {
            return Err(HttpError::InvalidRequest(error));
        }
        let request = wit::HttpRequest {
            method: self.method,
            url: self.url,
            headers: self.headers,
            body: self.body,
            timeout_ms: self
                .timeout
                .map(|t| u32::try_from(t.as_millis()).unwrap_or(u32::MAX)),
            sensitive_headers: self.sensitive,
        };
        crate::host::http_send(&request).map(Response::from)
    }
}

/// A response, whatever its status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// Header names (lower case, as the host gives them) and values.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response built by hand, for connectors' unit tests.
    pub fn new(status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.into(),
        }
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Parses the body as JSON. A mismatch is a permanent error naming the field
    /// (`results[3].commune.insee`) and quoting the start of the body.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let deserializer = &mut serde_json::Deserializer::from_slice(&self.body);
        serde_path_to_error::deserialize(deserializer).map_err(|err| {
            Error::permanent(format!(
                "unexpected response body{}: {} (body: {})",
                at_path(err.path()),
                err.inner(),
                crate::error::body_excerpt(&self.body)
            ))
        })
    }

    /// Returns the response if its status is 2xx, else the error that
    /// [`Error::from_response`] makes of it; `what` names the call.
    pub fn ensure_success(self, what: &str) -> Result<Self, Error> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(Error::from_response(what, &self))
        }
    }
}

impl From<wit::HttpResponse> for Response {
    fn from(response: wit::HttpResponse) -> Self {
        Self {
            status: response.status,
            headers: response.headers,
            body: response.body,
        }
    }
}

/// `" at `a.b[2]`"`, or nothing at the document's root.
pub(crate) fn at_path(path: &serde_path_to_error::Path) -> String {
    let path = path.to_string();
    if path == "." {
        String::new()
    } else {
        format!(" at `{path}`")
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_json_requests() {
        let request = Request::post("https://example.org/hook?token=secret")
            .header("X-Trace", "1")
            .json(&serde_json::json!({"a": 1}))
            .timeout(Duration::from_secs(5));
        assert_eq!(
            request.header_value("content-type"),
            Some("application/json")
        );
        assert_eq!(request.header_value("x-trace"), Some("1"));
        assert_eq!(request.body_bytes(), Some(&br#"{"a":1}"#[..]));
        assert_eq!(request.describe(), "POST https://example.org/hook");
    }

    #[test]
    fn marked_headers_are_listed_as_sensitive() {
        let request = Request::get("https://example.org")
            .header("x-trace", "1")
            .sensitive_header("X-Grist-Session", "s3cret");
        assert_eq!(request.header_value("x-grist-session"), Some("s3cret"));
        assert_eq!(request.sensitive_headers(), ["X-Grist-Session"]);
    }

    #[test]
    fn explicit_content_type_wins() {
        let request = Request::put("https://example.org")
            .header("Content-Type", "application/merge-patch+json")
            .json(&1);
        assert_eq!(request.headers().len(), 1);
    }

    #[test]
    fn json_errors_name_the_field() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Item {
            id: u64,
        }
        let response = Response {
            status: 200,
            headers: vec![],
            body: br#"{"items": [{"id": 1}, {"id": "two"}]}"#.to_vec(),
        };
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Items {
            items: Vec<Item>,
        }
        let err = response.json::<Items>().unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.message().contains("at `items[1].id`"), "{err}");
    }
}
