//! Alerts on repeated failure. Per connection, an **incident** opens when
//! `failure_threshold` consecutive runs of its jobs fail, when one of its jobs
//! goes dead, or when its circuit breaker opens; it is resolved by the next run
//! of its jobs that succeeds. Each incident sends one notice when it opens and
//! one when it is resolved: to the `[alerts]` webhook (signed the Standard
//! Webhooks way) and to Sentry (tags: connection, plugin, plugin version;
//! extra: event id, job id, attempt; never a payload or a secret).
//!
//! The watcher ([`watch`]) reads the attempts the workers record (and the
//! breaker's state) instead of being called by them: the queue stays unaware
//! of alerts, and a notice that cannot be sent never slows a job. Incidents are
//! stored (`alert_incidents`, at most one open per connection, so replicas
//! sharing a database send one notice) and listed at `/admin/api/alerts`.

pub mod incidents;
pub mod notify;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::flow::FlowControl;
use crate::store::Pool;

/// Starts the watcher (see [`watch`]); it stops with `shutdown`.
pub fn spawn(
    pool: Pool,
    flow: Arc<FlowControl>,
    config: AlertsConfig,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        match watch::Watcher::new(pool, flow, &config).await {
            Ok(watcher) => {
                let _ = watcher.spawn(shutdown).await;
            }
            Err(err) => {
                tracing::error!(error = %format!("{err:#}"), "alerts disabled: cannot start the watcher")
            }
        }
    })
}

/// The `[alerts]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Consecutive failed runs of a connection's jobs that open an incident
    /// (0: only dead jobs and open circuits do).
    pub failure_threshold: u32,
    /// Where notices are POSTed (JSON, Standard Webhooks signature); none: no webhook.
    pub webhook_url: Option<String>,
    /// The signing secret: `whsec_<base64>` or any string of 16 bytes or more
    /// (its UTF-8 bytes are the key). `${VAR}` reads it from the environment.
    pub webhook_secret: Option<String>,
    /// Time limit of one webhook request (a notice is tried 3 times).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Sentry DSN for incidents; default: the `SENTRY_DSN` environment variable.
    pub sentry_dsn: Option<String>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            webhook_url: None,
            webhook_secret: None,
            timeout: Duration::from_secs(10),
            sentry_dsn: None,
        }
    }
}

impl AlertsConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(url) = self.webhook_url.as_deref().filter(|u| !u.is_empty()) {
            let parsed = reqwest::Url::parse(url)
                .map_err(|e| anyhow::anyhow!("alerts.webhook_url is not a URL ({e})"))?;
            if !["http", "https"].contains(&parsed.scheme()) {
                bail!("alerts.webhook_url must be an http:// or https:// URL");
            }
            let Some(secret) = self.webhook_secret.as_deref().filter(|s| !s.is_empty()) else {
                bail!("alerts.webhook_secret is required with alerts.webhook_url (notices are signed)");
            };
            notify::signing_key(secret)?;
        }
        if let Some(dsn) = self.sentry_dsn.as_deref().filter(|d| !d.is_empty()) {
            if dsn.parse::<sentry::types::Dsn>().is_err() {
                // Never echo the DSN: it holds the project's key.
                bail!("alerts.sentry_dsn is not a valid Sentry DSN");
            }
        }
        if self.timeout.is_zero() {
            bail!("alerts.timeout must be longer than 0s");
        }
        Ok(())
    }

    /// The DSN in use: the setting, else `SENTRY_DSN`.
    pub fn dsn(&self) -> Option<String> {
        self.sentry_dsn
            .clone()
            .or_else(|| std::env::var("SENTRY_DSN").ok())
            .filter(|d| !d.is_empty())
    }
}

/// Why an incident opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Failures,
    Dead,
    CircuitOpen,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failures => "failures",
            Self::Dead => "dead",
            Self::CircuitOpen => "circuit_open",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        let ok = AlertsConfig {
            webhook_url: Some("https://hooks.example/recoco".into()),
            webhook_secret: Some("whsec_c2VjcmV0LWtleS1vZi1hbGVydHM=".into()),
            sentry_dsn: Some("http://public@127.0.0.1:9/1".into()),
            ..Default::default()
        };
        ok.validate().unwrap();
        let no_secret = AlertsConfig {
            webhook_secret: None,
            ..ok.clone()
        };
        assert!(no_secret
            .validate()
            .unwrap_err()
            .to_string()
            .contains("webhook_secret"));
        let short = AlertsConfig {
            webhook_secret: Some("short".into()),
            ..ok.clone()
        };
        assert!(short
            .validate()
            .unwrap_err()
            .to_string()
            .contains("16 bytes"));
        let ftp = AlertsConfig {
            webhook_url: Some("ftp://x".into()),
            ..ok.clone()
        };
        assert!(ftp.validate().is_err());
        let dsn = AlertsConfig {
            sentry_dsn: Some("not a dsn with secret-ish".into()),
            ..ok.clone()
        };
        let err = dsn.validate().unwrap_err().to_string();
        assert!(
            err.contains("sentry_dsn") && !err.contains("secret-ish"),
            "{err}"
        );
        let zero = AlertsConfig {
            timeout: Duration::ZERO,
            ..ok
        };
        assert!(zero.validate().is_err());
        AlertsConfig::default().validate().unwrap();
    }
}
