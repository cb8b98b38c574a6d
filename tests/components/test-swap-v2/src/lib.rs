//! `test-swap` version 2: the same code as version 1 (`swap.rs` of
//! `test-swap-v1`), another version string, hence another content hash.

#[path = "../../test-swap-v1/src/swap.rs"]
mod swap;

use recoco_connector_sdk::{Connector, Context, Error, Event, Manifest};

const VERSION: &str = "2";

/// The connector.
pub struct SwapV2;

impl Connector for SwapV2 {
    fn manifest() -> Manifest {
        swap::manifest(VERSION)
    }

    fn handle_event(ctx: &Context, event: &Event) -> Result<String, Error> {
        swap::handle(VERSION, ctx, event)
    }
}

recoco_connector_sdk::export_connector!(SwapV2);
