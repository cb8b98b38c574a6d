//! Paths of the components `build.rs` compiled for the tests.

use std::path::PathBuf;

pub fn noop() -> PathBuf {
    env!("COMPONENT_test_noop").into()
}

pub fn looper() -> PathBuf {
    env!("COMPONENT_test_looper").into()
}

pub fn hog() -> PathBuf {
    env!("COMPONENT_test_hog").into()
}

pub fn trapper() -> PathBuf {
    env!("COMPONENT_test_trapper").into()
}

pub fn echo() -> PathBuf {
    env!("COMPONENT_test_echo").into()
}

pub fn http_forward() -> PathBuf {
    env!("COMPONENT_http_forward").into()
}

pub fn grist() -> PathBuf {
    env!("COMPONENT_grist").into()
}

pub fn lescommuns() -> PathBuf {
    env!("COMPONENT_lescommuns").into()
}

/// `test-swap` version 1: reports `{"version": "1", …}` for each event.
pub fn swap_v1() -> PathBuf {
    env!("COMPONENT_test_swap_v1").into()
}

/// `test-swap` version 2: reports `{"version": "2", …}` for each event.
pub fn swap_v2() -> PathBuf {
    env!("COMPONENT_test_swap_v2").into()
}

/// A `test-swap` whose `manifest()` traps.
pub fn swap_trap() -> PathBuf {
    env!("COMPONENT_test_swap_trap").into()
}

/// A `test-swap` whose config schema is not a valid JSON Schema.
pub fn swap_bad_schema() -> PathBuf {
    env!("COMPONENT_test_swap_bad_schema").into()
}

/// A valid component of another WIT world.
pub fn other_world() -> PathBuf {
    env!("COMPONENT_test_other_world").into()
}

/// Declares `coalesce`; POSTs each event's body to the config's `url`.
pub fn coalesce() -> PathBuf {
    env!("COMPONENT_test_coalesce").into()
}

/// Markup in its description, task description, summary, error and progress.
pub fn xss() -> PathBuf {
    env!("COMPONENT_test_xss").into()
}

/// A task named with markup (refused at load).
pub fn xss_name() -> PathBuf {
    env!("COMPONENT_test_xss_name").into()
}

/// A hostile connector: one task per sandbox attack (`test-malicious`).
pub fn malicious() -> PathBuf {
    env!("COMPONENT_test_malicious").into()
}

/// Built against `recoco:connector@0.1.0` with wit-bindgen directly (the
/// previous minor version); POSTs each webhook body to the config's `url`.
pub fn wit_v0_1() -> PathBuf {
    env!("COMPONENT_test_wit_v0_1").into()
}
