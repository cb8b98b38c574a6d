//! Sending an incident's notices: a JSON POST signed the Standard Webhooks way
//! (the same scheme intake verifies, [`crate::intake::standard_webhooks`]) and a
//! Sentry event. Neither carries a payload or a secret: only names, ids,
//! counts and the job's error (already scrubbed of secrets when recorded).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use serde_json::json;

use super::incidents::Incident;
use super::AlertsConfig;
use crate::intake::standard_webhooks;

/// Delays before the 2nd and 3rd try of a webhook notice.
const WEBHOOK_RETRIES: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(4)];

/// The HMAC key of `alerts.webhook_secret`.
pub fn signing_key(secret: &str) -> anyhow::Result<Vec<u8>> {
    let key = standard_webhooks::key_from_secret(secret)
        .map_err(|e| anyhow::anyhow!("alerts.webhook_secret: {e}"))?;
    if key.len() < 16 {
        bail!("alerts.webhook_secret must be at least 16 bytes (or whsec_<base64>)");
    }
    Ok(key)
}

/// Which notice of an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Opened,
    Resolved,
}

impl Notice {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Resolved => "resolved",
        }
    }
}

pub struct Notifier {
    http: reqwest::Client,
    webhook: Option<(String, Vec<u8>)>,
    sentry: Option<Arc<sentry::Client>>,
    timeout: Duration,
}

impl Notifier {
    pub fn new(config: &AlertsConfig) -> anyhow::Result<Self> {
        crate::install_crypto_provider();
        let webhook = match (
            config.webhook_url.as_deref().filter(|u| !u.is_empty()),
            config.webhook_secret.as_deref(),
        ) {
            (Some(url), Some(secret)) => Some((url.to_string(), signing_key(secret)?)),
            (Some(_), None) => bail!("alerts.webhook_secret is required with alerts.webhook_url"),
            _ => None,
        };
        let sentry = config.dsn().map(|dsn| {
            let mut options = crate::telemetry::sentry_options();
            options.dsn = dsn.parse().ok();
            options.default_integrations = false;
            Arc::new(sentry::Client::from_config(sentry::apply_defaults(options)))
        });
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(config.timeout)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("recoco-sync/", env!("CARGO_PKG_VERSION")))
                .build()?,
            webhook,
            sentry,
            timeout: config.timeout,
        })
    }

    pub fn enabled(&self) -> bool {
        self.webhook.is_some() || self.sentry.is_some()
    }

    /// Sends `notice` of `incident` everywhere configured; the errors, if any.
    pub async fn send(&self, incident: &Incident, notice: Notice) -> Result<(), String> {
        let mut errors = Vec::new();
        if let Some(client) = &self.sentry {
            if let Err(e) = self.to_sentry(client.clone(), incident, notice).await {
                errors.push(e);
            }
        }
        if let Some((url, key)) = &self.webhook {
            if let Err(e) = self.to_webhook(url, key, incident, notice).await {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    async fn to_webhook(
        &self,
        url: &str,
        key: &[u8],
        incident: &Incident,
        notice: Notice,
    ) -> Result<(), String> {
        let body = webhook_body(incident, notice).to_string();
        // Stable per notice, so a receiver can drop a repeated delivery.
        let id = format!("incident_{}_{}", incident.id, notice.as_str());
        let mut last = String::new();
        for wait in std::iter::once(Duration::ZERO).chain(WEBHOOK_RETRIES) {
            tokio::time::sleep(wait).await;
            let timestamp = chrono::Utc::now().timestamp().to_string();
            let signature = standard_webhooks::sign(key, &id, &timestamp, body.as_bytes());
            let sent = self
                .http
                .post(url)
                .header("content-type", "application/json")
                .header(standard_webhooks::ID_HEADER, &id)
                .header(standard_webhooks::TIMESTAMP_HEADER, &timestamp)
                .header(standard_webhooks::SIGNATURE_HEADER, signature)
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => last = format!("alert webhook answered {}", r.status()),
                // No URL in the message: it may carry a token.
                Err(e) if e.is_timeout() => {
                    last = format!("alert webhook timed out after {:?}", self.timeout)
                }
                Err(e) if e.is_connect() => last = "cannot connect to the alert webhook".into(),
                Err(_) => last = "alert webhook request failed".into(),
            }
            tracing::warn!(incident = incident.id, error = %last, "alert notice not delivered");
        }
        Err(last)
    }

    async fn to_sentry(
        &self,
        client: Arc<sentry::Client>,
        incident: &Incident,
        notice: Notice,
    ) -> Result<(), String> {
        let event = sentry_event(incident, notice);
        let timeout = self.timeout;
        let flushed = tokio::task::spawn_blocking(move || {
            client.capture_event(event, None);
            client.flush(Some(timeout))
        })
        .await
        .unwrap_or(false);
        if flushed {
            Ok(())
        } else {
            Err(format!("Sentry did not take the event within {timeout:?}"))
        }
    }
}

/// `{type, timestamp, data}`, as Standard Webhooks payloads are.
pub fn webhook_body(incident: &Incident, notice: Notice) -> serde_json::Value {
    json!({
        "type": format!("incident.{}", notice.as_str()),
        "timestamp": crate::ids::rfc3339(crate::ids::now_ms()),
        "data": incident,
    })
}

/// One Sentry event per notice; the fingerprint groups an incident's notices
/// by connection and reason.
pub fn sentry_event(incident: &Incident, notice: Notice) -> sentry::protocol::Event<'static> {
    use sentry::protocol::{Event, Level, Value};
    let mut tags = BTreeMap::new();
    tags.insert("connection".to_string(), incident.connection.clone());
    tags.insert("alert.reason".to_string(), incident.reason.clone());
    tags.insert("alert.notice".to_string(), notice.as_str().to_string());
    if let Some(p) = &incident.plugin {
        tags.insert("plugin".to_string(), p.clone());
    }
    if let Some(v) = &incident.plugin_version {
        tags.insert("plugin_version".to_string(), v.clone());
    }
    let mut extra = BTreeMap::new();
    extra.insert("incident_id".to_string(), Value::from(incident.id));
    extra.insert("failures".to_string(), Value::from(incident.failures));
    if let Some(e) = &incident.event_id {
        extra.insert("event_id".to_string(), Value::from(e.clone()));
    }
    if let Some(j) = &incident.job_id {
        extra.insert("job_id".to_string(), Value::from(j.clone()));
    }
    if let Some(a) = incident.attempt {
        extra.insert("attempt".to_string(), Value::from(a));
    }
    if let Some(e) = &incident.last_error {
        extra.insert("last_error".to_string(), Value::from(e.clone()));
    }
    let (level, message) = match notice {
        Notice::Opened => (Level::Error, incident.summary.clone()),
        Notice::Resolved => (
            Level::Info,
            format!(
                "connection {} recovered: {}",
                incident.connection, incident.summary
            ),
        ),
    };
    Event {
        level,
        message: Some(message),
        logger: Some("recoco_sync::alerts".into()),
        fingerprint: vec![
            "recoco-sync-incident".into(),
            incident.connection.clone().into(),
            incident.reason.clone().into(),
            notice.as_str().into(),
        ]
        .into(),
        tags,
        extra,
        ..Default::default()
    }
}
