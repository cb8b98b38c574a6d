//! Logs and error reporting: a `tracing` subscriber (text or JSON, filtered by
//! `RUST_LOG` or the configured level) and, when `SENTRY_DSN` is set, Sentry fed by
//! the tracing layer (errors become events, the rest breadcrumbs).

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::LogConfig;

/// Keep it alive for the whole process: dropping it flushes Sentry.
pub struct Guard(#[allow(dead_code)] Option<sentry::ClientInitGuard>);

pub fn init(config: &LogConfig) -> Guard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{},sqlx=warn,wasmtime=warn,cranelift=warn",
            config.level
        ))
    });
    let sentry_guard = std::env::var("SENTRY_DSN")
        .ok()
        .filter(|d| !d.is_empty())
        .map(|dsn| {
            let mut options = sentry::ClientOptions::default();
            options.release = sentry::release_name!();
            options.send_default_pii = false;
            sentry::init((dsn, options))
        });
    let sentry_layer = sentry_guard.as_ref().map(|_| {
        use sentry::integrations::tracing::{BreadcrumbLayer, ErrorLayer};
        ErrorLayer::new()
            .with_filter(LevelFilter::ERROR)
            .and_then(BreadcrumbLayer::new().with_filter(LevelFilter::INFO))
    });
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(sentry_layer);
    let result = if config.format == "json" {
        registry
            .with(tracing_subscriber::fmt::layer().json())
            .try_init()
    } else {
        registry.with(tracing_subscriber::fmt::layer()).try_init()
    };
    // A subscriber may already be installed (tests); that is fine.
    let _ = result;
    Guard(sentry_guard)
}
