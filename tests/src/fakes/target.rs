//! A webhook receiver: records every request and answers with scripted
//! statuses (then a default), optionally slowly.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;

#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    script: VecDeque<(u16, Vec<(String, String)>)>,
    default_status: Option<u16>,
    delay: Duration,
}

#[derive(Clone)]
pub struct Target {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl Target {
    pub async fn start() -> Self {
        let inner: Arc<Mutex<Inner>> = Default::default();
        let router = Router::new().fallback(receive).with_state(inner.clone());
        Self {
            url: super::serve(router).await,
            inner,
        }
    }

    /// The next answers, in order, before the default (200).
    pub fn script(&self, statuses: &[u16]) {
        let mut inner = self.inner.lock().unwrap();
        inner
            .script
            .extend(statuses.iter().map(|s| (*s, Vec::new())));
    }

    /// One scripted answer with headers (e.g. `retry-after`).
    pub fn script_with_headers(&self, status: u16, headers: &[(&str, &str)]) {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.inner
            .lock()
            .unwrap()
            .script
            .push_back((status, headers));
    }

    pub fn set_default_status(&self, status: u16) {
        self.inner.lock().unwrap().default_status = Some(status);
    }

    /// Delays every answer (to provoke timeouts).
    pub fn set_delay(&self, delay: Duration) {
        self.inner.lock().unwrap().delay = delay;
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// Waits until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        crate::wait_for(
            &format!("{n} request(s) at the target"),
            timeout,
            || async {
                let got = self.received();
                (got.len() >= n).then_some(got)
            },
        )
        .await
    }
}

async fn receive(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let (answer, delay) = {
        let mut inner = inner.lock().unwrap();
        inner.received.push(Received {
            method: method.to_string(),
            path: uri.to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body.to_vec(),
        });
        let default = (inner.default_status.unwrap_or(200), Vec::new());
        (inner.script.pop_front().unwrap_or(default), inner.delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let (status, extra) = answer;
    let mut response_headers = HeaderMap::new();
    for (k, v) in extra {
        response_headers.insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    (
        StatusCode::from_u16(status).unwrap(),
        response_headers,
        format!("{{\"status\": {status}}}"),
    )
}
