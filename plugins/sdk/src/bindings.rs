//! The wit-bindgen bindings of `wit/connector.wit` (world `connector`,
//! `recoco:connector@0.2.0`), generated here and nowhere else. The WIT is the
//! crate's own copy, packaged with it, so the SDK builds outside the repository;
//! `tests/wit_copy.rs` keeps it identical to the repository's `wit/v0.2.0/`. Connectors should not need them: the rest of the SDK
//! wraps every import, and [`export_connector!`](crate::export_connector) wires
//! the export. They stay public for the export macro and for escape hatches.
//!
//! Off wasm32 the imports compile to stubs, so the SDK and the connectors'
//! mapping code build and unit-test natively; the wrappers never call them there.

wit_bindgen::generate!({
    world: "connector",
    path: "wit",
    // The export macro is invoked from the connector crates, through
    // `export_connector!`, so it must be public and find these bindings by path.
    pub_export_macro: true,
    default_bindings_module: "recoco_connector_sdk::bindings",
});
