//! The intake code under fuzzing, compiled from the host's own files (they are
//! self-contained on purpose), so the fuzzer needs neither wasmtime nor SQLite.

#[path = "../../host/src/intake/signature.rs"]
pub mod signature;

#[path = "../../host/src/intake/standard_webhooks.rs"]
pub mod standard_webhooks;

#[path = "../../host/src/intake/envelope.rs"]
pub mod envelope;
