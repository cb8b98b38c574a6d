//! Requests to the Recoco API of the connection's source, through the host's
//! `source-api` import: the host adds the credentials (the connector never sees
//! them) and renews them when refused. Paths start and end with `/`
//! (`/projects/1312/`), as Recoco requires; a pagination `next` link (an absolute
//! URL on the same origin) is accepted too.
//!
//! ```no_run
//! use recoco_connector_sdk::{recoco::ProjectListItem, source_api};
//!
//! # fn main() -> Result<(), recoco_connector_sdk::Error> {
//! let projects: Vec<ProjectListItem> = source_api::get_all_pages("/projects/?limit=500")?;
//! # Ok(()) }
//! ```

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::http::Response;
use crate::recoco::Page;
use crate::Error;

/// Most pages [`get_all_pages`] follows: a guard against a server whose `next`
/// links never end (137 projects at 50 a page is 3 pages; this is 1,000,000 items
/// at Recoco's 1000-item maximum).
pub const MAX_PAGES: usize = 1000;

/// Sends `method` to `path` with an optional JSON `body`; any status is a response.
pub fn request(method: &str, path: &str, body: Option<&str>) -> Result<Response, Error> {
    crate::host::source_request(method, path, body)
        .map(Response::from)
        .map_err(|err| Error::from_http_error(&describe(method, path), err))
}

/// `GET path`.
pub fn get(path: &str) -> Result<Response, Error> {
    request("GET", path, None)
}

/// `GET path`, requiring a 2xx, parsed as JSON.
pub fn get_json<T: DeserializeOwned>(path: &str) -> Result<T, Error> {
    get(path)?
        .ensure_success(&describe("GET", path))?
        .json()
        .map_err(|err| err.context(describe("GET", path)))
}

/// `POST path` with `body` serialized as JSON.
pub fn post_json<B: Serialize + ?Sized>(path: &str, body: &B) -> Result<Response, Error> {
    with_json_body("POST", path, body)
}

/// `PUT path` with `body` serialized as JSON.
pub fn put_json<B: Serialize + ?Sized>(path: &str, body: &B) -> Result<Response, Error> {
    with_json_body("PUT", path, body)
}

/// `PATCH path` with `body` serialized as JSON.
pub fn patch_json<B: Serialize + ?Sized>(path: &str, body: &B) -> Result<Response, Error> {
    with_json_body("PATCH", path, body)
}

/// `DELETE path`.
pub fn delete(path: &str) -> Result<Response, Error> {
    request("DELETE", path, None)
}

/// Every item of a list endpoint: follows the limit/offset pagination's `next`
/// links until `null`, and also accepts the bare JSON array that list endpoints
/// returned before November 2025. Any non-2xx page fails the whole listing.
pub fn get_all_pages<T: DeserializeOwned>(path: &str) -> Result<Vec<T>, Error> {
    collect_pages(path, |page_path| {
        get(page_path)?.ensure_success(&describe("GET", page_path))
    })
}

/// The pagination loop of [`get_all_pages`], with the fetching left to `fetch`.
fn collect_pages<T: DeserializeOwned>(
    path: &str,
    mut fetch: impl FnMut(&str) -> Result<Response, Error>,
) -> Result<Vec<T>, Error> {
    let mut items = Vec::new();
    let mut seen = Vec::new();
    let mut next = Some(path.to_owned());
    while let Some(page_path) = next.take() {
        if seen.len() == MAX_PAGES || seen.contains(&page_path) {
            return Err(Error::permanent(format!(
                "GET {path}: pagination does not end (page {} is `{page_path}`)",
                seen.len() + 1
            )));
        }
        let page: Page<T> = fetch(&page_path)?
            .json()
            .map_err(|err| err.context(describe("GET", &page_path)))?;
        items.extend(page.results);
        next = page.next;
        seen.push(page_path);
    }
    Ok(items)
}

fn with_json_body<B: Serialize + ?Sized>(
    method: &str,
    path: &str,
    body: &B,
) -> Result<Response, Error> {
    let body = serde_json::to_string(body).map_err(|err| {
        Error::permanent(format!(
            "{}: cannot serialize the body: {err}",
            describe(method, path)
        ))
    })?;
    request(method, path, Some(&body))
}

/// `"GET /projects/"`, without the query string, for messages.
fn describe(method: &str, path: &str) -> String {
    format!("{method} {}", path.split('?').next().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> Result<Response, Error> {
        Ok(Response {
            status: 200,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        })
    }

    #[test]
    fn follows_next_links_until_null() {
        let mut asked = Vec::new();
        let items: Vec<u32> = collect_pages("/projects/", |path| {
            asked.push(path.to_owned());
            match path {
                "/projects/" => ok(
                    r#"{"count": 3, "next": "https://p.example.org/api/projects/?limit=2&offset=2", "previous": null, "results": [1, 2]}"#,
                ),
                _ => ok(r#"{"count": 3, "next": null, "previous": "x", "results": [3]}"#),
            }
        })
        .unwrap();
        assert_eq!(items, [1, 2, 3]);
        assert_eq!(
            asked,
            [
                "/projects/",
                "https://p.example.org/api/projects/?limit=2&offset=2"
            ]
        );
    }

    #[test]
    fn accepts_the_older_bare_array() {
        let items: Vec<u32> = collect_pages("/projects/", |_| ok("[4, 5]")).unwrap();
        assert_eq!(items, [4, 5]);
    }

    #[test]
    fn stops_on_a_loop_and_propagates_errors() {
        let err =
            collect_pages::<u32>("/p/", |_| ok(r#"{"next": "/p/", "results": []}"#)).unwrap_err();
        assert!(err.message().contains("pagination does not end"), "{err}");

        let err = collect_pages::<u32>("/p/", |_| Err(Error::retryable("down"))).unwrap_err();
        assert!(err.is_retryable());
    }
}
