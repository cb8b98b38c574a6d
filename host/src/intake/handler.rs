//! The intake request handler, one step per stage: source, body, signature,
//! rate, envelope, routing, durable write (or the first event, for a repeat).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::dedup::{self, Claim};
use super::limits::{Rate, Refusal};
use super::signature::{self, SignatureError, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use super::standard_webhooks as sw;
use super::writer::{Stored, Write};
use super::{envelope, Intake};
use crate::config::Scheme;
use crate::ids::{now_ms, EventId};
use crate::store::events::{EventStatus, NewEvent};
use crate::{filter, routing};

/// Request headers kept with an event. Signatures are deliberately not kept.
const KEPT_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "user-agent",
    TIMESTAMP_HEADER,
    "django-webhook-uuid",
    sw::ID_HEADER,
    sw::TIMESTAMP_HEADER,
    "x-forwarded-for",
    "x-real-ip",
    "x-request-id",
];

/// Longest header value kept with an event; longer ones are cut with a marker,
/// so the stored headers stay under ~5 KiB whatever was sent.
pub const MAX_KEPT_HEADER_VALUE: usize = 512;
const CUT_MARKER: &str = "…[cut]";

fn detail(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"detail": message.into()}))).into_response()
}

#[tracing::instrument(name = "intake.receive", skip_all, fields(source = %code, event_id = tracing::field::Empty))]
pub async fn receive(
    State(intake): State<Arc<Intake>>,
    Path(code): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let state = &intake.state;
    let refuse = |kind: Refusal, status: StatusCode, message: String| {
        intake
            .refusals
            .record(kind, &format!("source {code}, peer {peer}: {message}"));
        detail(status, message)
    };
    let catalog = state.catalog.get();
    let Some(source) = catalog.source_by_code(&code).cloned() else {
        return refuse(
            Refusal::UnknownSource,
            StatusCode::NOT_FOUND,
            "Unknown webhook code".into(),
        );
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return refuse(
                Refusal::BodyTooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Body larger than {} bytes", state.config.max_body_bytes),
            );
        }
        Err(rejection) => return detail(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    let received_at = now_ms();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let keys = source.live_keys(received_at);
    let tolerance = state.config.timestamp_tolerance;
    let checked = match source.scheme {
        Scheme::Recoco => signature::verify(
            &keys,
            header(TIMESTAMP_HEADER),
            header(SIGNATURE_HEADER),
            &body,
            received_at / 1000,
            tolerance,
        )
        .map_err(|err| match err {
            SignatureError::Mismatch => "Invalid signature".to_string(),
            other => other.to_string(),
        }),
        Scheme::StandardWebhooks => sw::verify(
            &keys,
            header(sw::ID_HEADER),
            header(sw::TIMESTAMP_HEADER),
            header(sw::SIGNATURE_HEADER),
            &body,
            received_at / 1000,
            tolerance,
        )
        .map_err(|err| err.to_string()),
    };
    if let Err(message) = checked {
        return refuse(Refusal::BadSignature, StatusCode::UNAUTHORIZED, message);
    }
    // Counted once the request is authentic: only the source can spend its budget.
    let rate = Rate {
        per_second: source
            .rate_per_second
            .unwrap_or(state.config.rate_limit_per_second),
        burst: source.rate_burst.unwrap_or(state.config.rate_limit_burst),
    };
    if let Err(wait) = intake.rates.check(source.id, rate) {
        let retry_after = wait.as_secs_f64().ceil().max(1.0) as u64;
        intake.refusals.record(
            Refusal::RateLimited,
            &format!(
                "source {code}, peer {peer}: over {} webhooks/s",
                rate.per_second
            ),
        );
        let mut response = detail(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many webhooks from this source (at most {} per second, bursts of {}); retry in {retry_after} s",
                rate.per_second, rate.burst
            ),
        );
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(retry_after),
        );
        return response;
    }

    let id = EventId::new();
    tracing::Span::current().record("event_id", id.as_str());
    let parsed = match source.scheme {
        Scheme::Recoco => envelope::parse(&body),
        Scheme::StandardWebhooks => {
            envelope::parse_standard(&body, header(sw::ID_HEADER).unwrap_or_default())
        }
    };
    let claim = Claim {
        keys: match source.scheme {
            Scheme::Recoco => dedup::recoco_keys(
                header(TIMESTAMP_HEADER).unwrap_or_default().trim(),
                &body,
                parsed.is_ok(),
            ),
            Scheme::StandardWebhooks => {
                dedup::standard_webhooks_keys(header(sw::ID_HEADER).unwrap_or_default().trim())
            }
        },
        expired_before: received_at - state.config.dedup_window.max(tolerance).as_millis() as i64,
    };
    let mut event = NewEvent {
        id: id.clone(),
        source_id: source.id,
        status: EventStatus::Invalid,
        topic: None,
        object_type: None,
        object_id: None,
        action: None,
        webhook_uuid: None,
        body: body.clone(),
        headers: kept_headers(&headers),
        remote_addr: Some(remote_addr(
            &headers,
            peer,
            state.config.trust_forwarded_for,
        )),
        error: None,
        received_at,
        filtered: None,
    };
    let mut jobs = Vec::new();
    let (http_status, message) = match (&parsed, source.enabled) {
        (Err(why), _) => {
            event.error = Some(why.clone());
            (
                StatusCode::BAD_REQUEST,
                format!("Malformed webhook: {why}; the request is stored as invalid"),
            )
        }
        (Ok(env), enabled) => {
            event.topic = Some(env.topic.clone());
            event.object_type = Some(env.object_type.clone());
            event.object_id = env.object_id.clone();
            event.action = env.action.clone();
            event.webhook_uuid = Some(env.webhook_uuid.clone());
            if !enabled {
                event.status = EventStatus::Skipped;
                (
                    StatusCode::OK,
                    "Source is disabled; the event is stored and can be replayed".to_string(),
                )
            } else {
                let mut filters = filter::Check::new(filter::Subject::new(
                    &env.topic,
                    &env.object_type,
                    env.action.as_deref(),
                    env.object_id.as_deref(),
                    &body,
                ));
                jobs = routing::jobs_for(
                    &catalog,
                    &|plugin| state.registry.routing(plugin),
                    &routing::EventRef::new(source.id, &id, &env.object_type, &env.topic, &body),
                    state.max_attempts,
                    &mut filters,
                );
                event.filtered = filters.dropped_json();
                event.status = if jobs.is_empty() {
                    EventStatus::Ignored
                } else {
                    EventStatus::Queued
                };
                let message = match jobs.len() {
                    0 if event.filtered.is_some() => {
                        "Webhook event stored; the filters of its connections dropped it"
                            .to_string()
                    }
                    0 => "Webhook event stored; no connection subscribes to it".to_string(),
                    n => format!("Webhook event stored; {n} job(s) queued"),
                };
                (StatusCode::OK, message)
            }
        }
    };
    let status = event.status;
    crate::metrics::paced(state.pacing.admit(jobs.len()).await);
    match state.sink.write(Write { event, jobs, claim }).await {
        Err(err) => {
            tracing::error!(error = %err, "webhook not stored");
            return detail(
                StatusCode::SERVICE_UNAVAILABLE,
                "Storage unavailable; retry later",
            );
        }
        Ok(Stored::Duplicate(original)) => {
            intake.refusals.record(
                Refusal::Duplicate,
                &format!("source {code}, peer {peer}: repeats {}", original.event_id),
            );
            return (
                StatusCode::OK,
                Json(json!({
                    "id": original.event_id,
                    "status": original.status,
                    "duplicate": true,
                    "message": "Already received: this repeats an earlier webhook, answered with it; nothing new is stored or queued",
                })),
            )
                .into_response();
        }
        Ok(Stored::New) => {}
    }
    tracing::info!(status = status.as_str(), "webhook stored");
    if http_status == StatusCode::BAD_REQUEST {
        return (
            http_status,
            Json(json!({"detail": message, "id": id, "status": status})),
        )
            .into_response();
    }
    (
        http_status,
        Json(json!({"id": id, "status": status, "message": message})),
    )
        .into_response()
}

fn kept_headers(headers: &HeaderMap) -> serde_json::Value {
    let kept: serde_json::Map<String, serde_json::Value> = KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            let value = headers.get(*name)?.to_str().ok()?;
            Some((name.to_string(), serde_json::Value::String(cut(value))))
        })
        .collect();
    serde_json::Value::Object(kept)
}

/// `value`, cut to [`MAX_KEPT_HEADER_VALUE`] bytes (on a character boundary).
fn cut(value: &str) -> String {
    if value.len() <= MAX_KEPT_HEADER_VALUE {
        return value.to_string();
    }
    let mut end = MAX_KEPT_HEADER_VALUE - CUT_MARKER.len();
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT_MARKER}", &value[..end])
}

/// The client address: the socket peer, or the last `X-Forwarded-For` entry
/// when a trusted proxy sets it.
fn remote_addr(headers: &HeaderMap, peer: SocketAddr, trust_forwarded_for: bool) -> String {
    if trust_forwarded_for {
        if let Some(last) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            return last.to_string();
        }
    }
    peer.ip().to_string()
}
