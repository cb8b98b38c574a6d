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
