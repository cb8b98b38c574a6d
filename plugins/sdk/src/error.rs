//! The error a connector returns: a message plus whether retrying can help, as
//! the WIT `error` record says. Owns the classification of remote failures (HTTP
//! statuses, `Retry-After`, host `http-error`s); not the retry policy itself,
//! which is the host's (backoff, caps, dead letters).

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::bindings::recoco::connector::types as wit;
use crate::http::{HttpError, Response};

/// Longest excerpt of a response body kept in an error message, in characters.
pub const BODY_EXCERPT_CHARS: usize = 300;

/// Why an invocation or a call failed, and whether the host should try again.
///
/// ```
/// use std::time::Duration;
/// use recoco_connector_sdk::Error;
///
/// let err = Error::retryable("grist is down").with_retry_after(Duration::from_secs(30));
/// assert!(err.is_retryable());
/// assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
/// assert!(!Error::permanent("bad config").is_retryable());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    retryable: bool,
    message: String,
    retry_after: Option<Duration>,
}

impl Error {
    /// A failure that may go away (network, 429, 5xx): the host retries the job.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            retryable: true,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A failure that retrying cannot fix (bad configuration, a 4xx caused by our
    /// request, an unexpected payload): the job fails at once.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            retryable: false,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Asks the host not to retry before `after` (only meaningful when retryable).
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Prefixes the message with what was being done: `"{what}: {message}"`.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    /// Whether the host should try again.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The human-readable reason, recorded with the attempt.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The earliest time to try again, if the failure said so.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Classifies a response that is not a success; `what` names the call
    /// (`"POST https://example.org/hook"`), so the recorded error says which.
    ///
    /// 429 and 5xx are retryable and honour `Retry-After` (seconds or HTTP-date),
    /// 408 is retryable, other statuses are permanent. The message carries a short
    /// excerpt of the body (at most [`BODY_EXCERPT_CHARS`]), which usually says why.
    pub fn from_response(what: &str, response: &Response) -> Self {
        let status = response.status;
        let mut message = format!("{what}: HTTP {status}");
        if let Some(reason) = reason(status) {
            message.push_str(&format!(" ({reason})"));
        }
        if (300..400).contains(&status) {
            if let Some(location) = response.header("location") {
                message.push_str(&format!(", redirected to {location}"));
            }
        }
        let excerpt = body_excerpt(&response.body);
        if !excerpt.is_empty() {
            message.push_str(": ");
            message.push_str(&excerpt);
        }
        match status {
            429 | 500..=599 => {
                let error = Self::retryable(message);
                match response.header("retry-after").and_then(parse_retry_after) {
                    Some(after) => error.with_retry_after(after),
                    None => error,
                }
            }
            408 => Self::retryable(message),
            _ => Self::permanent(message),
        }
    }

    /// Classifies a host `http-error` for the call `what`: timeouts and connection
    /// failures are retryable; a refused host, an invalid request, a too large
    /// response and refused source credentials are permanent.
    pub fn from_http_error(what: &str, error: HttpError) -> Self {
        Self::from(error).context(what)
    }
}

impl From<HttpError> for Error {
    fn from(error: HttpError) -> Self {
        match error {
            HttpError::Timeout => Self::retryable("timed out"),
            HttpError::Connection(detail) => Self::retryable(format!("connection failed: {detail}")),
            HttpError::NotAllowed(entry) => Self::permanent(format!(
                "host not allowed for this connection; an operator may add `{entry}` to its allowed_hosts"
            )),
            HttpError::InvalidRequest(detail) => Self::permanent(format!("invalid request: {detail}")),
            HttpError::TooLarge(limit) => Self::permanent(format!(
                "response larger than the host's limit of {limit} bytes"
            )),
            HttpError::Auth(detail) => Self::permanent(format!(
                "the Recoco API refused the source's credentials ({detail}); check the source's \
                 username and password"
            )),
            HttpError::Refused(detail) => Self::permanent(format!("refused by the host: {detail}")),
            HttpError::QuotaExceeded(detail) => {
                Self::permanent(format!("quota exceeded: {detail}"))
            }
        }
    }
}

