//! The hub's API (`lescommuns-api.md`): create (an upsert on `externalId`) and
//! update projets, read the services proposed for a projet. Owns the requests
//! and the reading of the hub's answers and errors (NestJS shapes); the
//! decisions (when to create, what to do with services) are the callers'.

use recoco_connector_sdk::http::{Request, Response};
use recoco_connector_sdk::Error;
use serde::Deserialize;

use crate::mapping::ProjetPayload;

/// The hub, as one connection sees it.
pub struct Hub<'a> {
    base: String,
    api_key: &'a str,
}

/// How a `PATCH` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patched {
    /// The projet was updated.
    Updated,
    /// The hub has no projet with this id (deleted on its side).
    NotFound,
}

impl<'a> Hub<'a> {
    /// A client for the hub at `base` (no trailing slash), authenticated by `api_key`.
    pub fn new(base: String, api_key: &'a str) -> Self {
        Self { base, api_key }
    }

    /// `POST /projets`: creates the projet, or updates the one with the same
    /// `externalId` (the hub's upsert); returns the hub id either way.
    pub fn create(&self, payload: &ProjetPayload) -> Result<String, Error> {
        check_size(payload)?;
        let request = Request::post(format!("{}/projets", self.base))
            .bearer_auth(self.api_key)
            .json(payload);
        let what = request.describe();
        let response = request.send()?;
        if !response.is_success() {
            return Err(hub_error(&what, &response));
        }
        parse_created(&response.body).map_err(|err| err.context(&what))
    }

    /// `PATCH /projets/{id}`: writes the keys present in `payload`.
    pub fn update(&self, id: &str, payload: &ProjetPayload) -> Result<Patched, Error> {
        check_size(payload)?;
        let request = Request::patch(format!("{}/projets/{}", self.base, checked_id(id)?))
            .bearer_auth(self.api_key)
            .json(payload);
        let what = request.describe();
        let response = request.send()?;
        match response.status {
            404 => Ok(Patched::NotFound),
            _ if response.is_success() => Ok(Patched::Updated),
            _ => Err(hub_error(&what, &response)),
        }
    }

    /// `GET /services/project/{id}?idType=communId`: the services the hub
    /// proposes for the projet, as the hub's own objects. The route is public:
    /// the API key is not sent where it is not needed.
    pub fn services(&self, id: &str) -> Result<Vec<serde_json::Value>, Error> {
        let url = format!(
            "{}/services/project/{}?idType=communId",
            self.base,
            checked_id(id)?
        );
        let request = Request::get(url).header("accept", "application/json");
        let what = request.describe();
        let response = request.send()?;
        if !response.is_success() {
            let error = hub_error(&what, &response);
            return Err(if response.status == 404 {
                Error::permanent(format!(
                    "{}; the projet was deleted in the hub: run the task share-project to share \
                     the project again",
                    error.message()
                ))
            } else {
                error
            });
        }
        parse_services(&response.body).map_err(|err| err.context(&what))
    }
}

/// The hub's JSON body limit (100 kB). It answers a larger body with a 500,
/// which would otherwise be retried as a server error though it can never pass.
pub const MAX_BODY_BYTES: usize = 100 * 1000;

/// Refuses, before sending, a payload the hub would refuse: permanent.
fn check_size(payload: &ProjetPayload) -> Result<(), Error> {
    let len = serde_json::to_vec(payload).map_or(0, |b| b.len());
    if len > MAX_BODY_BYTES {
        return Err(Error::permanent(format!(
            "the projet of project {} is {len} bytes of JSON, over the hub's {} kB limit (the hub \
             answers such bodies with a 500); shorten the project's description in Recoco",
            payload.external_id,
            MAX_BODY_BYTES / 1000
        )));
    }
    Ok(())
}

