//! Webhook intake: `POST /api/webhook/{code}`. Verifies the signature on the raw
//! bytes, parses the envelope, routes it, and stores the event with its jobs in
//! one transaction before answering. Nothing that passed the signature check is
//! lost: invalid bodies and events of disabled sources are stored with a status.

mod envelope;
mod handler;
pub mod signature;
pub mod writer;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use axum::Router;

use crate::catalog::CatalogHandle;
use crate::config::IntakeConfig;
use crate::registry::Registry;
pub use writer::{EventSink, EventWriter};

#[derive(Clone)]
pub struct IntakeState {
    pub catalog: Arc<CatalogHandle>,
    pub registry: Arc<Registry>,
    pub sink: EventSink,
    pub config: IntakeConfig,
    /// Attempts given to the jobs an event creates.
    pub max_attempts: u32,
}

pub fn router(state: IntakeState) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/api/webhook/{code}", post(handler::receive))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}
