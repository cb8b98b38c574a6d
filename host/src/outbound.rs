//! Outbound HTTP for connectors: who may be called ([`allow`]) and how
//! ([`client`]). The runtime's `http` and `source-api` imports go through here.

pub mod allow;
pub mod client;
pub mod guard;
pub mod special;

pub use allow::AllowList;
pub use client::{OutboundClient, OutboundError, Request, Response};
