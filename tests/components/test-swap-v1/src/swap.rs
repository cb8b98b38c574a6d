//! What every build of `test-swap` does, given its version: each event is
//! reported to the connection's `url` as `{"version", "event_id", "job_id"}`,
//! so a test can tell which version handled which event. The crates
//! `test-swap-v1`, `test-swap-v2` and the broken variants include this file.

use recoco_connector_sdk::http::Request;
use recoco_connector_sdk::{Context, Error, Event, Manifest};
use serde::Deserialize;
use serde_json::json;

/// The plugin name every build declares, so that each replaces the other.
pub const NAME: &str = "test-swap";

/// The connection's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where each event is reported.
    pub url: String,
}

/// The manifest of version `version`.
pub fn manifest(version: &str) -> Manifest {
    Manifest::new(NAME, version)
        .description("Test component: reports which version handled each event.")
        .subscribe("*")
        .allow_host("config:/url")
        .config_schema(json!({
            "type": "object",
            "properties": {"url": {"type": "string"}},
            "required": ["url"],
            "additionalProperties": false
        }))
}

/// Reports `event` as handled by `version`; a failed report is retryable.
pub fn handle(version: &str, ctx: &Context, event: &Event) -> Result<String, Error> {
    let config: Config = ctx.config()?;
    Request::post(&config.url)
        .json(&json!({"version": version, "event_id": event.id, "job_id": ctx.job_id}))
        .send()?
        .ensure_success("reporting the event")?;
    Ok(format!("handled by {NAME} {version}"))
}
