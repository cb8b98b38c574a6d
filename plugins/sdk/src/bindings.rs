//! The wit-bindgen bindings of `wit/connector.wit` (world `connector`), generated
//! here and nowhere else. Connectors should not need them: the rest of the SDK
//! wraps every import, and [`export_connector!`](crate::export_connector) wires
//! the export. They stay public for the export macro and for escape hatches.
//!
//! Off wasm32 the imports compile to stubs, so the SDK and the connectors'
//! mapping code build and unit-test natively; the wrappers never call them there.

wit_bindgen::generate!({
    world: "connector",
    path: "../../wit/v0.1.0",
    // The export macro is invoked from the connector crates, through
    // `export_connector!`, so it must be public and find these bindings by path.
    pub_export_macro: true,
    default_bindings_module: "recoco_connector_sdk::bindings",
});
