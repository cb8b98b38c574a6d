//! The admin API client of the CLI: `--url` (or `RECOCO_SYNC_URL`) names a
//! running service, `--key` (or `RECOCO_SYNC_ADMIN_KEY`) is sent as
//! `Authorization: Bearer`. Answers are the API's JSON; its refusals become
//! errors with their message and the CLI's exit codes (404 → 3).

use anyhow::Context as _;
use serde_json::Value;

use super::exit;

pub struct AdminClient {
    base: url::Url,
    key: Option<String>,
    http: reqwest::Client,
}

impl AdminClient {
    /// `url` is the service's base address (`http://127.0.0.1:8000`).
    pub fn new(url: &str, key: Option<String>) -> anyhow::Result<Self> {
        let base = url::Url::parse(url)
            .map_err(|e| exit::usage(format!("--url {url:?} is not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(exit::usage(format!(
                "--url {url:?} must be an http:// or https:// address"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .user_agent(concat!("recoco-sync-cli/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            base,
            key: key.filter(|k| !k.is_empty()),
            http,
        })
    }

    /// `GET /admin/api/<segments…>?query`.
    pub async fn get(&self, segments: &[&str], query: &[(&str, String)]) -> anyhow::Result<Value> {
        let request = self.http.get(self.url(segments)).query(query);
        self.send(request).await
    }

    /// `POST /admin/api/<segments…>?query` with an optional JSON body.
    pub async fn post(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self.http.post(self.url(segments)).query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.send(request).await
    }

    /// `POST` whose 409 answer is a result (a plan with conflicts), not an error.
    pub async fn post_allowing_conflict(
        &self,
        segments: &[&str],
        body: &Value,
    ) -> anyhow::Result<(bool, Value)> {
        let request = self.http.post(self.url(segments)).json(body);
        let (status, text) = self.answer(request).await?;
        match status {
            reqwest::StatusCode::CONFLICT => Ok((true, serde_json::from_str(&text)?)),
            s if s.is_success() => Ok((false, serde_json::from_str(&text)?)),
            _ => Err(self.refusal(status, text)),
        }
    }

    /// `PATCH /admin/api/<segments…>` with a JSON body.
    pub async fn patch(&self, segments: &[&str], body: &Value) -> anyhow::Result<Value> {
        let request = self.http.patch(self.url(segments)).json(body);
        self.send(request).await
    }

    /// `DELETE /admin/api/<segments…>`.
    pub async fn delete(&self, segments: &[&str]) -> anyhow::Result<Value> {
        let request = self.http.delete(self.url(segments));
        self.send(request).await
    }

    /// Each segment is escaped: ids and names cannot change the path.
    fn url(&self, segments: &[&str]) -> url::Url {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().expect("checked in new");
            path.pop_if_empty()
                .extend(["admin", "api"])
                .extend(segments);
        }
        url
    }

    async fn answer(
        &self,
        mut request: reqwest::RequestBuilder,
    ) -> anyhow::Result<(reqwest::StatusCode, String)> {
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the service at {}", self.base))?;
        let status = response.status();
        Ok((status, response.text().await.unwrap_or_default()))
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let (status, text) = self.answer(request).await?;
        if status.is_success() {
            return Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)));
        }
        Err(self.refusal(status, text))
    }

    /// A refusal's message (`detail`) as an error with the CLI's exit code.
    fn refusal(&self, status: reqwest::StatusCode, text: String) -> anyhow::Error {
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        let detail = body
            .get("detail")
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| body.to_string());
        match status.as_u16() {
            404 => exit::not_found(detail),
            409 => exit::conflict(detail),
            401 => anyhow::anyhow!(
                "the service refused the request (401): {detail}; give an admin key with --key \
                 or RECOCO_SYNC_ADMIN_KEY"
            ),
            code => anyhow::anyhow!("the service refused the request ({code}): {detail}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_escaped_under_the_base_path() {
        recoco_sync::install_crypto_provider();
        let c = AdminClient::new("http://127.0.0.1:8000/sync/", None).unwrap();
        assert_eq!(
            c.url(&["jobs", "a/../b?x"]).as_str(),
            "http://127.0.0.1:8000/sync/admin/api/jobs/a%2F..%2Fb%3Fx"
        );
        let c = AdminClient::new("http://127.0.0.1:8000", None).unwrap();
        assert_eq!(
            c.url(&["events"]).as_str(),
            "http://127.0.0.1:8000/admin/api/events"
        );
        for bad in ["127.0.0.1:8000", "ftp://x", "not a url"] {
            let err = AdminClient::new(bad, None).err().expect(bad);
            assert_eq!(exit::code_of(&err), exit::USAGE, "{bad}");
        }
    }
}
