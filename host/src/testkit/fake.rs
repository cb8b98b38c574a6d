//! The host imports as the test kit serves them: outbound requests and Recoco
//! API calls are matched, in order, against the step's recorded exchanges and
//! answered from them (checked against the allow-list like the real host);
//! state lives in memory for the whole scenario; scheduled tasks, log lines and
//! progress are recorded. Every difference from the scenario is a problem of
//! the step, reported after it.

use std::collections::{BTreeMap, VecDeque};

use wasmtime::component::ResourceTable;
use wasmtime::StoreLimits;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::scenario::{contains, Exchange};
use crate::outbound::allow::{AllowList, Refusal};
use crate::runtime::bindings::recoco::connector as wit;
use crate::runtime::bindings::types::{Error, HttpError, HttpRequest, HttpResponse};

pub struct KitState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limits: StoreLimits,
    /// False while reading the manifest: imports are refused then, as in the host.
    pub in_step: bool,
    pub allow: AllowList,
    pub http: VecDeque<Exchange>,
    pub source_api: VecDeque<Exchange>,
    pub state: BTreeMap<String, String>,
    pub scheduled: Vec<ScheduledTask>,
    pub log: Vec<String>,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ScheduledTask {
    pub name: String,
    pub payload: String,
    pub delay_ms: u64,
    pub dedup_key: Option<String>,
}

impl KitState {
    pub fn new(limits: StoreLimits, allow: AllowList, state: BTreeMap<String, String>) -> Self {
        // No files, environment or sockets, as in the host; the guest's output
        // goes to this process's stderr so an author sees it.
        let wasi = WasiCtx::builder()
            .stdout(wasmtime_wasi::cli::stderr())
            .inherit_stderr()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limits,
            in_step: false,
            allow,
            http: VecDeque::new(),
            source_api: VecDeque::new(),
            state,
            scheduled: Vec::new(),
            log: Vec::new(),
            problems: Vec::new(),
        }
    }

    fn refuse_outside_step(&self, what: &str) -> wasmtime::Result<()> {
        if self.in_step {
            Ok(())
        } else {
            Err(wasmtime::Error::msg(format!(
                "manifest() called the host import {what}: it must not call host imports"
            )))
        }
    }
}

impl WasiView for KitState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Checks a request against the next recorded exchange; its answer, or why none.
fn answer(
    queue: &mut VecDeque<Exchange>,
    problems: &mut Vec<String>,
    kind: &str,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
) -> Result<HttpResponse, HttpError> {
    let sent = format!("{method} {target}");
    let Some(expected) = queue.pop_front() else {
        problems.push(format!(
            "unexpected {kind} request {sent} (the step lists no more)"
        ));
        return Err(HttpError::Connection(format!(
            "plugin test: no recorded answer for {sent}"
        )));
    };
    let wanted = format!(
        "{} {}",
        expected.method.to_ascii_uppercase(),
        expected.target()
    );
    if !method.eq_ignore_ascii_case(&expected.method) || target != expected.target() {
        problems.push(format!(
            "expected {kind} request {wanted}, the connector sent {sent}"
        ));
        return Err(HttpError::Connection(format!(
            "plugin test: expected {wanted}"
        )));
    }
    for (name, value) in &expected.headers {
        let got = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        match got {
            None => problems.push(format!("{sent}: header {name} is missing")),
            Some(v) if value != "*" && v != value => problems.push(format!(
                "{sent}: header {name} is {v:?}, expected {value:?}"
            )),
            Some(_) => {}
        }
    }
    let text = body
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    if let Some(exact) = &expected.body {
        if &text != exact {
            problems.push(format!("{sent}: body is {text:?}, expected {exact:?}"));
        }
    }
    if let Some(json) = &expected.json {
        match serde_json::from_str::<serde_json::Value>(&text) {
            Err(e) => problems.push(format!("{sent}: body is not JSON ({e}): {text:?}")),
            Ok(actual) if !contains(&actual, json) => {
                problems.push(format!("{sent}: body {actual} does not contain {json}"))
            }
            Ok(_) => {}
        }
    }
    Ok(HttpResponse {
        status: expected.status,
        headers: expected.response_header_list(),
        body: expected.response_bytes(),
    })
}

