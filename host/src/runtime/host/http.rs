//! `recoco:connector/http`: outbound requests checked against the connection's
//! allowed hosts.

use std::time::{Duration, Instant};

use crate::outbound::{OutboundError, Request};
use crate::runtime::bindings::recoco::connector::http::Host;
use crate::runtime::bindings::types::{HttpError, HttpRequest, HttpResponse};
use crate::runtime::state::StoreState;

impl Host for StoreState {
    async fn send(
        &mut self,
        request: HttpRequest,
    ) -> wasmtime::Result<Result<HttpResponse, HttpError>> {
        let scope = self.enter()?;
        if let Some(refusal) = self.count_request() {
            return Ok(Err(refusal));
        }
        let started = Instant::now();
        self.services
            .flow
            .acquire_request(scope.connection_id)
            .await;
        let url = request.url.clone();
        let result = self
            .services
            .outbound
            .send_marked(
                &scope.allow,
                Request {
                    method: request.method,
                    url: request.url,
                    headers: request.headers,
                    body: request.body,
                    timeout: request
                        .timeout_ms
                        .map(|ms| Duration::from_millis(ms.into())),
                },
                &request.sensitive_headers,
            )
            .await;
        tracing::debug!(
            connection = %scope.connection,
            url = %url_without_query(&url),
            status = result.as_ref().map(|r| r.status).ok(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "outbound.request"
        );
        Ok(result
            .map(|r| HttpResponse {
                status: r.status,
                headers: r.headers,
                body: r.body,
            })
            .map_err(to_wit))
    }
}

impl StoreState {
    /// Counts an outbound request; the refusal once the invocation's quota is spent.
    pub(super) fn count_request(&mut self) -> Option<HttpError> {
        self.requests += 1;
        (self.requests > self.quotas.max_requests).then(|| {
            HttpError::QuotaExceeded(format!(
                "a connector may send {} requests per invocation",
                self.quotas.max_requests
            ))
        })
    }
}

/// Query strings may carry tokens; keep them out of logs.
fn url_without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

pub(super) fn to_wit(err: OutboundError) -> HttpError {
    match err {
        OutboundError::NotAllowed(entry) => HttpError::NotAllowed(entry),
        OutboundError::Timeout => HttpError::Timeout,
        OutboundError::Connection(why) => HttpError::Connection(why),
        OutboundError::TooLarge(cap) => HttpError::TooLarge(cap),
        OutboundError::InvalidRequest(why) => HttpError::InvalidRequest(why),
        OutboundError::Refused(why) => HttpError::Refused(why),
    }
}
