//! Webhook intake: `POST /api/webhook/{code}`. Verifies the signature on the raw
//! bytes, parses the envelope, routes it, and stores the event with its jobs in
//! one transaction before answering. Nothing that passed the signature check is
//! lost: invalid bodies and events of disabled sources are stored with a status.
//!
//! Hardening (see SECURITY.md, "Intake"): a repeated request is answered with
//! the first event ([`dedup`]); secrets expire; two signature schemes
//! ([`signature`] for Recoco, [`standard_webhooks`]); header size, body size
//! and a per-source rate are bounded ([`limits`]); refusals are logged sampled.

pub mod dedup;
pub mod envelope;
mod handler;
pub mod limits;
pub mod signature;
pub mod standard_webhooks;
pub mod writer;
mod writer_postgres;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use axum::Router;

use crate::catalog::CatalogHandle;
use crate::config::IntakeConfig;
use crate::registry::Registry;
pub use writer::{EventSink, EventWriter, Stored};

/// At most one log line per refusal reason in this interval.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct IntakeState {
    pub catalog: Arc<CatalogHandle>,
    pub registry: Arc<Registry>,
    pub sink: EventSink,
    /// Delays answers while delivery falls behind on a saturated CPU.
    pub pacing: Arc<crate::pacing::Pacing>,
    pub config: IntakeConfig,
    /// Attempts given to the jobs an event creates.
    pub max_attempts: u32,
}

/// What the handler holds: the state it was given and intake's own counters.
pub(crate) struct Intake {
    pub state: IntakeState,
    pub rates: limits::RateLimits,
    pub refusals: Arc<limits::RefusalLog>,
}

pub fn router(state: IntakeState) -> Router {
    let limit = state.config.max_body_bytes;
    let max_headers = state.config.max_header_bytes;
    let refusals = Arc::new(limits::RefusalLog::new(REFUSAL_LOG_INTERVAL));
    let intake = Arc::new(Intake {
        state,
        rates: limits::RateLimits::default(),
        refusals: refusals.clone(),
    });
    Router::new()
        .route("/api/webhook/{code}", post(handler::receive))
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            (max_headers, refusals),
            limits::limit_headers,
        ))
        .with_state(intake)
}
