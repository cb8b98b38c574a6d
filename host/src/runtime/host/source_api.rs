//! `recoco:connector/source-api`: the Recoco API of the connection's source,
//! authenticated by the host.

use std::time::Instant;

use crate::runtime::bindings::recoco::connector::source_api::Host;
use crate::runtime::bindings::types::{HttpError, HttpResponse};
use crate::runtime::state::StoreState;
use crate::source_api::SourceApiError;

impl Host for StoreState {
    async fn request(
        &mut self,
        method: String,
        path: String,
        body: Option<String>,
    ) -> wasmtime::Result<Result<HttpResponse, HttpError>> {
        let scope = self.enter()?;
        if let Some(refusal) = self.count_request() {
            return Ok(Err(refusal));
        }
        let started = Instant::now();
        let result = self
            .services
            .source_api
            .request(&scope.source, &method, &path, body)
            .await;
        tracing::debug!(
            connection = %scope.connection,
            %method,
            path = %path.split('?').next().unwrap_or(&path),
            status = result.as_ref().map(|r| r.status).ok(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "source_api.request"
        );
        Ok(match result {
            Ok(r) => Ok(HttpResponse {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Err(SourceApiError::Auth(why)) => Err(HttpError::Auth(scope.scrubber.scrub(&why))),
            Err(SourceApiError::Outbound(err)) => Err(super::http::to_wit(err)),
        })
    }
}
