//! `recoco:connector@0.1.0` served by the current implementations: the old
//! world's imports call the current ones, with each value converted at the
//! boundary. 0.2.0 only added manifest fields, so every conversion is field
//! for field and the new fields read as empty for 0.1.0 components.
//!
//! The old imports are implemented per store type with [`serve_v0_1_0!`] (a
//! blanket impl would overlap the `&mut T` impls that `bindgen!` generates).

use super::v0_1_0::recoco::connector as old;
use super::v0_2_0::recoco::connector as new;

/// The imports of the 0.1.0 world.
pub trait V0_1Imports:
    old::types::Host
    + old::http::Host
    + old::source_api::Host
    + old::state::Host
    + old::scheduler::Host
    + old::log::Host
    + old::progress::Host
{
}

impl<T> V0_1Imports for T where
    T: old::types::Host
        + old::http::Host
        + old::source_api::Host
        + old::state::Host
        + old::scheduler::Host
        + old::log::Host
        + old::progress::Host
{
}

/// Implements the 0.1.0 imports for `$state` by delegating to its current ones.
macro_rules! serve_v0_1_0 {
    ($state:ty) => {
        const _: () = {
            use $crate::runtime::bindings::v0_1_0::recoco::connector as old;
            use $crate::runtime::bindings::v0_2_0::recoco::connector as new;

            impl old::types::Host for $state {}

            impl old::http::Host for $state {
                async fn send(
                    &mut self,
                    request: old::types::HttpRequest,
                ) -> wasmtime::Result<Result<old::types::HttpResponse, old::types::HttpError>>
                {
                    let out = new::http::Host::send(self, request.into()).await?;
                    Ok(out.map(Into::into).map_err(Into::into))
                }
            }

            impl old::source_api::Host for $state {
                async fn request(
                    &mut self,
                    method: String,
                    path: String,
                    body: Option<String>,
                ) -> wasmtime::Result<Result<old::types::HttpResponse, old::types::HttpError>>
                {
                    let out = new::source_api::Host::request(self, method, path, body).await?;
                    Ok(out.map(Into::into).map_err(Into::into))
                }
            }

            impl old::state::Host for $state {
                async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
                    new::state::Host::get(self, key).await
                }
                async fn set(
                    &mut self,
                    key: String,
                    value: String,
                ) -> wasmtime::Result<Result<(), old::types::Error>> {
                    Ok(new::state::Host::set(self, key, value)
                        .await?
                        .map_err(Into::into))
                }
                async fn delete(&mut self, key: String) -> wasmtime::Result<()> {
                    new::state::Host::delete(self, key).await
                }
                async fn keys(&mut self, prefix: String) -> wasmtime::Result<Vec<String>> {
                    new::state::Host::keys(self, prefix).await
                }
            }

            impl old::scheduler::Host for $state {
                async fn schedule(
                    &mut self,
                    name: String,
                    payload: String,
                    delay_ms: u64,
                    dedup_key: Option<String>,
                ) -> wasmtime::Result<Result<(), old::types::Error>> {
                    let out =
                        new::scheduler::Host::schedule(self, name, payload, delay_ms, dedup_key)
                            .await?;
                    Ok(out.map_err(Into::into))
                }
            }

            impl old::log::Host for $state {
                async fn log(
                    &mut self,
                    level: old::log::Level,
                    message: String,
                ) -> wasmtime::Result<()> {
                    new::log::Host::log(self, level.into(), message).await
                }
            }

            impl old::progress::Host for $state {
                async fn report(
                    &mut self,
                    done: u64,
                    total: Option<u64>,
                    message: String,
                ) -> wasmtime::Result<()> {
                    new::progress::Host::report(self, done, total, message).await
                }
            }
        };
    };
}
pub(crate) use serve_v0_1_0;

// Guest → host values.

impl From<old::types::HttpRequest> for new::types::HttpRequest {
    fn from(r: old::types::HttpRequest) -> Self {
        Self {
            method: r.method,
            url: r.url,
            headers: r.headers,
            body: r.body,
            timeout_ms: r.timeout_ms,
            sensitive_headers: r.sensitive_headers,
        }
    }
}

impl From<old::log::Level> for new::log::Level {
    fn from(l: old::log::Level) -> Self {
        match l {
            old::log::Level::Trace => Self::Trace,
            old::log::Level::Debug => Self::Debug,
            old::log::Level::Info => Self::Info,
            old::log::Level::Warn => Self::Warn,
            old::log::Level::Error => Self::Error,
        }
    }
}

impl From<old::types::Error> for new::types::Error {
    fn from(e: old::types::Error) -> Self {
        Self {
            retryable: e.retryable,
            message: e.message,
            retry_after_ms: e.retry_after_ms,
        }
    }
}

impl From<old::types::TaskInfo> for new::types::TaskInfo {
    fn from(t: old::types::TaskInfo) -> Self {
        Self {
            name: t.name,
            description: t.description,
        }
    }
}

impl From<old::types::OrderingRule> for new::types::OrderingRule {
    fn from(r: old::types::OrderingRule) -> Self {
        Self {
            events: r.events,
            pointer: r.pointer,
        }
    }
}

impl From<old::types::PluginManifest> for new::types::PluginManifest {
    fn from(m: old::types::PluginManifest) -> Self {
        Self {
            name: m.name,
            version: m.version,
            description: m.description,
            subscriptions: m.subscriptions,
            config_schema: m.config_schema,
            default_allowed_hosts: m.default_allowed_hosts,
            tasks: m.tasks.into_iter().map(Into::into).collect(),
            coalesce: m.coalesce,
            ordering_keys: m.ordering_keys.into_iter().map(Into::into).collect(),
            // Fields 0.1.0 does not have.
            authors: Vec::new(),
            homepage: None,
            license: None,
        }
    }
}

// Host → guest values.

impl From<new::types::HttpResponse> for old::types::HttpResponse {
    fn from(r: new::types::HttpResponse) -> Self {
        Self {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }
    }
}

impl From<new::types::HttpError> for old::types::HttpError {
    fn from(e: new::types::HttpError) -> Self {
        use new::types::HttpError as N;
        match e {
            N::NotAllowed(s) => Self::NotAllowed(s),
            N::Timeout => Self::Timeout,
            N::Connection(s) => Self::Connection(s),
            N::TooLarge(n) => Self::TooLarge(n),
            N::InvalidRequest(s) => Self::InvalidRequest(s),
            N::Auth(s) => Self::Auth(s),
            N::Refused(s) => Self::Refused(s),
            N::QuotaExceeded(s) => Self::QuotaExceeded(s),
        }
    }
}

impl From<new::types::Error> for old::types::Error {
    fn from(e: new::types::Error) -> Self {
        Self {
            retryable: e.retryable,
            message: e.message,
            retry_after_ms: e.retry_after_ms,
        }
    }
}

impl From<new::types::Context> for old::types::Context {
    fn from(c: new::types::Context) -> Self {
        Self {
            config: c.config,
            connection: c.connection,
            source: c.source,
            job_id: c.job_id,
            attempt: c.attempt,
        }
    }
}

impl From<new::types::Event> for old::types::Event {
    fn from(e: new::types::Event) -> Self {
        Self {
            id: e.id,
            source: e.source,
            topic: e.topic,
            object_type: e.object_type,
            action: e.action,
            object_id: e.object_id,
            payload: e.payload,
            received_at: e.received_at,
        }
    }
}
