//! The only `bindgen!` of the host: Rust types and traits for the
//! `recoco:connector@0.1.0` world. Every import is async (the host does I/O) and
//! trappable (a host bug traps the guest instead of panicking the service).

wasmtime::component::bindgen!({
    path: "../wit/v0.1.0",
    world: "connector",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use exports::recoco::connector::handler;
pub use recoco::connector::types;
