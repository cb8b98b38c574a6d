//! `test-looper`: `handle-event` spins forever without calling the host, so
//! only the host's deadline (epoch interruption) can stop it.

use recoco_connector_sdk::{Connector, Context, Error, Event, Manifest};

/// The connector.
pub struct Looper;

impl Connector for Looper {
    fn manifest() -> Manifest {
        Manifest::new("test-looper", env!("CARGO_PKG_VERSION"))
            .description("Test component: never returns from handle-event.")
            .subscribe("*")
    }

    fn handle_event(_ctx: &Context, _event: &Event) -> Result<String, Error> {
        let mut spins: u64 = 0;
        loop {
            // `black_box` keeps the optimizer from reasoning about the loop.
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
    }
}

recoco_connector_sdk::export_connector!(Looper);
