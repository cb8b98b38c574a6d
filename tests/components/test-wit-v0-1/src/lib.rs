//! `test-wit-v0-1`: a connector of the previous minor version of the world,
//! `recoco:connector@0.1.0` (`wit/v0.1.0`), bound with wit-bindgen directly
//! as a third party's old build would be. The host must load it beside 0.2.0
//! components and serve every import. Each event:
//! 1. logs a line, stores `last-event` = the event id and reads it back;
//! 2. POSTs the webhook body to the config's `url` with `x-state: <read back>`
//!    and `x-attempt: <n>`;
//! 3. schedules its task `ping` (dedup key `ping`) and reports progress;
//! 4. answers `v0.1 delivered <status>`, or a retryable error (Retry-After
//!    honoured) for a 5xx — the error type crosses the version boundary.

wit_bindgen::generate!({
    world: "connector",
    path: "../../../wit/v0.1.0",
});

use exports::recoco::connector::handler::{Context, Event, Guest, PluginManifest};
use recoco::connector::types::{Error, HttpRequest, TaskInfo};
use recoco::connector::{http, log, progress, scheduler, state};

struct V01;

fn config_url(ctx: &Context) -> Result<String, Error> {
    let start = ctx
        .config
        .find("\"url\"")
        .ok_or_else(|| permanent("config has no url"))?;
    let rest = &ctx.config[start + 5..];
    let open = rest.find('"').ok_or_else(|| permanent("bad url"))? + 1;
    let close = rest[open..].find('"').ok_or_else(|| permanent("bad url"))?;
    Ok(rest[open..open + close].to_string())
}

fn permanent(message: &str) -> Error {
    Error {
        retryable: false,
        message: message.into(),
        retry_after_ms: None,
    }
}

impl Guest for V01 {
    fn manifest() -> PluginManifest {
        PluginManifest {
            name: "test-wit-v0-1".into(),
            version: "0.1.7".into(),
            description: "Built against recoco:connector@0.1.0".into(),
            subscriptions: vec!["*".into()],
            config_schema:
                r#"{"type":"object","required":["url"],"properties":{"url":{"type":"string"}}}"#
                    .into(),
            default_allowed_hosts: vec!["config:/url".into()],
            tasks: vec![TaskInfo {
                name: "ping".into(),
                description: "Does nothing".into(),
            }],
            coalesce: false,
            ordering_keys: vec![],
        }
    }

    fn handle_event(ctx: Context, event: Event) -> Result<String, Error> {
        log::log(log::Level::Info, &format!("v0.1 handling {}", event.id));
        state::set("last-event", &event.id)?;
        let seen = state::get("last-event").unwrap_or_default();
        let url = config_url(&ctx)?;
        let answer = http::send(&HttpRequest {
            method: "POST".into(),
            url,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-state".into(), seen),
                ("x-attempt".into(), ctx.attempt.to_string()),
            ],
            body: Some(event.payload.into_bytes()),
            timeout_ms: None,
            sensitive_headers: vec![],
        })
        .map_err(|e| Error {
            retryable: true,
            message: format!("send failed: {e:?}"),
            retry_after_ms: None,
        })?;
        scheduler::schedule("ping", "{}", 3_600_000, Some("ping"))?;
        progress::report(1, Some(1), "sent");
        if answer.status >= 500 {
            return Err(Error {
                retryable: true,
                message: format!("target answered {}", answer.status),
                retry_after_ms: Some(200),
            });
        }
        Ok(format!("v0.1 delivered {}", answer.status))
    }

    fn run_task(_ctx: Context, name: String, _payload: String) -> Result<String, Error> {
        Ok(format!("ran {name}"))
    }
}

#[cfg(target_arch = "wasm32")]
export!(V01);