/// A hub id as it may go into a path: hub ids are UUIDs, anything else in the
/// state is a corruption that must not reach another route.
fn checked_id(id: &str) -> Result<&str, Error> {
    let ok =
        !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    if ok {
        Ok(id)
    } else {
        Err(Error::permanent(format!(
            "the stored hub id `{id}` is not a UUID"
        )))
    }
}

/// Reads `{"id": "<uuid>"}`, the answer to a create.
pub fn parse_created(body: &[u8]) -> Result<String, Error> {
    #[derive(Deserialize)]
    struct Created {
        id: String,
    }
    let created: Created = serde_json::from_slice(body).map_err(|err| {
        Error::permanent(format!(
            "the hub's answer has no projet id: {err} (body: {})",
            recoco_connector_sdk::error::body_excerpt(body)
        ))
    })?;
    checked_id(&created.id)?;
    Ok(created.id)
}

/// Reads the services array. Each service must be an object with a string
/// `id` (a UUID, not an integer as the original assumed) and a `name`; the
/// objects are kept whole, unknown keys included, to be forwarded as they are.
pub fn parse_services(body: &[u8]) -> Result<Vec<serde_json::Value>, Error> {
    let services: Vec<serde_json::Value> = serde_json::from_slice(body).map_err(|err| {
        Error::permanent(format!(
            "the hub's services answer is not a JSON array: {err} (body: {})",
            recoco_connector_sdk::error::body_excerpt(body)
        ))
    })?;
    for (index, service) in services.iter().enumerate() {
        let has_id = service.get("id").is_some_and(serde_json::Value::is_string);
        let has_name = service
            .get("name")
            .is_some_and(serde_json::Value::is_string);
        if !(has_id && has_name) {
            return Err(Error::permanent(format!(
                "service [{index}] of the hub's answer lacks a string `id` or `name`"
            )));
        }
    }
    Ok(services)
}

/// The error for a hub answer that is not a success: 429 and 5xx retryable
/// (honouring `Retry-After`), other statuses permanent; the message carries the
/// hub's own `message` (a string, or an array of validation messages).
pub fn hub_error(what: &str, response: &Response) -> Error {
    let classified = Error::from_response(what, response);
    let Some(message) = hub_message(&response.body) else {
        return classified;
    };
    let mut text = format!("{what}: HTTP {}: {message}", response.status);
    if response.status == 401 {
        text.push_str(" (check the connection's api_key)");
    }
    if classified.is_retryable() {
        let error = Error::retryable(text);
        match classified.retry_after() {
            Some(after) => error.with_retry_after(after),
            None => error,
        }
    } else {
        Error::permanent(text)
    }
}

