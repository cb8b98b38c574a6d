//! The host's `bindgen!`s, one per supported version of `recoco:connector`
//! (`wit/v<version>/`), kept side by side: a component built against the
//! previous minor version loads and runs beside current ones. The rest of the
//! host speaks only the current version's types; [`compat`] serves the older
//! world's imports with the current implementations and converts values at the
//! boundary, and [`ConnectorPre`] picks the version a component exports.
//!
//! Every import is async (the host does I/O) and trappable (a host bug traps
//! the guest instead of panicking the service).

pub(crate) mod compat;

use wasmtime::component::{InstancePre, Linker};
use wasmtime::Store;

/// `recoco:connector@0.2.0`, the current version.
pub mod v0_2_0 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.2.0",
        world: "connector",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// `recoco:connector@0.1.0`, the previous minor version.
pub mod v0_1_0 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "connector",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

pub use v0_2_0::exports::recoco::connector::handler;
pub use v0_2_0::recoco;
pub use v0_2_0::recoco::connector::types;

/// The versions of `recoco:connector` the host runs, newest first.
pub const SUPPORTED_VERSIONS: [&str; 2] = ["0.2.0", "0.1.0"];

/// Every host import the current world has, which is what a store's data must
/// implement for components of any supported version to link.
pub trait Imports:
    recoco::connector::types::Host
    + recoco::connector::http::Host
    + recoco::connector::source_api::Host
    + recoco::connector::state::Host
    + recoco::connector::scheduler::Host
    + recoco::connector::log::Host
    + recoco::connector::progress::Host
    + compat::V0_1Imports
    + Send
    + 'static
{
}

impl<T> Imports for T where
    T: recoco::connector::types::Host
        + recoco::connector::http::Host
        + recoco::connector::source_api::Host
        + recoco::connector::state::Host
        + recoco::connector::scheduler::Host
        + recoco::connector::log::Host
        + recoco::connector::progress::Host
        + compat::V0_1Imports
        + Send
        + 'static
{
}

/// Defines the imports of every supported version in `linker`.
pub fn add_to_linker<T: Imports>(linker: &mut Linker<T>) -> anyhow::Result<()> {
    use wasmtime::component::HasSelf;
    v0_2_0::Connector::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    v0_1_0::Connector::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    Ok(())
}

/// A component whose imports are resolved, of whichever supported version it
/// exports; each call instantiates it afresh in the given store.
pub enum ConnectorPre<T: 'static> {
    V0_2(v0_2_0::ConnectorPre<T>),
    V0_1(v0_1_0::ConnectorPre<T>),
}

impl<T: Send + 'static> ConnectorPre<T> {
    /// Picks the newest version whose `handler` the component exports.
    pub fn new(pre: InstancePre<T>) -> anyhow::Result<Self> {
        let current = match v0_2_0::ConnectorPre::new(pre.clone()) {
            Ok(pre) => return Ok(Self::V0_2(pre)),
            Err(err) => err,
        };
        if let Ok(pre) = v0_1_0::ConnectorPre::new(pre) {
            return Ok(Self::V0_1(pre));
        }
        Err(anyhow::Error::from(current).context(format!(
            "the component does not export recoco:connector/handler of a supported version ({})",
            SUPPORTED_VERSIONS.join(", ")
        )))
    }

    /// The version of `recoco:connector` the component was built against.
    pub fn wit_version(&self) -> &'static str {
        match self {
            Self::V0_2(_) => "0.2.0",
            Self::V0_1(_) => "0.1.0",
        }
    }

    pub async fn manifest(&self, store: &mut Store<T>) -> wasmtime::Result<types::PluginManifest> {
        match self {
            Self::V0_2(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance
                    .recoco_connector_handler()
                    .call_manifest(store)
                    .await
            }
            Self::V0_1(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                let manifest = instance
                    .recoco_connector_handler()
                    .call_manifest(store)
                    .await?;
                Ok(manifest.into())
            }
        }
    }

    pub async fn handle_event(
        &self,
        store: &mut Store<T>,
        ctx: &types::Context,
        event: &types::Event,
    ) -> wasmtime::Result<Result<String, types::Error>> {
        match self {
            Self::V0_2(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance
                    .recoco_connector_handler()
                    .call_handle_event(store, ctx, event)
                    .await
            }
            Self::V0_1(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                let out = instance
                    .recoco_connector_handler()
                    .call_handle_event(store, &ctx.clone().into(), &event.clone().into())
                    .await?;
                Ok(out.map_err(Into::into))
            }
        }
    }

    pub async fn run_task(
        &self,
        store: &mut Store<T>,
        ctx: &types::Context,
        name: &str,
        payload: &str,
    ) -> wasmtime::Result<Result<String, types::Error>> {
        match self {
            Self::V0_2(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance
                    .recoco_connector_handler()
                    .call_run_task(store, ctx, name, payload)
                    .await
            }
            Self::V0_1(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                let out = instance
                    .recoco_connector_handler()
                    .call_run_task(store, &ctx.clone().into(), name, payload)
                    .await?;
                Ok(out.map_err(Into::into))
            }
        }
    }
}
