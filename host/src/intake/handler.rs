//! The intake request handler, one step per stage: source, body, signature,
//! envelope, routing, durable write.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::signature::{self, SignatureError, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use super::writer::Write;
use super::{envelope, IntakeState};
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
    "x-forwarded-for",
    "x-real-ip",
    "x-request-id",
];

fn detail(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"detail": message.into()}))).into_response()
}

#[tracing::instrument(name = "intake.receive", skip_all, fields(source = %code, event_id = tracing::field::Empty))]
pub async fn receive(
    State(state): State<IntakeState>,
    Path(code): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let catalog = state.catalog.get();
    let Some(source) = catalog.source_by_code(&code).cloned() else {
        return detail(StatusCode::NOT_FOUND, "Unknown webhook code");
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return detail(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Body larger than {} bytes", state.config.max_body_bytes),
            );
        }
        Err(rejection) => return detail(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let checked = signature::verify(
        &source.secrets,
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        &body,
        now_ms() / 1000,
        state.config.timestamp_tolerance,
    );
    if let Err(err) = checked {
        tracing::warn!(reason = %err, peer = %peer, "webhook refused");
        let message = match err {
            SignatureError::Mismatch => "Invalid signature".to_string(),
            other => other.to_string(),
        };
        return detail(StatusCode::UNAUTHORIZED, message);
    }

    let id = EventId::new();
    tracing::Span::current().record("event_id", id.as_str());
    let parsed = envelope::parse(&body);
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
        received_at: now_ms(),
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
                    &|plugin| state.registry.subscriptions(plugin),
                    source.id,
                    &id,
                    &env.object_type,
                    &env.topic,
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
    if let Err(err) = state.sink.write(Write { event, jobs }).await {
        tracing::error!(error = %err, "webhook not stored");
        return detail(
            StatusCode::SERVICE_UNAVAILABLE,
            "Storage unavailable; retry later",
        );
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
            Some((
                name.to_string(),
                serde_json::Value::String(value.to_string()),
            ))
        })
        .collect();
    serde_json::Value::Object(kept)
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
