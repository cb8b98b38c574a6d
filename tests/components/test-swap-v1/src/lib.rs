//! `test-swap` version 1 (the shared behaviour is in `swap.rs`).

mod swap;

use recoco_connector_sdk::{Connector, Context, Error, Event, Manifest};

const VERSION: &str = "1";

/// The connector.
pub struct SwapV1;

impl Connector for SwapV1 {
    fn manifest() -> Manifest {
        swap::manifest(VERSION)
    }

    fn handle_event(ctx: &Context, event: &Event) -> Result<String, Error> {
        swap::handle(VERSION, ctx, event)
    }
}

recoco_connector_sdk::export_connector!(SwapV1);
