//! Write recoco-sync connectors in plain Rust.
//!
//! A connector is a WebAssembly component (`wasm32-wasip2`, `cdylib`) that the
//! recoco-sync host runs for each Recoco webhook event routed to a connection,
//! and for tasks. This crate hides the WIT bindings (`wit/connector.wit`,
//! `recoco:connector@0.2.0`, packaged with the crate): you
//! implement [`Connector`], call [`export_connector!`], and use the wrappers over
//! the host imports: [`http`], [`source_api`], [`state`], [`schedule`], the log
//! macros ([`info!`] …) and [`progress`]. Typed Recoco payloads are in
//! [`recoco`]. Return [`Error::retryable`] or [`Error::permanent`] to tell the
//! host whether to try again.
//!
//! ```
//! use recoco_connector_sdk::{info, recoco::Project, Connector, Context, Error, Event, Manifest};
//!
//! struct Notes;
//!
//! impl Connector for Notes {
//!     fn manifest() -> Manifest {
//!         Manifest::new("notes", env!("CARGO_PKG_VERSION")).subscribe("projects.Project")
//!     }
//!
//!     fn handle_event(_ctx: &Context, event: &Event) -> Result<String, Error> {
//!         let project: Project = event.object()?;
//!         info!("project {} is {}", project.id, project.status);
//!         Ok(format!("project {}", project.id))
//!     }
//! }
//!
//! recoco_connector_sdk::export_connector!(Notes);
//! # fn main() {}
//! ```
//!
//! The crate also compiles natively, so the mapping code of a connector can be
//! unit-tested with `cargo test`; host imports panic there (logging and progress
//! print to stderr), so keep them out of the code under test.

pub mod bindings;
mod connector;
mod context;
pub mod error;
mod host;
pub mod http;
pub mod log;
mod manifest;
pub mod progress;
pub mod recoco;
pub mod scheduler;
pub mod source_api;
pub mod state;

pub use connector::Connector;
#[doc(hidden)]
pub use connector::Exported;
pub use context::{Context, Event};
pub use error::Error;
pub use manifest::{Manifest, OrderingRule, TaskInfo};
pub use scheduler::{schedule, schedule_json};

/// Re-exported so a connector needs no `serde` dependency of its own and uses
/// the SDK's. Derives name it with `#[serde(crate = …)]`:
///
/// ```
/// use recoco_connector_sdk::serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// #[serde(crate = "recoco_connector_sdk::serde")]
/// struct Config {
///     url: String,
/// }
///
/// let config: Config = recoco_connector_sdk::serde_json::from_str(r#"{"url":"https://x.org"}"#).unwrap();
/// assert_eq!(config.url, "https://x.org");
/// ```
///
/// (Or add `serde = { version = "1", features = ["derive"] }` to your own
/// `Cargo.toml` and derive as usual: Cargo unifies it with this one.)
pub use serde;
/// Re-exported so connectors use the same `serde_json` as the SDK's signatures
/// ([`Manifest::config_schema`], [`http::Request::json`], …).
pub use serde_json;