/// `message` of a NestJS error body, arrays joined with `; `.
fn hub_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    match value.get("message")? {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Array(items) => Some(
            items
                .iter()
                .map(|item| match item {
                    serde_json::Value::String(text) => text.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join("; "),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response::new(status, headers, body)
    }

    #[test]
    fn validation_errors_are_permanent_and_quote_the_hub() {
        let body = r#"{"statusCode": 400, "message": ["nom should not be empty", "property foo should not exist"], "error": "Bad Request"}"#;
        let err = hub_error("POST https://hub/projets", &response(400, &[], body));
        assert!(!err.is_retryable());
        assert_eq!(
            err.message(),
            "POST https://hub/projets: HTTP 400: nom should not be empty; property foo should not exist"
        );
        let body = r#"{"statusCode": 400, "message": "Cannot find a corresponding Commune for this code 99999", "error": "Bad Request"}"#;
        let err = hub_error("POST https://hub/projets", &response(400, &[], body));
        assert!(err
            .message()
            .ends_with("HTTP 400: Cannot find a corresponding Commune for this code 99999"));
    }

    #[test]
    fn a_refused_key_says_where_to_look_without_the_key() {
        let body = r#"{"statusCode": 401, "message": "Invalid API key", "error": "Unauthorized"}"#;
        let err = hub_error("PATCH https://hub/projets/x", &response(401, &[], body));
        assert!(!err.is_retryable());
        assert!(err
            .message()
            .contains("Invalid API key (check the connection's api_key)"));
    }

    #[test]
    fn throttling_and_server_errors_are_retryable() {
        let body = r#"{"statusCode": 429, "message": "ThrottlerException: Too Many Requests"}"#;
        let err = hub_error(
            "GET https://hub/x",
            &response(429, &[("retry-after", "30")], body),
        );
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
        assert!(err.message().contains("ThrottlerException"));
        let body = r#"{"statusCode": 500, "errorInstanceId": "0197", "timestamp": "2026-01-01T00:00:00Z", "path": "/projets", "message": "Internal server error"}"#;
        let err = hub_error("POST https://hub/projets", &response(500, &[], body));
        assert!(err.is_retryable());
        assert!(err.message().ends_with("HTTP 500: Internal server error"));
        // Not a NestJS body (a proxy's page): the SDK's classification and excerpt.
        let err = hub_error(
            "GET https://hub/x",
            &response(502, &[], "<html>Bad gateway</html>"),
        );
        assert!(err.is_retryable());
        assert!(
            err.message().contains("HTTP 502 (bad gateway): <html>"),
            "{err}"
        );
    }

    #[test]
    fn services_keep_the_hubs_objects_whole() {
        let body = include_str!("../../../tests/fixtures/lescommuns-services.json");
        let services = parse_services(body.as_bytes()).unwrap();
        assert_eq!(services.len(), 2);
        assert_eq!(services[0]["id"], "0197c3a1-5b2e-7d40-9f11-2a6b8c0d4e51");
        assert_eq!(services[0]["sousTitre"], "Outil d'auto-diagnostic");
        assert_eq!(services[1]["extraFields"][0]["name"], "surface");
        // Unknown keys are forwarded too.
        assert!(services[0].get("dataScopes").is_some());
        assert_eq!(
            parse_services(b"[]").unwrap(),
            Vec::<serde_json::Value>::new()
        );
    }

    #[test]
    fn malformed_services_are_refused() {
        let err = parse_services(br#"{"services": []}"#).unwrap_err();
        assert!(err.message().contains("not a JSON array"), "{err}");
        let err =
            parse_services(br#"[{"id": "a", "name": "A"}, {"id": 1, "name": "B"}]"#).unwrap_err();
        assert!(err.message().contains("service [1]"), "{err}");
    }

    #[test]
    fn a_payload_over_the_hubs_limit_is_refused_before_sending() {
        let project: recoco_connector_sdk::recoco::Project =
            serde_json::from_str(include_str!("../../../tests/fixtures/project-detail.json"))
                .unwrap();
        let mut payload = crate::mapping::map_project(&project, None);
        assert!(check_size(&payload).is_ok());
        payload.description = "x".repeat(MAX_BODY_BYTES);
        let err = check_size(&payload).unwrap_err();
        assert!(!err.is_retryable());
        assert!(
            err.message().contains("over the hub's 100 kB limit"),
            "{err}"
        );
    }

    #[test]
    fn a_429_without_retry_after_is_retried_with_the_hosts_backoff() {
        let body = r#"{"statusCode": 429, "message": "ThrottlerException: Too Many Requests"}"#;
        let err = hub_error("GET https://hub/x", &response(429, &[], body));
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), None);
    }

    #[test]
    fn created_ids_must_look_like_uuids() {
        assert_eq!(
            parse_created(br#"{"id": "0197c3a1-5b2e-7d40-9f11-2a6b8c0d4e51"}"#).unwrap(),
            "0197c3a1-5b2e-7d40-9f11-2a6b8c0d4e51"
        );
        assert!(parse_created(br#"{"id": "../services"}"#).is_err());
        assert!(parse_created(b"{}").is_err());
        assert!(checked_id("").is_err());
    }
}