/// A refusal of a host call, as the host gives it.
fn refusal(message: String) -> Error {
    Error {
        retryable: false,
        message,
        retry_after_ms: None,
    }
}

impl wit::types::Host for KitState {}

crate::runtime::bindings::compat::serve_v0_1_0!(KitState);

impl wit::http::Host for KitState {
    async fn send(
        &mut self,
        request: HttpRequest,
    ) -> wasmtime::Result<Result<HttpResponse, HttpError>> {
        self.refuse_outside_step("http.send")?;
        let url = match url::Url::parse(&request.url) {
            Ok(url) => url,
            Err(e) => return Ok(Err(HttpError::InvalidRequest(format!("bad URL: {e}")))),
        };
        match self.allow.check(&url) {
            Err(Refusal::NotAllowed(entry)) => {
                self.problems.push(format!(
                    "{} {}: the host would refuse it: {entry} is not in the connection's allowed hosts",
                    request.method, request.url
                ));
                return Ok(Err(HttpError::NotAllowed(entry)));
            }
            Err(Refusal::Invalid(why)) => return Ok(Err(HttpError::InvalidRequest(why))),
            Ok(_) => {}
        }
        Ok(answer(
            &mut self.http,
            &mut self.problems,
            "http",
            &request.method,
            &request.url,
            &request.headers,
            request.body.as_deref(),
        ))
    }
}

impl wit::source_api::Host for KitState {
    async fn request(
        &mut self,
        method: String,
        path: String,
        body: Option<String>,
    ) -> wasmtime::Result<Result<HttpResponse, HttpError>> {
        self.refuse_outside_step("source-api.request")?;
        Ok(answer(
            &mut self.source_api,
            &mut self.problems,
            "source_api",
            &method,
            &path,
            &[],
            body.as_deref().map(str::as_bytes),
        ))
    }
}

impl wit::state::Host for KitState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        self.refuse_outside_step("state.get")?;
        Ok(self.state.get(&key).cloned())
    }

    async fn set(&mut self, key: String, value: String) -> wasmtime::Result<Result<(), Error>> {
        self.refuse_outside_step("state.set")?;
        // The host's bounds, so a test passes only where the host would.
        if let Err(message) = crate::runtime::host_checks::state_entry(&key, &value) {
            return Ok(Err(refusal(message)));
        }
        self.state.insert(key, value);
        Ok(Ok(()))
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        self.refuse_outside_step("state.delete")?;
        self.state.remove(&key);
        Ok(())
    }

    async fn keys(&mut self, prefix: String) -> wasmtime::Result<Vec<String>> {
        self.refuse_outside_step("state.keys")?;
        Ok(self
            .state
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect())
    }
}

impl wit::scheduler::Host for KitState {
    async fn schedule(
        &mut self,
        name: String,
        payload: String,
        delay_ms: u64,
        dedup_key: Option<String>,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.refuse_outside_step("scheduler.schedule")?;
        if let Err(message) = crate::runtime::host_checks::task(&name, &payload, delay_ms) {
            return Ok(Err(refusal(message)));
        }
        if let Some(key) = &dedup_key {
            self.scheduled
                .retain(|t| !(t.name == name && t.dedup_key.as_ref() == Some(key)));
        }
        self.scheduled.push(ScheduledTask {
            name,
            payload,
            delay_ms,
            dedup_key,
        });
        Ok(Ok(()))
    }
}

impl wit::log::Host for KitState {
    async fn log(&mut self, level: wit::log::Level, message: String) -> wasmtime::Result<()> {
        self.refuse_outside_step("log.log")?;
        use wit::log::Level;
        let level = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.log.push(format!("{level}: {message}"));
        Ok(())
    }
}

impl wit::progress::Host for KitState {
    async fn report(
        &mut self,
        done: u64,
        total: Option<u64>,
        message: String,
    ) -> wasmtime::Result<()> {
        self.refuse_outside_step("progress.report")?;
        let total = total.map(|t| t.to_string()).unwrap_or_else(|| "?".into());
        self.log.push(format!("progress {done}/{total}: {message}"));
        Ok(())
    }
}
