//! `test-trapper`: `handle-event` panics. Connectors are built with
//! `panic = "abort"`, so the panic message goes to stderr and the instance
//! traps; the host must record the trap and carry on.

use recoco_connector_sdk::{Connector, Context, Error, Event, Manifest};

/// The connector.
pub struct Trapper;

impl Connector for Trapper {
    fn manifest() -> Manifest {
        Manifest::new("test-trapper", env!("CARGO_PKG_VERSION"))
            .description("Test component: traps in handle-event.")
            .subscribe("*")
    }

    fn handle_event(_ctx: &Context, event: &Event) -> Result<String, Error> {
        panic!("test-trapper: trapping on event {}", event.id)
    }
}

recoco_connector_sdk::export_connector!(Trapper);
