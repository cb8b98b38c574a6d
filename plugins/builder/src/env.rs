//! The environment of the nested cargo. A build script inherits variables that
//! describe the *outer* build (its target, flags, profile, wrappers); passed on,
//! they would compile the connectors for the wrong target, with host-only flags
//! (`-C instrument-coverage`, `-C target-cpu=native`), through clippy, or into the
//! outer target directory, where the outer cargo's lock makes the build hang.

use std::process::Command;

/// Variables that cargo sets or reads and that must not reach the nested build.
const REMOVED: &[&str] = &[
    // Flags meant for the outer target; they break or bloat wasm builds.
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    // Set by `cargo clippy` (clippy-driver) and by coverage tools.
    "RUSTC_WORKSPACE_WRAPPER",
    "CLIPPY_ARGS",
    "CLIPPY_CONF_DIR",
    "LLVM_PROFILE_FILE",
    // Set by cargo for build scripts; they describe the outer build.
    "RUSTC",
    "RUSTDOC",
    "RUSTC_LINKER",
    "OUT_DIR",
    "TARGET",
    "HOST",
    "NUM_JOBS",
    "OPT_LEVEL",
    "DEBUG",
    "PROFILE",
];

/// `CARGO_*` variables that are the user's cargo configuration rather than the
/// outer build's: where cargo lives, how it reaches registries, how it prints.
/// `CARGO_MAKEFLAGS` carries the outer jobserver, so both builds share one limit
/// on parallel jobs instead of each using every core.
const KEPT_CARGO_PREFIXES: &[&str] = &[
    "CARGO_HOME",
    "CARGO_MAKEFLAGS",
    "CARGO_NET_",
    "CARGO_HTTP_",
    "CARGO_REGISTRIES_",
    "CARGO_REGISTRY_",
    "CARGO_TERM_",
];

/// Whether `name` is removed from the nested cargo's environment.
pub fn is_removed(name: &str) -> bool {
    if REMOVED.contains(&name) || name.starts_with("DEP_") || name.starts_with("__CARGO") {
        return true;
    }
    // Everything else cargo sets for build scripts (`CARGO_PKG_*`, `CARGO_CFG_*`,
    // `CARGO_FEATURE_*`, `CARGO_MANIFEST_*`, `CARGO_ENCODED_RUSTFLAGS`, …) and
    // configuration overrides of the outer build (`CARGO_TARGET_DIR`,
    // `CARGO_BUILD_TARGET`, `CARGO_PROFILE_*`, `CARGO_INCREMENTAL`,
    // `CARGO_LLVM_COV*`, …).
    name.starts_with("CARGO")
        && !KEPT_CARGO_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

/// Removes the outer build's variables from `command`'s environment.
pub fn clean(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_none_or(is_removed) {
            command.env_remove(&name);
        }
    }
}

/// The command line, for messages.
pub fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::is_removed;

    #[test]
    fn removes_the_outer_build_and_keeps_user_configuration() {
        for name in [
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_TARGET",
            "RUSTC_WORKSPACE_WRAPPER",
            "CARGO_PKG_NAME",
            "CARGO_MANIFEST_DIR",
            "CARGO_CFG_TARGET_OS",
            "CARGO_FEATURE_STD",
            "CARGO_PROFILE_RELEASE_DEBUG",
            "CARGO_LLVM_COV_TARGET_DIR",
            "CARGO",
            "DEP_Z_INCLUDE",
            "LLVM_PROFILE_FILE",
            "OUT_DIR",
            "TARGET",
        ] {
            assert!(is_removed(name), "{name} should be removed");
        }
        for name in [
            "CARGO_HOME",
            "CARGO_MAKEFLAGS",
            "CARGO_NET_OFFLINE",
            "CARGO_HTTP_PROXY",
            "CARGO_REGISTRIES_CRATES_IO_PROTOCOL",
            "CARGO_TERM_COLOR",
            "PATH",
            "HOME",
            "RUSTUP_TOOLCHAIN",
            "RUSTC_WRAPPER",
        ] {
            assert!(!is_removed(name), "{name} should be kept");
        }
    }
}
