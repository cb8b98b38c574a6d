//! A broken `test-swap`: its manifest reads fine but declares a config schema
//! that is not a valid JSON Schema (`"type": "no-such-type"`). The host must
//! refuse the file and keep the previous version.

#[path = "../../test-swap-v1/src/swap.rs"]
mod swap;

use recoco_connector_sdk::{Connector, Context, Error, Event, Manifest};

const VERSION: &str = "bad-schema";

/// The connector.
pub struct SwapBadSchema;

impl Connector for SwapBadSchema {
    fn manifest() -> Manifest {
        swap::manifest(VERSION).config_schema(serde_json::json!({"type": "no-such-type"}))
    }

    fn handle_event(ctx: &Context, event: &Event) -> Result<String, Error> {
        swap::handle(VERSION, ctx, event)
    }
}

recoco_connector_sdk::export_connector!(SwapBadSchema);
