//! A broken `test-swap`: `manifest()` panics, so the instance traps while the
//! host loads it. The host must refuse the file and keep the previous version.

// Only `handle` is used: the manifest never gets built.
#[allow(dead_code)]
#[path = "../../test-swap-v1/src/swap.rs"]
mod swap;

use recoco_connector_sdk::{Connector, Context, Error, Event, Manifest};

/// The connector.
pub struct SwapTrap;

impl Connector for SwapTrap {
    fn manifest() -> Manifest {
        panic!("test-swap-trap: manifest() traps on purpose")
    }

    fn handle_event(ctx: &Context, event: &Event) -> Result<String, Error> {
        swap::handle("trap", ctx, event)
    }
}

recoco_connector_sdk::export_connector!(SwapTrap);
