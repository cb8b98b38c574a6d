//! The [`Connector`] trait a connector implements, and the glue that exports it
//! as the WIT `handler` interface ([`export_connector!`](crate::export_connector)).
//! Each invocation runs in a fresh instance, so connectors keep no state in
//! memory between calls: use [`state`](crate::state).

use std::marker::PhantomData;

use crate::bindings::exports::recoco::connector::handler::Guest;
use crate::bindings::recoco::connector::types as wit;
use crate::{Context, Error, Event, Manifest};

/// A connector: what the host calls. Implement it on a unit struct and export it
/// with [`export_connector!`](crate::export_connector).
///
/// ```
/// use recoco_connector_sdk::{Connector, Context, Error, Event, Manifest};
///
/// struct Hello;
///
/// impl Connector for Hello {
///     fn manifest() -> Manifest {
///         Manifest::new("hello", "0.1.0").subscribe("*")
///     }
///
///     fn handle_event(_ctx: &Context, event: &Event) -> Result<String, Error> {
///         Ok(format!("saw {}", event.topic))
///     }
/// }
///
/// recoco_connector_sdk::export_connector!(Hello);
/// # fn main() {}
/// ```
pub trait Connector {
    /// Describes the connector. Called once at load time; must not call imports.
    fn manifest() -> Manifest;

    /// Handles one event routed to the connection. The returned string is a short
    /// summary recorded with the attempt; an error is retried or not as it says.
    fn handle_event(ctx: &Context, event: &Event) -> Result<String, Error>;

    /// Runs the task `name` with its JSON `payload` (`{}` when none), started by an
    /// operator or scheduled. The default knows no task.
    fn run_task(ctx: &Context, name: &str, payload: &str) -> Result<String, Error> {
        let _ = (ctx, payload);
        Err(Error::permanent(format!(
            "unknown task `{name}`: this connector offers none"
        )))
    }
}

/// Implements the generated `Guest` trait for any [`Connector`]; named by
/// [`export_connector!`](crate::export_connector), not by hand.
#[doc(hidden)]
pub struct Exported<T>(PhantomData<T>);

impl<T: Connector> Guest for Exported<T> {
    fn manifest() -> wit::PluginManifest {
        T::manifest().into()
    }

    fn handle_event(ctx: wit::Context, event: wit::Event) -> Result<String, wit::Error> {
        T::handle_event(&ctx.into(), &event.into()).map_err(Into::into)
    }

    fn run_task(ctx: wit::Context, name: String, payload: String) -> Result<String, wit::Error> {
        T::run_task(&ctx.into(), &name, &payload).map_err(Into::into)
    }
}

/// Exports a [`Connector`] implementation as the component's `handler`. Use it
/// once, at the root of the connector crate.
///
/// Only wasm32 builds export anything: the export names
/// (`recoco:connector/handler@0.2.0#handle-event`) are not valid symbols for
/// native linkers, and a native build is only for unit tests. There, the macro
/// just checks that the type is a [`Connector`].
#[macro_export]
macro_rules! export_connector {
    ($connector:ty) => {
        // The generated export macro takes an identifier, hence the alias.
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        type __RecocoConnectorExport = $crate::Exported<$connector>;
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::export!(__RecocoConnectorExport with_types_in $crate::bindings);
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            fn is_connector<T: $crate::Connector>() {}
            let _ = is_connector::<$connector>;
        };
    };
}