impl From<Error> for wit::Error {
    fn from(error: Error) -> Self {
        Self {
            retryable: error.retryable,
            message: error.message,
            retry_after_ms: error
                .retry_after
                .map(|after| u64::try_from(after.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

impl From<wit::Error> for Error {
    fn from(error: wit::Error) -> Self {
        Self {
            retryable: error.retryable,
            message: error.message,
            retry_after: error.retry_after_ms.map(Duration::from_millis),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Parses a `Retry-After` value: delay in seconds, or an HTTP-date (a date in the
/// past means "now").
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The start of `body` as one line of text, at most [`BODY_EXCERPT_CHARS`] long.
pub fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut excerpt = String::new();
    for (count, word) in text.split_whitespace().enumerate() {
        if count > 0 {
            excerpt.push(' ');
        }
        excerpt.push_str(word);
        if excerpt.chars().count() > BODY_EXCERPT_CHARS {
            break;
        }
    }
    if excerpt.chars().count() > BODY_EXCERPT_CHARS {
        excerpt = excerpt.chars().take(BODY_EXCERPT_CHARS - 1).collect();
        excerpt.push('…');
    }
    excerpt
}

fn reason(status: u16) -> Option<&'static str> {
    Some(match status {
        400 => "bad request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not found",
        405 => "method not allowed",
        408 => "request timeout",
        409 => "conflict",
        410 => "gone",
        413 => "payload too large",
        415 => "unsupported media type",
        422 => "unprocessable content",
        429 => "too many requests",
        500 => "internal server error",
        502 => "bad gateway",
        503 => "service unavailable",
        504 => "gateway timeout",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response::new(status, headers, body)
    }

    #[test]
    fn rate_limits_and_server_errors_are_retryable_with_retry_after() {
        let err = Error::from_response("GET /x/", &response(429, &[("retry-after", "120")], ""));
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
        assert_eq!(err.message(), "GET /x/: HTTP 429 (too many requests)");

        let err = Error::from_response("GET /x/", &response(503, &[], "down for maintenance"));
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), None);
        assert!(err
            .message()
            .ends_with("HTTP 503 (service unavailable): down for maintenance"));

        assert!(Error::from_response("x", &response(408, &[], "")).is_retryable());
    }

    #[test]
    fn retry_after_accepts_http_dates() {
        let future = SystemTime::now() + Duration::from_secs(3600);
        let header = httpdate::fmt_http_date(future);
        let err = Error::from_response("x", &response(503, &[("retry-after", &header)], ""));
        let after = err.retry_after().unwrap();
        assert!(after > Duration::from_secs(3500) && after <= Duration::from_secs(3600));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn client_errors_are_permanent_and_say_why() {
        let body = r#"{"recommendation": ["Clé primaire invalide"]}"#;
        let err = Error::from_response("POST /resource-addons/", &response(400, &[], body));
        assert!(!err.is_retryable());
        assert_eq!(
            err.message(),
            format!("POST /resource-addons/: HTTP 400 (bad request): {body}")
        );
    }

    #[test]
    fn excerpts_are_short_and_on_one_line() {
        let long = "é\n".repeat(1000);
        let excerpt = body_excerpt(long.as_bytes());
        assert_eq!(excerpt.chars().count(), BODY_EXCERPT_CHARS);
        assert!(excerpt.ends_with('…') && !excerpt.contains('\n'));
        assert_eq!(body_excerpt(b"  short \r\n body "), "short body");
    }

    #[test]
    fn redirects_name_their_target() {
        let err = Error::from_response(
            "POST /projects",
            &response(301, &[("location", "/api/projects/")], ""),
        );
        assert!(!err.is_retryable());
        assert!(
            err.message().contains("redirected to /api/projects/"),
            "{err}"
        );
    }

    #[test]
    fn http_errors_are_classified() {
        assert!(Error::from(HttpError::Timeout).is_retryable());
        assert!(Error::from(HttpError::Connection("refused".into())).is_retryable());
        assert!(!Error::from(HttpError::NotAllowed("example.org".into())).is_retryable());
        assert!(!Error::from(HttpError::InvalidRequest("bad".into())).is_retryable());
        assert!(!Error::from(HttpError::TooLarge(10)).is_retryable());
        let quota = Error::from(HttpError::QuotaExceeded("100 requests".into()));
        assert!(!quota.is_retryable());
        assert!(quota.message().contains("quota exceeded: 100 requests"));
        assert!(!Error::from(HttpError::Refused("own address".into())).is_retryable());
        let auth = Error::from_http_error("GET /projects/", HttpError::Auth("401".into()));
        assert!(!auth.is_retryable());
        assert!(auth
            .message()
            .starts_with("GET /projects/: the Recoco API refused"));
    }

    #[test]
    fn converts_to_and_from_the_wit_record() {
        let wit: wit::Error = Error::retryable("x")
            .with_retry_after(Duration::from_millis(1500))
            .into();
        assert_eq!(wit.retry_after_ms, Some(1500));
        let back = Error::from(wit);
        assert_eq!(back.retry_after(), Some(Duration::from_millis(1500)));
    }
}
