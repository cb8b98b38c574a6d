//! `test-noop`: subscribes to every event and answers `noop` at once, without a
//! host call. The invocation benchmark measures the host's own cost with it.

use recoco_connector_sdk::{Connector, Context, Error, Event, Manifest};

/// The connector.
pub struct Noop;

impl Connector for Noop {
    fn manifest() -> Manifest {
        Manifest::new("test-noop", env!("CARGO_PKG_VERSION"))
            .description("Test component: answers every event with `noop`.")
            .subscribe("*")
    }

    fn handle_event(_ctx: &Context, _event: &Event) -> Result<String, Error> {
        Ok("noop".to_owned())
    }
}

recoco_connector_sdk::export_connector!(Noop);
