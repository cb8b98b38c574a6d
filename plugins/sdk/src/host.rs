//! The only calls to the raw host imports. Compiled natively (connectors' unit
//! tests) there is no host: logging and progress go to stderr, and every other
//! import panics with a message saying so, rather than wit-bindgen's bare
//! `unreachable`.

#![cfg_attr(not(target_arch = "wasm32"), allow(unused_variables))]

use crate::bindings::recoco::connector as imports;
use imports::types::{Error, HttpError, HttpRequest, HttpResponse};

pub(crate) use imports::log::Level;

/// Calls `http.send`.
pub(crate) fn http_send(request: &HttpRequest) -> Result<HttpResponse, HttpError> {
    #[cfg(target_arch = "wasm32")]
    return imports::http::send(request);
    #[cfg(not(target_arch = "wasm32"))]
    unavailable("http.send")
}

/// Calls `source-api.request`.
pub(crate) fn source_request(
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<HttpResponse, HttpError> {
    #[cfg(target_arch = "wasm32")]
    return imports::source_api::request(method, path, body);
    #[cfg(not(target_arch = "wasm32"))]
    unavailable("source-api.request")
}

/// Calls `state.get`.
pub(crate) fn state_get(key: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    return imports::state::get(key);
    #[cfg(not(target_arch = "wasm32"))]
    unavailable("state.get")
}

/// Calls `state.set`.
pub(crate) fn state_set(key: &str, value: &str) -> Result<(), Error> {
    #[cfg(target_arch = "wasm32")]
    return imports::state::set(key, value);
    #[cfg(not(target_arch = "wasm32"))]
    unavailable("state.set")
}

/// Calls `state.delete`.
pub(crate) fn state_delete(key: &str) {
    #[cfg(target_arch = "wasm32")]
    return imports::state::delete(key);
    #[cfg(not(target_arch = "wasm32"))]
    unavailable("state.delete")
}

/// Calls `state.keys`.
pub(crate) fn state_keys(prefix: &str) -> Vec<String> {
    #[cfg(target_arch = "wasm32")]
    return imports::state::keys(prefix);
    #[cfg(not(target_arch = "wasm32"))]
    unavailable("state.keys")
}

/// Calls `scheduler.schedule`.
pub(crate) fn schedule(
    name: &str,
    payload: &str,
    delay_ms: u64,
    dedup_key: Option<&str>,
) -> Result<(), Error> {
    #[cfg(target_arch = "wasm32")]
    return imports::scheduler::schedule(name, payload, delay_ms, dedup_key);
    #[cfg(not(target_arch = "wasm32"))]
    unavailable("scheduler.schedule")
}

/// Calls `log.log` (natively: prints to stderr).
pub(crate) fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    imports::log::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

/// Calls `progress.report` (natively: prints to stderr).
pub(crate) fn progress(done: u64, total: Option<u64>, message: &str) {
    #[cfg(target_arch = "wasm32")]
    imports::progress::report(done, total, message);
    #[cfg(not(target_arch = "wasm32"))]
    match total {
        Some(total) => eprintln!("[progress {done}/{total}] {message}"),
        None => eprintln!("[progress {done}] {message}"),
    }
}

#[cfg(not(target_arch = "wasm32"))]
#[cold]
#[track_caller]
fn unavailable(import: &str) -> ! {
    panic!(
        "recoco-connector-sdk: `{import}` is a host import and only works inside the \
         recoco-sync host (wasm32-wasip2); keep the code you unit-test natively free of \
         host calls"
    )
}
