//! A minimal recoco-sync connector. Copy this crate to start your own.
//!
//! Build it into a WebAssembly component with
//!
//! ```text
//! cargo build --target wasm32-wasip2 --release -p minimal-connector
//! ```
//!
//! then drop `target/wasm32-wasip2/release/minimal_connector.wasm` into the host's
//! plugins directory (`connectors/` by default). The host loads it without a
//! restart; create a connection that uses the plugin `minimal-connector`. (In
//! this workspace, `--profile wasm-release` instead of `--release` adds LTO, one
//! codegen unit, `opt-level = "s"` and `panic = "abort"`: 139 KB instead of
//! 154 KB with Rust 1.95.)
//!
//! Outside this repository, `recoco-sync plugin new NAME --lang rust` writes a
//! project of this kind with its own size-optimised profile, a one-command build
//! and a test scenario; see `Cargo.toml` for how to depend on the SDK.

use recoco_connector_sdk::{info, state, Connector, Context, Error, Event, Manifest};

// A connector is just a type. The host starts a fresh instance for every call,
// so nothing survives in memory between two events: we keep our counter in
// `state`, the key-value store the host keeps for each connection.
pub struct Minimal;

const COUNTER: &str = "events-seen";

impl Connector for Minimal {
    // First, the manifest: who we are, which events we want (`*` means all of
    // them) and which tasks an operator may start. The host reads it once.
    fn manifest() -> Manifest {
        Manifest::new("minimal-connector", env!("CARGO_PKG_VERSION"))
            .description("Logs every event, counts them, and says hello on demand.")
            .subscribe("*")
            .task("hello", "Says hello with the number of events seen.")
    }

    // Then, every event routed to a connection of ours lands here.
    fn handle_event(ctx: &Context, event: &Event) -> Result<String, Error> {
        // Log lines go to the host's log, tagged with the plugin and connection.
        info!("{} received {} ({})", ctx.connection, event.topic, event.id);

        // Read the counter, add one, store it back. `?` passes errors on: the
        // host records them and retries the event if the error says it may help.
        let seen: u64 = state::get_json(COUNTER)?.unwrap_or(0) + 1;
        state::set_json(COUNTER, &seen)?;

        // What we return is the summary the host records for this attempt.
        Ok(format!("event #{seen}: {}", event.topic))
    }

    // Finally, tasks: started by an operator from the admin API, or scheduled.
    fn run_task(_ctx: &Context, name: &str, _payload: &str) -> Result<String, Error> {
        match name {
            "hello" => {
                let seen: u64 = state::get_json(COUNTER)?.unwrap_or(0);
                Ok(format!("hello! {seen} events so far"))
            }
            // Retrying cannot make an unknown task known: a permanent error.
            other => Err(Error::permanent(format!("unknown task `{other}`"))),
        }
    }
}

// The last step makes `Minimal` the component's exported `handler`.
recoco_connector_sdk::export_connector!(Minimal);
