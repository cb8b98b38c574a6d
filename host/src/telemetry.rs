//! Logs and error reporting: a `tracing` subscriber (text or JSON, filtered by
//! `RUST_LOG` or the configured level) and, when `SENTRY_DSN` is set, Sentry fed by
//! the tracing layer (errors become events, the rest breadcrumbs). Logs go to
//! standard error (standard output is the CLI's), coloured only on a terminal.

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::LogConfig;

/// Keep it alive for the whole process: dropping it flushes Sentry.
pub struct Guard(#[allow(dead_code)] Option<sentry::ClientInitGuard>);

pub fn init(config: &LogConfig) -> Guard {
    // The Sentry transport uses rustls: its provider must exist first.
    crate::install_crypto_provider();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{},sqlx=warn,wasmtime=warn,cranelift=warn",
            config.level
        ))
    });
    let sentry_guard = std::env::var("SENTRY_DSN")
        .ok()
        .filter(|d| !d.is_empty())
        .map(|dsn| sentry::init((dsn, sentry_options())));
    let sentry_layer = sentry_guard.as_ref().map(|_| {
        use sentry::integrations::tracing::{BreadcrumbLayer, ErrorLayer};
        // Job failures reach Sentry once per incident (crate::alerts), not per run.
        ErrorLayer::new()
            .with_filter(tracing_subscriber::filter::filter_fn(|m| {
                *m.level() == tracing::Level::ERROR && m.target() != "recoco_sync::queue::worker"
            }))
            .and_then(BreadcrumbLayer::new().with_filter(LevelFilter::INFO))
    });
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(sentry_layer);
    let result = if config.format == "json" {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(colour())
                    .with_writer(std::io::stderr),
            )
            .try_init()
    };
    // A subscriber may already be installed (tests); that is fine.
    let _ = result;
    Guard(sentry_guard)
}

/// Colours only on a terminal, and never with `NO_COLOR` set.
fn colour() -> bool {
    use std::io::IsTerminal as _;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// One line per admin request at debug (target `recoco_sync::access`): method,
/// path without the query (it may carry a token), status and duration.
pub async fn access_log(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    tracing::debug!(
        target: "recoco_sync::access",
        %method,
        %path,
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "admin request"
    );
    response
}

/// What every Sentry client of the service sends with its events: `release`
/// (`SENTRY_RELEASE`, else the crate's version), `environment`
/// (`SENTRY_ENVIRONMENT`, else `production`), and no personal data. Shared by
/// the log layer above and the incident reports of `crate::alerts`.
pub fn sentry_options() -> sentry::ClientOptions {
    let mut options = sentry::ClientOptions::default();
    options.release = std::env::var("SENTRY_RELEASE")
        .ok()
        .filter(|r| !r.is_empty())
        .map(Into::into)
        .or(sentry::release_name!());
    options.environment = Some(
        std::env::var("SENTRY_ENVIRONMENT")
            .ok()
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| "production".into())
            .into(),
    );
    options.send_default_pii = false;
    options
}
